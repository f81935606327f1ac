//! The presence query against a real moto, over state written as the presence function
//! writes it (its rule, `mapping::classroom::presence`, through `stores::PresenceStore`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use kit::Env;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request};
use mapping::classroom::presence::{Rule, Step};
use mapping::classroom::query::Answer;
use mapping::{ClientId, LifecycleEvent, LifecycleKind};
use presence_query::Function;
use serde_json::{Value, json};
use stores::{PresenceStore, WriteOutcome};
use testkit::{Moto, create_table};

/// Applies one event as the presence function does: read, decide, write (no rooms joined,
/// so there is nothing to announce).
async fn apply(store: &PresenceStore, event: LifecycleEvent) {
    let mut rule = Rule::new(event);
    let read = store.read(&rule.event().client_id).await.unwrap();
    match rule.decide(&read) {
        Step::Duplicate { .. } => {}
        Step::Write { notices, write, .. } => {
            assert!(notices.is_empty(), "{notices:?}");
            assert_eq!(store.write(&write).await.unwrap(), WriteOutcome::Written);
        }
    }
}

fn ev(client: &str, kind: LifecycleKind, time_ms: u64, channel: &str) -> LifecycleEvent {
    LifecycleEvent {
        client_id: ClientId::parse(client).unwrap(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    }
}

fn request(method: &str, uri: &str, body: Option<Value>) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .unwrap()
}

fn json_of(resp: &lambda_http::Response<Body>) -> Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test]
async fn one_client_and_a_batch_are_answered_from_the_presence_table() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    create_table(&ddb, "attendance", "clientId", "sessionId", false).await;
    create_table(&ddb, "membership", "roomId", "clientId", true).await;
    let writer = PresenceStore::new(ddb.clone(), "presence", "attendance");
    // Student 001: connected then a flash reconnect (the old channel's tcpclean comes last).
    for e in [
        ev("GID_student@@@001", LifecycleKind::Connect, 100, "old"),
        ev("GID_student@@@001", LifecycleKind::Connect, 200, "new"),
        ev("GID_student@@@001", LifecycleKind::TcpClean, 210, "old"),
        ev("GID_student@@@002", LifecycleKind::Connect, 100, "c"),
        ev("GID_student@@@002", LifecycleKind::TcpClean, 150, "c"),
    ] {
        // No memberships: transitions announce to no room, so nothing is sent.
        apply(&writer, e).await;
    }

    // The events' own time: their channels are well within the longest connection.
    let query = Function::from_env_with(&Env::from_map([("PRESENCE_TABLE", "presence")]), &sdk)
        .unwrap()
        .with_clock(|| 1_000);
    let one = query
        .handle(request("GET", "/presence/GID_student%40%40%40001", None))
        .await;
    assert_eq!(one.status(), StatusCode::OK);
    let answer: Answer = serde_json::from_value(json_of(&one)).unwrap();
    assert_eq!(
        answer,
        Answer {
            client_id: "GID_student@@@001".to_owned(),
            online: true,
            channels: vec!["new".to_owned()],
            since: Some(200),
        }
    );

    let batch = query
        .handle(request(
            "POST",
            "/presence/batch",
            Some(json!({"clientIds": ["GID_student@@@002", "GID_student@@@001", "GID_teacher@@@009"]})),
        ))
        .await;
    assert_eq!(batch.status(), StatusCode::OK);
    let online: Vec<(String, bool)> = json_of(&batch)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["clientId"].as_str().unwrap().to_owned(),
                a["online"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        online,
        [
            ("GID_student@@@002".to_owned(), false),
            ("GID_student@@@001".to_owned(), true),
            ("GID_teacher@@@009".to_owned(), false),
        ]
    );

    let eleven: Vec<String> = (0..11).map(|i| format!("GID_student@@@{i:03}")).collect();
    for (req, status, kind) in [
        (
            request(
                "POST",
                "/presence/batch",
                Some(json!({ "clientIds": eleven })),
            ),
            StatusCode::BAD_REQUEST,
            "batch_size",
        ),
        (
            request("GET", "/presence/nobody", None),
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
        ),
        (
            request("POST", "/presence/batch", Some(json!({"ids": []}))),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            request("DELETE", "/presence/GID_student@@@001", None),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let resp = query.handle(req).await;
        assert_eq!(resp.status(), status);
        assert_eq!(json_of(&resp)["error"], kind);
    }
}

/// The `cargo lambda invoke` fixtures (API Gateway HTTP API v2 events, as `make invoke
/// FN=presence-query FIXTURE=...` sends them) parse as requests and are answered: student 001
/// online, the teacher never seen.
#[tokio::test]
async fn the_invoke_fixtures_are_answered() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    create_table(&ddb, "attendance", "clientId", "sessionId", false).await;
    let writer = PresenceStore::new(ddb.clone(), "presence", "attendance");
    apply(
        &writer,
        ev(
            "GID_student@@@student-001",
            LifecycleKind::Connect,
            100,
            "c1",
        ),
    )
    .await;
    // The events' own time: their channels are well within the longest connection.
    let query = Function::from_env_with(&Env::from_map([("PRESENCE_TABLE", "presence")]), &sdk)
        .unwrap()
        .with_clock(|| 1_000);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixture = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        lambda_http::request::from_str(&text).unwrap()
    };

    let one = query.handle(fixture("one-client.json")).await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(json_of(&one)["clientId"], "GID_student@@@student-001");
    assert_eq!(json_of(&one)["online"], true);

    let batch = query.handle(fixture("batch.json")).await;
    assert_eq!(batch.status(), StatusCode::OK);
    let online: Vec<bool> = json_of(&batch)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["online"].as_bool().unwrap())
        .collect();
    assert_eq!(online, [true, false]);

    // The same channel once it outlived the longest connection (24 h + the margin): its
    // offline event was lost, so it counts as closed.
    let later = Function::from_env_with(&Env::from_map([("PRESENCE_TABLE", "presence")]), &sdk)
        .unwrap()
        .with_clock(|| 100 + mapping::presence::MAX_SESSION_MS + 1);
    let one = later.handle(fixture("one-client.json")).await;
    assert_eq!(json_of(&one)["online"], false, "{}", json_of(&one));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        2,
        "a new fixture gets its case here"
    );
}
