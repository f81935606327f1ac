//! A moto with the issuer's tables and signing key secret, and request helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers

use kit::Env;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use signin::KeySet;
use testkit::Moto;

/// A fixed clock: 2026-01-01T00:00:00Z.
pub const NOW_MS: u64 = 1_767_225_600_000;
/// The same, in seconds.
pub const NOW_S: u64 = NOW_MS / 1000;
/// The signing keys' secret.
pub const SECRET_ID: &str = "classroom/signing-keys";
/// The AWS IoT ARN prefix the issuer checks policies under.
pub const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:123456789012";

/// The first key set in the secret.
pub fn key_set() -> KeySet {
    KeySet::new("k1", vec![7; 32]).unwrap()
}

/// moto with the TokenTable (`id` S), the EnrollmentTable (`clientId` S, `roomId` S) and the
/// signing key secret.
pub struct IssuerStack {
    /// The server (stops when dropped).
    pub moto: Moto,
    /// SDK configuration for it.
    pub sdk: aws_config::SdkConfig,
}

impl IssuerStack {
    /// Starts it.
    pub async fn start() -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        testkit::create_signin_tables(&ddb, "tokens", "enrollment").await;
        testkit::put_secret(&sdk, SECRET_ID, &key_set().to_json()).await;
        Self { moto, sdk }
    }

    /// The issuer's environment plus `extra` (which wins).
    pub fn env(&self, extra: &[(&str, &str)]) -> Env {
        let mut vars: Vec<(String, String)> = [
            ("TOKEN_TABLE", "tokens"),
            ("ENROLLMENT_TABLE", "enrollment"),
            ("SIGNING_KEYS_SECRET_ID", SECRET_ID),
            ("IOT_ARN_PREFIX", ARN_PREFIX),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Env::from_map(vars)
    }

    /// The issuer.
    pub async fn function(&self, extra: &[(&str, &str)]) -> token::Function {
        token::Function::from_env_with(&self.env(extra), &self.sdk)
            .await
            .unwrap()
    }

    /// The TokenTable adapter.
    pub fn tokens(&self) -> stores::TokenTable {
        stores::TokenTable::new(aws_sdk_dynamodb::Client::new(&self.sdk), "tokens")
    }

    /// The EnrollmentTable adapter.
    pub fn enrollment(&self) -> stores::EnrollmentTable {
        stores::EnrollmentTable::new(aws_sdk_dynamodb::Client::new(&self.sdk), "enrollment")
    }

    /// Replaces the signing key secret's value.
    pub async fn put_secret(&self, value: &str) {
        testkit::put_secret(&self.sdk, SECRET_ID, value).await;
    }
}

/// A request as lambda_http hands it to the handler.
pub fn request(method: &str, uri: &str, body: Option<Value>) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .unwrap()
}

/// A request with a raw body.
pub fn raw_request(method: &str, uri: &str, body: &str) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::Text(body.to_owned()))
        .unwrap()
}

/// The JSON body of an answer.
pub fn json_of(resp: &Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

/// Status and JSON body.
pub async fn call(f: &token::Function, req: Request, now_ms: u64) -> (u16, Value) {
    let resp = f.handle_at(req, now_ms).await;
    (resp.status().as_u16(), json_of(&resp))
}

/// Issues `POST /tokens` for `client` and returns the answer's body (asserting 201).
pub async fn issue(
    f: &token::Function,
    client: &str,
    read: &[&str],
    write: &[&str],
    expires_in: u64,
    now_ms: u64,
) -> Value {
    let (status, body) = call(
        f,
        request(
            "POST",
            "/tokens",
            Some(serde_json::json!({
                "clientId": client, "read": read, "write": write, "expiresIn": expires_in
            })),
        ),
        now_ms,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}
