//! The `classroom` binary against a real moto: a notice reaches the downlink queue with the
//! §4.3 attributes, and `online` answers from the presence table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use testkit::{Moto, create_queue, create_table};

fn classroom(moto: &Moto, extra: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_classroom"))
        .args(args)
        .envs(moto.env())
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test]
async fn notify_queues_a_system_notice_and_online_answers() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let downlink = create_queue(&sqs, "downlink").await;

    let out = classroom(
        &moto,
        &[("DOWNLINK_QUEUE_URL", &downlink)],
        &["notify", "class starts in 5 minutes", "--id", "notice-1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "notice-1");
    let msgs = testkit::receive_all(&sqs, &downlink, 1, Duration::from_secs(5)).await;
    assert_eq!(msgs.len(), 1);
    let attrs = msgs[0].message_attributes.clone().unwrap();
    let get = |k: &str| attrs[k].string_value.clone().unwrap();
    assert_eq!(get("mqttSecondTopic"), "/system");
    assert_eq!(get("mqttMessageId"), "notice-1");
    let body: Value = serde_json::from_str(msgs[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["type"], "system");
    assert_eq!(body["msg"], "class starts in 5 minutes");
    assert_eq!(get("timestamp"), body["ts"].to_string());

    // Missing configuration: a clear error naming the variable, exit code 1.
    let out = classroom(&moto, &[], &["notify", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOWNLINK_QUEUE_URL"));
    // Usage errors: exit code 2.
    assert_eq!(classroom(&moto, &[], &["online"]).status.code(), Some(2));

    create_table(&ddb, "presence", "clientId", "channelId", false).await;
    ddb.put_item()
        .table_name("presence")
        .item(
            "clientId",
            AttributeValue::S("GID_student@@@001".to_owned()),
        )
        .item("channelId", AttributeValue::S("c1".to_owned()))
        .item("connectedAt", AttributeValue::N("100".to_owned()))
        .send()
        .await
        .unwrap();
    let out = classroom(
        &moto,
        &[("PRESENCE_TABLE", "presence")],
        &["online", "GID_student@@@001", "GID_student@@@002"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["online"], true);
    assert_eq!(lines[0]["channels"][0], "c1");
    assert_eq!(lines[1]["online"], false);
}
