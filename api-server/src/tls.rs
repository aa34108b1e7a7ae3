//! TLS for the API listener (rustls, ring): either the operator's certificate and key
//! (`[mgmt.tls]`), or a certificate generated at first start and kept in `state_dir/tls/`.
//!
//! The generated pair is a leaf certificate for the listener's names signed by a one-off CA
//! whose key is discarded right after signing: clients trust `ca.pem` (what
//! `FLOWGATE_CA_FILE`, `aws --ca-bundle`, boto3 `verify=` point at), and that CA can never
//! sign anything else. Files are written atomically; the key is readable by its owner only.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate in the file")]
    NoCertificate(PathBuf),
    #[error("{0}: no PEM private key in the file")]
    NoKey(PathBuf),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A ready server configuration and what to tell the operator about it.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), colon-separated hex, as browsers show it.
    pub fingerprint: String,
    /// The CA clients should trust: the generated `ca.pem`, or `None` for operator files.
    pub ca_file: Option<PathBuf>,
}

/// The configuration for an operator-supplied certificate chain and key (PEM files).
pub fn from_files(cert_file: &Path, key_file: &Path) -> Result<ServerTls, TlsError> {
    let read = |p: &Path| {
        fs::read(p).map_err(|source| TlsError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Io {
            path: cert_file.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_file.to_path_buf()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Io {
            path: key_file.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey(key_file.to_path_buf()))?;
    build(chain, key, None)
}

/// The certificate kept in `dir` (`cert.pem`, `key.pem`, `ca.pem`), generated for `names`
/// (DNS names or IP addresses) when absent.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<ServerTls, TlsError> {
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let ca_file = dir.join("ca.pem");
    if !(cert_file.exists() && key_file.exists() && ca_file.exists()) {
        generate(dir, names)?;
    }
    let mut tls = from_files(&cert_file, &key_file)?;
    tls.ca_file = Some(ca_file);
    Ok(tls)
}

fn generate(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let pair = generate_pair(names)?;
    write_atomic(&dir.join("ca.pem"), pair.ca_pem.as_bytes(), 0o644)?;
    write_atomic(&dir.join("key.pem"), pair.key_pem.as_bytes(), 0o600)?;
    // The certificate last: its presence means the set is complete.
    write_atomic(&dir.join("cert.pem"), pair.cert_pem.as_bytes(), 0o644)
}

/// A generated CA and a leaf it signed, in PEM.
pub struct GeneratedPair {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A leaf certificate for `names` signed by a fresh CA whose key is dropped here.
pub fn generate_pair(names: &[String]) -> Result<GeneratedPair, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Flowgate appliance CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Flowgate management API");
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &ca, &ca_key)?;
    Ok(GeneratedPair {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let err = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_file: Option<PathBuf>,
) -> Result<ServerTls, TlsError> {
    let fingerprint = fingerprint(&chain[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
        ca_file,
    })
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The names a generated certificate covers for a listener on `listen`: loopback names,
/// the listen address when it is a specific one, and the host's name.
pub fn names_for(listen: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
            names.push(addr.ip().to_string());
        }
    }
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("fg-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = self_signed(&dir, &names_for("127.0.0.1:0")).unwrap();
        let second = self_signed(&dir, &names_for("127.0.0.1:0")).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let mode = fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        assert_eq!(first.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_or_garbage_files_are_precise_errors() {
        let dir = std::env::temp_dir().join(format!("fg-tls-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        fs::write(&junk, "not pem").unwrap();
        let e = from_files(&junk, &junk).err().unwrap();
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let e = from_files(&dir.join("absent.pem"), &junk).err().unwrap();
        assert!(e.to_string().contains("absent.pem"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
