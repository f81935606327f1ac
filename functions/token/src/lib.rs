//! The token issuer (SPEC §8; Alibaba's ApplyToken, QueryToken and RevokeToken): an HTTP API
//! (API Gateway HTTP API with IAM auth in the cloud, `local-api` locally) that issues sign-in
//! tokens (the `signin` format), answers their status, verifies them and revokes them, and
//! records the classroom enrollment a classroom token grants.
//!
//! # Routes
//! JSON in and out. Errors: `{"error":"<kind>","field":"<name>"?,"message":"..."}` with 400
//! (the request; `field` names the request field at fault), 404 (no such token or route), 503
//! (DynamoDB failed: retry) or 500 (our bug).
//! - `POST /tokens` `{"clientId","read":[..],"write":[..],"expiresIn":<s>}` (or Alibaba's
//!   `"expireTime":<ms since the epoch>` instead of `expiresIn`, exactly one) -> 201
//!   `{"token","tokenId","clientId","issuedAt","expiresAt","read","write"}`. A lifetime
//!   outside `TOKEN_MIN_LIFETIME_SECS..=TOKEN_MAX_LIFETIME_SECS` is refused, never shortened;
//!   so is a grant whose AWS IoT policy would not fit 10 documents of 2,048 characters (field
//!   `read`).
//! - `POST /tokens/classroom` `{"clientId","rooms":["1",..],"expiresIn"}` -> 201, the same plus
//!   `"rooms"` and `"role"`: the §8 scopes ([`signin::classroom_request`]) for a teacher or a
//!   student (the role comes from the client's group; any other group is refused, field
//!   `clientId`), and one EnrollmentTable item per room.
//! - `GET /tokens/{tokenId}` -> `{"tokenId","clientId","status":"active"|"revoked"|"expired",
//!   "issuedAt","expiresAt"}`; 404 for a token the table does not know.
//! - `POST /tokens/query` `{"token","clientId"?}` -> 200 `{"valid":true,"tokenId","clientId",
//!   "issuedAt","expiresAt","read","write"}` or `{"valid":false,"code","reason","message",
//!   "tokenId"?,"clientId"?}` (Alibaba's token-invalid codes: signature, key, expiry,
//!   revocation, and the client when `clientId` is given).
//! - `POST /tokens/{tokenId}/revoke` -> `{"tokenId","status":"revoked"}`; 404 when unknown.
//! - `POST /clients/{clientId}/revoke` -> `{"clientId","revokedBefore"}`: every token of the
//!   client issued so far is revoked. A token issued afterwards gets an issue time after
//!   `revokedBefore` ([`signin::issue_time`]), so it is never born revoked.
//!
//! A path may carry one leading segment before `tokens` or `clients` (an API Gateway stage).
//! Tokens never appear in logs or error messages; token IDs do.
//!
//! # Environment
//! - `TOKEN_TABLE` (required): the TokenTable (token records, revocations).
//! - `ENROLLMENT_TABLE` (required): the EnrollmentTable.
//! - `SIGNING_KEYS_SECRET_ID` (required): the Secrets Manager secret holding the key set JSON,
//!   read at cold start (a failure stops it) and again when older than
//!   `SIGNING_KEYS_REFRESH_SECS` (default 300; 0 = on every request). A failed re-read keeps
//!   the cached set and logs a warning.
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
//! - [`Function`]: built once per container ([`Function::from_env_with`]);
//!   [`Function::handle`] serves one request (the Lambda, `local-api` and the `classroom`
//!   CLI all call it), [`Function::handle_at`] at a given time.
//! - `body`: request fields read one by one, so each refusal names its field.
//! - [`error`]: [`ApiError`], the one refusal type.
//! - `keys`: the cached signing key set and its refresh.
//! - The stores are `stores::TokenTable` and `stores::EnrollmentTable`.

mod body;
pub mod error;
mod keys;

use std::time::Duration;

use kit::{ConfigError, Env};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use mapping::{ClientId, Role, Roles, RoomId};
use serde::Serialize;
use signin::{Claims, Grant, LifetimeBounds, TokenError, TokenRequest};
use stores::{EnrollmentTable, TokenTable};
use tracing::{info, warn};

use body::{Expiry, Fields};
pub use error::ApiError;
use kit::http::{json_response, percent_decode};

/// The longest token lifetime the issuer may be configured with: 30 days (ApplyToken's, and
/// how long a client's revoke-all record lives).
pub const MAX_LIFETIME_SECS: u64 = stores::attrs::token::CLIENT_REVOCATION_TTL_SECS;

/// The default refresh interval of the signing keys, seconds.
pub const DEFAULT_KEYS_REFRESH_SECS: u64 = 300;

/// The issuer.
#[derive(Debug)]
pub struct Function {
    tokens: TokenTable,
    enrollment: EnrollmentTable,
    keys: keys::KeyCache,
    bounds: LifetimeBounds,
    arn_prefix: String,
    roles: Roles,
    uplink: String,
    downlink: String,
}

/// A token as the issue routes answer it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedBody<'a> {
    token: &'a str,
    token_id: &'a str,
    client_id: &'a str,
    issued_at: u64,
    expires_at: u64,
    read: &'a [String],
    write: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rooms: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
}

impl<'a> IssuedBody<'a> {
    /// The answer for a token just issued (`rooms` and `role` for a classroom token).
    fn of(
        issued: &'a signin::Issued,
        rooms: Option<Vec<&'a str>>,
        role: Option<&'static str>,
    ) -> Self {
        let c = &issued.claims;
        Self {
            token: &issued.token,
            token_id: &c.token_id,
            client_id: &c.client_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            read: &c.read,
            write: &c.write,
            rooms,
            role,
        }
    }
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

/// A token ID as the routes accept it: what `signin` accepts (`[A-Za-z0-9_-]{1,64}`).
fn token_id_of(segment: &str) -> Result<&str, ApiError> {
    let ok = !segment.is_empty()
        && segment.len() <= signin::token::MAX_TOKEN_ID_CHARS
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(segment)
    } else {
        Err(ApiError::field(
            "tokenId",
            "invalid_token_id",
            "a token ID is 1 to 64 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

fn client_id_of(text: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(text).map_err(|e| {
        ApiError::field(
            "clientId",
            "invalid_client_id",
            format!("clientId {text:?} is invalid: {e}"),
        )
    })
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

fn role_name(role: Role) -> &'static str {
    stores::enrollment::role_name(role)
}

const ROUTES: &str = "POST /tokens, POST /tokens/classroom, GET /tokens/{tokenId}, POST /tokens/query, POST /tokens/{tokenId}/revoke, POST /clients/{clientId}/revoke";

impl Function {
    /// Builds the issuer from the environment (see the crate docs for every variable) and
    /// reads the signing keys once: a missing or invalid secret stops the cold start.
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

    /// Builds the issuer from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await).await
    }

    /// Serves one request at the clock's time. Never fails: errors are JSON answers.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.handle_at(request, kit::now_ms()).await
    }

    /// Serves one request at `now_ms` (ms since the epoch; read once per request).
    pub async fn handle_at(&self, request: Request, now_ms: u64) -> Response<Body> {
        match self.route(&request, now_ms).await {
            Ok(resp) => resp,
            Err(e) => {
                warn!(
                    error.kind = e.kind,
                    error.field = e.field.as_deref(),
                    status = e.status.as_u16(),
                    method = %request.method(),
                    path = request.uri().path(),
                    error = %e.message,
                    "token request refused"
                );
                json_response(e.status, &e.to_body())
            }
        }
    }

    async fn route(&self, request: &Request, now_ms: u64) -> Result<Response<Body>, ApiError> {
        let path = request.uri().path();
        let all: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // One optional leading segment: an API Gateway stage.
        let segments = match all.as_slice() {
            [first, rest @ ..] if *first != "tokens" && *first != "clients" => rest,
            all => all,
        };
        let body = request.body().as_ref();
        let now_s = now_ms / 1000;
        match (request.method(), segments) {
            (&Method::POST, ["tokens"]) => self.issue_route(body, now_s).await,
            (&Method::POST, ["tokens", "classroom"]) => {
                self.classroom_route(body, now_s, now_ms).await
            }
            (&Method::POST, ["tokens", "query"]) => self.query_route(body, now_s).await,
            (&Method::GET, ["tokens", id]) => self.status_route(token_id_of(id)?, now_s).await,
            (&Method::POST, ["tokens", id, "revoke"]) => {
                self.revoke_route(token_id_of(id)?, now_s).await
            }
            (&Method::POST, ["clients", id, "revoke"]) => {
                let text = percent_decode(id).ok_or_else(|| {
                    ApiError::field("clientId", "invalid_client_id", "bad percent-encoding")
                })?;
                self.revoke_client_route(&client_id_of(&text)?, now_s).await
            }
            _ => Err(ApiError::not_found(
                "not_found",
                format!("no route {} {path}; use {ROUTES}", request.method()),
            )),
        }
    }

    /// Issues a token: the issue time follows the client's revoke-all, the policy must fit
    /// IoT Core, the record is written before the token is handed out.
    async fn issue(
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

    async fn issue_route(&self, body: &[u8], now_s: u64) -> Result<Response<Body>, ApiError> {
        let mut fields = Fields::parse(
            body,
            &["clientId", "read", "write", "expiresIn", "expireTime"],
        )?;
        let client = client_id_of(&fields.required_string("clientId")?)?;
        let read = fields.strings("read")?.unwrap_or_default();
        let write = fields.strings("write")?.unwrap_or_default();
        let expiry = Expiry::take(&mut fields)?;
        let issued = self.issue(&client, read, write, expiry, now_s).await?;
        Self::log_issued(&issued.claims, "tokens");
        Ok(json_response(
            StatusCode::CREATED,
            &IssuedBody::of(&issued, None, None),
        ))
    }

    async fn classroom_route(
        &self,
        body: &[u8],
        now_s: u64,
        now_ms: u64,
    ) -> Result<Response<Body>, ApiError> {
        let mut fields = Fields::parse(body, &["clientId", "rooms", "expiresIn", "expireTime"])?;
        let client = client_id_of(&fields.required_string("clientId")?)?;
        let role = self.roles.role_of(&client);
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
        let texts = fields
            .strings("rooms")?
            .ok_or_else(|| ApiError::field("rooms", "missing_field", "rooms is required"))?;
        let mut rooms = texts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                RoomId::parse(r).map_err(|e| {
                    ApiError::field("rooms", "invalid_room_id", format!("rooms[{i}]: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rooms.sort();
        rooms.dedup();
        if rooms.is_empty() || rooms.len() > signin::MAX_CLASSROOM_ROOMS {
            return Err(ApiError::field(
                "rooms",
                "room_count",
                format!(
                    "a classroom token covers 1 to {} rooms, not {}",
                    signin::MAX_CLASSROOM_ROOMS,
                    rooms.len()
                ),
            ));
        }
        let expiry = Expiry::take(&mut fields)?;
        // The scopes (the lifetime is set by `issue`, which knows the issue time).
        let scopes = signin::classroom_request(&client, &rooms, &self.uplink, &self.downlink, 0);
        let issued = self
            .issue(&client, scopes.read, scopes.write, expiry, now_s)
            .await?;
        let c = &issued.claims;
        self.enrollment
            .enroll(&client, &rooms, role, c.expires_at, now_ms)
            .await?;
        Self::log_issued(c, "tokens/classroom");
        Ok(json_response(
            StatusCode::CREATED,
            &IssuedBody::of(
                &issued,
                Some(rooms.iter().map(RoomId::as_str).collect()),
                Some(role_name(role)),
            ),
        ))
    }

    async fn status_route(&self, token_id: &str, now_s: u64) -> Result<Response<Body>, ApiError> {
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
            "revoked"
        } else if now_s >= record.expires_at {
            "expired"
        } else {
            "active"
        };
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "tokenId": token_id,
                "clientId": record.client_id,
                "status": status,
                "issuedAt": record.issued_at,
                "expiresAt": record.expires_at,
            }),
        ))
    }

    async fn query_route(&self, body: &[u8], now_s: u64) -> Result<Response<Body>, ApiError> {
        let mut fields = Fields::parse(body, &["token", "clientId"])?;
        let token = fields.required_string("token")?;
        let client = fields.string("clientId")?;
        let keys = self.keys.get().await;
        // Without a client ID, learn it from the token: `verify` names the token's client
        // only once the signature has been checked.
        let verified = match &client {
            Some(c) => signin::verify(&token, c, &keys, now_s),
            None => match signin::verify(&token, "", &keys, now_s) {
                Err(TokenError::WrongClient { token_client }) => {
                    signin::verify(&token, &token_client, &keys, now_s)
                }
                other => other,
            },
        };
        let invalid = |e: &TokenError, claims: Option<&Claims>| {
            let mut answer = serde_json::json!({
                "valid": false,
                "code": e.code(),
                "reason": e.kind(),
                "message": e.to_string(),
            });
            if let Some(c) = claims {
                answer["tokenId"] = c.token_id.clone().into();
                answer["clientId"] = c.client_id.clone().into();
            }
            info!(
                valid = false,
                reason = e.kind(),
                token_id = claims.map(|c| c.token_id.as_str()),
                "token queried"
            );
            json_response(StatusCode::OK, &answer)
        };
        let claims = match verified {
            Ok(c) => c,
            Err(e) => return Ok(invalid(&e, None)),
        };
        let subject = revocation_subject(
            &claims.client_id,
            claims.issued_at,
            claims.expires_at,
            &claims.token_id,
        );
        if let Err(e) = self.tokens.revocations_for(&subject).await?.check(&subject) {
            return Ok(invalid(&e, Some(&claims)));
        }
        info!(valid = true, token_id = %claims.token_id, "token queried");
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "valid": true,
                "tokenId": claims.token_id,
                "clientId": claims.client_id,
                "issuedAt": claims.issued_at,
                "expiresAt": claims.expires_at,
                "read": claims.read,
                "write": claims.write,
            }),
        ))
    }

    async fn revoke_route(&self, token_id: &str, now_s: u64) -> Result<Response<Body>, ApiError> {
        if !self.tokens.revoke(token_id, now_s).await? {
            return Err(ApiError::not_found(
                "unknown_token",
                format!("no token {token_id}"),
            ));
        }
        info!(token_id, revoked_at = now_s, "token revoked");
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "tokenId": token_id, "status": "revoked" }),
        ))
    }

    async fn revoke_client_route(
        &self,
        client: &ClientId,
        now_s: u64,
    ) -> Result<Response<Body>, ApiError> {
        let before = self.tokens.revoke_client(client.as_str(), now_s).await?;
        info!(client_id = %client, revoked_before = before, "every token of the client revoked");
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "clientId": client.as_str(), "revokedBefore": before }),
        ))
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

    #[test]
    fn token_ids_in_paths_are_what_signin_issues() {
        assert!(token_id_of("0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "a.b", "a%20b", &"a".repeat(65)] {
            assert_eq!(
                token_id_of(bad).unwrap_err().field.as_deref(),
                Some("tokenId"),
                "{bad}"
            );
        }
    }
}
