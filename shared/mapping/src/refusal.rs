//! Why something a client sent was refused: the one refusal vocabulary of the classroom.
//!
//! The moderation policy ([`crate::Policy::verdict`]), the command authorization
//! ([`crate::authorize`]) and the moderation rule ([`crate::classroom::moderation`]) all
//! answer with a [`Refusal`]; it is the `reason` of the `rejected` P2P notice (§4.5) and the
//! `reason` field of the function's log line. Each wire name is written once, in the table
//! below, and both the serde name and [`Refusal::as_str`] come from it.

use serde::Serialize;

/// Declares [`Refusal`] from one table of `Variant = "wire_name"`: the serde rename, the
/// [`Refusal::as_str`] match and [`Refusal::ALL`] are generated from the same literal.
macro_rules! refusals {
    ($($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)+) => {
        /// Why something a client sent was refused (`reason` of a `rejected` notice).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Refusal {
            $($(#[doc = $doc])* #[serde(rename = $wire)] $variant,)+
        }

        impl Refusal {
            /// Every refusal, in declaration order.
            pub const ALL: &'static [Refusal] = &[$(Self::$variant,)+];

            /// The wire name (the notice's `reason`, the log's `reason`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }
    };
}

refusals! {
    /// The sender is muted in that room.
    Muted = "muted",
    /// The chat holds a banned word (reject mode).
    BannedWords = "banned_words",
    /// The chat is over the length limit.
    TooLong = "too_long",
    /// The chat body is not a valid chat message, or its text is empty or only white space.
    InvalidMessage = "invalid_message",
    /// A mute or unmute from a non-teacher.
    NotTeacher = "not_teacher",
    /// A mute or unmute aimed at a non-student.
    TargetNotStudent = "target_not_student",
    /// The command body is not a valid command.
    InvalidCommand = "invalid_command",
    /// A chat, `join`, `mute` or `unmute` for a room the sender is not enrolled in: no
    /// classroom token granted it the room, or that enrollment has expired (§8).
    NotEnrolled = "not_enrolled",
    /// A chat over the sender's chat rate (`CHAT_RATE_LIMIT` chats per
    /// `CHAT_RATE_WINDOW_SECS`): told once per window, further chats of that window are
    /// dropped without a notice ([`crate::classroom::moderation::ChatRate`]).
    RateLimited = "rate_limited",
    /// A `join` of a new room when the client is already a member of `MAX_ROOMS_PER_CLIENT`
    /// rooms ([`crate::classroom::moderation::Join::fits`]).
    TooManyRooms = "too_many_rooms",
    /// The publish was over the payload limit (`PAYLOAD_MAX_BYTES`): the outflow refused it
    /// before moderation ([`crate::outflow::refusal`]).
    TooLarge = "too_large",
    /// The publish's topic was not a valid classroom topic (a wildcard, an empty level, too
    /// long): the outflow refused it before moderation.
    InvalidTopic = "invalid_topic",
}

impl Refusal {
    /// The refusal to tell a sender whose publish the outflow refused with this error kind
    /// (the `refused` attribute of [`crate::outflow::refusal`]).
    pub fn of_upstream(kind: &str) -> Self {
        match kind {
            "payload_too_large" => Self::TooLarge,
            "invalid_topic" => Self::InvalidTopic,
            _ => Self::InvalidMessage,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_refusal_has_one_wire_name_in_the_log_and_in_the_notice() {
        for &reason in Refusal::ALL {
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                json!(reason.as_str()),
                "{reason:?}"
            );
            assert_eq!(reason.to_string(), reason.as_str());
        }
        let names: std::collections::HashSet<&str> =
            Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names.len(),
            Refusal::ALL.len(),
            "no two reasons share a name"
        );
        // The names clients and the web page know (web/public/js/core.js).
        assert_eq!(
            Refusal::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            [
                "muted",
                "banned_words",
                "too_long",
                "invalid_message",
                "not_teacher",
                "target_not_student",
                "invalid_command",
                "not_enrolled",
                "rate_limited",
                "too_many_rooms",
                "too_large",
                "invalid_topic"
            ]
        );
    }
}
