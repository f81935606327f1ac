//! `bench-connect`: CONNECT -> CONNACK time on the local broker for a classroom client signing
//! in with a token (the plugin verifies it: signature, key, expiry, client ID, revocations,
//! then records the session and publishes its `connected` event), over the stack's plain
//! listener (`PLAIN_LISTENER=1`) and over its TLS token listener, in the same run.
//!
//! `BENCH_CONNECTS` (default 200) connections of each, interleaved one for one so both see the
//! same machine, after 10 warm-up connections of each. Each one: TCP connect (not timed), then
//! the time from the first byte written (the TLS ClientHello, or the raw MQTT 3.1.1 CONNECT on
//! the plain listener) to reading the whole CONNACK, then DISCONNECT. Prints p50 / p90 / p99 /
//! mean of each and the TLS / plain ratios. It prints figures and asserts nothing but that
//! every CONNECT was accepted. (`make bench-inflow` has the backend's CONNECT with its client
//! certificate against plain.)
//!
//! Run: `make bench-connect` (its stack lives in `.run/bench-connect`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e::{Stack, connect_packet, repo_root};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

const STUDENT: &str = "GID_student@@@390";

/// CONNECT -> CONNACK on `sock`, then DISCONNECT.
async fn connack<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    packet: &[u8],
) -> Result<(), String> {
    sock.write_all(packet)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut connack))
        .await
        .map_err(|_| "no CONNACK within 5 s".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    if connack != [0x20, 2, 0, 0] {
        return Err(format!("refused: CONNACK {connack:?}"));
    }
    let _ = sock.write_all(&[0xE0, 0]).await;
    Ok(())
}

/// One timed sign-in on a fresh TCP connection: plain on `plain_port`, or TLS (handshake
/// included) on the stack's token listener.
async fn timed_connect(
    stack: &Stack,
    plain_port: Option<u16>,
    packet: &[u8],
) -> Result<Duration, String> {
    let t0;
    match plain_port {
        Some(port) => {
            let sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("tcp: {e}"))?;
            sock.set_nodelay(true).map_err(|e| e.to_string())?;
            t0 = Instant::now();
            connack(sock, packet).await?;
        }
        None => {
            t0 = Instant::now();
            let sock = stack
                .tls_stream(stack.mqtt_port())
                .await
                .map_err(|e| format!("tls: {e}"))?;
            connack(sock, packet).await?;
        }
    }
    Ok(t0.elapsed())
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
    let plain: u16 = stack
        .var("MQTT_PLAIN_PORT")
        .parse()
        .map_err(|_| "the stack has no plain listener (PLAIN_LISTENER=1)".to_owned())?;
    let token = stack
        .issue(STUDENT, &["bench-1"], 3600)
        .map_err(|e| e.to_string())?;
    let packet = connect_packet(STUDENT, STUDENT, &token.token, 60);
    println!(
        "== {n} CONNECTs each, interleaved: a token ({} bytes, key {}) over plain MQTT vs over TLS \
         (handshake included)",
        token.token.len(),
        token.kid()
    );
    for _ in 0..10 {
        timed_connect(stack, Some(plain), &packet).await?;
        timed_connect(stack, None, &packet).await?;
    }
    let (mut p, mut t) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        p.push(timed_connect(stack, Some(plain), &packet).await?);
        t.push(timed_connect(stack, None, &packet).await?);
    }
    let (p, t) = (figures(p), figures(t));
    for (name, f) in [("token, plain", &p), ("token, TLS", &t)] {
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
        "bench-connect: CONNECT->CONNACK with a token: TLS p50 {:.3} ms p90 {:.3} ms, plain p50 {:.3} ms p90 {:.3} ms; ratio TLS/plain p50 {:.2}x p90 {:.2}x",
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
    let mut stack = match Stack::start(&dir, &[("RUST_LOG_LOCAL", "warn"), ("PLAIN_LISTENER", "1")])
    {
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
