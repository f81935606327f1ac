//! The IoT rules' SQS actions, locally: the broker plugin republishes each §4.1 record on
//! `$classroom/uplink` and publishes each lifecycle event on its AWS IoT topic
//! `$aws/events/presence/{connected|disconnected}/<clientId>` (QoS 1); the bridge
//! subscribes to both as the backend identity with a persistent session (cleanSession=false)
//! and manual acknowledgements, sends each message body unchanged to its queue, and only then
//! sends the PUBACK. A message whose send failed is retried until SQS takes it; one that was
//! in flight when the bridge stopped is redelivered by the broker to the persistent session.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::shutdown::{self, Shutdown};

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
    opts.set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let (tx, rx) = mpsc::channel::<Publish>(1000);
    let worker = tokio::spawn(forward(sqs, client.clone(), settings.routes.clone(), rx));
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
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // Let the worker finish the records in hand (their PUBACKs need the event loop polled),
    // then DISCONNECT. Anything still unacknowledged after 5 s stays with the broker's
    // persistent session and is redelivered on the next start.
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

/// Takes publishes in arrival order, sends them per queue in batches of up to 10, and
/// acknowledges each one once SQS accepted it.
async fn forward(
    sqs: aws_sdk_sqs::Client,
    client: AsyncClient,
    routes: Vec<(String, String)>,
    mut rx: mpsc::Receiver<Publish>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 10 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        for (i, (_, url)) in routes.iter().enumerate() {
            let mine: Vec<&Publish> = batch
                .iter()
                .filter(|p| route_of(&routes, &p.topic) == Some(i))
                .collect();
            if !mine.is_empty() {
                send_until_accepted(&sqs, &client, url, &mine).await;
            }
        }
        for p in batch
            .iter()
            .filter(|p| !routes.iter().any(|(t, _)| p.topic == *t))
        {
            warn!(topic = %p.topic, "no route; acknowledged and ignored");
            let _ = client.ack(p).await;
        }
    }
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

async fn send_until_accepted(
    sqs: &aws_sdk_sqs::Client,
    client: &AsyncClient,
    url: &str,
    publishes: &[&Publish],
) {
    let mut pending: Vec<usize> = (0..publishes.len()).collect();
    let mut backoff = Duration::from_millis(200);
    while !pending.is_empty() {
        let entries: Vec<SendMessageBatchRequestEntry> = pending
            .iter()
            .filter_map(|&i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(String::from_utf8_lossy(&publishes[i].payload).into_owned())
                    .build()
                    .ok()
            })
            .collect();
        match sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for ok in out.successful() {
                    if let Some(p) = ok.id().parse::<usize>().ok().and_then(|i| publishes.get(i)) {
                        let _ = client.ack(p).await;
                    }
                }
                let failed: Vec<usize> = out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect();
                for f in out.failed() {
                    warn!(
                        queue = url,
                        code = f.code(),
                        message = f.message().unwrap_or(""),
                        "SQS refused a record; retrying"
                    );
                }
                pending = failed;
            }
            Err(e) => {
                warn!(queue = url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS send failed; retrying");
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn records_and_lifecycle_events_go_to_their_queues() {
        let routes = vec![
            ("$classroom/uplink".to_owned(), "uplink".to_owned()),
            ("$aws/events/presence/#".to_owned(), "presence".to_owned()),
        ];
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
}
