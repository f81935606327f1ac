//! The one refusal type of the issuer: a class ([`ErrorStatus`], which an HTTP API maps to its
//! status code), a stable kind, the request field at fault (when one is) and a message. Its JSON
//! ([`ApiError::to_body`]) is `{"error":"<kind>","field":"<name>"?,"message"}`. No message ever
//! holds a token (only token IDs).

use serde::Serialize;
use signin::IssueError;
use signin::iot::PolicyError;
use stores::StoreError;

/// The class of a refusal, with the HTTP status the API answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// 400: the request is at fault (a field, or the body as a whole).
    BadRequest,
    /// 404: no such token (or, over HTTP, no such route).
    NotFound,
    /// 503: a dependency (DynamoDB, the clock) failed; the caller may retry.
    Unavailable,
    /// 500: our bug.
    Internal,
}

impl ErrorStatus {
    /// The HTTP status code: 400, 404, 503 or 500.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// Bad request, not found, unavailable or internal.
    pub status: ErrorStatus,
    /// A short stable name (`invalid_filter`, `unknown_token`, ...).
    pub kind: &'static str,
    /// The request field at fault (`clientId`, `read`, `expiresIn`, ...), for a bad request.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// The JSON body of an error answer: `{"error":"<kind>","field":"<name>"?,"message"}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'e> {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'e str>,
    message: &'e str,
}

impl ApiError {
    /// A bad request naming `field`.
    pub fn field(field: impl Into<String>, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::BadRequest,
            kind,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A bad request about the body as a whole (not JSON, not an object).
    pub fn body(message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::BadRequest,
            kind: "invalid_body",
            field: None,
            message: message.into(),
        }
    }

    /// Not found.
    pub fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::NotFound,
            kind,
            field: None,
            message: message.into(),
        }
    }

    /// Unavailable: a dependency failed; the caller may retry.
    pub fn unavailable(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::Unavailable,
            kind,
            field: None,
            message: message.into(),
        }
    }

    /// Internal: our bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::Internal,
            kind: "internal_error",
            field: None,
            message: message.into(),
        }
    }

    /// The JSON answer of this refusal.
    pub fn to_body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: self.kind,
            field: self.field.as_deref(),
            message: &self.message,
        }
    }

    /// The JSON answer as text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_body()).unwrap_or_else(|_| "{}".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_answer_names_the_kind_and_the_field_when_there_is_one() {
        let e = ApiError::field("rooms", "room_count", "1 to 48 rooms");
        assert_eq!(e.status.code(), 400);
        assert_eq!(
            e.to_json(),
            r#"{"error":"room_count","field":"rooms","message":"1 to 48 rooms"}"#
        );
        let e = ApiError::not_found("unknown_token", "no token t");
        assert_eq!(e.status.code(), 404);
        assert_eq!(
            e.to_json(),
            r#"{"error":"unknown_token","message":"no token t"}"#
        );
        assert_eq!(ApiError::unavailable("x", "y").status.code(), 503);
        assert_eq!(ApiError::internal("y").status.code(), 500);
    }
}
