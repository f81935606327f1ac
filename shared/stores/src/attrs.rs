//! Every attribute name and key prefix of the sign-in tables, written once. The issuer
//! (`functions/token`), the authorizer, moderation and the template rely on these layouts;
//! change them only together.
//!
//! # TokenTable (partition key [`token::ID`], S; TTL attribute [`token::EXPIRES_AT`])
//! - `token#<jti>` ([`token::TOKEN_PREFIX`]): one issued token. [`token::CLIENT_ID`] S,
//!   [`token::ISSUED_AT`] N (s), [`token::EXPIRES_AT`] N (s, the token's `exp`, so DynamoDB's
//!   TTL drops the record once the token is useless anyway), [`token::REVOKED`] BOOL (absent =
//!   not revoked), [`token::REVOKED_AT`] N (s, the first revocation).
//! - `client#<clientId>` ([`token::CLIENT_PREFIX`]): "every token of this client issued so far
//!   is revoked". [`token::REVOKED_BEFORE`] N (s), [`token::EXPIRES_AT`] N =
//!   revokedBefore + [`token::CLIENT_REVOCATION_TTL_SECS`] (no token outlives that: the
//!   longest lifetime is 30 days).
//!
//! # EnrollmentTable (partition [`enrollment::CLIENT_ID`] S, sort [`enrollment::ROOM_ID`] S)
//! One item per client and room it may join and chat in: [`enrollment::ENROLLED_AT`] N (ms),
//! [`enrollment::EXPIRES_AT`] N (s, TTL: the expiry of the latest-expiring token that granted
//! the room), [`enrollment::ROLE`] S (`teacher` | `student`).

/// TokenTable: token records and per-client revocations.
pub mod token {
    /// The partition key (S): `token#<jti>` or `client#<clientId>`.
    pub const ID: &str = "id";
    /// Key prefix of a token record.
    pub const TOKEN_PREFIX: &str = "token#";
    /// Key prefix of a client's revoke-all record.
    pub const CLIENT_PREFIX: &str = "client#";
    /// Token record: the client the token was issued to (S).
    pub const CLIENT_ID: &str = "clientId";
    /// Token record: the token's `iat`, seconds since the epoch (N).
    pub const ISSUED_AT: &str = "issuedAt";
    /// Both records: the TTL attribute, seconds since the epoch (N). A token record's is the
    /// token's `exp`; a client record's is `revokedBefore` + 30 days.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// Token record: revoked (BOOL; absent means not revoked).
    pub const REVOKED: &str = "revoked";
    /// Token record: when it was first revoked, seconds since the epoch (N).
    pub const REVOKED_AT: &str = "revokedAt";
    /// Client record: every token of the client issued at or before this second is revoked
    /// (N; the exact rule is `signin::Revocations::check`'s).
    pub const REVOKED_BEFORE: &str = "revokedBefore";
    /// How long a client record lives after its `revokedBefore`: the longest token lifetime
    /// (30 days, Alibaba ApplyToken's maximum), after which every token it revokes has expired.
    pub const CLIENT_REVOCATION_TTL_SECS: u64 = 30 * 24 * 3600;

    /// The key of a token record.
    pub fn token_key(token_id: &str) -> String {
        format!("{TOKEN_PREFIX}{token_id}")
    }

    /// The key of a client's revoke-all record.
    pub fn client_key(client_id: &str) -> String {
        format!("{CLIENT_PREFIX}{client_id}")
    }
}

/// EnrollmentTable: which rooms a client may join and chat in.
pub mod enrollment {
    /// The partition key (S): the client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The sort key (S): the room ID.
    pub const ROOM_ID: &str = "roomId";
    /// When the enrollment was last written, milliseconds since the epoch (N).
    pub const ENROLLED_AT: &str = "enrolledAt";
    /// The TTL attribute, seconds since the epoch (N): the expiry of the token that granted the
    /// room (a later-expiring token extends it; an earlier-expiring one never shortens it).
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The client's role in the room (S): `teacher` or `student`.
    pub const ROLE: &str = "role";
}
