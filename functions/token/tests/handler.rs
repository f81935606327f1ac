//! The issuer's routes against a real moto (DynamoDB + Secrets Manager).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use common::{ARN_PREFIX, IssuerStack, NOW_MS, NOW_S, call, issue, key_set, raw_request, request};
use mapping::{ClientId, Role, RoomId};
use serde_json::{Value, json};
use signin::{KeySet, TokenError};

const STUDENT: &str = "GID_student@@@001";
const TEACHER: &str = "GID_teacher@@@001";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_issued_token_verifies_and_is_recorded() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let body = issue(
        &f,
        STUDENT,
        &["room/system", "room/message/1", "room/system"],
        &["roomSend/message"],
        3600,
        NOW_MS,
    )
    .await;
    let token = body["token"].as_str().unwrap();
    let token_id = body["tokenId"].as_str().unwrap();
    assert_eq!(token_id.len(), 32);
    assert!(token_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let claims = signin::verify(token, STUDENT, &key_set(), NOW_S).unwrap();
    assert_eq!(claims.token_id, token_id);
    assert_eq!((claims.issued_at, claims.expires_at), (NOW_S, NOW_S + 3600));
    // Sorted and deduplicated, as in the token.
    assert_eq!(claims.read, ["room/message/1", "room/system"]);
    assert_eq!(strings(&body["read"]), claims.read);
    insta::assert_json_snapshot!("issued", body, {
        ".token" => "[token]",
        ".tokenId" => "[tokenId]",
    });

    let record = stack.tokens().status(token_id).await.unwrap().unwrap();
    assert_eq!(
        (
            record.client_id.as_str(),
            record.issued_at,
            record.expires_at,
            record.revoked
        ),
        (STUDENT, NOW_S, NOW_S + 3600, false)
    );
    let (status, answer) = call(
        &f,
        request("GET", &format!("/tokens/{token_id}"), None),
        NOW_MS + 1000,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"tokenId": token_id, "clientId": STUDENT, "status": "active",
               "issuedAt": NOW_S, "expiresAt": NOW_S + 3600})
    );
    // At its expiry it is expired.
    let (_, answer) = call(
        &f,
        request("GET", &format!("/tokens/{token_id}"), None),
        (NOW_S + 3600) * 1000,
    )
    .await;
    assert_eq!(answer["status"], "expired");
}

#[tokio::test]
async fn alibabas_expire_time_sets_the_expiry_to_the_second() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens",
            Some(json!({"clientId": STUDENT, "read": ["room/system"],
                        "expireTime": (NOW_S + 120) * 1000 + 999})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expiresAt"], NOW_S + 120);

    for (req, field) in [
        (
            json!({"clientId": STUDENT, "read": ["a"], "expireTime": NOW_MS - 1}),
            "expireTime",
        ),
        (
            json!({"clientId": STUDENT, "read": ["a"], "expireTime": NOW_MS + 3_000_000_000u64}),
            "expireTime",
        ),
        (
            json!({"clientId": STUDENT, "read": ["a"], "expiresIn": 60, "expireTime": NOW_MS + 60_000}),
            "expireTime",
        ),
        (json!({"clientId": STUDENT, "read": ["a"]}), "expiresIn"),
    ] {
        let (status, body) = call(&f, request("POST", "/tokens", Some(req)), NOW_MS).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_lifetime_out_of_range_is_refused_not_capped() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    for lifetime in [59, 2_592_001, 0] {
        let (status, body) = call(
            &f,
            request(
                "POST",
                "/tokens",
                Some(json!({"clientId": STUDENT, "read": ["room/system"], "expiresIn": lifetime})),
            ),
            NOW_MS,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_lifetime");
        assert_eq!(body["field"], "expiresIn");
    }
    // The bounds themselves are fine, and 30 days is 30 days.
    issue(&f, STUDENT, &["room/system"], &[], 60, NOW_MS).await;
    let body = issue(&f, STUDENT, &["room/system"], &[], 2_592_000, NOW_MS).await;
    assert_eq!(body["expiresAt"], NOW_S + 2_592_000);
    // The local stack allows shorter lifetimes.
    let local = stack.function(&[("TOKEN_MIN_LIFETIME_SECS", "1")]).await;
    issue(&local, STUDENT, &["room/system"], &[], 1, NOW_MS).await;
}

#[tokio::test]
async fn more_than_100_filters_or_a_policy_iot_cannot_hold_are_refused() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let filters: Vec<String> = (0..101).map(|i| format!("room/message/{i}")).collect();
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens",
            Some(json!({"clientId": STUDENT, "read": &filters[..60], "write": &filters[60..], "expiresIn": 60})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), body["field"].as_str()),
        (400, Some("too_many_filters"), Some("read")),
        "{body}"
    );
    // 100 short filters fit IoT Core's 10 policy documents.
    issue(
        &f,
        STUDENT,
        &filters[..100]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
        60,
        NOW_MS,
    )
    .await;
    // 100 long ones do not: refused at issue time, naming the field.
    let long: Vec<String> = (0..100)
        .map(|i| format!("room/message/{i:03}-{}", "x".repeat(40)))
        .collect();
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens",
            Some(json!({"clientId": STUDENT, "read": long, "expiresIn": 60})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), body["field"].as_str()),
        (400, Some("policy_too_large"), Some("read")),
        "{body}"
    );
    // Nothing was recorded for the refused requests: only the one token issued.
    let scan = aws_sdk_dynamodb::Client::new(&stack.sdk)
        .scan()
        .table_name("tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count, 1);
}

#[tokio::test]
async fn bad_fields_are_refused_with_their_name() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    for (req, kind, field) in [
        (
            json!({"clientId": "nobody", "read": ["a"], "expiresIn": 60}),
            "invalid_client_id",
            "clientId",
        ),
        (
            json!({"read": ["a"], "expiresIn": 60}),
            "missing_field",
            "clientId",
        ),
        (
            json!({"clientId": STUDENT, "read": ["room/#/x"], "expiresIn": 60}),
            "invalid_filter",
            "read",
        ),
        (
            json!({"clientId": STUDENT, "write": ["$SYS/uploadToken"], "expiresIn": 60}),
            "invalid_filter",
            "write",
        ),
        (
            json!({"clientId": STUDENT, "read": "room/system", "expiresIn": 60}),
            "invalid_type",
            "read",
        ),
        (
            json!({"clientId": STUDENT, "expiresIn": 60}),
            "no_filters",
            "read",
        ),
        (
            json!({"clientId": STUDENT, "read": ["a"], "expiresIn": -5}),
            "invalid_type",
            "expiresIn",
        ),
        (
            json!({"clientId": STUDENT, "read": ["a"], "expiresIn": 60, "actions": "R,W"}),
            "unknown_field",
            "actions",
        ),
    ] {
        let (status, body) = call(&f, request("POST", "/tokens", Some(req.clone())), NOW_MS).await;
        assert_eq!(status, 400, "{req} -> {body}");
        assert_eq!(
            (body["error"].as_str(), body["field"].as_str()),
            (Some(kind), Some(field)),
            "{req} -> {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn the_classroom_route_grants_the_rooms_and_records_the_enrollment() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens/classroom",
            Some(json!({"clientId": STUDENT, "rooms": ["2", "1", "2"], "expiresIn": 3600})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    insta::assert_json_snapshot!("classroom-student", body, {
        ".token" => "[token]",
        ".tokenId" => "[tokenId]",
    });
    let grant =
        signin::verify_password(body["token"].as_str().unwrap(), STUDENT, &key_set(), NOW_S)
            .unwrap();
    use signin::Action::{Publish, Receive, Subscribe};
    assert!(grant.allows(Receive, "room/message/1").is_ok());
    assert!(grant.allows(Subscribe, "room/status/2").is_ok());
    assert!(grant.allows(Receive, "room/message/3").is_err());
    assert!(grant.allows(Subscribe, "room/message/+").is_err());
    assert!(grant.allows(Receive, "room/p2p/GID_student@@@001").is_ok());
    assert!(grant.allows(Receive, "room/p2p/GID_student@@@002").is_err());
    assert!(grant.allows(Publish, "roomSend/message").is_ok());
    assert!(grant.allows(Publish, "room/message/1").is_err());

    let enrolled = stack
        .enrollment()
        .rooms_of(&ClientId::parse(STUDENT).unwrap())
        .await
        .unwrap();
    assert_eq!(
        enrolled
            .iter()
            .map(|e| (e.room_id.as_str(), e.role, e.enrolled_at_ms, e.expires_at))
            .collect::<Vec<_>>(),
        [
            ("1", Role::Student, NOW_MS, NOW_S + 3600),
            ("2", Role::Student, NOW_MS, NOW_S + 3600),
        ]
    );

    // A teacher, with other parents configured.
    let other = stack
        .function(&[
            ("UPLINK_PARENTS", "classSend"),
            ("DOWNLINK_PARENTS", "class"),
        ])
        .await;
    let (status, body) = call(
        &other,
        request(
            "POST",
            "/tokens/classroom",
            Some(json!({"clientId": TEACHER, "rooms": ["7"], "expiresIn": 600})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "teacher");
    assert_eq!(
        strings(&body["read"]),
        [
            "class/message/7",
            "class/p2p/GID_teacher@@@001",
            "class/status/7",
            "class/system"
        ]
    );
    assert_eq!(
        strings(&body["write"]),
        ["classSend/command", "classSend/message"]
    );
    let teacher = stack
        .enrollment()
        .rooms_of(&ClientId::parse(TEACHER).unwrap())
        .await
        .unwrap();
    assert_eq!(teacher.len(), 1);
    assert_eq!(
        (teacher[0].room_id.clone(), teacher[0].role),
        (RoomId::parse("7").unwrap(), Role::Teacher)
    );
}

#[tokio::test]
async fn the_classroom_route_refuses_other_groups_and_bad_rooms() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let many: Vec<String> = (0..49).map(|i| i.to_string()).collect();
    for (req, kind, field) in [
        (
            json!({"clientId": "GID_visitor@@@001", "rooms": ["1"], "expiresIn": 60}),
            "no_role",
            "clientId",
        ),
        (
            json!({"clientId": STUDENT, "rooms": ["1", "a/b"], "expiresIn": 60}),
            "invalid_room_id",
            "rooms",
        ),
        (
            json!({"clientId": STUDENT, "rooms": ["+"], "expiresIn": 60}),
            "invalid_room_id",
            "rooms",
        ),
        (
            json!({"clientId": STUDENT, "rooms": [], "expiresIn": 60}),
            "room_count",
            "rooms",
        ),
        (
            json!({"clientId": STUDENT, "rooms": many, "expiresIn": 60}),
            "room_count",
            "rooms",
        ),
        (
            json!({"clientId": STUDENT, "expiresIn": 60}),
            "missing_field",
            "rooms",
        ),
        (
            json!({"clientId": STUDENT, "rooms": ["1"], "expiresIn": 9_999_999}),
            "invalid_lifetime",
            "expiresIn",
        ),
        (
            json!({"clientId": STUDENT, "rooms": ["1"], "read": ["#"], "expiresIn": 60}),
            "unknown_field",
            "read",
        ),
    ] {
        let (status, body) = call(
            &f,
            request("POST", "/tokens/classroom", Some(req.clone())),
            NOW_MS,
        )
        .await;
        assert_eq!(status, 400, "{req} -> {body}");
        assert_eq!(
            (body["error"].as_str(), body["field"].as_str()),
            (Some(kind), Some(field)),
            "{req} -> {body}"
        );
    }
    // The group mapping is configurable: a visitor group may be made students.
    let f = stack
        .function(&[("STUDENT_GROUPS", "GID_student,GID_visitor")])
        .await;
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens/classroom",
            Some(json!({"clientId": "GID_visitor@@@001", "rooms": ["1"], "expiresIn": 60})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (201, Some("student")),
        "{body}"
    );
    // 48 rooms is the most one token holds (100 filters).
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/tokens/classroom",
            Some(json!({"clientId": STUDENT, "rooms": &many[..48], "expiresIn": 60})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_revoked_token_is_revoked_for_status_query_and_the_authorizer() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let kept = issue(&f, STUDENT, &["room/system"], &[], 3600, NOW_MS).await;
    let body = issue(&f, STUDENT, &["room/system"], &[], 3600, NOW_MS).await;
    let token = body["token"].as_str().unwrap();
    let token_id = body["tokenId"].as_str().unwrap();

    let (status, answer) = call(
        &f,
        request("POST", &format!("/tokens/{token_id}/revoke"), None),
        NOW_MS + 5000,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"tokenId": token_id, "status": "revoked"}));
    let (_, answer) = call(
        &f,
        request("GET", &format!("/tokens/{token_id}"), None),
        NOW_MS,
    )
    .await;
    assert_eq!(answer["status"], "revoked");
    // What the authorizer does: verify, then one BatchGetItem of the revocations.
    let grant = signin::verify_password(token, STUDENT, &key_set(), NOW_S).unwrap();
    let revocations = stack.tokens().revocations_for(&grant).await.unwrap();
    assert_eq!(revocations.check(&grant), Err(TokenError::Revoked));
    let (status, answer) = call(
        &f,
        request("POST", "/tokens/query", Some(json!({"token": token}))),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"valid": false, "code": 3, "reason": "revoked",
               "message": "the token has been revoked",
               "tokenId": token_id, "clientId": STUDENT})
    );
    // The other token of the client is untouched.
    let kept_id = kept["tokenId"].as_str().unwrap();
    let (_, answer) = call(
        &f,
        request("GET", &format!("/tokens/{kept_id}"), None),
        NOW_MS,
    )
    .await;
    assert_eq!(answer["status"], "active");
}

#[tokio::test]
async fn revoke_all_revokes_every_earlier_token_and_never_a_later_one() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let old = issue(&f, STUDENT, &["room/system"], &[], 3600, NOW_MS).await;
    let other = issue(&f, TEACHER, &["room/system"], &[], 3600, NOW_MS).await;
    let (status, answer) = call(
        &f,
        request("POST", "/clients/GID_student%40%40%40001/revoke", None),
        NOW_MS + 500,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"clientId": STUDENT, "revokedBefore": NOW_S}));

    let status_of = |body: &Value| format!("/tokens/{}", body["tokenId"].as_str().unwrap());
    let (_, answer) = call(&f, request("GET", &status_of(&old), None), NOW_MS).await;
    assert_eq!(answer["status"], "revoked");
    let (_, answer) = call(&f, request("GET", &status_of(&other), None), NOW_MS).await;
    assert_eq!(answer["status"], "active");

    // A token issued in the very second of the revoke-all is issued one second later, so the
    // revoke-all does not cover it.
    let new = issue(&f, STUDENT, &["room/system"], &[], 3600, NOW_MS + 900).await;
    assert_eq!(new["issuedAt"], NOW_S + 1);
    assert_eq!(new["expiresAt"], NOW_S + 1 + 3600);
    let (_, answer) = call(&f, request("GET", &status_of(&new), None), NOW_MS + 900).await;
    assert_eq!(answer["status"], "active");
    // The broker accepts it right away (issue time within the allowed clock skew)...
    let token = new["token"].as_str().unwrap();
    let grant = signin::verify_password(token, STUDENT, &key_set(), NOW_S).unwrap();
    let revocations = stack.tokens().revocations_for(&grant).await.unwrap();
    assert_eq!(revocations.check(&grant), Ok(()));
    let (_, answer) = call(
        &f,
        request("POST", "/tokens/query", Some(json!({"token": token}))),
        NOW_MS + 900,
    )
    .await;
    assert_eq!(answer["valid"], true, "{answer}");
    // ...and the old one stays refused.
    let old_grant =
        signin::verify_password(old["token"].as_str().unwrap(), STUDENT, &key_set(), NOW_S)
            .unwrap();
    let revocations = stack.tokens().revocations_for(&old_grant).await.unwrap();
    assert_eq!(revocations.check(&old_grant), Err(TokenError::Revoked));

    let (status, answer) = call(&f, request("POST", "/clients/nobody/revoke", None), NOW_MS).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("clientId")),
        "{answer}"
    );
}

#[tokio::test]
async fn query_answers_valid_or_the_reason_with_alibabas_code() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let body = issue(
        &f,
        STUDENT,
        &["room/system"],
        &["roomSend/message"],
        600,
        NOW_MS,
    )
    .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let query = |token: &str, client: Option<&str>, now_ms: u64| {
        let mut req = json!({ "token": token });
        if let Some(c) = client {
            req["clientId"] = c.into();
        }
        call(&f, request("POST", "/tokens/query", Some(req)), now_ms)
    };
    let (status, answer) = query(&token, None, NOW_MS).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"valid": true, "tokenId": body["tokenId"], "clientId": STUDENT,
               "issuedAt": NOW_S, "expiresAt": NOW_S + 600,
               "read": ["room/system"], "write": ["roomSend/message"]})
    );
    assert_eq!(query(&token, Some(STUDENT), NOW_MS).await.1["valid"], true);

    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = {
        let keys = KeySet::new("k9", vec![9; 32]).unwrap();
        let req = signin::TokenRequest {
            client_id: STUDENT.to_owned(),
            read: vec!["room/system".to_owned()],
            write: vec![],
            lifetime_secs: 600,
        };
        signin::issue(&req, &keys, signin::LifetimeBounds::CLOUD, NOW_S, "t9")
            .unwrap()
            .token
    };
    for (token, client, now_ms, code, reason) in [
        (token.as_str(), None, NOW_MS + 600_000, 2, "expired"),
        (token.as_str(), Some(TEACHER), NOW_MS, 4, "wrong_client"),
        (tampered.as_str(), None, NOW_MS, 8, "bad_signature"),
        (foreign.as_str(), None, NOW_MS, 8, "unknown_key"),
        ("not a token", None, NOW_MS, 1, "malformed"),
        ("ct1.k1.e30.AAAA", None, NOW_MS, 8, "bad_signature"),
    ] {
        let (status, answer) = query(token, client, now_ms).await;
        assert_eq!(status, 200);
        assert_eq!(
            (
                answer["valid"].as_bool(),
                answer["code"].as_i64(),
                answer["reason"].as_str()
            ),
            (Some(false), Some(code), Some(reason)),
            "{answer}"
        );
    }
    let (status, answer) = call(
        &f,
        request("POST", "/tokens/query", Some(json!({"clientId": STUDENT}))),
        NOW_MS,
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("token")));
}

#[tokio::test]
async fn unknown_tokens_routes_and_bodies_are_refused() {
    let stack = IssuerStack::start().await;
    let f = stack.function(&[]).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for (req, status, kind) in [
        (
            request("GET", &format!("/tokens/{unknown}"), None),
            404,
            "unknown_token",
        ),
        (
            request("POST", &format!("/tokens/{unknown}/revoke"), None),
            404,
            "unknown_token",
        ),
        (
            request("GET", "/tokens/bad.id", None),
            400,
            "invalid_token_id",
        ),
        (request("GET", "/nothing", None), 404, "not_found"),
        (
            request("DELETE", &format!("/tokens/{unknown}"), None),
            404,
            "not_found",
        ),
        (request("GET", "/tokens", None), 404, "not_found"),
        (
            raw_request("POST", "/tokens", "{not json"),
            400,
            "invalid_body",
        ),
        (raw_request("POST", "/tokens", "[]"), 400, "invalid_body"),
        (
            raw_request("POST", "/tokens/classroom", "\"ct1.x\""),
            400,
            "invalid_body",
        ),
        (request("POST", "/tokens", None), 400, "invalid_body"),
    ] {
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let (got, body) = call(&f, req, NOW_MS).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(kind)),
            "{method} {path} -> {body}"
        );
    }
    // A stage prefix in the path is fine.
    let (status, body) = call(
        &f,
        request(
            "POST",
            "/prod/tokens",
            Some(json!({"clientId": STUDENT, "read": ["room/system"], "expiresIn": 60})),
        ),
        NOW_MS,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Revoking must not have created records for unknown tokens.
    assert_eq!(stack.tokens().status(unknown).await.unwrap(), None);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_after_the_refresh_interval_and_a_failed_read_keeps_them() {
    let stack = IssuerStack::start().await;
    let eager = stack.function(&[("SIGNING_KEYS_REFRESH_SECS", "0")]).await;
    let lazy = stack.function(&[]).await;
    let kid = |body: &Value| {
        body["token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let before = issue(&eager, STUDENT, &["room/system"], &[], 600, NOW_MS).await;
    assert_eq!(kid(&before), "k1");

    let mut rotated = key_set();
    rotated.rotate("k2", vec![8; 32]).unwrap();
    stack.put_secret(&rotated.to_json()).await;
    let after = issue(&eager, STUDENT, &["room/system"], &[], 600, NOW_MS).await;
    assert_eq!(kid(&after), "k2");
    // Within its 300 s the other container still signs with k1, which every verifier accepts.
    let cached = issue(&lazy, STUDENT, &["room/system"], &[], 600, NOW_MS).await;
    assert_eq!(kid(&cached), "k1");
    for body in [&before, &after, &cached] {
        signin::verify(body["token"].as_str().unwrap(), STUDENT, &rotated, NOW_S).unwrap();
    }

    // A secret that no longer parses: keep serving with the cached set.
    stack.put_secret("{\"current\":\"k3\"}").await;
    let still = issue(&eager, STUDENT, &["room/system"], &[], 600, NOW_MS).await;
    assert_eq!(kid(&still), "k2");
    // A deleted secret likewise.
    aws_sdk_secretsmanager::Client::new(&stack.sdk)
        .delete_secret()
        .secret_id(common::SECRET_ID)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let still = issue(&eager, STUDENT, &["room/system"], &[], 600, NOW_MS).await;
    assert_eq!(kid(&still), "k2");
    // But a cold start without the secret stops, naming the variable.
    let err = token::Function::from_env_with(&stack.env(&[]), &stack.sdk)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SIGNING_KEYS_SECRET_ID") && err.contains(common::SECRET_ID),
        "{err}"
    );
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let stack = IssuerStack::start().await;
    for (extra, var) in [
        (vec![("TOKEN_TABLE", "")], "TOKEN_TABLE"),
        (vec![("ENROLLMENT_TABLE", "")], "ENROLLMENT_TABLE"),
        (vec![("IOT_ARN_PREFIX", "")], "IOT_ARN_PREFIX"),
        (
            vec![("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1")],
            "IOT_ARN_PREFIX",
        ),
        (
            vec![("TOKEN_MIN_LIFETIME_SECS", "0")],
            "TOKEN_MIN_LIFETIME_SECS",
        ),
        (
            vec![("TOKEN_MAX_LIFETIME_SECS", "2592001")],
            "TOKEN_MAX_LIFETIME_SECS",
        ),
        (
            vec![
                ("TOKEN_MIN_LIFETIME_SECS", "600"),
                ("TOKEN_MAX_LIFETIME_SECS", "60"),
            ],
            "TOKEN_MAX_LIFETIME_SECS",
        ),
        (
            vec![("SIGNING_KEYS_REFRESH_SECS", "soon")],
            "SIGNING_KEYS_REFRESH_SECS",
        ),
        (vec![("STUDENT_GROUPS", "GID_teacher")], "STUDENT_GROUPS"),
        (vec![("TEACHER_GROUPS", "teachers")], "TEACHER_GROUPS"),
        (
            vec![("SIGNING_KEYS_SECRET_ID", "missing")],
            "SIGNING_KEYS_SECRET_ID",
        ),
        (vec![("DOWNLINK_PARENTS", "room/x")], "DOWNLINK_PARENTS"),
    ] {
        let err = token::Function::from_env_with(&stack.env(&extra), &stack.sdk)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(var), "{extra:?}: {err}");
    }
    assert!(ARN_PREFIX.starts_with("arn:aws:iot:"));
}
