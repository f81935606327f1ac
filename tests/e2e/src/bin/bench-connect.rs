//! `bench-connect`: CONNECT -> CONNACK time on the local broker, a classroom client signing in
//! with a token (the plugin verifies it: signature, key, expiry, client ID, revocations, then
//! records the session and publishes its `connected` event) against the backend user
//! (`password_file`, no token: Mosquitto's own PBKDF2-SHA512 check), in the same run.
//!
//! `BENCH_CONNECTS` (default 200) connections of each, interleaved one for one so both see the
//! same machine, after 10 warm-up connections of each. Each one: TCP connect (not timed), then
//! the time from writing the raw MQTT 3.1.1 CONNECT to reading the whole CONNACK, then
//! DISCONNECT. Prints p50 / p90 / p99 / mean of each and the token / password ratios. It prints
//! figures and asserts nothing but that every CONNECT was accepted.
//!
//! Run: `cargo build -q -p broker-plugin -p local-stack -p e2e && cargo run -q -p e2e --bin
//! bench-connect` (its stack lives in `.run/bench-connect`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e::{Stack, connect_packet, repo_root};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const STUDENT: &str = "GID_student@@@390";

/// One timed CONNECT -> CONNACK on a fresh TCP connection, then DISCONNECT.
async fn timed_connect(port: u16, packet: &[u8]) -> Result<Duration, String> {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    sock.write_all(packet)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut connack))
        .await
        .map_err(|_| "no CONNACK within 5 s".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    let took = t0.elapsed();
    if connack != [0x20, 2, 0, 0] {
        return Err(format!("refused: CONNACK {connack:?}"));
    }
    let _ = sock.write_all(&[0xE0, 0]).await;
    Ok(took)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Figures {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    mean: Duration,
}

fn figures(mut all: Vec<Duration>) -> Figures {
    all.sort();
    let n = u32::try_from(all.len().max(1)).unwrap_or(u32::MAX);
    Figures {
        p50: pct(&all, 0.5),
        p90: pct(&all, 0.9),
        p99: pct(&all, 0.99),
        mean: all.iter().sum::<Duration>() / n,
    }
}

async fn bench(stack: &Stack, n: usize) -> Result<(), String> {
    let port = stack.mqtt_port();
    let token = stack
        .issue(STUDENT, &["bench-1"], 3600)
        .map_err(|e| e.to_string())?;
    let with_token = connect_packet(STUDENT, STUDENT, &token.token, 60);
    let backend = connect_packet(
        "bench-connect-backend",
        stack.var("MQTT_USERNAME"),
        stack.var("MQTT_PASSWORD"),
        60,
    );
    println!(
        "== {n} CONNECTs each, interleaved: token ({} bytes, key {}) vs backend password_file",
        token.token.len(),
        token.kid()
    );
    for _ in 0..10 {
        timed_connect(port, &with_token).await?;
        timed_connect(port, &backend).await?;
    }
    let (mut tok, mut pw) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        tok.push(timed_connect(port, &with_token).await?);
        pw.push(timed_connect(port, &backend).await?);
    }
    let (t, p) = (figures(tok), figures(pw));
    for (name, f) in [
        ("token (plugin verifies)", &t),
        ("backend (password_file)", &p),
    ] {
        println!(
            "{name:<26} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  mean {:>7.3} ms",
            ms(f.p50),
            ms(f.p90),
            ms(f.p99),
            ms(f.mean)
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "bench-connect: CONNECT->CONNACK token p50 {:.3} ms p90 {:.3} ms, password_file p50 {:.3} ms p90 {:.3} ms; ratio token/password p50 {:.2}x p90 {:.2}x",
        ms(t.p50),
        ms(t.p90),
        ms(p.p50),
        ms(p.p90),
        ratio(t.p50, p.p50),
        ratio(t.p90, p.p90)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let n: usize = std::env::var("BENCH_CONNECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = repo_root().join(".run/bench-connect");
    println!("== starting the local stack in {}", dir.display());
    let mut stack = match Stack::start(&dir, &[("RUST_LOG_LOCAL", "warn")]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match bench(&stack, n).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-connect: {e}");
            ExitCode::FAILURE
        }
    };
    stack.down();
    code
}
