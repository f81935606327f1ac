//! The inflow rule function (§5): downlink messages (§4.3) in, MQTT publishes at
//! `parent + subtopic` out, each a success only once the broker acknowledged it.
//!
//! # Layout
//! - [`Function`]: built once per container (one MQTT connection, reused across invocations);
//!   [`Function::handle`] is the per-invocation entry point, shared by the Lambda `main` and
//!   the local event-source runner.
//! - [`downlink_message`]: an SQS message seen as a §4.3 downlink message.
//!
//! In AWS the broker is IoT Core's `mqtts://<endpoint>:8883`, which authenticates the inflow by
//! its X.509 client certificate: `MQTT_SECRET_ID` names a Secrets Manager secret with
//! `certPem` and `keyPem` (and `caPem` only when the broker's CA is not a platform root; see
//! [`kit::Env::mqtt_settings`]). The local stack connects the same way, to Mosquitto's
//! certificate listener with the stack's CA as the platform root (`SSL_CERT_FILE`). A
//! certificate the broker refuses fails every record as retryable, and the log line says why.
//!
//! Every publish carries its message ID and timestamp as MQTT 5 user properties
//! (`mqttMessageId`, `timestamp`); the payload is published unchanged. A record that cannot be
//! published for a reason a retry cannot fix (bad sub-topic, bad P2P target, uplink parent,
//! oversize) fails with that reason logged and goes to the DLQ after the redrive policy's
//! receives; a record the broker did not acknowledge (broker down, connection lost, timeout)
//! fails as retryable.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use kit::{
    BatchError, ConfigError, Env, Fanout, MqttPublisher, PublishError, RecordError, Settler,
    process_batch,
};
use mapping::{AttrValue, DownlinkMessage, Publish, RulesConfig, downlink_to_publish};
use tracing::info;

/// The inflow function: rules and the MQTT publisher.
pub struct Function {
    rules: RulesConfig,
    publisher: MqttPublisher,
    settler: Option<Settler>,
}

/// An SQS message as a §4.3 downlink message (body and attributes).
pub fn downlink_message(message: &SqsMessage) -> DownlinkMessage<'_> {
    DownlinkMessage {
        body: message.body.as_deref().unwrap_or_default(),
        attributes: message
            .message_attributes
            .iter()
            .map(|(k, v)| {
                let value = match &v.string_value {
                    Some(s) => AttrValue::Text(s),
                    None => AttrValue::Binary,
                };
                (k.as_str(), value)
            })
            .collect(),
    }
}

fn publish_error(e: PublishError) -> RecordError {
    if e.retryable() {
        RecordError::transient("broker_unavailable", e)
    } else {
        RecordError::permanent("broker_refused", e)
    }
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(rules: RulesConfig, publisher: MqttPublisher) -> Self {
        Self {
            rules,
            publisher,
            settler: None,
        }
    }

    /// The same function settling its failed records with `settler` (dead letters with their
    /// reason, retries after backoff); [`Function::from_env_with`] builds one from the
    /// environment ([`kit::Settler::from_env`]).
    #[must_use]
    pub fn with_settler(self, settler: Settler) -> Self {
        Self {
            settler: Some(settler),
            ..self
        }
    }

    /// Builds the function from the environment: the rules and the MQTT settings (see
    /// [`kit::Env::mqtt_settings`]).
    pub async fn from_env_with(
        env: &Env,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let rules = env.rules()?;
        let settings = env.mqtt_settings(sdk).await?;
        info!(?settings, "inflow configured");
        Ok(Self::new(rules, MqttPublisher::new(settings))
            .with_settler(Settler::from_env(env, sdk, "inflow")?))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await).await
    }

    /// The publisher (for hosts that want to disconnect it cleanly on shutdown).
    pub fn publisher(&self) -> &MqttPublisher {
        &self.publisher
    }

    /// Handles one batch of downlink messages: all publishes are pipelined on the one
    /// connection, and each record's outcome waits for its own acknowledgement.
    pub async fn handle(&self, mut event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let now = kit::now_ms();
        process_batch(&mut event, self.settler.as_ref(), |records| async move {
            let mut fanout = Fanout::new(records.len());
            for record in &records {
                let message = downlink_message(record.message);
                fanout.push(
                    downlink_to_publish(&message, record.message_id, now, &self.rules)
                        .map(|publish| vec![publish])
                        .map_err(Into::into),
                );
            }
            let refs: Vec<&Publish> = fanout.items().collect();
            let started = std::time::Instant::now();
            let results = self.publisher.publish_all(&refs).await;
            if !refs.is_empty() {
                let metrics = kit::Metrics::new("inflow");
                metrics.millis("PublishLatency", started.elapsed().as_secs_f64() * 1000.0);
                metrics.emit();
            }
            for ((i, p), result) in fanout.indexed().zip(&results) {
                if result.is_ok() {
                    records[i].span.in_scope(|| {
                        info!(topic = %p.topic, qos = p.qos.level(), mqtt_message_id = %p.message_id, "published");
                    });
                }
            }
            fanout.settle(results.into_iter().map(|r| r.map_err(publish_error)))
        })
        .await
    }
}
