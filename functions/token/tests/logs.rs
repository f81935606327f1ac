//! Tokens never reach the logs: every route's log lines, captured, hold token IDs only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{IssuerStack, NOW_MS, call, issue, request};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_token_ids_and_never_tokens() {
    let stack = IssuerStack::start().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let f = stack.function(&[]).await;
    let body = issue(&f, "GID_student@@@001", &["room/system"], &[], 600, NOW_MS).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let token_id = body["tokenId"].as_str().unwrap().to_owned();
    let (_, classroom) = call(
        &f,
        request(
            "POST",
            "/tokens/classroom",
            Some(json!({"clientId": "GID_teacher@@@001", "rooms": ["1"], "expiresIn": 600})),
        ),
        NOW_MS,
    )
    .await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push('x');
    for req in [
        json!({ "token": token }),
        json!({ "token": tampered }),
        json!({ "token": token, "clientId": "GID_teacher@@@001" }),
        json!({ "token": token, "extra": 1 }),
        json!({ "token": [token] }),
    ] {
        call(&f, request("POST", "/tokens/query", Some(req)), NOW_MS).await;
    }
    call(
        &f,
        request("POST", &format!("/tokens/{token_id}/revoke"), None),
        NOW_MS,
    )
    .await;
    call(
        &f,
        request("POST", "/tokens/query", Some(json!({ "token": token }))),
        NOW_MS,
    )
    .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains(&token_id), "{logs}");
    assert!(
        logs.contains("token issued") && logs.contains("token revoked"),
        "{logs}"
    );
    for secret in [
        &token,
        &tampered,
        &classroom["token"].as_str().unwrap().to_owned(),
    ] {
        // No token, nor its signature on its own.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(secret.as_str()),
            "a token is in the logs:\n{logs}"
        );
        assert!(
            !logs.contains(signature),
            "a signature is in the logs:\n{logs}"
        );
    }
}
