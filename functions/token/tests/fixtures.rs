//! Every fixture under `tests/fixtures/` (API Gateway HTTP API v2 events, as
//! `cargo lambda invoke token --data-file` sends them) parsed by lambda_http and answered by
//! the issuer against moto at a fixed time; one reviewed snapshot per fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use common::{IssuerStack, NOW_MS, NOW_S, json_of};
use serde_json::json;

#[test]
fn every_fixture_gets_its_reviewed_answer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stack, function) = rt.block_on(async {
        let stack = IssuerStack::start().await;
        let function = stack.function(&[]).await;
        // The tokens the status and revoke fixtures name.
        for id in [
            "0123456789abcdef0123456789abcdef",
            "fedcba9876543210fedcba9876543210",
        ] {
            let claims = signin::Claims {
                client_id: "GID_student@@@001".to_owned(),
                read: vec!["room/system".to_owned()],
                write: vec![],
                issued_at: NOW_S - 60,
                expires_at: NOW_S + 3600,
                token_id: id.to_owned(),
            };
            stack.tokens().record_issued(&claims).await.unwrap();
        }
        (stack, function)
    });
    insta::glob!("fixtures/*.json", |path| {
        let event = std::fs::read_to_string(path).unwrap();
        let request = lambda_http::request::from_str(&event).unwrap();
        let route = format!("{} {}", request.method(), request.uri().path());
        let resp = rt.block_on(function.handle_at(request, NOW_MS));
        let answer = json!({
            "route": route,
            "status": resp.status().as_u16(),
            "contentType": resp.headers()["content-type"].to_str().unwrap(),
            "body": json_of(&resp),
        });
        insta::assert_json_snapshot!(answer, {
            ".body.token" => "[token]",
            ".body.tokenId" => insta::dynamic_redaction(|value, _| {
                // The issue routes make a fresh ID; the fixtures' own IDs stay visible.
                match value.as_str() {
                    Some(id) if id.starts_with("0123") || id.starts_with("fedc") => value,
                    _ => "[tokenId]".into(),
                }
            }),
        });
    });
    drop(stack);
}
