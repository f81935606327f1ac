//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: no API call, no agent. Lambda
//! sends every stdout line to CloudWatch Logs, which turns a line holding an `_aws` object into
//! metrics (namespace [`NAMESPACE`], dimension `Function`, and one more where a metric is
//! counted by something: `ErrorKind`, `Reason`, `Direction`).
//!
//! A function collects one batch's figures in a [`Metrics`] (shared by reference: counting
//! takes `&self`) and [`Metrics::emit`]s them once at the end of the batch. The documents are
//! built by the pure [`Metrics::documents`] (time passed in), which the tests read.
//!
//! The metrics (all per function):
//!
//! | name | unit | dimension | who |
//! |---|---|---|---|
//! | `RecordsIn` | Count | | every SQS function |
//! | `RecordsFailed` | Count | `ErrorKind` | every SQS function (dead-lettered or retried) |
//! | `RecordsDeadLettered` / `RecordsRetried` | Count | | every SQS function |
//! | `ChatsDelivered` / `ChatsMasked` | Count | | moderation |
//! | `Rejected` | Count | `Reason` | moderation (chats and commands refused: `rejected` notices and silent drops) |
//! | `Mutes` | Count | | moderation (a mute or unmute written) |
//! | `PresenceTransitions` | Count | `Direction` (`online`, `offline`) | presence |
//! | `ChannelsClosedAtBound` | Count | | presence (channels closed at the 24 h age bound) |
//! | `PublishLatency` | Milliseconds | | inflow (a batch's publishes, until the last PUBACK) |

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "ClassroomRules";

/// At most this many values of one metric per document (EMF's limit).
const MAX_VALUES: usize = 100;

/// An extra dimension: its name and value (`None`: `Function` alone).
type Dimension = Option<(&'static str, String)>;
/// A metric of a document: name, unit, value.
type Entry = (&'static str, &'static str, Value);

#[derive(Debug, Default)]
struct Figures {
    /// (metric, dimension) → count.
    counts: BTreeMap<(&'static str, Dimension), f64>,
    /// metric → values in milliseconds.
    millis: BTreeMap<&'static str, Vec<f64>>,
}

/// One batch's figures for one function.
#[derive(Debug)]
pub struct Metrics {
    function: &'static str,
    figures: Mutex<Figures>,
}

impl Metrics {
    /// No figures yet, for `function` (the `Function` dimension).
    pub fn new(function: &'static str) -> Self {
        Self {
            function,
            figures: Mutex::new(Figures::default()),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Figures)) {
        if let Ok(mut figures) = self.figures.lock() {
            f(&mut figures);
        }
    }

    /// Adds `n` to a count.
    pub fn count(&self, name: &'static str, n: u64) {
        self.with(|f| *f.counts.entry((name, None)).or_default() += n as f64);
    }

    /// Adds `n` to a count split by `dimension` = `value`.
    pub fn count_by(&self, name: &'static str, dimension: &'static str, value: &str, n: u64) {
        self.with(|f| {
            *f.counts
                .entry((name, Some((dimension, value.to_owned()))))
                .or_default() += n as f64;
        });
    }

    /// Records one duration in milliseconds.
    pub fn millis(&self, name: &'static str, ms: f64) {
        self.with(|f| f.millis.entry(name).or_default().push(ms));
    }

    /// The EMF documents of the figures so far, stamped `timestamp_ms`: one for the metrics
    /// with the `Function` dimension alone, one per extra dimension value. Nothing counted,
    /// nothing to emit.
    pub fn documents(&self, timestamp_ms: u64) -> Vec<Value> {
        let Ok(figures) = self.figures.lock() else {
            return Vec::new();
        };
        let mut groups: BTreeMap<Dimension, Vec<Entry>> = BTreeMap::new();
        for ((name, dim), n) in &figures.counts {
            groups
                .entry(dim.clone())
                .or_default()
                .push((name, "Count", json!(n)));
        }
        for (name, values) in &figures.millis {
            for chunk in values.chunks(MAX_VALUES) {
                groups
                    .entry(None)
                    .or_default()
                    .push((name, "Milliseconds", json!(chunk)));
            }
        }
        let mut docs = Vec::new();
        for (dim, metrics) in groups {
            // One document per distinct metric set (a metric's values may need several).
            let mut pending = metrics;
            while !pending.is_empty() {
                let mut doc = Map::new();
                let mut declared = Vec::new();
                let mut rest = Vec::new();
                for (name, unit, value) in pending {
                    if doc.contains_key(name) {
                        rest.push((name, unit, value));
                        continue;
                    }
                    declared.push(json!({"Name": name, "Unit": unit}));
                    doc.insert(name.to_owned(), value);
                }
                pending = rest;
                let mut dimensions = vec!["Function"];
                doc.insert("Function".to_owned(), json!(self.function));
                if let Some((dim_name, dim_value)) = &dim {
                    dimensions.push(dim_name);
                    doc.insert((*dim_name).to_owned(), json!(dim_value));
                }
                doc.insert(
                    "_aws".to_owned(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dimensions],
                            "Metrics": declared,
                        }]
                    }),
                );
                docs.push(Value::Object(doc));
            }
        }
        docs
    }

    /// Prints the documents to stdout, one line each, stamped now.
    pub fn emit(&self) {
        for doc in self.documents(crate::now_ms()) {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_dimension_into_emf_documents() {
        let m = Metrics::new("moderation");
        m.count("RecordsIn", 3);
        m.count("RecordsIn", 2);
        m.count_by("ChatsRejected", "Reason", "muted", 1);
        m.count_by("ChatsRejected", "Reason", "muted", 1);
        m.count_by("ChatsRejected", "Reason", "too_long", 1);
        let docs = m.documents(1_700_000_000_000);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0],
            json!({
                "Function": "moderation",
                "RecordsIn": 5.0,
                "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                    "Namespace": "ClassroomRules",
                    "Dimensions": [["Function"]],
                    "Metrics": [{"Name": "RecordsIn", "Unit": "Count"}]
                }]}
            })
        );
        let muted = docs.iter().find(|d| d["Reason"] == "muted").unwrap();
        assert_eq!(muted["ChatsRejected"], 2.0);
        assert_eq!(
            muted["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
        assert_eq!(
            docs.iter().find(|d| d["Reason"] == "too_long").unwrap()["ChatsRejected"],
            1.0
        );
    }

    #[test]
    fn durations_are_value_arrays_of_at_most_100_per_document() {
        let m = Metrics::new("inflow");
        for i in 0..150 {
            m.millis("PublishLatency", f64::from(i));
        }
        m.count("RecordsIn", 150);
        let docs = m.documents(1);
        assert_eq!(docs.len(), 2);
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| d["PublishLatency"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, [100, 50]);
        assert_eq!(docs[0]["RecordsIn"], 150.0);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "RecordsIn", "Unit": "Count"}, {"Name": "PublishLatency", "Unit": "Milliseconds"}])
        );
        assert!(docs[1].get("RecordsIn").is_none());
    }

    #[test]
    fn nothing_counted_emits_nothing() {
        assert!(Metrics::new("presence").documents(1).is_empty());
    }
}
