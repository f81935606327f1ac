//! Who may connect to the local broker and what a connection may do (pure: no FFI, no IO, no
//! clock; the FFI layer reads the key and revocation files and the clock and hands them in).
//!
//! # Sign-in
//! As the AWS IoT custom authorizer does in the cloud (§8), a classroom CONNECT carries a
//! token as its MQTT password: one token (`ct1.<kid>.<claims>.<sig>`), or Alibaba's
//! `R|<token>|W|<token>` form. [`decide`] verifies it with the shared `signin` crate:
//! signature under a key of the key set (any listed key, so rotation needs no restart), expiry,
//! the CONNECT's client ID equal to the token's, then the revocations (token IDs and per-client
//! revoke-all). The username is free (clients send their client ID) except the backend's: that
//! one is left to Mosquitto's `password_file` ([`ConnectDecision::Backend`]). Nothing else signs in:
//! no password, no client ID, no usable key set all refuse. The decision is taken before the
//! plugin records anything, so a refused CONNECT produces no lifecycle event and takes no live
//! session over.
//!
//! # Authorization
//! [`check_access`] answers Mosquitto's ACL check for a classroom connection from its
//! [`Grant`]: publish (`MOSQ_ACL_WRITE`) needs a write filter matching the topic; subscribe
//! (`MOSQ_ACL_SUBSCRIBE`) needs the requested filter to lie inside a read filter, so
//! `room/message/#` is refused to a token for `room/message/1` (and Mosquitto puts "not
//! authorized" in the SUBACK); delivery (`MOSQ_ACL_READ`) needs a read filter matching the topic;
//! unsubscribe is always allowed. An expired grant, an ended (kicked) connection, a broker topic
//! (`$...`, which no token can grant) and an unknown access are denied.

use signin::{Action, Grant, KeySet, Revocations, TokenError};

/// What the plugin answers to one CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectDecision {
    /// The backend username: Mosquitto's `password_file` decides (the plugin defers).
    Backend,
    /// A classroom client whose token verified: what it may do.
    Allow(Grant),
    /// Refused, and why (logged by the broker, never sent to the client).
    Deny(BrokerRefusal),
}

/// Why a classroom CONNECT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerRefusal {
    /// No password (or an empty one): a classroom client signs in with a token.
    #[error("no token: a classroom client signs in with a token as its MQTT password")]
    NoToken,
    /// No client ID (the token names one, so there is nothing to compare it with).
    #[error("no client ID: the token's client ID must be the CONNECT's")]
    NoClientId,
    /// The key set is missing or malformed (the broker's log says which, when it was read).
    #[error("no valid key set is loaded (see the keys_file message above)")]
    NoKeys,
    /// The token did not verify or is revoked.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl BrokerRefusal {
    /// A short stable name for the log: the token error's kind, or `no_token`, `no_client_id`,
    /// `no_keys`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoToken => "no_token",
            Self::NoClientId => "no_client_id",
            Self::NoKeys => "no_keys",
            Self::Token(e) => e.kind(),
        }
    }

    /// Alibaba's token-invalid code: the token error's; 1 (unparseable) for no token, 4
    /// (resource mismatch) for no client ID, 8 (signature not verifiable) for no key set.
    pub fn code(&self) -> i32 {
        match self {
            Self::NoToken => 1,
            Self::NoClientId => 4,
            Self::NoKeys => 8,
            Self::Token(e) => e.code(),
        }
    }
}

/// Decides one CONNECT at `now_s` (seconds since the epoch). `keys` is `None` when the key file
/// is missing or malformed: every classroom client is then refused.
pub fn decide(
    username: Option<&str>,
    password: Option<&str>,
    client_id: Option<&str>,
    backend_username: &str,
    keys: Option<&KeySet>,
    revocations: &Revocations,
    now_s: u64,
) -> ConnectDecision {
    if username == Some(backend_username) {
        return ConnectDecision::Backend;
    }
    match sign_in(password, client_id, keys, revocations, now_s) {
        Ok(grant) => ConnectDecision::Allow(grant),
        Err(why) => ConnectDecision::Deny(why),
    }
}

fn sign_in(
    password: Option<&str>,
    client_id: Option<&str>,
    keys: Option<&KeySet>,
    revocations: &Revocations,
    now_s: u64,
) -> Result<Grant, BrokerRefusal> {
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or(BrokerRefusal::NoToken)?;
    let client_id = client_id
        .filter(|c| !c.is_empty())
        .ok_or(BrokerRefusal::NoClientId)?;
    let keys = keys.ok_or(BrokerRefusal::NoKeys)?;
    let grant = signin::verify_password(password, client_id, keys, now_s)?;
    revocations.check(&grant)?;
    Ok(grant)
}

/// The access Mosquitto asks about (`MOSQ_ACL_*` in `mosquitto_plugin.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `MOSQ_ACL_READ` (1): a message is about to be delivered to the client.
    Read,
    /// `MOSQ_ACL_WRITE` (2): the client published (also its will, when sent).
    Write,
    /// `MOSQ_ACL_SUBSCRIBE` (4): the client asks to subscribe with a filter.
    Subscribe,
    /// `MOSQ_ACL_UNSUBSCRIBE` (8).
    Unsubscribe,
}

impl Access {
    /// From Mosquitto's `access` value; `None` for anything else.
    pub fn from_mosquitto(access: i32) -> Option<Self> {
        match access {
            1 => Some(Self::Read),
            2 => Some(Self::Write),
            4 => Some(Self::Subscribe),
            8 => Some(Self::Unsubscribe),
            _ => None,
        }
    }

    /// A short name for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "publish",
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// Why an ACL check was denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// Neither the backend nor a connection the plugin signed in.
    #[error("no sign-in known for this connection")]
    NoGrant,
    /// The grant's earliest token has expired.
    #[error("the token expired at {0}")]
    Expired(u64),
    /// The connection was ended by the plugin (expired or revoked) and is going away.
    #[error("the sign-in was ended (expired or revoked)")]
    Ended,
    /// A `$` topic (broker topics: no token can grant them).
    #[error("{0:?} is a broker topic")]
    BrokerTopic(String),
    /// An access value this plugin does not know.
    #[error("unknown access {0}")]
    UnknownAccess(i32),
    /// The grant does not allow it.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl Denial {
    /// A short stable name for the log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoGrant => "no_grant",
            Self::Expired(_) => "expired",
            Self::Ended => "ended",
            Self::BrokerTopic(_) => "broker_topic",
            Self::UnknownAccess(_) => "unknown_access",
            Self::Token(e) => e.kind(),
        }
    }

    /// Alibaba's token-invalid code (2 expired, 3 ended, 4 not granted, 5 wrong action).
    pub fn code(&self) -> i32 {
        match self {
            Self::NoGrant | Self::BrokerTopic(_) => 4,
            Self::Expired(_) => 2,
            Self::Ended => 3,
            Self::UnknownAccess(_) => 5,
            Self::Token(e) => e.code(),
        }
    }
}

/// The sign-in an ACL check is about, as the plugin knows it.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// The backend username: `acl_file` decides.
    Backend,
    /// A classroom connection the plugin signed in; `ended` once the sweep kicked it.
    Classroom {
        /// What its token grants.
        grant: &'a Grant,
        /// Kicked (expired or revoked) and going away.
        ended: bool,
    },
    /// Anything else (never signed in by the plugin).
    Unknown,
}

/// What the plugin answers to one ACL check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclVerdict {
    /// `MOSQ_ERR_PLUGIN_DEFER`: `acl_file` decides (the backend).
    Defer,
    /// `MOSQ_ERR_SUCCESS`.
    Allow,
    /// `MOSQ_ERR_ACL_DENIED`, and why.
    Deny(Denial),
}

/// Decides one ACL check at `now_s`. `access` is Mosquitto's raw value.
pub fn check_access(who: Who<'_>, access: i32, topic: &str, now_s: u64) -> AclVerdict {
    let (grant, ended) = match who {
        Who::Backend => return AclVerdict::Defer,
        Who::Unknown => return AclVerdict::Deny(Denial::NoGrant),
        Who::Classroom { grant, ended } => (grant, ended),
    };
    if ended {
        return AclVerdict::Deny(Denial::Ended);
    }
    if grant.is_expired(now_s) {
        return AclVerdict::Deny(Denial::Expired(grant.expires_at));
    }
    let Some(access) = Access::from_mosquitto(access) else {
        return AclVerdict::Deny(Denial::UnknownAccess(access));
    };
    if topic.starts_with('$') {
        return AclVerdict::Deny(Denial::BrokerTopic(topic.to_owned()));
    }
    let action = match access {
        Access::Unsubscribe => return AclVerdict::Allow,
        Access::Read => Action::Receive,
        Access::Write => Action::Publish,
        Access::Subscribe => Action::Subscribe,
    };
    match grant.allows(action, topic) {
        Ok(()) => AclVerdict::Allow,
        Err(e) => AclVerdict::Deny(Denial::Token(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use signin::{LifetimeBounds, TokenRequest};

    const NOW: u64 = 1_700_000_000;
    const STUDENT: &str = "GID_student@@@001";
    const OTHER: &str = "GID_student@@@002";

    fn keys(kid: &str, byte: u8) -> KeySet {
        KeySet::new(kid, vec![byte; 32]).unwrap()
    }

    fn request(client: &str, lifetime_secs: u64) -> TokenRequest {
        TokenRequest {
            client_id: client.into(),
            read: vec![
                "room/message/1".into(),
                "room/status/1".into(),
                "room/system".into(),
                format!("room/p2p/{client}"),
            ],
            write: vec!["roomSend/message".into(), "roomSend/command".into()],
            lifetime_secs,
        }
    }

    fn token_for(client: &str, keys: &KeySet, jti: &str, iat: u64, lifetime: u64) -> String {
        signin::issue(
            &request(client, lifetime),
            keys,
            LifetimeBounds::CLOUD,
            iat,
            jti,
        )
        .unwrap()
        .token
    }

    fn token(keys: &KeySet) -> String {
        token_for(STUDENT, keys, "t-1", NOW - 10, 3600)
    }

    fn decide_as(
        user: Option<&str>,
        password: Option<&str>,
        client: Option<&str>,
        keys: Option<&KeySet>,
        revocations: &Revocations,
        now: u64,
    ) -> ConnectDecision {
        decide(user, password, client, "backend", keys, revocations, now)
    }

    fn refusal(d: ConnectDecision) -> BrokerRefusal {
        match d {
            ConnectDecision::Deny(r) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn grant(d: ConnectDecision) -> Grant {
        match d {
            ConnectDecision::Allow(g) => g,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_token_for_the_connecting_client_id_is_allowed_with_its_filters() {
        let k = keys("k1", 7);
        let none = Revocations::default();
        let g = grant(decide_as(
            Some(STUDENT),
            Some(&token(&k)),
            Some(STUDENT),
            Some(&k),
            &none,
            NOW,
        ));
        assert_eq!(g.client_id, STUDENT);
        assert_eq!(g.expires_at, NOW - 10 + 3600);
        assert_eq!(g.token_ids, vec!["t-1".to_owned()]);
        assert!(g.allows(Action::Receive, "room/message/1").is_ok());
        // The username is free: any but the backend's.
        let g2 = grant(decide_as(
            None,
            Some(&token(&k)),
            Some(STUDENT),
            Some(&k),
            &none,
            NOW,
        ));
        assert_eq!(g2, g);
    }

    #[test]
    fn a_token_of_another_client_id_is_refused_as_a_resource_mismatch() {
        let k = keys("k1", 7);
        let r = refusal(decide_as(
            Some(OTHER),
            Some(&token(&k)),
            Some(OTHER),
            Some(&k),
            &Revocations::default(),
            NOW,
        ));
        assert_eq!((r.kind(), r.code()), ("wrong_client", 4), "{r}");
    }

    #[test]
    fn a_tampered_token_is_refused_whatever_byte_changed() {
        let k = keys("k1", 7);
        let t = token(&k);
        for i in [4, t.len() / 2, t.len() - 1] {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let r = refusal(decide_as(
                Some(STUDENT),
                Some(&tampered),
                Some(STUDENT),
                Some(&k),
                &Revocations::default(),
                NOW,
            ));
            assert!(
                matches!(r.code(), 1 | 8),
                "byte {i}: {} ({})",
                r.kind(),
                r.code()
            );
        }
    }

    #[test]
    fn a_token_signed_with_an_unknown_or_retired_key_is_refused_with_code_8() {
        let old = keys("k1", 7);
        let t = token(&old);
        let other = keys("k2", 9);
        let r = refusal(decide_as(
            Some(STUDENT),
            Some(&t),
            Some(STUDENT),
            Some(&other),
            &Revocations::default(),
            NOW,
        ));
        assert_eq!((r.kind(), r.code()), ("unknown_key", 8), "{r}");
        // Rotated: the old key still verifies; retired: it no longer does.
        let mut rotated = old.clone();
        rotated.rotate("k2", vec![9; 32]).unwrap();
        assert!(matches!(
            decide_as(
                Some(STUDENT),
                Some(&t),
                Some(STUDENT),
                Some(&rotated),
                &Revocations::default(),
                NOW
            ),
            ConnectDecision::Allow(_)
        ));
        rotated.retire("k1").unwrap();
        let r = refusal(decide_as(
            Some(STUDENT),
            Some(&t),
            Some(STUDENT),
            Some(&rotated),
            &Revocations::default(),
            NOW,
        ));
        assert_eq!(r.kind(), "unknown_key");
    }

    #[test]
    fn an_expired_token_is_refused_from_its_expiry_second_on() {
        let k = keys("k1", 7);
        let t = token_for(STUDENT, &k, "t-1", NOW - 100, 60);
        let at = |now| {
            decide_as(
                Some(STUDENT),
                Some(&t),
                Some(STUDENT),
                Some(&k),
                &Revocations::default(),
                now,
            )
        };
        assert!(matches!(at(NOW - 41), ConnectDecision::Allow(_)));
        let r = refusal(at(NOW - 40));
        assert_eq!((r.kind(), r.code()), ("expired", 2), "{r}");
    }

    #[test]
    fn a_revoked_token_id_is_refused_and_other_tokens_are_not() {
        let k = keys("k1", 7);
        let mut rev = Revocations::default();
        rev.tokens.insert("t-1".into());
        let r = refusal(decide_as(
            Some(STUDENT),
            Some(&token(&k)),
            Some(STUDENT),
            Some(&k),
            &rev,
            NOW,
        ));
        assert_eq!((r.kind(), r.code()), ("revoked", 3), "{r}");
        let t2 = token_for(STUDENT, &k, "t-2", NOW - 10, 3600);
        assert!(matches!(
            decide_as(Some(STUDENT), Some(&t2), Some(STUDENT), Some(&k), &rev, NOW),
            ConnectDecision::Allow(_)
        ));
    }

    #[test]
    fn a_revoked_client_loses_every_token_issued_up_to_the_revocation() {
        let k = keys("k1", 7);
        let mut rev = Revocations::default();
        rev.clients.insert(STUDENT.into(), NOW - 5);
        let before = token_for(STUDENT, &k, "t-1", NOW - 10, 3600);
        let at_revoke = token_for(STUDENT, &k, "t-2", NOW - 5, 3600);
        let after = token_for(STUDENT, &k, "t-3", NOW - 4, 3600);
        for t in [&before, &at_revoke] {
            let r = refusal(decide_as(
                Some(STUDENT),
                Some(t),
                Some(STUDENT),
                Some(&k),
                &rev,
                NOW,
            ));
            assert_eq!(r.kind(), "revoked");
        }
        assert!(matches!(
            decide_as(
                Some(STUDENT),
                Some(&after),
                Some(STUDENT),
                Some(&k),
                &rev,
                NOW
            ),
            ConnectDecision::Allow(_)
        ));
        // Another client's entry does not touch this one.
        let mut other = Revocations::default();
        other.clients.insert(OTHER.into(), NOW);
        assert!(matches!(
            decide_as(
                Some(STUDENT),
                Some(&before),
                Some(STUDENT),
                Some(&k),
                &other,
                NOW
            ),
            ConnectDecision::Allow(_)
        ));
    }

    #[test]
    fn the_backend_username_is_deferred_to_the_password_file_before_any_token_check() {
        for (pw, id) in [
            (Some("x"), Some("rules-bridge-1")),
            (None, None),
            (Some("ct1.k1.x.y"), Some(STUDENT)),
        ] {
            assert_eq!(
                decide_as(Some("backend"), pw, id, None, &Revocations::default(), NOW),
                ConnectDecision::Backend
            );
        }
    }

    #[test]
    fn anonymous_passwordless_and_idless_connects_are_refused() {
        let k = keys("k1", 7);
        let none = Revocations::default();
        let t = token(&k);
        for (user, pw, id, kind) in [
            (None, None, Some(STUDENT), "no_token"),
            (Some(STUDENT), None, Some(STUDENT), "no_token"),
            (Some(STUDENT), Some(""), Some(STUDENT), "no_token"),
            (Some(STUDENT), Some(t.as_str()), None, "no_client_id"),
            (Some(STUDENT), Some(t.as_str()), Some(""), "no_client_id"),
            (
                Some(STUDENT),
                Some("a-roster-password"),
                Some(STUDENT),
                "malformed",
            ),
        ] {
            let r = refusal(decide_as(user, pw, id, Some(&k), &none, NOW));
            assert_eq!(r.kind(), kind, "{user:?}/{pw:?}/{id:?}: {r}");
        }
    }

    #[test]
    fn without_a_key_set_every_classroom_client_is_refused() {
        let k = keys("k1", 7);
        let r = refusal(decide_as(
            Some(STUDENT),
            Some(&token(&k)),
            Some(STUDENT),
            None,
            &Revocations::default(),
            NOW,
        ));
        assert_eq!((r.kind(), r.code()), ("no_keys", 8));
    }

    #[test]
    fn the_alibaba_form_grants_reads_of_the_r_token_and_writes_of_the_w_token() {
        let k = keys("k1", 7);
        let none = Revocations::default();
        let r_token = token_for(STUDENT, &k, "t-r", NOW - 10, 3600);
        let w_token = token_for(STUDENT, &k, "t-w", NOW - 20, 600);
        let pw = format!("R|{r_token}|W|{w_token}");
        let g = grant(decide_as(
            Some(STUDENT),
            Some(&pw),
            Some(STUDENT),
            Some(&k),
            &none,
            NOW,
        ));
        assert_eq!(g.expires_at, NOW - 20 + 600, "the earliest expiry counts");
        assert_eq!(g.token_ids.len(), 2);
        assert!(g.allows(Action::Receive, "room/message/1").is_ok());
        assert!(g.allows(Action::Publish, "roomSend/message").is_ok());
        // R only: nothing to publish.
        let g = grant(decide_as(
            Some(STUDENT),
            Some(&format!("R|{r_token}")),
            Some(STUDENT),
            Some(&k),
            &none,
            NOW,
        ));
        assert!(g.allows(Action::Publish, "roomSend/message").is_err());
        // One bad part refuses the whole password; revoking one part revokes the sign-in.
        let bad = format!("R|{r_token}|W|{w_token}x");
        assert!(matches!(
            decide_as(
                Some(STUDENT),
                Some(&bad),
                Some(STUDENT),
                Some(&k),
                &none,
                NOW
            ),
            ConnectDecision::Deny(_)
        ));
        let mut rev = Revocations::default();
        rev.tokens.insert("t-w".into());
        let r = refusal(decide_as(
            Some(STUDENT),
            Some(&pw),
            Some(STUDENT),
            Some(&k),
            &rev,
            NOW,
        ));
        assert_eq!(r.kind(), "revoked");
    }

    #[test]
    fn refusals_never_contain_the_password() {
        let k = keys("k1", 7);
        let t = token(&k);
        let tampered = format!("{t}A");
        for (pw, id) in [(&tampered, STUDENT), (&t, OTHER)] {
            let r = refusal(decide_as(
                Some(id),
                Some(pw),
                Some(id),
                Some(&k),
                &Revocations::default(),
                NOW,
            ));
            let shown = format!("{r} {r:?}");
            assert!(!shown.contains(pw.as_str()), "{shown}");
            let sig = t.rsplit('.').next().unwrap();
            assert!(!shown.contains(sig), "{shown}");
        }
    }

    fn classroom_grant() -> Grant {
        let k = keys("k1", 7);
        grant(decide_as(
            Some(STUDENT),
            Some(&token(&k)),
            Some(STUDENT),
            Some(&k),
            &Revocations::default(),
            NOW,
        ))
    }

    fn check(g: &Grant, access: i32, topic: &str) -> AclVerdict {
        check_access(
            Who::Classroom {
                grant: g,
                ended: false,
            },
            access,
            topic,
            NOW,
        )
    }

    const READ: i32 = 1;
    const WRITE: i32 = 2;
    const SUBSCRIBE: i32 = 4;
    const UNSUBSCRIBE: i32 = 8;

    fn denied_kind(v: &AclVerdict) -> &'static str {
        match v {
            AclVerdict::Deny(d) => d.kind(),
            _ => "not denied",
        }
    }

    #[test]
    fn deliveries_are_allowed_only_on_topics_a_read_filter_matches() {
        let g = classroom_grant();
        assert_eq!(check(&g, READ, "room/message/1"), AclVerdict::Allow);
        assert_eq!(check(&g, READ, "room/system"), AclVerdict::Allow);
        assert_eq!(
            check(&g, READ, &format!("room/p2p/{STUDENT}")),
            AclVerdict::Allow
        );
        for topic in ["room/message/2", "room/p2p/GID_student@@@002", "room/x"] {
            assert_eq!(
                denied_kind(&check(&g, READ, topic)),
                "not_granted",
                "{topic}"
            );
        }
        assert_eq!(
            denied_kind(&check(&g, READ, "roomSend/message")),
            "wrong_action"
        );
    }

    #[test]
    fn publishes_are_allowed_only_under_the_write_filters() {
        let g = classroom_grant();
        assert_eq!(check(&g, WRITE, "roomSend/message"), AclVerdict::Allow);
        assert_eq!(check(&g, WRITE, "roomSend/command"), AclVerdict::Allow);
        assert_eq!(
            denied_kind(&check(&g, WRITE, "room/message/1")),
            "wrong_action"
        );
        assert_eq!(
            denied_kind(&check(&g, WRITE, "room/message/2")),
            "not_granted"
        );
    }

    #[test]
    fn a_subscription_must_lie_inside_a_read_filter() {
        let g = classroom_grant();
        assert_eq!(check(&g, SUBSCRIBE, "room/message/1"), AclVerdict::Allow);
        for filter in [
            "room/message/#",
            "room/message/+",
            "room/#",
            "#",
            "+/message/1",
        ] {
            assert!(
                matches!(check(&g, SUBSCRIBE, filter), AclVerdict::Deny(_)),
                "{filter}"
            );
        }
        // Unsubscribing is always allowed.
        assert_eq!(check(&g, UNSUBSCRIBE, "room/message/#"), AclVerdict::Allow);
    }

    #[test]
    fn broker_topics_unknown_access_and_unknown_connections_are_denied() {
        let g = classroom_grant();
        for (access, topic) in [
            (SUBSCRIBE, "$aws/events/presence/#"),
            (SUBSCRIBE, "$share/g/room/message/1"),
            (READ, "$classroom/uplink"),
            (WRITE, "$SYS/x"),
        ] {
            assert_eq!(denied_kind(&check(&g, access, topic)), "broker_topic");
        }
        assert_eq!(
            denied_kind(&check(&g, 0, "room/message/1")),
            "unknown_access"
        );
        assert_eq!(
            denied_kind(&check(&g, 3, "room/message/1")),
            "unknown_access"
        );
        assert_eq!(
            denied_kind(&check_access(Who::Unknown, READ, "room/message/1", NOW)),
            "no_grant"
        );
    }

    #[test]
    fn the_backend_is_deferred_to_the_acl_file() {
        for access in [READ, WRITE, SUBSCRIBE, UNSUBSCRIBE] {
            assert_eq!(
                check_access(Who::Backend, access, "room/message/1", NOW),
                AclVerdict::Defer
            );
        }
    }

    #[test]
    fn an_expired_or_ended_grant_is_denied_on_every_check() {
        let g = classroom_grant();
        for access in [READ, WRITE, SUBSCRIBE, UNSUBSCRIBE] {
            let v = check_access(
                Who::Classroom {
                    grant: &g,
                    ended: false,
                },
                access,
                "room/message/1",
                g.expires_at,
            );
            assert_eq!(denied_kind(&v), "expired");
            let v = check_access(
                Who::Classroom {
                    grant: &g,
                    ended: true,
                },
                access,
                "room/message/1",
                NOW,
            );
            assert_eq!(denied_kind(&v), "ended");
        }
        assert_eq!(
            check_access(
                Who::Classroom {
                    grant: &g,
                    ended: false
                },
                READ,
                "room/message/1",
                g.expires_at - 1
            ),
            AclVerdict::Allow
        );
    }

    #[test]
    fn access_values_are_mosquittos() {
        assert_eq!(Access::from_mosquitto(1), Some(Access::Read));
        assert_eq!(Access::from_mosquitto(2), Some(Access::Write));
        assert_eq!(Access::from_mosquitto(4), Some(Access::Subscribe));
        assert_eq!(Access::from_mosquitto(8), Some(Access::Unsubscribe));
        assert_eq!(Access::from_mosquitto(16), None);
    }
}
