//! Reading a secret from a real moto's Secrets Manager, directly and through the MQTT
//! settings (one way to read a secret).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use kit::{Env, SecretError, secret_string};
use testkit::Moto;

#[tokio::test]
async fn a_secret_string_is_read_and_a_missing_or_binary_secret_is_a_clear_error() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name("mqtt")
        .secret_string(r#"{"username":"backend","password":"pw"}"#)
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("binary")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![1, 2, 3]))
        .send()
        .await
        .unwrap();

    assert_eq!(
        secret_string(&sdk, "mqtt").await.unwrap(),
        r#"{"username":"backend","password":"pw"}"#
    );
    match secret_string(&sdk, "nope").await.unwrap_err() {
        SecretError::Call { id, message } => {
            assert_eq!(id, "nope");
            assert!(message.contains("ResourceNotFound"), "{message}");
        }
        other => panic!("expected a call error, got {other:?}"),
    }
    assert_eq!(
        secret_string(&sdk, "binary").await.unwrap_err(),
        SecretError::NotString {
            id: "binary".to_owned()
        }
    );

    // The MQTT settings read their credentials the same way.
    let settings = Env::from_map([
        ("MQTT_URL", "mqtt://127.0.0.1:1883"),
        ("MQTT_SECRET_ID", "mqtt"),
    ])
    .mqtt_settings(&sdk)
    .await
    .unwrap();
    assert_eq!(
        settings.credentials,
        Some(("backend".to_owned(), "pw".to_owned()))
    );
    let msg = Env::from_map([
        ("MQTT_URL", "mqtt://127.0.0.1:1883"),
        ("MQTT_SECRET_ID", "nope"),
    ])
    .mqtt_settings(&sdk)
    .await
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("MQTT_SECRET_ID") && msg.contains("nope") && msg.contains("ResourceNotFound"),
        "{msg}"
    );
}
