//! One reviewed snapshot per fixture: what `Function::handle` does with the event, against a
//! real Mosquitto: the records it reports failed with the error it logs for each, and the
//! publishes a subscriber of `room/#` (at QoS 2, so the QoS shown is the one published)
//! receives: topic, QoS, retain, payload and user properties.
//!
//! Nothing is redacted but the one value the handler generates: the `timestamp` of a record
//! that carries none is the handler's clock at the batch, shown as `[now]` once checked to lie
//! between the instants before and after the call. Message IDs and every other timestamp are
//! the fixtures'.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use inflow::Function;
use kit::{Env, MqttPublisher, MqttSettings};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use testkit::logs::Capture;
use testkit::{BACKEND_PASSWORD, BACKEND_USER, Mosquitto};
use tokio::sync::mpsc;

fn settings(port: u16) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        client_id_prefix: "backend-inflow-snapshots-".into(),
        credentials: Some((BACKEND_USER.into(), BACKEND_PASSWORD.into())),
        keep_alive: Duration::from_secs(5),
        publish_timeout: Duration::from_secs(3),
    }
}

/// The backend identity reading `room/#` at QoS 2 (so a publish arrives at the QoS it was
/// published with), accepting packets up to 1 MiB (the payload limit's fixtures are 64 KiB;
/// rumqttc's default refuses more than 10 KiB).
struct Reader {
    _client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Publish>,
}

impl Reader {
    async fn connect(port: u16) -> Self {
        let mut opts = MqttOptions::new("backend-snapshot-reader", "127.0.0.1", port);
        opts.set_credentials(BACKEND_USER, BACKEND_PASSWORD);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(Some(1 << 20));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subacked_tx, mut subacked) = mpsc::unbounded_channel();
        let subscriber = client.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = subscriber.subscribe("room/#", QoS::ExactlyOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subacked_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the snapshot reader lost its connection: {e}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subacked.recv())
            .await
            .expect("SUBACK in time");
        Self {
            _client: client,
            rx,
        }
    }

    async fn next(&mut self, timeout: Duration) -> Option<Publish> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    async fn drain(&mut self, quiet: Duration) -> Vec<Publish> {
        let mut out = Vec::new();
        while let Some(p) = self.next(quiet).await {
            out.push(p);
        }
        out
    }
}

/// A received publish as the snapshot shows it (long payloads summarised).
fn seen(p: &Publish) -> Value {
    let user: BTreeMap<String, String> = p
        .properties
        .iter()
        .flat_map(|props| props.user_properties.iter().cloned())
        .collect();
    let payload = match std::str::from_utf8(&p.payload) {
        Ok(text) if text.len() <= 120 => json!(text),
        Ok(_) => json!(format!("<{} bytes>", p.payload.len())),
        Err(_) => json!(format!(
            "<{} bytes, binary: {:02x?}>",
            p.payload.len(),
            &p.payload[..p.payload.len().min(16)]
        )),
    };
    json!({
        "topic": String::from_utf8_lossy(&p.topic),
        "qos": format!("{:?}", p.qos),
        "retain": p.retain,
        "payload": payload,
        "userProperties": user,
    })
}

/// A total order on what arrived, so the snapshot does not depend on delivery order.
fn sort_key(v: &Value) -> String {
    let id = v["userProperties"]["mqttMessageId"]
        .as_str()
        .unwrap_or_default();
    format!(
        "{id}\u{0}{}\u{0}{}\u{0}{}",
        v["topic"], v["qos"], v["payload"]
    )
}

#[test]
fn every_fixture_maps_as_reviewed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let broker = Mosquitto::start();
    let function = Function::new(
        Env::from_map::<&str, &str>([]).rules().unwrap(),
        MqttPublisher::new(settings(broker.port)),
    );
    let mut backend = rt.block_on(Reader::connect(broker.port));
    insta::glob!("fixtures/*.json", |path| {
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let logs = Capture::default();
        let before = kit::now_ms();
        let response = logs
            .during(|| rt.block_on(function.handle(event.clone())))
            .unwrap();
        let after = kit::now_ms();
        let failures = logs.reported_failures(
            response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone()),
        );

        let expected = event.records.len() - failures.len();
        let mut published: Vec<Value> = rt.block_on(async {
            let mut out = Vec::new();
            while out.len() < expected {
                let p = backend
                    .next(Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: {} of {expected} publishes delivered",
                            path.display(),
                            out.len()
                        )
                    });
                out.push(seen(&p));
            }
            // Nothing more than one publish per record.
            out.extend(
                backend
                    .drain(Duration::from_millis(200))
                    .await
                    .iter()
                    .map(seen),
            );
            out
        });
        assert_eq!(
            published.len(),
            expected,
            "one publish per record that succeeded"
        );
        published.sort_by_key(sort_key);

        let failed: Vec<Value> = event
            .records
            .iter()
            .filter_map(|r| {
                let id = r.message_id.as_deref().unwrap();
                failures.get(id).map(|(error, kind, retryable)| {
                    json!({ "record": id, "error": error, "kind": kind, "retryable": retryable })
                })
            })
            .collect();
        let outcome = json!({ "failed": failed, "published": published });
        insta::assert_json_snapshot!(outcome, {
            ".published[].userProperties.timestamp" => insta::dynamic_redaction(move |value, _| {
                match value.as_str().and_then(|t| t.parse::<u64>().ok()) {
                    Some(t) if (before..=after).contains(&t) => "[now]".into(),
                    _ => value,
                }
            }),
        });
    });
}
