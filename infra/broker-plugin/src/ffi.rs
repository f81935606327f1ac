//! The few declarations of Mosquitto 2.0's plugin API v5 that the plugin uses, written from
//! `mosquitto_broker.h` / `mosquitto_plugin.h` / `mosquitto.h` of 2.0.11. The symbols are
//! resolved at load time from the `mosquitto` executable, so the `cdylib` links with them
//! undefined and needs no import library.
#![allow(missing_docs, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_long, c_void};

/// `struct mosquitto` (one client connection); opaque.
#[repr(C)]
pub struct MosquittoClient {
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
    pub client: *mut MosquittoClient,
    pub username: *mut c_char,
    pub password: *mut c_char,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_message`.
#[repr(C)]
pub struct EvtMessage {
    pub future: *mut c_void,
    pub client: *mut MosquittoClient,
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

/// `struct mosquitto_evt_acl_check` (mosquitto_broker.h of 2.0.11, lines 80-91).
#[repr(C)]
pub struct EvtAclCheck {
    pub future: *mut c_void,
    pub client: *mut MosquittoClient,
    pub topic: *const c_char,
    pub payload: *const c_void,
    /// `mosquitto_property *`; always NULL in 2.0.11 (security.c sets it so).
    pub properties: *mut c_void,
    /// One of `MOSQ_ACL_READ`, `_WRITE`, `_SUBSCRIBE`, `_UNSUBSCRIBE`.
    pub access: c_int,
    pub payloadlen: u32,
    pub qos: u8,
    pub retain: bool,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_tick` (mosquitto_broker.h of 2.0.11, lines 157-164). `time_t` is
/// `long` on the 64-bit Linux targets this plugin is built for. 2.0.11 zeroes every field
/// ("FIXME - set now_s" in plugin.c), so the plugin reads its own clock.
#[repr(C)]
pub struct EvtTick {
    pub future: *mut c_void,
    pub now_ns: c_long,
    pub next_ns: c_long,
    pub now_s: c_long,
    pub next_s: c_long,
    pub future2: [*mut c_void; 4],
}

/// `struct mosquitto_evt_disconnect`.
#[repr(C)]
pub struct EvtDisconnect {
    pub future: *mut c_void,
    pub client: *mut MosquittoClient,
    /// Always -1 in 2.0.11.
    pub reason: c_int,
    pub future2: [*mut c_void; 4],
}

/// `MOSQ_FUNC_generic_callback`.
pub type Callback =
    unsafe extern "C" fn(event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int;

// enum mosquitto_plugin_event (mosquitto_broker.h)
pub const MOSQ_EVT_ACL_CHECK: c_int = 2;
pub const MOSQ_EVT_BASIC_AUTH: c_int = 3;
pub const MOSQ_EVT_MESSAGE: c_int = 7;
pub const MOSQ_EVT_TICK: c_int = 9;
pub const MOSQ_EVT_DISCONNECT: c_int = 10;

// ACL access values (mosquitto_plugin.h)
pub const MOSQ_ACL_READ: c_int = 0x01;
pub const MOSQ_ACL_WRITE: c_int = 0x02;
pub const MOSQ_ACL_SUBSCRIBE: c_int = 0x04;
pub const MOSQ_ACL_UNSUBSCRIBE: c_int = 0x08;

// enum mosq_err_t
pub const MOSQ_ERR_SUCCESS: c_int = 0;
pub const MOSQ_ERR_NOMEM: c_int = 1;
pub const MOSQ_ERR_INVAL: c_int = 3;
pub const MOSQ_ERR_NOT_FOUND: c_int = 6;
pub const MOSQ_ERR_AUTH: c_int = 11;
pub const MOSQ_ERR_ACL_DENIED: c_int = 12;
pub const MOSQ_ERR_UNKNOWN: c_int = 13;
pub const MOSQ_ERR_PLUGIN_DEFER: c_int = 17;

// log levels
pub const MOSQ_LOG_INFO: c_int = 0x01;
pub const MOSQ_LOG_NOTICE: c_int = 0x02;
pub const MOSQ_LOG_WARNING: c_int = 0x04;
pub const MOSQ_LOG_ERR: c_int = 0x08;
pub const MOSQ_LOG_DEBUG: c_int = 0x10;

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
    pub fn mosquitto_client_id(client: *const MosquittoClient) -> *const c_char;
    pub fn mosquitto_client_address(client: *const MosquittoClient) -> *const c_char;
    pub fn mosquitto_client_username(client: *const MosquittoClient) -> *const c_char;
    pub fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut c_void,
    ) -> c_int;
    /// Disconnects the connection that currently holds `clientid` (the broker's by-ID table);
    /// `MOSQ_ERR_NOT_FOUND` when none does.
    pub fn mosquitto_kick_client_by_clientid(clientid: *const c_char, with_will: bool) -> c_int;
    pub fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Sizes and offsets printed by a C program compiled with gcc against the v2.0.11 headers
    // (include/mosquitto_broker.h), x86_64 Linux.
    #[test]
    fn the_event_structs_have_the_layout_of_the_2_0_11_headers() {
        assert_eq!(size_of::<EvtAclCheck>(), 88);
        assert_eq!(offset_of!(EvtAclCheck, client), 8);
        assert_eq!(offset_of!(EvtAclCheck, topic), 16);
        assert_eq!(offset_of!(EvtAclCheck, payload), 24);
        assert_eq!(offset_of!(EvtAclCheck, properties), 32);
        assert_eq!(offset_of!(EvtAclCheck, access), 40);
        assert_eq!(offset_of!(EvtAclCheck, payloadlen), 44);
        assert_eq!(offset_of!(EvtAclCheck, qos), 48);
        assert_eq!(offset_of!(EvtAclCheck, retain), 49);
        assert_eq!(offset_of!(EvtAclCheck, future2), 56);
        assert_eq!(size_of::<EvtTick>(), 72);
        assert_eq!(offset_of!(EvtTick, now_s), 24);
        assert_eq!(offset_of!(EvtTick, future2), 40);
        assert_eq!(size_of::<EvtBasicAuth>(), 64);
        assert_eq!(size_of::<EvtMessage>(), 88);
        assert_eq!(size_of::<EvtDisconnect>(), 56);
    }
}
