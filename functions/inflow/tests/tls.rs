//! The inflow over `mqtts://` exactly as in AWS: `MQTT_URL=mqtts://...` and `MQTT_SECRET_ID`
//! naming a Secrets Manager secret (moto) with the client certificate, against a real
//! Mosquitto TLS listener that requires a client certificate and takes its CN as the username
//! (as AWS IoT Core binds an identity to a certificate). A certificate the broker refuses
//! (another CA, expired, not yet valid) or a server certificate for another host fails every
//! record as retryable, and the failure's log line says why.
//!
//! The caPem-less secret (platform roots from `SSL_CERT_FILE`) is in `tls_platform_roots.rs`:
//! the environment is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::time::Duration;

use inflow::Function;
use kit::Env;
use testkit::certs::{BACKEND_IDENTITY, Ca, CertPair, Validity};
use testkit::logs::Capture;
use testkit::{Mosquitto, Moto, Subscriber, put_secret};

mod common;
use common::chat_batch;

fn runtime() -> tokio::runtime::Runtime {
    // One thread: the log capture sees the connection task's lines too.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The secret JSON with `client` and, when given, `caPem`.
fn secret(client: &CertPair, ca_pem: Option<&str>) -> String {
    let mut json = serde_json::json!({ "certPem": client.cert_pem, "keyPem": client.key_pem });
    if let Some(ca) = ca_pem {
        json["caPem"] = ca.into();
    }
    json.to_string()
}

/// The inflow built from the environment: `MQTT_URL` = the broker's certificate listener,
/// `MQTT_SECRET_ID` = a moto secret holding `secret_json`.
async fn inflow(moto: &Moto, broker: &Mosquitto, secret_json: &str) -> Function {
    let sdk = moto.sdk_config().await;
    put_secret(&sdk, "classroom-mqtt", secret_json).await;
    let env = Env::from_map([
        ("MQTT_URL", broker.url()),
        ("MQTT_SECRET_ID", "classroom-mqtt".to_owned()),
        ("MQTT_PUBLISH_TIMEOUT_MS", "3000".to_owned()),
    ]);
    Function::from_env_with(&env, &sdk).await.unwrap()
}

#[test]
fn with_ca_pem_the_inflow_publishes_over_tls_as_its_certificate_identity() {
    let rt = runtime();
    let moto = Moto::start();
    let ca = Ca::new("inflow test CA");
    let broker = Mosquitto::tls(&ca).start();
    let backend = ca.client(BACKEND_IDENTITY);
    let function = rt.block_on(inflow(
        &moto,
        &broker,
        &secret(&backend, Some(ca.cert_pem())),
    ));
    let mut student = rt.block_on(Subscriber::connect_tls(
        &broker,
        "GID_student@@@001",
        &ca.client("GID_student@@@001"),
        &["room/message/1"],
    ));
    let response = rt.block_on(function.handle(chat_batch(0..3))).unwrap();
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let got = rt.block_on(student.drain(Duration::from_millis(500)));
    assert_eq!(got.len(), 3, "every chat delivered");
    // The ACL's `user backend` let it publish under room/: the CN was the username.
    assert!(broker.log().contains("u'backend'"), "{}", broker.log());
}

/// Runs a batch against `broker` with the inflow's secret `secret_json`; every record must
/// fail retryable (`broker_unavailable`), and the failure lines and the connection's warning
/// must contain one of `why`.
fn every_record_fails_retryable_saying(broker: &Mosquitto, secret_json: &str, why: &[&str]) {
    let rt = runtime();
    let moto = Moto::start();
    let function = rt.block_on(inflow(&moto, broker, secret_json));
    let logs = Capture::default();
    let response = logs
        .during(|| rt.block_on(function.handle(chat_batch(0..2))))
        .unwrap();
    let failures = logs.reported_failures(
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone()),
    );
    assert_eq!(failures.len(), 2, "both records failed: {failures:?}");
    for (id, (error, kind, retryable)) in &failures {
        assert_eq!(kind, "broker_unavailable", "{id}: {error}");
        assert!(retryable, "{id} is retryable: {error}");
        assert!(
            why.iter().any(|w| error.contains(w)),
            "{id}: the error says why ({why:?}): {error}"
        );
    }
    let broke = logs
        .lines()
        .into_iter()
        .filter(|l| l.level == tracing::Level::WARN)
        .filter_map(|l| l.fields.get("error").cloned())
        .find(|e| why.iter().any(|w| e.contains(w)));
    assert!(broke.is_some(), "a warning says why: {:?}", logs.lines());
    println!("logged: {}", broke.unwrap_or_default());
}

#[test]
fn a_client_certificate_from_another_ca_is_refused_and_the_records_fail_retryable() {
    let ca = Ca::new("inflow test CA");
    let broker = Mosquitto::tls(&ca).start();
    let stranger = Ca::new("another CA").client(BACKEND_IDENTITY);
    every_record_fails_retryable_saying(
        &broker,
        &secret(&stranger, Some(ca.cert_pem())),
        &[
            "UnknownCA",
            "unknown ca",
            "BadCertificate",
            "bad certificate",
        ],
    );
    assert!(!broker.log().contains("u'backend'"), "{}", broker.log());
}

#[test]
fn an_expired_or_not_yet_valid_client_certificate_is_refused_and_the_records_fail_retryable() {
    let ca = Ca::new("inflow test CA");
    let broker = Mosquitto::tls(&ca).start();
    for validity in [Validity::Expired, Validity::NotYetValid] {
        let client = ca.client_with(BACKEND_IDENTITY, validity);
        every_record_fails_retryable_saying(
            &broker,
            &secret(&client, Some(ca.cert_pem())),
            &[
                "CertificateExpired",
                "certificate expired",
                "BadCertificate",
                "bad certificate",
            ],
        );
    }
    assert!(!broker.log().contains("u'backend'"), "{}", broker.log());
}

#[test]
fn a_server_certificate_for_another_host_is_refused_and_the_records_fail_retryable() {
    let ca = Ca::new("inflow test CA");
    let broker = Mosquitto::tls(&ca)
        .server_cert(ca.server_for(&["wrong.example"], Validity::Current))
        .start();
    every_record_fails_retryable_saying(
        &broker,
        &secret(&ca.client(BACKEND_IDENTITY), Some(ca.cert_pem())),
        &[
            "not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"wrong.example\"); the broker's certificate was not accepted",
        ],
    );
}
