//! The token issuer's HTTP API (Alibaba's ApplyToken, QueryToken and RevokeToken; API Gateway
//! HTTP API with IAM auth in the cloud, `local-api` locally): the routes of the `issuer`
//! service, which issues sign-in tokens, answers their status, verifies and revokes them, and
//! records the classroom enrollment a classroom token grants. This crate is the routing only:
//! method and path to an [`issuer::Operation`], the JSON body read by the issuer, its
//! [`issuer::Reply`] or [`issuer::ApiError`] back as JSON.
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
//!   `"rooms"` and `"role"`: the classroom scopes for a teacher or a student (the role comes
//!   from the client's group; any other group is refused, field `clientId`), and one
//!   EnrollmentTable item per room.
//! - `GET /tokens/{tokenId}` -> `{"tokenId","clientId","status":"active"|"revoked"|"expired",
//!   "issuedAt","expiresAt"}`; 404 for a token the table does not know.
//! - `POST /tokens/query` `{"token","clientId"?}` -> 200 `{"valid":true,"tokenId","clientId",
//!   "issuedAt","expiresAt","read","write"}` or `{"valid":false,"code","reason","message",
//!   "tokenId"?,"clientId"?}` (Alibaba's token-invalid codes: signature, key, expiry,
//!   revocation, and the client when `clientId` is given).
//! - `POST /tokens/{tokenId}/revoke` -> `{"tokenId","status":"revoked"}`; 404 when unknown.
//! - `POST /clients/{clientId}/revoke` -> `{"clientId","revokedBefore"}`: every token of the
//!   client issued so far is revoked. A token issued afterwards gets an issue time after
//!   `revokedBefore`, so it is never born revoked.
//!
//! A path may carry one leading segment before `tokens` or `clients` (an API Gateway stage).
//! Tokens never appear in logs or error messages; token IDs do.
//!
//! # Environment
//! The issuer's (the `issuer` crate lists them): `TOKEN_TABLE`, `ENROLLMENT_TABLE`,
//! `SIGNING_KEYS_SECRET_ID` (read at cold start: a failure stops it; re-read after
//! `SIGNING_KEYS_REFRESH_SECS`), `IOT_ARN_PREFIX`, `TOKEN_MIN_LIFETIME_SECS`,
//! `TOKEN_MAX_LIFETIME_SECS`, `TEACHER_GROUPS`, `STUDENT_GROUPS`, the rules variables
//! (`UPLINK_PARENTS`, `DOWNLINK_PARENTS`, `TOPIC_MAX_CHARS`, `PAYLOAD_MAX_BYTES`) and the AWS
//! SDK's (`AWS_ENDPOINT_URL` for moto locally).
//!
//! # Layout
//! - [`Function`]: built once per container ([`Function::from_env_with`]);
//!   [`Function::handle`] serves one request (the Lambda and `local-api` call it),
//!   [`Function::handle_at`] at a given time.
//! - [`operation`]: a request's method, path and body as the issuer's operation.

use kit::{ConfigError, Env};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::warn;

use issuer::{ApiError, ClassroomRequest, IssueRequest, Issuer, Operation, QueryRequest};
use kit::http::{json_response, percent_decode};

pub use issuer::{DEFAULT_KEYS_REFRESH_SECS, MAX_LIFETIME_SECS};

/// The token issuer's HTTP API.
#[derive(Debug)]
pub struct Function {
    issuer: Issuer,
}

const ROUTES: &str = "POST /tokens, POST /tokens/classroom, GET /tokens/{tokenId}, POST /tokens/query, POST /tokens/{tokenId}/revoke, POST /clients/{clientId}/revoke";

/// The issuer's operation for a request: the route (one optional leading segment, an API
/// Gateway stage, is skipped) and, for the routes with a body, the body read field by field.
/// No route: 404 `not_found`.
pub fn operation(method: &Method, path: &str, body: &[u8]) -> Result<Operation, ApiError> {
    let all: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let segments = match all.as_slice() {
        [first, rest @ ..] if *first != "tokens" && *first != "clients" => rest,
        all => all,
    };
    match (method, segments) {
        (&Method::POST, ["tokens"]) => IssueRequest::from_json(body).map(Operation::Issue),
        (&Method::POST, ["tokens", "classroom"]) => {
            ClassroomRequest::from_json(body).map(Operation::Classroom)
        }
        (&Method::POST, ["tokens", "query"]) => QueryRequest::from_json(body).map(Operation::Query),
        (&Method::GET, ["tokens", id]) => Ok(Operation::Status {
            token_id: (*id).to_owned(),
        }),
        (&Method::POST, ["tokens", id, "revoke"]) => Ok(Operation::Revoke {
            token_id: (*id).to_owned(),
        }),
        (&Method::POST, ["clients", id, "revoke"]) => {
            let client_id = percent_decode(id).ok_or_else(|| {
                ApiError::field("clientId", "invalid_client_id", "bad percent-encoding")
            })?;
            Ok(Operation::RevokeClient { client_id })
        }
        _ => Err(ApiError::not_found(
            "not_found",
            format!("no route {method} {path}; use {ROUTES}"),
        )),
    }
}

impl Function {
    /// The API over an issuer.
    pub fn new(issuer: Issuer) -> Self {
        Self { issuer }
    }

    /// Builds the issuer from the environment (see the `issuer` crate for every variable) and
    /// reads the signing keys once: a missing or invalid secret stops the cold start.
    pub async fn from_env_with(
        env: &Env,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, ConfigError> {
        Issuer::from_env_with(env, sdk).await.map(Self::new)
    }

    /// Builds the issuer from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await).await
    }

    /// The issuer behind the API.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Serves one request at the clock's time. Never fails: errors are JSON answers.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        self.handle_at(request, kit::now_ms()).await
    }

    /// Serves one request at `now_ms` (ms since the epoch; read once per request).
    pub async fn handle_at(&self, request: Request, now_ms: u64) -> Response<Body> {
        let path = request.uri().path();
        let answer = match operation(request.method(), path, request.body().as_ref()) {
            Ok(op) => self.issuer.serve(&op, now_ms).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(reply) => {
                let status = if reply.is_new_token() {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                json_response(status, &reply)
            }
            Err(e) => {
                warn!(
                    error.kind = e.kind,
                    error.field = e.field.as_deref(),
                    status = e.status.code(),
                    method = %request.method(),
                    path,
                    error = %e.message,
                    "token request refused"
                );
                let status = StatusCode::from_u16(e.status.code())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json_response(status, &e.to_body())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    #[test]
    fn routes_map_to_operations_and_a_stage_prefix_is_skipped() {
        assert_eq!(
            operation(&Method::GET, "/prod/tokens/abc", b"").unwrap(),
            Operation::Status {
                token_id: "abc".to_owned()
            }
        );
        assert_eq!(
            operation(
                &Method::POST,
                "/clients/GID_student%40%40%40001/revoke",
                b""
            )
            .unwrap(),
            Operation::RevokeClient {
                client_id: "GID_student@@@001".to_owned()
            }
        );
        assert_eq!(
            operation(&Method::POST, "/clients/%4/revoke", b"")
                .unwrap_err()
                .field
                .as_deref(),
            Some("clientId")
        );
        for (method, path) in [
            (Method::DELETE, "/tokens/abc"),
            (Method::GET, "/tokens"),
            (Method::GET, "/a/b/tokens"),
        ] {
            assert_eq!(
                operation(&method, path, b"").unwrap_err().kind,
                "not_found",
                "{method} {path}"
            );
        }
    }
}
