//! The §4.1 uplink record (broker rule -> uplink queue) and its mapping to the §4.2 backend
//! message (outflow -> backend queue); and the other way, [`Origin::decode`]: the §4.2
//! attributes a rule function reads back from a backend message.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::config::{Routes, RulesConfig};
use crate::error::MappingError;
use crate::names::ClientId;
use crate::topic::{Parent, SubTopic, Topic};

/// The §4.1 uplink record, as the AWS IoT rule
/// `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId,
/// timestamp() AS timestamp FROM 'roomSend/#'` writes it. The local emulation writes the same
/// shape, plus `qos` (which the IoT rule SQL cannot see).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UplinkRecord {
    /// The full MQTT topic the client published to.
    pub topic: String,
    /// The publisher's client ID, from the broker.
    pub client_id: String,
    /// Broker receive time, ms since the epoch.
    pub timestamp: u64,
    /// The MQTT payload, base64.
    pub payload: String,
    /// QoS of the publish, when the broker rule knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<u8>,
}

impl UplinkRecord {
    /// Parses a record from an SQS body.
    pub fn from_json(body: &str) -> Result<Self, MappingError> {
        serde_json::from_str(body).map_err(|e| MappingError::from_json(&e))
    }
}

/// QoS assumed when the uplink record does not carry one: AWS IoT's rule SQL cannot read the
/// QoS of a message, and classroom clients publish at QoS 1 (§3).
pub const DEFAULT_UPLINK_QOS: u8 = 1;

/// The SQS message attribute keys of §4.2 (the seeds' MQTT -> RocketMQ property keys).
pub mod keys {
    /// First topic level, e.g. `roomSend`.
    pub const PARENT: &str = "mqttParentTopic";
    /// The rest of the topic with its leading slash, e.g. `/message`.
    pub const SECOND: &str = "mqttSecondTopic";
    /// The publisher, from the broker.
    pub const CLIENT_ID: &str = "clientId";
    /// 0, 1 or 2.
    pub const QOS: &str = "qoslevel";
    /// Unique ID, stable across redeliveries.
    pub const MESSAGE_ID: &str = "mqttMessageId";
    /// Broker receive time, ms.
    pub const TIMESTAMP: &str = "timestamp";
    /// Second-level name (`message`, `command`).
    pub const TAG: &str = "tag";
    /// Present (`base64`) only when the body is a base64-encoded binary payload.
    pub const ENCODING: &str = "encoding";
    /// Present only on a refusal ([`refusal`](super::refusal)): the error kind of the publish
    /// the rule could not carry (`payload_too_large`, `invalid_topic`, ...).
    pub const REFUSED: &str = "refused";
}

/// How a body carries its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The payload is text that SQS can carry as it is.
    Text,
    /// The payload is binary (or holds characters SQS refuses) and the body is its base64.
    Base64,
}

/// The §4.2 backend message: a body plus exactly the attribute keys of §4.2
/// (and `encoding` for a binary payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendMessage {
    /// The MQTT payload unchanged (text) or its base64 (binary).
    pub body: String,
    /// How the body carries the payload.
    pub encoding: Encoding,
    /// `mqttParentTopic`.
    pub parent_topic: String,
    /// `mqttSecondTopic`.
    pub second_topic: String,
    /// `clientId`.
    pub client_id: ClientId,
    /// `qoslevel`.
    pub qos: u8,
    /// `mqttMessageId`.
    pub message_id: String,
    /// `timestamp`.
    pub timestamp: u64,
    /// `tag`.
    pub tag: String,
}

impl BackendMessage {
    /// The body and the SQS message attributes (key, string value) in §4.2 order, moved out.
    pub fn into_sqs(self) -> (String, Vec<(&'static str, String)>) {
        let mut attrs = Vec::with_capacity(8);
        attrs.push((keys::PARENT, self.parent_topic));
        attrs.push((keys::SECOND, self.second_topic));
        attrs.push((keys::CLIENT_ID, String::from(self.client_id)));
        attrs.push((keys::QOS, self.qos.to_string()));
        attrs.push((keys::MESSAGE_ID, self.message_id));
        attrs.push((keys::TIMESTAMP, self.timestamp.to_string()));
        attrs.push((keys::TAG, self.tag));
        if self.encoding == Encoding::Base64 {
            attrs.push((keys::ENCODING, "base64".to_owned()));
        }
        (self.body, attrs)
    }

    /// The SQS message attributes, key and string value, in §4.2 order.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        self.clone().into_sqs().1
    }
}

/// The `timestamp` attribute of a §4.2 / §4.3 message (ms since the epoch, surrounding
/// blanks ignored), or `now_ms` when it is absent; anything else is refused.
pub(crate) fn timestamp_or(value: Option<&str>, now_ms: u64) -> Result<u64, MappingError> {
    match value {
        None => Ok(now_ms),
        Some(t) => t
            .trim()
            .parse()
            .map_err(|_| MappingError::InvalidAttribute {
                name: keys::TIMESTAMP,
                reason: format!("{t:?} is not a time in ms"),
            }),
    }
}

/// Where a backend message comes from: the §4.2 attributes a rule function reads back from
/// it ([`BackendMessage::into_sqs`] writes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// `clientId`: the broker-verified sender, never a field of the body.
    pub sender: ClientId,
    /// `mqttSecondTopic`, e.g. `/message` or `/command`.
    pub sub: SubTopic,
    /// `mqttMessageId`, stable across redeliveries (notice IDs derive from it); the queue's
    /// own message ID when the attribute is absent.
    pub message_id: String,
    /// `timestamp`: broker receive time, ms; the batch's `now` when the attribute is absent.
    pub ts: u64,
}

impl Origin {
    /// Reads the §4.2 attributes of a backend message. `attr` looks a message attribute up by
    /// key (its string value); `queue_message_id` stands in for an absent `mqttMessageId`,
    /// `now_ms` (read once per batch by the caller) for an absent `timestamp`.
    ///
    /// Fails (a permanent error: the record is not a §4.2 message) without `clientId` or
    /// `mqttSecondTopic`, with an invalid one, with a `timestamp` that is not milliseconds, or
    /// with an `mqttParentTopic` that is not an uplink parent of `rules` (an absent parent is
    /// accepted: the queue is the uplink's).
    pub fn decode<'m>(
        attr: impl Fn(&str) -> Option<&'m str>,
        queue_message_id: &str,
        now_ms: u64,
        rules: &RulesConfig,
    ) -> Result<Self, MappingError> {
        if let Some(parent) = attr(keys::PARENT) {
            let parent = Parent::parse(parent)?;
            if !rules.is_uplink(&parent) {
                return Err(MappingError::NotUplink {
                    parent: parent.to_string(),
                });
            }
        }
        let sender = ClientId::parse(
            attr(keys::CLIENT_ID).ok_or(MappingError::MissingAttribute(keys::CLIENT_ID))?,
        )
        .map_err(MappingError::ClientId)?;
        let sub = SubTopic::parse(
            attr(keys::SECOND).ok_or(MappingError::MissingAttribute(keys::SECOND))?,
        )?;
        let ts = timestamp_or(attr(keys::TIMESTAMP), now_ms)?;
        let message_id = attr(keys::MESSAGE_ID)
            .unwrap_or(queue_message_id)
            .to_owned();
        Ok(Self {
            sender,
            sub,
            message_id,
            ts,
        })
    }
}

/// Whether SQS accepts `c` in a message body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
/// #x10000-#x10FFFF); Rust `char`s are never surrogates.
fn sqs_body_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// Decodes a base64 payload and checks its size against the limit.
pub fn decode_payload(b64: &str, max: usize) -> Result<Vec<u8>, MappingError> {
    // Reject before decoding when even the smallest decoding of the text is over the limit.
    if b64.len() / 4 * 3 > max + 3 {
        return Err(MappingError::PayloadTooLarge {
            size: b64.len() / 4 * 3,
            max,
        });
    }
    let bytes = BASE64
        .decode(b64)
        .map_err(|e| MappingError::Base64(e.to_string()))?;
    check_payload(&bytes, max)?;
    Ok(bytes)
}

/// Checks a payload against the limit and refuses an empty one.
pub fn check_payload(bytes: &[u8], max: usize) -> Result<(), MappingError> {
    if bytes.is_empty() {
        return Err(MappingError::EmptyPayload);
    }
    if bytes.len() > max {
        return Err(MappingError::PayloadTooLarge {
            size: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// Turns a payload into an SQS body: as it is when it is text SQS can carry, base64 otherwise.
pub fn payload_to_body(bytes: Vec<u8>) -> (String, Encoding) {
    match String::from_utf8(bytes) {
        Ok(text) if text.chars().all(sqs_body_char) => (text, Encoding::Text),
        Ok(text) => (BASE64.encode(text.as_bytes()), Encoding::Base64),
        Err(e) => (BASE64.encode(e.as_bytes()), Encoding::Base64),
    }
}

/// An uplink record mapped to its backend message and the queue it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed<'r> {
    /// The backend queue (from the routes).
    pub queue: &'r str,
    /// The message.
    pub message: BackendMessage,
}

/// §4.1 -> §4.2: validates an uplink record and maps it to its backend message and queue.
///
/// `message_id` is the `mqttMessageId` to use; the caller passes an ID that is stable across
/// redeliveries (the uplink queue's SQS message ID).
pub fn uplink_to_backend<'r>(
    record: &UplinkRecord,
    message_id: &str,
    rules: &RulesConfig,
    routes: &'r Routes,
) -> Result<Routed<'r>, MappingError> {
    let topic = Topic::parse(&record.topic, rules.limits.topic_max_chars)?;
    let client_id = ClientId::parse(&record.client_id).map_err(MappingError::ClientId)?;
    let queue = routes
        .queue_for(topic.parent())
        .filter(|_| rules.is_uplink(topic.parent()))
        .ok_or_else(|| MappingError::NotUplink {
            parent: topic.parent().to_string(),
        })?;
    let qos = match record.qos {
        None => DEFAULT_UPLINK_QOS,
        Some(q @ 0..=2) => q,
        Some(q) => {
            return Err(MappingError::InvalidRecord(format!(
                "qos must be 0, 1 or 2, not {q}"
            )));
        }
    };
    let payload = decode_payload(&record.payload, rules.limits.payload_max_bytes)?;
    let (body, encoding) = payload_to_body(payload);
    let tag = topic.sub().first_level().to_owned();
    let (parent, sub) = topic.into_parts();
    Ok(Routed {
        queue,
        message: BackendMessage {
            body,
            encoding,
            parent_topic: parent.into(),
            second_topic: sub.into(),
            tag,
            client_id,
            qos,
            message_id: message_id.to_owned(),
            timestamp: record.timestamp,
        },
    })
}

/// A refusal: the §4.2 message that tells the route's backend that a publish of one of its
/// clients could not be carried ([`refusal`]), and the error kind for [`keys::REFUSED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused<'r> {
    /// The message to the route's queue: body `{"refused":<kind>,"reason":<text>}`, the
    /// sender's `clientId`, `mqttParentTopic`, `mqttSecondTopic` (the publish's sub-topic when
    /// it is a valid one, else `/refused`), `tag` `refused`.
    pub routed: Routed<'r>,
    /// The error kind ([`MappingError::kind`]).
    pub kind: &'static str,
}

/// Why the outflow answers a bad publish instead of only dead-lettering it: the broker took
/// the publish from a known client (its ID comes from the broker, in the record), and only
/// the route's backend knows what its clients should be told. The rule stays generic (it knows
/// nothing of classrooms): like an IoT rule's error action, it reports the refusal, to the
/// backend that would have received the publish, and the backend decides (the classroom's
/// moderation answers with a `rejected` notice).
///
/// `None` (dead-letter it) unless the failure is permanent and the record still names a valid
/// client and a routed uplink parent: a record that is not even JSON, or comes from nowhere,
/// has no one to tell.
pub fn refusal<'r>(
    body: &str,
    error: &MappingError,
    message_id: &str,
    rules: &RulesConfig,
    routes: &'r Routes,
) -> Option<Refused<'r>> {
    if error.retryable() || matches!(error, MappingError::NotUplink { .. }) {
        return None;
    }
    let record = UplinkRecord::from_json(body).ok()?;
    let client_id = ClientId::parse(&record.client_id).ok()?;
    let parent = Parent::parse(record.topic.split('/').next()?).ok()?;
    if !rules.is_uplink(&parent) {
        return None;
    }
    let queue = routes.queue_for(&parent)?;
    let second_topic = Topic::parse(&record.topic, rules.limits.topic_max_chars)
        .map(|t| t.sub().to_string())
        .unwrap_or_else(|_| "/refused".to_owned());
    let kind = error.kind();
    let body = serde_json::json!({ "refused": kind, "reason": error.to_string() }).to_string();
    Some(Refused {
        routed: Routed {
            queue,
            message: BackendMessage {
                body,
                encoding: Encoding::Text,
                parent_topic: parent.to_string(),
                second_topic,
                client_id,
                qos: record.qos.filter(|q| *q <= 2).unwrap_or(DEFAULT_UPLINK_QOS),
                message_id: message_id.to_owned(),
                timestamp: record.timestamp,
                tag: "refused".to_owned(),
            },
        },
        kind,
    })
}

/// The outflow's whole mapping of one SQS body: parse the §4.1 record, validate it, and map it
/// to its §4.2 message and queue.
pub fn map_uplink_body<'r>(
    body: &str,
    message_id: &str,
    rules: &RulesConfig,
    routes: &'r Routes,
) -> Result<Routed<'r>, MappingError> {
    uplink_to_backend(&UplinkRecord::from_json(body)?, message_id, rules, routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::Parent;

    fn rules() -> RulesConfig {
        RulesConfig::new(
            vec![Parent::parse("roomSend").unwrap()],
            vec![Parent::parse("room").unwrap()],
            crate::config::Limits::default(),
        )
        .unwrap()
    }

    fn backend() -> BackendMessage {
        BackendMessage {
            body: "{}".to_owned(),
            encoding: Encoding::Text,
            parent_topic: "roomSend".to_owned(),
            second_topic: "/command".to_owned(),
            client_id: ClientId::parse("GID_teacher@@@001").unwrap(),
            qos: 1,
            message_id: "m-1".to_owned(),
            timestamp: 1_732_240_000_000,
            tag: "command".to_owned(),
        }
    }

    fn decode(attrs: &[(&'static str, String)], now_ms: u64) -> Result<Origin, MappingError> {
        let attr = |key: &str| {
            attrs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        };
        Origin::decode(attr, "sqs-1", now_ms, &rules())
    }

    #[test]
    fn decode_reads_back_what_the_encoder_writes() {
        let origin = decode(&backend().attributes(), 7).unwrap();
        assert_eq!(
            origin,
            Origin {
                sender: ClientId::parse("GID_teacher@@@001").unwrap(),
                sub: SubTopic::parse("/command").unwrap(),
                message_id: "m-1".to_owned(),
                ts: 1_732_240_000_000,
            }
        );
        assert_eq!(origin.sub.first_level(), "command");
    }

    #[test]
    fn an_absent_id_or_time_falls_back_and_an_absent_parent_is_accepted() {
        let attrs: Vec<_> = backend()
            .attributes()
            .into_iter()
            .filter(|(k, _)| ![keys::MESSAGE_ID, keys::TIMESTAMP, keys::PARENT].contains(k))
            .collect();
        let origin = decode(&attrs, 42).unwrap();
        assert_eq!((origin.message_id.as_str(), origin.ts), ("sqs-1", 42));
    }

    #[test]
    fn a_record_that_is_not_a_backend_message_is_a_typed_error() {
        let without = |key: &str| -> Vec<_> {
            backend()
                .attributes()
                .into_iter()
                .filter(|(k, _)| *k != key)
                .collect()
        };
        let with = |key: &'static str, value: &str| -> Vec<_> {
            let mut attrs = without(key);
            attrs.push((key, value.to_owned()));
            attrs
        };
        assert_eq!(
            decode(&without(keys::CLIENT_ID), 0),
            Err(MappingError::MissingAttribute(keys::CLIENT_ID))
        );
        assert_eq!(
            decode(&without(keys::SECOND), 0),
            Err(MappingError::MissingAttribute(keys::SECOND))
        );
        assert!(matches!(
            decode(&with(keys::CLIENT_ID, "nobody"), 0),
            Err(MappingError::ClientId(_))
        ));
        assert!(matches!(
            decode(&with(keys::TIMESTAMP, "soon"), 0),
            Err(MappingError::InvalidAttribute {
                name: keys::TIMESTAMP,
                ..
            })
        ));
        assert!(matches!(
            decode(&with(keys::PARENT, "room"), 0),
            Err(MappingError::NotUplink { .. })
        ));
        assert!(matches!(
            decode(&with(keys::SECOND, "/message//x"), 0),
            Err(MappingError::Topic(_))
        ));
    }

    fn record(topic: &str, client: &str, payload: &[u8]) -> String {
        serde_json::json!({
            "topic": topic, "clientId": client, "timestamp": 7, "qos": 1,
            "payload": BASE64.encode(payload),
        })
        .to_string()
    }

    fn refused_of(body: &str) -> Option<(String, String, &'static str)> {
        let rules = rules();
        let routes = Routes::parse("roomSend=https://q/backend", &rules).unwrap();
        let error = map_uplink_body(body, "m1", &rules, &routes).unwrap_err();
        refusal(body, &error, "m1", &rules, &routes).map(|r| {
            assert_eq!(r.routed.queue, "https://q/backend");
            assert_eq!(r.routed.message.tag, "refused");
            let body: serde_json::Value = serde_json::from_str(&r.routed.message.body).unwrap();
            assert_eq!(body["refused"], r.kind);
            (
                String::from(r.routed.message.client_id),
                r.routed.message.second_topic,
                r.kind,
            )
        })
    }

    #[test]
    fn a_bad_publish_of_a_known_client_is_refused_to_its_route() {
        let big = vec![b'x'; crate::config::Limits::default().payload_max_bytes + 1];
        assert_eq!(
            refused_of(&record("roomSend/message", "GID_student@@@001", &big)),
            Some((
                "GID_student@@@001".into(),
                "/message".into(),
                "payload_too_large"
            ))
        );
        assert_eq!(
            refused_of(&record("roomSend/message/12+3", "GID_student@@@001", b"hi")),
            Some((
                "GID_student@@@001".into(),
                "/refused".into(),
                "invalid_topic"
            ))
        );
    }

    #[test]
    fn a_record_with_no_one_to_tell_is_not_refused_but_dead_lettered() {
        // Not JSON; a client ID the broker would never give; a parent with no route.
        assert_eq!(refused_of("not json"), None);
        assert_eq!(
            refused_of(&record("roomSend/message/+", "nobody", b"hi")),
            None
        );
        assert_eq!(
            refused_of(&record("elsewhere/message", "GID_student@@@001", b"hi")),
            None
        );
        assert_eq!(
            refused_of(&record("elsewhere/+", "GID_student@@@001", b"hi")),
            None
        );
    }
}
