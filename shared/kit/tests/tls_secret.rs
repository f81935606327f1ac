//! The inflow's secret (`MQTT_SECRET_ID`) read from a real moto's Secrets Manager for an
//! `mqtts://` broker: what `infra/DEPLOY.md` tells users to write is accepted (with the client
//! certificate kept, with or without `caPem`), and every way it can be wrong stops start-up
//! with one error naming `MQTT_SECRET_ID`, the secret and the fix, never a PEM's content.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use kit::{Env, RootsFrom};
use testkit::certs::{BACKEND_IDENTITY, Ca};
use testkit::{Moto, put_secret};

const URL: &str = "mqtts://127.0.0.1:8883";

async fn settings_error(sdk: &aws_config::SdkConfig, id: &str) -> String {
    Env::from_map([("MQTT_URL", URL), ("MQTT_SECRET_ID", id)])
        .mqtt_settings(sdk)
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn the_deploy_md_secret_is_accepted_and_every_bad_secret_stops_start_up_naming_mqtt_secret_id()
 {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ca = Ca::new("secret test CA");
    let pair = ca.client(BACKEND_IDENTITY);

    // DEPLOY.md's form: certPem + keyPem, no caPem (IoT Core's CA is a public root).
    let deploy_md = serde_json::json!({ "certPem": pair.cert_pem, "keyPem": pair.key_pem });
    put_secret(&sdk, "deploy-md", &deploy_md.to_string()).await;
    let env = Env::from_map([("MQTT_URL", URL), ("MQTT_SECRET_ID", "deploy-md")]);
    match env.mqtt_settings(&sdk).await {
        Ok(settings) => {
            let tls = settings.tls.expect("mqtts means TLS");
            assert_eq!(tls.roots_from(), RootsFrom::Platform);
            assert!(
                tls.client_certificate(),
                "the certificate is kept without caPem"
            );
        }
        // Only a machine without any CA bundle gets here; the message says what to do.
        Err(e) => assert!(e.to_string().contains("SSL_CERT_FILE"), "{e}"),
    }
    let mut with_ca = deploy_md.clone();
    with_ca["caPem"] = ca.cert_pem().into();
    put_secret(&sdk, "with-ca", &with_ca.to_string()).await;
    let env = Env::from_map([("MQTT_URL", URL), ("MQTT_SECRET_ID", "with-ca")]);
    let tls = env.mqtt_settings(&sdk).await.unwrap().tls.unwrap();
    assert_eq!(tls.roots_from(), RootsFrom::CaPem);
    assert!(tls.client_certificate());

    // Missing: the SDK's reason (ResourceNotFound) and the ID.
    let msg = settings_error(&sdk, "no-such-secret").await;
    assert!(
        msg.contains("MQTT_SECRET_ID")
            && msg.contains("no-such-secret")
            && msg.contains("ResourceNotFound"),
        "{msg}"
    );

    // Malformed, each with the name of what is wrong and the shape to write.
    let garbage_cert = serde_json::json!({ "certPem": "SECRET-VALUE", "keyPem": pair.key_pem });
    let unpaired = serde_json::json!({ "certPem": pair.cert_pem });
    let misspelt = serde_json::json!({ "certPEM": pair.cert_pem, "keyPem": pair.key_pem });
    let other_key = serde_json::json!({
        "certPem": pair.cert_pem,
        "keyPem": ca.client("someone-else").key_pem,
    });
    let cases: [(&str, String, &[&str]); 7] = [
        ("not-json", "certPem=SECRET-VALUE".to_owned(), &["not the expected JSON", "certPem"]),
        ("empty", "{}".to_owned(), &["holds no credentials", "certPem"]),
        ("misspelt", misspelt.to_string(), &["unknown field `certPEM`", "certPem"]),
        ("unpaired", unpaired.to_string(), &["certPem and keyPem go together"]),
        ("garbage-cert", garbage_cert.to_string(), &["certPem: no certificate found"]),
        ("key-of-another", other_key.to_string(), &["do not make a usable client certificate"]),
        (
            "garbage-ca",
            serde_json::json!({ "caPem": "SECRET-VALUE", "certPem": pair.cert_pem, "keyPem": pair.key_pem })
                .to_string(),
            &["caPem: no certificate found"],
        ),
    ];
    for (id, value, says) in cases {
        put_secret(&sdk, id, &value).await;
        let msg = settings_error(&sdk, id).await;
        assert!(
            msg.starts_with(&format!("secret {id} (from MQTT_SECRET_ID): ")),
            "{id}: {msg}"
        );
        for s in says {
            assert!(msg.contains(s), "{id}: {s:?} not in {msg}");
        }
        for secret in ["SECRET-VALUE", "MII", "MIG"] {
            assert!(
                !msg.contains(secret),
                "{id}: the error shows a secret: {msg}"
            );
        }
    }
}
