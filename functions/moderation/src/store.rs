//! The DynamoDB adapter of moderation: `MuteTable` (HASH `roomId`, RANGE `clientId`, TTL
//! `expiresAt` in epoch seconds), `MembershipTable` (HASH `roomId`, RANGE `clientId`) and the
//! client's head item in `PresenceTable`.
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

use std::collections::{HashMap, HashSet};

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

/// At most this many keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;
/// Rounds of `UnprocessedKeys` retried before giving up (the record is then retried whole).
const BATCH_GET_ROUNDS: usize = 5;

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

/// The mute and membership tables, and the presence table's head items.
#[derive(Debug, Clone)]
pub struct ModerationStore {
    client: Client,
    mute_table: String,
    membership_table: String,
    presence_table: String,
}

impl ModerationStore {
    /// A store over the three tables.
    pub fn new(
        client: Client,
        mute_table: String,
        membership_table: String,
        presence_table: String,
    ) -> Self {
        Self {
            client,
            mute_table,
            membership_table,
            presence_table,
        }
    }

    /// Whether `client` is muted in `room` at `now_ms` (a strongly consistent GetItem, so a
    /// mute written by the previous record of the batch is seen).
    pub async fn is_muted(
        &self,
        room: &RoomId,
        client: &ClientId,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.mute_table)
            .key("roomId", s(room.as_str()))
            .key("clientId", s(client.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| call_error("GetItem", e))?;
        Ok(resp.item().is_some_and(|item| mute_in_force(item, now_ms)))
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
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("#c, #o")
                    .expression_attribute_names("#c", attrs::CLIENT_ID)
                    .expression_attribute_names("#o", attrs::ONLINE)
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError {
                        op: "BatchGetItem (build)",
                        message: e.to_string(),
                    })?,
            );
            let mut rounds = 0;
            while let Some(req) = request.take() {
                rounds += 1;
                if rounds > BATCH_GET_ROUNDS {
                    return Err(StoreError {
                        op: "BatchGetItem",
                        message: format!("keys still unprocessed after {BATCH_GET_ROUNDS} rounds"),
                    });
                }
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&self.presence_table, req)
                    .send()
                    .await
                    .map_err(|e| call_error("BatchGetItem", e))?;
                let heads = resp
                    .responses
                    .and_then(|mut r| r.remove(&self.presence_table))
                    .unwrap_or_default();
                online.extend(heads.iter().filter_map(|h| {
                    let up = h.get(attrs::ONLINE).and_then(|v| v.as_bool().ok()) == Some(&true);
                    get_str(h, attrs::CLIENT_ID)
                        .filter(|_| up)
                        .map(str::to_owned)
                }));
                request = resp
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.presence_table))
                    .filter(|k| !k.keys().is_empty());
            }
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
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError {
            op: "TransactWriteItems (build)",
            message: e.to_string(),
        };
        let member = Update::builder()
            .table_name(&self.membership_table)
            .key("roomId", s(room.as_str()))
            .key("clientId", s(client.as_str()))
            .update_expression("SET joinedAt = if_not_exists(joinedAt, :at), #role = :role")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":at", n(at_ms))
            .expression_attribute_values(":role", s(role))
            .build()
            .map_err(build)?;
        // Only `rooms`: the head's `version` belongs to the presence function's writes.
        let head = Update::builder()
            .table_name(&self.presence_table)
            .key(attrs::CLIENT_ID, s(client.as_str()))
            .key(attrs::CHANNEL_ID, s(attrs::HEAD))
            .update_expression("ADD #rooms :room")
            .expression_attribute_names("#rooms", attrs::ROOMS)
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room.to_string()]))
            .build()
            .map_err(build)?;
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
