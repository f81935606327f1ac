//! The presence query's rule (the seeds' QuerySessionByClientId and
//! BatchQuerySessionByClientIds), top to bottom: which clients are asked about -> the answer for
//! each from its presence as read. Pure: the query function (and the `classroom online` CLI)
//! reads each client's presence items and hands them here.
//!
//! 1. The clients: [`parse_clients`] (1 to [`MAX_BATCH`] client IDs) or, for the batch body
//!    `{"clientIds":[...]}`, [`parse_batch`]. Each refusal is a [`QueryError`] with its stable
//!    [`QueryError::kind`].
//! 2. The answer for each: [`Answer::from_presence`]: online when some connection is open
//!    ([`ClientPresence::is_online`]'s rule), the open connections' channel IDs, and since when
//!    (the earliest connect time among them). [`answers`] pairs the clients with their presence
//!    in the order asked.

use serde::{Deserialize, Serialize};

use crate::{ClientId, ClientPresence};

/// Most clients one query may ask about (the seeds' batch limit).
pub const MAX_BATCH: usize = 10;

/// The answer for one client: `{"clientId","online","channels":[...],"since"?}`.
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

/// The answers for `clients`, each with its presence (same order, same length).
pub fn answers<'a>(
    clients: &[ClientId],
    presences: impl IntoIterator<Item = &'a ClientPresence>,
) -> Vec<Answer> {
    clients
        .iter()
        .zip(presences)
        .map(|(c, p)| Answer::from_presence(c, p))
        .collect()
}

/// Why a query was refused (the request's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

impl QueryError {
    /// Its stable name: `batch_size`, `invalid_client_id` or `invalid_body`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BatchSize(_) => "batch_size",
            Self::ClientId { .. } => "invalid_client_id",
            Self::Body(_) => "invalid_body",
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

/// The clients of a batch body `{"clientIds":[...]}`.
pub fn parse_batch(body: &[u8]) -> Result<Vec<ClientId>, QueryError> {
    let body: BatchBody =
        serde_json::from_slice(body).map_err(|e| QueryError::Body(e.to_string()))?;
    parse_clients(&body.client_ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

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
