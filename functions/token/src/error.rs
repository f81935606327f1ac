//! The one refusal type of the HTTP API: a status, a stable kind, the request field at fault
//! (when one is) and a message. Its JSON is `{"error":"<kind>","field":"<name>"?,"message"}`.
//! No message ever holds a token (only token IDs).

use lambda_http::http::StatusCode;
use serde::Serialize;
use signin::IssueError;
use signin::iot::PolicyError;
use stores::StoreError;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// 400, 404, 500 or 503.
    pub status: StatusCode,
    /// A short stable name (`invalid_filter`, `unknown_token`, ...).
    pub kind: &'static str,
    /// The request field at fault (`clientId`, `read`, `expiresIn`, ...), for a 400.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// The JSON body of an error answer.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'e> {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'e str>,
    message: &'e str,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 400 about the body as a whole (not JSON, not an object).
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_body",
            field: None,
            message: message.into(),
        }
    }

    /// A 404.
    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind,
            field: None,
            message: message.into(),
        }
    }

    /// A 503: a dependency failed; the caller may retry.
    pub fn unavailable(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind,
            field: None,
            message: message.into(),
        }
    }

    /// A 500: our bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal_error",
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn to_body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: self.kind,
            field: self.field.as_deref(),
            message: &self.message,
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        let kind = match &e {
            IssueError::ClientId { .. } => "invalid_client_id",
            IssueError::Filter { .. } => "invalid_filter",
            IssueError::TooManyFilters(_) => "too_many_filters",
            IssueError::NoFilters => "no_filters",
            IssueError::Lifetime { .. } => "invalid_lifetime",
            // Token IDs are ours (UUIDs): a refused one is a bug here, not in the request.
            IssueError::TokenId => return Self::internal(e.to_string()),
        };
        Self::field(e.field(), kind, e.to_string())
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        // The read filters dominate a classroom grant's policy (Receive and Subscribe each).
        Self::field("read", "policy_too_large", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::unavailable("store_unavailable", e.to_string())
    }
}
