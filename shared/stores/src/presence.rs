//! [`PresenceStore`]: the presence state in `PresenceTable` (partition `clientId`, sort
//! `channelId`) and `AttendanceTable` (partition `clientId`, sort `sessionId`). The attribute
//! names are [`attrs::presence`](crate::attrs::presence) and
//! [`attrs::attendance`](crate::attrs::attendance); what to write is decided by the pure rule
//! (`mapping::classroom::presence`), this adapter only reads and writes it.
//!
//! # Items
//! - One presence item per client and channel: the pure [`ChannelState`]. A channel with an
//!   offline event carries `expiresAt` (the table's TTL attribute,
//!   `mapping::presence::RETENTION_MS` after it), so ended connections do not pile up.
//! - One head item per client (`channelId` = [`HEAD`]) holding `version`: every write of the
//!   client's state is a transaction conditioned on the version it read, so two containers
//!   handling events of the same client cannot both act on a stale view. The head also holds
//!   `rooms`, the string set of the rooms the client joined: the moderation function's `join`
//!   adds the room there in the transaction that writes the `MembershipTable` item, so the one
//!   strongly consistent Query that reads the client's channels also says whom to notify, and
//!   no event needs a third call. The join does not touch `version` (the presence write is an
//!   update of `version` and `online` alone, so it keeps `rooms`); a join that races a
//!   transition is announced by the join itself (the moderation function sends `online` to
//!   the room).
//! - One attendance item per connection (`sessionId` = channel ID): `joinedAt`, `leftAt`,
//!   `leaveKind`, `leaveReason`, `clientIp`, written in the same transaction as the channel, so
//!   it is exact whatever the arrival order. `rooms` holds the client's rooms as read on an
//!   online/offline transition; it is a hint, not the record: a client usually joins its room
//!   after connecting. Attendance per room is the join of these sessions with `MembershipTable`
//!   (`joinedAt` per room and client, written by the moderation function's `join`).
//!
//! # Requests
//! [`PresenceStore::read`] is one Query (more pages only past 1 MB of channels);
//! [`PresenceStore::write`] is one `TransactWriteItems`. A version conflict is not an error
//! but an outcome ([`WriteOutcome::Conflict`]): the caller reads again and decides again.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use mapping::{ChannelState, ClientId, LifecycleKind, Offline, OfflineReason, RoomId};

pub use mapping::classroom::presence::{PresenceWrite, Snapshot};

use crate::StoreError;
use crate::attrs::{attendance as at, presence as a};
use crate::item::{Item, get_n, get_s, n, query_partition, s};

/// The `channelId` of the per-client head item (a prefix events cannot use).
pub const HEAD: &str = a::HEAD;

/// A presence item as a channel state (`Err` names what is wrong with the item).
pub fn channel_from_item(item: &Item) -> Result<ChannelState, String> {
    let offline = get_n(item, a::OFFLINE_AT)?.map(|at| Offline {
        at,
        kind: match get_s(item, a::OFFLINE_KIND) {
            Some("disconnect") => LifecycleKind::Disconnect,
            _ => LifecycleKind::TcpClean,
        },
        reason: get_s(item, a::OFFLINE_REASON).map(OfflineReason::from_iot),
    });
    Ok(ChannelState {
        connected_at: get_n(item, a::CONNECTED_AT)?,
        client_ip: get_s(item, a::CLIENT_IP).map(str::to_owned),
        offline,
    })
}

/// A channel state as a presence item.
pub fn channel_to_item(client: &ClientId, channel: &str, state: &ChannelState) -> Item {
    let mut item = Item::from([
        (a::CLIENT_ID.to_owned(), s(client.as_str())),
        (a::CHANNEL_ID.to_owned(), s(channel)),
    ]);
    if let Some(t) = state.connected_at {
        item.insert(a::CONNECTED_AT.to_owned(), n(t));
    }
    if let Some(ip) = &state.client_ip {
        item.insert(a::CLIENT_IP.to_owned(), s(ip.as_str()));
    }
    if let Some(expires) = state.expires_at_secs() {
        item.insert(a::EXPIRES_AT.to_owned(), n(expires));
    }
    if let Some(off) = &state.offline {
        item.insert(a::OFFLINE_AT.to_owned(), n(off.at));
        item.insert(a::OFFLINE_KIND.to_owned(), s(off.kind.as_str()));
        if let Some(r) = &off.reason {
            item.insert(a::OFFLINE_REASON.to_owned(), s(r.as_str()));
        }
    }
    item
}

/// How a [`PresenceStore::write`] ended, when DynamoDB answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum WriteOutcome {
    /// The transaction was written.
    Written,
    /// Another writer changed the client's state between the read and the write (the head's
    /// version moved on, or a concurrent transaction on it, such as a join adding a room, was
    /// in flight): nothing was written; read again and decide again.
    Conflict,
}

/// The presence and attendance tables.
#[derive(Debug, Clone)]
pub struct PresenceStore {
    client: Client,
    presence_table: String,
    attendance_table: Option<String>,
}

impl PresenceStore {
    /// A store over the presence table only (the query function): [`PresenceStore::write`]
    /// then writes no attendance item.
    pub fn reader(client: Client, presence_table: impl Into<String>) -> Self {
        Self {
            client,
            presence_table: presence_table.into(),
            attendance_table: None,
        }
    }

    /// The full store (the presence function).
    pub fn new(
        client: Client,
        presence_table: impl Into<String>,
        attendance_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            presence_table: presence_table.into(),
            attendance_table: Some(attendance_table.into()),
        }
    }

    /// The same tables through another client (tests count its requests).
    #[must_use]
    pub fn with_client(self, client: Client) -> Self {
        Self { client, ..self }
    }

    /// The snapshots of several clients, in the order asked: their reads run concurrently
    /// (one Query each), the first failure fails the whole answer.
    pub async fn read_many(&self, clients: &[ClientId]) -> Result<Vec<Snapshot>, StoreError> {
        futures::future::try_join_all(clients.iter().map(|c| self.read(c))).await
    }

    /// The clients with a channel connected before `connected_before_ms` and not closed: the
    /// sweep's candidates (channels whose offline event may have been lost), each once, in
    /// key order. One paginated Scan of the presence table with a filter: its cost grows with
    /// the table (channel items expire 15 days after their offline event), fine on the
    /// sweep's schedule (every 10 minutes) at classroom scale.
    pub async fn open_since_before(
        &self,
        connected_before_ms: u64,
    ) -> Result<Vec<ClientId>, StoreError> {
        let mut clients = std::collections::BTreeSet::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.presence_table)
                .filter_expression("#c < :before AND attribute_not_exists(#off)")
                .expression_attribute_names("#c", a::CONNECTED_AT)
                .expression_attribute_names("#off", a::OFFLINE_AT)
                .expression_attribute_values(":before", n(connected_before_ms))
                .projection_expression("#k")
                .expression_attribute_names("#k", a::CLIENT_ID)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Scan", &self.presence_table, &e))?;
            for item in resp.items.unwrap_or_default() {
                // A client ID the table holds was valid when written; skip one that is not.
                if let Some(Ok(id)) = get_s(&item, a::CLIENT_ID).map(ClientId::parse) {
                    clients.insert(id);
                }
            }
            match resp.last_evaluated_key.filter(|k| !k.is_empty()) {
                None => return Ok(clients.into_iter().collect()),
                Some(last) => start = Some(last),
            }
        }
    }

    /// Reads all of a client's items, the head with its rooms included (one strongly
    /// consistent Query, paginated only for a client with more than 1 MB of channels).
    pub async fn read(&self, client: &ClientId) -> Result<Snapshot, StoreError> {
        let items = query_partition(
            &self.client,
            &self.presence_table,
            a::CLIENT_ID,
            client.as_str(),
        )
        .await?;
        let mut snapshot = Snapshot::default();
        for item in &items {
            let bad = |problem: String| {
                StoreError::new(
                    "Query",
                    &self.presence_table,
                    format!("item of {client} is invalid: {problem}"),
                )
            };
            let channel =
                get_s(item, a::CHANNEL_ID).ok_or_else(|| bad(format!("no {}", a::CHANNEL_ID)))?;
            if channel == HEAD {
                snapshot.version = get_n(item, a::VERSION).map_err(bad)?.unwrap_or(0);
                snapshot.rooms = rooms_from_head(item);
            } else {
                let state = channel_from_item(item).map_err(bad)?;
                snapshot.presence.channels.insert(channel.to_owned(), state);
            }
        }
        Ok(snapshot)
    }

    /// Writes one event's effects in one transaction: the head version bump (conditioned on
    /// the version read) with the online flag, the channel item, and the connection's
    /// attendance item (the full store only).
    pub async fn write(&self, w: &PresenceWrite) -> Result<WriteOutcome, StoreError> {
        const OP: &str = "TransactWriteItems";
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            StoreError::new(OP, &self.presence_table, format!("request not built: {e}"))
        };
        let head = Update::builder()
            .table_name(&self.presence_table)
            .key(a::CLIENT_ID, s(w.client.as_str()))
            .key(a::CHANNEL_ID, s(HEAD))
            .update_expression("SET #v = :next, #online = :online")
            .condition_expression(if w.read_version == 0 {
                "attribute_not_exists(#v)"
            } else {
                "#v = :read"
            })
            .expression_attribute_names("#v", a::VERSION)
            .expression_attribute_names("#online", a::ONLINE)
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
                        .set_item(Some(channel_to_item(&w.client, &w.channel, &w.state)))
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
            Ok(_) => Ok(WriteOutcome::Written),
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
                    Ok(WriteOutcome::Conflict)
                } else {
                    Err(StoreError::sdk(OP, &self.presence_table, &e))
                }
            }
        }
    }
}

/// The rooms on a head item. A room ID that is not a valid name cannot be spliced into a topic:
/// it is skipped rather than failing the client's every event (the join command validated it).
fn rooms_from_head(item: &Item) -> Vec<RoomId> {
    let mut rooms: Vec<RoomId> = item
        .get(a::ROOMS)
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
fn attendance_update(table: &str, w: &PresenceWrite) -> UpdateBuilder {
    // A changed channel has a connect or an offline time, so `sets` is never empty.
    let mut sets = Vec::new();
    let mut update = Update::builder()
        .table_name(table)
        .key(at::CLIENT_ID, s(w.client.as_str()))
        .key(at::SESSION_ID, s(w.channel.as_str()));
    if let Some(t) = w.state.connected_at {
        sets.push("#j = :j");
        update = update
            .expression_attribute_names("#j", at::JOINED_AT)
            .expression_attribute_values(":j", n(t));
    }
    if let Some(ip) = &w.state.client_ip {
        sets.push("#ip = :ip");
        update = update
            .expression_attribute_names("#ip", at::CLIENT_IP)
            .expression_attribute_values(":ip", s(ip.as_str()));
    }
    if let Some(off) = &w.state.offline {
        sets.push("#l = :l");
        sets.push("#lk = :lk");
        update = update
            .expression_attribute_names("#l", at::LEFT_AT)
            .expression_attribute_values(":l", n(off.at))
            .expression_attribute_names("#lk", at::LEAVE_KIND)
            .expression_attribute_values(":lk", s(off.kind.as_str()));
        if let Some(r) = &off.reason {
            sets.push("#lr = :lr");
            update = update
                .expression_attribute_names("#lr", at::LEAVE_REASON)
                .expression_attribute_values(":lr", s(r.as_str()));
        }
    }
    let mut expression = format!("SET {}", sets.join(", "));
    if !w.rooms.is_empty() {
        expression.push_str(" ADD #r :r");
        update = update
            .expression_attribute_names("#r", at::ROOMS)
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

    #[test]
    fn a_channel_item_has_the_attributes_of_the_states_serde_form() {
        // `mapping`'s test pins the state's serde form to `connectedAt` / `clientIp`: the item
        // uses the same names, so the pure state and the item speak one vocabulary.
        let state = ChannelState {
            connected_at: Some(1),
            client_ip: Some("192.0.2.1".to_owned()),
            offline: None,
        };
        let client = ClientId::parse("GID_student@@@002").unwrap();
        let item = channel_to_item(&client, "c1", &state);
        let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["channelId", "clientId", "clientIp", "connectedAt"]);
        assert_eq!(a::CONNECTED_AT, "connectedAt");
    }
}
