//! Presence cannot stay wrong when the broker restarts: a student connected when Mosquitto is
//! stopped (SIGTERM, then a kill -9) is offline within seconds of its restart, through the
//! `disconnected` event (SERVER_INITIATED_DISCONNECT) the broker plugin publishes for the
//! sessions its previous run left live. Its own stack (presence only).

use std::time::{Duration, Instant};

use e2e::{Stack, Transcript, repo_root};
use serde_json::{Value, json};

fn online(stack: &Stack, id: &str) -> Option<bool> {
    stack
        .presence(id)
        .ok()
        .as_ref()
        .and_then(|v: &Value| v["online"].as_bool())
}

/// Waits up to `within` for the presence query to say `want` about `id`; how long it took.
async fn until(stack: &Stack, id: &str, want: bool, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if online(stack, id) == Some(want) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn a_student_connected_through_a_broker_restart_is_offline_within_seconds() {
    let dir = repo_root().join(format!(".run/e2e-{}-restart", std::process::id()));
    let stack = match Stack::start(&dir, &[("LOCAL_FUNCTIONS", "presence,moderation")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let log = Transcript::new(false);
    for (signal, id) in [
        ("-TERM", "GID_student@@@371"),
        ("-KILL", "GID_student@@@372"),
    ] {
        let student = match stack.peer("student", id, &["rs-1"], false, &log).await {
            Ok(p) => p,
            Err(e) => panic!("{id}: {e}"),
        };
        if let Err(e) = student
            .command(&json!({"type": "join", "roomId": "rs-1"}))
            .await
        {
            panic!("{e}");
        }
        assert!(
            until(&stack, id, true, Duration::from_secs(20))
                .await
                .is_some(),
            "{id} never online:\n{}",
            log.lines().join("\n")
        );
        let restart = {
            let s = &stack;
            tokio::task::block_in_place(|| s.restart_broker(signal, Duration::from_millis(500)))
        };
        if let Err(e) = restart {
            panic!("{e}");
        }
        drop(student);
        let took = until(&stack, id, false, Duration::from_secs(30)).await;
        assert!(
            took.is_some(),
            "{id} still online 30 s after a {signal} restart of the broker"
        );
        println!(
            "{signal}: {id} offline {:.1} s after the broker's return",
            took.unwrap_or_default().as_secs_f64()
        );
    }
}
