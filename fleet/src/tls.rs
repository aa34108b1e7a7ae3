//! The fleet listener's TLS: the configured certificate and key, or a self-signed
//! certificate generated at first start (rcgen) and kept in `state_dir/tls/` so clients can
//! pin it (`--ca-bundle`, `FLOWGATE_CA_FILE`) across restarts. rustls with the ring provider.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::inventory::Fleet;

pub const SELF_SIGNED_CERT: &str = "fleet-cert.pem";
pub const SELF_SIGNED_KEY: &str = "fleet-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("generating the self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(p: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: p.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The certificate and key files to serve: configured, or self-signed in `state_dir/tls`.
pub fn cert_files(fleet: &Fleet) -> Result<(PathBuf, PathBuf), TlsError> {
    if let (Some(c), Some(k)) = (&fleet.tls.cert_file, &fleet.tls.key_file) {
        return Ok((c.clone(), k.clone()));
    }
    let dir = fleet.state_dir.join("tls");
    let (cert, key) = (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(addr) = fleet.listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    names.extend(fleet.tls.subject_alt_names.iter().cloned());
    names.sort();
    names.dedup();
    let ck =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    // The key first: a certificate without its key would be reused and then fail.
    write_atomic(&key, ck.key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok((cert, key))
}

fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tls.{}.tmp", uuid::Uuid::new_v4()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| file_err(dest, e))
}

/// The server configuration for `cert`/`key`, and the SHA-256 fingerprint of the
/// certificate (logged, so an operator can compare it with what a client sees).
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ServerConfig>, String), TlsError> {
    let certs: Vec<CertificateDer<'static>> = {
        let pem = std::fs::read(cert).map_err(|e| file_err(cert, e))?;
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| file_err(cert, e))?
    };
    let first = certs
        .first()
        .ok_or_else(|| file_err(cert, "no certificate in the file"))?;
    let fingerprint = Sha256::digest(first.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key_der: PrivateKeyDer<'static> = {
        let pem = std::fs::read(key).map_err(|e| file_err(key, e))?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| file_err(key, e))?
            .ok_or_else(|| file_err(key, "no private key in the file"))?
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), fingerprint))
}
