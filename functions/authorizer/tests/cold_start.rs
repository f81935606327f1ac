//! The authorizer's cold start, measured without Lambda: the built binary (the bootstrap) is
//! spawned with `AWS_LAMBDA_RUNTIME_API` pointing at a tiny mock of the Runtime API, and with
//! the fixture environment in a real moto (the key set read from Secrets Manager at start,
//! revocations from DynamoDB). Timed: process start -> first `GET .../invocation/next` (init:
//! the secret read included), -> first answer (the first CONNECT, the DynamoDB connection set
//! up), and a warm second answer; peak RSS from `/proc/<pid>/status`. Figures are printed,
//! never asserted; what is asserted is that each answer allowed the fixture's sign-in.
//!
//! ```sh
//! cargo test -p authorizer --release --test cold_start -- --ignored --nocapture
//! ```
//! `COLD_START_RUNS` sets the number of starts (default 10). Moto answers on loopback: in
//! Lambda the secret read adds a TLS handshake with Secrets Manager.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement harness

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the mock Runtime API saw, and when.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, String),
    InitError(String),
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).await.ok()?;
    }
    Some(Request { method, path, body })
}

/// Serves one connection: `/next` gets `event` for the first `answered` calls, then hangs.
async fn serve(
    stream: TcpStream,
    event: String,
    nexts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tx: mpsc::UnboundedSender<Seen>,
) {
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader).await {
        let now = Instant::now();
        if req.method == "GET" && req.path.ends_with("/invocation/next") {
            let n = nexts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let _ = tx.send(Seen::Next(now));
            if n > 2 {
                // Keep the process waiting for work while its memory is read.
                std::future::pending::<()>().await;
            }
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 5000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 lambda-runtime-aws-request-id: req-{n}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:authorizer\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\r\n",
                event.len()
            );
            // One write: head and body in two segments would meet Nagle and a delayed ACK
            // (40 ms) on a kept-alive connection, and the mock would measure itself.
            let reply = head + &event;
            reader.get_mut().write_all(reply.as_bytes()).await.unwrap();
        } else {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let _ = tx.send(if req.path.contains("/init/error") {
                Seen::InitError(body)
            } else {
                Seen::Response(now, body)
            });
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        }
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Run {
    init: Duration,
    first_answer: Duration,
    first_invocation: Duration,
    warm_invocation: Duration,
    peak_rss_kb: u64,
}

async fn one_start(moto_env: &[(String, String)], event: &str) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let nexts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let event = event.to_owned();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, event.clone(), nexts.clone(), tx.clone()));
        }
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_authorizer"))
        .env_clear()
        .envs(moto_env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "authorizer")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/authorizer")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("SIGNING_KEYS_SECRET_ID", common::SECRET_ID)
        .env("TOKEN_TABLE", common::TOKEN_TABLE)
        .env("IOT_ARN_PREFIX", common::ARN_PREFIX)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut times = Vec::new();
    let mut answers = Vec::new();
    while answers.len() < 2 || times.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(Seen::Next(t))) => times.push(t),
            Ok(Some(Seen::Response(t, body))) => answers.push((t, body)),
            Ok(Some(Seen::InitError(body))) => panic!("init error: {body}"),
            Ok(None) | Err(_) => panic!(
                "the authorizer did not answer (exited: {:?})",
                child.try_wait()
            ),
        }
    }
    let peak_rss_kb = vm_hwm_kb(pid).unwrap_or(0);
    child.kill().await.unwrap();
    server.abort();
    for (_, body) in &answers {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["isAuthenticated"], true, "{body}");
    }
    Run {
        init: times[0] - started,
        first_answer: answers[0].0 - started,
        first_invocation: answers[0].0 - times[0],
        warm_invocation: answers[1].0 - times[1],
        peak_rss_kb,
    }
}

fn figures(name: &str, mut values: Vec<Duration>) {
    values.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {name:<36} min {:7.1} ms   p50 {:7.1} ms   max {:7.1} ms",
        ms(values[0]),
        ms(values[values.len() / 2]),
        ms(values[values.len() - 1])
    );
}

#[tokio::test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn cold_start_figures() {
    let moto = testkit::Moto::start();
    let sdk = moto.sdk_config().await;
    common::provision(&sdk).await;
    let event = serde_json::to_string(&common::fixture("mqtt-over-wss")).unwrap();
    let runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(one_start(&moto.env(), &event).await);
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_authorizer")).map_or(0, |m| m.len());
    println!(
        "authorizer cold start, {runs} starts, {profile} build ({:.1} MB), moto on loopback:",
        size as f64 / 1e6
    );
    figures(
        "start -> first /next (init)",
        all.iter().map(|r| r.init).collect(),
    );
    figures(
        "start -> first answer",
        all.iter().map(|r| r.first_answer).collect(),
    );
    figures(
        "first invocation (/next -> answer)",
        all.iter().map(|r| r.first_invocation).collect(),
    );
    figures(
        "warm invocation (/next -> answer)",
        all.iter().map(|r| r.warm_invocation).collect(),
    );
    let mut rss: Vec<u64> = all.iter().map(|r| r.peak_rss_kb).collect();
    rss.sort_unstable();
    println!(
        "  {:<36} min {:7.1} MB   p50 {:7.1} MB   max {:7.1} MB",
        "peak RSS (VmHWM)",
        rss[0] as f64 / 1024.0,
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
}
