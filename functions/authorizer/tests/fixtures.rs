//! The fixture events: each is an event AWS IoT Core could send, and each carries exactly the
//! password `tests/common/mod.rs` makes for it. To regenerate the passwords (after changing a
//! spec or the token format): `cargo test -p authorizer --test fixtures -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use serde_json::Value;

const PASSWORD: &str = "/protocolData/mqtt/password";
const AUTHORIZER_QUERY: &str = "?x-amz-customauthorizer-name=classroom-rules-classroom";

#[test]
#[ignore = "rewrites tests/fixtures/*.json; run it on purpose"]
fn regenerate_the_fixture_passwords() {
    for name in common::fixture_names() {
        let mut event = common::fixture(&name);
        let mqtt = event
            .pointer_mut("/protocolData/mqtt")
            .and_then(Value::as_object_mut)
            .unwrap();
        match common::password(&name) {
            Some(p) => mqtt.insert("password".into(), Value::String(p)),
            None => mqtt.remove("password"),
        };
        let text = serde_json::to_string_pretty(&event).unwrap() + "\n";
        std::fs::write(common::fixtures_dir().join(format!("{name}.json")), text).unwrap();
    }
}

#[test]
fn every_fixture_carries_the_password_its_spec_makes() {
    let names = common::fixture_names();
    assert_eq!(names.len(), 12, "{names:?}");
    for name in names {
        let event = common::fixture(&name);
        assert_eq!(
            event.pointer(PASSWORD).and_then(Value::as_str),
            common::password(&name).as_deref(),
            "{name}: run `cargo test -p authorizer --test fixtures -- --ignored`"
        );
    }
}

#[test]
fn every_fixture_is_a_connect_as_aws_iot_core_sends_it() {
    for name in common::fixture_names() {
        let event = common::fixture(&name);
        // Signing is disabled on our authorizer: IoT verified no signature.
        assert_eq!(event["signatureVerified"], false, "{name}");
        let protocols: Vec<&str> = event["protocols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let server = event
            .pointer("/protocolData/tls/serverName")
            .and_then(Value::as_str);
        assert!(
            server
                .unwrap()
                .ends_with("-ats.iot.us-east-1.amazonaws.com"),
            "{name}"
        );
        assert!(event.pointer("/connectionMetadata/id").is_some(), "{name}");
        let username = event
            .pointer("/protocolData/mqtt/username")
            .and_then(Value::as_str)
            .unwrap();
        if protocols == ["tls", "http", "mqtt"] {
            // MQTT over WSS: the authorizer is named in the upgrade request's query string.
            let query = event
                .pointer("/protocolData/http/queryString")
                .and_then(Value::as_str);
            assert_eq!(query, Some(AUTHORIZER_QUERY), "{name}");
            assert_eq!(
                event.pointer("/protocolData/http/headers/sec-websocket-protocol"),
                Some(&Value::from("mqtt")),
                "{name}"
            );
        } else {
            // MQTT on 443 (ALPN "mqtt"): the authorizer is named in the username's query.
            assert_eq!(protocols, ["tls", "mqtt"], "{name}");
            assert!(username.ends_with(AUTHORIZER_QUERY), "{name}: {username}");
            assert!(event.pointer("/protocolData/http").is_none(), "{name}");
        }
    }
}

#[test]
fn the_fixture_passwords_are_base64_tokens_where_they_should_be() {
    use base64::Engine as _;
    let decode = |name: &str| {
        let p = common::password(name).unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap()
    };
    assert!(decode("mqtt-over-wss").starts_with("ct1.fixture-2026."));
    assert!(decode("wrong-key-id").starts_with("ct1.retired-2025."));
    assert!(
        decode("alibaba-r-w-form").starts_with("R|ct1.")
            && decode("alibaba-r-w-form").contains("|W|ct1.")
    );
    let raw = common::password("password-not-base64").unwrap();
    assert!(raw.starts_with("ct1."));
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .is_err()
    );
    assert_eq!(common::password("password-absent"), None);
    // The tampered token differs from a valid one in exactly one character.
    let valid = common::token(
        &common::classroom("GID_student@@@001", &["1"]),
        "fixture-tampered",
    );
    let tampered = decode("tampered");
    assert_eq!(valid.len(), tampered.len());
    assert_eq!(
        valid
            .chars()
            .zip(tampered.chars())
            .filter(|(a, b)| a != b)
            .count(),
        1
    );
}
