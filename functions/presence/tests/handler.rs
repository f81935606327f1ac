//! The presence function against a real moto (SQS + DynamoDB), fed the fixture events, end to
//! end through [`Function::handle`] / [`Function::apply`]. The DynamoDB requests are counted on
//! the function's SDK client (testkit's interceptor), not by the function. The rule's decisions
//! are tested without IO in `shared/mapping/tests/presence_rule.rs`, the store's semantics in
//! `shared/stores/tests/presence.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::AttributeValue;
use kit::{Env, SqsSender};
use mapping::{ClientId, LifecycleEvent, LifecycleKind, Transition};
use presence::Function;
use stores::PresenceStore;
use stores::presence::HEAD;
use testkit::{Moto, RequestCounter, create_queue, create_table};

const STUDENT: &str = "GID_student@@@002";

struct Stack {
    _moto: Moto,
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    downlink: String,
    function: Function,
    /// The requests of `function`'s DynamoDB client.
    counter: RequestCounter,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    create_table(&ddb, "attendance", "clientId", "sessionId", false).await;
    create_table(&ddb, "membership", "roomId", "clientId", true).await;
    let downlink = create_queue(&sqs, "downlink").await;
    let env = Env::from_map([
        ("PRESENCE_TABLE", "presence"),
        ("ATTENDANCE_TABLE", "attendance"),
        ("MEMBERSHIP_TABLE", "membership"),
        ("DOWNLINK_QUEUE_URL", downlink.as_str()),
    ]);
    // The same function `from_env_with` builds, with a DynamoDB client that counts requests.
    let (counted, counter) = testkit::counting_client(&sdk);
    let function = Function::new(
        PresenceStore::new(counted, "presence", "attendance"),
        SqsSender::new(sqs.clone()),
        downlink.clone(),
        env.rules().unwrap(),
    );
    assert_eq!(
        function.rules(),
        Function::from_env_with(&env, &sdk).unwrap().rules()
    );
    // The fixtures were recorded on 2024-11-22: "now" is a day later, within the retention.
    let function = function.with_clock(recorded_now);
    Stack {
        _moto: moto,
        sqs,
        ddb,
        downlink,
        function,
        counter,
    }
}

/// What the moderation function's `join` writes: the membership item, and the room in the
/// `rooms` set of the client's head item in the presence table (where this function reads it).
async fn join_in(
    ddb: &aws_sdk_dynamodb::Client,
    presence: &str,
    membership: &str,
    room: &str,
    client: &str,
) {
    ddb.put_item()
        .table_name(membership)
        .item("roomId", AttributeValue::S(room.to_owned()))
        .item("clientId", AttributeValue::S(client.to_owned()))
        .send()
        .await
        .unwrap();
    ddb.update_item()
        .table_name(presence)
        .key("clientId", AttributeValue::S(client.to_owned()))
        .key("channelId", AttributeValue::S(HEAD.to_owned()))
        .update_expression("ADD rooms :r")
        .expression_attribute_values(":r", AttributeValue::Ss(vec![room.to_owned()]))
        .send()
        .await
        .unwrap();
}

impl Stack {
    async fn join(&self, room: &str, client: &str) {
        join_in(&self.ddb, "presence", "membership", room, client).await;
    }

    /// Applies one event, counting the DynamoDB requests it sends: (effect, requests by
    /// operation, total).
    async fn apply_counted(
        &self,
        event: &LifecycleEvent,
    ) -> (
        presence::Effect,
        std::collections::BTreeMap<String, usize>,
        usize,
    ) {
        self.counter.reset();
        let effect = self.function.apply(event).await.unwrap();
        let requests = self.counter.all();
        let total = requests.values().sum();
        (effect, requests, total)
    }

    async fn online(&self, client: &str) -> bool {
        let snapshot = self
            .function
            .query(&ClientId::parse(client).unwrap())
            .await
            .unwrap();
        snapshot.presence.is_online()
    }

    /// Everything in the downlink queue: (sub-topic, message ID, body).
    async fn downlink(&self) -> Vec<(String, String, serde_json::Value)> {
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
                out.push((
                    get("mqttSecondTopic"),
                    get("mqttMessageId"),
                    serde_json::from_str(m.body.as_deref().unwrap()).unwrap(),
                ));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    async fn attendance(
        &self,
        client: &str,
    ) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        self.ddb
            .query()
            .table_name("attendance")
            .key_condition_expression("clientId = :c")
            .expression_attribute_values(":c", AttributeValue::S(client.to_owned()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }
}

/// A day after the fixtures' events.
fn recorded_now() -> u64 {
    1_732_240_000_000 + 24 * 3600 * 1000
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

fn n(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> Option<u64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn scenario_3_announces_online_then_offline_to_the_room_and_keeps_attendance() {
    let s = stack().await;
    s.join("1", STUDENT).await;
    let event = fixture("scenario-3-online-offline");
    let resp = s.function.handle(event.clone()).await.unwrap();
    assert!(failed(&resp).is_empty());
    assert!(!s.online(STUDENT).await);

    let notices = s.downlink().await;
    let kinds: Vec<(&str, &str)> = notices
        .iter()
        .map(|(sub, _, body)| (sub.as_str(), body["type"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("/status/1", "online"), ("/status/1", "offline")]);
    let (_, id, body) = &notices[1];
    assert_eq!(id, body["msgId"].as_str().unwrap());
    assert_eq!(body["clientId"], STUDENT);
    assert_eq!(body["roomId"], "1");
    // The disconnect ended the channel; the later tcpclean changed nothing.
    assert_eq!(body["ts"], 1_732_240_060_000u64);

    let sessions = s.attendance(STUDENT).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(n(&sessions[0], "joinedAt"), Some(1_732_240_000_000));
    assert_eq!(n(&sessions[0], "leftAt"), Some(1_732_240_060_000));
    assert_eq!(sessions[0]["rooms"].as_ss().unwrap(), &["1".to_owned()]);
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing_and_sends_nothing_new() {
    let s = stack().await;
    s.join("1", STUDENT).await;
    let event = fixture("scenario-3-online-offline");
    s.function.handle(event.clone()).await.unwrap();
    let first = s.downlink().await;
    let attendance = s.attendance(STUDENT).await;
    let resp = s.function.handle(event).await.unwrap();
    assert!(failed(&resp).is_empty());
    assert_eq!(
        s.downlink().await,
        [],
        "a redelivery must not announce again"
    );
    assert_eq!(
        s.attendance(STUDENT).await,
        attendance,
        "one attendance session, unchanged"
    );
    assert_eq!(first.len(), 2);
    assert!(!s.online(STUDENT).await);
}

#[tokio::test]
async fn out_of_order_duplicated_flash_and_takeover_histories_end_right() {
    let s = stack().await;
    s.join("1", STUDENT).await;
    for (name, online, announced) in [
        ("tcpclean-before-connect", false, 0),
        ("duplicated-events", false, 2),
        ("flash-reconnect", true, 1),
    ] {
        // A fresh client per history: clear the previous one's items (the head, with its
        // version and rooms, stays).
        let client = ClientId::parse(STUDENT).unwrap();
        for (channel, _) in s.function.query(&client).await.unwrap().presence.channels {
            s.ddb
                .delete_item()
                .table_name("presence")
                .key("clientId", AttributeValue::S(STUDENT.to_owned()))
                .key("channelId", AttributeValue::S(channel))
                .send()
                .await
                .unwrap();
        }
        let resp = s.function.handle(fixture(name)).await.unwrap();
        assert!(failed(&resp).is_empty(), "{name}");
        assert_eq!(s.online(STUDENT).await, online, "{name}");
        assert_eq!(s.downlink().await.len(), announced, "{name}");
    }
    // The IoT takeover: the old session's DUPLICATE_CLIENTID does not end the new one.
    let resp = s.function.handle(fixture("takeover-iot")).await.unwrap();
    assert!(failed(&resp).is_empty());
    assert!(s.online(STUDENT).await);
}

#[tokio::test]
async fn a_closed_channel_item_expires_fifteen_days_after_its_offline_event() {
    let s = stack().await;
    let resp = s
        .function
        .handle(fixture("iot-connected-disconnected"))
        .await
        .unwrap();
    assert!(failed(&resp).is_empty());
    let items = s
        .ddb
        .query()
        .table_name("presence")
        .key_condition_expression("clientId = :c")
        .expression_attribute_values(":c", AttributeValue::S("GID_student@@@002".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let channel = items
        .iter()
        .find(|i| {
            i.get("channelId")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|c| !c.starts_with('#'))
        })
        .expect("the channel item");
    assert_eq!(n(channel, "offlineAt"), Some(1_732_240_090_000));
    assert_eq!(
        n(channel, "expiresAt"),
        Some(1_732_240_090 + 15 * 24 * 3600),
        "TTL in seconds, 15 days after the offline event"
    );
    let head = items
        .iter()
        .find(|i| {
            i.get("channelId")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|c| c.starts_with('#'))
        })
        .expect("the head item");
    assert_eq!(n(head, "expiresAt"), None, "the head never expires");
}

#[tokio::test]
async fn an_event_older_than_the_retention_is_acknowledged_and_ignored() {
    let s = stack().await;
    // Sixteen days after the recorded events: older than the retention.
    let function = s
        .function
        .clone()
        .with_clock(|| 1_732_240_000_000 + 16 * 24 * 3600 * 1000);
    let resp = function.handle(fixture("seeds-connect")).await.unwrap();
    assert!(failed(&resp).is_empty(), "not an error: nothing to retry");
    assert!(
        !s.online("GID_student@@@002").await,
        "a stale connect opens nothing"
    );
    assert!(s.downlink().await.is_empty(), "and announces nothing");
    // The same event within the retention is applied.
    let resp = s.function.handle(fixture("seeds-connect")).await.unwrap();
    assert!(failed(&resp).is_empty());
    assert!(s.online("GID_student@@@002").await);
}

#[tokio::test]
async fn bad_records_fail_alone() {
    let s = stack().await;
    let event = fixture("batch-one-bad-client-id");
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let resp = s.function.handle(event).await.unwrap();
    assert_eq!(failed(&resp), ids[1..]);
    assert!(s.online("GID_student@@@001").await);
}

/// The requests of a read-then-write event and of a read-only (duplicate) event.
fn read_and_write() -> std::collections::BTreeMap<String, usize> {
    [
        ("Query".to_owned(), 1),
        ("TransactWriteItems".to_owned(), 1),
    ]
    .into()
}

fn read_only() -> std::collections::BTreeMap<String, usize> {
    [("Query".to_owned(), 1)].into()
}

#[tokio::test]
async fn dynamodb_calls_per_event_are_one_or_two() {
    let s = stack().await;
    s.join("1", STUDENT).await;
    let ev = |kind, time_ms, channel: &str| LifecycleEvent {
        client_id: ClientId::parse(STUDENT).unwrap(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    };
    let (first, first_ops, first_calls) =
        s.apply_counted(&ev(LifecycleKind::Connect, 1, "a")).await;
    // The rooms come with the read of the client's items: no third call on a transition.
    assert_eq!(
        (first.transition, first_calls, first.notices),
        (Transition::BecameOnline, 2, 1)
    );
    assert_eq!(first_ops, read_and_write());
    let (second, second_ops, second_calls) =
        s.apply_counted(&ev(LifecycleKind::Connect, 2, "b")).await;
    assert_eq!(
        (second.transition, second_calls),
        (Transition::Unchanged, 2)
    );
    assert_eq!(second_ops, read_and_write());
    let (again, again_ops, again_calls) =
        s.apply_counted(&ev(LifecycleKind::Connect, 2, "b")).await;
    assert_eq!((again.changed, again_calls), (false, 1));
    assert_eq!(again_ops, read_only());
    let (offline, offline_ops, offline_calls) =
        s.apply_counted(&ev(LifecycleKind::TcpClean, 3, "a")).await;
    assert_eq!(
        (offline.transition, offline_calls),
        (Transition::Unchanged, 2)
    );
    assert_eq!(offline_ops, read_and_write());
    let (last, last_ops, last_calls) = s.apply_counted(&ev(LifecycleKind::TcpClean, 4, "b")).await;
    assert_eq!(
        (last.transition, last_calls, last.notices),
        (Transition::BecameOffline, 2, 1)
    );
    assert_eq!(last_ops, read_and_write());
    // No conflict here: every event took one attempt.
    for effect in [&first, &second, &again, &offline, &last] {
        assert_eq!(effect.attempts, 1, "{effect:?}");
    }
    println!(
        "DynamoDB calls per event (SDK requests): transition {first_calls} (online) / {last_calls} (offline), no transition {second_calls}, duplicate {again_calls}"
    );
}

#[tokio::test]
async fn a_room_joined_while_online_is_told_of_the_next_transition_and_outlives_the_writes() {
    let s = stack().await;
    let client = ClientId::parse(STUDENT).unwrap();
    let ev = |kind, time_ms| LifecycleEvent {
        client_id: client.clone(),
        kind,
        time_ms,
        channel_id: "a".to_owned(),
        client_ip: None,
        reason: None,
    };
    // Online before any join: a transition, but no room to tell.
    let (online, _, online_calls) = s.apply_counted(&ev(LifecycleKind::Connect, 1)).await;
    assert_eq!(
        (online.transition, online.notices, online_calls),
        (Transition::BecameOnline, 0, 2)
    );
    s.join("1", STUDENT).await;
    s.join("2", STUDENT).await;
    s.join("1", STUDENT).await; // a redelivered join
    let (offline, offline_ops, offline_calls) =
        s.apply_counted(&ev(LifecycleKind::TcpClean, 2)).await;
    assert_eq!(
        (offline.transition, offline_calls, offline.notices),
        (Transition::BecameOffline, 2, 2)
    );
    assert_eq!(offline_ops, read_and_write());
    let notices = s.downlink().await;
    let mut subs: Vec<&str> = notices.iter().map(|(sub, _, _)| sub.as_str()).collect();
    subs.sort_unstable();
    assert_eq!(subs, ["/status/1", "/status/2"]);
    assert!(notices.iter().all(|(_, _, body)| body["type"] == "offline"));
    // The version bumps kept the rooms: the head has both, at version 2.
    let snapshot = s.function.query(&client).await.unwrap();
    let rooms: Vec<&str> = snapshot.rooms.iter().map(|r| r.as_str()).collect();
    assert_eq!((rooms, snapshot.version), (vec!["1", "2"], 2));
}

#[tokio::test]
async fn concurrent_containers_agree_on_the_final_state() {
    let s = stack().await;
    s.join("1", STUDENT).await;
    let other = {
        let sdk = s._moto.sdk_config().await;
        let env = Env::from_map([
            ("PRESENCE_TABLE", "presence"),
            ("ATTENDANCE_TABLE", "attendance"),
            ("MEMBERSHIP_TABLE", "membership"),
            ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
        ]);
        Function::from_env_with(&env, &sdk).unwrap()
    };
    let ev = |kind, time_ms, channel: &str| LifecycleEvent {
        client_id: ClientId::parse(STUDENT).unwrap(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    };
    // Many channels opening and closing on two "containers" at once.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..6u64 {
        a.push(ev(LifecycleKind::Connect, i * 10, &format!("c{i}")));
        b.push(ev(LifecycleKind::TcpClean, i * 10 + 5, &format!("c{i}")));
    }
    let run = |f: &Function, evs: Vec<LifecycleEvent>| {
        let f = f.clone();
        async move {
            for e in evs {
                // A record that keeps conflicting fails and is redelivered: do the same.
                let mut redeliveries = 0;
                while let Err(err) = f.apply(&e).await {
                    redeliveries += 1;
                    assert!(redeliveries < 5, "{err}");
                }
            }
        }
    };
    tokio::join!(run(&s.function, a), run(&other, b));
    let snapshot = s
        .function
        .query(&ClientId::parse(STUDENT).unwrap())
        .await
        .unwrap();
    assert_eq!(snapshot.presence.channels.len(), 6);
    assert!(
        snapshot.presence.channels.values().all(|c| c.is_closed()),
        "{snapshot:?}"
    );
    assert!(!snapshot.presence.is_online());
    // Every write bumped the version exactly once: 12 events, 12 writes.
    assert_eq!(snapshot.version, 12);
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> serde_json::Value {
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    let mut out = serde_json::Map::new();
    for k in keys {
        let v = match &item[k] {
            AttributeValue::S(s) => serde_json::json!(s),
            AttributeValue::N(n) => serde_json::json!(n.parse::<u64>().unwrap()),
            AttributeValue::Ss(ss) => {
                let mut ss = ss.clone();
                ss.sort();
                serde_json::json!(ss)
            }
            other => serde_json::json!(format!("{other:?}")),
        };
        out.insert(k.clone(), v);
    }
    serde_json::Value::Object(out)
}

/// Every fixture through a fresh state (both students members of room 1): the downlink
/// messages, who is online after it, and the attendance sessions.
#[tokio::test]
async fn every_fixture_gives_the_state_and_notices_of_its_snapshot() {
    let s = stack().await;
    let sdk = s._moto.sdk_config().await;
    let names = testkit::fixture_names(env!("CARGO_MANIFEST_DIR"));
    assert!(names.len() >= 10, "{names:?}");
    for (i, name) in names.iter().enumerate() {
        let (p, a, m) = (
            format!("presence-{i}"),
            format!("attendance-{i}"),
            format!("membership-{i}"),
        );
        create_table(&s.ddb, &p, "clientId", "channelId", false).await;
        create_table(&s.ddb, &a, "clientId", "sessionId", false).await;
        create_table(&s.ddb, &m, "roomId", "clientId", true).await;
        for client in ["GID_student@@@001", STUDENT] {
            join_in(&s.ddb, &p, &m, "1", client).await;
        }
        let function = Function::from_env_with(
            &Env::from_map([
                ("PRESENCE_TABLE", p.as_str()),
                ("ATTENDANCE_TABLE", a.as_str()),
                ("MEMBERSHIP_TABLE", m.as_str()),
                ("DOWNLINK_QUEUE_URL", s.downlink.as_str()),
            ]),
            &sdk,
        )
        .unwrap()
        .with_clock(recorded_now);
        let resp = function.handle(fixture(name)).await.unwrap();
        let notices: Vec<serde_json::Value> = s
            .downlink()
            .await
            .into_iter()
            .map(|(sub, id, body)| serde_json::json!({ "mqttSecondTopic": sub, "mqttMessageId": id, "body": body }))
            .collect();
        let mut online = serde_json::Map::new();
        let mut attendance = Vec::new();
        for client in ["GID_student@@@001", STUDENT] {
            let snapshot = function
                .query(&ClientId::parse(client).unwrap())
                .await
                .unwrap();
            online.insert(client.to_owned(), snapshot.presence.is_online().into());
            let items = s
                .ddb
                .query()
                .table_name(&a)
                .key_condition_expression("clientId = :c")
                .expression_attribute_values(":c", AttributeValue::S(client.to_owned()))
                .send()
                .await
                .unwrap()
                .items
                .unwrap_or_default();
            attendance.extend(items.iter().map(item_json));
        }
        let failed_positions: Vec<usize> = failed(&resp)
            .iter()
            .map(|id| {
                fixture(name)
                    .records
                    .iter()
                    .position(|r| r.message_id.as_deref() == Some(id.as_str()))
                    .unwrap()
            })
            .collect();
        insta::with_settings!({ snapshot_suffix => name.as_str() }, {
            insta::assert_json_snapshot!("outcome", serde_json::json!({
                "failedRecords": failed_positions,
                "notices": notices,
                "online": online,
                "attendance": attendance,
            }));
        });
    }
}

/// A student connected at `T0` whose offline event was lost (the broker died without
/// publishing it): its channel is closed at the student's next event once it has been open
/// longer than the longest connection, with the usual offline notice, and not a moment before.
#[tokio::test]
async fn a_channel_whose_offline_event_was_lost_is_closed_at_the_next_event_after_the_bound() {
    use mapping::presence::{MAX_SESSION_EXCEEDED, MAX_SESSION_MS};
    const T0: u64 = 1_732_240_000_000;
    let s = stack().await;
    s.join("1", STUDENT).await;
    let client = ClientId::parse(STUDENT).unwrap();
    let ev = |kind, time_ms, channel: &str| LifecycleEvent {
        client_id: client.clone(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    };
    let online = s
        .function
        .apply_at(&ev(LifecycleKind::Connect, T0, "lost"), T0)
        .await
        .unwrap();
    assert_eq!(
        (online.transition, online.closed),
        (Transition::BecameOnline, 0)
    );
    assert_eq!(s.downlink().await.len(), 1, "the online notice");

    // Exactly at the bound: another channel's event leaves the lost one open.
    let at_bound = s
        .function
        .apply_at(
            &ev(LifecycleKind::Connect, T0 + 1_000, "other"),
            T0 + MAX_SESSION_MS,
        )
        .await
        .unwrap();
    assert_eq!((at_bound.closed, at_bound.notices), (0, 0));
    let snapshot = s.function.query(&client).await.unwrap();
    assert!(snapshot.presence.channels["lost"].is_open());
    s.function
        .apply_at(
            &ev(LifecycleKind::TcpClean, T0 + 2_000, "other"),
            T0 + MAX_SESSION_MS,
        )
        .await
        .unwrap();

    // One millisecond later the student comes back on a new channel: the lost one is closed
    // first (offline notice), then the new one opens (online notice).
    let now = T0 + MAX_SESSION_MS + 1;
    let back = s
        .function
        .apply_at(&ev(LifecycleKind::Connect, now, "new"), now)
        .await
        .unwrap();
    assert_eq!(
        (back.transition, back.closed, back.notices),
        (Transition::BecameOnline, 1, 2)
    );
    let notices = s.downlink().await;
    let mut kinds: Vec<(u64, String)> = notices
        .iter()
        .map(|(sub, _, body)| {
            assert_eq!(sub, "/status/1");
            (
                body["ts"].as_u64().unwrap_or_default(),
                body["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(),
        ["offline", "online"],
        "{notices:?}"
    );
    let snapshot = s.function.query(&client).await.unwrap();
    let lost = &snapshot.presence.channels["lost"];
    let off = lost.offline.as_ref().expect("closed");
    assert_eq!(off.at, T0 + MAX_SESSION_MS);
    assert_eq!(
        off.reason.as_ref().map(|r| r.as_str()),
        Some(MAX_SESSION_EXCEEDED)
    );
    assert_eq!(
        snapshot.presence.open_channels().collect::<Vec<_>>(),
        ["new"]
    );

    // The lost channel's real event, late: nothing changes, nothing is announced.
    let late = s
        .function
        .apply_at(
            &ev(LifecycleKind::TcpClean, now + 5_000, "lost"),
            now + 5_000,
        )
        .await
        .unwrap();
    assert_eq!((late.changed, late.notices, late.closed), (false, 0, 0));
    assert!(s.downlink().await.is_empty());
}

#[tokio::test]
async fn the_sweep_closes_the_channel_of_a_client_who_never_comes_back() {
    use mapping::presence::{MAX_SESSION_EXCEEDED, MAX_SESSION_MS};
    const T0: u64 = 1_732_240_000_000;
    let s = stack().await;
    s.join("1", STUDENT).await;
    let client = ClientId::parse(STUDENT).unwrap();
    let connect = |time_ms, channel: &str| LifecycleEvent {
        client_id: client.clone(),
        kind: LifecycleKind::Connect,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    };
    s.function.apply_at(&connect(T0, "lost"), T0).await.unwrap();
    assert_eq!(s.downlink().await.len(), 1, "the online notice");

    // At the bound nothing is overdue yet.
    let early = s.function.sweep(T0 + MAX_SESSION_MS).await.unwrap();
    assert_eq!((early.clients, early.closed, early.notices), (0, 0, 0));
    assert!(s.downlink().await.is_empty());

    // Past it, with no further event from the client: closed, and the room told.
    let swept = s.function.sweep(T0 + MAX_SESSION_MS + 1).await.unwrap();
    assert_eq!(
        (swept.clients, swept.closed, swept.notices, swept.failed),
        (1, 1, 1, 0)
    );
    let notices = s.downlink().await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].0, "/status/1");
    assert_eq!(notices[0].2["type"], "offline");
    let snapshot = s.function.query(&client).await.unwrap();
    let off = snapshot.presence.channels["lost"]
        .offline
        .clone()
        .expect("closed");
    assert_eq!(off.at, T0 + MAX_SESSION_MS);
    assert_eq!(
        off.reason.as_ref().map(|r| r.as_str()),
        Some(MAX_SESSION_EXCEEDED)
    );

    // A second sweep finds nothing left to close.
    let again = s
        .function
        .sweep(T0 + MAX_SESSION_MS + 60_000)
        .await
        .unwrap();
    assert_eq!((again.clients, again.closed), (0, 0));
    assert!(s.downlink().await.is_empty());
}
