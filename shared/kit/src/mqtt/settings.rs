//! Where and how to connect: broker address, TLS material, credentials, timings. `Debug`
//! never prints a secret (private key, password), so the settings can be logged at start-up.

use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};

/// TLS material for `mqtts://` (AWS IoT Core uses X.509 client certificates).
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// CA certificate(s), PEM; the platform roots when absent.
    pub ca_pem: Option<String>,
    /// Client certificate, PEM.
    pub cert_pem: Option<String>,
    /// Client private key, PEM.
    pub key_pem: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("cert_pem", &self.cert_pem.is_some())
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, for `mqtts://`.
    pub tls: Option<TlsSettings>,
    /// Client ID prefix; a random suffix makes each container's ID unique (two containers
    /// with one client ID would take each other's connection over).
    pub client_id_prefix: String,
    /// Username and password, when the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// How long a publish waits for its acknowledgement.
    pub publish_timeout: Duration,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("client_id_prefix", &self.client_id_prefix)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

impl MqttSettings {
    /// A connection the broker has been silent on for longer than this is replaced before
    /// publishing: 1.5 x keep-alive, after which the broker has dropped a silent client.
    pub(crate) fn idle_limit(&self) -> Duration {
        self.keep_alive * 3 / 2
    }

    /// The `rumqttc` options for one new connection, with a fresh client ID suffix.
    pub(crate) fn options(&self) -> MqttOptions {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut opts = MqttOptions::new(
            format!("{}{}", self.client_id_prefix, &suffix[..16]),
            &self.host,
            self.port,
        );
        opts.set_keep_alive(self.keep_alive);
        opts.set_clean_start(true);
        opts.set_connection_timeout(self.publish_timeout.as_secs().max(1));
        // Small publishes must not wait for Nagle + delayed ACK (~40 ms per round trip).
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        if let Some((user, pass)) = &self.credentials {
            opts.set_credentials(user, pass);
        }
        if let Some(tls) = &self.tls {
            let transport = match (&tls.ca_pem, &tls.cert_pem, &tls.key_pem) {
                (Some(ca), cert, key) => Transport::Tls(TlsConfiguration::Simple {
                    ca: ca.clone().into_bytes(),
                    alpn: None,
                    client_auth: cert
                        .as_ref()
                        .zip(key.as_ref())
                        .map(|(c, k)| (c.clone().into_bytes(), k.clone().into_bytes())),
                }),
                (None, _, _) => Transport::Tls(TlsConfiguration::default()),
            };
            opts.set_transport(transport);
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MqttSettings {
        MqttSettings {
            host: "broker.example".into(),
            port: 8883,
            tls: Some(TlsSettings {
                ca_pem: Some("CA-PEM".into()),
                cert_pem: Some("CERT-PEM".into()),
                key_pem: Some("SECRET-KEY-PEM".into()),
            }),
            client_id_prefix: "inflow-".into(),
            credentials: Some(("rules".into(), "SECRET-PASSWORD".into())),
            keep_alive: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_hides_the_secrets_but_names_the_rest() {
        let printed = format!("{:?}", settings());
        for secret in ["SECRET-KEY-PEM", "SECRET-PASSWORD", "CA-PEM", "CERT-PEM"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        for shown in ["broker.example", "8883", "inflow-", "rules", "[redacted]"] {
            assert!(printed.contains(shown), "{shown} not in {printed}");
        }
    }

    #[test]
    fn every_connection_gets_its_own_client_id() {
        let s = settings();
        let (a, b) = (s.options(), s.options());
        assert!(a.client_id().starts_with("inflow-"), "{}", a.client_id());
        assert_eq!(a.client_id().len(), "inflow-".len() + 16);
        assert_ne!(a.client_id(), b.client_id());
        assert_eq!(s.idle_limit(), Duration::from_secs(45));
    }
}
