//! The presence query's answer (`mapping::classroom::query`) from presence built by the
//! reducer, without IO: what the query function and `classroom online` print.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use mapping::classroom::query::{
    Answer, MAX_BATCH, QueryError, answers, parse_batch, parse_clients,
};
use mapping::{ClientId, ClientPresence, LifecycleEvent, LifecycleKind};

fn client(id: &str) -> ClientId {
    ClientId::parse(id).unwrap()
}

fn presence(events: &[(LifecycleKind, u64, &str)]) -> ClientPresence {
    let mut p = ClientPresence::default();
    for (kind, time_ms, channel) in events {
        p.apply(&LifecycleEvent {
            client_id: client("GID_student@@@001"),
            kind: *kind,
            time_ms: *time_ms,
            channel_id: (*channel).to_owned(),
            client_ip: None,
            reason: None,
        });
    }
    p
}

#[test]
fn a_flash_reconnect_answers_the_new_connection_only() {
    // Connected, then reconnected; the old channel's tcpclean comes last.
    let p = presence(&[
        (LifecycleKind::Connect, 100, "old"),
        (LifecycleKind::Connect, 200, "new"),
        (LifecycleKind::TcpClean, 210, "old"),
    ]);
    assert_eq!(
        Answer::from_presence(&client("GID_student@@@001"), &p),
        Answer {
            client_id: "GID_student@@@001".to_owned(),
            online: true,
            channels: vec!["new".to_owned()],
            since: Some(200),
        }
    );
}

#[test]
fn since_is_the_earliest_open_connect_and_a_closed_client_is_offline() {
    let two = presence(&[
        (LifecycleKind::Connect, 300, "b"),
        (LifecycleKind::Connect, 250, "a"),
    ]);
    let a = Answer::from_presence(&client("GID_student@@@001"), &two);
    assert_eq!((a.online, a.since), (true, Some(250)));
    assert_eq!(a.channels, ["a", "b"]);

    let gone = presence(&[
        (LifecycleKind::Connect, 100, "c"),
        (LifecycleKind::TcpClean, 150, "c"),
    ]);
    let a = Answer::from_presence(&client("GID_student@@@002"), &gone);
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        serde_json::json!({"clientId": "GID_student@@@002", "online": false, "channels": []})
    );
    // A disconnect seen before its connect (out of order) never opens the channel.
    let late = presence(&[
        (LifecycleKind::Disconnect, 150, "d"),
        (LifecycleKind::Connect, 100, "d"),
    ]);
    assert!(!Answer::from_presence(&client("GID_student@@@001"), &late).online);
}

#[test]
fn answers_keep_the_order_asked() {
    let clients = parse_clients(&["GID_student@@@002", "GID_student@@@001"]).unwrap();
    let online = presence(&[(LifecycleKind::Connect, 1, "x")]);
    let none = ClientPresence::default();
    let got = answers(&clients, [&none, &online]);
    assert_eq!(
        got.iter()
            .map(|a| (a.client_id.as_str(), a.online))
            .collect::<Vec<_>>(),
        [("GID_student@@@002", false), ("GID_student@@@001", true)]
    );
}

#[test]
fn batch_bodies_are_refused_with_their_kind() {
    let eleven: Vec<String> = (0..=MAX_BATCH)
        .map(|i| format!("GID_student@@@{i:03}"))
        .collect();
    let body = serde_json::json!({ "clientIds": eleven }).to_string();
    for (body, kind) in [
        (body.as_str(), "batch_size"),
        (r#"{"clientIds":[]}"#, "batch_size"),
        (r#"{"clientIds":["nobody"]}"#, "invalid_client_id"),
        (r#"{"ids":[]}"#, "invalid_body"),
        ("nope", "invalid_body"),
    ] {
        assert_eq!(
            parse_batch(body.as_bytes()).unwrap_err().kind(),
            kind,
            "{body}"
        );
    }
    assert_eq!(
        parse_batch(br#"{"clientIds":["GID_student@@@001","GID_teacher@@@009"]}"#).unwrap(),
        [client("GID_student@@@001"), client("GID_teacher@@@009")]
    );
    assert!(matches!(
        parse_clients(&eleven),
        Err(QueryError::BatchSize(11))
    ));
}
