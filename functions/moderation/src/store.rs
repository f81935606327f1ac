//! The DynamoDB adapter of moderation: `MuteTable` (HASH `roomId`, RANGE `clientId`, TTL
//! `expiresAt` in epoch seconds), `MembershipTable` (HASH `roomId`, RANGE `clientId`), the
//! client's head item in `PresenceTable`, and `EnrollmentTable` (HASH `clientId`, RANGE
//! `roomId`; read only).
//!
//! # Enrollments
//! The issuer writes one `EnrollmentTable` item per client and room when it issues a
//! classroom token (`enrolledAt` N ms, `expiresAt` N s = the token's expiry and the TTL,
//! `role` S; the layout of `shared/stores`' `attrs::enrollment`). An item holds at a time `t`
//! (ms) while `t < expiresAt x 1000`, the token's own rule (expired at `exp`); TTL deletion is
//! lazy (days), so an expired item may still be read and counts as absent, and so does an
//! item without a readable `expiresAt` (fail closed). The time is the record's broker time,
//! as for mutes: "was the sender enrolled when it spoke", the same answer on every
//! redelivery. `role` is not read: roles come from the client's group, as before.
//!
//! # One read per chat
//! [`ModerationStore::chat_standing`] reads the sender's mute item and its enrollment item in
//! one `BatchGetItem` (both strongly consistent: a mute written by the previous record of the
//! batch, an enrollment written just before the token was handed out, are seen). Keys
//! DynamoDB leaves unprocessed are asked for again, with backoff, up to
//! [`BATCH_GET_ROUNDS`] requests in all; only then does the record fail (and is retried).
//!
//! # Memberships
//! A `join` writes, in one transaction, the `MembershipTable` item (`joinedAt` of the first
//! join, `role`) and the room into the `rooms` set of the client's head item in
//! `PresenceTable` ([`mapping::presence::attrs`]). The presence function reads that head with
//! the client's channels in the one Query it makes per event, so a transition costs it no
//! extra read of the memberships. Both writes are idempotent (`if_not_exists`, a set `ADD`):
//! a redelivered join changes nothing.
//!
//! # Mute items
//! One item per room and student: `muted` (BOOL), `untilMs` (N, absent = until unmuted), `by`,
//! `changedAt` (the command's broker time, ms) and `commandId` (the command's message ID).
//! A command is applied only when it is newer than the one that last changed the item, or is
//! that very command: a redelivered mute rewrites the same values (no second effect), and a
//! stale mute delivered after a later unmute is refused by the condition instead of muting
//! again. `expiresAt` lets DynamoDB's TTL remove ended mutes (30 days after an unmute, a day
//! after a timed mute ends); TTL deletion is lazy, so reads compare `untilMs` themselves.
//!
//! # A room's members
//! [`ModerationStore::members`] (for a teacher who joins): one Query of the room's
//! memberships, one of its mutes, and `BatchGetItem` of the members' head items in
//! `PresenceTable` for `online` (projected: nothing else of the presence table is read).

// EnrollmentTable's attributes, as the issuer writes them.
use std::collections::{HashMap, HashSet};
use stores::attrs::enrollment;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, Update};
use mapping::presence::attrs;
use mapping::{ClientId, MemberStatus, RoomId};

/// How long an ended mute item is kept (for the ordering of late commands), seconds.
pub const KEEP_ENDED_SECS: u64 = 30 * 24 * 3600;

/// A DynamoDB failure; worth a retry.
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB {op} failed: {message}")]
pub struct StoreError {
    /// The operation.
    pub op: &'static str,
    /// The SDK error with its context.
    pub message: String,
}

fn call_error<E, R>(op: &'static str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError {
        op,
        message: DisplayErrorContext(&e).to_string(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_str<'a>(item: &'a HashMap<String, AttributeValue>, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Whether a mute item mutes at `now_ms` (`muted` and not past `untilMs`).
fn mute_in_force(item: &HashMap<String, AttributeValue>, now_ms: u64) -> bool {
    let muted = item
        .get("muted")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false);
    let until = item
        .get("untilMs")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok());
    muted && until.is_none_or(|u| now_ms < u)
}

/// Whether an enrollment item holds at `at_ms`: its `expiresAt` (seconds) is still ahead.
/// An item without a readable `expiresAt` does not hold.
fn enrollment_holds(item: &HashMap<String, AttributeValue>, at_ms: u64) -> bool {
    item.get(enrollment::EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|expires_s| at_ms < expires_s.saturating_mul(1000))
}

/// At most this many keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;
/// `BatchGetItem` requests made for one read, the first included, before keys still
/// unprocessed fail it (the record is then retried whole).
pub const BATCH_GET_ROUNDS: u32 = 5;

/// The wait before `BatchGetItem` request `round + 1` (round 1 is the first retry): 20 ms,
/// doubled each time, as DynamoDB asks for unprocessed keys.
fn batch_get_backoff(round: u32) -> std::time::Duration {
    std::time::Duration::from_millis(20u64 << round.saturating_sub(1).min(6))
}

type Item = HashMap<String, AttributeValue>;

/// Where a sender stands in a room when it chats: both from one `BatchGetItem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatStanding {
    /// Enrolled in the room (an enrollment that has not expired).
    pub enrolled: bool,
    /// Muted in the room.
    pub muted: bool,
}

/// A mute or unmute to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuteChange<'a> {
    /// The room.
    pub room: &'a RoomId,
    /// The student.
    pub target: &'a ClientId,
    /// The teacher.
    pub by: &'a ClientId,
    /// `true` to mute, `false` to unmute.
    pub muted: bool,
    /// End of a timed mute, ms.
    pub until_ms: Option<u64>,
    /// The command's broker time, ms.
    pub at_ms: u64,
    /// The command's message ID.
    pub command_id: &'a str,
}

/// Whether a change took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Written (the first time, or again for a redelivery of the same command).
    Written,
    /// A newer command already changed this mute: nothing written.
    Superseded,
}

/// The table names of a [`ModerationStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `MuteTable`.
    pub mute: String,
    /// `MembershipTable`.
    pub membership: String,
    /// `PresenceTable` (the head items' `rooms`).
    pub presence: String,
    /// `EnrollmentTable` (read only).
    pub enrollment: String,
}

/// The mute, membership and enrollment tables, and the presence table's head items.
#[derive(Debug, Clone)]
pub struct ModerationStore {
    client: Client,
    mute_table: String,
    membership_table: String,
    presence_table: String,
    enrollment_table: String,
}

fn build_error(op: &'static str) -> impl Fn(aws_sdk_dynamodb::error::BuildError) -> StoreError {
    move |e| StoreError {
        op,
        message: e.to_string(),
    }
}

impl ModerationStore {
    /// A store over the four tables.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            mute_table: tables.mute,
            membership_table: tables.membership,
            presence_table: tables.presence,
            enrollment_table: tables.enrollment,
        }
    }

    /// The same store over another DynamoDB client (one with an interceptor, in tests).
    #[must_use]
    pub fn with_client(self, client: Client) -> Self {
        Self { client, ..self }
    }

    /// Whether `client` is enrolled in `room` and whether it is muted there, at `at_ms`: the
    /// enrollment item and the mute item in one `BatchGetItem` (see the module docs).
    pub async fn chat_standing(
        &self,
        room: &RoomId,
        client: &ClientId,
        at_ms: u64,
    ) -> Result<ChatStanding, StoreError> {
        let build = build_error("BatchGetItem (build)");
        let mute = KeysAndAttributes::builder()
            .keys(HashMap::from([
                ("roomId".to_owned(), s(room.as_str())),
                ("clientId".to_owned(), s(client.as_str())),
            ]))
            .consistent_read(true)
            .build()
            .map_err(&build)?;
        let enrolled = KeysAndAttributes::builder()
            .keys(HashMap::from([
                (enrollment::CLIENT_ID.to_owned(), s(client.as_str())),
                (enrollment::ROOM_ID.to_owned(), s(room.as_str())),
            ]))
            .projection_expression("#e")
            .expression_attribute_names("#e", enrollment::EXPIRES_AT)
            .consistent_read(true)
            .build()
            .map_err(&build)?;
        let found = self
            .batch_get(HashMap::from([
                (self.mute_table.clone(), mute),
                (self.enrollment_table.clone(), enrolled),
            ]))
            .await?;
        let first = |table: &str| found.get(table).and_then(|items| items.first());
        Ok(ChatStanding {
            enrolled: first(&self.enrollment_table).is_some_and(|i| enrollment_holds(i, at_ms)),
            muted: first(&self.mute_table).is_some_and(|i| mute_in_force(i, at_ms)),
        })
    }

    /// Whether `client` is enrolled in `room` at `at_ms` (one strongly consistent GetItem).
    pub async fn is_enrolled(
        &self,
        client: &ClientId,
        room: &RoomId,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.enrollment_table)
            .key(enrollment::CLIENT_ID, s(client.as_str()))
            .key(enrollment::ROOM_ID, s(room.as_str()))
            .projection_expression("#e")
            .expression_attribute_names("#e", enrollment::EXPIRES_AT)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| call_error("GetItem", e))?;
        Ok(resp
            .item()
            .is_some_and(|item| enrollment_holds(item, at_ms)))
    }

    /// `BatchGetItem` of `requests` (table name -> keys): the items found, per table. Keys
    /// left unprocessed are asked for again after a backoff, up to [`BATCH_GET_ROUNDS`]
    /// requests in all.
    async fn batch_get(
        &self,
        mut requests: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for round in 0..BATCH_GET_ROUNDS {
            if round > 0 {
                tokio::time::sleep(batch_get_backoff(round)).await;
            }
            let resp = self
                .client
                .batch_get_item()
                .set_request_items(Some(requests))
                .send()
                .await
                .map_err(|e| call_error("BatchGetItem", e))?;
            for (table, items) in resp.responses.unwrap_or_default() {
                found.entry(table).or_default().extend(items);
            }
            requests = resp
                .unprocessed_keys
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, k)| !k.keys().is_empty())
                .collect();
            if requests.is_empty() {
                return Ok(found);
            }
        }
        Err(StoreError {
            op: "BatchGetItem",
            message: format!("keys still unprocessed after {BATCH_GET_ROUNDS} requests"),
        })
    }

    /// Every item of `table` whose HASH key `roomId` is `room` (all pages).
    async fn room_items(
        &self,
        table: &str,
        room: &RoomId,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("roomId = :r")
                .expression_attribute_values(":r", s(room.as_str()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| call_error("Query", e))?;
            items.extend(resp.items.unwrap_or_default());
            match resp.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The clients of `clients` whose presence head says online.
    async fn online_among(&self, clients: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut online = HashSet::new();
        for chunk in clients.chunks(BATCH_GET_KEYS) {
            let keys = chunk
                .iter()
                .map(|c| {
                    HashMap::from([
                        (attrs::CLIENT_ID.to_owned(), s(*c)),
                        (attrs::CHANNEL_ID.to_owned(), s(attrs::HEAD)),
                    ])
                })
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#c, #o")
                .expression_attribute_names("#c", attrs::CLIENT_ID)
                .expression_attribute_names("#o", attrs::ONLINE)
                .consistent_read(true)
                .build()
                .map_err(build_error("BatchGetItem (build)"))?;
            let heads = self
                .batch_get(HashMap::from([(self.presence_table.clone(), request)]))
                .await?
                .remove(&self.presence_table)
                .unwrap_or_default();
            online.extend(heads.iter().filter_map(|h| {
                let up = h.get(attrs::ONLINE).and_then(|v| v.as_bool().ok()) == Some(&true);
                get_str(h, attrs::CLIENT_ID)
                    .filter(|_| up)
                    .map(str::to_owned)
            }));
        }
        Ok(online)
    }

    /// The members of `room` with their role, whether they are online (the presence
    /// function's `online` on their head item; absent = offline) and muted at `now_ms`.
    pub async fn members(
        &self,
        room: &RoomId,
        now_ms: u64,
    ) -> Result<Vec<MemberStatus>, StoreError> {
        let memberships = self.room_items(&self.membership_table, room).await?;
        let muted: HashSet<String> = self
            .room_items(&self.mute_table, room)
            .await?
            .iter()
            .filter(|m| mute_in_force(m, now_ms))
            .filter_map(|m| get_str(m, "clientId").map(str::to_owned))
            .collect();
        let ids: Vec<&str> = memberships
            .iter()
            .filter_map(|m| get_str(m, "clientId"))
            .collect();
        let online = self.online_among(&ids).await?;
        Ok(memberships
            .iter()
            .filter_map(|m| {
                // An item we cannot read back as a client ID is skipped, not fatal.
                let client_id = ClientId::parse(get_str(m, "clientId")?).ok()?;
                Some(MemberStatus {
                    online: online.contains(client_id.as_str()),
                    muted: muted.contains(client_id.as_str()),
                    role: get_str(m, "role").unwrap_or("other").to_owned(),
                    client_id,
                })
            })
            .collect())
    }

    /// Applies a mute or unmute, unless a newer command already changed it.
    pub async fn change_mute(&self, c: &MuteChange<'_>) -> Result<Applied, StoreError> {
        let expires_at = match (c.muted, c.until_ms) {
            (true, None) => None,
            (true, Some(until)) => Some(until / 1000 + 24 * 3600),
            (false, _) => Some(c.at_ms / 1000 + KEEP_ENDED_SECS),
        };
        let mut set = vec![
            "muted = :m",
            "#by = :by",
            "changedAt = :at",
            "commandId = :cmd",
        ];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.mute_table)
            .key("roomId", s(c.room.as_str()))
            .key("clientId", s(c.target.as_str()))
            .expression_attribute_names("#by", "by")
            .expression_attribute_values(":m", AttributeValue::Bool(c.muted))
            .expression_attribute_values(":by", s(c.by.as_str()))
            .expression_attribute_values(":at", n(c.at_ms))
            .expression_attribute_values(":cmd", s(c.command_id))
            .condition_expression(
                "attribute_not_exists(changedAt) OR changedAt < :at OR commandId = :cmd",
            );
        match c.until_ms {
            Some(until) => {
                set.push("untilMs = :until");
                req = req.expression_attribute_values(":until", n(until));
            }
            None => remove.push("untilMs"),
        }
        match expires_at {
            Some(t) => {
                set.push("expiresAt = :exp");
                req = req.expression_attribute_values(":exp", n(t));
            }
            None => remove.push("expiresAt"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        match req.update_expression(expression).send().await {
            Ok(_) => Ok(Applied::Written),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(Applied::Superseded)
            }
            Err(e) => Err(call_error("UpdateItem", e)),
        }
    }

    /// Makes `client` a member of `room` (idempotent: the first join time is kept) and adds
    /// the room to the client's head item in the presence table, in one transaction.
    pub async fn join(
        &self,
        room: &RoomId,
        client: &ClientId,
        at_ms: u64,
        role: &str,
    ) -> Result<(), StoreError> {
        let build = build_error("TransactWriteItems (build)");
        let member = Update::builder()
            .table_name(&self.membership_table)
            .key("roomId", s(room.as_str()))
            .key("clientId", s(client.as_str()))
            .update_expression("SET joinedAt = if_not_exists(joinedAt, :at), #role = :role")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":at", n(at_ms))
            .expression_attribute_values(":role", s(role))
            .build()
            .map_err(&build)?;
        // Only `rooms`: the head's `version` belongs to the presence function's writes.
        let head = Update::builder()
            .table_name(&self.presence_table)
            .key(attrs::CLIENT_ID, s(client.as_str()))
            .key(attrs::CHANNEL_ID, s(attrs::HEAD))
            .update_expression("ADD #rooms :room")
            .expression_attribute_names("#rooms", attrs::ROOMS)
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.to_string()]))
            .build()
            .map_err(&build)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(member).build())
            .transact_items(TransactWriteItem::builder().update(head).build())
            .send()
            .await
            .map_err(|e| call_error("TransactWriteItems", e))?;
        Ok(())
    }
}
