//! The plugin's table of classroom connections (pure: connection keys, times and revocations
//! are arguments, so the takeover, disconnect and sweep rules are unit-tested here and the FFI
//! layer only calls them).
//!
//! A connection is keyed by the address of the broker's `struct mosquitto` (one per
//! connection). An entry holds the lifecycle [`Session`] and the [`Grant`] of its sign-in, and
//! lives from the CONNECT the plugin accepted until:
//! - **takeover**: a newer CONNECT with the same client ID was accepted; the broker then
//!   disconnects the old connection, whose event says `DUPLICATE_CLIENTID`, and frees it;
//! - **disconnect**: the entry goes *offline* but keeps its grant, because Mosquitto keeps a
//!   persistent session's context (same address) and checks `MOSQ_ACL_READ` with it for every
//!   message it queues while the client is away, and checks the will's `MOSQ_ACL_WRITE` after
//!   the disconnect callback. An offline entry is dropped at the next accepted CONNECT of its
//!   client ID (that CONNECT takes the old context over), or by the sweep once its grant expired
//!   or was revoked;
//! - **a new CONNECT on the same address** ([`Sessions::forget`], at the start of every
//!   CONNECT, backend or not): the old context was freed and the address reused.
//!
//! The table lives in memory only: after a broker restart, sessions Mosquitto restored from its
//! persistence have no entry, so nothing is queued for them (denied, no grant) until their
//! client signs in again. What the next run needs to end the live ones (their lifecycle
//! sessions and versions, [`Sessions::live`]) goes to the live-sessions file ([`crate::live`]),
//! and that run continues their clients' version counters ([`Sessions::continue_versions`]).
//!
//! The sweep ([`Sessions::sweep`]) ends live entries whose grant expired or was revoked and
//! returns the client IDs to kick. Kicking goes by client ID (the only way Mosquitto 2.0 offers),
//! which disconnects whoever holds that ID now, so the sweep never names an entry that was taken
//! over (its newer holder may be valid; the broker is already closing the old one) nor one that
//! a newer live entry of the same client ID supersedes: only the newest live connection of a
//! client ID can be the holder.

use std::collections::HashMap;

use signin::{Grant, Revocations};

use crate::auth::{self, AclVerdict, Who};
use crate::live::LiveSession;
use crate::records::{DisconnectCause, Session};

/// Why the plugin ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its token (the earliest, for an `R|..|W|..` password) expired.
    Expired,
    /// A token of its sign-in, or its client, was revoked.
    Revoked,
}

impl End {
    /// The lifecycle event's cause.
    pub fn cause(self) -> DisconnectCause {
        match self {
            Self::Expired => DisconnectCause::TokenExpired,
            Self::Revoked => DisconnectCause::Revoked,
        }
    }

    /// A short name for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "token expired",
            Self::Revoked => "token revoked",
        }
    }
}

/// One classroom connection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The lifecycle session (client ID, session ID, address, username).
    pub session: Session,
    /// What its token grants.
    pub grant: Grant,
    /// Accept order (to tell the newest connection of a client ID).
    pub seq: u64,
    /// Connected (false once the disconnect callback ran).
    pub online: bool,
    /// A newer accepted CONNECT with the same client ID was seen.
    pub taken_over: bool,
    /// Ended by the sweep (kicked): every ACL check is denied until it is gone.
    pub ended: Option<End>,
    /// The `versionNumber` of its `connected` event.
    pub version: u64,
}

/// A connection to disconnect, as [`Sessions::sweep`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    /// The client ID to kick (its holder is this connection).
    pub client_id: String,
    /// Why.
    pub why: End,
}

/// What the disconnect callback publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected {
    /// The session that ended.
    pub session: Session,
    /// The lifecycle event's version number.
    pub version: u64,
    /// Why, as far as the plugin knows.
    pub cause: DisconnectCause,
}

/// The table of classroom connections, and the per-client lifecycle version counters.
#[derive(Debug, Default)]
pub struct Sessions {
    by_conn: HashMap<usize, Entry>,
    /// Per client ID, the last lifecycle event version (monotonic, like IoT's versionNumber).
    versions: HashMap<String, u64>,
    seq: u64,
}

impl Sessions {
    fn next_version(&mut self, client_id: &str) -> u64 {
        let v = self.versions.entry(client_id.to_owned()).or_insert(0);
        *v += 1;
        *v
    }

    /// Drops whatever was recorded for the address `conn`: called at the start of every
    /// CONNECT, since a new connection at a known address means the old context was freed.
    pub fn forget(&mut self, conn: usize) {
        self.by_conn.remove(&conn);
    }

    /// Records an accepted CONNECT and returns its `connected` event's version. Live entries
    /// of the same client ID are marked taken over; offline ones are dropped (the broker takes
    /// their context over and frees it).
    pub fn connect(&mut self, conn: usize, session: Session, grant: Grant) -> u64 {
        let client_id = session.client_id.clone();
        self.by_conn
            .retain(|k, e| *k == conn || e.online || e.session.client_id != client_id);
        for (k, e) in &mut self.by_conn {
            if *k != conn && e.session.client_id == client_id {
                e.taken_over = true;
            }
        }
        self.seq += 1;
        let version = self.next_version(&client_id);
        let entry = Entry {
            session,
            grant,
            seq: self.seq,
            online: true,
            taken_over: false,
            ended: None,
            version,
        };
        self.by_conn.insert(conn, entry);
        version
    }

    /// The live connections (the disconnect callback has not run yet), in accept order: what
    /// the live-sessions file records.
    pub fn live(&self) -> Vec<LiveSession> {
        let mut live: Vec<&Entry> = self.by_conn.values().filter(|e| e.online).collect();
        live.sort_by_key(|e| e.seq);
        live.into_iter()
            .map(|e| LiveSession {
                session: e.session.clone(),
                version: e.version,
            })
            .collect()
    }

    /// After a restart: the clients of `ended` (the previous run's live sessions, whose
    /// `disconnected` events carry their `connected` version + 1) continue their version
    /// counters from there, so their next `connected` event has a higher version.
    pub fn continue_versions(&mut self, ended: &[LiveSession]) {
        for l in ended {
            let v = self
                .versions
                .entry(l.session.client_id.clone())
                .or_insert(0);
            *v = (*v).max(l.version.saturating_add(1));
        }
    }

    /// The disconnect callback: the `disconnected` event to publish, if `conn` was a live
    /// classroom connection. A taken-over or ended entry is removed; any other goes offline and
    /// keeps its grant (see the module docs).
    pub fn disconnect(&mut self, conn: usize) -> Option<Disconnected> {
        let entry = self.by_conn.get_mut(&conn)?;
        if !entry.online {
            return None;
        }
        entry.online = false;
        let cause = match (entry.ended, entry.taken_over) {
            (Some(end), _) => end.cause(),
            (None, true) => DisconnectCause::Takeover,
            (None, false) => DisconnectCause::Unknown,
        };
        let session = entry.session.clone();
        if entry.ended.is_some() || entry.taken_over {
            self.by_conn.remove(&conn);
        }
        let version = self.next_version(&session.client_id);
        Some(Disconnected {
            session,
            version,
            cause,
        })
    }

    /// Who the ACL check of `conn` is about (not the backend: the caller checks the username
    /// first).
    pub fn who(&self, conn: usize) -> Who<'_> {
        match self.by_conn.get(&conn) {
            Some(e) => Who::Classroom {
                grant: &e.grant,
                ended: e.ended.is_some(),
            },
            None => Who::Unknown,
        }
    }

    /// The ACL check of a classroom connection (see [`auth::check_access`]).
    pub fn check(&self, conn: usize, access: i32, topic: &str, now_s: u64) -> AclVerdict {
        auth::check_access(self.who(conn), access, topic, now_s)
    }

    /// The sweep at `now_s`: live entries whose grant expired or is revoked are ended (denied
    /// from now on) and returned to be kicked, unless taken over or superseded by a newer live
    /// entry of their client ID; offline entries in that state are dropped.
    pub fn sweep(&mut self, revocations: &Revocations, now_s: u64) -> Vec<Kick> {
        let verdict = |g: &Grant| {
            if g.is_expired(now_s) {
                Some(End::Expired)
            } else if revocations.check(g).is_err() {
                Some(End::Revoked)
            } else {
                None
            }
        };
        self.by_conn
            .retain(|_, e| e.online || verdict(&e.grant).is_none());
        // The newest live, not-taken-over connection of each client ID: the broker's holder.
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for e in self.by_conn.values() {
            if e.online && !e.taken_over {
                let n = newest.entry(e.session.client_id.as_str()).or_insert(0);
                *n = (*n).max(e.seq);
            }
        }
        let holders: HashMap<String, u64> =
            newest.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let mut kicks = Vec::new();
        for e in self.by_conn.values_mut() {
            if !e.online || e.ended.is_some() {
                continue;
            }
            let Some(why) = verdict(&e.grant) else {
                continue;
            };
            e.ended = Some(why);
            let holder = holders.get(&e.session.client_id) == Some(&e.seq);
            if holder && !e.taken_over {
                kicks.push(Kick {
                    client_id: e.session.client_id.clone(),
                    why,
                });
            }
        }
        kicks.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        kicks
    }

    /// Live and offline entries (for tests and the log).
    pub fn counts(&self) -> (usize, usize) {
        let online = self.by_conn.values().filter(|e| e.online).count();
        (online, self.by_conn.len() - online)
    }

    /// The entry of `conn`, if any.
    pub fn get(&self, conn: usize) -> Option<&Entry> {
        self.by_conn.get(&conn)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use signin::Filter;

    const NOW: u64 = 1_700_000_000;
    const READ: i32 = 1;

    fn session(client: &str) -> Session {
        Session {
            client_id: client.into(),
            session_id: format!("s-{client}"),
            ip_address: None,
            username: Some(client.into()),
        }
    }

    fn grant(client: &str, jti: &str, expires_at: u64) -> Grant {
        Grant {
            client_id: client.into(),
            read: vec![Filter::parse("room/message/1").unwrap()],
            write: vec![Filter::parse("roomSend/message").unwrap()],
            issued_at: NOW - 100,
            expires_at,
            token_ids: vec![jti.into()],
        }
    }

    const A: &str = "GID_student@@@001";
    const B: &str = "GID_student@@@002";

    #[test]
    fn a_connection_is_checked_with_its_own_grant_and_an_unknown_one_is_denied() {
        let mut s = Sessions::default();
        assert_eq!(s.connect(1, session(A), grant(A, "t1", NOW + 60)), 1);
        assert_eq!(s.check(1, READ, "room/message/1", NOW), AclVerdict::Allow);
        assert!(matches!(
            s.check(1, READ, "room/message/2", NOW),
            AclVerdict::Deny(_)
        ));
        assert!(matches!(
            s.check(2, READ, "room/message/1", NOW),
            AclVerdict::Deny(auth::Denial::NoGrant)
        ));
    }

    #[test]
    fn a_takeover_marks_the_old_connection_and_its_disconnect_says_so() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 60));
        assert_eq!(s.connect(2, session(A), grant(A, "t2", NOW + 60)), 2);
        let old = s.disconnect(1).unwrap();
        assert_eq!(old.cause, DisconnectCause::Takeover);
        assert_eq!(old.version, 3);
        assert!(s.get(1).is_none(), "a taken-over context is freed");
        assert_eq!(s.check(2, READ, "room/message/1", NOW), AclVerdict::Allow);
    }

    #[test]
    fn an_offline_session_keeps_its_grant_until_its_client_connects_again() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 60));
        let d = s.disconnect(1).unwrap();
        assert_eq!(d.cause, DisconnectCause::Unknown);
        assert!(s.disconnect(1).is_none(), "one event per connection");
        // Messages queued for the persistent session while away are still checked.
        assert_eq!(s.check(1, READ, "room/message/1", NOW), AclVerdict::Allow);
        assert_eq!(s.counts(), (0, 1));
        // The reconnect takes the old context over: the offline entry goes, not marked taken
        // over (it already produced its event).
        s.connect(2, session(A), grant(A, "t2", NOW + 60));
        assert_eq!(s.counts(), (1, 0));
        // Another client's reconnect leaves an offline entry alone.
        s.disconnect(2);
        s.connect(3, session(B), grant(B, "t3", NOW + 60));
        assert_eq!(s.counts(), (1, 1));
    }

    #[test]
    fn the_live_sessions_are_the_connected_ones_with_their_versions() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 60));
        s.connect(2, session(B), grant(B, "t2", NOW + 60));
        s.disconnect(1);
        assert_eq!(
            s.live(),
            vec![LiveSession {
                session: session(B),
                version: 1
            }]
        );
        // A takeover: both are live until the broker closes the old one.
        s.connect(3, session(B), grant(B, "t3", NOW + 60));
        let live: Vec<u64> = s.live().iter().map(|l| l.version).collect();
        assert_eq!(live, [1, 2]);
    }

    #[test]
    fn after_a_restart_a_clients_versions_continue_past_its_ended_session() {
        let mut s = Sessions::default();
        s.continue_versions(&[LiveSession {
            session: session(A),
            version: 7,
        }]);
        // The ended session's disconnected event is version 8: the reconnect is 9.
        assert_eq!(s.connect(1, session(A), grant(A, "t1", NOW + 60)), 9);
        assert_eq!(s.connect(2, session(B), grant(B, "t2", NOW + 60)), 1);
    }

    #[test]
    fn a_new_connect_at_a_known_address_forgets_what_was_there() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 60));
        s.disconnect(1);
        s.forget(1);
        assert!(matches!(
            s.check(1, READ, "room/message/1", NOW),
            AclVerdict::Deny(auth::Denial::NoGrant)
        ));
    }

    #[test]
    fn the_sweep_kicks_an_expired_connection_once_and_its_event_says_why() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 5));
        s.connect(2, session(B), grant(B, "t2", NOW + 60));
        assert!(s.sweep(&Revocations::default(), NOW + 4).is_empty());
        let kicks = s.sweep(&Revocations::default(), NOW + 5);
        assert_eq!(
            kicks,
            vec![Kick {
                client_id: A.into(),
                why: End::Expired
            }]
        );
        // Until the broker closes it, it is denied, and it is not kicked twice.
        assert!(matches!(
            s.check(1, READ, "room/message/1", NOW + 1),
            AclVerdict::Deny(auth::Denial::Ended)
        ));
        assert!(s.sweep(&Revocations::default(), NOW + 6).is_empty());
        let d = s.disconnect(1).unwrap();
        assert_eq!(d.cause, DisconnectCause::TokenExpired);
        assert!(s.get(1).is_none(), "an ended entry does not stay offline");
    }

    #[test]
    fn the_sweep_kicks_revoked_tokens_and_revoked_clients() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 60));
        s.connect(2, session(B), grant(B, "t2", NOW + 60));
        let mut rev = Revocations::default();
        rev.tokens.insert("t1".into());
        assert_eq!(
            s.sweep(&rev, NOW),
            vec![Kick {
                client_id: A.into(),
                why: End::Revoked
            }]
        );
        let mut rev = Revocations::default();
        rev.clients.insert(B.into(), NOW - 100);
        assert_eq!(
            s.sweep(&rev, NOW),
            vec![Kick {
                client_id: B.into(),
                why: End::Revoked
            }]
        );
        assert_eq!(
            s.disconnect(2).map(|d| d.cause),
            Some(DisconnectCause::Revoked)
        );
    }

    #[test]
    fn the_sweep_never_kicks_the_client_id_for_an_old_connection_a_valid_one_took_over() {
        let mut s = Sessions::default();
        // The old connection expires; a newer one with a valid token took its client ID over,
        // but the broker has not run the old one's disconnect yet (websockets close later).
        s.connect(1, session(A), grant(A, "t1", NOW + 5));
        s.connect(2, session(A), grant(A, "t2", NOW + 600));
        assert!(s.sweep(&Revocations::default(), NOW + 10).is_empty());
        assert!(matches!(
            s.check(1, READ, "room/message/1", NOW + 10),
            AclVerdict::Deny(_)
        ));
        assert_eq!(
            s.check(2, READ, "room/message/1", NOW + 10),
            AclVerdict::Allow
        );
    }

    #[test]
    fn the_sweep_drops_offline_entries_once_expired_or_revoked_without_kicking() {
        let mut s = Sessions::default();
        s.connect(1, session(A), grant(A, "t1", NOW + 5));
        s.connect(2, session(B), grant(B, "t2", NOW + 60));
        s.disconnect(1);
        s.disconnect(2);
        let mut rev = Revocations::default();
        rev.tokens.insert("t2".into());
        assert!(s.sweep(&rev, NOW + 5).is_empty());
        assert_eq!(s.counts(), (0, 0));
    }
}
