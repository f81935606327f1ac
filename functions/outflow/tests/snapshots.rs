//! One reviewed snapshot per fixture: what `Function::handle` does with every record of the
//! event, against a real moto: the SQS message that arrives in the backend queue (body and
//! every attribute, unredacted: the fixtures pin message IDs and timestamps), or the error it
//! logs for the record it reports in `batchItemFailures`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use kit::{Env, SqsSender};
use mapping::Routes;
use serde_json::{Value, json};
use testkit::logs::Capture;
use testkit::{Moto, create_queue, receive_all};

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moto = Moto::start();
    let sdk = rt.block_on(moto.sdk_config());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    let mut n = 0;
    insta::glob!("fixtures/*.json", |path| {
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // A fresh backend queue per fixture: what arrives in it came from this event.
        n += 1;
        let queue = format!("backend-{n}");
        let url = rt.block_on(create_queue(&sqs, &queue));
        let routes = Routes::parse(&format!("roomSend={url}"), &rules).unwrap();
        let function = outflow::Function::new(
            rules.clone(),
            routes,
            SqsSender::new(aws_sdk_sqs::Client::new(&sdk)),
        );

        let logs = Capture::default();
        let response = logs
            .during(|| rt.block_on(function.handle(event.clone())))
            .unwrap();
        let failures = logs.reported_failures(
            response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone()),
        );

        let expected = event.records.len() - failures.len();
        let received = rt.block_on(receive_all(&sqs, &url, expected, Duration::from_secs(10)));
        assert_eq!(
            received.len(),
            expected,
            "one message per record that succeeded"
        );
        let mut arrived: BTreeMap<String, Value> = BTreeMap::new();
        for m in &received {
            let attributes: BTreeMap<String, String> = m
                .message_attributes()
                .unwrap_or(&Default::default())
                .iter()
                .map(|(k, v)| (k.clone(), v.string_value().unwrap().to_owned()))
                .collect();
            let id = attributes["mqttMessageId"].clone();
            let message = json!({
                // Received from this fixture's queue: the roomSend route's.
                "queue": "backend",
                "body": summarise(m.body().unwrap_or_default()),
                "attributes": attributes,
            });
            assert!(
                arrived.insert(id, message).is_none(),
                "one message per record"
            );
        }

        let outcomes: Vec<Value> = event
            .records
            .iter()
            .map(|r| {
                let id = r.message_id.as_deref().unwrap();
                match failures.get(id) {
                    Some((error, kind, retryable)) => {
                        json!({ "error": error, "kind": kind, "retryable": retryable })
                    }
                    None => arrived.remove(id).unwrap_or_else(|| {
                        panic!("record {id} succeeded but nothing arrived with its message ID")
                    }),
                }
            })
            .collect();
        assert!(
            arrived.is_empty(),
            "messages no record accounts for: {arrived:?}"
        );
        insta::assert_json_snapshot!(outcomes);
    });
}
