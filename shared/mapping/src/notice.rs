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
//! `reason` is a [`Refusal`]: one of `muted`, `banned_words`, `too_long`, `invalid_message`
//! (chat), `not_teacher`, `target_not_student`, `invalid_command` (commands) and
//! `not_enrolled` (a chat or command for a room the sender's sign-in did not enroll it in).
//! `refMsgId` echoes the client's own `msgId` when it sent one.
//!
//! Notice IDs are derived from the source record ([`notice_id`]): a redelivered record yields
//! the same IDs, so clients de-duplicate by `msgId`.

use serde::Serialize;

use crate::inflow::DownlinkRecord;
use crate::names::{ClientId, RoomId};
use crate::refusal::Refusal;
use crate::topic::SubTopic;

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
    /// The members of a room (to a teacher who joins).
    Members,
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
        reason: Refusal,
        /// The room, when it could be read.
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
        /// Your own `msgId`, when you sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        ref_msg_id: Option<String>,
    },
    /// The members of `room_id` and where they stand, sent to a teacher who joins (page
    /// `part` of `parts`, from 1), so the member list is right from the start.
    #[serde(rename_all = "camelCase")]
    Members {
        /// The room.
        room_id: RoomId,
        /// This page of the members, sorted by client ID.
        members: Vec<MemberStatus>,
        /// This page's number, from 1.
        part: usize,
        /// How many pages there are.
        parts: usize,
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

/// One member of a room as the `members` notice lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member.
    pub client_id: ClientId,
    /// `teacher`, `student` or `other`, as recorded when it joined.
    pub role: String,
    /// Online now, as far as the presence function has seen.
    pub online: bool,
    /// Muted in this room now.
    pub muted: bool,
}

/// At most this many members per `members` notice (a page of 200 stays far below the 64 KiB
/// payload limit); a larger room gets several notices.
pub const MEMBERS_PER_NOTICE: usize = 200;

/// The `members` notices for `to`: the room's members sorted by client ID, in pages of
/// [`MEMBERS_PER_NOTICE`] (one notice, possibly empty, at least), with notice IDs derived from
/// the source record so a redelivery sends the same IDs.
pub fn members_notices(
    to: &ClientId,
    room_id: &RoomId,
    mut members: Vec<MemberStatus>,
    source: &str,
    ts: u64,
) -> Vec<Notice> {
    members.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
    let pages: Vec<Vec<MemberStatus>> = if members.is_empty() {
        vec![Vec::new()]
    } else {
        members
            .chunks(MEMBERS_PER_NOTICE)
            .map(<[MemberStatus]>::to_vec)
            .collect()
    };
    let parts = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| {
            Notice::from(P2pNotice {
                to: to.clone(),
                body: P2pBody::Members {
                    room_id: room_id.clone(),
                    members: page,
                    part: i + 1,
                    parts,
                },
                msg_id: notice_id(source, &format!("members-{}", i + 1)),
                ts,
            })
        })
        .collect()
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
    pub fn to_downlink(&self) -> DownlinkRecord {
        DownlinkRecord {
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
    fn members_come_sorted_in_pages_with_stable_ids() {
        let room = RoomId::parse("1").unwrap();
        let member = |i: usize| MemberStatus {
            client_id: id(&format!("GID_student@@@{i:03}")),
            role: "student".to_owned(),
            online: i.is_multiple_of(2),
            muted: i == 3,
        };
        let teacher = id("GID_teacher@@@001");
        let one = members_notices(&teacher, &room, vec![member(3), member(2)], "rec-1", 7);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].sub_topic().as_str(), "/p2p/GID_teacher@@@001");
        assert_eq!(
            one[0].body(),
            r#"{"type":"members","roomId":"1","members":[{"clientId":"GID_student@@@002","role":"student","online":true,"muted":false},{"clientId":"GID_student@@@003","role":"student","online":false,"muted":true}],"part":1,"parts":1,"msgId":"rec-1:members-1","ts":7}"#
        );
        let many: Vec<MemberStatus> = (0..MEMBERS_PER_NOTICE + 1).rev().map(member).collect();
        let pages = members_notices(&teacher, &room, many, "rec-2", 8);
        assert_eq!(pages.len(), 2);
        let bodies: Vec<serde_json::Value> = pages
            .iter()
            .map(|p| serde_json::from_str(&p.body()).unwrap())
            .collect();
        assert_eq!(
            bodies[0]["members"].as_array().unwrap().len(),
            MEMBERS_PER_NOTICE
        );
        assert_eq!(bodies[1]["members"][0]["clientId"], "GID_student@@@200");
        assert_eq!(
            (bodies[1]["part"].as_u64(), bodies[1]["parts"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(
            bodies[0]["members"][0]["clientId"], "GID_student@@@000",
            "sorted"
        );
        assert_eq!(pages[1].msg_id(), "rec-2:members-2");
        let empty = members_notices(&teacher, &room, Vec::new(), "rec-3", 9);
        assert_eq!(empty.len(), 1, "an empty room still answers");
    }

    #[test]
    fn rejected_omits_what_it_does_not_know() {
        let n = Notice::from(P2pNotice {
            to: id("GID_student@@@001"),
            body: P2pBody::Rejected {
                reason: Refusal::InvalidCommand,
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
    }
}
