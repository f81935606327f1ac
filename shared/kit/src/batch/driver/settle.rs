//! The settler: applies [`crate::deadletter`]'s policy to a batch's failed records over SQS.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::SqsMessage;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use tracing::{info, warn};

use super::{Record, RecordError, from_lambda};
use crate::config::{ConfigError, Env};
use crate::deadletter::{self, Attributes, Failure, RetryPolicy, Settle};
use crate::sqs::SqsSender;

/// Longest visibility SQS accepts (12 hours).
const MAX_VISIBILITY_SECS: u32 = 43_200;

/// Settles failed records (built once per container): a permanent failure (or a retryable one
/// out of receives) is sent to the dead-letter queue with a [`Failure`] attribute and counts
/// as handled; a retryable one has its visibility shortened by the backoff of its receive
/// count and is reported failed. When the dead-letter send fails the record is retried
/// instead, so nothing is lost; when the visibility change fails the record simply comes back
/// after the queue's own timeout.
#[derive(Debug, Clone)]
pub struct Settler {
    sender: SqsSender,
    function: &'static str,
    dead_letter_url: Option<String>,
    policy: RetryPolicy,
    /// Source queue ARN → URL, looked up once.
    queue_urls: Arc<Mutex<HashMap<String, String>>>,
}

impl Settler {
    /// A settler for `function` (its name in the failure attribute and the logs) with the
    /// default [`RetryPolicy`] and no dead-letter queue.
    pub fn new(sqs: aws_sdk_sqs::Client, function: &'static str) -> Self {
        Self {
            sender: SqsSender::new(sqs),
            function,
            dead_letter_url: None,
            policy: RetryPolicy::default(),
            queue_urls: Arc::default(),
        }
    }

    /// The function it settles for.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Sends permanent failures to `queue_url`.
    pub fn dead_letter_to(mut self, queue_url: impl Into<String>) -> Self {
        self.dead_letter_url = Some(queue_url.into());
        self
    }

    /// With this retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The settler the environment describes: `DEAD_LETTER_QUEUE_URL` (the source queue's
    /// DLQ; unset leaves permanent failures to the redrive policy, with a warning),
    /// `RETRY_BACKOFF_BASE_SECONDS` (default 2), `RETRY_BACKOFF_MAX_SECONDS` (default 210,
    /// the source queue's visibility timeout) and `MAX_RECEIVE_COUNT` (the queue's
    /// `maxReceiveCount`; unset leaves exhausted retries to the redrive policy).
    pub fn from_env(
        env: &Env,
        sdk: &aws_config::SdkConfig,
        function: &'static str,
    ) -> Result<Self, ConfigError> {
        let defaults = RetryPolicy::default();
        let base_secs: u32 = env.parse_or("RETRY_BACKOFF_BASE_SECONDS", defaults.base_secs)?;
        let max_secs: u32 = env.parse_or("RETRY_BACKOFF_MAX_SECONDS", defaults.max_secs)?;
        let invalid = |var, problem: &str, value: u32| ConfigError::Invalid {
            var,
            problem: problem.to_owned(),
            value: value.to_string(),
        };
        if base_secs == 0 {
            return Err(invalid(
                "RETRY_BACKOFF_BASE_SECONDS",
                "must be at least 1 second",
                base_secs,
            ));
        }
        if max_secs < base_secs || max_secs > MAX_VISIBILITY_SECS {
            return Err(invalid(
                "RETRY_BACKOFF_MAX_SECONDS",
                "must be between RETRY_BACKOFF_BASE_SECONDS and 43200 (SQS's longest visibility); set it to the source queue's visibility timeout",
                max_secs,
            ));
        }
        let max_receives = match env.get("MAX_RECEIVE_COUNT") {
            None => None,
            Some(_) => Some(env.parse_or("MAX_RECEIVE_COUNT", 0u32)?)
                .filter(|&n| n >= 1)
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        "MAX_RECEIVE_COUNT",
                        "must be the source queue's maxReceiveCount (at least 1)",
                        0,
                    )
                })?,
        };
        let mut settler =
            Self::new(aws_sdk_sqs::Client::new(sdk), function).with_policy(RetryPolicy {
                base_secs,
                max_secs,
                max_receives,
            });
        match env.get("DEAD_LETTER_QUEUE_URL") {
            Some(url) => settler = settler.dead_letter_to(url),
            None => warn!(
                function,
                "DEAD_LETTER_QUEUE_URL is not set: permanent failures reach the DLQ only through the queue's redrive policy, without their reason; set it to the source queue's DLQ URL"
            ),
        }
        info!(function, policy = ?settler.policy, dead_letter_queue = settler.dead_letter_url.as_deref(), "settler configured");
        Ok(settler)
    }

    /// Settles the failed records; returns the message IDs to report failed.
    pub(crate) async fn settle<'e>(&self, failed: Vec<(Record<'e>, RecordError)>) -> Vec<&'e str> {
        let mut retry: Vec<(Record<'e>, u32)> = Vec::new();
        let mut letters = Vec::new();
        for (record, error) in failed {
            let receives = receive_count(record.message);
            match (self.policy.plan(&error, receives), &self.dead_letter_url) {
                (Settle::DeadLetter, Some(dlq)) => letters.push((record, error, dlq, receives)),
                (Settle::DeadLetter, None) => {
                    record.span.in_scope(|| {
                        warn!(error.kind = error.kind(), error.retryable = error.retryable(), error = %error,
                            "record failed; no DEAD_LETTER_QUEUE_URL, so it stays in the queue until the redrive policy moves it");
                    });
                    // Shortening the visibility brings it to the DLQ sooner.
                    retry.push((record, self.policy.base_secs));
                }
                (Settle::RetryIn(secs), _) => {
                    record.span.in_scope(|| {
                        warn!(error.kind = error.kind(), error.retryable = true, error = %error, retry_in_s = secs,
                            receive_count = receives, "record failed; retrying after backoff");
                    });
                    retry.push((record, secs));
                }
            }
        }
        let sends = letters
            .into_iter()
            .map(|(record, error, dlq, receives)| async move {
                let sent = self
                    .dead_letter(record.message, &error, dlq, receives)
                    .await;
                (record, error, sent)
            });
        for (record, error, sent) in futures::future::join_all(sends).await {
            match sent {
                Ok(dlq_message_id) => record.span.in_scope(|| {
                    warn!(error.kind = error.kind(), error.retryable = error.retryable(), error = %error,
                        dlq_message_id, "record failed; sent to the dead-letter queue with its reason");
                }),
                Err(e) => {
                    record.span.in_scope(|| {
                        warn!(error.kind = error.kind(), error = %error, dead_letter_error = %e,
                            "record failed and could not be dead-lettered; retrying it");
                    });
                    let secs = self.policy.delay(receive_count(record.message));
                    retry.push((record, secs));
                }
            }
        }
        self.shorten_visibility(&retry).await;
        retry.into_iter().map(|(r, _)| r.message_id).collect()
    }

    async fn dead_letter(
        &self,
        message: &SqsMessage,
        error: &RecordError,
        dlq: &str,
        receives: u32,
    ) -> Result<String, String> {
        let source = message.event_source_arn.as_deref().unwrap_or_default();
        let failure = Failure {
            first_failure_at: message
                .attributes
                .get("ApproximateFirstReceiveTimestamp")
                .and_then(|t| t.parse().ok()),
            receive_count: receives,
            dead_lettered_at: crate::now_ms(),
            ..Failure::of(error, self.function, source)
        };
        let originals: Attributes = message
            .message_attributes
            .iter()
            .map(|(k, v)| (k.clone(), from_lambda(v)))
            .collect();
        let attributes = deadletter::annotate(originals, &failure).map_err(|e| e.to_string())?;
        self.sender
            .send_one(
                dlq,
                message.body.as_deref().unwrap_or_default(),
                &attributes,
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Changes each record's visibility (one `ChangeMessageVisibilityBatch` per source queue
    /// and 10 records); a failure is logged and the record comes back after the queue's
    /// timeout instead.
    async fn shorten_visibility(&self, retry: &[(Record<'_>, u32)]) {
        let mut by_queue: BTreeMap<&str, Vec<(usize, &Record<'_>, u32)>> = BTreeMap::new();
        for (i, (record, secs)) in retry.iter().enumerate() {
            if let (Some(arn), Some(_)) = (
                record.message.event_source_arn.as_deref(),
                record.message.receipt_handle.as_deref(),
            ) {
                by_queue.entry(arn).or_default().push((i, record, *secs));
            }
        }
        for (arn, records) in by_queue {
            let url = match self.queue_url(arn).await {
                Ok(url) => url,
                Err(e) => {
                    warn!(queue = arn, error = %e, "source queue URL unknown; failed records come back after the queue's visibility timeout");
                    continue;
                }
            };
            for chunk in records.chunks(10) {
                let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                    .iter()
                    .filter_map(|(i, record, secs)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(
                                record.message.receipt_handle.clone().unwrap_or_default(),
                            )
                            .visibility_timeout(i32::try_from(*secs).unwrap_or(i32::MAX))
                            .build()
                            .ok()
                    })
                    .collect();
                let result = self
                    .sender
                    .client()
                    .change_message_visibility_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await;
                match result {
                    Ok(resp) => {
                        for f in resp.failed() {
                            warn!(
                                queue = arn,
                                entry = f.id(),
                                code = f.code(),
                                "visibility not changed; the record comes back after the queue's visibility timeout"
                            );
                        }
                    }
                    Err(e) => {
                        warn!(queue = arn, error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                        "ChangeMessageVisibilityBatch failed; failed records come back after the queue's visibility timeout")
                    }
                }
            }
        }
    }

    /// The URL of the queue with this ARN (`arn:aws:sqs:<region>:<account>:<name>`).
    async fn queue_url(&self, arn: &str) -> Result<String, String> {
        if let Some(url) = self
            .queue_urls
            .lock()
            .ok()
            .and_then(|m| m.get(arn).cloned())
        {
            return Ok(url);
        }
        let mut parts = arn.split(':');
        let (Some("arn"), Some(_), Some("sqs"), Some(_), Some(account), Some(name), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(format!("{arn} is not an SQS queue ARN"));
        };
        let url = self
            .sender
            .client()
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        if let Ok(mut m) = self.queue_urls.lock() {
            m.insert(arn.to_owned(), url.clone());
        }
        Ok(url)
    }
}

/// `ApproximateReceiveCount`, 1 when absent.
fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}
