//! The signing keys: a key set with one current key (the issuer signs with it) and any number
//! of older ones that verifiers still accept, so keys rotate without downtime.
//!
//! JSON (the Secrets Manager secret's `SecretString`; locally also the broker plugin's key file):
//! `{"current":"<kid>","keys":{"<kid>":"<base64url secret>", ...}}`, each secret 32 to 64
//! bytes, each key ID 1 to 32 characters of `[A-Za-z0-9_-]`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

/// Fewest secret bytes a key may have (HMAC-SHA256's output size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Most secret bytes a key may have (SHA-256's block size: longer keys are hashed first).
pub const MAX_SECRET_BYTES: usize = 64;
/// Longest key ID.
pub const MAX_KID_CHARS: usize = 32;

/// Why a key set or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not the key set JSON.
    #[error(
        "the key set is not JSON of the form {{\"current\":\"<kid>\",\"keys\":{{\"<kid>\":\"<base64url secret>\"}}}}: {0}"
    )]
    Json(String),
    /// A key ID outside `[A-Za-z0-9_-]{1,32}`.
    #[error("key ID {0:?} must be 1 to 32 characters of A-Z a-z 0-9 _ -")]
    Kid(String),
    /// A secret that is not base64url or has the wrong size.
    #[error(
        "the secret of key {kid:?} must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, base64url-encoded: {problem}"
    )]
    Secret {
        /// The key.
        kid: String,
        /// What is wrong.
        problem: String,
    },
    /// `current` names no key of the set.
    #[error("the current key {0:?} is not in the key set")]
    NoCurrent(String),
    /// Retiring the key the issuer signs with.
    #[error("key {0:?} is the current key: rotate to a new one before retiring it")]
    RetireCurrent(String),
    /// Adding a key ID that is already there.
    #[error("key {0:?} is already in the key set")]
    Duplicate(String),
    /// Retiring a key that is not there.
    #[error("key {0:?} is not in the key set")]
    Unknown(String),
}

/// A set of HMAC keys by key ID, one of them current. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    current: String,
    keys: BTreeMap<String, Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetJson {
    current: String,
    keys: BTreeMap<String, String>,
}

/// Whether `kid` is a valid key ID.
pub fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_CHARS
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_key(kid: &str, secret: &[u8]) -> Result<(), KeyError> {
    if !valid_kid(kid) {
        return Err(KeyError::Kid(kid.to_owned()));
    }
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len()) {
        return Err(KeyError::Secret {
            kid: kid.to_owned(),
            problem: format!("it has {} bytes", secret.len()),
        });
    }
    Ok(())
}

impl KeySet {
    /// A key set of one key, current.
    pub fn new(current_kid: &str, secret: Vec<u8>) -> Result<Self, KeyError> {
        check_key(current_kid, &secret)?;
        Ok(Self {
            current: current_kid.to_owned(),
            keys: BTreeMap::from([(current_kid.to_owned(), secret)]),
        })
    }

    /// Parses the key set JSON.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        let raw: KeySetJson =
            serde_json::from_str(text).map_err(|e| KeyError::Json(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for (kid, encoded) in raw.keys {
            let secret = B64
                .decode(encoded.trim_end_matches('=').as_bytes())
                .map_err(|e| KeyError::Secret {
                    kid: kid.clone(),
                    problem: e.to_string(),
                })?;
            check_key(&kid, &secret)?;
            keys.insert(kid, secret);
        }
        if !keys.contains_key(&raw.current) {
            return Err(KeyError::NoCurrent(raw.current));
        }
        Ok(Self {
            current: raw.current,
            keys,
        })
    }

    /// The key set JSON (with the secrets: write it only where secrets belong).
    pub fn to_json(&self) -> String {
        let raw = KeySetJson {
            current: self.current.clone(),
            keys: self
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), B64.encode(v)))
                .collect(),
        };
        serde_json::to_string(&raw).unwrap_or_default()
    }

    /// Adds `new_kid` and makes it current; the previous keys stay valid for verification.
    pub fn rotate(&mut self, new_kid: &str, secret: Vec<u8>) -> Result<(), KeyError> {
        check_key(new_kid, &secret)?;
        if self.keys.contains_key(new_kid) {
            return Err(KeyError::Duplicate(new_kid.to_owned()));
        }
        self.keys.insert(new_kid.to_owned(), secret);
        self.current = new_kid.to_owned();
        Ok(())
    }

    /// Removes a key that is no longer current: tokens signed with it stop verifying.
    pub fn retire(&mut self, kid: &str) -> Result<(), KeyError> {
        if kid == self.current {
            return Err(KeyError::RetireCurrent(kid.to_owned()));
        }
        self.keys
            .remove(kid)
            .map(|_| ())
            .ok_or_else(|| KeyError::Unknown(kid.to_owned()))
    }

    /// The key ID the issuer signs with.
    pub fn current_kid(&self) -> &str {
        &self.current
    }

    /// Every key ID, sorted.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The current key's ID and secret.
    pub(crate) fn current(&self) -> (&str, &[u8]) {
        let secret = self.keys.get(&self.current).map_or(&[][..], Vec::as_slice);
        (&self.current, secret)
    }

    /// The secret of `kid`, if listed.
    pub(crate) fn get(&self, kid: &str) -> Option<&[u8]> {
        self.keys.get(kid).map(Vec::as_slice)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("current", &self.current)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> Vec<u8> {
        vec![b; 32]
    }

    #[test]
    fn a_key_set_round_trips_through_json() {
        let mut ks = KeySet::new("k1", secret(1)).unwrap();
        ks.rotate("k2", secret(2)).unwrap();
        let back = KeySet::from_json(&ks.to_json()).unwrap();
        assert_eq!(back, ks);
        assert_eq!(back.current_kid(), "k2");
        assert_eq!(back.kids().collect::<Vec<_>>(), ["k1", "k2"]);
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let ks = KeySet::new("k1", b"0123456789abcdefghijklmnopqrstuv".to_vec()).unwrap();
        let shown = format!("{ks:?}");
        assert!(shown.contains("k1"), "{shown}");
        assert!(!shown.contains("0123456789"), "{shown}");
        assert!(!shown.contains(&B64.encode(b"0123456789abcdefghijklmnopqrstuv")));
    }

    #[test]
    fn bad_key_sets_are_refused_with_the_reason() {
        let good = B64.encode([7u8; 32]);
        for (json, want) in [
            ("not json".to_owned(), "not JSON"),
            (
                format!(r#"{{"current":"k9","keys":{{"k1":"{good}"}}}}"#),
                "not in the key set",
            ),
            (
                r#"{"current":"k1","keys":{"k1":"c2hvcnQ"}}"#.to_owned(),
                "has 5 bytes",
            ),
            (
                format!(r#"{{"current":"k/1","keys":{{"k/1":"{good}"}}}}"#),
                "must be 1 to 32",
            ),
            (
                r#"{"current":"k1","keys":{"k1":"***"}}"#.to_owned(),
                "base64url",
            ),
        ] {
            let e = KeySet::from_json(&json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn the_current_key_cannot_be_retired_but_an_old_one_can() {
        let mut ks = KeySet::new("k1", secret(1)).unwrap();
        ks.rotate("k2", secret(2)).unwrap();
        assert_eq!(ks.retire("k2"), Err(KeyError::RetireCurrent("k2".into())));
        ks.retire("k1").unwrap();
        assert_eq!(ks.kids().collect::<Vec<_>>(), ["k2"]);
        assert_eq!(ks.retire("k1"), Err(KeyError::Unknown("k1".into())));
        assert_eq!(
            ks.rotate("k2", secret(3)),
            Err(KeyError::Duplicate("k2".into()))
        );
    }
}
