//! The signing key set, read from Secrets Manager at cold start and re-read when it is older
//! than the refresh interval, so a rotation (a new current key in the secret) reaches running
//! containers without a redeploy. A failed re-read keeps the set we have: issuing with the
//! previous current key is still valid for every verifier until that key is retired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signin::{KeyError, KeySet};
use tokio::sync::Mutex;

/// Why the key set could not be read. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// Secrets Manager did not answer with a string.
    #[error(transparent)]
    Secret(#[from] kit::SecretError),
    /// The secret is not a valid key set.
    #[error("the secret is not a valid key set: {0}")]
    Keys(#[from] KeyError),
}

#[derive(Debug)]
struct Cached {
    keys: Arc<KeySet>,
    /// When we last tried to read the secret (successfully or not).
    checked_at: Instant,
}

/// The key set with its refresh rule.
#[derive(Debug)]
pub(crate) struct KeyCache {
    sdk: aws_config::SdkConfig,
    secret_id: String,
    refresh: Duration,
    cached: Mutex<Cached>,
}

async fn read(sdk: &aws_config::SdkConfig, secret_id: &str) -> Result<KeySet, KeysError> {
    let text = kit::secret_string(sdk, secret_id).await?;
    Ok(KeySet::from_json(&text)?)
}

impl KeyCache {
    /// Reads the key set once; fails when it cannot (a cold start must not go on without it).
    pub(crate) async fn load(
        sdk: &aws_config::SdkConfig,
        secret_id: &str,
        refresh: Duration,
    ) -> Result<Self, KeysError> {
        let keys = read(sdk, secret_id).await?;
        tracing::info!(
            secret_id,
            current_kid = keys.current_kid(),
            "signing keys loaded"
        );
        Ok(Self {
            sdk: sdk.clone(),
            secret_id: secret_id.to_owned(),
            refresh,
            cached: Mutex::new(Cached {
                keys: Arc::new(keys),
                checked_at: Instant::now(),
            }),
        })
    }

    /// The key set to use now: the cached one, re-read first when it is older than the
    /// refresh interval (0: on every call). When the re-read fails the cached set is kept (a
    /// warning is logged) and the next attempt waits another interval.
    pub(crate) async fn get(&self) -> Arc<KeySet> {
        let mut cached = self.cached.lock().await;
        if cached.checked_at.elapsed() < self.refresh {
            return cached.keys.clone();
        }
        match read(&self.sdk, &self.secret_id).await {
            Ok(keys) => {
                if keys.current_kid() != cached.keys.current_kid() {
                    tracing::info!(
                        secret_id = %self.secret_id,
                        current_kid = keys.current_kid(),
                        previous_kid = cached.keys.current_kid(),
                        "signing keys rotated"
                    );
                }
                cached.keys = Arc::new(keys);
            }
            Err(e) => tracing::warn!(
                secret_id = %self.secret_id,
                error = %e,
                current_kid = cached.keys.current_kid(),
                "could not re-read the signing keys; keeping the cached set"
            ),
        }
        cached.checked_at = Instant::now();
        cached.keys.clone()
    }
}
