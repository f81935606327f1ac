//! The DynamoDB adapter of the presence state: `PresenceTable` (HASH `clientId`, RANGE
//! `channelId`) and `AttendanceTable` (HASH `clientId`, RANGE `sessionId`).
//!
//! # Items
//! - One presence item per client and channel: the pure [`ChannelState`] with the attribute
//!   names of [`mapping::presence::attrs`].
//!   A channel with an offline event carries `expiresAt` (the table's TTL attribute,
//!   [`mapping::presence::RETENTION_MS`] after it), so ended connections do not pile up.
//! - One head item per client (`channelId` = [`HEAD`]) holding `version`: every write of the
//!   client's state is a transaction conditioned on the version it read, so two containers
//!   handling events of the same client cannot both act on a stale view. The head also holds
//!   `rooms`, the string set of the rooms the client joined: the moderation function's `join`
//!   adds the room there in the transaction that writes the `MembershipTable` item, so the one
//!   strongly consistent Query that reads the client's channels also says whom to notify, and
//!   no event needs a third call. The join does not touch `version` (the presence write is an
//!   update of `version` alone, so it keeps `rooms`); a join that races a transition is
//!   announced by the join itself (the moderation function sends `online` to the room).
//! - One attendance item per connection (`sessionId` = channel ID): `joinedAt`, `leftAt`,
//!   `leaveKind`, `leaveReason`, `clientIp`, written in the same transaction as the channel, so
//!   it is exact whatever the arrival order. `rooms` holds the client's rooms as read on an
//!   online/offline transition; it is a hint, not the record: a client usually joins its room
//!   after connecting. Attendance per room is the join of these sessions with `MembershipTable`
//!   (`joinedAt` per room and client, written by the moderation function's `join`).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use mapping::presence::attrs;
use mapping::{
    ChannelState, ClientId, ClientPresence, LifecycleKind, Offline, OfflineReason, RoomId,
};

/// The `channelId` of the per-client head item (a prefix events cannot use).
pub const HEAD: &str = attrs::HEAD;

/// A store failure. Always worth a retry: the record fails and is redelivered.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A DynamoDB call failed.
    #[error("DynamoDB {op} failed: {message}")]
    Call {
        /// The operation.
        op: &'static str,
        /// The SDK error with its context.
        message: String,
    },
    /// Another writer changed the client's state between our read and our write.
    #[error("the client's presence changed while we were writing it (version {read})")]
    Conflict {
        /// The version we read.
        read: u64,
    },
    /// An item in the table that we cannot read back.
    #[error("item of {client} in {table} is invalid: {problem}")]
    BadItem {
        /// The table.
        table: String,
        /// The client.
        client: String,
        /// What is wrong.
        problem: String,
    },
}

fn call_error<E, R>(op: &'static str, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Call {
        op,
        message: DisplayErrorContext(&e).to_string(),
    }
}

/// A string attribute.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'i>(item: &'i HashMap<String, AttributeValue>, key: &str) -> Option<&'i str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &str) -> Result<Option<u64>, String> {
    match item.get(key) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} is not an integer: {v}")),
        Some(other) => Err(format!("{key} is not a number: {other:?}")),
    }
}

/// A presence item as a channel state.
pub fn channel_from_item(item: &HashMap<String, AttributeValue>) -> Result<ChannelState, String> {
    let offline = get_n(item, attrs::OFFLINE_AT)?.map(|at| Offline {
        at,
        kind: match get_s(item, attrs::OFFLINE_KIND) {
            Some("disconnect") => LifecycleKind::Disconnect,
            _ => LifecycleKind::TcpClean,
        },
        reason: get_s(item, attrs::OFFLINE_REASON).map(OfflineReason::from_iot),
    });
    Ok(ChannelState {
        connected_at: get_n(item, attrs::CONNECTED_AT)?,
        client_ip: get_s(item, attrs::CLIENT_IP).map(str::to_owned),
        offline,
    })
}

/// A channel state as a presence item.
pub fn channel_to_item(
    client: &ClientId,
    channel: &str,
    state: &ChannelState,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (attrs::CLIENT_ID.to_owned(), s(client.as_str())),
        (attrs::CHANNEL_ID.to_owned(), s(channel)),
    ]);
    if let Some(t) = state.connected_at {
        item.insert(attrs::CONNECTED_AT.to_owned(), n(t));
    }
    if let Some(ip) = &state.client_ip {
        item.insert(attrs::CLIENT_IP.to_owned(), s(ip.as_str()));
    }
    if let Some(expires) = state.expires_at_secs() {
        item.insert(attrs::EXPIRES_AT.to_owned(), n(expires));
    }
    if let Some(off) = &state.offline {
        item.insert(attrs::OFFLINE_AT.to_owned(), n(off.at));
        item.insert(attrs::OFFLINE_KIND.to_owned(), s(off.kind.as_str()));
        if let Some(r) = &off.reason {
            item.insert(attrs::OFFLINE_REASON.to_owned(), s(r.as_str()));
        }
    }
    item
}

/// A client's presence as read, with the head version the write must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The channels.
    pub presence: ClientPresence,
    /// The head item's version (0 when there is none yet).
    pub version: u64,
    /// The rooms the client joined, from the head item (sorted).
    pub rooms: Vec<RoomId>,
}

/// The presence and attendance tables.
#[derive(Debug, Clone)]
pub struct PresenceStore {
    client: Client,
    presence_table: String,
    attendance_table: Option<String>,
}

/// What one event's transaction writes.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    /// The client.
    pub client: &'a ClientId,
    /// The channel the event is about.
    pub channel: &'a str,
    /// The channel's new state.
    pub state: &'a ChannelState,
    /// The head version that was read.
    pub read_version: u64,
    /// Rooms to add to the attendance item (known on transitions).
    pub rooms: &'a [RoomId],
    /// Whether the client is online after this event (kept on the head item).
    pub online: bool,
}

impl PresenceStore {
    /// A store over the presence table only (the query function).
    pub fn reader(client: Client, presence_table: String) -> Self {
        Self {
            client,
            presence_table,
            attendance_table: None,
        }
    }

    /// The full store (the presence function).
    pub fn new(client: Client, presence_table: String, attendance_table: String) -> Self {
        Self {
            client,
            presence_table,
            attendance_table: Some(attendance_table),
        }
    }

    /// Reads all of a client's items, the head with its rooms included (one strongly
    /// consistent Query, paginated only for a client with more than 1 MB of channels).
    pub async fn read(&self, client: &ClientId) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.presence_table)
                .key_condition_expression("#c = :c")
                .expression_attribute_names("#c", attrs::CLIENT_ID)
                .expression_attribute_values(":c", s(client.as_str()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| call_error("Query", e))?;
            for item in resp.items() {
                let bad = |problem: String| StoreError::BadItem {
                    table: self.presence_table.clone(),
                    client: client.to_string(),
                    problem,
                };
                let channel =
                    get_s(item, attrs::CHANNEL_ID).ok_or_else(|| bad("no channelId".to_owned()))?;
                if channel == HEAD {
                    snapshot.version = get_n(item, attrs::VERSION).map_err(bad)?.unwrap_or(0);
                    snapshot.rooms = rooms_from_head(item);
                } else {
                    let state = channel_from_item(item).map_err(bad)?;
                    snapshot.presence.channels.insert(channel.to_owned(), state);
                }
            }
            match resp.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(snapshot)
    }

    /// Writes one event's effects in one transaction: the head version bump (conditioned on
    /// the version read), the channel item, and the connection's attendance item.
    pub async fn write(&self, w: &Write<'_>) -> Result<(), StoreError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Call {
            op: "TransactWriteItems (build)",
            message: e.to_string(),
        };
        let head = Update::builder()
            .table_name(&self.presence_table)
            .key(attrs::CLIENT_ID, s(w.client.as_str()))
            .key(attrs::CHANNEL_ID, s(HEAD))
            .update_expression("SET #v = :next, #online = :online")
            .condition_expression(if w.read_version == 0 {
                "attribute_not_exists(#v)"
            } else {
                "#v = :read"
            })
            .expression_attribute_names("#v", attrs::VERSION)
            .expression_attribute_names("#online", attrs::ONLINE)
            .expression_attribute_values(":next", n(w.read_version + 1))
            .expression_attribute_values(":online", AttributeValue::Bool(w.online));
        let head = if w.read_version == 0 {
            head
        } else {
            head.expression_attribute_values(":read", n(w.read_version))
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .update(head.build().map_err(build)?)
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.presence_table)
                        .set_item(Some(channel_to_item(w.client, w.channel, w.state)))
                        .build()
                        .map_err(build)?,
                )
                .build(),
        ];
        if let Some(table) = &self.attendance_table {
            items.push(
                TransactWriteItem::builder()
                    .update(attendance_update(table, w).build().map_err(build)?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // The head is the first item: its version moved on (`ConditionalCheckFailed`),
                // or a concurrent transaction on it, such as a join adding a room, was in
                // flight (`TransactionConflict`). Either way: read again and retry.
                let conflict = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if matches!(
                            t.cancellation_reasons().first().and_then(|r| r.code()),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                );
                if conflict {
                    Err(StoreError::Conflict {
                        read: w.read_version,
                    })
                } else {
                    Err(call_error("TransactWriteItems", e))
                }
            }
        }
    }
}

/// The rooms on a head item. A room ID that is not a valid name cannot be spliced into a topic:
/// it is skipped rather than failing the client's every event (the join command validated it).
fn rooms_from_head(item: &HashMap<String, AttributeValue>) -> Vec<RoomId> {
    let mut rooms: Vec<RoomId> = item
        .get(attrs::ROOMS)
        .and_then(|v| v.as_ss().ok())
        .into_iter()
        .flatten()
        .filter_map(|r| RoomId::parse(r).ok())
        .collect();
    rooms.sort();
    rooms
}

/// The attendance item of the event's connection: its join and leave times mirror the
/// channel's, and the rooms are added.
fn attendance_update(
    table: &str,
    w: &Write<'_>,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    // A changed channel has a connect or an offline time, so `sets` is never empty.
    let mut sets = Vec::new();
    let mut update = Update::builder()
        .table_name(table)
        .key("clientId", s(w.client.as_str()))
        .key("sessionId", s(w.channel));
    if let Some(t) = w.state.connected_at {
        sets.push("#j = :j");
        update = update
            .expression_attribute_names("#j", "joinedAt")
            .expression_attribute_values(":j", n(t));
    }
    if let Some(ip) = &w.state.client_ip {
        sets.push("#ip = :ip");
        update = update
            .expression_attribute_names("#ip", "clientIp")
            .expression_attribute_values(":ip", s(ip.as_str()));
    }
    if let Some(off) = &w.state.offline {
        sets.push("#l = :l");
        sets.push("#lk = :lk");
        update = update
            .expression_attribute_names("#l", "leftAt")
            .expression_attribute_values(":l", n(off.at))
            .expression_attribute_names("#lk", "leaveKind")
            .expression_attribute_values(":lk", s(off.kind.as_str()));
        if let Some(r) = &off.reason {
            sets.push("#lr = :lr");
            update = update
                .expression_attribute_names("#lr", "leaveReason")
                .expression_attribute_values(":lr", s(r.as_str()));
        }
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !w.rooms.is_empty() {
        expression.push_str(" ADD #r :r");
        update = update
            .expression_attribute_names("#r", "rooms")
            .expression_attribute_values(
                ":r",
                AttributeValue::Ss(w.rooms.iter().map(|r| r.to_string()).collect()),
            );
    }
    update.update_expression(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_state_round_trips_through_its_item() {
        let client = ClientId::parse("GID_student@@@002").unwrap();
        let state = ChannelState {
            connected_at: Some(5),
            client_ip: Some("192.0.2.1".to_owned()),
            offline: Some(Offline {
                at: 9,
                kind: LifecycleKind::Disconnect,
                reason: Some(OfflineReason::ClientInitiated),
            }),
        };
        let item = channel_to_item(&client, "c1", &state);
        assert_eq!(get_s(&item, "channelId"), Some("c1"));
        assert_eq!(channel_from_item(&item).unwrap(), state);
        let open = ChannelState {
            connected_at: Some(5),
            ..ChannelState::default()
        };
        assert_eq!(
            channel_from_item(&channel_to_item(&client, "c1", &open)).unwrap(),
            open
        );
    }
}
