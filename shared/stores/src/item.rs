//! Attribute values in and out, the paginated read of one partition, and the retry pacing of
//! unprocessed batch items.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::StoreError;

/// An item as the SDK returns it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A string attribute of an item, if present and a string.
pub(crate) fn get_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// A non-negative integer attribute of an item: `Ok(None)` when absent, `Err` when present
/// but not a whole number.
pub(crate) fn get_n(item: &Item, name: &str) -> Result<Option<u64>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a whole number of seconds or ms")),
        Some(other) => Err(format!("{name} is {other:?}, not a number")),
    }
}

/// A boolean attribute of an item; absent is false.
pub(crate) fn get_bool(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

/// How many times a batch call is repeated for the items DynamoDB left unprocessed
/// (throttling) before the operation fails.
pub(crate) const BATCH_ATTEMPTS: u32 = 8;

/// The pause before retry `attempt` (1-based) of unprocessed items: 25 ms doubling, at most
/// 800 ms, as AWS recommends exponential backoff for `UnprocessedKeys`/`UnprocessedItems`.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(25u64.saturating_mul(1 << attempt.min(5)).min(800))
}

/// Every item of `table` whose partition key `key` (a string) is `value`, in sort-key order:
/// one strongly consistent Query, followed page by page (`LastEvaluatedKey`) for a partition
/// larger than DynamoDB's 1 MB page, so a single page costs one request.
pub(crate) async fn query_partition(
    client: &Client,
    table: &str,
    key: &str,
    value: &str,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let resp = client
            .query()
            .table_name(table)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":k", s(value))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::sdk("Query", table, &e))?;
        items.extend(resp.items.unwrap_or_default());
        match resp.last_evaluated_key.filter(|k| !k.is_empty()) {
            None => return Ok(items),
            Some(last) => start = Some(last),
        }
    }
}
