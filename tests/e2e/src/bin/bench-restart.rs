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
use std::time::{Duration, Instant};

use e2e::{Stack, Tally, repo_root};

struct Report {
    sent: usize,
    tally: Tally,
    back: Instant,
}

impl Report {
    fn after_return(&self) -> Option<Duration> {
        self.tally
            .last
            .map(|l| l.saturating_duration_since(self.back))
    }
}

async fn one(name: &str, extra: &[(&str, &str)], notices: usize) -> Result<Report, String> {
    let dir = repo_root().join(format!(".run/bench-restart-{name}"));
    println!("== {name}: a local stack in {} ({extra:?})", dir.display());
    let mut env = vec![("RUST_LOG_LOCAL", "warn")];
    env.extend_from_slice(extra);
    let mut stack = Stack::start(&dir, &env).map_err(|e| e.to_string())?;
    let observer = stack
        .observer("bench-restart-observer", "room/system", "msgId")
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let ids: Vec<String> = (0..notices).map(|i| format!("{run}-{i}")).collect();
    let report = {
        let sending = stack.spawn_notices(ids.clone(), 10).await;
        let mut back = Instant::now();
        for at in [Duration::from_secs(2), Duration::from_secs(4)] {
            tokio::time::sleep(at).await;
            tokio::task::block_in_place(|| stack.restart_broker("-TERM", Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            back = Instant::now();
            println!("   broker restarted");
        }
        sending.await.map_err(|e| e.to_string())?;
        let wanted: HashSet<String> = ids.iter().cloned().collect();
        let tally = observer.wait_for(&wanted, Duration::from_secs(420)).await;
        Report {
            sent: notices,
            tally,
            back,
        }
    };
    stack.down();
    Ok(report)
}

fn line(name: &str, r: &Report) -> String {
    format!(
        "{name:>6}: sent {}, delivered {}, duplicates {}, last delivered {} after the broker's second return",
        r.sent,
        r.tally.delivered,
        r.tally.duplicates,
        r.after_return()
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
            if let (Some(b), Some(a)) = (b.after_return(), a.after_return()) {
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
