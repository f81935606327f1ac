//! The `classroom` binary against a real moto: a notice reaches the downlink queue with the
//! downlink message attributes (`mqttSecondTopic`, `mqttMessageId`, `timestamp`), `online`
//! answers from the presence table, and `token ...` issues, queries and revokes tokens through
//! the issuer service.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::io::Write as _;
use std::process::{Command, Stdio};
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
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    ddb.put_item()
        .table_name("presence")
        .item(
            "clientId",
            AttributeValue::S("GID_student@@@001".to_owned()),
        )
        .item("channelId", AttributeValue::S("c1".to_owned()))
        .item(
            "connectedAt",
            AttributeValue::N((now_ms - 60_000).to_string()),
        )
        .send()
        .await
        .unwrap();
    // A channel whose offline event was lost, open for longer than any connection can last
    // (24 h + the margin): it counts as closed.
    ddb.put_item()
        .table_name("presence")
        .item(
            "clientId",
            AttributeValue::S("GID_student@@@002".to_owned()),
        )
        .item("channelId", AttributeValue::S("c2".to_owned()))
        .item(
            "connectedAt",
            AttributeValue::N((now_ms - 25 * 3_600_000).to_string()),
        )
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

const TOKEN_ENV: [(&str, &str); 4] = [
    ("TOKEN_TABLE", "tokens"),
    ("ENROLLMENT_TABLE", "enrollment"),
    ("SIGNING_KEYS_SECRET_ID", "signing-keys"),
    ("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:123456789012"),
];

fn token_cli(moto: &Moto, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = classroom(moto, &TOKEN_ENV, &[&["token"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code(), json, stderr)
}

#[tokio::test]
async fn token_commands_issue_query_and_revoke_through_the_issuer() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    testkit::create_signin_tables(&ddb, "tokens", "enrollment").await;
    let keys = signin::KeySet::new("k1", vec![3; 32]).unwrap();
    testkit::put_secret(&sdk, "signing-keys", &keys.to_json()).await;

    let (code, issued, stderr) = token_cli(
        &moto,
        &[
            "issue",
            "GID_student@@@001",
            "--read",
            "room/system",
            "--write",
            "roomSend/message",
            "--expires-in",
            "600",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let token = issued["token"].as_str().unwrap();
    let token_id = issued["tokenId"].as_str().unwrap();
    assert_eq!(
        issued["expiresAt"].as_u64().unwrap() - issued["issuedAt"].as_u64().unwrap(),
        600
    );
    let now_s = issued["issuedAt"].as_u64().unwrap();
    signin::verify(token, "GID_student@@@001", &keys, now_s).unwrap();

    let (code, answer, _) = token_cli(&moto, &["status", token_id]);
    assert_eq!((code, answer["status"].as_str()), (Some(0), Some("active")));
    let (code, answer, _) = token_cli(&moto, &["query", token]);
    assert_eq!(
        (code, answer["valid"].as_bool()),
        (Some(0), Some(true)),
        "{answer}"
    );
    // The token from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_classroom"))
        .args(["token", "query", "-", "--client", "GID_teacher@@@001"])
        .envs(moto.env())
        .envs(TOKEN_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (answer["valid"].as_bool(), answer["code"].as_i64()),
        (Some(false), Some(4))
    );

    let (code, answer, _) = token_cli(&moto, &["revoke", token_id]);
    assert_eq!(
        (code, answer["status"].as_str()),
        (Some(0), Some("revoked"))
    );
    let (_, answer, _) = token_cli(&moto, &["status", token_id]);
    assert_eq!(answer["status"], "revoked");

    let (code, answer, stderr) = token_cli(&moto, &["classroom", "GID_teacher@@@001", "1", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(answer["role"], "teacher");
    assert_eq!(answer["rooms"], serde_json::json!(["1", "2"]));
    let classroom_id = answer["tokenId"].as_str().unwrap().to_owned();
    let (code, answer, _) = token_cli(&moto, &["revoke-client", "GID_teacher@@@001"]);
    assert_eq!(code, Some(0));
    assert!(answer["revokedBefore"].as_u64().unwrap() >= now_s);
    let (_, answer, _) = token_cli(&moto, &["status", &classroom_id]);
    assert_eq!(answer["status"], "revoked");

    // The issuer's refusals: exit code 1, its JSON (naming the field) on stderr.
    let (code, _, stderr) = token_cli(
        &moto,
        &[
            "issue",
            "GID_student@@@001",
            "--read",
            "room/system",
            "--expires-in",
            "2592001",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("400") && stderr.contains(r#""field":"expiresIn""#),
        "{stderr}"
    );
    let (code, _, stderr) = token_cli(&moto, &["status", "0123456789abcdef0123456789abcdef"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("404") && stderr.contains("unknown_token"),
        "{stderr}"
    );
    // Missing configuration names the variable; usage errors exit 2.
    let out = classroom(&moto, &[], &["token", "status", token_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEN_TABLE"));
    assert_eq!(token_cli(&moto, &["mint"]).0, Some(2));
}
