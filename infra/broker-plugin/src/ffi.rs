//! The few declarations of Mosquitto 2.0's plugin API v5 that the plugin uses, written from
//! `mosquitto_broker.h` / `mosquitto_plugin.h` / `mosquitto.h` of 2.0.11. The symbols are
//! resolved at load time from the `mosquitto` executable, so the `cdylib` links with them
//! undefined and needs no import library.
#![allow(missing_docs, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

/// `struct mosquitto` (one client connection); opaque.
#[repr(C)]
pub struct Mosquitto {
    _opaque: [u8; 0],
}

/// `mosquitto_plugin_id_t`; opaque.
#[repr(C)]
pub struct PluginId {
    _opaque: [u8; 0],
}

/// `struct mosquitto_opt`.
#[repr(C)]
pub struct Opt {
    pub key: *mut c_char,
    pub value: *mut c_char,
}

/// `struct mosquitto_evt_basic_auth`.
#[repr(C)]
pub struct EvtBasicAuth {
    pub future: *mut c_void,
    pub client: *mut Mosquitto,
    pub username: *mut c_char,
    pub password: *mut c_char,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_message`.
#[repr(C)]
pub struct EvtMessage {
    pub future: *mut c_void,
    pub client: *mut Mosquitto,
    pub topic: *mut c_char,
    pub payload: *mut c_void,
    pub properties: *mut c_void,
    pub reason_string: *mut c_char,
    pub payloadlen: u32,
    pub qos: u8,
    pub reason_code: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect`.
#[repr(C)]
pub struct EvtDisconnect {
    pub future: *mut c_void,
    pub client: *mut Mosquitto,
    /// Always -1 in 2.0.11.
    pub reason: c_int,
    pub future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
pub type Callback =
    unsafe extern "C" fn(event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int;

// enum mosquitto_plugin_event
pub const MOSQ_EVT_BASIC_AUTH: c_int = 3;
pub const MOSQ_EVT_MESSAGE: c_int = 7;
pub const MOSQ_EVT_DISCONNECT: c_int = 10;

// enum mosq_err_t
pub const MOSQ_ERR_SUCCESS: c_int = 0;
pub const MOSQ_ERR_NOMEM: c_int = 1;
pub const MOSQ_ERR_INVAL: c_int = 3;
pub const MOSQ_ERR_AUTH: c_int = 11;
pub const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;

// log levels
pub const MOSQ_LOG_INFO: c_int = 0x01;
pub const MOSQ_LOG_NOTICE: c_int = 0x02;
pub const MOSQ_LOG_WARNING: c_int = 0x04;
pub const MOSQ_LOG_ERR: c_int = 0x08;

unsafe extern "C" {
    pub fn mosquitto_callback_register(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    pub fn mosquitto_callback_unregister(
        identifier: *mut PluginId,
        event: c_int,
        cb_func: Callback,
        event_data: *const c_void,
    ) -> c_int;
    pub fn mosquitto_client_id(client: *const Mosquitto) -> *const c_char;
    pub fn mosquitto_client_address(client: *const Mosquitto) -> *const c_char;
    pub fn mosquitto_client_username(client: *const Mosquitto) -> *const c_char;
    pub fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut c_void,
    ) -> c_int;
    pub fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
}
