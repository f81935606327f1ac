//! The PresenceStore against a real moto, with the template's key schemas (PresenceTable
//! `clientId` S / `channelId` S, AttendanceTable `clientId` S / `sessionId` S): what one read
//! returns, what one write puts where, the version lock, and one request each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::counting_client;
use mapping::classroom::presence::{PresenceWrite, Snapshot};
use mapping::{ChannelState, ClientId, LifecycleKind, Offline, OfflineReason, RoomId};
use stores::attrs::{attendance as at, presence as a};
use stores::presence::HEAD;
use stores::{PresenceStore, WriteOutcome};
use testkit::{Moto, RequestCounter, create_table};

const STUDENT: &str = "GID_student@@@002";

struct Tables {
    _moto: Moto,
    ddb: aws_sdk_dynamodb::Client,
    counter: RequestCounter,
    store: PresenceStore,
}

async fn tables() -> Tables {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let (ddb, counter) = counting_client(&sdk);
    create_table(&ddb, "presence", a::CLIENT_ID, a::CHANNEL_ID, false).await;
    create_table(&ddb, "attendance", at::CLIENT_ID, at::SESSION_ID, false).await;
    let store = PresenceStore::new(ddb.clone(), "presence", "attendance");
    counter.reset();
    Tables {
        _moto: moto,
        ddb,
        counter,
        store,
    }
}

fn student() -> ClientId {
    ClientId::parse(STUDENT).unwrap()
}

fn rooms(ids: &[&str]) -> Vec<RoomId> {
    ids.iter().map(|r| RoomId::parse(r).unwrap()).collect()
}

fn open(at_ms: u64) -> ChannelState {
    ChannelState {
        connected_at: Some(at_ms),
        client_ip: Some("192.0.2.1".to_owned()),
        offline: None,
    }
}

fn write(channel: &str, state: ChannelState, read_version: u64, joined: &[&str]) -> PresenceWrite {
    PresenceWrite {
        client: student(),
        channel: channel.to_owned(),
        online: state.is_open(),
        state,
        read_version,
        rooms: rooms(joined),
    }
}

impl Tables {
    /// What the moderation function's `join` does to the head: add the room, nothing else.
    async fn join(&self, room: &str) {
        self.ddb
            .update_item()
            .table_name("presence")
            .key(a::CLIENT_ID, AttributeValue::S(STUDENT.to_owned()))
            .key(a::CHANNEL_ID, AttributeValue::S(HEAD.to_owned()))
            .update_expression("ADD #r :r")
            .expression_attribute_names("#r", a::ROOMS)
            .expression_attribute_values(":r", AttributeValue::Ss(vec![room.to_owned()]))
            .send()
            .await
            .unwrap();
    }

    async fn item(
        &self,
        table: &str,
        sort_key: (&str, &str),
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(table)
            .key("clientId", AttributeValue::S(STUDENT.to_owned()))
            .key(sort_key.0, AttributeValue::S(sort_key.1.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }
}

fn num(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> Option<u64> {
    item.get(key).map(|v| v.as_n().unwrap().parse().unwrap())
}

fn text<'i>(
    item: &'i std::collections::HashMap<String, AttributeValue>,
    key: &str,
) -> Option<&'i str> {
    item.get(key).map(|v| v.as_s().unwrap().as_str())
}

#[tokio::test]
async fn an_unknown_client_reads_as_nothing_in_one_query() {
    let t = tables().await;
    assert_eq!(t.store.read(&student()).await.unwrap(), Snapshot::default());
    assert_eq!(t.counter.all(), [("Query".to_owned(), 1)].into());
}

#[tokio::test]
async fn one_write_puts_the_head_the_channel_and_the_attendance_in_one_request() {
    let t = tables().await;
    t.join("2").await;
    t.join("1").await;
    t.counter.reset();
    let outcome = t
        .store
        .write(&write("c1", open(5), 0, &["1", "2"]))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(
        t.counter.all(),
        [("TransactWriteItems".to_owned(), 1)].into()
    );

    t.counter.reset();
    let snapshot = t.store.read(&student()).await.unwrap();
    assert_eq!(t.counter.all(), [("Query".to_owned(), 1)].into());
    // The head: version 1, and the rooms the joins added are still there (sorted).
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.rooms, rooms(&["1", "2"]));
    assert_eq!(snapshot.presence.channels.len(), 1);
    assert_eq!(snapshot.presence.channels["c1"], open(5));
    let head = t.item("presence", (a::CHANNEL_ID, HEAD)).await.unwrap();
    assert_eq!(head[a::ONLINE], AttributeValue::Bool(true));
    assert_eq!(num(&head, a::EXPIRES_AT), None, "the head never expires");

    let session = t.item("attendance", (at::SESSION_ID, "c1")).await.unwrap();
    assert_eq!(num(&session, at::JOINED_AT), Some(5));
    assert_eq!(text(&session, at::CLIENT_IP), Some("192.0.2.1"));
    assert_eq!(num(&session, at::LEFT_AT), None);
    let mut session_rooms = session[at::ROOMS].as_ss().unwrap().clone();
    session_rooms.sort();
    assert_eq!(session_rooms, ["1", "2"]);
}

#[tokio::test]
async fn a_write_against_a_version_that_moved_on_is_a_conflict_and_writes_nothing() {
    let t = tables().await;
    assert_eq!(
        t.store.write(&write("c1", open(5), 0, &[])).await.unwrap(),
        WriteOutcome::Written
    );
    // A second writer that read before the first write: version 0, but the head has 1.
    assert_eq!(
        t.store.write(&write("c2", open(6), 0, &[])).await.unwrap(),
        WriteOutcome::Conflict
    );
    // One that read an older version than the head's.
    assert_eq!(
        t.store.write(&write("c2", open(6), 7, &[])).await.unwrap(),
        WriteOutcome::Conflict
    );
    let snapshot = t.store.read(&student()).await.unwrap();
    assert_eq!(snapshot.version, 1);
    assert_eq!(
        snapshot.presence.channels.keys().collect::<Vec<_>>(),
        ["c1"],
        "nothing of the conflicting writes"
    );
    assert!(t.item("attendance", (at::SESSION_ID, "c2")).await.is_none());
    // The version read: written, and the version moves on by one.
    assert_eq!(
        t.store.write(&write("c2", open(6), 1, &[])).await.unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(t.store.read(&student()).await.unwrap().version, 2);
}

#[tokio::test]
async fn a_closed_channel_carries_its_ttl_and_its_attendance_the_leave() {
    let t = tables().await;
    let closed = ChannelState {
        offline: Some(Offline {
            at: 1_732_240_090_000,
            kind: LifecycleKind::TcpClean,
            reason: Some(OfflineReason::Takeover),
        }),
        ..open(1_732_240_000_000)
    };
    let w = write("c1", closed.clone(), 0, &[]);
    assert!(!w.online);
    assert_eq!(t.store.write(&w).await.unwrap(), WriteOutcome::Written);
    let channel = t.item("presence", (a::CHANNEL_ID, "c1")).await.unwrap();
    assert_eq!(num(&channel, a::OFFLINE_AT), Some(1_732_240_090_000));
    assert_eq!(text(&channel, a::OFFLINE_KIND), Some("tcpclean"));
    assert_eq!(
        num(&channel, a::EXPIRES_AT),
        Some(1_732_240_090 + 15 * 24 * 3600),
        "TTL in seconds, 15 days after the offline event"
    );
    let head = t.item("presence", (a::CHANNEL_ID, HEAD)).await.unwrap();
    assert_eq!(head[a::ONLINE], AttributeValue::Bool(false));
    let session = t.item("attendance", (at::SESSION_ID, "c1")).await.unwrap();
    assert_eq!(num(&session, at::JOINED_AT), Some(1_732_240_000_000));
    assert_eq!(num(&session, at::LEFT_AT), Some(1_732_240_090_000));
    assert_eq!(text(&session, at::LEAVE_KIND), Some("tcpclean"));
    assert_eq!(
        text(&session, at::LEAVE_REASON),
        Some(OfflineReason::Takeover.as_str())
    );
    assert!(
        !session.contains_key(at::ROOMS),
        "no rooms given, none added"
    );
    // It reads back as it was written.
    let snapshot = t.store.read(&student()).await.unwrap();
    assert_eq!(snapshot.presence.channels["c1"], closed);
    assert!(!snapshot.presence.is_online());
}

#[tokio::test]
async fn an_offline_event_before_its_connect_is_kept_and_attendance_has_no_join() {
    let t = tables().await;
    let early = ChannelState {
        connected_at: None,
        client_ip: None,
        offline: Some(Offline {
            at: 9,
            kind: LifecycleKind::Disconnect,
            reason: None,
        }),
    };
    assert_eq!(
        t.store
            .write(&write("c1", early.clone(), 0, &[]))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(
        t.store.read(&student()).await.unwrap().presence.channels["c1"],
        early
    );
    let session = t.item("attendance", (at::SESSION_ID, "c1")).await.unwrap();
    assert_eq!(
        (num(&session, at::JOINED_AT), num(&session, at::LEFT_AT)),
        (None, Some(9))
    );
    assert_eq!(text(&session, at::LEAVE_REASON), None);
}

#[tokio::test]
async fn a_room_that_is_not_a_valid_name_is_skipped_not_fatal() {
    let t = tables().await;
    t.join("1").await;
    t.join("not/a/room").await;
    let snapshot = t.store.read(&student()).await.unwrap();
    assert_eq!(snapshot.rooms, rooms(&["1"]));
    assert_eq!(snapshot.version, 0, "a join alone sets no version");
}

#[tokio::test]
async fn an_item_that_cannot_be_read_back_is_an_error_naming_table_and_client() {
    let t = tables().await;
    t.ddb
        .put_item()
        .table_name("presence")
        .item(a::CLIENT_ID, AttributeValue::S(STUDENT.to_owned()))
        .item(a::CHANNEL_ID, AttributeValue::S("c1".to_owned()))
        .item(a::CONNECTED_AT, AttributeValue::S("yesterday".to_owned()))
        .send()
        .await
        .unwrap();
    let err = t.store.read(&student()).await.unwrap_err();
    assert_eq!((err.op, err.table.as_str()), ("Query", "presence"));
    assert!(err.message.contains(STUDENT), "{err}");
    assert!(err.message.contains(a::CONNECTED_AT), "{err}");
}

#[tokio::test]
async fn the_reader_store_writes_no_attendance() {
    let t = tables().await;
    let reader = PresenceStore::reader(t.ddb.clone(), "presence");
    assert_eq!(
        reader
            .write(&write("c1", open(5), 0, &["1"]))
            .await
            .unwrap(),
        WriteOutcome::Written
    );
    assert!(t.item("attendance", (at::SESSION_ID, "c1")).await.is_none());
    assert_eq!(reader.read(&student()).await.unwrap().version, 1);
}

#[tokio::test]
async fn a_missing_table_is_a_store_error_not_a_conflict() {
    let t = tables().await;
    let lost = PresenceStore::new(t.ddb.clone(), "no-such-table", "attendance");
    let err = lost.write(&write("c1", open(5), 0, &[])).await.unwrap_err();
    assert_eq!(err.op, "TransactWriteItems");
    let err = lost.read(&student()).await.unwrap_err();
    assert_eq!((err.op, err.table.as_str()), ("Query", "no-such-table"));
}
