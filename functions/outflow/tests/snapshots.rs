//! One reviewed snapshot per fixture: what the outflow makes of every record of the event
//! (the SQS message it sends, or the error that fails the record).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::collections::BTreeMap;

use aws_lambda_events::sqs::SqsEvent;
use kit::Env;
use mapping::{Routes, map_uplink_body};
use serde_json::{Value, json};

/// Long bodies are summarised so snapshots stay reviewable.
fn summarise(body: &str) -> Value {
    if body.len() > 120 {
        json!(format!("<{} bytes: {}...>", body.len(), &body[..40]))
    } else {
        json!(body)
    }
}

#[test]
fn every_fixture_maps_as_reviewed() {
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    let routes = Routes::parse(
        "roomSend=https://sqs.us-east-1.amazonaws.com/123456789012/backend",
        &rules,
    )
    .unwrap();
    insta::glob!("fixtures/*.json", |path| {
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let outcomes: Vec<Value> = event
            .records
            .iter()
            .map(|r| {
                let id = r.message_id.as_deref().unwrap();
                match map_uplink_body(r.body.as_deref().unwrap_or_default(), id, &rules, &routes) {
                    Ok(routed) => {
                        let out = outflow::to_outgoing(routed.message);
                        let attributes: BTreeMap<String, String> =
                            out.attributes.into_iter().map(|(k, v)| (k.into_owned(), v)).collect();
                        assert_eq!(attributes["mqttMessageId"], id, "the message ID is the source record's");
                        json!({ "queue": routed.queue, "body": summarise(&out.body), "attributes": attributes })
                    }
                    Err(e) => json!({ "error": e.to_string(), "kind": e.kind(), "retryable": e.retryable() }),
                }
            })
            .collect();
        insta::assert_json_snapshot!(outcomes, {
            "[].attributes.timestamp" => "[timestamp]",
            "[].attributes.mqttMessageId" => "[message-id]",
        });
    });
}
