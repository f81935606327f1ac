//! The settler against a real moto SQS: permanent failures land in the DLQ at once with their
//! reason, retryable ones come back long before the queue's visibility timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use kit::deadletter::{self, Attribute, Attributes, RetryPolicy};
use kit::{RecordError, Settler, process_batch};
use testkit::{Moto, QueuePair, create_queue_with_dlq, receive_all};

/// The queue's visibility timeout: far longer than any test waits, so a record seen again
/// within the test came back because its visibility was shortened.
const VISIBILITY: u32 = 600;

struct Queues {
    sqs: aws_sdk_sqs::Client,
    pair: QueuePair,
    arn: String,
    _moto: Moto,
}

async fn queues() -> Queues {
    let moto = Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let pair = create_queue_with_dlq(&sqs, "downlink", 5, VISIBILITY).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&pair.url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    Queues {
        sqs,
        pair,
        arn,
        _moto: moto,
    }
}

fn string(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .unwrap()
}

impl Queues {
    async fn send(&self, body: &str, attrs: &[(&str, MessageAttributeValue)]) {
        let attrs: HashMap<String, MessageAttributeValue> = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        self.sqs
            .send_message()
            .queue_url(&self.pair.url)
            .message_body(body)
            .set_message_attributes(Some(attrs))
            .send()
            .await
            .unwrap();
    }

    /// Receives `n` messages as the event Lambda would deliver.
    async fn event(&self, n: usize) -> SqsEvent {
        let mut records = Vec::new();
        while records.len() < n {
            let resp = self
                .sqs
                .receive_message()
                .queue_url(&self.pair.url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .wait_time_seconds(2)
                .send()
                .await
                .unwrap();
            records.extend(
                resp.messages()
                    .iter()
                    .map(|m| kit::batch::record_of(m, &self.arn, "us-east-1")),
            );
        }
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }
}

/// Fails each record as its body says: `permanent*`, `transient*`, anything else succeeds.
async fn run(event: &mut SqsEvent, settler: &Settler) -> Vec<String> {
    let resp = process_batch(event, Some(settler), |records| async move {
        records
            .iter()
            .map(|r| match r.body() {
                b if b.starts_with("permanent") => Err(RecordError::permanent(
                    "bad_subtopic",
                    format!("{b}: sub-topic level `12+3` holds a wildcard"),
                )),
                b if b.starts_with("transient") => Err(RecordError::transient(
                    "broker_unavailable",
                    "connection refused",
                )),
                _ => Ok(()),
            })
            .collect()
    })
    .await
    .unwrap();
    resp.batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

fn failure_of(m: &aws_sdk_sqs::types::Message) -> (Attributes, deadletter::Failure) {
    let (originals, failure) = deadletter::restore(kit::sqs::attributes_of(m)).unwrap();
    (
        originals,
        failure.expect("the dead letter carries its failure"),
    )
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_with_its_reason_and_attributes() {
    let q = queues().await;
    let number = MessageAttributeValue::builder()
        .data_type("Number")
        .string_value("7")
        .build()
        .unwrap();
    q.send(
        "permanent one",
        &[("mqttSecondTopic", string("/message/12+3")), ("n", number)],
    )
    .await;
    q.send("fine", &[]).await;
    let mut event = q.event(2).await;
    let settler = Settler::new(q.sqs.clone(), "inflow").dead_letter_to(&q.pair.dlq_url);

    let failed = run(&mut event, &settler).await;
    assert!(
        failed.is_empty(),
        "a dead-lettered record counts as handled: {failed:?}"
    );

    let letters = receive_all(&q.sqs, &q.pair.dlq_url, 1, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body(), Some("permanent one"));
    let (originals, failure) = failure_of(&letters[0]);
    assert_eq!(
        originals.get("mqttSecondTopic"),
        Some(&Attribute::string("/message/12+3"))
    );
    assert_eq!(originals["n"].data_type, "Number");
    assert_eq!(originals["n"].string_value.as_deref(), Some("7"));
    assert_eq!(originals.len(), 2);
    assert_eq!(failure.kind, "bad_subtopic");
    assert!(!failure.retryable);
    assert!(
        failure.reason.contains("holds a wildcard"),
        "{}",
        failure.reason
    );
    assert_eq!(failure.function, "inflow");
    assert_eq!(failure.source_queue, q.arn);
    assert_eq!(failure.receive_count, 1);
    let first = failure.first_failure_at.expect("first receive time");
    assert!(first <= failure.dead_lettered_at);
}

#[tokio::test]
async fn ten_attributes_are_packed_and_come_back_whole() {
    let q = queues().await;
    let attrs: Vec<(String, MessageAttributeValue)> = (0..10)
        .map(|i| (format!("attr{i}"), string(&format!("value {i}"))))
        .collect();
    let refs: Vec<(&str, MessageAttributeValue)> =
        attrs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    q.send("permanent packed", &refs).await;
    let mut event = q.event(1).await;
    let settler = Settler::new(q.sqs.clone(), "outflow").dead_letter_to(&q.pair.dlq_url);
    assert!(run(&mut event, &settler).await.is_empty());
    let letters = receive_all(&q.sqs, &q.pair.dlq_url, 1, Duration::from_secs(10)).await;
    let raw = kit::sqs::attributes_of(&letters[0]);
    assert_eq!(raw.len(), 2, "{:?}", raw.keys());
    let (originals, failure) = failure_of(&letters[0]);
    assert_eq!(originals.len(), 10);
    assert_eq!(originals["attr9"], Attribute::string("value 9"));
    assert_eq!(failure.function, "outflow");
}

#[tokio::test]
async fn a_retryable_failure_comes_back_in_seconds_not_after_the_visibility_timeout() {
    let q = queues().await;
    q.send("transient", &[]).await;
    let mut event = q.event(1).await;
    let id = event.records[0].message_id.clone().unwrap();
    let settler = Settler::new(q.sqs.clone(), "inflow").dead_letter_to(&q.pair.dlq_url);
    assert_eq!(run(&mut event, &settler).await, std::slice::from_ref(&id));
    // Visibility 600 s unless shortened (to 2 s for a first receive).
    let back = receive_all(&q.sqs, &q.pair.url, 1, Duration::from_secs(30)).await;
    assert_eq!(
        back.len(),
        1,
        "the retryable record did not come back within 30 s"
    );
    assert_eq!(back[0].message_id(), Some(id.as_str()));
    let dlq = receive_all(&q.sqs, &q.pair.dlq_url, 1, Duration::from_secs(1)).await;
    assert!(dlq.is_empty(), "a retryable failure is not dead-lettered");
}

#[tokio::test]
async fn retries_out_of_receives_are_dead_lettered_with_their_last_reason() {
    let q = queues().await;
    q.send("transient last", &[]).await;
    let mut event = q.event(1).await;
    let settler = Settler::new(q.sqs.clone(), "inflow")
        .dead_letter_to(&q.pair.dlq_url)
        .with_policy(RetryPolicy {
            max_receives: Some(1),
            ..RetryPolicy::default()
        });
    assert!(run(&mut event, &settler).await.is_empty());
    let letters = receive_all(&q.sqs, &q.pair.dlq_url, 1, Duration::from_secs(10)).await;
    let (_, failure) = failure_of(&letters[0]);
    assert_eq!(failure.kind, "broker_unavailable");
    assert!(failure.retryable);
    assert_eq!(failure.reason, "connection refused");
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_sent_is_retried_instead() {
    let q = queues().await;
    q.send("permanent lost dlq", &[]).await;
    let mut event = q.event(1).await;
    let id = event.records[0].message_id.clone().unwrap();
    let missing = format!("{}/missing-dlq", q.pair.url.rsplit_once('/').unwrap().0);
    let settler = Settler::new(q.sqs.clone(), "inflow").dead_letter_to(missing);
    assert_eq!(run(&mut event, &settler).await, std::slice::from_ref(&id));
    let back = receive_all(&q.sqs, &q.pair.url, 1, Duration::from_secs(30)).await;
    assert_eq!(
        back.len(),
        1,
        "the record was neither dead-lettered nor retried"
    );
    assert_eq!(back[0].message_id(), Some(id.as_str()));
}

#[tokio::test]
async fn the_environment_configures_the_settler_and_names_a_bad_variable() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let env = |vars: &[(&str, &str)]| kit::Env::from_map(vars.iter().copied());
    assert!(Settler::from_env(&env(&[]), &sdk, "inflow").is_ok());
    for (var, value) in [
        ("RETRY_BACKOFF_BASE_SECONDS", "0"),
        ("RETRY_BACKOFF_MAX_SECONDS", "1"),
        ("RETRY_BACKOFF_MAX_SECONDS", "50000"),
        ("MAX_RECEIVE_COUNT", "0"),
        ("MAX_RECEIVE_COUNT", "many"),
    ] {
        let e = Settler::from_env(&env(&[(var, value)]), &sdk, "inflow").unwrap_err();
        assert!(e.to_string().contains(var), "{var}={value}: {e}");
    }
}
