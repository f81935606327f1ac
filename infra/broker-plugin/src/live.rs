//! The live-sessions file (`plugin_opt_sessions_file`): the classroom sessions that are live
//! right now, so that the next run of the broker can say they ended.
//!
//! # Why
//! A broker that stops (SIGTERM) or dies (kill -9) runs no disconnect callback for the
//! connections it drops: without this file their `disconnected` events are never published,
//! the presence function never closes their channels and the rooms see the students online for
//! ever. AWS IoT Core itself publishes a `disconnected` event for every connection it ends,
//! whatever the cause; the server ending them is `SERVER_INITIATED_DISCONNECT`.
//!
//! # What, when
//! - The file holds one entry per live classroom connection: its lifecycle [`Session`] (client
//!   ID, session identifier, address, username) and the `versionNumber` of its `connected`
//!   event. It is rewritten whenever a classroom session becomes live (an accepted CONNECT) or
//!   ends (the disconnect callback), and only when its text changes: a few hundred bytes per
//!   session, one `write` + `rename` (atomic: a reader, or the next run after a kill -9, sees
//!   the old file or the new one, never half of one). No `fsync`: a killed process loses
//!   nothing the kernel already has; a power loss may lose the last change (the presence
//!   function's bound on channel age covers that, see `mapping::presence::MAX_SESSION_MS`).
//! - At start-up the plugin reads it ([`load`]): those sessions were live when the previous
//!   run ended, and none of them survived it (a restart drops every connection). Their
//!   `disconnected` events ([`restart_events`]) are published on the first tick of the main
//!   loop (not during init: that is before the broker serves anything, and the tick is the
//!   place where every other plugin publish of this kind happens), then the file is rewritten
//!   without them.
//!
//! # Identity and order
//! Each event carries the ended session's own `sessionIdentifier` (the channel the presence
//! function closes: a client that reconnected already has a new channel, which the event does
//! not touch, whatever order the two events arrive in) and `versionNumber` = the recorded
//! `connected` version + 1, as the disconnect callback would have used; the plugin's version
//! counter of that client continues from there, so the reconnect's `connected` event has a
//! higher version than the ended session's `disconnected` one, as in IoT Core.
//!
//! Duplicates are harmless: presence keeps the earliest offline time of a channel, so a second
//! `disconnected` event for a closed channel changes nothing, writes nothing and announces
//! nothing (and its notice IDs derive from client, channel and kind anyway). The plugin relies
//! on that twice: a crash between publishing and rewriting the file publishes them again at
//! the next start, and the replay for a backend that subscribes late (see the crate docs)
//! publishes the very same bodies again.

use std::io::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::files::Note;
use crate::records::{self, DisconnectCause, Session};

/// The file format's version (`"format"`), so a later change can be told apart.
pub const FORMAT: u64 = 1;

/// One live classroom session as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The lifecycle session.
    pub session: Session,
    /// The `versionNumber` of its `connected` event.
    pub version: u64,
}

/// The file's text for `live` (in the order given).
pub fn encode(live: &[LiveSession]) -> String {
    let sessions: Vec<Value> = live
        .iter()
        .map(|l| {
            json!({
                "clientId": l.session.client_id,
                "sessionIdentifier": l.session.session_id,
                "ipAddress": l.session.ip_address,
                "username": l.session.username,
                "versionNumber": l.version,
            })
        })
        .collect();
    json!({ "format": FORMAT, "sessions": sessions }).to_string()
}

/// The sessions of a file's text; an error says what is wrong with it.
pub fn decode(text: &str) -> Result<Vec<LiveSession>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("format").and_then(Value::as_u64) {
        Some(FORMAT) => {}
        other => return Err(format!("format {other:?}, expected {FORMAT}")),
    }
    let Some(list) = v.get("sessions").and_then(Value::as_array) else {
        return Err("no \"sessions\" array".into());
    };
    let text_of = |s: &Value, k: &str| s.get(k).and_then(Value::as_str).map(str::to_owned);
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let (Some(client_id), Some(session_id), Some(version)) = (
                text_of(s, "clientId"),
                text_of(s, "sessionIdentifier"),
                s.get("versionNumber").and_then(Value::as_u64),
            ) else {
                return Err(format!(
                    "session {i} lacks clientId, sessionIdentifier or versionNumber"
                ));
            };
            Ok(LiveSession {
                session: Session {
                    client_id,
                    session_id,
                    ip_address: text_of(s, "ipAddress"),
                    username: text_of(s, "username"),
                },
                version,
            })
        })
        .collect()
}

/// The `disconnected` events (topic, body) of the sessions a restart ended, at `now_ms`:
/// `SERVER_INITIATED_DISCONNECT`, each with its own session identifier and its `connected`
/// version + 1.
pub fn restart_events(ended: &[LiveSession], now_ms: u64) -> Vec<(String, String)> {
    ended
        .iter()
        .map(|l| {
            records::disconnected_event(
                &l.session,
                now_ms,
                l.version.saturating_add(1),
                DisconnectCause::BrokerRestart,
            )
        })
        .collect()
}

/// Reads the file at start-up: the sessions of the previous run, and a note for the log. A
/// missing file is no session (a first start); an unreadable or malformed one is no session
/// and an error note (the broker starts anyway: refusing to start would end every classroom).
pub fn load(path: &Path) -> (Vec<LiveSession>, Option<Note>) {
    match std::fs::read_to_string(path) {
        Ok(text) => match decode(&text) {
            Ok(live) => {
                let note = (!live.is_empty()).then(|| {
                    Note::Info(format!(
                        "{} classroom session(s) were live when the broker last stopped ({}): \
                         their disconnected events follow",
                        live.len(),
                        path.display()
                    ))
                });
                (live, note)
            }
            Err(e) => (
                Vec::new(),
                Some(Note::Error(format!(
                    "sessions file {} ignored ({e}): sessions live when the broker last \
                     stopped get no disconnected event",
                    path.display()
                ))),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
        Err(e) => (
            Vec::new(),
            Some(Note::Error(format!(
                "sessions file {} unreadable ({e}): sessions live when the broker last stopped \
                 get no disconnected event",
                path.display()
            ))),
        ),
    }
}

/// Writes `text` to `path` atomically: `<path>.tmp` then `rename` over `path`.
pub fn save(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn live(client: &str, session: &str, version: u64) -> LiveSession {
        LiveSession {
            session: Session {
                client_id: client.into(),
                session_id: session.into(),
                ip_address: Some("127.0.0.1".into()),
                username: None,
            },
            version,
        }
    }

    #[test]
    fn the_file_round_trips_and_a_bad_one_says_why() {
        let sessions = vec![live("GID_student@@@001", "s1", 3), live("a/b", "s2", 1)];
        assert_eq!(decode(&encode(&sessions)).unwrap(), sessions);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        assert!(decode("{").unwrap_err().contains("not JSON"));
        assert!(
            decode(r#"{"format":2,"sessions":[]}"#)
                .unwrap_err()
                .contains("format")
        );
        assert!(
            decode(r#"{"format":1,"sessions":[{"clientId":"x"}]}"#)
                .unwrap_err()
                .contains("session 0")
        );
    }

    #[test]
    fn a_restart_ends_each_session_with_its_own_identity_and_the_next_version() {
        let events = restart_events(
            &[
                live("GID_student@@@001", "s1", 3),
                live("GID_student@@@002", "s2", 1),
            ],
            1_700,
        );
        assert_eq!(events.len(), 2);
        let (topic, body) = &events[0];
        assert_eq!(topic, "$aws/events/presence/disconnected/GID_student@@@001");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["eventType"], "disconnected");
        assert_eq!(v["sessionIdentifier"], "s1");
        assert_eq!(v["versionNumber"], 4);
        assert_eq!(v["timestamp"], 1_700);
        assert_eq!(v["disconnectReason"], "SERVER_INITIATED_DISCONNECT");
        assert_eq!(v["clientInitiatedDisconnect"], false);
        assert_eq!(v["ipAddress"], "127.0.0.1");
    }

    #[test]
    fn load_and_save_go_through_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live-sessions.json");
        assert_eq!(load(&path), (vec![], None), "a first start: no file");
        let sessions = vec![live("GID_student@@@001", "s1", 1)];
        save(&path, &encode(&sessions)).unwrap();
        assert!(!dir.path().join("live-sessions.json.tmp").exists());
        let (got, note) = load(&path);
        assert_eq!(got, sessions);
        assert!(matches!(note, Some(Note::Info(_))));
        std::fs::write(&path, "garbage").unwrap();
        let (got, note) = load(&path);
        assert!(got.is_empty());
        assert!(matches!(note, Some(Note::Error(_))));
    }
}
