//! Revocations: tokens revoked by ID, and clients whose every token issued up to a time is
//! revoked (revoke-all). Pure: the cloud reads the entries of one sign-in from DynamoDB, the
//! local broker reads them all from a file; both decide with [`Revocations::check`].
//!
//! JSON (the local file): `{"tokens":["<tokenId>", ...],"clients":{"<clientId>":<revokedBefore>}}`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::token::{Grant, TokenError};

/// The revocations that apply to some set of sign-ins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    /// Revoked token IDs.
    #[serde(default)]
    pub tokens: BTreeSet<String>,
    /// Per client ID, the time (seconds) up to which every token issued is revoked: a token of
    /// that client with `issued_at <= revokedBefore` is revoked. The issuer never issues a
    /// token with an issue time at or before its client's entry (see [`issue_time`]).
    #[serde(default)]
    pub clients: BTreeMap<String, u64>,
}

impl Revocations {
    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`TokenError::Revoked`] when any token of the sign-in is revoked, or its client's
    /// revoke-all covers its oldest token.
    pub fn check(&self, grant: &Grant) -> Result<(), TokenError> {
        let by_id = grant.token_ids.iter().any(|id| self.tokens.contains(id));
        let by_client = self
            .clients
            .get(&grant.client_id)
            .is_some_and(|before| grant.issued_at <= *before);
        if by_id || by_client {
            Err(TokenError::Revoked)
        } else {
            Ok(())
        }
    }
}

/// The issue time for a new token of a client at `now_s`, given the client's revoke-all time:
/// one second after it when the revoke happened this second (or, with clocks apart, later), so
/// a token issued right after a revoke-all is not born revoked.
pub fn issue_time(now_s: u64, revoked_before: Option<u64>) -> u64 {
    match revoked_before {
        Some(t) if t >= now_s => t + 1,
        _ => now_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(client: &str, iat: u64, ids: &[&str]) -> Grant {
        Grant {
            client_id: client.into(),
            read: vec![],
            write: vec![],
            issued_at: iat,
            expires_at: iat + 3600,
            token_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_revoked_token_id_refuses_the_sign_in() {
        let r = Revocations {
            tokens: BTreeSet::from(["t2".to_owned()]),
            ..Default::default()
        };
        assert_eq!(r.check(&grant("GID_a@@@1", 10, &["t1"])), Ok(()));
        assert_eq!(
            r.check(&grant("GID_a@@@1", 10, &["t1", "t2"])),
            Err(TokenError::Revoked)
        );
    }

    #[test]
    fn a_revoke_all_covers_tokens_issued_up_to_its_time_and_not_later() {
        let r = Revocations {
            clients: BTreeMap::from([("GID_a@@@1".to_owned(), 100)]),
            ..Default::default()
        };
        assert_eq!(
            r.check(&grant("GID_a@@@1", 99, &["x"])),
            Err(TokenError::Revoked)
        );
        assert_eq!(
            r.check(&grant("GID_a@@@1", 100, &["x"])),
            Err(TokenError::Revoked)
        );
        assert_eq!(r.check(&grant("GID_a@@@1", 101, &["x"])), Ok(()));
        assert_eq!(r.check(&grant("GID_b@@@1", 50, &["x"])), Ok(()));
    }

    #[test]
    fn a_token_issued_right_after_a_revoke_all_is_not_born_revoked() {
        assert_eq!(issue_time(100, Some(100)), 101);
        assert_eq!(issue_time(100, Some(105)), 106);
        assert_eq!(issue_time(100, Some(99)), 100);
        assert_eq!(issue_time(100, None), 100);
        let r = Revocations {
            clients: BTreeMap::from([("GID_a@@@1".to_owned(), 100)]),
            ..Default::default()
        };
        assert_eq!(
            r.check(&grant("GID_a@@@1", issue_time(100, Some(100)), &["x"])),
            Ok(())
        );
    }

    #[test]
    fn the_json_form_round_trips_and_tolerates_missing_parts() {
        let r = Revocations {
            tokens: BTreeSet::from(["t1".to_owned()]),
            clients: BTreeMap::from([("GID_a@@@1".to_owned(), 7)]),
        };
        assert_eq!(Revocations::from_json(&r.to_json()).unwrap(), r);
        assert_eq!(
            Revocations::from_json("{}").unwrap(),
            Revocations::default()
        );
        assert!(Revocations::from_json(r#"{"tokens":[],"x":1}"#).is_err());
    }
}
