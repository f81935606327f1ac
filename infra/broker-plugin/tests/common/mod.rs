//! What the plugin's broker tests share: a real Mosquitto (Debian's 2.0.x) with the plugin
//! cargo built next to the test binary, on a free port, in a temporary directory with its key,
//! revocation and sessions files and persistence; stopped (SIGTERM), killed (kill -9) and
//! started again on the same port and directory.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use signin::{KeySet, Revocations};

/// The backend's password in the broker's password file.
pub const BACKEND_PASSWORD: &str = "backend-test-password";

/// Seconds since the epoch.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The plugin cargo built for this test, next to this binary.
pub fn plugin_path() -> PathBuf {
    let so = std::env::current_exe()
        .unwrap()
        .with_file_name("libclassroom_broker_plugin.so");
    assert!(
        so.exists(),
        "{} is missing: run `cargo test -p broker-plugin`",
        so.display()
    );
    so
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to `path` through a rename, as the local stack updates the plugin's files.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A Mosquitto with the plugin.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its listener on 127.0.0.1.
    pub port: u16,
}

impl Broker {
    /// Starts with `keys` in the key file (`None`: no key file) and no revocations.
    pub fn start(keys: Option<&KeySet>) -> Self {
        Self::start_with(keys, "")
    }

    /// As [`Broker::start`], with `extra` (whole lines) appended to mosquitto.conf.
    pub fn start_with(keys: Option<&KeySet>, extra: &str) -> Self {
        let mut broker = Self::configure(extra);
        if let Some(keys) = keys {
            broker.set_keys(keys);
        }
        broker.run();
        broker
    }

    /// Writes the configuration plus `extra` and spawns mosquitto, without waiting for it.
    pub fn spawn(extra: &str) -> Self {
        let mut broker = Self::configure(extra);
        broker.child = Some(broker.command());
        broker
    }

    fn configure(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let status = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args(["backend", BACKEND_PASSWORD])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mosquitto_passwd is missing: run `make deps` (Debian's mosquitto)");
        assert!(status.success());
        let port = free_port();
        let d = dir.path().display().to_string();
        let conf = format!(
            "user root\n\
             per_listener_settings false\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous false\n\
             password_file {passwd}\n\
             acl_file {acl}\n\
             plugin {plugin}\n\
             plugin_opt_keys_file {d}/keys.json\n\
             plugin_opt_revocations_file {d}/revocations.json\n\
             plugin_opt_sessions_file {d}/live-sessions.json\n\
             plugin_opt_backend_username backend\n\
             persistence true\n\
             persistence_location {d}/\n\
             set_tcp_nodelay true\n\
             log_dest file {d}/mosquitto.log\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
             connection_messages true\n\
             {extra}",
            passwd = passwd.display(),
            acl = repo_root().join("infra/mosquitto/acl").display(),
            plugin = plugin_path().display(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        Self {
            child: None,
            dir,
            port,
        }
    }

    fn command(&self) -> Child {
        Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is missing: run `make deps` (Debian's mosquitto)")
    }

    /// Starts (again, on the same port and directory) and waits until it listens.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some(self.command());
        self.wait_listening();
    }

    /// Waits until it listens (panics with its log if it exited).
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if !self.is_running() {
                panic!("mosquitto exited:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "mosquitto did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and waits for the broker to exit (it saves its persistence first).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (kill -9): no callback, no persistence saved, nothing.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Replaces the key file.
    pub fn set_keys(&self, keys: &KeySet) {
        write_atomically(&self.dir.path().join("keys.json"), &keys.to_json());
    }

    /// Replaces the key file with any text.
    pub fn set_keys_text(&self, text: &str) {
        write_atomically(&self.dir.path().join("keys.json"), text);
    }

    /// Replaces the revocations file.
    pub fn set_revocations(&self, r: &Revocations) {
        write_atomically(&self.dir.path().join("revocations.json"), &r.to_json());
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The plugin's live sessions file.
    pub fn sessions_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("live-sessions.json")).unwrap_or_default()
    }

    /// Waits up to `wait` until the log has `needle` at least `count` times.
    pub async fn wait_log(&self, needle: &str, count: usize, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {count} time(s):\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
