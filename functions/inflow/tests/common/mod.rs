//! Helpers shared by the inflow's broker tests (`mod common;` in each).

use aws_lambda_events::sqs::SqsEvent;

/// A downlink event of chat messages to room 1, one per index of `range`: SQS message ID
/// `sqs-<i>`, body `{"msg":"n<i>"}`, `mqttMessageId` `m-<i>`.
pub fn chat_batch(range: std::ops::Range<usize>) -> SqsEvent {
    let records: Vec<serde_json::Value> = range
        .map(|i| {
            serde_json::json!({
                "messageId": format!("sqs-{i}"),
                "body": format!("{{\"msg\":\"n{i}\"}}"),
                "messageAttributes": {
                    "mqttSecondTopic": { "stringValue": "/message/1", "dataType": "String" },
                    "mqttMessageId": { "stringValue": format!("m-{i}"), "dataType": "String" }
                }
            })
        })
        .collect();
    match serde_json::from_value(serde_json::json!({ "Records": records })) {
        Ok(event) => event,
        Err(e) => panic!("a test SQS event: {e}"),
    }
}
