//! What clients receive (§4.5), and each notice as a §4.3 downlink message.
//!
//! | sub-topic (under `room`) | body |
//! |---|---|
//! | `/message/<roomId>` | `{"msgId","peer","roomId","msg","ts"}` (+ `"masked":true` only when masked) |
//! | `/status/<roomId>` | `{"type":"online"\|"offline","clientId","roomId","msgId","ts"}` |
//! | `/system` | `{"type":"system","msg","msgId","ts"}` |
//! | `/p2p/<student>` | `{"type":"mute","roomId","by","until","msgId","ts"}` (`until` ms or `null` = until unmuted) |
//! | `/p2p/<student>` | `{"type":"unmute","roomId","by","msgId","ts"}` |
//! | `/p2p/<sender>` | `{"type":"rejected","reason","roomId"?,"refMsgId"?,"msgId","ts"}` |
//! | `/p2p/<teacher>` | `{"type":"commandResult","command","ok","roomId","target","msgId","ts"}` |
//!
//! `reason` is one of `muted`, `banned_words`, `too_long`, `invalid_message` (chat) and
//! `not_teacher`, `target_not_student`, `invalid_command` (commands). `refMsgId` echoes the
//! client's own `msgId` when it sent one.
//!
//! Notice IDs are derived from the source record ([`notice_id`]): a redelivered record yields
//! the same IDs, so clients de-duplicate by `msgId`.

use serde::Serialize;

use crate::command::Refusal;
use crate::moderation::RejectReason;
use crate::names::{ClientId, RoomId};
use crate::topic::SubTopic;
use crate::uplink::keys;

/// A notice ID derived from the ID of the record that caused it plus a suffix naming the
/// notice (`msg`, `mute`, `result`, `status-<room>`, ...). Deterministic, so redeliveries
/// produce the same IDs.
pub fn notice_id(source: &str, suffix: &str) -> String {
    format!("{source}:{suffix}")
}

/// The `type` field of the typed notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NoticeType {
    /// A member came online.
    Online,
    /// A member went offline.
    Offline,
    /// A system notice.
    System,
    /// You are muted.
    Mute,
    /// You are no longer muted.
    Unmute,
    /// What you sent was refused.
    Rejected,
    /// Your command was carried out.
    CommandResult,
}

/// Why something a client sent was refused (`reason` of a `rejected` notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedReason {
    /// The sender is muted in that room.
    Muted,
    /// The chat holds a banned word (reject mode).
    BannedWords,
    /// The chat is over the length limit.
    TooLong,
    /// The chat body is not a valid chat message (or is empty).
    InvalidMessage,
    /// A mute or unmute from a non-teacher.
    NotTeacher,
    /// A mute or unmute aimed at a non-student.
    TargetNotStudent,
    /// The command body is not a valid command.
    InvalidCommand,
}

impl RejectedReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Muted => "muted",
            Self::BannedWords => "banned_words",
            Self::TooLong => "too_long",
            Self::InvalidMessage => "invalid_message",
            Self::NotTeacher => "not_teacher",
            Self::TargetNotStudent => "target_not_student",
            Self::InvalidCommand => "invalid_command",
        }
    }
}

impl From<RejectReason> for RejectedReason {
    fn from(r: RejectReason) -> Self {
        match r {
            RejectReason::BannedWords => Self::BannedWords,
            RejectReason::TooLong => Self::TooLong,
            RejectReason::Empty => Self::InvalidMessage,
        }
    }
}

impl From<Refusal> for RejectedReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotTeacher => Self::NotTeacher,
            Refusal::TargetNotStudent => Self::TargetNotStudent,
        }
    }
}

/// Chat fanned out on `room/message/<roomId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatNotice {
    /// Notice ID.
    pub msg_id: String,
    /// The broker-verified sender.
    pub peer: ClientId,
    /// The room.
    pub room_id: RoomId,
    /// The (possibly masked) text.
    pub msg: String,
    /// Present, `true`, only when a banned word was masked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
    /// Time, ms.
    pub ts: u64,
}

/// A member's online/offline notice on `room/status/<roomId>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusNotice {
    /// `online` or `offline`.
    #[serde(rename = "type")]
    pub kind: NoticeType,
    /// The member.
    pub client_id: ClientId,
    /// The room.
    pub room_id: RoomId,
    /// Notice ID.
    pub msg_id: String,
    /// Time of the transition, ms.
    pub ts: u64,
}

impl StatusNotice {
    /// A status notice: `online` when `online`, `offline` otherwise.
    pub fn new(
        online: bool,
        client_id: ClientId,
        room_id: RoomId,
        msg_id: String,
        ts: u64,
    ) -> Self {
        Self {
            kind: if online {
                NoticeType::Online
            } else {
                NoticeType::Offline
            },
            client_id,
            room_id,
            msg_id,
            ts,
        }
    }
}

/// A system notice on `room/system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemNotice {
    /// Always `system`.
    #[serde(rename = "type")]
    pub kind: NoticeType,
    /// The text.
    pub msg: String,
    /// Notice ID.
    pub msg_id: String,
    /// Time, ms.
    pub ts: u64,
}

impl SystemNotice {
    /// A system notice.
    pub fn new(msg: String, msg_id: String, ts: u64) -> Self {
        Self {
            kind: NoticeType::System,
            msg,
            msg_id,
            ts,
        }
    }
}

/// A P2P notice to one client, on `room/p2p/<to>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct P2pNotice {
    /// The recipient (not in the body: it is the topic).
    #[serde(skip)]
    pub to: ClientId,
    /// What it says.
    #[serde(flatten)]
    pub body: P2pBody,
    /// Notice ID.
    pub msg_id: String,
    /// Time, ms.
    pub ts: u64,
}

/// The typed part of a P2P notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum P2pBody {
    /// You are muted in `room_id` by `by` until `until` (ms; `null` = until unmuted).
    #[serde(rename_all = "camelCase")]
    Mute {
        /// The room.
        room_id: RoomId,
        /// The teacher.
        by: ClientId,
        /// End of the mute, ms, or `null`.
        until: Option<u64>,
    },
    /// Your mute in `room_id` was lifted by `by`.
    #[serde(rename_all = "camelCase")]
    Unmute {
        /// The room.
        room_id: RoomId,
        /// The teacher.
        by: ClientId,
    },
    /// What you sent was refused.
    #[serde(rename_all = "camelCase")]
    Rejected {
        /// Why.
        reason: RejectedReason,
        /// The room, when it could be read.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
        /// Your own `msgId`, when you sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        ref_msg_id: Option<String>,
    },
    /// Your command was carried out.
    #[serde(rename_all = "camelCase")]
    CommandResult {
        /// `join`, `mute` or `unmute`.
        command: String,
        /// Whether it took effect.
        ok: bool,
        /// The room.
        room_id: RoomId,
        /// The target of a mute or unmute (`null` for join).
        target: Option<ClientId>,
    },
}

/// Any notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Notice {
    /// Chat.
    Chat(ChatNotice),
    /// Member status.
    Status(StatusNotice),
    /// System notice.
    System(SystemNotice),
    /// P2P notice.
    P2p(P2pNotice),
}

/// A notice ready for the downlink queue (§4.3): body plus attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Downlink {
    /// `mqttSecondTopic`.
    pub second_topic: SubTopic,
    /// `mqttMessageId`.
    pub message_id: String,
    /// `timestamp`, ms.
    pub timestamp: u64,
    /// The JSON body.
    pub body: String,
}

impl Downlink {
    /// The SQS message attributes (key, string value).
    pub fn attributes(&self) -> [(&'static str, String); 3] {
        [
            (keys::SECOND, self.second_topic.to_string()),
            (keys::MESSAGE_ID, self.message_id.clone()),
            (keys::TIMESTAMP, self.timestamp.to_string()),
        ]
    }
}

impl Notice {
    /// Where it is published, under the downlink parent.
    pub fn sub_topic(&self) -> SubTopic {
        match self {
            Self::Chat(n) => SubTopic::room_message(&n.room_id),
            Self::Status(n) => SubTopic::room_status(&n.room_id),
            Self::System(_) => SubTopic::system(),
            Self::P2p(n) => SubTopic::p2p(&n.to),
        }
    }

    /// Its ID.
    pub fn msg_id(&self) -> &str {
        match self {
            Self::Chat(n) => &n.msg_id,
            Self::Status(n) => &n.msg_id,
            Self::System(n) => &n.msg_id,
            Self::P2p(n) => &n.msg_id,
        }
    }

    /// Its time, ms.
    pub fn ts(&self) -> u64 {
        match self {
            Self::Chat(n) => n.ts,
            Self::Status(n) => n.ts,
            Self::System(n) => n.ts,
            Self::P2p(n) => n.ts,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        // Serialising these plain structs (strings, integers, booleans) cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The §4.3 downlink message.
    pub fn to_downlink(&self) -> Downlink {
        Downlink {
            second_topic: self.sub_topic(),
            message_id: self.msg_id().to_owned(),
            timestamp: self.ts(),
            body: self.body(),
        }
    }
}

impl From<ChatNotice> for Notice {
    fn from(n: ChatNotice) -> Self {
        Self::Chat(n)
    }
}
impl From<StatusNotice> for Notice {
    fn from(n: StatusNotice) -> Self {
        Self::Status(n)
    }
}
impl From<SystemNotice> for Notice {
    fn from(n: SystemNotice) -> Self {
        Self::System(n)
    }
}
impl From<P2pNotice> for Notice {
    fn from(n: P2pNotice) -> Self {
        Self::P2p(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }
    fn room() -> RoomId {
        RoomId::parse("1").unwrap()
    }

    #[test]
    fn chat_has_exactly_the_five_fields_unless_masked() {
        let mut chat = ChatNotice {
            msg_id: notice_id("m1", "msg"),
            peer: id("GID_student@@@001"),
            room_id: room(),
            msg: "hello".to_owned(),
            masked: false,
            ts: 7,
        };
        let n = Notice::from(chat.clone());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&n.body()).unwrap(),
            json!({"msgId":"m1:msg","peer":"GID_student@@@001","roomId":"1","msg":"hello","ts":7})
        );
        let d = n.to_downlink();
        assert_eq!(
            d.attributes(),
            [
                ("mqttSecondTopic", "/message/1".to_owned()),
                ("mqttMessageId", "m1:msg".to_owned()),
                ("timestamp", "7".to_owned())
            ]
        );
        chat.masked = true;
        assert!(Notice::from(chat).body().contains(r#""masked":true"#));
    }

    #[test]
    fn a_mute_notice_goes_to_the_students_p2p_topic() {
        let n = Notice::from(P2pNotice {
            to: id("GID_student@@@002"),
            body: P2pBody::Mute {
                room_id: room(),
                by: id("GID_teacher@@@001"),
                until: None,
            },
            msg_id: "c1:mute".to_owned(),
            ts: 9,
        });
        assert_eq!(n.sub_topic().as_str(), "/p2p/GID_student@@@002");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&n.body()).unwrap(),
            json!({"type":"mute","roomId":"1","by":"GID_teacher@@@001","until":null,"msgId":"c1:mute","ts":9})
        );
    }

    #[test]
    fn status_and_system_notices_have_their_type() {
        let s = Notice::from(StatusNotice::new(
            false,
            id("GID_student@@@002"),
            room(),
            "e:status-1".to_owned(),
            3,
        ));
        assert_eq!(s.sub_topic().as_str(), "/status/1");
        assert!(
            s.body()
                .starts_with(r#"{"type":"offline","clientId":"GID_student@@@002""#),
            "{}",
            s.body()
        );
        let sys = Notice::from(SystemNotice::new(
            "class starts".to_owned(),
            "n1".to_owned(),
            4,
        ));
        assert_eq!(sys.sub_topic().as_str(), "/system");
        assert_eq!(
            sys.body(),
            r#"{"type":"system","msg":"class starts","msgId":"n1","ts":4}"#
        );
    }

    #[test]
    fn rejected_omits_what_it_does_not_know() {
        let n = Notice::from(P2pNotice {
            to: id("GID_student@@@001"),
            body: P2pBody::Rejected {
                reason: RejectedReason::InvalidCommand,
                room_id: None,
                ref_msg_id: None,
            },
            msg_id: "c2:rejected".to_owned(),
            ts: 5,
        });
        assert_eq!(
            n.body(),
            r#"{"type":"rejected","reason":"invalid_command","msgId":"c2:rejected","ts":5}"#
        );
        assert_eq!(
            RejectedReason::from(Refusal::TargetNotStudent).as_str(),
            "target_not_student"
        );
    }
}
