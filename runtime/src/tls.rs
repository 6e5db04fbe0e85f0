//! Mutual TLS between nodes: every node holds a certificate from the
//! cluster's CA, and both ends of a transport connection check the other's.
//!
//! A node's certificate names the node (a DNS subject alternative name
//! equal to its node name); the dialing node checks that the peer it meant
//! is the one that answered. The accepting node checks only that the client
//! holds a certificate of the CA (ractor_cluster does not tell which one;
//! SECURITY.md has what that leaves open).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("reading {what} from {path}")]
    Pem {
        /// Which file: certificate, key or CA.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The CA file holds no certificate rustls accepts.
    #[error("the CA file {0} holds no usable certificate")]
    NoCa(String),
    /// rustls refused the configuration (a key that does not match the
    /// certificate, say).
    #[error("building the TLS configuration")]
    Config(#[source] rustls::Error),
    /// The client verifier could not be built.
    #[error("building the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// A node name that cannot be a TLS server name.
    #[error("node name {0:?} cannot be checked against a certificate (use letters, digits, '-' and '.')")]
    Name(String),
}

/// Where a node's TLS material is: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate (chain).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
    /// The cluster CA's certificate.
    pub ca: PathBuf,
}

/// A node's TLS setup, loaded once.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

fn pem_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError {
    let path = path.display().to_string();
    move |source| TlsError::Pem { what, path, source }
}

impl Tls {
    /// Loads the files and builds both sides' configurations.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(pem_err("certificate", &files.cert))?
            .collect::<Result<_, _>>()
            .map_err(pem_err("certificate", &files.cert))?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem_err("key", &files.key))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&files.ca).map_err(pem_err("CA", &files.ca))? {
            let ca = ca.map_err(pem_err("CA", &files.ca))?;
            roots
                .add(ca)
                .map_err(|_| TlsError::NoCa(files.ca.display().to_string()))?;
        }
        if roots.is_empty() {
            return Err(TlsError::NoCa(files.ca.display().to_string()));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(TlsError::Config)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(TlsError::Config)?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    pub(crate) fn connector(&self) -> TlsConnector {
        self.connector.clone()
    }
}

/// The name a peer's certificate must carry: its node name.
pub(crate) fn server_name(node: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(node.to_string()).map_err(|_| TlsError::Name(node.to_string()))
}
