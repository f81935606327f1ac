//! Where and how to connect: broker address, TLS material, credentials, timings. `Debug`
//! never prints a secret (private key, password), so the settings can be logged at start-up.
//!
//! TLS: [`TlsSettings::build`] makes the rustls client configuration once, at start-up, so a
//! bad PEM stops the function at cold start instead of failing every publish. The trusted
//! roots are `caPem` when given, else the platform's (`rustls-native-certs`: the system bundle,
//! or the files `SSL_CERT_FILE` / `SSL_CERT_DIR` name); the client certificate is presented
//! whenever `certPem` and `keyPem` are given, with either kind of roots (AWS IoT Core's
//! port 8883 requires one; its server certificate chains to Amazon Root CA 1, a public root).
//! The crypto provider is ring, the one the SDK's HTTPS client uses (see the root
//! `Cargo.toml`).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS material for `mqtts://` (AWS IoT Core uses X.509 client certificates), as the secret
/// holds it; [`TlsSettings::build`] turns it into the [`ClientTls`] a connection uses.
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// CA certificate(s), PEM; the platform roots when absent.
    pub ca_pem: Option<String>,
    /// Client certificate (chain), PEM.
    pub cert_pem: Option<String>,
    /// Client private key, PEM (PKCS#8, PKCS#1 or SEC1).
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

/// Why TLS material cannot be used. The messages name the secret's keys (`caPem`, `certPem`,
/// `keyPem`) and never contain their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// `caPem` has no certificate or one that cannot be a trust anchor.
    #[error(
        "caPem: {0}; it should hold the broker's CA certificate(s) as PEM (-----BEGIN CERTIFICATE-----), or be left out to use the platform roots"
    )]
    Ca(String),
    /// `certPem` has no usable certificate.
    #[error(
        "certPem: {0}; it should hold the client certificate as PEM (-----BEGIN CERTIFICATE-----)"
    )]
    Cert(String),
    /// `keyPem` has no usable private key.
    #[error(
        "keyPem: {0}; it should hold the client certificate's private key as PEM (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY)"
    )]
    Key(String),
    /// Only one of `certPem` and `keyPem` is given.
    #[error("certPem and keyPem go together; give both or neither")]
    Unpaired,
    /// The certificate and key do not make a client certificate rustls can present.
    #[error("certPem and keyPem do not make a usable client certificate: {0}")]
    ClientAuth(String),
    /// No `caPem`, and the platform has no root certificates.
    #[error(
        "no caPem and no platform root certificates could be loaded ({0}); put caPem in the secret, or point SSL_CERT_FILE at a CA bundle"
    )]
    NoPlatformRoots(String),
}

/// Where the trusted roots of a [`ClientTls`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootsFrom {
    /// The secret's `caPem`.
    CaPem,
    /// The platform (system bundle, `SSL_CERT_FILE`, `SSL_CERT_DIR`).
    Platform,
}

/// A built TLS client configuration (rustls, ring), shared by every connection.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    roots_from: RootsFrom,
    roots: usize,
    client_certificate: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots_from", &self.roots_from)
            .field("roots", &self.roots)
            .field("client_certificate", &self.client_certificate)
            .finish()
    }
}

impl ClientTls {
    /// Where the trusted roots came from.
    pub fn roots_from(&self) -> RootsFrom {
        self.roots_from
    }

    /// Whether a client certificate is presented.
    pub fn client_certificate(&self) -> bool {
        self.client_certificate
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }
}

fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM ({e})"))?;
    if certs.is_empty() {
        return Err("no certificate found".to_owned());
    }
    Ok(certs)
}

impl TlsSettings {
    /// Builds the client configuration: roots from `caPem` or the platform, the client
    /// certificate when `certPem` and `keyPem` are given.
    pub fn build(&self) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let roots_from = match &self.ca_pem {
            Some(pem) => {
                for (i, cert) in pem_certs(pem)
                    .map_err(TlsError::Ca)?
                    .into_iter()
                    .enumerate()
                {
                    roots.add(cert).map_err(|e| {
                        TlsError::Ca(format!(
                            "certificate {} cannot be a trust anchor: {e}",
                            i + 1
                        ))
                    })?;
                }
                RootsFrom::CaPem
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "a platform root certificate source could not be read");
                }
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = match found.errors.first() {
                        Some(e) => e.to_string(),
                        None => "none found".to_owned(),
                    };
                    return Err(TlsError::NoPlatformRoots(why));
                }
                RootsFrom::Platform
            }
        };
        let count = roots.len();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::ClientAuth(e.to_string()))?
            .with_root_certificates(roots);
        let (config, client_certificate) = match (&self.cert_pem, &self.key_pem) {
            (None, None) => (builder.with_no_client_auth(), false),
            (Some(cert), Some(key)) => {
                let chain = pem_certs(cert).map_err(TlsError::Cert)?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
                    TlsError::Key(match e {
                        rustls::pki_types::pem::Error::NoItemsFound => {
                            "no private key found".to_owned()
                        }
                        other => format!("not valid PEM ({other})"),
                    })
                })?;
                let config = builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::ClientAuth(e.to_string()))?;
                (config, true)
            }
            _ => return Err(TlsError::Unpaired),
        };
        Ok(ClientTls {
            config: Arc::new(config),
            roots_from,
            roots: count,
            client_certificate,
        })
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS, for `mqtts://` (built once from [`TlsSettings`]).
    pub tls: Option<ClientTls>,
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
            // Our own configuration: rumqttc's `TlsConfiguration::default()` (platform roots)
            // sends no client certificate.
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.config(),
            )));
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::certs::Ca;

    fn tls_settings(ca: &Ca) -> TlsSettings {
        let pair = ca.client("backend");
        TlsSettings {
            ca_pem: Some(ca.cert_pem().to_owned()),
            cert_pem: Some(pair.cert_pem),
            key_pem: Some(pair.key_pem),
        }
    }

    fn settings() -> MqttSettings {
        let ca = Ca::new("unit CA");
        MqttSettings {
            host: "broker.example".into(),
            port: 8883,
            tls: Some(tls_settings(&ca).build().unwrap()),
            client_id_prefix: "inflow-".into(),
            credentials: Some(("rules".into(), "SECRET-PASSWORD".into())),
            keep_alive: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_hides_the_secrets_but_names_the_rest() {
        let printed = format!("{:?}", settings());
        for secret in ["SECRET-PASSWORD", "BEGIN"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        for shown in [
            "broker.example",
            "8883",
            "inflow-",
            "rules",
            "CaPem",
            "client_certificate: true",
        ] {
            assert!(printed.contains(shown), "{shown} not in {printed}");
        }
        let printed = format!("{:?}", tls_settings(&Ca::new("unit CA")));
        assert!(
            !printed.contains("BEGIN") && printed.contains("[redacted]"),
            "{printed}"
        );
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

    #[test]
    fn the_client_certificate_is_kept_with_either_kind_of_roots() {
        let ca = Ca::new("unit CA");
        let with_ca = tls_settings(&ca).build().unwrap();
        assert_eq!(with_ca.roots_from(), RootsFrom::CaPem);
        assert!(with_ca.client_certificate());
        assert!(with_ca.config().client_auth_cert_resolver.has_certs());
        // Without caPem: the platform roots (this machine's bundle), still with the certificate.
        let platform = TlsSettings {
            ca_pem: None,
            ..tls_settings(&ca)
        };
        match platform.build() {
            Ok(tls) => {
                assert_eq!(tls.roots_from(), RootsFrom::Platform);
                assert!(tls.client_certificate());
                assert!(tls.config().client_auth_cert_resolver.has_certs());
            }
            // A machine without a CA bundle: the error says what to do.
            Err(e) => assert!(e.to_string().contains("SSL_CERT_FILE"), "{e}"),
        }
        let no_cert = TlsSettings {
            cert_pem: None,
            key_pem: None,
            ..tls_settings(&ca)
        }
        .build()
        .unwrap();
        assert!(!no_cert.client_certificate());
        assert!(!no_cert.config().client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn bad_pem_is_an_error_naming_the_key_without_its_value() {
        let ca = Ca::new("unit CA");
        let good = tls_settings(&ca);
        let other_key = ca.client("other").key_pem;
        let cases = [
            (
                TlsSettings {
                    ca_pem: Some("SECRET-GARBAGE".into()),
                    ..good.clone()
                },
                "caPem",
            ),
            (
                TlsSettings {
                    cert_pem: Some("SECRET-GARBAGE".into()),
                    ..good.clone()
                },
                "certPem",
            ),
            (
                TlsSettings {
                    key_pem: Some("SECRET-GARBAGE".into()),
                    ..good.clone()
                },
                "keyPem",
            ),
            (
                TlsSettings {
                    key_pem: Some(good.cert_pem.clone().unwrap()),
                    ..good.clone()
                },
                "keyPem",
            ),
            (
                TlsSettings {
                    key_pem: None,
                    ..good.clone()
                },
                "go together",
            ),
            (
                TlsSettings {
                    key_pem: Some(other_key),
                    ..good.clone()
                },
                "usable client certificate",
            ),
        ];
        for (settings, named) in cases {
            let msg = settings.build().unwrap_err().to_string();
            assert!(msg.contains(named), "{named} not in {msg}");
            // PEM bodies (base64 DER) start with MII / MIG: none is echoed.
            let echoed = ["SECRET-GARBAGE", "MII", "MIG"]
                .iter()
                .any(|v| msg.contains(v));
            assert!(!echoed, "{msg}");
        }
    }
}
