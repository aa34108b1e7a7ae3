//! `flowgate-fleet`: one AWS-compatible endpoint over several independent Flowgate
//! appliances, one per Availability Zone of a firewall. The fleet is a router, not a
//! cluster: the appliances share nothing; the fleet keeps only the desired policy (so a
//! zone that was down catches up) and routes every flow operation to its zone's appliance.
//! It serves on the appliance's own listener ([`api_server`]), so it has the same
//! connection admission, deadlines and limits.

pub mod api;
pub mod console_proxy;
pub mod ctl;
pub mod inventory;
pub mod list_merge;
pub mod metrics;
pub mod policy_sync;
pub mod router;
pub mod upstream;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use api_server::{tls, Server};

/// The listener's TLS: the inventory's certificate files, or a leaf signed by a one-off CA,
/// made at first start and kept in `state_dir/tls/` (`ca.pem` is what clients pin).
fn server_tls(fleet: &inventory::Fleet) -> Result<tls::ServerTls, tls::TlsError> {
    if let (Some(cert), Some(key)) = (&fleet.tls.cert_file, &fleet.tls.key_file) {
        return tls::from_files(cert, key);
    }
    let mut names = tls::names_for(&fleet.listen);
    names.extend(fleet.tls.subject_alt_names.iter().cloned());
    names.sort();
    names.dedup();
    tls::self_signed(&fleet.state_dir.join("tls"), &names)
}

/// Loads the inventory, builds the router and TLS, binds the listener and serves until
/// the process is stopped; the background reconciler runs beside it.
pub fn run(inventory: &Path) -> Result<(), String> {
    let inv = inventory::Inventory::load(inventory).map_err(|e| e.to_string())?;
    let server_tls = server_tls(&inv.fleet).map_err(|e| format!("fleet.tls: {e}"))?;
    let keys = sigv4::KeyStore::new(
        inv.fleet
            .keys
            .iter()
            .map(|k| sigv4::Credentials {
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
    let listen = inv.fleet.listen.clone();
    let interval = inv.fleet.reconcile_interval();
    let server_config = inv.fleet.server_config();
    let region = inv.fleet.region.clone();
    let console = mgmt::console::ConsoleSettings {
        region: region.clone(),
        zones: zone_names.clone(),
        fleet: true,
    };
    let router = {
        let _guard = rt.enter();
        Arc::new(router::Router::new(inv, metrics)?)
    };
    let fleet_api = api::FleetApi {
        router: Arc::clone(&router),
        keys,
        region,
        runtime: rt.handle().clone(),
        console,
    };
    // The fleet has no kill switch (that is the appliance's fault injection).
    let never_killed = Arc::new(AtomicBool::new(false));
    let server = Server::bind(
        rt.handle(),
        &listen,
        server_config,
        Some(server_tls.config),
        Arc::new(fleet_api),
        never_killed,
    )
    .map_err(|e| format!("listen on {listen}: {e}"))?;
    let trust = match &server_tls.ca_file {
        Some(ca) => format!("generated; clients trust {}", ca.display()),
        None => "from fleet.tls".to_string(),
    };
    eprintln!(
        "flowgate-fleet: serving https://{} for zones {} (certificate SHA-256 {}, {trust})",
        server.local_addr(),
        zone_names.join(", "),
        server_tls.fingerprint,
    );
    let stopped = rt.block_on(async move {
        tokio::spawn(async move {
            loop {
                router.reconcile().await;
                tokio::time::sleep(interval).await;
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("signal handler: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), String>(())
    });
    eprintln!("flowgate-fleet: stopping");
    server.shutdown();
    stopped
}
