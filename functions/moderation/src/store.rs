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

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use mapping::presence::attrs;
use mapping::{ClientId, RoomId};

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
        let Some(item) = resp.item() else {
            return Ok(false);
        };
        let muted = item
            .get("muted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        let until = item
            .get("untilMs")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok());
        Ok(muted && until.is_none_or(|u| now_ms < u))
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
