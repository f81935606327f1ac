//! The MQTT publisher over `rumqttc` (MQTT 5): one connection per container, reused across
//! invocations and re-established when broken.
//!
//! `AsyncClient::publish` only queues a request, and `Ok` does not mean the broker has the
//! message. So a publish here resolves only when its acknowledgement arrives: PUBACK for
//! QoS 1, PUBCOMP for QoS 2, the write for QoS 0. A PUBACK with a failure reason code (MQTT 5
//! reports "not authorized", for example) is a failure.
//!
//! How acknowledgements are matched to publishes: the event loop reports
//! `Outgoing::Publish(pkid)` for each publish in the order the requests were queued (it stops
//! reading requests while a packet ID collides, so the order holds), so waiters are kept in a
//! FIFO until their packet ID is known, then in a map until the acknowledgement arrives.
//!
//! When the connection breaks, every publish not yet acknowledged fails (retryable) and the
//! event loop is dropped with everything it would have retransmitted: a reconnect never
//! turns a lost publish into a "delivered" one, and the next publish opens a new connection.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use mapping::{Publish, Qos};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    Packet, PubAckReason, PubCompReason, PubRecReason, PublishProperties,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{NetworkOptions, Outgoing, TlsConfiguration, Transport};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// User property carrying the message ID (§3: clients de-duplicate with it).
pub const MESSAGE_ID_PROPERTY: &str = "mqttMessageId";
/// User property carrying the timestamp in ms (§3: clients check timeliness with it).
pub const TIMESTAMP_PROPERTY: &str = "timestamp";

/// Why a publish did not get through. All are retryable except `Refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The connection broke (or could not be made) before the acknowledgement arrived.
    #[error("MQTT connection lost before the broker acknowledged: {0}")]
    ConnectionLost(String),
    /// No acknowledgement within the publish timeout; the connection is reset.
    #[error("no acknowledgement from the broker within {0:?}")]
    Timeout(Duration),
    /// The broker answered with a failure reason code (e.g. not authorized).
    #[error("the broker refused the publish: {0}")]
    Refused(String),
}

impl PublishError {
    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, Self::Refused(_))
    }
}

/// TLS material for `mqtts://` (AWS IoT Core uses X.509 client certificates).
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// CA certificate(s), PEM; the platform roots when absent.
    pub ca_pem: Option<String>,
    /// Client certificate, PEM.
    pub cert_pem: Option<String>,
    /// Client private key, PEM.
    pub key_pem: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("cert_pem", &self.cert_pem.is_some())
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, for `mqtts://`.
    pub tls: Option<TlsSettings>,
    /// Client ID prefix; a random suffix makes each container's ID unique (two containers
    /// with one client ID would take each other's connection over).
    pub client_id_prefix: String,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// How long a publish waits for its acknowledgement.
    pub publish_timeout: Duration,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("client_id_prefix", &self.client_id_prefix)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

/// Why an MQTT URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; expected mqtt://host:port or mqtts://host:port")]
pub struct UrlError(String);

/// Parses `mqtt://host[:port]` (default 1883) or `mqtts://host[:port]` (default 8883) into
/// host, port and whether TLS is wanted.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), UrlError> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(UrlError(format!(
            "{url:?} has no mqtt:// or mqtts:// scheme"
        )));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| UrlError(format!("port {p:?} is not a number from 1 to 65535")))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() || host.contains('/') {
        return Err(UrlError(format!("{url:?} has no valid host")));
    }
    Ok((host.to_owned(), port, tls))
}

type Waiter = oneshot::Sender<Result<(), PublishError>>;

/// Publishes waiting for their packet ID (FIFO) and for their acknowledgement (by ID).
#[derive(Default)]
struct Tracker {
    queued: VecDeque<Waiter>,
    inflight: HashMap<u16, Waiter>,
    /// Set when the connection is gone: new waiters fail at once.
    closed: Option<String>,
    /// When the broker was last heard from (any packet), or the connection opened.
    last_heard: Option<Heard>,
}

/// A moment on both clocks: the monotonic one may stand still while a whole micro-VM is
/// paused, the wall clock is corrected after it resumes; the longer silence counts.
#[derive(Debug, Clone, Copy)]
struct Heard {
    mono: Instant,
    wall: SystemTime,
}

impl Heard {
    fn now() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.mono
            .elapsed()
            .max(self.wall.elapsed().unwrap_or(Duration::ZERO))
    }
}

impl Tracker {
    fn fail_all(&mut self, reason: &str) {
        self.closed = Some(reason.to_owned());
        let err = PublishError::ConnectionLost(reason.to_owned());
        for w in self
            .queued
            .drain(..)
            .chain(self.inflight.drain().map(|(_, w)| w))
        {
            let _ = w.send(Err(err.clone()));
        }
    }

    fn resolve(&mut self, pkid: u16, result: Result<(), PublishError>) {
        if let Some(w) = self.inflight.remove(&pkid) {
            let _ = w.send(result);
        }
    }
}

fn lock(t: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    // A poisoned tracker only means another task panicked mid-update; its data is still a
    // set of waiters, which is safe to use.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

struct Connection {
    client: AsyncClient,
    tracker: Arc<Mutex<Tracker>>,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn is_alive(&self) -> bool {
        lock(&self.tracker).closed.is_none() && !self.task.is_finished()
    }

    /// How long the broker has been silent.
    fn silence(&self) -> Duration {
        lock(&self.tracker)
            .last_heard
            .map_or(Duration::ZERO, |h| h.elapsed())
    }

    fn close(&self, reason: &str) {
        self.task.abort();
        lock(&self.tracker).fail_all(reason);
    }
}

/// The publisher: cheap to share (`&self` methods), one connection at a time.
pub struct MqttPublisher {
    settings: MqttSettings,
    conn: tokio::sync::Mutex<Option<Connection>>,
    order: tokio::sync::Mutex<()>,
    opened: AtomicU64,
}

fn to_qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl MqttPublisher {
    /// A publisher; the connection opens with the first publish.
    pub fn new(settings: MqttSettings) -> Self {
        Self {
            settings,
            conn: tokio::sync::Mutex::new(None),
            order: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
        }
    }

    /// How many connections this publisher has opened (diagnostics and tests).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A connection the broker has been silent on for longer than this is replaced before
    /// publishing: 1.5 x keep-alive, after which the broker has dropped a silent client. A
    /// live connection hears a PINGRESP at least every keep-alive; a Lambda container frozen
    /// between invocations hears nothing, and its first publish after thawing would otherwise
    /// go out on a dead socket and fail the batch after the publish timeout.
    pub fn idle_limit(&self) -> Duration {
        self.settings.keep_alive * 3 / 2
    }

    fn options(&self) -> MqttOptions {
        let s = &self.settings;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut opts = MqttOptions::new(
            format!("{}{}", s.client_id_prefix, &suffix[..16]),
            &s.host,
            s.port,
        );
        opts.set_keep_alive(s.keep_alive);
        opts.set_clean_start(true);
        opts.set_connection_timeout(s.publish_timeout.as_secs().max(1));
        // Small publishes must not wait for Nagle + delayed ACK (~40 ms per round trip).
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        if let Some((user, pass)) = &s.credentials {
            opts.set_credentials(user, pass);
        }
        if let Some(tls) = &s.tls {
            let transport = match (&tls.ca_pem, &tls.cert_pem, &tls.key_pem) {
                (Some(ca), cert, key) => Transport::Tls(TlsConfiguration::Simple {
                    ca: ca.clone().into_bytes(),
                    alpn: None,
                    client_auth: cert
                        .as_ref()
                        .zip(key.as_ref())
                        .map(|(c, k)| (c.clone().into_bytes(), k.clone().into_bytes())),
                }),
                (None, _, _) => Transport::Tls(TlsConfiguration::default()),
            };
            opts.set_transport(transport);
        }
        opts
    }

    /// The live connection, opening a new one when there is none or the old one broke.
    async fn connection(&self) -> (AsyncClient, Arc<Mutex<Tracker>>) {
        let mut guard = self.conn.lock().await;
        let limit = self.idle_limit();
        if let Some(c) = guard.as_ref().filter(|c| c.is_alive()) {
            let silence = c.silence();
            if silence <= limit {
                return (c.client.clone(), c.tracker.clone());
            }
            info!(
                silent_ms = u64::try_from(silence.as_millis()).unwrap_or(u64::MAX),
                "the broker has been silent for longer than 1.5 x keep-alive (a frozen container?); reconnecting before publishing"
            );
        }
        if let Some(old) = guard.take() {
            old.close("connection replaced");
        }
        let opts = self.options();
        info!(client_id = opts.client_id(), host = %self.settings.host, port = self.settings.port, "opening MQTT connection");
        let (client, eventloop) = AsyncClient::new(opts, 100);
        let tracker = Arc::new(Mutex::new(Tracker {
            last_heard: Some(Heard::now()),
            ..Tracker::default()
        }));
        self.opened.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(drive(eventloop, tracker.clone()));
        let conn = Connection {
            client: client.clone(),
            tracker: tracker.clone(),
            task,
        };
        *guard = Some(conn);
        (client, tracker)
    }

    /// Drops the connection so the next publish opens a new one.
    async fn reset(&self, reason: &str) {
        if let Some(c) = self.conn.lock().await.take() {
            warn!(reason, "resetting MQTT connection");
            c.close(reason);
        }
    }

    /// Publishes one message and waits for the broker's acknowledgement.
    pub async fn publish(&self, p: &Publish) -> Result<(), PublishError> {
        self.publish_all(&[p])
            .await
            .pop()
            .unwrap_or_else(|| Err(PublishError::ConnectionLost("no result".to_owned())))
    }

    /// Publishes many messages pipelined on the one connection and waits for every
    /// acknowledgement; one result per message, in order. The publish timeout runs from the
    /// moment the last request was queued.
    pub async fn publish_all(&self, publishes: &[&Publish]) -> Vec<Result<(), PublishError>> {
        let (client, tracker) = self.connection().await;
        let mut receivers = Vec::with_capacity(publishes.len());
        {
            // Queue each waiter, then its request, all under `order`, so the FIFO of waiters
            // matches the order the event loop sees requests in. The tracker lock itself is
            // held only briefly, never across an await, so the event loop is never blocked.
            let _order = self.order.lock().await;
            for p in publishes {
                let (tx, rx) = oneshot::channel();
                {
                    let mut t = lock(&tracker);
                    if let Some(reason) = &t.closed {
                        let _ = tx.send(Err(PublishError::ConnectionLost(reason.clone())));
                        receivers.push(rx);
                        continue;
                    }
                    t.queued.push_back(tx);
                }
                receivers.push(rx);
                let properties = PublishProperties {
                    user_properties: vec![
                        (MESSAGE_ID_PROPERTY.to_owned(), p.message_id.clone()),
                        (TIMESTAMP_PROPERTY.to_owned(), p.timestamp.to_string()),
                    ],
                    payload_format_indicator: std::str::from_utf8(&p.payload).ok().map(|_| 1),
                    ..Default::default()
                };
                if let Err(e) = client
                    .publish_with_properties(
                        p.topic.to_string(),
                        to_qos(p.qos),
                        false,
                        p.payload.clone(),
                        properties,
                    )
                    .await
                {
                    // The request never reached the event loop (channel closed, or a topic
                    // rumqttc refuses) but its waiter is queued: the FIFO no longer matches, so
                    // drop the connection, which fails every waiter. Never mis-attribute a PUBACK.
                    self.reset(&format!("request not queued: {e}")).await;
                    break;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.settings.publish_timeout;
        let mut results = Vec::with_capacity(publishes.len());
        let mut timed_out = false;
        for rx in receivers {
            results.push(match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(PublishError::ConnectionLost(
                    "connection task ended".to_owned(),
                )),
                Err(_) => {
                    timed_out = true;
                    Err(PublishError::Timeout(self.settings.publish_timeout))
                }
            });
        }
        // Publishes that were never queued (after a failed request) fail too.
        while results.len() < publishes.len() {
            results.push(Err(PublishError::ConnectionLost(
                "request not queued".to_owned(),
            )));
        }
        if timed_out {
            self.reset("acknowledgements timed out").await;
        }
        results
    }

    /// Disconnects cleanly (used on shutdown of long-running hosts).
    pub async fn disconnect(&self) {
        if let Some(c) = self.conn.lock().await.take() {
            let _ = c.client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.close("disconnected");
        }
    }
}

/// Polls the event loop, matching acknowledgements to waiters, until the connection breaks.
async fn drive(mut eventloop: EventLoop, tracker: Arc<Mutex<Tracker>>) {
    loop {
        let event = eventloop.poll().await;
        if let Ok(Event::Incoming(_)) = &event {
            lock(&tracker).last_heard = Some(Heard::now());
        }
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut t = lock(&tracker);
                if let Some(w) = t.queued.pop_front() {
                    if pkid == 0 {
                        // QoS 0: written to the socket is all the delivery there is.
                        let _ = w.send(Ok(()));
                    } else {
                        t.inflight.insert(pkid, w);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let result = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                    other => Err(PublishError::Refused(format!("{other:?}"))),
                };
                lock(&tracker).resolve(ack.pkid, result);
            }
            Ok(Event::Incoming(Packet::PubRec(rec))) => match rec.reason {
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers => {}
                other => lock(&tracker)
                    .resolve(rec.pkid, Err(PublishError::Refused(format!("{other:?}")))),
            },
            Ok(Event::Incoming(Packet::PubComp(comp))) => {
                let result = match comp.reason {
                    PubCompReason::Success => Ok(()),
                    other => Err(PublishError::Refused(format!("{other:?}"))),
                };
                lock(&tracker).resolve(comp.pkid, result);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => debug!("MQTT connected"),
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                let reason = format!("broker sent DISCONNECT: {:?}", d.reason_code);
                warn!(%reason, "MQTT connection closed by the broker");
                lock(&tracker).fail_all(&reason);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let reason = e.to_string();
                warn!(error = %reason, "MQTT connection broke; unacknowledged publishes fail");
                lock(&tracker).fail_all(&reason);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            parse_url("mqtts://x-ats.iot.eu-west-1.amazonaws.com")
                .unwrap()
                .1,
            8883
        );
        assert_eq!(
            parse_url("mqtt://broker/").unwrap(),
            ("broker".into(), 1883, false)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
    }

    #[test]
    fn a_closed_tracker_fails_every_waiter() {
        let mut t = Tracker::default();
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        t.queued.push_back(a);
        t.inflight.insert(7, b);
        t.fail_all("gone");
        assert!(matches!(
            ra.try_recv(),
            Ok(Err(PublishError::ConnectionLost(_)))
        ));
        assert!(matches!(
            rb.try_recv(),
            Ok(Err(PublishError::ConnectionLost(_)))
        ));
        assert!(t.closed.is_some());
    }
}
