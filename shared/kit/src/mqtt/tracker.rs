//! The PUBACK tracker: a pure state machine that matches the broker's acknowledgements to
//! the publishes waiting for them. No IO and no clock: every moment is passed in, so each
//! transition is tested without a broker.
//!
//! A publish goes through these states:
//! 1. **queued** ([`Tracker::queue`]): its request is handed to `rumqttc`, which has not
//!    written it yet, so it has no packet ID. Queued publishes are a FIFO: the event loop
//!    reports `Outgoing::Publish(pkid)` in the order the requests were queued (it stops
//!    reading requests while a packet ID collides, so the order holds).
//! 2. **sent** ([`Tracker::sent`]) with its packet ID: the front of the FIFO gets it. Packet
//!    ID 0 is QoS 0, whose delivery is the write itself: done, successfully.
//! 3. **acknowledged** ([`Tracker::acknowledged`]) with the reason code of its PUBACK (QoS 1),
//!    or PUBCOMP (QoS 2; a PUBREC with a failure code ends it too): done, successfully or
//!    refused. See [`acknowledgement`] for the reason codes.
//! 4. **connection closed** ([`Tracker::close`]): every publish not yet acknowledged fails
//!    (retryable: the broker may or may not have it), and so does every later one.
//!
//! A publish that waits longer than the publish timeout expires ([`Tracker::expire`]); its
//! acknowledgement may still come and is then *late*: ignored and counted. An
//! acknowledgement for a packet ID the tracker never saw is *unknown*: ignored and counted.
//!
//! MQTT 3.1.1 has no reason codes in PUBACK (`rumqttc`'s 3.1.1 `PubAck` carries only the
//! packet ID): a 3.1.1 broker refuses a publish by closing the connection, which the tracker
//! sees as a close. The publisher speaks MQTT 5, whose refusals are reason codes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PubCompReason, PubRecReason};

use super::PublishError;

/// A moment on both clocks: the monotonic one may stand still while a whole micro-VM is
/// paused, the wall clock is corrected after it resumes; the longer interval counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moment {
    mono: Instant,
    wall: SystemTime,
}

impl Moment {
    /// Now, read from both clocks (the shell's one clock read; the tracker never calls it).
    pub(crate) fn now() -> Self {
        Self::new(Instant::now(), SystemTime::now())
    }

    /// A moment from its two readings.
    pub(crate) fn new(mono: Instant, wall: SystemTime) -> Self {
        Self { mono, wall }
    }

    /// How long after `earlier` this is: the longer of the two clocks' intervals, zero when
    /// a clock went backwards.
    pub(crate) fn since(self, earlier: Self) -> Duration {
        let mono = self.mono.saturating_duration_since(earlier.mono);
        let wall = self
            .wall
            .duration_since(earlier.wall)
            .unwrap_or(Duration::ZERO);
        mono.max(wall)
    }
}

/// A waiter and its publish's result.
pub(crate) type Resolved<W> = (W, Result<(), PublishError>);

/// What became of an acknowledgement.
#[derive(Debug)]
pub(crate) enum AckOutcome<W> {
    /// It completed the publish sent with its packet ID.
    Resolved(Resolved<W>),
    /// Its publish had already expired (timed out): ignored.
    Late,
    /// No publish was sent with its packet ID: ignored.
    Unknown,
}

/// Anomalies seen, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Acknowledgements of publishes that had already expired.
    pub(crate) late_acks: u64,
    /// Acknowledgements for packet IDs never sent (or already acknowledged).
    pub(crate) unknown_acks: u64,
    /// Sends reported while no publish was queued.
    pub(crate) unexpected_sends: u64,
}

/// A queued publish; `waiter` is `None` once it expired, but its place in the FIFO stays so
/// the next packet ID still goes to the right publish.
#[derive(Debug)]
struct Queued<W> {
    waiter: Option<W>,
    at: Moment,
}

/// A sent publish, waiting for its acknowledgement.
#[derive(Debug)]
struct Inflight<W> {
    waiter: W,
    queued_at: Moment,
}

/// The tracker of one connection; `W` is what is told the result (a channel's sender in the
/// publisher, a label in tests).
#[derive(Debug)]
pub(crate) struct Tracker<W> {
    queued: VecDeque<Queued<W>>,
    inflight: HashMap<u16, Inflight<W>>,
    /// Packet IDs of sent publishes that expired: their acknowledgement would be late.
    expired: HashSet<u16>,
    /// Why the connection closed, once it did: new publishes fail at once.
    closed: Option<String>,
    /// When the broker was last heard from (any packet), or the connection opened.
    last_heard: Moment,
    counters: Counters,
}

impl<W> Tracker<W> {
    /// The tracker of a connection opened at `now` (which counts as hearing the broker).
    pub(crate) fn new(now: Moment) -> Self {
        Self {
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            expired: HashSet::new(),
            closed: None,
            last_heard: now,
            counters: Counters::default(),
        }
    }

    /// A publish whose request is about to be handed to the event loop. On a closed
    /// connection it fails at once: the waiter comes back with its error.
    pub(crate) fn queue(&mut self, waiter: W, now: Moment) -> Result<(), Resolved<W>> {
        if let Some(reason) = &self.closed {
            return Err((waiter, Err(PublishError::ConnectionLost(reason.clone()))));
        }
        self.queued.push_back(Queued {
            waiter: Some(waiter),
            at: now,
        });
        Ok(())
    }

    /// The event loop wrote the next queued publish with packet ID `pkid` (0 for QoS 0).
    /// Returns what this resolved: the QoS 0 publish itself, or an earlier publish still
    /// waiting on a reused packet ID (which cannot happen with `rumqttc`, and fails it
    /// rather than mis-attributing an acknowledgement).
    pub(crate) fn sent(&mut self, pkid: u16) -> Vec<Resolved<W>> {
        let Some(front) = self.queued.pop_front() else {
            self.counters.unexpected_sends += 1;
            return Vec::new();
        };
        let Some(waiter) = front.waiter else {
            // It expired while queued: an acknowledgement for it will be late.
            if pkid != 0 {
                self.expired.insert(pkid);
            }
            return Vec::new();
        };
        if pkid == 0 {
            // QoS 0: written to the socket is all the delivery there is.
            return vec![(waiter, Ok(()))];
        }
        self.expired.remove(&pkid);
        let replaced = self.inflight.insert(
            pkid,
            Inflight {
                waiter,
                queued_at: front.at,
            },
        );
        replaced
            .map(|old| {
                (
                    old.waiter,
                    Err(PublishError::ConnectionLost(format!(
                        "packet ID {pkid} reused before its acknowledgement"
                    ))),
                )
            })
            .into_iter()
            .collect()
    }

    /// The broker acknowledged packet ID `pkid` with `result` (see [`acknowledgement`]).
    pub(crate) fn acknowledged(
        &mut self,
        pkid: u16,
        result: Result<(), PublishError>,
    ) -> AckOutcome<W> {
        if let Some(p) = self.inflight.remove(&pkid) {
            AckOutcome::Resolved((p.waiter, result))
        } else if self.expired.remove(&pkid) {
            self.counters.late_acks += 1;
            AckOutcome::Late
        } else {
            self.counters.unknown_acks += 1;
            AckOutcome::Unknown
        }
    }

    /// The broker was heard from (any packet) at `now`.
    pub(crate) fn heard(&mut self, now: Moment) {
        self.last_heard = now;
    }

    /// How long the broker has been silent at `now`.
    pub(crate) fn silence(&self, now: Moment) -> Duration {
        now.since(self.last_heard)
    }

    /// Fails, with [`PublishError::Timeout`], every publish queued at least `timeout` before
    /// `now` and not yet acknowledged.
    pub(crate) fn expire(&mut self, now: Moment, timeout: Duration) -> Vec<Resolved<W>> {
        let due = |at: Moment| now.since(at) >= timeout;
        let mut resolved = Vec::new();
        for q in &mut self.queued {
            if due(q.at)
                && let Some(w) = q.waiter.take()
            {
                resolved.push((w, Err(PublishError::Timeout(timeout))));
            }
        }
        let mut expired: Vec<u16> = self
            .inflight
            .iter()
            .filter(|(_, p)| due(p.queued_at))
            .map(|(&pkid, _)| pkid)
            .collect();
        // In packet ID order, so the results come out in a stable order.
        expired.sort_unstable();
        for pkid in expired {
            if let Some(p) = self.inflight.remove(&pkid) {
                self.expired.insert(pkid);
                resolved.push((p.waiter, Err(PublishError::Timeout(timeout))));
            }
        }
        resolved
    }

    /// The connection is gone: every publish not yet acknowledged fails (retryable), queued
    /// ones first in queue order, then the sent ones, and so does every later [`queue`](Self::queue).
    pub(crate) fn close(&mut self, reason: &str) -> Vec<Resolved<W>> {
        self.closed = Some(reason.to_owned());
        let err = PublishError::ConnectionLost(reason.to_owned());
        let mut inflight: Vec<(u16, Inflight<W>)> = self.inflight.drain().collect();
        inflight.sort_unstable_by_key(|(pkid, _)| *pkid);
        self.expired.clear();
        self.queued
            .drain(..)
            .filter_map(|q| q.waiter)
            .chain(inflight.into_iter().map(|(_, p)| p.waiter))
            .map(|w| (w, Err(err.clone())))
            .collect()
    }

    /// Why the connection closed, if it did.
    pub(crate) fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Publishes not yet done (queued or sent).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.queued.iter().filter(|q| q.waiter.is_some()).count() + self.inflight.len()
    }

    /// The anomalies seen so far.
    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }
}

fn refused(reason: impl std::fmt::Debug) -> Result<(), PublishError> {
    Err(PublishError::Refused(format!("{reason:?}")))
}

/// The acknowledgement an incoming MQTT 5 packet carries, as `(packet ID, result)`:
/// - PUBACK (QoS 1): `Success` and `NoMatchingSubscribers` are a success; every other reason
///   code (`NotAuthorized`, `TopicNameInvalid`, `QuotaExceeded`...) a refusal.
/// - PUBREC (QoS 2, first half): a failure reason code is a refusal (the exchange ends);
///   a success is not an acknowledgement yet (`None`): PUBCOMP follows.
/// - PUBCOMP (QoS 2, second half): `Success`, or `PacketIdentifierNotFound`, a refusal.
/// - Any other packet: `None`.
pub(crate) fn acknowledgement(packet: &Packet) -> Option<(u16, Result<(), PublishError>)> {
    match packet {
        Packet::PubAck(ack) => Some((
            ack.pkid,
            match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                other => refused(other),
            },
        )),
        Packet::PubRec(rec) => match rec.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => None,
            other => Some((rec.pkid, refused(other))),
        },
        Packet::PubComp(comp) => Some((
            comp.pkid,
            match comp.reason {
                PubCompReason::Success => Ok(()),
                other => refused(other),
            },
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::v5::mqttbytes::v5::{PubAck, PubComp, PubRec};

    use super::*;

    /// Moments `ms` milliseconds after a fixed origin, on both clocks.
    struct Clock {
        mono: Instant,
        wall: SystemTime,
    }

    impl Clock {
        fn new() -> Self {
            Self {
                mono: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            }
        }

        fn at(&self, ms: u64) -> Moment {
            let d = Duration::from_millis(ms);
            Moment::new(self.mono + d, self.wall + d)
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn ok(resolved: Vec<Resolved<&'static str>>) -> Vec<(&'static str, bool)> {
        resolved.into_iter().map(|(w, r)| (w, r.is_ok())).collect()
    }

    fn resolved(outcome: AckOutcome<&'static str>) -> (&'static str, Result<(), PublishError>) {
        match outcome {
            AckOutcome::Resolved(r) => r,
            other => panic!("expected a resolved publish, got {other:?}"),
        }
    }

    /// A tracker with `names` queued at 0 ms and sent with packet IDs `pkids`.
    fn sent(clock: &Clock, names: &[&'static str], pkids: &[u16]) -> Tracker<&'static str> {
        let mut t = Tracker::new(clock.at(0));
        for n in names {
            t.queue(*n, clock.at(0)).unwrap();
        }
        for &pkid in pkids {
            assert!(t.sent(pkid).is_empty());
        }
        t
    }

    fn puback(pkid: u16, reason: PubAckReason) -> Packet {
        Packet::PubAck(PubAck {
            pkid,
            reason,
            properties: None,
        })
    }

    #[test]
    fn packet_ids_go_to_publishes_in_queue_order_and_acks_in_order_resolve_them() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a", "b", "c"], &[1, 2, 3]);
        assert_eq!(t.pending(), 3);
        for (pkid, name) in [(1, "a"), (2, "b"), (3, "c")] {
            assert_eq!(resolved(t.acknowledged(pkid, Ok(()))).0, name);
        }
        assert_eq!(t.pending(), 0);
        assert_eq!(t.counters(), Counters::default());
    }

    #[test]
    fn acks_out_of_order_resolve_the_publish_with_their_packet_id() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a", "b", "c"], &[7, 8, 9]);
        let (w, r) = resolved(t.acknowledged(9, Ok(())));
        assert_eq!((w, r.is_ok()), ("c", true));
        let (w, r) = resolved(t.acknowledged(7, refused(PubAckReason::NotAuthorized)));
        assert_eq!(w, "a");
        assert_eq!(r, Err(PublishError::Refused("NotAuthorized".into())));
        assert_eq!(resolved(t.acknowledged(8, Ok(()))).0, "b");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_publish_queued_while_others_are_in_flight_gets_the_next_packet_id() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a"], &[1]);
        t.queue("b", clock.at(1)).unwrap();
        assert_eq!(resolved(t.acknowledged(1, Ok(()))).0, "a");
        assert!(t.sent(2).is_empty());
        assert_eq!(resolved(t.acknowledged(2, Ok(()))).0, "b");
    }

    #[test]
    fn qos0_is_done_when_sent_and_keeps_the_fifo_in_step() {
        let clock = Clock::new();
        let mut t = Tracker::new(clock.at(0));
        for n in ["q0", "q1", "q0-again"] {
            t.queue(n, clock.at(0)).unwrap();
        }
        assert_eq!(ok(t.sent(0)), [("q0", true)]);
        assert!(t.sent(5).is_empty());
        assert_eq!(ok(t.sent(0)), [("q0-again", true)]);
        assert_eq!(t.pending(), 1);
        assert_eq!(resolved(t.acknowledged(5, Ok(()))).0, "q1");
    }

    #[test]
    fn puback_reason_codes_success_or_refusal() {
        let successes = [PubAckReason::Success, PubAckReason::NoMatchingSubscribers];
        for reason in successes {
            assert_eq!(acknowledgement(&puback(3, reason)), Some((3, Ok(()))));
        }
        let refusals = [
            (PubAckReason::UnspecifiedError, "UnspecifiedError"),
            (
                PubAckReason::ImplementationSpecificError,
                "ImplementationSpecificError",
            ),
            (PubAckReason::NotAuthorized, "NotAuthorized"),
            (PubAckReason::TopicNameInvalid, "TopicNameInvalid"),
            (PubAckReason::PacketIdentifierInUse, "PacketIdentifierInUse"),
            (PubAckReason::QuotaExceeded, "QuotaExceeded"),
            (PubAckReason::PayloadFormatInvalid, "PayloadFormatInvalid"),
        ];
        for (reason, name) in refusals {
            let (pkid, result) = acknowledgement(&puback(3, reason)).unwrap();
            assert_eq!(pkid, 3);
            let err = result.unwrap_err();
            assert_eq!(err, PublishError::Refused(name.into()));
            assert!(!err.retryable(), "a refusal is not retryable: {err}");
        }
    }

    #[test]
    fn qos2_acknowledgements_pubrec_refuses_pubcomp_completes() {
        let rec = |reason| {
            Packet::PubRec(PubRec {
                pkid: 4,
                reason,
                properties: None,
            })
        };
        let comp = |reason| {
            Packet::PubComp(PubComp {
                pkid: 4,
                reason,
                properties: None,
            })
        };
        assert_eq!(acknowledgement(&rec(PubRecReason::Success)), None);
        assert_eq!(
            acknowledgement(&rec(PubRecReason::NoMatchingSubscribers)),
            None
        );
        assert_eq!(
            acknowledgement(&rec(PubRecReason::QuotaExceeded)),
            Some((4, Err(PublishError::Refused("QuotaExceeded".into()))))
        );
        assert_eq!(
            acknowledgement(&comp(PubCompReason::Success)),
            Some((4, Ok(())))
        );
        assert_eq!(
            acknowledgement(&comp(PubCompReason::PacketIdentifierNotFound)),
            Some((
                4,
                Err(PublishError::Refused("PacketIdentifierNotFound".into()))
            ))
        );
        assert_eq!(
            acknowledgement(&Packet::PingResp(rumqttc::v5::mqttbytes::v5::PingResp)),
            None
        );
    }

    #[test]
    fn unknown_acks_are_ignored_and_counted() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a"], &[1]);
        assert!(matches!(t.acknowledged(42, Ok(())), AckOutcome::Unknown));
        assert_eq!(resolved(t.acknowledged(1, Ok(()))).0, "a");
        // A duplicate acknowledgement is unknown too: its publish is done.
        assert!(matches!(t.acknowledged(1, Ok(())), AckOutcome::Unknown));
        assert_eq!(t.counters().unknown_acks, 2);
        assert_eq!(t.counters().late_acks, 0);
    }

    #[test]
    fn timeouts_use_the_moment_passed_in() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a", "b"], &[1]); // "b" still queued
        t.queue("c", clock.at(3000)).unwrap();
        assert!(t.expire(clock.at(4999), TIMEOUT).is_empty());
        let expired = t.expire(clock.at(5000), TIMEOUT);
        let names: Vec<_> = expired.iter().map(|(w, _)| *w).collect();
        assert_eq!(names, ["b", "a"], "queued first, then sent");
        for (_, r) in &expired {
            let err = r.as_ref().unwrap_err();
            assert_eq!(err, &PublishError::Timeout(TIMEOUT));
            assert!(err.retryable());
        }
        assert_eq!(t.pending(), 1, "c was queued later");
        assert_eq!(ok(t.expire(clock.at(8000), TIMEOUT)), [("c", false)]);
    }

    #[test]
    fn late_acks_after_a_timeout_are_ignored_and_counted() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a"], &[1]);
        assert_eq!(t.expire(clock.at(6000), TIMEOUT).len(), 1);
        assert!(matches!(t.acknowledged(1, Ok(())), AckOutcome::Late));
        assert_eq!(t.counters().late_acks, 1);
        // Only once: the packet ID is free again.
        assert!(matches!(t.acknowledged(1, Ok(())), AckOutcome::Unknown));
    }

    #[test]
    fn a_publish_expired_while_queued_keeps_its_place_so_the_next_gets_the_right_id() {
        let clock = Clock::new();
        let mut t = Tracker::new(clock.at(0));
        t.queue("old", clock.at(0)).unwrap();
        t.queue("new", clock.at(4000)).unwrap();
        assert_eq!(ok(t.expire(clock.at(5000), TIMEOUT)), [("old", false)]);
        // The event loop now writes "old" (packet ID 1), then "new" (2).
        assert!(t.sent(1).is_empty());
        assert!(t.sent(2).is_empty());
        assert!(matches!(t.acknowledged(1, Ok(())), AckOutcome::Late));
        assert_eq!(resolved(t.acknowledged(2, Ok(()))).0, "new");
    }

    #[test]
    fn a_reused_packet_id_is_a_fresh_publish_not_a_late_one() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a"], &[1]);
        assert_eq!(t.expire(clock.at(5000), TIMEOUT).len(), 1);
        t.queue("b", clock.at(5000)).unwrap();
        assert!(t.sent(1).is_empty());
        assert_eq!(resolved(t.acknowledged(1, Ok(()))).0, "b");
    }

    #[test]
    fn a_packet_id_reused_while_in_flight_fails_the_older_publish() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a", "b"], &[1]);
        let failed = t.sent(1);
        assert_eq!(ok(failed), [("a", false)]);
        assert_eq!(resolved(t.acknowledged(1, Ok(()))).0, "b");
    }

    #[test]
    fn a_send_with_nothing_queued_is_counted() {
        let clock = Clock::new();
        let mut t: Tracker<&str> = Tracker::new(clock.at(0));
        assert!(t.sent(1).is_empty());
        assert_eq!(t.counters().unexpected_sends, 1);
    }

    #[test]
    fn a_close_fails_every_publish_in_flight_retryable_and_every_later_one() {
        let clock = Clock::new();
        let mut t = sent(&clock, &["a", "b", "c", "d"], &[3, 1]); // c, d still queued
        assert_eq!(resolved(t.acknowledged(3, Ok(()))).0, "a");
        let failed = t.close("broker went away");
        let names: Vec<_> = failed.iter().map(|(w, _)| *w).collect();
        assert_eq!(names, ["c", "d", "b"]);
        for (_, r) in &failed {
            let err = r.as_ref().unwrap_err();
            assert_eq!(
                err,
                &PublishError::ConnectionLost("broker went away".into())
            );
            assert!(err.retryable());
        }
        assert_eq!(t.pending(), 0);
        assert_eq!(t.closed(), Some("broker went away"));
        let (w, r) = t.queue("e", clock.at(10)).unwrap_err();
        assert_eq!(w, "e");
        assert!(matches!(r, Err(PublishError::ConnectionLost(_))));
        // An acknowledgement after the close finds nothing.
        assert!(matches!(t.acknowledged(1, Ok(())), AckOutcome::Unknown));
    }

    #[test]
    fn silence_counts_the_longer_clock_and_resets_when_heard() {
        let clock = Clock::new();
        let mut t: Tracker<&str> = Tracker::new(clock.at(0));
        assert_eq!(t.silence(clock.at(1500)), Duration::from_millis(1500));
        // A paused micro-VM: the monotonic clock stood still, the wall clock moved on.
        let thawed = Moment::new(clock.mono, clock.wall + Duration::from_secs(600));
        assert_eq!(t.silence(thawed), Duration::from_secs(600));
        // A wall clock set backwards does not hide the monotonic interval.
        let back = Moment::new(clock.mono + Duration::from_secs(2), clock.wall);
        assert_eq!(t.silence(back), Duration::from_secs(2));
        t.heard(clock.at(2000));
        assert_eq!(t.silence(clock.at(2500)), Duration::from_millis(500));
    }
}
