//! `make bench-restart`: the broker-restart scenario of the retry backoff, before and after,
//! in one run. 1,000 system notices go into the downlink queue (100 per second) while the
//! stack's Mosquitto is restarted twice (SIGTERM, 2 s down, each); a backend subscriber with a
//! persistent session counts what reaches `room/system`. Two fresh stacks:
//! - **before**: the visibility of a failed record is left at the queue's timeout (210 s), as
//!   before the settler (`RETRY_BACKOFF_BASE_SECONDS=210`, so every retry waits 210 s);
//! - **after**: the defaults, 2 s doubling per receive, capped at the timeout.
//!
//! Prints, for each: notices sent, delivered, duplicates, and the time from the broker's
//! second return to the last notice delivered. Figures are printed, never asserted.
//! `BENCH_RESTART_NOTICES` (default 1000) changes the count.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Stack, repo_root};
use kit::{OutgoingMessage, SqsSender};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

struct Report {
    sent: usize,
    delivered: usize,
    duplicates: usize,
    after_return: Option<Duration>,
}

/// A backend subscriber that reconnects after each broker restart (persistent session, QoS 1)
/// and records each notice ID with when it arrived.
fn observe(stack: &Stack, seen: Arc<Mutex<Vec<(String, Instant)>>>) -> Result<AsyncClient, String> {
    let endpoint = stack
        .endpoint_for(&stack.backend())
        .map_err(|e| e.to_string())?;
    let mut mo = MqttOptions::new("bench-restart-observer", "127.0.0.1", endpoint.port);
    if let Some(tls) = &endpoint.tls {
        mo.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.config()),
        ));
    }
    mo.set_clean_session(false);
    mo.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(mo, 10_000);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let json: serde_json::Value =
                        serde_json::from_slice(&p.payload).unwrap_or_default();
                    if let Some(id) = json.get("msgId").and_then(|v| v.as_str())
                        && let Ok(mut s) = seen.lock()
                    {
                        s.push((id.to_owned(), Instant::now()));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    Ok(client)
}

async fn one(name: &str, extra: &[(&str, &str)], notices: usize) -> Result<Report, String> {
    let dir = repo_root().join(format!(".run/bench-restart-{name}"));
    println!("== {name}: a local stack in {} ({extra:?})", dir.display());
    let mut env = vec![("RUST_LOG_LOCAL", "warn")];
    env.extend_from_slice(extra);
    let mut stack = Stack::start(&dir, &env).map_err(|e| e.to_string())?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let observer = observe(&stack, Arc::clone(&seen))?;
    observer
        .subscribe("room/system", QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sender = SqsSender::new(stack.sqs().await);
    let queue = stack.var("DOWNLINK_QUEUE_URL").to_owned();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let ids: Vec<String> = (0..notices).map(|i| format!("{run}-{i}")).collect();
    let send_ids = ids.clone();
    let sending = tokio::spawn(async move {
        for chunk in send_ids.chunks(10) {
            let batch: Vec<OutgoingMessage> = chunk
                .iter()
                .map(|id| OutgoingMessage {
                    body:
                        serde_json::json!({"type": "system", "msgId": id, "text": "restart bench"})
                            .to_string(),
                    attributes: vec![("mqttSecondTopic".into(), "/system".to_owned())],
                })
                .collect();
            for r in sender.send_all(&queue, &batch).await {
                if let Err(e) = r {
                    eprintln!("send failed: {e}");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Two restarts while the notices flow.
    let mut back = Instant::now();
    for at in [Duration::from_secs(2), Duration::from_secs(4)] {
        tokio::time::sleep(at).await;
        let s = &stack;
        tokio::task::block_in_place(|| s.restart_broker("-TERM", Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        back = Instant::now();
        println!("   broker restarted");
    }
    sending.await.map_err(|e| e.to_string())?;
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(420);
    let (delivered, last) = loop {
        let (unique, last) = {
            let s = seen.lock().map_err(|e| e.to_string())?;
            let unique: HashSet<&str> = s.iter().map(|(id, _)| id.as_str()).collect();
            let last = s.iter().map(|(_, at)| *at).max();
            (unique.intersection(&wanted).count(), last)
        };
        if unique == notices || Instant::now() > deadline {
            break (unique, last);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let duplicates = seen
        .lock()
        .map(|s| s.len())
        .unwrap_or(0)
        .saturating_sub(delivered);
    stack.down();
    Ok(Report {
        sent: notices,
        delivered,
        duplicates,
        after_return: last.map(|l| l.saturating_duration_since(back)),
    })
}

fn line(name: &str, r: &Report) -> String {
    format!(
        "{name:>6}: sent {}, delivered {}, duplicates {}, last delivered {} after the broker's second return",
        r.sent,
        r.delivered,
        r.duplicates,
        r.after_return
            .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let notices = std::env::var("BENCH_RESTART_NOTICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let before = one("before", &[("RETRY_BACKOFF_BASE_SECONDS", "210")], notices).await;
    let after = one("after", &[], notices).await;
    match (before, after) {
        (Ok(b), Ok(a)) => {
            println!("{}", line("before", &b));
            println!("{}", line("after", &a));
            if let (Some(b), Some(a)) = (b.after_return, a.after_return) {
                println!(
                    " ratio: after / before = {:.3}",
                    a.as_secs_f64() / b.as_secs_f64().max(0.001)
                );
            }
            ExitCode::SUCCESS
        }
        (b, a) => {
            for e in [b.err(), a.err()].into_iter().flatten() {
                eprintln!("bench-restart: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
