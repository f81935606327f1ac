//! The inflow against a real Mosquitto running the project's ACL file, with real subscribers:
//! QoS 1 delivery with message ID and timestamp, P2P reaching only its target, a broker that
//! refuses or disappears failing exactly the unacknowledged records, and a redelivery after
//! the broker is back losing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::collections::BTreeSet;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use inflow::Function;
use kit::{Env, MqttPublisher, MqttSettings};
use rumqttc::v5::mqttbytes::QoS;
use testkit::{BACKEND_PASSWORD, BACKEND_USER, Mosquitto, Subscriber, user_property};

mod common;
use common::chat_batch;

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn settings(port: u16, password: &str) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        client_id_prefix: "backend-inflow-test-".into(),
        credentials: Some((BACKEND_USER.into(), password.into())),
        keep_alive: Duration::from_secs(5),
        publish_timeout: Duration::from_secs(3),
    }
}

fn function(port: u16) -> Function {
    Function::new(
        Env::from_map::<&str, &str>([]).rules().unwrap(),
        MqttPublisher::new(settings(port, BACKEND_PASSWORD)),
    )
}

/// A classroom client with a clean session. Anonymous here: testkit's broker has no sign-in
/// plugin and grants it what a classroom token would let it read (`testkit::CLASSROOM_READS`).
async fn student(broker: &Mosquitto, client_id: &str, filters: &[&str]) -> Subscriber {
    Subscriber::connect(broker.port, client_id, None, false, filters).await
}

fn failed(resp: &aws_lambda_events::sqs::SqsBatchResponse) -> BTreeSet<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// A warm container frozen between invocations: the broker heard nothing from it and it heard
/// nothing back. Simulated by freezing the broker for longer than 1.5 x keep-alive: the next
/// invocation replaces the connection before publishing instead of trusting a dead socket.
#[tokio::test]
async fn a_connection_silent_past_one_and_a_half_keepalives_is_replaced_before_publishing() {
    let broker = Mosquitto::start();
    let f = function(broker.port); // keep-alive 5 s
    for range in [0..1, 1..2] {
        let resp = f.handle(chat_batch(range)).await.unwrap();
        assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    }
    assert_eq!(
        f.publisher().connections_opened(),
        1,
        "a connection in use is kept"
    );

    broker.pause();
    tokio::time::sleep(f.publisher().idle_limit() + Duration::from_millis(500)).await;
    let late = tokio::spawn(async move {
        let resp = f.handle(chat_batch(2..3)).await.unwrap();
        (resp, f)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.resume();
    let (resp, f) = late.await.unwrap();
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    assert_eq!(
        f.publisher().connections_opened(),
        2,
        "the silent connection was replaced before publishing"
    );
}

#[tokio::test]
async fn chat_is_received_at_qos1_with_its_message_id_and_timestamp() {
    let broker = Mosquitto::start();
    let mut student = student(&broker, "GID_student@@@001", &["room/message/#"]).await;
    let f = function(broker.port);

    let resp = f.handle(fixture("chat-fanout")).await.unwrap();
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");

    let p = student
        .next(Duration::from_secs(5))
        .await
        .expect("chat delivered");
    assert_eq!(p.topic.as_ref(), b"room/message/123456");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(user_property(&p, "mqttMessageId"), Some("c-001"));
    assert_eq!(user_property(&p, "timestamp"), Some("1732250000000"));
    let chat: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(chat["msg"], "老师好, hello");
}

#[tokio::test]
async fn a_p2p_message_reaches_its_target_and_no_other_client() {
    let broker = Mosquitto::start();
    // Both students try to read every P2P topic; the ACL lets each read only its own.
    let mut a = student(
        &broker,
        "GID_student@@@001",
        &["room/p2p/#", "room/p2p/GID_student@@@002"],
    )
    .await;
    let mut b = student(
        &broker,
        "GID_student@@@002",
        &["room/p2p/GID_student@@@002"],
    )
    .await;
    let f = function(broker.port);

    let resp = f.handle(fixture("p2p-to-student")).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    let got = b
        .next(Duration::from_secs(5))
        .await
        .expect("target receives its P2P message");
    assert_eq!(got.topic.as_ref(), b"room/p2p/GID_student@@@002");
    assert!(
        a.drain(Duration::from_secs(1)).await.is_empty(),
        "another student read a P2P message"
    );
}

#[tokio::test]
async fn a_student_cannot_publish_under_the_backend_parent() {
    let broker = Mosquitto::start();
    let mut listener = student(&broker, "GID_student@@@001", &["room/message/#"]).await;
    // A student impersonating the backend, with the same publisher code: MQTT 5 PUBACK says
    // "not authorized", which the publisher reports as a refusal.
    let mut student = settings(broker.port, "");
    student.credentials = None;
    student.client_id_prefix = "GID_student@@@".into();
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    let forged = Function::new(rules, MqttPublisher::new(student));
    let event = fixture("chat-fanout");
    let resp = forged.handle(event).await.unwrap();
    assert_eq!(
        resp.batch_item_failures.len(),
        1,
        "the broker refused the publish"
    );
    assert!(
        listener.drain(Duration::from_secs(1)).await.is_empty(),
        "a forged room message was delivered"
    );
}

#[tokio::test]
async fn the_batch_of_ten_reports_only_the_bad_record() {
    let broker = Mosquitto::start();
    let mut student = student(&broker, "GID_student@@@001", &["room/message/#"]).await;
    let event = fixture("batch-of-ten-one-bad");
    let resp = function(broker.port).handle(event.clone()).await.unwrap();
    assert_eq!(
        failed(&resp),
        BTreeSet::from([event.records[6].message_id.clone().unwrap()])
    );
    assert_eq!(student.drain(Duration::from_secs(1)).await.len(), 9);
}

#[tokio::test]
async fn an_unreachable_broker_fails_every_record_for_retry() {
    let port = testkit::free_port();
    let event = chat_batch(0..5);
    let resp = function(port).handle(event).await.unwrap();
    assert_eq!(resp.batch_item_failures.len(), 5);
}

#[tokio::test]
async fn wrong_credentials_fail_every_record() {
    let broker = Mosquitto::start();
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    let f = Function::new(rules, MqttPublisher::new(settings(broker.port, "wrong")));
    let resp = f.handle(chat_batch(0..3)).await.unwrap();
    assert_eq!(resp.batch_item_failures.len(), 3);
}

/// How the broker fails mid-batch.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// Graceful stop (SIGTERM), then a restart from its persistence.
    Stop,
    /// Frozen (SIGSTOP): nothing is acknowledged until the publish timeout; then thawed.
    Freeze,
}

async fn broker_fails_mid_batch(failure: Failure) {
    const N: usize = 3000;
    let mut broker = Mosquitto::start();
    // A persistent QoS 1 subscriber: what the broker acknowledged survives its restart.
    let mut student = Subscriber::connect(
        broker.port,
        "GID_student@@@001",
        None,
        true,
        &["room/message/#"],
    )
    .await;
    let f = function(broker.port);

    let event = chat_batch(0..N);
    let handle = tokio::spawn(async move {
        let resp = f.handle(event).await.unwrap();
        (f, resp)
    });
    // Stop the broker once part of the batch has been delivered.
    let mut seen = BTreeSet::new();
    while seen.len() < 200 {
        let p = student
            .next(Duration::from_secs(10))
            .await
            .expect("deliveries started");
        seen.insert(user_property(&p, "mqttMessageId").unwrap().to_owned());
    }
    match failure {
        Failure::Stop => broker.stop(),
        Failure::Freeze => broker.pause(),
    }
    let (f, first) = handle.await.unwrap();
    let failed_first = failed(&first);
    assert!(
        !failed_first.is_empty(),
        "the stop came mid-batch, so some records were not acknowledged"
    );
    assert!(
        failed_first.len() < N,
        "some records were acknowledged before the stop"
    );

    // The queue redelivers exactly the failed records once the broker is back.
    match failure {
        Failure::Stop => {
            broker.restart();
            // The subscriber is back (and subscribed) before the queue redelivers.
            student.wait_subscribed(Duration::from_secs(10)).await;
        }
        Failure::Freeze => broker.resume(),
    }
    let ids: Vec<usize> = failed_first
        .iter()
        .map(|id| id.trim_start_matches("sqs-").parse().unwrap())
        .collect();
    let records: Vec<_> = chat_batch(0..N)
        .records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ids.contains(i))
        .map(|(_, r)| r)
        .collect();
    let mut redelivery = SqsEvent::default();
    redelivery.records = records;
    let second = f.handle(redelivery).await.unwrap();
    assert!(
        second.batch_item_failures.is_empty(),
        "the redelivery got through: {:?}",
        second.batch_item_failures.len()
    );

    for p in student.drain(Duration::from_secs(3)).await {
        seen.insert(user_property(&p, "mqttMessageId").unwrap().to_owned());
    }
    let missing: Vec<usize> = (0..N)
        .filter(|i| !seen.contains(&format!("m-{i}")))
        .collect();
    // Every record the function reported failed was redelivered and received: nothing that
    // was not acknowledged is lost, and no acknowledgement was mis-attributed.
    let lost_ours: Vec<&usize> = missing
        .iter()
        .filter(|i| failed_first.contains(&format!("sqs-{i}")))
        .collect();
    assert!(
        lost_ours.is_empty(),
        "{} failed records lost after redelivery: {lost_ours:?}",
        lost_ours.len()
    );
    // What the broker acknowledged is its to keep. A frozen broker keeps everything; a broker
    // stopped with SIGTERM has been seen (Mosquitto 2.0.11, about 1 run in 6) not to deliver,
    // after its restart, a few messages it had acknowledged just before the stop: that is the
    // broker's durability, reported here rather than hidden.
    if matches!(failure, Failure::Freeze) {
        assert!(
            missing.is_empty(),
            "{} of {N} lost: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    println!(
        "broker failure {failure:?} mid-batch: {} of {N} acknowledged before it, {} failed and redelivered, 0 of them lost; {} acknowledged by the broker but not delivered after its restart",
        N - failed_first.len(),
        failed_first.len(),
        missing.len()
    );
}

#[tokio::test]
async fn a_broker_stopped_mid_batch_loses_nothing_after_redelivery() {
    broker_fails_mid_batch(Failure::Stop).await;
}

#[tokio::test]
async fn a_broker_frozen_mid_batch_loses_nothing_after_redelivery() {
    broker_fails_mid_batch(Failure::Freeze).await;
}
