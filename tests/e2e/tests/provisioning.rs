//! The local queues and tables are the template's: a stack provisioned without overrides has,
//! for each source queue of `infra/template.yaml`, its DLQ, the template's `maxReceiveCount`
//! and `VisibilityTimeout`, and every table with its key schema.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName as A;
use e2e::{Stack, repo_root};

/// The source queues of the template and their `VisibilityTimeout` / `maxReceiveCount`
/// values, read from the YAML text (a literal number or `!Ref` to a parameter's `Default`).
fn template_queues() -> HashMap<String, (String, String)> {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let default_of = |param: &str| -> String {
        let start = lines
            .iter()
            .position(|l| l.trim_end() == format!("  {param}:"))
            .unwrap_or(0);
        lines[start..]
            .iter()
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let value = |raw: &str| -> String {
        raw.trim()
            .strip_prefix("!Ref ")
            .map_or_else(|| raw.trim().to_owned(), |p| default_of(p.trim()))
    };
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    let (mut vis, mut max) = (String::new(), String::new());
    for l in &lines {
        if l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':') {
            if let Some(q) = current.take()
                && !max.is_empty()
            {
                out.insert(q, (vis.clone(), max.clone()));
            }
            current = Some(l.trim().trim_end_matches(':').to_owned());
            vis.clear();
            max.clear();
        } else if let Some(v) = l.trim().strip_prefix("VisibilityTimeout:") {
            vis = value(v);
        } else if let Some(v) = l.trim().strip_prefix("maxReceiveCount:") {
            max = value(v);
        }
    }
    if let (Some(q), false) = (current, max.is_empty()) {
        out.insert(q, (vis, max));
    }
    out
}

fn snake(logical: &str) -> String {
    let mut s = String::new();
    let mut prev_lower = false;
    for c in logical.chars() {
        if prev_lower && c.is_ascii_uppercase() {
            s.push('_');
        }
        prev_lower = c.is_ascii_lowercase();
        s.push(c.to_ascii_uppercase());
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn the_local_queues_and_tables_are_the_templates() {
    let queues = template_queues();
    assert_eq!(queues.len(), 4, "the template's source queues: {queues:?}");
    let dir = repo_root().join(format!(".run/e2e-{}-provisioning", std::process::id()));
    let stack = match Stack::start(&dir, &[("LOCAL_FUNCTIONS", "outflow")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let sqs = stack.sqs().await;
    for (logical, (vis, max)) in &queues {
        let url = stack.var(&format!("{}_URL", snake(logical))).to_owned();
        assert!(!url.is_empty(), "{logical} was not provisioned");
        let attrs = match sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::VisibilityTimeout)
            .attribute_names(A::RedrivePolicy)
            .send()
            .await
        {
            Ok(o) => o.attributes().cloned().unwrap_or_default(),
            Err(e) => panic!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
        };
        assert_eq!(
            attrs.get(&A::VisibilityTimeout),
            Some(vis),
            "{logical} VisibilityTimeout"
        );
        let redrive: serde_json::Value =
            serde_json::from_str(attrs.get(&A::RedrivePolicy).map_or("{}", String::as_str))
                .unwrap_or_default();
        assert_eq!(
            redrive["maxReceiveCount"].to_string(),
            *max,
            "{logical} maxReceiveCount"
        );
        let dlq = logical.replace("Queue", "DLQ");
        assert_eq!(
            redrive["deadLetterTargetArn"],
            stack.var(&format!("{}_ARN", snake(&dlq))),
            "{logical} redrives to {dlq}"
        );
    }
    let ddb = stack.ddb().await;
    for key in [
        "PRESENCE_TABLE",
        "ATTENDANCE_TABLE",
        "MEMBERSHIP_TABLE",
        "MUTE_TABLE",
    ] {
        let table = stack.var(key);
        let described = ddb.describe_table().table_name(table).send().await;
        assert!(
            described.is_ok_and(|d| d.table().is_some_and(|t| !t.key_schema().is_empty())),
            "{key}={table} exists with a key"
        );
    }
}
