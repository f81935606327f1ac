//! The TLS broker of `Mosquitto::tls` against real clients: a client certificate from the CA
//! connects with its CN as the username (the ACL's `user backend` lets it publish under
//! `room/`), and the token and plain listeners answer when asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use testkit::certs::{BACKEND_IDENTITY, Ca};
use testkit::{Mosquitto, Subscriber};

/// Publishes one QoS 1 message with `opts` and returns whether the broker acknowledged it.
async fn publish_once(opts: MqttOptions, topic: &str) -> Result<(), String> {
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, "hi")
        .await
        .unwrap();
    let wait = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))) => {
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| Err("no PUBACK in 10 s".into()))
}

#[tokio::test]
async fn a_client_certificate_is_the_identity_and_every_listener_answers() {
    let ca = Ca::new("testkit CA");
    let broker = Mosquitto::tls(&ca)
        .token_listener()
        .plain_listener()
        .start();
    assert!(broker.url().starts_with("mqtts://127.0.0.1:"));
    let mut student =
        Subscriber::connect_tls(&broker, "student-1", &ca.client("student-1"), &["room/#"]).await;

    let mut backend = MqttOptions::new("backend-test", "127.0.0.1", broker.port);
    backend.set_transport(broker.tls_transport(Some(&ca.client(BACKEND_IDENTITY))));
    publish_once(backend, "room/message/r1").await.unwrap();
    let got = student
        .next(Duration::from_secs(10))
        .await
        .expect("delivered");
    assert_eq!(&got.topic[..], b"room/message/r1");
    assert!(
        broker.log().contains("u'backend'"),
        "the CN is the username:\n{}",
        broker.log()
    );

    // Without a client certificate the certificate listener refuses the TLS handshake.
    let mut anonymous = MqttOptions::new("no-cert", "127.0.0.1", broker.port);
    anonymous.set_transport(broker.tls_transport(None));
    assert!(publish_once(anonymous, "room/message/r1").await.is_err());

    // The token listener is TLS without a client certificate; the plain one is plain.
    let mut token = MqttOptions::new("token", "127.0.0.1", broker.token_port.unwrap());
    token.set_transport(broker.tls_transport(None));
    publish_once(token, "elsewhere").await.unwrap();
    let plain = MqttOptions::new("plain", "127.0.0.1", broker.plain_port.unwrap());
    publish_once(plain, "elsewhere").await.unwrap();
}

#[tokio::test]
async fn a_stack_ca_read_back_from_its_files_issues_certificates_the_broker_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let files = testkit::certs::write_stack(tmp.path()).unwrap();
    let ca = Ca::load_stack(tmp.path()).unwrap();
    assert_eq!(
        ca.cert_pem(),
        std::fs::read_to_string(&files.ca_cert).unwrap()
    );
    let broker = Mosquitto::tls(&ca).start();
    let mut opts = MqttOptions::new("backend-from-files", "127.0.0.1", broker.port);
    opts.set_transport(broker.tls_transport(Some(&ca.client(BACKEND_IDENTITY))));
    publish_once(opts, "room/message/r1").await.unwrap();
}
