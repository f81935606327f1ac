//! Test harness: starts a real moto server and a real Mosquitto on free loopback ports, and
//! stops them when dropped. Used by the functions' integration tests and benchmarks.
//!
//! # Layout
//! - [`Moto`]: moto's server from the project venv (`.venv`, made by `make deps`) through
//!   `infra/local/moto_server.py` (DynamoDB requests one at a time, as DynamoDB serialises
//!   transactions), with
//!   helpers to create queues with a dead-letter queue and to read them back.
//! - [`Mosquitto`]: the Debian broker with the project's ACL file (`infra/mosquitto/acl`) and a
//!   password file holding the backend identity; stop, restart and pause for failure tests.
//!   [`Mosquitto::tls`] starts one like AWS IoT Core instead ([`TlsBroker`]): a TLS listener that
//!   requires a client certificate and takes its CN as the username, optionally a token
//!   listener (TLS, password sign-in), a plain listener, the classroom plugin and an ACL.
//! - [`certs`]: a CA issuing server and client certificates (expired, not yet valid, wrong
//!   host, another CA), and the local stack's files (the `stack-certs <dir>` binary).
//! - [`Subscriber`]: an MQTT 5 client that collects what it receives.
//! - [`logs`]: a `tracing` subscriber that captures a handler's real log lines (what
//!   `Function::handle` reports for each failed record).
//!
//! Both servers are installed by `make deps` (`mosquitto` from Debian, `moto[server]` with pip
//! into `.venv`); when one is missing the harness stops with a message that says so.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a harness that cannot start should panic

pub mod certs;
pub mod logs;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

/// The names (file stems) of the `*.json` fixtures in `<manifest_dir>/tests/fixtures`, sorted:
/// `fixture_names(env!("CARGO_MANIFEST_DIR"))`.
pub fn fixture_names(manifest_dir: &str) -> Vec<String> {
    let dir = Path::new(manifest_dir).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e
                .expect("a directory entry")
                .file_name()
                .into_string()
                .ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// The backend identity's username in the test broker (the ACL lets it publish under `room/`).
pub const BACKEND_USER: &str = "backend";
/// The backend identity's password in the test broker.
pub const BACKEND_PASSWORD: &str = "backend-test-password";

/// The SDK configuration loader of the tests: the latest behavior version and the project's
/// HTTPS client (hyper 1 + rustls 0.23 with ring, as `kit::aws::loader`): the SDK's own default
/// client (rustls with aws-lc) is not compiled in, so a loader without a client cannot send.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(client)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30 s");
}

fn stop_child(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A moto server on a free loopback port.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto's server from the project venv with `infra/local/moto_server.py`, which
    /// handles DynamoDB requests one at a time: `moto_server`'s threads make
    /// `TransactWriteItems` non-atomic (conditions checked while other requests run; a
    /// cancelled transaction restores a copy of the table taken when it began, wiping out
    /// concurrent writes), where DynamoDB serialises transactions.
    pub fn start() -> Self {
        let python = std::env::var_os("MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
        let script = repo_root().join("infra/local/moto_server.py");
        Self::spawn(&python, |port| {
            vec![
                script.display().to_string(),
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port,
            ]
        })
    }

    fn spawn(bin: &std::path::Path, args: impl FnOnce(String) -> Vec<String>) -> Self {
        assert!(
            bin.exists(),
            "{} is missing: run `make deps` (installs moto[server] into .venv)",
            bin.display()
        );
        let port = free_port();
        let mut child = Command::new(bin)
            .args(args(port.to_string()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_for_port(port, "moto_server", &mut child);
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// SDK configuration pointing at this server, with dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_loader()
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "testkit",
            ))
            .load()
            .await
    }

    /// The environment a function needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// A queue with its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueuePair {
    /// The source queue URL.
    pub url: String,
    /// Its DLQ URL.
    pub dlq_url: String,
}

/// Creates a plain queue and returns its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Creates `name` with a DLQ `name-dlq` and the given redrive and visibility settings.
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_secs: u32,
) -> QueuePair {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq_url = create_queue(sqs, &format!("{name}-dlq")).await;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&A::QueueArn)
        .unwrap();
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count });
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::RedrivePolicy, redrive.to_string())
        .attributes(A::VisibilityTimeout, visibility_timeout_secs.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    QueuePair { url, dlq_url }
}

/// Receives until `count` messages arrived or `timeout` passed; deletes what it received.
pub async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    count: usize,
    timeout: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        let resp = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in resp.messages.unwrap_or_default() {
            if let Some(handle) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            }
            out.push(m);
        }
    }
    out
}

/// What a classroom token grants to read, as ACL `pattern` lines for the plugin-less test broker
/// (`%c`: the client ID the broker holds): every room, since these tests are about the
/// backend's publishes, not a student's rooms (the broker plugin's own tests cover those).
pub const CLASSROOM_READS: &str = "pattern read room/message/#\n\
                                   pattern read room/status/#\n\
                                   pattern read room/system\n\
                                   pattern read room/p2p/%c\n";

/// Writes a Mosquitto password file holding the backend identity.
fn write_password_file(passwd: &Path) {
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(passwd)
        .args([BACKEND_USER, BACKEND_PASSWORD])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_passwd is missing: run `make deps` (installs mosquitto from Debian)");
    assert!(status.success(), "mosquitto_passwd failed");
}

/// A Mosquitto broker on a free loopback port, with the project's ACL and a password file
/// holding the backend identity. No broker plugin: the anonymous clients of these tests stand
/// for classroom devices whose reads the plugin would decide from their tokens, so the ACL
/// here adds the classroom reads as `pattern` lines ([`CLASSROOM_READS`]) to the project's
/// file (which grants classroom clients nothing by itself).
pub struct Mosquitto {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The MQTT port on 127.0.0.1: plain for [`Mosquitto::start`], the certificate listener
    /// (TLS, client certificate required) for [`Mosquitto::tls`].
    pub port: u16,
    /// A TLS broker's token listener (TLS with the server certificate only; clients sign in
    /// with a username and password, which the plugin checks), when asked for.
    pub token_port: Option<u16>,
    /// A TLS broker's plain listener (no TLS, anonymous or password), when asked for.
    pub plain_port: Option<u16>,
    /// A TLS broker's CA certificate (PEM), which signed its server certificate and the
    /// client certificates it accepts.
    pub ca_pem: Option<String>,
}

/// The settings every test broker shares: one set of security settings for all listeners,
/// persistence (so a graceful stop keeps queued QoS 1 messages), the log in its directory.
fn common_conf(dir: &std::path::Path, acl: &std::path::Path, allow_anonymous: bool) -> String {
    format!(
        "user root\n\
         per_listener_settings false\n\
         allow_anonymous {allow_anonymous}\n\
         acl_file {acl}\n\
         persistence true\n\
         persistence_location {dir}/\n\
         autosave_interval 1\n\
         max_queued_messages 100000\n\
         set_tcp_nodelay true\n\
         log_dest file {dir}/mosquitto.log\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
        acl = acl.display(),
        dir = dir.display(),
    )
}

impl Mosquitto {
    /// Starts a broker with persistence on (so a graceful stop keeps queued QoS 1 messages
    /// for persistent sessions, as a production broker does).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        write_password_file(&passwd);
        let acl = dir.path().join("acl");
        let project_acl = std::fs::read_to_string(repo_root().join("infra/mosquitto/acl")).unwrap();
        std::fs::write(&acl, format!("{CLASSROOM_READS}\n{project_acl}")).unwrap();
        let port = free_port();
        let conf = format!(
            "# generated by testkit\n{}password_file {passwd}\nlistener {port} 127.0.0.1\n",
            common_conf(dir.path(), &acl, true),
            passwd = passwd.display(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Self {
            child: None,
            dir,
            port,
            token_port: None,
            plain_port: None,
            ca_pem: None,
        };
        broker.restart();
        broker
    }

    /// A broker with a TLS listener like AWS IoT Core's MQTT port, built with the returned
    /// [`TlsBroker`]: the server certificate is `ca.server()` (127.0.0.1, localhost) unless
    /// [`TlsBroker::server_cert`] says otherwise.
    pub fn tls(ca: &certs::Ca) -> TlsBroker {
        TlsBroker {
            ca_pem: ca.cert_pem().to_owned(),
            server: ca.server(),
            plugin: None,
            acl: None,
            allow_anonymous: None,
            token_listener: false,
            plain_listener: false,
        }
    }

    /// The rumqttc transport for this TLS broker: trusting its CA, presenting `client` when
    /// given (a client certificate from [`certs::Ca::client`]).
    pub fn tls_transport(&self, client: Option<&certs::CertPair>) -> rumqttc::Transport {
        let ca = self
            .ca_pem
            .as_deref()
            .expect("tls_transport needs a broker started with Mosquitto::tls");
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
            certs::client_config(ca, client),
        ))
    }

    /// Starts (again) on the same port, with the same persistence.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is missing: run `make deps` (installs mosquitto from Debian)");
        wait_for_port(self.port, "mosquitto", &mut child);
        self.child = Some(child);
    }

    /// Stops gracefully (SIGTERM: sessions and queued messages are saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is acknowledged.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// The broker's log (for diagnosing a failed test).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// `mqtt://127.0.0.1:<port>`, or `mqtts://127.0.0.1:<port>` (the certificate listener) for
    /// a TLS broker.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The directory holding the broker's configuration, log and TLS files (`ca.pem`,
    /// `server.pem`, `server.key`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A TLS broker to start ([`Mosquitto::tls`]). Its certificate listener ([`Mosquitto::port`])
/// is AWS IoT Core's port 8883 as Mosquitto can have it: TLS, `require_certificate true` (no
/// client certificate from the CA, no connection) and `use_identity_as_username true` (the
/// certificate's CN is the username the ACL sees; Mosquitto asks no password there).
#[must_use = "a TlsBroker does nothing until start()"]
pub struct TlsBroker {
    ca_pem: String,
    server: certs::CertPair,
    plugin: Option<(PathBuf, Vec<(String, String)>)>,
    acl: Option<String>,
    allow_anonymous: Option<bool>,
    token_listener: bool,
    plain_listener: bool,
}

impl TlsBroker {
    /// Presents `pair` instead of `ca.server()` (a wrong-host or expired server certificate).
    pub fn server_cert(mut self, pair: certs::CertPair) -> Self {
        self.server = pair;
        self
    }

    /// Loads the broker plugin `so` (the classroom plugin's `libclassroom_broker_plugin.so`)
    /// with `plugin_opt_<key> <value>` lines. With a plugin, anonymous clients are refused
    /// and the ACL is the project's file alone, unless said otherwise.
    pub fn plugin(mut self, so: impl Into<PathBuf>, opts: &[(&str, &str)]) -> Self {
        let opts = opts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.plugin = Some((so.into(), opts));
        self
    }

    /// The ACL file's text. Default: the project's `infra/mosquitto/acl`, plus
    /// [`CLASSROOM_READS`] when there is no plugin (as [`Mosquitto::start`]).
    pub fn acl(mut self, text: impl Into<String>) -> Self {
        self.acl = Some(text.into());
        self
    }

    /// Whether clients without a username may connect (on the token and plain listeners).
    /// Default: yes without a plugin, no with one.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = Some(allow);
        self
    }

    /// Adds the token listener ([`Mosquitto::token_port`]): TLS with the server certificate,
    /// no client certificate, username + password sign-in (the plugin's tokens).
    pub fn token_listener(mut self) -> Self {
        self.token_listener = true;
        self
    }

    /// Adds a plain listener ([`Mosquitto::plain_port`]) with the same ACL, for TLS-vs-plain
    /// comparisons; the backend signs in there with [`BACKEND_USER`] / [`BACKEND_PASSWORD`]
    /// (a password file, which with `per_listener_settings false` the token listener also
    /// reads; the certificate listener never asks for a password).
    pub fn plain_listener(mut self) -> Self {
        self.plain_listener = true;
        self
    }

    /// Writes the configuration and starts the broker; panics with its log if it cannot.
    pub fn start(self) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(dir.path().join("ca.pem"), &self.ca_pem).unwrap();
        self.server.write(dir.path(), "server").unwrap();
        let project_acl = std::fs::read_to_string(repo_root().join("infra/mosquitto/acl")).unwrap();
        let acl = self.acl.unwrap_or_else(|| match self.plugin {
            Some(_) => project_acl,
            None => format!("{CLASSROOM_READS}\n{project_acl}"),
        });
        std::fs::write(dir.path().join("acl"), acl).unwrap();
        let passwd = dir.path().join("passwd");
        if self.plain_listener {
            write_password_file(&passwd);
        }
        let allow_anonymous = self.allow_anonymous.unwrap_or(self.plugin.is_none());
        let port = free_port();
        let tls_files = format!(
            "cafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
            ca = path("ca.pem"),
            cert = path("server.pem"),
            key = path("server.key"),
        );
        let mut conf = format!(
            "# generated by testkit (Mosquitto::tls)\n{}\
             connection_messages true\n\
             # the certificate listener (IoT Core's 8883)\n\
             listener {port} 127.0.0.1\n\
             {tls_files}\
             require_certificate true\n\
             use_identity_as_username true\n",
            common_conf(dir.path(), &dir.path().join("acl"), allow_anonymous),
        );
        if let Some((so, opts)) = &self.plugin {
            conf.push_str(&format!("plugin {}\n", so.display()));
            for (k, v) in opts {
                conf.push_str(&format!("plugin_opt_{k} {v}\n"));
            }
        }
        let token_port = self.token_listener.then(|| {
            let p = free_port();
            conf.push_str(&format!(
                "# the token listener (TLS, sign-in with a password)\nlistener {p} 127.0.0.1\n{tls_files}"
            ));
            p
        });
        let plain_port = self.plain_listener.then(|| {
            let p = free_port();
            conf.push_str(&format!(
                "password_file {}\n# a plain listener\nlistener {p} 127.0.0.1\n",
                passwd.display()
            ));
            p
        });
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut broker = Mosquitto {
            child: None,
            dir,
            port,
            token_port,
            plain_port,
            ca_pem: Some(self.ca_pem),
        };
        broker.restart();
        broker
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An MQTT 5 client that collects the publishes it receives.
pub struct Subscriber {
    /// The client (to publish or disconnect).
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Publish>,
    subacked: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects as `client_id` (anonymous unless `credentials`), with a persistent session
    /// when `persistent`, subscribes to `filters` at QoS 1 and waits for the SUBACK.
    pub async fn connect(
        port: u16,
        client_id: &str,
        credentials: Option<(&str, &str)>,
        persistent: bool,
        filters: &[&str],
    ) -> Self {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_clean_start(!persistent);
        if persistent {
            let mut props = rumqttc::v5::mqttbytes::v5::ConnectProperties::new();
            props.session_expiry_interval = Some(3600);
            opts.set_connect_properties(props);
        }
        if let Some((u, p)) = credentials {
            opts.set_credentials(u, p);
        }
        Self::connect_options(opts, filters).await
    }

    /// Connects to a TLS broker's certificate listener ([`Mosquitto::tls`]) as `client_id`
    /// with the client certificate `cert` (its CN is the username), clean session, subscribes
    /// to `filters` at QoS 1 and waits for the SUBACK.
    pub async fn connect_tls(
        broker: &Mosquitto,
        client_id: &str,
        cert: &certs::CertPair,
        filters: &[&str],
    ) -> Self {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", broker.port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_transport(broker.tls_transport(Some(cert)));
        Self::connect_options(opts, filters).await
    }

    /// Connects with `opts` (any transport and credentials), subscribes to `filters` at QoS 1
    /// on every connect and waits for the first SUBACK.
    pub async fn connect_options(opts: MqttOptions, filters: &[&str]) -> Self {
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subacked_tx, subacked_rx) = mpsc::unbounded_channel();
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let sub_client = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // (Re)subscribe on every connect: the broker may have restarted.
                        let many = filters
                            .iter()
                            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce));
                        let _ = sub_client.subscribe_many(many).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subacked_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut subscriber = Self {
            client,
            rx,
            subacked: subacked_rx,
            task,
        };
        subscriber.wait_subscribed(Duration::from_secs(10)).await;
        subscriber
    }

    /// Waits for the next SUBACK: the (re)subscription made on (re)connect is in place.
    pub async fn wait_subscribed(&mut self, timeout: Duration) {
        tokio::time::timeout(timeout, self.subacked.recv())
            .await
            .expect("no SUBACK in time")
            .expect("subscriber task ended");
    }

    /// The next publish, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Publish> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Everything that arrives until nothing has arrived for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Publish> {
        let mut out = Vec::new();
        while let Some(p) = self.next(quiet).await {
            out.push(p);
        }
        out
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of a user property of a received publish.
pub fn user_property<'p>(p: &'p Publish, key: &str) -> Option<&'p str> {
    p.properties
        .as_ref()?
        .user_properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Creates a pay-per-request DynamoDB table with string keys `hash` and `range`, plus the
/// `byClient` index (`range` as its hash key, `hash` as its range key) when `by_client`: the
/// shapes of the template's tables (MembershipTable has the index).
pub async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    hash: &str,
    range: &str,
    by_client: bool,
) {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, KeyType, Projection, ProjectionType};
    let mut req = table_request(ddb, name, &[(hash, KeyType::Hash), (range, KeyType::Range)]);
    if by_client {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byClient")
                .key_schema(key_element(range, KeyType::Hash))
                .key_schema(key_element(hash, KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    req.send().await.unwrap();
}

/// Every item of `table` (one Scan: test tables are small), sorted by `roomId` then `clientId`
/// so assertions do not depend on moto's order.
pub async fn scan_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = ddb
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items.sort_by_key(|i| format!("{:?}{:?}", i.get("roomId"), i.get("clientId")));
    items
}

/// Creates a pay-per-request DynamoDB table with one string partition key `hash` (the
/// template's TokenTable has `id`).
pub async fn create_hash_table(ddb: &aws_sdk_dynamodb::Client, name: &str, hash: &str) {
    use aws_sdk_dynamodb::types::KeyType;
    table_request(ddb, name, &[(hash, KeyType::Hash)])
        .send()
        .await
        .unwrap();
}

/// The sign-in tables with the template's keys: the TokenTable (`id`) named `tokens` and the
/// EnrollmentTable (`clientId`, `roomId`) named `enrollment`.
pub async fn create_signin_tables(ddb: &aws_sdk_dynamodb::Client, tokens: &str, enrollment: &str) {
    create_hash_table(ddb, tokens, "id").await;
    create_table(ddb, enrollment, "clientId", "roomId", false).await;
}

/// Puts `value` into the Secrets Manager secret `id`, creating the secret the first time.
pub async fn put_secret(sdk: &aws_config::SdkConfig, id: &str, value: &str) {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let put = sm
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await;
    if put.is_err() {
        sm.create_secret()
            .name(id)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
}

fn key_element(
    name: &str,
    key_type: aws_sdk_dynamodb::types::KeyType,
) -> aws_sdk_dynamodb::types::KeySchemaElement {
    aws_sdk_dynamodb::types::KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

fn table_request(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[(&str, aws_sdk_dynamodb::types::KeyType)],
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, ScalarAttributeType};
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (key, key_type) in keys {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(key_element(key, key_type.clone()));
    }
    req
}

/// Counts DynamoDB requests by operation (the `X-Amz-Target` header), as sent on the wire: an
/// honest count of what the code under test asks of DynamoDB, not a counter it keeps itself.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
);

impl RequestCounter {
    /// How many requests of `op` (`BatchGetItem`, ...) were sent.
    pub fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Every operation counted.
    pub fn all(&self) -> std::collections::BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let op = target.rsplit('.').next().unwrap_or_default().to_owned();
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

/// A DynamoDB client for `sdk` that counts its requests.
pub fn counting_client(sdk: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, RequestCounter) {
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}
