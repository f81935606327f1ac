//! The AWS IoT Core custom authorizer (§8): every classroom CONNECT, browser (MQTT over
//! WSS, `?x-amz-customauthorizer-name=<name>`) or native (MQTT on 443 with ALPN `mqtt`, the
//! name in the username's query), reaches this function with the MQTT password base64-encoded.
//! The password is a token, or Alibaba's `R|<token>|W|<token>`; the answer is the IoT policy of
//! exactly what the token grants.
//!
//! # Layout
//! - [`decide`]: the pure part, no IO: the credentials an event carries, the answer for a
//!   grant (policy documents, `principalId`, disconnect and refresh times), the answer for a
//!   refusal, and [`decide::SignInRefusal`] with its log kind and Alibaba code.
//! - [`Function`]: built once per container ([`Function::from_env`]: the key set read from
//!   Secrets Manager, the TokenTable adapter); [`Function::handle`] is one invocation.
//! - `main.rs`: cold start and the runtime loop.
//!
//! # One CONNECT
//! 1. `now` is read once.
//! 2. The client ID and the decoded password come from the event ([`decide::credentials`]).
//! 3. [`signin::verify_password`]: format, key, signature, expiry, the token's client ID
//!    equal to the CONNECT's.
//! 4. The grant's revocations: one `BatchGetItem` of its token records and its client's
//!    revoke-all record ([`stores::TokenTable::revocations_for`]), checked with
//!    [`signin::Revocations::check`].
//! 5. The policy ([`signin::iot::policy_documents`]): at most 10 documents of 2,048
//!    characters.
//!
//! Every input gets an answer and nothing panics: a refusal is `isAuthenticated: false` with no
//! policy, logged once with its kind, Alibaba code, client ID and token IDs (never the password
//! or a token). A DynamoDB failure or timeout refuses (a revoked token cannot be told from a
//! valid one) and is logged as an error. IoT Core calls the function again every
//! `refreshAfterInSeconds` (300 s) while the client stays connected, so a revocation cuts a live
//! connection within 300 s; `disconnectAfterInSeconds` cannot be below 300 s, so the cloud
//! cannot end a connection sooner than that after it starts, whatever the token's expiry.
//!
//! The key set is read once per container (rotation: infra/DEPLOY.md).

pub mod decide;

use std::time::Duration;

use aws_lambda_events::iot::IoTCoreCustomAuthorizerResponse;
use kit::{ConfigError, Env};
use serde_json::Value;
use signin::KeySet;
use stores::TokenTable;
use tracing::{error, info, warn};

use crate::decide::{Connection, SignInRefusal};

/// How long the revocation read may take. IoT Core waits 5 s for the whole invocation (a
/// cold start's key read included); past this the sign-in is refused and logged.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the key set read at cold start may take.
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the function cannot start. Each message is one sentence naming the variable and the
/// fix; none contains a key.
#[derive(thiserror::Error)]
pub enum StartError {
    /// A variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secret could not be read.
    #[error(
        "the signing key set could not be read from SIGNING_KEYS_SECRET_ID={id}: {problem}; check that the secret exists and that the function's role may read it"
    )]
    Secret {
        /// The secret ID.
        id: String,
        /// What went wrong.
        problem: String,
    },
    /// The secret does not hold a key set.
    #[error(
        "SIGNING_KEYS_SECRET_ID={id} does not hold a signing key set ({problem}); write one as infra/DEPLOY.md says (\"Token signing keys\")"
    )]
    Keys {
        /// The secret ID.
        id: String,
        /// What is wrong with its value.
        problem: String,
    },
}

// `main` returns this error, and Rust prints a returned error with `Debug`: the sentence.
impl std::fmt::Debug for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Seconds since the epoch, from the system clock.
pub fn now_s() -> u64 {
    kit::now_ms() / 1000
}

/// Checks `IOT_ARN_PREFIX`: `arn:<partition>:iot:<region>:<12-digit account>`.
fn arn_prefix(env: &Env) -> Result<String, ConfigError> {
    let value = env.required(
        "IOT_ARN_PREFIX",
        "set it to arn:<partition>:iot:<region>:<account>, e.g. arn:aws:iot:us-east-1:123456789012",
    )?;
    let parts: Vec<&str> = value.split(':').collect();
    let ok = matches!(parts.as_slice(), ["arn", partition, "iot", region, account]
        if !partition.is_empty()
            && !region.is_empty()
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            var: "IOT_ARN_PREFIX",
            value,
            problem: "expected arn:<partition>:iot:<region>:<12-digit account>".to_owned(),
        })
    }
}

/// What is wrong with a secret value that is not a key set, without quoting it.
fn key_problem(text: &str, e: &signin::KeyError) -> String {
    match e {
        // serde's message may quote a value, and a misplaced value may be a key.
        signin::KeyError::Json(_) => {
            let placeholder = serde_json::from_str::<Value>(text)
                .ok()
                .is_some_and(|v| v.get("placeholder").is_some());
            if placeholder {
                "it still holds the stack's placeholder".to_owned()
            } else {
                r#"it is not JSON of the form {"current":"<kid>","keys":{"<kid>":"<base64url secret>"}}"#
                    .to_owned()
            }
        }
        other => other.to_string(),
    }
}

/// The authorizer: the key set (read once), the TokenTable, the IoT ARN prefix.
#[derive(Debug, Clone)]
pub struct Function {
    keys: KeySet,
    tokens: TokenTable,
    arn_prefix: String,
    /// Now, seconds since the epoch.
    clock: fn() -> u64,
    store_timeout: Duration,
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(keys: KeySet, tokens: TokenTable, arn_prefix: String) -> Self {
        Self {
            keys,
            tokens,
            arn_prefix,
            clock: now_s,
            store_timeout: STORE_TIMEOUT,
        }
    }

    /// The same function with another clock (tests replaying fixtures at a fixed time).
    #[must_use]
    pub fn with_clock(self, clock: fn() -> u64) -> Self {
        Self { clock, ..self }
    }

    /// The same function with another revocation timeout (tests of a store that hangs).
    #[must_use]
    pub fn with_store_timeout(self, store_timeout: Duration) -> Self {
        Self {
            store_timeout,
            ..self
        }
    }

    /// Builds the function from the environment: `SIGNING_KEYS_SECRET_ID` (the key set is
    /// read from Secrets Manager now, once), `TOKEN_TABLE`, `IOT_ARN_PREFIX`.
    pub async fn from_env_with(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, StartError> {
        let secret_id = env.required(
            "SIGNING_KEYS_SECRET_ID",
            "set it to the ID or ARN of the signing key secret (the stack's SigningKeysSecretId output)",
        )?;
        let table = env.required("TOKEN_TABLE", "set it to the TokenTable name")?;
        let arn_prefix = arn_prefix(env)?;
        let text = match tokio::time::timeout(
            SECRET_TIMEOUT,
            kit::secrets::secret_string(sdk, &secret_id),
        )
        .await
        {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                return Err(StartError::Secret {
                    id: secret_id,
                    problem: e.problem(),
                });
            }
            Err(_) => {
                return Err(StartError::Secret {
                    id: secret_id,
                    problem: format!("no answer within {} s", SECRET_TIMEOUT.as_secs()),
                });
            }
        };
        let keys = KeySet::from_json(&text).map_err(|e| StartError::Keys {
            problem: key_problem(&text, &e),
            id: secret_id.clone(),
        })?;
        info!(
            secret_id = %secret_id,
            current = keys.current_kid(),
            kids = ?keys.kids().collect::<Vec<_>>(),
            "signing key set loaded"
        );
        let tokens = TokenTable::new(aws_sdk_dynamodb::Client::new(sdk), table);
        Ok(Self::new(keys, tokens, arn_prefix))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, StartError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await).await
    }

    /// One authorizer invocation: every event gets an answer (see the crate docs).
    pub async fn handle(&self, event: Value) -> IoTCoreCustomAuthorizerResponse {
        let now = (self.clock)();
        let connection = decide::connection(&event);
        match self.decide(&event, now).await {
            Ok((response, grant)) => {
                info!(
                    client_id = %grant.client_id,
                    token_ids = ?grant.token_ids,
                    connection_id = connection.connection_id.as_deref(),
                    transport = connection.transport.map(decide::Transport::as_str),
                    principal_id = response.principal_id.as_deref(),
                    documents = response.policy_documents.len(),
                    disconnect_after_secs = response.disconnect_after_in_seconds,
                    expires_at = grant.expires_at,
                    "sign-in allowed"
                );
                response
            }
            Err((refusal, token_ids)) => {
                log_refusal(&refusal, &connection, &token_ids);
                decide::refused(connection.client_id.as_deref())
            }
        }
    }

    /// Read, verify, check revocations, build the policy. A refusal comes with the token IDs
    /// known by then (after verification), for the log line.
    async fn decide(
        &self,
        event: &Value,
        now: u64,
    ) -> Result<(IoTCoreCustomAuthorizerResponse, signin::Grant), (SignInRefusal, Vec<String>)>
    {
        let credentials = decide::credentials(event).map_err(|r| (r, Vec::new()))?;
        let grant = signin::verify_password(
            &credentials.password,
            &credentials.client_id,
            &self.keys,
            now,
        )
        .map_err(|e| (SignInRefusal::Token(e), Vec::new()))?;
        let ids = || grant.token_ids.clone();
        let revocations =
            tokio::time::timeout(self.store_timeout, self.tokens.revocations_for(&grant))
                .await
                .map_err(|_| {
                    (
                        SignInRefusal::StoreTimeout(self.store_timeout.as_millis()),
                        ids(),
                    )
                })?
                .map_err(|e| (SignInRefusal::Store(e), ids()))?;
        revocations
            .check(&grant)
            .map_err(|e| (SignInRefusal::Token(e), ids()))?;
        let response = decide::allowed(&grant, &self.arn_prefix, now)
            .map_err(|e| (SignInRefusal::Policy(e), ids()))?;
        Ok((response, grant))
    }
}

/// One line per refusal: a warning for the client's fault, an error for ours.
fn log_refusal(refusal: &SignInRefusal, connection: &Connection, token_ids: &[String]) {
    let kind = refusal.kind();
    let code = refusal.code();
    let client_id = connection.client_id.as_deref();
    let connection_id = connection.connection_id.as_deref();
    let transport = connection.transport.map(decide::Transport::as_str);
    if refusal.is_ours() {
        error!(kind, code, client_id, ?token_ids, connection_id, transport, reason = %refusal, "sign-in refused");
    } else {
        warn!(kind, code, client_id, ?token_ids, connection_id, transport, reason = %refusal, "sign-in refused");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn configuration_errors_name_the_variable_and_the_fix() {
        let sdk = aws_config::SdkConfig::builder().build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = |pairs: &[(&str, &str)]| {
            rt.block_on(Function::from_env_with(
                &Env::from_map(pairs.iter().copied()),
                &sdk,
            ))
            .unwrap_err()
            .to_string()
        };
        let e = err(&[]);
        assert!(
            e.contains("SIGNING_KEYS_SECRET_ID") && e.contains("SigningKeysSecretId"),
            "{e}"
        );
        let e = err(&[("SIGNING_KEYS_SECRET_ID", "s")]);
        assert!(e.contains("TOKEN_TABLE"), "{e}");
        let e = err(&[("SIGNING_KEYS_SECRET_ID", "s"), ("TOKEN_TABLE", "t")]);
        assert!(e.contains("IOT_ARN_PREFIX"), "{e}");
        let e = err(&[
            ("SIGNING_KEYS_SECRET_ID", "s"),
            ("TOKEN_TABLE", "t"),
            ("IOT_ARN_PREFIX", "arn:aws:iot:us-east-1:1234"),
        ]);
        assert!(
            e.contains("IOT_ARN_PREFIX") && e.contains("12-digit"),
            "{e}"
        );
    }

    #[test]
    fn the_arn_prefix_must_be_an_iot_arn_of_one_account_and_region() {
        let check = |v: &str| arn_prefix(&Env::from_map([("IOT_ARN_PREFIX", v)])).is_ok();
        assert!(check("arn:aws:iot:us-east-1:123456789012"));
        assert!(check("arn:aws-cn:iot:cn-north-1:123456789012"));
        assert!(!check("arn:aws:iot:us-east-1:123456789012:topic/x"));
        assert!(!check("arn:aws:iot:*:123456789012"));
        assert!(!check("arn:aws:sqs:us-east-1:123456789012"));
        assert!(!check("arn:aws:iot::123456789012"));
    }

    #[test]
    fn a_secret_that_is_not_a_key_set_is_described_without_quoting_it() {
        let placeholder = r#"{"placeholder":"not a key set yet"}"#;
        let e = KeySet::from_json(placeholder).unwrap_err();
        assert_eq!(
            key_problem(placeholder, &e),
            "it still holds the stack's placeholder"
        );
        let misplaced = r#"{"current":"k1","keys":"c2VjcmV0LWtleS1tYXRlcmlhbA"}"#;
        let e = KeySet::from_json(misplaced).unwrap_err();
        let p = key_problem(misplaced, &e);
        assert!(!p.contains("c2VjcmV0"), "{p}");
        assert!(p.contains(r#""current""#), "{p}");
    }
}
