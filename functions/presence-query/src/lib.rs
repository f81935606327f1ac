//! The synchronous presence query (SPEC §5, the seeds' QuerySessionByClientId and
//! BatchQuerySessionByClientIds): is a client online, and on which connections?
//!
//! # Layout
//! - [`Function`]: built once per container; [`Function::online`] answers for 1..=10 clients
//!   (the CLI calls it too), [`Function::handle`] is the HTTP API:
//!   - `GET /presence/{clientId}` -> one [`Answer`];
//!   - `POST /presence/batch` with `{"clientIds":[...]}` (1 to 10) -> `{"results":[Answer...]}`.
//! - Errors are JSON `{"error","message"}` with 400 (bad client ID or body), 404 (no such
//!   route) or 503 (the store failed; retry).
//!
//! The answer is read from the presence items the presence function writes (one strongly
//! consistent Query per client, the batch's queries run concurrently) and decided by the same
//! pure rule ([`mapping::ClientPresence::is_online`]).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use mapping::{ClientId, ClientPresence};
use presence::store::{PresenceStore, StoreError};
use serde::{Deserialize, Serialize};

/// Most clients one query may ask about (the seeds' batch limit).
pub const MAX_BATCH: usize = 10;

/// The answer for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The client.
    pub client_id: String,
    /// Whether some connection of it is open.
    pub online: bool,
    /// Its open connections (channel IDs).
    pub channels: Vec<String>,
    /// Since when it has been connected: the earliest connect time of its open connections, ms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub since: Option<u64>,
}

impl Answer {
    /// The answer a client's presence gives.
    pub fn from_presence(client: &ClientId, presence: &ClientPresence) -> Self {
        let open: Vec<(&String, u64)> = presence
            .channels
            .iter()
            .filter(|(_, c)| c.is_open())
            .filter_map(|(id, c)| c.connected_at.map(|t| (id, t)))
            .collect();
        Self {
            client_id: client.to_string(),
            online: !open.is_empty(),
            since: open.iter().map(|(_, t)| *t).min(),
            channels: open.into_iter().map(|(id, _)| id.clone()).collect(),
        }
    }
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No client, or more than [`MAX_BATCH`].
    #[error("ask about 1 to {MAX_BATCH} clients, not {0}")]
    BatchSize(usize),
    /// A client ID that is not valid.
    #[error("client ID {id:?} is invalid: {reason}")]
    ClientId {
        /// The ID given.
        id: String,
        /// Why.
        reason: String,
    },
    /// The body is not `{"clientIds":[...]}`.
    #[error("body must be {{\"clientIds\":[\"<clientId>\", ...]}}: {0}")]
    Body(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::BatchSize(_) => "batch_size",
            Self::ClientId { .. } => "invalid_client_id",
            Self::Body(_) => "invalid_body",
            Self::Store(_) => "store_unavailable",
        }
    }
}

/// Parses client IDs, refusing an empty or oversize batch.
pub fn parse_clients<S: AsRef<str>>(ids: &[S]) -> Result<Vec<ClientId>, QueryError> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(QueryError::BatchSize(ids.len()));
    }
    ids.iter()
        .map(|id| {
            ClientId::parse(id.as_ref()).map_err(|e| QueryError::ClientId {
                id: id.as_ref().to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody {
    client_ids: Vec<String>,
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
}

impl Function {
    /// A query over a presence store.
    pub fn new(store: PresenceStore) -> Self {
        Self { store }
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
    pub async fn online(&self, clients: &[ClientId]) -> Result<Vec<Answer>, QueryError> {
        if clients.is_empty() || clients.len() > MAX_BATCH {
            return Err(QueryError::BatchSize(clients.len()));
        }
        let reads = clients.iter().map(|c| self.store.read(c));
        let snapshots = futures::future::try_join_all(reads).await?;
        Ok(clients
            .iter()
            .zip(snapshots)
            .map(|(c, s)| Answer::from_presence(c, &s.presence))
            .collect())
    }

    async fn route(&self, request: &Request) -> Result<Response<Body>, QueryError> {
        let path = request.uri().path().trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (request.method(), segments.as_slice()) {
            (&Method::POST, [.., "presence", "batch"]) => {
                let body: BatchBody = serde_json::from_slice(request.body().as_ref())
                    .map_err(|e| QueryError::Body(e.to_string()))?;
                let clients = parse_clients(&body.client_ids)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_one_to_ten_valid_clients() {
        assert!(matches!(
            parse_clients::<&str>(&[]),
            Err(QueryError::BatchSize(0))
        ));
        let eleven = vec!["GID_student@@@002"; 11];
        assert!(matches!(
            parse_clients(&eleven),
            Err(QueryError::BatchSize(11))
        ));
        assert!(matches!(
            parse_clients(&["nobody"]),
            Err(QueryError::ClientId { .. })
        ));
        assert_eq!(parse_clients(&eleven[..10]).unwrap().len(), 10);
    }
}
