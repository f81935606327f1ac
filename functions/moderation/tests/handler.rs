//! The moderation function end to end against a real moto (SQS + DynamoDB), fed the fixture
//! events: every fixture sends exactly the notices of its pure snapshot (the rule's decisions
//! are checked without IO in `shared/mapping/tests/moderation_rule.rs`, the store's semantics
//! in `shared/stores/tests/moderation.rs`), failures are reported per record, the
//! configuration is checked, the chat rate and the rooms cap hold (issue 14), and the DynamoDB
//! requests are counted as sent, by interceptors on the SDK client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use kit::Env;
use moderation::Function;
use serde_json::Value;
use stores::moderation::BATCH_GET_ATTEMPTS;
use testkit::{Moto, RequestCounter, create_queue, create_table};

const TEACHER: &str = "GID_teacher@@@001";
const STUDENT1: &str = "GID_student@@@001";
const STUDENT2: &str = "GID_student@@@002";
const BANNED: &str = "笨蛋,傻瓜,damn,shit";
/// Everyone the fixtures have speak, all enrolled in room 1 (the fixtures' room) by [`stack`].
const CLASS: [&str; 4] = [TEACHER, "GID_teacher@@@002", STUDENT1, STUDENT2];
/// The fixtures' broker times are 1_732_240_000_000 ms and a few seconds after.
const FIXTURE_S: u64 = 1_732_240_000;
/// Until when [`stack`] enrolls the class: a day after the fixtures' times.
const ENROLLED_UNTIL_S: u64 = FIXTURE_S + 86_400;

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
        ("ENROLLMENT_TABLE", "enrollment"),
        ("CHAT_RATE_TABLE", "chat-rate"),
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
    create_table(&ddb, "enrollment", "clientId", "roomId", false).await;
    create_table(&ddb, "chat-rate", "clientId", "windowStart", false).await;
    enroll_class(&ddb, "enrollment").await;
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

/// Writes the enrollment item the issuer writes for a classroom token of `client` for
/// `room` expiring at `expires_at_s`.
async fn enroll(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    client: &str,
    room: &str,
    expires_at_s: u64,
) {
    let role = if client.starts_with("GID_teacher") {
        "teacher"
    } else {
        "student"
    };
    ddb.put_item()
        .table_name(table)
        .item("clientId", AttributeValue::S(client.to_owned()))
        .item("roomId", AttributeValue::S(room.to_owned()))
        .item(
            "enrolledAt",
            AttributeValue::N((FIXTURE_S * 1000 - 60_000).to_string()),
        )
        .item("expiresAt", AttributeValue::N(expires_at_s.to_string()))
        .item("role", AttributeValue::S(role.to_owned()))
        .send()
        .await
        .unwrap();
}

/// Enrolls the fixtures' [`CLASS`] in room 1 until [`ENROLLED_UNTIL_S`].
async fn enroll_class(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    for client in CLASS {
        enroll(ddb, table, client, "1", ENROLLED_UNTIL_S).await;
    }
}

/// Records every DynamoDB request a client sends (one per HTTP attempt, retries included)
/// by operation name and, when told to, rewrites `BatchGetItem` answers so that one table's
/// keys come back unprocessed, as DynamoDB does when it throttles a batch.
#[derive(Debug, Clone, Default)]
struct Requests {
    sent: Arc<Mutex<Vec<String>>>,
    unprocess: Arc<Mutex<Option<Unprocess>>>,
}

#[derive(Debug, Clone)]
struct Unprocess {
    table: String,
    keys: KeysAndAttributes,
    answers: usize,
}

impl Requests {
    /// A DynamoDB client over `sdk` that reports to a new recorder (the order of the
    /// requests) and to testkit's [`RequestCounter`] (their count by operation, the
    /// interceptor of `testkit::counting_client`).
    fn client(sdk: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, Requests, RequestCounter) {
        let requests = Requests::default();
        let counter = RequestCounter::default();
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(requests.clone())
            .interceptor(counter.clone())
            .build();
        (
            aws_sdk_dynamodb::Client::from_conf(config),
            requests,
            counter,
        )
    }

    /// The operations sent since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }

    /// The next `answers` `BatchGetItem` answers return `keys` of `table` unprocessed.
    fn leave_unprocessed(&self, table: &str, keys: KeysAndAttributes, answers: usize) {
        *self.unprocess.lock().unwrap() = Some(Unprocess {
            table: table.to_owned(),
            keys,
            answers,
        });
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `X-Amz-Target: DynamoDB_20120810.<Operation>`, on every request of the JSON protocol.
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.sent.lock().unwrap().push(op);
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut unprocess = self.unprocess.lock().unwrap();
        let Some(u) = unprocess.as_mut().filter(|u| u.answers > 0) else {
            return Ok(());
        };
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        if let Some(batch) = output.downcast_mut::<BatchGetItemOutput>() {
            if let Some(responses) = batch.responses.as_mut() {
                responses.remove(&u.table);
            }
            batch
                .unprocessed_keys
                .get_or_insert_with(HashMap::new)
                .insert(u.table.clone(), u.keys.clone());
            u.answers -= 1;
        }
        Ok(())
    }
}

/// The key of `client`'s enrollment in `room`, as `BatchGetItem` names it.
fn enrollment_key(client: &str, room: &str) -> KeysAndAttributes {
    KeysAndAttributes::builder()
        .keys(HashMap::from([
            ("clientId".to_owned(), AttributeValue::S(client.to_owned())),
            ("roomId".to_owned(), AttributeValue::S(room.to_owned())),
        ]))
        .consistent_read(true)
        .build()
        .unwrap()
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
        testkit::scan_items(&self.ddb, table).await
    }

    async fn run(&self, name: &str) -> Vec<Received> {
        self.run_event(fixture(name), name).await
    }

    async fn run_event(&self, event: SqsEvent, name: &str) -> Vec<Received> {
        let resp = self.function.handle(event).await.unwrap();
        assert_eq!(failed(&resp), Vec::<String>::new(), "{name}");
        self.downlink().await
    }
}

/// Record `i` (from 0) of fixture `name`, alone in its event.
fn record(name: &str, i: usize) -> SqsEvent {
    let mut event = fixture(name);
    let one = event.records.swap_remove(i);
    event.records = vec![one];
    event
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
async fn a_publish_the_outflow_refused_tells_its_sender_why() {
    let s = stack().await;
    let mut event = fixture("chat-plain");
    let sender = event.records[0].message_attributes["clientId"]
        .string_value
        .clone()
        .unwrap();
    let refused = |id: &str, kind: &str, sub: &str| {
        let mut r = event.records[0].clone();
        r.message_id = Some(id.to_owned());
        r.body = Some(format!(r#"{{"refused":"{kind}","reason":"..."}}"#));
        let mut attr = r.message_attributes["clientId"].clone();
        attr.string_value = Some(kind.to_owned());
        r.message_attributes.insert("refused".to_owned(), attr);
        if let Some(a) = r.message_attributes.get_mut("mqttSecondTopic") {
            a.string_value = Some(sub.to_owned());
        }
        r
    };
    event.records = vec![
        refused("too-large", "payload_too_large", "/message"),
        refused("bad-topic", "invalid_topic", "/refused"),
    ];
    let resp = s.function.handle(event).await.unwrap();
    assert_eq!(failed(&resp), Vec::<String>::new());
    let p2p = format!("/p2p/{sender}");
    assert_eq!(
        summary(&s.downlink().await),
        [
            row(&p2p, "rejected", "invalid_topic"),
            row(&p2p, "rejected", "too_large"),
        ]
    );
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
    let base = |var: &str| {
        let mut vars: Vec<(&str, &str)> = vec![
            ("MUTE_TABLE", "mutes"),
            ("MEMBERSHIP_TABLE", "membership"),
            ("PRESENCE_TABLE", "presence"),
            ("ENROLLMENT_TABLE", "enrollment"),
            ("CHAT_RATE_TABLE", "chat-rate"),
            ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
        ];
        vars.retain(|(k, _)| *k != var);
        vars
    };
    let without = |var: &str| Env::from_map(base(var));
    assert!(Function::from_env_with(&without("none"), &sdk).is_ok());
    for var in ["ENROLLMENT_TABLE", "CHAT_RATE_TABLE"] {
        let err = Function::from_env_with(&without(var), &sdk).unwrap_err();
        assert!(err.to_string().contains(var), "{err}");
    }
    // Flood control and the rooms cap: one sentence naming the variable.
    // Later pairs win: `extra` overrides the base.
    let with = |extra: &[(&'static str, &'static str)], drop: &str| {
        let mut vars = base(drop);
        vars.extend_from_slice(extra);
        Env::from_map(vars)
    };
    assert!(
        Function::from_env_with(&with(&[("CHAT_RATE_LIMIT", "0")], "CHAT_RATE_TABLE"), &sdk)
            .is_ok(),
        "the limit off needs no table"
    );
    for (var, value) in [
        ("CHAT_RATE_LIMIT", "ten"),
        ("CHAT_RATE_LIMIT", "-1"),
        ("CHAT_RATE_WINDOW_SECS", "0"),
        ("CHAT_RATE_WINDOW_SECS", "1.5"),
        ("MAX_ROOMS_PER_CLIENT", "0"),
        ("MAX_ROOMS_PER_CLIENT", "many"),
    ] {
        let err = Function::from_env_with(&with(&[(var, value)], "none"), &sdk).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(var) && !text.contains('\n'),
            "{var}={value}: {text}"
        );
    }
    let err = Function::from_env_with(&with(&[("PRESENCE_TABLE", "enrollment")], "none"), &sdk)
        .unwrap_err();
    assert!(err.to_string().contains("PRESENCE_TABLE"), "{err}");
    let shared = Env::from_map([
        ("MUTE_TABLE", "mutes"),
        ("MEMBERSHIP_TABLE", "membership"),
        ("PRESENCE_TABLE", "presence"),
        ("ENROLLMENT_TABLE", "mutes"),
        ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
    ]);
    let err = Function::from_env_with(&shared, &sdk).unwrap_err();
    assert!(
        err.to_string().contains("ENROLLMENT_TABLE") && err.to_string().contains("MUTE_TABLE"),
        "{err}"
    );
}

#[tokio::test]
async fn dynamodb_calls_per_chat_message_are_one_read_and_one_write_sent_together() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let (client, requests, counter) = Requests::client(&sdk);
    // Each step's requests in order; testkit's counter counts the same on the wire.
    let take = || {
        let sent = requests.take();
        let mut counted = std::collections::BTreeMap::new();
        for op in &sent {
            *counted.entry(op.clone()).or_insert(0usize) += 1;
        }
        assert_eq!(counter.all(), counted);
        counter.reset();
        sent
    };
    let function = Function::from_env_with(&env(&s.downlink, "mask"), &sdk)
        .unwrap()
        .with_dynamodb(client);
    let run = |event: SqsEvent| {
        let function = &function;
        let s = &s;
        async move {
            let resp = function.handle(event).await.unwrap();
            assert!(failed(&resp).is_empty());
            s.downlink().await
        }
    };
    let delivered = run(fixture("chat-plain")).await;
    assert_eq!(summary(&delivered), [row("/message/1", "chat", "")]);
    let delivered = take();

    run(record("chat-from-muted-student", 0)).await;
    let mute_command = take();
    let muted = run(record("chat-from-muted-student", 1)).await;
    assert_eq!(
        summary(&muted),
        [row("/p2p/GID_student@@@002", "rejected", "muted")]
    );
    let muted = take();

    let refused = run(record("room-not-enrolled", 0)).await;
    assert_eq!(
        summary(&refused),
        [row("/p2p/GID_student@@@001", "rejected", "not_enrolled")]
    );
    let not_enrolled = take();

    let mut unreadable = fixture("chat-plain");
    unreadable.records[0].body = Some("not a chat".to_owned());
    run(unreadable).await;
    let unreadable = take();

    run(fixture("join-room")).await;
    let join = take();

    // A chat: its one read and its one write (the rate counter), sent concurrently, so in
    // either order.
    let sorted = |mut ops: Vec<String>| {
        ops.sort();
        ops
    };
    let chat = ["BatchGetItem".to_owned(), "UpdateItem".to_owned()];
    assert_eq!(sorted(delivered.clone()), chat, "delivered");
    assert_eq!(sorted(muted.clone()), chat, "muted");
    assert_eq!(sorted(not_enrolled.clone()), chat, "not enrolled");
    assert_eq!(
        unreadable,
        ["UpdateItem"],
        "unreadable: refused before any read, but counted"
    );
    assert_eq!(mute_command, ["GetItem", "UpdateItem"]);
    assert_eq!(
        join,
        ["BatchGetItem", "TransactWriteItems"],
        "a student's join: enrollment and rooms in one read"
    );
    println!(
        "DynamoDB calls per chat message: {} (1 BatchGetItem + 1 UpdateItem, concurrent; delivered {} / muted {} / not enrolled {} / unreadable {}); per command: mute {}, student join {}",
        delivered.len(),
        delivered.len(),
        muted.len(),
        not_enrolled.len(),
        unreadable.len(),
        mute_command.len(),
        join.len()
    );
}

#[tokio::test]
async fn keys_dynamodb_leaves_unprocessed_are_asked_for_again_and_still_decide_the_chat() {
    let s = stack().await;
    s.run_event(record("chat-from-muted-student", 0), "mute")
        .await;
    let sdk = s.moto.sdk_config().await;
    let (client, requests, _) = Requests::client(&sdk);
    let function = Function::from_env_with(&env(&s.downlink, "mask"), &sdk)
        .unwrap()
        .with_dynamodb(client);
    // The first answer carries the mute item but leaves the enrollment unprocessed: the
    // second request asks for the enrollment alone, and both answers decide the chat.
    requests.leave_unprocessed("enrollment", enrollment_key(STUDENT2, "1"), 1);
    let resp = function
        .handle(record("chat-from-muted-student", 1))
        .await
        .unwrap();
    assert!(failed(&resp).is_empty());
    assert_eq!(
        summary(&s.downlink().await),
        [row("/p2p/GID_student@@@002", "rejected", "muted")]
    );
    // The chat's count goes out alongside (in any order): once, not once per read attempt.
    let reads = |mut ops: Vec<String>| {
        let writes = ops.iter().filter(|op| *op == "UpdateItem").count();
        ops.retain(|op| op != "UpdateItem");
        (ops, writes)
    };
    assert_eq!(
        reads(requests.take()),
        (
            vec!["BatchGetItem".to_owned(), "BatchGetItem".to_owned()],
            1
        )
    );

    // Still unprocessed after every round: the record fails (to be retried), nothing is sent.
    requests.leave_unprocessed("enrollment", enrollment_key(STUDENT1, "1"), usize::MAX);
    let event = fixture("chat-plain");
    let id = event.records[0].message_id.clone().unwrap();
    let resp = function.handle(event).await.unwrap();
    assert_eq!(failed(&resp), [id]);
    assert_eq!(s.downlink().await, Vec::<Received>::new());
    let (batch_gets, writes) = reads(requests.take());
    assert_eq!((batch_gets.len(), writes), (BATCH_GET_ATTEMPTS as usize, 1));
}

/// The records of fixture `name` sent by `client`, in fixture order.
fn records_of(name: &str, client: &str) -> Vec<aws_lambda_events::sqs::SqsMessage> {
    fixture(name)
        .records
        .into_iter()
        .filter(|r| r.message_attributes["clientId"].string_value.as_deref() == Some(client))
        .collect()
}

fn event(records: Vec<aws_lambda_events::sqs::SqsMessage>) -> SqsEvent {
    let mut event = fixture("chat-plain");
    event.records = records;
    event
}

/// Issue 14: 11 chats in one second from one sender: 10 reach the room, the 11th is refused
/// with one `rate_limited` notice; a 12th in that second is dropped without a second notice;
/// another sender's chat amid them and the sender's next second are delivered. Each chat
/// costs exactly one `UpdateItem` on top of its `BatchGetItem`, counted on the wire.
#[tokio::test]
async fn eleven_chats_in_one_second_deliver_ten_and_tell_the_sender_once() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let (client, _, counter) = Requests::client(&sdk);
    let function = Function::from_env_with(&env(&s.downlink, "mask"), &sdk)
        .unwrap()
        .with_dynamodb(client);
    let flood = records_of("chat-flood-one-sender", STUDENT1);
    assert_eq!(flood.len(), 13, "12 in one second, 1 in the next");
    let run = |records: Vec<aws_lambda_events::sqs::SqsMessage>| {
        let function = &function;
        let s = &s;
        async move {
            let resp = function.handle(event(records)).await.unwrap();
            assert_eq!(failed(&resp), Vec::<String>::new());
            s.downlink().await
        }
    };

    let first = run(flood[..11].to_vec()).await;
    let chats = first.iter().filter(|n| n.sub == "/message/1").count();
    let told: Vec<&Received> = first
        .iter()
        .filter(|n| n.body["reason"] == "rate_limited")
        .collect();
    assert_eq!((chats, told.len(), first.len()), (10, 1, 11), "{first:?}");
    assert_eq!(told[0].sub, format!("/p2p/{STUDENT1}"));
    assert_eq!(told[0].body["refMsgId"], format!("{STUDENT1}-11"));
    assert_eq!(counter.count("UpdateItem"), 11, "one write per chat");
    assert_eq!(counter.count("BatchGetItem"), 11, "one read per chat");
    counter.reset();

    let twelfth = run(flood[11..12].to_vec()).await;
    assert_eq!(twelfth, Vec::<Received>::new(), "no second notice");
    assert_eq!(counter.count("UpdateItem"), 1);
    counter.reset();

    let other = run(records_of("chat-flood-one-sender", STUDENT2)).await;
    assert_eq!(summary(&other), [row("/message/1", "chat", "")]);
    let next_second = run(flood[12..].to_vec()).await;
    assert_eq!(summary(&next_second), [row("/message/1", "chat", "")]);
    assert_eq!(counter.count("UpdateItem"), 2);

    let counters = s.items("chat-rate").await;
    let mut counted: Vec<(String, String, String)> = counters
        .iter()
        .map(|i| {
            (
                i["clientId"].as_s().unwrap().clone(),
                i["windowStart"].as_s().unwrap().clone(),
                i["chats"].as_n().unwrap().clone(),
            )
        })
        .collect();
    counted.sort();
    let t0 = (FIXTURE_S * 1000).to_string();
    let t1 = (FIXTURE_S * 1000 + 1000).to_string();
    assert_eq!(
        counted,
        [
            (STUDENT1.to_owned(), t0.clone(), "12".to_owned()),
            (STUDENT1.to_owned(), t1, "1".to_owned()),
            (STUDENT2.to_owned(), t0, "1".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_chat_rate_off_counts_nothing_and_limits_nothing() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let (client, _, counter) = Requests::client(&sdk);
    let mut vars: Vec<(&str, &str)> = vec![
        ("MUTE_TABLE", "mutes"),
        ("MEMBERSHIP_TABLE", "membership"),
        ("PRESENCE_TABLE", "presence"),
        ("ENROLLMENT_TABLE", "enrollment"),
        ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
    ];
    vars.push(("CHAT_RATE_LIMIT", "0"));
    let function = Function::from_env_with(&Env::from_map(vars), &sdk)
        .unwrap()
        .with_dynamodb(client);
    let resp = function
        .handle(event(records_of("chat-flood-one-sender", STUDENT1)))
        .await
        .unwrap();
    assert!(failed(&resp).is_empty());
    let sent = s.downlink().await;
    assert_eq!(sent.len(), 13);
    assert!(sent.iter().all(|n| n.sub == "/message/1"));
    assert_eq!(counter.count("UpdateItem"), 0);
}

/// Issue 14: a client may be a member of at most MAX_ROOMS_PER_CLIENT (20) rooms: the 21st
/// distinct room is refused with `too_many_rooms` and not written; a join of one of its rooms
/// still succeeds.
#[tokio::test]
async fn the_twenty_first_distinct_room_is_refused() {
    let s = stack().await;
    let rooms: Vec<String> = (1..=21).map(|i| format!("r{i}")).collect();
    for room in &rooms {
        enroll(&s.ddb, "enrollment", STUDENT1, room, ENROLLED_UNTIL_S).await;
    }
    let join = |room: &str, n: usize| {
        let mut record = fixture("join-room").records.remove(0);
        assert_eq!(
            record.message_attributes["clientId"]
                .string_value
                .as_deref(),
            Some(STUDENT1)
        );
        record.body = Some(format!(r#"{{"type":"join","roomId":"{room}"}}"#));
        record.message_id = Some(format!("join-{n}"));
        if let Some(id) = record.message_attributes.get_mut("mqttMessageId") {
            id.string_value = Some(format!("m-join-{n}"));
        }
        record
    };
    let twenty: Vec<_> = rooms[..20]
        .iter()
        .enumerate()
        .map(|(i, r)| join(r, i))
        .collect();
    let joined = s.run_event(event(twenty), "twenty joins").await;
    assert_eq!(
        joined
            .iter()
            .filter(|n| n.body["type"] == "commandResult" && n.body["ok"] == true)
            .count(),
        20
    );
    let refused = s.run_event(event(vec![join(&rooms[20], 20)]), "21st").await;
    assert_eq!(
        summary(&refused),
        [row("/p2p/GID_student@@@001", "rejected", "too_many_rooms")]
    );
    assert_eq!(refused[0].body["roomId"], "r21");
    assert_eq!(
        s.items("membership").await.len(),
        20,
        "the 21st is not written"
    );
    let again = s
        .run_event(event(vec![join(&rooms[0], 21)]), "rejoin")
        .await;
    assert!(
        again
            .iter()
            .any(|n| n.body["type"] == "commandResult" && n.body["ok"] == true),
        "{again:?}"
    );
}

/// The notices the pure rule sends for fixture `name`, from its reviewed snapshot
/// (`shared/mapping/tests/snapshots/moderation_rule__decision@<name>.json.snap`): the one copy
/// of what each fixture must send.
fn pure_snapshot(name: &str) -> (Vec<String>, Vec<Value>) {
    let path = format!(
        "{}/../../shared/mapping/tests/snapshots/moderation_rule__decision@{name}.json.snap",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // An insta snapshot: a `---` header, then the JSON.
    let json = text.splitn(3, "---\n").nth(2).unwrap();
    let decided: Value = serde_json::from_str(json).unwrap();
    let records = decided["records"].as_array().unwrap();
    let failed = records
        .iter()
        .filter(|r| r.get("failed").is_some())
        .map(|r| r["messageId"].as_str().unwrap().to_owned())
        .collect();
    let mut sent: Vec<Value> = records
        .iter()
        .flat_map(|r| r["sent"].as_array().cloned().unwrap_or_default())
        .collect();
    sent.sort_by_key(|n| n["mqttMessageId"].as_str().unwrap().to_owned());
    (failed, sent)
}

/// Every fixture through a fresh function state: exactly the downlink messages (topic, ID,
/// body) of the pure rule's snapshot, and the same failed records.
#[tokio::test]
async fn every_fixture_sends_the_notices_of_its_pure_snapshot() {
    let s = stack().await;
    let sdk = s.moto.sdk_config().await;
    let names = testkit::fixture_names(env!("CARGO_MANIFEST_DIR"));
    assert!(names.len() >= 14, "{names:?}");
    for (i, name) in names.iter().enumerate() {
        let (mutes, members) = (format!("mutes-{i}"), format!("membership-{i}"));
        create_table(&s.ddb, &mutes, "roomId", "clientId", false).await;
        create_table(&s.ddb, &members, "roomId", "clientId", true).await;
        let presence = format!("presence-{i}");
        create_table(&s.ddb, &presence, "clientId", "channelId", false).await;
        let enrollment = format!("enrollment-{i}");
        create_table(&s.ddb, &enrollment, "clientId", "roomId", false).await;
        let chat_rate = format!("chat-rate-{i}");
        create_table(&s.ddb, &chat_rate, "clientId", "windowStart", false).await;
        enroll_class(&s.ddb, &enrollment).await;
        let function = Function::from_env_with(
            &Env::from_map([
                ("MUTE_TABLE", mutes.as_str()),
                ("MEMBERSHIP_TABLE", members.as_str()),
                ("PRESENCE_TABLE", presence.as_str()),
                ("ENROLLMENT_TABLE", enrollment.as_str()),
                ("CHAT_RATE_TABLE", chat_rate.as_str()),
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
        let (failed_expected, expected) = pure_snapshot(name);
        assert_eq!(failed(&resp), failed_expected, "{name}");
        assert_eq!(notices, expected, "{name}");
    }
}

/// The local runner (`infra/local`) spawns `handle`'s future: it must be `Send` and `'static`
/// over a shared function. A compile-time check.
#[allow(dead_code)]
fn the_handler_future_is_send(function: std::sync::Arc<Function>, event: SqsEvent) {
    fn send<T: Send + 'static>(_: &T) {}
    send(&async move { function.handle(event).await });
}
