//! Request bodies: a JSON object read field by field, so every refusal names its field and
//! no refusal echoes a value it was given (a body may hold a token).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The fields of a JSON object body.
#[derive(Debug)]
pub(crate) struct Fields(Map<String, Value>);

impl Fields {
    /// Parses a body that must be a JSON object with only `allowed` fields.
    pub(crate) fn parse(body: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
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
    pub(crate) fn string(&mut self, name: &'static str) -> Result<Option<String>, ApiError> {
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
    pub(crate) fn required_string(&mut self, name: &'static str) -> Result<String, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::field(name, "missing_field", format!("{name} is required")))
    }

    /// An optional array of strings.
    pub(crate) fn strings(&mut self, name: &'static str) -> Result<Option<Vec<String>>, ApiError> {
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
    pub(crate) fn number(&mut self, name: &'static str) -> Result<Option<u64>, ApiError> {
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

/// When a requested token expires: `expiresIn` (seconds from its issue) or Alibaba's
/// `expireTime` (ms since the epoch), exactly one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// `expiresIn`: seconds after the issue time.
    In(u64),
    /// `expireTime`: ms since the epoch.
    At(u64),
}

impl Expiry {
    /// Reads `expiresIn` or `expireTime`.
    pub(crate) fn take(fields: &mut Fields) -> Result<Self, ApiError> {
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
    pub(crate) fn lifetime_secs(self, issued_at: u64) -> u64 {
        match self {
            Self::In(s) => s,
            Self::At(ms) => (ms / 1000).saturating_sub(issued_at),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
