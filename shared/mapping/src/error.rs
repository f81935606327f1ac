//! The typed error of a record that cannot be mapped. Every variant is permanent: retrying
//! the same record cannot fix it, so it belongs in the dead-letter queue with its reason.

use crate::names::NameError;
use crate::topic::TopicError;

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The body is not JSON at all.
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not the expected record (missing or mistyped field).
    #[error("record is invalid: {0}")]
    InvalidRecord(String),
    /// The payload is not valid base64.
    #[error("payload is not valid base64: {0}")]
    Base64(String),
    /// The payload is over the configured limit. It is never truncated.
    #[error("payload is {size} bytes, the limit is {max} bytes")]
    PayloadTooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is empty: an SQS message body cannot be empty.
    #[error("payload is empty; an SQS message body cannot be empty")]
    EmptyPayload,
    /// The topic is invalid.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The publisher's client ID is invalid.
    #[error("client ID is invalid: {0}")]
    ClientId(NameError),
    /// A record on a parent topic that has no uplink route.
    #[error("parent topic {parent:?} is not a configured uplink parent")]
    NotUplink {
        /// The parent topic.
        parent: String,
    },
    /// A downlink message aimed at an uplink parent (the loop guard of §2).
    #[error(
        "parent topic {parent:?} is an uplink parent; publishing there would make the backend consume its own output"
    )]
    UplinkParent {
        /// The parent topic.
        parent: String,
    },
    /// A downlink message aimed at a parent that is not configured for downlink.
    #[error("parent topic {parent:?} is not a configured downlink parent")]
    NotDownlink {
        /// The parent topic.
        parent: String,
    },
    /// A required message attribute is absent.
    #[error("required message attribute {0:?} is missing")]
    MissingAttribute(&'static str),
    /// A message attribute has a value that cannot be used.
    #[error("message attribute {name:?} is invalid: {reason}")]
    InvalidAttribute {
        /// The attribute key.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl MappingError {
    /// A short stable name for logs and metrics (`error.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidRecord(_) => "invalid_record",
            Self::Base64(_) => "invalid_base64",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::EmptyPayload => "empty_payload",
            Self::Topic(_) => "invalid_topic",
            Self::ClientId(_) => "invalid_client_id",
            Self::NotUplink { .. } => "not_uplink_parent",
            Self::UplinkParent { .. } => "uplink_parent_on_downlink",
            Self::NotDownlink { .. } => "not_downlink_parent",
            Self::MissingAttribute(_) => "missing_attribute",
            Self::InvalidAttribute { .. } => "invalid_attribute",
        }
    }

    /// Whether retrying the same record could succeed. Never: a mapping error is a property of
    /// the record itself. The record goes to the dead-letter queue after the redrive policy's
    /// receives, with this error logged on each attempt.
    pub fn retryable(&self) -> bool {
        false
    }

    /// Classifies a `serde_json` error: syntax errors are malformed JSON, the rest an invalid
    /// record.
    pub fn from_json(e: &serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => Self::InvalidRecord(e.to_string()),
            _ => Self::MalformedJson(e.to_string()),
        }
    }
}
