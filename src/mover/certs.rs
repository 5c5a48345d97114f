//! Per-migration certificates for the mover tunnel: one throw-away CA per migration signs one server
//! certificate (the receiver) and one client certificate (the sender). The controller stores the PEMs in
//! Secrets; the movers read them back from a mounted directory (`ca.crt`, `tls.crt`, `tls.key`) and build
//! their rustls configurations here, so both ends trust only that migration's CA.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::{Error, Result};

/// File names inside a certificate directory, as a Kubernetes TLS Secret mounts them.
pub const CA_FILE: &str = "ca.crt";
/// The certificate of this end (server or client).
pub const CERT_FILE: &str = "tls.crt";
/// The private key of this end.
pub const KEY_FILE: &str = "tls.key";

/// The PEM material of one migration: the CA certificate (its key is discarded after signing, so no
/// further certificate can ever chain to it) and one key pair per end.
#[derive(Clone)]
pub struct MoverCerts {
    /// The migration CA certificate, trusted by both ends.
    pub ca_pem: String,
    /// The receiver's certificate, valid for the server names given to [`issue`].
    pub server_cert_pem: String,
    /// The receiver's private key (PKCS#8).
    pub server_key_pem: String,
    /// The sender's client certificate.
    pub client_cert_pem: String,
    /// The sender's private key (PKCS#8).
    pub client_key_pem: String,
}

impl std::fmt::Debug for MoverCerts {
    // Keys are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoverCerts")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl MoverCerts {
    /// Writes the receiver's files (`ca.crt`, `tls.crt`, `tls.key`) into `dir`.
    pub fn write_server_dir(&self, dir: &Path) -> Result<()> {
        write_dir(dir, &self.ca_pem, &self.server_cert_pem, &self.server_key_pem)
    }

    /// Writes the sender's files (`ca.crt`, `tls.crt`, `tls.key`) into `dir`.
    pub fn write_client_dir(&self, dir: &Path) -> Result<()> {
        write_dir(dir, &self.ca_pem, &self.client_cert_pem, &self.client_key_pem)
    }
}

fn write_dir(dir: &Path, ca: &str, cert: &str, key: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    for (name, content) in [(CA_FILE, ca), (CERT_FILE, cert), (KEY_FILE, key)] {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// Issues a fresh CA and the server and client certificates for one migration. `server_names` are the
/// DNS names or IP addresses the sender will dial (Service name, Route host, node IP...).
pub fn issue(migration_uid: &str, server_names: &[String]) -> Result<MoverCerts> {
    let cert_error = |e: rcgen::Error| Error::Mover(format!("issuing certificates: {e}"));
    let ca_key = KeyPair::generate().map_err(cert_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("ferry mover CA {migration_uid}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, common_name: String, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(names).map_err(cert_error)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer).map_err(cert_error)?;
        Ok::<_, Error>((cert.pem(), key.serialize_pem()))
    };
    let (server_cert_pem, server_key_pem) = leaf(
        server_names.to_vec(),
        format!("ferry mover receiver {migration_uid}"),
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_cert_pem, client_key_pem) = leaf(
        Vec::new(),
        format!("ferry mover sender {migration_uid}"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    Ok(MoverCerts {
        ca_pem: ca_cert.pem(),
        server_cert_pem,
        server_key_pem,
        client_cert_pem,
        client_key_pem,
    })
}

/// The three files of one end, parsed.
struct Identity {
    roots: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn load_identity(dir: &Path) -> Result<Identity> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(Error::io(format!("reading {}", path.display())))
    };
    let parse_certs = |name: &str, bytes: Vec<u8>| {
        let certs = rustls_pemfile::certs(&mut bytes.as_slice())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::io(format!("parsing {name}")))?;
        if certs.is_empty() {
            return Err(Error::Mover(format!(
                "{} holds no certificate",
                dir.join(name).display()
            )));
        }
        Ok(certs)
    };
    let mut roots = RootCertStore::empty();
    for ca in parse_certs(CA_FILE, read(CA_FILE)?)? {
        roots
            .add(ca)
            .map_err(|e| Error::Mover(format!("bad CA certificate: {e}")))?;
    }
    let chain = parse_certs(CERT_FILE, read(CERT_FILE)?)?;
    let key = rustls_pemfile::private_key(&mut read(KEY_FILE)?.as_slice())
        .map_err(Error::io(format!("parsing {KEY_FILE}")))?
        .ok_or_else(|| Error::Mover(format!("{} holds no private key", dir.join(KEY_FILE).display())))?;
    Ok(Identity { roots, chain, key })
}

/// ring's suites with AES-128-GCM first: the tunnel carries whole volumes, and with 10 AES rounds
/// instead of 14 it spends about a quarter less CPU on encryption than AES-256-GCM (ring's default
/// first choice), at a strength TLS 1.3 itself mandates. Both ends use this order.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn tls_error(context: &str) -> impl FnOnce(rustls::Error) -> Error + '_ {
    move |e| Error::Mover(format!("{context}: {e}"))
}

/// The receiver's TLS configuration: its own certificate, and client certificates required and checked
/// against the migration CA only (no system roots).
pub(crate) fn server_config(dir: &Path) -> Result<Arc<ServerConfig>> {
    let Identity { roots, chain, key } = load_identity(dir)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Mover(format!("client verifier: {e}")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("server TLS versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_error("server certificate"))?;
    Ok(Arc::new(config))
}

/// The sender's TLS configuration: the receiver must present a certificate from the migration CA
/// valid for `pinned` (the fixed [`crate::pipeline::movers::SERVER_NAME`] in pods), whatever name the
/// connection sends as SNI (a Route's host, so a passthrough router can route it: see [`PinnedName`]),
/// and the sender authenticates with its client certificate.
pub(crate) fn client_config(dir: &Path, pinned: &str) -> Result<Arc<ClientConfig>> {
    let Identity { roots, chain, key } = load_identity(dir)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::Mover(format!("server verifier: {e}")))?;
    let verifier = Arc::new(PinnedName {
        inner: webpki,
        name: server_name(pinned)?,
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("client TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(tls_error("client certificate"))?;
    Ok(Arc::new(config))
}

/// Verifies the receiver's certificate exactly as rustls' WebPKI verifier does (chain to the migration
/// CA, validity, key usage, signatures), but for the pinned name instead of the name the connection
/// was opened with: that one is the SNI, chosen for the network path (a Route host, a load balancer's
/// name), while the pinned name is what the migration's certificate says.
#[derive(Debug)]
struct PinnedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for PinnedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Parses the name the sender expects in the receiver's certificate (DNS name or IP address).
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|e| Error::Mover(format!("invalid server name {name:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_material_loads_into_both_configs() {
        let certs = issue("uid-1", &["receiver.example".into(), "127.0.0.1".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        certs.write_server_dir(&dir.path().join("server")).unwrap();
        certs.write_client_dir(&dir.path().join("client")).unwrap();
        server_config(&dir.path().join("server")).unwrap();
        client_config(&dir.path().join("client"), "receiver.example").unwrap();
        assert!(certs.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(!format!("{certs:?}").contains("PRIVATE KEY"));
    }

    #[tokio::test]
    async fn both_ends_agree_on_tls13_aes_128_gcm() {
        let certs = issue("uid-2", &["receiver.example".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        certs.write_server_dir(&dir.path().join("server")).unwrap();
        certs.write_client_dir(&dir.path().join("client")).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&dir.path().join("server")).unwrap());
        let connector = tokio_rustls::TlsConnector::from(
            client_config(&dir.path().join("client"), "receiver.example").unwrap(),
        );
        let (near, far) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { acceptor.accept(far).await.map(|_| ()) });
        let client = connector
            .connect(server_name("receiver.example").unwrap(), near)
            .await
            .unwrap();
        server.await.unwrap().unwrap();
        let (_, connection) = client.get_ref();
        assert_eq!(
            connection.negotiated_cipher_suite().map(|suite| suite.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        assert_eq!(
            connection.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }

    #[test]
    fn missing_files_are_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = server_config(dir.path()).unwrap_err().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }
}
