//! The §4.3 downlink message (any backend -> downlink queue -> inflow) and its mapping to an
//! MQTT publish at `parent + subtopic`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Serialize, Serializer};

use crate::config::RulesConfig;
use crate::error::MappingError;
use crate::names::ClientId;
use crate::outflow::{check_payload, keys};
use crate::topic::{Parent, SubTopic, Topic};

/// QoS a downlink message is published with when it names none (§4.3).
pub const DEFAULT_DOWNLINK_QOS: Qos = Qos::AtLeastOnce;

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Qos {
    /// 0
    AtMostOnce,
    /// 1: the broker acknowledges with PUBACK.
    AtLeastOnce,
    /// 2: the broker acknowledges with PUBREC/PUBCOMP.
    ExactlyOnce,
}

impl Qos {
    /// From 0, 1 or 2.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// 0, 1 or 2.
    pub fn level(self) -> u8 {
        match self {
            Self::AtMostOnce => 0,
            Self::AtLeastOnce => 1,
            Self::ExactlyOnce => 2,
        }
    }
}

/// A message attribute value as it arrives from SQS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// A `String` or `Number` attribute.
    Text(&'a str),
    /// A `Binary` attribute (never valid for the keys of §4.3).
    Binary,
}

/// A downlink message as received: body and attributes.
#[derive(Debug, Clone, Default)]
pub struct DownlinkMessage<'a> {
    /// The SQS body.
    pub body: &'a str,
    /// The SQS message attributes.
    pub attributes: BTreeMap<&'a str, AttrValue<'a>>,
}

impl<'a> DownlinkMessage<'a> {
    fn text(&self, name: &'static str) -> Result<Option<&'a str>, MappingError> {
        match self.attributes.get(name) {
            None => Ok(None),
            Some(AttrValue::Text(v)) => Ok(Some(v)),
            Some(AttrValue::Binary) => Err(MappingError::InvalidAttribute {
                name,
                reason: "must be a String or Number attribute, not Binary".to_owned(),
            }),
        }
    }
}

fn serialize_payload<S: Serializer>(payload: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(payload) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.serialize_str(&format!("base64:{}", BASE64.encode(payload))),
    }
}

/// An MQTT publish ready for the broker: topic, QoS, payload, and the message ID and timestamp
/// it carries (as MQTT 5 user properties `mqttMessageId` and `timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// `parent + subtopic`.
    #[serde(serialize_with = "crate::inflow::display")]
    pub topic: Topic,
    /// QoS from `qoslevel`.
    pub qos: Qos,
    /// The payload (the body, or its base64 decoding when `encoding` is `base64`).
    #[serde(serialize_with = "serialize_payload")]
    pub payload: Vec<u8>,
    /// From `mqttMessageId`, or the fallback ID.
    pub message_id: String,
    /// From `timestamp`, or the time the inflow handled it, ms.
    pub timestamp: u64,
    /// The target client when the sub-topic is `/p2p/<clientId>`.
    pub p2p_target: Option<ClientId>,
}

fn display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// §4.3 -> MQTT publish: validates a downlink message.
///
/// `fallback_id` is used when the message has no `mqttMessageId` (pass an ID that is stable
/// across redeliveries, such as the SQS message ID); `now_ms` when it has no `timestamp`.
pub fn downlink_to_publish(
    msg: &DownlinkMessage<'_>,
    fallback_id: &str,
    now_ms: u64,
    rules: &RulesConfig,
) -> Result<Publish, MappingError> {
    let sub = msg
        .text(keys::SECOND)?
        .ok_or(MappingError::MissingAttribute(keys::SECOND))?;
    let sub = SubTopic::parse(sub)?;
    let p2p_target = sub.check_conventions()?;
    let parent = match msg.text(keys::PARENT)? {
        None => rules.default_downlink().clone(),
        Some(p) => Parent::parse(p.trim())?,
    };
    if rules.is_uplink(&parent) {
        return Err(MappingError::UplinkParent {
            parent: parent.to_string(),
        });
    }
    if !rules.is_downlink(&parent) {
        return Err(MappingError::NotDownlink {
            parent: parent.to_string(),
        });
    }
    let topic = Topic::join(parent, sub, rules.limits.topic_max_chars)?;
    let qos = match msg.text(keys::QOS)? {
        None => DEFAULT_DOWNLINK_QOS,
        Some(q) => q
            .trim()
            .parse()
            .ok()
            .and_then(Qos::from_level)
            .ok_or_else(|| MappingError::InvalidAttribute {
                name: keys::QOS,
                reason: format!("{q:?} is not 0, 1 or 2"),
            })?,
    };
    let message_id = match msg.text(keys::MESSAGE_ID)? {
        None => fallback_id.to_owned(),
        Some(id) if id.trim().is_empty() => {
            return Err(MappingError::InvalidAttribute {
                name: keys::MESSAGE_ID,
                reason: "is empty".to_owned(),
            });
        }
        Some(id) => id.trim().to_owned(),
    };
    let timestamp = crate::outflow::timestamp_or(msg.text(keys::TIMESTAMP)?, now_ms)?;
    let max = rules.limits.payload_max_bytes;
    let payload = match msg.text(keys::ENCODING)? {
        None => msg.body.as_bytes().to_vec(),
        Some("base64") => crate::outflow::decode_payload(msg.body, max)?,
        Some(other) => {
            return Err(MappingError::InvalidAttribute {
                name: keys::ENCODING,
                reason: format!("{other:?} is not \"base64\""),
            });
        }
    };
    check_payload(&payload, max)?;
    Ok(Publish {
        topic,
        qos,
        payload,
        message_id,
        timestamp,
        p2p_target,
    })
}

/// A downlink record as a backend writes it to the downlink queue (§4.3): the body and the
/// attributes that [`DownlinkMessage`] reads back on the inflow side. The classroom functions
/// make theirs from a notice ([`crate::Notice::to_downlink`]): the encoder next to its decoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownlinkRecord {
    /// `mqttSecondTopic`.
    pub second_topic: SubTopic,
    /// `mqttMessageId`.
    pub message_id: String,
    /// `timestamp`, ms.
    pub timestamp: u64,
    /// The JSON body.
    pub body: String,
}

impl DownlinkRecord {
    /// The SQS message attributes (key, string value).
    pub fn attributes(&self) -> [(&'static str, String); 3] {
        [
            (keys::SECOND, self.second_topic.to_string()),
            (keys::MESSAGE_ID, self.message_id.clone()),
            (keys::TIMESTAMP, self.timestamp.to_string()),
        ]
    }
}
