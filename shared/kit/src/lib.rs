//! IO kit shared by the classroom rule functions: the thin shell around the pure `mapping`
//! crate.
//!
//! # Layout
//! - [`batch`]: the SQS batch driver. A batch in, `SqsBatchResponse` out with exactly the
//!   failed records; one span per record with its message ID; [`RecordError`] says whether a
//!   retry can help.
//! - [`sqs`]: the SQS sender, `SendMessageBatch` in chunks of 10 (and 256 KiB), each entry's
//!   failure mapped back to its message.
//! - [`mqtt`]: the MQTT 5 publisher over `rumqttc`: one connection per container, a publish
//!   counts only once acknowledged, publishes lost on a broken connection fail.
//! - [`config`]: configuration from environment variables, validated at start-up.
//! - [`http`]: JSON answers and path segments for the HTTP API functions.
//! - [`telemetry`]: JSON logs.
//! - [`aws`]: the SDK configuration (`AWS_ENDPOINT_URL` points it at moto locally).
//! - [`secrets`]: reads a Secrets Manager secret's string (MQTT credentials, signing keys).
//!
//! A function crate uses it like this: `main` calls [`telemetry::init`], builds its
//! `Function` from [`config::Env::process`] and the SDK config, then runs
//! `lambda_runtime::run(service_fn(|e| function.handle(e.payload)))`; `handle` calls
//! [`batch::process_batch`] with its per-batch logic.

pub mod aws;
pub mod batch;
pub mod config;
pub mod http;
pub mod mqtt;
pub mod secrets;
pub mod sqs;
pub mod telemetry;

pub use batch::{BatchError, Outcome, Record, RecordError, each_record, process_batch};
pub use config::{ConfigError, Env};
pub use mqtt::{MqttPublisher, MqttSettings, PublishError};
pub use secrets::{SecretError, secret_string};
pub use sqs::{OutgoingMessage, SendError, SqsSender};

/// Milliseconds since the Unix epoch, from the system clock: the one place the shell reads
/// the time it passes to the pure core.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
