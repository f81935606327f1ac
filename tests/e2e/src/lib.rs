//! End-to-end harness for the classroom over the real local stack (SPEC §7): Mosquitto with
//! the broker plugin and the ACL, moto, the rules bridge and the local runner feeding the
//! functions, all started by `infra/local/stack.sh` on free loopback ports.
//!
//! # Layout
//! - [`Stack`]: start (or attach to) a stack, its env file, SDK clients pointed at its moto.
//! - [`Peer`]: one real MQTT client (teacher or student) that records what it receives, with
//!   `expect` / `quiet` to assert on it.
//! - [`Transcript`]: who did and saw what, when (printed live by the demo).
//! - [`scenarios`]: the seeds' classroom, one outcome per scenario.
//! - binaries: `demo` (the seeds' classroom, one pass/fail line per scenario) and
//!   `bench-e2e` (publish -> delivery latency and the highest rate with 0 loss).

pub mod scenarios;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// The broker's plain MQTT port.
    pub fn mqtt_port(&self) -> u16 {
        self.var("MQTT_PORT").parse().unwrap_or(0)
    }

    /// SDK configuration pointed at this stack's moto.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
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

    /// How the classroom client `id` signs in: its client ID as username and its password from
    /// the stack's roster (`stack.sh add-client`, which adds the ID when it is new and keeps the
    /// password when it is not). `persistent` asks for cleanSession=false.
    pub fn client(&self, id: &str, persistent: bool) -> Result<ConnectOptions, Error> {
        let out = std::process::Command::new(repo_root().join("infra/local/stack.sh"))
            .args(["add-client", id])
            .env("STACK_DIR", &self.dir)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let password = text
            .lines()
            .find_map(|l| l.strip_prefix(id)?.strip_prefix(' '))
            .filter(|_| out.status.success());
        match password {
            Some(pw) => Ok(ConnectOptions {
                persistent,
                credentials: Some((id.to_owned(), pw.trim().to_owned())),
            }),
            None => Err(Error::Stack(format!(
                "stack.sh add-client {id} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))),
        }
    }

    /// The backend identity (may publish under `room/` and read the rules topics).
    pub fn backend(&self) -> ConnectOptions {
        ConnectOptions {
            persistent: false,
            credentials: Some((
                self.var("MQTT_USERNAME").to_owned(),
                self.var("MQTT_PASSWORD").to_owned(),
            )),
        }
    }

    /// Connects the classroom client `id` with its roster credentials.
    pub async fn peer(
        &self,
        name: &str,
        id: &str,
        persistent: bool,
        log: &Transcript,
    ) -> Result<Peer, Error> {
        let opts = self.client(id, persistent)?;
        Peer::connect(self.mqtt_port(), name, id, opts, log).await
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
    subacks: watch::Receiver<Vec<Vec<rumqttc::SubscribeReasonCode>>>,
    log: Transcript,
}

/// How a peer connects.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// cleanSession=false keeps the session (and queued QoS 1 messages) across connections.
    pub persistent: bool,
    /// Username and password ([`Stack::client`], [`Stack::backend`]); anonymous when `None`
    /// (which the local broker refuses).
    pub credentials: Option<(String, String)>,
}

impl Peer {
    /// Connects `id` to the broker on `port` and waits for the CONNACK.
    pub async fn connect(
        port: u16,
        name: &str,
        id: &str,
        opts: ConnectOptions,
        log: &Transcript,
    ) -> Result<Self, Error> {
        let mut mo = MqttOptions::new(id, "127.0.0.1", port);
        mo.set_clean_session(!opts.persistent);
        mo.set_keep_alive(Duration::from_secs(10));
        if let Some((u, p)) = &opts.credentials {
            mo.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(mo, 1000);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel::<Result<(), String>>();
        let (sub_tx, subacks) = watch::channel(Vec::new());
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
                        }
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
                "connected as {id}{}{}",
                match &opts.credentials {
                    Some((user, _)) if user == id => " (its roster password)",
                    Some(_) => " (backend credentials)",
                    None => " (anonymous)",
                },
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
            log: log.clone(),
        })
    }

    /// Subscribes at QoS 1 and waits for the SUBACK.
    pub async fn subscribe(&mut self, filters: &[&str]) -> Result<(), Error> {
        let before = self.subacks.borrow().len();
        for f in filters {
            self.client
                .subscribe(*f, QoS::AtLeastOnce)
                .await
                .map_err(|e| Error::Mqtt(e.to_string()))?;
        }
        let want = before + filters.len();
        tokio::time::timeout(
            Duration::from_secs(5),
            self.subacks.wait_for(|v| v.len() >= want),
        )
        .await
        .map_err(|_| Error::Mqtt(format!("{}: no SUBACK", self.id)))?
        .map_err(|_| Error::Mqtt(format!("{}: connection closed", self.id)))?;
        Ok(())
    }

    /// Subscribes to what a classroom client reads in `room`: chat, status, system, own P2P.
    pub async fn subscribe_classroom(&mut self, room: &str) -> Result<(), Error> {
        let p2p = format!("room/p2p/{}", self.id);
        let msg = format!("room/message/{room}");
        let status = format!("room/status/{room}");
        self.subscribe(&[&msg, &status, "room/system", &p2p]).await
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
