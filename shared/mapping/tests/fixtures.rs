//! One snapshot per presence fixture event file: what the pure reducer makes of each record
//! (the same files feed the handler tests and `cargo lambda invoke --data-file`). The
//! moderation fixtures have their full decisions snapshotted in `moderation_rule.rs`.

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

mod common;

use common::records;
use mapping::{ClientPresence, LifecycleEvent};
use serde_json::{Value, json};

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
