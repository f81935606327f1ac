//! The MQTT publisher over `rumqttc` (MQTT 5): one connection per container, reused across
//! invocations and re-established when broken.
//!
//! `AsyncClient::publish` only queues a request, and `Ok` does not mean the broker has the
//! message. So a publish here resolves only when its acknowledgement arrives: PUBACK for
//! QoS 1, PUBCOMP for QoS 2, the write for QoS 0. A PUBACK with a failure reason code (MQTT 5
//! reports "not authorized", for example) is a failure.
//!
//! # Layout
//! - `url`: [`parse_url`], `mqtt://` and `mqtts://` broker URLs.
//! - `settings`: [`MqttSettings`] and [`TlsSettings`], whose `Debug` hides the secrets;
//!   [`TlsSettings::build`] makes the rustls [`ClientTls`] (roots from `caPem` or the platform,
//!   the client certificate whenever given) or a [`TlsError`] naming the bad key.
//! - `tracker`: the PUBACK tracker, a pure state machine (queued, sent with a packet ID,
//!   acknowledged with a reason code, connection closed; time passed in) that matches
//!   acknowledgements to publishes.
//! - `connection`: [`MqttPublisher`], the connection lifecycle and the event loop that feeds
//!   the tracker.

mod connection;
mod settings;
mod tracker;
mod url;

use std::time::Duration;

pub use connection::MqttPublisher;
pub use settings::{ClientTls, MqttSettings, RootsFrom, TlsError, TlsSettings};
pub use url::{UrlError, parse_url};

/// User property carrying the message ID (§3: clients de-duplicate with it).
pub const MESSAGE_ID_PROPERTY: &str = "mqttMessageId";
/// User property carrying the timestamp in ms (§3: clients check timeliness with it).
pub const TIMESTAMP_PROPERTY: &str = "timestamp";

/// Why a publish did not get through. All are retryable except `Refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The connection broke (or could not be made) before the acknowledgement arrived.
    #[error("MQTT connection lost before the broker acknowledged: {0}")]
    ConnectionLost(String),
    /// No acknowledgement within the publish timeout; the connection is reset.
    #[error("no acknowledgement from the broker within {0:?}")]
    Timeout(Duration),
    /// The broker answered with a failure reason code (e.g. not authorized).
    #[error("the broker refused the publish: {0}")]
    Refused(String),
}

impl PublishError {
    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, Self::Refused(_))
    }
}
