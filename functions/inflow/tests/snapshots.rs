//! One reviewed snapshot per fixture: what the inflow makes of every record of the event
//! (the MQTT publish, or the error that fails the record).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use aws_lambda_events::sqs::SqsEvent;
use kit::Env;
use mapping::downlink_to_publish;
use serde_json::{Value, json};

/// The time the handler would read from the clock; fixed so the mapping is deterministic.
const NOW_MS: u64 = 1_732_250_999_000;

#[test]
fn every_fixture_maps_as_reviewed() {
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    insta::glob!("fixtures/*.json", |path| {
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let outcomes: Vec<Value> = event
            .records
            .iter()
            .map(|r| {
                let id = r.message_id.as_deref().unwrap();
                match downlink_to_publish(&inflow::downlink_message(r), id, NOW_MS, &rules) {
                    Ok(p) => {
                        let mut v = serde_json::to_value(&p).unwrap();
                        if p.payload.len() > 120 {
                            v["payload"] = json!(format!("<{} bytes>", p.payload.len()));
                        }
                        v
                    }
                    Err(e) => json!({ "error": e.to_string(), "kind": e.kind(), "retryable": e.retryable() }),
                }
            })
            .collect();
        insta::assert_json_snapshot!(outcomes, {
            "[].timestamp" => "[timestamp]",
            "[].messageId" => "[message-id]",
        });
    });
}
