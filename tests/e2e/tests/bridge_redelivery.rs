//! The rules bridge loses nothing when it dies: records it had received but not yet handed to
//! SQS (so not acknowledged), and records published while it is down, reach the uplink queue
//! once it is back, through its persistent session (cleanSession=false, QoS 1, manual PUBACK).
//! Its own stack (outflow only, so the backend queue keeps what arrives).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use e2e::{Stack, Transcript, repo_root};

fn signal(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid} failed");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn the_bridge_loses_nothing_when_it_is_killed() {
    let dir = repo_root().join(format!(".run/e2e-{}-bridge", std::process::id()));
    let stack = match Stack::start(&dir, &[("LOCAL_FUNCTIONS", "outflow")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let log = Transcript::new(false);
    let sender = match stack
        .peer("sender", "GID_student@@@281", &["br-1"], false, &log)
        .await
    {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let pid_file = dir.join("pids/bridge.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(!pid.is_empty(), "no bridge pid");
    let mut want = HashSet::new();

    // 1. Frozen bridge: the broker sends it the records, nobody acknowledges them.
    signal(&pid, "-STOP");
    for i in 0..5 {
        let text = format!("in flight {i} {}", uuid::Uuid::new_v4().simple());
        if let Err(e) = sender.chat("br-1", &text).await {
            panic!("{e}");
        }
        want.insert(text);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 2. Killed: its session stays on the broker; records keep being queued for it.
    signal(&pid, "-KILL");
    for i in 0..5 {
        let text = format!("while down {i} {}", uuid::Uuid::new_v4().simple());
        if let Err(e) = sender.chat("br-1", &text).await {
            panic!("{e}");
        }
        want.insert(text);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 3. Back: same client ID, same session.
    let log_file = match std::fs::File::create(dir.join("logs/bridge-restarted.log")) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let child = std::process::Command::new(e2e::debug_dir().join("rules-bridge"))
        .envs(&stack.env)
        .stdout(log_file.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(log_file)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => panic!("could not restart the bridge: {e}"),
    };
    // `stack.sh down` stops it like the first one.
    let _ = std::fs::write(&pid_file, child.id().to_string());

    let sqs = stack.sqs().await;
    let url = stack.var("BACKEND_QUEUE_URL").to_owned();
    let mut got = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && Instant::now() < deadline {
        let Ok(out) = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
        else {
            continue;
        };
        for m in out.messages.unwrap_or_default() {
            let body: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or("")).unwrap_or_default();
            if let Some(text) = body.get("msg").and_then(|v| v.as_str()) {
                got.insert(text.to_owned());
            }
            let _ = sqs
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or(""))
                .send()
                .await;
        }
    }
    let missing: Vec<&String> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "records lost across the bridge's death: {missing:?}"
    );
    sender.leave().await;
}
