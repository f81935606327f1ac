//! The token's contract: issue and verify, tampering, expiry at the boundary, keys and their
//! rotation, the password forms, what a grant allows, the classroom scopes and the IoT policy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use mapping::{ClientId, RoomId};
use signin::iot::{self, MAX_DOCUMENT_CHARS, MAX_DOCUMENTS};
use signin::{
    Action, Grant, IssueError, KeySet, LifetimeBounds, TokenError, TokenRequest, classroom_request,
    issue, verify, verify_password,
};

const NOW: u64 = 1_800_000_000;
const STUDENT: &str = "GID_student@@@001";

fn keys() -> KeySet {
    KeySet::new("k1", vec![7u8; 32]).unwrap()
}

fn request(lifetime: u64) -> TokenRequest {
    classroom_request(
        &ClientId::parse(STUDENT).unwrap(),
        &[RoomId::parse("1").unwrap()],
        "roomSend",
        "room",
        lifetime,
    )
}

fn token(lifetime: u64) -> String {
    issue(
        &request(lifetime),
        &keys(),
        LifetimeBounds::CLOUD,
        NOW,
        "tok1",
    )
    .unwrap()
    .token
}

#[test]
fn an_issued_token_verifies_and_says_what_was_asked() {
    let issued = issue(&request(3600), &keys(), LifetimeBounds::CLOUD, NOW, "tok1").unwrap();
    let claims = verify(&issued.token, STUDENT, &keys(), NOW).unwrap();
    assert_eq!(claims, issued.claims);
    assert_eq!(claims.client_id, STUDENT);
    assert_eq!(
        claims.read,
        [
            "room/message/1",
            "room/p2p/GID_student@@@001",
            "room/status/1",
            "room/system"
        ]
    );
    assert_eq!(claims.write, ["roomSend/command", "roomSend/message"]);
    assert_eq!((claims.issued_at, claims.expires_at), (NOW, NOW + 3600));
    assert_eq!(claims.token_id, "tok1");
    assert!(issued.token.starts_with("ct1.k1."));
    assert!(
        issued
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
        "not URL-safe: {}",
        issued.token
    );
}

#[test]
fn every_single_byte_change_and_every_truncation_fails() {
    let t = token(3600);
    let bytes = t.as_bytes();
    let mut tried = 0;
    for i in 0..bytes.len() {
        for b in 0u8..=255 {
            if b == bytes[i] {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = b;
            let Ok(s) = String::from_utf8(changed) else {
                continue;
            };
            tried += 1;
            let r = verify(&s, STUDENT, &keys(), NOW);
            assert!(r.is_err(), "byte {i} -> {b:#04x} still verifies");
            if let Err(e) = r {
                assert!(!e.to_string().contains(&t[8..40]), "{e} leaks the token");
            }
        }
    }
    assert!(tried > 100 * bytes.len(), "{tried}");
    for n in 0..bytes.len() {
        assert!(
            verify(&t[..n], STUDENT, &keys(), NOW).is_err(),
            "prefix {n}"
        );
    }
    assert!(verify(&format!("{t}A"), STUDENT, &keys(), NOW).is_err());
    assert!(verify(&format!("{t}.x"), STUDENT, &keys(), NOW).is_err());
}

#[test]
fn a_token_expires_exactly_at_its_expiry() {
    let t = token(60);
    assert!(verify(&t, STUDENT, &keys(), NOW + 59).is_ok());
    assert_eq!(
        verify(&t, STUDENT, &keys(), NOW + 60),
        Err(TokenError::Expired {
            expired_at: NOW + 60
        })
    );
    assert_eq!(
        verify(&t, STUDENT, &keys(), NOW + 60).unwrap_err().code(),
        2
    );
    let g = verify_password(&t, STUDENT, &keys(), NOW + 10).unwrap();
    assert_eq!(g.remaining_secs(NOW + 10), 50);
    assert!(!g.is_expired(NOW + 59));
    assert!(g.is_expired(NOW + 60));
    assert_eq!(g.remaining_secs(NOW + 99), 0);
}

#[test]
fn a_token_from_the_future_is_refused_beyond_the_clock_skew() {
    let t = token(3600);
    assert!(verify(&t, STUDENT, &keys(), NOW - 60).is_ok());
    let e = verify(&t, STUDENT, &keys(), NOW - 61).unwrap_err();
    assert_eq!(e.code(), 1, "{e}");
}

#[test]
fn a_token_for_another_client_is_a_resource_mismatch() {
    let e = verify(&token(3600), "GID_teacher@@@001", &keys(), NOW).unwrap_err();
    assert_eq!(
        e,
        TokenError::WrongClient {
            token_client: STUDENT.into()
        }
    );
    assert_eq!(e.code(), 4);
}

#[test]
fn keys_rotate_without_downtime_and_a_retired_key_stops_verifying() {
    let old = token(3600);
    let mut ks = keys();
    ks.rotate("k2", vec![9u8; 32]).unwrap();
    let new = issue(&request(3600), &ks, LifetimeBounds::CLOUD, NOW, "tok2")
        .unwrap()
        .token;
    assert!(new.starts_with("ct1.k2."));
    assert!(
        verify(&old, STUDENT, &ks, NOW).is_ok(),
        "old key still accepted"
    );
    assert!(verify(&new, STUDENT, &ks, NOW).is_ok());
    // A verifier that has not heard of the new key yet.
    let e = verify(&new, STUDENT, &keys(), NOW).unwrap_err();
    assert_eq!(e, TokenError::UnknownKey { kid: "k2".into() });
    assert_eq!(e.code(), 8);
    ks.retire("k1").unwrap();
    assert_eq!(
        verify(&old, STUDENT, &ks, NOW),
        Err(TokenError::UnknownKey { kid: "k1".into() })
    );
    assert!(verify(&new, STUDENT, &ks, NOW).is_ok());
    // Same key ID, other secret: a forgery.
    let forged = KeySet::new("k2", vec![1u8; 32]).unwrap();
    assert_eq!(
        verify(&new, STUDENT, &forged, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn lifetimes_outside_the_bounds_are_refused_not_capped() {
    let b = LifetimeBounds::CLOUD;
    let at = |secs| issue(&request(secs), &keys(), b, NOW, "t");
    assert!(at(60).is_ok());
    assert!(at(30 * 24 * 3600).is_ok());
    for secs in [0, 59, 30 * 24 * 3600 + 1, u64::MAX] {
        let e = at(secs).unwrap_err();
        assert!(
            matches!(e, IssueError::Lifetime { given, .. } if given == secs),
            "{e}"
        );
        assert_eq!(e.field(), "expiresIn");
    }
    // Locally the floor may be lower.
    let local = LifetimeBounds {
        min_secs: 1,
        ..LifetimeBounds::CLOUD
    };
    assert!(issue(&request(2), &keys(), local, NOW, "t").is_ok());
}

#[test]
fn at_most_a_hundred_filters_sorted_and_deduplicated() {
    let mut req = request(3600);
    req.write = vec!["roomSend/message".into()];
    req.read = (0..99).map(|i| format!("room/message/{i}")).collect();
    req.read.push("room/message/0".into()); // a duplicate counts once
    let claims = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t")
        .unwrap()
        .claims;
    assert_eq!(claims.read.len() + claims.write.len(), 100);
    assert!(claims.read.windows(2).all(|w| w[0] < w[1]), "sorted");
    req.read.push("room/message/x".into());
    let e = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t").unwrap_err();
    assert_eq!(e, IssueError::TooManyFilters(101));
    let mut empty = request(3600);
    empty.read.clear();
    empty.write.clear();
    assert_eq!(
        issue(&empty, &keys(), LifetimeBounds::CLOUD, NOW, "t").unwrap_err(),
        IssueError::NoFilters
    );
}

#[test]
fn bad_requests_name_their_field() {
    let mut req = request(3600);
    req.client_id = "GID_student@@@+".into();
    let e = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t").unwrap_err();
    assert_eq!(e.field(), "clientId");
    let mut req = request(3600);
    req.write.push("room/#/x".into());
    let e = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t").unwrap_err();
    assert_eq!(e.field(), "write");
    let mut req = request(3600);
    req.read.push("$aws/events/#".into());
    let e = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t").unwrap_err();
    assert_eq!(e.field(), "read");
    assert!(issue(&request(3600), &keys(), LifetimeBounds::CLOUD, NOW, "a/b").is_err());
}

fn grant() -> Grant {
    verify_password(&token(3600), STUDENT, &keys(), NOW).unwrap()
}

#[test]
fn a_classroom_grant_allows_its_rooms_and_nothing_else() {
    let g = grant();
    for topic in [
        "room/message/1",
        "room/status/1",
        "room/system",
        "room/p2p/GID_student@@@001",
    ] {
        assert_eq!(g.allows(Action::Receive, topic), Ok(()), "{topic}");
        assert_eq!(g.allows(Action::Subscribe, topic), Ok(()), "{topic}");
    }
    for topic in ["roomSend/message", "roomSend/command"] {
        assert_eq!(g.allows(Action::Publish, topic), Ok(()), "{topic}");
    }
    for (action, topic) in [
        (Action::Receive, "room/message/2"),
        (Action::Receive, "room/p2p/GID_student@@@002"),
        (Action::Receive, "room/status"),
        (Action::Subscribe, "room/message/#"),
        (Action::Subscribe, "room/message/+"),
        (Action::Subscribe, "room/#"),
        (Action::Subscribe, "#"),
        (Action::Subscribe, "$SYS/#"),
        (Action::Publish, "room/message/1/x"),
        (Action::Publish, "roomSend/message/1"),
        (Action::Publish, "room/system"),
    ] {
        let e = g.allows(action, topic).unwrap_err();
        assert!(
            matches!(
                &e,
                TokenError::NotGranted { .. } | TokenError::WrongAction { .. }
            ),
            "{action:?} {topic}: {e}"
        );
    }
    // Granted for the other action: code 5.
    let e = g.allows(Action::Publish, "room/message/1").unwrap_err();
    assert_eq!(e.code(), 5, "{e}");
    let e = g.allows(Action::Receive, "roomSend/message").unwrap_err();
    assert_eq!(e.code(), 5, "{e}");
    assert_eq!(
        g.allows(Action::Receive, "room/message/2")
            .unwrap_err()
            .code(),
        4
    );
}

#[test]
fn alibaba_password_forms_verify_every_part_and_split_the_rights() {
    let t = token(3600);
    let both = verify_password(&format!("R|{t}|W|{t}"), STUDENT, &keys(), NOW).unwrap();
    assert_eq!(both.read, grant().read);
    assert_eq!(both.write, grant().write);
    assert_eq!(both.token_ids, ["tok1", "tok1"]);
    let read_only = verify_password(&format!("R|{t}"), STUDENT, &keys(), NOW).unwrap();
    assert!(read_only.write.is_empty());
    assert!(read_only.allows(Action::Receive, "room/message/1").is_ok());
    assert!(
        read_only
            .allows(Action::Publish, "roomSend/message")
            .is_err()
    );
    let write_only = verify_password(&format!("W|{t}"), STUDENT, &keys(), NOW).unwrap();
    assert!(write_only.read.is_empty());
    assert!(verify_password(&format!("RW|{t}"), STUDENT, &keys(), NOW).is_ok());
    // One bad part refuses everything.
    let bad = format!("R|{t}|W|{}x", &t);
    assert!(verify_password(&bad, STUDENT, &keys(), NOW).is_err());
    for malformed in [
        format!("R|{t}|W"),
        format!("X|{t}"),
        format!("R|{t}|R|{t}"),
        "|".to_owned(),
        String::new(),
    ] {
        let e = verify_password(&malformed, STUDENT, &keys(), NOW).unwrap_err();
        assert_eq!(e.code(), 1, "{malformed:?}: {e}");
    }
    // The earliest expiry of the parts wins.
    let short = issue(&request(120), &keys(), LifetimeBounds::CLOUD, NOW, "tok2")
        .unwrap()
        .token;
    let g = verify_password(&format!("R|{t}|W|{short}"), STUDENT, &keys(), NOW).unwrap();
    assert_eq!(g.expires_at, NOW + 120);
}

#[test]
fn the_classroom_policy_is_exactly_the_scopes() {
    let docs = iot::policy_documents(&grant(), "arn:aws:iot:eu-west-1:123456789012").unwrap();
    assert_eq!(docs.len(), 1);
    let json = serde_json::to_value(&docs[0]).unwrap();
    let p = "arn:aws:iot:eu-west-1:123456789012";
    assert_eq!(
        json,
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [format!("{p}:client/GID_student@@@001")]},
                {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": [
                    format!("{p}:topic/roomSend/command"), format!("{p}:topic/roomSend/message")]},
                {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": [
                    format!("{p}:topic/room/message/1"), format!("{p}:topic/room/p2p/GID_student@@@001"),
                    format!("{p}:topic/room/status/1"), format!("{p}:topic/room/system")]},
                {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": [
                    format!("{p}:topicfilter/room/message/1"), format!("{p}:topicfilter/room/p2p/GID_student@@@001"),
                    format!("{p}:topicfilter/room/status/1"), format!("{p}:topicfilter/room/system")]},
            ]
        })
    );
}

#[test]
fn wildcards_become_stars_and_hash_keeps_its_parent() {
    let req = TokenRequest {
        client_id: STUDENT.into(),
        read: vec!["a/+/b".into(), "c/#".into()],
        write: vec![],
        lifetime_secs: 3600,
    };
    let t = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t")
        .unwrap()
        .token;
    let g = verify_password(&t, STUDENT, &keys(), NOW).unwrap();
    let docs = iot::policy_documents(&g, "P").unwrap();
    let text = serde_json::to_string(&docs).unwrap();
    for want in [
        "P:topic/a/*/b",
        "P:topic/c",
        "P:topic/c/*",
        "P:topicfilter/c/*",
    ] {
        assert!(
            text.contains(&format!("\"{want}\"")),
            "{want} missing in {text}"
        );
    }
    assert!(!text.contains('+') && !text.contains('#'), "{text}");
}

#[test]
fn a_hundred_filters_fit_in_at_most_ten_documents_of_2048_characters() {
    let mut req = request(3600);
    req.read = (0..98)
        .map(|i| format!("room/message/room-{i:03}"))
        .collect();
    let t = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t")
        .unwrap()
        .token;
    let g = verify_password(&t, STUDENT, &keys(), NOW).unwrap();
    let prefix = "arn:aws-us-gov:iot:us-gov-west-1:123456789012";
    let docs = iot::policy_documents(&g, prefix).unwrap();
    assert!(
        docs.len() > 1 && docs.len() <= MAX_DOCUMENTS,
        "{}",
        docs.len()
    );
    let mut resources = 0;
    for d in &docs {
        let n = serde_json::to_string(d).unwrap().len();
        assert!(n <= MAX_DOCUMENT_CHARS, "{n}");
        resources += d.statement.iter().map(|s| s.resource.len()).sum::<usize>();
    }
    assert_eq!(resources, 1 + 2 + 98 * 2);
    // The same count of long filters does not fit, and says so.
    req.read = (0..98)
        .map(|i| format!("room/message/{i:03}-{}", "x".repeat(200)))
        .collect();
    let t = issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t")
        .unwrap()
        .token;
    let g = verify_password(&t, STUDENT, &keys(), NOW).unwrap();
    let e = iot::policy_documents(&g, prefix).unwrap_err();
    assert!(
        matches!(e, iot::PolicyError::TooLarge(n) if n > MAX_DOCUMENTS),
        "{e}"
    );
}

#[test]
fn principal_ids_are_alphanumeric_and_keep_clients_apart() {
    let a = iot::principal_id("GID_a@@@b1");
    let b = iot::principal_id("GID_ab@@@1");
    assert_ne!(a, b);
    for id in [
        a,
        b,
        iot::principal_id(&format!("GID_{}@@@1", "x".repeat(56))),
    ] {
        assert!(!id.is_empty() && id.len() <= 128, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    }
    assert!(iot::principal_id(STUDENT).starts_with("GIDstudent001x"));
}

#[test]
fn the_cloud_connection_lifetime_is_clamped_to_what_iot_core_accepts() {
    assert_eq!(iot::disconnect_after_secs(0), 300);
    assert_eq!(iot::disconnect_after_secs(299), 300);
    assert_eq!(iot::disconnect_after_secs(3600), 3600);
    assert_eq!(iot::disconnect_after_secs(86_401), 86_400);
    assert_eq!(iot::disconnect_after_secs(u64::MAX), 86_400);
}

#[test]
fn classroom_scopes_cover_every_room_and_cap_out_at_the_filter_limit() {
    let rooms: Vec<RoomId> = (0..signin::MAX_CLASSROOM_ROOMS)
        .map(|i| RoomId::parse(&i.to_string()).unwrap())
        .collect();
    let req = classroom_request(
        &ClientId::parse(STUDENT).unwrap(),
        &rooms,
        "roomSend",
        "room",
        3600,
    );
    assert_eq!(req.read.len() + req.write.len(), signin::MAX_FILTERS);
    assert!(issue(&req, &keys(), LifetimeBounds::CLOUD, NOW, "t").is_ok());
}
