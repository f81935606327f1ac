//! What the issuer is asked: one [`Operation`], built from an HTTP request's JSON body
//! (`from_json`: a JSON object read field by field, so every refusal names its field and no
//! refusal echoes a value it was given, since a body may hold a token) or from typed values (the
//! `classroom` CLI: `new`). Both check the same things in the same order.

use std::fmt;

use mapping::{ClientId, RoomId};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// One call of the issuer: the six operations of its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Issue a token for any filters (`POST /tokens`).
    Issue(IssueRequest),
    /// Issue a classroom token for rooms and enroll the client (`POST /tokens/classroom`).
    Classroom(ClassroomRequest),
    /// A token's status (`GET /tokens/{tokenId}`). The ID is checked by the issuer
    /// ([`check_token_id`]).
    Status {
        /// The token ID, as given.
        token_id: String,
    },
    /// Revoke one token (`POST /tokens/{tokenId}/revoke`).
    Revoke {
        /// The token ID, as given.
        token_id: String,
    },
    /// Revoke every token of a client issued so far (`POST /clients/{clientId}/revoke`).
    RevokeClient {
        /// The client ID, as given (decoded from the path).
        client_id: String,
    },
    /// Verify a token (`POST /tokens/query`).
    Query(QueryRequest),
}

/// When a requested token expires: `expiresIn` (seconds from its issue) or Alibaba's
/// `expireTime` (ms since the epoch), exactly one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// `expiresIn`: seconds after the issue time.
    In(u64),
    /// `expireTime`: ms since the epoch.
    At(u64),
}

impl Expiry {
    /// Reads `expiresIn` or `expireTime`.
    fn take(fields: &mut Fields) -> Result<Self, ApiError> {
        match (fields.number("expiresIn")?, fields.number("expireTime")?) {
            (Some(s), None) => Ok(Self::In(s)),
            (None, Some(ms)) => Ok(Self::At(ms)),
            (Some(_), Some(_)) => Err(ApiError::field(
                "expireTime",
                "conflicting_fields",
                "give expiresIn (seconds) or expireTime (ms since the epoch), not both",
            )),
            (None, None) => Err(ApiError::field(
                "expiresIn",
                "missing_field",
                "expiresIn (seconds) or expireTime (ms since the epoch) is required",
            )),
        }
    }

    /// The lifetime for a token issued at `issued_at` (s); an `expireTime` is rounded down to
    /// the second, so the token never outlives what was asked.
    pub fn lifetime_secs(self, issued_at: u64) -> u64 {
        match self {
            Self::In(s) => s,
            Self::At(ms) => (ms / 1000).saturating_sub(issued_at),
        }
    }
}

/// `POST /tokens`: `{"clientId","read":[..]?,"write":[..]?,"expiresIn"|"expireTime"}`. The
/// filters are checked when the token is issued (`signin::issue`), each refusal naming `read`
/// or `write`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The client.
    pub client: ClientId,
    /// Read filters (receive and subscribe).
    pub read: Vec<String>,
    /// Write filters (publish).
    pub write: Vec<String>,
    /// The expiry.
    pub expiry: Expiry,
}

impl IssueRequest {
    /// The request for `client_id` (refused, naming `clientId`, unless it is a client ID).
    pub fn new(
        client_id: &str,
        read: Vec<String>,
        write: Vec<String>,
        expiry: Expiry,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            client: client_id_of(client_id)?,
            read,
            write,
            expiry,
        })
    }

    /// The request in a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let mut fields = Fields::parse(
            body,
            &["clientId", "read", "write", "expiresIn", "expireTime"],
        )?;
        let client = client_id_of(&fields.required_string("clientId")?)?;
        let read = fields.strings("read")?.unwrap_or_default();
        let write = fields.strings("write")?.unwrap_or_default();
        let expiry = Expiry::take(&mut fields)?;
        Ok(Self {
            client,
            read,
            write,
            expiry,
        })
    }
}

/// `POST /tokens/classroom`: `{"clientId","rooms":["1",..],"expiresIn"|"expireTime"}`. The
/// rooms are sorted and deduplicated: 1 to [`signin::MAX_CLASSROOM_ROOMS`] of them. Whether the
/// client's group gives it a role is the issuer's to say (its `TEACHER_GROUPS` and
/// `STUDENT_GROUPS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassroomRequest {
    /// The client.
    pub client: ClientId,
    /// The rooms, sorted, without duplicates.
    pub rooms: Vec<RoomId>,
    /// The expiry.
    pub expiry: Expiry,
}

impl ClassroomRequest {
    /// The request for `client_id` and `rooms` (each refusal names `clientId` or `rooms`).
    pub fn new(client_id: &str, rooms: &[String], expiry: Expiry) -> Result<Self, ApiError> {
        Ok(Self {
            client: client_id_of(client_id)?,
            rooms: rooms_of(rooms)?,
            expiry,
        })
    }

    /// The request in a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let mut fields = Fields::parse(body, &["clientId", "rooms", "expiresIn", "expireTime"])?;
        let client = client_id_of(&fields.required_string("clientId")?)?;
        let texts = fields
            .strings("rooms")?
            .ok_or_else(|| ApiError::field("rooms", "missing_field", "rooms is required"))?;
        let rooms = rooms_of(&texts)?;
        let expiry = Expiry::take(&mut fields)?;
        Ok(Self {
            client,
            rooms,
            expiry,
        })
    }
}

/// `POST /tokens/query`: `{"token","clientId"?}`. Its `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// The token (a credential: never log it).
    pub token: String,
    /// The client it must be for, if given.
    pub client_id: Option<String>,
}

impl fmt::Debug for QueryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryRequest")
            .field("token", &"[token]")
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl QueryRequest {
    /// The request in a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let mut fields = Fields::parse(body, &["token", "clientId"])?;
        let token = fields.required_string("token")?;
        let client_id = fields.string("clientId")?;
        Ok(Self { token, client_id })
    }
}

/// A token ID as the issuer accepts it: what `signin` issues (`[A-Za-z0-9_-]{1,64}`); refused
/// naming `tokenId`.
pub fn check_token_id(token_id: &str) -> Result<&str, ApiError> {
    let ok = !token_id.is_empty()
        && token_id.len() <= signin::token::MAX_TOKEN_ID_CHARS
        && token_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(token_id)
    } else {
        Err(ApiError::field(
            "tokenId",
            "invalid_token_id",
            "a token ID is 1 to 64 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

/// A client ID; refused naming `clientId`.
pub(crate) fn client_id_of(text: &str) -> Result<ClientId, ApiError> {
    ClientId::parse(text).map_err(|e| {
        ApiError::field(
            "clientId",
            "invalid_client_id",
            format!("clientId {text:?} is invalid: {e}"),
        )
    })
}

/// Room IDs, sorted and deduplicated, 1 to [`signin::MAX_CLASSROOM_ROOMS`]; refused naming
/// `rooms`.
fn rooms_of(texts: &[String]) -> Result<Vec<RoomId>, ApiError> {
    let mut rooms = texts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            RoomId::parse(r).map_err(|e| {
                ApiError::field("rooms", "invalid_room_id", format!("rooms[{i}]: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    rooms.sort();
    rooms.dedup();
    if rooms.is_empty() || rooms.len() > signin::MAX_CLASSROOM_ROOMS {
        return Err(ApiError::field(
            "rooms",
            "room_count",
            format!(
                "a classroom token covers 1 to {} rooms, not {}",
                signin::MAX_CLASSROOM_ROOMS,
                rooms.len()
            ),
        ));
    }
    Ok(rooms)
}

/// The fields of a JSON object body.
#[derive(Debug)]
struct Fields(Map<String, Value>);

impl Fields {
    /// Parses a body that must be a JSON object with only `allowed` fields.
    fn parse(body: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::body(format!("the body is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::body("the body must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::field(
                unknown.clone(),
                "unknown_field",
                format!("unknown field; this route takes {}", allowed.join(", ")),
            ));
        }
        Ok(Self(map))
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name).filter(|v| !v.is_null())
    }

    /// An optional string.
    fn string(&mut self, name: &'static str) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::field(
                name,
                "invalid_type",
                format!("{name} must be a string"),
            )),
        }
    }

    /// A required string.
    fn required_string(&mut self, name: &'static str) -> Result<String, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::field(name, "missing_field", format!("{name} is required")))
    }

    /// An optional array of strings.
    fn strings(&mut self, name: &'static str) -> Result<Option<Vec<String>>, ApiError> {
        let not_strings = || {
            ApiError::field(
                name,
                "invalid_type",
                format!("{name} must be an array of strings"),
            )
        };
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(not_strings()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(not_strings()),
        }
    }

    /// An optional whole number (no sign, no fraction).
    fn number(&mut self, name: &'static str) -> Result<Option<u64>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::field(
                    name,
                    "invalid_type",
                    format!("{name} must be a whole number, at least 0"),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests

    use super::*;

    #[test]
    fn a_body_must_be_an_object_of_known_fields() {
        assert_eq!(
            Fields::parse(b"nope", &["a"]).unwrap_err().kind,
            "invalid_body"
        );
        assert_eq!(
            Fields::parse(b"[1]", &["a"]).unwrap_err().kind,
            "invalid_body"
        );
        let e = Fields::parse(br#"{"a":1,"b":2}"#, &["a"]).unwrap_err();
        assert_eq!((e.kind, e.field.as_deref()), ("unknown_field", Some("b")));
    }

    #[test]
    fn wrong_types_name_the_field_without_echoing_the_value() {
        let mut f = Fields::parse(
            br#"{"token":["ct1.secret"],"n":-1,"r":["a",2]}"#,
            &["token", "n", "r"],
        )
        .unwrap();
        let e = f.string("token").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("token"));
        assert!(!e.message.contains("secret"), "{}", e.message);
        assert_eq!(f.number("n").unwrap_err().field.as_deref(), Some("n"));
        assert_eq!(f.strings("r").unwrap_err().field.as_deref(), Some("r"));
        let e = QueryRequest::from_json(br#"{"token":["ct1.secret"]}"#).unwrap_err();
        assert!(!e.message.contains("secret"), "{}", e.message);
        let q = QueryRequest::from_json(br#"{"token":"ct1.secret"}"#).unwrap();
        assert!(!format!("{q:?}").contains("secret"));
    }

    #[test]
    fn exactly_one_expiry_is_given() {
        let mut f = Fields::parse(br#"{"expiresIn":60}"#, &["expiresIn", "expireTime"]).unwrap();
        assert_eq!(Expiry::take(&mut f).unwrap(), Expiry::In(60));
        let mut f = Fields::parse(
            br#"{"expiresIn":60,"expireTime":5}"#,
            &["expiresIn", "expireTime"],
        )
        .unwrap();
        assert_eq!(
            Expiry::take(&mut f).unwrap_err().field.as_deref(),
            Some("expireTime")
        );
        let mut f = Fields::parse(b"{}", &["expiresIn", "expireTime"]).unwrap();
        assert_eq!(
            Expiry::take(&mut f).unwrap_err().field.as_deref(),
            Some("expiresIn")
        );
        assert_eq!(Expiry::At(100_999).lifetime_secs(40), 60);
        assert_eq!(Expiry::At(10_000).lifetime_secs(40), 0);
    }

    #[test]
    fn token_ids_are_what_signin_issues() {
        assert!(check_token_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "a.b", "a%20b", "../clients/x", &"a".repeat(65)] {
            assert_eq!(
                check_token_id(bad).unwrap_err().field.as_deref(),
                Some("tokenId"),
                "{bad}"
            );
        }
    }

    #[test]
    fn typed_and_json_requests_check_the_same_fields() {
        let rooms = vec!["2".to_owned(), "1".to_owned(), "2".to_owned()];
        let typed = ClassroomRequest::new("GID_student@@@001", &rooms, Expiry::In(60)).unwrap();
        let json = ClassroomRequest::from_json(
            br#"{"clientId":"GID_student@@@001","rooms":["2","1","2"],"expiresIn":60}"#,
        )
        .unwrap();
        assert_eq!(typed, json);
        assert_eq!(
            typed.rooms.iter().map(RoomId::as_str).collect::<Vec<_>>(),
            ["1", "2"]
        );
        for (client, rooms, field, kind) in [
            ("nobody", vec!["1"], "clientId", "invalid_client_id"),
            ("GID_student@@@001", vec!["a/b"], "rooms", "invalid_room_id"),
            ("GID_student@@@001", vec![], "rooms", "room_count"),
        ] {
            let rooms: Vec<String> = rooms.into_iter().map(str::to_owned).collect();
            let e = ClassroomRequest::new(client, &rooms, Expiry::In(60)).unwrap_err();
            assert_eq!((e.field.as_deref(), e.kind), (Some(field), kind));
        }
        let e = IssueRequest::new("nobody", vec![], vec![], Expiry::In(60)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("clientId"));
        assert_eq!(
            IssueRequest::new("GID_student@@@001", vec!["a".into()], vec![], Expiry::At(5))
                .unwrap(),
            IssueRequest::from_json(
                br#"{"clientId":"GID_student@@@001","read":["a"],"expireTime":5}"#
            )
            .unwrap()
        );
    }
}
