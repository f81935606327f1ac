//! The token issuer's service (Alibaba's ApplyToken, QueryToken and RevokeToken): issues
//! sign-in tokens (the `signin` format), answers their status, verifies them, revokes them, and
//! records the classroom enrollment a classroom token grants. Everything but HTTP: the token
//! function (`functions/token`) routes its HTTP API to [`Issuer::serve`], and the `classroom`
//! CLI calls it in-process with the same [`Operation`]s, so both check and answer alike.
//!
//! # Operations
//! Requests and answers are the JSON of the HTTP API (`functions/token` lists the routes);
//! refusals are [`ApiError`]s: bad request (400, `field` names the request field at fault), not
//! found (404: no such token), unavailable (503: DynamoDB failed, or the clock is behind a
//! revoke-all: retry) or internal (500: our bug).
//! - [`Operation::Issue`] ([`IssueRequest`]) -> [`IssuedToken`]: a token for `clientId` with
//!   `read` and `write` filters and an expiry (`expiresIn` seconds, or Alibaba's `expireTime`
//!   in ms since the epoch, exactly one). A lifetime outside `TOKEN_MIN_LIFETIME_SECS..=
//!   TOKEN_MAX_LIFETIME_SECS` is refused, never shortened; so is a grant whose AWS IoT policy
//!   would not fit 10 documents of 2,048 characters (field `read`). The issue time follows the
//!   client's revoke-all ([`signin::issue_time`]), so a new token is never born revoked; the
//!   record is written to the TokenTable before the token is handed out.
//! - [`Operation::Classroom`] ([`ClassroomRequest`]) -> [`IssuedToken`] with `rooms` and
//!   `role`: the classroom scopes ([`signin::classroom_request`]) for a teacher or a student
//!   (the role comes from the client's group; any other group is refused, field `clientId`),
//!   and one EnrollmentTable item per room.
//! - [`Operation::Status`] -> [`StatusAnswer`]: active, revoked or expired; not found for a
//!   token the table does not know.
//! - [`Operation::Query`] ([`QueryRequest`]) -> [`QueryAnswer`]: valid with the claims, or the
//!   reason with Alibaba's token-invalid code (signature, key, expiry, revocation, and the
//!   client when `clientId` is given).
//! - [`Operation::Revoke`] -> [`RevokedToken`]; not found when unknown.
//! - [`Operation::RevokeClient`] -> [`RevokedClient`]: every token of the client issued so far
//!   is revoked.
//!
//! Tokens never appear in logs, error messages or `Debug` output; token IDs do.
//!
//! # Environment
//! - `TOKEN_TABLE` (required): the TokenTable (token records, revocations).
//! - `ENROLLMENT_TABLE` (required): the EnrollmentTable.
//! - `SIGNING_KEYS_SECRET_ID` (required): the Secrets Manager secret holding the key set JSON
//!   (`signin::KeySet`), read when the issuer is built (a failure stops it) and again when older
//!   than `SIGNING_KEYS_REFRESH_SECS` (default 300; 0 = on every operation). A failed re-read
//!   keeps the cached set and logs a warning.
//! - `IOT_ARN_PREFIX` (required): `arn:<partition>:iot:<region>:<account>`, for the policy
//!   size check.
//! - `TOKEN_MIN_LIFETIME_SECS` (default 60; the local stack sets 1) and
//!   `TOKEN_MAX_LIFETIME_SECS` (default 2592000, also the most allowed).
//! - `TEACHER_GROUPS` (default `GID_teacher`) and `STUDENT_GROUPS` (default `GID_student`):
//!   comma-separated Group IDs giving the classroom role.
//! - The rules variables `UPLINK_PARENTS` (the first is the classroom write parent),
//!   `DOWNLINK_PARENTS` (the first is the read parent), `TOPIC_MAX_CHARS`,
//!   `PAYLOAD_MAX_BYTES` (validated as every function does).
//! - The AWS SDK's variables (`AWS_ENDPOINT_URL` for moto locally).
//!
//! # Layout
//! - [`Issuer`]: built once ([`Issuer::from_env_with`]); [`Issuer::serve`] runs one
//!   [`Operation`] at a given time (ms since the epoch, read once by the caller).
//! - [`request`]: the operations and their requests, from JSON bodies (field by field, so each
//!   refusal names its field) or typed values.
//! - [`answer`]: the answers ([`Reply`]), serialized as the API's JSON.
//! - [`error`]: [`ApiError`], the one refusal type.
//! - `keys`: the cached signing key set and its refresh.
//! - The stores are `stores::TokenTable` and `stores::EnrollmentTable`; the token format and
//!   its checks are `signin`'s.

pub mod answer;
pub mod error;
mod keys;
pub mod request;

use std::time::Duration;

use kit::{ConfigError, Env};
use mapping::{ClientId, Role, Roles, RoomId};
use signin::{Claims, Grant, LifetimeBounds, TokenError, TokenRequest};
use stores::{EnrollmentTable, TokenTable};
use tracing::info;

pub use answer::{
    IssuedToken, QueryAnswer, Reply, RevokedClient, RevokedToken, StatusAnswer, TokenState,
};
pub use error::{ApiError, ErrorBody, ErrorStatus};
pub use request::{
    ClassroomRequest, Expiry, IssueRequest, Operation, QueryRequest, check_token_id,
};

/// The longest token lifetime the issuer may be configured with: 30 days (ApplyToken's, and
/// how long a client's revoke-all record lives).
pub const MAX_LIFETIME_SECS: u64 = stores::attrs::token::CLIENT_REVOCATION_TTL_SECS;

/// The default refresh interval of the signing keys, seconds.
pub const DEFAULT_KEYS_REFRESH_SECS: u64 = 300;

/// The issuer: its stores, its key set and its configuration.
#[derive(Debug)]
pub struct Issuer {
    tokens: TokenTable,
    enrollment: EnrollmentTable,
    keys: keys::KeyCache,
    bounds: LifetimeBounds,
    arn_prefix: String,
    roles: Roles,
    uplink: String,
    downlink: String,
}

/// Checks `arn:<partition>:iot:<region>:<12-digit account>`.
fn check_arn_prefix(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "iot", region, account]
            if !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        _ => Err("must be arn:<partition>:iot:<region>:<account>, e.g. arn:aws:iot:us-east-1:123456789012".to_owned()),
    }
}

/// A sign-in of one token, as far as revocation is concerned (no filters needed).
fn revocation_subject(client_id: &str, issued_at: u64, expires_at: u64, token_id: &str) -> Grant {
    Grant {
        client_id: client_id.to_owned(),
        read: Vec::new(),
        write: Vec::new(),
        issued_at,
        expires_at,
        token_ids: vec![token_id.to_owned()],
    }
}

fn log_issued(claims: &Claims, route: &'static str) {
    info!(
        token_id = %claims.token_id,
        client_id = %claims.client_id,
        issued_at = claims.issued_at,
        expires_at = claims.expires_at,
        read = claims.read.len(),
        write = claims.write.len(),
        route,
        "token issued"
    );
}

impl Issuer {
    /// Builds the issuer from the environment (see the crate docs for every variable) and
    /// reads the signing keys once: a missing or invalid secret stops it.
    pub async fn from_env_with(
        env: &Env,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, ConfigError> {
        let rules = env.rules()?;
        let token_table = env.required("TOKEN_TABLE", "set it to the TokenTable name")?;
        let enrollment_table =
            env.required("ENROLLMENT_TABLE", "set it to the EnrollmentTable name")?;
        let secret_id = env.required(
            "SIGNING_KEYS_SECRET_ID",
            "set it to the Secrets Manager secret holding the signing key set",
        )?;
        let arn_prefix = env.required(
            "IOT_ARN_PREFIX",
            "set it to arn:<partition>:iot:<region>:<account>",
        )?;
        check_arn_prefix(&arn_prefix).map_err(|problem| ConfigError::Invalid {
            var: "IOT_ARN_PREFIX",
            value: arn_prefix.clone(),
            problem,
        })?;
        let min_secs: u64 = env.parse_or("TOKEN_MIN_LIFETIME_SECS", 60)?;
        let max_secs: u64 = env.parse_or("TOKEN_MAX_LIFETIME_SECS", MAX_LIFETIME_SECS)?;
        if min_secs == 0 {
            return Err(ConfigError::Invalid {
                var: "TOKEN_MIN_LIFETIME_SECS",
                value: "0".to_owned(),
                problem: "must be at least 1 second".to_owned(),
            });
        }
        if max_secs > MAX_LIFETIME_SECS || max_secs < min_secs {
            return Err(ConfigError::Invalid {
                var: "TOKEN_MAX_LIFETIME_SECS",
                value: max_secs.to_string(),
                problem: format!(
                    "must be TOKEN_MIN_LIFETIME_SECS ({min_secs}) to {MAX_LIFETIME_SECS} (30 days)"
                ),
            });
        }
        let refresh: u64 = env.parse_or("SIGNING_KEYS_REFRESH_SECS", DEFAULT_KEYS_REFRESH_SECS)?;
        let roles = env.roles()?;
        let uplink = rules
            .uplink()
            .first()
            .map(|p| p.as_str().to_owned())
            .ok_or(ConfigError::Missing {
                var: "UPLINK_PARENTS",
                hint: "the classroom tokens write under the first uplink parent",
            })?;
        let keys = keys::KeyCache::load(sdk, &secret_id, Duration::from_secs(refresh))
            .await
            .map_err(|e| ConfigError::Secret {
                var: "SIGNING_KEYS_SECRET_ID",
                id: secret_id.clone(),
                problem: e.to_string(),
            })?;
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            tokens: TokenTable::new(ddb.clone(), token_table),
            enrollment: EnrollmentTable::new(ddb, enrollment_table),
            keys,
            bounds: LifetimeBounds { min_secs, max_secs },
            arn_prefix,
            roles,
            uplink,
            downlink: rules.default_downlink().as_str().to_owned(),
        })
    }

    /// Builds the issuer from the process environment.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await).await
    }

    /// Runs one operation at `now_ms` (ms since the epoch).
    pub async fn serve(&self, operation: &Operation, now_ms: u64) -> Result<Reply, ApiError> {
        match operation {
            Operation::Issue(request) => self.issue(request, now_ms).await.map(Reply::Issued),
            Operation::Classroom(request) => {
                self.classroom(request, now_ms).await.map(Reply::Issued)
            }
            Operation::Status { token_id } => {
                self.status(token_id, now_ms).await.map(Reply::Status)
            }
            Operation::Query(request) => self.query(request, now_ms).await.map(Reply::Query),
            Operation::Revoke { token_id } => {
                self.revoke(token_id, now_ms).await.map(Reply::Revoked)
            }
            Operation::RevokeClient { client_id } => self
                .revoke_client(client_id, now_ms)
                .await
                .map(Reply::ClientRevoked),
        }
    }

    /// Issues a token for any filters.
    pub async fn issue(
        &self,
        request: &IssueRequest,
        now_ms: u64,
    ) -> Result<IssuedToken, ApiError> {
        let issued = self
            .sign(
                &request.client,
                request.read.clone(),
                request.write.clone(),
                request.expiry,
                now_ms / 1000,
            )
            .await?;
        log_issued(&issued.claims, "tokens");
        Ok(IssuedToken::of(issued, None, None))
    }

    /// Issues a classroom token and records the enrollment in its rooms.
    pub async fn classroom(
        &self,
        request: &ClassroomRequest,
        now_ms: u64,
    ) -> Result<IssuedToken, ApiError> {
        let client = &request.client;
        let role = self.roles.role_of(client);
        if role == Role::Other {
            return Err(ApiError::field(
                "clientId",
                "no_role",
                format!(
                    "group {} is neither a teacher nor a student group (TEACHER_GROUPS, STUDENT_GROUPS)",
                    client.group()
                ),
            ));
        }
        // The scopes (the lifetime is set by `sign`, which knows the issue time).
        let scopes =
            signin::classroom_request(client, &request.rooms, &self.uplink, &self.downlink, 0);
        let issued = self
            .sign(
                client,
                scopes.read,
                scopes.write,
                request.expiry,
                now_ms / 1000,
            )
            .await?;
        let c = &issued.claims;
        self.enrollment
            .enroll(client, &request.rooms, role, c.expires_at, now_ms)
            .await?;
        log_issued(c, "tokens/classroom");
        let rooms = request.rooms.iter().map(RoomId::as_str).map(str::to_owned);
        Ok(IssuedToken::of(
            issued,
            Some(rooms.collect()),
            Some(stores::enrollment::role_name(role)),
        ))
    }

    /// A token's status.
    pub async fn status(&self, token_id: &str, now_ms: u64) -> Result<StatusAnswer, ApiError> {
        let token_id = check_token_id(token_id)?;
        let record =
            self.tokens.status(token_id).await?.ok_or_else(|| {
                ApiError::not_found("unknown_token", format!("no token {token_id}"))
            })?;
        let subject = revocation_subject(
            &record.client_id,
            record.issued_at,
            record.expires_at,
            token_id,
        );
        let revoked = self
            .tokens
            .revocations_for(&subject)
            .await?
            .check(&subject)
            .is_err();
        let status = if revoked || record.revoked {
            TokenState::Revoked
        } else if now_ms / 1000 >= record.expires_at {
            TokenState::Expired
        } else {
            TokenState::Active
        };
        Ok(StatusAnswer {
            token_id: token_id.to_owned(),
            client_id: record.client_id,
            status,
            issued_at: record.issued_at,
            expires_at: record.expires_at,
        })
    }

    /// Verifies a token: its signature, key, expiry and revocations (and its client, when the
    /// request names one).
    pub async fn query(
        &self,
        request: &QueryRequest,
        now_ms: u64,
    ) -> Result<QueryAnswer, ApiError> {
        let now_s = now_ms / 1000;
        let token = &request.token;
        let keys = self.keys.get().await;
        // Without a client ID, learn it from the token: `verify` names the token's client
        // only once the signature has been checked.
        let verified = match &request.client_id {
            Some(c) => signin::verify(token, c, &keys, now_s),
            None => match signin::verify(token, "", &keys, now_s) {
                Err(TokenError::WrongClient { token_client }) => {
                    signin::verify(token, &token_client, &keys, now_s)
                }
                other => other,
            },
        };
        let invalid = |error: TokenError, claims: Option<&Claims>| {
            info!(
                valid = false,
                reason = error.kind(),
                token_id = claims.map(|c| c.token_id.as_str()),
                "token queried"
            );
            QueryAnswer::Invalid {
                error,
                token: claims.map(|c| (c.token_id.clone(), c.client_id.clone())),
            }
        };
        let claims = match verified {
            Ok(c) => c,
            Err(e) => return Ok(invalid(e, None)),
        };
        let subject = revocation_subject(
            &claims.client_id,
            claims.issued_at,
            claims.expires_at,
            &claims.token_id,
        );
        if let Err(e) = self.tokens.revocations_for(&subject).await?.check(&subject) {
            return Ok(invalid(e, Some(&claims)));
        }
        info!(valid = true, token_id = %claims.token_id, "token queried");
        Ok(QueryAnswer::Valid(claims))
    }

    /// Revokes one token.
    pub async fn revoke(&self, token_id: &str, now_ms: u64) -> Result<RevokedToken, ApiError> {
        let token_id = check_token_id(token_id)?;
        let now_s = now_ms / 1000;
        if !self.tokens.revoke(token_id, now_s).await? {
            return Err(ApiError::not_found(
                "unknown_token",
                format!("no token {token_id}"),
            ));
        }
        info!(token_id, revoked_at = now_s, "token revoked");
        Ok(RevokedToken {
            token_id: token_id.to_owned(),
            status: TokenState::Revoked,
        })
    }

    /// Revokes every token of a client issued so far.
    pub async fn revoke_client(
        &self,
        client_id: &str,
        now_ms: u64,
    ) -> Result<RevokedClient, ApiError> {
        let client = request::client_id_of(client_id)?;
        let before = self
            .tokens
            .revoke_client(client.as_str(), now_ms / 1000)
            .await?;
        info!(client_id = %client, revoked_before = before, "every token of the client revoked");
        Ok(RevokedClient {
            client_id: client.as_str().to_owned(),
            revoked_before: before,
        })
    }

    /// Signs a token: the issue time follows the client's revoke-all, the policy must fit
    /// IoT Core, the record is written before the token is handed out.
    async fn sign(
        &self,
        client: &ClientId,
        read: Vec<String>,
        write: Vec<String>,
        expiry: Expiry,
        now_s: u64,
    ) -> Result<signin::Issued, ApiError> {
        let keys = self.keys.get().await;
        let revoked_before = self.tokens.revoked_before(client.as_str()).await?;
        let issued_at = signin::issue_time(now_s, revoked_before);
        if issued_at > now_s.saturating_add(signin::token::MAX_CLOCK_SKEW_SECS) {
            return Err(ApiError::unavailable(
                "clock_skew",
                format!(
                    "the client's revoke-all is dated {} s, later than this issuer's clock ({now_s} s) allows: retry later",
                    issued_at - 1
                ),
            ));
        }
        let request = TokenRequest {
            client_id: client.to_string(),
            read,
            write,
            lifetime_secs: expiry.lifetime_secs(issued_at),
        };
        let token_id = uuid::Uuid::new_v4().simple().to_string();
        let issued = signin::issue(&request, &keys, self.bounds, issued_at, &token_id).map_err(
            |e| match (e, expiry) {
                (signin::IssueError::Lifetime { given, min, max }, Expiry::At(ms)) => {
                    ApiError::field(
                        "expireTime",
                        "invalid_lifetime",
                        format!(
                            "expireTime {ms} ms gives a lifetime of {given} s from the issue time {issued_at} s; it must be {min} to {max} s"
                        ),
                    )
                }
                (e, _) => ApiError::from(e),
            },
        )?;
        // The grant the broker will see, from the token itself: also checks what we hand out.
        let grant = signin::verify_password(&issued.token, client.as_str(), &keys, issued_at)
            .map_err(|e| ApiError::internal(format!("a token just issued does not verify: {e}")))?;
        signin::iot::policy_documents(&grant, &self.arn_prefix)?;
        self.tokens.record_issued(&issued.claims).await?;
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iot_arn_prefixes_are_checked() {
        assert!(check_arn_prefix("arn:aws:iot:us-east-1:123456789012").is_ok());
        assert!(check_arn_prefix("arn:aws-cn:iot:cn-north-1:123456789012").is_ok());
        for bad in [
            "arn:aws:iot:us-east-1:123456789012:",
            "arn:aws:iot:us-east-1:1234",
            "arn:aws:s3:us-east-1:123456789012",
            "aws:iot:us-east-1:123456789012",
            "arn::iot:us-east-1:123456789012",
        ] {
            assert!(check_arn_prefix(bad).is_err(), "{bad}");
        }
    }
}
