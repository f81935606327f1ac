//! `make bench-e2e`: chat latency through the whole local stack (student publishes on
//! `roomSend/message` -> plugin -> bridge -> uplink queue -> outflow -> backend queue ->
//! moderation -> downlink queue -> inflow -> broker -> teacher receives on `room/message/1`).
//!
//! Phase 1: a fixed rate (`BENCH_RATE`, default 20 msg/s) for `BENCH_SECONDS` (default 10):
//! p50 / p99 / max latency and loss. Phase 2: rising rates (`BENCH_RATES`, default
//! 10,20,30,40,50,75,100,150,200) for `BENCH_STEP_SECONDS` (default 8) each, stopping at the first rate
//! that loses a message (never delivered) or falls behind (p99 above `BENCH_MAX_P99_MS`,
//! default 1000); prints the highest sustained rate with 0 loss.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e::{Peer, Stack, Transcript, members_at_least, repo_root, scenarios};
use serde_json::json;

struct Step {
    rate: u32,
    sent: usize,
    received: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run_step(
    sender: &Peer,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<e2e::Msg>,
    rate: u32,
    seconds: u64,
) -> Step {
    let total = (u64::from(rate) * seconds) as usize;
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut latencies = Vec::with_capacity(total);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let text = format!("bench {tag} {i}");
        sent_at.insert(text.clone(), Instant::now());
        let _ = sender.publish("roomSend/message", &json!({"roomId": scenarios::ROOM, "msg": text, "msgId": uuid::Uuid::new_v4().to_string()})).await;
        while let Ok(m) = rx.try_recv() {
            if let Some(t0) = sent_at.get(m.field("msg")) {
                latencies.push(m.at.duration_since(*t0));
            }
        }
    }
    // Drain: wait for the backlog as long as messages keep coming (a slow pipeline is late,
    // not lossy); stop after 5 s without progress, or 120 s in all.
    let cap = tokio::time::Instant::now() + Duration::from_secs(120);
    while latencies.len() < total {
        let idle = (tokio::time::Instant::now() + Duration::from_secs(5)).min(cap);
        match tokio::time::timeout_at(idle, rx.recv()).await {
            Ok(Some(m)) => {
                if let Some(t0) = sent_at.get(m.field("msg")) {
                    latencies.push(m.at.duration_since(*t0));
                }
            }
            _ => break,
        }
    }
    latencies.sort();
    Step {
        rate,
        sent: total,
        received: latencies.len(),
        p50: pct(&latencies, 0.5),
        p99: pct(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}

fn show(s: &Step) {
    println!(
        "rate {:>4} msg/s  sent {:>5}  received {:>5}  lost {:>4}  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        s.rate,
        s.sent,
        s.received,
        s.sent.saturating_sub(s.received),
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.max.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = repo_root().join(".run/bench");
    println!("== starting the local stack in {}", dir.display());
    let mut stack = match Stack::start(&dir, &[("RUST_LOG_LOCAL", "warn")]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-e2e: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match bench(&stack).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-e2e: {e}");
            ExitCode::FAILURE
        }
    };
    stack.down();
    code
}

async fn bench(stack: &Stack) -> Result<(), e2e::Error> {
    let log = Transcript::new(false);
    let ddb = stack.ddb().await;
    let mut teacher = stack
        .peer("teacher", scenarios::TEACHER, &[], false, &log)
        .await?;
    let mut student = stack
        .peer("A", scenarios::STUDENT_A, &[], false, &log)
        .await?;
    teacher.subscribe_classroom(scenarios::ROOM).await?;
    student.subscribe_classroom(scenarios::ROOM).await?;
    for p in [&teacher, &student] {
        p.command(&json!({"type": "join", "roomId": scenarios::ROOM}))
            .await?;
    }
    if !members_at_least(stack, &ddb, scenarios::ROOM, 2, Duration::from_secs(15)).await {
        return Err(e2e::Error::Stack(
            "the two bench clients never joined room 1".into(),
        ));
    }
    let mut rx = teacher.take_receiver();
    // Warm up the pipeline (cold SDK clients, first MQTT connection of the inflow).
    let _ = run_step(&student, &mut rx, 5, 2).await;

    let rate: u32 = env_or("BENCH_RATE", 20);
    let secs: u64 = env_or("BENCH_SECONDS", 10);
    println!("== fixed rate: {rate} msg/s for {secs} s, publish (student A) -> delivery (teacher)");
    let fixed = run_step(&student, &mut rx, rate, secs).await;
    show(&fixed);

    let rates: Vec<u32> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "10,20,30,40,50,75,100,150,200".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let step_secs: u64 = env_or("BENCH_STEP_SECONDS", 8);
    let max_p99 = Duration::from_millis(env_or("BENCH_MAX_P99_MS", 1000));
    println!(
        "== rising rates, {step_secs} s each, until a message is lost or p99 exceeds {} ms (falling behind)",
        max_p99.as_millis()
    );
    let mut best = None;
    for r in rates {
        let s = run_step(&student, &mut rx, r, step_secs).await;
        show(&s);
        if s.received < s.sent || s.p99 > max_p99 {
            break;
        }
        best = Some(r);
    }
    println!(
        "bench-e2e: fixed {rate} msg/s p50 {:.1} ms p99 {:.1} ms lost {}; highest sustained rate with 0 loss: {}",
        fixed.p50.as_secs_f64() * 1e3,
        fixed.p99.as_secs_f64() * 1e3,
        fixed.sent.saturating_sub(fixed.received),
        best.map_or_else(
            || "none of the rates tried".to_owned(),
            |r| format!("{r} msg/s")
        )
    );
    teacher.leave().await;
    student.leave().await;
    Ok(())
}
