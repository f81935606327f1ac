//! A broker restart with classroom sessions live, in a real Mosquitto (Debian's 2.0.11) with the
//! plugin and `plugin_opt_sessions_file`: the next run publishes each lost session's AWS IoT
//! `disconnected` event (`SERVER_INITIATED_DISCONNECT`, the session's own identifier, its
//! `connected` version + 1) to the backend's persistent subscription, whether the broker was
//! stopped (SIGTERM) or killed (kill -9), and to a backend that has to subscribe anew because
//! the broker never saved its session.
//!
//! Each test starts its own broker (a free port, persistence and the sessions file in a
//! temporary directory, the plugin cargo built next to this binary) and restarts it on the same
//! port and directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure should panic

mod common;

use std::time::{Duration, Instant};

use common::{BACKEND_PASSWORD, Broker, now_s};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectProperties, Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use signin::{KeySet, LifetimeBounds, TokenRequest};
use tokio::sync::mpsc;
use tokio::time::timeout;

const STUDENT: &str = "GID_student@@@001";
const WAIT: Duration = Duration::from_secs(10);
/// What the next run logs for each session it ends.
const ENDED_LOG: &str = "was live when the broker stopped";

fn token(keys: &KeySet, client: &str, jti: &str) -> String {
    let req = TokenRequest {
        client_id: client.into(),
        read: vec!["room/message/1".into(), "room/system".into()],
        write: vec!["roomSend/message".into()],
        lifetime_secs: 600,
    };
    let bounds = LifetimeBounds {
        min_secs: 1,
        max_secs: 86_400,
    };
    signin::issue(&req, keys, bounds, now_s(), jti)
        .unwrap()
        .token
}

/// One MQTT 5 connection whose event loop runs in a task; it never reconnects.
struct Conn {
    client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<Publish>,
    subacks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects as `client_id` with `credentials`, with a persistent session (clean start off, one
/// hour session expiry) when `persistent`.
async fn connect(port: u16, client_id: &str, credentials: (&str, &str), persistent: bool) -> Conn {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_start(!persistent);
    if persistent {
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(3600);
        opts.set_connect_properties(props);
    }
    opts.set_credentials(credentials.0, credentials.1);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, eventloop.poll()).await {
            Err(_) => panic!("{client_id}: no CONNACK in time"),
            Ok(Err(e)) => panic!("{client_id}: {e}"),
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
        }
    }
    let (ptx, publishes) = mpsc::unbounded_channel();
    let (stx, subacks) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = ptx.send(p);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = stx.send(());
                }
                Ok(_) => {}
                // Polling again would reconnect: stop here.
                Err(_) => return,
            }
        }
    });
    Conn {
        client,
        publishes,
        subacks,
        task,
    }
}

/// The backend, with a persistent session (as the rules bridge).
async fn backend(port: u16) -> Conn {
    connect(port, "backend-events", ("backend", BACKEND_PASSWORD), true).await
}

impl Conn {
    async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        timeout(WAIT, self.subacks.recv())
            .await
            .expect("SUBACK in time")
            .expect("connection alive");
    }

    /// The bodies of the events received within `d` whose topic contains `part`.
    async fn events(&mut self, d: Duration, part: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let deadline = Instant::now() + d;
        while let Ok(Some(p)) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.publishes.recv(),
        )
        .await
        {
            if String::from_utf8_lossy(&p.topic).contains(part) {
                out.push(serde_json::from_slice(&p.payload).unwrap());
            }
        }
        out
    }

    /// The first event within `d` whose topic contains `part`.
    async fn next_event(&mut self, d: Duration, part: &str) -> Option<serde_json::Value> {
        let deadline = Instant::now() + d;
        while let Ok(Some(p)) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.publishes.recv(),
        )
        .await
        {
            if String::from_utf8_lossy(&p.topic).contains(part) {
                return Some(serde_json::from_slice(&p.payload).unwrap());
            }
        }
        None
    }
}

/// How the broker goes away.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Sigterm,
    Kill9,
}

/// A student live when the broker goes away (`stop`): the next run publishes its
/// `disconnected` event. With `resubscribe`, the backend subscribes anew after the restart
/// (its session was not restored); otherwise it only reconnects to its persistent session,
/// after the event went out. Returns the student's `connected` and restart `disconnected`
/// events, and the backend after the restart.
async fn restart_with_a_live_student(
    broker: &mut Broker,
    keys: &KeySet,
    stop: Stop,
    resubscribe: bool,
) -> (serde_json::Value, serde_json::Value, Conn) {
    let mut events = backend(broker.port).await;
    events.subscribe("$aws/events/presence/#").await;
    let _student = connect(
        broker.port,
        STUDENT,
        (STUDENT, &token(keys, STUDENT, "t1")),
        false,
    )
    .await;
    let connected = events
        .next_event(WAIT, "/connected/")
        .await
        .expect("connected event");
    let session = connected["sessionIdentifier"].as_str().unwrap().to_owned();
    assert!(
        broker.sessions_file().contains(&session),
        "the live session is recorded: {}",
        broker.sessions_file()
    );
    if matches!(stop, Stop::Kill9) && !resubscribe {
        // Let the broker's autosave (1 s) write the backend's subscription down.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    }
    drop(events);
    match stop {
        Stop::Sigterm => broker.stop(),
        Stop::Kill9 => broker.kill9(),
    }
    assert!(
        !broker.log().contains(ENDED_LOG),
        "nothing is ended before the restart"
    );
    broker.run();
    // The events go out on the first tick, before the backend is back.
    broker.wait_log(ENDED_LOG, 1, WAIT).await;
    let mut events = backend(broker.port).await;
    if resubscribe {
        events.subscribe("$aws/events/presence/#").await;
    }
    let gone = events
        .next_event(WAIT, "/disconnected/")
        .await
        .unwrap_or_else(|| panic!("no disconnected event after the restart:\n{}", broker.log()));
    assert!(
        !broker.sessions_file().contains(&session),
        "the ended session leaves the file: {}",
        broker.sessions_file()
    );
    (connected, gone, events)
}

fn assert_ends(connected: &serde_json::Value, gone: &serde_json::Value) {
    assert_eq!(gone["eventType"], "disconnected");
    assert_eq!(gone["clientId"], STUDENT);
    assert_eq!(gone["disconnectReason"], "SERVER_INITIATED_DISCONNECT");
    assert_eq!(gone["clientInitiatedDisconnect"], false);
    // The same session (presence closes that channel), the next version.
    assert_eq!(gone["sessionIdentifier"], connected["sessionIdentifier"]);
    assert_eq!(
        gone["versionNumber"].as_u64(),
        connected["versionNumber"].as_u64().map(|v| v + 1)
    );
    assert!(gone["timestamp"].as_u64() >= connected["timestamp"].as_u64());
    assert_eq!(
        gone["principalIdentifier"],
        connected["principalIdentifier"]
    );
}

#[tokio::test]
async fn a_session_live_at_a_sigterm_is_disconnected_by_the_next_run() {
    let keys = KeySet::new("k1", vec![1; 32]).unwrap();
    let mut broker = Broker::start_with(Some(&keys), "");
    let (connected, gone, mut events) =
        restart_with_a_live_student(&mut broker, &keys, Stop::Sigterm, false).await;
    assert_ends(&connected, &gone);

    // The student comes back: a new session, with a version after the ended one's, and no
    // second event for the old session.
    let _student = connect(
        broker.port,
        STUDENT,
        (STUDENT, &token(&keys, STUDENT, "t2")),
        false,
    )
    .await;
    let again = events
        .next_event(WAIT, "/connected/")
        .await
        .expect("connected event of the reconnect");
    assert_ne!(again["sessionIdentifier"], connected["sessionIdentifier"]);
    assert!(again["versionNumber"].as_u64() > gone["versionNumber"].as_u64());
    assert_eq!(
        events
            .events(Duration::from_millis(1_500), "/disconnected/")
            .await,
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(broker.log().matches(ENDED_LOG).count(), 1);
}

#[tokio::test]
async fn a_session_live_at_a_kill_9_is_disconnected_by_the_next_run() {
    let keys = KeySet::new("k1", vec![2; 32]).unwrap();
    // Autosave every second: the backend's persistent subscription survives the kill.
    let mut broker = Broker::start_with(Some(&keys), "autosave_interval 1\n");
    let (connected, gone, _events) =
        restart_with_a_live_student(&mut broker, &keys, Stop::Kill9, false).await;
    assert_ends(&connected, &gone);
}

#[tokio::test]
async fn after_a_kill_9_before_any_autosave_a_backend_that_subscribes_anew_gets_the_events() {
    let keys = KeySet::new("k1", vec![3; 32]).unwrap();
    // No autosave: the kill loses the backend's session, which it has to subscribe anew.
    let mut broker = Broker::start_with(Some(&keys), "");
    let (connected, gone, mut events) =
        restart_with_a_live_student(&mut broker, &keys, Stop::Kill9, true).await;
    assert_ends(&connected, &gone);
    assert!(broker.log().contains("restart event(s) again"));
    // Once per SUBSCRIBE: nothing more without one.
    assert_eq!(
        events
            .events(Duration::from_millis(1_500), "/disconnected/")
            .await,
        Vec::<serde_json::Value>::new()
    );
}
