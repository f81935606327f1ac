//! The SQS sender: `SendMessageBatch` in chunks of at most 10 entries and at most 256 KiB,
//! each entry's failure mapped back to the message it came from.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use tracing::debug;

use crate::batch::RecordError;
use crate::deadletter::{Attribute, Attributes};

/// Most entries in one `SendMessageBatch` call (an SQS limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Most bytes of bodies plus attributes in one call (the classic SQS limit; kept although
/// SQS now allows 1 MiB, so the sender also works against older emulators).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A message to send: body and string attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body.
    pub body: String,
    /// String message attributes (at most 10); keys are usually constants.
    pub attributes: Vec<(Cow<'static, str>, String)>,
}

/// A notice for the downlink queue (§4.3): its body, and `mqttSecondTopic`, `mqttMessageId`
/// and `timestamp` as string attributes.
impl From<mapping::DownlinkRecord> for OutgoingMessage {
    fn from(d: mapping::DownlinkRecord) -> Self {
        Self {
            attributes: d
                .attributes()
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
            body: d.body,
        }
    }
}

impl OutgoingMessage {
    /// Bytes this message counts for against the batch limit.
    fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// SQS refused this entry.
    #[error("SQS refused the message: {code}: {message}")]
    Refused {
        /// The SQS error code.
        code: String,
        /// Its message.
        message: String,
        /// Whether SQS blames the message (not retryable) rather than itself.
        sender_fault: bool,
    },
    /// The whole call failed (network, throttling, credentials).
    #[error("SendMessageBatch failed: {0}")]
    Call(String),
    /// An entry could not be built (invalid attribute).
    #[error("message could not be built: {0}")]
    Build(String),
}

impl From<SendError> for RecordError {
    fn from(e: SendError) -> Self {
        match &e {
            SendError::Refused {
                sender_fault: true, ..
            }
            | SendError::Build(_) => RecordError::permanent("sqs_refused", e),
            SendError::Refused { .. } => RecordError::transient("sqs_refused", e),
            SendError::Call(_) => RecordError::transient("sqs_unavailable", e),
        }
    }
}

/// Splits message indices into chunks that fit one `SendMessageBatch` call.
pub fn chunk<M: Borrow<OutgoingMessage>>(messages: &[M]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, m) in messages.iter().enumerate() {
        let size = m.borrow().size();
        match chunks.last_mut() {
            Some(c) if c.len() < MAX_BATCH_ENTRIES && bytes + size <= MAX_BATCH_BYTES => {
                c.push(i);
                bytes += size;
            }
            _ => {
                chunks.push(vec![i]);
                bytes = size;
            }
        }
    }
    chunks
}

/// Sends messages to SQS queues; built once per container.
#[derive(Debug, Clone)]
pub struct SqsSender {
    client: aws_sdk_sqs::Client,
}

fn entry(id: usize, m: &OutgoingMessage) -> Result<SendMessageBatchRequestEntry, SendError> {
    let mut attrs = HashMap::with_capacity(m.attributes.len());
    for (k, v) in &m.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .map_err(|e| SendError::Build(e.to_string()))?;
        attrs.insert(k.to_string(), value);
    }
    SendMessageBatchRequestEntry::builder()
        .id(id.to_string())
        .message_body(&m.body)
        .set_message_attributes((!attrs.is_empty()).then_some(attrs))
        .build()
        .map_err(|e| SendError::Build(e.to_string()))
}

/// An attribute as the SDK sends it, whatever its type.
pub fn sdk_attribute(a: &Attribute) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type(&a.data_type)
        .set_string_value(a.string_value.clone())
        .set_binary_value(
            a.binary_value
                .clone()
                .map(aws_sdk_sqs::primitives::Blob::new),
        )
        .build()
        .map_err(|e| SendError::Build(e.to_string()))
}

/// An attribute as the SDK received it.
pub fn attribute_of(v: &MessageAttributeValue) -> Attribute {
    Attribute {
        data_type: v.data_type().to_owned(),
        string_value: v.string_value().map(str::to_owned),
        binary_value: v.binary_value().map(|b| b.as_ref().to_vec()),
    }
}

/// A received message's attributes.
pub fn attributes_of(m: &aws_sdk_sqs::types::Message) -> Attributes {
    m.message_attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), attribute_of(v)))
        .collect()
}

impl SqsSender {
    /// A sender over an SQS client.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Sends one message with attributes of any type (a dead letter, a redriven message);
    /// returns its new message ID.
    pub async fn send_one(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &Attributes,
    ) -> Result<String, SendError> {
        let mut attrs = HashMap::with_capacity(attributes.len());
        for (k, v) in attributes {
            attrs.insert(k.clone(), sdk_attribute(v)?);
        }
        let resp = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .set_message_attributes((!attrs.is_empty()).then_some(attrs))
            .send()
            .await
            .map_err(|e| {
                SendError::Call(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
            })?;
        Ok(resp.message_id().unwrap_or_default().to_owned())
    }

    /// Sends every message to `queue_url`; one result per message, in order. Chunks are sent
    /// concurrently. `messages` may hold the messages or references to them.
    pub async fn send_all<M: Borrow<OutgoingMessage> + Sync>(
        &self,
        queue_url: &str,
        messages: &[M],
    ) -> Vec<Result<(), SendError>> {
        let mut results: Vec<Result<(), SendError>> =
            vec![Err(SendError::Call("not sent".to_owned())); messages.len()];
        let calls = chunk(messages).into_iter().map(|indices| async move {
            let outcome = self.send_chunk(queue_url, messages, &indices).await;
            (indices, outcome)
        });
        for (indices, outcome) in futures::future::join_all(calls).await {
            match outcome {
                Ok(per_entry) => {
                    for (i, r) in per_entry {
                        results[i] = r;
                    }
                }
                Err(e) => {
                    for i in indices {
                        results[i] = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    async fn send_chunk<M: Borrow<OutgoingMessage>>(
        &self,
        queue_url: &str,
        messages: &[M],
        indices: &[usize],
    ) -> Result<Vec<(usize, Result<(), SendError>)>, SendError> {
        let mut out = Vec::with_capacity(indices.len());
        let mut entries = Vec::with_capacity(indices.len());
        for &i in indices {
            match entry(i, messages[i].borrow()) {
                Ok(e) => entries.push(e),
                Err(e) => out.push((i, Err(e))),
            }
        }
        if entries.is_empty() {
            return Ok(out);
        }
        let sent: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| !out.iter().any(|(j, _)| j == i))
            .collect();
        let resp = self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                SendError::Call(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
            })?;
        debug!(
            queue_url,
            sent = resp.successful().len(),
            failed = resp.failed().len(),
            "SendMessageBatch"
        );
        for i in sent {
            let id = i.to_string();
            let result = if resp.successful().iter().any(|s| s.id() == id) {
                Ok(())
            } else if let Some(f) = resp.failed().iter().find(|f| f.id() == id) {
                Err(SendError::Refused {
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                    sender_fault: f.sender_fault(),
                })
            } else {
                Err(SendError::Call(
                    "SQS returned no result for this entry".to_owned(),
                ))
            };
            out.push((i, result));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(bytes: usize) -> OutgoingMessage {
        OutgoingMessage {
            body: "x".repeat(bytes),
            attributes: vec![],
        }
    }

    #[test]
    fn chunks_hold_at_most_ten_entries() {
        let msgs: Vec<_> = (0..23).map(|_| msg(10)).collect();
        let sizes: Vec<usize> = chunk(&msgs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
    }

    #[test]
    fn chunks_stay_under_the_byte_limit() {
        let msgs: Vec<_> = (0..10).map(|_| msg(64 * 1024)).collect();
        let chunks = chunk(&msgs);
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        for c in &chunks {
            assert!(c.iter().map(|&i| msgs[i].size()).sum::<usize>() <= MAX_BATCH_BYTES);
        }
        let flat: Vec<usize> = chunks.concat();
        assert_eq!(
            flat,
            (0..10).collect::<Vec<_>>(),
            "every message once, in order"
        );
    }
}
