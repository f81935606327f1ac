//! The presence rule (§5), top to bottom: a lifecycle event (§4.4) and the client's state
//! as read -> the write and the status notices. Pure: no IO, no clock (`now` is an argument);
//! the presence function only reads, sends and writes what this module decides.
//!
//! # One record
//! 1. [`admit`]: the SQS record's body and `tag` attribute become a [`LifecycleEvent`]. Events
//!    of clients whose ID is not classroom-shaped (no `@@@`: the backend's own MQTT
//!    connections) are skipped ([`Admission::NotClassroom`]), events older than the retention
//!    are ignored ([`Admission::Stale`]: their channel's item may have expired, so applying
//!    them could reopen a connection that ended long ago); any other invalid record is an
//!    error. An admitted event becomes a [`Rule`].
//! 2. The function reads the client's items in one strongly consistent Query: a [`Snapshot`]
//!    of its channels, and the head item's version and the rooms it joined (the moderation
//!    function's `join` keeps them there).
//! 3. [`Rule::decide`] applies the event with the reducer
//!    ([`ClientPresence::apply`](crate::ClientPresence::apply)): a duplicate changes nothing
//!    and ends here ([`Step::Duplicate`]); otherwise [`Step::Write`] holds the status notices
//!    to send (one per room, on an online/offline transition: [`announce`],
//!    [`status_notices`]) and the [`PresenceWrite`]: the channel, the connection's attendance
//!    item and the head version bump, in one transaction conditioned on the version read.
//! 4. The function sends the notices, then writes. On a version conflict it reads again and
//!    asks the same [`Rule`] to decide again: the rule remembers what it already announced, so
//!    the same transition is not announced twice, and if the re-read changed the outcome after
//!    a notice went out it adds a correction with the client's state now.
//!
//! # Channels whose offline event was lost
//! No connection lasts longer than [`crate::presence::MAX_SESSION_MS`] (24 h 10 min, see
//! [`crate::presence`]). Before applying an event, the function asks [`overdue_closures`]
//! (with the batch's `now`) for the client's channels still open beyond that bound and applies
//! each closure first, as an ordinary event through [`Rule`]: a `tcpclean` at the channel's
//! deadline with the reason [`MAX_SESSION_EXCEEDED`], so the rooms get the usual offline notice
//! if it was the client's last open channel, and the event itself then meets the true state.
//! Closures are deterministic (the same event for the same channel whoever computes it), so a
//! retry, a concurrent closer or a late real offline event changes nothing more. A client that
//! never sends another event is closed by whatever reads its presence through
//! [`ClientPresence::as_of`] (the presence query) until a scheduled sweep writes it.
//!
//! # Why the notices go out before the write
//! If the write fails the record is redelivered, recomputes the same transition and resends
//! the same notice IDs (they derive from the event: [`event_source_id`]; clients
//! de-duplicate). Writing first would lose the notice, because the redelivered event would
//! then be a duplicate.
//!
//! # Cost
//! One Query for a duplicate; one Query and one `TransactWriteItems` for any other event, a
//! transition included (the rooms come with the Query), plus one `SendMessageBatch` for a
//! transition. Each conflict adds a Query and a write.

use crate::error::MappingError;
use crate::lifecycle::LifecycleEvent;
use crate::lifecycle::{LifecycleKind, OfflineReason};
use crate::names::{ClientId, NameError, RoomId};
use crate::notice::{Notice, StatusNotice, notice_id};
use crate::presence::{ChannelState, ClientPresence, MAX_SESSION_EXCEEDED, Transition, is_stale};

/// A client's state as read from the store: its channels, and the head item's version and
/// rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The channels.
    pub presence: ClientPresence,
    /// The head item's version (0 when there is none yet): the write is conditioned on it.
    pub version: u64,
    /// The rooms the client joined, from the head item (sorted).
    pub rooms: Vec<RoomId>,
}

/// What one event's transaction writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceWrite {
    /// The client.
    pub client: ClientId,
    /// The channel the event is about.
    pub channel: String,
    /// The channel's new state.
    pub state: ChannelState,
    /// The head version that was read: the write must find it unchanged.
    pub read_version: u64,
    /// Rooms to add to the connection's attendance item (the client's rooms on a decision
    /// that announces; none otherwise).
    pub rooms: Vec<RoomId>,
    /// Whether the client is online after this event (kept on the head item).
    pub online: bool,
}

/// What to do with one SQS record of the lifecycle queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Apply it: read the client's state and [`Rule::decide`].
    Apply(Rule),
    /// Not a classroom client ID (no `@@@`): the backend's own connections are not tracked.
    /// Acknowledged: sending it to the DLQ five times per container start would only bury
    /// real failures.
    NotClassroom {
        /// The client ID as the broker reported it.
        client: String,
    },
    /// Older than the retention ([`crate::presence::RETENTION_MS`]): acknowledged and
    /// ignored. Nothing is lost: newer events describe the client.
    Stale(LifecycleEvent),
}

/// Step 1: the record's body and SQS `tag` attribute, judged at `now_ms`. A classroom-shaped
/// but invalid client ID, or any other invalid record, is an error (the record fails).
pub fn admit(body: &str, tag: Option<&str>, now_ms: u64) -> Result<Admission, MappingError> {
    let event = match LifecycleEvent::from_json(body, tag) {
        Ok(event) => event,
        Err(MappingError::ClientId(NameError::Separator { client })) => {
            return Ok(Admission::NotClassroom { client });
        }
        Err(e) => return Err(e),
    };
    if is_stale(event.time_ms, now_ms) {
        return Ok(Admission::Stale(event));
    }
    Ok(Admission::Apply(Rule::new(event)))
}

/// The events that close `client`'s channels overdue at `now_ms` (open longer than
/// [`crate::presence::MAX_SESSION_MS`]: their offline event was lost), in channel order: each a
/// `tcpclean` of that channel at its deadline with the reason [`MAX_SESSION_EXCEEDED`]. Apply
/// each with a [`Rule`] before the event that brought the client's state in; none at or before
/// the bound.
pub fn overdue_closures(
    client: &ClientId,
    presence: &ClientPresence,
    now_ms: u64,
) -> Vec<LifecycleEvent> {
    presence
        .overdue(now_ms)
        .map(|(channel, deadline)| LifecycleEvent {
            client_id: client.clone(),
            kind: LifecycleKind::TcpClean,
            time_ms: deadline,
            channel_id: channel.to_owned(),
            client_ip: None,
            reason: Some(OfflineReason::Other(MAX_SESSION_EXCEEDED.to_owned())),
        })
        .collect()
}

/// The ID all status notices caused by `event` derive from: the event itself (client,
/// channel, kind), so a redelivery or a duplicate delivery by the broker gives the same IDs.
pub fn event_source_id(event: &LifecycleEvent) -> String {
    format!("{}:{}:{}", event.client_id, event.channel_id, event.kind)
}

/// The status notices of `event` to each of `rooms`: `online` or `offline`, at the event's
/// time, with IDs derived from [`event_source_id`] and the room (`suffix` tells a correction's
/// IDs apart from the announcement's).
pub fn status_notices(
    event: &LifecycleEvent,
    online: bool,
    rooms: &[RoomId],
    suffix: &str,
) -> Vec<Notice> {
    let source = event_source_id(event);
    rooms
        .iter()
        .map(|room| {
            Notice::from(StatusNotice::new(
                online,
                event.client_id.clone(),
                room.clone(),
                notice_id(&source, &format!("status-{room}{suffix}")),
                event.time_ms,
            ))
        })
        .collect()
}

/// What one attempt must announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Nothing: no transition, or the one already announced.
    Nothing,
    /// The transition: `online` or `offline` to the client's rooms.
    Transition {
        /// Online or offline.
        online: bool,
    },
    /// A concurrent writer changed the picture after an earlier attempt announced a
    /// transition: tell the rooms where the client really stands now.
    Correction {
        /// The client's state now.
        online: bool,
    },
}

/// Decides what to announce, given this attempt's transition, what an earlier attempt of the
/// same record already announced, and whether the client is online after this attempt.
pub fn announce(
    transition: Transition,
    announced: Option<Transition>,
    online_now: bool,
) -> Announce {
    match (transition, announced) {
        (Transition::Unchanged, None) => Announce::Nothing,
        (t, None) => Announce::Transition {
            online: t == Transition::BecameOnline,
        },
        (t, Some(a)) if t == a => Announce::Nothing,
        (_, Some(_)) => Announce::Correction { online: online_now },
    }
}

/// What [`Rule::decide`] says to do for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The event changes nothing (a duplicate or a later copy): nothing to send or write.
    Duplicate {
        /// The online/offline transition (always [`Transition::Unchanged`]).
        transition: Transition,
    },
    /// Send `notices` (first: see the module docs), then write `write`. On a version
    /// conflict: read again and decide again.
    Write {
        /// The online/offline transition of this attempt.
        transition: Transition,
        /// The status notices to send now (empty when there is nothing to announce).
        notices: Vec<Notice>,
        /// The transaction to write, conditioned on the version read.
        write: PresenceWrite,
    },
}

/// The rule for one event across the attempts of its read-decide-write cycle: it remembers
/// the transition whose notices already went out, so a retry after a conflict neither repeats
/// them nor leaves them standing when they turned out wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    event: LifecycleEvent,
    /// The transition whose notices already went out, if any.
    announced: Option<Transition>,
    /// How many times [`Rule::decide`] was called.
    attempts: u32,
}

impl Rule {
    /// The rule for `event` (no staleness check: see [`admit`]).
    pub fn new(event: LifecycleEvent) -> Self {
        Self {
            event,
            announced: None,
            attempts: 0,
        }
    }

    /// The event.
    pub fn event(&self) -> &LifecycleEvent {
        &self.event
    }

    /// How many attempts were decided so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// One attempt: the event applied to the client's state as read. Call it again with a
    /// fresh read after a write conflict.
    pub fn decide(&mut self, read: &Snapshot) -> Step {
        let attempt = self.attempts;
        self.attempts += 1;
        let mut presence = read.presence.clone();
        let applied = presence.apply(&self.event);
        let Some(state) = applied.channel else {
            return Step::Duplicate {
                transition: applied.transition,
            };
        };
        let online = presence.is_online();
        let plan = announce(applied.transition, self.announced, online);
        let notices = match plan {
            Announce::Nothing => Vec::new(),
            Announce::Transition { online } => status_notices(&self.event, online, &read.rooms, ""),
            Announce::Correction { online } => {
                status_notices(&self.event, online, &read.rooms, &format!("-fix{attempt}"))
            }
        };
        // The rooms came with the read; they go to the attendance item when announcing.
        let rooms = if plan == Announce::Nothing {
            Vec::new()
        } else {
            self.announced = Some(applied.transition);
            read.rooms.clone()
        };
        Step::Write {
            transition: applied.transition,
            notices,
            write: PresenceWrite {
                client: self.event.client_id.clone(),
                channel: self.event.channel_id.clone(),
                state,
                read_version: read.version,
                rooms,
                online,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::presence::MAX_SESSION_MS;
    use Transition::{BecameOffline, BecameOnline, Unchanged};

    const T0: u64 = 1_732_240_000_000;

    fn student() -> ClientId {
        ClientId::parse("GID_student@@@002").unwrap()
    }

    fn event(kind: LifecycleKind, time_ms: u64, channel: &str) -> LifecycleEvent {
        LifecycleEvent {
            client_id: student(),
            kind,
            time_ms,
            channel_id: channel.to_owned(),
            client_ip: None,
            reason: None,
        }
    }

    fn snapshot(events: &[LifecycleEvent]) -> Snapshot {
        Snapshot {
            presence: ClientPresence::from_events(events),
            version: events.len() as u64,
            rooms: vec![RoomId::parse("1").unwrap()],
        }
    }

    #[test]
    fn a_channel_whose_offline_event_was_lost_is_closed_at_the_bound_and_not_before() {
        // Connected at T0; the broker died and its disconnected event never came.
        let read = snapshot(&[event(LifecycleKind::Connect, T0, "lost")]);
        assert!(overdue_closures(&student(), &read.presence, T0 + MAX_SESSION_MS).is_empty());
        let closures = overdue_closures(&student(), &read.presence, T0 + MAX_SESSION_MS + 1);
        assert_eq!(closures.len(), 1);
        let close = &closures[0];
        assert_eq!(
            (close.kind, close.time_ms, close.channel_id.as_str()),
            (LifecycleKind::TcpClean, T0 + MAX_SESSION_MS, "lost")
        );
        assert_eq!(
            close.reason.as_ref().map(OfflineReason::as_str),
            Some(MAX_SESSION_EXCEEDED)
        );
        // Applied like any event: offline, the usual notice to the client's rooms.
        let Step::Write {
            transition,
            notices,
            write,
        } = Rule::new(close.clone()).decide(&read)
        else {
            panic!("a closure writes");
        };
        assert_eq!(transition, BecameOffline);
        assert_eq!(notices.len(), 1);
        assert!(
            notices[0].body().contains("offline"),
            "{}",
            notices[0].body()
        );
        assert_eq!(notices[0].ts(), T0 + MAX_SESSION_MS);
        assert!(!write.online);
        assert_eq!(
            write.state.offline.as_ref().map(|o| o.at),
            Some(T0 + MAX_SESSION_MS)
        );
        // Computed again (a retry, another container, a later batch): the same event.
        assert_eq!(
            overdue_closures(&student(), &read.presence, T0 + 40 * MAX_SESSION_MS),
            closures
        );
    }

    #[test]
    fn once_closed_a_late_offline_event_or_a_second_closure_changes_nothing() {
        let close = overdue_closures(
            &student(),
            &ClientPresence::from_events(&[event(LifecycleKind::Connect, T0, "lost")]),
            T0 + MAX_SESSION_MS + 1,
        );
        let mut history = vec![event(LifecycleKind::Connect, T0, "lost")];
        history.extend(close.iter().cloned());
        let read = snapshot(&history);
        assert!(overdue_closures(&student(), &read.presence, T0 + 2 * MAX_SESSION_MS).is_empty());
        // The restart's disconnected event, later than the deadline: nothing to write.
        let late = event(LifecycleKind::TcpClean, T0 + MAX_SESSION_MS + 5_000, "lost");
        assert!(matches!(
            Rule::new(late).decide(&read),
            Step::Duplicate {
                transition: Unchanged
            }
        ));
        // An earlier real one: recorded, no transition, no notice.
        let early = event(LifecycleKind::TcpClean, T0 + 60_000, "lost");
        let Step::Write {
            transition,
            notices,
            ..
        } = Rule::new(early).decide(&read)
        else {
            panic!("an earlier offline time is written");
        };
        assert_eq!((transition, notices.len()), (Unchanged, 0));
    }

    #[test]
    fn only_the_overdue_channel_closes_and_a_newer_one_keeps_the_client_online() {
        let read = snapshot(&[
            event(LifecycleKind::Connect, T0, "lost"),
            event(LifecycleKind::Connect, T0 + MAX_SESSION_MS - 1_000, "new"),
        ]);
        let closures = overdue_closures(&student(), &read.presence, T0 + MAX_SESSION_MS + 1);
        assert_eq!(closures.len(), 1);
        let Step::Write {
            transition,
            notices,
            ..
        } = Rule::new(closures[0].clone()).decide(&read)
        else {
            panic!("a closure writes");
        };
        assert_eq!((transition, notices.len()), (Unchanged, 0));
    }

    #[test]
    fn a_first_transition_is_announced_and_not_twice() {
        assert_eq!(
            announce(BecameOnline, None, true),
            Announce::Transition { online: true }
        );
        assert_eq!(
            announce(BecameOffline, None, false),
            Announce::Transition { online: false }
        );
        assert_eq!(announce(Unchanged, None, true), Announce::Nothing);
        assert_eq!(
            announce(BecameOnline, Some(BecameOnline), true),
            Announce::Nothing
        );
    }

    #[test]
    fn an_announcement_overtaken_by_a_concurrent_writer_is_corrected() {
        // We said "offline", but on re-reading another channel had opened meanwhile.
        assert_eq!(
            announce(Unchanged, Some(BecameOffline), true),
            Announce::Correction { online: true }
        );
        // We said "online", but the re-read shows the client was online already: the
        // correction repeats the state the rooms should hold.
        assert_eq!(
            announce(Unchanged, Some(BecameOnline), true),
            Announce::Correction { online: true }
        );
        // A correction is itself not repeated on a further attempt.
        assert_eq!(
            announce(Unchanged, Some(Unchanged), true),
            Announce::Nothing
        );
    }
}
