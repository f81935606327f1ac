//! Tables with the template's key schemas, and a count of the DynamoDB requests sent.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

/// Creates the TokenTable's shape: partition key `id` (S), nothing else.
pub async fn create_token_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    testkit::create_hash_table(ddb, name, "id").await;
}

/// Counts DynamoDB requests by operation (the `X-Amz-Target` header), as sent on the wire.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl RequestCounter {
    /// How many requests of `op` (`BatchGetItem`, ...) were sent.
    pub fn count(&self, op: &str) -> usize {
        self.0.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    /// Every operation counted.
    pub fn all(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap().clone()
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let op = target.rsplit('.').next().unwrap_or_default().to_owned();
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

/// A DynamoDB client for `sdk` that counts its requests.
pub fn counting_client(sdk: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, RequestCounter) {
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(counter.clone())
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}
