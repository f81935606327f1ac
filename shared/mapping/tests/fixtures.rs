//! One snapshot per fixture event file: what the pure core makes of each record of the
//! presence and moderation fixtures (the same files feed the handler tests and
//! `cargo lambda invoke --data-file`).

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

use std::path::Path;

use mapping::{
    ChatMessage, ClientId, ClientPresence, Command, LifecycleEvent, Mode, Policy, Roles, authorize,
};
use serde_json::{Value, json};

/// The banned words the moderation fixtures are written against.
const TEST_BANNED_WORDS: &str = "笨蛋,傻瓜,damn,shit";

fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["Records"]
        .as_array()
        .expect("fixture has Records")
        .clone()
}

fn attr<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    record["messageAttributes"][key]["stringValue"].as_str()
}

#[test]
fn presence_fixtures_reduce_to_their_snapshots() {
    insta::glob!(
        "../../../functions/presence/tests/fixtures",
        "*.json",
        |path| {
            let mut state = ClientPresence::default();
            let outcomes: Vec<Value> = records(path)
                .iter()
                .map(|r| {
                    let body = r["body"].as_str().expect("body is a string");
                    match LifecycleEvent::from_json(body, attr(r, "tag")) {
                        Ok(event) => {
                            let applied = state.apply(&event);
                            json!({
                                "event": event,
                                "transition": applied.transition,
                                "write": applied.channel,
                                "online": state.is_online(),
                            })
                        }
                        Err(e) => json!({ "error": e.kind(), "message": e.to_string() }),
                    }
                })
                .collect();
            insta::assert_json_snapshot!(json!({ "records": outcomes, "final": state }));
        }
    );
}

#[test]
fn moderation_fixtures_decide_to_their_snapshots() {
    let policy = Policy::from_list(TEST_BANNED_WORDS, Mode::Mask, 500).expect("policy builds");
    let roles = Roles::default();
    insta::glob!(
        "../../../functions/moderation/tests/fixtures",
        "*.json",
        |path| {
            let outcomes: Vec<Value> = records(path)
            .iter()
            .map(|r| {
                let body = r["body"].as_str().expect("body is a string");
                let sender = ClientId::parse(attr(r, "clientId").expect("clientId attribute"))
                    .expect("fixture senders are valid");
                match attr(r, "mqttSecondTopic") {
                    Some("/message") => match ChatMessage::from_json(body) {
                        Ok(chat) => json!({
                            "sender": sender,
                            "chat": chat,
                            "verdict": policy.verdict(&chat.msg),
                        }),
                        Err(e) => json!({ "sender": sender, "invalidChat": e.to_string() }),
                    },
                    Some("/command") => match Command::from_json(body) {
                        Ok(command) => json!({
                            "sender": sender,
                            "command": command,
                            "authorized": authorize(&sender, &command, &roles).map_err(|r| r.as_str()),
                        }),
                        Err(e) => json!({ "sender": sender, "invalidCommand": e.to_string() }),
                    },
                    other => json!({ "unexpectedSecondTopic": other }),
                }
            })
            .collect();
            insta::assert_json_snapshot!(outcomes);
        }
    );
}
