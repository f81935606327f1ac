//! The rules bridge against a real Mosquitto and a real moto: a record SQS refuses for good is
//! reported to the rule error queue and acknowledged once (not redelivered); records that
//! together exceed one SendMessageBatch all arrive; a stop during retries returns at once and
//! leaves the record to the broker's session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use local_stack::bridge::{self, BridgeSettings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use testkit::{BACKEND_PASSWORD, BACKEND_USER, Mosquitto, Moto, receive_all};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Queues {
    big: String,
    small: String,
    errors: String,
}

async fn queues(sqs: &aws_sdk_sqs::Client) -> Queues {
    let big = testkit::create_queue(sqs, "uplink").await;
    let errors = testkit::create_queue(sqs, "rule-errors").await;
    // SQS's smallest message size limit: a larger record is refused for good.
    let small = sqs
        .create_queue()
        .queue_name("small")
        .attributes(QueueAttributeName::MaximumMessageSize, "1024")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { big, small, errors }
}

fn settings(broker: &Mosquitto, q: &Queues) -> BridgeSettings {
    BridgeSettings {
        host: "127.0.0.1".into(),
        port: broker.port,
        tls: None,
        credentials: Some((BACKEND_USER.into(), BACKEND_PASSWORD.into())),
        client_id: "bridge-under-test".into(),
        routes: vec![
            ("room/big/#".into(), q.big.clone()),
            ("room/small/#".into(), q.small.clone()),
        ],
        error_queue_url: q.errors.clone(),
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn start(sqs: &aws_sdk_sqs::Client, settings: &BridgeSettings) -> Running {
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(bridge::run(sqs.clone(), settings.clone(), rx));
    Running { stop, task }
}

impl Running {
    /// Asks the bridge to stop; true when it returned within `within`.
    async fn stop(self, within: Duration) -> bool {
        let _ = self.stop.send(true);
        tokio::time::timeout(within, self.task).await.is_ok()
    }
}

/// Publishes each (topic, payload) at QoS 1 as the backend and waits for every PUBACK.
async fn publish(port: u16, messages: &[(String, Vec<u8>)]) {
    let mut opts = MqttOptions::new(format!("publisher-{}", uuid_ish()), "127.0.0.1", port);
    opts.set_credentials(BACKEND_USER, BACKEND_PASSWORD);
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
    }
    let mut acks = 0;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while acks < messages.len() {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "{acks} of {} PUBACKs", messages.len());
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
}

fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// Waits until the bridge is subscribed: a probe on `topic` reaches `queue`.
async fn wait_subscribed(sqs: &aws_sdk_sqs::Client, port: u16, topic: &str, queue: &str) {
    for _ in 0..20 {
        publish(port, &[(topic.to_owned(), b"probe".to_vec())]).await;
        if !receive_all(sqs, queue, 1, Duration::from_secs(2))
            .await
            .is_empty()
        {
            return;
        }
    }
    panic!("the bridge never took a probe on {topic}");
}

fn bodies(messages: &[aws_sdk_sqs::types::Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_sqs_refuses_is_reported_to_the_error_queue_once_and_the_others_arrive() {
    let moto = Moto::start();
    let broker = Mosquitto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let q = queues(&sqs).await;
    let settings = settings(&broker, &q);
    let bridge = start(&sqs, &settings);
    wait_subscribed(&sqs, broker.port, "room/small/probe", &q.small).await;

    let poison = format!(
        r#"{{"clientId":"GID_student@@@001","payload":"{}"}}"#,
        "A".repeat(2000)
    );
    publish(
        broker.port,
        &[
            ("room/small/1".into(), b"before".to_vec()),
            ("room/small/2".into(), poison.clone().into_bytes()),
            ("room/small/3".into(), b"after".to_vec()),
        ],
    )
    .await;
    let mut got = bodies(&receive_all(&sqs, &q.small, 2, Duration::from_secs(15)).await);
    got.sort();
    assert_eq!(got, ["after", "before"], "the good records of the batch");
    let reports = receive_all(&sqs, &q.errors, 1, Duration::from_secs(15)).await;
    assert_eq!(reports.len(), 1, "one report");
    let r: serde_json::Value = serde_json::from_str(reports[0].body().unwrap()).unwrap();
    assert_eq!(r["topic"], "room/small/2");
    assert_eq!(r["clientId"], "GID_student@@@001");
    assert_eq!(r["failures"][0]["failedResource"], q.small.as_str());
    let reason = r["failures"][0]["errorMessage"].as_str().unwrap();
    assert!(!reason.is_empty(), "a reason: {r}");
    assert!(r["timestamp"].as_u64().is_some_and(|t| t > 0), "{r}");
    assert_eq!(r["originalPayloadTruncated"], false);
    let original = BASE64
        .decode(r["base64OriginalPayload"].as_str().unwrap())
        .unwrap();
    assert_eq!(original, poison.as_bytes());

    // Acknowledged: a restarted bridge (same persistent session) gets nothing again.
    assert!(
        bridge.stop(Duration::from_secs(10)).await,
        "the bridge stops"
    );
    let again = start(&sqs, &settings);
    wait_subscribed(&sqs, broker.port, "room/small/probe", &q.small).await;
    let more = receive_all(&sqs, &q.errors, 1, Duration::from_secs(3)).await;
    assert!(more.is_empty(), "reported again: {:?}", bodies(&more));
    let dup = receive_all(&sqs, &q.small, 1, Duration::from_secs(1)).await;
    assert!(dup.is_empty(), "delivered again: {:?}", bodies(&dup));
    assert!(again.stop(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_too_large_for_one_batch_together_all_arrive() {
    let moto = Moto::start();
    let broker = Mosquitto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let q = queues(&sqs).await;
    let settings = settings(&broker, &q);
    // Subscribe the persistent session, stop, and queue eight records for it: the restarted
    // bridge receives them in one burst (8 × 140 KB: 1.1 MB, over even moto's 1 MiB batch).
    let bridge = start(&sqs, &settings);
    wait_subscribed(&sqs, broker.port, "room/big/probe", &q.big).await;
    assert!(bridge.stop(Duration::from_secs(10)).await);
    let records: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            let body = format!("{i}:{}", "x".repeat(140 * 1024));
            (format!("room/big/{i}"), body.into_bytes())
        })
        .collect();
    publish(broker.port, &records).await;
    let bridge = start(&sqs, &settings);
    let got = receive_all(&sqs, &q.big, 8, Duration::from_secs(30)).await;
    let mut firsts: Vec<String> = bodies(&got)
        .iter()
        .map(|b| b.split(':').next().unwrap_or_default().to_owned())
        .collect();
    firsts.sort();
    assert_eq!(firsts, ["0", "1", "2", "3", "4", "5", "6", "7"]);
    assert!(
        receive_all(&sqs, &q.errors, 1, Duration::from_secs(1))
            .await
            .is_empty(),
        "nothing reported as refused"
    );
    assert!(bridge.stop(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_sqs_is_unreachable_returns_and_leaves_the_record_to_the_broker() {
    let moto = Moto::start();
    let broker = Mosquitto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let q = queues(&sqs).await;
    let settings = settings(&broker, &q);
    let bridge = start(&sqs, &settings);
    wait_subscribed(&sqs, broker.port, "room/big/probe", &q.big).await;
    assert!(bridge.stop(Duration::from_secs(10)).await);

    // The same bridge against an SQS that is not there: it retries, then is asked to stop.
    let nowhere = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .endpoint_url(format!("http://127.0.0.1:{}", testkit::free_port()))
            .build(),
    );
    let bridge = start(&nowhere, &settings);
    publish(broker.port, &[("room/big/1".into(), b"kept".to_vec())]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        bridge.stop(Duration::from_secs(10)).await,
        "the bridge kept retrying after the stop"
    );

    // Not acknowledged: the broker redelivers it to the session once SQS is back.
    let bridge = start(&sqs, &settings);
    let got = bodies(&receive_all(&sqs, &q.big, 1, Duration::from_secs(15)).await);
    assert_eq!(got, ["kept"]);
    assert!(bridge.stop(Duration::from_secs(10)).await);
}
