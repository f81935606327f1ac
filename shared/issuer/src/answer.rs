//! What the issuer answers: one [`Reply`] per [`crate::Operation`], each serialized as the
//! JSON its HTTP API returns (camelCase fields).

use std::fmt;

use serde::Serialize;
use signin::{Claims, TokenError};

/// The answer to one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// A token was issued (issue, classroom).
    Issued(IssuedToken),
    /// A token's status.
    Status(StatusAnswer),
    /// The verdict on a token.
    Query(QueryAnswer),
    /// One token revoked.
    Revoked(RevokedToken),
    /// Every token of a client revoked.
    ClientRevoked(RevokedClient),
}

impl Reply {
    /// Whether a token was made (over HTTP: 201 Created rather than 200).
    pub fn is_new_token(&self) -> bool {
        matches!(self, Self::Issued(_))
    }
}

/// A token just issued: `{"token","tokenId","clientId","issuedAt","expiresAt","read","write"}`
/// and, for a classroom token, `"rooms"` and `"role"`. Its `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// The token (a credential: never log it).
    pub token: String,
    /// Its ID (`jti`).
    pub token_id: String,
    /// The client it is for.
    pub client_id: String,
    /// Issue time, s since the epoch.
    pub issued_at: u64,
    /// Expiry, s since the epoch.
    pub expires_at: u64,
    /// Read filters, sorted.
    pub read: Vec<String>,
    /// Write filters, sorted.
    pub write: Vec<String>,
    /// The rooms of a classroom token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// The role of a classroom token's client (`teacher` or `student`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[token]")
            .field("token_id", &self.token_id)
            .field("client_id", &self.client_id)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("read", &self.read)
            .field("write", &self.write)
            .field("rooms", &self.rooms)
            .field("role", &self.role)
            .finish()
    }
}

impl IssuedToken {
    /// The answer for a token just issued (`rooms` and `role` for a classroom token).
    pub(crate) fn of(
        issued: signin::Issued,
        rooms: Option<Vec<String>>,
        role: Option<&'static str>,
    ) -> Self {
        let c = issued.claims;
        Self {
            token: issued.token,
            token_id: c.token_id,
            client_id: c.client_id,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            read: c.read,
            write: c.write,
            rooms,
            role,
        }
    }
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Neither revoked nor expired.
    Active,
    /// Revoked (by itself or by its client's revoke-all).
    Revoked,
    /// Past its expiry.
    Expired,
}

/// A token's status: `{"tokenId","clientId","status","issuedAt","expiresAt"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer {
    /// The token ID.
    pub token_id: String,
    /// Its client.
    pub client_id: String,
    /// Active, revoked or expired.
    pub status: TokenState,
    /// Issue time, s.
    pub issued_at: u64,
    /// Expiry, s.
    pub expires_at: u64,
}

/// The verdict on a token: `{"valid":true,"tokenId","clientId","issuedAt","expiresAt","read",
/// "write"}` or `{"valid":false,"code","reason","message","tokenId"?,"clientId"?}` (Alibaba's
/// token-invalid codes, [`TokenError::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryAnswer {
    /// The token is valid now: its claims.
    Valid(Claims),
    /// It is not.
    Invalid {
        /// Why.
        error: TokenError,
        /// The token's ID and client, when its signature verified (a revoked token).
        token: Option<(String, String)>,
    },
}

impl QueryAnswer {
    /// Whether the token is valid.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid(_))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryWire<'a> {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    write: Option<&'a [String]>,
}

impl Serialize for QueryAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Self::Valid(c) => QueryWire {
                valid: true,
                code: None,
                reason: None,
                message: None,
                token_id: Some(&c.token_id),
                client_id: Some(&c.client_id),
                issued_at: Some(c.issued_at),
                expires_at: Some(c.expires_at),
                read: Some(&c.read),
                write: Some(&c.write),
            },
            Self::Invalid { error, token } => QueryWire {
                valid: false,
                code: Some(error.code()),
                reason: Some(error.kind()),
                message: Some(error.to_string()),
                token_id: token.as_ref().map(|(id, _)| id.as_str()),
                client_id: token.as_ref().map(|(_, client)| client.as_str()),
                issued_at: None,
                expires_at: None,
                read: None,
                write: None,
            },
        };
        wire.serialize(serializer)
    }
}

/// One token revoked: `{"tokenId","status":"revoked"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    /// The token ID.
    pub token_id: String,
    /// Always [`TokenState::Revoked`].
    pub status: TokenState,
}

/// Every token of a client issued so far revoked: `{"clientId","revokedBefore"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedClient {
    /// The client.
    pub client_id: String,
    /// Tokens issued before this time (s) are revoked.
    pub revoked_before: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;
    use serde_json::json;

    #[test]
    fn answers_serialize_as_the_api_returns_them() {
        let claims = Claims {
            client_id: "GID_student@@@001".to_owned(),
            read: vec!["room/system".to_owned()],
            write: vec![],
            issued_at: 10,
            expires_at: 70,
            token_id: "t1".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(Reply::Query(QueryAnswer::Valid(claims))).unwrap(),
            json!({"valid": true, "tokenId": "t1", "clientId": "GID_student@@@001",
                   "issuedAt": 10, "expiresAt": 70, "read": ["room/system"], "write": []})
        );
        let revoked = QueryAnswer::Invalid {
            error: TokenError::Revoked,
            token: Some(("t1".to_owned(), "GID_student@@@001".to_owned())),
        };
        assert_eq!(
            serde_json::to_value(&revoked).unwrap(),
            json!({"valid": false, "code": 3, "reason": "revoked",
                   "message": "the token has been revoked",
                   "tokenId": "t1", "clientId": "GID_student@@@001"})
        );
        assert_eq!(
            serde_json::to_value(Reply::Revoked(RevokedToken {
                token_id: "t1".to_owned(),
                status: TokenState::Revoked
            }))
            .unwrap(),
            json!({"tokenId": "t1", "status": "revoked"})
        );
        assert_eq!(
            serde_json::to_value(Reply::ClientRevoked(RevokedClient {
                client_id: "c".to_owned(),
                revoked_before: 5
            }))
            .unwrap(),
            json!({"clientId": "c", "revokedBefore": 5})
        );
        let issued = IssuedToken {
            token: "ct1.secret".to_owned(),
            token_id: "t1".to_owned(),
            client_id: "c".to_owned(),
            issued_at: 1,
            expires_at: 2,
            read: vec![],
            write: vec![],
            rooms: None,
            role: None,
        };
        assert!(!format!("{issued:?}").contains("secret"));
        assert!(Reply::Issued(issued).is_new_token());
    }
}
