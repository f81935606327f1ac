//! What the HTTP API functions (the presence query, the token issuer) share: JSON answers and
//! path segments. Generic over the body type so kit needs no `lambda_http`: any body that can
//! be made from a `String` (`lambda_http::Body` can) works.

use http::{HeaderValue, Response, StatusCode, header::CONTENT_TYPE};
use serde::Serialize;

/// A JSON answer with `status`.
pub fn json_response<B: From<String>, T: Serialize>(status: StatusCode, value: &T) -> Response<B> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    let mut resp = Response::new(B::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Decodes the `%XX` escapes of a path segment (`GID_student%40%40%40002`); `None` for a
/// broken escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoded_client_ids_are_decoded_and_broken_escapes_refused() {
        assert_eq!(
            percent_decode("GID_student%40%40%40002").as_deref(),
            Some("GID_student@@@002")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn a_json_response_has_its_status_type_and_body() {
        let r: Response<String> = json_response(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(r.body(), r#"{"a":1}"#);
    }
}
