//! Dead letters that explain themselves, and retries that come back in seconds: the pure
//! policy the batch driver applies to each failed record (no IO, no clock).
//!
//! # What happens to a failed record
//! - **Permanent** ([`RecordError::Permanent`]: a retry cannot fix it) → [`Settle::DeadLetter`]:
//!   the function sends it to its source queue's dead-letter queue at once, body and
//!   attributes unchanged, plus one attribute [`FAILURE_ATTRIBUTE`] holding a [`Failure`]
//!   as JSON (kind, reason, function, source queue, first-failure time, receives).
//! - **Retryable** ([`RecordError::Transient`]) → [`Settle::RetryIn`]: its visibility is
//!   shortened to a capped exponential backoff by receive count ([`RetryPolicy::delay`]:
//!   2 s, 4 s, 8 s, … up to the queue's visibility timeout), then it is reported failed, so
//!   it comes back as soon as the dependency may be back.
//! - A retryable record on its last allowed receive ([`RetryPolicy::max_receives`], the
//!   queue's `maxReceiveCount`) is dead-lettered by the function too, so its reason travels
//!   with it instead of the redrive policy moving it silently.
//!
//! # The attribute limit
//! SQS allows at most 10 message attributes. When the original attributes plus the failure
//! would exceed that, the originals are packed, as JSON, into one attribute
//! [`PACKED_ATTRIBUTE`] ([`annotate`]). [`restore`] undoes both (the functions run it on
//! every record they receive, so a message moved back by SQS's own redrive is handled as if
//! it had never failed; `classroom dlq redrive` runs it before sending).
//!
//! ```
//! # use kit::deadletter::{annotate, restore, Attribute, Attributes, Failure};
//! let mut attrs = Attributes::new();
//! attrs.insert("mqttSecondTopic".into(), Attribute::string("/message/12+3"));
//! let failure = Failure {
//!     kind: "bad_subtopic".into(),
//!     retryable: false,
//!     reason: "sub-topic level `12+3` holds a wildcard".into(),
//!     function: "inflow".into(),
//!     source_queue: "arn:aws:sqs:us-east-1:000000000000:downlink".into(),
//!     first_failure_at: Some(1_700_000_000_000),
//!     receive_count: 1,
//!     dead_lettered_at: 1_700_000_000_050,
//! };
//! let annotated = annotate(attrs.clone(), &failure).unwrap();
//! assert_eq!(annotated.len(), 2);
//! let (back, found) = restore(annotated).unwrap();
//! assert_eq!((back, found), (attrs, Some(failure)));
//! ```

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::batch::RecordError;

/// The message attribute holding a dead letter's [`Failure`] (JSON).
pub const FAILURE_ATTRIBUTE: &str = "classroom.failure";
/// The message attribute holding the original attributes when they had to be packed (JSON
/// object of name → [`Attribute`]).
pub const PACKED_ATTRIBUTE: &str = "classroom.attributes";
/// Most message attributes SQS accepts on one message.
pub const MAX_ATTRIBUTES: usize = 10;
/// Most characters of a failure's reason kept in the attribute (error chains can be long; the
/// full text is in the function's log line).
pub const MAX_REASON_CHARS: usize = 1000;

/// One SQS message attribute, whatever its type (`String`, `Number`, `Binary`, or a custom
/// `String.x` type): kept exactly, so a dead letter is the original message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    /// `String`, `Number`, `Binary` or one of those with a custom suffix.
    pub data_type: String,
    /// The value of a `String` or `Number` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// The value of a `Binary` attribute (base64 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_opt")]
    pub binary_value: Option<Vec<u8>>,
}

impl Attribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".to_owned(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }
}

/// A message's attributes by name (sorted, so packing is deterministic).
pub type Attributes = BTreeMap<String, Attribute>;

/// Why a record was dead-lettered: the JSON of [`FAILURE_ATTRIBUTE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The error's short stable name (`error.kind` in the logs), e.g. `bad_subtopic`.
    pub kind: String,
    /// Whether a retry might have helped (true: retries ran out).
    pub retryable: bool,
    /// The human reason (at most [`MAX_REASON_CHARS`] characters).
    pub reason: String,
    /// The function that gave up on it (`inflow`, `outflow`, `moderation`, `presence`).
    pub function: String,
    /// The ARN of the queue it came from (where a redrive sends it back).
    pub source_queue: String,
    /// When it was first received, in ms since the epoch (SQS's
    /// `ApproximateFirstReceiveTimestamp`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<u64>,
    /// Receives so far, this one included (`ApproximateReceiveCount`).
    pub receive_count: u32,
    /// When the function dead-lettered it, in ms since the epoch.
    pub dead_lettered_at: u64,
}

impl Failure {
    /// The failure of `error` on its `receive_count`-th receive, with its reason cut to
    /// [`MAX_REASON_CHARS`].
    pub fn of(error: &RecordError, function: &str, source_queue: &str) -> Self {
        Self {
            kind: error.kind().to_owned(),
            retryable: error.retryable(),
            reason: truncate(&error.to_string(), MAX_REASON_CHARS),
            function: function.to_owned(),
            source_queue: source_queue.to_owned(),
            first_failure_at: None,
            receive_count: 0,
            dead_lettered_at: 0,
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// The attributes of a dead letter: the originals plus [`FAILURE_ATTRIBUTE`], the originals
/// packed into [`PACKED_ATTRIBUTE`] when both would not fit SQS's 10 attributes.
///
/// Fails only if serialising fails (it cannot for these types; the error is kept rather than
/// unwrapped).
pub fn annotate(mut attrs: Attributes, failure: &Failure) -> Result<Attributes, serde_json::Error> {
    attrs.remove(FAILURE_ATTRIBUTE);
    if attrs.len() + 1 > MAX_ATTRIBUTES {
        let packed = serde_json::to_string(&attrs)?;
        attrs = Attributes::from([(PACKED_ATTRIBUTE.to_owned(), Attribute::string(packed))]);
    }
    attrs.insert(
        FAILURE_ATTRIBUTE.to_owned(),
        Attribute::string(serde_json::to_string(failure)?),
    );
    Ok(attrs)
}

/// A [`PACKED_ATTRIBUTE`] that is not the JSON [`annotate`] writes.
#[derive(Debug, thiserror::Error)]
#[error("attribute {PACKED_ATTRIBUTE} is not a packed attribute map: {0}")]
pub struct RestoreError(String);

/// The original attributes of a message that may be a dead letter, and its [`Failure`] if it
/// carried one (a failure attribute that does not parse is dropped: it is only diagnostics).
/// A message that never failed comes back unchanged.
pub fn restore(mut attrs: Attributes) -> Result<(Attributes, Option<Failure>), RestoreError> {
    let failure = attrs
        .remove(FAILURE_ATTRIBUTE)
        .and_then(|a| a.string_value)
        .and_then(|json| serde_json::from_str(&json).ok());
    if let Some(packed) = attrs.remove(PACKED_ATTRIBUTE) {
        let json = packed
            .string_value
            .ok_or_else(|| RestoreError("it has no string value".to_owned()))?;
        let originals: Attributes =
            serde_json::from_str(&json).map_err(|e| RestoreError(e.to_string()))?;
        attrs.extend(originals);
    }
    Ok((attrs, failure))
}

/// When a retryable record comes back, and when retries give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay in seconds (receive 1 → `base_secs`).
    pub base_secs: u32,
    /// The longest delay in seconds: the source queue's visibility timeout.
    pub max_secs: u32,
    /// The source queue's `maxReceiveCount`: a retryable record on this receive is
    /// dead-lettered with its reason. `None`: leave it to the redrive policy.
    pub max_receives: Option<u32>,
}

impl Default for RetryPolicy {
    /// 2 s doubling up to 210 s (the template's visibility timeout); no receive limit.
    fn default() -> Self {
        Self {
            base_secs: 2,
            max_secs: 210,
            max_receives: None,
        }
    }
}

impl RetryPolicy {
    /// The visibility, in seconds, of a record failed on its `receive_count`-th receive:
    /// `base · 2^(receive_count − 1)`, capped at `max_secs` (receive 0 counts as 1).
    pub fn delay(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.saturating_sub(1).min(31);
        self.base_secs
            .saturating_mul(1u32 << doublings)
            .min(self.max_secs)
    }

    /// What to do with a record that failed with `error` on its `receive_count`-th receive.
    pub fn plan(&self, error: &RecordError, receive_count: u32) -> Settle {
        let exhausted = self.max_receives.is_some_and(|m| receive_count >= m);
        if !error.retryable() || exhausted {
            Settle::DeadLetter
        } else {
            Settle::RetryIn(self.delay(receive_count))
        }
    }
}

/// What the driver does with one failed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Send it to the dead-letter queue with its [`Failure`]; it is then handled.
    DeadLetter,
    /// Make it visible again in this many seconds and report it failed.
    RetryIn(u32),
}

mod base64_opt {
    use super::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A dead letter's failure as one line, for listings: `kind (function, receive N): reason`.
pub fn summary(failure: &Failure) -> String {
    format!(
        "{} ({}, receive {}{}): {}",
        failure.kind,
        failure.function,
        failure.receive_count,
        if failure.retryable {
            ", retries exhausted"
        } else {
            ""
        },
        failure.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            kind: "bad_subtopic".into(),
            retryable: false,
            reason: "level `12+3` holds a wildcard".into(),
            function: "inflow".into(),
            source_queue: "arn:aws:sqs:us-east-1:000000000000:downlink".into(),
            first_failure_at: Some(10),
            receive_count: 1,
            dead_lettered_at: 20,
        }
    }

    fn attrs(n: usize) -> Attributes {
        (0..n)
            .map(|i| (format!("a{i:02}"), Attribute::string(format!("v{i}"))))
            .collect()
    }

    #[test]
    fn up_to_nine_attributes_are_kept_as_they_are() {
        for n in 0..=9 {
            let annotated = annotate(attrs(n), &failure()).unwrap();
            assert_eq!(annotated.len(), n + 1, "{n} attributes");
            assert!(!annotated.contains_key(PACKED_ATTRIBUTE));
            assert_eq!(annotated.get("a00"), attrs(n).get("a00"));
            assert_eq!(restore(annotated).unwrap(), (attrs(n), Some(failure())));
        }
    }

    #[test]
    fn ten_attributes_are_packed_into_one_and_restored_exactly() {
        let mut originals = attrs(10);
        originals.insert(
            "bin".into(),
            Attribute {
                data_type: "Binary".into(),
                string_value: None,
                binary_value: Some(vec![0, 159, 146, 150]),
            },
        );
        originals.insert(
            "n".into(),
            Attribute {
                data_type: "Number.int".into(),
                string_value: Some("42".into()),
                binary_value: None,
            },
        );
        let annotated = annotate(originals.clone(), &failure()).unwrap();
        assert_eq!(
            annotated.keys().map(String::as_str).collect::<Vec<_>>(),
            [PACKED_ATTRIBUTE, FAILURE_ATTRIBUTE]
        );
        assert!(annotated.len() <= MAX_ATTRIBUTES);
        assert_eq!(restore(annotated).unwrap(), (originals, Some(failure())));
    }

    #[test]
    fn a_second_failure_replaces_the_first() {
        let once = annotate(attrs(3), &failure()).unwrap();
        let (back, _) = restore(once.clone()).unwrap();
        let mut later = failure();
        later.receive_count = 4;
        let twice = annotate(back, &later).unwrap();
        assert_eq!(twice.len(), 4);
        assert_eq!(restore(twice).unwrap().1, Some(later));
        // Annotating an annotated map (without restoring) still keeps one failure.
        assert_eq!(annotate(once, &failure()).unwrap().len(), 4);
    }

    #[test]
    fn a_message_that_never_failed_is_unchanged() {
        assert_eq!(restore(attrs(10)).unwrap(), (attrs(10), None));
    }

    #[test]
    fn a_broken_failure_is_dropped_and_a_broken_pack_is_an_error() {
        let mut a = attrs(2);
        a.insert(FAILURE_ATTRIBUTE.into(), Attribute::string("{not json"));
        assert_eq!(restore(a).unwrap(), (attrs(2), None));
        let mut b = attrs(2);
        b.insert(PACKED_ATTRIBUTE.into(), Attribute::string("[1,2]"));
        let e = restore(b).unwrap_err();
        assert!(e.to_string().contains(PACKED_ATTRIBUTE), "{e}");
    }

    #[test]
    fn the_failure_json_is_the_documented_shape() {
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&failure()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "bad_subtopic", "retryable": false,
                "reason": "level `12+3` holds a wildcard", "function": "inflow",
                "sourceQueue": "arn:aws:sqs:us-east-1:000000000000:downlink",
                "firstFailureAt": 10, "receiveCount": 1, "deadLetteredAt": 20
            })
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let e = RecordError::permanent("big", "é".repeat(MAX_REASON_CHARS + 5));
        let f = Failure::of(&e, "outflow", "q");
        assert_eq!(f.reason.chars().count(), MAX_REASON_CHARS + 1);
        assert!(f.reason.ends_with('…'));
        assert_eq!(
            Failure::of(&RecordError::permanent("s", "short"), "o", "q").reason,
            "short"
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<u32> = (0..=10).map(|n| p.delay(n)).collect();
        assert_eq!(delays, [2, 2, 4, 8, 16, 32, 64, 128, 210, 210, 210]);
        assert_eq!(p.delay(u32::MAX), 210);
        let odd = RetryPolicy {
            base_secs: 3,
            max_secs: 20,
            max_receives: None,
        };
        assert_eq!(
            (1..=5).map(|n| odd.delay(n)).collect::<Vec<_>>(),
            [3, 6, 12, 20, 20]
        );
    }

    #[test]
    fn permanent_failures_are_dead_lettered_at_once_and_retryable_ones_until_the_limit() {
        let permanent = RecordError::permanent("bad", "x");
        let transient = RecordError::transient("down", "x");
        let p = RetryPolicy {
            max_receives: Some(5),
            ..RetryPolicy::default()
        };
        assert_eq!(p.plan(&permanent, 1), Settle::DeadLetter);
        assert_eq!(p.plan(&transient, 1), Settle::RetryIn(2));
        assert_eq!(p.plan(&transient, 4), Settle::RetryIn(16));
        assert_eq!(p.plan(&transient, 5), Settle::DeadLetter);
        let unbounded = RetryPolicy::default();
        assert_eq!(unbounded.plan(&transient, 50), Settle::RetryIn(210));
    }

    #[test]
    fn summaries_say_kind_function_and_reason() {
        let mut f = failure();
        assert_eq!(
            summary(&f),
            "bad_subtopic (inflow, receive 1): level `12+3` holds a wildcard"
        );
        f.retryable = true;
        assert!(summary(&f).contains("retries exhausted"));
    }
}
