//! `make bench-cold`: the cold start of every function the template deploys, measured without
//! Lambda. Each release bootstrap (`target/lambda/<function>/bootstrap`, built by `make build`)
//! is spawned with `AWS_LAMBDA_RUNTIME_API` pointing at a tiny mock of the Lambda Runtime API,
//! and with the environment the template gives it, pointing at a real moto (tables, queues and
//! secrets made here) and, for inflow, a real Mosquitto. Timed per start:
//! - init: process start -> first `GET .../invocation/next` (the SDK clients built, the secrets
//!   read: everything `main` does before it asks for work);
//! - first answer: process start -> the first invocation's response (the first event is a
//!   10-record batch for the SQS functions, a 10-client batch for presence-query, one request
//!   for token and the authorizer);
//! - warm: the second invocation (same event), `/next` -> response;
//! - peak RSS: `VmHWM` of `/proc/<pid>/status` after both answers.
//!
//! Figures are printed, never asserted. Usage:
//! ```sh
//! cargo run -p testkit --bin bench-cold -- [--dir target/lambda] [function...]
//! ```
//! `BENCH_COLD_RUNS` sets the number of starts per function (default 10). Moto and Mosquitto
//! answer on loopback: in Lambda each first request also pays a TLS handshake.
//!
//! Trust roots: the SDK's HTTPS client loads the system's roots (rustls-native-certs) when it
//! makes its first connection, from the bundle file and every file of the certificate
//! directory. Debian's `/etc/ssl/certs` holds some 290 files (one per root, plus hash links),
//! which costs 20-40 ms to read; Lambda's Amazon Linux 2023 image holds the bundles only. So
//! the bootstraps get `SSL_CERT_FILE` pointing at the bundle (the roots are the same),
//! unless `BENCH_COLD_CERT_DIR=1` (then they scan the directory as on this host).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement harness

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The functions of infra/template.yaml, in its order.
const FUNCTIONS: &[&str] = &[
    "outflow",
    "moderation",
    "presence",
    "inflow",
    "presence-query",
    "token",
    "authorizer",
];

/// The fixture key set of the authorizer and token tests (kid `fixture-2026`, the 32-byte key
/// `classroom-rules fixture key 0001`, base64): the authorizer fixture's token verifies with it.
const KEY_SET: &str = r#"{"current":"fixture-2026","keys":{"fixture-2026":"Y2xhc3Nyb29tLXJ1bGVzIGZpeHR1cmUga2V5IDAwMDE="}}"#;
const KEYS_SECRET: &str = "bench-signing-keys";
const MQTT_SECRET: &str = "bench-mqtt";
const BATCH: usize = 10;
/// Debian's bundle of the system's trust roots.
const CERT_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the mock Runtime API saw, and when.
#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, String),
    Error(String),
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

/// Serves one connection: `/next` gets `event` for the first two calls, then hangs (the
/// process waits for work while its memory is read).
async fn serve(
    stream: TcpStream,
    function: &'static str,
    event: Arc<String>,
    nexts: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Seen>,
) {
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader).await {
        let now = Instant::now();
        if req.method == "GET" && req.path.ends_with("/invocation/next") {
            let n = nexts.fetch_add(1, Ordering::SeqCst) + 1;
            let _ = tx.send(Seen::Next(now));
            if n > 2 {
                std::future::pending::<()>().await;
            }
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 20_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 lambda-runtime-aws-request-id: req-{n}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:{function}\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n\r\n",
                event.len()
            );
            // One write: head and body in two segments would meet Nagle and a delayed ACK
            // (40 ms) on a kept-alive connection, and the mock would measure itself.
            let reply = head + event.as_str();
            reader.get_mut().write_all(reply.as_bytes()).await.unwrap();
        } else {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let _ = tx.send(if req.path.ends_with("/error") {
                Seen::Error(format!("{}: {body}", req.path))
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
    warm: Duration,
    peak_rss_kb: u64,
    answer: String,
}

/// One cold start of `bootstrap` with `env`, answering `event` twice.
async fn one_start(
    function: &'static str,
    bootstrap: &Path,
    env: &[(String, String)],
    event: &Arc<String>,
    log: &Path,
) -> Result<Run, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let nexts = Arc::new(AtomicUsize::new(0));
    let served = event.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(
                stream,
                function,
                served.clone(),
                nexts.clone(),
                tx.clone(),
            ));
        }
    });
    let stderr = std::fs::File::create(log).unwrap();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench-cold")
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bootstrap.display()))?;
    let pid = child.id().unwrap_or(0);
    let mut nexts = Vec::new();
    let mut answers = Vec::new();
    let outcome = loop {
        if answers.len() >= 2 && nexts.len() >= 3 {
            break Ok(());
        }
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(Seen::Next(t))) => nexts.push(t),
            Ok(Some(Seen::Response(t, body))) => answers.push((t, body)),
            Ok(Some(Seen::Error(body))) => break Err(format!("error reported: {body}")),
            Ok(None) | Err(_) => {
                break Err(format!(
                    "no answer in 30 s (exited: {:?})",
                    child.try_wait().ok().flatten()
                ));
            }
        }
    };
    let peak_rss_kb = vm_hwm_kb(pid).unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    outcome.map_err(|e| {
        let tail: String = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n    ");
        format!("{e}\n    stderr (last lines, newest first):\n    {tail}")
    })?;
    Ok(Run {
        init: nexts[0] - started,
        first_answer: answers[0].0 - started,
        warm: answers[1].0 - nexts[1],
        peak_rss_kb,
        answer: summary(&answers[0].1),
    })
}

/// A short description of an answer: failed records of a batch, an HTTP status, a sign-in.
fn summary(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return format!("not JSON: {}", body.chars().take(60).collect::<String>());
    };
    if let Some(failures) = v.get("batchItemFailures").and_then(Value::as_array) {
        format!("{} of the batch failed", failures.len())
    } else if let Some(code) = v.get("statusCode") {
        format!("HTTP {code}")
    } else if let Some(ok) = v.get("isAuthenticated") {
        format!("isAuthenticated {ok}")
    } else {
        body.chars().take(60).collect()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `records` SQS records cycling through the records of a fixture file, each with its own
/// message ID (the fixtures are `{"Records": [...]}` SQS events).
fn sqs_batch(fixture: &str, records: usize) -> String {
    let path = testkit::repo_root().join(fixture);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let event: Value = serde_json::from_str(&text).unwrap();
    let source = event["Records"].as_array().unwrap();
    let batch: Vec<Value> = (0..records)
        .map(|i| {
            let mut record = source[i % source.len()].clone();
            record["messageId"] = json!(format!("00000000-0000-0000-0000-bench{i:07}"));
            record
        })
        .collect();
    json!({ "Records": batch }).to_string()
}

fn fixture(path: &str) -> String {
    let path = testkit::repo_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// An API Gateway HTTP API (payload 2.0) request.
fn http_request(method: &str, path: &str, body: Option<Value>) -> String {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "content-type": "application/json", "host": "bench.execute-api.us-east-1.amazonaws.com" },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "bench-cold" },
            "requestId": "bench",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1_767_225_600_000_u64
        },
        "isBase64Encoded": false,
        "body": body.map(|b| b.to_string()),
    })
    .to_string()
}

/// The resources every function's environment points at.
struct Resources {
    moto: testkit::Moto,
    broker: testkit::Mosquitto,
    backend_queue: String,
    downlink_queue: String,
}

async fn provision() -> Resources {
    let moto = testkit::Moto::start();
    let broker = testkit::Mosquitto::start();
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    testkit::create_table(&ddb, "mutes", "roomId", "clientId", false).await;
    testkit::create_table(&ddb, "membership", "roomId", "clientId", true).await;
    testkit::create_table(&ddb, "presence", "clientId", "channelId", false).await;
    testkit::create_table(&ddb, "attendance", "clientId", "sessionId", false).await;
    testkit::create_signin_tables(&ddb, "tokens", "enrollment").await;
    let backend_queue = testkit::create_queue(&sqs, "backend").await;
    let downlink_queue = testkit::create_queue(&sqs, "downlink").await;
    testkit::put_secret(&sdk, KEYS_SECRET, KEY_SET).await;
    let mqtt = json!({ "username": testkit::BACKEND_USER, "password": testkit::BACKEND_PASSWORD });
    testkit::put_secret(&sdk, MQTT_SECRET, &mqtt.to_string()).await;
    Resources {
        moto,
        broker,
        backend_queue,
        downlink_queue,
    }
}

/// The environment the template gives `function` (its parameters' defaults), pointing at
/// `res`, and the first event it gets.
fn setup(function: &str, res: &Resources) -> (Vec<(String, String)>, String) {
    let mut env: Vec<(String, String)> = res.moto.env();
    let mut set = |k: &str, v: &str| env.push((k.to_owned(), v.to_owned()));
    if std::env::var_os("BENCH_COLD_CERT_DIR").is_none() && Path::new(CERT_BUNDLE).exists() {
        set("SSL_CERT_FILE", CERT_BUNDLE);
    }
    // Globals of infra/template.yaml.
    set("RUST_LOG", "warn");
    set("UPLINK_PARENTS", "roomSend");
    set("DOWNLINK_PARENTS", "room");
    set("TOPIC_MAX_CHARS", "64");
    set("PAYLOAD_MAX_BYTES", "65536");
    let groups = |set: &mut dyn FnMut(&str, &str)| {
        set("TEACHER_GROUPS", "GID_teacher");
        set("STUDENT_GROUPS", "GID_student");
    };
    let event = match function {
        "outflow" => {
            set("OUTFLOW_ROUTES", &format!("roomSend={}", res.backend_queue));
            sqs_batch(
                "functions/outflow/tests/fixtures/chat-from-student.json",
                BATCH,
            )
        }
        "moderation" => {
            set("MUTE_TABLE", "mutes");
            set("MEMBERSHIP_TABLE", "membership");
            set("PRESENCE_TABLE", "presence");
            set("ENROLLMENT_TABLE", "enrollment");
            set("DOWNLINK_QUEUE_URL", &res.downlink_queue);
            set("BANNED_WORDS", "idiot,stupid,笨蛋,傻瓜");
            set("MODERATION_MODE", "mask");
            set("MAX_MESSAGE_CHARS", "500");
            groups(&mut set);
            sqs_batch("functions/moderation/tests/fixtures/chat-plain.json", BATCH)
        }
        "presence" => {
            set("PRESENCE_TABLE", "presence");
            set("ATTENDANCE_TABLE", "attendance");
            set("DOWNLINK_QUEUE_URL", &res.downlink_queue);
            sqs_batch(
                "functions/presence/tests/fixtures/iot-connected-disconnected.json",
                BATCH,
            )
        }
        "inflow" => {
            set("MQTT_URL", &res.broker.url());
            set("MQTT_CLIENT_ID_PREFIX", "backend-inflow-");
            set("MQTT_SECRET_ID", MQTT_SECRET);
            set("MQTT_PUBLISH_TIMEOUT_MS", "5000");
            sqs_batch("functions/inflow/tests/fixtures/chat-fanout.json", BATCH)
        }
        "presence-query" => {
            set("PRESENCE_TABLE", "presence");
            let clients: Vec<String> = (1..=BATCH)
                .map(|i| format!("GID_student@@@{i:03}"))
                .collect();
            http_request(
                "POST",
                "/presence/batch",
                Some(json!({ "clientIds": clients })),
            )
        }
        "token" => {
            set("TOKEN_TABLE", "tokens");
            set("ENROLLMENT_TABLE", "enrollment");
            set("SIGNING_KEYS_SECRET_ID", KEYS_SECRET);
            set("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:123456789012");
            groups(&mut set);
            fixture("functions/token/tests/fixtures/issue.json")
        }
        "authorizer" => {
            set("SIGNING_KEYS_SECRET_ID", KEYS_SECRET);
            set("TOKEN_TABLE", "tokens");
            set("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:123456789012");
            fixture("functions/authorizer/tests/fixtures/mqtt-over-wss.json")
        }
        other => panic!("bench-cold: unknown function {other}"),
    };
    (env, event)
}

#[tokio::main]
async fn main() {
    let mut dir = testkit::repo_root().join("target/lambda");
    let mut wanted: Vec<&'static str> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--dir" {
            dir = PathBuf::from(args.next().expect("--dir needs a directory"));
        } else if let Some(f) = FUNCTIONS.iter().find(|f| **f == arg) {
            wanted.push(f);
        } else {
            eprintln!("bench-cold: unknown function {arg} (known: {FUNCTIONS:?})");
            std::process::exit(2);
        }
    }
    if wanted.is_empty() {
        wanted = FUNCTIONS.to_vec();
    }
    let runs: usize = std::env::var("BENCH_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let res = provision().await;
    let logs = tempfile::tempdir().unwrap();
    println!(
        "cold start of the release bootstraps in {}, {runs} starts each, moto + Mosquitto on loopback",
        dir.display()
    );
    println!(
        "(init = process start -> first /next; answer = start -> first response; batch of {BATCH})"
    );
    if std::env::var_os("BENCH_COLD_CERT_DIR").is_none() && Path::new(CERT_BUNDLE).exists() {
        println!(
            "(trust roots from SSL_CERT_FILE={CERT_BUNDLE}; BENCH_COLD_CERT_DIR=1 scans /etc/ssl/certs)"
        );
    }
    println!(
        "{:<15} {:>8} {:>10} {:>10} {:>12} {:>9} {:>9}  first answer",
        "function", "size MB", "init p50", "init p90", "answer p50", "warm p50", "RSS MB"
    );
    for function in wanted {
        let bootstrap = dir.join(function).join("bootstrap");
        let Ok(meta) = std::fs::metadata(&bootstrap) else {
            println!(
                "{function:<15} no bootstrap at {} (run make build)",
                bootstrap.display()
            );
            continue;
        };
        let size_mb = meta.len() as f64 / 1e6;
        let (env, event) = setup(function, &res);
        let event = Arc::new(event);
        let log = logs.path().join(format!("{function}.stderr"));
        let mut all = Vec::new();
        let mut failure = None;
        for _ in 0..runs {
            match one_start(function, &bootstrap, &env, &event, &log).await {
                Ok(run) => all.push(run),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            println!("{function:<15} {size_mb:>8.1}  FAILED: {e}");
            continue;
        }
        let mut init: Vec<Duration> = all.iter().map(|r| r.init).collect();
        let mut answer: Vec<Duration> = all.iter().map(|r| r.first_answer).collect();
        let mut warm: Vec<Duration> = all.iter().map(|r| r.warm).collect();
        let mut rss: Vec<u64> = all.iter().map(|r| r.peak_rss_kb).collect();
        init.sort();
        answer.sort();
        warm.sort();
        rss.sort_unstable();
        println!(
            "{function:<15} {size_mb:>8.1} {:>7.1} ms {:>7.1} ms {:>9.1} ms {:>6.1} ms {:>9.1}  {}",
            ms(quantile(&init, 0.5)),
            ms(quantile(&init, 0.9)),
            ms(quantile(&answer, 0.5)),
            ms(quantile(&warm, 0.5)),
            quantile(&rss, 0.5) as f64 / 1024.0,
            all[0].answer,
        );
    }
}
