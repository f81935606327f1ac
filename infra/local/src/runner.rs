//! The local SQS event source: what Lambda's event source mapping does for an SQS-triggered
//! function with `ReportBatchItemFailures`, against moto.
//!
//! For each function, `pollers` loops: long-poll up to `batch_size` messages (with all system
//! and message attributes), build the `SqsEvent` Lambda would deliver, call the function's own
//! `handle` (the code the Lambda runs) under the function timeout, then delete exactly the
//! records that succeeded. Failed records are left alone: they come back after the queue's
//! visibility timeout, and the queue's redrive policy moves them to the DLQ after
//! `maxReceiveCount` receives. As in Lambda, an error, a timeout or a response naming a record
//! that was not in the batch (or an empty identifier) fails the whole batch.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use tracing::{error, info, warn};

use crate::shutdown::{self, Shutdown};

/// What a handler returns, boxed so functions of different types share one runner.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<SqsBatchResponse, String>> + Send>>;

/// A function's `handle`, type-erased: an `SqsEvent` in, its batch response out.
pub type Handler = Arc<dyn Fn(SqsEvent) -> HandlerFuture + Send + Sync>;

/// Wraps a function value and its `handle` method into a [`Handler`]:
/// `handler(Arc::new(f), |f, e| async move { f.handle(e).await })`.
pub fn handler<F, Fut, E>(function: Arc<F>, call: fn(Arc<F>, SqsEvent) -> Fut) -> Handler
where
    F: Send + Sync + 'static,
    Fut: Future<Output = Result<SqsBatchResponse, E>> + Send + 'static,
    E: std::fmt::Display,
{
    Arc::new(move |event| {
        let fut = call(Arc::clone(&function), event);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    })
}

/// One function fed from one queue.
#[derive(Clone)]
pub struct Source {
    /// The function's name (logs).
    pub name: String,
    /// Its source queue.
    pub queue_url: String,
    /// Its handler.
    pub handler: Handler,
}

/// How the event source polls (the SAM template's event source properties).
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Records per invocation, 1 to 10.
    pub batch_size: i32,
    /// Long-poll wait, seconds (0 to 20).
    pub wait_seconds: i32,
    /// Concurrent pollers per function (Lambda scales these up; one keeps order per queue).
    pub pollers: usize,
    /// The function timeout: a longer invocation fails its whole batch.
    pub function_timeout: Duration,
    /// The region written into each record, as Lambda does.
    pub region: String,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait_seconds: 20,
            pollers: 2,
            function_timeout: Duration::from_secs(20),
            region: "us-east-1".into(),
        }
    }
}

/// Which message IDs of the batch failed, per Lambda's rules for a partial batch response:
/// `None` means the whole batch failed (unknown or empty identifier).
pub fn failed_ids(batch: &[SqsMessage], response: &SqsBatchResponse) -> Option<HashSet<String>> {
    let ids: HashSet<&str> = batch
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    let mut failed = HashSet::new();
    for f in &response.batch_item_failures {
        if f.item_identifier.is_empty() || !ids.contains(f.item_identifier.as_str()) {
            return None;
        }
        failed.insert(f.item_identifier.clone());
    }
    Some(failed)
}

/// Runs one poller until shutdown.
pub async fn poll(
    client: aws_sdk_sqs::Client,
    source: Source,
    settings: RunnerSettings,
    mut stop: Shutdown,
) {
    let queue_arn = match client
        .get_queue_attributes()
        .queue_url(&source.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
    {
        Ok(out) => out
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap_or_default(),
        Err(e) => {
            warn!(function = %source.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "queue ARN unknown");
            String::new()
        }
    };
    loop {
        let receive = client
            .receive_message()
            .queue_url(&source.queue_url)
            .max_number_of_messages(settings.batch_size)
            .wait_time_seconds(settings.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let out = tokio::select! {
            () = shutdown::wait(&mut stop) => break,
            r = receive => r,
        };
        let messages = match out {
            Ok(o) => o.messages.unwrap_or_default(),
            Err(e) => {
                warn!(function = %source.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed; retrying");
                tokio::select! {
                    () = shutdown::wait(&mut stop) => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| kit::batch::record_of(m, &queue_arn, &settings.region))
            .collect();
        let size = event.records.len();
        let records = event.records.clone();
        // The batch in hand is finished even when a shutdown arrives meanwhile.
        let result = tokio::time::timeout(settings.function_timeout, (source.handler)(event)).await;
        let failed = match result {
            Ok(Ok(response)) => failed_ids(&records, &response),
            Ok(Err(e)) => {
                error!(function = %source.name, error = %e, size, "invocation failed: the whole batch returns to the queue");
                None
            }
            Err(_) => {
                error!(function = %source.name, size, "invocation timed out: the whole batch returns to the queue");
                None
            }
        };
        let Some(failed) = failed else { continue };
        let entries: Vec<DeleteMessageBatchRequestEntry> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r.receipt_handle.clone().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        info!(function = %source.name, size, failed = failed.len(), "batch done");
        if entries.is_empty() {
            continue;
        }
        match client
            .delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for f in out.failed() {
                    warn!(function = %source.name, entry = f.id(), code = f.code(), "delete failed: the record will be redelivered");
                }
            }
            Err(e) => {
                warn!(function = %source.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed: the batch will be redelivered");
            }
        }
    }
    info!(function = %source.name, "poller stopped");
}

/// Runs every source with `settings.pollers` pollers each until shutdown.
pub async fn run(
    client: aws_sdk_sqs::Client,
    sources: Vec<Source>,
    settings: RunnerSettings,
    stop: Shutdown,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        info!(function = %source.name, queue = %source.queue_url, pollers = settings.pollers, "feeding");
        for _ in 0..settings.pollers.max(1) {
            tasks.spawn(poll(
                client.clone(),
                source.clone(),
                settings.clone(),
                stop.clone(),
            ));
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::BatchItemFailure;

    fn msg(id: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m
    }

    fn response(ids: &[&str]) -> SqsBatchResponse {
        let mut r = SqsBatchResponse::default();
        for id in ids {
            let mut f = BatchItemFailure::default();
            f.item_identifier = (*id).into();
            r.batch_item_failures.push(f);
        }
        r
    }

    #[test]
    fn only_the_reported_records_fail() {
        let batch = [msg("a"), msg("b"), msg("c")];
        let failed = failed_ids(&batch, &response(&["b"]));
        assert_eq!(failed, Some(HashSet::from(["b".to_owned()])));
    }

    #[test]
    fn an_empty_or_unknown_identifier_fails_the_whole_batch() {
        let batch = [msg("a"), msg("b")];
        assert_eq!(failed_ids(&batch, &response(&[""])), None);
        assert_eq!(failed_ids(&batch, &response(&["zzz"])), None);
    }
}
