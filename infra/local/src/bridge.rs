//! The IoT rules' SQS actions, locally: the broker plugin republishes each §4.1 record on
//! `$classroom/uplink` and publishes each lifecycle event on its AWS IoT topic
//! `$aws/events/presence/{connected|disconnected}/<clientId>` (QoS 1); the bridge
//! subscribes to both as the backend identity with a persistent session (cleanSession=false)
//! and manual acknowledgements, sends each message body unchanged to its queue, and only then
//! sends the PUBACK.
//!
//! # What happens to each message
//! Each message is routed once ([`plan`]: the first route whose filter matches its topic, or
//! none) and acknowledged exactly once:
//! - **accepted** by SQS: acknowledged.
//! - **refused for good** (SQS blames the message: too large, invalid characters): sent to the
//!   rule error queue as the IoT rule's error action would ([`error_report`]: the topic, the
//!   reason, a timestamp, the original payload base64-encoded or, when too large, its start
//!   and its size), then acknowledged.
//! - **not taken for now** (SQS unreachable, throttled, a server error): retried with a capped
//!   backoff until SQS takes it. When the bridge is asked to stop meanwhile, it returns without
//!   acknowledging, so the broker redelivers the message to the persistent session on the
//!   next start (as it does for one in flight when the bridge stopped or died).
//! - **no route**: acknowledged and ignored (logged).
//!
//! # Sizes
//! SendMessageBatch calls hold at most 10 entries and 256 KiB ([`kit::sqs::chunk`]). The
//! broker refuses publishes over 128 KB (`message_size_limit 131072` in the stack's
//! mosquitto.conf, AWS IoT Core's limit), so a §4.1 record (the payload base64-encoded, 4/3 of
//! it, plus the topic, client ID and timestamp) stays under [`MAX_INCOMING_PACKET`].

use std::time::Duration;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kit::OutgoingMessage;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::shutdown::{self, Shutdown};

/// The largest MQTT packet the bridge accepts from the broker. rumqttc closes the connection
/// on a larger one, and the broker would redeliver it to the persistent session on every
/// reconnect, for ever: so this must stay comfortably above the largest message the broker
/// can send the bridge. That is a §4.1 record of a publish at the broker's limit
/// (`message_size_limit 131072`): 4/3 × 128 KiB = 170.7 KiB of base64 plus under 1 KiB of
/// topic, client ID and timestamp, plus the PUBLISH header (`$classroom/uplink`, packet ID,
/// at most 5 bytes of fixed header). 256 KiB of payload plus 4 KiB of headers leaves room.
pub const MAX_INCOMING_PACKET: usize = 256 * 1024 + 4 * 1024;

/// Most base64 characters of the original payload an error report carries: the report stays
/// well under SQS's classic 256 KiB message limit with the reason and the other fields.
pub const MAX_REPORT_PAYLOAD_CHARS: usize = 192 * 1024;

/// Most characters of SQS's error message kept in an error report.
const MAX_REASON_CHARS: usize = 1000;

/// Publishes taken from the broker per round, before they are chunked by bytes.
const ROUND: usize = 10;

/// The bridge's settings.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS (`mqtts://`): the backend's client certificate and the roots, as the inflow's
    /// ([`kit::ClientTls`]); `None` for plain MQTT.
    pub tls: Option<kit::ClientTls>,
    /// Username and password, for a password broker (the local stack has none: the backend
    /// signs in with its certificate).
    pub credentials: Option<(String, String)>,
    /// The persistent session's client ID.
    pub client_id: String,
    /// MQTT topic filter -> SQS queue URL (the first matching filter wins).
    pub routes: Vec<(String, String)>,
    /// The rules' error action: the queue (the template's `RuleErrorQueue`) that gets a
    /// report of each message SQS refused for good.
    pub error_queue_url: String,
}

/// Runs the bridge until shutdown.
pub async fn run(sqs: aws_sdk_sqs::Client, settings: BridgeSettings, mut stop: Shutdown) {
    let mut opts = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    opts.set_clean_session(false);
    opts.set_manual_acks(true);
    opts.set_keep_alive(Duration::from_secs(15));
    if let Some((user, password)) = &settings.credentials {
        opts.set_credentials(user, password);
    }
    if let Some(tls) = &settings.tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
    }
    // The bridge only sends SUBSCRIBEs and PUBACKs: the outgoing limit does not matter.
    opts.set_max_packet_size(MAX_INCOMING_PACKET, MAX_INCOMING_PACKET);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let (tx, rx) = mpsc::channel::<Publish>(1000);
    let forwarder = Forwarder {
        sqs,
        client: client.clone(),
        routes: settings.routes.clone(),
        error_queue_url: settings.error_queue_url.clone(),
        stop: stop.clone(),
    };
    let worker = tokio::spawn(forwarder.run(rx));
    loop {
        let event = tokio::select! {
            () = shutdown::wait(&mut stop) => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                for (topic, _) in &settings.routes {
                    if let Err(e) = client.subscribe(topic, QoS::AtLeastOnce).await {
                        warn!(error = %e, topic, "subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "broker connection lost; reconnecting");
                tokio::select! {
                    () = shutdown::wait(&mut stop) => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    // Let the worker finish the records in hand (their PUBACKs need the event loop polled),
    // then DISCONNECT. A record SQS does not take now is left unacknowledged at once (the
    // worker sees the stop in its retry loop); anything still unacknowledged after 5 s stays
    // with the broker's persistent session and is redelivered on the next start.
    drop(tx);
    let mut worker = worker;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = &mut worker => break,
            () = tokio::time::sleep_until(deadline) => {
                worker.abort();
                break;
            }
            e = eventloop.poll() => {
                if e.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let _ = client.disconnect().await;
    // Send the DISCONNECT (the event loop reports an error once the connection is closed).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    info!("bridge stopped");
}

/// Where each message of a round goes, decided once per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per route (in the routes' order), the indices of its messages, in arrival order.
    pub per_route: Vec<Vec<usize>>,
    /// The indices of the messages no route matches.
    pub unrouted: Vec<usize>,
}

/// Routes each topic once ([`route_of`]): every index lands in exactly one place.
pub fn plan<'a>(routes: &[(String, String)], topics: impl IntoIterator<Item = &'a str>) -> Plan {
    let mut plan = Plan {
        per_route: vec![Vec::new(); routes.len()],
        unrouted: Vec::new(),
    };
    for (i, topic) in topics.into_iter().enumerate() {
        match route_of(routes, topic).and_then(|r| plan.per_route.get_mut(r)) {
            Some(mine) => mine.push(i),
            None => plan.unrouted.push(i),
        }
    }
    plan
}

/// The index of the first route whose filter matches `topic`.
pub fn route_of(routes: &[(String, String)], topic: &str) -> Option<usize> {
    routes.iter().position(|(filter, _)| matches(topic, filter))
}

/// MQTT topic matching (`+` one level, `#` the rest), `$` topics included: rumqttc's
/// `matches` never matches a `$` topic, and these are all the bridge reads. As in MQTT, a
/// wildcard in the first level does not match a `$` topic.
fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// The bridge was asked to stop while a message was still waiting for SQS: it is left
/// unacknowledged (the broker redelivers it on the next start).
#[derive(Debug)]
struct Stopped;

/// What SQS made of one call or one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// Worth retrying: SQS unreachable, throttled, a server error, or a refusal SQS does not
    /// blame on the message (a missing queue or denied access is the stack's problem: the
    /// record waits for it to be fixed).
    Transient(String),
    /// SQS blames the message: it will never be accepted.
    Permanent(String),
}

/// Error codes (the last `.`/`#`-separated part) by which SQS refuses a whole call because
/// of what the messages hold.
const MESSAGE_FAULT_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidMessageContents",
    "BatchRequestTooLong",
    "MessageTooLong",
    "InvalidAttributeName",
    "InvalidAttributeValue",
];

/// Error codes of throttling (transient whatever their HTTP status).
const THROTTLING_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "KmsThrottled",
    "OverLimit",
];

fn short_code(code: &str) -> &str {
    code.rsplit(['.', '#']).next().unwrap_or(code)
}

/// Classifies a failed call: permanent only when SQS blames the request's content.
fn classify<E>(e: &SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
    let SdkError::ServiceError(service) = e else {
        // Construction, timeout, dispatch (connection refused) and response errors.
        return Failure::Transient(text);
    };
    let status = service.raw().status().as_u16();
    let code = service.err().code().map(short_code).unwrap_or_default();
    if status >= 500 || status == 429 || THROTTLING_CODES.contains(&code) {
        Failure::Transient(text)
    } else if MESSAGE_FAULT_CODES.contains(&code) {
        let message = service.err().message().unwrap_or_default();
        Failure::Permanent(format!("{code}: {message}"))
    } else {
        Failure::Transient(text)
    }
}

/// The per-queue sender and acknowledger.
struct Forwarder {
    sqs: aws_sdk_sqs::Client,
    client: AsyncClient,
    routes: Vec<(String, String)>,
    error_queue_url: String,
    stop: Shutdown,
}

impl Forwarder {
    /// Takes publishes in arrival order, routes each once, sends them per queue in chunks of
    /// at most 10 entries and 256 KiB, and acknowledges each one exactly once.
    async fn run(mut self, mut rx: mpsc::Receiver<Publish>) {
        while let Some(first) = rx.recv().await {
            let mut round = vec![first];
            while round.len() < ROUND {
                match rx.try_recv() {
                    Ok(p) => round.push(p),
                    Err(_) => break,
                }
            }
            let plan = plan(&self.routes, round.iter().map(|p| p.topic.as_str()));
            for (route, indices) in plan.per_route.iter().enumerate() {
                if indices.is_empty() {
                    continue;
                }
                let Some(url) = self.routes.get(route).map(|(_, url)| url.clone()) else {
                    continue;
                };
                let mine: Vec<&Publish> = indices.iter().filter_map(|&i| round.get(i)).collect();
                if self.deliver(&url, &mine).await.is_err() {
                    info!("stopping with records not taken by SQS: left to the broker's session");
                    return;
                }
            }
            for p in plan.unrouted.iter().filter_map(|&i| round.get(i)) {
                warn!(topic = %p.topic, "no route; acknowledged and ignored");
                self.ack(p).await;
            }
        }
    }

    async fn ack(&self, p: &Publish) {
        if let Err(e) = self.client.ack(p).await {
            warn!(error = %e, topic = %p.topic, "PUBACK not queued");
        }
    }

    /// Sends `publishes` to `url` until each is accepted (acknowledged) or refused for good
    /// (reported to the error queue, then acknowledged).
    async fn deliver(&mut self, url: &str, publishes: &[&Publish]) -> Result<(), Stopped> {
        let messages: Vec<OutgoingMessage> = publishes
            .iter()
            .map(|p| OutgoingMessage {
                body: String::from_utf8_lossy(&p.payload).into_owned(),
                attributes: Vec::new(),
            })
            .collect();
        let mut pending: Vec<usize> = (0..publishes.len()).collect();
        let mut backoff = Duration::from_millis(200);
        while !pending.is_empty() {
            let mut retry: Vec<usize> = Vec::new();
            let subset: Vec<&OutgoingMessage> =
                pending.iter().filter_map(|&i| messages.get(i)).collect();
            // Chunks of indices into `messages`; a chunk refused as a whole for its content is
            // split into single entries, so only the guilty one is refused.
            let mut chunks: Vec<Vec<usize>> = kit::sqs::chunk(&subset)
                .into_iter()
                .map(|c| {
                    c.into_iter()
                        .filter_map(|k| pending.get(k).copied())
                        .collect()
                })
                .collect();
            chunks.reverse();
            while let Some(chunk) = chunks.pop() {
                match self.send_chunk(url, &messages, &chunk).await {
                    Ok(outcomes) => {
                        for (i, outcome) in outcomes {
                            let Some(p) = publishes.get(i) else { continue };
                            match outcome {
                                None => self.ack(p).await,
                                Some(Failure::Permanent(reason)) => {
                                    self.refuse(url, p, &reason).await?;
                                }
                                Some(Failure::Transient(reason)) => {
                                    warn!(
                                        queue = url,
                                        reason, "SQS did not take a record; retrying"
                                    );
                                    retry.push(i);
                                }
                            }
                        }
                    }
                    Err(Failure::Permanent(reason)) if chunk.len() > 1 => {
                        warn!(
                            queue = url,
                            reason,
                            entries = chunk.len(),
                            "SQS refused the batch; sending its entries one by one"
                        );
                        chunks.extend(chunk.iter().rev().map(|&i| vec![i]));
                    }
                    Err(Failure::Permanent(reason)) => {
                        for p in chunk.iter().filter_map(|&i| publishes.get(i)) {
                            self.refuse(url, p, &reason).await?;
                        }
                    }
                    Err(Failure::Transient(reason)) => {
                        warn!(queue = url, reason, "SQS send failed; retrying");
                        retry.extend(chunk);
                    }
                }
            }
            pending = retry;
            if !pending.is_empty() {
                self.pause(&mut backoff).await?;
            }
        }
        Ok(())
    }

    /// Waits `backoff` (then doubles it, up to 5 s), or returns [`Stopped`] at once when the
    /// bridge is asked to stop.
    async fn pause(&mut self, backoff: &mut Duration) -> Result<(), Stopped> {
        if *self.stop.borrow() {
            return Err(Stopped);
        }
        tokio::select! {
            () = shutdown::wait(&mut self.stop) => return Err(Stopped),
            () = tokio::time::sleep(*backoff) => {}
        }
        *backoff = (*backoff * 2).min(Duration::from_secs(5));
        Ok(())
    }

    /// One SendMessageBatch call: per entry, `None` when accepted or why not.
    async fn send_chunk(
        &self,
        url: &str,
        messages: &[OutgoingMessage],
        chunk: &[usize],
    ) -> Result<Vec<(usize, Option<Failure>)>, Failure> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut entries = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let Some(m) = messages.get(i) else { continue };
            match SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .build()
            {
                Ok(e) => entries.push(e),
                Err(e) => out.push((i, Some(Failure::Permanent(e.to_string())))),
            }
        }
        if entries.is_empty() {
            return Ok(out);
        }
        let resp = self
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        for &i in chunk {
            if out.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let id = i.to_string();
            let outcome = if resp.successful().iter().any(|s| s.id() == id) {
                None
            } else if let Some(f) = resp.failed().iter().find(|f| f.id() == id) {
                let reason = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                Some(if f.sender_fault() {
                    Failure::Permanent(reason)
                } else {
                    Failure::Transient(reason)
                })
            } else {
                Some(Failure::Transient(
                    "SQS returned no result for this entry".to_owned(),
                ))
            };
            out.push((i, outcome));
        }
        Ok(out)
    }

    /// The error action: reports `p` to the error queue, then acknowledges it. A transient
    /// failure of the error queue is retried like any send (the record is not lost meanwhile:
    /// it is not acknowledged). If the error queue refuses the report for good, the record is
    /// logged and acknowledged anyway: nothing else could ever take it, and keeping it would
    /// have the broker redeliver it, and the bridge refuse it again, for ever.
    async fn refuse(&mut self, url: &str, p: &Publish, reason: &str) -> Result<(), Stopped> {
        warn!(queue = url, topic = %p.topic, bytes = p.payload.len(), reason, "SQS refused a record for good; reporting it to the rule error queue");
        let report = error_report(&p.topic, &p.payload, url, reason, kit::now_ms());
        let mut backoff = Duration::from_millis(200);
        loop {
            let sent = self
                .sqs
                .send_message()
                .queue_url(&self.error_queue_url)
                .message_body(&report)
                .send()
                .await;
            match sent.map_err(|e| classify(&e)) {
                Ok(_) => break,
                Err(Failure::Permanent(why)) => {
                    error!(
                        error_queue = self.error_queue_url,
                        topic = %p.topic,
                        bytes = p.payload.len(),
                        reason,
                        error = why,
                        "the rule error queue refused the report too; record dropped"
                    );
                    break;
                }
                Err(Failure::Transient(why)) => {
                    warn!(
                        error_queue = self.error_queue_url,
                        error = why,
                        "error queue send failed; retrying"
                    );
                    self.pause(&mut backoff).await?;
                }
            }
        }
        self.ack(p).await;
        Ok(())
    }
}

/// The error action's report, in the shape of AWS IoT's (`ruleName` aside): the topic the
/// message arrived on, when (`timestamp`, ms), the failed action and its error, the client ID
/// when the message is a record or event that names one, and the message base64-encoded
/// (`base64OriginalPayload`: what the SQS action would have sent, so replaying it is decoding
/// it into the queue). A message whose base64 would exceed [`MAX_REPORT_PAYLOAD_CHARS`] is cut
/// to its start, with `originalPayloadTruncated: true`; `originalPayloadBytes` is always its
/// full size.
pub fn error_report(
    topic: &str,
    payload: &[u8],
    queue_url: &str,
    reason: &str,
    now_ms: u64,
) -> String {
    let max_raw = MAX_REPORT_PAYLOAD_CHARS / 4 * 3;
    let truncated = payload.len() > max_raw;
    let kept = payload.get(..max_raw).unwrap_or(payload);
    let client_id = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            v.get("clientId")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    let mut report = serde_json::json!({
        "topic": topic,
        "timestamp": now_ms,
        "failures": [{
            "failedAction": "SqsAction",
            "failedResource": queue_url,
            "errorMessage": reason,
        }],
        "base64OriginalPayload": BASE64.encode(kept),
        "originalPayloadBytes": payload.len(),
        "originalPayloadTruncated": truncated,
    });
    if let (Some(id), Some(obj)) = (client_id, report.as_object_mut()) {
        obj.insert("clientId".to_owned(), serde_json::Value::String(id));
    }
    report.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use proptest::prelude::*;

    use super::*;

    fn routes() -> Vec<(String, String)> {
        vec![
            ("$classroom/uplink".to_owned(), "uplink".to_owned()),
            ("$aws/events/presence/#".to_owned(), "presence".to_owned()),
        ]
    }

    #[test]
    fn records_and_lifecycle_events_go_to_their_queues() {
        let routes = routes();
        assert_eq!(route_of(&routes, "$classroom/uplink"), Some(0));
        assert_eq!(
            route_of(&routes, "$aws/events/presence/connected/GID_student@@@001"),
            Some(1)
        );
        assert_eq!(
            route_of(
                &routes,
                "$aws/events/presence/disconnected/GID_student@@@001"
            ),
            Some(1)
        );
        assert_eq!(route_of(&routes, "room/message/1"), None);
        assert_eq!(route_of(&routes, "$classroom/uplink/x"), None);
        assert_eq!(
            route_of(&[("#".to_owned(), "q".to_owned())], "$classroom/uplink"),
            None
        );
    }

    #[test]
    fn a_wildcard_routed_lifecycle_event_is_routed_and_not_unrouted() {
        let p = plan(
            &routes(),
            [
                "$aws/events/presence/connected/a",
                "$classroom/uplink",
                "elsewhere",
            ],
        );
        assert_eq!(
            p,
            Plan {
                per_route: vec![vec![1], vec![0]],
                unrouted: vec![2],
            }
        );
    }

    fn topic() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("$classroom/uplink".to_owned()),
            Just("$classroom/uplink/x".to_owned()),
            "[a-z]{1,3}".prop_map(|id| format!("$aws/events/presence/connected/{id}")),
            "[a-z]{1,3}".prop_map(|id| format!("$aws/events/presence/disconnected/{id}")),
            "[a-z$+#/]{0,12}",
        ]
    }

    fn filter() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("$classroom/uplink".to_owned()),
            Just("$aws/events/presence/#".to_owned()),
            Just("$aws/events/presence/+/+".to_owned()),
            Just("#".to_owned()),
            "[a-z+/]{1,8}",
        ]
    }

    proptest! {
        #[test]
        fn every_message_is_planned_exactly_once(
            filters in proptest::collection::vec(filter(), 0..4),
            topics in proptest::collection::vec(topic(), 0..25),
        ) {
            let routes: Vec<(String, String)> = filters
                .into_iter()
                .enumerate()
                .map(|(i, f)| (f, format!("q{i}")))
                .collect();
            let p = plan(&routes, topics.iter().map(String::as_str));
            prop_assert_eq!(p.per_route.len(), routes.len());
            let mut seen = vec![0usize; topics.len()];
            for (r, mine) in p.per_route.iter().enumerate() {
                for &i in mine {
                    seen[i] += 1;
                    // A routed message belongs to its first matching route, never to none.
                    prop_assert_eq!(route_of(&routes, &topics[i]), Some(r));
                }
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "arrival order kept");
            }
            for &i in &p.unrouted {
                seen[i] += 1;
                prop_assert_eq!(route_of(&routes, &topics[i]), None, "a routed message reported unrouted");
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "each index exactly once: {:?}", seen);
        }
    }

    #[test]
    fn a_report_carries_topic_reason_time_and_the_payload() {
        let record = br#"{"clientId":"GID_student@@@001","payload":"aGk="}"#;
        let r: serde_json::Value = serde_json::from_str(&error_report(
            "$classroom/uplink",
            record,
            "http://q/uplink",
            "InvalidParameterValue: too long",
            1_700_000_000_000,
        ))
        .unwrap();
        assert_eq!(r["topic"], "$classroom/uplink");
        assert_eq!(r["timestamp"], 1_700_000_000_000u64);
        assert_eq!(r["clientId"], "GID_student@@@001");
        assert_eq!(
            r["failures"][0]["errorMessage"],
            "InvalidParameterValue: too long"
        );
        assert_eq!(r["failures"][0]["failedResource"], "http://q/uplink");
        assert_eq!(r["originalPayloadTruncated"], false);
        assert_eq!(r["originalPayloadBytes"], record.len());
        let back = BASE64
            .decode(r["base64OriginalPayload"].as_str().unwrap())
            .unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_report_of_a_huge_payload_is_cut_and_keeps_its_size() {
        let payload = vec![b'x'; 400 * 1024];
        let report = error_report("t", &payload, "q", &"r".repeat(5000), 1);
        assert!(report.len() < 256 * 1024, "{} bytes", report.len());
        let r: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(r["originalPayloadTruncated"], true);
        assert_eq!(r["originalPayloadBytes"], payload.len());
        assert!(r.get("clientId").is_none());
        let kept = BASE64
            .decode(r["base64OriginalPayload"].as_str().unwrap())
            .unwrap();
        assert!(!kept.is_empty() && payload.starts_with(&kept));
    }

    #[test]
    fn error_codes_are_compared_without_their_prefix() {
        assert_eq!(
            short_code("AWS.SimpleQueueService.BatchRequestTooLong"),
            "BatchRequestTooLong"
        );
        assert_eq!(
            short_code("com.amazonaws.sqs#InvalidParameterValue"),
            "InvalidParameterValue"
        );
        assert_eq!(short_code("RequestThrottled"), "RequestThrottled");
    }
}
