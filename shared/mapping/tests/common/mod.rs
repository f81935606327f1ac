//! What the mapping tests share: reading a fixture event file.

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

use std::path::Path;

use serde_json::Value;

/// The records of a fixture event file (`{"Records": [...]}`, an SQS event).
pub fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["Records"]
        .as_array()
        .expect("fixture has Records")
        .clone()
}
