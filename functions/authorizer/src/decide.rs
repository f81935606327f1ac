//! The pure decision, no IO: what a CONNECT event asks to be checked ([`credentials`]), and
//! what IoT Core is answered for a verified grant ([`allowed`]) or a refusal ([`refused`]).
//!
//! The event arrives as JSON and is read into `IoTCoreCustomAuthorizerRequest` here rather
//! than by the runtime: a request the type cannot hold (a password that is not base64, a
//! missing `signatureVerified`) must still get an answer, a refusal, not an invocation error.

use aws_lambda_events::iam::{IamPolicyDocument, IamPolicyEffect, IamPolicyStatement};
use aws_lambda_events::iot::{IoTCoreCustomAuthorizerRequest, IoTCoreCustomAuthorizerResponse};
use serde::Deserialize as _;
use serde_json::Value;
use signin::iot::{self, PolicyDocument, PolicyError};
use signin::{Grant, TokenError};
use stores::StoreError;

/// How the client reached IoT Core, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// MQTT over WebSocket (`wss://<endpoint>/mqtt?x-amz-customauthorizer-name=...`): the
    /// event carries the HTTP upgrade request too.
    Wss,
    /// MQTT over TLS on port 443 with ALPN `mqtt` (the authorizer name in the username's
    /// query string).
    Mqtt,
}

impl Transport {
    /// `wss` or `mqtt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wss => "wss",
            Self::Mqtt => "mqtt",
        }
    }
}

/// Who is signing in, as far as the event tells, before anything is verified: logged with
/// every answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// The CONNECT's client ID, if the event has one.
    pub client_id: Option<String>,
    /// IoT Core's connection ID (`connectionMetadata.id`).
    pub connection_id: Option<String>,
    /// WSS or MQTT; `None` when the event cannot be read.
    pub transport: Option<Transport>,
}

/// What a CONNECT asks us to verify.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The CONNECT's client ID: the token's must equal it.
    pub client_id: String,
    /// The decoded MQTT password: a token, or Alibaba's `R|<token>|W|<token>`. A credential:
    /// never logged (and left out of `Debug`).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a sign-in is refused. Its `Display` never contains the password or a token.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefusal {
    /// The event is not an IoT custom authorizer request.
    #[error("the event is not an IoT custom authorizer request: {0}")]
    BadEvent(String),
    /// The CONNECT has no client ID (IoT includes it only when the client sends one).
    #[error("the CONNECT has no client ID; the token's client ID must equal it")]
    NoClientId,
    /// The CONNECT has no password, or an empty one.
    #[error("the CONNECT has no password; the password must be the token")]
    NoPassword,
    /// The event's password is not base64 (IoT Core always encodes it).
    #[error("the event's MQTT password is not a base64 string")]
    PasswordNotBase64,
    /// The decoded password is not UTF-8 text, so it cannot be a token.
    #[error("the MQTT password is not UTF-8 text")]
    PasswordNotUtf8,
    /// The token (or one of the tokens) does not verify.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The grant does not fit IoT Core's policy limits (the issuer refuses such tokens).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The revocations could not be read: refused, since a revoked token cannot be told
    /// from a valid one (fail closed).
    #[error("revocations unavailable: {0}")]
    Store(#[from] StoreError),
    /// The revocations did not arrive in time.
    #[error("revocations unavailable: no answer from DynamoDB within {0} ms")]
    StoreTimeout(u128),
}

impl SignInRefusal {
    /// A short stable name for the logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadEvent(_) => "bad_event",
            Self::NoClientId => "no_client_id",
            Self::NoPassword => "no_password",
            Self::PasswordNotBase64 => "password_not_base64",
            Self::PasswordNotUtf8 => "password_not_utf8",
            Self::Token(e) => e.kind(),
            Self::Policy(_) => "policy_too_large",
            Self::Store(_) => "store_unavailable",
            Self::StoreTimeout(_) => "store_timeout",
        }
    }

    /// Alibaba's token-invalid code where one applies: the token's own, 1 (unparseable) for
    /// a password that cannot hold a token, 4 (resource mismatch) for a CONNECT without a
    /// client ID. `None` when the fault is not the client's (policy limits, the store).
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Token(e) => Some(e.code()),
            Self::BadEvent(_)
            | Self::NoPassword
            | Self::PasswordNotBase64
            | Self::PasswordNotUtf8 => Some(1),
            Self::NoClientId => Some(4),
            Self::Policy(_) | Self::Store(_) | Self::StoreTimeout(_) => None,
        }
    }

    /// Whether the fault is ours (the store, the policy size), not the client's: logged as
    /// an error rather than a warning.
    pub fn is_ours(&self) -> bool {
        self.code().is_none()
    }
}

/// Reads what the event tells about the connection, whether or not it is a valid request.
pub fn connection(event: &Value) -> Connection {
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let transport = event
        .get("protocols")
        .and_then(Value::as_array)
        .map(|protocols| {
            if protocols.iter().any(|p| p.as_str() == Some("http")) {
                Transport::Wss
            } else {
                Transport::Mqtt
            }
        });
    Connection {
        client_id: text("/protocolData/mqtt/clientId"),
        connection_id: text("/connectionMetadata/id"),
        transport,
    }
}

/// The credentials of a CONNECT event: its client ID and its base64-decoded MQTT password.
pub fn credentials(event: &Value) -> Result<Credentials, SignInRefusal> {
    let request = match IoTCoreCustomAuthorizerRequest::deserialize(event) {
        Ok(request) => request,
        Err(_) => return Err(unreadable(event)),
    };
    let mqtt = request
        .protocol_data
        .and_then(|p| p.mqtt)
        .ok_or(SignInRefusal::NoPassword)?;
    let client_id = mqtt
        .client_id
        .filter(|c| !c.is_empty())
        .ok_or(SignInRefusal::NoClientId)?;
    let bytes = mqtt.password.0;
    if bytes.is_empty() {
        return Err(SignInRefusal::NoPassword);
    }
    let password = String::from_utf8(bytes).map_err(|_| SignInRefusal::PasswordNotUtf8)?;
    Ok(Credentials {
        client_id,
        password,
    })
}

/// Why an event did not read as a request. The typed reading fails as a whole; if it reads
/// without its password, the password was the problem (not a base64 string). The reading
/// error is reported only from the reading without the password, so no part of a password
/// reaches a log line.
fn unreadable(event: &Value) -> SignInRefusal {
    let mut stripped = event.clone();
    if let Some(mqtt) = stripped
        .pointer_mut("/protocolData/mqtt")
        .and_then(Value::as_object_mut)
    {
        mqtt.remove("password");
    }
    match IoTCoreCustomAuthorizerRequest::deserialize(&stripped) {
        Ok(_) => SignInRefusal::PasswordNotBase64,
        Err(e) => SignInRefusal::BadEvent(e.to_string()),
    }
}

/// One of signin's policy documents as the response type holds it.
pub fn to_iam(doc: &PolicyDocument) -> IamPolicyDocument {
    let mut out = IamPolicyDocument::default();
    out.version = Some(doc.version.clone());
    out.statement = doc
        .statement
        .iter()
        .map(|s| {
            let mut st = IamPolicyStatement::default();
            st.action = s.action.clone();
            // signin only allows; anything else denies rather than allows by mistake.
            st.effect = if s.effect == "Allow" {
                IamPolicyEffect::Allow
            } else {
                IamPolicyEffect::Deny
            };
            st.resource = s.resource.clone();
            st
        })
        .collect();
    out
}

/// The answer for a verified, unrevoked grant at `now_s`: the policy of its filters,
/// `principalId` from its client ID, the connection cut at the token's expiry (IoT's range
/// 300..86,400 s), the policy refreshed (and the revocations checked again) every 300 s.
pub fn allowed(
    grant: &Grant,
    arn_prefix: &str,
    now_s: u64,
) -> Result<IoTCoreCustomAuthorizerResponse, PolicyError> {
    let documents = iot::policy_documents(grant, arn_prefix)?;
    let mut response = IoTCoreCustomAuthorizerResponse::default();
    response.is_authenticated = true;
    response.principal_id = Some(iot::principal_id(&grant.client_id));
    response.disconnect_after_in_seconds = iot::disconnect_after_secs(grant.remaining_secs(now_s));
    response.refresh_after_in_seconds = iot::REFRESH_AFTER_SECS;
    response.policy_documents = documents.iter().map(|d| Some(to_iam(d))).collect();
    Ok(response)
}

/// The answer for a refused sign-in: not authenticated, no policy. `principalId` and the two
/// durations hold valid values all the same (IoT Core's ranges), so the answer is well-formed
/// whatever IoT checks first.
pub fn refused(client_id: Option<&str>) -> IoTCoreCustomAuthorizerResponse {
    let mut response = IoTCoreCustomAuthorizerResponse::default();
    response.is_authenticated = false;
    response.principal_id = Some(iot::principal_id(client_id.unwrap_or_default()));
    response.disconnect_after_in_seconds = iot::MIN_DISCONNECT_AFTER_SECS;
    response.refresh_after_in_seconds = iot::REFRESH_AFTER_SECS;
    response.policy_documents = Vec::new();
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn event(mqtt: Value) -> Value {
        json!({
            "signatureVerified": false,
            "protocols": ["tls", "mqtt"],
            "protocolData": { "tls": { "serverName": "x-ats.iot.us-east-1.amazonaws.com" }, "mqtt": mqtt },
            "connectionMetadata": { "id": "c-1" }
        })
    }

    #[test]
    fn the_password_is_base64_decoded_and_the_client_id_kept() {
        let e = event(json!({ "clientId": "GID_a@@@1", "password": "Y3QxLmEuYi5j" }));
        let c = credentials(&e).unwrap();
        assert_eq!(c.client_id, "GID_a@@@1");
        assert_eq!(c.password, "ct1.a.b.c");
    }

    #[test]
    fn an_absent_or_empty_password_or_client_id_is_refused_by_name() {
        let kind = |mqtt: Value| credentials(&event(mqtt)).unwrap_err().kind();
        assert_eq!(kind(json!({ "clientId": "GID_a@@@1" })), "no_password");
        assert_eq!(
            kind(json!({ "clientId": "GID_a@@@1", "password": "" })),
            "no_password"
        );
        assert_eq!(kind(json!({ "password": "Y3Qx" })), "no_client_id");
        assert_eq!(
            kind(json!({ "clientId": "", "password": "Y3Qx" })),
            "no_client_id"
        );
        let no_mqtt =
            json!({ "signatureVerified": false, "protocols": ["tls"], "protocolData": {} });
        assert_eq!(credentials(&no_mqtt).unwrap_err().kind(), "no_password");
    }

    #[test]
    fn a_password_that_is_not_base64_is_refused_without_quoting_it() {
        let e = event(json!({ "clientId": "GID_a@@@1", "password": "ct1.secret-token.x.y" }));
        let r = credentials(&e).unwrap_err();
        assert_eq!(r.kind(), "password_not_base64");
        assert!(!r.to_string().contains("secret-token"), "{r}");
        // A password of the wrong JSON type is the same refusal.
        let e = event(json!({ "clientId": "GID_a@@@1", "password": 12345 }));
        assert_eq!(credentials(&e).unwrap_err().kind(), "password_not_base64");
    }

    #[test]
    fn a_password_of_binary_bytes_is_refused() {
        let e = event(json!({ "clientId": "GID_a@@@1", "password": "//79" }));
        assert_eq!(credentials(&e).unwrap_err().kind(), "password_not_utf8");
    }

    #[test]
    fn an_event_of_another_shape_is_a_bad_event_and_never_quotes_the_password() {
        let mut e = event(json!({ "clientId": "GID_a@@@1", "password": "c2VjcmV0LXRva2Vu" }));
        e.as_object_mut().unwrap().remove("signatureVerified");
        let r = credentials(&e).unwrap_err();
        assert_eq!(r.kind(), "bad_event");
        assert!(r.to_string().contains("signatureVerified"), "{r}");
        assert!(!r.to_string().contains("c2VjcmV0"), "{r}");
        assert_eq!(credentials(&json!([1, 2])).unwrap_err().kind(), "bad_event");
        assert_eq!(credentials(&Value::Null).unwrap_err().kind(), "bad_event");
    }

    #[test]
    fn the_connection_is_read_from_any_event() {
        let e = event(json!({ "clientId": "GID_a@@@1" }));
        assert_eq!(
            connection(&e),
            Connection {
                client_id: Some("GID_a@@@1".into()),
                connection_id: Some("c-1".into()),
                transport: Some(Transport::Mqtt),
            }
        );
        let mut wss = e.clone();
        wss["protocols"] = json!(["tls", "http", "mqtt"]);
        assert_eq!(connection(&wss).transport, Some(Transport::Wss));
        assert_eq!(connection(&Value::Null), Connection::default());
    }

    #[test]
    fn credentials_never_show_the_password_in_debug() {
        let c = Credentials {
            client_id: "GID_a@@@1".into(),
            password: "ct1.k.claims.sig".into(),
        };
        assert!(!format!("{c:?}").contains("claims"));
    }

    #[test]
    fn a_refusal_has_no_policy_and_valid_ranges() {
        let r = refused(Some("GID_a@@@1"));
        assert!(!r.is_authenticated);
        assert!(r.policy_documents.is_empty());
        assert_eq!(
            r.principal_id.as_deref(),
            Some(iot::principal_id("GID_a@@@1").as_str())
        );
        assert_eq!(r.disconnect_after_in_seconds, 300);
        assert_eq!(r.refresh_after_in_seconds, 300);
        let anonymous = refused(None).principal_id.unwrap();
        assert!(!anonymous.is_empty() && anonymous.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn refusal_codes_follow_alibaba_and_ours_have_none() {
        assert_eq!(SignInRefusal::Token(TokenError::Revoked).code(), Some(3));
        assert_eq!(
            SignInRefusal::Token(TokenError::BadSignature).code(),
            Some(8)
        );
        assert_eq!(SignInRefusal::PasswordNotBase64.code(), Some(1));
        assert_eq!(SignInRefusal::NoClientId.code(), Some(4));
        assert!(SignInRefusal::StoreTimeout(2000).is_ours());
        assert!(!SignInRefusal::NoPassword.is_ours());
    }

    #[test]
    fn a_deny_statement_stays_a_deny() {
        let doc = PolicyDocument {
            version: "2012-10-17".into(),
            statement: vec![iot::Statement {
                effect: "Deny".into(),
                action: vec!["iot:Publish".into()],
                resource: vec!["arn:aws:iot:us-east-1:123456789012:topic/x".into()],
            }],
        };
        assert_eq!(to_iam(&doc).statement[0].effect, IamPolicyEffect::Deny);
    }
}
