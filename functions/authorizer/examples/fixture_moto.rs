//! The fixture environment for `cargo lambda invoke authorizer --data-file
//! functions/authorizer/tests/fixtures/<fixture>.json` under `make watch`: a moto on
//! 127.0.0.1:5055 (the `AWS_ENDPOINT_URL` of Cargo.toml's `[package.metadata.lambda.env]`)
//! holding the fixture key set in `authorizer-fixture-keys` and the TokenTable
//! `authorizer-fixture-tokens` with the revoked fixture token. Runs until Ctrl-C.
//!
//! ```sh
//! cargo run -p authorizer --example fixture-moto      # terminal 1 (make deps first)
//! make watch                                          # terminal 2
//! make invoke FN=authorizer FIXTURE=mqtt-over-wss     # terminal 3
//! ```
//! If something already listens on the port (a moto from an earlier run), it is filled and
//! left running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a helper: failing loudly is the point

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 5055;

#[tokio::main]
async fn main() {
    let root = testkit::repo_root();
    let mut child = None;
    if TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `make deps`",
            python.display()
        );
        child = Some(
            Command::new(python)
                .arg(root.join("infra/local/moto_server.py"))
                .args(["-H", "127.0.0.1", "-p", &PORT.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {PORT}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{PORT}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "fixture", "fixture", None, None, "fixture",
        ))
        .load()
        .await;
    common::provision(&sdk).await;
    println!(
        "fixture moto on http://127.0.0.1:{PORT}: secret {}, table {} ({} revoked)",
        common::SECRET_ID,
        common::TOKEN_TABLE,
        common::REVOKED_JTI
    );
    let Some(mut child) = child else {
        println!("(it was already running; left as it was)");
        return;
    };
    println!(
        "now `make watch` and `make invoke FN=authorizer FIXTURE=<fixture>`; Ctrl-C stops moto"
    );
    let _ = tokio::signal::ctrl_c().await;
    let _ = child.kill();
    let _ = child.wait();
}
