//! The moderation store against a real moto, with the template's key schemas: what it reads
//! back as typed state, the command order of mute changes, idempotent joins under the rooms
//! cap, a room's members, the chat counter, and the requests each read costs (counted on the
//! wire).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::counting_client;
use mapping::classroom::moderation::{ChatRate, Read};
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
    create_table(&ddb, "chat-rate", "clientId", "windowStart", false).await;
    let store = ModerationStore::new(
        ddb.clone(),
        Tables {
            mute: "mutes".to_owned(),
            membership: "membership".to_owned(),
            presence: "presence".to_owned(),
            enrollment: "enrollment".to_owned(),
            chat_rate: "chat-rate".to_owned(),
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
            ..Standing::default()
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
            ..Standing::default()
        }
    );
    assert_eq!(s.take(), ops(&[("GetItem", 1)]), "a command reads no mute");
    assert_eq!(
        s.store
            .read(&student, Read::Joining(&room("1")))
            .await
            .unwrap(),
        Standing {
            enrollment_expires_at_s: Some(T0 / 1000 + 60),
            rooms: Some(Vec::new()),
            ..Standing::default()
        },
        "no head: no rooms"
    );
    assert_eq!(
        s.take(),
        ops(&[("BatchGetItem", 1)]),
        "a join reads its enrollment and rooms in one request"
    );
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
        max_rooms: 20,
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
                max_rooms: 20,
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
            max_rooms: 20,
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

#[tokio::test]
async fn a_join_past_the_rooms_cap_is_not_written_and_a_rejoin_at_the_cap_is() {
    let s = stack().await;
    let join = |r: &str, max_rooms: usize| Join {
        room_id: room(r),
        client_id: id(STUDENT1),
        role: Role::Student,
        at_ms: T0,
        max_rooms,
    };
    let student = id(STUDENT1);
    for r in ["1", "2", "3"] {
        s.store.join(&join(r, 3)).await.unwrap();
    }
    let standing = s.store.joining(&room("4"), &student).await.unwrap();
    let rooms = standing.rooms.clone().unwrap();
    assert_eq!(rooms, [room("1"), room("2"), room("3")]);
    assert!(
        !join("4", 3).fits(&rooms),
        "the rule refuses it on what it read"
    );
    // A join that raced past the rule (read before another join filled the cap) is stopped
    // by the condition: the transaction is cancelled and nothing is written.
    s.take();
    let err = s.store.join(&join("4", 3)).await.unwrap_err();
    assert!(err.to_string().contains("TransactWriteItems"), "{err}");
    assert_eq!(s.take(), ops(&[("TransactWriteItems", 1)]));
    let memberships = s.items("membership").await;
    assert_eq!(memberships.len(), 3, "{memberships:?}");
    assert_eq!(
        s.store.joining(&room("4"), &student).await.unwrap().rooms,
        Some(rooms.clone())
    );
    // A room it is a member of already: written again (a redelivery, a second tab).
    s.store.join(&join("2", 3)).await.unwrap();
    // Under a higher cap the fourth room fits.
    s.store.join(&join("4", 4)).await.unwrap();
    assert_eq!(s.items("membership").await.len(), 4);
    // A cap of 0 admits no first room either.
    let other = Join {
        client_id: id(STUDENT2),
        ..join("1", 0)
    };
    assert!(s.store.join(&other).await.is_err());
}

#[tokio::test]
async fn the_chat_counter_counts_each_chat_once_per_sender_and_window_in_one_update() {
    let s = stack().await;
    let rate = ChatRate::default();
    let w = rate.window(&id(STUDENT1), T0 + 999);
    let mut counts = Vec::new();
    for _ in 0..12 {
        counts.push(s.store.count_chat(&w).await.unwrap());
    }
    assert_eq!(counts, (1..=12).collect::<Vec<u64>>());
    assert_eq!(s.take(), ops(&[("UpdateItem", 12)]), "one request per chat");
    let other = rate.window(&id(STUDENT2), T0 + 999);
    assert_eq!(
        s.store.count_chat(&other).await.unwrap(),
        1,
        "another sender"
    );
    let next = rate.window(&id(STUDENT1), T0 + 1_000);
    assert_eq!(
        s.store.count_chat(&next).await.unwrap(),
        1,
        "the next window"
    );
    let items = s.items("chat-rate").await;
    let mine = items
        .iter()
        .find(|i| {
            i["clientId"].as_s().unwrap() == STUDENT1
                && i["windowStart"].as_s().unwrap() == &T0.to_string()
        })
        .unwrap();
    assert_eq!(mine["chats"].as_n().unwrap(), "12");
    assert_eq!(
        mine["expiresAt"].as_n().unwrap(),
        &(T0 / 1000 + 1 + stores::attrs::chat_rate::KEEP_SECS).to_string(),
        "the TTL: an hour after the window ends"
    );
    assert_eq!(items.len(), 3);
}

#[tokio::test]
async fn counts_from_concurrent_containers_add_up() {
    let s = stack().await;
    let w = ChatRate::default().window(&id(STUDENT1), T0);
    // Two "containers" (two clients over the same table) counting at once: every count
    // comes back once, none is lost.
    let a = s.store.clone();
    let b = s.store.clone();
    let (mut x, y) = tokio::join!(
        async {
            let mut v = Vec::new();
            for _ in 0..10 {
                v.push(a.count_chat(&w).await.unwrap());
            }
            v
        },
        async {
            let mut v = Vec::new();
            for _ in 0..10 {
                v.push(b.count_chat(&w).await.unwrap());
            }
            v
        }
    );
    x.extend(y);
    x.sort_unstable();
    assert_eq!(x, (1..=20).collect::<Vec<u64>>());
}
