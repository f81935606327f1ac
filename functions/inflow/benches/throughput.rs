//! Inflow publish throughput against a raw `rumqttc` QoS 1 publish loop to the same local
//! Mosquitto, in the same run (target: at least 80% of it). A scripted run, not criterion:
//! it needs a real broker, started on a free port. Figures printed, never asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use kit::{Env, MqttPublisher, MqttSettings};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use testkit::{BACKEND_PASSWORD, BACKEND_USER, Mosquitto};

const MESSAGES: usize = 20_000;
const PAYLOAD: &str = r#"{"msgId":"c-0001","peer":"GID_student@@@001","roomId":"123456","msg":"hello, this is a chat line of typical length","ts":1732250000000}"#;

async fn raw_loop(port: u16) -> f64 {
    let mut opts = MqttOptions::new("backend-raw-bench", "127.0.0.1", port);
    opts.set_credentials(BACKEND_USER, BACKEND_PASSWORD);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            client
                .publish("room/message/bench", QoS::AtLeastOnce, false, PAYLOAD)
                .await
                .unwrap();
        }
        client
    });
    let mut acks = 0;
    while acks < MESSAGES {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            acks += 1;
        }
    }
    let rate = MESSAGES as f64 / start.elapsed().as_secs_f64();
    let client = publisher.await.unwrap();
    let _ = client.disconnect().await;
    rate
}

fn event(n: usize, offset: usize) -> SqsEvent {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "messageId": format!("b-{}", offset + i),
                "body": PAYLOAD,
                "messageAttributes": { "mqttSecondTopic": { "stringValue": "/message/bench", "dataType": "String" } }
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

async fn inflow(port: u16, batch: usize) -> f64 {
    let settings = MqttSettings {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        client_id_prefix: "backend-inflow-bench-".into(),
        credentials: Some((BACKEND_USER.into(), BACKEND_PASSWORD.into())),
        keep_alive: Duration::from_secs(30),
        publish_timeout: Duration::from_secs(10),
    };
    let f = inflow::Function::new(
        Env::from_map::<&str, &str>([]).rules().unwrap(),
        MqttPublisher::new(settings),
    );
    // Warm the connection (a warm container), then time whole invocations.
    assert!(
        f.handle(event(1, usize::MAX - 1))
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    let events: Vec<SqsEvent> = (0..MESSAGES / batch)
        .map(|i| event(batch, i * batch))
        .collect();
    let start = Instant::now();
    for e in events {
        let resp = f.handle(e).await.unwrap();
        assert!(
            resp.batch_item_failures.is_empty(),
            "a publish failed during the benchmark"
        );
    }
    let rate = (MESSAGES / batch * batch) as f64 / start.elapsed().as_secs_f64();
    f.publisher().disconnect().await;
    rate
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs bench targets with `--test`-like args; only run for real
    // under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let broker = Mosquitto::start();
    println!(
        "inflow throughput, {MESSAGES} QoS 1 publishes of {} bytes to Mosquitto on 127.0.0.1:{}",
        PAYLOAD.len(),
        broker.port
    );
    let raw = raw_loop(broker.port).await;
    println!("  baseline raw rumqttc QoS 1 loop : {raw:>9.0} msg/s");
    for batch in [1000, 100, 10] {
        let ours = inflow(broker.port, batch).await;
        println!(
            "  inflow, SQS batches of {batch:>4}    : {ours:>9.0} msg/s = {:.0}% of the baseline",
            100.0 * ours / raw
        );
    }
    let raw2 = raw_loop(broker.port).await;
    println!("  baseline again (noise check)   : {raw2:>9.0} msg/s");
}
