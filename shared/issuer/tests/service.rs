//! The issuer's operations called directly (as the `classroom` CLI does), against a real moto
//! (DynamoDB + Secrets Manager): typed requests in, typed answers out, the refusals' classes.
//! The HTTP contract (routes, status codes, JSON bodies) is tested in `functions/token`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use issuer::{
    ClassroomRequest, ErrorStatus, Expiry, IssueRequest, Issuer, Operation, QueryAnswer,
    QueryRequest, Reply, TokenState,
};
use kit::Env;
use mapping::{ClientId, Role};
use signin::{KeySet, TokenError};
use testkit::Moto;

/// 2026-01-01T00:00:00Z.
const NOW_MS: u64 = 1_767_225_600_000;
const NOW_S: u64 = NOW_MS / 1000;
const STUDENT: &str = "GID_student@@@001";
const TEACHER: &str = "GID_teacher@@@001";

fn keys() -> KeySet {
    KeySet::new("k1", vec![5; 32]).unwrap()
}

async fn start() -> (Moto, aws_config::SdkConfig, Issuer) {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    testkit::create_signin_tables(&aws_sdk_dynamodb::Client::new(&sdk), "tokens", "enrollment")
        .await;
    testkit::put_secret(&sdk, "keys", &keys().to_json()).await;
    let env = Env::from_map([
        ("TOKEN_TABLE", "tokens"),
        ("ENROLLMENT_TABLE", "enrollment"),
        ("SIGNING_KEYS_SECRET_ID", "keys"),
        ("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:123456789012"),
    ]);
    let issuer = Issuer::from_env_with(&env, &sdk).await.unwrap();
    (moto, sdk, issuer)
}

#[tokio::test]
async fn issue_status_query_and_revoke_without_http() {
    let (_moto, _sdk, issuer) = start().await;
    let request = IssueRequest::new(
        STUDENT,
        vec!["room/system".to_owned(), "room/message/1".to_owned()],
        vec!["roomSend/message".to_owned()],
        Expiry::In(600),
    )
    .unwrap();
    let issued = issuer.issue(&request, NOW_MS).await.unwrap();
    assert_eq!((issued.issued_at, issued.expires_at), (NOW_S, NOW_S + 600));
    assert_eq!(issued.read, ["room/message/1", "room/system"]);
    assert_eq!((issued.rooms.as_ref(), issued.role), (None, None));
    let claims = signin::verify(&issued.token, STUDENT, &keys(), NOW_S).unwrap();
    assert_eq!(claims.token_id, issued.token_id);
    // The Debug of an answer never shows the token.
    assert!(!format!("{issued:?}").contains(&issued.token));

    let status = issuer.status(&issued.token_id, NOW_MS).await.unwrap();
    assert_eq!(
        (status.status, status.client_id.as_str()),
        (TokenState::Active, STUDENT)
    );
    let expired = issuer
        .status(&issued.token_id, (NOW_S + 600) * 1000)
        .await
        .unwrap();
    assert_eq!(expired.status, TokenState::Expired);

    let query = |client_id: Option<&str>| QueryRequest {
        token: issued.token.clone(),
        client_id: client_id.map(str::to_owned),
    };
    assert_eq!(
        issuer.query(&query(None), NOW_MS).await.unwrap(),
        QueryAnswer::Valid(claims.clone())
    );
    let wrong = issuer.query(&query(Some(TEACHER)), NOW_MS).await.unwrap();
    assert!(
        matches!(
            &wrong,
            QueryAnswer::Invalid {
                error: TokenError::WrongClient { .. },
                token: None
            }
        ),
        "{wrong:?}"
    );

    // The same through `serve`, as the CLI and the HTTP API call it.
    let reply = issuer
        .serve(
            &Operation::Revoke {
                token_id: issued.token_id.clone(),
            },
            NOW_MS,
        )
        .await
        .unwrap();
    assert!(!reply.is_new_token());
    assert!(matches!(reply, Reply::Revoked(r) if r.status == TokenState::Revoked));
    assert_eq!(
        issuer
            .status(&issued.token_id, NOW_MS)
            .await
            .unwrap()
            .status,
        TokenState::Revoked
    );
    assert_eq!(
        issuer.query(&query(None), NOW_MS).await.unwrap(),
        QueryAnswer::Invalid {
            error: TokenError::Revoked,
            token: Some((issued.token_id.clone(), STUDENT.to_owned())),
        }
    );

    // Revoke-all: the next token is issued after it.
    let revoked = issuer.revoke_client(STUDENT, NOW_MS).await.unwrap();
    assert_eq!(revoked.revoked_before, NOW_S);
    let next = issuer.issue(&request, NOW_MS).await.unwrap();
    assert_eq!(next.issued_at, NOW_S + 1);
}

#[tokio::test]
async fn classroom_tokens_need_a_role_and_enroll_the_rooms() {
    let (_moto, sdk, issuer) = start().await;
    let rooms = vec!["2".to_owned(), "1".to_owned()];
    let request = ClassroomRequest::new(TEACHER, &rooms, Expiry::In(600)).unwrap();
    let reply = issuer
        .serve(&Operation::Classroom(request), NOW_MS)
        .await
        .unwrap();
    assert!(reply.is_new_token());
    let Reply::Issued(issued) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(issued.role, Some("teacher"));
    assert_eq!(issued.rooms, Some(vec!["1".to_owned(), "2".to_owned()]));
    let enrolled = stores::EnrollmentTable::new(aws_sdk_dynamodb::Client::new(&sdk), "enrollment")
        .rooms_of(&ClientId::parse(TEACHER).unwrap())
        .await
        .unwrap();
    assert_eq!(
        enrolled
            .iter()
            .map(|e| (e.room_id.as_str(), e.role))
            .collect::<Vec<_>>(),
        [("1", Role::Teacher), ("2", Role::Teacher)]
    );

    let visitor = ClassroomRequest::new("GID_visitor@@@001", &rooms, Expiry::In(600)).unwrap();
    let e = issuer.classroom(&visitor, NOW_MS).await.unwrap_err();
    assert_eq!(
        (e.status, e.kind, e.field.as_deref()),
        (ErrorStatus::BadRequest, "no_role", Some("clientId"))
    );
}

#[tokio::test]
async fn refusals_have_their_class_and_field() {
    let (_moto, _sdk, issuer) = start().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for (operation, status, kind, field) in [
        (
            Operation::Status {
                token_id: unknown.to_owned(),
            },
            ErrorStatus::NotFound,
            "unknown_token",
            None,
        ),
        (
            Operation::Revoke {
                token_id: unknown.to_owned(),
            },
            ErrorStatus::NotFound,
            "unknown_token",
            None,
        ),
        (
            Operation::Status {
                token_id: "a.b".to_owned(),
            },
            ErrorStatus::BadRequest,
            "invalid_token_id",
            Some("tokenId"),
        ),
        (
            Operation::RevokeClient {
                client_id: "nobody".to_owned(),
            },
            ErrorStatus::BadRequest,
            "invalid_client_id",
            Some("clientId"),
        ),
        (
            Operation::Issue(
                IssueRequest::new(
                    STUDENT,
                    vec!["room/system".to_owned()],
                    vec![],
                    Expiry::In(59),
                )
                .unwrap(),
            ),
            ErrorStatus::BadRequest,
            "invalid_lifetime",
            Some("expiresIn"),
        ),
        (
            Operation::Issue(
                IssueRequest::new(
                    STUDENT,
                    vec!["room/system".to_owned()],
                    vec![],
                    Expiry::At(NOW_MS - 1),
                )
                .unwrap(),
            ),
            ErrorStatus::BadRequest,
            "invalid_lifetime",
            Some("expireTime"),
        ),
        (
            Operation::Issue(IssueRequest::new(STUDENT, vec![], vec![], Expiry::In(60)).unwrap()),
            ErrorStatus::BadRequest,
            "no_filters",
            Some("read"),
        ),
    ] {
        let e = issuer.serve(&operation, NOW_MS).await.unwrap_err();
        assert_eq!(
            (e.status, e.kind, e.field.as_deref()),
            (status, kind, field),
            "{operation:?}: {e}"
        );
    }
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let (_moto, sdk, _issuer) = start().await;
    let base = [
        ("TOKEN_TABLE", "tokens"),
        ("ENROLLMENT_TABLE", "enrollment"),
        ("SIGNING_KEYS_SECRET_ID", "keys"),
        ("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:123456789012"),
    ];
    for (var, value) in [
        ("TOKEN_TABLE", ""),
        ("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1"),
        ("TOKEN_MIN_LIFETIME_SECS", "0"),
        ("TOKEN_MAX_LIFETIME_SECS", "2592001"),
        ("SIGNING_KEYS_SECRET_ID", "missing"),
    ] {
        let mut vars: Vec<(&str, &str)> = base.iter().copied().filter(|(k, _)| *k != var).collect();
        vars.push((var, value));
        let err = Issuer::from_env_with(&Env::from_map(vars), &sdk)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(var), "{var}: {err}");
    }
}
