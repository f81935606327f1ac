//! The synchronous presence query (the seeds' QuerySessionByClientId and
//! BatchQuerySessionByClientIds): is a client online, and on which connections? An HTTP API
//! (API Gateway HTTP API in the cloud, `local-api` locally).
//!
//! # Routes
//! - `GET /presence/{clientId}` -> one answer `{"clientId","online","channels":[...],"since"?}`
//!   (`since`: the earliest connect time of its open connections, ms);
//! - `POST /presence/batch` with `{"clientIds":[...]}` (1 to 10) -> `{"results":[answer...]}`,
//!   in the order asked.
//! - Errors are JSON `{"error","message"}` with 400 (`batch_size`, `invalid_client_id`,
//!   `invalid_body`), 404 (`not_found`: no such route) or 503 (`store_unavailable`: the store
//!   failed; retry).
//!
//! # Layout
//! - [`Function`]: built once per container; [`Function::online`] reads and answers for 1..=10
//!   clients, [`Function::handle`] is the HTTP API.
//! - The rule (which clients, the answer for each) is `mapping::classroom::query`; the read is
//!   `stores::presence::PresenceStore` (one strongly consistent Query per client, the batch's
//!   queries run concurrently), over the items the presence function writes.
//!
//! # Environment
//! `PRESENCE_TABLE` (required), the rules variables (`UPLINK_PARENTS`, `DOWNLINK_PARENTS`,
//! `TOPIC_MAX_CHARS`, `PAYLOAD_MAX_BYTES`: validated so every function refuses the same bad
//! configuration) and the AWS SDK's (`AWS_ENDPOINT_URL` for moto locally).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use mapping::ClientId;
use mapping::classroom::query::{self, Answer, QueryError, parse_batch, parse_clients};
use stores::{PresenceStore, StoreError};

/// Why a presence request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum PresenceQueryError {
    /// The request is at fault (400).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PresenceQueryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Its stable name (the `error` of the JSON answer).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Query(e) => e.kind(),
            Self::Store(_) => "store_unavailable",
        }
    }
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    kit::http::json_response(
        status,
        &serde_json::json!({ "error": kind, "message": message }),
    )
}

/// The query function.
#[derive(Debug, Clone)]
pub struct Function {
    store: PresenceStore,
    /// Now, ms since the epoch: judges whether a channel outlived the longest connection.
    clock: fn() -> u64,
}

impl Function {
    /// A query over a presence store.
    pub fn new(store: PresenceStore) -> Self {
        Self {
            store,
            clock: kit::now_ms,
        }
    }

    /// The same query with another clock (tests answering recorded events).
    #[must_use]
    pub fn with_clock(self, clock: fn() -> u64) -> Self {
        Self { clock, ..self }
    }

    /// Builds the function from the environment: `PRESENCE_TABLE` and the shared rules
    /// variables (validated so every function refuses the same bad configuration).
    pub fn from_env_with(
        env: &kit::Env,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, kit::ConfigError> {
        env.rules()?;
        let table = env.required("PRESENCE_TABLE", "set it to the PresenceTable name")?;
        Ok(Self::new(PresenceStore::reader(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
        )))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, kit::ConfigError> {
        Self::from_env_with(&kit::Env::process(), &kit::aws::sdk_config().await)
    }

    /// Whether each client is online, in the order asked (1 to 10 clients).
    pub async fn online(&self, clients: &[ClientId]) -> Result<Vec<Answer>, PresenceQueryError> {
        if clients.is_empty() || clients.len() > query::MAX_BATCH {
            return Err(QueryError::BatchSize(clients.len()).into());
        }
        let snapshots = self.store.read_many(clients).await?;
        // A channel open longer than any connection can last lost its offline event: it
        // counts as closed (`ClientPresence::as_of`), whether or not presence wrote it yet.
        let now_ms = (self.clock)();
        let current: Vec<_> = snapshots.iter().map(|s| s.presence.as_of(now_ms)).collect();
        Ok(query::answers(clients, current.iter()))
    }

    async fn route(&self, request: &Request) -> Result<Response<Body>, PresenceQueryError> {
        let path = request.uri().path().trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (request.method(), segments.as_slice()) {
            (&Method::POST, [.., "presence", "batch"]) => {
                let clients = parse_batch(request.body().as_ref())?;
                let results = self.online(&clients).await?;
                Ok(kit::http::json_response(
                    StatusCode::OK,
                    &serde_json::json!({ "results": results }),
                ))
            }
            (&Method::GET, [.., "presence", id]) => {
                let id = kit::http::percent_decode(id).ok_or_else(|| QueryError::ClientId {
                    id: (*id).to_owned(),
                    reason: "bad percent-encoding".to_owned(),
                })?;
                let clients = parse_clients(&[id])?;
                let mut results = self.online(&clients).await?;
                Ok(kit::http::json_response(StatusCode::OK, &results.remove(0)))
            }
            _ => Ok(error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                "use GET /presence/{clientId} or POST /presence/batch",
            )),
        }
    }

    /// The HTTP API (see the crate docs). Never fails: errors are JSON responses.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        match self.route(&request).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(error.kind = e.kind(), error = %e, path = request.uri().path(), "presence query refused");
                error_response(e.status(), e.kind(), &e.to_string())
            }
        }
    }
}
