//! The moderation store against a real moto, with the template's key schemas: what it reads
//! back as typed state, the command order of mute changes, idempotent joins, a room's members,
//! and the requests each read costs (counted on the wire).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::counting_client;
use mapping::classroom::moderation::Read;
use mapping::{ClientId, Role, RoomId};
use stores::moderation::{
    BATCH_GET_ATTEMPTS, Join, KEEP_ENDED_SECS, Membership, ModerationStore, MuteChange,
    MuteOutcome, MuteState, RoomMembers, Standing, Tables,
};
use testkit::{Moto, RequestCounter, create_table};

const TEACHER: &str = "GID_teacher@@@001";
const STUDENT1: &str = "GID_student@@@001";
const STUDENT2: &str = "GID_student@@@002";
const T0: u64 = 1_732_240_000_000;

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn room(s: &str) -> RoomId {
    RoomId::parse(s).unwrap()
}

struct Stack {
    _moto: Moto,
    ddb: aws_sdk_dynamodb::Client,
    counter: RequestCounter,
    store: ModerationStore,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let (ddb, counter) = counting_client(&sdk);
    create_table(&ddb, "mutes", "roomId", "clientId", false).await;
    create_table(&ddb, "membership", "roomId", "clientId", true).await;
    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    create_table(&ddb, "enrollment", "clientId", "roomId", false).await;
    let store = ModerationStore::new(
        ddb.clone(),
        Tables {
            mute: "mutes".to_owned(),
            membership: "membership".to_owned(),
            presence: "presence".to_owned(),
            enrollment: "enrollment".to_owned(),
        },
    );
    counter.reset();
    Stack {
        _moto: moto,
        ddb,
        counter,
        store,
    }
}

impl Stack {
    async fn enroll(&self, client: &str, room: &str, expires_at_s: u64) {
        self.ddb
            .put_item()
            .table_name("enrollment")
            .item("clientId", AttributeValue::S(client.to_owned()))
            .item("roomId", AttributeValue::S(room.to_owned()))
            .item("enrolledAt", AttributeValue::N((T0 - 60_000).to_string()))
            .item("expiresAt", AttributeValue::N(expires_at_s.to_string()))
            .item("role", AttributeValue::S("student".to_owned()))
            .send()
            .await
            .unwrap();
    }

    async fn items(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        testkit::scan_items(&self.ddb, table).await
    }

    async fn set_online(&self, client: &str, online: bool) {
        self.ddb
            .update_item()
            .table_name("presence")
            .key("clientId", AttributeValue::S(client.to_owned()))
            .key("channelId", AttributeValue::S("#head".to_owned()))
            .update_expression("SET #o = :o")
            .expression_attribute_names("#o", stores::attrs::presence::ONLINE)
            .expression_attribute_values(":o", AttributeValue::Bool(online))
            .send()
            .await
            .unwrap();
    }

    /// The requests sent since the last call, by operation.
    fn take(&self) -> Vec<(String, usize)> {
        let all = self.counter.all().into_iter().collect();
        self.counter.reset();
        all
    }
}

fn mute(at_ms: u64, command_id: &str, muted: bool, until_ms: Option<u64>) -> MuteChange {
    MuteChange {
        room_id: room("1"),
        target: id(STUDENT2),
        by: id(TEACHER),
        muted,
        until_ms,
        at_ms,
        command_id: command_id.to_owned(),
    }
}

fn ops(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(op, n)| ((*op).to_owned(), *n)).collect()
}

#[tokio::test]
async fn a_chat_reads_its_standing_in_one_request_and_a_command_its_enrollment_in_one() {
    let s = stack().await;
    // Nothing there: no enrollment, no mute.
    let student = id(STUDENT2);
    assert_eq!(
        s.store
            .read(&student, Read::Standing(&room("1")))
            .await
            .unwrap(),
        Standing::default()
    );
    assert_eq!(s.take(), ops(&[("BatchGetItem", 1)]));
    s.enroll(STUDENT2, "1", T0 / 1000 + 60).await;
    s.store
        .change_mute(&mute(T0, "c1", true, Some(T0 + 600_000)))
        .await
        .unwrap();
    s.take();
    assert_eq!(
        s.store
            .read(&student, Read::Standing(&room("1")))
            .await
            .unwrap(),
        Standing {
            enrollment_expires_at_s: Some(T0 / 1000 + 60),
            mute: Some(MuteState {
                muted: true,
                until_ms: Some(T0 + 600_000),
                changed_at_ms: Some(T0),
                command_id: Some("c1".to_owned()),
            }),
        }
    );
    assert_eq!(
        s.take(),
        ops(&[("BatchGetItem", 1)]),
        "one request per chat"
    );
    assert_eq!(
        s.store
            .read(&student, Read::Enrollment(&room("1")))
            .await
            .unwrap(),
        Standing {
            enrollment_expires_at_s: Some(T0 / 1000 + 60),
            mute: None,
        }
    );
    assert_eq!(s.take(), ops(&[("GetItem", 1)]), "a command reads no mute");
    assert_eq!(
        s.store.enrollment(&student, &room("2")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_expired_enrollment_is_still_read_and_left_to_the_rule() {
    let s = stack().await;
    // Expired long ago: DynamoDB's TTL is lazy, the item is still there and read as it is.
    s.enroll(STUDENT1, "1", T0 / 1000 - 86_400).await;
    let standing = s.store.standing(&room("1"), &id(STUDENT1)).await.unwrap();
    assert_eq!(standing.enrollment_expires_at_s, Some(T0 / 1000 - 86_400));
    assert!(!mapping::classroom::moderation::enrollment_holds(
        standing.enrollment_expires_at_s,
        T0
    ));
    // An item without a readable expiresAt holds nothing.
    s.ddb
        .put_item()
        .table_name("enrollment")
        .item("clientId", AttributeValue::S(STUDENT1.to_owned()))
        .item("roomId", AttributeValue::S("3".to_owned()))
        .item("expiresAt", AttributeValue::S("later".to_owned()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.store.enrollment(&id(STUDENT1), &room("3")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn mute_changes_apply_in_command_order_and_a_redelivery_has_no_second_effect() {
    let s = stack().await;
    let timed = mute(T0 + 1_000, "c1", true, Some(T0 + 601_000));
    assert_eq!(
        s.store.change_mute(&timed).await.unwrap(),
        MuteOutcome::Written
    );
    assert_eq!(s.take(), ops(&[("UpdateItem", 1)]));
    let items = s.items("mutes").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["clientId"].as_s().unwrap(), STUDENT2);
    assert_eq!(items[0]["muted"].as_bool().unwrap(), &true);
    assert_eq!(items[0]["by"].as_s().unwrap(), TEACHER);
    assert_eq!(
        items[0]["untilMs"].as_n().unwrap(),
        &(T0 + 601_000).to_string()
    );
    // A day after a timed mute ends, DynamoDB may drop it.
    assert_eq!(
        items[0]["expiresAt"].as_n().unwrap(),
        &((T0 + 601_000) / 1000 + 86_400).to_string()
    );
    // The same command again: written again, the same values.
    assert_eq!(
        s.store.change_mute(&timed).await.unwrap(),
        MuteOutcome::Written
    );
    assert_eq!(s.items("mutes").await, items);
    // A later unmute lifts it, keeps the item for the ordering of late commands.
    let unmute = mute(T0 + 2_000, "c2", false, None);
    assert_eq!(
        s.store.change_mute(&unmute).await.unwrap(),
        MuteOutcome::Written
    );
    let lifted = s.items("mutes").await;
    assert_eq!(lifted[0]["muted"].as_bool().unwrap(), &false);
    assert!(!lifted[0].contains_key("untilMs"));
    assert_eq!(
        lifted[0]["expiresAt"].as_n().unwrap(),
        &((T0 + 2_000) / 1000 + KEEP_ENDED_SECS).to_string()
    );
    // The stale mute redelivered after the unmute is superseded: nothing written.
    assert_eq!(
        s.store.change_mute(&timed).await.unwrap(),
        MuteOutcome::Superseded
    );
    assert_eq!(s.items("mutes").await, lifted);
    // A mute until unmuted has no TTL.
    let forever = mute(T0 + 3_000, "c3", true, None);
    assert_eq!(
        s.store.change_mute(&forever).await.unwrap(),
        MuteOutcome::Written
    );
    let muted = s.items("mutes").await;
    assert!(!muted[0].contains_key("expiresAt") && !muted[0].contains_key("untilMs"));
    // The store agrees with the rule's own statement of the order.
    let state = s
        .store
        .standing(&room("1"), &id(STUDENT2))
        .await
        .unwrap()
        .mute;
    assert_eq!(timed.outcome_over(state.as_ref()), MuteOutcome::Superseded);
    assert_eq!(forever.outcome_over(state.as_ref()), MuteOutcome::Written);
}

#[tokio::test]
async fn a_join_is_one_transaction_adds_the_room_to_the_presence_head_once_and_keeps_the_first_time()
 {
    let s = stack().await;
    let join = |client: &str, role: Role, at_ms: u64| Join {
        room_id: room("1"),
        client_id: id(client),
        role,
        at_ms,
    };
    s.store
        .join(&join(TEACHER, Role::Teacher, T0))
        .await
        .unwrap();
    s.store
        .join(&join(STUDENT2, Role::Student, T0 + 100))
        .await
        .unwrap();
    assert_eq!(s.take(), ops(&[("TransactWriteItems", 2)]));
    let heads = s.items("presence").await;
    let mut got: Vec<(&str, &str, Vec<String>)> = heads
        .iter()
        .map(|h| {
            (
                h["clientId"].as_s().unwrap().as_str(),
                h["channelId"].as_s().unwrap().as_str(),
                h["rooms"].as_ss().unwrap().clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (STUDENT2, "#head", vec!["1".to_owned()]),
            (TEACHER, "#head", vec!["1".to_owned()]),
        ]
    );
    // Nothing else on the head: its version belongs to the presence function.
    assert!(heads.iter().all(|h| h.len() == 3), "{heads:?}");
    let members = s.items("membership").await;
    assert_eq!(members.len(), 2);
    // Again, later: nothing changes (the first join time is kept).
    s.store
        .join(&join(TEACHER, Role::Teacher, T0 + 5_000))
        .await
        .unwrap();
    s.store
        .join(&join(STUDENT2, Role::Student, T0 + 5_000))
        .await
        .unwrap();
    assert_eq!(
        s.items("presence").await,
        heads,
        "a redelivered join adds nothing"
    );
    assert_eq!(s.items("membership").await, members);
    let teacher = members
        .iter()
        .find(|m| m["clientId"].as_s().unwrap() == TEACHER)
        .unwrap();
    assert_eq!(teacher["joinedAt"].as_n().unwrap(), &T0.to_string());
    assert_eq!(teacher["role"].as_s().unwrap(), "teacher");
}

#[tokio::test]
async fn a_rooms_members_come_with_their_mutes_and_who_is_online() {
    let s = stack().await;
    for (client, role, at) in [
        (TEACHER, Role::Teacher, T0),
        (STUDENT2, Role::Student, T0 + 100),
        (STUDENT1, Role::Student, T0 + 200),
    ] {
        s.store
            .join(&Join {
                room_id: room("1"),
                client_id: id(client),
                role,
                at_ms: at,
            })
            .await
            .unwrap();
    }
    s.store
        .change_mute(&mute(T0 + 1_000, "c1", true, Some(T0 + 601_000)))
        .await
        .unwrap();
    // A member of another room is not listed.
    s.store
        .join(&Join {
            room_id: room("2"),
            client_id: id("GID_student@@@009"),
            role: Role::Student,
            at_ms: T0,
        })
        .await
        .unwrap();
    // What the presence function keeps on the head items: student 1 online, student 2 not.
    s.set_online(STUDENT1, true).await;
    s.set_online(STUDENT2, false).await;
    s.take();
    let read = s.store.room_members(&room("1")).await.unwrap();
    assert_eq!(
        s.take(),
        ops(&[("BatchGetItem", 1), ("Query", 2)]),
        "memberships, mutes, heads"
    );
    let member = |c: &str, role: &str| Membership {
        client_id: id(c),
        role: role.to_owned(),
    };
    assert_eq!(
        read,
        RoomMembers {
            members: vec![
                member(STUDENT1, "student"),
                member(STUDENT2, "student"),
                member(TEACHER, "teacher"),
            ],
            mutes: vec![(
                id(STUDENT2),
                MuteState {
                    muted: true,
                    until_ms: Some(T0 + 601_000),
                    changed_at_ms: Some(T0 + 1_000),
                    command_id: Some("c1".to_owned()),
                }
            )],
            online: vec![id(STUDENT1)],
        }
    );
    assert_eq!(
        s.store.room_members(&room("3")).await.unwrap(),
        RoomMembers::default()
    );
    const {
        assert!(
            BATCH_GET_ATTEMPTS >= 2,
            "unprocessed keys are asked for again"
        )
    };
}
