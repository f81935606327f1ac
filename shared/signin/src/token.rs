//! The token itself: its claims, issuing one, verifying one, and the MQTT password forms.
//!
//! Wire format, version 1: `ct1.<kid>.<claims>.<sig>`, where `claims` is the base64url (no
//! padding) of the claims JSON and `sig` the base64url of HMAC-SHA256 under key `kid` over
//! `ct1.<kid>.<claims>`. Only `[A-Za-z0-9_.-]` appear, so the token is URL-safe and Alibaba's
//! password form `R|<token>|W|<token>` stays parseable. Non-canonical base64 is refused, so no
//! two strings carry the same token: every single-byte change fails verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::filter::{Filter, FilterError};
use crate::keys::{KeySet, valid_kid};

/// The format and version prefix.
pub const PREFIX: &str = "ct1";
/// Most filters a token may grant, read and write together (ApplyToken's resource limit).
pub const MAX_FILTERS: usize = 100;
/// How far in the future an issue time may lie (clock skew between issuer and verifier).
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;
/// Longest token ID.
pub const MAX_TOKEN_ID_CHARS: usize = 64;

/// What a token says. Serialised as `{"sub","r","w","iat","exp","jti"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The client ID the token is for (§3).
    #[serde(rename = "sub")]
    pub client_id: String,
    /// Topic filters it may subscribe to and receive from, sorted, no duplicates.
    #[serde(rename = "r")]
    pub read: Vec<String>,
    /// Topic filters it may publish to, sorted, no duplicates.
    #[serde(rename = "w")]
    pub write: Vec<String>,
    /// Issued at, seconds since the epoch.
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Expires at (not valid from this second on), seconds since the epoch.
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// The token's ID (for status and revocation).
    #[serde(rename = "jti")]
    pub token_id: String,
}

/// What a backend asks the issuer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The client ID (§3).
    pub client_id: String,
    /// Read filters.
    pub read: Vec<String>,
    /// Write filters.
    pub write: Vec<String>,
    /// How long the token is valid, seconds.
    pub lifetime_secs: u64,
}

/// The lifetimes the issuer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeBounds {
    /// Shortest lifetime, seconds.
    pub min_secs: u64,
    /// Longest lifetime, seconds.
    pub max_secs: u64,
}

impl LifetimeBounds {
    /// Alibaba ApplyToken's bounds, and the cloud's: 60 s to 30 days.
    pub const CLOUD: Self = Self {
        min_secs: 60,
        max_secs: 30 * 24 * 3600,
    };
}

impl Default for LifetimeBounds {
    fn default() -> Self {
        Self::CLOUD
    }
}

/// A token and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token (a credential: never log it).
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

/// Why a token request was refused. [`IssueError::field`] names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// Not a §3 client ID.
    #[error("clientId {id:?} is invalid: {reason}")]
    ClientId {
        /// The ID given.
        id: String,
        /// Why.
        reason: String,
    },
    /// A filter that is not a grantable MQTT topic filter.
    #[error("{field}: {source}")]
    Filter {
        /// `read` or `write`.
        field: &'static str,
        /// Why.
        source: FilterError,
    },
    /// More than [`MAX_FILTERS`] filters.
    #[error("a token grants at most {MAX_FILTERS} filters (read and write together), not {0}")]
    TooManyFilters(usize),
    /// Neither read nor write filters.
    #[error("a token must grant at least one read or write filter")]
    NoFilters,
    /// A lifetime outside the bounds (a longer one is refused, never shortened silently).
    #[error("expiresIn must be {min} to {max} seconds, not {given}")]
    Lifetime {
        /// The lifetime asked for.
        given: u64,
        /// The shortest allowed.
        min: u64,
        /// The longest allowed.
        max: u64,
    },
    /// A token ID outside `[A-Za-z0-9_-]{1,64}` (the issuer's bug, not the caller's).
    #[error("token ID must be 1 to {MAX_TOKEN_ID_CHARS} characters of A-Z a-z 0-9 _ -")]
    TokenId,
}

impl IssueError {
    /// The request field at fault (for a 400 answer).
    pub fn field(&self) -> &'static str {
        match self {
            Self::ClientId { .. } => "clientId",
            Self::Filter { field, .. } => field,
            Self::TooManyFilters(_) | Self::NoFilters => "read",
            Self::Lifetime { .. } => "expiresIn",
            Self::TokenId => "tokenId",
        }
    }
}

/// Why a token (or a password made of tokens) does not sign a client in, or why a grant does
/// not allow an action. [`TokenError::code`] gives Alibaba's token-invalid code. The message
/// never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format, or its claims are not readable (code 1, forged).
    #[error("the token is not a valid {PREFIX} token: {0}")]
    Malformed(String),
    /// Past its expiry (code 2).
    #[error("the token expired at {expired_at}")]
    Expired {
        /// When, seconds since the epoch.
        expired_at: u64,
    },
    /// Revoked by ID or by a revoke-all of its client (code 3).
    #[error("the token has been revoked")]
    Revoked,
    /// Issued to another client ID than the one signing in (code 4, resource mismatch).
    #[error("the token is for client {token_client:?}, not the client signing in")]
    WrongClient {
        /// The token's client ID.
        token_client: String,
    },
    /// The topic is not granted at all (code 4, resource mismatch).
    #[error("{topic:?} is not granted by the token")]
    NotGranted {
        /// The topic or filter.
        topic: String,
    },
    /// The topic is granted, but for the other action (code 5, action mismatch).
    #[error("{topic:?} is granted by the token, but not for this action")]
    WrongAction {
        /// The topic or filter.
        topic: String,
    },
    /// Signed with a key the verifier does not hold (retired or never known; code 8).
    #[error("the token is signed with key {kid:?}, which is not in the key set")]
    UnknownKey {
        /// The token's key ID.
        kid: String,
    },
    /// The signature does not match (code 8).
    #[error("the token's signature is invalid")]
    BadSignature,
}

impl TokenError {
    /// Alibaba's token-invalid code (`$SYS/tokenInvalidNotice`): 1 forged or unparseable,
    /// 2 expired, 3 revoked, 4 resource mismatch, 5 action mismatch, 8 bad signature.
    pub fn code(&self) -> i32 {
        match self {
            Self::Malformed(_) => 1,
            Self::Expired { .. } => 2,
            Self::Revoked => 3,
            Self::WrongClient { .. } | Self::NotGranted { .. } => 4,
            Self::WrongAction { .. } => 5,
            Self::UnknownKey { .. } | Self::BadSignature => 8,
        }
    }

    /// A short stable name for logs and JSON answers.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Expired { .. } => "expired",
            Self::Revoked => "revoked",
            Self::WrongClient { .. } => "wrong_client",
            Self::NotGranted { .. } => "not_granted",
            Self::WrongAction { .. } => "wrong_action",
            Self::UnknownKey { .. } => "unknown_key",
            Self::BadSignature => "bad_signature",
        }
    }
}

fn valid_token_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TOKEN_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn filters(field: &'static str, list: &[String]) -> Result<Vec<String>, IssueError> {
    let mut out = list
        .iter()
        .map(|s| {
            Filter::parse(s)
                .map(|f| f.as_str().to_owned())
                .map_err(|source| IssueError::Filter { field, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
    // HMAC zero-pads a key shorter than the hash's block size, so a key of at most 64 bytes
    // (all a key set holds) padded here gives the same MAC, and building it cannot fail.
    let mut key = [0u8; 64];
    let n = secret.len().min(key.len());
    key[..n].copy_from_slice(&secret[..n]);
    let mut m = <Hmac<Sha256> as KeyInit>::new(&key.into());
    m.update(signed.as_bytes());
    m
}

/// Issues a token for `req`, signed with the current key, valid from `now_s` for
/// `req.lifetime_secs`. Filters are validated, sorted and deduplicated.
pub fn issue(
    req: &TokenRequest,
    keys: &KeySet,
    bounds: LifetimeBounds,
    now_s: u64,
    token_id: &str,
) -> Result<Issued, IssueError> {
    let client = mapping::ClientId::parse(&req.client_id).map_err(|e| IssueError::ClientId {
        id: req.client_id.clone(),
        reason: e.to_string(),
    })?;
    let read = filters("read", &req.read)?;
    let write = filters("write", &req.write)?;
    match read.len() + write.len() {
        0 => return Err(IssueError::NoFilters),
        n if n > MAX_FILTERS => return Err(IssueError::TooManyFilters(n)),
        _ => {}
    }
    if !(bounds.min_secs..=bounds.max_secs).contains(&req.lifetime_secs) {
        return Err(IssueError::Lifetime {
            given: req.lifetime_secs,
            min: bounds.min_secs,
            max: bounds.max_secs,
        });
    }
    if !valid_token_id(token_id) {
        return Err(IssueError::TokenId);
    }
    let claims = Claims {
        client_id: client.to_string(),
        read,
        write,
        issued_at: now_s,
        expires_at: now_s.saturating_add(req.lifetime_secs),
        token_id: token_id.to_owned(),
    };
    let token = sign(&claims, keys);
    Ok(Issued { token, claims })
}

/// Signs claims with the current key (no validation: [`issue`] validates).
pub(crate) fn sign(claims: &Claims, keys: &KeySet) -> String {
    let (kid, secret) = keys.current();
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{PREFIX}.{kid}.{}", B64.encode(json));
    let sig = B64.encode(mac(secret, &signed).finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Verifies one token for `client_id` at `now_s`: format, key, signature, claims, client ID,
/// expiry (valid while `now_s < exp`), issue time (at most [`MAX_CLOCK_SKEW_SECS`] ahead).
/// Revocation is the caller's second step ([`crate::Revocations::check`]): it needs a store.
pub fn verify(
    token: &str,
    client_id: &str,
    keys: &KeySet,
    now_s: u64,
) -> Result<Claims, TokenError> {
    let malformed = |why: &str| TokenError::Malformed(why.to_owned());
    let Some((signed, sig)) = token.rsplit_once('.') else {
        return Err(malformed("expected four dot-separated parts"));
    };
    let mut parts = signed.split('.');
    let (Some(prefix), Some(kid), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected four dot-separated parts"));
    };
    if prefix != PREFIX {
        return Err(malformed("unknown format or version"));
    }
    if !valid_kid(kid) {
        return Err(malformed("bad key ID"));
    }
    let secret = keys.get(kid).ok_or_else(|| TokenError::UnknownKey {
        kid: kid.to_owned(),
    })?;
    let sig = B64
        .decode(sig.as_bytes())
        .map_err(|_| malformed("the signature is not base64url"))?;
    mac(secret, signed)
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let json = B64
        .decode(body.as_bytes())
        .map_err(|_| malformed("the claims are not base64url"))?;
    let claims: Claims =
        serde_json::from_slice(&json).map_err(|_| malformed("the claims are not readable"))?;
    if claims.client_id != client_id {
        return Err(TokenError::WrongClient {
            token_client: claims.client_id,
        });
    }
    if now_s >= claims.expires_at {
        return Err(TokenError::Expired {
            expired_at: claims.expires_at,
        });
    }
    if claims.issued_at > now_s.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(malformed("issued in the future"));
    }
    Ok(claims)
}

/// What a part of a password may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Write,
    Both,
}

/// Splits an MQTT password into its tokens: a plain token (read and write), or Alibaba's form
/// `R|<token>`, `W|<token>`, `RW|<token>`, `R|<t1>|W|<t2>` (each type at most once).
fn password_parts(password: &str) -> Result<Vec<(Use, &str)>, TokenError> {
    if !password.contains('|') {
        return Ok(vec![(Use::Both, password)]);
    }
    let fields: Vec<&str> = password.split('|').collect();
    if !fields.len().is_multiple_of(2) || fields.len() > 6 {
        return Err(TokenError::Malformed(
            "a password with `|` must be <type>|<token> pairs (R, W or RW)".into(),
        ));
    }
    let mut parts = Vec::new();
    for pair in fields.chunks(2) {
        let kind = match pair[0] {
            "R" => Use::Read,
            "W" => Use::Write,
            "RW" => Use::Both,
            _ => {
                return Err(TokenError::Malformed(
                    "token type must be R, W or RW".into(),
                ));
            }
        };
        if parts.iter().any(|(k, _)| *k == kind) {
            return Err(TokenError::Malformed("a token type appears twice".into()));
        }
        parts.push((kind, pair[1]));
    }
    Ok(parts)
}

/// The effective sign-in of one connection: what its token (or tokens) grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client ID.
    pub client_id: String,
    /// Filters it may subscribe to and receive from.
    pub read: Vec<Filter>,
    /// Filters it may publish to.
    pub write: Vec<Filter>,
    /// The earliest issue time of its tokens, seconds.
    pub issued_at: u64,
    /// The earliest expiry of its tokens, seconds: the connection ends then.
    pub expires_at: u64,
    /// The IDs of its tokens.
    pub token_ids: Vec<String>,
}

/// What a client asks the broker to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish to a topic.
    Publish,
    /// Subscribe with a filter.
    Subscribe,
    /// Have a message on a topic delivered.
    Receive,
}

fn parse_all(list: &[String]) -> Result<Vec<Filter>, TokenError> {
    list.iter()
        .map(|s| {
            Filter::parse(s)
                .map_err(|_| TokenError::Malformed("a granted filter is invalid".into()))
        })
        .collect()
}

/// Verifies an MQTT password made of one token or of Alibaba's `R|..|W|..` parts, for
/// `client_id` at `now_s`. Every token must verify (one bad token refuses them all); an `R`
/// part contributes only its read filters, a `W` part only its write filters.
pub fn verify_password(
    password: &str,
    client_id: &str,
    keys: &KeySet,
    now_s: u64,
) -> Result<Grant, TokenError> {
    let mut grant = Grant {
        client_id: client_id.to_owned(),
        read: Vec::new(),
        write: Vec::new(),
        issued_at: u64::MAX,
        expires_at: u64::MAX,
        token_ids: Vec::new(),
    };
    for (kind, token) in password_parts(password)? {
        let claims = verify(token, client_id, keys, now_s)?;
        if kind != Use::Write {
            grant.read.extend(parse_all(&claims.read)?);
        }
        if kind != Use::Read {
            grant.write.extend(parse_all(&claims.write)?);
        }
        grant.issued_at = grant.issued_at.min(claims.issued_at);
        grant.expires_at = grant.expires_at.min(claims.expires_at);
        grant.token_ids.push(claims.token_id);
    }
    grant.read.sort();
    grant.read.dedup();
    grant.write.sort();
    grant.write.dedup();
    Ok(grant)
}

impl Grant {
    /// Whether the grant allows `action` on `topic` (a topic for publish and receive, a filter
    /// for subscribe). A subscription must lie inside a read filter: every topic it matches
    /// must be granted, so `room/message/#` is refused to a token for `room/message/1`.
    pub fn allows(&self, action: Action, topic: &str) -> Result<(), TokenError> {
        let (own, other) = match action {
            Action::Publish => (&self.write, &self.read),
            Action::Subscribe | Action::Receive => (&self.read, &self.write),
        };
        // A subscription's filter is parsed once (an invalid one is granted by nothing).
        let requested = match action {
            Action::Subscribe => Some(Filter::parse(topic).ok()),
            Action::Publish | Action::Receive => None,
        };
        let hit = |list: &[Filter]| match &requested {
            Some(req) => req
                .as_ref()
                .is_some_and(|req| list.iter().any(|g| g.contains(req))),
            None => list.iter().any(|g| g.matches(topic)),
        };
        if hit(own) {
            Ok(())
        } else if hit(other) {
            Err(TokenError::WrongAction {
                topic: topic.to_owned(),
            })
        } else {
            Err(TokenError::NotGranted {
                topic: topic.to_owned(),
            })
        }
    }

    /// Whether the grant has expired at `now_s`.
    pub fn is_expired(&self, now_s: u64) -> bool {
        now_s >= self.expires_at
    }

    /// Seconds left at `now_s` (0 once expired).
    pub fn remaining_secs(&self, now_s: u64) -> u64 {
        self.expires_at.saturating_sub(now_s)
    }
}
