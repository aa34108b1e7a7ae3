//! Starting the management listeners from the configuration: the API listener (HTTPS with
//! `[mgmt.tls]` or a certificate generated in `state_dir/tls`, plain HTTP only when
//! `plain_http` is set on a loopback address) and, when `metrics_listen` is set, a plain
//! HTTP listener serving only health, readiness and metrics.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::app::App;
use crate::config::Config;
use crate::router::MonitoringHandler;
use api_server::{tls, Server, ServerConfig};

/// The running listeners; dropping them closes them.
pub struct Listeners {
    pub api: Server,
    pub monitoring: Option<Server>,
    /// `https` or `http`, for messages.
    pub scheme: &'static str,
}

/// The API listener's limits from `[mgmt]`.
pub fn server_config(cfg: &Config) -> ServerConfig {
    let m = &cfg.mgmt;
    ServerConfig {
        max_connections: m.max_connections,
        max_connections_per_ip: m.max_connections_per_ip,
        max_body_bytes: m.max_body_bytes,
        header_timeout: Duration::from_millis(m.header_timeout_ms),
        unauthenticated_timeout: Duration::from_millis(m.unauthenticated_timeout_ms),
        ..ServerConfig::default()
    }
}

/// The API listener's TLS configuration, or `None` for plain HTTP. Logs the certificate's
/// fingerprint (and, for a generated one, the CA file clients should trust).
pub fn api_tls(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    if cfg.mgmt.plain_http {
        eprintln!(
            "flowgate: WARNING: mgmt.plain_http: the API on {} is not encrypted (loopback only)",
            cfg.mgmt.listen
        );
        return Ok(None);
    }
    let server_tls = match &cfg.mgmt.tls {
        Some(files) => tls::from_files(&files.cert_file, &files.key_file),
        None => tls::self_signed(
            &cfg.appliance.state_dir.join("tls"),
            &tls::names_for(&cfg.mgmt.listen),
        ),
    }
    .map_err(|e| format!("mgmt.tls: {e}"))?;
    match &server_tls.ca_file {
        Some(ca) => eprintln!(
            "flowgate: API certificate SHA-256 {} (generated; clients trust {})",
            server_tls.fingerprint,
            ca.display()
        ),
        None => eprintln!(
            "flowgate: API certificate SHA-256 {}",
            server_tls.fingerprint
        ),
    }
    Ok(Some(server_tls.config))
}

/// Binds the API listener and the monitoring one; both die with the management side
/// (`killed`: fault injection).
pub fn start(
    runtime: &Handle,
    cfg: &Config,
    app: &Arc<App>,
    killed: Arc<AtomicBool>,
) -> Result<Listeners, String> {
    let tls = api_tls(cfg)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let api = Server::bind(
        runtime,
        &cfg.mgmt.listen,
        server_config(cfg),
        tls,
        app.clone(),
        Arc::clone(&killed),
    )
    .map_err(|e| format!("mgmt.listen {}: {e}", cfg.mgmt.listen))?;
    let monitoring = match &cfg.mgmt.metrics_listen {
        Some(addr) => Some(
            Server::bind(
                runtime,
                addr,
                ServerConfig {
                    max_connections_per_ip: 16,
                    max_connections: 256,
                    ..server_config(cfg)
                },
                None,
                Arc::new(MonitoringHandler(Arc::clone(app))),
                killed,
            )
            .map_err(|e| format!("mgmt.metrics_listen {addr}: {e}"))?,
        ),
        None => None,
    };
    Ok(Listeners {
        api,
        monitoring,
        scheme,
    })
}
