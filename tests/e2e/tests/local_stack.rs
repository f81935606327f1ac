//! End-to-end tests against one real local stack per test run (Mosquitto + plugin + ACL, moto,
//! rules bridge, local runner with the functions), started on free loopback ports by
//! `infra/local/stack.sh` and torn down by its watchdog when this process ends. The source
//! queues' visibility timeout is shortened to 2 s so the redrive test takes seconds, not the
//! template's 5 x 210 s; everything else is as provisioned from the template.
//!
//! Classroom clients sign in as §8 says: username = client ID, password = a classroom token
//! from the stack's local issuer for the rooms the test names (which also enrolls them there).
//! Tests of the token rules themselves (refusals, expiry, revocation, enrollment) are at the
//! end; key rotation has its own stack (`key_rotation.rs`), since it changes every token's fate.
//!
//! Each test uses its own client IDs and room so they can run in parallel. They are
//! `#[ignore]`d so `cargo test --workspace` does not start a stack per run: `make test-e2e`
//! (part of `make test`) builds the plugin and the runner, then runs them with
//! `--include-ignored`.

use std::sync::OnceLock;
use std::time::Duration;

use e2e::{
    ConnectOptions, Msg, Peer, Stack, SubscribeReasonCode, Transcript, members, members_at_least,
    scenarios,
};
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

/// A classroom sign-in for `id`: a fresh token for `rooms` (which enrolls it there).
fn client(id: &str, rooms: &[&str]) -> ConnectOptions {
    match stack().client(id, rooms, false) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

async fn peer(name: &str, id: &str, rooms: &[&str], log: &Transcript) -> Peer {
    connect(name, id, client(id, rooms), log).await
}

async fn connect(name: &str, id: &str, options: ConnectOptions, log: &Transcript) -> Peer {
    let endpoint = match stack().endpoint_for(&options) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    match Peer::connect(&endpoint, name, id, options, log).await {
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

/// Subscribes and requires every filter to be granted.
async fn sub(p: &mut Peer, filters: &[&str]) {
    if let Err(e) = p.subscribe_granted(filters).await {
        panic!("{} could not subscribe: {e}", p.name);
    }
}

/// Subscribes and requires the SUBACK to refuse every filter (0x80).
async fn sub_refused(p: &mut Peer, filters: &[&str]) {
    let codes = match p.subscribe(filters).await {
        Ok(c) => c,
        Err(e) => panic!("{} could not subscribe: {e}", p.name),
    };
    let granted: Vec<(&&str, &SubscribeReasonCode)> = filters
        .iter()
        .zip(&codes)
        .filter(|(_, c)| !matches!(c, SubscribeReasonCode::Failure))
        .collect();
    assert!(
        granted.is_empty() && codes.len() == filters.len(),
        "{}: the SUBACK granted what the token does not: {granted:?} (codes {codes:?})",
        p.name
    );
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
    let room = "p2p-1";
    let mut nosy = peer("nosy", "GID_student@@@201", &[room], &log).await;
    let mut target = peer("target", "GID_student@@@202", &[room], &log).await;
    // Every filter that would reach the target's P2P topic is refused in the SUBACK.
    sub_refused(
        &mut nosy,
        &[
            "room/p2p/GID_student@@@202",
            "room/p2p/+",
            "room/p2p/#",
            "room/+/GID_student@@@202",
            "room/#",
            "#",
        ],
    )
    .await;
    // What its token grants it still works.
    if let Err(e) = nosy.subscribe_classroom(room).await {
        panic!("{e}");
    }
    sub(&mut target, &["room/p2p/GID_student@@@202"]).await;
    let s = stack();
    let sqs = s.sqs().await;
    let marker = uuid::Uuid::new_v4().to_string();
    for to in ["GID_student@@@202", "GID_student@@@201"] {
        if let Err(e) = s
            .send_downlink(
                &sqs,
                &format!("/p2p/{to}"),
                &json!({"type": "mute", "note": marker, "to": to}),
            )
            .await
        {
            panic!("{e}");
        }
    }
    let got = target.expect(WAIT, |m| m.raw.contains(&marker)).await;
    assert!(got.is_some(), "the target never received its P2P message");
    let own = nosy
        .expect(WAIT, |m| m.topic == "room/p2p/GID_student@@@201")
        .await;
    assert!(
        own.is_some(),
        "the nosy student never received its own P2P message"
    );
    let leaked = nosy
        .quiet(QUIET, |m| m.raw.contains("\"to\":\"GID_student@@@202\""))
        .await;
    assert!(
        leaked.is_none(),
        "another student read the P2P message: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_publish_under_room() {
    let log = Transcript::new(false);
    let mut listener = peer("listener", "GID_student@@@211", &["sec-1"], &log).await;
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
    let mut forger = peer("forger", "GID_student@@@212", &["sec-1"], &log).await;
    let marker = uuid::Uuid::new_v4().to_string();
    let topics = [
        "room/message/sec-1",
        "room/status/sec-1",
        "room/system",
        "room/p2p/GID_student@@@211",
        "room/p2p/GID_student@@@212",
    ];
    for topic in topics {
        let body = json!({"type": "system", "msg": marker, "peer": "GID_teacher@@@001"});
        if let Err(e) = forger.publish(topic, &body).await {
            panic!("{e}");
        }
    }
    // Mosquitto 2.0 answers a denied QoS 1 publish of MQTT 3.1.1 with a PUBACK (3.1.1 has no
    // way to say "denied") and keeps the connection: the denial is silent, the message dropped.
    assert!(
        forger.pubacks_at_least(topics.len(), WAIT).await,
        "the denied publishes were not acknowledged ({} PUBACKs)",
        forger.pubacks()
    );
    let leaked = listener.quiet(QUIET, |m| m.raw.contains(&marker)).await;
    assert!(
        leaked.is_none(),
        "a student's publish under room/ was delivered: {leaked:?}"
    );
    // The forger is still connected and its own chat, on the uplink, reaches the listener.
    assert!(forger.is_connected(), "the forger was disconnected");
    let text = format!("real chat {marker}");
    if let Err(e) = forger.chat("sec-1", &text).await {
        panic!("{e}");
    }
    assert!(
        listener
            .expect(WAIT, |m| m.field("msg") == text)
            .await
            .is_some(),
        "the forger's real chat never reached the listener:\n{}",
        log.lines().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_cannot_forge_or_read_the_rules_and_lifecycle_topics() {
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-forge", &["$classroom/#", "$aws/#"], &log).await;
    let mut forger = peer("forger", "GID_student@@@221", &["sec-2"], &log).await;
    sub_refused(
        &mut forger,
        &["$classroom/#", "$aws/#", "$classroom/uplink", "#"],
    )
    .await;
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
    let other = peer("other", "GID_student@@@222", &["sec-2"], &log).await;
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
    let endpoint = match stack().endpoint_for(&options) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    match Peer::connect(&endpoint, "intruder", id, options, log).await {
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
    let mut teacher = peer("teacher", teacher_id, &["auth-1"], &log).await;
    sub(&mut teacher, &[&format!("room/p2p/{teacher_id}")]).await;
    let Some(online) = watcher
        .expect(WAIT, |m| m.field("eventType") == "connected")
        .await
    else {
        panic!("no connected event for the teacher");
    };

    let student = client(student_id, &["auth-1"]);
    let Some((_, student_token)) = student.credentials.clone() else {
        panic!("no credentials for {student_id}");
    };
    let teacher_without_password = ConnectOptions {
        persistent: false,
        credentials: Some((teacher_id.to_owned(), String::new())),
        certificate: false,
    };
    let attempts = [
        ("anonymous", ConnectOptions::default()),
        (
            "the teacher's username and no password",
            teacher_without_password,
        ),
        (
            "the student's username and token",
            ConnectOptions::token(student_id, &student_token, false),
        ),
        (
            "the teacher's username with the student's token",
            ConnectOptions::token(teacher_id, &student_token, false),
        ),
        (
            "the backend's username with the student's token",
            ConnectOptions::token("backend", &student_token, false),
        ),
        (
            // The backend has no password: only its client certificate signs it in.
            "the backend's username and a password",
            ConnectOptions::token("backend", "backend", false),
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
    let spoofer = peer("spoofer", "GID_student@@@231", &["sec-3"], &log).await;
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
    let mut listener = peer("listener", "GID_student@@@241", &[room], &log).await;
    let mut spoofer = peer("spoofer", "GID_student@@@242", &[room], &log).await;
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
    // clean disconnect
    let p = peer("p", id, &["life-1"], &log).await;
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
    let p = peer("p", id, &["life-1"], &log).await;
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
    let first = peer("first", id, &["life-1"], &log).await;
    let Some(c3) = watcher.expect(WAIT, is("connected")).await else {
        panic!("no connected event")
    };
    let second = connect("second", id, client(id, &["life-1"]), &log).await;
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
            .message_attribute_names("All")
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
async fn a_poison_record_is_dead_lettered_at_once_with_its_reason_and_nothing_else_is_lost() {
    let log = Transcript::new(false);
    let s = stack();
    let sqs = s.sqs().await;
    let ddb = s.ddb().await;
    let room = "sec-5";
    let mut listener = peer("listener", "GID_student@@@261", &[room], &log).await;
    let sender = peer("sender", "GID_student@@@262", &[room], &log).await;
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
    let dlq = s.var("UPLINK_DLQ_URL").to_owned();
    let mut seen: Vec<aws_sdk_sqs::types::Message> = Vec::new();
    let mut found: Option<aws_sdk_sqs::types::Message> = None;
    // The outflow dead-letters it itself on its first receive: seconds, not receives x timeout.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
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
    let (originals, failure) = match kit::deadletter::restore(kit::sqs::attributes_of(&m)) {
        Ok((originals, Some(failure))) => (originals, failure),
        other => panic!("the dead letter carries no failure: {other:?}"),
    };
    assert!(
        originals.is_empty(),
        "the poison had no attributes: {originals:?}"
    );
    assert_eq!(failure.function, "outflow");
    assert!(!failure.retryable, "{failure:?}");
    assert_eq!(
        failure.receive_count, 1,
        "dead-lettered on its first receive"
    );
    assert_eq!(failure.source_queue, s.var("UPLINK_QUEUE_ARN"));
    assert!(
        !failure.reason.is_empty() && !failure.kind.is_empty(),
        "{failure:?}"
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
    for key in [
        "MQTT_PORT",
        "MQTT_CERT_PORT",
        "MQTT_WS_PORT",
        "MOTO_PORT",
        "LOCAL_API_PORT",
    ] {
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

/// A raw MQTT 3.1.1 CONNECT (clean session) for the classroom client `id`, signed in with a
/// token for `room`, with the given keep-alive in seconds.
fn raw_connect(id: &str, room: &str, keep_alive: u16) -> Vec<u8> {
    let Some((user, password)) = client(id, &[room]).credentials else {
        panic!("no credentials for {id}");
    };
    e2e::connect_packet(id, &user, &password, keep_alive)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_keepalive_expiry_emits_a_disconnected_event() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let log = Transcript::new(false);
    let mut watcher = watcher("e2e-watcher-keepalive", &["$aws/events/presence/+/+"], &log).await;
    let id = "GID_student@@@271";
    // A raw MQTT 3.1.1 CONNECT with a 1 s keep-alive, then silence: no PINGREQ ever.
    let connect = raw_connect(id, "ka-1", 1);
    let mut sock = match stack().tls_stream(stack().mqtt_port()).await {
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

/// One masked binary WebSocket frame (client -> server) carrying `payload` (< 64 KiB: a
/// CONNECT with a token is longer than the 7-bit length).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![0x82];
    match u16::try_from(payload.len()) {
        Ok(n) if n < 126 => f.push(0x80 | n as u8),
        Ok(n) => {
            f.push(0x80 | 126);
            f.extend(n.to_be_bytes());
        }
        Err(_) => panic!("a test frame of {} bytes", payload.len()),
    }
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
    let mut sock = match stack().tls_stream(port.parse().unwrap_or(0)).await {
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
    let connect = raw_connect(id, "ws-1", 60);
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

// ---------------------------------------------------------------------------------------------
// Token sign-in (§8, issue 10): what a token grants, what it refuses, and when it ends.

/// Connects `id` or panics.
async fn connect_ok(name: &str, id: &str, options: ConnectOptions, log: &Transcript) -> Peer {
    connect(name, id, options, log).await
}

/// A token for `id` in `rooms` lasting `lifetime_secs`, from the stack's issuer.
fn issue(id: &str, rooms: &[&str], lifetime_secs: u64) -> e2e::Token {
    match stack().issue(id, rooms, lifetime_secs) {
        Ok(t) => t,
        Err(e) => panic!("no token for {id}: {e}"),
    }
}

/// Asserts the broker answered the CONNECT with a refusing CONNACK (not a network failure).
async fn assert_refused(id: &str, options: ConnectOptions, how: &str, log: &Transcript) {
    let refused = refusal(id, options, log).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("Connection refused, return code")),
        "connecting as {id} with {how} was not refused by a CONNACK: {refused:?}"
    );
}

/// A measured figure: in the transcript, and on stdout (`--nocapture` shows it).
fn figure(log: &Transcript, text: String) {
    println!("figure: {text}");
    log.note("test", &text);
}

/// Seconds since the epoch, with the fraction.
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `token` with one character of its `part`-th dot-separated part (0-based) replaced, at a
/// position that is not the last (so the base64url text always decodes to different bytes).
fn tampered(token: &str, part: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let Some(p) = parts.get_mut(part) else {
        panic!("a token without part {part}");
    };
    let at = p.len() / 2;
    let Some(old) = p.chars().nth(at) else {
        panic!("part {part} is too short to tamper with");
    };
    let new = if old == 'A' { 'B' } else { 'A' };
    p.replace_range(at..at + old.len_utf8(), &new.to_string());
    parts.join(".")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_token_for_one_room_receives_nothing_of_another_even_subscribed_to_every_room() {
    let log = Transcript::new(false);
    let s = stack();
    let ddb = s.ddb().await;
    let (mine, other) = ("iso-a", "iso-b");
    let mut reader = peer("reader", "GID_student@@@301", &[mine], &log).await;
    let sender = peer("sender", "GID_student@@@302", &[mine, other], &log).await;
    let mut control = peer("control", "GID_student@@@303", &[other], &log).await;
    // Every filter reaching the other room is refused in the SUBACK...
    sub_refused(
        &mut reader,
        &[
            "room/message/#",
            "room/message/+",
            &format!("room/message/{other}"),
            &format!("room/status/{other}"),
            &format!("room/+/{other}"),
            "room/status/#",
        ],
    )
    .await;
    // ...and its own room is granted.
    if let Err(e) = reader.subscribe_classroom(mine).await {
        panic!("{e}");
    }
    if let Err(e) = control.subscribe_classroom(other).await {
        panic!("{e}");
    }
    for (p, room) in [
        (&reader, mine),
        (&sender, mine),
        (&sender, other),
        (&control, other),
    ] {
        if let Err(e) = p.command(&json!({"type": "join", "roomId": room})).await {
            panic!("{e}");
        }
    }
    assert!(
        members_at_least(s, &ddb, other, 2, WAIT).await,
        "the other room never had its two members"
    );
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let (in_other, in_mine) = (format!("other {marker}"), format!("mine {marker}"));
    for (room, text) in [(other, &in_other), (mine, &in_mine)] {
        if let Err(e) = sender.chat(room, text).await {
            panic!("{e}");
        }
    }
    assert!(
        control
            .expect(WAIT, |m| m.field("msg") == in_other)
            .await
            .is_some(),
        "the other room's member never received its chat"
    );
    assert!(
        reader
            .expect(WAIT, |m| m.field("msg") == in_mine)
            .await
            .is_some(),
        "the reader never received its own room's chat"
    );
    let leaked = reader
        .quiet(QUIET, |m| {
            m.topic.ends_with(&format!("/{other}")) || m.raw.contains(&in_other)
        })
        .await;
    assert!(
        leaked.is_none(),
        "the other room's traffic reached the reader: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_token_signed_for_one_client_id_is_refused_for_another() {
    let log = Transcript::new(false);
    let (owner, other) = ("GID_student@@@311", "GID_student@@@312");
    let mut watcher = watcher(
        "e2e-watcher-wrong-client",
        &[&format!("$aws/events/presence/+/{other}")],
        &log,
    )
    .await;
    let token = issue(owner, &["wc-1"], 600);
    let generic = match stack().issue_filters(owner, &["room/system"], &["roomSend/message"], 600) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    for (how, options) in [
        (
            "the other's username and the owner's token",
            ConnectOptions::token(other, &token.token, false),
        ),
        (
            "the owner's username and token",
            ConnectOptions::token(owner, &token.token, false),
        ),
        (
            "a filter token of the owner",
            ConnectOptions::token(other, &generic.token, false),
        ),
    ] {
        assert_refused(other, options, how, &log).await;
    }
    let forged = watcher.quiet(QUIET, |_| true).await;
    assert!(
        forged.is_none(),
        "a refused CONNECT produced an event: {forged:?}"
    );
    // The same tokens sign their own client in.
    for t in [&token, &generic] {
        let p = connect_ok(
            "owner",
            owner,
            ConnectOptions::token(owner, &t.token, false),
            &log,
        )
        .await;
        p.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_tampered_token_an_unknown_key_id_and_an_expired_token_are_refused() {
    let log = Transcript::new(false);
    let id = "GID_student@@@321";
    let mut watcher = watcher(
        "e2e-watcher-bad-tokens",
        &[&format!("$aws/events/presence/connected/{id}")],
        &log,
    )
    .await;
    // Tokens as a person gets them: `stack.sh token`.
    let good = match stack().token_cli(id, &["bad-1"], None) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let short = match stack().token_cli(id, &["bad-1"], Some(1)) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let issued = epoch_now();
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 4, "ct1.<kid>.<claims>.<sig>: {}", parts.len());
    let unknown_kid = format!("ct1.knotakey0000.{}.{}", parts[2], parts[3]);
    let Ok(current) = stack().current_kid() else {
        panic!("no current key");
    };
    assert_eq!(parts[1], current, "signed with the current key");
    // Wait until the short token is 2 s past its issue (its lifetime is 1 s).
    tokio::time::sleep(Duration::from_secs_f64(
        (issued + 2.0 - epoch_now()).max(0.0),
    ))
    .await;
    for (how, token) in [
        ("one character of the signature changed", tampered(&good, 3)),
        ("one character of the claims changed", tampered(&good, 2)),
        ("an unknown key ID", unknown_kid),
        ("a 1 s token 2 s later", short),
        ("the signature cut short", good[..good.len() - 1].to_owned()),
        ("no token at all", String::new()),
    ] {
        assert_refused(id, ConnectOptions::token(id, &token, false), how, &log).await;
    }
    let seen = watcher.quiet(QUIET, |_| true).await;
    assert!(
        seen.is_none(),
        "a refused CONNECT produced an event: {seen:?}"
    );
    // The untouched token still signs in: it was the change that was refused.
    let p = connect_ok("control", id, ConnectOptions::token(id, &good, false), &log).await;
    assert!(
        watcher.expect(WAIT, |_| true).await.is_some(),
        "no connected event for the good token"
    );
    p.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_session_is_disconnected_when_its_token_expires_and_presence_reports_it_offline() {
    let log = Transcript::new(false);
    let s = stack();
    let (id, room) = ("GID_student@@@331", "exp-1");
    let mut watcher = watcher(
        "e2e-watcher-expiry",
        &[&format!("$aws/events/presence/disconnected/{id}")],
        &log,
    )
    .await;
    let mut observer = peer("observer", "GID_student@@@332", &[room], &log).await;
    if let Err(e) = observer.subscribe_classroom(room).await {
        panic!("{e}");
    }
    // 4 s rather than 3: presence must be seen online first, through the whole pipeline.
    let token = issue(id, &[room], 4);
    let mut p = connect_ok(
        "short",
        id,
        ConnectOptions::token(id, &token.token, false),
        &log,
    )
    .await;
    if let Err(e) = p.command(&json!({"type": "join", "roomId": room})).await {
        panic!("{e}");
    }
    let is_online = |v: &Value| v["online"].as_bool();
    let mut seen_online = false;
    while !seen_online && p.is_connected() {
        seen_online = s.presence(id).ok().as_ref().and_then(is_online) == Some(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen_online,
        "the presence query never reported the session online"
    );
    let wait = Duration::from_secs_f64((token.expires_at as f64 + 4.0 - epoch_now()).max(0.0));
    let closed = p.closed_within(wait).await;
    let closed_at = epoch_now();
    assert!(
        closed.is_some(),
        "the session outlived its token (expired at {}, now {closed_at:.1})",
        token.expires_at
    );
    assert!(
        closed_at >= token.expires_at as f64 - 0.05,
        "disconnected {:.2} s before its token expired",
        token.expires_at as f64 - closed_at
    );
    figure(
        &log,
        format!(
            "disconnected {:.2} s after expiry",
            closed_at - token.expires_at as f64
        ),
    );
    let Some(event) = watcher.expect(WAIT, |_| true).await else {
        panic!("no disconnected event");
    };
    assert_eq!(event.field("disconnectReason"), "CUSTOMAUTH_TTL_EXPIRATION");
    let offline = observer
        .expect(WAIT, |m| {
            m.topic == format!("room/status/{room}")
                && m.field("type") == "offline"
                && m.field("clientId") == id
        })
        .await;
    assert!(
        offline.is_some(),
        "the room got no offline notice:\n{}",
        log.lines().join("\n")
    );
    let gone = e2e::eventually(WAIT, || async {
        s.presence(id).ok().as_ref().and_then(is_online) == Some(false)
    })
    .await;
    assert!(
        gone,
        "the presence query still reports it online: {:?}",
        s.presence(id)
    );
    // The same token cannot come back.
    assert_refused(
        id,
        ConnectOptions::token(id, &token.token, false),
        "its expired token",
        &log,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_revoked_token_is_refused_at_connect_and_its_live_session_is_kicked() {
    let log = Transcript::new(false);
    let s = stack();
    let (id, room) = ("GID_student@@@341", "rev-1");
    let mut watcher = watcher(
        "e2e-watcher-revoke",
        &[&format!("$aws/events/presence/disconnected/{id}")],
        &log,
    )
    .await;
    let options = |t: &e2e::Token| ConnectOptions::token(id, &t.token, false);

    // One token revoked: its live session ends, it is refused, another token of the client works.
    let first = issue(id, &[room], 600);
    let mut live = connect_ok("live", id, options(&first), &log).await;
    let t0 = std::time::Instant::now();
    match s.revoke_token(&first.token_id) {
        Ok(v) => assert_eq!(v["status"], "revoked", "{v}"),
        Err(e) => panic!("{e}"),
    }
    assert!(
        live.closed_within(Duration::from_secs(8)).await.is_some(),
        "the revoked token's session is still connected"
    );
    figure(
        &log,
        format!("token revoke -> kicked in {:?}", t0.elapsed()),
    );
    let Some(event) = watcher.expect(WAIT, |_| true).await else {
        panic!("no disconnected event for the kicked session");
    };
    assert_eq!(
        event.field("disconnectReason"),
        "SERVER_INITIATED_DISCONNECT"
    );
    assert_refused(id, options(&first), "a revoked token", &log).await;
    let second = issue(id, &[room], 600);
    let mut live = connect_ok("live", id, options(&second), &log).await;

    // The client revoked: every token so far is refused, a token issued afterwards works.
    let t0 = std::time::Instant::now();
    if let Err(e) = s.revoke_client(id) {
        panic!("{e}");
    }
    assert!(
        live.closed_within(Duration::from_secs(8)).await.is_some(),
        "the revoked client's session is still connected"
    );
    figure(
        &log,
        format!("client revoke -> kicked in {:?}", t0.elapsed()),
    );
    assert_refused(
        id,
        options(&second),
        "a token issued before the client was revoked",
        &log,
    )
    .await;
    let third = issue(id, &[room], 600);
    let p = connect_ok("after", id, options(&third), &log).await;
    p.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn chat_and_join_in_a_room_without_enrollment_are_refused_and_reach_nobody() {
    let log = Transcript::new(false);
    let s = stack();
    let ddb = s.ddb().await;
    let (granted, closed) = ("enr-a", "enr-b");
    let student_id = "GID_student@@@351";
    let mut teacher = peer("teacher", "GID_teacher@@@352", &[granted, closed], &log).await;
    for room in [granted, closed] {
        if let Err(e) = teacher.subscribe_classroom(room).await {
            panic!("{e}");
        }
        if let Err(e) = teacher
            .command(&json!({"type": "join", "roomId": room}))
            .await
        {
            panic!("{e}");
        }
    }
    let mut student = peer("student", student_id, &[granted], &log).await;
    if let Err(e) = student.subscribe_classroom(granted).await {
        panic!("{e}");
    }
    sub_refused(&mut student, &[&format!("room/message/{closed}")]).await;
    let p2p = format!("room/p2p/{student_id}");
    let rejected = |room: &'static str| {
        let p2p = p2p.clone();
        move |m: &Msg| {
            m.topic == p2p
                && m.field("type") == "rejected"
                && m.field("reason") == "not_enrolled"
                && m.field("roomId") == room
        }
    };
    if let Err(e) = student
        .command(&json!({"type": "join", "roomId": closed}))
        .await
    {
        panic!("{e}");
    }
    assert!(
        student.expect(WAIT, rejected(closed)).await.is_some(),
        "the join got no rejected/not_enrolled notice:\n{}",
        log.lines().join("\n")
    );
    let text = format!("sneaking in {}", uuid::Uuid::new_v4().simple());
    let msg_id = match student.chat(closed, &text).await {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let Some(notice) = student.expect(WAIT, rejected(closed)).await else {
        panic!("the chat got no rejected/not_enrolled notice");
    };
    assert_eq!(notice.field("refMsgId"), msg_id, "{}", notice.raw);
    // Nobody in the closed room saw the chat or the student arrive.
    let seen = teacher
        .quiet(QUIET, |m| {
            m.raw.contains(&text) || m.raw.contains(student_id)
        })
        .await;
    assert!(seen.is_none(), "the closed room saw the student: {seen:?}");
    assert!(
        members_at_least(s, &ddb, closed, 1, WAIT).await,
        "the teacher's join never counted"
    );
    let listed = members(s, &ddb, closed).await;
    assert!(
        listed.iter().any(|m| m == "GID_teacher@@@352") && !listed.iter().any(|m| m == student_id),
        "the closed room's members: {listed:?}"
    );
    // Its own room works: the join counts and the chat arrives.
    if let Err(e) = student
        .command(&json!({"type": "join", "roomId": granted}))
        .await
    {
        panic!("{e}");
    }
    let text = format!("hello {}", uuid::Uuid::new_v4().simple());
    if let Err(e) = student.chat(granted, &text).await {
        panic!("{e}");
    }
    assert!(
        teacher
            .expect(WAIT, |m| m.topic == format!("room/message/{granted}")
                && m.field("msg") == text)
            .await
            .is_some(),
        "the chat in its own room never arrived"
    );
    let joined = e2e::eventually(WAIT, || async {
        members(s, &ddb, granted)
            .await
            .iter()
            .any(|m| m == student_id)
    })
    .await;
    assert!(joined, "the join in its own room did not count");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_bad_downlink_is_in_its_dlq_within_seconds_and_classroom_dlq_shows_and_redrives_it() {
    let s = stack();
    let sqs = s.sqs().await;
    // A sub-topic the inflow can never publish: a wildcard in a level.
    let marker = format!("bad downlink {}", uuid::Uuid::new_v4().simple());
    if let Err(e) = s
        .send_downlink(&sqs, "/message/12+3", &json!({"msg": marker}))
        .await
    {
        panic!("{e}");
    }
    let find = async |within: Duration| -> Option<Value> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let shown = s
                .classroom(&["dlq", "show", "downlink", "--max", "100"])
                .await;
            if let Some(line) = shown
                .ok()
                .into_iter()
                .flat_map(|out| out.lines().map(str::to_owned).collect::<Vec<_>>())
                .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
                .find(|l| l["body"].as_str().is_some_and(|b| b.contains(&marker)))
            {
                return Some(line);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    };
    let Some(letter) = find(Duration::from_secs(20)).await else {
        panic!("the bad downlink did not reach the downlink DLQ within 20 s")
    };
    assert_eq!(letter["failure"]["function"], "inflow", "{letter}");
    assert_eq!(letter["failure"]["receiveCount"], 1, "{letter}");
    assert_eq!(letter["failure"]["retryable"], false, "{letter}");
    assert!(
        letter["failure"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains('+')),
        "the reason names the bad level: {letter}"
    );
    assert_eq!(
        letter["attributes"]["mqttSecondTopic"]["stringValue"],
        "/message/12+3"
    );
    let listed = match s.classroom(&["dlq", "list"]).await {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    assert!(
        listed.lines().any(|l| l.contains("\"downlink\"")
            && l.contains(letter["failure"]["kind"].as_str().unwrap_or("?"))),
        "{listed}"
    );
    // Redriven, it goes back through the inflow, fails the same way and is dead-lettered again
    // (a new message, with its reason): nothing lost, nothing published.
    let id = letter["messageId"].as_str().unwrap_or_default().to_owned();
    let redriven = match s.classroom(&["dlq", "redrive", "downlink", &id]).await {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    };
    assert!(redriven.contains("\"redriven\":1"), "{redriven}");
    let Some(again) = find(Duration::from_secs(20)).await else {
        panic!("the redriven downlink did not come back to the DLQ")
    };
    assert_ne!(again["messageId"], letter["messageId"], "a new message");
    assert_eq!(again["failure"]["receiveCount"], 1);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_chat_over_the_payload_limit_is_answered_with_too_large() {
    let log = Transcript::new(false);
    let room = "sec-13";
    let mut sender = peer("sender", "GID_student@@@263", &[room], &log).await;
    if let Err(e) = sender.subscribe_classroom(room).await {
        panic!("{e}");
    }
    if let Err(e) = sender
        .command(&json!({"type": "join", "roomId": room}))
        .await
    {
        panic!("{e}");
    }
    // 65,537 bytes: under the broker's 128 KB, over the rule's PAYLOAD_MAX_BYTES (65,536).
    let text = "x".repeat(65_537 - r#"{"roomId":"sec-13","msg":"","msgId":"big"}"#.len());
    let body = json!({"roomId": room, "msg": text, "msgId": "big"});
    assert_eq!(body.to_string().len(), 65_537);
    if let Err(e) = sender.publish("roomSend/message", &body).await {
        panic!("{e}");
    }
    let got = sender
        .expect(WAIT, |m: &Msg| {
            m.topic == "room/p2p/GID_student@@@263" && m.field("type") == "rejected"
        })
        .await;
    let Some(notice) = got else {
        panic!("no rejected notice:\n{}", log.lines().join("\n"))
    };
    assert_eq!(notice.field("reason"), "too_large", "{}", notice.raw);
}
