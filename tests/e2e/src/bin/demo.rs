//! `make demo`: starts the local stack (set-up when needed), plays the seeds' classroom with
//! three real MQTT clients signed in with classroom tokens (and a fourth, enrolled elsewhere,
//! that room 1 refuses), prints the transcript and one pass/fail line per scenario, tears
//! the stack down, and exits non-zero when any scenario failed.
//!
//! `DEMO_STACK_DIR` (default `.run/demo`) holds the stack; `DEMO_ATTACH=1` plays against the
//! stack `make up` started in `.run` instead (and leaves it running).

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::{Stack, Transcript, repo_root, scenarios};

#[tokio::main]
async fn main() -> ExitCode {
    let attach = std::env::var("DEMO_ATTACH").is_ok_and(|v| v == "1");
    let dir = std::env::var("DEMO_STACK_DIR").map_or_else(
        |_| repo_root().join(if attach { ".run" } else { ".run/demo" }),
        PathBuf::from,
    );
    println!("== starting the local classroom stack in {}", dir.display());
    let stack = if attach {
        Stack::attach(&dir)
    } else {
        Stack::start(&dir, &[])
    };
    let mut stack = match stack {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "== broker mqtts://127.0.0.1:{} (classroom clients, token sign-in), mqtts://127.0.0.1:{} (the \
         backend's client certificate: inflow, rules bridge), {} (browsers), moto {}, logs in {}/logs",
        stack.mqtt_port(),
        stack.var("MQTT_CERT_PORT"),
        stack.var("MQTT_WS_URL"),
        stack.var("AWS_ENDPOINT_URL"),
        dir.display()
    );
    println!(
        "== sign-in: username = client ID, password = a classroom token for the directory's rooms \
         from the local issuer (POST {}/tokens/classroom; by hand: infra/local/stack.sh token <clientId>)",
        stack.var("TOKEN_API_URL")
    );
    println!("== transcript (seconds since start, who, -> sent / <- received)");
    let log = Transcript::new(true);
    let result = scenarios::classroom(&stack, &log).await;
    println!("== scenarios");
    let code = match result {
        Ok(outcomes) => {
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            for o in &outcomes {
                println!(
                    "{} {:<62} {}",
                    if o.passed { "PASS" } else { "FAIL" },
                    o.name,
                    o.detail
                );
            }
            println!(
                "demo: {} passed, {} failed",
                outcomes.len() - failed,
                failed
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("FAIL the classroom could not be played: {e}");
            ExitCode::FAILURE
        }
    };
    println!("== stopping the stack");
    stack.down();
    code
}
