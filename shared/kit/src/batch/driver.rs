//! The SQS batch driver over `aws_lambda_events` (feature `lambda`): see [`process_batch`].

use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::{Instrument, Span, info, info_span, warn};

use super::{Outcome, RecordError};

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
/// `handler` receives every record (in batch order) and returns one outcome per record, in
/// the same order. A handler that returns fewer outcomes than records has the missing ones
/// counted as failed, so a bug can cause a retry but never a loss.
pub async fn process_batch<'e, F, Fut>(
    event: &'e SqsEvent,
    handler: F,
) -> Result<SqsBatchResponse, BatchError>
where
    F: FnOnce(Vec<Record<'e>>) -> Fut,
    Fut: Future<Output = Vec<Outcome>>,
{
    let mut records = Vec::with_capacity(event.records.len());
    for (index, message) in event.records.iter().enumerate() {
        let message_id = message
            .message_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .ok_or(BatchError::MissingMessageId { index })?;
        records.push(Record {
            message_id,
            message,
            span: info_span!("record", message_id),
        });
    }
    let total = records.len();
    let spans: Vec<(&str, Span)> = records
        .iter()
        .map(|r| (r.message_id, r.span.clone()))
        .collect();
    let mut outcomes = handler(records).await.into_iter();

    let mut response = SqsBatchResponse::default();
    for (message_id, span) in spans {
        let outcome = outcomes.next().unwrap_or_else(|| {
            Err(RecordError::permanent(
                "no_outcome",
                "the handler returned no outcome for this record",
            ))
        });
        if let Err(e) = outcome {
            span.in_scope(|| {
                warn!(
                    error.kind = e.kind(),
                    error.retryable = e.retryable(),
                    error = %e,
                    "record failed; it stays in the queue for redelivery and then the DLQ"
                );
            });
            response.add_failure(message_id);
        }
    }
    info!(
        records = total,
        failed = response.batch_item_failures.len(),
        "batch done"
    );
    Ok(response)
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
        let ev = event(&[Some("a"), Some("b"), Some("c")]);
        let resp = process_batch(&ev, |records| async move {
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
            let ev = event(&ids);
            let err = process_batch(&ev, |records| async move {
                records.iter().map(|_| Ok(())).collect()
            })
            .await
            .unwrap_err();
            assert!(matches!(err, BatchError::MissingMessageId { index: 1 }));
        }
    }

    #[tokio::test]
    async fn missing_outcomes_count_as_failures() {
        let ev = event(&[Some("a"), Some("b")]);
        let resp = process_batch(&ev, |_| async { vec![Ok(())] })
            .await
            .unwrap();
        assert_eq!(failed(&resp), ["b"]);
    }
}
