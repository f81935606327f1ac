//! Inflow publish throughput over TLS with a client certificate (AWS IoT Core's way) and over
//! plain MQTT, to one local Mosquitto in the same run, each against a raw `rumqttc` QoS 1
//! publish loop on the same transport (target: the inflow at least 80% of the raw loop), and
//! the TLS/plain ratio; and the CONNECT time (a new TCP connection to CONNACK: the TLS 1.3
//! handshake with the client certificate included) over each, interleaved one for one, with
//! its TLS/plain ratio. A scripted run, not criterion: it needs a real broker, started on free
//! ports with a certificate listener and a plain one (`testkit::Mosquitto::tls`). Figures
//! printed, never asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use kit::{ClientTls, Env, MqttPublisher, MqttSettings, TlsSettings};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use testkit::certs::{BACKEND_IDENTITY, Ca};
use testkit::{BACKEND_PASSWORD, BACKEND_USER, Mosquitto};

const MESSAGES: usize = 20_000;
const PAYLOAD: &str = r#"{"msgId":"c-0001","peer":"GID_student@@@001","roomId":"123456","msg":"hello, this is a chat line of typical length","ts":1732250000000}"#;

/// How the backend reaches the broker.
#[derive(Clone)]
enum Transport {
    /// The plain listener, with the backend's password.
    Plain(u16),
    /// The certificate listener, with the backend's client certificate.
    Tls(u16, ClientTls),
}

impl Transport {
    fn name(&self) -> &'static str {
        match self {
            Self::Plain(_) => "plain",
            Self::Tls(..) => "TLS + client cert",
        }
    }
}

/// The backend's MQTT options over `transport`.
fn options(transport: &Transport, client_id: &str) -> MqttOptions {
    match transport {
        Transport::Plain(port) => {
            let mut o = MqttOptions::new(client_id, "127.0.0.1", *port);
            o.set_credentials(BACKEND_USER, BACKEND_PASSWORD);
            o
        }
        Transport::Tls(port, tls) => {
            let mut o = MqttOptions::new(client_id, "127.0.0.1", *port);
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.config()),
            ));
            o
        }
    }
}

/// CONNECTs per transport for the CONNECT-time figures.
const CONNECTS: usize = 200;

/// One connection from scratch (TCP, TLS when asked, CONNECT) to its CONNACK.
async fn timed_connect(transport: &Transport, i: usize) -> Duration {
    let mut opts = options(transport, &format!("backend-connect-bench-{i}"));
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let start = Instant::now();
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    let took = start.elapsed();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    took
}

/// p50 and p90 of `CONNECTS` CONNECT times per transport, interleaved.
async fn connect_times(transports: [&Transport; 2]) -> [(Duration, Duration); 2] {
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..CONNECTS + 10 {
        for (t, all) in transports.iter().zip(&mut times) {
            let took = timed_connect(t, i).await;
            if i >= 10 {
                all.push(took); // the first 10 of each warm up
            }
        }
    }
    times.map(|mut all| {
        all.sort();
        (all[all.len() / 2], all[all.len() * 9 / 10])
    })
}

async fn raw_loop(transport: &Transport) -> f64 {
    let mut opts = options(transport, "backend-raw-bench");
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

async fn inflow(transport: &Transport, batch: usize) -> f64 {
    let (port, tls, credentials) = match transport {
        Transport::Plain(port) => (
            *port,
            None,
            Some((BACKEND_USER.into(), BACKEND_PASSWORD.into())),
        ),
        Transport::Tls(port, tls) => (*port, Some(tls.clone()), None),
    };
    let settings = MqttSettings {
        host: "127.0.0.1".into(),
        port,
        tls,
        client_id_prefix: "backend-inflow-bench-".into(),
        credentials,
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
            .is_empty(),
        "the warm-up publish over {} failed",
        transport.name()
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
    let ca = Ca::new("bench CA");
    let broker = Mosquitto::tls(&ca).plain_listener().start();
    let backend = ca.client(BACKEND_IDENTITY);
    let tls = TlsSettings {
        ca_pem: Some(ca.cert_pem().to_owned()),
        cert_pem: Some(backend.cert_pem),
        key_pem: Some(backend.key_pem),
    }
    .build()
    .unwrap();
    let plain = Transport::Plain(broker.plain_port.unwrap());
    let tls = Transport::Tls(broker.port, tls);
    println!(
        "inflow throughput, {MESSAGES} QoS 1 publishes of {} bytes to one Mosquitto on 127.0.0.1 \
         (TLS 1.3, ECDSA P-256 client certificate, on :{}; plain on :{})",
        PAYLOAD.len(),
        broker.port,
        broker.plain_port.unwrap()
    );
    let [(plain50, plain90), (tls50, tls90)] = connect_times([&plain, &tls]).await;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  CONNECT -> CONNACK, new connection, {CONNECTS} each interleaved: plain (password) p50 \
         {:.3} ms p90 {:.3} ms; TLS + client cert p50 {:.3} ms p90 {:.3} ms; TLS / plain p50 \
         {:.2} p90 {:.2}",
        ms(plain50),
        ms(plain90),
        ms(tls50),
        ms(tls90),
        tls50.as_secs_f64() / plain50.as_secs_f64(),
        tls90.as_secs_f64() / plain90.as_secs_f64()
    );
    let mut raw = Vec::new();
    for t in [&plain, &tls] {
        let r = raw_loop(t).await;
        println!(
            "  baseline raw rumqttc QoS 1 loop, {:<17}: {r:>9.0} msg/s",
            t.name()
        );
        raw.push(r);
    }
    println!(
        "  raw loop TLS / plain                          : {:>9.2}",
        raw[1] / raw[0]
    );
    for batch in [1000, 100, 10] {
        let mut rates = Vec::new();
        for (t, base) in [&plain, &tls].into_iter().zip(&raw) {
            let ours = inflow(t, batch).await;
            println!(
                "  inflow, SQS batches of {batch:>4}, {:<17}: {ours:>9.0} msg/s = {:.0}% of its raw loop",
                t.name(),
                100.0 * ours / base
            );
            rates.push(ours);
        }
        println!(
            "  inflow, SQS batches of {batch:>4}, TLS / plain      : {:>9.2}",
            rates[1] / rates[0]
        );
    }
    for t in [&plain, &tls] {
        let r = raw_loop(t).await;
        println!(
            "  baseline again (noise check), {:<17}: {r:>9.0} msg/s",
            t.name()
        );
    }
}
