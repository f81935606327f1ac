//! Snapshots of every §4.5 shape clients receive, as the §4.3 downlink message that carries it
//! (sub-topic, message ID, timestamp, body). The body is shown parsed so the snapshot reads as
//! the JSON the client gets.

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

use mapping::notice::NoticeType;
use mapping::{
    ChatNotice, ClientId, Notice, P2pBody, P2pNotice, Refusal, RoomId, StatusNotice, SystemNotice,
    notice_id,
};
use serde_json::{Value, json};

const TS: u64 = 1_732_240_001_000;
const SOURCE: &str = "21eee3a5-0616-5b2a-aae1-812fab8d766f";

fn id(s: &str) -> ClientId {
    ClientId::parse(s).expect("valid client ID")
}

fn room() -> RoomId {
    RoomId::parse("1").expect("valid room ID")
}

fn wire(n: impl Into<Notice>) -> Value {
    let d = n.into().to_downlink();
    let attributes: serde_json::Map<String, Value> = d
        .attributes()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    json!({
        "attributes": attributes,
        "body": serde_json::from_str::<Value>(&d.body).expect("body is JSON"),
    })
}

fn p2p(to: &str, suffix: &str, body: P2pBody) -> P2pNotice {
    P2pNotice {
        to: id(to),
        body,
        msg_id: notice_id(SOURCE, suffix),
        ts: TS,
    }
}

#[test]
fn every_notice_shape_matches_its_snapshot() {
    let chat = ChatNotice {
        msg_id: notice_id(SOURCE, "msg"),
        peer: id("GID_student@@@001"),
        room_id: room(),
        msg: "老师好".to_owned(),
        masked: false,
        ts: TS,
    };
    let masked = ChatNotice {
        msg: "你是**吗".to_owned(),
        masked: true,
        ..chat.clone()
    };
    let shapes = json!({
        "chat": wire(chat),
        "chatMasked": wire(masked),
        "statusOnline": wire(StatusNotice::new(true, id("GID_student@@@002"), room(), notice_id("GID_student@@@002:c1:connect", "status-1"), TS)),
        "statusOffline": wire(StatusNotice::new(false, id("GID_student@@@002"), room(), notice_id("GID_student@@@002:c1:tcpclean", "status-1"), TS)),
        "system": wire(SystemNotice::new("class starts in 5 minutes".to_owned(), "4c1a7c1e-0000-4000-8000-000000000001".to_owned(), TS)),
        "mute": wire(p2p("GID_student@@@002", "mute", P2pBody::Mute { room_id: room(), by: id("GID_teacher@@@001"), until: Some(TS + 600_000) })),
        "muteUntilUnmuted": wire(p2p("GID_student@@@002", "mute", P2pBody::Mute { room_id: room(), by: id("GID_teacher@@@001"), until: None })),
        "unmute": wire(p2p("GID_student@@@002", "unmute", P2pBody::Unmute { room_id: room(), by: id("GID_teacher@@@001") })),
        "rejectedMuted": wire(p2p("GID_student@@@002", "rejected", P2pBody::Rejected { reason: Refusal::Muted, room_id: Some(room()), ref_msg_id: Some("GID_student@@@002-2000".to_owned()) })),
        "rejectedInvalidCommand": wire(p2p("GID_teacher@@@001", "rejected", P2pBody::Rejected { reason: Refusal::InvalidCommand, room_id: None, ref_msg_id: None })),
        "commandResult": wire(p2p("GID_teacher@@@001", "result", P2pBody::CommandResult { command: "mute".to_owned(), ok: true, room_id: room(), target: Some(id("GID_student@@@002")) })),
    });
    insta::assert_json_snapshot!(shapes);
    assert_eq!(
        serde_json::to_value(NoticeType::CommandResult).expect("serialises"),
        json!("commandResult")
    );
}
