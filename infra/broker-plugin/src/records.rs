//! Pure builders for what the plugin republishes: the §4.1 uplink record and the AWS IoT
//! lifecycle events of §4.4. No FFI, no clock: times and IDs are arguments, so they are
//! unit-tested here and the FFI layer only gathers the inputs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

/// The §4.1 record body for one publish, as the AWS IoT rule
/// `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId,
/// timestamp() AS timestamp FROM 'roomSend/#'` writes it, plus `qos`.
pub fn uplink_record(
    topic: &str,
    client_id: &str,
    timestamp_ms: u64,
    payload: &[u8],
    qos: u8,
) -> String {
    json!({
        "topic": topic,
        "clientId": client_id,
        "timestamp": timestamp_ms,
        "payload": BASE64.encode(payload),
        "qos": qos,
    })
    .to_string()
}

/// Why a connection ended, as far as Mosquitto 2.0.11 lets a plugin know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectCause {
    /// A newer connection with the same client ID took this one over (detected by the plugin:
    /// it saw the newer CONNECT while this session was still live).
    Takeover,
    /// The plugin disconnected it because its token expired (IoT's custom authorizer ends such
    /// a connection after `disconnectAfterInSeconds`: `CUSTOMAUTH_TTL_EXPIRATION`).
    TokenExpired,
    /// The plugin disconnected it because its token or client was revoked (IoT:
    /// `SERVER_INITIATED_DISCONNECT`, the server ending a connection for operational reasons).
    Revoked,
    /// The broker stopped (SIGTERM) or died (kill -9) while the session was live: published by
    /// the next run of the broker ([`crate::live`]). IoT: `SERVER_INITIATED_DISCONNECT`, as
    /// for a connection IoT Core ends because of its own maintenance.
    BrokerRestart,
    /// Anything else: a clean DISCONNECT, a killed socket or a keep-alive expiry. Mosquitto
    /// 2.0.11 passes the reason `-1` to every disconnect callback, so these cannot be told
    /// apart from a plugin.
    Unknown,
}

impl DisconnectCause {
    /// The AWS IoT `disconnectReason` string.
    pub fn iot_reason(self) -> &'static str {
        match self {
            Self::Takeover => "DUPLICATE_CLIENTID",
            Self::TokenExpired => "CUSTOMAUTH_TTL_EXPIRATION",
            Self::Revoked | Self::BrokerRestart => "SERVER_INITIATED_DISCONNECT",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// One connection as the plugin tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The client ID the broker holds for this connection.
    pub client_id: String,
    /// A fresh UUID per connection: IoT's `sessionIdentifier`, the seeds' `channelId`.
    pub session_id: String,
    /// The peer address, when the broker knows it.
    pub ip_address: Option<String>,
    /// The MQTT username, if the client sent one (IoT's `principalIdentifier`; classroom
    /// clients send their client ID, and the plugin records only CONNECTs it accepted, which
    /// all carry one: the `anonymous` fallback below never reaches a lifecycle event).
    pub username: Option<String>,
}

/// The client ID as one topic level: `/`, `+` and `#` (which MQTT allows in a client ID but
/// not in a published topic level) become `_`. The body keeps the exact client ID.
fn topic_level(client_id: &str) -> String {
    client_id
        .chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Topic and body of an AWS IoT `$aws/events/presence/connected/<clientId>` event.
pub fn connected_event(session: &Session, timestamp_ms: u64, version: u64) -> (String, String) {
    let body = json!({
        "clientId": session.client_id,
        "timestamp": timestamp_ms,
        "eventType": "connected",
        "sessionIdentifier": session.session_id,
        "principalIdentifier": session.username.as_deref().unwrap_or("anonymous"),
        "versionNumber": version,
        "ipAddress": session.ip_address,
    });
    (
        format!(
            "$aws/events/presence/connected/{}",
            topic_level(&session.client_id)
        ),
        body.to_string(),
    )
}

/// Topic and body of an AWS IoT `$aws/events/presence/disconnected/<clientId>` event.
pub fn disconnected_event(
    session: &Session,
    timestamp_ms: u64,
    version: u64,
    cause: DisconnectCause,
) -> (String, String) {
    let body = json!({
        "clientId": session.client_id,
        "timestamp": timestamp_ms,
        "eventType": "disconnected",
        "sessionIdentifier": session.session_id,
        "principalIdentifier": session.username.as_deref().unwrap_or("anonymous"),
        "versionNumber": version,
        "ipAddress": session.ip_address,
        // 2.0.11 cannot tell a clean DISCONNECT from a lost connection (see DisconnectCause).
        "clientInitiatedDisconnect": false,
        "disconnectReason": cause.iot_reason(),
    });
    (
        format!(
            "$aws/events/presence/disconnected/{}",
            topic_level(&session.client_id)
        ),
        body.to_string(),
    )
}

/// Whether a subscription to `filter` could receive a `disconnected` lifecycle event: with
/// `single_topic` (`plugin_opt_presence_topic`), whether it matches that topic; otherwise
/// whether it matches `$aws/events/presence/disconnected/<some client ID>` (`+` and `#`
/// wildcards; any literal client ID level counts).
pub fn may_receive_disconnects(filter: &str, single_topic: Option<&str>) -> bool {
    let topic: Vec<&str> = match single_topic {
        Some(t) => t.split('/').collect(),
        None => vec!["$aws", "events", "presence", "disconnected", ""],
    };
    let any_last = single_topic.is_none();
    let filter: Vec<&str> = filter.split('/').collect();
    for (i, level) in filter.iter().enumerate() {
        match (*level, topic.get(i)) {
            // `#` also matches the parent level itself, but never a `$` topic from the first
            // level (MQTT-4.7.2-1); the topics here all start with `$`.
            ("#", _) => return i > 0,
            (_, None) => return false,
            ("+", Some(_)) => {
                if i == 0 {
                    return false;
                }
            }
            (_, Some(_)) if any_last && i == topic.len() - 1 => {}
            (l, Some(t)) if l == *t => {}
            _ => return false,
        }
    }
    filter.len() == topic.len()
}

/// True when `topic` is under one of the uplink parents (`roomSend` matches `roomSend/...`).
pub fn is_uplink(topic: &str, parents: &[String]) -> bool {
    parents.iter().any(|p| {
        topic.len() > p.len() + 1
            && topic.starts_with(p.as_str())
            && topic.as_bytes()[p.len()] == b'/'
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or(Value::Null)
    }

    #[test]
    fn uplink_record_has_the_iot_rule_fields_and_base64_payload() {
        let v = parse(&uplink_record(
            "roomSend/message",
            "GID_student@@@001",
            1700,
            b"{\"msg\":1}",
            1,
        ));
        assert_eq!(v["topic"], "roomSend/message");
        assert_eq!(v["clientId"], "GID_student@@@001");
        assert_eq!(v["timestamp"], 1700);
        assert_eq!(v["payload"], "eyJtc2ciOjF9");
        assert_eq!(v["qos"], 1);
    }

    #[test]
    fn lifecycle_events_carry_the_session_identifier_and_topic() {
        let s = Session {
            client_id: "GID_student@@@002".into(),
            session_id: "abc".into(),
            ip_address: Some("127.0.0.1".into()),
            username: None,
        };
        let (t, b) = connected_event(&s, 5, 1);
        assert_eq!(t, "$aws/events/presence/connected/GID_student@@@002");
        let v = parse(&b);
        assert_eq!(v["eventType"], "connected");
        assert_eq!(v["sessionIdentifier"], "abc");
        assert_eq!(v["versionNumber"], 1);
        let (t, b) = disconnected_event(&s, 6, 2, DisconnectCause::Takeover);
        assert_eq!(t, "$aws/events/presence/disconnected/GID_student@@@002");
        let v = parse(&b);
        assert_eq!(v["disconnectReason"], "DUPLICATE_CLIENTID");
        assert_eq!(v["clientInitiatedDisconnect"], false);
    }

    #[test]
    fn a_connection_the_plugin_ends_says_why_as_aws_iot_would() {
        assert_eq!(
            DisconnectCause::TokenExpired.iot_reason(),
            "CUSTOMAUTH_TTL_EXPIRATION"
        );
        assert_eq!(
            DisconnectCause::Revoked.iot_reason(),
            "SERVER_INITIATED_DISCONNECT"
        );
        assert_eq!(DisconnectCause::Unknown.iot_reason(), "UNKNOWN");
    }

    #[test]
    fn a_client_id_with_topic_characters_stays_one_level_in_the_topic_and_exact_in_the_body() {
        let s = Session {
            client_id: "a/b+#".into(),
            session_id: "x".into(),
            ip_address: None,
            username: None,
        };
        let (t, b) = connected_event(&s, 1, 1);
        assert_eq!(t, "$aws/events/presence/connected/a_b__");
        assert_eq!(parse(&b)["clientId"], "a/b+#");
    }

    #[test]
    fn a_restart_ends_sessions_as_the_server_would() {
        assert_eq!(
            DisconnectCause::BrokerRestart.iot_reason(),
            "SERVER_INITIATED_DISCONNECT"
        );
    }

    #[test]
    fn filters_that_may_receive_disconnected_events_are_recognised() {
        for f in [
            "$aws/events/presence/#",
            "$aws/events/#",
            "$aws/#",
            "$aws/events/presence/disconnected/+",
            "$aws/events/presence/+/+",
            "$aws/events/presence/disconnected/GID_student@@@001",
            "$aws/+/presence/disconnected/#",
        ] {
            assert!(may_receive_disconnects(f, None), "{f}");
        }
        for f in [
            "#",
            "+/events/presence/disconnected/x",
            "$aws/events/presence/connected/+",
            "$aws/events/presence",
            "$aws/events/presence/disconnected",
            "$aws/events/presence/disconnected/a/b",
            "$classroom/uplink",
        ] {
            assert!(!may_receive_disconnects(f, None), "{f}");
        }
        assert!(may_receive_disconnects(
            "$classroom/presence",
            Some("$classroom/presence")
        ));
        assert!(may_receive_disconnects(
            "$classroom/#",
            Some("$classroom/presence")
        ));
        assert!(!may_receive_disconnects(
            "$aws/events/presence/#",
            Some("$classroom/presence")
        ));
    }

    #[test]
    fn only_topics_under_an_uplink_parent_are_recorded() {
        let parents = vec!["roomSend".to_owned()];
        assert!(is_uplink("roomSend/message", &parents));
        assert!(!is_uplink("roomSend", &parents));
        assert!(!is_uplink("roomSend/", &parents));
        assert!(!is_uplink("roomSendX/message", &parents));
        assert!(!is_uplink("room/message/1", &parents));
    }
}
