//! What clients publish under `roomSend` (§5): chat on `roomSend/message` and commands on
//! `roomSend/command`, parsed from JSON; and the authorization decision on a command.
//!
//! The sender is never read from the body: it is the broker-verified `clientId` attribute the
//! caller passes in. A `peer` field in a chat body is ignored (§4.1).

use serde::{Deserialize, Serialize};

use crate::names::{ClientId, NameError, Role, Roles, RoomId};
use crate::refusal::Refusal;

/// Longest mute, seconds (30 days). A longer one is refused as an invalid command rather than
/// silently capped.
pub const MAX_MUTE_SECS: u64 = 30 * 24 * 3600;

/// Longest client-chosen message ID kept as a reference, characters.
pub const CLIENT_MSG_ID_MAX_CHARS: usize = 128;

/// Why a chat message or a command could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON.
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not a known shape (missing, extra-typed or unknown field values).
    #[error("body is not a valid {what}: {reason}")]
    Invalid {
        /// `command` or `chat message`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A room or client ID that is not a valid name.
    #[error("{0}")]
    Name(#[from] NameError),
}

impl ParseError {
    fn from_json(what: &'static str, e: &serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => Self::Invalid {
                what,
                reason: e.to_string(),
            },
            _ => Self::MalformedJson(e.to_string()),
        }
    }
}

/// A chat message as the client sends it: `{"roomId":"1","msg":"hello","msgId":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// The room it is for.
    pub room_id: RoomId,
    /// The text (moderated before delivery).
    pub msg: String,
    /// The client's own message ID, echoed back as `refMsgId` in a rejection.
    pub client_msg_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChat {
    room_id: String,
    msg: String,
    #[serde(default)]
    msg_id: Option<serde_json::Value>,
}

/// Keeps a client reference only when it is a short printable string or a number.
fn client_ref(v: Option<serde_json::Value>) -> Option<String> {
    let s = match v? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()
        && s.chars().count() <= CLIENT_MSG_ID_MAX_CHARS
        && !s.chars().any(char::is_control))
    .then_some(s)
}

impl ChatMessage {
    /// Parses a chat body. Unknown fields (including a spoofed `peer`) are ignored.
    pub fn from_json(body: &str) -> Result<Self, ParseError> {
        let raw: RawChat =
            serde_json::from_str(body).map_err(|e| ParseError::from_json("chat message", &e))?;
        Ok(Self {
            room_id: RoomId::parse(&raw.room_id)?,
            msg: raw.msg,
            client_msg_id: client_ref(raw.msg_id),
        })
    }
}

/// A command on `roomSend/command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Command {
    /// Become a member of a room (receives its status notices).
    Join {
        /// The room.
        room_id: RoomId,
    },
    /// Mute a student in a room, for a while or until unmuted.
    Mute {
        /// The room.
        room_id: RoomId,
        /// The student.
        target: ClientId,
        /// How long; `None` = until unmuted.
        duration_secs: Option<u64>,
    },
    /// Lift a mute.
    Unmute {
        /// The room.
        room_id: RoomId,
        /// The student.
        target: ClientId,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
enum RawCommand {
    #[serde(rename_all = "camelCase")]
    Join { room_id: String },
    #[serde(rename_all = "camelCase")]
    Mute {
        room_id: String,
        target: String,
        #[serde(default)]
        duration_secs: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Unmute { room_id: String, target: String },
}

impl Command {
    /// Parses a command body.
    pub fn from_json(body: &str) -> Result<Self, ParseError> {
        let raw: RawCommand =
            serde_json::from_str(body).map_err(|e| ParseError::from_json("command", &e))?;
        Ok(match raw {
            RawCommand::Join { room_id } => Self::Join {
                room_id: RoomId::parse(&room_id)?,
            },
            RawCommand::Mute {
                room_id,
                target,
                duration_secs,
            } => {
                if let Some(d) = duration_secs
                    && (d == 0 || d > MAX_MUTE_SECS)
                {
                    return Err(ParseError::Invalid {
                        what: "command",
                        reason: format!("durationSecs must be 1 to {MAX_MUTE_SECS}, not {d}"),
                    });
                }
                Self::Mute {
                    room_id: RoomId::parse(&room_id)?,
                    target: ClientId::parse(&target)?,
                    duration_secs,
                }
            }
            RawCommand::Unmute { room_id, target } => Self::Unmute {
                room_id: RoomId::parse(&room_id)?,
                target: ClientId::parse(&target)?,
            },
        })
    }

    /// The command's name (`join`, `mute`, `unmute`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Mute { .. } => "mute",
            Self::Unmute { .. } => "unmute",
        }
    }

    /// The room it is about.
    pub fn room_id(&self) -> &RoomId {
        match self {
            Self::Join { room_id } | Self::Mute { room_id, .. } | Self::Unmute { room_id, .. } => {
                room_id
            }
        }
    }

    /// The client it is aimed at, for mute and unmute.
    pub fn target(&self) -> Option<&ClientId> {
        match self {
            Self::Join { .. } => None,
            Self::Mute { target, .. } | Self::Unmute { target, .. } => Some(target),
        }
    }

    /// When a mute ends, ms, given the time the command was received; `None` for a mute until
    /// unmuted (and for other commands).
    pub fn mute_until(&self, now_ms: u64) -> Option<u64> {
        match self {
            Self::Mute {
                duration_secs: Some(d),
                ..
            } => Some(now_ms.saturating_add(d.saturating_mul(1000))),
            _ => None,
        }
    }
}

/// The authorization decision: `sender` is the broker-verified client ID. Join is allowed for
/// anyone; mute and unmute only for a teacher ([`Refusal::NotTeacher`]), and only aimed at a
/// student ([`Refusal::TargetNotStudent`]).
pub fn authorize(sender: &ClientId, command: &Command, roles: &Roles) -> Result<(), Refusal> {
    let Some(target) = command.target() else {
        return Ok(());
    };
    if roles.role_of(sender) != Role::Teacher {
        return Err(Refusal::NotTeacher);
    }
    if roles.role_of(target) != Role::Student {
        return Err(Refusal::TargetNotStudent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn the_three_commands_parse() {
        assert_eq!(
            Command::from_json(r#"{"type":"join","roomId":"1"}"#).unwrap(),
            Command::Join {
                room_id: RoomId::parse("1").unwrap()
            }
        );
        let mute = Command::from_json(
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@002","durationSecs":600}"#,
        )
        .unwrap();
        assert_eq!(mute.name(), "mute");
        assert_eq!(mute.target(), Some(&id("GID_student@@@002")));
        assert_eq!(mute.mute_until(1_000), Some(601_000));
        let forever =
            Command::from_json(r#"{"type":"mute","roomId":"1","target":"GID_student@@@002"}"#)
                .unwrap();
        assert_eq!(forever.mute_until(1_000), None);
        let unmute =
            Command::from_json(r#"{"type":"unmute","roomId":"1","target":"GID_student@@@002"}"#)
                .unwrap();
        assert_eq!(unmute.room_id().as_str(), "1");
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        assert!(matches!(
            Command::from_json("{"),
            Err(ParseError::MalformedJson(_))
        ));
        for body in [
            r#"{"type":"kick","roomId":"1"}"#,
            r#"{"roomId":"1"}"#,
            r#"{"type":"mute","roomId":"1"}"#,
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@002","durationSecs":0}"#,
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@002","durationSecs":-1}"#,
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@002","durationSecs":99999999}"#,
        ] {
            assert!(
                matches!(Command::from_json(body), Err(ParseError::Invalid { .. })),
                "{body}"
            );
        }
        for body in [
            r#"{"type":"join","roomId":"1/2"}"#,
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@#"}"#,
        ] {
            assert!(
                matches!(Command::from_json(body), Err(ParseError::Name(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_spoofed_peer_in_a_chat_body_is_ignored() {
        let chat = ChatMessage::from_json(
            r#"{"roomId":"1","msg":"hello","msgId":"GID_student@@@001-17","peer":"GID_teacher@@@001"}"#,
        )
        .unwrap();
        assert_eq!(chat.room_id.as_str(), "1");
        assert_eq!(chat.msg, "hello");
        assert_eq!(chat.client_msg_id.as_deref(), Some("GID_student@@@001-17"));
        let json = serde_json::to_string(&chat).unwrap();
        assert!(!json.contains("peer"), "{json}");
    }

    #[test]
    fn chat_without_a_room_or_text_is_invalid() {
        assert!(ChatMessage::from_json(r#"{"msg":"hi"}"#).is_err());
        assert!(ChatMessage::from_json(r#"{"roomId":"1"}"#).is_err());
        assert!(ChatMessage::from_json(r#"{"roomId":"1","msg":5}"#).is_err());
        let odd_ref =
            ChatMessage::from_json(r#"{"roomId":"1","msg":"x","msgId":{"a":1}}"#).unwrap();
        assert_eq!(odd_ref.client_msg_id, None);
    }

    #[test]
    fn only_a_teacher_may_mute_and_only_a_student() {
        let roles = Roles::default();
        let teacher = id("GID_teacher@@@001");
        let student = id("GID_student@@@001");
        let mute = |target: &str| Command::Mute {
            room_id: RoomId::parse("1").unwrap(),
            target: id(target),
            duration_secs: None,
        };
        assert_eq!(
            authorize(&teacher, &mute("GID_student@@@002"), &roles),
            Ok(())
        );
        assert_eq!(
            authorize(&student, &mute("GID_student@@@002"), &roles),
            Err(Refusal::NotTeacher)
        );
        assert_eq!(
            authorize(&teacher, &mute("GID_teacher@@@002"), &roles),
            Err(Refusal::TargetNotStudent)
        );
        let unmute = Command::Unmute {
            room_id: RoomId::parse("1").unwrap(),
            target: id("GID_student@@@002"),
        };
        assert_eq!(
            authorize(&student, &unmute, &roles),
            Err(Refusal::NotTeacher)
        );
        let join = Command::Join {
            room_id: RoomId::parse("1").unwrap(),
        };
        assert_eq!(authorize(&student, &join, &roles), Ok(()));
    }
}
