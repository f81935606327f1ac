//! Client lifecycle events (§4.4): the seeds' `connect` / `disconnect` / `tcpclean` shape and
//! AWS IoT Core's `$aws/events/presence/{connected|disconnected}/{clientId}` shape, both
//! normalised to one [`LifecycleEvent`].
//!
//! Mapping of AWS IoT Core onto our kinds: IoT sends exactly one `disconnected` event when a
//! connection is really gone, whatever the cause, so it is a [`LifecycleKind::TcpClean`]
//! (offline). Its `disconnectReason` is kept as an [`OfflineReason`], so a takeover
//! (`DUPLICATE_CLIENTID`) is told apart from a clean client disconnect or a lost connection.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::MappingError;
use crate::names::ClientId;

/// Longest channel (TCP connection / IoT session) identifier we accept, in characters. It
/// becomes a DynamoDB sort key and part of notice IDs.
pub const CHANNEL_ID_MAX_CHARS: usize = 128;

/// Channel IDs starting with this are reserved for the store's own items (the per-client head
/// item that serialises writes), so an event cannot name one.
pub const RESERVED_CHANNEL_PREFIX: char = '#';

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleKind {
    /// The client connected on this channel.
    Connect,
    /// The client sent MQTT DISCONNECT on this channel (the TCP close may still follow).
    Disconnect,
    /// The TCP connection of this channel really closed (always sent; the offline signal).
    #[serde(rename = "tcpclean")]
    TcpClean,
}

impl LifecycleKind {
    /// Parses the seeds' event type / SQS `tag` (`connect`, `disconnect`, `tcpclean`), and
    /// also AWS IoT Core's `connected` / `disconnected`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connect" | "connected" => Some(Self::Connect),
            "disconnect" => Some(Self::Disconnect),
            "tcpclean" | "disconnected" => Some(Self::TcpClean),
            _ => None,
        }
    }

    /// The seeds' name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::TcpClean => "tcpclean",
        }
    }

    /// Whether this event ends its channel (disconnect or tcpclean).
    pub fn is_offline(self) -> bool {
        !matches!(self, Self::Connect)
    }
}

impl fmt::Display for LifecycleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a channel went offline, when the source says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum OfflineReason {
    /// The client disconnected on purpose (seeds: `disconnect`; IoT:
    /// `CLIENT_INITIATED_DISCONNECT` or `clientInitiatedDisconnect: true`).
    ClientInitiated,
    /// The network connection was lost (IoT `CONNECTION_LOST`).
    ConnectionLost,
    /// The client stopped sending keep-alives (IoT `MQTT_KEEP_ALIVE_TIMEOUT`).
    KeepAliveTimeout,
    /// Another connection with the same client ID took over (IoT `DUPLICATE_CLIENTID`).
    Takeover,
    /// Any other reason the source gave, verbatim (e.g. `SERVER_INITIATED_DISCONNECT`).
    Other(String),
}

impl OfflineReason {
    /// From an AWS IoT `disconnectReason`.
    pub fn from_iot(reason: &str) -> Self {
        match reason {
            "CLIENT_INITIATED_DISCONNECT" => Self::ClientInitiated,
            "CONNECTION_LOST" => Self::ConnectionLost,
            "MQTT_KEEP_ALIVE_TIMEOUT" => Self::KeepAliveTimeout,
            "DUPLICATE_CLIENTID" => Self::Takeover,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The stable name stored and logged.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            Self::ConnectionLost => "CONNECTION_LOST",
            Self::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Self::Takeover => "DUPLICATE_CLIENTID",
            Self::Other(s) => s,
        }
    }
}

impl From<OfflineReason> for String {
    fn from(r: OfflineReason) -> String {
        r.as_str().to_owned()
    }
}

impl From<String> for OfflineReason {
    fn from(s: String) -> Self {
        Self::from_iot(&s)
    }
}

/// One lifecycle event, whatever shape it came in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    /// The client whose connection changed.
    pub client_id: ClientId,
    /// What happened.
    pub kind: LifecycleKind,
    /// When, ms since the epoch (the broker's clock).
    pub time_ms: u64,
    /// The connection (seeds: `channelId`; IoT: `sessionIdentifier`).
    pub channel_id: String,
    /// The client's address, when known.
    pub client_ip: Option<String>,
    /// Why the channel went offline, when known (offline events only).
    pub reason: Option<OfflineReason>,
}

/// A number that may also come as a decimal string (`"time":"1212121212"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Millis {
    Number(u64),
    Text(String),
}

impl Millis {
    fn value(&self, field: &str) -> Result<u64, MappingError> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Text(s) => s.trim().parse().map_err(|_| {
                MappingError::InvalidRecord(format!("{field} must be milliseconds, not {s:?}"))
            }),
        }
    }
}

/// Both shapes' fields, all optional; which ones are present decides the shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    client_id: Option<String>,
    event_type: Option<String>,
    // seeds
    time: Option<Millis>,
    channel_id: Option<String>,
    client_ip: Option<String>,
    // AWS IoT Core
    timestamp: Option<Millis>,
    session_identifier: Option<String>,
    #[allow(dead_code)]
    version_number: Option<u64>,
    ip_address: Option<String>,
    client_initiated_disconnect: Option<bool>,
    disconnect_reason: Option<String>,
}

fn missing(field: &str) -> MappingError {
    MappingError::InvalidRecord(format!("missing field `{field}`"))
}

fn check_channel(channel: String) -> Result<String, MappingError> {
    let len = channel.chars().count();
    if channel.is_empty()
        || len > CHANNEL_ID_MAX_CHARS
        || channel.chars().any(char::is_control)
        || channel.starts_with(RESERVED_CHANNEL_PREFIX)
    {
        return Err(MappingError::InvalidRecord(format!(
            "channel ID {channel:?} must be 1 to {CHANNEL_ID_MAX_CHARS} printable characters, not starting with {RESERVED_CHANNEL_PREFIX:?}"
        )));
    }
    Ok(channel)
}

impl LifecycleEvent {
    /// Parses an SQS body in either shape. `tag` is the SQS `tag` message attribute, when
    /// present: it may carry the event type (seeds), and must agree with the body's when both
    /// are there.
    pub fn from_json(body: &str, tag: Option<&str>) -> Result<Self, MappingError> {
        let raw: RawEvent = serde_json::from_str(body).map_err(|e| MappingError::from_json(&e))?;
        let client = raw
            .client_id
            .as_deref()
            .ok_or_else(|| missing("clientId"))?;
        let client_id = ClientId::parse(client).map_err(MappingError::ClientId)?;
        let from_tag = match tag {
            None => None,
            Some(t) => {
                Some(
                    LifecycleKind::parse(t).ok_or_else(|| MappingError::InvalidAttribute {
                        name: "tag",
                        reason: format!("{t:?} is not connect, disconnect or tcpclean"),
                    })?,
                )
            }
        };
        let from_body = match raw.event_type.as_deref() {
            None => None,
            Some(t) => Some(LifecycleKind::parse(t).ok_or_else(|| {
                MappingError::InvalidRecord(format!(
                    "eventType {t:?} is not connect, disconnect, tcpclean, connected or disconnected"
                ))
            })?),
        };
        let kind = match (from_body, from_tag) {
            (Some(b), Some(t)) if b != t => {
                return Err(MappingError::InvalidAttribute {
                    name: "tag",
                    reason: format!("tag says {t} but the body's eventType says {b}"),
                });
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => return Err(missing("eventType")),
        };
        let iot = raw.session_identifier.is_some()
            || matches!(
                raw.event_type.as_deref(),
                Some("connected" | "disconnected")
            );
        if iot {
            let time_ms = raw
                .timestamp
                .as_ref()
                .ok_or_else(|| missing("timestamp"))?
                .value("timestamp")?;
            let channel_id = check_channel(
                raw.session_identifier
                    .ok_or_else(|| missing("sessionIdentifier"))?,
            )?;
            let reason = match kind {
                LifecycleKind::Connect => None,
                _ => match (
                    raw.disconnect_reason.as_deref(),
                    raw.client_initiated_disconnect,
                ) {
                    (Some(r), _) => Some(OfflineReason::from_iot(r)),
                    (None, Some(true)) => Some(OfflineReason::ClientInitiated),
                    (None, _) => None,
                },
            };
            Ok(Self {
                client_id,
                kind,
                time_ms,
                channel_id,
                client_ip: raw.ip_address,
                reason,
            })
        } else {
            let time_ms = raw
                .time
                .as_ref()
                .ok_or_else(|| missing("time"))?
                .value("time")?;
            let channel_id = check_channel(raw.channel_id.ok_or_else(|| missing("channelId"))?)?;
            let reason =
                (kind == LifecycleKind::Disconnect).then_some(OfflineReason::ClientInitiated);
            Ok(Self {
                client_id,
                kind,
                time_ms,
                channel_id,
                client_ip: raw.client_ip,
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_shape_parses_with_its_event_type() {
        let ev = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","time":1700000000000,"eventType":"connect","channelId":"2b9b1281046046faafe5e0b458e4abcd","clientIp":"192.168.1.2:13311"}"#,
            Some("connect"),
        )
        .unwrap();
        assert_eq!(ev.client_id.as_str(), "GID_student@@@002");
        assert_eq!(ev.kind, LifecycleKind::Connect);
        assert_eq!(ev.time_ms, 1_700_000_000_000);
        assert_eq!(ev.channel_id, "2b9b1281046046faafe5e0b458e4abcd");
        assert_eq!(ev.client_ip.as_deref(), Some("192.168.1.2:13311"));
        assert_eq!(ev.reason, None);
    }

    #[test]
    fn the_event_type_may_come_only_in_the_tag() {
        let ev = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","time":"5","channelId":"c1"}"#,
            Some("tcpclean"),
        )
        .unwrap();
        assert_eq!(ev.kind, LifecycleKind::TcpClean);
        assert_eq!(ev.time_ms, 5);
    }

    #[test]
    fn a_tag_that_contradicts_the_body_is_refused() {
        let err = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","time":5,"eventType":"connect","channelId":"c1"}"#,
            Some("tcpclean"),
        )
        .unwrap_err();
        assert!(
            matches!(err, MappingError::InvalidAttribute { name: "tag", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_seeds_disconnect_is_client_initiated() {
        let ev = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","time":5,"eventType":"disconnect","channelId":"c1"}"#,
            None,
        )
        .unwrap();
        assert_eq!(ev.kind, LifecycleKind::Disconnect);
        assert_eq!(ev.reason, Some(OfflineReason::ClientInitiated));
    }

    #[test]
    fn iot_connected_and_disconnected_map_onto_connect_and_tcpclean() {
        let on = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","timestamp":1700000000000,"eventType":"connected","sessionIdentifier":"00000000-0000-0000-0000-000000000001","principalIdentifier":"x","ipAddress":"192.0.2.1","versionNumber":0}"#,
            None,
        )
        .unwrap();
        assert_eq!(on.kind, LifecycleKind::Connect);
        assert_eq!(on.channel_id, "00000000-0000-0000-0000-000000000001");
        assert_eq!(on.client_ip.as_deref(), Some("192.0.2.1"));
        let off = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","timestamp":1700000005000,"eventType":"disconnected","sessionIdentifier":"00000000-0000-0000-0000-000000000001","clientInitiatedDisconnect":false,"disconnectReason":"DUPLICATE_CLIENTID","versionNumber":1}"#,
            None,
        )
        .unwrap();
        assert_eq!(off.kind, LifecycleKind::TcpClean);
        assert_eq!(off.reason, Some(OfflineReason::Takeover));
    }

    #[test]
    fn iot_client_initiated_flag_is_kept_without_a_reason() {
        let off = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@002","timestamp":1,"eventType":"disconnected","sessionIdentifier":"s","clientInitiatedDisconnect":true}"#,
            None,
        )
        .unwrap();
        assert_eq!(off.reason, Some(OfflineReason::ClientInitiated));
    }

    #[test]
    fn a_bad_client_id_is_an_error() {
        let err = LifecycleEvent::from_json(
            r#"{"clientId":"GID_student@@@0/2","time":5,"eventType":"connect","channelId":"c1"}"#,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, MappingError::ClientId(_)), "{err}");
    }

    #[test]
    fn missing_fields_and_bad_json_are_typed_errors() {
        assert!(matches!(
            LifecycleEvent::from_json("{", None),
            Err(MappingError::MalformedJson(_))
        ));
        for body in [
            r#"{"time":5,"eventType":"connect","channelId":"c1"}"#,
            r#"{"clientId":"GID_student@@@002","eventType":"connect","channelId":"c1"}"#,
            r#"{"clientId":"GID_student@@@002","time":5,"eventType":"connect"}"#,
            r#"{"clientId":"GID_student@@@002","time":5,"channelId":"c1"}"#,
            r#"{"clientId":"GID_student@@@002","time":5,"eventType":"reboot","channelId":"c1"}"#,
            r#"{"clientId":"GID_student@@@002","time":"soon","eventType":"connect","channelId":"c1"}"#,
            r#"{"clientId":"GID_student@@@002","time":5,"eventType":"connect","channelId":""}"#,
            r##"{"clientId":"GID_student@@@002","time":5,"eventType":"connect","channelId":"#head"}"##,
            r#"{"clientId":"GID_student@@@002","time":-5,"eventType":"connect","channelId":"c1"}"#,
            r#"[1]"#,
        ] {
            assert!(
                matches!(
                    LifecycleEvent::from_json(body, None),
                    Err(MappingError::InvalidRecord(_))
                ),
                "{body} was accepted or misclassified: {:?}",
                LifecycleEvent::from_json(body, None)
            );
        }
    }
}
