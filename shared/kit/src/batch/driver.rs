//! The SQS batch driver over `aws_lambda_events` (feature `lambda`): see [`process_batch`],
//! and its [`Settler`] (dead letters with their reason, retries with backoff).

use std::future::Future;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use tracing::{Instrument, Span, info, info_span, warn};

use super::{Outcome, RecordError};
use crate::deadletter::{self, Attribute, Attributes, FAILURE_ATTRIBUTE, PACKED_ATTRIBUTE};

mod settle;
pub use settle::Settler;

/// An invocation-level failure: Lambda retries the whole batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A record came without a message ID.
    #[error(
        "record {index} of the batch has no messageId; failing the invocation rather than reporting an empty itemIdentifier"
    )]
    MissingMessageId {
        /// Position of the record in the batch.
        index: usize,
    },
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        Self {
            error_type: "BatchError".to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// One record of the batch, with its message ID and its span.
#[derive(Debug, Clone)]
pub struct Record<'e> {
    /// The SQS message ID (never empty).
    pub message_id: &'e str,
    /// The SQS message.
    pub message: &'e SqsMessage,
    /// The record's span (`record` with `message_id`); enter it for work on this record.
    pub span: Span,
}

impl<'e> Record<'e> {
    /// The body, or `""` when the message has none.
    pub fn body(&self) -> &'e str {
        self.message.body.as_deref().unwrap_or_default()
    }
}

/// Runs `handler` over the batch and reports exactly the failed records.
///
/// Before the handler sees them, records are [restored](crate::deadletter::restore): a
/// message moved back from a dead-letter queue carries its original attributes again and no
/// failure attribute. (A record whose packed attributes do not parse fails permanently without
/// reaching the handler.)
///
/// `handler` receives every record (in batch order) and returns one outcome per record, in
/// the same order. A handler that returns fewer outcomes than records has the missing ones
/// counted as failed, so a bug can cause a retry but never a loss.
///
/// Each failed record is then settled by `settler` (see [`Settler`]): a permanent failure is
/// sent to the dead-letter queue with its reason and counts as handled; a retryable one has
/// its visibility shortened and is reported failed. Without a settler every failed record is
/// reported failed and left to the queue's redrive policy.
pub async fn process_batch<'e, F, Fut>(
    event: &'e mut SqsEvent,
    settler: Option<&Settler>,
    handler: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: FnOnce(Vec<Record<'e>>) -> Fut,
    Fut: Future<Output = Vec<Outcome>>,
{
    let unrestorable: Vec<Option<RecordError>> =
        event.records.iter_mut().map(restore_in_place).collect();
    let event: &'e SqsEvent = event;
    let mut all = Vec::with_capacity(event.records.len());
    for (index, message) in event.records.iter().enumerate() {
        let message_id = message
            .message_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or(BatchError::MissingMessageId { index })?;
        all.push(Record {
            message_id,
            message,
            span: info_span!("record", message_id),
        });
    }
    let total = all.len();
    let handled: Vec<Record<'e>> = all
        .iter()
        .zip(&unrestorable)
        .filter(|(_, bad)| bad.is_none())
        .map(|(r, _)| r.clone())
        .collect();
    let mut outcomes = handler(handled).await.into_iter();

    let mut failed = Vec::new();
    for (record, bad) in all.into_iter().zip(unrestorable) {
        let outcome = match bad {
            Some(e) => Err(e),
            None => outcomes.next().unwrap_or_else(|| {
                Err(RecordError::permanent(
                    "no_outcome",
                    "the handler returned no outcome for this record",
                ))
            }),
        };
        if let Err(e) = outcome {
            failed.push((record, e));
        }
    }
    let metrics = settler.map(|s| crate::Metrics::new(s.function()));
    if let Some(m) = &metrics {
        m.count("RecordsIn", total as u64);
        for (_, e) in &failed {
            m.count_by("RecordsFailed", "ErrorKind", e.kind(), 1);
        }
    }
    let dead_lettered_before = failed.len();
    let still_failed = match settler {
        Some(settler) => settler.settle(failed).await,
        None => {
            for (record, e) in &failed {
                record.span.in_scope(|| {
                    warn!(
                        error.kind = e.kind(),
                        error.retryable = e.retryable(),
                        error = %e,
                        "record failed; it stays in the queue for redelivery and then the DLQ"
                    );
                });
            }
            failed.into_iter().map(|(r, _)| r.message_id).collect()
        }
    };
    let mut response = SqsBatchResponse::default();
    for message_id in &still_failed {
        response.add_failure(*message_id);
    }
    let dead_lettered = dead_lettered_before - still_failed.len();
    info!(
        records = total,
        failed = still_failed.len(),
        dead_lettered,
        "batch done"
    );
    if let Some(m) = metrics {
        m.count("RecordsDeadLettered", dead_lettered as u64);
        m.count("RecordsRetried", still_failed.len() as u64);
        m.emit();
    }
    Ok(response)
}

/// Puts a dead letter's original attributes back (see [`crate::deadletter::restore`]); the
/// error of a record whose packed attributes are broken.
fn restore_in_place(message: &mut SqsMessage) -> Option<RecordError> {
    let marked = message.message_attributes.contains_key(FAILURE_ATTRIBUTE)
        || message.message_attributes.contains_key(PACKED_ATTRIBUTE);
    if !marked {
        return None;
    }
    let attrs: Attributes = message
        .message_attributes
        .iter()
        .map(|(k, v)| (k.clone(), from_lambda(v)))
        .collect();
    match deadletter::restore(attrs) {
        Ok((restored, _)) => {
            message.message_attributes = restored
                .into_iter()
                .map(|(k, v)| (k, to_lambda(v)))
                .collect();
            None
        }
        Err(e) => Some(RecordError::permanent("bad_packed_attributes", e)),
    }
}

/// The record Lambda's SQS event source would deliver for a message received with all system
/// and message attributes from the queue `queue_arn` (the local event source, tests).
pub fn record_of(m: &aws_sdk_sqs::types::Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = m.message_id().map(str::to_owned);
    r.receipt_handle = m.receipt_handle().map(str::to_owned);
    r.body = m.body().map(str::to_owned);
    r.md5_of_body = m.md5_of_body().map(str::to_owned);
    r.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_owned);
    r.attributes = m
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    r.message_attributes = crate::sqs::attributes_of(m)
        .into_iter()
        .map(|(k, v)| (k, to_lambda(v)))
        .collect();
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(queue_arn.to_owned());
    r.aws_region = Some(region.to_owned());
    r
}

/// An event attribute as a [`deadletter::Attribute`].
pub(crate) fn from_lambda(v: &SqsMessageAttribute) -> Attribute {
    Attribute {
        data_type: v.data_type.clone().unwrap_or_else(|| "String".to_owned()),
        string_value: v.string_value.clone(),
        binary_value: v.binary_value.as_ref().map(|b| b.to_vec()),
    }
}

fn to_lambda(a: Attribute) -> SqsMessageAttribute {
    let mut v = SqsMessageAttribute::default();
    v.data_type = Some(a.data_type);
    v.string_value = a.string_value;
    v.binary_value = a.binary_value.map(|bytes| {
        let mut b = Base64Data::default();
        *b = bytes;
        b
    });
    v
}

/// Runs `f` on each record in turn, inside the record's span. For handlers whose records are
/// independent and cheap enough to handle one after another.
pub async fn each_record<'e, F, Fut>(records: &[Record<'e>], f: F) -> Vec<Outcome>
where
    F: Fn(&Record<'e>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        outcomes.push(f(record).instrument(record.span.clone()).await);
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ids: &[Option<&str>]) -> SqsEvent {
        let records: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({ "messageId": id, "body": id.unwrap_or("none") }))
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    fn failed(resp: &SqsBatchResponse) -> Vec<&str> {
        resp.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn only_the_failed_records_are_reported() {
        let mut ev = event(&[Some("a"), Some("b"), Some("c")]);
        let resp = process_batch(&mut ev, None, |records| async move {
            each_record(&records, |r| {
                let bad = r.body() == "b";
                async move {
                    if bad {
                        Err(RecordError::permanent("test", "bad"))
                    } else {
                        Ok(())
                    }
                }
            })
            .await
        })
        .await
        .unwrap();
        assert_eq!(failed(&resp), ["b"]);
    }

    #[tokio::test]
    async fn a_record_without_message_id_fails_the_invocation() {
        for ids in [[Some("a"), None], [Some("a"), Some("")]] {
            let mut ev = event(&ids);
            let err = process_batch(&mut ev, None, |records| async move {
                records.iter().map(|_| Ok(())).collect()
            })
            .await
            .unwrap_err();
            assert!(matches!(err, BatchError::MissingMessageId { index: 1 }));
        }
    }

    #[tokio::test]
    async fn missing_outcomes_count_as_failures() {
        let mut ev = event(&[Some("a"), Some("b")]);
        let resp = process_batch(&mut ev, None, |_| async { vec![Ok(())] })
            .await
            .unwrap();
        assert_eq!(failed(&resp), ["b"]);
    }

    #[tokio::test]
    async fn dead_letters_reach_the_handler_as_their_original_messages() {
        let packed = serde_json::json!({
            "mqttSecondTopic": {"dataType": "String", "stringValue": "/p2p/GID_x@@@a"}
        })
        .to_string();
        let mut ev: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": [
            { "messageId": "packed", "body": "hi", "messageAttributes": {
                "classroom.attributes": {"dataType": "String", "stringValue": packed},
                "classroom.failure": {"dataType": "String", "stringValue": "{}"} } },
            { "messageId": "broken", "body": "hi", "messageAttributes": {
                "classroom.attributes": {"dataType": "String", "stringValue": "nope"} } },
            { "messageId": "plain", "body": "hi", "messageAttributes": {
                "k": {"dataType": "Number", "stringValue": "1"} } }
        ]}))
        .unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let resp = process_batch(&mut ev, None, |records| {
            for r in &records {
                let mut keys: Vec<&String> = r.message.message_attributes.keys().collect();
                keys.sort();
                let line = format!("{} {keys:?}", r.message_id);
                seen.lock().map(|mut s| s.push(line)).ok();
            }
            async move { records.iter().map(|_| Ok(())).collect() }
        })
        .await
        .unwrap();
        assert_eq!(
            seen.into_inner().unwrap(),
            [r#"packed ["mqttSecondTopic"]"#, r#"plain ["k"]"#]
        );
        assert_eq!(failed(&resp), ["broken"]);
        let restored = &ev.records[0].message_attributes["mqttSecondTopic"];
        assert_eq!(restored.string_value.as_deref(), Some("/p2p/GID_x@@@a"));
        assert_eq!(restored.data_type.as_deref(), Some("String"));
    }
}
