//! A Mosquitto 2.0 (plugin API v5) plugin that emulates AWS IoT Core's broker-side rules on a
//! local broker (SPEC §2, §4.1, §4.4, §7):
//!
//! - **uplink rule**: every accepted publish under an uplink parent (`roomSend/#`) becomes the
//!   §4.1 record, with the client ID taken from the broker, republished at QoS 1 to
//!   `$classroom/uplink`;
//! - **lifecycle events**: every CONNECT (seen through the basic-auth callback, which 2.0.11
//!   calls for every CONNECT, anonymous ones included; there is no connect event before 2.1)
//!   and every disconnect becomes an AWS IoT lifecycle event JSON with a fresh session identifier
//!   per connection, published at QoS 1 where AWS IoT Core publishes it:
//!   `$aws/events/presence/{connected|disconnected}/<clientId>`.
//!
//! - **identity**: as IoT Core binds a client ID to its certificate, the plugin binds it to a
//!   roster ([`auth`]): a classroom client signs in with its client ID as username and its
//!   password from the clients file, re-read on every CONNECT (so `stack.sh add-client` needs
//!   no reload). Anything else is refused before any lifecycle event is published or a live
//!   session is marked as taken over. The backend username is deferred to `password_file`.
//!
//! Only the backend identity may read `$classroom/#` and `$aws/events/presence/#` (ACL file),
//! and no client may write there. The plugin registers no ACL callback: `acl_file` decides
//! every publish and subscribe.
//!
//! Why hand-written FFI rather than the `mosquitto-plugin` crate: we need seven functions and
//! three event structs of a stable C ABI; the crate needs bindgen + libclang at build time, and
//! its default callbacks grant access (bypassing `acl_file`/`password_file`) and its
//! `get_username()` dereferences NULL for anonymous clients. Here nothing is registered that we
//! do not implement.
//!
//! Layout: [`records`] builds the JSON and [`auth`] decides a CONNECT (both pure, unit-tested);
//! [`ffi`] declares the C API; this
//! file holds the state (live sessions keyed by the broker's client pointer) and the callbacks.
//!
//! Options (`plugin_opt_<name> <value>` in mosquitto.conf): `clients_file` (required: the
//! roster, one `<clientId> <password>` per line), and optionally `backend_username` (default `backend`: its publishes and connections are not recorded),
//! `uplink_parents` (comma-separated, default `roomSend`), `uplink_topic`
//! (default `$classroom/uplink`), `presence_topic` (default: none, each event on its own
//! `$aws/events/presence/...` topic; set it to send every event to one topic instead).

pub mod auth;
pub mod ffi;
pub mod records;

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use auth::Decision;
use ffi::{
    MOSQ_ERR_AUTH, MOSQ_ERR_NOMEM, MOSQ_ERR_PLUGIN_DEFER, MOSQ_ERR_SUCCESS, MOSQ_EVT_BASIC_AUTH,
    MOSQ_EVT_DISCONNECT, MOSQ_EVT_MESSAGE, MOSQ_LOG_ERR, MOSQ_LOG_INFO, MOSQ_LOG_NOTICE,
    MOSQ_LOG_WARNING, Mosquitto, PluginId,
};
use records::{DisconnectCause, Session};

/// The plugin's configuration, from `plugin_opt_*`.
#[derive(Debug, Clone)]
struct Config {
    clients_file: Option<PathBuf>,
    backend_username: String,
    uplink_parents: Vec<String>,
    uplink_topic: CString,
    presence_topic: Option<CString>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            clients_file: None,
            backend_username: "backend".into(),
            uplink_parents: vec!["roomSend".into()],
            uplink_topic: c"$classroom/uplink".into(),
            presence_topic: None,
        }
    }
}

/// A live session and whether a newer CONNECT with its client ID has been seen.
#[derive(Debug)]
struct Live {
    session: Session,
    taken_over: bool,
}

/// Everything the callbacks share. Mosquitto 2.0 runs plugins on its single main thread; the
/// mutex only makes that assumption unnecessary.
#[derive(Debug)]
struct Plugin {
    id: *mut PluginId,
    config: Config,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Live connections keyed by the address of the broker's `struct mosquitto` (one per
    /// connection; removed on disconnect, before the broker frees it).
    sessions: HashMap<usize, Live>,
    /// Per client ID, the last lifecycle event version (monotonic, like IoT's versionNumber).
    versions: HashMap<String, u64>,
}

impl State {
    fn next_version(&mut self, client_id: &str) -> u64 {
        let v = self.versions.entry(client_id.to_owned()).or_insert(0);
        *v += 1;
        *v
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
unsafe fn username(client: *const Mosquitto) -> Option<String> {
    // SAFETY: live client per contract; the getter returns NULL or a valid C string.
    unsafe { opt_str(ffi::mosquitto_client_username(client)) }
}

impl Plugin {
    /// Publishes a lifecycle event on its IoT topic (or the configured single topic).
    fn publish_event(&self, topic: &str, body: &str) -> c_int {
        match &self.config.presence_topic {
            Some(t) => publish(t, body),
            None => match CString::new(topic) {
                Ok(t) => publish(&t, body),
                Err(_) => ffi::MOSQ_ERR_INVAL,
            },
        }
    }

    /// Decides a CONNECT against the roster, read afresh (a missing or unreadable file refuses
    /// every classroom client, with the reason in the broker's log).
    fn authenticate(&self, ev: &ffi::EvtBasicAuth) -> c_int {
        // SAFETY: the event's strings are NULL or valid C strings; `client` is the live
        // connection being authenticated.
        let (user, password, client_id) = unsafe {
            (
                opt_str(ev.username),
                opt_str(ev.password),
                if ev.client.is_null() {
                    None
                } else {
                    opt_str(ffi::mosquitto_client_id(ev.client))
                },
            )
        };
        let clients = match &self.config.clients_file {
            Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
                log(
                    MOSQ_LOG_WARNING,
                    &format!("cannot read the clients file {}: {e}", path.display()),
                );
                String::new()
            }),
            None => String::new(),
        };
        match auth::decide(
            user.as_deref(),
            password.as_deref(),
            client_id.as_deref(),
            &self.config.backend_username,
            &clients,
        ) {
            Decision::Backend => MOSQ_ERR_PLUGIN_DEFER,
            Decision::Allow => {
                self.on_connect(ev.client, user.as_deref());
                MOSQ_ERR_SUCCESS
            }
            Decision::Deny(why) => {
                log(MOSQ_LOG_NOTICE, &format!("refused {why}"));
                MOSQ_ERR_AUTH
            }
        }
    }

    fn is_backend(&self, user: Option<&str>) -> bool {
        user == Some(self.config.backend_username.as_str())
    }

    fn on_connect(&self, client: *mut Mosquitto, user: Option<&str>) {
        if client.is_null() || self.is_backend(user) {
            return;
        }
        // SAFETY: `client` is the live connection the broker is authenticating.
        let (client_id, ip) = unsafe {
            (
                opt_str(ffi::mosquitto_client_id(client)),
                opt_str(ffi::mosquitto_client_address(client)),
            )
        };
        let Some(client_id) = client_id else { return };
        let session = Session {
            client_id: client_id.clone(),
            session_id: uuid::Uuid::new_v4().to_string(),
            ip_address: ip,
            username: user.map(str::to_owned),
        };
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        // A CONNECT with a client ID that is live elsewhere takes that connection over; the
        // broker disconnects the old one right after authentication.
        let key = client as usize;
        for (k, live) in st.sessions.iter_mut() {
            if *k != key && live.session.client_id == client_id {
                live.taken_over = true;
            }
        }
        let version = st.next_version(&client_id);
        let (topic, body) = records::connected_event(&session, now_ms(), version);
        st.sessions.insert(
            key,
            Live {
                session,
                taken_over: false,
            },
        );
        drop(st);
        let rc = self.publish_event(&topic, &body);
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_WARNING,
                &format!("could not queue {topic}: error {rc}"),
            );
        }
    }

    fn on_disconnect(&self, client: *mut Mosquitto) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        // Only connections whose CONNECT we saw (never the backend's) have a session.
        let Some(live) = st.sessions.remove(&(client as usize)) else {
            return;
        };
        let cause = if live.taken_over {
            DisconnectCause::Takeover
        } else {
            DisconnectCause::Unknown
        };
        let version = st.next_version(&live.session.client_id);
        drop(st);
        let (topic, body) = records::disconnected_event(&live.session, now_ms(), version, cause);
        let rc = self.publish_event(&topic, &body);
        if rc != MOSQ_ERR_SUCCESS {
            log(
                MOSQ_LOG_WARNING,
                &format!("could not queue {topic}: error {rc}"),
            );
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

unsafe extern "C" fn cb_basic_auth(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered with a `*const Plugin` userdata that lives until cleanup, and the broker
    // passes a `mosquitto_evt_basic_auth` for MOSQ_EVT_BASIC_AUTH.
    unsafe {
        match (
            userdata.cast::<Plugin>().as_ref(),
            event_data.cast::<ffi::EvtBasicAuth>().as_ref(),
        ) {
            (Some(plugin), Some(ev)) => plugin.authenticate(ev),
            _ => MOSQ_ERR_AUTH,
        }
    }
}

unsafe extern "C" fn cb_disconnect(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: as above, with a `mosquitto_evt_disconnect`.
    unsafe {
        if let (Some(plugin), Some(ev)) = (
            userdata.cast::<Plugin>().as_ref(),
            event_data.cast::<ffi::EvtDisconnect>().as_ref(),
        ) {
            plugin.on_disconnect(ev.client);
        }
    }
    MOSQ_ERR_SUCCESS
}

unsafe extern "C" fn cb_message(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: as above, with a `mosquitto_evt_message`.
    unsafe {
        match (
            userdata.cast::<Plugin>().as_ref(),
            event_data.cast::<ffi::EvtMessage>().as_ref(),
        ) {
            (Some(plugin), Some(ev)) => plugin.on_message(ev),
            _ => MOSQ_ERR_SUCCESS,
        }
    }
}

const CALLBACKS: [(c_int, ffi::Callback); 3] = [
    (MOSQ_EVT_BASIC_AUTH, cb_basic_auth),
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

/// Reads the options and registers the three callbacks.
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
                "clients_file" => config.clients_file = Some(PathBuf::from(v)),
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
                _ => {}
            }
        }
    }
    let Some(clients_file) = &config.clients_file else {
        log(
            MOSQ_LOG_ERR,
            "plugin_opt_clients_file is required: the roster of classroom clients, one \
             `<clientId> <password>` per line (infra/local/stack.sh writes it)",
        );
        return ffi::MOSQ_ERR_INVAL;
    };
    log(
        MOSQ_LOG_INFO,
        &format!(
            "clients from {}, uplink {:?} -> {:?}, lifecycle -> {:?}, backend user {:?} not recorded",
            clients_file.display(),
            config.uplink_parents,
            config.uplink_topic,
            config.presence_topic,
            config.backend_username
        ),
    );
    let plugin = Box::into_raw(Box::new(Plugin {
        id,
        config,
        state: Mutex::new(State::default()),
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
