//! The moderation function (§5): backend messages (§4.2) from `roomSend/message` and
//! `roomSend/command` in; chat fanned out to `room/message/<roomId>`, mutes and memberships
//! in DynamoDB, P2P notices to the people concerned, through the downlink queue.
//!
//! The rule itself (what is refused and why, what a join or a mute writes and announces, when
//! a mute is in force, when an enrollment holds) is `mapping::classroom::moderation`, pure and
//! read top to bottom in one file; the DynamoDB adapter is `stores::moderation`. This crate is
//! the shell around them.
//!
//! # Layout
//! - [`Function`]: built once per container from the environment (the banned-word automaton
//!   included); [`Function::handle`] is the per-invocation entry point, shared by the Lambda
//!   `main` and the local event-source runner.
//!
//! # One batch
//! The clock is read once per batch (`now` stands in for a record without a `timestamp`).
//! Each record, in batch order, is:
//! 1. decoded ([`Origin::decode`]: `clientId`, `mqttSecondTopic`, `mqttMessageId`,
//!    `timestamp`, the uplink parent);
//! 2. planned ([`Moderation::plan`]: parse, authorize), and the state the plan asks for read
//!    (a chat: the sender's mute and enrollment in one `BatchGetItem`; a `join`: the sender's
//!    enrollment and the rooms on its presence head in one `BatchGetItem`, for the rooms cap;
//!    a `mute` / `unmute`: the sender's enrollment, one `GetItem`). A chat is also counted in
//!    its sender's rate window ([`Moderation::chat_window`]): one `UpdateItem` `ADD` on the
//!    ChatRateTable, sent concurrently with the read (`tokio::join!`), so a chat costs two
//!    DynamoDB requests, one read and one write, in the time of one round trip (an unreadable
//!    chat: the write alone);
//! 3. decided ([`Moderation::decide`]), the decision's writes made (a `join`: one
//!    transaction; a `mute` / `unmute`: one conditional `UpdateItem`, which a newer command
//!    may supersede), and for a teacher's join the room's members read
//!    ([`Moderation::members`]);
//! 4. logged, one line per record with what happened.
//!
//! Then the notices of the whole batch are sent together ([`kit::Fanout`]), and a record
//! succeeds only once its notices are in the downlink queue. Records are handled in batch
//! order, so a mute then a chat from the muted student in one batch gives a refusal.
//!
//! # Flood control and the rooms cap
//! `CHAT_RATE_LIMIT` chats (default 10) per `CHAT_RATE_WINDOW_SECS` (default 1) per sender;
//! `CHAT_RATE_LIMIT=0` turns the limit off (no counter is written; `CHAT_RATE_TABLE` is then
//! not needed). The first chat over the limit in a window gets one `rejected` `rate_limited`
//! notice, the later ones of that window are dropped with a log line (`refused silently`) and
//! no notice. Windows are fixed and aligned to the epoch, in the record's broker time: a
//! sender can get up to twice the limit through within one window's length across a window
//! boundary (the "small burst"). The counter lives in DynamoDB (one item per sender and
//! window, deleted by TTL an hour after the window), so it holds across concurrent
//! containers; it costs one write request unit per chat. A redelivered chat counts again
//! (at-least-once): a chat whose record failed after it was counted may be refused on its
//! retry when the window was full by then.
//!
//! `MAX_ROOMS_PER_CLIENT` (default 20): a `join` of a room the client is not yet a member of,
//! when it is already a member of that many, is refused with `too_many_rooms`; a join of one
//! of its rooms always succeeds. The count is the `rooms` set of its presence head item, read
//! with the enrollment (no extra request), and the join's transaction is conditioned on it,
//! so two racing joins cannot pass the cap together (the loser fails and is retried, then
//! refused).
//!
//! What a client did wrong is answered with a notice and the record succeeds: it is handled.
//! A record that is not a §4.2 message for moderation (no `clientId`, a sub-topic other than
//! `/message` and `/command`) fails and goes to the dead-letter queue; a DynamoDB failure
//! fails the record for a retry. Notice IDs derive from the record's `mqttMessageId`, so a
//! redelivery resends the same IDs.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use kit::{
    BatchError, ConfigError, Env, Fanout, Metrics, OutgoingMessage, Record, RecordError, Settler,
    SqsSender, process_batch,
};
use mapping::classroom::moderation::{
    ChatRate, DEFAULT_CHAT_RATE_LIMIT, DEFAULT_CHAT_RATE_WINDOW_MS, DEFAULT_MAX_ROOMS_PER_CLIENT,
    Decision, Fact, Moderation, MuteOutcome, Plan, Write,
};
use mapping::moderation::DEFAULT_MAX_MESSAGE_CHARS;
use mapping::outflow::Origin;
use mapping::{Mode, Notice, Policy, RulesConfig};
use stores::StoreError;
use stores::moderation::{ModerationStore, Tables};
use tracing::{Instrument, info};

/// The moderation function.
#[derive(Debug, Clone)]
pub struct Function {
    store: ModerationStore,
    sender: SqsSender,
    downlink_queue_url: String,
    rule: Moderation,
    rules: RulesConfig,
    settler: Option<Settler>,
}

/// A store failure at the record boundary: always worth a retry.
fn transient(e: StoreError) -> RecordError {
    RecordError::transient("dynamodb", e)
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(
        store: ModerationStore,
        sender: SqsSender,
        downlink_queue_url: String,
        rule: Moderation,
        rules: RulesConfig,
    ) -> Self {
        Self {
            store,
            sender,
            downlink_queue_url,
            rule,
            rules,
            settler: None,
        }
    }

    /// The same function settling its failed records with `settler` (dead letters with their
    /// reason, retries after backoff); [`Function::from_env_with`] builds one from the
    /// environment ([`kit::Settler::from_env`]).
    #[must_use]
    pub fn with_settler(self, settler: Settler) -> Self {
        Self {
            settler: Some(settler),
            ..self
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
    /// the shared rules variables; for flood control `CHAT_RATE_LIMIT` (chats per window and
    /// sender, default 10, `0` = off), `CHAT_RATE_WINDOW_SECS` (default 1, at least 1) and
    /// `CHAT_RATE_TABLE` (the ChatRateTable; required unless the limit is off), and
    /// `MAX_ROOMS_PER_CLIENT` (default 20, at least 1).
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
        // One BatchGetItem reads the enrollment with the mute (a chat) or with the presence
        // head (a join), keyed by table name: they cannot be one table.
        for (other, table) in [("MUTE_TABLE", &mute), ("PRESENCE_TABLE", &presence)] {
            if enrollment == *table {
                return Err(ConfigError::Invalid {
                    var: "ENROLLMENT_TABLE",
                    value: enrollment,
                    problem: format!("is also {other}; the enrollments have their own table"),
                });
            }
        }
        let chats: u64 = env.parse_or("CHAT_RATE_LIMIT", DEFAULT_CHAT_RATE_LIMIT)?;
        let window_secs: u64 =
            env.parse_or("CHAT_RATE_WINDOW_SECS", DEFAULT_CHAT_RATE_WINDOW_MS / 1000)?;
        if window_secs == 0 {
            return Err(ConfigError::Invalid {
                var: "CHAT_RATE_WINDOW_SECS",
                value: "0".to_owned(),
                problem:
                    "must be at least 1 second; set CHAT_RATE_LIMIT=0 to turn the chat rate off"
                        .to_owned(),
            });
        }
        let chat_rate = ChatRate::new(chats, window_secs.saturating_mul(1000));
        let chat_rate_table = match chat_rate {
            Some(_) => env.required(
                "CHAT_RATE_TABLE",
                "set it to the ChatRateTable name (or CHAT_RATE_LIMIT=0 to turn the chat rate off)",
            )?,
            None => String::new(),
        };
        let max_rooms: usize =
            env.parse_or("MAX_ROOMS_PER_CLIENT", DEFAULT_MAX_ROOMS_PER_CLIENT)?;
        if max_rooms == 0 {
            return Err(ConfigError::Invalid {
                var: "MAX_ROOMS_PER_CLIENT",
                value: "0".to_owned(),
                problem: "must be at least 1; with 0 no client could join a room".to_owned(),
            });
        }
        let store = ModerationStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            Tables {
                mute,
                membership,
                presence,
                enrollment,
                chat_rate: chat_rate_table,
            },
        );
        Ok(Self::new(
            store,
            SqsSender::new(aws_sdk_sqs::Client::new(sdk)),
            downlink,
            Moderation::new(policy, roles)
                .with_chat_rate(chat_rate)
                .with_max_rooms(max_rooms),
            rules,
        )
        .with_settler(Settler::from_env(env, sdk, "moderation")?))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await)
    }

    /// Handles one batch of backend messages (see the crate docs).
    pub async fn handle(&self, mut event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(&mut event, self.settler.as_ref(), |records| async move {
            let now_ms = kit::now_ms();
            let metrics = Metrics::new("moderation");
            let mut fanout = Fanout::new(records.len());
            for record in &records {
                let notices = Box::pin(self.record(record, now_ms, &metrics))
                    .instrument(record.span.clone())
                    .await;
                fanout.push(notices);
            }
            let outcomes = fanout
                .send_with(async |notices: Vec<&Notice>| {
                    let messages: Vec<OutgoingMessage> =
                        notices.iter().map(|n| n.to_downlink().into()).collect();
                    self.sender
                        .send_all(&self.downlink_queue_url, &messages)
                        .await
                })
                .await;
            metrics.emit();
            outcomes
        })
        .await
    }

    /// One record: decode, plan, read, decide, write, log; its notices are returned for
    /// sending with the batch's.
    async fn record(
        &self,
        record: &Record<'_>,
        now_ms: u64,
        metrics: &Metrics,
    ) -> Result<Vec<Notice>, RecordError> {
        let attr = |key: &str| {
            record
                .message
                .message_attributes
                .get(key)
                .and_then(|a| a.string_value.as_deref())
        };
        let origin = Origin::decode(attr, record.message_id, now_ms, &self.rules)?;
        // A publish the outflow refused (too large, bad topic): its sender is told why.
        let plan = match attr(mapping::outflow::keys::REFUSED) {
            Some(kind) => Plan::refused_upstream(kind),
            None => self.rule.plan(&origin, record.body())?,
        };
        let window = self.rule.chat_window(&origin);
        // A chat's one write (its count) goes out with its one read: no added round trip.
        let (read, count) = tokio::join!(
            async {
                match plan.read() {
                    Some(read) => self.store.read(&origin.sender, read).await.map(Some),
                    None => Ok(None),
                }
            },
            async {
                match &window {
                    Some(window) => self.store.count_chat(window).await.map(Some),
                    None => Ok(None),
                }
            }
        );
        let mut standing = read.map_err(transient)?.unwrap_or_default();
        standing.chats_in_window = count.map_err(transient)?;
        let Decision {
            writes,
            mut notices,
            if_superseded,
            members_of,
            fact,
        } = self.rule.decide(&origin, plan, &standing);
        let mut mute = None;
        for write in &writes {
            match write {
                Write::Join(join) => self.store.join(join).await.map_err(transient)?,
                Write::Mute(change) => {
                    mute = Some(self.store.change_mute(change).await.map_err(transient)?);
                }
            }
        }
        if mute == Some(MuteOutcome::Superseded) {
            notices = if_superseded.unwrap_or_default();
        }
        log(&origin, &fact, mute);
        measure(metrics, &fact, mute);
        // Read after the join was written, so the list includes the teacher.
        if let Some(room) = members_of {
            let members = self.store.room_members(&room).await.map_err(transient)?;
            notices.extend(self.rule.members(&origin, &room, members));
        }
        Ok(notices)
    }
}

/// The record's metrics (see `kit::metrics`): chats delivered and masked, refusals by reason,
/// mutes and unmutes written.
fn measure(metrics: &Metrics, fact: &Fact, mute: Option<MuteOutcome>) {
    match fact {
        Fact::Refused { reason } | Fact::RefusedSilently { reason, .. } => {
            metrics.count_by("Rejected", "Reason", reason.as_str(), 1);
        }
        Fact::Delivered { masked, .. } => {
            metrics.count("ChatsDelivered", 1);
            if *masked {
                metrics.count("ChatsMasked", 1);
            }
        }
        Fact::MuteCommand { .. } if mute == Some(MuteOutcome::Written) => {
            metrics.count("Mutes", 1);
        }
        Fact::Joined { .. } | Fact::MuteCommand { .. } => {}
    }
}

/// The record's one log line.
fn log(origin: &Origin, fact: &Fact, mute: Option<MuteOutcome>) {
    let sender = &origin.sender;
    match fact {
        Fact::Refused { reason } => info!(%sender, reason = reason.as_str(), "refused"),
        Fact::RefusedSilently {
            reason,
            chats_in_window,
        } => info!(
            %sender,
            reason = reason.as_str(),
            chats_in_window,
            "refused silently"
        ),
        Fact::Delivered { room_id, masked } => {
            info!(%sender, %room_id, masked, "chat delivered");
        }
        Fact::Joined { room_id } => info!(%sender, %room_id, "joined"),
        Fact::MuteCommand {
            command,
            target,
            room_id,
        } => info!(%sender, %target, %room_id, command, applied = ?mute, "mute command"),
    }
}
