//! Token sign-in for the classroom (§8), pure: no IO and no clock (`now` is an argument),
//! so the issuer (`functions/token`), the AWS IoT custom authorizer (`functions/authorizer`) and
//! the local broker plugin (`infra/broker-plugin`) verify and authorize with this one code.
//!
//! # The token
//! `ct1.<kid>.<claims>.<sig>`: the format and version, the signing key's ID, the base64url
//! (no padding) of the claims JSON, and the base64url of HMAC-SHA256 under that key over
//! `ct1.<kid>.<claims>`. Claims: `{"sub":"<clientId>","r":[read filters],"w":[write
//! filters],"iat":<s>,"exp":<s>,"jti":"<token id>"}`, filters sorted and deduplicated, at
//! most 100 in all; lifetimes 60 s to 30 days in the cloud (ApplyToken's), a longer request is
//! refused, never shortened. The token is URL-safe (`[A-Za-z0-9_.-]`), so Alibaba's password
//! form `R|<token>|W|<token>` still parses; a single token carrying both is simpler and is what
//! our issuer hands out.
//!
//! Why HMAC and not PASETO v4.public: every verifier (the authorizer, the local plugin) is our
//! own code in our own account, next to the issuer; an asymmetric token would only help if a
//! party we do not trust verified tokens. HMAC verification costs about one hash, which matters
//! for an authorizer with a 5 s limit and for a plugin on the broker's only thread.
//!
//! # Keys
//! [`KeySet`]: `{"current":"<kid>","keys":{"<kid>":"<base64url secret>"}}`. The issuer signs
//! with `current`; verifiers accept every listed key. Rotation: add a key and make it current
//! ([`KeySet::rotate`]); once no token signed with the old key is still valid, remove it
//! ([`KeySet::retire`]).
//!
//! # Authorization
//! [`verify_password`] turns a CONNECT password into a [`Grant`]; [`Revocations::check`]
//! refuses a revoked one; [`Grant::allows`] answers publish (a write filter matches the topic),
//! subscribe (the requested filter lies inside a read filter) and receive (a read filter matches
//! the topic). [`TokenError::code`] gives Alibaba's token-invalid codes.
//!
//! # Layout
//! - [`keys`]: the key set. [`filter`]: topic filters, matching and containment.
//! - [`token`]: claims, [`issue`], [`verify`], [`verify_password`], [`Grant`].
//! - [`revocations`]: revoked tokens and revoke-all per client.
//! - [`iot`]: the custom authorizer's policy documents, principal ID, disconnect time.
//! - [`classroom_request`]: the classroom scopes of §8.

pub mod filter;
pub mod iot;
pub mod keys;
pub mod revocations;
pub mod token;

pub use filter::{Filter, FilterError};
pub use keys::{KeyError, KeySet};
pub use revocations::{Revocations, issue_time};
pub use token::{
    Action, Claims, Grant, IssueError, Issued, LifetimeBounds, MAX_FILTERS, TokenError,
    TokenRequest, issue, verify, verify_password,
};

use mapping::{ClientId, RoomId};

/// The classroom token request for `client` attending `rooms` (§8): read
/// `<downlink>/message/<r>` and `<downlink>/status/<r>` for each room, `<downlink>/system` and
/// `<downlink>/p2p/<own client ID>`; write `<uplink>/message` and `<uplink>/command`. Teachers
/// and students get the same scopes: what a teacher may do more (mute) is decided by the
/// moderation function from the broker-verified sender. Room and client IDs are validated
/// types, so no `/`, `+` or `#` reaches a filter from them.
pub fn classroom_request(
    client: &ClientId,
    rooms: &[RoomId],
    uplink: &str,
    downlink: &str,
    lifetime_secs: u64,
) -> TokenRequest {
    let mut read: Vec<String> = rooms
        .iter()
        .flat_map(|r| {
            [
                format!("{downlink}/message/{r}"),
                format!("{downlink}/status/{r}"),
            ]
        })
        .collect();
    read.push(format!("{downlink}/system"));
    read.push(format!("{downlink}/p2p/{client}"));
    TokenRequest {
        client_id: client.to_string(),
        read,
        write: vec![format!("{uplink}/message"), format!("{uplink}/command")],
        lifetime_secs,
    }
}

/// Most rooms one classroom token can cover: two filters per room plus three fixed ones.
pub const MAX_CLASSROOM_ROOMS: usize = (MAX_FILTERS - 4) / 2;
