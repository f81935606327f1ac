//! Test certificates: a per-stack (or per-test) CA that issues server and client certificates,
//! as AWS IoT Core binds an identity to an X.509 client certificate. Made with `rcgen` on the
//! `ring` backend (never aws-lc): ECDSA P-256 keys, PEM text, nothing read from the system.
//!
//! # API
//! - [`Ca::new`]`(common_name)`: a fresh self-signed CA (valid from a day ago for ten years).
//!   [`Ca::cert_pem`] / [`Ca::key_pem`] give its PEM text. [`Ca::load_stack`]`(dir)` reads back
//!   the CA that [`write_stack`] wrote, to issue more certificates from it.
//! - [`Ca::server`]: a server certificate for `127.0.0.1` and `localhost` (what the local
//!   broker presents); [`Ca::server_for`]`(hosts, validity)` for other names (a wrong-host
//!   certificate: `ca.server_for(&["wrong.example"], Validity::Current)`).
//! - [`Ca::client`]`(identity)`: a client certificate whose subject CN is `identity` (Mosquitto's
//!   `use_identity_as_username true` makes the CN the username); [`Ca::client_with`]`(identity,
//!   validity)` for an [`Validity::Expired`] or [`Validity::NotYetValid`] one. A certificate
//!   from another CA: `Ca::new("other CA").client("backend")`.
//! - [`CertPair`]: `cert_pem` + `key_pem` (PKCS#8), [`CertPair::write`] to `<stem>.pem` /
//!   `<stem>.key` (0600).
//! - [`write_stack`]`(dir)`: what the `stack-certs <dir>` binary does for `make up`: creates `dir`
//!   (0700) and writes, each 0600, replacing what was there: `ca.pem ca.key server.pem
//!   server.key backend.pem backend.key` (the backend client certificate has CN
//!   [`BACKEND_IDENTITY`]). Returns the paths as [`StackFiles`].
//! - [`client_config`]`(ca_pem, client)`: a rustls client configuration (ring) trusting `ca_pem`
//!   and presenting `client` when given, for test clients (`Subscriber::connect_tls`).

#![allow(clippy::expect_used)] // the inputs are our own constants: a failure is a bug here

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

/// The client certificate identity (CN, hence the broker username) of the backend: the inflow
/// function, the local rules bridge and the tests' backend connections.
pub const BACKEND_IDENTITY: &str = "backend";
/// The common name of the CA that [`write_stack`] makes (and [`Ca::load_stack`] expects).
pub const STACK_CA_NAME: &str = "classroom local stack CA";
/// The names the server certificate of [`Ca::server`] is valid for.
pub const SERVER_HOSTS: [&str; 2] = ["127.0.0.1", "localhost"];

const DAY: Duration = Duration::from_secs(86_400);

/// When a certificate is valid, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From a day ago for a year.
    Current,
    /// From 30 days ago until yesterday.
    Expired,
    /// From tomorrow for 30 days.
    NotYetValid,
}

impl Validity {
    fn window(self) -> (OffsetDateTime, OffsetDateTime) {
        match self {
            Self::Current => (ago(DAY), from_now(365 * DAY)),
            Self::Expired => (ago(30 * DAY), ago(DAY)),
            Self::NotYetValid => (from_now(DAY), from_now(30 * DAY)),
        }
    }
}

fn unix(t: SystemTime) -> OffsetDateTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).expect("seconds fit i64"))
        .expect("a valid date")
}

fn ago(d: Duration) -> OffsetDateTime {
    unix(SystemTime::now() - d)
}

fn from_now(d: Duration) -> OffsetDateTime {
    unix(SystemTime::now() + d)
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate, PEM (`CERTIFICATE`).
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8 `PRIVATE KEY`).
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl CertPair {
    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key`, both 0600; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write_private(&cert, &self.cert_pem)?;
        write_private(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// A certificate authority that issues test certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = ago(DAY);
    params.not_after = from_now(3650 * DAY);
    params
}

impl Ca {
    /// A new self-signed CA named `common_name`, valid from a day ago for ten years.
    pub fn new(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("generate a P-256 key");
        let params = ca_params(common_name);
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA [`write_stack`] wrote into `dir` (`ca.pem`, `ca.key`), to issue more certificates
    /// that the stack's broker accepts.
    pub fn load_stack(dir: &Path) -> std::io::Result<Self> {
        let cert_pem = std::fs::read_to_string(dir.join("ca.pem"))?;
        let key_pem = std::fs::read_to_string(dir.join("ca.key"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join("ca.key").display()),
            )
        })?;
        // The issuer needs only the CA's subject and key: the subject is the fixed stack name.
        Ok(Self {
            issuer: Issuer::new(ca_params(STACK_CA_NAME), key),
            cert_pem,
            key_pem,
        })
    }

    /// The CA certificate, PEM (what clients trust: `caPem`, `--cafile`, `SSL_CERT_FILE`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A current server certificate for `127.0.0.1` and `localhost` ([`SERVER_HOSTS`]).
    pub fn server(&self) -> CertPair {
        self.server_for(&SERVER_HOSTS, Validity::Current)
    }

    /// A server certificate for `hosts` (IP addresses or DNS names; the first is also the CN).
    pub fn server_for(&self, hosts: &[&str], validity: Validity) -> CertPair {
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("valid host names");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(params, hosts.first().copied().unwrap_or("server"), validity)
    }

    /// A current client certificate with CN `identity`.
    pub fn client(&self, identity: &str) -> CertPair {
        self.client_with(identity, Validity::Current)
    }

    /// A client certificate with CN `identity` and the given validity.
    pub fn client_with(&self, identity: &str, validity: Validity) -> CertPair {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(params, identity, validity)
    }

    fn leaf(&self, mut params: CertificateParams, cn: &str, validity: Validity) -> CertPair {
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity.window();
        let key = KeyPair::generate().expect("generate a P-256 key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The files [`write_stack`] wrote.
#[derive(Debug, Clone)]
pub struct StackFiles {
    /// `ca.pem`: the CA certificate clients trust.
    pub ca_cert: PathBuf,
    /// `ca.key`: the CA's key (to issue more certificates: [`Ca::load_stack`]).
    pub ca_key: PathBuf,
    /// `server.pem`: the broker's certificate for 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// `server.key`.
    pub server_key: PathBuf,
    /// `backend.pem`: the backend identity's client certificate (CN `backend`).
    pub backend_cert: PathBuf,
    /// `backend.key`.
    pub backend_key: PathBuf,
}

/// Creates `dir` (mode 0700) and writes a new CA, server and backend client certificate into
/// it (each file 0600), replacing any from an earlier run.
pub fn write_stack(dir: &Path) -> std::io::Result<StackFiles> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let ca = Ca::new(STACK_CA_NAME);
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    write_private(&ca_cert, ca.cert_pem())?;
    write_private(&ca_key, ca.key_pem())?;
    let (server_cert, server_key) = ca.server().write(dir, "server")?;
    let (backend_cert, backend_key) = ca.client(BACKEND_IDENTITY).write(dir, "backend")?;
    Ok(StackFiles {
        ca_cert,
        ca_key,
        server_cert,
        server_key,
        backend_cert,
        backend_key,
    })
}

/// Writes `text` to `path` with mode 0600 through a temporary file and a rename, so a reader
/// (a broker starting) never sees half a file, and an earlier file's mode does not survive.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// A rustls client configuration (ring provider) that trusts the certificates in `ca_pem` and
/// presents `client` when given: what test clients use to reach a TLS broker.
pub fn client_config(ca_pem: &str, client: Option<&CertPair>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.expect("a CA PEM"))
            .expect("a CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("a certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).expect("a key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a usable client certificate")
        }
    };
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_stack_files_are_private_and_replaced_on_every_run() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let first = write_stack(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "backend.key",
                "backend.pem",
                "ca.key",
                "ca.pem",
                "server.key",
                "server.pem"
            ]
        );
        for p in [
            &first.ca_cert,
            &first.ca_key,
            &first.server_cert,
            &first.server_key,
            &first.backend_cert,
            &first.backend_key,
        ] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        let ca_before = std::fs::read_to_string(&first.ca_cert).unwrap();
        std::fs::set_permissions(&first.ca_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let second = write_stack(&dir).unwrap();
        assert_ne!(std::fs::read_to_string(&second.ca_cert).unwrap(), ca_before);
        assert_eq!(mode(&second.ca_key), 0o600);
        assert!(
            Ca::load_stack(&dir)
                .unwrap()
                .cert_pem()
                .contains("BEGIN CERTIFICATE")
        );
    }

    #[test]
    fn a_client_config_takes_the_pem_text() {
        let ca = Ca::new("test CA");
        let pair = ca.client("backend");
        assert!(pair.key_pem.contains("BEGIN PRIVATE KEY"));
        let _ = client_config(ca.cert_pem(), Some(&pair));
        let _ = client_config(ca.cert_pem(), None);
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }
}
