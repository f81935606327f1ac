//! The secret `infra/DEPLOY.md` tells users to write, `{"certPem", "keyPem"}` without `caPem`,
//! delivers for real: the broker's CA comes from the platform roots, which the standard
//! environment points at a file (`SSL_CERT_FILE`, read by rustls-native-certs), and the client
//! certificate is still presented (before issue 11 it was dropped without `caPem`).
//!
//! The environment is process-wide, so the inflow runs in a child process: this test binary
//! again, running only the ignored `child_*` test with `SSL_CERT_FILE` = the test CA (and
//! `SSL_CERT_DIR` removed, so the machine's own roots play no part).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure should panic

use std::process::Command;
use std::time::Duration;

use inflow::Function;
use kit::{Env, RootsFrom};
use testkit::certs::{BACKEND_IDENTITY, Ca};
use testkit::{Mosquitto, Moto, Subscriber, put_secret};

const SECRET_ID: &str = "classroom-mqtt";

#[test]
fn without_ca_pem_the_platform_roots_from_ssl_cert_file_and_the_client_certificate_are_used() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    let ca = Ca::new("platform roots test CA");
    let broker = Mosquitto::tls(&ca).start();
    let backend = ca.client(BACKEND_IDENTITY);
    let secret = serde_json::json!({ "certPem": backend.cert_pem, "keyPem": backend.key_pem });
    rt.block_on(async {
        put_secret(&moto.sdk_config().await, SECRET_ID, &secret.to_string()).await;
    });
    let ca_file = broker.dir().join("ca.pem");
    let mut student = rt.block_on(Subscriber::connect_tls(
        &broker,
        "GID_student@@@001",
        &ca.client("GID_student@@@001"),
        &["room/message/1"],
    ));

    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_publishes_with_the_environment_it_is_given",
        ])
        .args(["--ignored", "--nocapture", "--test-threads", "1"])
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("SSL_CERT_DIR")
        .env("MQTT_URL", broker.url())
        .env("MQTT_SECRET_ID", SECRET_ID)
        .envs(moto.env())
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{output}");
    assert!(output.contains("1 passed"), "the child ran:\n{output}");
    let got = rt.block_on(student.next(Duration::from_secs(10)));
    assert!(got.is_some(), "the chat reached the room");
    assert!(broker.log().contains("u'backend'"), "{}", broker.log());
}

/// Run by the test above in a child process; reads everything from its environment, as the
/// Lambda does.
#[test]
#[ignore = "run by without_ca_pem_... in a child process with SSL_CERT_FILE set"]
fn child_publishes_with_the_environment_it_is_given() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let env = Env::process();
        let sdk = testkit::sdk_loader().load().await;
        let settings = env.mqtt_settings(&sdk).await.unwrap();
        let tls = settings.tls.as_ref().unwrap();
        assert_eq!(tls.roots_from(), RootsFrom::Platform);
        assert!(tls.client_certificate());
        let function = Function::from_env_with(&env, &sdk).await.unwrap();
        let event = serde_json::from_value(serde_json::json!({ "Records": [{
            "messageId": "sqs-1",
            "body": "{\"msg\":\"hello\"}",
            "messageAttributes": {
                "mqttSecondTopic": { "stringValue": "/message/1", "dataType": "String" }
            }
        }]}))
        .unwrap();
        let response = function.handle(event).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    });
}
