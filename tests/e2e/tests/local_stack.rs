//! End-to-end tests against one real local stack per test run (Mosquitto + plugin + ACL, moto,
//! rules bridge, local runner with the functions), started on free loopback ports by
//! `infra/local/stack.sh` and torn down by its watchdog when this process ends. The source
//! queues' visibility timeout is shortened to 2 s so the redrive test takes seconds, not the
//! template's 5 x 210 s; everything else is as provisioned from the template.
//!
//! Each test uses its own client IDs and room so they can run in parallel. They are
//! `#[ignore]`d so `cargo test --workspace` does not start a stack per run: `make test-e2e`
//! (part of `make test`) builds the plugin and the runner, then runs them with
//! `--include-ignored`.

use std::sync::OnceLock;
use std::time::Duration;

use e2e::{ConnectOptions, Msg, Peer, Stack, Transcript, members_at_least, scenarios};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_secs(2);

fn stack() -> &'static Stack {
    // The outcome is kept either way: one failed start fails every test once, quickly.
    static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
    let started = STACK.get_or_init(|| {
        let dir = e2e::repo_root().join(format!(".run/e2e-{}", std::process::id()));
        Stack::start(
            &dir,
            &[("VISIBILITY_TIMEOUT", "2"), ("LOCAL_WAIT_SECONDS", "1")],
        )
        .map_err(|e| e.to_string())
    });
    match started {
        Ok(s) => s,
        Err(e) => panic!("the local stack did not start: {e}"),
    }
}

fn backend() -> ConnectOptions {
    stack().backend()
}

/// The roster credentials of the classroom client `id`.
fn client(id: &str) -> ConnectOptions {
    match stack().client(id, false) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

async fn peer(name: &str, id: &str, log: &Transcript) -> Peer {
    connect(name, id, client(id), log).await
}

async fn connect(name: &str, id: &str, options: ConnectOptions, log: &Transcript) -> Peer {
    match Peer::connect(stack().mqtt_port(), name, id, options, log).await {
        Ok(p) => p,
        Err(e) => panic!("{name} could not connect: {e}"),
    }
}

/// The backend identity, subscribed to `filters` (rules and lifecycle topics only it may read).
async fn watcher(id: &str, filters: &[&str], log: &Transcript) -> Peer {
    let mut w = connect("backend", id, backend(), log).await;
    sub(&mut w, filters).await;
    w
}

async fn sub(p: &mut Peer, filters: &[&str]) {
    if let Err(e) = p.subscribe(filters).await {
        panic!("{} could not subscribe: {e}", p.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn the_seeds_classroom_plays_through() {
    let log = Transcript::new(false);
    let outcomes = match scenarios::classroom(stack(), &log).await {
        Ok(o) => o,
        Err(e) => panic!("classroom aborted: {e}\n{}", log.lines().join("\n")),
    };
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}\ntranscript:\n{}",
        failed.join("\n"),
        log.lines().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_read_another_students_p2p() {
    let log = Transcript::new(false);
    let mut nosy = peer("nosy", "GID_student@@@201", &log).await;
    let mut target = peer("target", "GID_student@@@202", &log).await;
    sub(
        &mut nosy,
        &["room/p2p/GID_student@@@202", "room/p2p/#", "room/#", "#"],
    )
    .await;
    sub(&mut target, &["room/p2p/GID_student@@@202"]).await;
    let s = stack();
    let sqs = s.sqs().await;
    let marker = uuid::Uuid::new_v4().to_string();
    if let Err(e) = s
        .send_downlink(
            &sqs,
            "/p2p/GID_student@@@202",
            &json!({"type": "mute", "note": marker}),
        )
        .await
    {
        panic!("{e}");
    }
    let got = target.expect(WAIT, |m| m.raw.contains(&marker)).await;
    assert!(got.is_some(), "the target never received its P2P message");
    let leaked = nosy.quiet(QUIET, |m| m.raw.contains(&marker)).await;
    assert!(
        leaked.is_none(),
        "another student read the P2P message: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_publish_under_room() {
    let log = Transcript::new(false);
    let mut listener = peer("listener", "GID_student@@@211", &log).await;
    sub(
        &mut listener,
        &[
            "room/message/sec-1",
            "room/status/sec-1",
            "room/system",
            "room/p2p/GID_student@@@211",
        ],
    )
    .await;
    let forger = peer("forger", "GID_student@@@212", &log).await;
    let marker = uuid::Uuid::new_v4().to_string();
    for topic in [
        "room/message/sec-1",
        "room/status/sec-1",
        "room/system",
        "room/p2p/GID_student@@@211",
    ] {
        let body = json!({"type": "system", "msg": marker, "peer": "GID_teacher@@@001"});
        if let Err(e) = forger.publish(topic, &body).await {
            panic!("{e}");
        }
    }
    let leaked = listener.quiet(QUIET, |m| m.raw.contains(&marker)).await;
    assert!(
        leaked.is_none(),
        "a student's publish under room/ was delivered: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_forge_or_read_the_rules_and_lifecycle_topics() {
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-forge", &["$classroom/#", "$aws/#"], &log).await;
    let mut forger = peer("forger", "GID_student@@@221", &log).await;
    sub(&mut forger, &["$classroom/#", "$aws/#", "#"]).await;
    let marker = uuid::Uuid::new_v4().to_string();
    let record = json!({"topic": "roomSend/message", "clientId": "GID_teacher@@@001", "timestamp": 1, "payload": "", "forged": marker});
    let event = json!({"clientId": "GID_teacher@@@001", "eventType": "disconnected", "timestamp": 1, "sessionIdentifier": marker});
    for (topic, body) in [
        ("$classroom/uplink", &record),
        ("$classroom/presence", &event),
        (
            "$aws/events/presence/disconnected/GID_teacher@@@001",
            &event,
        ),
    ] {
        if let Err(e) = forger.publish(topic, body).await {
            panic!("{e}");
        }
    }
    let forged = watcher.quiet(QUIET, |m| m.raw.contains(&marker)).await;
    assert!(
        forged.is_none(),
        "a forged record or event reached the backend: {forged:?}"
    );
    // The forger publishes a real chat: its record exists, but the forger cannot read it.
    let other = peer("other", "GID_student@@@222", &log).await;
    if let Err(e) = other.chat("sec-2", &marker).await {
        panic!("{e}");
    }
    let record = watcher
        .expect(WAIT, |m| {
            m.topic == "$classroom/uplink" && m.raw.contains("GID_student@@@222")
        })
        .await;
    assert!(
        record.is_some(),
        "the real record never reached the backend"
    );
    let read = forger.quiet(QUIET, |m| m.topic.starts_with('$')).await;
    assert!(read.is_none(), "a student read a $ topic: {read:?}");
}

/// The refusal a CONNECT gets (None when the broker accepted it).
async fn refusal(id: &str, options: ConnectOptions, log: &Transcript) -> Option<String> {
    match Peer::connect(stack().mqtt_port(), "intruder", id, options, log).await {
        Ok(p) => {
            p.kill();
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_sign_in_as_the_teacher_or_anonymously() {
    let log = Transcript::new(false);
    let teacher_id = "GID_teacher@@@251";
    let student_id = "GID_student@@@252";
    let mut watcher = watcher(
        "e2e-watcher-auth",
        &[&format!("$aws/events/presence/+/{teacher_id}")],
        &log,
    )
    .await;
    let mut teacher = peer("teacher", teacher_id, &log).await;
    sub(&mut teacher, &[&format!("room/p2p/{teacher_id}")]).await;
    let Some(online) = watcher
        .expect(WAIT, |m| m.field("eventType") == "connected")
        .await
    else {
        panic!("no connected event for the teacher");
    };

    let student = client(student_id);
    let Some((_, student_pw)) = student.credentials.clone() else {
        panic!("no credentials for {student_id}");
    };
    let attempts = [
        ("anonymous", ConnectOptions::default()),
        (
            "the student's own credentials",
            ConnectOptions {
                persistent: false,
                credentials: Some((student_id.to_owned(), student_pw.clone())),
            },
        ),
        (
            "the teacher's username with the student's password",
            ConnectOptions {
                persistent: false,
                credentials: Some((teacher_id.to_owned(), student_pw)),
            },
        ),
    ];
    for (how, options) in attempts {
        let refused = refusal(teacher_id, options, &log).await;
        assert!(
            refused.as_deref().is_some_and(|e| e.contains("refused")),
            "connecting as {teacher_id} with {how} was not refused: {refused:?}"
        );
    }
    // The student itself still signs in, as itself.
    assert_eq!(refusal(student_id, student, &log).await, None);

    // Refused CONNECTs published no lifecycle event and took nothing over: the teacher's
    // session is the only one, and the teacher is still connected and served.
    let forged = watcher.quiet(QUIET, |_| true).await;
    assert!(
        forged.is_none(),
        "a refused CONNECT produced an event: {forged:?}"
    );
    let body = json!({"type": "p2p-probe"});
    if let Err(e) = stack()
        .send_downlink(&stack().sqs().await, &format!("/p2p/{teacher_id}"), &body)
        .await
    {
        panic!("{e}");
    }
    assert!(
        teacher
            .expect(WAIT, |m| m.raw.contains("p2p-probe"))
            .await
            .is_some(),
        "the teacher's session {} was disturbed",
        online.field("sessionIdentifier")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn the_uplink_record_carries_the_client_id_from_the_broker_not_the_payload() {
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-record", &["$classroom/uplink"], &log).await;
    let spoofer = peer("spoofer", "GID_student@@@231", &log).await;
    let body = json!({"roomId": "sec-3", "msg": "spoofed", "msgId": uuid::Uuid::new_v4().to_string(), "peer": "GID_teacher@@@001", "clientId": "GID_teacher@@@001"});
    if let Err(e) = spoofer.publish("roomSend/message", &body).await {
        panic!("{e}");
    }
    let Some(rec) = watcher
        .expect(WAIT, |m| m.field("clientId") == "GID_student@@@231")
        .await
    else {
        panic!("no uplink record for the spoofer's publish");
    };
    assert_eq!(rec.field("topic"), "roomSend/message");
    assert_eq!(rec.json["qos"], 1);
    assert!(
        rec.json["timestamp"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "timestamp in ms: {}",
        rec.raw
    );
    assert!(
        !rec.field("payload").is_empty(),
        "payload carried base64: {}",
        rec.raw
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_spoofed_peer_is_ignored() {
    let log = Transcript::new(false);
    let s = stack();
    let ddb = s.ddb().await;
    let room = "sec-4";
    let mut listener = peer("listener", "GID_student@@@241", &log).await;
    let mut spoofer = peer("spoofer", "GID_student@@@242", &log).await;
    for p in [&mut listener, &mut spoofer] {
        if let Err(e) = p.subscribe_classroom(room).await {
            panic!("{e}");
        }
        if let Err(e) = p.command(&json!({"type": "join", "roomId": room})).await {
            panic!("{e}");
        }
    }
    assert!(
        members_at_least(s, &ddb, room, 2, WAIT).await,
        "the two clients never joined"
    );
    let marker = uuid::Uuid::new_v4().to_string();
    let body = json!({"roomId": room, "msg": marker, "msgId": uuid::Uuid::new_v4().to_string(), "peer": "GID_teacher@@@001"});
    if let Err(e) = spoofer.publish("roomSend/message", &body).await {
        panic!("{e}");
    }
    let Some(m) = listener.expect(WAIT, |m| m.field("msg") == marker).await else {
        panic!("the chat never arrived:\n{}", log.lines().join("\n"));
    };
    assert_eq!(
        m.field("peer"),
        "GID_student@@@242",
        "peer must be the broker-verified sender: {}",
        m.raw
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn lifecycle_events_have_one_session_per_connection_and_report_takeover() {
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-life", &["$aws/events/presence/+/+"], &log).await;
    let id = "GID_student@@@251";
    let is = |kind: &'static str| {
        move |m: &Msg| m.field("clientId") == id && m.field("eventType") == kind
    };
    let port = stack().mqtt_port();

    // clean disconnect
    let p = peer("p", id, &log).await;
    p.leave().await;
    let (Some(c1), Some(d1)) = (
        watcher.expect(WAIT, is("connected")).await,
        watcher.expect(WAIT, is("disconnected")).await,
    ) else {
        panic!("no connected/disconnected pair for a clean disconnect");
    };
    assert_eq!(c1.field("sessionIdentifier"), d1.field("sessionIdentifier"));
    assert_eq!(c1.field("ipAddress"), "127.0.0.1");

    // killed connection
    let p = peer("p", id, &log).await;
    p.kill();
    let (Some(c2), Some(d2)) = (
        watcher.expect(WAIT, is("connected")).await,
        watcher.expect(WAIT, is("disconnected")).await,
    ) else {
        panic!("no connected/disconnected pair for a killed connection");
    };
    assert_eq!(c2.field("sessionIdentifier"), d2.field("sessionIdentifier"));
    assert_ne!(c1.field("sessionIdentifier"), c2.field("sessionIdentifier"));

    // takeover: a second connection with the same client ID
    let first = peer("first", id, &log).await;
    let Some(c3) = watcher.expect(WAIT, is("connected")).await else {
        panic!("no connected event")
    };
    let second = match Peer::connect(port, "second", id, client(id), &log).await {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let Some(c4) = watcher.expect(WAIT, is("connected")).await else {
        panic!("no connected event for the takeover")
    };
    let Some(d3) = watcher.expect(WAIT, is("disconnected")).await else {
        panic!("no disconnected event for the old session")
    };
    assert_eq!(
        d3.field("sessionIdentifier"),
        c3.field("sessionIdentifier"),
        "the old session goes offline"
    );
    assert_eq!(d3.field("disconnectReason"), "DUPLICATE_CLIENTID");
    assert_ne!(c4.field("sessionIdentifier"), c3.field("sessionIdentifier"));
    let v = |m: &Msg| m.json["versionNumber"].as_u64().unwrap_or(0);
    assert!(
        v(&c4) < v(&d3) || v(&c3) < v(&c4),
        "versions increase per client ID"
    );
    first.kill();
    second.leave().await;
    let _ = watcher.expect(WAIT, is("disconnected")).await;
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    for _ in 0..3 {
        if let Ok(out) = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .visibility_timeout(30)
            .send()
            .await
        {
            all.extend(out.messages.unwrap_or_default());
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_poison_record_ends_in_the_dlq_after_the_configured_receives_and_nothing_else_is_lost() {
    let log = Transcript::new(false);
    let s = stack();
    let sqs = s.sqs().await;
    let ddb = s.ddb().await;
    let room = "sec-5";
    let mut listener = peer("listener", "GID_student@@@261", &log).await;
    let sender = peer("sender", "GID_student@@@262", &log).await;
    if let Err(e) = listener.subscribe_classroom(room).await {
        panic!("{e}");
    }
    for p in [&listener, &sender] {
        if let Err(e) = p.command(&json!({"type": "join", "roomId": room})).await {
            panic!("{e}");
        }
    }
    assert!(
        members_at_least(s, &ddb, room, 2, WAIT).await,
        "the two clients never joined"
    );
    // The poison: a record the outflow can never map, straight into the uplink queue.
    let poison = format!("not a record {}", uuid::Uuid::new_v4());
    if let Err(e) = sqs
        .send_message()
        .queue_url(s.var("UPLINK_QUEUE_URL"))
        .message_body(&poison)
        .send()
        .await
    {
        panic!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e));
    }
    // Its neighbours: real chats, which must all arrive.
    let mut texts = Vec::new();
    for i in 0..10 {
        let t = format!("neighbour {i} {}", uuid::Uuid::new_v4().simple());
        if let Err(e) = sender.chat(room, &t).await {
            panic!("{e}");
        }
        texts.push(t);
    }
    for t in &texts {
        let got = listener.expect(WAIT, |m: &Msg| m.field("msg") == t).await;
        assert!(
            got.is_some(),
            "chat {t:?} was lost:\n{}",
            log.lines().join("\n")
        );
    }
    let max: u32 = s.var("MAX_RECEIVE_COUNT").parse().unwrap_or(5);
    let dlq = s.var("UPLINK_DLQ_URL").to_owned();
    let mut seen: Vec<aws_sdk_sqs::types::Message> = Vec::new();
    let mut found: Option<aws_sdk_sqs::types::Message> = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(u64::from(max) * 2 + 30);
    while found.is_none() && std::time::Instant::now() < deadline {
        seen.extend(receive_all(&sqs, &dlq).await);
        found = seen
            .iter()
            .find(|m| m.body() == Some(poison.as_str()))
            .cloned();
        if found.is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let Some(m) = found else {
        panic!("the poison record never reached the uplink DLQ")
    };
    let receives: u32 = m
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        receives >= max,
        "moved after {receives} receives, the redrive policy says {max}"
    );
    // Nothing but the poison was dead-lettered on the way.
    seen.extend(receive_all(&sqs, &dlq).await);
    let others: Vec<Value> = seen
        .iter()
        .filter(|m| {
            m.body() != Some(poison.as_str())
                && m.body().is_some_and(|b| b.contains("GID_student@@@262"))
        })
        .map(|m| Value::String(m.body().unwrap_or_default().to_owned()))
        .collect();
    assert!(
        others.is_empty(),
        "neighbours were dead-lettered: {others:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn nothing_listens_beyond_loopback() {
    let s = stack();
    let out = match std::process::Command::new("ss").arg("-Hltn").output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => panic!("ss: {e}"),
    };
    for key in ["MQTT_PORT", "MQTT_WS_PORT", "MOTO_PORT"] {
        let port = s.var(key);
        let locals: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter(|local| local.rsplit_once(':').is_some_and(|(_, p)| p == port))
            .collect();
        assert!(
            !locals.is_empty(),
            "nothing listens on {key}={port}:\n{out}"
        );
        for local in locals {
            assert!(
                local.starts_with("127.0.0.1:"),
                "{key} listens on {local}, not loopback only"
            );
        }
    }
}

/// A raw MQTT 3.1.1 CONNECT (clean session) for the roster client `id`, signed in with its
/// credentials, with the given keep-alive in seconds.
fn raw_connect(id: &str, keep_alive: u16) -> Vec<u8> {
    let Some((user, password)) = client(id).credentials else {
        panic!("no credentials for {id}");
    };
    let field = |v: &str| {
        let mut f = (v.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(v.as_bytes());
        f
    };
    // Protocol name, level 4, flags: username + password + clean session, keep-alive.
    let mut rest = field("MQTT");
    rest.extend([4, 0xC2]);
    rest.extend(keep_alive.to_be_bytes());
    for v in [id, user.as_str(), password.as_str()] {
        rest.extend(field(v));
    }
    let mut packet = vec![0x10];
    let mut len = rest.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend(rest);
    packet
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_keepalive_expiry_emits_a_disconnected_event() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-keepalive", &["$aws/events/presence/+/+"], &log).await;
    let id = "GID_student@@@271";
    // A raw MQTT 3.1.1 CONNECT with a 1 s keep-alive, then silence: no PINGREQ ever.
    let connect = raw_connect(id, 1);
    let mut sock = match tokio::net::TcpStream::connect(("127.0.0.1", stack().mqtt_port())).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = sock.write_all(&connect).await {
        panic!("{e}");
    }
    let mut connack = [0u8; 4];
    if let Err(e) = sock.read_exact(&mut connack).await {
        panic!("no CONNACK: {e}");
    }
    assert_eq!(connack, [0x20, 2, 0, 0], "connection accepted");
    let is = |kind: &'static str| {
        move |m: &Msg| m.field("clientId") == id && m.field("eventType") == kind
    };
    let Some(c) = watcher.expect(WAIT, is("connected")).await else {
        panic!("no connected event")
    };
    // The broker closes the connection after 1.5 x keep-alive; the socket sees EOF.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the broker did not close the idle connection: {closed:?}"
    );
    let Some(d) = watcher.expect(WAIT, is("disconnected")).await else {
        panic!("no disconnected event after keep-alive expiry")
    };
    assert_eq!(c.field("sessionIdentifier"), d.field("sessionIdentifier"));
}

/// One masked binary WebSocket frame (client -> server) carrying `payload` (< 126 bytes).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![0x82, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_browser_client_over_websockets_gets_the_same_rules() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let log = Transcript::new(false);
    let mut watcher = watcher(
        "e2e-watcher-ws",
        &["$classroom/#", "$aws/events/presence/+/+"],
        &log,
    )
    .await;
    let port = stack().var("MQTT_WS_PORT").to_owned();
    let mut sock = match tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    // The WebSocket upgrade a browser's MQTT.js sends, subprotocol `mqtt`.
    let upgrade = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    if let Err(e) = sock.write_all(upgrade.as_bytes()).await {
        panic!("{e}");
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match sock.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            other => panic!("upgrade response cut short: {other:?}"),
        }
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "no WebSocket upgrade: {head}"
    );
    // MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s) in one frame; CONNACK back.
    let id = "GID_student@@@291";
    let connect = raw_connect(id, 60);
    if let Err(e) = sock.write_all(&ws_frame(&connect)).await {
        panic!("{e}");
    }
    let mut frame = [0u8; 6];
    if let Err(e) = sock.read_exact(&mut frame).await {
        panic!("no CONNACK frame: {e}");
    }
    assert_eq!(
        frame,
        [0x82, 4, 0x20, 2, 0, 0],
        "a binary frame holding an accepted CONNACK"
    );
    // A QoS 0 chat publish over the WebSocket.
    let topic = b"roomSend/message";
    let body = br#"{"roomId":"ws-1","msg":"from a browser"}"#;
    let mut publish = vec![
        0x30,
        (2 + topic.len() + body.len()) as u8,
        0,
        topic.len() as u8,
    ];
    publish.extend_from_slice(topic);
    publish.extend_from_slice(body);
    if let Err(e) = sock.write_all(&ws_frame(&publish)).await {
        panic!("{e}");
    }
    let from = |topic: &'static str| move |m: &Msg| m.topic == topic && m.field("clientId") == id;
    assert!(
        watcher
            .expect(
                WAIT,
                from("$aws/events/presence/connected/GID_student@@@291")
            )
            .await
            .is_some(),
        "no connected event for the WebSocket client"
    );
    let Some(rec) = watcher.expect(WAIT, from("$classroom/uplink")).await else {
        panic!("no uplink record for the WebSocket client's publish");
    };
    assert_eq!(rec.json["qos"], 0);
    drop(sock);
    let gone = watcher
        .expect(WAIT, |m| {
            m.field("clientId") == id && m.field("eventType") == "disconnected"
        })
        .await;
    assert!(
        gone.is_some(),
        "no disconnected event when the WebSocket closed"
    );
}
