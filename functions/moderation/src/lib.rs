//! The moderation rule function (SPEC §5): backend messages (§4.2) from `roomSend/message`
//! and `roomSend/command` in; chat fanned out to `room/message/<roomId>`, mutes and
//! memberships in DynamoDB, P2P notices to the people concerned, through the downlink queue.
//!
//! # Layout
//! - [`Function`]: built once per container from the environment (the banned-word automaton
//!   included); [`Function::handle`] is the per-invocation entry point, shared by the Lambda
//!   `main` and the local event-source runner.
//! - [`store`]: the DynamoDB adapter (mutes with command ordering, memberships, the
//!   enrollments the issuer writes).
//!
//! # One record
//! The sender is the broker-verified `clientId` attribute, never a field of the body.
//! - Chat: refused (P2P `rejected`, reason `not_enrolled`) when the sender is not enrolled in
//!   the room, then (`muted`) when it is muted there: both read in one `BatchGetItem`, the
//!   only DynamoDB request of a chat; moderated by the policy (mask, or refuse with
//!   `banned_words` / `too_long`); otherwise fanned out to the room.
//! - Command: parsed (`invalid_command` when it cannot be), authorized (only a teacher mutes,
//!   only a student is muted), refused with `not_enrolled` when the sender is not enrolled in
//!   the command's room (a `join`, and a teacher's `mute` / `unmute`: a teacher moderates
//!   only the rooms its token grants), applied in DynamoDB, then the student gets a P2P
//!   `mute` / `unmute` and the sender a `commandResult`. A `join` makes the sender a member (the
//!   presence function announces its later transitions to the room) and announces it `online`
//!   on `room/status/<roomId>` right away, since it was no member when it connected; a
//!   teacher who joins also gets a P2P `members` notice (who is in the room, online, muted).
//!
//! # Enrollment
//! The uplink topic (`roomSend/message`) carries no room, so the broker cannot stop a client
//! from naming any room in its chat body: the issuer records which rooms each classroom token
//! grants (`EnrollmentTable`, SPEC §8) and moderation refuses a chat or command for any other
//! room (defence in depth behind the broker's read filters). An enrollment counts until its
//! `expiresAt` (the token's expiry), compared with the record's broker time, whether
//! DynamoDB's TTL has deleted it yet or not ([`store`]). A refused chat reaches nobody; a
//! refused command changes nothing.
//!
//! What a client did wrong is answered with a notice and the record succeeds: it is handled.
//! A record that is not a §4.2 message at all (no `clientId`, unknown sub-topic) fails and
//! goes to the dead-letter queue. Records are handled in batch order (a mute then a chat from
//! the muted student in one batch gives a refusal); the notices of the whole batch are then
//! sent together, and a record succeeds only once its notices are in the downlink queue.
//! Notice IDs derive from the record's `mqttMessageId`, so a redelivery resends the same IDs.

pub mod store;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use kit::{
    BatchError, ConfigError, Env, Outcome, OutgoingMessage, RecordError, SqsSender, process_batch,
};
use mapping::moderation::DEFAULT_MAX_MESSAGE_CHARS;
use mapping::uplink::keys;
use mapping::{
    ChatMessage, ChatNotice, ClientId, Command, MappingError, Mode, Notice, P2pBody, P2pNotice,
    Parent, Policy, RejectedReason, Role, Roles, RoomId, RulesConfig, StatusNotice, SubTopic,
    Verdict, authorize, members_notices, notice_id,
};
use tracing::{Instrument, info};

use crate::store::{Applied, ModerationStore, MuteChange, StoreError, Tables};

/// A store failure at the record boundary: always worth a retry.
impl From<StoreError> for RecordError {
    fn from(e: StoreError) -> Self {
        RecordError::transient("dynamodb", e)
    }
}

/// The moderation function.
#[derive(Debug, Clone)]
pub struct Function {
    store: ModerationStore,
    sender: SqsSender,
    downlink_queue_url: String,
    policy: Policy,
    roles: Roles,
    rules: RulesConfig,
}

/// The §4.2 attributes moderation reads from a backend message.
#[derive(Debug, Clone)]
struct Source {
    sender: ClientId,
    sub: SubTopic,
    id: String,
    ts: u64,
}

fn attr<'m>(m: &'m SqsMessage, key: &str) -> Option<&'m str> {
    m.message_attributes
        .get(key)
        .and_then(|a| a.string_value.as_deref())
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(
        store: ModerationStore,
        sender: SqsSender,
        downlink_queue_url: String,
        policy: Policy,
        roles: Roles,
        rules: RulesConfig,
    ) -> Self {
        Self {
            store,
            sender,
            downlink_queue_url,
            policy,
            roles,
            rules,
        }
    }

    /// The same function over another DynamoDB client (tests count its requests with an
    /// interceptor).
    #[must_use]
    pub fn with_dynamodb(self, client: aws_sdk_dynamodb::Client) -> Self {
        Self {
            store: self.store.with_client(client),
            ..self
        }
    }

    /// Builds the function from the environment: `MUTE_TABLE`, `MEMBERSHIP_TABLE`,
    /// `DOWNLINK_QUEUE_URL`, `BANNED_WORDS` (comma-separated, may be empty), `MODERATION_MODE`
    /// (`mask` | `reject`, default `mask`), `MAX_MESSAGE_CHARS` (default 500),
    /// `TEACHER_GROUPS` (default `GID_teacher`), `STUDENT_GROUPS` (default `GID_student`),
    /// `PRESENCE_TABLE` (a `join` adds the room to the client's head item there),
    /// `ENROLLMENT_TABLE` (the issuer's enrollments; always checked, there is no switch) and
    /// the shared rules variables.
    pub fn from_env_with(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rules = env.rules()?;
        let mute = env.required("MUTE_TABLE", "set it to the MuteTable name")?;
        let membership = env.required("MEMBERSHIP_TABLE", "set it to the MembershipTable name")?;
        let downlink = env.required("DOWNLINK_QUEUE_URL", "set it to the downlink queue URL")?;
        let mode_text = env.or("MODERATION_MODE", "mask");
        let mode = Mode::parse(&mode_text).ok_or_else(|| ConfigError::Invalid {
            var: "MODERATION_MODE",
            value: mode_text.clone(),
            problem: "must be mask or reject".to_owned(),
        })?;
        let max_chars: usize = env.parse_or("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS)?;
        let words = env.or("BANNED_WORDS", "");
        let policy =
            Policy::from_list(&words, mode, max_chars).map_err(|e| ConfigError::Invalid {
                var: if max_chars == 0 {
                    "MAX_MESSAGE_CHARS"
                } else {
                    "BANNED_WORDS"
                },
                value: if max_chars == 0 {
                    "0".to_owned()
                } else {
                    format!("{} words", words.split(',').count())
                },
                problem: e.to_string(),
            })?;
        let roles = env.roles()?;
        let presence = env.required("PRESENCE_TABLE", "set it to the PresenceTable name")?;
        let enrollment = env.required("ENROLLMENT_TABLE", "set it to the EnrollmentTable name")?;
        if enrollment == mute {
            // One BatchGetItem reads both, keyed by table name: they cannot be one table.
            return Err(ConfigError::Invalid {
                var: "ENROLLMENT_TABLE",
                value: enrollment,
                problem: "is also MUTE_TABLE; the enrollments have their own table".to_owned(),
            });
        }
        let store = ModerationStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            Tables {
                mute,
                membership,
                presence,
                enrollment,
            },
        );
        Ok(Self::new(
            store,
            SqsSender::new(aws_sdk_sqs::Client::new(sdk)),
            downlink,
            policy,
            roles,
            rules,
        ))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await)
    }

    /// Handles one batch of backend messages (see the crate docs).
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(&event, |records| async move {
            let mut outcomes: Vec<Outcome> = Vec::with_capacity(records.len());
            let mut pending: Vec<(usize, Notice)> = Vec::new();
            for (i, record) in records.iter().enumerate() {
                let decided = Box::pin(self.decide(record.message, record.message_id))
                    .instrument(record.span.clone())
                    .await;
                match decided {
                    Ok(notices) => {
                        pending.extend(notices.into_iter().map(|n| (i, n)));
                        outcomes.push(Ok(()));
                    }
                    Err(e) => outcomes.push(Err(e)),
                }
            }
            if !pending.is_empty() {
                let messages: Vec<OutgoingMessage> = pending
                    .iter()
                    .map(|(_, n)| n.to_downlink().into())
                    .collect();
                let results = self
                    .sender
                    .send_all(&self.downlink_queue_url, &messages)
                    .await;
                for ((i, _), result) in pending.iter().zip(results) {
                    if let Err(e) = result
                        && outcomes[*i].is_ok()
                    {
                        outcomes[*i] = Err(e.into());
                    }
                }
            }
            outcomes
        })
        .await
    }

    fn source(&self, m: &SqsMessage, sqs_id: &str) -> Result<Source, MappingError> {
        if let Some(parent) = attr(m, keys::PARENT) {
            let parent = Parent::parse(parent).map_err(MappingError::Topic)?;
            if !self.rules.is_uplink(&parent) {
                return Err(MappingError::NotUplink {
                    parent: parent.to_string(),
                });
            }
        }
        let sender = ClientId::parse(
            attr(m, keys::CLIENT_ID).ok_or(MappingError::MissingAttribute(keys::CLIENT_ID))?,
        )
        .map_err(MappingError::ClientId)?;
        let sub = SubTopic::parse(
            attr(m, keys::SECOND).ok_or(MappingError::MissingAttribute(keys::SECOND))?,
        )?;
        let ts = match attr(m, keys::TIMESTAMP) {
            None => kit::now_ms(),
            Some(t) => t
                .trim()
                .parse()
                .map_err(|_| MappingError::InvalidAttribute {
                    name: keys::TIMESTAMP,
                    reason: format!("{t:?} is not milliseconds"),
                })?,
        };
        let id = attr(m, keys::MESSAGE_ID).unwrap_or(sqs_id).to_owned();
        Ok(Source {
            sender,
            sub,
            id,
            ts,
        })
    }

    /// Decides one record: its effects are written, its notices returned for sending.
    async fn decide(&self, m: &SqsMessage, sqs_id: &str) -> Result<Vec<Notice>, RecordError> {
        let src = self.source(m, sqs_id)?;
        let body = m.body.as_deref().unwrap_or_default();
        match src.sub.first_level() {
            "message" => self.chat(&src, body).await,
            "command" => self.command(&src, body).await,
            other => Err(MappingError::InvalidAttribute {
                name: keys::SECOND,
                reason: format!("moderation handles /message and /command, not /{other}"),
            }
            .into()),
        }
    }

    fn rejected(
        &self,
        src: &Source,
        reason: RejectedReason,
        room: Option<RoomId>,
        ref_msg_id: Option<String>,
    ) -> Notice {
        info!(sender = %src.sender, reason = reason.as_str(), "refused");
        Notice::from(P2pNotice {
            to: src.sender.clone(),
            body: P2pBody::Rejected {
                reason,
                room_id: room,
                ref_msg_id,
            },
            msg_id: notice_id(&src.id, "rejected"),
            ts: src.ts,
        })
    }

    async fn chat(&self, src: &Source, body: &str) -> Result<Vec<Notice>, RecordError> {
        let chat = match ChatMessage::from_json(body) {
            Ok(c) => c,
            Err(_) => {
                return Ok(vec![self.rejected(
                    src,
                    RejectedReason::InvalidMessage,
                    None,
                    None,
                )]);
            }
        };
        let standing = self
            .store
            .chat_standing(&chat.room_id, &src.sender, src.ts)
            .await?;
        // Not enrolled first: a client learns nothing of a room it has no part in.
        let refusal = if !standing.enrolled {
            Some(RejectedReason::NotEnrolled)
        } else if standing.muted {
            Some(RejectedReason::Muted)
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Ok(vec![self.rejected(
                src,
                reason,
                Some(chat.room_id),
                chat.client_msg_id,
            )]);
        }
        match self.policy.verdict(&chat.msg) {
            Verdict::Reject { reason } => Ok(vec![self.rejected(
                src,
                reason.into(),
                Some(chat.room_id),
                chat.client_msg_id,
            )]),
            Verdict::Deliver { text, masked } => {
                info!(sender = %src.sender, room_id = %chat.room_id, masked, "chat delivered");
                Ok(vec![Notice::from(ChatNotice {
                    msg_id: notice_id(&src.id, "msg"),
                    peer: src.sender.clone(),
                    room_id: chat.room_id,
                    msg: text,
                    masked,
                    ts: src.ts,
                })])
            }
        }
    }

    async fn command(&self, src: &Source, body: &str) -> Result<Vec<Notice>, RecordError> {
        let command = match Command::from_json(body) {
            Ok(c) => c,
            Err(_) => {
                return Ok(vec![self.rejected(
                    src,
                    RejectedReason::InvalidCommand,
                    None,
                    None,
                )]);
            }
        };
        if let Err(refusal) = authorize(&src.sender, &command, &self.roles) {
            return Ok(vec![self.rejected(
                src,
                refusal.into(),
                Some(command.room_id().clone()),
                None,
            )]);
        }
        // After the pure checks, so a student's mute costs no read.
        if !self
            .store
            .is_enrolled(&src.sender, command.room_id(), src.ts)
            .await?
        {
            return Ok(vec![self.rejected(
                src,
                RejectedReason::NotEnrolled,
                Some(command.room_id().clone()),
                None,
            )]);
        }
        let p2p = |to: &ClientId, suffix: &str, body: P2pBody| {
            Notice::from(P2pNotice {
                to: to.clone(),
                body,
                msg_id: notice_id(&src.id, suffix),
                ts: src.ts,
            })
        };
        let result = |ok: bool| {
            p2p(
                &src.sender,
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
                let sender_role = self.roles.role_of(&src.sender);
                let role = match sender_role {
                    Role::Teacher => "teacher",
                    Role::Student => "student",
                    Role::Other => "other",
                };
                self.store.join(room_id, &src.sender, src.ts, role).await?;
                info!(sender = %src.sender, room_id = %room_id, "joined");
                // The joiner is online (it just published), but the presence function could
                // not announce it to this room when it connected: it was no member yet.
                let online = Notice::from(StatusNotice::new(
                    true,
                    src.sender.clone(),
                    room_id.clone(),
                    notice_id(&src.id, "status"),
                    src.ts,
                ));
                let mut notices = vec![online, result(true)];
                // A teacher's member list is right from the start, not only after the next
                // status notices: who is in the room, online and muted, read after the join
                // was written (so it includes the teacher).
                if sender_role == Role::Teacher {
                    let members = self.store.members(room_id, src.ts).await?;
                    notices.extend(members_notices(
                        &src.sender,
                        room_id,
                        members,
                        &src.id,
                        src.ts,
                    ));
                }
                Ok(notices)
            }
            Command::Mute {
                room_id, target, ..
            }
            | Command::Unmute { room_id, target } => {
                let muted = matches!(command, Command::Mute { .. });
                let until_ms = command.mute_until(src.ts);
                let applied = self
                    .store
                    .change_mute(&MuteChange {
                        room: room_id,
                        target,
                        by: &src.sender,
                        muted,
                        until_ms,
                        at_ms: src.ts,
                        command_id: &src.id,
                    })
                    .await?;
                info!(sender = %src.sender, target = %target, room_id = %room_id, command = command.name(), applied = ?applied, "mute command");
                if applied == Applied::Superseded {
                    return Ok(vec![result(false)]);
                }
                let notice = if muted {
                    P2pBody::Mute {
                        room_id: room_id.clone(),
                        by: src.sender.clone(),
                        until: until_ms,
                    }
                } else {
                    P2pBody::Unmute {
                        room_id: room_id.clone(),
                        by: src.sender.clone(),
                    }
                };
                Ok(vec![p2p(target, command.name(), notice), result(true)])
            }
        }
    }
}
