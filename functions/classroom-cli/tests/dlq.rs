//! `classroom dlq` against a real moto: list counts by failure kind, show gives reasons,
//! redrive puts chosen messages (or all) back in the source queue with their original
//! attributes and removes them from the DLQ, purge asks for `--yes`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::process::Command;
use std::time::Duration;

use kit::SqsSender;
use kit::deadletter::{self, Attribute, Attributes, Failure};
use serde_json::Value;
use testkit::{Moto, create_queue_with_dlq, receive_all};

fn failure(kind: &str, reason: &str) -> Failure {
    Failure {
        kind: kind.into(),
        retryable: false,
        reason: reason.into(),
        function: "inflow".into(),
        source_queue: "arn:aws:sqs:us-east-1:123456789012:downlink".into(),
        first_failure_at: Some(1),
        receive_count: 1,
        dead_lettered_at: 2,
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn classroom(moto: &Moto, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_classroom"))
        .arg("dlq")
        .args(args)
        .envs(moto.env())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn list_show_redrive_and_purge_a_dead_letter_queue() {
    let moto = Moto::start();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let downlink = create_queue_with_dlq(&sqs, "downlink", 5, 30).await;
    let uplink = create_queue_with_dlq(&sqs, "uplink", 5, 30).await;
    let env = [
        ("DOWNLINK_QUEUE_URL", downlink.url.as_str()),
        ("DOWNLINK_DLQ_URL", downlink.dlq_url.as_str()),
        ("UPLINK_QUEUE_URL", uplink.url.as_str()),
        ("UPLINK_DLQ_URL", uplink.dlq_url.as_str()),
    ];
    let sender = SqsSender::new(sqs.clone());
    // One dead letter with its topic, one with ten attributes (packed), one the redrive policy
    // moved (no failure).
    let topic = Attributes::from([("mqttSecondTopic".into(), Attribute::string("/message/12+3"))]);
    let bad_topic = failure("bad_subtopic", "level `12+3` holds a wildcard");
    let first = sender
        .send_one(
            &downlink.dlq_url,
            "first",
            &deadletter::annotate(topic.clone(), &bad_topic).unwrap(),
        )
        .await
        .unwrap();
    let ten: Attributes = (0..10)
        .map(|i| (format!("a{i}"), Attribute::string(format!("v{i}"))))
        .collect();
    sender
        .send_one(
            &downlink.dlq_url,
            "packed",
            &deadletter::annotate(ten.clone(), &bad_topic).unwrap(),
        )
        .await
        .unwrap();
    sender
        .send_one(&downlink.dlq_url, "moved by the policy", &Attributes::new())
        .await
        .unwrap();

    let list = classroom(&moto, &env, &["list"]);
    assert!(list.ok, "{}", list.stderr);
    let lines = list.lines();
    let of = |name: &str| lines.iter().find(|l| l["queue"] == name).cloned().unwrap();
    assert_eq!(of("downlink")["messages"], 3);
    assert_eq!(
        of("downlink")["byKind"],
        serde_json::json!({"bad_subtopic": 2, "unexplained": 1})
    );
    assert_eq!(of("uplink")["messages"], 0);
    assert_eq!(lines.len(), 2, "only the queues whose variables are set");

    let show = classroom(&moto, &env, &["show", "downlink"]);
    assert!(show.ok, "{}", show.stderr);
    let shown = show.lines();
    assert_eq!(
        shown.len(),
        3,
        "list released what it read: {}",
        show.stdout
    );
    let first_line = shown
        .iter()
        .find(|l| l["messageId"] == first.as_str())
        .unwrap();
    assert_eq!(
        first_line["failure"]["reason"],
        "level `12+3` holds a wildcard"
    );
    assert_eq!(
        first_line["attributes"]["mqttSecondTopic"]["stringValue"],
        "/message/12+3"
    );
    let packed_line = shown.iter().find(|l| l["body"] == "packed").unwrap();
    assert_eq!(packed_line["attributes"].as_object().unwrap().len(), 10);

    // One message by ID: back in the source queue exactly as it was first sent.
    let one = classroom(&moto, &env, &["redrive", "downlink", &first]);
    assert!(one.ok, "{}", one.stderr);
    assert_eq!(one.lines()[0]["redriven"], 1);
    let back = receive_all(&sqs, &downlink.url, 1, Duration::from_secs(5)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body(), Some("first"));
    assert_eq!(kit::sqs::attributes_of(&back[0]), topic);
    let left = classroom(&moto, &env, &["show", "downlink"]).lines();
    assert_eq!(left.len(), 2, "the others stay in the DLQ");

    // An unknown ID is an error that names it.
    let missing = classroom(&moto, &env, &["redrive", "downlink", "no-such-id"]);
    assert!(!missing.ok);
    assert!(missing.stderr.contains("no-such-id"), "{}", missing.stderr);

    // All: moto has no message move task, so message by message.
    let all = classroom(&moto, &env, &["redrive", "downlink"]);
    assert!(all.ok, "{}", all.stderr);
    let out = &all.lines()[0];
    assert_eq!(out["redriven"], 2);
    assert!(
        out["moveTask"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unavailable"),
        "{out}"
    );
    let rest = receive_all(&sqs, &downlink.url, 2, Duration::from_secs(5)).await;
    assert_eq!(rest.len(), 2);
    let packed = rest.iter().find(|m| m.body() == Some("packed")).unwrap();
    assert_eq!(
        kit::sqs::attributes_of(packed),
        ten,
        "packed attributes come back whole"
    );
    assert_eq!(classroom(&moto, &env, &["list"]).lines()[0]["messages"], 0);

    // Purge asks first.
    sender
        .send_one(&uplink.dlq_url, "junk", &Attributes::new())
        .await
        .unwrap();
    let unconfirmed = classroom(&moto, &env, &["purge", "uplink"]);
    assert!(!unconfirmed.ok);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(classroom(&moto, &env, &["show", "uplink"]).lines().len(), 1);
    let purged = classroom(&moto, &env, &["purge", "uplink", "--yes"]);
    assert!(purged.ok, "{}", purged.stderr);
    assert!(
        classroom(&moto, &env, &["show", "uplink"])
            .lines()
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_queue_variable_is_named() {
    let moto = Moto::start();
    let run = classroom(&moto, &[], &["show", "presence"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("PRESENCE_DLQ_URL"), "{}", run.stderr);
}
