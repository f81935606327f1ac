//! A misconfigured outflow stops at cold start with one human sentence on stderr naming the
//! variable and the fix (not Rust's `Debug` of the error), exits non-zero, and does so at once:
//! `cargo lambda invoke` then gets a failure instead of waiting for ever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn an_empty_environment_stops_with_one_sentence_naming_the_variable_and_the_fix() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .env_clear()
        .output()
        .expect("run the outflow binary");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    assert_eq!(
        stderr,
        "outflow: environment variable OUTFLOW_ROUTES is not set; set it to <uplinkParent>=<backend queue URL>, e.g. roomSend=https://sqs.../backend\n",
        "one line, the variable and the fix"
    );
    assert!(!stderr.contains("Missing {"), "no Debug output: {stderr}");
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped at once, not after {elapsed:?}"
    );
}
