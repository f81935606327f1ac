//! The presence reducer (§5, the seeds' rule): a pure function over a client's state and one
//! lifecycle event.
//!
//! The rule: per client, each channel (TCP connection / IoT session) has one connect and one
//! offline event (disconnect and/or tcpclean). An offline event ends only the channel it names,
//! never a newer connection. The client is online while some channel has a connect and no
//! offline event.
//!
//! Why per-channel state rather than "the last event wins": events arrive duplicated and in any
//! order (SQS standard queues, redeliveries, a flash reconnect whose new connect overtakes the
//! old channel's tcpclean). Each channel keeps the earliest connect time and the earliest
//! offline time it has seen; both merges are `min`, which is commutative, associative and
//! idempotent, so any order and any duplication give the same state. An offline event that
//! arrives before its connect is remembered (`offline_at` set, `connected_at` empty), so the
//! late connect cannot reopen the channel.
//!
//! # Storage
//! [`ChannelState`] is one DynamoDB item of `PresenceTable` (HASH `clientId`, RANGE
//! `channelId`); its serde form uses the item's attribute names (`connectedAt`, `clientIp`),
//! which `stores::attrs::presence` writes down with the rest of the table's layout, and the
//! adapter is `stores::presence`. [`ChannelState::merge`] returns `None` when an event changes
//! nothing (a duplicate), so a redelivery costs no write; otherwise the new item is written in
//! a transaction conditioned on the client's version (optimistic concurrency). What to write
//! and whom to tell is the rule's: [`crate::classroom::presence`].
//!
//! # No channel outlives the longest connection
//! A channel whose offline event is lost (a broker that died without publishing it, an event
//! dropped on the way) would stay open for ever. No connection can last longer than
//! [`MAX_SESSION_MS`]: token sign-in makes IoT Core end every connection after
//! `disconnectAfterInSeconds`, at most 24 h, and the local broker's plugin kicks a connection
//! when its token (at most 24 h) expires; plus a margin for clocks and delivery. So an open
//! channel connected longer ago than that is over ([`ChannelState::is_overdue`], the clock
//! passed in), and it is closed as if its offline event had said so at the latest time the
//! connection can have ended ([`ChannelState::deadline_ms`]), with the reason
//! [`MAX_SESSION_EXCEEDED`]: the presence rule closes it at the client's next event
//! (`crate::classroom::presence::overdue_closures`), and readers treat it as closed meanwhile
//! ([`ClientPresence::as_of`]). The closing time is a function of the channel alone, not of when
//! it is noticed, so every closer writes the same item (duplicates change nothing), and a real
//! offline event arriving later keeps the earlier of the two times, as any offline event does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lifecycle::{LifecycleEvent, LifecycleKind, OfflineReason};

/// How long a channel's state is kept after its offline event, and the age beyond which a
/// lifecycle event is ignored: 15 days, longer than SQS keeps any message (14 days at most),
/// so no redelivery can bring an event back for a channel whose item has expired. Without it
/// every connection of a client would stay in the table, and each event's Query of the
/// client's channels would grow for ever.
pub const RETENTION_MS: u64 = 15 * 24 * 3600 * 1000;
// Longer than SQS keeps a message (14 days), or an expired channel could be reopened.
const _: () = assert!(RETENTION_MS > 14 * 24 * 3600 * 1000);

/// The longest a connection can last, ms: token sign-in's `disconnectAfterInSeconds` is at
/// most 24 h (IoT Core's maximum, `signin::iot::MAX_DISCONNECT_AFTER_SECS`; the local plugin
/// kicks a connection when its token, at most 24 h, expires).
pub const MAX_CONNECTION_MS: u64 = 86_400 * 1000;

/// The margin on top of [`MAX_CONNECTION_MS`] (clock skew between the broker and the function,
/// the kick's sweep interval, delivery of the offline event): 10 minutes.
pub const SESSION_MARGIN_MS: u64 = 10 * 60 * 1000;

/// No channel stays open longer than this after its connect: [`MAX_CONNECTION_MS`] +
/// [`SESSION_MARGIN_MS`] (24 h 10 min).
pub const MAX_SESSION_MS: u64 = MAX_CONNECTION_MS + SESSION_MARGIN_MS;

/// The offline reason of a channel closed because it outlived [`MAX_SESSION_MS`] (stored as
/// the item's offline reason, logged; not an AWS IoT `disconnectReason`).
pub const MAX_SESSION_EXCEEDED: &str = "MAX_SESSION_EXCEEDED";

/// Whether an event is older than [`RETENTION_MS`] at `now_ms`: its channel may be gone, so
/// applying it could reopen a connection that ended long ago. Such events are dropped.
pub fn is_stale(event_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(event_ms) > RETENTION_MS
}

/// The state of one channel: one DynamoDB item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    /// Earliest connect time seen, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
    /// The client's address from the connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Earliest offline event seen: time, kind and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<Offline>,
}

/// The offline event that ended a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offline {
    /// When, ms.
    pub at: u64,
    /// `disconnect` or `tcpclean`.
    pub kind: LifecycleKind,
    /// Why, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<OfflineReason>,
}

/// Keeps the smaller of two optional values (a missing value loses).
fn min_opt<T: Ord + Clone>(a: &Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(std::cmp::min(a.clone(), b)),
        (Some(a), None) => Some(a.clone()),
        (None, b) => b,
    }
}

impl ChannelState {
    /// Whether the channel is an open connection: a connect and no offline event.
    pub fn is_open(&self) -> bool {
        self.connected_at.is_some() && self.offline.is_none()
    }

    /// When the channel's item may expire, seconds since the epoch: [`RETENTION_MS`] after
    /// its offline event (with or without its connect: a connect older than that is stale).
    /// `None` while the channel is open.
    pub fn expires_at_secs(&self) -> Option<u64> {
        self.offline
            .as_ref()
            .map(|o| o.at.saturating_add(RETENTION_MS) / 1000)
    }

    /// The latest time an open channel's connection can have ended, ms: its connect +
    /// [`MAX_SESSION_MS`]. `None` unless open.
    pub fn deadline_ms(&self) -> Option<u64> {
        match (self.connected_at, &self.offline) {
            (Some(at), None) => Some(at.saturating_add(MAX_SESSION_MS)),
            _ => None,
        }
    }

    /// Whether the channel is open but has been for longer than [`MAX_SESSION_MS`] at
    /// `now_ms`: its offline event was lost. Exactly at the deadline it is not yet.
    pub fn is_overdue(&self, now_ms: u64) -> bool {
        self.deadline_ms().is_some_and(|d| now_ms > d)
    }

    /// The offline event an overdue channel is closed with: at its deadline, `tcpclean`,
    /// [`MAX_SESSION_EXCEEDED`] (`None` unless overdue at `now_ms`).
    pub fn overdue_offline(&self, now_ms: u64) -> Option<Offline> {
        if !self.is_overdue(now_ms) {
            return None;
        }
        self.deadline_ms().map(|at| Offline {
            at,
            kind: LifecycleKind::TcpClean,
            reason: Some(OfflineReason::Other(MAX_SESSION_EXCEEDED.to_owned())),
        })
    }

    /// Whether both ends of the channel are known: it can never change again except by a
    /// smaller time (a duplicate with an earlier clock, which does not change openness).
    pub fn is_closed(&self) -> bool {
        self.connected_at.is_some() && self.offline.is_some()
    }

    /// The channel after `event` (which must be about this channel), or `None` when the event
    /// changes nothing (a duplicate or a later copy): then there is nothing to write.
    pub fn merge(&self, event: &LifecycleEvent) -> Option<Self> {
        let mut next = self.clone();
        match event.kind {
            LifecycleKind::Connect => {
                let earlier = self.connected_at.is_none_or(|t| event.time_ms < t);
                if earlier {
                    next.connected_at = Some(event.time_ms);
                    next.client_ip = event.client_ip.clone();
                } else if self.connected_at == Some(event.time_ms) {
                    // Same time: keep the smaller address so the result is order-independent.
                    next.client_ip = min_opt(&self.client_ip, event.client_ip.clone());
                }
            }
            LifecycleKind::Disconnect | LifecycleKind::TcpClean => {
                let candidate = Offline {
                    at: event.time_ms,
                    kind: event.kind,
                    reason: event.reason.clone(),
                };
                next.offline = min_opt(&self.offline, Some(candidate));
            }
        }
        (next != *self).then_some(next)
    }
}

/// What an event did to the client's presence, so the function knows when to send a status
/// notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Transition {
    /// The client had no open channel and now has one.
    BecameOnline,
    /// The client's last open channel closed.
    BecameOffline,
    /// Online before and after, or offline before and after.
    Unchanged,
}

impl Transition {
    /// From the online flag before and after.
    pub fn between(before: bool, after: bool) -> Self {
        match (before, after) {
            (false, true) => Self::BecameOnline,
            (true, false) => Self::BecameOffline,
            _ => Self::Unchanged,
        }
    }
}

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The online/offline transition.
    pub transition: Transition,
    /// The channel's new state when it changed (the item to write), `None` for a duplicate.
    pub channel: Option<ChannelState>,
}

/// A client's presence: its channels by channel ID (the items of the client's partition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientPresence {
    /// Channel ID -> state.
    pub channels: BTreeMap<String, ChannelState>,
}

impl ClientPresence {
    /// Whether some channel is open.
    pub fn is_online(&self) -> bool {
        self.channels.values().any(ChannelState::is_open)
    }

    /// The open channels' IDs.
    pub fn open_channels(&self) -> impl Iterator<Item = &str> {
        self.channels
            .iter()
            .filter(|(_, c)| c.is_open())
            .map(|(id, _)| id.as_str())
    }

    /// The channels overdue at `now_ms` ([`ChannelState::is_overdue`]), with their deadlines.
    pub fn overdue(&self, now_ms: u64) -> impl Iterator<Item = (&str, u64)> {
        self.channels
            .iter()
            .filter(move |(_, c)| c.is_overdue(now_ms))
            .filter_map(|(id, c)| c.deadline_ms().map(|d| (id.as_str(), d)))
    }

    /// The presence as it stands at `now_ms`: every overdue channel closed at its deadline
    /// ([`ChannelState::overdue_offline`]), as the presence rule will write it. What a reader
    /// (the presence query) should answer from, so a channel whose offline event was lost is
    /// not reported open before the rule gets to close it.
    #[must_use]
    pub fn as_of(&self, now_ms: u64) -> Self {
        let mut out = self.clone();
        for c in out.channels.values_mut() {
            if let Some(off) = c.overdue_offline(now_ms) {
                c.offline = Some(off);
            }
        }
        out
    }

    /// The reducer: applies one event and says what changed.
    pub fn apply(&mut self, event: &LifecycleEvent) -> Applied {
        let before = self.is_online();
        let current = self
            .channels
            .get(&event.channel_id)
            .cloned()
            .unwrap_or_default();
        let channel = current.merge(event);
        if let Some(next) = &channel {
            self.channels.insert(event.channel_id.clone(), next.clone());
        }
        Applied {
            transition: Transition::between(before, self.is_online()),
            channel,
        }
    }

    /// The state after a whole history, in the order given.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a LifecycleEvent>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ClientId;

    fn ev(kind: LifecycleKind, time_ms: u64, channel: &str) -> LifecycleEvent {
        LifecycleEvent {
            client_id: ClientId::parse("GID_student@@@002").unwrap(),
            kind,
            time_ms,
            channel_id: channel.to_owned(),
            client_ip: None,
            reason: None,
        }
    }
    use LifecycleKind::{Connect, Disconnect, TcpClean};

    #[test]
    fn a_channel_expires_fifteen_days_after_its_offline_event_and_never_while_open() {
        let mut p = ClientPresence::default();
        let open = p.apply(&ev(Connect, 1_000, "a")).channel.unwrap();
        assert_eq!(open.expires_at_secs(), None);
        let closed = p.apply(&ev(TcpClean, 2_000, "a")).channel.unwrap();
        assert_eq!(closed.expires_at_secs(), Some(2 + 15 * 24 * 3600));
        // An offline event before its connect: the item expires too (a connect that old is
        // stale and would be dropped).
        let early = ClientPresence::default()
            .apply(&ev(Disconnect, 5_000, "b"))
            .channel
            .unwrap();
        assert_eq!(early.expires_at_secs(), Some(5 + 15 * 24 * 3600));
    }

    #[test]
    fn events_older_than_the_retention_are_stale() {
        let now = 100 * 24 * 3600 * 1000;
        assert!(!is_stale(now, now));
        assert!(
            !is_stale(now + 5_000, now),
            "a clock ahead of ours is not stale"
        );
        assert!(!is_stale(now - RETENTION_MS, now));
        assert!(is_stale(now - RETENTION_MS - 1, now));
        assert!(!is_stale(0, 0));
    }

    #[test]
    fn an_open_channel_is_overdue_only_after_the_longest_connection_and_its_margin() {
        assert_eq!(MAX_SESSION_MS, (86_400 + 600) * 1000);
        let t0 = 1_732_240_000_000;
        let mut p = ClientPresence::default();
        p.apply(&ev(Connect, t0, "lost"));
        let c = &p.channels["lost"];
        assert_eq!(c.deadline_ms(), Some(t0 + MAX_SESSION_MS));
        // Not before the bound, not exactly at it; one millisecond later it is.
        assert!(!c.is_overdue(t0 + MAX_CONNECTION_MS));
        assert!(!c.is_overdue(t0 + MAX_SESSION_MS));
        assert!(c.is_overdue(t0 + MAX_SESSION_MS + 1));
        assert_eq!(c.overdue_offline(t0 + MAX_SESSION_MS), None);
        let off = c.overdue_offline(t0 + MAX_SESSION_MS + 1).unwrap();
        assert_eq!(
            (
                off.at,
                off.kind,
                off.reason.as_ref().map(OfflineReason::as_str)
            ),
            (t0 + MAX_SESSION_MS, TcpClean, Some(MAX_SESSION_EXCEEDED))
        );
        // A clock behind the connect's is not overdue either.
        assert!(!c.is_overdue(0));
    }

    #[test]
    fn as_of_closes_overdue_channels_and_leaves_the_others() {
        let t0 = 1_732_240_000_000;
        let mut p = ClientPresence::default();
        p.apply(&ev(Connect, t0, "lost"));
        p.apply(&ev(Connect, t0 + 3_600_000, "live"));
        p.apply(&ev(Connect, t0 - 10, "closed"));
        p.apply(&ev(TcpClean, t0 - 5, "closed"));
        let at_bound = p.as_of(t0 + MAX_SESSION_MS);
        assert_eq!(at_bound, p, "nothing is overdue at the bound itself");
        let now = t0 + MAX_SESSION_MS + 1;
        assert_eq!(
            p.overdue(now).collect::<Vec<_>>(),
            [("lost", t0 + MAX_SESSION_MS)]
        );
        let seen = p.as_of(now);
        assert!(seen.is_online());
        assert_eq!(seen.open_channels().collect::<Vec<_>>(), ["live"]);
        assert_eq!(seen.channels["closed"], p.channels["closed"]);
        // Later, the other one too: the client is offline.
        assert!(!p.as_of(t0 + 3_600_000 + MAX_SESSION_MS + 1).is_online());
        // A closed channel, however old, is never overdue.
        assert!(!p.channels["closed"].is_overdue(u64::MAX));
    }

    #[test]
    fn connect_then_tcpclean_goes_online_then_offline() {
        let mut p = ClientPresence::default();
        assert_eq!(
            p.apply(&ev(Connect, 1, "a")).transition,
            Transition::BecameOnline
        );
        assert!(p.is_online());
        assert_eq!(
            p.apply(&ev(TcpClean, 2, "a")).transition,
            Transition::BecameOffline
        );
        assert!(!p.is_online());
    }

    #[test]
    fn a_tcpclean_before_its_connect_keeps_the_channel_closed() {
        let mut p = ClientPresence::default();
        assert_eq!(
            p.apply(&ev(TcpClean, 2, "a")).transition,
            Transition::Unchanged
        );
        assert_eq!(
            p.apply(&ev(Connect, 1, "a")).transition,
            Transition::Unchanged
        );
        assert!(!p.is_online());
        assert!(p.channels["a"].is_closed());
    }

    #[test]
    fn an_old_channels_tcpclean_does_not_end_a_flash_reconnect() {
        let mut p = ClientPresence::default();
        p.apply(&ev(Connect, 1, "old"));
        assert_eq!(
            p.apply(&ev(Connect, 5, "new")).transition,
            Transition::Unchanged
        );
        assert_eq!(
            p.apply(&ev(TcpClean, 6, "old")).transition,
            Transition::Unchanged
        );
        assert!(p.is_online());
        assert_eq!(p.open_channels().collect::<Vec<_>>(), ["new"]);
    }

    #[test]
    fn duplicates_change_nothing_and_need_no_write() {
        let mut p = ClientPresence::default();
        let c = ev(Connect, 1, "a");
        assert!(p.apply(&c).channel.is_some());
        let again = p.apply(&c);
        assert_eq!(again.transition, Transition::Unchanged);
        assert_eq!(again.channel, None);
        let off = ev(TcpClean, 3, "a");
        p.apply(&off);
        assert_eq!(p.apply(&off).channel, None);
    }

    #[test]
    fn disconnect_then_tcpclean_keeps_the_earliest_offline() {
        let mut p = ClientPresence::default();
        p.apply(&ev(Connect, 1, "a"));
        assert_eq!(
            p.apply(&ev(TcpClean, 4, "a")).transition,
            Transition::BecameOffline
        );
        let earlier = p.apply(&ev(Disconnect, 3, "a"));
        assert_eq!(earlier.transition, Transition::Unchanged);
        let off = p.channels["a"].offline.clone().unwrap();
        assert_eq!((off.at, off.kind), (3, Disconnect));
    }

    #[test]
    fn the_state_serialises_as_the_items_attributes() {
        let mut p = ClientPresence::default();
        let mut c = ev(Connect, 1, "a");
        c.client_ip = Some("192.0.2.1".to_owned());
        p.apply(&c);
        let json = serde_json::to_value(&p.channels["a"]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"connectedAt": 1, "clientIp": "192.0.2.1"})
        );
        // The item's attribute names are these (`stores::attrs::presence`; its tests check
        // `connectedAt` there).
    }
}
