//! The authorizer against a real moto (Secrets Manager + DynamoDB), fed the fixture events:
//! one reviewed snapshot per fixture, revocations by token and by client, the one read per
//! CONNECT, the store failing closed, start-up errors, and logs that never hold a credential.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authorizer::{Function, StartError};
use aws_lambda_events::iot::IoTCoreCustomAuthorizerResponse;
use base64::Engine as _;
use kit::Env;
use serde_json::Value;
use stores::TokenTable;
use testkit::Moto;

struct Stack {
    _moto: Moto,
    sdk: aws_config::SdkConfig,
    tokens: TokenTable,
    function: Function,
}

fn env(secret: &str, table: &str) -> Env {
    Env::from_map([
        ("SIGNING_KEYS_SECRET_ID", secret),
        ("TOKEN_TABLE", table),
        ("IOT_ARN_PREFIX", common::ARN_PREFIX),
    ])
}

/// moto with the fixture environment, and the function built from it at the fixtures' time.
async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    common::provision(&sdk).await;
    let function = Function::from_env_with(&env(common::SECRET_ID, common::TOKEN_TABLE), &sdk)
        .await
        .unwrap()
        .with_clock(|| common::NOW);
    let tokens = TokenTable::new(aws_sdk_dynamodb::Client::new(&sdk), common::TOKEN_TABLE);
    Stack {
        _moto: moto,
        sdk,
        tokens,
        function,
    }
}

fn with_password(mut event: Value, password: &str) -> Value {
    event["protocolData"]["mqtt"]["password"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(password));
    event
}

fn allowed(r: &IoTCoreCustomAuthorizerResponse) -> bool {
    r.is_authenticated && !r.policy_documents.is_empty()
}

fn refused(r: &IoTCoreCustomAuthorizerResponse) -> bool {
    !r.is_authenticated && r.policy_documents.is_empty()
}

/// The answer to each fixture, with what its log line says about it (the response alone does
/// not tell one refusal from another).
#[test]
fn every_fixture_answers_as_reviewed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(stack());
    let logs = Logs::default();
    let _guard = logs.capture();
    insta::glob!("fixtures/*.json", |path| {
        let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let response = rt.block_on(s.function.handle(event));
        let lines = logs.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let f = &lines[0]["fields"];
        let log = serde_json::json!({
            "level": lines[0]["level"],
            "message": f["message"],
            "kind": f["kind"],
            "code": f["code"],
            "client_id": f["client_id"],
            "token_ids": f["token_ids"],
            "transport": f["transport"],
            "reason": f["reason"],
        });
        insta::assert_json_snapshot!(serde_json::json!({ "response": response, "log": log }));
    });
}

#[tokio::test]
async fn both_transports_sign_in_and_every_bad_credential_is_refused() {
    let s = stack().await;
    for name in [
        "mqtt-over-wss",
        "mqtt-on-443",
        "hundred-filters",
        "alibaba-r-w-form",
    ] {
        let r = s.function.handle(common::fixture(name)).await;
        assert!(allowed(&r), "{name}: {r:?}");
    }
    for name in [
        "password-absent",
        "password-not-base64",
        "client-id-absent",
        "token-for-another-client",
        "expired",
        "revoked",
        "tampered",
        "wrong-key-id",
    ] {
        let r = s.function.handle(common::fixture(name)).await;
        assert!(refused(&r), "{name}: {r:?}");
    }
}

#[tokio::test]
async fn a_token_revoked_while_connected_is_refused_at_the_next_refresh() {
    let s = stack().await;
    let event = common::fixture("mqtt-over-wss");
    assert!(allowed(&s.function.handle(event.clone()).await));
    let issued = common::issue_with(
        &common::classroom("GID_student@@@001", &["1"]),
        &common::keys(),
        common::ISSUED,
        "fixture-wss",
    );
    s.tokens.record_issued(&issued.claims).await.unwrap();
    assert!(
        s.tokens
            .revoke("fixture-wss", common::NOW - 1)
            .await
            .unwrap()
    );
    // IoT Core calls again with the same CONNECT every refreshAfterInSeconds.
    assert!(refused(&s.function.handle(event).await));
    // Other tokens of other clients are untouched.
    assert!(allowed(
        &s.function.handle(common::fixture("mqtt-on-443")).await
    ));
}

#[tokio::test]
async fn one_revoked_part_of_an_alibaba_password_refuses_it_all() {
    let s = stack().await;
    let event = common::fixture("alibaba-r-w-form");
    assert!(allowed(&s.function.handle(event.clone()).await));
    let full = common::classroom("GID_student@@@005", &["1"]);
    let write = signin::TokenRequest {
        read: Vec::new(),
        ..full
    };
    let w = common::issue_with(&write, &common::keys(), common::ISSUED, "fixture-alibaba-w");
    s.tokens.record_issued(&w.claims).await.unwrap();
    s.tokens
        .revoke("fixture-alibaba-w", common::NOW)
        .await
        .unwrap();
    assert!(refused(&s.function.handle(event).await));
}

#[tokio::test]
async fn a_revoked_client_is_refused_until_it_signs_in_with_a_token_issued_after() {
    let s = stack().await;
    let client = "GID_student@@@001";
    let before = s
        .tokens
        .revoke_client(client, common::NOW - 60)
        .await
        .unwrap();
    // The fixture token was issued an hour before: revoked.
    let r = s.function.handle(common::fixture("mqtt-over-wss")).await;
    assert!(refused(&r), "{r:?}");
    // A token the issuer hands out after the revocation (its issue time after revokedBefore).
    let iat = signin::issue_time(common::NOW - 60, Some(before));
    let fresh = common::issue_with(
        &common::classroom(client, &["1"]),
        &common::keys(),
        iat,
        "fresh",
    );
    let r = s
        .function
        .handle(with_password(
            common::fixture("mqtt-over-wss"),
            &fresh.token,
        ))
        .await;
    assert!(allowed(&r), "{r:?}");
    // Another client's token is untouched.
    assert!(allowed(
        &s.function.handle(common::fixture("mqtt-on-443")).await
    ));
}

#[tokio::test]
async fn a_connect_costs_one_batch_get_and_a_bad_token_none() {
    let s = stack().await;
    let (ddb, counter) = testkit::counting_client(&s.sdk);
    let function = Function::new(
        common::keys(),
        TokenTable::new(ddb, common::TOKEN_TABLE),
        common::ARN_PREFIX.to_owned(),
    )
    .with_clock(|| common::NOW);
    for name in ["mqtt-over-wss", "alibaba-r-w-form", "revoked"] {
        function.handle(common::fixture(name)).await;
        let sent = counter.all();
        counter.reset();
        assert_eq!(sent, [("BatchGetItem".to_owned(), 1)].into(), "{name}");
    }
    // Refused before any read: the store is not asked about tokens that do not verify.
    for name in [
        "tampered",
        "expired",
        "wrong-key-id",
        "password-absent",
        "token-for-another-client",
    ] {
        function.handle(common::fixture(name)).await;
        assert!(counter.all().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_store_that_fails_refuses_the_sign_in() {
    let s = stack().await;
    let function = Function::from_env_with(&env(common::SECRET_ID, "no-such-table"), &s.sdk)
        .await
        .unwrap()
        .with_clock(|| common::NOW);
    let r = function.handle(common::fixture("mqtt-over-wss")).await;
    assert!(refused(&r), "{r:?}");
}

#[tokio::test]
async fn a_store_that_hangs_refuses_within_the_timeout() {
    let s = stack().await;
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = aws_sdk_dynamodb::config::Builder::from(&s.sdk)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let function = Function::new(
        common::keys(),
        TokenTable::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            common::TOKEN_TABLE,
        ),
        common::ARN_PREFIX.to_owned(),
    )
    .with_clock(|| common::NOW)
    .with_store_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let r = function.handle(common::fixture("mqtt-over-wss")).await;
    let took = started.elapsed();
    hold.abort();
    assert!(refused(&r), "{r:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn start_up_stops_with_one_sentence_when_the_secret_is_no_key_set() {
    let s = stack().await;
    testkit::put_secret(
        &s.sdk,
        "placeholder",
        r#"{"placeholder":"not a key set yet: write one as infra/DEPLOY.md says"}"#,
    )
    .await;
    let start = |secret: &'static str| {
        let sdk = s.sdk.clone();
        async move { Function::from_env_with(&env(secret, common::TOKEN_TABLE), &sdk).await }
    };
    let e: StartError = start("placeholder").await.unwrap_err();
    let text = format!("{e:?}");
    assert!(
        text.contains("SIGNING_KEYS_SECRET_ID=placeholder"),
        "{text}"
    );
    assert!(
        text.contains("placeholder") && text.contains("infra/DEPLOY.md"),
        "{text}"
    );
    let e = start("no-such-secret").await.unwrap_err().to_string();
    assert!(
        e.contains("SIGNING_KEYS_SECRET_ID=no-such-secret") && e.contains("could not be read"),
        "{e}"
    );
    assert!(e.contains("role may read it"), "{e}");
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Sends this thread's logs here (JSON lines, as in Lambda) until the guard drops.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn each_answer_is_logged_once_with_its_kind_and_never_with_a_credential() {
    let s = stack().await;
    let logs = Logs::default();
    let _guard = logs.capture();
    let expected = [
        ("alibaba-r-w-form", "sign-in allowed", None, None),
        (
            "client-id-absent",
            "sign-in refused",
            Some("no_client_id"),
            Some(4),
        ),
        ("expired", "sign-in refused", Some("expired"), Some(2)),
        ("hundred-filters", "sign-in allowed", None, None),
        ("mqtt-on-443", "sign-in allowed", None, None),
        ("mqtt-over-wss", "sign-in allowed", None, None),
        (
            "password-absent",
            "sign-in refused",
            Some("no_password"),
            Some(1),
        ),
        (
            "password-not-base64",
            "sign-in refused",
            Some("password_not_base64"),
            Some(1),
        ),
        ("revoked", "sign-in refused", Some("revoked"), Some(3)),
        (
            "tampered",
            "sign-in refused",
            Some("bad_signature"),
            Some(8),
        ),
        (
            "token-for-another-client",
            "sign-in refused",
            Some("wrong_client"),
            Some(4),
        ),
        (
            "wrong-key-id",
            "sign-in refused",
            Some("unknown_key"),
            Some(8),
        ),
    ];
    assert_eq!(
        expected.iter().map(|e| e.0.to_owned()).collect::<Vec<_>>(),
        common::fixture_names()
    );
    for (name, message, kind, code) in expected {
        let event = common::fixture(name);
        s.function.handle(event.clone()).await;
        let lines = logs.lines();
        assert_eq!(lines.len(), 1, "{name}: {lines:?}");
        let fields = &lines[0]["fields"];
        assert_eq!(fields["message"], message, "{name}");
        assert_eq!(fields["kind"].as_str(), kind, "{name}");
        assert_eq!(fields["code"].as_i64(), code.map(i64::from), "{name}");
        assert_eq!(
            fields["client_id"].as_str(),
            event
                .pointer("/protocolData/mqtt/clientId")
                .and_then(Value::as_str),
            "{name}"
        );
        let text = lines[0].to_string();
        if let Some(password) = common::password(name) {
            assert!(
                !text.contains(&password),
                "{name} logged its password: {text}"
            );
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&password)
                .map(|b| String::from_utf8(b).unwrap())
                .unwrap_or(password);
            // Neither a token nor its signature nor its claims part.
            for part in decoded.split(['|', '.']).filter(|p| p.len() > 20) {
                assert!(
                    !text.contains(part),
                    "{name} logged part of a token: {text}"
                );
            }
        }
    }
    // The revoked fixture's line names its token.
    s.function.handle(common::fixture("revoked")).await;
    let line = logs.lines().remove(0);
    assert_eq!(
        line["fields"]["token_ids"],
        format!("{:?}", [common::REVOKED_JTI])
    );
}
