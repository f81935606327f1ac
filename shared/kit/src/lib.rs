//! IO kit shared by the classroom rule functions: the thin shell around the pure `mapping`
//! crate.
//!
//! # Layout (and the cargo feature each part needs)
//! - [`batch`]: [`RecordError`] says whether a retry can help; [`Fanout`] maps each record to
//!   the items it sends, sends the good ones in groups and puts each result back on its
//!   record. With `lambda`: the SQS batch driver (`process_batch`), a batch in, an
//!   `SqsBatchResponse` out with exactly the failed records, one span per record.
//! - [`deadletter`]: the pure policy for failed records: a permanent failure goes to the
//!   DLQ at once with a `classroom.failure` attribute saying why, a retryable one comes back
//!   after a capped exponential backoff (the driver's `Settler` applies it, over SQS).
//! - [`metrics`]: metrics as CloudWatch Embedded Metric Format log lines (no API call).
//! - `sqs` (`sqs`): the SQS sender, `SendMessageBatch` in chunks of 10 (and 256 KiB), each
//!   entry's failure mapped back to its message.
//! - `mqtt` (`mqtt`): the MQTT 5 publisher over `rumqttc`: one connection per container, a
//!   publish counts only once acknowledged, publishes lost on a broken connection fail.
//! - [`config`]: configuration from environment variables, validated at start-up
//!   (`Env::mqtt_settings` with `mqtt`).
//! - `http` (`http`): JSON answers and path segments for the HTTP API functions.
//! - [`start`]: a start-up error as one sentence and exit status 1.
//! - [`telemetry`]: JSON logs.
//! - `aws` (`aws`, implied by `sqs` and `secrets`): the SDK configuration
//!   (`AWS_ENDPOINT_URL` points it at moto locally).
//! - `secrets` (`secrets`): reads a Secrets Manager secret's string (MQTT credentials,
//!   signing keys).
//!
//! No feature is on by default: each crate names what it uses
//! (`kit = { workspace = true, features = ["lambda", "sqs"] }`), so a binary links only that.
//!
//! A function crate uses it like this: `main` calls [`telemetry::init`], builds its
//! `Function` from [`config::Env::process`] and the SDK config (`start::or_exit` on error),
//! then runs `lambda_runtime::run(service_fn(|e| function.handle(e.payload)))`; `handle`
//! calls `batch::process_batch` with its per-batch logic.

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod config;
pub mod deadletter;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod start;
pub mod telemetry;

#[cfg(feature = "lambda")]
pub use batch::{BatchError, Record, Settler, each_record, process_batch};
pub use batch::{Fanout, Outcome, RecordError};
pub use config::{ConfigError, Env};
pub use metrics::Metrics;
#[cfg(feature = "mqtt")]
pub use mqtt::{
    ClientTls, MqttPublisher, MqttSettings, PublishError, RootsFrom, TlsError, TlsSettings,
};
#[cfg(feature = "secrets")]
pub use secrets::{SecretError, secret_string};
#[cfg(feature = "sqs")]
pub use sqs::{OutgoingMessage, SendError, SqsSender};

/// Milliseconds since the Unix epoch, from the system clock: the one place the shell reads
/// the time it passes to the pure core.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
