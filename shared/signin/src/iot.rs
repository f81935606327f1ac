//! What the AWS IoT Core custom authorizer answers for a verified sign-in: the IoT policy
//! documents translated from the grant, the principal ID and the connection's lifetime.
//!
//! - `iot:Connect` on exactly `<prefix>:client/<clientId>` (a §3 client ID has no `*` or `?`,
//!   so it cannot widen into a pattern);
//! - `iot:Publish` on `<prefix>:topic/<w>` for each write filter, `iot:Receive` on
//!   `<prefix>:topic/<r>` and `iot:Subscribe` on `<prefix>:topicfilter/<r>` for each read
//!   filter. In IoT policies `+` and `#` are literal characters and `*` the only multi-character
//!   wildcard, so both become `*`, and `a/#` also yields `a` itself (MQTT's `#` matches its
//!   parent). `*` matches across levels: a grant of `a/+/b` is wider in IoT Core than at the
//!   local broker. The classroom scopes have no wildcards, so for them the two agree exactly.
//! - At most [`MAX_DOCUMENTS`] documents of at most [`MAX_DOCUMENT_CHARS`] characters each: the
//!   statements are packed in order, a new document begun when the next resource would not fit;
//!   a grant that needs more is refused (the issuer refuses such a token at issue time).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::token::Grant;

/// Most policy documents an authorizer response may carry.
pub const MAX_DOCUMENTS: usize = 10;
/// Longest policy document, characters (we count bytes, which is never fewer).
pub const MAX_DOCUMENT_CHARS: usize = 2048;
/// Shortest `disconnectAfterInSeconds` IoT Core accepts: the cloud cannot end a connection
/// sooner after it starts, whatever the token's expiry.
pub const MIN_DISCONNECT_AFTER_SECS: u32 = 300;
/// Longest `disconnectAfterInSeconds` IoT Core accepts.
pub const MAX_DISCONNECT_AFTER_SECS: u32 = 86_400;
/// `refreshAfterInSeconds`: IoT Core calls the authorizer again after this long, so a revoked
/// token loses its live connection within this bound (the shortest IoT Core allows).
pub const REFRESH_AFTER_SECS: u32 = 300;

/// An IAM-style policy document as IoT Core takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    #[serde(rename = "Version")]
    pub version: String,
    /// The statements.
    #[serde(rename = "Statement")]
    pub statement: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// Always `Allow`.
    #[serde(rename = "Effect")]
    pub effect: String,
    /// One IoT action.
    #[serde(rename = "Action")]
    pub action: Vec<String>,
    /// Its resources.
    #[serde(rename = "Resource")]
    pub resource: Vec<String>,
}

/// Why a grant cannot be expressed as IoT policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// More than [`MAX_DOCUMENTS`] documents would be needed.
    #[error(
        "the grant needs {0} IoT policy documents; at most {MAX_DOCUMENTS} of {MAX_DOCUMENT_CHARS} characters fit: grant fewer or shorter filters"
    )]
    TooLarge(usize),
    /// One resource alone does not fit a document.
    #[error("the IoT resource for {0:?} is longer than a policy document may be")]
    ResourceTooLong(String),
    /// The grant's client ID is not a §3 client ID.
    #[error("client ID {0:?} cannot be put in an IoT policy")]
    ClientId(String),
}

/// An MQTT filter as an IoT policy resource path: `+`, `#` -> `*`; `a/#` also gives `a`.
fn translate(filter: &str) -> Vec<String> {
    let star = filter.replace(['+', '#'], "*");
    match filter.strip_suffix("/#") {
        Some(parent) => vec![parent.replace('+', "*"), star],
        None => vec![star],
    }
}

/// The policy documents for `grant` under `arn_prefix` (`arn:aws:iot:<region>:<account>`).
pub fn policy_documents(
    grant: &Grant,
    arn_prefix: &str,
) -> Result<Vec<PolicyDocument>, PolicyError> {
    if mapping::ClientId::parse(&grant.client_id).is_err() {
        return Err(PolicyError::ClientId(grant.client_id.clone()));
    }
    let mut items: Vec<(&'static str, String)> = vec![(
        "iot:Connect",
        format!("{arn_prefix}:client/{}", grant.client_id),
    )];
    for w in &grant.write {
        for t in translate(w.as_str()) {
            items.push(("iot:Publish", format!("{arn_prefix}:topic/{t}")));
        }
    }
    for r in &grant.read {
        for t in translate(r.as_str()) {
            items.push(("iot:Receive", format!("{arn_prefix}:topic/{t}")));
        }
    }
    for r in &grant.read {
        for t in translate(r.as_str()) {
            items.push(("iot:Subscribe", format!("{arn_prefix}:topicfilter/{t}")));
        }
    }
    items.dedup();
    pack(items)
}

const DOC_BASE: usize = r#"{"Version":"2012-10-17","Statement":[]}"#.len();
const STATEMENT_BASE: usize = r#"{"Effect":"Allow","Action":[],"Resource":[]}"#.len();

fn json_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len() + 2, |j| j.len())
}

/// Packs (action, resource) pairs into documents, tracking each document's serialised length.
fn pack(items: Vec<(&'static str, String)>) -> Result<Vec<PolicyDocument>, PolicyError> {
    let new_doc = || PolicyDocument {
        version: "2012-10-17".into(),
        statement: Vec::new(),
    };
    let mut docs = Vec::new();
    let mut doc = new_doc();
    let mut len = DOC_BASE;
    for (action, resource) in items {
        let r_len = json_len(&resource);
        let fresh_cost = STATEMENT_BASE + json_len(action) + r_len;
        let mut same = doc
            .statement
            .last()
            .is_some_and(|s| s.action.first().map(String::as_str) == Some(action));
        let mut cost = match (same, doc.statement.is_empty()) {
            (true, _) => r_len + 1,
            (false, true) => fresh_cost,
            (false, false) => fresh_cost + 1,
        };
        if len + cost > MAX_DOCUMENT_CHARS && !doc.statement.is_empty() {
            docs.push(std::mem::replace(&mut doc, new_doc()));
            len = DOC_BASE;
            cost = fresh_cost;
            same = false;
        }
        if len + cost > MAX_DOCUMENT_CHARS {
            return Err(PolicyError::ResourceTooLong(resource));
        }
        len += cost;
        match doc.statement.last_mut() {
            Some(s) if same => s.resource.push(resource),
            _ => doc.statement.push(Statement {
                effect: "Allow".into(),
                action: vec![action.to_owned()],
                resource: vec![resource],
            }),
        }
    }
    docs.push(doc);
    if docs.len() > MAX_DOCUMENTS {
        return Err(PolicyError::TooLarge(docs.len()));
    }
    Ok(docs)
}

/// The authorizer's `principalId` for a client: IoT Core wants 1 to 128 alphanumeric
/// characters. The client ID's letters and digits keep it readable in logs; the first 8 hex
/// digits of its SHA-256 keep two IDs that differ only in `_`, `-` or `@` apart.
pub fn principal_id(client_id: &str) -> String {
    let readable: String = client_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(100)
        .collect();
    let digest = Sha256::digest(client_id.as_bytes());
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{readable}x{tag}")
}

/// `disconnectAfterInSeconds` for a sign-in with `remaining` seconds left: IoT Core takes 300
/// to 86,400, so a token with less than 300 s left still gets a 300 s connection (the local
/// broker cuts it exactly at expiry), and a longer one is cut after a day (the client
/// reconnects with a fresh token).
pub fn disconnect_after_secs(remaining: u64) -> u32 {
    let clamped = remaining.clamp(
        u64::from(MIN_DISCONNECT_AFTER_SECS),
        u64::from(MAX_DISCONNECT_AFTER_SECS),
    );
    u32::try_from(clamped).unwrap_or(MAX_DISCONNECT_AFTER_SECS)
}
