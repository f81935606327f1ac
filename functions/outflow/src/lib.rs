//! The outflow rule function (§5): uplink records (§4.1) in, backend messages (§4.2) out,
//! routed by parent topic to their backend queue and sent in batches.
//!
//! # Layout
//! - [`Function`]: built once per container from the environment; [`Function::handle`] is the
//!   per-invocation entry point, shared by the Lambda `main` and the local event-source runner.
//! - [`to_outgoing`]: a §4.2 message as an SQS message with exactly the §4.2 attributes.
//!
//! A record that fails validation fails alone: it is reported in `batchItemFailures`, retried
//! by the queue, and dead-lettered by its redrive policy; the rest of the batch goes through.

use std::borrow::Cow;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use kit::{
    BatchError, ConfigError, Env, Fanout, OutgoingMessage, Settler, SqsSender, process_batch,
};
use mapping::outflow::{keys, refusal};
use mapping::{BackendMessage, Routes, RulesConfig, map_uplink_body};
use tracing::{debug, info};

/// The outflow function: rules, routes and an SQS sender.
#[derive(Debug, Clone)]
pub struct Function {
    rules: RulesConfig,
    routes: Routes,
    sender: SqsSender,
    settler: Option<Settler>,
}

/// A §4.2 message as an SQS message with exactly the §4.2 attributes.
pub fn to_outgoing(message: BackendMessage) -> OutgoingMessage {
    let (body, attributes) = message.into_sqs();
    OutgoingMessage {
        body,
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    }
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(rules: RulesConfig, routes: Routes, sender: SqsSender) -> Self {
        Self {
            rules,
            routes,
            sender,
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

    /// Builds the function from the environment: the rules (`UPLINK_PARENTS`,
    /// `DOWNLINK_PARENTS`, limits) and `OUTFLOW_ROUTES` (`roomSend=<backend queue URL>`).
    pub fn from_env_with(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rules = env.rules()?;
        let spec = env.required(
            "OUTFLOW_ROUTES",
            "set it to <uplinkParent>=<backend queue URL>, e.g. roomSend=https://sqs.../backend",
        )?;
        let routes = Routes::parse(&spec, &rules).map_err(|e| ConfigError::Invalid {
            var: "OUTFLOW_ROUTES",
            value: spec.clone(),
            problem: e.to_string(),
        })?;
        Ok(
            Self::new(rules, routes, SqsSender::new(aws_sdk_sqs::Client::new(sdk)))
                .with_settler(Settler::from_env(env, sdk, "outflow")?),
        )
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await)
    }

    /// Handles one batch of uplink records.
    pub async fn handle(&self, mut event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(&mut event, self.settler.as_ref(), |records| async move {
            // Map every record; send the good ones grouped by destination queue.
            let mut fanout = Fanout::new(records.len());
            for record in &records {
                let _span = record.span.enter();
                let mapped =
                    map_uplink_body(record.body(), record.message_id, &self.rules, &self.routes);
                fanout.push(match mapped {
                    Ok(routed) => {
                        debug!(queue = routed.queue, parent = %routed.message.parent_topic, sub = %routed.message.second_topic, "mapped");
                        Ok(vec![(routed.queue, to_outgoing(routed.message))])
                    }
                    // A client's publish the rule cannot carry: its backend is told (see
                    // `mapping::outflow::refusal`); a record with no one to tell is
                    // dead-lettered with its reason.
                    Err(e) => match refusal(record.body(), &e, record.message_id, &self.rules, &self.routes) {
                        Some(refused) => {
                            info!(refused = refused.kind, reason = %e, queue = refused.routed.queue,
                                "publish refused; its backend is told");
                            let mut message = to_outgoing(refused.routed.message);
                            message.attributes.push((keys::REFUSED.into(), refused.kind.to_owned()));
                            Ok(vec![(refused.routed.queue, message)])
                        }
                        None => Err(e.into()),
                    },
                });
            }
            fanout
                .send_grouped(
                    |(queue, _)| *queue,
                    |queue, items| {
                        let messages: Vec<OutgoingMessage> =
                            items.into_iter().map(|(_, m)| m).collect();
                        async move { self.sender.send_all(queue, &messages).await }
                    },
                )
                .await
        })
        .await
    }
}
