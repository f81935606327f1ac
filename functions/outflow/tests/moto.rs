//! The outflow against a real moto server: records really arrive in the backend queue with
//! the §4.2 attributes, a bad record fails alone, and the queue's redrive policy moves it to
//! the dead-letter queue after its receives.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use kit::{Env, SqsSender};
use mapping::Routes;
use testkit::{Moto, create_queue_with_dlq, receive_all};

fn fixture(name: &str) -> SqsEvent {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn function(sdk: &aws_config::SdkConfig, backend_url: &str) -> outflow::Function {
    let rules = Env::from_map::<&str, &str>([]).rules().unwrap();
    let routes = Routes::parse(&format!("roomSend={backend_url}"), &rules).unwrap();
    outflow::Function::new(rules, routes, SqsSender::new(aws_sdk_sqs::Client::new(sdk)))
}

fn attributes(m: &aws_sdk_sqs::types::Message) -> BTreeMap<String, String> {
    m.message_attributes()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.string_value().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn records_arrive_in_the_backend_queue_with_the_4_2_attributes() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let backend = create_queue_with_dlq(&sqs, "backend", 5, 30).await;
    let f = function(&sdk, &backend.url);

    let event = fixture("batch-of-ten-one-bad");
    let response = f.handle(event.clone()).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        [event.records[4].message_id.as_deref().unwrap()],
        "exactly the malformed record fails"
    );

    let received = receive_all(&sqs, &backend.url, 9, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 9);
    let sources: BTreeMap<&str, &SqsMessage> = event
        .records
        .iter()
        .map(|r| (r.message_id.as_deref().unwrap(), r))
        .collect();
    for m in &received {
        let attrs = attributes(m);
        let keys: Vec<&str> = attrs.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "clientId",
                "mqttMessageId",
                "mqttParentTopic",
                "mqttSecondTopic",
                "qoslevel",
                "tag",
                "timestamp"
            ]
        );
        let source = sources[attrs["mqttMessageId"].as_str()];
        let record: serde_json::Value =
            serde_json::from_str(source.body.as_deref().unwrap()).unwrap();
        assert_eq!(attrs["clientId"], record["clientId"].as_str().unwrap());
        assert_eq!(attrs["timestamp"], record["timestamp"].to_string());
        assert_eq!(attrs["mqttParentTopic"], "roomSend");
        assert_eq!(attrs["mqttSecondTopic"], "/message");
        assert_eq!(attrs["tag"], "message");
        assert_eq!(attrs["qoslevel"], "1");
        let chat: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert!(
            chat["msg"].as_str().unwrap().starts_with("message "),
            "payload unchanged: {chat}"
        );
    }
}

#[tokio::test]
async fn binary_payloads_arrive_base64_with_an_encoding_attribute() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let backend = create_queue_with_dlq(&sqs, "backend", 5, 30).await;
    let response = function(&sdk, &backend.url)
        .handle(fixture("binary-payload"))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let received = receive_all(&sqs, &backend.url, 1, Duration::from_secs(10)).await;
    assert_eq!(received[0].body(), Some("AAEC//6Afw=="));
    assert_eq!(attributes(&received[0])["encoding"], "base64");
}

/// Plays the event source mapping: receive from the uplink queue, hand the batch to the
/// function, delete only the records that succeeded, until the queue is empty.
async fn drain_through(sqs: &aws_sdk_sqs::Client, queue_url: &str, f: &outflow::Function) -> usize {
    let mut invocations = 0;
    for _ in 0..40 {
        let resp = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = resp.messages.unwrap_or_default();
        if messages.is_empty() {
            let left = sqs
                .get_queue_attributes()
                .queue_url(queue_url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .unwrap();
            let in_flight = left
                .attributes()
                .and_then(|a| a.values().next())
                .map(String::as_str);
            if in_flight == Some("0") {
                break;
            }
            continue;
        }
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({ "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body() }))
            .collect();
        let event: SqsEvent =
            serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        let response = f.handle(event).await.unwrap();
        invocations += 1;
        for m in &messages {
            let failed = response
                .batch_item_failures
                .iter()
                .any(|x| Some(x.item_identifier.as_str()) == m.message_id());
            if !failed {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    invocations
}

#[tokio::test]
async fn a_malformed_record_is_retried_then_dead_lettered_and_nothing_else_is_lost() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let uplink = create_queue_with_dlq(&sqs, "uplink", 5, 1).await;
    let backend = create_queue_with_dlq(&sqs, "backend", 5, 30).await;
    let f = function(&sdk, &backend.url);

    let event = fixture("batch-of-ten-one-bad");
    for r in &event.records {
        sqs.send_message()
            .queue_url(&uplink.url)
            .message_body(r.body.as_deref().unwrap())
            .send()
            .await
            .unwrap();
    }
    let invocations = drain_through(&sqs, &uplink.url, &f).await;
    assert!(
        invocations >= 5,
        "the bad record was received 5 times ({invocations} invocations)"
    );

    let dead = receive_all(&sqs, &uplink.dlq_url, 1, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].body(),
        event.records[4].body.as_deref(),
        "the malformed record, untouched"
    );
    let delivered = receive_all(&sqs, &backend.url, 9, Duration::from_secs(10)).await;
    assert_eq!(
        delivered.len(),
        9,
        "every good record reached the backend exactly once"
    );
}

#[tokio::test]
async fn an_unreachable_queue_fails_every_record_as_retryable() {
    let dead_port = testkit::free_port();
    let sdk = kit::aws::loader()
        .endpoint_url(format!("http://127.0.0.1:{dead_port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "t", "t", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let event = fixture("chat-from-student");
    let response = function(&sdk, "http://127.0.0.1:1/backend")
        .handle(event)
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
}
