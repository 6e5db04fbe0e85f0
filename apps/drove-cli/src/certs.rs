//! `drove certs`: a development CA and one certificate per node, for mutual
//! TLS between nodes. Production clusters should use their own CA.
//!
//! Files in the output directory: `ca.pem` (give it to every node as
//! `--tls-ca`), `ca-key.pem` (kept to sign more nodes later: run the command
//! again with new names), and per node `NAME.pem` and `NAME-key.pem`. Keys
//! are written with mode 0600. A node's certificate names it (DNS subject
//! alternative name = node name), which is what a dialing peer checks.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A node name that cannot be used.
    #[error("node name {0:?}: use letters, digits, '-' and '.'")]
    Name(String),
    /// Key or certificate generation failed.
    #[error("generating certificates")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), CertsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

fn ca_params() -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "drove development CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Makes (or reuses) the CA in `out` and a certificate for each node;
/// returns the files written.
pub fn make(out: &Path, nodes: &[String]) -> Result<Vec<PathBuf>, CertsError> {
    for node in nodes {
        let dns_like = !node.is_empty()
            && node.len() <= 63
            && node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !dns_like {
            return Err(CertsError::Name(node.clone()));
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let ca_cert_path = out.join("ca.pem");
    let ca_key_path = out.join("ca-key.pem");
    let mut written = Vec::new();
    let ca_key = if ca_key_path.exists() && ca_cert_path.exists() {
        let pem = std::fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        KeyPair::from_pem(&pem)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write(&ca_cert_path, &cert.pem(), 0o644)?;
        write(&ca_key_path, &key.serialize_pem(), 0o600)?;
        written.extend([ca_cert_path, ca_key_path]);
        key
    };
    let issuer = Issuer::new(ca_params()?, &ca_key);
    for node in nodes {
        let mut params = CertificateParams::new(vec![node.clone()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, node.as_str());
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let cert_path = out.join(format!("{node}.pem"));
        let key_path = out.join(format!("{node}-key.pem"));
        write(&cert_path, &cert.pem(), 0o644)?;
        write(&key_path, &key.serialize_pem(), 0o600)?;
        written.extend([cert_path, key_path]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove::runtime::tls::{Tls, TlsFiles};

    #[test]
    fn certificates_load_and_a_foreign_key_does_not() {
        let dir = std::env::temp_dir().join(format!("drove-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = make(&dir, &["n1".into(), "n2".into()]).unwrap();
        assert_eq!(files.len(), 6);
        let n1 = |key: &str| TlsFiles {
            cert: dir.join("n1.pem"),
            key: dir.join(key),
            ca: dir.join("ca.pem"),
        };
        Tls::load(&n1("n1-key.pem")).unwrap();
        assert!(
            Tls::load(&n1("n2-key.pem")).is_err(),
            "n2's key with n1's certificate"
        );
        // Run again: the CA stays, a new node is added.
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        let more = make(&dir, &["n3".into()]).unwrap();
        assert_eq!(more.len(), 2);
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
        let mode = std::fs::metadata(dir.join("n3-key.pem"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(matches!(
            make(&dir, &["bad name".into()]),
            Err(CertsError::Name(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
