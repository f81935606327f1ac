//! `make bench-flood`: issue 14's flood, before and after its limits, in one run: one student
//! publishes 1,000 chats back to back while a second student chats every 200 ms
//! ([`e2e::flood`]), on three fresh local stacks:
//! - **limits off** (the "before"): the template's `ChatRateLimit` 0 (moderation's per-sender
//!   rate off, `CHAT_RATE_LIMIT=0`, via `STACK_PARAMETER_OVERRIDES`) and `PUBLISH_PER_SECOND=0`
//!   (the broker plugin's per-connection publish limit off);
//! - **limits on** (the defaults): 10 chats per sender per 1-s window, IoT Core's 100 publishes
//!   per second per connection;
//! - and, between the two, **moderation only** (`PUBLISH_PER_SECOND=0`): what the broker's
//!   limit adds (without it every flood chat still makes the trip to moderation).
//!
//! Prints, for each: how many flooder chats reached the room, its `rate_limited` notices, and
//! the second student's delivery latency p50 / max and when its last chat arrived. Figures are
//! printed, never asserted (the flood test, `tests/flood.rs`, asserts the limits).
//! `BENCH_FLOOD_CHATS` (default 1000) changes the flood's size.

use std::process::ExitCode;
use std::time::Duration;

use e2e::flood::{self, FloodPlan, FloodReport};
use e2e::{Stack, Transcript, repo_root};

async fn one(name: &str, extra: &[(&str, &str)], plan: &FloodPlan) -> Result<FloodReport, String> {
    let dir = repo_root().join(format!(".run/bench-flood-{name}"));
    println!(
        "== {name}: starting a local stack in {} ({extra:?})",
        dir.display()
    );
    let mut env = vec![("RUST_LOG_LOCAL", "warn")];
    env.extend_from_slice(extra);
    let mut stack = Stack::start(&dir, &env).map_err(|e| e.to_string())?;
    // What the stack's functions were given.
    for key in ["CHAT_RATE_LIMIT", "CHAT_RATE_WINDOW_SECS"] {
        if !stack.var(key).is_empty() {
            println!("   stack.env {key}={}", stack.var(key));
        }
    }
    let log = Transcript::new(false);
    let report = flood::run(&stack, plan, &log)
        .await
        .map_err(|e| e.to_string());
    stack.down();
    let report = report?;
    println!("   {}", report.line());
    Ok(report)
}

#[tokio::main]
async fn main() -> ExitCode {
    let plan = FloodPlan {
        chats: std::env::var("BENCH_FLOOD_CHATS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        // Unlimited, 1,000 chats took about a minute to drain (issue 14): leave room for it.
        deliver_within: Duration::from_secs(300),
        ..FloodPlan::default()
    };
    let off = one(
        "limits-off",
        &[
            ("STACK_PARAMETER_OVERRIDES", "ChatRateLimit=0"),
            ("PUBLISH_PER_SECOND", "0"),
        ],
        &plan,
    )
    .await;
    let moderation_only = one(
        "moderation-only",
        &[
            (
                "STACK_PARAMETER_OVERRIDES",
                "ChatRateLimit=10 ChatRateWindowSecs=1",
            ),
            ("PUBLISH_PER_SECOND", "0"),
        ],
        &plan,
    )
    .await;
    let on = one(
        "limits-on",
        &[
            (
                "STACK_PARAMETER_OVERRIDES",
                "ChatRateLimit=10 ChatRateWindowSecs=1",
            ),
            ("PUBLISH_PER_SECOND", "100"),
        ],
        &plan,
    )
    .await;
    println!(
        "== bench-flood: {} flooder chats, the other student 1 chat / 200 ms",
        plan.chats
    );
    let mut failed = false;
    for (name, r) in [
        ("limits off", &off),
        ("moderation only", &moderation_only),
        ("limits on", &on),
    ] {
        match r {
            Ok(r) => println!("bench-flood: {name:<15} {}", r.line()),
            Err(e) => {
                failed = true;
                println!("bench-flood: {name:<15} did not run: {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
