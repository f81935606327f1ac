//! Outflow mapping per record against a bare `serde_json` parse + serialize of the same
//! record, in the same run (target: at most 1.5x). Figures printed, never asserted.

#![allow(clippy::expect_used)] // a benchmark whose fixture is broken should stop

use std::hint::black_box;

use aws_lambda_events::sqs::SqsEvent;
use criterion::Criterion;
use kit::Env;
use mapping::{Routes, map_uplink_body};

fn body() -> String {
    let path = format!(
        "{}/tests/fixtures/chat-from-student.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("event");
    event.records[0].body.clone().expect("body")
}

fn bench(c: &mut Criterion) {
    let rules = Env::from_map::<&str, &str>([]).rules().expect("rules");
    let routes = Routes::parse(
        "roomSend=https://sqs.us-east-1.amazonaws.com/123456789012/backend",
        &rules,
    )
    .expect("routes");
    let body = body();
    let mut group = c.benchmark_group(GROUP);
    group.bench_function(BASELINE, |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(&body)).expect("json");
            black_box(serde_json::to_string(&v).expect("serialize"))
        })
    });
    group.bench_function(OURS, |b| {
        b.iter(|| {
            let routed = map_uplink_body(black_box(&body), "id-1", &rules, &routes).expect("maps");
            black_box(outflow::to_outgoing(routed.message))
        })
    });
    group.finish();
}

const GROUP: &str = "outflow-record";
/// A bare `serde_json` parse + serialize of the same record.
const BASELINE: &str = "baseline-serde-json-roundtrip";
/// The outflow's whole mapping of the record to its SQS message.
const OURS: &str = "outflow-map-record";

/// The mean of a finished benchmark, from criterion's `estimates.json`.
fn mean_ns(name: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{target}/criterion/{GROUP}/{name}/new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    if let (Some(base), Some(ours)) = (mean_ns(BASELINE), mean_ns(OURS)) {
        println!(
            "outflow mapping per record: {ours:.0} ns vs bare serde_json round trip {base:.0} ns = {:.2}x (target <= 1.5x)",
            ours / base
        );
    }
}
