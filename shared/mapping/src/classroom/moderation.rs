//! The moderation rule (§5), top to bottom: a backend message (§4.2) from
//! `roomSend/message` or `roomSend/command` in; the writes to make and the notices to send out.
//!
//! Pure: the caller (the moderation function) decodes the record ([`Origin::decode`]), reads
//! the state a [`Plan`] asks for, makes the [`Decision`]'s writes and sends its notices. The
//! rule's clock is the record's broker time ([`Origin::ts`]): "was the sender enrolled, was it
//! muted, when it spoke" has the same answer on every redelivery.
//!
//! # One record
//! 1. [`Moderation::plan`]: the sub-topic says chat (`/message`) or command (`/command`);
//!    anything else is not a message for moderation and fails the record. The body is parsed
//!    (an unreadable chat is refused with `invalid_message`, an unreadable command with
//!    `invalid_command`), a command is authorized ([`crate::authorize`]: only a teacher mutes
//!    or unmutes, only a student is muted): these refusals need no read. Otherwise the plan
//!    names what to read ([`Plan::read`]): for a chat, the sender's [`Standing`] in the room
//!    (its enrollment and its mute, one read); for a `join`, its enrollment and the rooms it
//!    has joined ([`Read::Joining`], one read, for the rooms cap); for a `mute` / `unmute`,
//!    its enrollment alone (a student's refused mute costs no read). A chat (anything on
//!    `/message`, readable or not) is also counted: [`Moderation::chat_window`] names the
//!    sender's rate window, whose counter the caller increments while it reads, and passes
//!    the new count as [`Standing::chats_in_window`].
//! 2. [`Moderation::decide`], on what was read:
//!    - chat over the sender's rate ([`ChatRate`]), first: the first chat over it in a window
//!      is refused with `rate_limited`, the later ones of that window are dropped without a
//!      notice ([`Fact::RefusedSilently`]).
//!    - chat: refused with `not_enrolled` when the sender's enrollment does not hold (first:
//!      a client learns nothing of a room it has no part in), then `muted` when a mute is in
//!      force ([`MuteState::in_force`]), then the policy's verdict ([`crate::Policy`]: mask,
//!      or refuse with `banned_words` / `too_long` / `invalid_message` for an empty text);
//!      otherwise fanned out on `room/message/<roomId>` with the broker-verified sender as
//!      `peer`. A chat writes nothing.
//!    - command: refused with `not_enrolled` when the sender is not enrolled in the command's
//!      room (a `join`, and a teacher's `mute` / `unmute`: a teacher moderates only the rooms
//!      its token grants); a refused command writes nothing.
//!    - `join`: refused with `too_many_rooms` when the room is new to the client and it is
//!      already a member of the cap's number of rooms ([`Join::fits`]); otherwise writes the
//!      membership ([`Write::Join`]); notices: the joiner `online` on
//!      `room/status/<roomId>` (it was no member when it connected, so the presence function
//!      could not announce it to this room) and a `commandResult`. A teacher also gets the
//!      room's members ([`Decision::members_of`], read after the join is written, so the list
//!      includes the teacher; then [`Moderation::members`]).
//!    - `mute` / `unmute`: writes the change ([`Write::Mute`], kept in command order by
//!      [`MuteChange::outcome_over`]); notices: a P2P `mute` / `unmute` to the student and a
//!      `commandResult` to the teacher; when a newer command already changed that mute the
//!      change is superseded and only a `commandResult` with `ok: false` goes out
//!      ([`Decision::if_superseded`]).
//!
//! What a client did wrong is answered with a `rejected` P2P notice ([`Refusal`]) and the
//! record succeeds: it is handled. Notice IDs derive from the record's `mqttMessageId`
//! ([`notice_id`]), so a redelivery resends the same IDs.
//!
//! # Chat rate (flood control)
//! Each sender may chat [`ChatRate::chats`] times per fixed window of [`ChatRate::window_ms`]
//! (default [`DEFAULT_CHAT_RATE_LIMIT`] per [`DEFAULT_CHAT_RATE_WINDOW_MS`]: the advice of
//! Alibaba's live-room demo, 10 messages a second per client). Windows are aligned to the
//! epoch and taken from the record's broker time, so the answer does not depend on when the
//! record is handled. The caller keeps one counter per sender and window in a store shared by
//! every container (one atomic increment that returns the new count) and passes the count,
//! this chat included. The `n`th chat of a window ([`ChatRate::verdict`]):
//! - `n <= chats`: goes on to the rest of the rule (enrollment, mute, policy);
//! - `n == chats + 1`: refused with one `rejected` `rate_limited` notice to the sender;
//! - `n > chats + 1`: refused silently (logged, no notice): one notice per window, not one per
//!   message, so a flood cannot turn into a flood of notices.
//!
//! The rate comes before the enrollment, mute and policy checks: it is per sender, across
//! rooms, so a refusal for it says nothing about any room, and it caps the notices a flood of
//! chats that would be refused anyway (`not_enrolled`, `muted`, `banned_words`) could cause.
//! Every chat counts, an unreadable one included.
//!
//! The burst: windows are fixed, so a sender may chat `chats` times at the end of one window
//! and `chats` times at the start of the next: at most `2 * chats` within any span of one
//! window length, and never more than `chats` on average over two windows.
//!
//! A redelivered chat (at-least-once: its record failed after it was counted, e.g. the
//! downlink queue refused its notices) counts again: near the limit its retry may be refused
//! although its first attempt was within it. The limit errs towards the room.
//!
//! # Rooms per client
//! A client may be a member of at most [`Moderation::max_rooms`] rooms (default
//! [`DEFAULT_MAX_ROOMS_PER_CLIENT`]; every status notice of the client goes to each of its
//! rooms). The count is the `rooms` the client's joins added to its presence head item, read
//! with the enrollment in the join's one read. A join of a room the client is already a
//! member of always succeeds (a redelivery, a second tab); a join of a new room at the cap is
//! refused with `too_many_rooms`. The store writes a join under the same condition
//! ([`Join::fits`]), so two joins racing in two containers cannot pass the cap together.
//!
//! # Enrollment
//! The uplink topic (`roomSend/message`) carries no room, so the broker cannot stop a client
//! from naming any room in its body: the issuer records which rooms each classroom token
//! grants (the EnrollmentTable, §8) and moderation refuses a chat or command for any
//! other room (defence in depth behind the broker's read filters). An enrollment holds while
//! the record's broker time is before its `expiresAt` (the token's expiry, seconds; expired
//! at `exp`, as the token itself), whether DynamoDB's TTL has deleted the item yet or not
//! ([`enrollment_holds`]); an item without a readable `expiresAt` holds nothing (fail
//! closed).

use serde::Serialize;

use crate::command::{ChatMessage, Command, authorize};
use crate::error::MappingError;
use crate::moderation::{Policy, Verdict};
use crate::names::{ClientId, Role, Roles, RoomId};
use crate::notice::{
    ChatNotice, MemberStatus, Notice, P2pBody, P2pNotice, StatusNotice, members_notices, notice_id,
};
use crate::outflow::{Origin, keys};
use crate::refusal::Refusal;

/// Chats per sender per window by default (`CHAT_RATE_LIMIT`).
pub const DEFAULT_CHAT_RATE_LIMIT: u64 = 10;
/// The rate window by default, ms (`CHAT_RATE_WINDOW_SECS` = 1).
pub const DEFAULT_CHAT_RATE_WINDOW_MS: u64 = 1_000;
/// Rooms a client may be a member of by default (`MAX_ROOMS_PER_CLIENT`).
pub const DEFAULT_MAX_ROOMS_PER_CLIENT: usize = 20;

/// The rule's configuration: the chat policy, the groups' roles, the chat rate and the rooms
/// cap. Built once per container.
#[derive(Debug, Clone)]
pub struct Moderation {
    policy: Policy,
    roles: Roles,
    chat_rate: Option<ChatRate>,
    max_rooms: usize,
}

/// The per-sender chat rate: at most [`chats`](Self::chats) chats per fixed window of
/// [`window_ms`](Self::window_ms) (see the module docs, "Chat rate").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRate {
    chats: u64,
    window_ms: u64,
}

impl Default for ChatRate {
    fn default() -> Self {
        Self {
            chats: DEFAULT_CHAT_RATE_LIMIT,
            window_ms: DEFAULT_CHAT_RATE_WINDOW_MS,
        }
    }
}

/// What the chat rate says of a chat ([`ChatRate::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RateVerdict {
    /// Within the rate: the rest of the rule decides.
    Within,
    /// The first chat over the rate in its window: refused with a `rate_limited` notice.
    Refused,
    /// A later chat over the rate in the same window: refused without a notice.
    RefusedSilently,
}

impl ChatRate {
    /// `chats` per window of `window_ms`; `None` when either is 0 (`chats` 0: no limit).
    pub fn new(chats: u64, window_ms: u64) -> Option<Self> {
        (chats > 0 && window_ms > 0).then_some(Self { chats, window_ms })
    }

    /// Chats per window (at least 1).
    pub fn chats(&self) -> u64 {
        self.chats
    }

    /// The window, ms (at least 1).
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The window of `sender` that broker time `at_ms` falls in (aligned to the epoch).
    pub fn window(&self, sender: &ClientId, at_ms: u64) -> ChatWindow {
        let start_ms = at_ms - at_ms % self.window_ms;
        ChatWindow {
            sender: sender.clone(),
            start_ms,
            end_ms: start_ms.saturating_add(self.window_ms),
        }
    }

    /// The verdict on the `n`th chat of a window (`n` counts this chat: 1 for the first).
    pub fn verdict(&self, n: u64) -> RateVerdict {
        if n <= self.chats {
            RateVerdict::Within
        } else if n == self.chats.saturating_add(1) {
            RateVerdict::Refused
        } else {
            RateVerdict::RefusedSilently
        }
    }
}

/// One sender's rate window: the key of its chat counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatWindow {
    /// The sender (the record's `clientId`).
    pub sender: ClientId,
    /// Start of the window, broker time, ms (a multiple of the window length).
    pub start_ms: u64,
    /// End of the window (exclusive), ms.
    pub end_ms: u64,
}

/// Step 1's outcome: the parsed record and what it needs read, or a refusal that needs
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "plan")]
pub enum Plan {
    /// Refused before any read: an unreadable body, or a command its sender may not give.
    #[serde(rename_all = "camelCase")]
    Refused {
        /// Why.
        reason: Refusal,
        /// The room, when the body named one.
        room_id: Option<RoomId>,
    },
    /// A chat: decided on the sender's [`Standing`] in its room.
    Chat {
        /// The chat as parsed.
        chat: ChatMessage,
    },
    /// An authorized command: decided on the sender's enrollment in its room.
    Command {
        /// The command as parsed.
        command: Command,
    },
}

impl Plan {
    /// The plan for a publish the outflow refused before moderation (its `refused`
    /// attribute, the error kind): tell the sender why, nothing else.
    pub fn refused_upstream(kind: &str) -> Self {
        Self::Refused {
            reason: Refusal::of_upstream(kind),
            room_id: None,
        }
    }

    /// What to read about the sender before [`Moderation::decide`]; `None`: nothing (pass
    /// [`Standing::default`]).
    pub fn read(&self) -> Option<Read<'_>> {
        match self {
            Self::Refused { .. } => None,
            Self::Chat { chat } => Some(Read::Standing(&chat.room_id)),
            Self::Command {
                command: Command::Join { room_id },
            } => Some(Read::Joining(room_id)),
            Self::Command { command } => Some(Read::Enrollment(command.room_id())),
        }
    }
}

/// What a [`Plan`] needs read about the sender (the record's `clientId`) before the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'p> {
    /// The sender's enrollment in the room and its mute there (one read for both).
    Standing(&'p RoomId),
    /// The sender's enrollment in the room alone.
    Enrollment(&'p RoomId),
    /// For a `join`: the sender's enrollment in the room and the rooms it has joined
    /// ([`Standing::rooms`]; one read for both).
    Joining(&'p RoomId),
}

/// Where the sender stands in a room, as read: the state [`Moderation::decide`] decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    /// The `expiresAt` (seconds) of the sender's enrollment item in the room; `None` when
    /// there is no item or it has no readable `expiresAt`. Whether it holds is
    /// [`enrollment_holds`]'s to say.
    pub enrollment_expires_at_s: Option<u64>,
    /// The sender's mute item in the room; `None` when there is none (and for a command,
    /// whose plan does not read it).
    pub mute: Option<MuteState>,
    /// For a chat: the count of the sender's chat window ([`Moderation::chat_window`]) after
    /// this chat was counted (1 for the first). `None`: not counted (no chat rate, or not a
    /// chat), and the rate does not refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chats_in_window: Option<u64>,
    /// For a `join` ([`Read::Joining`]): the rooms the sender has joined, as its presence head
    /// item lists them (empty without a head). `None`: not read (no cap applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<RoomId>>,
}

/// One mute item as read (room and student are its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteState {
    /// Muted by the last command applied (absent reads as `false`).
    pub muted: bool,
    /// End of a timed mute, ms; `None` = until unmuted.
    pub until_ms: Option<u64>,
    /// Broker time of the command that last changed it, ms.
    pub changed_at_ms: Option<u64>,
    /// Message ID of the command that last changed it.
    pub command_id: Option<String>,
}

impl MuteState {
    /// Whether it mutes at `now_ms`: muted, and not past `until_ms`. DynamoDB's TTL removes
    /// ended mutes lazily, so an item read may have ended long ago.
    pub fn in_force(&self, now_ms: u64) -> bool {
        self.muted && self.until_ms.is_none_or(|until| now_ms < until)
    }
}

/// Whether an enrollment whose item has `expires_at_s` (seconds; `None` = no item or no
/// readable `expiresAt`) holds at `at_ms`.
pub fn enrollment_holds(expires_at_s: Option<u64>, at_ms: u64) -> bool {
    expires_at_s.is_some_and(|expires| at_ms < expires.saturating_mul(1000))
}

/// A write the decision asks for, in order, before any of its notices is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "write")]
pub enum Write {
    /// Make a client a member of a room.
    Join(Join),
    /// Mute or unmute a student in a room.
    Mute(MuteChange),
}

/// A `join`: the membership (idempotent: the first join time is kept) and the room on the
/// client's presence head item, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    /// The room.
    pub room_id: RoomId,
    /// The joiner.
    pub client_id: ClientId,
    /// Its role, from its group.
    pub role: Role,
    /// The command's broker time, ms.
    pub at_ms: u64,
    /// The rooms cap ([`Moderation::max_rooms`]): the store writes the join only while it
    /// [fits](Self::fits) the rooms on the head item as they are then.
    pub max_rooms: usize,
}

impl Join {
    /// Whether the join fits the cap over `rooms` (the client's rooms as they are): the room
    /// is one of them already, or there are fewer than `max_rooms`.
    pub fn fits(&self, rooms: &[RoomId]) -> bool {
        rooms.contains(&self.room_id) || rooms.len() < self.max_rooms
    }
}

/// A mute or unmute to apply to one mute item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MuteChange {
    /// The room.
    pub room_id: RoomId,
    /// The student.
    pub target: ClientId,
    /// The teacher.
    pub by: ClientId,
    /// `true` to mute, `false` to unmute.
    pub muted: bool,
    /// End of a timed mute, ms.
    pub until_ms: Option<u64>,
    /// The command's broker time, ms.
    pub at_ms: u64,
    /// The command's message ID.
    pub command_id: String,
}

/// Whether a [`MuteChange`] took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MuteOutcome {
    /// Written (the first time, or again for a redelivery of the same command).
    Written,
    /// A newer command already changed this mute: nothing written.
    Superseded,
}

impl MuteChange {
    /// The ordering of mute commands: a change is applied over `current` (the item as it
    /// is; `None` = no item) when it is newer than the command that last changed it, or is
    /// that very command (a redelivery rewrites the same values: no second effect), so a
    /// stale mute delivered after a later unmute is superseded instead of muting again. The
    /// store applies it atomically, as the condition of its write.
    pub fn outcome_over(&self, current: Option<&MuteState>) -> MuteOutcome {
        let admitted = current.is_none_or(|state| {
            state.changed_at_ms.is_none_or(|at| at < self.at_ms)
                || state.command_id.as_deref() == Some(self.command_id.as_str())
        });
        if admitted {
            MuteOutcome::Written
        } else {
            MuteOutcome::Superseded
        }
    }

    /// The item once the change is written.
    pub fn applied(&self) -> MuteState {
        MuteState {
            muted: self.muted,
            until_ms: self.until_ms,
            changed_at_ms: Some(self.at_ms),
            command_id: Some(self.command_id.clone()),
        }
    }
}

/// What happened to a record, for the function's log line (this crate does not log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "fact")]
pub enum Fact {
    /// Refused with a `rejected` notice.
    Refused {
        /// Why.
        reason: Refusal,
    },
    /// Refused without a notice: a chat over the rate after the one that was told.
    #[serde(rename_all = "camelCase")]
    RefusedSilently {
        /// Why (`rate_limited`).
        reason: Refusal,
        /// The count of the sender's window with this chat.
        chats_in_window: u64,
    },
    /// A chat fanned out to its room.
    #[serde(rename_all = "camelCase")]
    Delivered {
        /// The room.
        room_id: RoomId,
        /// Whether a banned word was masked.
        masked: bool,
    },
    /// A `join` written.
    #[serde(rename_all = "camelCase")]
    Joined {
        /// The room.
        room_id: RoomId,
    },
    /// A `mute` or `unmute` written or superseded (the store's [`MuteOutcome`] says which).
    #[serde(rename_all = "camelCase")]
    MuteCommand {
        /// `mute` or `unmute`.
        command: &'static str,
        /// The student.
        target: ClientId,
        /// The room.
        room_id: RoomId,
    },
}

/// Step 2's outcome: the writes, then the notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to write, in order, before any notice is sent.
    pub writes: Vec<Write>,
    /// The notices to send once the writes are done.
    pub notices: Vec<Notice>,
    /// The notices to send instead of [`notices`](Self::notices) when the store reports the
    /// [`Write::Mute`] superseded ([`MuteOutcome::Superseded`]).
    pub if_superseded: Option<Vec<Notice>>,
    /// A teacher joined this room: once the writes are done, read the room's members
    /// ([`RoomMembers`]) and send [`Moderation::members`]'s notices too.
    pub members_of: Option<RoomId>,
    /// What happened, for the log.
    pub fact: Fact,
}

impl Decision {
    /// A decision that only sends `notices`.
    fn send(notices: Vec<Notice>, fact: Fact) -> Self {
        Self {
            writes: Vec::new(),
            notices,
            if_superseded: None,
            members_of: None,
            fact,
        }
    }
}

/// One membership of a room, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The member.
    pub client_id: ClientId,
    /// `teacher`, `student` or `other`, as recorded when it joined.
    pub role: String,
}

/// A room's members as read for a teacher who joins: the memberships, the room's mute items
/// and which members the presence function last saw online.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMembers {
    /// The memberships.
    pub members: Vec<Membership>,
    /// The room's mute items, by student (ended ones included: [`MuteState::in_force`]
    /// decides).
    pub mutes: Vec<(ClientId, MuteState)>,
    /// The members whose presence head item says online.
    pub online: Vec<ClientId>,
}

impl Moderation {
    /// The rule with its chat policy and roles, the default chat rate ([`ChatRate::default`])
    /// and the default rooms cap ([`DEFAULT_MAX_ROOMS_PER_CLIENT`]).
    pub fn new(policy: Policy, roles: Roles) -> Self {
        Self {
            policy,
            roles,
            chat_rate: Some(ChatRate::default()),
            max_rooms: DEFAULT_MAX_ROOMS_PER_CLIENT,
        }
    }

    /// The same rule with another chat rate; `None`: chats are not counted nor limited.
    #[must_use]
    pub fn with_chat_rate(self, chat_rate: Option<ChatRate>) -> Self {
        Self { chat_rate, ..self }
    }

    /// The same rule with another rooms cap (0: no join succeeds).
    #[must_use]
    pub fn with_max_rooms(self, max_rooms: usize) -> Self {
        Self { max_rooms, ..self }
    }

    /// The chat rate; `None`: off.
    pub fn chat_rate(&self) -> Option<ChatRate> {
        self.chat_rate
    }

    /// The rooms cap.
    pub fn max_rooms(&self) -> usize {
        self.max_rooms
    }

    /// Step 1, with [`Moderation::plan`]: the sender's rate window to count this record in, for
    /// a chat (any record on `/message`, readable or not) while a chat rate is set; `None`
    /// otherwise. The caller increments that window's counter and passes the new count as
    /// [`Standing::chats_in_window`].
    pub fn chat_window(&self, origin: &Origin) -> Option<ChatWindow> {
        let rate = self.chat_rate?;
        (origin.sub.first_level() == "message").then(|| rate.window(&origin.sender, origin.ts))
    }

    /// The chat policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The roles.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// Step 1: what the record is and what it needs read. Fails for a sub-topic that is
    /// neither `/message` nor `/command` (not a record for moderation).
    pub fn plan(&self, origin: &Origin, body: &str) -> Result<Plan, MappingError> {
        match origin.sub.first_level() {
            "message" => Ok(match ChatMessage::from_json(body) {
                Ok(chat) => Plan::Chat { chat },
                Err(_) => Plan::Refused {
                    reason: Refusal::InvalidMessage,
                    room_id: None,
                },
            }),
            "command" => Ok(match Command::from_json(body) {
                Err(_) => Plan::Refused {
                    reason: Refusal::InvalidCommand,
                    room_id: None,
                },
                Ok(command) => match authorize(&origin.sender, &command, &self.roles) {
                    Err(reason) => Plan::Refused {
                        reason,
                        room_id: Some(command.room_id().clone()),
                    },
                    Ok(()) => Plan::Command { command },
                },
            }),
            other => Err(MappingError::InvalidAttribute {
                name: keys::SECOND,
                reason: format!("moderation handles /message and /command, not /{other}"),
            }),
        }
    }

    /// Step 2: the decision on what was read (`standing`; [`Standing::default`] for a plan
    /// that reads nothing).
    pub fn decide(&self, origin: &Origin, plan: Plan, standing: &Standing) -> Decision {
        if let Some(over) = self.over_rate(origin, &plan, standing) {
            return over;
        }
        match plan {
            Plan::Refused { reason, room_id } => rejected(origin, reason, room_id, None),
            Plan::Chat { chat } => self.chat(origin, chat, standing),
            Plan::Command { command } => self.command(origin, command, standing),
        }
    }

    /// The refusal of a chat over the sender's rate; `None` when it is within (or not counted).
    fn over_rate(&self, origin: &Origin, plan: &Plan, standing: &Standing) -> Option<Decision> {
        let rate = self.chat_rate?;
        let n = standing.chats_in_window?;
        if origin.sub.first_level() != "message" {
            return None;
        }
        match rate.verdict(n) {
            RateVerdict::Within => None,
            RateVerdict::Refused => {
                let (room_id, ref_msg_id) = match plan {
                    Plan::Chat { chat } => (Some(chat.room_id.clone()), chat.client_msg_id.clone()),
                    Plan::Refused { room_id, .. } => (room_id.clone(), None),
                    Plan::Command { .. } => (None, None),
                };
                Some(rejected(origin, Refusal::RateLimited, room_id, ref_msg_id))
            }
            RateVerdict::RefusedSilently => Some(Decision::send(
                Vec::new(),
                Fact::RefusedSilently {
                    reason: Refusal::RateLimited,
                    chats_in_window: n,
                },
            )),
        }
    }

    fn chat(&self, origin: &Origin, chat: ChatMessage, standing: &Standing) -> Decision {
        // Not enrolled first: a client learns nothing of a room it has no part in.
        let refusal = if !enrollment_holds(standing.enrollment_expires_at_s, origin.ts) {
            Some(Refusal::NotEnrolled)
        } else if standing
            .mute
            .as_ref()
            .is_some_and(|mute| mute.in_force(origin.ts))
        {
            Some(Refusal::Muted)
        } else {
            None
        };
        let verdict = match refusal {
            Some(reason) => Verdict::Reject { reason },
            None => self.policy.verdict(&chat.msg),
        };
        match verdict {
            Verdict::Reject { reason } => {
                rejected(origin, reason, Some(chat.room_id), chat.client_msg_id)
            }
            Verdict::Deliver { text, masked } => Decision::send(
                vec![Notice::from(ChatNotice {
                    msg_id: notice_id(&origin.message_id, "msg"),
                    peer: origin.sender.clone(),
                    room_id: chat.room_id.clone(),
                    msg: text,
                    masked,
                    ts: origin.ts,
                })],
                Fact::Delivered {
                    room_id: chat.room_id,
                    masked,
                },
            ),
        }
    }

    fn command(&self, origin: &Origin, command: Command, standing: &Standing) -> Decision {
        if !enrollment_holds(standing.enrollment_expires_at_s, origin.ts) {
            return rejected(
                origin,
                Refusal::NotEnrolled,
                Some(command.room_id().clone()),
                None,
            );
        }
        let result = |ok: bool| {
            p2p(
                origin,
                &origin.sender,
                "result",
                P2pBody::CommandResult {
                    command: command.name().to_owned(),
                    ok,
                    room_id: command.room_id().clone(),
                    target: command.target().cloned(),
                },
            )
        };
        match &command {
            Command::Join { room_id } => {
                let join = Join {
                    room_id: room_id.clone(),
                    client_id: origin.sender.clone(),
                    role: self.roles.role_of(&origin.sender),
                    at_ms: origin.ts,
                    max_rooms: self.max_rooms,
                };
                if !join.fits(standing.rooms.as_deref().unwrap_or_default()) {
                    return rejected(origin, Refusal::TooManyRooms, Some(room_id.clone()), None);
                }
                let role = join.role;
                // The joiner is online (it just published), but the presence function could
                // not announce it to this room when it connected: it was no member yet.
                let online = Notice::from(StatusNotice::new(
                    true,
                    origin.sender.clone(),
                    room_id.clone(),
                    notice_id(&origin.message_id, "status"),
                    origin.ts,
                ));
                Decision {
                    writes: vec![Write::Join(join)],
                    notices: vec![online, result(true)],
                    if_superseded: None,
                    // A teacher's member list is right from the start, not only after the
                    // next status notices.
                    members_of: (role == Role::Teacher).then(|| room_id.clone()),
                    fact: Fact::Joined {
                        room_id: room_id.clone(),
                    },
                }
            }
            Command::Mute {
                room_id, target, ..
            }
            | Command::Unmute { room_id, target } => {
                let muted = matches!(command, Command::Mute { .. });
                let until_ms = command.mute_until(origin.ts);
                let notice = if muted {
                    P2pBody::Mute {
                        room_id: room_id.clone(),
                        by: origin.sender.clone(),
                        until: until_ms,
                    }
                } else {
                    P2pBody::Unmute {
                        room_id: room_id.clone(),
                        by: origin.sender.clone(),
                    }
                };
                Decision {
                    writes: vec![Write::Mute(MuteChange {
                        room_id: room_id.clone(),
                        target: target.clone(),
                        by: origin.sender.clone(),
                        muted,
                        until_ms,
                        at_ms: origin.ts,
                        command_id: origin.message_id.clone(),
                    })],
                    notices: vec![p2p(origin, target, command.name(), notice), result(true)],
                    if_superseded: Some(vec![result(false)]),
                    members_of: None,
                    fact: Fact::MuteCommand {
                        command: command.name(),
                        target: target.clone(),
                        room_id: room_id.clone(),
                    },
                }
            }
        }
    }

    /// Step 3, for a teacher who joined ([`Decision::members_of`]): the `members` notices to
    /// the teacher, from the room's members read after the join was written: who is in the
    /// room, online (as the presence function last saw it) and muted at the record's time.
    pub fn members(&self, origin: &Origin, room_id: &RoomId, read: RoomMembers) -> Vec<Notice> {
        let RoomMembers {
            members,
            mutes,
            online,
        } = read;
        let statuses = members
            .into_iter()
            .map(|m| MemberStatus {
                online: online.contains(&m.client_id),
                muted: mutes
                    .iter()
                    .any(|(client, mute)| *client == m.client_id && mute.in_force(origin.ts)),
                role: m.role,
                client_id: m.client_id,
            })
            .collect();
        members_notices(
            &origin.sender,
            room_id,
            statuses,
            &origin.message_id,
            origin.ts,
        )
    }
}

/// A P2P notice caused by `origin`, its ID suffixed with `suffix`.
fn p2p(origin: &Origin, to: &ClientId, suffix: &str, body: P2pBody) -> Notice {
    Notice::from(P2pNotice {
        to: to.clone(),
        body,
        msg_id: notice_id(&origin.message_id, suffix),
        ts: origin.ts,
    })
}

/// The refusal of `origin`: one `rejected` notice to its sender, nothing written.
fn rejected(
    origin: &Origin,
    reason: Refusal,
    room_id: Option<RoomId>,
    ref_msg_id: Option<String>,
) -> Decision {
    Decision::send(
        vec![p2p(
            origin,
            &origin.sender,
            "rejected",
            P2pBody::Rejected {
                reason,
                room_id,
                ref_msg_id,
            },
        )],
        Fact::Refused { reason },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::Mode;
    use crate::topic::SubTopic;

    const T0: u64 = 1_732_240_000_000;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    fn room(s: &str) -> RoomId {
        RoomId::parse(s).unwrap()
    }

    fn rule(mode: Mode) -> Moderation {
        Moderation::new(
            Policy::from_list("笨蛋,damn", mode, 20).unwrap(),
            Roles::default(),
        )
    }

    fn origin(sender: &str, sub: &str) -> Origin {
        Origin {
            sender: id(sender),
            sub: SubTopic::parse(sub).unwrap(),
            message_id: "m1".to_owned(),
            ts: T0,
        }
    }

    /// Enrolled until a second after `T0`, not muted.
    fn enrolled() -> Standing {
        Standing {
            enrollment_expires_at_s: Some(T0 / 1000 + 1),
            ..Standing::default()
        }
    }

    fn mute(until_ms: Option<u64>) -> MuteState {
        MuteState {
            muted: true,
            until_ms,
            changed_at_ms: Some(T0 - 5_000),
            command_id: Some("c0".to_owned()),
        }
    }

    /// (sub-topic, body) of each notice.
    fn wire(notices: &[Notice]) -> Vec<(String, String)> {
        notices
            .iter()
            .map(|n| (n.sub_topic().to_string(), n.body()))
            .collect()
    }

    fn decide(rule: &Moderation, o: &Origin, body: &str, standing: &Standing) -> Decision {
        let plan = rule.plan(o, body).unwrap();
        rule.decide(o, plan, standing)
    }

    #[test]
    fn an_enrollment_holds_until_its_expiry_and_fails_closed() {
        assert!(enrollment_holds(Some(10), 9_999));
        assert!(!enrollment_holds(Some(10), 10_000), "expired at exp");
        assert!(!enrollment_holds(None, 0));
        assert!(!enrollment_holds(Some(0), 0));
        assert!(
            enrollment_holds(Some(u64::MAX), u64::MAX - 1),
            "no overflow"
        );
    }

    #[test]
    fn a_mute_is_in_force_while_muted_and_before_its_end() {
        assert!(mute(None).in_force(u64::MAX));
        assert!(mute(Some(T0)).in_force(T0 - 1));
        assert!(!mute(Some(T0)).in_force(T0), "ended at untilMs");
        let lifted = MuteState {
            muted: false,
            ..mute(None)
        };
        assert!(!lifted.in_force(T0));
    }

    #[test]
    fn mute_commands_apply_in_command_order_and_a_redelivery_is_written_again() {
        let change = |at_ms: u64, command_id: &str| MuteChange {
            room_id: room("1"),
            target: id("GID_student@@@002"),
            by: id("GID_teacher@@@001"),
            muted: true,
            until_ms: None,
            at_ms,
            command_id: command_id.to_owned(),
        };
        let first = change(T0, "c1");
        assert_eq!(first.outcome_over(None), MuteOutcome::Written);
        let item = first.applied();
        assert_eq!(item.changed_at_ms, Some(T0));
        assert_eq!(
            first.outcome_over(Some(&item)),
            MuteOutcome::Written,
            "redelivery"
        );
        assert_eq!(
            change(T0 + 1, "c2").outcome_over(Some(&item)),
            MuteOutcome::Written
        );
        assert_eq!(
            change(T0, "c2").outcome_over(Some(&item)),
            MuteOutcome::Superseded,
            "not newer"
        );
        assert_eq!(
            change(T0 - 1, "c0").outcome_over(Some(&item)),
            MuteOutcome::Superseded
        );
        let legacy = MuteState {
            changed_at_ms: None,
            command_id: None,
            ..item
        };
        assert_eq!(
            change(1, "c3").outcome_over(Some(&legacy)),
            MuteOutcome::Written
        );
    }

    #[test]
    fn chat_is_refused_not_enrolled_first_then_muted_then_by_the_policy() {
        let r = rule(Mode::Reject);
        let o = origin("GID_student@@@001", "/message");
        let body = r#"{"roomId":"1","msg":"你是笨蛋","msgId":"s1-1"}"#;
        let reason = |standing: &Standing, body: &str| decide(&r, &o, body, standing).fact;
        let muted = Standing {
            mute: Some(mute(None)),
            ..enrolled()
        };
        let not_enrolled_but_muted = Standing {
            enrollment_expires_at_s: None,
            ..muted.clone()
        };
        assert_eq!(
            reason(&not_enrolled_but_muted, body),
            Fact::Refused {
                reason: Refusal::NotEnrolled
            }
        );
        assert_eq!(
            reason(&muted, body),
            Fact::Refused {
                reason: Refusal::Muted
            }
        );
        assert_eq!(
            reason(&enrolled(), body),
            Fact::Refused {
                reason: Refusal::BannedWords
            }
        );
        let ended = Standing {
            mute: Some(mute(Some(T0))),
            ..enrolled()
        };
        assert_eq!(
            reason(&ended, r#"{"roomId":"1","msg":"hi"}"#),
            Fact::Delivered {
                room_id: room("1"),
                masked: false
            }
        );
        for (body, refusal) in [
            (r#"{"roomId":"1","msg":"   "}"#, Refusal::InvalidMessage),
            (
                r#"{"roomId":"1","msg":"123456789012345678901"}"#,
                Refusal::TooLong,
            ),
        ] {
            assert_eq!(reason(&enrolled(), body), Fact::Refused { reason: refusal });
        }
        let d = decide(&r, &o, body, &muted);
        assert!(d.writes.is_empty() && d.members_of.is_none() && d.if_superseded.is_none());
        assert_eq!(
            wire(&d.notices),
            [(
                "/p2p/GID_student@@@001".to_owned(),
                r#"{"type":"rejected","reason":"muted","roomId":"1","refMsgId":"s1-1","msgId":"m1:rejected","ts":1732240000000}"#.to_owned()
            )]
        );
    }

    #[test]
    fn unreadable_bodies_are_refused_before_any_read_and_other_sub_topics_fail() {
        let r = rule(Mode::Mask);
        let chat = origin("GID_student@@@001", "/message");
        assert_eq!(
            r.plan(&chat, "not a chat").unwrap(),
            Plan::Refused {
                reason: Refusal::InvalidMessage,
                room_id: None
            }
        );
        let command = origin("GID_teacher@@@001", "/command");
        let plan = r.plan(&command, r#"{"type":"kick","roomId":"1"}"#).unwrap();
        assert_eq!(
            plan,
            Plan::Refused {
                reason: Refusal::InvalidCommand,
                room_id: None
            }
        );
        let d = r.decide(&command, plan, &Standing::default());
        assert_eq!(
            wire(&d.notices),
            [(
                "/p2p/GID_teacher@@@001".to_owned(),
                r#"{"type":"rejected","reason":"invalid_command","msgId":"m1:rejected","ts":1732240000000}"#.to_owned()
            )]
        );
        let status = origin("GID_student@@@001", "/status");
        assert!(matches!(
            r.plan(&status, "{}"),
            Err(MappingError::InvalidAttribute {
                name: keys::SECOND,
                ..
            })
        ));
    }

    #[test]
    fn plans_read_the_standing_for_a_chat_and_the_enrollment_for_an_authorized_command() {
        let r = rule(Mode::Mask);
        let chat = r
            .plan(
                &origin("GID_student@@@001", "/message"),
                r#"{"roomId":"7","msg":"x"}"#,
            )
            .unwrap();
        assert_eq!(chat.read(), Some(Read::Standing(&room("7"))));
        let join = r
            .plan(
                &origin("GID_student@@@001", "/command"),
                r#"{"type":"join","roomId":"7"}"#,
            )
            .unwrap();
        assert_eq!(join.read(), Some(Read::Joining(&room("7"))));
        let unmute = r
            .plan(
                &origin("GID_teacher@@@001", "/command"),
                r#"{"type":"unmute","roomId":"7","target":"GID_student@@@002"}"#,
            )
            .unwrap();
        assert_eq!(unmute.read(), Some(Read::Enrollment(&room("7"))));
        let mute = r#"{"type":"mute","roomId":"7","target":"GID_student@@@002"}"#;
        let refused = r
            .plan(&origin("GID_student@@@001", "/command"), mute)
            .unwrap();
        assert_eq!(
            refused,
            Plan::Refused {
                reason: Refusal::NotTeacher,
                room_id: Some(room("7"))
            }
        );
        assert_eq!(refused.read(), None, "a student's mute costs no read");
    }

    #[test]
    fn a_command_outside_the_senders_rooms_is_refused_and_writes_nothing() {
        let r = rule(Mode::Mask);
        let o = origin("GID_teacher@@@001", "/command");
        for body in [
            r#"{"type":"join","roomId":"2"}"#,
            r#"{"type":"mute","roomId":"2","target":"GID_student@@@002"}"#,
        ] {
            let d = decide(&r, &o, body, &Standing::default());
            assert!(d.writes.is_empty(), "{body}");
            assert_eq!(
                d.fact,
                Fact::Refused {
                    reason: Refusal::NotEnrolled
                }
            );
            assert!(d.notices[0].body().contains(r#""roomId":"2""#));
        }
    }

    #[test]
    fn a_teachers_join_asks_for_the_members_and_a_students_does_not() {
        let r = rule(Mode::Mask);
        let body = r#"{"type":"join","roomId":"1"}"#;
        let teacher = decide(
            &r,
            &origin("GID_teacher@@@001", "/command"),
            body,
            &enrolled(),
        );
        assert_eq!(teacher.members_of, Some(room("1")));
        assert_eq!(
            teacher.writes,
            [Write::Join(Join {
                room_id: room("1"),
                client_id: id("GID_teacher@@@001"),
                role: Role::Teacher,
                at_ms: T0,
                max_rooms: DEFAULT_MAX_ROOMS_PER_CLIENT,
            })]
        );
        let student = decide(
            &r,
            &origin("GID_student@@@001", "/command"),
            body,
            &enrolled(),
        );
        assert_eq!(student.members_of, None);
        assert_eq!(
            wire(&student.notices),
            [
                (
                    "/status/1".to_owned(),
                    r#"{"type":"online","clientId":"GID_student@@@001","roomId":"1","msgId":"m1:status","ts":1732240000000}"#.to_owned()
                ),
                (
                    "/p2p/GID_student@@@001".to_owned(),
                    r#"{"type":"commandResult","command":"join","ok":true,"roomId":"1","target":null,"msgId":"m1:result","ts":1732240000000}"#.to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_member_list_says_who_is_online_and_whose_mute_is_in_force() {
        let r = rule(Mode::Mask);
        let o = origin("GID_teacher@@@001", "/command");
        let member = |c: &str, role: &str| Membership {
            client_id: id(c),
            role: role.to_owned(),
        };
        let read = RoomMembers {
            members: vec![
                member("GID_teacher@@@001", "teacher"),
                member("GID_student@@@002", "student"),
                member("GID_student@@@001", "student"),
            ],
            mutes: vec![
                (id("GID_student@@@002"), mute(Some(T0 + 1))),
                (id("GID_student@@@001"), mute(Some(T0))),
                (id("GID_student@@@009"), mute(None)),
            ],
            online: vec![id("GID_student@@@001")],
        };
        let notices = r.members(&o, &room("1"), read);
        assert_eq!(
            wire(&notices),
            [(
                "/p2p/GID_teacher@@@001".to_owned(),
                r#"{"type":"members","roomId":"1","members":[{"clientId":"GID_student@@@001","role":"student","online":true,"muted":false},{"clientId":"GID_student@@@002","role":"student","online":false,"muted":true},{"clientId":"GID_teacher@@@001","role":"teacher","online":false,"muted":false}],"part":1,"parts":1,"msgId":"m1:members-1","ts":1732240000000}"#.to_owned()
            )]
        );
    }

    #[test]
    fn a_mute_tells_the_student_and_the_teacher_unless_it_is_superseded() {
        let r = rule(Mode::Mask);
        let o = origin("GID_teacher@@@001", "/command");
        let d = decide(
            &r,
            &o,
            r#"{"type":"mute","roomId":"1","target":"GID_student@@@002","durationSecs":600}"#,
            &enrolled(),
        );
        assert_eq!(
            d.writes,
            [Write::Mute(MuteChange {
                room_id: room("1"),
                target: id("GID_student@@@002"),
                by: id("GID_teacher@@@001"),
                muted: true,
                until_ms: Some(T0 + 600_000),
                at_ms: T0,
                command_id: "m1".to_owned(),
            })]
        );
        assert_eq!(
            wire(&d.notices),
            [
                (
                    "/p2p/GID_student@@@002".to_owned(),
                    r#"{"type":"mute","roomId":"1","by":"GID_teacher@@@001","until":1732240600000,"msgId":"m1:mute","ts":1732240000000}"#.to_owned()
                ),
                (
                    "/p2p/GID_teacher@@@001".to_owned(),
                    r#"{"type":"commandResult","command":"mute","ok":true,"roomId":"1","target":"GID_student@@@002","msgId":"m1:result","ts":1732240000000}"#.to_owned()
                ),
            ]
        );
        assert_eq!(
            wire(d.if_superseded.as_deref().unwrap_or_default()),
            [(
                "/p2p/GID_teacher@@@001".to_owned(),
                r#"{"type":"commandResult","command":"mute","ok":false,"roomId":"1","target":"GID_student@@@002","msgId":"m1:result","ts":1732240000000}"#.to_owned()
            )]
        );
    }

    /// A chat from `sender` at `T0 + offset_ms` counted `n`th in its window.
    fn counted(r: &Moderation, sender: &str, offset_ms: u64, n: u64, body: &str) -> Decision {
        let o = Origin {
            ts: T0 + offset_ms,
            ..origin(sender, "/message")
        };
        let window = r.chat_window(&o).expect("a chat is counted");
        assert_eq!(window.start_ms, T0, "T0 starts a window");
        let plan = r.plan(&o, body).unwrap();
        r.decide(
            &o,
            plan,
            &Standing {
                chats_in_window: Some(n),
                ..enrolled()
            },
        )
    }

    #[test]
    fn the_chat_rate_tells_the_first_chat_over_it_and_drops_the_rest_of_the_window() {
        let rate = ChatRate::default();
        assert_eq!((rate.chats(), rate.window_ms()), (10, 1_000));
        let verdicts: Vec<RateVerdict> = (1..=13).map(|n| rate.verdict(n)).collect();
        assert_eq!(verdicts[..10], [RateVerdict::Within; 10]);
        assert_eq!(
            verdicts[10..],
            [
                RateVerdict::Refused,
                RateVerdict::RefusedSilently,
                RateVerdict::RefusedSilently
            ]
        );
        assert_eq!(ChatRate::new(0, 1_000), None, "0 chats: off");
        assert_eq!(ChatRate::new(10, 0), None);
        let one = ChatRate::new(u64::MAX, 1).unwrap();
        assert_eq!(one.verdict(u64::MAX), RateVerdict::Within, "no overflow");

        let r = rule(Mode::Mask);
        let body = r#"{"roomId":"1","msg":"hi","msgId":"s1-11"}"#;
        assert!(matches!(
            counted(&r, "GID_student@@@001", 999, 10, body).fact,
            Fact::Delivered { .. }
        ));
        let told = counted(&r, "GID_student@@@001", 999, 11, body);
        assert_eq!(
            wire(&told.notices),
            [(
                "/p2p/GID_student@@@001".to_owned(),
                format!(
                    r#"{{"type":"rejected","reason":"rate_limited","roomId":"1","refMsgId":"s1-11","msgId":"m1:rejected","ts":{}}}"#,
                    T0 + 999
                )
            )]
        );
        let dropped = counted(&r, "GID_student@@@001", 999, 12, body);
        assert!(dropped.notices.is_empty() && dropped.writes.is_empty());
        assert_eq!(
            dropped.fact,
            Fact::RefusedSilently {
                reason: Refusal::RateLimited,
                chats_in_window: 12
            }
        );
    }

    #[test]
    fn the_rate_comes_first_and_counts_unreadable_chats_but_not_commands() {
        let r = rule(Mode::Reject);
        // Over the rate, a chat that would be refused for its room, its mute or its words
        // gets the one rate notice: a flood of refusals is not a flood of notices.
        let banned = r#"{"roomId":"2","msg":"笨蛋"}"#;
        let told = counted(&r, "GID_student@@@001", 0, 11, banned);
        assert_eq!(
            told.fact,
            Fact::Refused {
                reason: Refusal::RateLimited
            }
        );
        assert!(matches!(
            counted(&r, "GID_student@@@001", 0, 12, "not a chat").fact,
            Fact::RefusedSilently { .. }
        ));
        let unreadable = counted(&r, "GID_student@@@001", 0, 11, "not a chat");
        assert!(
            unreadable.notices[0]
                .body()
                .contains(r#""reason":"rate_limited""#)
        );
        assert!(
            counted(&r, "GID_student@@@001", 0, 3, "not a chat").notices[0]
                .body()
                .contains(r#""reason":"invalid_message""#)
        );
        // Commands are not counted; a stray count on one does not refuse it.
        let command = origin("GID_student@@@001", "/command");
        assert_eq!(r.chat_window(&command), None);
        let plan = r.plan(&command, r#"{"type":"join","roomId":"1"}"#).unwrap();
        let standing = Standing {
            chats_in_window: Some(99),
            rooms: Some(Vec::new()),
            ..enrolled()
        };
        assert!(matches!(
            r.decide(&command, plan, &standing).fact,
            Fact::Joined { .. }
        ));
        // Off: nothing is counted and nothing refused for the rate.
        let off = rule(Mode::Mask).with_chat_rate(None);
        assert_eq!(
            off.chat_window(&origin("GID_student@@@001", "/message")),
            None
        );
        let o = origin("GID_student@@@001", "/message");
        let plan = off.plan(&o, r#"{"roomId":"1","msg":"hi"}"#).unwrap();
        let standing = Standing {
            chats_in_window: Some(1_000),
            ..enrolled()
        };
        assert!(matches!(
            off.decide(&o, plan, &standing).fact,
            Fact::Delivered { .. }
        ));
    }

    #[test]
    fn rate_windows_are_fixed_and_aligned_to_the_epoch() {
        let rate = ChatRate::new(10, 5_000).unwrap();
        let sender = id("GID_student@@@001");
        let w = rate.window(&sender, 1_732_240_003_999);
        assert_eq!(
            (w.start_ms, w.end_ms),
            (1_732_240_000_000, 1_732_240_005_000)
        );
        assert_eq!(rate.window(&sender, 1_732_240_004_999), w);
        assert_ne!(
            rate.window(&sender, 1_732_240_005_000),
            w,
            "the next window"
        );
        assert_ne!(rate.window(&id("GID_student@@@002"), 1_732_240_003_999), w);
    }

    #[test]
    fn a_join_of_a_new_room_at_the_cap_is_refused_and_a_rejoin_is_not() {
        let r = rule(Mode::Mask).with_max_rooms(2);
        let o = origin("GID_student@@@001", "/command");
        let joined = |rooms: &[&str], body: &str| {
            let standing = Standing {
                rooms: Some(rooms.iter().map(|x| room(x)).collect()),
                ..enrolled()
            };
            decide(&r, &o, body, &standing)
        };
        let join_1 = r#"{"type":"join","roomId":"1"}"#;
        assert!(matches!(joined(&["7"], join_1).fact, Fact::Joined { .. }));
        let full = joined(&["7", "8"], join_1);
        assert_eq!(
            full.fact,
            Fact::Refused {
                reason: Refusal::TooManyRooms
            }
        );
        assert!(full.writes.is_empty() && full.members_of.is_none());
        assert_eq!(
            wire(&full.notices),
            [(
                "/p2p/GID_student@@@001".to_owned(),
                r#"{"type":"rejected","reason":"too_many_rooms","roomId":"1","msgId":"m1:rejected","ts":1732240000000}"#.to_owned()
            )]
        );
        assert!(
            matches!(joined(&["1", "8"], join_1).fact, Fact::Joined { .. }),
            "already a member: a redelivery or a second tab"
        );
        let over = joined(&["1", "7", "8"], join_1);
        assert!(
            matches!(over.fact, Fact::Joined { .. }),
            "a lowered cap keeps rejoins"
        );
        // Not enrolled still comes first.
        let refused = decide(
            &r,
            &o,
            r#"{"type":"join","roomId":"3"}"#,
            &Standing::default(),
        );
        assert_eq!(
            refused.fact,
            Fact::Refused {
                reason: Refusal::NotEnrolled
            }
        );
        let Write::Join(join) = &joined(&[], join_1).writes[0] else {
            panic!("a join writes the membership")
        };
        assert_eq!(join.max_rooms, 2);
        assert!(join.fits(&[room("7")]) && !join.fits(&[room("7"), room("8")]));
    }
}
