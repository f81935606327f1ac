//! Broker URLs: `mqtt://host[:port]` and `mqtts://host[:port]`.

/// Why an MQTT URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; expected mqtt://host:port or mqtts://host:port")]
pub struct UrlError(String);

/// Parses `mqtt://host[:port]` (default 1883) or `mqtts://host[:port]` (default 8883) into
/// host, port and whether TLS is wanted.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), UrlError> {
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(UrlError(format!(
            "{url:?} has no mqtt:// or mqtts:// scheme"
        )));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| UrlError(format!("port {p:?} is not a number from 1 to 65535")))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() || host.contains('/') {
        return Err(UrlError(format!("{url:?} has no valid host")));
    }
    Ok((host.to_owned(), port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            parse_url("mqtts://x-ats.iot.eu-west-1.amazonaws.com")
                .unwrap()
                .1,
            8883
        );
        assert_eq!(
            parse_url("mqtt://broker/").unwrap(),
            ("broker".into(), 1883, false)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
    }
}
