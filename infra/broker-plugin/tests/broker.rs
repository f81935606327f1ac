//! The plugin in a real Mosquitto (Debian's 2.0.11), with real MQTT 5 clients (rumqttc v5, so
//! CONNACK, SUBACK and PUBACK reason codes are visible): token sign-in, the ACL callback on
//! subscribe, publish and delivery, the expiry and revocation sweep with its lifecycle events,
//! key rotation, all without a broker restart, and AWS IoT Core's per-connection publish limit
//! (`plugin_opt_publish_per_second`).
//!
//! Each test starts its own broker on a free port with a generated configuration
//! (`per_listener_settings false`, `allow_anonymous false`, a password file holding the backend,
//! the project's `infra/mosquitto/acl`, the plugin built by cargo next to this test binary) and
//! the key and revocation files in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

mod common;

use std::time::{Duration, Instant};

use common::{BACKEND_PASSWORD, Broker, now_s};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, Packet, PubAck, PubAckReason, Publish, SubAck, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use signin::{KeySet, LifetimeBounds, Revocations, TokenRequest};
use tokio::sync::mpsc;
use tokio::time::timeout;

const STUDENT: &str = "GID_student@@@001";
const OTHER: &str = "GID_student@@@002";
const WAIT: Duration = Duration::from_secs(5);

/// A classroom token: read room `room` (message + status), `room/system`, own P2P; write
/// `roomSend/message` and `roomSend/command`; rooms beyond the first add their topics.
fn token(keys: &KeySet, client: &str, rooms: &[&str], lifetime_secs: u64, jti: &str) -> String {
    let mut read: Vec<String> = rooms
        .iter()
        .flat_map(|r| [format!("room/message/{r}"), format!("room/status/{r}")])
        .collect();
    read.push("room/system".into());
    read.push(format!("room/p2p/{client}"));
    let req = TokenRequest {
        client_id: client.into(),
        read,
        write: vec!["roomSend/message".into(), "roomSend/command".into()],
        lifetime_secs,
    };
    let bounds = LifetimeBounds {
        min_secs: 1,
        max_secs: 86_400,
    };
    signin::issue(&req, keys, bounds, now_s(), jti)
        .unwrap()
        .token
}

fn keys(kid: &str, byte: u8) -> KeySet {
    KeySet::new(kid, vec![byte; 32]).unwrap()
}

/// One MQTT 5 connection whose event loop runs in a task; it never reconnects.
struct Conn {
    client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<Publish>,
    subacks: mpsc::UnboundedReceiver<SubAck>,
    pubacks: mpsc::UnboundedReceiver<PubAck>,
    closed: mpsc::UnboundedReceiver<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default, Clone, Copy)]
struct Opts<'a> {
    username: Option<&'a str>,
    password: Option<&'a str>,
    /// Persistent session (clean start off, one hour session expiry).
    persistent: bool,
}

fn with_token(token: &str) -> Opts<'_> {
    Opts {
        username: Some("any-username"),
        password: Some(token),
        persistent: false,
    }
}

/// Connects; `Err` with the refusal when the broker does not accept.
async fn connect(port: u16, client_id: &str, o: Opts<'_>) -> Result<Conn, String> {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_start(!o.persistent);
    if o.persistent {
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(3600);
        opts.set_connect_properties(props);
    }
    if let (Some(u), Some(p)) = (o.username, o.password) {
        opts.set_credentials(u, p);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, eventloop.poll()).await {
            Err(_) => return Err("timeout waiting for CONNACK".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
        }
    }
    let (ptx, publishes) = mpsc::unbounded_channel();
    let (stx, subacks) = mpsc::unbounded_channel();
    let (atx, pubacks) = mpsc::unbounded_channel();
    let (ctx, closed) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = ptx.send(p);
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    let _ = stx.send(s);
                }
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    let _ = atx.send(a);
                }
                Ok(_) => {}
                Err(e) => {
                    // Polling again would reconnect: stop here.
                    let _ = ctx.send(e.to_string());
                    return;
                }
            }
        }
    });
    Ok(Conn {
        client,
        publishes,
        subacks,
        pubacks,
        closed,
        task,
    })
}

async fn backend(port: u16, client_id: &str) -> Conn {
    connect(
        port,
        client_id,
        Opts {
            username: Some("backend"),
            password: Some(BACKEND_PASSWORD),
            persistent: false,
        },
    )
    .await
    .expect("the backend connects with the password file")
}

impl Conn {
    async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        let ack = timeout(WAIT, self.subacks.recv())
            .await
            .expect("SUBACK in time")
            .expect("connection alive");
        ack.return_codes[0]
    }

    /// Publishes at QoS 1; whether the broker accepted it (a success PUBACK, with or without
    /// subscribers) or the reason it refused.
    async fn publish(&mut self, topic: &str, payload: &str) -> Result<(), PubAckReason> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
        match timeout(WAIT, self.pubacks.recv())
            .await
            .expect("PUBACK in time")
            .expect("connection alive")
            .reason
        {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
            refused => Err(refused),
        }
    }

    /// Everything received within `d`, as (topic, payload).
    async fn drain(&mut self, d: Duration) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let deadline = Instant::now() + d;
        while let Ok(Some(p)) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.publishes.recv(),
        )
        .await
        {
            out.push((
                String::from_utf8_lossy(&p.topic).into_owned(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            ));
        }
        out
    }

    /// The first message within `d` whose topic satisfies `pred`.
    async fn next_on(
        &mut self,
        d: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(String, serde_json::Value)> {
        let deadline = Instant::now() + d;
        while let Ok(Some(p)) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.publishes.recv(),
        )
        .await
        {
            let topic = String::from_utf8_lossy(&p.topic).into_owned();
            if pred(&topic) {
                let body = serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                return Some((topic, body));
            }
        }
        None
    }

    /// Waits up to `d` for the broker to close the connection; the error seen.
    async fn closed_within(&mut self, d: Duration) -> Option<String> {
        timeout(d, self.closed.recv()).await.ok().flatten()
    }
}

fn refused(r: Result<Conn, String>) -> String {
    match r {
        Ok(_) => panic!("the CONNECT was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_valid_token_connects_and_bad_ones_are_refused_without_events_or_takeover() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let mut events = backend(broker.port, "backend-events").await;
    assert!(matches!(
        events.subscribe("$aws/events/presence/#").await,
        SubscribeReasonCode::Success(_)
    ));

    let good = token(&k, STUDENT, &["1"], 600, "t-good");
    let mut live = connect(broker.port, STUDENT, with_token(&good))
        .await
        .expect("a valid token connects");
    let (topic, connected) = events
        .next_on(WAIT, |_| true)
        .await
        .expect("connected event");
    assert_eq!(topic, format!("$aws/events/presence/connected/{STUDENT}"));
    assert_eq!(connected["clientId"], STUDENT);

    // Every refusal, with the live session's client ID where it could take it over.
    let mut tampered = good.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let expired = {
        let bounds = LifetimeBounds {
            min_secs: 1,
            max_secs: 86_400,
        };
        let req = TokenRequest {
            client_id: STUDENT.into(),
            read: vec!["room/system".into()],
            write: vec![],
            lifetime_secs: 5,
        };
        signin::issue(&req, &k, bounds, now_s() - 60, "t-old")
            .unwrap()
            .token
    };
    let unknown_key = token(&keys("k9", 9), STUDENT, &["1"], 600, "t-k9");
    let others = token(&k, OTHER, &["1"], 600, "t-other");
    for (name, client, opts) in [
        ("tampered", STUDENT, with_token(&tampered)),
        ("expired", STUDENT, with_token(&expired)),
        ("unknown key", STUDENT, with_token(&unknown_key)),
        ("another client's token", STUDENT, with_token(&others)),
        ("anonymous", STUDENT, Opts::default()),
        ("roster password", STUDENT, with_token("a-roster-password")),
    ] {
        let e = refused(connect(broker.port, client, opts).await);
        assert!(
            e.contains("refused") || e.contains("NotAuthorized"),
            "{name}: {e}"
        );
    }
    // The refusals produced no lifecycle event and did not take the live session over.
    assert_eq!(events.drain(Duration::from_millis(500)).await, vec![]);
    assert_eq!(
        live.publish("roomSend/message", r#"{"roomId":"1","msg":"still here"}"#)
            .await,
        Ok(())
    );
    assert!(
        live.closed_within(Duration::from_millis(200))
            .await
            .is_none()
    );

    let log = broker.log();
    for kind in [
        "wrong_client (code 4)",
        "expired (code 2)",
        "unknown_key (code 8)",
        "no_token (code 1)",
        "malformed (code 1)",
    ] {
        assert!(
            log.contains(&format!("refused CONNECT of client \"{STUDENT}\"")) && log.contains(kind),
            "{kind} not logged:\n{log}"
        );
    }
    for secret in [&good, &tampered, &others, &expired] {
        let sig = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(sig), "a token reached the log:\n{log}");
    }
}

#[tokio::test]
async fn a_subscription_outside_the_grant_is_refused_in_the_suback() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    for filter in [
        "room/message/#",
        "room/message/+",
        "room/#",
        "#",
        "room/message/2",
        "room/p2p/GID_student@@@002",
        "$aws/events/presence/#",
        "$classroom/uplink",
    ] {
        assert_eq!(
            s.subscribe(filter).await,
            SubscribeReasonCode::NotAuthorized,
            "{filter}"
        );
    }
    for filter in [
        "room/message/1",
        "room/status/1",
        "room/system",
        "room/p2p/GID_student@@@001",
    ] {
        assert!(
            matches!(s.subscribe(filter).await, SubscribeReasonCode::Success(_)),
            "{filter}"
        );
    }
}

#[tokio::test]
async fn deliveries_and_publishes_follow_the_grant() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let mut back = backend(broker.port, "backend-1").await;
    for f in ["room/#", "$classroom/uplink"] {
        assert!(matches!(
            back.subscribe(f).await,
            SubscribeReasonCode::Success(_)
        ));
    }
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    assert!(matches!(
        s.subscribe("room/message/1").await,
        SubscribeReasonCode::Success(_)
    ));
    assert!(matches!(
        s.subscribe(&format!("room/p2p/{STUDENT}")).await,
        SubscribeReasonCode::Success(_)
    ));
    assert_eq!(
        s.subscribe("room/message/#").await,
        SubscribeReasonCode::NotAuthorized
    );

    for topic in [
        "room/message/2",
        "room/message/1",
        "room/p2p/GID_student@@@002",
    ] {
        assert_eq!(back.publish(topic, topic).await, Ok(()));
    }
    let got = s.drain(Duration::from_millis(700)).await;
    assert_eq!(
        got,
        vec![("room/message/1".to_owned(), "room/message/1".to_owned())]
    );
    // What the backend itself published comes back to it (room/#): drop it.
    back.drain(Duration::from_millis(300)).await;

    // The token holder may not publish under room/ (PUBACK "not authorized", delivered to
    // nobody); under roomSend/ its publish becomes an uplink record.
    assert_eq!(
        s.publish("room/message/1", "forged").await,
        Err(PubAckReason::NotAuthorized)
    );
    assert_eq!(
        s.publish("roomSend/message", r#"{"roomId":"1","msg":"hi"}"#)
            .await,
        Ok(())
    );
    let got = back.drain(Duration::from_millis(700)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "$classroom/uplink");
    let record: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(record["clientId"], STUDENT);
    assert_eq!(record["topic"], "roomSend/message");
    assert!(s.drain(Duration::from_millis(200)).await.is_empty());
}

#[tokio::test]
async fn a_persistent_session_keeps_only_what_its_new_token_grants() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let mut back = backend(broker.port, "backend-1").await;
    let persistent = |t| Opts {
        persistent: true,
        ..with_token(t)
    };
    // Rooms 1 and 2, subscribed to both, then away.
    let both = token(&k, STUDENT, &["1", "2"], 600, "t-12");
    let mut s = connect(broker.port, STUDENT, persistent(&both))
        .await
        .unwrap();
    for f in ["room/message/1", "room/message/2"] {
        assert!(matches!(
            s.subscribe(f).await,
            SubscribeReasonCode::Success(_)
        ));
    }
    s.client.disconnect().await.unwrap();
    assert!(s.closed_within(WAIT).await.is_some());
    drop(s);
    // Queued while away (the offline session is checked with its last grant).
    for topic in ["room/message/1", "room/message/2"] {
        assert_eq!(back.publish(topic, "while away").await, Ok(()));
    }
    // Back with a token for room 1 only: the broker keeps both subscriptions, but neither the
    // queued room-2 message nor new room-2 messages are delivered.
    let one = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, persistent(&one))
        .await
        .unwrap();
    for topic in ["room/message/2", "room/message/1"] {
        assert_eq!(back.publish(topic, "now").await, Ok(()));
    }
    let got = s.drain(Duration::from_millis(800)).await;
    assert_eq!(
        got,
        vec![
            ("room/message/1".to_owned(), "while away".to_owned()),
            ("room/message/1".to_owned(), "now".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_session_is_kicked_when_its_token_expires_and_presence_sees_it_offline() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let mut events = backend(broker.port, "backend-events").await;
    events.subscribe("$aws/events/presence/#").await;
    let t = token(&k, STUDENT, &["1"], 2, "t-short");
    let started = Instant::now();
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    let (_, connected) = events
        .next_on(WAIT, |t| t.contains("/connected/"))
        .await
        .unwrap();
    let closed = s
        .closed_within(Duration::from_secs(6))
        .await
        .expect("kicked after its token expired");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "kicked after {after:?}"
    );
    // Mosquitto queues a DISCONNECT (0x98, administrative action) and closes the socket at
    // once, so a client may see either.
    assert!(
        closed.contains("AdministrativeAction") || closed.contains("closed by peer"),
        "{closed}"
    );
    let (topic, gone) = events
        .next_on(WAIT, |t| t.contains("/disconnected/"))
        .await
        .expect("disconnected event");
    assert_eq!(
        topic,
        format!("$aws/events/presence/disconnected/{STUDENT}")
    );
    assert_eq!(gone["sessionIdentifier"], connected["sessionIdentifier"]);
    assert_eq!(gone["disconnectReason"], "CUSTOMAUTH_TTL_EXPIRATION");
    assert!(broker.log().contains("token expired"));
}

#[tokio::test]
async fn an_expiring_connection_taken_over_by_a_valid_one_does_not_get_the_new_one_kicked() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let short = token(&k, STUDENT, &["1"], 2, "t-short");
    let mut old = connect(broker.port, STUDENT, with_token(&short))
        .await
        .unwrap();
    let long = token(&k, STUDENT, &["1"], 600, "t-long");
    let mut new = connect(broker.port, STUDENT, with_token(&long))
        .await
        .unwrap();
    assert!(old.closed_within(WAIT).await.is_some(), "taken over");
    // Well past the old token's expiry and two sweeps.
    assert!(new.closed_within(Duration::from_secs(4)).await.is_none());
    assert_eq!(
        new.publish("roomSend/message", r#"{"roomId":"1","msg":"x"}"#)
            .await,
        Ok(())
    );
}

#[tokio::test]
async fn a_revocation_kicks_the_live_session_and_refuses_the_next_connect() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let mut events = backend(broker.port, "backend-events").await;
    events.subscribe("$aws/events/presence/#").await;
    let t = token(&k, STUDENT, &["1"], 600, "t-revoke-me");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    let other = token(&k, OTHER, &["1"], 600, "t-other");
    let mut bystander = connect(broker.port, OTHER, with_token(&other))
        .await
        .unwrap();
    events.drain(Duration::from_millis(300)).await;

    let mut r = Revocations::default();
    r.tokens.insert("t-revoke-me".into());
    let written = Instant::now();
    broker.set_revocations(&r);
    assert!(
        s.closed_within(Duration::from_secs(4)).await.is_some(),
        "kicked after the revocation"
    );
    let bound = written.elapsed();
    assert!(bound < Duration::from_millis(2500), "took {bound:?}");
    let (_, gone) = events
        .next_on(WAIT, |t| t.contains("/disconnected/"))
        .await
        .unwrap();
    assert_eq!(gone["clientId"], STUDENT);
    assert_eq!(gone["disconnectReason"], "SERVER_INITIATED_DISCONNECT");
    assert!(
        bystander
            .closed_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    let e = refused(connect(broker.port, STUDENT, with_token(&t)).await);
    assert!(!e.is_empty());
    assert!(broker.log().contains("revoked (code 3)"));
    // A fresh token of the same client is fine; a revoke-all of the client refuses it too.
    let fresh = token(&k, STUDENT, &["1"], 600, "t-fresh");
    let mut again = connect(broker.port, STUDENT, with_token(&fresh))
        .await
        .unwrap();
    r.clients.insert(STUDENT.into(), now_s());
    broker.set_revocations(&r);
    assert!(again.closed_within(Duration::from_secs(4)).await.is_some());
    refused(connect(broker.port, STUDENT, with_token(&fresh)).await);
    assert!(
        bystander
            .closed_within(Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn rotation_keeps_old_tokens_and_retiring_the_old_key_refuses_them() {
    let mut k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let old = token(&k, STUDENT, &["1"], 600, "t-old");
    drop(
        connect(broker.port, STUDENT, with_token(&old))
            .await
            .unwrap(),
    );

    k.rotate("k2", vec![2; 32]).unwrap();
    broker.set_keys(&k);
    let new = token(&k, OTHER, &["1"], 600, "t-new");
    assert!(new.starts_with("ct1.k2."));
    drop(
        connect(broker.port, STUDENT, with_token(&old))
            .await
            .expect("old key kept"),
    );
    drop(
        connect(broker.port, OTHER, with_token(&new))
            .await
            .expect("new key"),
    );

    k.retire("k1").unwrap();
    broker.set_keys(&k);
    refused(connect(broker.port, STUDENT, with_token(&old)).await);
    drop(
        connect(broker.port, OTHER, with_token(&new))
            .await
            .expect("new key"),
    );
    assert!(broker.log().contains("unknown_key (code 8)"));
}

#[tokio::test]
async fn without_a_valid_key_file_classroom_clients_are_refused_and_the_broker_runs_on() {
    let mut broker = Broker::start(None);
    let k = keys("k1", 1);
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    refused(connect(broker.port, STUDENT, with_token(&t)).await);
    // The backend is unaffected.
    drop(backend(broker.port, "backend-1").await);
    // The key file appears: no restart needed.
    broker.set_keys(&k);
    drop(
        connect(broker.port, STUDENT, with_token(&t))
            .await
            .expect("keys loaded"),
    );
    broker.set_keys_text("{\"current\":\"k1\"");
    refused(connect(broker.port, STUDENT, with_token(&t)).await);
    assert!(broker.is_running());
    let log = broker.log();
    assert!(log.contains("cannot be read"), "{log}");
    assert!(log.contains("is not a valid key set"), "{log}");
    assert!(log.contains("no_keys (code 8)"), "{log}");
}

impl Conn {
    /// Publishes `n` QoS 1 messages to `topic` back to back, then collects their `n` PUBACKs
    /// (in order): (accepted, refused as "not authorized"), and how long it all took.
    async fn publish_burst(&mut self, topic: &str, n: usize) -> (usize, usize, Duration) {
        let started = Instant::now();
        for i in 0..n {
            self.client
                .publish(topic, QoS::AtLeastOnce, false, format!("{{\"n\":{i}}}"))
                .await
                .unwrap();
        }
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..n {
            let ack = timeout(WAIT, self.pubacks.recv())
                .await
                .expect("PUBACK in time")
                .expect("connection alive");
            match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => accepted += 1,
                PubAckReason::NotAuthorized => refused += 1,
                other => panic!("unexpected PUBACK reason {other:?}"),
            }
        }
        (accepted, refused, started.elapsed())
    }
}

/// The most a bucket of `per_second` can let through in `elapsed`: its burst plus the refill,
/// rounded up to whole seconds (an upper bound, so no timing can make a correct limiter fail).
fn at_most(per_second: usize, elapsed: Duration) -> usize {
    per_second + per_second * (elapsed.as_secs() as usize + 1)
}

#[tokio::test]
async fn a_classroom_connection_over_its_publish_limit_is_throttled_and_stays_connected() {
    let k = keys("k1", 1);
    let broker = Broker::start_with(Some(&k), "plugin_opt_publish_per_second 5\n");
    let mut back = backend(broker.port, "backend-1").await;
    assert!(matches!(
        back.subscribe("$classroom/uplink").await,
        SubscribeReasonCode::Success(_)
    ));
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();

    let (flood_accepted, refused, took) = s.publish_burst("roomSend/message", 40).await;
    assert!(
        flood_accepted >= 5,
        "the bucket's burst goes through: {flood_accepted}"
    );
    assert!(
        flood_accepted <= at_most(5, took),
        "{flood_accepted} accepted in {took:?} at 5/s"
    );
    assert_eq!(flood_accepted + refused, 40);
    // Only what the limit let through became uplink records.
    let records = back.drain(Duration::from_millis(700)).await;
    assert_eq!(records.len(), flood_accepted, "{records:?}");

    // The connection is still open, and the bucket refills (5 per second).
    assert!(s.closed_within(Duration::from_millis(100)).await.is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.publish("roomSend/message", "{}").await, Ok(()));

    // Another classroom connection has its own bucket.
    let t2 = token(&k, OTHER, &["1"], 600, "t-2");
    let mut o = connect(broker.port, OTHER, with_token(&t2)).await.unwrap();
    let (accepted, refused, _) = o.publish_burst("roomSend/message", 5).await;
    assert_eq!((accepted, refused), (5, 0));

    // One notice line per run of refusals, not one per publish: a run ends only when a
    // publish is allowed again, so at most one run per publish allowed after the burst.
    let log = broker.log();
    let notices = log.matches("throttled publish").count();
    assert!(
        (1..=flood_accepted - 5 + 1).contains(&notices),
        "{notices} throttle lines:\n{log}"
    );
    assert!(log.contains("AWS IoT Core's limit"), "{log}");
}

#[tokio::test]
async fn the_backend_is_never_limited_and_zero_turns_the_limit_off() {
    let k = keys("k1", 1);
    let broker = Broker::start_with(Some(&k), "plugin_opt_publish_per_second 5\n");
    let mut back = backend(broker.port, "backend-1").await;
    let (accepted, refused, _) = back.publish_burst("room/message/1", 50).await;
    assert_eq!((accepted, refused), (50, 0));
    drop(broker);

    let broker = Broker::start_with(Some(&k), "plugin_opt_publish_per_second 0\n");
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    let (accepted, refused, _) = s.publish_burst("roomSend/message", 300).await;
    assert_eq!((accepted, refused), (300, 0));
    assert!(
        broker.log().contains("no publish limit"),
        "{}",
        broker.log()
    );
}

#[tokio::test]
async fn without_the_option_the_limit_is_iot_cores_100_per_second() {
    let k = keys("k1", 1);
    let broker = Broker::start(Some(&k));
    let t = token(&k, STUDENT, &["1"], 600, "t-1");
    let mut s = connect(broker.port, STUDENT, with_token(&t)).await.unwrap();
    let (accepted, refused, took) = s.publish_burst("roomSend/message", 400).await;
    assert!(accepted >= 100, "{accepted}");
    assert!(accepted <= at_most(100, took), "{accepted} in {took:?}");
    assert_eq!(accepted + refused, 400);
    assert!(
        broker
            .log()
            .contains("at most 100 publishes per second each"),
        "{}",
        broker.log()
    );
}

#[tokio::test]
async fn a_publish_limit_that_is_not_a_number_stops_the_broker_saying_why() {
    let mut broker = Broker::spawn("plugin_opt_publish_per_second lots\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.is_running() {
        assert!(Instant::now() < deadline, "mosquitto kept running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = broker.log();
    assert!(
        log.contains("plugin_opt_publish_per_second \"lots\" is not a whole number"),
        "{log}"
    );
}
