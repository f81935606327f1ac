//! [`ModerationStore`]: the state the moderation rule (`mapping::classroom::moderation`)
//! decides on and writes: `MuteTable` ([`attrs::mute`](crate::attrs::mute)),
//! `MembershipTable` ([`attrs::membership`](crate::attrs::membership)), the `rooms` of the
//! client's head item in `PresenceTable` ([`attrs::presence`](crate::attrs::presence)) and
//! `EnrollmentTable` ([`attrs::enrollment`](crate::attrs::enrollment), read only) and
//! `ChatRateTable` ([`attrs::chat_rate`](crate::attrs::chat_rate)). The adapter
//! reads and writes; whether a mute is in force or an enrollment holds is the rule's to say
//! (it gets the typed state: [`Standing`], [`MuteState`], [`RoomMembers`]).
//!
//! # Enrollments
//! The issuer writes one `EnrollmentTable` item per client and room when it issues a
//! classroom token (`enrolledAt` N ms, `expiresAt` N s = the token's expiry and the TTL,
//! `role` S). Only `expiresAt` is read (projected); TTL deletion is lazy (days), so an expired
//! item may still be read: the rule compares it with the record's time. An item without a
//! readable `expiresAt` reads as `None` (it holds nothing). `role` is not read: roles come from
//! the client's group.
//!
//! # One read per chat
//! [`ModerationStore::standing`] reads the sender's mute item and its enrollment item in one
//! `BatchGetItem` (both strongly consistent: a mute written by the previous record of the
//! batch, an enrollment written just before the token was handed out, are seen). Keys
//! DynamoDB leaves unprocessed are asked for again, with backoff, up to
//! [`BATCH_GET_ATTEMPTS`] requests in all; only then does the read fail (and the record is
//! retried). A `mute` / `unmute` reads its sender's enrollment alone: one `GetItem`
//! ([`ModerationStore::enrollment`]); a `join` reads the enrollment and the `rooms` of the
//! joiner's presence head item (projected) in one `BatchGetItem`
//! ([`ModerationStore::joining`]), for the rooms cap.
//!
//! # One write per chat: the chat counter
//! [`ModerationStore::count_chat`] counts a chat in its sender's rate window
//! (`mapping::classroom::moderation::ChatWindow`): one `UpdateItem` of the window's item
//! (`clientId`, `windowStart`) with `ADD chats :1` (atomic, creating the item at 1) and
//! `ReturnValues UPDATED_NEW`, which answers the new count: no read, no condition, so it
//! holds across concurrent containers and never conflicts. `expiresAt` (the TTL) is the
//! window's end plus [`chat_rate::KEEP_SECS`](crate::attrs::chat_rate::KEEP_SECS). The
//! moderation function issues it concurrently with the chat's `BatchGetItem`. The cost is one
//! write request unit per chat (the item is far below 1 KB), and a key per sender and window,
//! so no two senders share a hot item.
//!
//! # Memberships
//! A `join` ([`ModerationStore::join`]) writes, in one transaction, the `MembershipTable` item
//! (`joinedAt` of the first join, `role`) and the room into the `rooms` set of the client's
//! head item in `PresenceTable`. The presence function reads that head with the client's
//! channels in the one Query it makes per event, so a transition costs it no extra read of the
//! memberships. Both writes are idempotent (`if_not_exists`, a set `ADD`): a redelivered join
//! changes nothing. Only `rooms` is written on the head: its `version` and `online` belong to
//! the presence function. The head's update is conditioned on the rooms cap
//! (`Join::fits` in DynamoDB form: `contains(rooms, :room) OR size(rooms) < :max`, or no
//! `rooms` yet): the rule refused a join over the cap on what it read, and the condition
//! stops a join that raced another one past it; such a join fails (the transaction is
//! cancelled) and its retry is refused on what it then reads.
//!
//! # Mute items
//! One item per room and student: `muted` (BOOL), `untilMs` (N, absent = until unmuted),
//! `by`, `changedAt` (the command's broker time, ms) and `commandId` (the command's message
//! ID). [`ModerationStore::change_mute`] writes a change under the condition
//! `attribute_not_exists(changedAt) OR changedAt < :at OR commandId = :cmd`, the DynamoDB form
//! of the rule's command order (`MuteChange::outcome_over`): a redelivered mute rewrites the
//! same values, a stale mute delivered after a later unmute is
//! [`MuteOutcome::Superseded`]. `expiresAt` lets DynamoDB's TTL remove ended mutes (a day
//! after a timed mute ends, [`KEEP_ENDED_SECS`] after an unmute).
//!
//! # A room's members
//! [`ModerationStore::room_members`] (for a teacher who joins): one Query of the room's
//! memberships, one of its mutes, and `BatchGetItem` of the members' head items in
//! `PresenceTable` for `online` (projected: nothing else of the presence table is read).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, TransactWriteItem, Update,
};
use mapping::classroom::moderation::{ChatWindow, Read};
use mapping::{ClientId, RoomId};

pub use mapping::classroom::moderation::{
    Join, Membership, MuteChange, MuteOutcome, MuteState, RoomMembers, Standing,
};

use crate::StoreError;
use crate::attrs::{chat_rate as cr, enrollment as e, membership as ms, mute as m, presence as p};
use crate::enrollment::role_name;
use crate::item::{BATCH_ATTEMPTS, Item, backoff, get_bool, get_n, get_s, n, query_partition, s};

/// How long an ended mute item is kept (for the ordering of late commands), seconds.
pub const KEEP_ENDED_SECS: u64 = 30 * 24 * 3600;

/// How long a timed mute's item is kept after it ends, seconds.
const KEEP_TIMED_SECS: u64 = 24 * 3600;

/// At most this many keys per `BatchGetItem` (DynamoDB's limit).
const BATCH_GET_KEYS: usize = 100;

/// `BatchGetItem` requests made for one read, the first included, before keys still
/// unprocessed fail it (the record is then retried whole).
pub const BATCH_GET_ATTEMPTS: u32 = BATCH_ATTEMPTS;

/// The table names of a [`ModerationStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// `MuteTable`.
    pub mute: String,
    /// `MembershipTable`.
    pub membership: String,
    /// `PresenceTable` (the head items' `rooms` and `online`).
    pub presence: String,
    /// `EnrollmentTable` (read only).
    pub enrollment: String,
    /// `ChatRateTable` (the chat counters).
    pub chat_rate: String,
}

/// The mute, membership, enrollment and chat-rate tables, and the presence table's head items.
#[derive(Debug, Clone)]
pub struct ModerationStore {
    client: Client,
    tables: Tables,
}

/// A mute item as the rule reads it. `muted` absent reads as `false`; an `untilMs` that is
/// not a whole number reads as absent (until unmuted: a damaged item keeps its mute).
fn mute_state(item: &Item) -> MuteState {
    MuteState {
        muted: get_bool(item, m::MUTED),
        until_ms: get_n(item, m::UNTIL_MS).ok().flatten(),
        changed_at_ms: get_n(item, m::CHANGED_AT).ok().flatten(),
        command_id: get_s(item, m::COMMAND_ID).map(str::to_owned),
    }
}

/// The rooms on a head item: the valid room names of its `rooms` set (a join only ever adds
/// valid ones).
fn head_rooms(item: &Item) -> Vec<RoomId> {
    let names = item
        .get(p::ROOMS)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    let mut rooms: Vec<RoomId> = names
        .into_iter()
        .filter_map(|name| RoomId::parse(&name).ok())
        .collect();
    rooms.sort();
    rooms
}

/// The `expiresAt` of an enrollment item; `None` when it has no readable one.
fn enrollment_expiry(item: &Item) -> Option<u64> {
    get_n(item, e::EXPIRES_AT).ok().flatten()
}

impl ModerationStore {
    /// A store over the five tables.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The same store over another DynamoDB client (one with an interceptor, in tests).
    #[must_use]
    pub fn with_client(self, client: Client) -> Self {
        Self { client, ..self }
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// What a plan asks to read about `sender`: its [`Standing`] in the room (one
    /// `BatchGetItem`), its enrollment alone (one `GetItem`, no mute) or, for a join, its
    /// enrollment and its rooms (one `BatchGetItem`).
    pub async fn read(&self, sender: &ClientId, read: Read<'_>) -> Result<Standing, StoreError> {
        match read {
            Read::Standing(room) => self.standing(room, sender).await,
            Read::Enrollment(room) => Ok(Standing {
                enrollment_expires_at_s: self.enrollment(sender, room).await?,
                ..Standing::default()
            }),
            Read::Joining(room) => self.joining(room, sender).await,
        }
    }

    /// Counts a chat in `window`: one `UpdateItem` `ADD chats :1`, answering the new count
    /// (see the module docs).
    pub async fn count_chat(&self, window: &ChatWindow) -> Result<u64, StoreError> {
        let table = &self.tables.chat_rate;
        let resp = self
            .client
            .update_item()
            .table_name(table)
            .key(cr::CLIENT_ID, s(window.sender.as_str()))
            .key(cr::WINDOW_START, s(window.start_ms.to_string()))
            .update_expression("ADD #n :one SET #exp = :exp")
            .expression_attribute_names("#n", cr::CHATS)
            .expression_attribute_names("#exp", cr::EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":exp",
                n(window.end_ms.div_ceil(1000).saturating_add(cr::KEEP_SECS)),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|err| StoreError::sdk("UpdateItem", table, &err))?;
        let item = resp.attributes.unwrap_or_default();
        match get_n(&item, cr::CHATS) {
            Ok(Some(count)) => Ok(count),
            Ok(None) => Err(StoreError::new(
                "UpdateItem",
                table,
                format!("the answer has no {}", cr::CHATS),
            )),
            Err(problem) => Err(StoreError::new("UpdateItem", table, problem)),
        }
    }

    /// For a join: `client`'s enrollment in `room` and the rooms on its presence head item
    /// (projected), in one `BatchGetItem`. No head reads as no rooms.
    pub async fn joining(&self, room: &RoomId, client: &ClientId) -> Result<Standing, StoreError> {
        let build = |err: aws_sdk_dynamodb::error::BuildError| {
            StoreError::new("BatchGetItem", &self.tables.presence, err.to_string())
        };
        let enrolled = enrollment_key(room, client).map_err(build)?;
        let head = KeysAndAttributes::builder()
            .keys(Item::from([
                (p::CLIENT_ID.to_owned(), s(client.as_str())),
                (p::CHANNEL_ID.to_owned(), s(p::HEAD)),
            ]))
            .projection_expression("#r")
            .expression_attribute_names("#r", p::ROOMS)
            .consistent_read(true)
            .build()
            .map_err(build)?;
        let (enrollment, head) = self
            .one_of_each([
                (&self.tables.enrollment, enrolled),
                (&self.tables.presence, head),
            ])
            .await?;
        Ok(Standing {
            enrollment_expires_at_s: enrollment.as_ref().and_then(enrollment_expiry),
            rooms: Some(head.as_ref().map(head_rooms).unwrap_or_default()),
            ..Standing::default()
        })
    }

    /// `client`'s enrollment in `room` and its mute item there, in one `BatchGetItem` (see the
    /// module docs).
    pub async fn standing(&self, room: &RoomId, client: &ClientId) -> Result<Standing, StoreError> {
        let build = |err: aws_sdk_dynamodb::error::BuildError| {
            StoreError::new("BatchGetItem", &self.tables.mute, err.to_string())
        };
        let mute = KeysAndAttributes::builder()
            .keys(Item::from([
                (m::ROOM_ID.to_owned(), s(room.as_str())),
                (m::CLIENT_ID.to_owned(), s(client.as_str())),
            ]))
            .consistent_read(true)
            .build()
            .map_err(build)?;
        let enrolled = enrollment_key(room, client).map_err(build)?;
        let (enrollment, mute) = self
            .one_of_each([
                (&self.tables.enrollment, enrolled),
                (&self.tables.mute, mute),
            ])
            .await?;
        Ok(Standing {
            enrollment_expires_at_s: enrollment.as_ref().and_then(enrollment_expiry),
            mute: mute.as_ref().map(mute_state),
            ..Standing::default()
        })
    }

    /// One item from each of two tables in one `BatchGetItem` (each `None` when absent).
    async fn one_of_each(
        &self,
        [(first, a), (second, b)]: [(&String, KeysAndAttributes); 2],
    ) -> Result<(Option<Item>, Option<Item>), StoreError> {
        let mut found = self
            .batch_get(HashMap::from([(first.clone(), a), (second.clone(), b)]))
            .await?;
        let mut take = |table: &String| {
            found
                .remove(table)
                .and_then(|items| items.into_iter().next())
        };
        Ok((take(first), take(second)))
    }

    /// The `expiresAt` (seconds) of `client`'s enrollment in `room`; `None` without an item or
    /// a readable `expiresAt`. One strongly consistent `GetItem`.
    pub async fn enrollment(
        &self,
        client: &ClientId,
        room: &RoomId,
    ) -> Result<Option<u64>, StoreError> {
        let table = &self.tables.enrollment;
        let resp = self
            .client
            .get_item()
            .table_name(table)
            .key(e::CLIENT_ID, s(client.as_str()))
            .key(e::ROOM_ID, s(room.as_str()))
            .projection_expression("#e")
            .expression_attribute_names("#e", e::EXPIRES_AT)
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| StoreError::sdk("GetItem", table, &err))?;
        Ok(resp.item().and_then(enrollment_expiry))
    }

    /// `BatchGetItem` of `requests` (table name -> keys): the items found, per table. Keys
    /// left unprocessed are asked for again after a backoff, up to [`BATCH_GET_ATTEMPTS`]
    /// requests in all.
    async fn batch_get(
        &self,
        mut requests: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut tables: Vec<&str> = requests.keys().map(String::as_str).collect();
        tables.sort_unstable();
        let tables = tables.join(",");
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..BATCH_GET_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let resp = self
                .client
                .batch_get_item()
                .set_request_items(Some(requests))
                .send()
                .await
                .map_err(|err| StoreError::sdk("BatchGetItem", &tables, &err))?;
            for (table, items) in resp.responses.unwrap_or_default() {
                found.entry(table).or_default().extend(items);
            }
            requests = resp
                .unprocessed_keys
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, keys)| !keys.keys().is_empty())
                .collect();
            if requests.is_empty() {
                return Ok(found);
            }
        }
        Err(StoreError::new(
            "BatchGetItem",
            &tables,
            format!("keys still unprocessed after {BATCH_GET_ATTEMPTS} requests (throttled)"),
        ))
    }

    /// The clients of `clients` whose presence head says online.
    async fn online_among(&self, clients: &[ClientId]) -> Result<Vec<ClientId>, StoreError> {
        let table = &self.tables.presence;
        let mut online = Vec::new();
        for chunk in clients.chunks(BATCH_GET_KEYS) {
            let keys = chunk
                .iter()
                .map(|c| {
                    Item::from([
                        (p::CLIENT_ID.to_owned(), s(c.as_str())),
                        (p::CHANNEL_ID.to_owned(), s(p::HEAD)),
                    ])
                })
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#c, #o")
                .expression_attribute_names("#c", p::CLIENT_ID)
                .expression_attribute_names("#o", p::ONLINE)
                .consistent_read(true)
                .build()
                .map_err(|err| StoreError::new("BatchGetItem", table, err.to_string()))?;
            let heads = self
                .batch_get(HashMap::from([(table.clone(), request)]))
                .await?
                .remove(table)
                .unwrap_or_default();
            online.extend(
                heads
                    .iter()
                    .filter(|head| get_bool(head, p::ONLINE))
                    .filter_map(|head| ClientId::parse(get_s(head, p::CLIENT_ID)?).ok()),
            );
        }
        Ok(online)
    }

    /// The members of `room` with their role, the room's mute items, and which members the
    /// presence function last saw online (`online` on their head item; absent = offline).
    /// An item whose client ID cannot be read back is skipped, not fatal.
    pub async fn room_members(&self, room: &RoomId) -> Result<RoomMembers, StoreError> {
        let members: Vec<Membership> = query_partition(
            &self.client,
            &self.tables.membership,
            ms::ROOM_ID,
            room.as_str(),
        )
        .await?
        .iter()
        .filter_map(|item| {
            Some(Membership {
                client_id: ClientId::parse(get_s(item, ms::CLIENT_ID)?).ok()?,
                role: get_s(item, ms::ROLE).unwrap_or("other").to_owned(),
            })
        })
        .collect();
        let mutes = query_partition(&self.client, &self.tables.mute, m::ROOM_ID, room.as_str())
            .await?
            .iter()
            .filter_map(|item| {
                let client = ClientId::parse(get_s(item, m::CLIENT_ID)?).ok()?;
                Some((client, mute_state(item)))
            })
            .collect();
        let ids: Vec<ClientId> = members.iter().map(|m| m.client_id.clone()).collect();
        let online = self.online_among(&ids).await?;
        Ok(RoomMembers {
            members,
            mutes,
            online,
        })
    }

    /// Applies a mute or unmute, unless a newer command already changed it (see the module
    /// docs). One conditional `UpdateItem`.
    pub async fn change_mute(&self, c: &MuteChange) -> Result<MuteOutcome, StoreError> {
        let table = &self.tables.mute;
        let expires_at = match (c.muted, c.until_ms) {
            (true, None) => None,
            (true, Some(until)) => Some(until / 1000 + KEEP_TIMED_SECS),
            (false, _) => Some(c.at_ms / 1000 + KEEP_ENDED_SECS),
        };
        let mut set = vec!["#m = :m", "#by = :by", "#at = :at", "#cmd = :cmd"];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(table)
            .key(m::ROOM_ID, s(c.room_id.as_str()))
            .key(m::CLIENT_ID, s(c.target.as_str()))
            .expression_attribute_names("#m", m::MUTED)
            .expression_attribute_names("#by", m::BY)
            .expression_attribute_names("#at", m::CHANGED_AT)
            .expression_attribute_names("#cmd", m::COMMAND_ID)
            .expression_attribute_names("#until", m::UNTIL_MS)
            .expression_attribute_names("#exp", m::EXPIRES_AT)
            .expression_attribute_values(":m", AttributeValue::Bool(c.muted))
            .expression_attribute_values(":by", s(c.by.as_str()))
            .expression_attribute_values(":at", n(c.at_ms))
            .expression_attribute_values(":cmd", s(&c.command_id))
            // `attribute_not_exists` first: moto fails `size()` of a missing attribute
            // (DynamoDB reads it as false) unless an earlier `OR` term already holds.
            .condition_expression("attribute_not_exists(#at) OR #at < :at OR #cmd = :cmd");
        match c.until_ms {
            Some(until) => {
                set.push("#until = :until");
                req = req.expression_attribute_values(":until", n(until));
            }
            None => remove.push("#until"),
        }
        match expires_at {
            Some(t) => {
                set.push("#exp = :exp");
                req = req.expression_attribute_values(":exp", n(t));
            }
            None => remove.push("#exp"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        match req.update_expression(expression).send().await {
            Ok(_) => Ok(MuteOutcome::Written),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(MuteOutcome::Superseded)
            }
            Err(err) => Err(StoreError::sdk("UpdateItem", table, &err)),
        }
    }

    /// Makes a client a member of a room (idempotent: the first join time is kept) and adds
    /// the room to the client's head item in the presence table, in one transaction.
    pub async fn join(&self, join: &Join) -> Result<(), StoreError> {
        let tables = format!("{},{}", self.tables.membership, self.tables.presence);
        let build = |err: aws_sdk_dynamodb::error::BuildError| {
            StoreError::new("TransactWriteItems", &tables, err.to_string())
        };
        let member = Update::builder()
            .table_name(&self.tables.membership)
            .key(ms::ROOM_ID, s(join.room_id.as_str()))
            .key(ms::CLIENT_ID, s(join.client_id.as_str()))
            .update_expression("SET #at = if_not_exists(#at, :at), #role = :role")
            .expression_attribute_names("#at", ms::JOINED_AT)
            .expression_attribute_names("#role", ms::ROLE)
            .expression_attribute_values(":at", n(join.at_ms))
            .expression_attribute_values(":role", s(role_name(join.role)))
            .build()
            .map_err(build)?;
        // Only `rooms`: the head's `version` belongs to the presence function's writes.
        let head = Update::builder()
            .table_name(&self.tables.presence)
            .key(p::CLIENT_ID, s(join.client_id.as_str()))
            .key(p::CHANNEL_ID, s(p::HEAD))
            .update_expression("ADD #rooms :room")
            // `attribute_not_exists` first: moto fails `size()` of a missing attribute
            // (DynamoDB reads it as false) unless an earlier `OR` term already holds.
            .condition_expression(
                "(attribute_not_exists(#rooms) AND :zero < :max) \
                 OR contains(#rooms, :one) OR size(#rooms) < :max",
            )
            .expression_attribute_names("#rooms", p::ROOMS)
            .expression_attribute_values(
                ":room",
                AttributeValue::Ss(vec![join.room_id.to_string()]),
            )
            .expression_attribute_values(":one", s(join.room_id.as_str()))
            .expression_attribute_values(":max", n(join.max_rooms as u64))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(build)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(member).build())
            .transact_items(TransactWriteItem::builder().update(head).build())
            .send()
            .await
            .map_err(|err| StoreError::sdk("TransactWriteItems", &tables, &err))?;
        Ok(())
    }
}

/// The key of `client`'s enrollment item in `room`, its expiry projected, read consistently.
fn enrollment_key(
    room: &RoomId,
    client: &ClientId,
) -> Result<KeysAndAttributes, aws_sdk_dynamodb::error::BuildError> {
    KeysAndAttributes::builder()
        .keys(Item::from([
            (e::CLIENT_ID.to_owned(), s(client.as_str())),
            (e::ROOM_ID.to_owned(), s(room.as_str())),
        ]))
        .projection_expression("#e")
        .expression_attribute_names("#e", e::EXPIRES_AT)
        .consistent_read(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_item_reads_as_its_typed_state() {
        let item = Item::from([
            (m::MUTED.to_owned(), AttributeValue::Bool(true)),
            (m::UNTIL_MS.to_owned(), n(5_000)),
            (m::CHANGED_AT.to_owned(), n(1_000)),
            (m::COMMAND_ID.to_owned(), s("c1")),
        ]);
        assert_eq!(
            mute_state(&item),
            MuteState {
                muted: true,
                until_ms: Some(5_000),
                changed_at_ms: Some(1_000),
                command_id: Some("c1".to_owned()),
            }
        );
        let damaged = Item::from([
            (m::MUTED.to_owned(), AttributeValue::Bool(true)),
            (m::UNTIL_MS.to_owned(), s("soon")),
        ]);
        let state = mute_state(&damaged);
        assert_eq!((state.until_ms, state.changed_at_ms), (None, None));
        assert!(state.in_force(u64::MAX), "a damaged untilMs keeps the mute");
        assert!(!mute_state(&Item::new()).muted);
    }

    #[test]
    fn an_enrollment_without_a_readable_expiry_reads_as_none() {
        assert_eq!(
            enrollment_expiry(&Item::from([(e::EXPIRES_AT.to_owned(), n(7))])),
            Some(7)
        );
        assert_eq!(
            enrollment_expiry(&Item::from([(e::EXPIRES_AT.to_owned(), s("7"))])),
            None
        );
        assert_eq!(enrollment_expiry(&Item::new()), None);
    }
}
