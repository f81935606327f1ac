//! The local event source against a real moto: partial batch failures, redrive to the DLQ,
//! whole-batch failure on an invocation error, and a clean stop.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use local_stack::runner::{self, Handler, RunnerSettings, Source};

type Seen = Arc<Mutex<HashMap<String, u32>>>;

/// A handler that fails every record whose body starts with `fail`, and counts deliveries.
fn failing_some(seen: Seen, error_on: Option<&'static str>) -> Handler {
    Arc::new(move |event: SqsEvent| {
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            let mut response = SqsBatchResponse::default();
            for r in &event.records {
                let body = r.body.clone().unwrap_or_default();
                if let Ok(mut s) = seen.lock() {
                    *s.entry(body.clone()).or_insert(0) += 1;
                }
                if error_on.is_some_and(|e| body.starts_with(e)) {
                    return Err("invocation error".to_owned());
                }
                if body.starts_with("fail") {
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = r.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(f);
                }
            }
            Ok(response)
        })
    })
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        batch_size: 10,
        wait_seconds: 1,
        pollers: 1,
        function_timeout: Duration::from_secs(5),
        region: "us-east-1".into(),
    }
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[String]) {
    for b in bodies {
        sqs.send_message()
            .queue_url(url)
            .message_body(b)
            .send()
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn succeeded_records_are_deleted_and_failed_ones_redriven_after_max_receives() {
    let moto = testkit::Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let q = testkit::create_queue_with_dlq(&sqs, "runner-partial", 3, 1).await;
    let ok: Vec<String> = (0..5).map(|i| format!("ok-{i}")).collect();
    send(&sqs, &q.url, &ok).await;
    send(&sqs, &q.url, &["fail-poison".to_owned()]).await;

    let seen: Seen = Arc::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let source = Source {
        name: "test".into(),
        queue_url: q.url.clone(),
        handler: failing_some(Arc::clone(&seen), None),
    };
    let task = tokio::spawn(runner::run(sqs.clone(), vec![source], settings(), stop));

    let dead = testkit::receive_all(&sqs, &q.dlq_url, 1, Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 1, "the failing record reaches the DLQ");
    assert_eq!(dead[0].body(), Some("fail-poison"));
    let counts = seen.lock().map(|s| s.clone()).unwrap_or_default();
    for b in &ok {
        assert_eq!(
            counts.get(b),
            Some(&1),
            "{b} handled once, then deleted: {counts:?}"
        );
    }
    assert_eq!(
        counts.get("fail-poison"),
        Some(&3),
        "delivered maxReceiveCount times: {counts:?}"
    );

    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops promptly")
        .expect("no panic");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_error_returns_the_whole_batch_to_the_queue() {
    let moto = testkit::Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let q = testkit::create_queue_with_dlq(&sqs, "runner-error", 2, 1).await;
    let bodies: Vec<String> = vec!["boom".into(), "neighbour-1".into(), "neighbour-2".into()];
    // One SendMessageBatch so the three arrive in one receive.
    let entries = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(b)
                .build()
                .expect("entry")
        })
        .collect();
    sqs.send_message_batch()
        .queue_url(&q.url)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("send");

    let seen: Seen = Arc::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let source = Source {
        name: "test".into(),
        queue_url: q.url.clone(),
        handler: failing_some(Arc::clone(&seen), Some("boom")),
    };
    let task = tokio::spawn(runner::run(sqs.clone(), vec![source], settings(), stop));

    // Nothing is deleted: all three are redriven after 2 receives.
    let dead = testkit::receive_all(&sqs, &q.dlq_url, 3, Duration::from_secs(20)).await;
    let mut dead: Vec<&str> = dead.iter().filter_map(|m| m.body()).collect();
    dead.sort_unstable();
    assert_eq!(dead, ["boom", "neighbour-1", "neighbour-2"]);
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops promptly")
        .expect("no panic");
}
