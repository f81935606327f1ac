//! The connection lifecycle and the event loop: one `rumqttc` connection at a time, opened
//! with the first publish, replaced when broken or silent too long, and a task that polls
//! the event loop and feeds the [`Tracker`] what happens on the wire.
//!
//! When the connection breaks, every publish not yet acknowledged fails (retryable) and the
//! event loop is dropped with everything it would have retransmitted: a reconnect never
//! turns a lost publish into a "delivered" one, and the next publish opens a new connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mapping::{Publish, Qos};
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::tracker::{AckOutcome, Moment, Resolved, Tracker, acknowledgement};
use super::{MESSAGE_ID_PROPERTY, MqttSettings, PublishError, TIMESTAMP_PROPERTY};

/// Where a publish's result goes.
type Waiter = oneshot::Sender<Result<(), PublishError>>;

/// One connection's tracker, shared by the publishers and the event-loop task.
type Shared = Arc<Mutex<Tracker<Waiter>>>;

fn lock(t: &Mutex<Tracker<Waiter>>) -> MutexGuard<'_, Tracker<Waiter>> {
    // A poisoned tracker only means another task panicked mid-update; its data is still a
    // set of waiters, which is safe to use.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tells each waiter its result (a waiter that stopped listening has timed out: nothing to do).
fn tell(resolved: Vec<Resolved<Waiter>>) {
    for (waiter, result) in resolved {
        let _ = waiter.send(result);
    }
}

struct Connection {
    client: AsyncClient,
    tracker: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn is_alive(&self) -> bool {
        lock(&self.tracker).closed().is_none() && !self.task.is_finished()
    }

    /// How long the broker has been silent.
    fn silence(&self) -> Duration {
        lock(&self.tracker).silence(Moment::now())
    }

    fn close(&self, reason: &str) {
        self.task.abort();
        let failed = lock(&self.tracker).close(reason);
        tell(failed);
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

fn properties(p: &Publish) -> PublishProperties {
    PublishProperties {
        user_properties: vec![
            (MESSAGE_ID_PROPERTY.to_owned(), p.message_id.clone()),
            (TIMESTAMP_PROPERTY.to_owned(), p.timestamp.to_string()),
        ],
        payload_format_indicator: std::str::from_utf8(&p.payload).ok().map(|_| 1),
        ..Default::default()
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
        self.settings.idle_limit()
    }

    /// The live connection, opening a new one when there is none or the old one broke.
    async fn connection(&self) -> (AsyncClient, Shared) {
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
        let opts = self.settings.options();
        info!(client_id = opts.client_id(), host = %self.settings.host, port = self.settings.port, "opening MQTT connection");
        let (client, eventloop) = AsyncClient::new(opts, 100);
        let tracker = Arc::new(Mutex::new(Tracker::new(Moment::now())));
        self.opened.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(drive(eventloop, tracker.clone()));
        *guard = Some(Connection {
            client: client.clone(),
            tracker: tracker.clone(),
            task,
        });
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
                receivers.push(rx);
                let queued = lock(&tracker).queue(tx, Moment::now());
                if let Err(refused) = queued {
                    tell(vec![refused]);
                    continue;
                }
                if let Err(e) = client
                    .publish_with_properties(
                        p.topic.to_string(),
                        to_qos(p.qos),
                        false,
                        p.payload.clone(),
                        properties(p),
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
        let timeout = self.settings.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
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
                    Err(PublishError::Timeout(timeout))
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
            // Their waiters stopped listening; the tracker marks them expired, so an
            // acknowledgement arriving now is known to be late.
            let expired = lock(&tracker).expire(Moment::now(), timeout);
            tell(expired);
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

/// Polls the event loop, feeding the tracker, until the connection breaks.
async fn drive(mut eventloop: EventLoop, tracker: Shared) {
    loop {
        let event = eventloop.poll().await;
        let now = Moment::now();
        match event {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let resolved = lock(&tracker).sent(pkid);
                tell(resolved);
            }
            Ok(Event::Incoming(packet)) => {
                let mut t = lock(&tracker);
                t.heard(now);
                match &packet {
                    Packet::ConnAck(_) => debug!("MQTT connected"),
                    Packet::Disconnect(d) => {
                        let reason = format!("broker sent DISCONNECT: {:?}", d.reason_code);
                        warn!(%reason, "MQTT connection closed by the broker");
                        tell(t.close(&reason));
                        return;
                    }
                    _ => {
                        if let Some((pkid, result)) = acknowledgement(&packet) {
                            match t.acknowledged(pkid, result) {
                                AckOutcome::Resolved(r) => tell(vec![r]),
                                AckOutcome::Late => debug!(
                                    pkid,
                                    late_acks = t.counters().late_acks,
                                    "acknowledgement after its publish timed out; ignored"
                                ),
                                AckOutcome::Unknown => warn!(
                                    pkid,
                                    unknown_acks = t.counters().unknown_acks,
                                    "acknowledgement for a packet ID no publish is waiting on; ignored"
                                ),
                            }
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let reason = explain(&e.to_string());
                warn!(error = %reason, "MQTT connection broke; unacknowledged publishes fail");
                let failed = lock(&tracker).close(&reason);
                tell(failed);
                return;
            }
        }
    }
}

/// The connection error, with what to check when it is a TLS refusal: rumqttc's text names
/// the TLS alert or the verification error but not which side refused or what to fix.
fn explain(reason: &str) -> String {
    let hint = if reason.contains("received fatal alert") {
        // The broker's alert after our certificate: with TLS 1.3 the client finishes its half
        // of the handshake first, so the refusal arrives as an alert on the first read.
        Some(
            "the broker refused the TLS handshake, usually over our client certificate, which is expired, not yet valid or not from a CA it trusts: check certPem/keyPem in the MQTT_SECRET_ID secret",
        )
    } else if reason.contains("invalid peer certificate") {
        Some(
            "the broker's certificate was not accepted: check MQTT_URL's host, and caPem in the MQTT_SECRET_ID secret or the platform roots (SSL_CERT_FILE)",
        )
    } else {
        None
    };
    match hint {
        Some(hint) => format!("{reason}; {hint}"),
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn tls_refusals_say_what_to_check_and_other_errors_stay_as_they_are() {
        let alert = explain("IO: received fatal alert: CertificateExpired");
        assert!(
            alert.starts_with("IO: received fatal alert: CertificateExpired; ")
                && alert.contains("client certificate"),
            "{alert}"
        );
        let name = explain("TLS: I/O: invalid peer certificate: certificate not valid for name");
        assert!(name.contains("MQTT_URL's host"), "{name}");
        assert_eq!(explain("connection refused"), "connection refused");
    }
}
