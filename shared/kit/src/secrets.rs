//! Secrets Manager: the one way our functions read a secret (the MQTT credentials, the token
//! signing keys). A secret is read as its `SecretString`; what it holds (JSON, usually) is the
//! caller's business, and so is caching it.

use aws_sdk_secretsmanager::error::DisplayErrorContext;

/// Why a secret could not be read. The message never contains the secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The `GetSecretValue` call failed (no such secret, no permission, no network).
    #[error("GetSecretValue of {id} failed: {message}")]
    Call {
        /// The secret ID.
        id: String,
        /// The SDK error with its context.
        message: String,
    },
    /// The secret holds binary data only (`SecretBinary`), not a string.
    #[error("secret {id} has no string value (SecretString)")]
    NotString {
        /// The secret ID.
        id: String,
    },
}

impl SecretError {
    /// What went wrong, without the secret ID (for errors that name the ID themselves).
    pub fn problem(&self) -> String {
        match self {
            Self::Call { message, .. } => message.clone(),
            Self::NotString { .. } => "the secret has no string value".to_owned(),
        }
    }
}

/// The current `SecretString` of a secret (ID or ARN), read with a client built from `sdk`.
pub async fn secret_string(
    sdk: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<String, SecretError> {
    let resp = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Call {
            id: secret_id.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    resp.secret_string.ok_or_else(|| SecretError::NotString {
        id: secret_id.to_owned(),
    })
}
