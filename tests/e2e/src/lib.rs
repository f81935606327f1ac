//! End-to-end harness for the classroom over the real local stack (§7): Mosquitto with
//! the broker plugin and the ACL, moto, the rules bridge and the local runner feeding the
//! functions, all started by `infra/local/stack.sh` on free loopback ports.
//!
//! # Layout
//! - [`Stack`]: start (or attach to) a stack, its env file, SDK clients pointed at its moto, and
//!   its local token API: classroom tokens ([`Stack::issue`], [`Stack::client`]: username =
//!   client ID, password = a token, §8), revocation, key rotation, the presence query.
//! - [`http`]: a minimal HTTP/1.1 client for the local APIs on loopback (std only).
//! - [`Peer`]: one real MQTT client (teacher or student) that records what it receives, with
//!   `expect` / `quiet` to assert on it, the SUBACK codes of its subscriptions, its PUBACKs and
//!   whether the broker closed its connection.
//! - [`Transcript`]: who did and saw what, when (printed live by the demo).
//! - [`scenarios`]: the seeds' classroom, one outcome per scenario.
//! - [`flood`]: one student floods a room (the flood test and `bench-flood`).
//! - binaries: `demo` (the seeds' classroom, one pass/fail line per scenario) and
//!   `bench-e2e` (publish -> delivery latency and the highest rate with 0 loss), `bench-connect`
//!   (CONNECT -> CONNACK with token verification against the backend's password file).

pub mod flood;
pub mod scenarios;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use rumqttc::SubscribeReasonCode;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// What can go wrong in the harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stack script failed.
    #[error("stack: {0}")]
    Stack(String),
    /// An MQTT client could not connect or subscribe.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// The local token or presence API refused or failed a request.
    #[error("api: {0}")]
    Api(String),
    /// IO.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Where cargo put the workspace's debug binaries.
pub fn debug_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from)
        .join("debug")
}

/// A running local stack and its env file.
#[derive(Debug)]
pub struct Stack {
    /// Its directory (env file, logs, broker state).
    pub dir: PathBuf,
    /// The env file's variables (queue URLs, ports, backend password...).
    pub env: HashMap<String, String>,
    owned: bool,
}

fn read_env(path: &Path) -> Result<HashMap<String, String>, Error> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

impl Stack {
    /// Starts a fresh stack in `dir` (wiped first) with extra environment for the script
    /// (e.g. `VISIBILITY_TIMEOUT`). It is stopped on drop, and by a watchdog if this process
    /// dies first.
    pub fn start(dir: &Path, extra: &[(&str, &str)]) -> Result<Self, Error> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut cmd = std::process::Command::new(repo_root().join("infra/local/stack.sh"));
        cmd.arg("up")
            .env("STACK_DIR", dir)
            .env("STACK_OWNER_PID", std::process::id().to_string());
        // `make test-e2e`/`demo`/`bench-e2e` build first; a nested cargo build would only wait
        // for the build lock. Set STACK_BUILD=1 to force it.
        if std::env::var_os("STACK_BUILD").is_none() {
            cmd.env("STACK_BUILD", "0");
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(Error::Stack(format!(
                "stack.sh up failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let env = read_env(&dir.join("stack.env"))?;
        Ok(Self {
            dir: dir.to_owned(),
            env,
            owned: true,
        })
    }

    /// The pid of one of the stack's processes (`mosquitto`, `bridge`, `runner`, `api`, `moto`).
    pub fn pid(&self, name: &str) -> Result<String, Error> {
        Ok(
            std::fs::read_to_string(self.dir.join(format!("pids/{name}.pid")))?
                .trim()
                .to_owned(),
        )
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`, `-TERM`) to one of the stack's processes.
    pub fn signal(&self, name: &str, signal: &str) -> Result<(), Error> {
        let pid = self.pid(name)?;
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()?;
        if sent.success() {
            Ok(())
        } else {
            Err(Error::Stack(format!("kill {signal} {name} ({pid}) failed")))
        }
    }

    /// Stops one of the stack's processes with `signal` (`-TERM`, or `-KILL` for a crash),
    /// waits until it is gone, waits `down_for`, and starts it again as `stack.sh up` did
    /// (`mosquitto`, `bridge` or `runner`; its log appended, its pid file updated so `down`
    /// still stops it). For Mosquitto, returns when its token listener is back.
    pub fn restart(&self, name: &str, signal: &str, down_for: Duration) -> Result<(), Error> {
        let pid = self.pid(name)?;
        self.signal(name, signal)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            if Instant::now() > deadline {
                return Err(Error::Stack(format!(
                    "{name} {pid} did not stop on {signal}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(down_for);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join(format!("logs/{name}.log")))?;
        let bin = |b: &str| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("debug")
                .join(b)
        };
        let mut cmd = match name {
            "mosquitto" => {
                let mut c = std::process::Command::new("mosquitto");
                c.arg("-c").arg(self.dir.join("mosquitto/mosquitto.conf"));
                c
            }
            "bridge" => std::process::Command::new(bin("rules-bridge")),
            "runner" => std::process::Command::new(bin("local-runner")),
            other => return Err(Error::Stack(format!("cannot restart {other}"))),
        };
        if name != "mosquitto" {
            cmd.envs(&self.env).env("RUST_LOG", "warn");
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        std::fs::write(
            self.dir.join(format!("pids/{name}.pid")),
            child.id().to_string(),
        )?;
        if name == "mosquitto" {
            let port = self.mqtt_port();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err(Error::Stack(
                        "mosquitto did not come back within 10 s".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// As [`Stack::restart`] for Mosquitto.
    pub fn restart_broker(&self, signal: &str, down_for: Duration) -> Result<(), Error> {
        self.restart("mosquitto", signal, down_for)
    }

    /// Sends one system notice per ID into the downlink queue: see [`send_notices`]; spawned,
    /// so it goes on while the caller restarts parts of the stack.
    pub async fn spawn_notices(
        &self,
        ids: Vec<String>,
        batches_per_second: u32,
    ) -> tokio::task::JoinHandle<usize> {
        let sqs = self.sqs().await;
        let queue = self.var("DOWNLINK_QUEUE_URL").to_owned();
        tokio::spawn(async move { send_notices(&sqs, &queue, &ids, batches_per_second).await })
    }

    /// A backend subscriber to `topic` (QoS 1, persistent session, reconnecting by itself
    /// after the broker restarts) that records the `key` field (`msgId` for notices, `msg`
    /// for a chat's text) of each JSON message it receives, with when it arrived.
    pub async fn observer(
        &self,
        client_id: &str,
        topic: &str,
        key: &'static str,
    ) -> Result<Observer, Error> {
        let endpoint = self.endpoint_for(&self.backend())?;
        let mut mo = MqttOptions::new(client_id, "127.0.0.1", endpoint.port);
        if let Some(tls) = &endpoint.tls {
            mo.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.config()),
            ));
        }
        mo.set_clean_session(false);
        mo.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(mo, 10_000);
        let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                        if let Some(id) = json.get(key).and_then(Value::as_str)
                            && let Ok(mut s) = record.lock()
                        {
                            s.push((id.to_owned(), Instant::now()));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .map_err(|e| Error::Mqtt(e.to_string()))?;
        Ok(Observer { client, seen })
    }

    /// Attaches to a stack someone else started (`make up`); not stopped on drop.
    pub fn attach(dir: &Path) -> Result<Self, Error> {
        let env = read_env(&dir.join("stack.env"))?;
        Ok(Self {
            dir: dir.to_owned(),
            env,
            owned: false,
        })
    }

    /// A variable of the env file ("" when absent).
    pub fn var(&self, key: &str) -> &str {
        self.env.get(key).map_or("", String::as_str)
    }

    /// The broker's token listener (TLS; classroom clients sign in with a token).
    pub fn mqtt_port(&self) -> u16 {
        self.var("MQTT_PORT").parse().unwrap_or(0)
    }

    /// The stack's TLS files (`MQTT_CA_FILE`, ...) as one TLS client configuration: the
    /// stack's CA as the only root, and the backend's client certificate when `backend`.
    fn tls(&self, backend: bool) -> Result<kit::ClientTls, Error> {
        let read = |key: &str| {
            std::fs::read_to_string(self.var(key))
                .map_err(|e| Error::Stack(format!("{key}={}: {e}", self.var(key))))
        };
        let settings = kit::TlsSettings {
            ca_pem: Some(read("MQTT_CA_FILE")?),
            cert_pem: backend.then(|| read("MQTT_CERT_FILE")).transpose()?,
            key_pem: backend.then(|| read("MQTT_KEY_FILE")).transpose()?,
        };
        settings
            .build()
            .map_err(|e| Error::Stack(format!("the stack's TLS files: {e}")))
    }

    /// Where a client signing in with `opts` connects: the certificate listener
    /// (`MQTT_CERT_PORT`, the backend's client certificate) when `opts.certificate`, else the
    /// token listener (`MQTT_PORT`); both TLS, trusting the stack's CA.
    pub fn endpoint_for(&self, opts: &ConnectOptions) -> Result<Endpoint, Error> {
        let key = if opts.certificate {
            "MQTT_CERT_PORT"
        } else {
            "MQTT_PORT"
        };
        Ok(Endpoint {
            port: self.var(key).parse().unwrap_or(0),
            tls: Some(self.tls(opts.certificate)?),
        })
    }

    /// A TLS connection to the listener on `port` (trusting the stack's CA, no client
    /// certificate), for tests that write raw MQTT or WebSocket bytes.
    pub async fn tls_stream(
        &self,
        port: u16,
    ) -> Result<rumqttc::tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Error> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let connector = rumqttc::tokio_rustls::TlsConnector::from(self.tls(false)?.config());
        let name = rumqttc::tokio_rustls::rustls::pki_types::ServerName::try_from("127.0.0.1")
            .map_err(|e| Error::Mqtt(e.to_string()))?;
        Ok(connector.connect(name, tcp).await?)
    }

    /// SDK configuration pointed at this stack's moto.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        // The project's HTTPS client (rustls with ring): the SDK's default one is not built.
        let client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(client)
            .endpoint_url(self.var("AWS_ENDPOINT_URL"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "e2e",
            ))
            .load()
            .await
    }

    /// An SQS client for this stack.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk().await)
    }

    /// A DynamoDB client for this stack.
    pub async fn ddb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk().await)
    }

    /// Messages visible + in flight in a queue (by env key, e.g. `UPLINK_DLQ_URL`).
    pub async fn queue_depth(&self, sqs: &aws_sdk_sqs::Client, key: &str) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let Ok(out) = sqs
            .get_queue_attributes()
            .queue_url(self.var(key))
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
        else {
            return usize::MAX;
        };
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible)
    }

    /// Sends a downlink message (§4.3) straight into the downlink queue, as any backend or
    /// the admin CLI does.
    pub async fn send_downlink(
        &self,
        sqs: &aws_sdk_sqs::Client,
        subtopic: &str,
        body: &Value,
    ) -> Result<(), Error> {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let attr = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(subtopic)
            .build()
            .map_err(|e| Error::Stack(e.to_string()))?;
        sqs.send_message()
            .queue_url(self.var("DOWNLINK_QUEUE_URL"))
            .message_body(body.to_string())
            .message_attributes("mqttSecondTopic", attr)
            .send()
            .await
            .map_err(|e| Error::Stack(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    /// Runs the admin CLI (`classroom <args>`, built in the debug directory) with this stack's
    /// environment; its stdout, or its stderr as the error.
    pub async fn classroom(&self, args: &[&str]) -> Result<String, Error> {
        let out = tokio::process::Command::new(debug_dir().join("classroom"))
            .args(args)
            .envs(&self.env)
            .output()
            .await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Stack(format!(
                "classroom {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Sends a system notice the way an operator does: `classroom notify <text>` (the admin
    /// CLI, run with this stack's environment). Falls back to a direct downlink-queue send when
    /// the CLI is not built; returns how it was sent.
    pub async fn notify(
        &self,
        sqs: &aws_sdk_sqs::Client,
        text: &str,
    ) -> Result<&'static str, Error> {
        let cli = debug_dir().join("classroom");
        if cli.exists() {
            let out = tokio::process::Command::new(&cli)
                .arg("notify")
                .arg(text)
                .envs(&self.env)
                .output()
                .await?;
            if !out.status.success() {
                return Err(Error::Stack(format!(
                    "classroom notify failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            Ok("classroom notify (admin CLI)")
        } else {
            self.send_downlink(
                sqs,
                "/system",
                &serde_json::json!({"type": "system", "msg": text}),
            )
            .await?;
            Ok("a direct downlink-queue send")
        }
    }

    fn script(&self, args: &[&str], envs: &[(&str, &str)]) -> Result<String, Error> {
        let out = std::process::Command::new(repo_root().join("infra/local/stack.sh"))
            .args(args)
            .env("STACK_DIR", &self.dir)
            .envs(envs.iter().copied())
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Stack(format!(
                "stack.sh {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// The rooms the school directory lists for `id` (`stack.sh directory`), empty when it is
    /// not in the directory.
    pub fn directory_rooms(&self, id: &str) -> Vec<String> {
        let path = self.dir.join("school/directory");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(id)).then(|| f.nth(1).unwrap_or(""))
            })
            .flat_map(|rooms| rooms.split(','))
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A classroom token for `id` in `rooms` (the directory's rooms when empty), lasting
    /// `lifetime_secs`, from the local issuer (`POST $TOKEN_API_URL/tokens/classroom`, which
    /// also enrolls `id` in those rooms).
    pub fn issue(&self, id: &str, rooms: &[&str], lifetime_secs: u64) -> Result<Token, Error> {
        let mut rooms: Vec<String> = rooms.iter().map(|r| (*r).to_owned()).collect();
        if rooms.is_empty() {
            rooms = self.directory_rooms(id);
        }
        if rooms.is_empty() {
            return Err(Error::Api(format!(
                "{id} is not in the directory: name its rooms"
            )));
        }
        let body = serde_json::json!({"clientId": id, "rooms": rooms, "expiresIn": lifetime_secs});
        self.issued(&http::post(
            self.var("TOKEN_API_URL"),
            "/tokens/classroom",
            &body,
        )?)
    }

    /// A token for `id` with arbitrary read and write filters (`POST $TOKEN_API_URL/tokens`).
    pub fn issue_filters(
        &self,
        id: &str,
        read: &[&str],
        write: &[&str],
        lifetime_secs: u64,
    ) -> Result<Token, Error> {
        let body = serde_json::json!({"clientId": id, "read": read, "write": write, "expiresIn": lifetime_secs});
        self.issued(&http::post(self.var("TOKEN_API_URL"), "/tokens", &body)?)
    }

    fn issued(&self, answer: &http::Response) -> Result<Token, Error> {
        let field = |k: &str| {
            answer
                .json
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match (answer.status, field("token"), field("tokenId")) {
            (201, Some(token), Some(token_id)) => Ok(Token {
                token,
                token_id,
                expires_at: answer.json["expiresAt"].as_u64().unwrap_or(0),
            }),
            _ => Err(Error::Api(format!(
                "the issuer answered {}: {}",
                answer.status, answer.json
            ))),
        }
    }

    /// A token the way a person gets one: `stack.sh token <id> [room...]` with
    /// `TOKEN_LIFETIME` set when `lifetime_secs` is given (the token alone on stdout).
    pub fn token_cli(
        &self,
        id: &str,
        rooms: &[&str],
        lifetime_secs: Option<u64>,
    ) -> Result<String, Error> {
        let lifetime = lifetime_secs.map(|s| s.to_string());
        let envs: Vec<(&str, &str)> = lifetime
            .as_deref()
            .map(|l| ("TOKEN_LIFETIME", l))
            .into_iter()
            .collect();
        let mut args = vec!["token", id];
        args.extend_from_slice(rooms);
        let out = self.script(&args, &envs)?;
        let token = out.trim();
        if token.starts_with("ct1.") && !token.contains(char::is_whitespace) {
            Ok(token.to_owned())
        } else {
            Err(Error::Stack(format!("stack.sh token printed {out:?}")))
        }
    }

    /// Revokes one token (`POST $TOKEN_API_URL/tokens/<tokenId>/revoke`).
    pub fn revoke_token(&self, token_id: &str) -> Result<Value, Error> {
        let path = format!("/tokens/{}/revoke", http::encode(token_id));
        ok(http::post(self.var("TOKEN_API_URL"), &path, &Value::Null)?)
    }

    /// Revokes every token of `id` issued so far (`POST $TOKEN_API_URL/clients/<id>/revoke`).
    pub fn revoke_client(&self, id: &str) -> Result<Value, Error> {
        let path = format!("/clients/{}/revoke", http::encode(id));
        ok(http::post(self.var("TOKEN_API_URL"), &path, &Value::Null)?)
    }

    /// What the presence query says of `id` (`GET $PRESENCE_API_URL/presence/<id>`).
    pub fn presence(&self, id: &str) -> Result<Value, Error> {
        let path = format!("/presence/{}", http::encode(id));
        ok(http::get(self.var("PRESENCE_API_URL"), &path)?)
    }

    /// The current signing key ID (`current` of `$STACK_DIR/signin/keys.json`).
    pub fn current_kid(&self) -> Result<String, Error> {
        let text = std::fs::read_to_string(self.dir.join("signin/keys.json"))?;
        let keys: Value = serde_json::from_str(&text).map_err(|e| Error::Stack(e.to_string()))?;
        keys["current"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Stack("keys.json has no current key".into()))
    }

    /// `stack.sh rotate-keys`: a new current signing key; returns its key ID.
    pub fn rotate_keys(&self) -> Result<String, Error> {
        self.script(&["rotate-keys"], &[])?;
        self.current_kid()
    }

    /// `stack.sh retire-key <kid>`: tokens signed with it are refused from their next CONNECT.
    pub fn retire_key(&self, kid: &str) -> Result<(), Error> {
        self.script(&["retire-key", kid], &[]).map(|_| ())
    }

    /// How the classroom client `id` signs in (§8): its client ID as username and a fresh
    /// one-hour classroom token for `rooms` (the directory's when empty) as password.
    /// `persistent` asks for cleanSession=false.
    pub fn client(
        &self,
        id: &str,
        rooms: &[&str],
        persistent: bool,
    ) -> Result<ConnectOptions, Error> {
        let token = self.issue(id, rooms, 3600)?;
        Ok(ConnectOptions::token(id, &token.token, persistent))
    }

    /// The backend identity (may publish under `room/` and read the rules topics): the
    /// stack's client certificate (CN `backend`) on the certificate listener, no password.
    pub fn backend(&self) -> ConnectOptions {
        ConnectOptions {
            persistent: false,
            credentials: None,
            certificate: true,
        }
    }

    /// Connects the classroom client `id` with a fresh token for `rooms` (the directory's when
    /// empty).
    pub async fn peer(
        &self,
        name: &str,
        id: &str,
        rooms: &[&str],
        persistent: bool,
        log: &Transcript,
    ) -> Result<Peer, Error> {
        let opts = self.client(id, rooms, persistent)?;
        Peer::connect(&self.endpoint_for(&opts)?, name, id, opts, log).await
    }

    /// Stops the stack now.
    pub fn down(&mut self) {
        if self.owned {
            let _ = std::process::Command::new(repo_root().join("infra/local/stack.sh"))
                .arg("down")
                .env("STACK_DIR", &self.dir)
                .output();
            self.owned = false;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.down();
    }
}

fn ok(answer: http::Response) -> Result<Value, Error> {
    if (200..300).contains(&answer.status) {
        Ok(answer.json)
    } else {
        Err(Error::Api(format!(
            "answered {}: {}",
            answer.status, answer.json
        )))
    }
}

/// Sends one system notice per ID into the downlink queue `queue` (`/system`, body
/// `{"type":"system","msgId":<id>,...}`), 10 per `SendMessageBatch`, `batches_per_second`
/// batches a second; returns how many SQS refused (printed, not retried).
pub async fn send_notices(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    ids: &[String],
    batches_per_second: u32,
) -> usize {
    let sender = kit::SqsSender::new(sqs.clone());
    let pause = Duration::from_millis(1000 / u64::from(batches_per_second.max(1)));
    let mut refused = 0;
    for chunk in ids.chunks(10) {
        let batch: Vec<kit::OutgoingMessage> = chunk
            .iter()
            .map(|id| kit::OutgoingMessage {
                body: serde_json::json!({"type": "system", "msgId": id, "text": "notice"})
                    .to_string(),
                attributes: vec![("mqttSecondTopic".into(), "/system".to_owned())],
            })
            .collect();
        for r in sender.send_all(queue, &batch).await {
            if let Err(e) = r {
                eprintln!("send failed: {e}");
                refused += 1;
            }
        }
        tokio::time::sleep(pause).await;
    }
    refused
}

/// What [`Stack::observer`] received.
pub struct Observer {
    /// Its client (kept so the connection lives).
    pub client: AsyncClient,
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
}

/// An observer's count of a set of messages.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Distinct wanted IDs received.
    pub delivered: usize,
    /// Receipts beyond the first of a wanted ID.
    pub duplicates: usize,
    /// When the last wanted one arrived.
    pub last: Option<Instant>,
}

impl Observer {
    /// The count of `wanted` so far.
    pub fn tally(&self, wanted: &std::collections::HashSet<String>) -> Tally {
        let Ok(seen) = self.seen.lock() else {
            return Tally {
                delivered: 0,
                duplicates: 0,
                last: None,
            };
        };
        let mine: Vec<&(String, Instant)> =
            seen.iter().filter(|(id, _)| wanted.contains(id)).collect();
        let distinct: std::collections::HashSet<&str> =
            mine.iter().map(|(id, _)| id.as_str()).collect();
        Tally {
            delivered: distinct.len(),
            duplicates: mine.len() - distinct.len(),
            last: mine.iter().map(|(_, at)| *at).max(),
        }
    }

    /// Every key received so far, in arrival order (repeats included).
    pub fn received(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| s.iter().map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }

    /// Waits until every one of `wanted` arrived or `timeout` passed; then the count.
    pub async fn wait_for(
        &self,
        wanted: &std::collections::HashSet<String>,
        timeout: Duration,
    ) -> Tally {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.tally(wanted);
            if t.delivered == wanted.len() || Instant::now() > deadline {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A token the local issuer handed out.
#[derive(Clone)]
pub struct Token {
    /// The token (`ct1.<kid>.<claims>.<sig>`): the MQTT password.
    pub token: String,
    /// Its ID (`jti`), for revocation.
    pub token_id: String,
    /// When it expires, seconds since the epoch.
    pub expires_at: u64,
}

impl Token {
    /// The key ID it was signed with (its second dot-separated part).
    pub fn kid(&self) -> &str {
        kid(&self.token)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kid", &self.kid())
            .field("token_id", &self.token_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The key ID part of a token (`ct1.<kid>.<claims>.<sig>`; "" when it has none).
pub fn kid(token: &str) -> &str {
    token.split('.').nth(1).unwrap_or("")
}

/// A minimal HTTP/1.1 client for the local APIs on loopback (`http://host:port` base URLs,
/// JSON bodies, one connection per request). The harness needs no more than this, and the
/// crate no HTTP dependency.
pub mod http {
    use std::io::{Read as _, Write as _};
    use std::time::Duration;

    use serde_json::Value;

    use crate::Error;

    /// A response: its status and its body as JSON (a JSON string when it is not JSON).
    #[derive(Debug, Clone)]
    pub struct Response {
        /// The HTTP status.
        pub status: u16,
        /// The body.
        pub json: Value,
    }

    /// Percent-encodes a path segment (everything but unreserved characters).
    pub fn encode(segment: &str) -> String {
        segment
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// `POST <base><path>` with a JSON body (none when `Null`).
    pub fn post(base: &str, path: &str, body: &Value) -> Result<Response, Error> {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        request("POST", base, path, &text)
    }

    /// `GET <base><path>`.
    pub fn get(base: &str, path: &str) -> Result<Response, Error> {
        request("GET", base, path, "")
    }

    fn request(method: &str, base: &str, path: &str, body: &str) -> Result<Response, Error> {
        let addr = base
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| Error::Api(format!("not an http://host:port URL: {base:?}")))?;
        let mut sock = std::net::TcpStream::connect(addr)
            .map_err(|e| Error::Api(format!("{method} {base}{path}: {e}")))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            sock,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = Vec::new();
        sock.read_to_end(&mut raw)?;
        parse(&raw).ok_or_else(|| {
            Error::Api(format!(
                "{method} {base}{path}: not an HTTP response: {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })
    }

    /// Parses a whole HTTP/1.1 response (status line, headers, body with Content-Length,
    /// chunked or up to the end).
    pub fn parse(raw: &[u8]) -> Option<Response> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let rest = &raw[split + 4..];
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let header = |name: &str| {
            head.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            dechunk(rest)?
        } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            rest.get(..n)?.to_vec()
        } else {
            rest.to_vec()
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Some(Response { status, json })
    }

    fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[..line_end]);
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some(out);
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_response_with_a_content_length_is_cut_at_that_length() {
            let a =
                parse(b"HTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{\"a\":\"b\"}  extra");
            assert_eq!(
                a.map(|a| (a.status, a.json)),
                Some((201, serde_json::json!({"a": "b"})))
            );
        }

        #[test]
        fn a_chunked_response_is_reassembled() {
            let a = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n6\r\n:true}\r\n0\r\n\r\n");
            assert_eq!(a.map(|a| a.json), Some(serde_json::json!({"a": true})));
        }

        #[test]
        fn a_body_that_is_not_json_is_kept_as_text_and_garbage_is_no_response() {
            let a = parse(b"HTTP/1.1 404 Not Found\r\n\r\nnope");
            assert_eq!(
                a.map(|a| (a.status, a.json)),
                Some((404, Value::String("nope".into())))
            );
            assert!(parse(b"garbage").is_none());
        }

        #[test]
        fn client_ids_are_percent_encoded_in_paths() {
            assert_eq!(encode("GID_student@@@001"), "GID_student%40%40%40001");
        }
    }
}

/// Who did and saw what, when.
#[derive(Debug, Clone)]
pub struct Transcript {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
    live: bool,
}

impl Transcript {
    /// A transcript; `live` prints each line as it happens.
    pub fn new(live: bool) -> Self {
        Self {
            start: Instant::now(),
            lines: Arc::new(Mutex::new(Vec::new())),
            live,
        }
    }

    /// Adds a line for `who`.
    pub fn note(&self, who: &str, what: &str) {
        let line = format!(
            "{:>8.3}s  {who:<10} {what}",
            self.start.elapsed().as_secs_f64()
        );
        if self.live {
            println!("{line}");
        }
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// One message a peer received.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Its topic.
    pub topic: String,
    /// Its payload as text.
    pub raw: String,
    /// Its payload as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Msg {
    /// A string field of the JSON payload ("" when absent).
    pub fn field(&self, key: &str) -> &str {
        self.json.get(key).and_then(Value::as_str).unwrap_or("")
    }
}

/// A real MQTT client in the classroom.
#[derive(Debug)]
pub struct Peer {
    /// Short name for the transcript ("teacher", "A", "B").
    pub name: String,
    /// Its MQTT client ID.
    pub id: String,
    client: AsyncClient,
    task: JoinHandle<()>,
    rx: mpsc::UnboundedReceiver<Msg>,
    backlog: Vec<Msg>,
    subacks: watch::Receiver<Vec<Vec<SubscribeReasonCode>>>,
    pubacks: watch::Receiver<usize>,
    closed: watch::Receiver<Option<String>>,
    leaving: Arc<std::sync::atomic::AtomicBool>,
    log: Transcript,
}

/// How a peer connects.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// cleanSession=false keeps the session (and queued QoS 1 messages) across connections.
    pub persistent: bool,
    /// Username and password ([`Stack::client`]); anonymous when `None` (which the local
    /// broker refuses, unless `certificate`).
    pub credentials: Option<(String, String)>,
    /// Sign in with the stack's backend client certificate on the certificate listener
    /// ([`Stack::backend`]).
    pub certificate: bool,
}

/// A broker listener on 127.0.0.1 and how to speak to it ([`Stack::endpoint_for`]).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The port.
    pub port: u16,
    /// TLS (roots, and a client certificate when the listener wants one); plain when `None`.
    pub tls: Option<kit::ClientTls>,
}

impl ConnectOptions {
    /// A classroom sign-in: username `id`, password `token`.
    pub fn token(id: &str, token: &str, persistent: bool) -> Self {
        Self {
            persistent,
            credentials: Some((id.to_owned(), token.to_owned())),
            certificate: false,
        }
    }

    /// How it signs in, for the transcript (never the password itself).
    pub fn describe(&self) -> String {
        match &self.credentials {
            Some((_, pw)) if pw.starts_with("ct1.") => format!("a token, key {}", kid(pw)),
            Some((user, _)) => format!("user {user} and its password"),
            None if self.certificate => "the backend's client certificate".to_owned(),
            None => "anonymous".to_owned(),
        }
    }
}

impl Peer {
    /// Connects `id` to the broker at `endpoint` and waits for the CONNACK.
    pub async fn connect(
        endpoint: &Endpoint,
        name: &str,
        id: &str,
        opts: ConnectOptions,
        log: &Transcript,
    ) -> Result<Self, Error> {
        let mut mo = MqttOptions::new(id, "127.0.0.1", endpoint.port);
        if let Some(tls) = &endpoint.tls {
            mo.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.config()),
            ));
        }
        mo.set_clean_session(!opts.persistent);
        mo.set_keep_alive(Duration::from_secs(10));
        // rumqttc's default is 10 KiB; the broker's limit is IoT Core's 128 KB.
        mo.set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some((u, p)) = &opts.credentials {
            mo.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(mo, 1000);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel::<Result<(), String>>();
        let (sub_tx, subacks) = watch::channel(Vec::new());
        let (puback_tx, pubacks) = watch::channel(0usize);
        let (closed_tx, closed) = watch::channel(None);
        let leaving = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let left = Arc::clone(&leaving);
        let who = name.to_owned();
        let tlog = log.clone();
        let task = tokio::spawn(async move {
            let mut ack_tx = Some(ack_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => {
                        if let Some(t) = ack_tx.take() {
                            let _ = t.send(if a.code == ConnectReturnCode::Success {
                                Ok(())
                            } else {
                                Err(format!("{:?}", a.code))
                            });
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        sub_tx.send_modify(|v| v.push(s.return_codes.clone()));
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        puback_tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let raw = String::from_utf8_lossy(&p.payload).into_owned();
                        let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
                        tlog.note(&who, &format!("<- {} {raw}", p.topic));
                        let _ = tx.send(Msg {
                            topic: p.topic.clone(),
                            raw,
                            json,
                            at: Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(t) = ack_tx.take() {
                            let _ = t.send(Err(e.to_string()));
                        } else if !left.load(std::sync::atomic::Ordering::Relaxed) {
                            tlog.note(&who, &format!("connection closed: {e}"));
                        }
                        let _ = closed_tx.send(Some(e.to_string()));
                        // A peer never reconnects by itself: tests decide when it comes back.
                        break;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), ack_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(Error::Mqtt(format!("{id} refused: {e}"))),
            _ => return Err(Error::Mqtt(format!("{id}: no CONNACK"))),
        }
        log.note(
            name,
            &format!(
                "connected as {id} ({}){}",
                opts.describe(),
                if opts.persistent {
                    ", cleanSession=false"
                } else {
                    ""
                }
            ),
        );
        Ok(Self {
            name: name.to_owned(),
            id: id.to_owned(),
            client,
            task,
            rx,
            backlog: Vec::new(),
            subacks,
            pubacks,
            closed,
            leaving,
            log: log.clone(),
        })
    }

    /// Subscribes at QoS 1 to each filter (one SUBSCRIBE each) and waits for the SUBACKs;
    /// returns their return codes in order (`Failure`, 0x80, for a filter the broker refused).
    pub async fn subscribe(&mut self, filters: &[&str]) -> Result<Vec<SubscribeReasonCode>, Error> {
        let before = self.subacks.borrow().len();
        for f in filters {
            self.client
                .subscribe(*f, QoS::AtLeastOnce)
                .await
                .map_err(|e| Error::Mqtt(e.to_string()))?;
        }
        let want = before + filters.len();
        let acks = tokio::time::timeout(
            Duration::from_secs(5),
            self.subacks.wait_for(|v| v.len() >= want),
        )
        .await
        .map_err(|_| Error::Mqtt(format!("{}: no SUBACK", self.id)))?
        .map_err(|_| Error::Mqtt(format!("{}: connection closed", self.id)))?;
        // One connection's SUBSCRIBEs are answered in order.
        let codes: Vec<SubscribeReasonCode> =
            acks[before..want].iter().flatten().copied().collect();
        drop(acks);
        let refused = refused(filters, &codes);
        if !refused.is_empty() {
            self.log.note(
                &self.name,
                &format!("SUBACK refused {}", refused.join(", ")),
            );
        }
        Ok(codes)
    }

    /// Subscribes like [`Peer::subscribe`] and fails unless every filter was granted.
    pub async fn subscribe_granted(&mut self, filters: &[&str]) -> Result<(), Error> {
        let codes = self.subscribe(filters).await?;
        let refused = refused(filters, &codes);
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Error::Mqtt(format!(
                "{}: the SUBACK refused {}",
                self.id,
                refused.join(", ")
            )))
        }
    }

    /// Subscribes to what a classroom client reads in `room`: chat, status, system, own P2P.
    pub async fn subscribe_classroom(&mut self, room: &str) -> Result<(), Error> {
        let p2p = format!("room/p2p/{}", self.id);
        let msg = format!("room/message/{room}");
        let status = format!("room/status/{room}");
        self.subscribe_granted(&[&msg, &status, "room/system", &p2p])
            .await
    }

    /// PUBACKs received so far.
    pub fn pubacks(&self) -> usize {
        *self.pubacks.borrow()
    }

    /// Waits up to `timeout` until at least `n` PUBACKs arrived.
    pub async fn pubacks_at_least(&mut self, n: usize, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.pubacks.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the connection is still open (the broker has not closed it).
    pub fn is_connected(&self) -> bool {
        self.closed.borrow().is_none()
    }

    /// Waits up to `timeout` for the broker to close the connection; returns the error the
    /// client saw, `None` when it stayed open.
    pub async fn closed_within(&mut self, timeout: Duration) -> Option<String> {
        tokio::time::timeout(timeout, self.closed.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.clone()))
    }

    /// Publishes JSON at QoS 1 (queued: the event loop sends it).
    pub async fn publish(&self, topic: &str, body: &Value) -> Result<(), Error> {
        self.log.note(&self.name, &format!("-> {topic} {body}"));
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.to_string())
            .await
            .map_err(|e| Error::Mqtt(e.to_string()))
    }

    /// Publishes a chat message to room `room`; returns its msgId.
    pub async fn chat(&self, room: &str, text: &str) -> Result<String, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish(
            "roomSend/message",
            &serde_json::json!({"roomId": room, "msg": text, "msgId": id}),
        )
        .await?;
        Ok(id)
    }

    /// Sends a command (`join`, `mute`, ...).
    pub async fn command(&self, body: &Value) -> Result<(), Error> {
        self.publish("roomSend/command", body).await
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.backlog.push(m);
        }
    }

    /// Waits up to `timeout` for a message matching `pred` (taking it out of the backlog).
    pub async fn expect(&mut self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        self.drain();
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Some(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) if pred(&m) => return Some(m),
                Ok(Some(m)) => self.backlog.push(m),
                _ => return None,
            }
        }
    }

    /// Watches for `timeout`: returns the first message matching `pred`, `None` if none came.
    pub async fn quiet(&mut self, timeout: Duration, pred: impl Fn(&Msg) -> bool) -> Option<Msg> {
        self.expect(timeout, pred).await
    }

    /// Everything received and not yet taken by `expect`.
    pub fn received(&mut self) -> Vec<Msg> {
        self.drain();
        self.backlog.clone()
    }

    /// The message channel, for the benchmark's receiver loop.
    pub fn take_receiver(&mut self) -> mpsc::UnboundedReceiver<Msg> {
        let (_tx, rx) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.rx, rx)
    }

    /// Closes the connection without DISCONNECT (as a killed app or a lost network would).
    pub fn kill(self) {
        self.log.note(
            &self.name,
            "connection killed (socket closed, no DISCONNECT)",
        );
        self.task.abort();
    }

    /// Sends DISCONNECT and waits for the connection to close.
    pub async fn leave(self) {
        self.log.note(&self.name, "disconnects cleanly");
        self.leaving
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// Waits until `probe` returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `room` has at least `n` members in the membership table.
pub async fn members_at_least(
    stack: &Stack,
    ddb: &aws_sdk_dynamodb::Client,
    room: &str,
    n: usize,
    timeout: Duration,
) -> bool {
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = stack.var("MEMBERSHIP_TABLE").to_owned();
    eventually(timeout, || {
        let q = ddb
            .query()
            .table_name(&table)
            .key_condition_expression("roomId = :r")
            .expression_attribute_values(":r", AttributeValue::S(room.to_owned()))
            .send();
        async move { q.await.map(|o| o.items().len() >= n).unwrap_or(false) }
    })
    .await
}

/// The client IDs the membership table lists in `room` now.
pub async fn members(stack: &Stack, ddb: &aws_sdk_dynamodb::Client, room: &str) -> Vec<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = ddb
        .query()
        .table_name(stack.var("MEMBERSHIP_TABLE"))
        .key_condition_expression("roomId = :r")
        .expression_attribute_values(":r", AttributeValue::S(room.to_owned()))
        .send()
        .await;
    out.map(|o| {
        o.items()
            .iter()
            .filter_map(|i| i.get("clientId").and_then(|v| v.as_s().ok()).cloned())
            .collect()
    })
    .unwrap_or_default()
}

/// A raw MQTT 3.1.1 CONNECT packet: clean session, `keep_alive` seconds, with a username and a
/// password (for tests and the connect benchmark, which time or shape the bytes themselves).
pub fn connect_packet(client_id: &str, username: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    let field = |v: &str| {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        let mut f = len.to_be_bytes().to_vec();
        f.extend_from_slice(&v.as_bytes()[..usize::from(len)]);
        f
    };
    // Protocol name, level 4, flags: username + password + clean session, keep-alive.
    let mut rest = field("MQTT");
    rest.extend([4, 0xC2]);
    rest.extend(keep_alive.to_be_bytes());
    for v in [client_id, username, password] {
        rest.extend(field(v));
    }
    let mut packet = vec![0x10];
    let mut len = rest.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend(rest);
    packet
}

/// The filters of a SUBSCRIBE whose SUBACK code is a refusal.
fn refused<'f>(filters: &[&'f str], codes: &[SubscribeReasonCode]) -> Vec<&'f str> {
    filters
        .iter()
        .zip(codes)
        .filter(|(_, c)| matches!(c, SubscribeReasonCode::Failure))
        .map(|(f, _)| *f)
        .collect()
}
