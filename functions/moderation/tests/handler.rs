//! The moderation function against a real moto (SQS + DynamoDB), fed the fixture events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use kit::Env;
use moderation::Function;
use serde_json::Value;
use testkit::{Moto, create_queue, create_table};

const TEACHER: &str = "GID_teacher@@@001";
const STUDENT1: &str = "GID_student@@@001";
const STUDENT2: &str = "GID_student@@@002";
const BANNED: &str = "笨蛋,傻瓜,damn,shit";

struct Stack {
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    downlink: String,
    function: Function,
}

fn env(downlink: &str, mode: &str) -> Env {
    Env::from_map([
        ("MUTE_TABLE", "mutes"),
        ("MEMBERSHIP_TABLE", "membership"),
        ("PRESENCE_TABLE", "presence"),
        ("DOWNLINK_QUEUE_URL", downlink),
        ("BANNED_WORDS", BANNED),
        ("MODERATION_MODE", mode),
        ("MAX_MESSAGE_CHARS", "500"),
        ("TEACHER_GROUPS", "GID_teacher"),
        ("STUDENT_GROUPS", "GID_student"),
    ])
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&ddb, "mutes", "roomId", "clientId", false).await;
    create_table(&ddb, "membership", "roomId", "clientId", true).await;
    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    let downlink = create_queue(&sqs, "downlink").await;
    let function = Function::from_env_with(&env(&downlink, "mask"), &sdk).unwrap();
    Stack {
        moto,
        sqs,
        ddb,
        downlink,
        function,
    }
}

/// A notice as received from the downlink queue.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    sub: String,
    id: String,
    body: Value,
}

impl Stack {
    async fn downlink(&self) -> Vec<Received> {
        let mut out = Vec::new();
        loop {
            let msgs =
                testkit::receive_all(&self.sqs, &self.downlink, 10, Duration::from_millis(300))
                    .await;
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                let attrs = m.message_attributes.unwrap_or_default();
                let get = |k: &str| {
                    attrs
                        .get(k)
                        .and_then(|a| a.string_value.clone())
                        .unwrap_or_default()
                };
                let body: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
                assert_eq!(get("mqttMessageId"), body["msgId"].as_str().unwrap());
                assert_eq!(get("timestamp"), body["ts"].to_string());
                out.push(Received {
                    sub: get("mqttSecondTopic"),
                    id: get("mqttMessageId"),
                    body,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    async fn items(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = self
            .ddb
            .scan()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        items.sort_by_key(|i| format!("{:?}{:?}", i.get("roomId"), i.get("clientId")));
        items
    }

    async fn run(&self, name: &str) -> Vec<Received> {
        let resp = self.function.handle(fixture(name)).await.unwrap();
        assert_eq!(failed(&resp), Vec::<String>::new(), "{name}");
        self.downlink().await
    }
}

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn failed(resp: &SqsBatchResponse) -> Vec<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// (sub-topic, type or "chat", reason) of each notice, for compact assertions.
fn summary(notices: &[Received]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = notices
        .iter()
        .map(|n| {
            (
                n.sub.clone(),
                n.body["type"].as_str().unwrap_or("chat").to_owned(),
                n.body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn row(sub: &str, kind: &str, reason: &str) -> (String, String, String) {
    (sub.to_owned(), kind.to_owned(), reason.to_owned())
}

#[tokio::test]
async fn scenario_2_the_teacher_mutes_a_student_who_is_told_by_p2p() {
    let s = stack().await;
    let notices = s.run("scenario-2-teacher-mutes-student").await;
    assert_eq!(
        summary(&notices),
        [
            row("/p2p/GID_student@@@002", "commandResult", ""),
            row("/p2p/GID_student@@@002", "mute", ""),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
            row("/p2p/GID_teacher@@@001", "members", ""),
            row("/status/1", "online", ""),
            row("/status/1", "online", ""),
        ]
    );
    // The teacher joined first: the room's members were the teacher alone.
    let members = notices
        .iter()
        .find(|n| n.body["type"] == "members")
        .unwrap();
    assert_eq!(
        members.body["members"],
        serde_json::json!([{"clientId": TEACHER, "role": "teacher", "online": false, "muted": false}])
    );
    let mute = notices.iter().find(|n| n.body["type"] == "mute").unwrap();
    assert_eq!(mute.body["by"], TEACHER);
    assert_eq!(mute.body["roomId"], "1");
    assert_eq!(mute.body["until"], 1_732_240_001_000u64 + 600_000);
    let members = s.items("membership").await;
    assert_eq!(members.len(), 2);
    let mutes = s.items("mutes").await;
    assert_eq!(mutes.len(), 1);
    assert_eq!(mutes[0]["clientId"].as_s().unwrap(), STUDENT2);
    assert_eq!(mutes[0]["muted"].as_bool().unwrap(), &true);
    assert_eq!(
        mutes[0]["expiresAt"].as_n().unwrap(),
        &((1_732_240_001_000u64 + 600_000) / 1000 + 86_400).to_string()
    );
}

#[tokio::test]
async fn a_teacher_who_joins_gets_the_members_online_and_muted_and_a_student_does_not() {
    let s = stack().await;
    // Student 2 joins and is muted (until +600 s); student 1 joins; the teacher joined first.
    s.run("scenario-2-teacher-mutes-student").await;
    let mut join1 = fixture("scenario-2-teacher-mutes-student");
    join1.records.truncate(2);
    join1.records.remove(0);
    let set = |r: &mut aws_lambda_events::sqs::SqsMessage, id: &str, client: &str, ts: u64| {
        r.message_id = Some(id.to_owned());
        for (k, v) in [
            ("mqttMessageId", id.to_owned()),
            ("clientId", client.to_owned()),
            ("timestamp", ts.to_string()),
        ] {
            r.message_attributes.get_mut(k).unwrap().string_value = Some(v);
        }
    };
    set(
        &mut join1.records[0],
        "join-s1",
        STUDENT1,
        1_732_240_002_000,
    );
    let resp = s.function.handle(join1).await.unwrap();
    assert!(failed(&resp).is_empty());
    let student_notices = s.downlink().await;
    assert!(
        student_notices.iter().all(|n| n.body["type"] != "members"),
        "a student gets no member list: {student_notices:?}"
    );
    // What the presence function keeps on the head items: student 1 online, student 2 not.
    for (client, online) in [(STUDENT1, true), (STUDENT2, false)] {
        s.ddb
            .update_item()
            .table_name("presence")
            .key("clientId", AttributeValue::S(client.to_owned()))
            .key("channelId", AttributeValue::S("#head".to_owned()))
            .update_expression("SET #o = :o")
            .expression_attribute_names("#o", mapping::presence::attrs::ONLINE)
            .expression_attribute_values(":o", AttributeValue::Bool(online))
            .send()
            .await
            .unwrap();
    }
    // The teacher (re)joins within student 2's mute.
    let mut rejoin = fixture("scenario-2-teacher-mutes-student");
    rejoin.records.truncate(1);
    set(
        &mut rejoin.records[0],
        "rejoin-t",
        TEACHER,
        1_732_240_003_000,
    );
    let resp = s.function.handle(rejoin).await.unwrap();
    assert!(failed(&resp).is_empty());
    let notices = s.downlink().await;
    let members: Vec<&Received> = notices
        .iter()
        .filter(|n| n.body["type"] == "members")
        .collect();
    assert_eq!(members.len(), 1, "{notices:?}");
    assert_eq!(members[0].sub, format!("/p2p/{TEACHER}"));
    assert_eq!(members[0].id, "rejoin-t:members-1");
    assert_eq!(
        members[0].body["members"],
        serde_json::json!([
            {"clientId": STUDENT1, "role": "student", "online": true, "muted": false},
            {"clientId": STUDENT2, "role": "student", "online": false, "muted": true},
            {"clientId": TEACHER, "role": "teacher", "online": false, "muted": false},
        ])
    );
    assert_eq!(
        (
            members[0].body["part"].as_u64(),
            members[0].body["parts"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn a_join_adds_the_room_to_the_joiners_presence_head_once() {
    let s = stack().await;
    s.run("scenario-2-teacher-mutes-student").await;
    let heads = s.items("presence").await;
    let summary: Vec<(&str, &str, Vec<String>)> = heads
        .iter()
        .map(|h| {
            (
                h["clientId"].as_s().unwrap().as_str(),
                h["channelId"].as_s().unwrap().as_str(),
                h["rooms"].as_ss().unwrap().clone(),
            )
        })
        .collect();
    let mut expected = vec![
        (STUDENT2, "#head", vec!["1".to_owned()]),
        (TEACHER, "#head", vec!["1".to_owned()]),
    ];
    let mut got = summary.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Nothing else on the head: its version belongs to the presence function.
    assert!(heads.iter().all(|h| h.len() == 3), "{heads:?}");
    s.run("scenario-2-teacher-mutes-student").await;
    assert_eq!(
        s.items("presence").await,
        heads,
        "a redelivered join adds nothing"
    );
}

#[tokio::test]
async fn a_redelivered_command_batch_has_no_second_effect_and_the_same_notice_ids() {
    let s = stack().await;
    let first = s.run("scenario-2-teacher-mutes-student").await;
    let (members, mutes) = (s.items("membership").await, s.items("mutes").await);
    let again = s.run("scenario-2-teacher-mutes-student").await;
    assert_eq!(s.items("membership").await, members);
    assert_eq!(s.items("mutes").await, mutes, "one mute, unchanged");
    // Same notices with the same IDs: clients de-duplicate. A `members` notice is a snapshot
    // of the room when the join was handled (here student 2 has joined and is muted by the
    // time of the redelivery): same ID, so a client that got the first keeps it.
    let without_members = |v: &[Received]| -> Vec<Received> {
        v.iter()
            .map(|n| {
                let mut n = n.clone();
                if n.body["type"] == "members" {
                    n.body["members"] = Value::Null;
                }
                n
            })
            .collect()
    };
    assert_eq!(without_members(&again), without_members(&first));
}

#[tokio::test]
async fn a_stale_mute_redelivered_after_an_unmute_does_not_mute_again() {
    let s = stack().await;
    s.run("chat-from-muted-student").await;
    let unmuted = s.run("unmute-student").await;
    assert!(unmuted.iter().any(|n| n.body["type"] == "unmute"));
    // The mute (and the chat) of the first batch come back: the mute is superseded.
    let notices = s.run("chat-from-muted-student").await;
    assert!(
        notices
            .iter()
            .any(|n| n.body["type"] == "commandResult" && n.body["ok"] == false),
        "{notices:?}"
    );
    assert!(!notices.iter().any(|n| n.body["type"] == "mute"));
    let mutes = s.items("mutes").await;
    assert_eq!(mutes[0]["muted"].as_bool().unwrap(), &false);
}

#[tokio::test]
async fn chat_from_a_muted_student_is_refused_and_not_fanned_out() {
    let s = stack().await;
    let notices = s.run("chat-from-muted-student").await;
    assert_eq!(
        summary(&notices),
        [
            row("/p2p/GID_student@@@002", "mute", ""),
            row("/p2p/GID_student@@@002", "rejected", "muted"),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
        ]
    );
    let rejected = notices
        .iter()
        .find(|n| n.body["type"] == "rejected")
        .unwrap();
    assert_eq!(rejected.body["refMsgId"], "GID_student@@@002-2000");
    assert_eq!(rejected.body["roomId"], "1");
}

#[tokio::test]
async fn chat_is_fanned_out_with_the_broker_verified_peer_and_masked_words() {
    let s = stack().await;
    let spoofed = s.run("spoofed-peer").await;
    assert_eq!(spoofed.len(), 1);
    assert_eq!(spoofed[0].sub, "/message/1");
    assert_eq!(spoofed[0].body["peer"], STUDENT1, "never the body's peer");
    let keys: Vec<&String> = spoofed[0].body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        5,
        "exactly msgId, peer, roomId, msg, ts: {keys:?}"
    );

    for (name, text) in [
        ("chat-banned-words-chinese", "你是**吗"),
        ("chat-banned-words-english", "****, this is ****"),
        ("chat-full-width-and-mixed-case", "**** it, ****"),
    ] {
        let n = s.run(name).await;
        assert_eq!(n.len(), 1, "{name}");
        assert_eq!(n[0].body["msg"], text, "{name}");
        assert_eq!(n[0].body["masked"], true, "{name}");
    }
    let plain = s.run("chat-plain").await;
    assert_eq!(plain[0].body["msg"], "老师好, good morning");
    assert_eq!(plain[0].body.get("masked"), None);
}

#[tokio::test]
async fn reject_mode_and_the_length_limit_refuse_with_a_reason() {
    let s = stack().await;
    let rejecting =
        Function::from_env_with(&env(&s.downlink, "reject"), &s.moto.sdk_config().await).unwrap();
    let resp = rejecting
        .handle(fixture("chat-banned-words-chinese"))
        .await
        .unwrap();
    assert!(failed(&resp).is_empty());
    assert_eq!(
        summary(&s.downlink().await),
        [row("/p2p/GID_student@@@001", "rejected", "banned_words")]
    );
    assert_eq!(
        summary(&s.run("chat-too-long").await),
        [row("/p2p/GID_student@@@001", "rejected", "too_long")]
    );
}

#[tokio::test]
async fn commands_from_students_at_teachers_or_malformed_are_refused_and_never_executed() {
    let s = stack().await;
    assert_eq!(
        summary(&s.run("mute-from-student").await),
        [row("/p2p/GID_student@@@001", "rejected", "not_teacher")]
    );
    assert_eq!(
        summary(&s.run("mute-aimed-at-teacher").await),
        [row(
            "/p2p/GID_teacher@@@001",
            "rejected",
            "target_not_student"
        )]
    );
    assert_eq!(
        summary(&s.run("malformed-command").await),
        [
            row("/p2p/GID_teacher@@@001", "rejected", "invalid_command"),
            row("/p2p/GID_teacher@@@001", "rejected", "invalid_command"),
        ]
    );
    assert!(s.items("mutes").await.is_empty());
}

#[tokio::test]
async fn a_record_that_is_not_a_backend_message_fails_alone() {
    let s = stack().await;
    let mut event = fixture("chat-plain");
    let mut bad = event.records[0].clone();
    bad.message_id = Some("not-a-backend-message".to_owned());
    bad.message_attributes.remove("clientId");
    let mut other = event.records[0].clone();
    other.message_id = Some("wrong-sub-topic".to_owned());
    if let Some(a) = other.message_attributes.get_mut("mqttSecondTopic") {
        a.string_value = Some("/status".to_owned());
    }
    event.records.push(bad);
    event.records.push(other);
    let resp = s.function.handle(event).await.unwrap();
    assert_eq!(failed(&resp), ["not-a-backend-message", "wrong-sub-topic"]);
    assert_eq!(s.downlink().await.len(), 1, "the good record went through");
}

#[tokio::test]
async fn bad_configuration_names_the_variable() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let err = Function::from_env_with(&env(&s.downlink, "drop"), &sdk).unwrap_err();
    assert!(err.to_string().contains("MODERATION_MODE"), "{err}");
    let err = Function::from_env_with(
        &Env::from_map([("MUTE_TABLE", "m"), ("MEMBERSHIP_TABLE", "x")]),
        &sdk,
    )
    .unwrap_err();
    assert!(err.to_string().contains("DOWNLINK_QUEUE_URL"), "{err}");
    let both = Env::from_map([
        ("MUTE_TABLE", "mutes"),
        ("MEMBERSHIP_TABLE", "membership"),
        ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
        ("STUDENT_GROUPS", "GID_teacher"),
    ]);
    let err = Function::from_env_with(&both, &sdk).unwrap_err();
    assert!(err.to_string().contains("STUDENT_GROUPS"), "{err}");
}

/// Every fixture through a fresh function state: the exact downlink messages it produces.
#[tokio::test]
async fn every_fixture_sends_the_notices_of_its_snapshot() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 13, "{names:?}");
    for (i, name) in names.iter().enumerate() {
        let (mutes, members) = (format!("mutes-{i}"), format!("membership-{i}"));
        create_table(&s.ddb, &mutes, "roomId", "clientId", false).await;
        create_table(&s.ddb, &members, "roomId", "clientId", true).await;
        let presence = format!("presence-{i}");
        create_table(&s.ddb, &presence, "clientId", "channelId", false).await;
        let function = Function::from_env_with(
            &Env::from_map([
                ("MUTE_TABLE", mutes.as_str()),
                ("MEMBERSHIP_TABLE", members.as_str()),
                ("PRESENCE_TABLE", presence.as_str()),
                ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
                ("BANNED_WORDS", BANNED),
            ]),
            &sdk,
        )
        .unwrap();
        let resp = function.handle(fixture(name)).await.unwrap();
        let notices: Vec<Value> = s
            .downlink()
            .await
            .into_iter()
            .map(|n| serde_json::json!({ "mqttSecondTopic": n.sub, "mqttMessageId": n.id, "body": n.body }))
            .collect();
        insta::with_settings!({ snapshot_suffix => name.as_str() }, {
            insta::assert_json_snapshot!("downlink", serde_json::json!({ "failed": failed(&resp), "notices": notices }));
        });
    }
}
