//! `flowgate-fleet`: one AWS-compatible endpoint over several independent Flowgate
//! appliances, one per Availability Zone of a firewall. The fleet is a router, not a
//! cluster: the appliances share nothing; the fleet keeps only the desired policy (so a
//! zone that was down catches up) and routes every flow operation to its zone's appliance.

pub mod ctl;
pub mod inventory;
pub mod list_merge;
pub mod metrics;
pub mod policy_sync;
pub mod router;
pub mod server;
pub mod tls;
pub mod upstream;

use std::path::Path;
use std::sync::Arc;

/// Loads the inventory, builds the router and TLS, binds the listener and serves until
/// the process is stopped; the background reconciler runs beside it.
pub fn run(inventory: &Path) -> Result<(), String> {
    let inv = inventory::Inventory::load(inventory).map_err(|e| e.to_string())?;
    let (cert, key) = tls::cert_files(&inv.fleet).map_err(|e| e.to_string())?;
    let (tls_cfg, fingerprint) = tls::server_config(&cert, &key).map_err(|e| e.to_string())?;
    let keys = mgmt::sigv4::KeyStore::new(
        inv.fleet
            .keys
            .iter()
            .map(|k| mgmt::sigv4::Credentials {
                access_key_id: k.access_key_id.clone(),
                secret_access_key: k.secret_access_key.clone(),
            })
            .collect(),
    );
    let zone_names: Vec<String> = inv.zones.iter().map(|z| z.name.clone()).collect();
    let metrics = Arc::new(metrics::Metrics::new(&zone_names));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("fleet")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        let listen = inv.fleet.listen.clone();
        let interval = inv.fleet.reconcile_interval();
        let max_connections = inv.fleet.max_connections;
        let server = Arc::new(server::Server {
            keys,
            region: inv.fleet.region.clone(),
            max_body_bytes: inv.fleet.max_body_bytes,
            router: Arc::new(router::Router::new(inv, metrics)?),
        });
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("listen on {listen}: {e}"))?;
        eprintln!(
            "flowgate-fleet: serving https://{listen} for zones {} (certificate {}, SHA-256 {fingerprint})",
            zone_names.join(", "),
            cert.display()
        );
        let router = server.router.clone();
        tokio::spawn(async move {
            loop {
                router.reconcile().await;
                tokio::time::sleep(interval).await;
            }
        });
        let serving = tokio::spawn(server.run(listener, tls_cfg, max_connections));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("signal handler: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = serving => {}
        }
        eprintln!("flowgate-fleet: stopping");
        Ok(())
    })
}
