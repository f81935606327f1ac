//! A Mosquitto 2.0 (plugin API v5) plugin that emulates AWS IoT Core's broker side on a local
//! broker (§2, §4.1, §4.4, §6, §7, §8): token sign-in and authorization as the custom
//! authorizer gives them, the uplink rule and the lifecycle events.
//!
//! # Callbacks
//! - **basic auth** (`MOSQ_EVT_BASIC_AUTH`, every CONNECT, anonymous ones included): the
//!   backend username is deferred to `password_file`; any other CONNECT must carry a token as its
//!   password (plain or `R|..|W|..`), verified by [`auth::decide`] with the `signin` crate
//!   (signature under a listed key, expiry, client ID = the token's, revocations) before
//!   anything else happens. A refused CONNECT is logged (error kind, Alibaba code, client ID;
//!   never the password) and produces no lifecycle event and takes no live session over. An
//!   accepted one is recorded with its grant ([`sessions`]) and publishes its `connected` event.
//! - **ACL check** (`MOSQ_EVT_ACL_CHECK`, before `acl_file`; 2.0.11 caches nothing, so READ is
//!   asked for every delivery): the backend username is deferred to `acl_file`; a classroom
//!   connection is decided by its grant ([`auth::check_access`]): publish (WRITE) by the write
//!   filters, subscribe (SUBSCRIBE) by containment in a read filter, so Mosquitto answers "not
//!   authorized" (0x87, 0x80 in 3.1.1) in the SUBACK for a filter outside the grant, delivery
//!   (READ) by the read filters; unsubscribe is allowed. No grant, an expired grant or a kicked
//!   connection: denied. Every publish of a classroom connection also counts against AWS IoT
//!   Core's per-connection inbound publish limit ([`rate`]: 100 per second by default, a token
//!   bucket); one over it is denied (dropped before the uplink rule, the connection stays open),
//!   with one log line per run of refusals.
//! - **tick** (`MOSQ_EVT_TICK`, each pass of the main loop, about 10 per second; only with
//!   `per_listener_settings false` in 2.0.11): at most once a second, re-read the revocation
//!   file if it changed, then kick (`mosquitto_kick_client_by_clientid`, without the will) every
//!   live classroom connection whose token expired or is now revoked ([`sessions::Sessions::sweep`]
//!   says why only the current holder of a client ID is ever kicked). The kick runs the
//!   disconnect callback, so the session's `disconnected` event is published
//!   (`CUSTOMAUTH_TTL_EXPIRATION` or `SERVER_INITIATED_DISCONNECT`) and presence sees it offline.
//!   The first tick after start-up also ends the previous run's live sessions (see
//!   "Restarts").
//! - **message** (`MOSQ_EVT_MESSAGE`, after the ACL check accepted a publish): the uplink rule;
//!   every publish under an uplink parent (`roomSend/#`) becomes the §4.1 record, with the client
//!   ID taken from the broker, republished at QoS 1 to `$classroom/uplink`.
//! - **disconnect** (`MOSQ_EVT_DISCONNECT`): the AWS IoT `disconnected` event of a classroom
//!   connection (`DUPLICATE_CLIENTID` after a takeover). Lifecycle events get a fresh session
//!   identifier per connection and go where AWS IoT Core publishes them,
//!   `$aws/events/presence/{connected|disconnected}/<clientId>`, at QoS 1.
//!
//! Only the backend identity may read `$classroom/#` and `$aws/events/presence/#` (ACL file);
//! no token can grant a `$` topic.
//!
//! # Restarts
//! A broker that stops (SIGTERM) or dies (kill -9) runs no disconnect callback for the
//! connections it drops, so without more their `disconnected` events would never be published
//! and presence would keep those students online for ever. With `sessions_file`, the plugin
//! keeps the live classroom sessions in that file ([`live`]: rewritten atomically, temporary
//! file + rename, whenever a session becomes live or ends). The next run reads it in init and,
//! on the first tick (or CONNECT) of its main loop, when the broker has restored its persistent
//! sessions, publishes each one's `disconnected` event as the disconnect callback would have
//! (same `sessionIdentifier`, `versionNumber` = its `connected` version + 1, reason
//! `SERVER_INITIATED_DISCONNECT`, timestamp = the publish time), then rewrites the file without
//! them. Nothing is published at shutdown ([`mosquitto_plugin_cleanup`] says why), so a SIGTERM
//! and a kill -9 take the same path and no event is published twice by design. A backend whose
//! persistent session the broker could not restore (kill -9 before any autosave: the
//! subscription was never saved) subscribes anew after the events went out: a backend
//! SUBSCRIBE that can receive them within [`REPLAY_WINDOW`] gets them published once more on
//! the next tick. Duplicates are harmless: presence keeps a channel's earliest offline event,
//! so a second one changes nothing and announces nothing.
//!
//! # Keys and revocations without a restart
//! The key set and the revocation list are files ([`files`]), checked with one `stat` on each
//! classroom CONNECT (both) and at most once a second from the tick (revocations), and re-read
//! when their size, modification time or inode change. A missing or malformed key file refuses
//! every classroom CONNECT, with the reason in the log, and never stops the broker. Bound: a
//! revocation reaches live sessions within about 1 s of the file changing (the tick sweep), and
//! the local API rewrites the file within its 1 s poll of the token table, so a revoke takes at
//! most about 2 s to disconnect a live session; the next CONNECT with a revoked token is refused
//! as soon as the file changed. Rotating keys (a new current key, the old one kept) keeps old
//! tokens valid; retiring a key refuses its tokens at their next CONNECT (live sessions keep
//! running until their token expires, as IoT Core's authorizer result does until
//! `disconnectAfterInSeconds`). The plugin never does network IO.
//!
//! # Options
//! `plugin_opt_<name> <value>` in mosquitto.conf:
//! - `keys_file` (required): the key set JSON, `{"current":"<kid>","keys":{"<kid>":"<base64url
//!   secret>",...}}` (`$STACK_DIR/signin/keys.json` locally).
//! - `revocations_file` (optional; without it nothing is ever revoked): `{"tokens":["<tokenId>",
//!   ...],"clients":{"<clientId>":<revokedBefore s>}}`; missing means nothing revoked yet,
//!   malformed keeps the last good list.
//! - `backend_username` (default `backend`): deferred to `password_file`/`acl_file`, not recorded.
//! - `uplink_parents` (comma-separated, default `roomSend`), `uplink_topic` (default
//!   `$classroom/uplink`), `presence_topic` (default: none, each event on its own
//!   `$aws/events/presence/...` topic; set it to send every event to one topic instead).
//! - `publish_per_second` (default 100, AWS IoT Core's "Inbound publish requests per second per
//!   connection", which IoT does not let you raise): the per-connection publish limit of
//!   classroom connections, `0` for none (benches measuring a flood without it). Not a whole
//!   number: the broker does not start, and its log says why.
//! - `sessions_file` (optional; without it a broker restart ends no session): the live-sessions
//!   file ([`live`]), e.g. `$STACK_DIR/mosquitto/live-sessions.json` next to Mosquitto's
//!   persistence. Missing means none (a first start); unreadable or malformed is logged and
//!   treated as none. The directory must be writable by the broker's user.
//! - `clients_file` (the former roster) is ignored, with a warning.
//!
//! # Safety
//! Every callback runs inside `catch_unwind` (a panic denies, never crosses into C), reads
//! nothing it is not given, and never calls a broker function that can run a callback (the kick
//! runs the disconnect callback) or publish while holding the state lock.
//!
//! Why hand-written FFI rather than the `mosquitto-plugin` crate: we need eight functions and
//! five event structs of a stable C ABI; the crate needs bindgen + libclang at build time, and
//! its default callbacks grant access (bypassing `acl_file`/`password_file`) and its
//! `get_username()` dereferences NULL for anonymous clients. Here nothing is registered that we
//! do not implement.
//!
//! # Layout
//! - [`auth`]: the CONNECT decision and the ACL decision (pure, unit-tested).
//! - [`sessions`]: the table of classroom connections: takeover, offline sessions, the sweep
//!   (pure, unit-tested).
//! - [`records`]: the uplink record and lifecycle event JSON (pure, unit-tested).
//! - [`rate`]: IoT Core's per-connection publish limit, its figure and behaviour (pure,
//!   unit-tested).
//! - [`files`]: the key and revocation files, re-read on change.
//! - [`live`]: the live-sessions file and the restart events (pure, unit-tested, plus the
//!   atomic write and the read at start-up).
//! - [`ffi`]: the C API declarations, checked against 2.0.11's headers.
//! - this file: the options, the shared state and the callbacks.

pub mod auth;
pub mod ffi;
pub mod files;
pub mod live;
pub mod rate;
pub mod records;
pub mod sessions;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::{Access, AclVerdict, ConnectDecision};
use ffi::{
    MOSQ_ERR_ACL_DENIED, MOSQ_ERR_AUTH, MOSQ_ERR_NOMEM, MOSQ_ERR_PLUGIN_DEFER, MOSQ_ERR_SUCCESS,
    MOSQ_EVT_ACL_CHECK, MOSQ_EVT_BASIC_AUTH, MOSQ_EVT_DISCONNECT, MOSQ_EVT_MESSAGE, MOSQ_EVT_TICK,
    MOSQ_LOG_DEBUG, MOSQ_LOG_ERR, MOSQ_LOG_INFO, MOSQ_LOG_NOTICE, MOSQ_LOG_WARNING,
    MosquittoClient, PluginId,
};
use files::{KeysFile, Note, RevocationsFile};
use live::LiveSession;
use records::Session;
use sessions::Sessions;

/// How often the tick sweeps (re-reads revocations, kicks expired and revoked connections).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How long after the restart events went out a backend subscribing to the lifecycle topics
/// gets them once more (see the crate docs, "Restarts").
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// The plugin's configuration, from `plugin_opt_*`.
#[derive(Debug, Clone)]
struct Config {
    keys_file: Option<PathBuf>,
    revocations_file: Option<PathBuf>,
    backend_username: String,
    uplink_parents: Vec<String>,
    uplink_topic: CString,
    presence_topic: Option<CString>,
    /// Publishes per second per classroom connection (0: no limit), see [`rate`].
    publish_per_second: u32,
    /// The live-sessions file ([`live`]); without it a restart ends no session.
    sessions_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keys_file: None,
            revocations_file: None,
            backend_username: "backend".into(),
            uplink_parents: vec!["roomSend".into()],
            uplink_topic: c"$classroom/uplink".into(),
            presence_topic: None,
            publish_per_second: rate::IOT_PUBLISH_PER_SECOND,
            sessions_file: None,
        }
    }
}

/// Everything the callbacks share. Mosquitto 2.0 runs plugins on its single main thread; the
/// mutex only makes that assumption unnecessary.
#[derive(Debug)]
struct Plugin {
    id: *mut PluginId,
    config: Config,
    state: Mutex<State>,
    /// Sessions of the previous run are waiting for their `disconnected` events
    /// ([`State::recovered`] is not empty): checked without the lock.
    recovering: AtomicBool,
    /// The restart events can still be replayed ([`State::replay`] is set): the backend's
    /// ACL checks look at subscriptions only then.
    replay_armed: AtomicBool,
    /// A backend subscribed to the lifecycle topics since the restart events went out: the
    /// next tick publishes them again.
    replay_wanted: AtomicBool,
}

/// The restart events already published once, for a backend that subscribes late.
#[derive(Debug)]
struct Replay {
    events: Vec<(String, String)>,
    until: Instant,
}

#[derive(Debug)]
struct State {
    sessions: Sessions,
    keys: KeysFile,
    revocations: RevocationsFile,
    last_sweep: Option<Instant>,
    /// The per-connection publish limit and its buckets.
    limiter: rate::Limiter,
    /// The limiter's monotonic clock starts here.
    started: Instant,
    /// The previous run's live sessions, until their `disconnected` events are published.
    recovered: Vec<LiveSession>,
    /// The text last written to the live-sessions file (to skip writes that change nothing).
    saved: Option<String>,
    /// The restart events, replayable until [`REPLAY_WINDOW`] after they went out.
    replay: Option<Replay>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Copies a C string the broker owns; `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the duration of the call.
unsafe fn opt_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per the function's contract (Mosquitto's getters).
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

fn log(level: c_int, msg: &str) {
    let Ok(c) = CString::new(format!("classroom-plugin: {msg}")) else {
        return;
    };
    // SAFETY: a printf-style call with a constant "%s" format and one valid C string argument.
    unsafe { ffi::mosquitto_log_printf(level, c"%s".as_ptr(), c.as_ptr()) };
}

fn log_note(note: Option<Note>) {
    match note {
        Some(Note::Info(m)) => log(MOSQ_LOG_INFO, &m),
        Some(Note::Warning(m)) => log(MOSQ_LOG_WARNING, &m),
        Some(Note::Error(m)) => log(MOSQ_LOG_ERR, &m),
        None => {}
    }
}

/// Runs a callback body; a panic is logged and answered with `on_panic` instead of unwinding
/// into the broker (which would abort it).
fn guarded(what: &str, on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(rc) => rc,
        Err(_) => {
            log(
                MOSQ_LOG_ERR,
                &format!("internal error in the {what} callback"),
            );
            on_panic
        }
    }
}

/// Publishes `body` to `topic` at QoS 1 from the broker itself (no client ID: to all matching
/// subscribers, i.e. the backend's bridge). Returns the Mosquitto error code.
fn publish(topic: &CStr, body: &str) -> c_int {
    let Ok(len) = c_int::try_from(body.len()) else {
        return MOSQ_ERR_NOMEM;
    };
    // SAFETY: topic is a valid C string; the payload pointer/length describe `body`, which the
    // broker copies before returning (`_copy` variant); NULL properties are allowed.
    unsafe {
        ffi::mosquitto_broker_publish_copy(
            std::ptr::null(),
            topic.as_ptr(),
            len,
            body.as_ptr().cast(),
            1,
            false,
            std::ptr::null_mut(),
        )
    }
}

/// The client's username, without the NULL dereference of the crate's getter.
///
/// # Safety
/// `client` is a live client pointer handed to a callback by the broker.
unsafe fn username(client: *const MosquittoClient) -> Option<String> {
    // SAFETY: live client per contract; the getter returns NULL or a valid C string.
    unsafe { opt_str(ffi::mosquitto_client_username(client)) }
}

impl Plugin {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the tables consistent enough to go on (each
        // update is one insert or remove); refusing every later callback would be worse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes a lifecycle event on its IoT topic (or the configured single topic).
    fn publish_event(&self, topic: &str, body: &str) {
        let rc = match &self.config.presence_topic {
            Some(t) => publish(t, body),
            None => match CString::new(topic) {
                Ok(t) => publish(&t, body),
                Err(_) => ffi::MOSQ_ERR_INVAL,
            },
        };
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_WARNING,
                &format!("could not queue {topic}: error {rc}"),
            );
        }
    }

    /// Rewrites the live-sessions file if what it should say changed: the previous run's
    /// sessions not yet ended, then the live connections. Called with the lock held, after
    /// every change of a live session (the broker runs one thread: the file follows the table
    /// in order). A failed write is logged and retried at the next change.
    fn save_live(&self, st: &mut State) {
        let Some(path) = &self.config.sessions_file else {
            return;
        };
        let mut live = st.recovered.clone();
        live.extend(st.sessions.live());
        let text = live::encode(&live);
        if st.saved.as_deref() == Some(text.as_str()) {
            return;
        }
        match live::save(path, &text) {
            Ok(()) => st.saved = Some(text),
            Err(e) => log(
                MOSQ_LOG_WARNING,
                &format!(
                    "could not write the sessions file {}: {e} (a restart now would leave \
                     some sessions without their disconnected event)",
                    path.display()
                ),
            ),
        }
    }

    /// The first callback from the main loop after start-up (a tick, or a CONNECT if ticks
    /// do not run): publishes the `disconnected` events of the previous run's live sessions
    /// ([`live::restart_events`]), then rewrites the file without them. By then the broker
    /// has restored its persistent sessions (the backend's, subscribed at QoS 1, queues the
    /// events while its client is away).
    fn end_recovered(&self) {
        if !self.recovering.load(Ordering::Relaxed) {
            return;
        }
        let mut st = self.state();
        self.recovering.store(false, Ordering::Relaxed);
        let ended = std::mem::take(&mut st.recovered);
        if ended.is_empty() {
            return;
        }
        let events = live::restart_events(&ended, now_ms());
        st.replay = Some(Replay {
            events: events.clone(),
            until: Instant::now() + REPLAY_WINDOW,
        });
        self.replay_armed.store(true, Ordering::Relaxed);
        // A subscription made before this point receives these very events.
        self.replay_wanted.store(false, Ordering::Relaxed);
        // Published first, the file rewritten after: a crash in between publishes them again
        // at the next start, which presence ignores (see [`live`]), where the other order
        // would lose them.
        drop(st);
        for (l, (topic, body)) in ended.iter().zip(&events) {
            log(
                MOSQ_LOG_NOTICE,
                &format!(
                    "session {} of client {:?} was live when the broker stopped: \
                     disconnected (SERVER_INITIATED_DISCONNECT)",
                    l.session.session_id, l.session.client_id
                ),
            );
            self.publish_event(topic, body);
        }
        let mut st = self.state();
        self.save_live(&mut st);
    }

    /// On a tick: the restart events once more if a backend subscribed to the lifecycle
    /// topics since they went out (a backend whose persistent session the broker could not
    /// restore, e.g. after a kill -9 before any autosave, subscribes anew and would otherwise
    /// miss them); nothing after [`REPLAY_WINDOW`].
    fn replay(&self) {
        if !self.replay_armed.load(Ordering::Relaxed) {
            return;
        }
        let wanted = self.replay_wanted.swap(false, Ordering::Relaxed);
        let mut st = self.state();
        let events = match &st.replay {
            Some(r) if Instant::now() >= r.until => {
                st.replay = None;
                self.replay_armed.store(false, Ordering::Relaxed);
                return;
            }
            Some(r) if wanted => r.events.clone(),
            _ => return,
        };
        drop(st);
        log(
            MOSQ_LOG_INFO,
            &format!(
                "a backend subscribed to the lifecycle events: the {} restart event(s) again",
                events.len()
            ),
        );
        for (topic, body) in &events {
            self.publish_event(topic, body);
        }
    }

    fn is_backend(&self, user: Option<&str>) -> bool {
        user == Some(self.config.backend_username.as_str())
    }

    /// Decides a CONNECT (see [`auth::decide`]) and records an accepted one.
    fn authenticate(&self, ev: &ffi::EvtBasicAuth) -> c_int {
        if ev.client.is_null() {
            return MOSQ_ERR_AUTH;
        }
        // SAFETY: the event's strings are NULL or valid C strings; `client` is the live
        // connection being authenticated.
        let (user, password, client_id, ip) = unsafe {
            (
                opt_str(ev.username),
                opt_str(ev.password),
                opt_str(ffi::mosquitto_client_id(ev.client)),
                opt_str(ffi::mosquitto_client_address(ev.client)),
            )
        };
        let conn = ev.client as usize;
        self.end_recovered();
        let mut st = self.state();
        // A new connection at this address: whatever was recorded there is gone.
        st.sessions.forget(conn);
        if self.is_backend(user.as_deref()) {
            return MOSQ_ERR_PLUGIN_DEFER;
        }
        log_note(st.keys.refresh());
        log_note(st.revocations.refresh());
        let decision = auth::decide(
            user.as_deref(),
            password.as_deref(),
            client_id.as_deref(),
            &self.config.backend_username,
            st.keys.keys(),
            st.revocations.current(),
            now_s(),
        );
        match (decision, client_id) {
            (ConnectDecision::Backend, _) => MOSQ_ERR_PLUGIN_DEFER,
            (ConnectDecision::Allow(grant), Some(client_id)) => {
                let session = Session {
                    client_id,
                    session_id: uuid::Uuid::new_v4().to_string(),
                    ip_address: ip,
                    username: user,
                };
                let version = st.sessions.connect(conn, session.clone(), grant);
                self.save_live(&mut st);
                drop(st);
                let (topic, body) = records::connected_event(&session, now_ms(), version);
                self.publish_event(&topic, &body);
                MOSQ_ERR_SUCCESS
            }
            (ConnectDecision::Allow(_), None) => MOSQ_ERR_AUTH,
            (ConnectDecision::Deny(why), client_id) => {
                drop(st);
                log(
                    MOSQ_LOG_NOTICE,
                    &format!(
                        "refused CONNECT of client {:?} from {}: {} (code {}): {why}",
                        client_id.as_deref().unwrap_or(""),
                        ip.as_deref().unwrap_or("?"),
                        why.kind(),
                        why.code(),
                    ),
                );
                MOSQ_ERR_AUTH
            }
        }
    }

    /// Answers an ACL check (see [`auth::check_access`]).
    fn acl_check(&self, ev: &ffi::EvtAclCheck) -> c_int {
        if ev.client.is_null() || ev.topic.is_null() {
            return MOSQ_ERR_ACL_DENIED;
        }
        // SAFETY: `client` is the connection the check is about; the getter returns NULL or a
        // valid C string, read here without copying.
        let user = unsafe { ffi::mosquitto_client_username(ev.client) };
        if !user.is_null()
            // SAFETY: non-null, NUL-terminated (the broker's username string).
            && unsafe { CStr::from_ptr(user) }.to_bytes()
                == self.config.backend_username.as_bytes()
        {
            if self.replay_armed.load(Ordering::Relaxed) && ev.access == ffi::MOSQ_ACL_SUBSCRIBE {
                // SAFETY: the topic (here the filter) of an ACL check is a valid C string.
                let filter = unsafe { CStr::from_ptr(ev.topic) }.to_string_lossy();
                let single = self
                    .config
                    .presence_topic
                    .as_ref()
                    .map(|t| t.to_string_lossy());
                if records::may_receive_disconnects(&filter, single.as_deref()) {
                    self.replay_wanted.store(true, Ordering::Relaxed);
                }
            }
            return MOSQ_ERR_PLUGIN_DEFER;
        }
        // SAFETY: the topic of an ACL check is a valid C string owned by the broker.
        let Ok(topic) = unsafe { CStr::from_ptr(ev.topic) }.to_str() else {
            return MOSQ_ERR_ACL_DENIED;
        };
        let conn = ev.client as usize;
        let (verdict, throttled) = {
            let mut st = self.state();
            let verdict = st.sessions.check(conn, ev.access, topic, now_s());
            // Every publish request of a classroom connection counts, granted or not.
            let seq = st.sessions.get(conn).map(|e| e.seq);
            let throttled = match (Access::from_mosquitto(ev.access), seq) {
                (Some(Access::Write), Some(seq)) => {
                    let now_ms =
                        u64::try_from(st.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    st.limiter.check(conn, seq, now_ms)
                }
                _ => rate::Verdict::Allow,
            };
            (verdict, throttled)
        };
        match (verdict, throttled) {
            (AclVerdict::Allow, rate::Verdict::Throttled { first }) => {
                // A flood is one notice line, not one per publish.
                let level = if first {
                    MOSQ_LOG_NOTICE
                } else {
                    MOSQ_LOG_DEBUG
                };
                // SAFETY: `client` as above.
                let client_id = unsafe { opt_str(ffi::mosquitto_client_id(ev.client)) };
                log(
                    level,
                    &format!(
                        "throttled publish {topic:?} of client {:?}: over {} publishes per second \
                         per connection (AWS IoT Core's limit); dropped",
                        client_id.as_deref().unwrap_or(""),
                        self.config.publish_per_second,
                    ),
                );
                MOSQ_ERR_ACL_DENIED
            }
            (AclVerdict::Allow, rate::Verdict::Allow) => MOSQ_ERR_SUCCESS,
            (AclVerdict::Defer, _) => MOSQ_ERR_PLUGIN_DEFER,
            (AclVerdict::Deny(why), _) => {
                // Denied deliveries are routine (a persistent subscription from an older token,
                // a kicked connection's last messages): debug only, like Mosquitto's own.
                let level = match Access::from_mosquitto(ev.access) {
                    Some(Access::Read) => MOSQ_LOG_DEBUG,
                    _ => MOSQ_LOG_NOTICE,
                };
                // SAFETY: `client` as above.
                let client_id = unsafe { opt_str(ffi::mosquitto_client_id(ev.client)) };
                log(
                    level,
                    &format!(
                        "denied {} {topic:?} to client {:?}: {} (code {}): {why}",
                        Access::from_mosquitto(ev.access).map_or("access", Access::as_str),
                        client_id.as_deref().unwrap_or(""),
                        why.kind(),
                        why.code(),
                    ),
                );
                MOSQ_ERR_ACL_DENIED
            }
        }
    }

    /// The sweep, at most once per [`SWEEP_INTERVAL`].
    fn tick(&self) {
        self.end_recovered();
        self.replay();
        let mut st = self.state();
        let now = Instant::now();
        if st
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < SWEEP_INTERVAL)
        {
            return;
        }
        st.last_sweep = Some(now);
        log_note(st.revocations.refresh());
        let State {
            sessions,
            revocations,
            limiter,
            ..
        } = &mut *st;
        let kicks = sessions.sweep(revocations.current(), now_s());
        // Buckets of connections that are gone or signed in again go with them.
        limiter.retain(|conn, seq| sessions.get(conn).is_some_and(|e| e.online && e.seq == seq));
        // The kick runs the disconnect callback, which takes the lock: release it first.
        drop(st);
        for kick in kicks {
            log(
                MOSQ_LOG_NOTICE,
                &format!(
                    "disconnecting client {:?}: {}",
                    kick.client_id,
                    kick.why.as_str()
                ),
            );
            let Ok(id) = CString::new(kick.client_id.as_str()) else {
                continue;
            };
            // SAFETY: a valid C string; called from the broker's main loop (the tick), where a
            // kick is allowed; the broker does not keep the pointer.
            let rc = unsafe { ffi::mosquitto_kick_client_by_clientid(id.as_ptr(), false) };
            if rc != MOSQ_ERR_SUCCESS {
                log(
                    MOSQ_LOG_WARNING,
                    &format!("could not kick client {:?}: error {rc}", kick.client_id),
                );
            }
        }
    }

    fn on_disconnect(&self, client: *mut MosquittoClient) {
        let ended = {
            let mut st = self.state();
            let ended = st.sessions.disconnect(client as usize);
            if ended.is_some() {
                self.save_live(&mut st);
            }
            ended
        };
        if let Some(d) = ended {
            let (topic, body) =
                records::disconnected_event(&d.session, now_ms(), d.version, d.cause);
            self.publish_event(&topic, &body);
        }
    }

    fn on_message(&self, ev: &ffi::EvtMessage) -> c_int {
        // SAFETY: the topic of a message event is a valid C string owned by the broker.
        let Some(topic) = (unsafe { opt_str(ev.topic) }) else {
            return MOSQ_ERR_SUCCESS;
        };
        if !records::is_uplink(&topic, &self.config.uplink_parents) || ev.client.is_null() {
            return MOSQ_ERR_SUCCESS;
        }
        // SAFETY: the publisher's live client pointer.
        let (user, client_id) = unsafe {
            (
                username(ev.client),
                opt_str(ffi::mosquitto_client_id(ev.client)),
            )
        };
        if self.is_backend(user.as_deref()) {
            return MOSQ_ERR_SUCCESS;
        }
        let Some(client_id) = client_id else {
            return MOSQ_ERR_SUCCESS;
        };
        let payload: &[u8] = if ev.payload.is_null() || ev.payloadlen == 0 {
            &[]
        } else {
            // SAFETY: the broker hands `payloadlen` readable bytes at `payload` for this call.
            unsafe { std::slice::from_raw_parts(ev.payload.cast::<u8>(), ev.payloadlen as usize) }
        };
        let body = records::uplink_record(&topic, &client_id, now_ms(), payload, ev.qos);
        let rc = publish(&self.config.uplink_topic, &body);
        if rc != MOSQ_ERR_SUCCESS {
            // Refusing the publish makes the client retry it rather than lose the record.
            log(
                MOSQ_LOG_WARNING,
                &format!("could not queue the record of {topic}: error {rc}"),
            );
        }
        rc
    }
}

/// The plugin and the event of one callback.
///
/// # Safety
/// `userdata` is the `*const Plugin` registered in init (alive until cleanup) and
/// `event_data` points to the event struct `T` of the event the callback was registered for.
unsafe fn args<'a, T>(
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> Option<(&'a Plugin, &'a T)> {
    // SAFETY: per the function's contract; both may be NULL (then `None`).
    unsafe {
        Some((
            userdata.cast::<Plugin>().as_ref()?,
            event_data.cast::<T>().as_ref()?,
        ))
    }
}

unsafe extern "C" fn cb_basic_auth(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered for MOSQ_EVT_BASIC_AUTH, whose data is a `mosquitto_evt_basic_auth`.
    let Some((plugin, ev)) = (unsafe { args::<ffi::EvtBasicAuth>(event_data, userdata) }) else {
        return MOSQ_ERR_AUTH;
    };
    guarded("basic auth", MOSQ_ERR_AUTH, || plugin.authenticate(ev))
}

unsafe extern "C" fn cb_acl_check(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered for MOSQ_EVT_ACL_CHECK, whose data is a `mosquitto_evt_acl_check`.
    let Some((plugin, ev)) = (unsafe { args::<ffi::EvtAclCheck>(event_data, userdata) }) else {
        return MOSQ_ERR_ACL_DENIED;
    };
    guarded("ACL check", MOSQ_ERR_ACL_DENIED, || plugin.acl_check(ev))
}

unsafe extern "C" fn cb_tick(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered for MOSQ_EVT_TICK, whose data is a `mosquitto_evt_tick` (unused).
    let Some((plugin, _)) = (unsafe { args::<ffi::EvtTick>(event_data, userdata) }) else {
        return MOSQ_ERR_SUCCESS;
    };
    guarded("tick", MOSQ_ERR_SUCCESS, || {
        plugin.tick();
        MOSQ_ERR_SUCCESS
    })
}

unsafe extern "C" fn cb_disconnect(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered for MOSQ_EVT_DISCONNECT, whose data is a `mosquitto_evt_disconnect`.
    let Some((plugin, ev)) = (unsafe { args::<ffi::EvtDisconnect>(event_data, userdata) }) else {
        return MOSQ_ERR_SUCCESS;
    };
    guarded("disconnect", MOSQ_ERR_SUCCESS, || {
        plugin.on_disconnect(ev.client);
        MOSQ_ERR_SUCCESS
    })
}

unsafe extern "C" fn cb_message(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered for MOSQ_EVT_MESSAGE, whose data is a `mosquitto_evt_message`.
    let Some((plugin, ev)) = (unsafe { args::<ffi::EvtMessage>(event_data, userdata) }) else {
        return MOSQ_ERR_SUCCESS;
    };
    // A panic refuses the publish (the client retries) rather than drop its record.
    guarded("message", ffi::MOSQ_ERR_UNKNOWN, || plugin.on_message(ev))
}

const CALLBACKS: [(c_int, ffi::Callback); 5] = [
    (MOSQ_EVT_BASIC_AUTH, cb_basic_auth),
    (MOSQ_EVT_ACL_CHECK, cb_acl_check),
    (MOSQ_EVT_TICK, cb_tick),
    (MOSQ_EVT_DISCONNECT, cb_disconnect),
    (MOSQ_EVT_MESSAGE, cb_message),
];

/// Plugin API negotiation: we speak version 5 only.
///
/// # Safety
/// Called by Mosquitto with `count` readable versions at `versions`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(count: c_int, versions: *const c_int) -> c_int {
    if versions.is_null() || count <= 0 {
        return -1;
    }
    // SAFETY: the broker passes `count` ints at `versions`.
    let offered = unsafe { std::slice::from_raw_parts(versions, count as usize) };
    if offered.contains(&5) { 5 } else { -1 }
}

/// Reads the options, loads the key and revocation files and registers the five callbacks.
///
/// # Safety
/// Called once by Mosquitto with its plugin identifier and `count` options at `opts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    id: *mut PluginId,
    userdata: *mut *mut c_void,
    opts: *mut ffi::Opt,
    count: c_int,
) -> c_int {
    // SAFETY: the broker's arguments, passed on unchanged.
    guarded("init", ffi::MOSQ_ERR_UNKNOWN, || unsafe {
        init(id, userdata, opts, count)
    })
}

/// [`mosquitto_plugin_init`]'s body.
///
/// # Safety
/// As [`mosquitto_plugin_init`].
unsafe fn init(
    id: *mut PluginId,
    userdata: *mut *mut c_void,
    opts: *mut ffi::Opt,
    count: c_int,
) -> c_int {
    let mut config = Config::default();
    if !opts.is_null() && count > 0 {
        // SAFETY: the broker passes `count` options, each with C string key and value.
        let options = unsafe { std::slice::from_raw_parts(opts, count as usize) };
        for o in options {
            // SAFETY: option strings are valid C strings owned by the broker.
            let (Some(k), Some(v)) = (unsafe { opt_str(o.key) }, unsafe { opt_str(o.value) })
            else {
                continue;
            };
            match k.as_str() {
                "keys_file" => config.keys_file = Some(PathBuf::from(v)),
                "revocations_file" => config.revocations_file = Some(PathBuf::from(v)),
                "clients_file" => log(
                    MOSQ_LOG_WARNING,
                    "plugin_opt_clients_file is ignored: classroom clients sign in with tokens \
                     (plugin_opt_keys_file)",
                ),
                "backend_username" => config.backend_username = v,
                "uplink_parents" => {
                    config.uplink_parents = v
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                }
                "uplink_topic" => match CString::new(v) {
                    Ok(c) => config.uplink_topic = c,
                    Err(_) => return ffi::MOSQ_ERR_INVAL,
                },
                "presence_topic" => match CString::new(v) {
                    Ok(c) => config.presence_topic = Some(c),
                    Err(_) => return ffi::MOSQ_ERR_INVAL,
                },
                "sessions_file" => config.sessions_file = Some(PathBuf::from(v)),
                "publish_per_second" => match v.trim().parse::<u32>() {
                    Ok(n) => config.publish_per_second = n,
                    Err(_) => {
                        log(
                            MOSQ_LOG_ERR,
                            &format!(
                                "plugin_opt_publish_per_second {v:?} is not a whole number: set \
                                 it to the publishes per second allowed per classroom connection \
                                 (100 as AWS IoT Core, 0 for no limit)"
                            ),
                        );
                        return ffi::MOSQ_ERR_INVAL;
                    }
                },
                _ => {}
            }
        }
    }
    let Some(keys_file) = config.keys_file.clone() else {
        log(
            MOSQ_LOG_ERR,
            "plugin_opt_keys_file is required: the token key set JSON \
             {\"current\":\"<kid>\",\"keys\":{\"<kid>\":\"<base64url secret>\"}}",
        );
        return ffi::MOSQ_ERR_INVAL;
    };
    log(
        MOSQ_LOG_INFO,
        &format!(
            "token sign-in with keys {}, revocations {}; uplink {:?} -> {:?}, lifecycle -> {:?}, \
             backend user {:?} deferred to password_file/acl_file",
            keys_file.display(),
            config
                .revocations_file
                .as_ref()
                .map_or("(none)".to_owned(), |p| p.display().to_string()),
            config.uplink_parents,
            config.uplink_topic,
            config.presence_topic,
            config.backend_username
        ),
    );
    log(
        MOSQ_LOG_INFO,
        &match config.publish_per_second {
            0 => "classroom connections: no publish limit".to_owned(),
            n => format!("classroom connections: at most {n} publishes per second each"),
        },
    );
    // The previous run's live sessions: ended on the first tick (see `end_recovered`); their
    // clients' versions continue past them from now on.
    let recovered = match &config.sessions_file {
        Some(path) => {
            let (recovered, note) = live::load(path);
            log_note(note);
            recovered
        }
        None => {
            log(
                MOSQ_LOG_INFO,
                "no plugin_opt_sessions_file: sessions live when the broker stops get no \
                 disconnected event",
            );
            Vec::new()
        }
    };
    let mut sessions = Sessions::default();
    sessions.continue_versions(&recovered);
    let recovering = !recovered.is_empty();
    let mut state = State {
        sessions,
        keys: KeysFile::new(keys_file),
        revocations: RevocationsFile::new(config.revocations_file.clone()),
        last_sweep: None,
        limiter: rate::Limiter::new(config.publish_per_second),
        started: Instant::now(),
        recovered,
        saved: None,
        replay: None,
    };
    // Read both now, so the log shows at start-up whether sign-in can work.
    log_note(state.keys.refresh());
    log_note(state.revocations.refresh());
    let plugin = Box::into_raw(Box::new(Plugin {
        id,
        config,
        state: Mutex::new(state),
        recovering: AtomicBool::new(recovering),
        replay_armed: AtomicBool::new(false),
        replay_wanted: AtomicBool::new(false),
    }));
    for (event, cb) in CALLBACKS {
        // SAFETY: `id` is the identifier the broker gave us; `plugin` outlives the registration
        // (freed in cleanup after unregistering).
        let rc = unsafe {
            ffi::mosquitto_callback_register(id, event, cb, std::ptr::null(), plugin.cast())
        };
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_WARNING,
                &format!("could not register callback for event {event}: error {rc}"),
            );
            return rc;
        }
    }
    if !userdata.is_null() {
        // SAFETY: the broker hands a valid out-pointer for our userdata.
        unsafe { *userdata = plugin.cast() };
    }
    MOSQ_ERR_SUCCESS
}

/// Unregisters the callbacks and frees the state.
///
/// The live sessions' `disconnected` events are *not* published here: Mosquitto 2.0 calls
/// this after the main loop ended, after it saved its persistence and freed every client
/// context (the backend's included) and closed its database, so a message queued now would
/// reach no subscriber and would not be saved. The live-sessions file, left as it is, makes
/// the next start publish them ([`live`]), after a SIGTERM as after a kill -9.
///
/// # Safety
/// Called once by Mosquitto with the userdata set in [`mosquitto_plugin_init`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _opts: *mut ffi::Opt,
    _count: c_int,
) -> c_int {
    let plugin = userdata.cast::<Plugin>();
    if plugin.is_null() {
        return MOSQ_ERR_SUCCESS;
    }
    // SAFETY: `plugin` came from Box::into_raw in init and is freed only here.
    unsafe {
        let id = (*plugin).id;
        for (event, cb) in CALLBACKS {
            ffi::mosquitto_callback_unregister(id, event, cb, std::ptr::null());
        }
        drop(Box::from_raw(plugin));
    }
    MOSQ_ERR_SUCCESS
}
