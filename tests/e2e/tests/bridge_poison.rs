//! Oversized and large publishes do not wedge the rules bridge. The broker refuses a publish
//! over AWS IoT Core's 128 KB (`message_size_limit 131072`), so it never becomes a record the
//! bridge could not take, and the classroom goes on chatting; publishes under the limit whose
//! records together exceed one SendMessageBatch (10 entries, 256 KiB) all reach the uplink
//! queue. Each test has its own stack.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use e2e::{Stack, Transcript, repo_root};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn start(name: &str, extra: &[(&str, &str)]) -> Stack {
    let dir = repo_root().join(format!(".run/e2e-{}-{name}", std::process::id()));
    match Stack::start(&dir, extra) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// What became of a publish of the big client.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The broker acknowledged every publish (Mosquitto PUBACKs an oversized QoS 1 publish
    /// of MQTT 3.1.1 and drops it).
    Acked,
    /// The broker closed the connection.
    Closed(String),
    /// Neither within the wait.
    Nothing,
}

/// A signed-in student with a client that may send large packets (the e2e `Peer` keeps
/// rumqttc's 10 KiB default); publishes `bodies` on `roomSend/message` at QoS 1.
async fn publish_big(stack: &Stack, id: &str, room: &str, bodies: &[String]) -> Outcome {
    let opts = match stack.client(id, &[room], false) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let endpoint = match stack.endpoint_for(&opts) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let mut mo = MqttOptions::new(id, "127.0.0.1", endpoint.port);
    if let Some(tls) = &endpoint.tls {
        mo.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.config()),
        ));
    }
    if let Some((u, p)) = &opts.credentials {
        mo.set_credentials(u, p);
    }
    mo.set_keep_alive(Duration::from_secs(10));
    mo.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(mo, 100);
    for b in bodies {
        if let Err(e) = client
            .publish("roomSend/message", QoS::AtLeastOnce, false, b.clone())
            .await
        {
            panic!("{e}");
        }
    }
    let mut acks = 0;
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks += 1;
                    if acks == bodies.len() {
                        return Outcome::Acked;
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(a)))
                    if a.code != rumqttc::ConnectReturnCode::Success =>
                {
                    panic!("{id} refused: {:?}", a.code);
                }
                Ok(_) => {}
                Err(e) => return Outcome::Closed(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or(Outcome::Nothing);
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    outcome
}

/// Standard base64 (the record's `payload`), padding ignored; invalid input decodes to less.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            break;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn bridge_log(stack: &Stack) -> String {
    std::fs::read_to_string(stack.dir.join("logs/bridge.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn an_oversized_publish_is_refused_by_the_broker_and_the_classroom_keeps_chatting() {
    let stack = start("oversize", &[]);
    let log = Transcript::new(false);
    let room = "poison-1";
    let mut a = match stack
        .peer("A", "GID_student@@@301", &[room], false, &log)
        .await
    {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut b = match stack
        .peer("B", "GID_student@@@302", &[room], false, &log)
        .await
    {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    for p in [&mut a, &mut b] {
        if let Err(e) = p.subscribe_classroom(room).await {
            panic!("{e}");
        }
    }
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let big = json!({"roomId": room, "msg": format!("{marker}{}", "x".repeat(450 * 1024))});
    let outcome = publish_big(&stack, "GID_student@@@303", room, &[big.to_string()]).await;
    assert_ne!(
        outcome,
        Outcome::Nothing,
        "the broker neither acknowledged nor closed"
    );

    // Not delivered to anyone, and the classroom still works within seconds, both ways.
    let leaked = b
        .quiet(Duration::from_secs(2), |m| m.raw.contains(&marker))
        .await;
    assert!(leaked.is_none(), "the oversized publish was delivered");
    let text = format!("after the big one, A {marker}");
    if let Err(e) = a.chat(room, &text).await {
        panic!("{e}");
    }
    assert!(
        b.expect(WAIT, |m| m.field("msg") == text).await.is_some(),
        "{text:?} never reached B:\n{}\nbridge log:\n{}",
        log.lines().join("\n"),
        bridge_log(&stack)
    );
    let text = format!("and B {marker}");
    if let Err(e) = b.chat(room, &text).await {
        panic!("{e}");
    }
    assert!(
        a.expect(WAIT, |m| m.field("msg") == text).await.is_some(),
        "{text:?} never reached A:\n{}\nbridge log:\n{}",
        log.lines().join("\n"),
        bridge_log(&stack)
    );
    let bridge = bridge_log(&stack);
    assert!(
        !bridge.contains("broker connection lost"),
        "the bridge lost its connection:\n{bridge}"
    );
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn large_publishes_under_the_limit_all_reach_the_uplink_queue() {
    // No outflow: the uplink queue keeps what the bridge sends.
    let stack = start("large", &[("LOCAL_FUNCTIONS", "presence")]);
    let room = "poison-2";
    let marker = uuid::Uuid::new_v4().simple().to_string();
    // Eight ~100-120 KB publishes (under the broker's 128 KB); their records (base64, 4/3)
    // are ~135-160 KB each, ~1.2 MB together.
    let bodies: Vec<String> = (0..8)
        .map(|i| {
            json!({"roomId": room, "msg": format!("{marker}-{i}-{}", "y".repeat(100 * 1024 + i * 2560))})
                .to_string()
        })
        .collect();
    assert!(bodies.iter().all(|b| b.len() < 128 * 1024));
    let outcome = publish_big(&stack, "GID_student@@@311", room, &bodies).await;
    assert_eq!(outcome, Outcome::Acked);

    let sqs = stack.sqs().await;
    let url = stack.var("UPLINK_QUEUE_URL").to_owned();
    let want: HashSet<String> = (0..8).map(|i| format!("{marker}-{i}-")).collect();
    let mut got = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && Instant::now() < deadline {
        let Ok(out) = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            continue;
        };
        for m in out.messages.unwrap_or_default() {
            let record: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or("")).unwrap_or_default();
            let payload = base64_decode(record["payload"].as_str().unwrap_or(""));
            let chat: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            let text = chat["msg"].as_str().unwrap_or_default();
            if let Some(w) = want.iter().find(|w| text.starts_with(w.as_str())) {
                got.insert(w.clone());
            }
            let _ = sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or(""))
                .send()
                .await;
        }
    }
    let missing: Vec<&String> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "records missing from the uplink queue: {missing:?}\nbridge log:\n{}",
        bridge_log(&stack)
    );
    let errors = stack.queue_depth(&sqs, "RULE_ERROR_QUEUE_URL").await;
    assert_eq!(errors, 0, "records reported to the rule error queue");
}
