//! The fuzz targets: every parser of untrusted input, each as a function of raw bytes that
//! panics only on a bug (a parser that panics, or a success that breaks the rule it enforces).
//! `src/bin/<target>.rs` runs one under AFL++ (`make fuzz`, feature `afl`) or, built without the
//! feature, on one input read from stdin (crash replay, the regression test).
//!
//! | target | untrusted input | what must hold |
//! |---|---|---|
//! | `uplink` | an uplink record (§4.1) from the broker rule | a mapped message has a valid topic, client ID and a non-empty body; a refusal goes to the route |
//! | `lifecycle` | a lifecycle event, both shapes (§4.4), with its `tag` | an admitted event has a valid client ID |
//! | `chat` | a chat body, then moderation of its text | a masked chat never grows past the length rule, a delivered one has no banned word left |
//! | `command` | a command body | parses or refuses, never panics |
//! | `downlink` | a downlink message (§4.3): body and attributes | a publish never targets an uplink parent, never holds `+ #` or an empty level |
//! | `token` | a sign-in password (the token issues' `ct1.` token, Alibaba's forms) | a token accepted is for the client and not expired |
//! | `claims` | the claims of a correctly signed token | the same, past the signature |
//! | `deadletter` | a dead letter's packed attributes and failure | restore never panics, and undoes annotate |

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use mapping::classroom::presence::{Admission, admit};
use mapping::{
    AttrValue, ChatMessage, Command, DownlinkMessage, Limits, Mode, Parent, Policy, Routes,
    RulesConfig, Verdict, downlink_to_publish, map_uplink_body, outflow::refusal,
};
use signin::KeySet;

/// Split `data` into `n` parts at NUL bytes (the rest stays in the last part), as text.
fn parts(data: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = text.splitn(n, '\0').map(str::to_owned).collect();
    out.resize(n, String::new());
    out
}

fn rules() -> RulesConfig {
    let parse = |p: &str| Parent::parse(p).expect("a valid parent");
    RulesConfig::new(
        vec![parse("roomSend")],
        vec![parse("room")],
        Limits::default(),
    )
    .expect("valid rules")
}

/// The uplink record of the outflow.
pub fn uplink(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let rules = rules();
    let routes = Routes::parse("roomSend=https://q/backend", &rules).expect("a valid route");
    match map_uplink_body(&body, "m1", &rules, &routes) {
        Ok(routed) => {
            let m = &routed.message;
            assert!(!m.body.is_empty(), "an empty body was mapped");
            assert!(
                !m.second_topic.contains(['+', '#', '\0']),
                "a wildcard passed: {}",
                m.second_topic
            );
            // The limit counts characters (TOPIC_MAX_CHARS), not bytes.
            let chars = m.parent_topic.chars().count() + m.second_topic.chars().count();
            assert!(
                chars <= rules.limits.topic_max_chars,
                "a topic of {chars} characters passed"
            );
            assert!(m.qos <= 2);
        }
        Err(e) => {
            if let Some(r) = refusal(&body, &e, "m1", &rules, &routes) {
                assert_eq!(r.routed.queue, "https://q/backend");
                assert_eq!(r.kind, e.kind());
            }
        }
    }
}

/// A lifecycle event (either shape) with its `tag` attribute: `tag NUL body`.
pub fn lifecycle(data: &[u8]) {
    let p = parts(data, 2);
    let tag = (!p[0].is_empty()).then_some(p[0].as_str());
    if let Ok(Admission::Apply(rule)) = admit(&p[1], tag, 1_732_240_000_000) {
        let id = rule.event().client_id.to_string();
        assert!(
            id.contains("@@@"),
            "an admitted event without a classroom client ID: {id}"
        );
    }
}

/// A chat body, and moderation of its text (mask mode, a Chinese and an English word).
pub fn chat(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let Ok(chat) = ChatMessage::from_json(&body) else {
        return;
    };
    let policy = Policy::new(["fuck", "傻逼"], Mode::Mask, 500).expect("a valid word list");
    if let Verdict::Deliver { text, .. } = policy.verdict(&chat.msg) {
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("fuck") && !text.contains("傻逼"),
            "a banned word was delivered: {text:?}"
        );
    }
}

/// A command body.
pub fn command(data: &[u8]) {
    let _ = Command::from_json(&String::from_utf8_lossy(data));
}

/// A downlink message: `mqttSecondTopic NUL mqttParentTopic NUL qoslevel NUL mqttMessageId NUL
/// timestamp NUL encoding NUL body` (an empty part: the attribute is absent).
pub fn downlink(data: &[u8]) {
    let p = parts(data, 7);
    let keys = [
        "mqttSecondTopic",
        "mqttParentTopic",
        "qoslevel",
        "mqttMessageId",
        "timestamp",
        "encoding",
    ];
    let attributes: BTreeMap<&str, AttrValue<'_>> = keys
        .iter()
        .zip(&p)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, AttrValue::Text(v)))
        .collect();
    let message = DownlinkMessage {
        body: &p[6],
        attributes,
    };
    let rules = rules();
    if let Ok(publish) = downlink_to_publish(&message, "fallback", 1, &rules) {
        let topic = publish.topic.to_string();
        assert!(
            !topic.starts_with("roomSend"),
            "a publish on an uplink parent: {topic}"
        );
        assert!(
            !topic.contains(['+', '#', '\0']),
            "a wildcard published: {topic}"
        );
        assert!(
            !topic.split('/').any(str::is_empty),
            "an empty level: {topic}"
        );
    }
}

const SECRET: &[u8] = b"fuzzing-secret-of-32-bytes-long!";
const NOW_S: u64 = 1_732_240_000;

fn keys() -> KeySet {
    KeySet::new("k1", SECRET.to_vec()).expect("a valid key")
}

fn accepted(password: &str, client: &str) {
    if let Ok(grant) = signin::verify_password(password, client, &keys(), NOW_S) {
        assert!(!grant.is_expired(NOW_S), "an expired token was accepted");
    }
}

/// A sign-in: `clientId NUL password`.
pub fn token(data: &[u8]) {
    let p = parts(data, 2);
    accepted(&p[1], &p[0]);
}

/// The claims of a token signed with the right key: `clientId NUL claims JSON`.
pub fn claims(data: &[u8]) {
    let p = parts(data, 2);
    let signed = format!(
        "{}.k1.{}",
        signin::token::PREFIX,
        B64.encode(p[1].as_bytes())
    );
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET) else {
        return;
    };
    mac.update(signed.as_bytes());
    let token = format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()));
    accepted(&token, &p[0]);
}

/// A dead letter's attributes: `packed JSON NUL failure JSON NUL a plain attribute`.
pub fn deadletter(data: &[u8]) {
    use kit::deadletter::{
        Attribute, Attributes, FAILURE_ATTRIBUTE, PACKED_ATTRIBUTE, annotate, restore,
    };
    let p = parts(data, 3);
    let mut attrs = Attributes::new();
    if !p[0].is_empty() {
        attrs.insert(PACKED_ATTRIBUTE.into(), Attribute::string(p[0].as_str()));
    }
    if !p[1].is_empty() {
        attrs.insert(FAILURE_ATTRIBUTE.into(), Attribute::string(p[1].as_str()));
    }
    attrs.insert("plain".into(), Attribute::string(p[2].as_str()));
    if let Ok((originals, Some(failure))) = restore(attrs) {
        let again = annotate(originals.clone(), &failure).expect("serialisable");
        let (back, f) = restore(again).expect("annotate's own output restores");
        assert_eq!(back, originals);
        assert_eq!(f, Some(failure));
    }
}

/// A target: its name and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name (the bin).
pub const TARGETS: [Target; 8] = [
    ("uplink", uplink),
    ("lifecycle", lifecycle),
    ("chat", chat),
    ("command", command),
    ("downlink", downlink),
    ("token", token),
    ("claims", claims),
    ("deadletter", deadletter),
];
