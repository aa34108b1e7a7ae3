//! The fleet's inventory: one TOML file naming the firewall the fleet presents, the fleet's
//! own listener, TLS and access keys, and one `[[zone]]` per appliance (zone name and id,
//! the appliance's API URL, the CA that signed its certificate, the credentials to call it).
//! Validated at start with errors that name the file, the key and why; relative paths
//! resolve against the inventory's directory.

use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an inventory was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct InventoryError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub fleet: Fleet,
    #[serde(rename = "zone")]
    pub zones: Vec<Zone>,
    /// The file this inventory was read from (set by [`Inventory::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// The firewall the fleet presents and how the fleet itself is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub firewall_name: String,
    pub firewall_arn: String,
    /// `HTTPS` listener address (`host:port`).
    pub listen: String,
    /// The SigV4 region clients sign for.
    pub region: String,
    /// Desired policy journal, per-zone sync state and the self-signed certificate live here.
    pub state_dir: PathBuf,
    #[serde(default)]
    pub tls: Tls,
    /// Access keys allowed to call the fleet (its own; the appliances' keys stay in `[[zone]]`).
    pub keys: Vec<Key>,
    /// Deadline for one call to an appliance.
    #[serde(default = "default_upstream_timeout_ms")]
    pub upstream_timeout_ms: u64,
    /// How often the background reconciler probes zones and applies pending policy changes.
    #[serde(default = "default_reconcile_interval_ms")]
    pub reconcile_interval_ms: u64,
    /// Client connections held at once; when full, the oldest unauthenticated connection
    /// of the address holding the most is evicted (the appliance's listener rules).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// TLS handshake and each request head.
    #[serde(default = "default_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A connection that has sent no signed request is closed this long after accept.
    #[serde(default = "default_timeout_ms")]
    pub unauthenticated_timeout_ms: u64,
}

fn default_upstream_timeout_ms() -> u64 {
    15_000
}
fn default_reconcile_interval_ms() -> u64 {
    2_000
}
fn default_max_connections() -> usize {
    256
}
fn default_max_connections_per_ip() -> usize {
    64
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_max_body_bytes() -> usize {
    1 << 20
}

/// The fleet listener's certificate: configured files, or (both absent) a self-signed
/// certificate generated at first start and kept in `state_dir`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Extra subject names for the self-signed certificate (`localhost` and the listen
    /// address are always included).
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.access_key_id)
    }
}

/// One appliance: one Availability Zone of the firewall.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// `AvailabilityZone` (the appliance's own `appliance.zone`).
    pub name: String,
    /// `AvailabilityZoneId`, e.g. `use1-az1`.
    pub id: String,
    /// The appliance's API base URL, `https://host:port` (plain `http://` only on loopback).
    pub api: String,
    /// PEM file of the CA that signed the appliance's certificate (its self-signed
    /// certificate when it made its own). Absent: the system's roots.
    pub ca_file: Option<PathBuf>,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The region the appliance verifies signatures for (default: the fleet's).
    pub region: Option<String>,
    /// The appliance's `firewall_arn` when it differs from the fleet's.
    pub firewall_arn: Option<String>,
    /// The subnet and endpoint ids `DescribeFirewall` reports for this zone.
    pub subnet_id: Option<String>,
    pub endpoint_id: Option<String>,
}

impl Zone {
    pub fn firewall_arn<'a>(&'a self, fleet: &'a Fleet) -> &'a str {
        self.firewall_arn.as_deref().unwrap_or(&fleet.firewall_arn)
    }
    pub fn region<'a>(&'a self, fleet: &'a Fleet) -> &'a str {
        self.region.as_deref().unwrap_or(&fleet.region)
    }
    pub fn subnet_id(&self) -> String {
        self.subnet_id
            .clone()
            .unwrap_or_else(|| format!("subnet-{}", self.id))
    }
    pub fn endpoint_id(&self) -> String {
        self.endpoint_id
            .clone()
            .unwrap_or_else(|| format!("vpce-{}", self.id))
    }
}

impl Fleet {
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms)
    }
    /// The listener's limits: the appliance's defaults with the inventory's settings.
    pub fn server_config(&self) -> api_server::ServerConfig {
        api_server::ServerConfig {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_body_bytes: self.max_body_bytes,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            unauthenticated_timeout: Duration::from_millis(self.unauthenticated_timeout_ms),
            ..api_server::ServerConfig::default()
        }
    }
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let err = |key: &str, reason: String| InventoryError {
            file: path.display().to_string(),
            key: key.to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("", e.to_string()))?;
        let mut inv: Inventory = toml::from_str(&text).map_err(|e| err("", e.to_string()))?;
        inv.source = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut inv.fleet.state_dir);
        for p in [&mut inv.fleet.tls.cert_file, &mut inv.fleet.tls.key_file]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
        for z in &mut inv.zones {
            if let Some(p) = z.ca_file.as_mut() {
                resolve(p);
            }
        }
        inv.validate().map_err(|(k, r)| err(&k, r))?;
        Ok(inv)
    }

    /// Checks what serde cannot: the returned pair is (key, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let f = &self.fleet;
        let bad = |k: &str, r: &str| Err((k.to_string(), r.to_string()));
        if !f.firewall_arn.starts_with("arn:aws") || f.firewall_arn.len() > 256 {
            return bad(
                "fleet.firewall_arn",
                "must start with 'arn:aws' (at most 256 characters)",
            );
        }
        if f.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("fleet.listen", "must be an address like 0.0.0.0:8600");
        }
        if f.keys.is_empty() {
            return bad(
                "fleet.keys",
                "at least one access key is required (the fleet always verifies SigV4)",
            );
        }
        if f.tls.cert_file.is_some() != f.tls.key_file.is_some() {
            return bad(
                "fleet.tls",
                "give both cert_file and key_file, or neither (self-signed)",
            );
        }
        if f.upstream_timeout_ms == 0 || f.reconcile_interval_ms == 0 {
            return bad(
                "fleet",
                "upstream_timeout_ms and reconcile_interval_ms must be > 0",
            );
        }
        if f.max_connections == 0 || f.max_connections_per_ip == 0 || f.max_body_bytes < 1024 {
            return bad(
                "fleet",
                "max_connections and max_connections_per_ip must be > 0 and max_body_bytes at least 1024",
            );
        }
        if f.header_timeout_ms < 100 || f.unauthenticated_timeout_ms < 100 {
            return bad(
                "fleet",
                "header_timeout_ms and unauthenticated_timeout_ms must be >= 100",
            );
        }
        if self.zones.is_empty() {
            return bad("zone", "at least one [[zone]] is required");
        }
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let key = |m: &str| format!("zone[{i}].{m}");
            if z.name.is_empty() || !names.insert(z.name.as_str()) {
                return Err((key("name"), format!("'{}' is empty or repeated", z.name)));
            }
            if z.id.is_empty() || !ids.insert(z.id.as_str()) {
                return Err((key("id"), format!("'{}' is empty or repeated", z.id)));
            }
            let url = reqwest::Url::parse(&z.api)
                .map_err(|e| (key("api"), format!("'{}' is not a URL: {e}", z.api)))?;
            match url.scheme() {
                "https" => {}
                "http" if is_loopback(&url) => {}
                "http" => {
                    return Err((
                        key("api"),
                        "plain http is allowed on loopback only: use https".into(),
                    ))
                }
                s => return Err((key("api"), format!("unsupported scheme '{s}'"))),
            }
            if let Some(ca) = &z.ca_file {
                if !ca.is_file() {
                    return Err((key("ca_file"), format!("{} does not exist", ca.display())));
                }
            }
            if z.access_key_id.is_empty() || z.secret_access_key.is_empty() {
                return Err((key("access_key_id"), "credentials must not be empty".into()));
            }
        }
        Ok(())
    }

    /// The zone named `name` by `AvailabilityZone`, or by `AvailabilityZoneId`.
    pub fn zone_by_name(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.name == name)
    }
    pub fn zone_by_id(&self, id: &str) -> Option<usize> {
        self.zones.iter().position(|z| z.id == id)
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[fleet]
firewall_name = "fw"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fw"
listen = "127.0.0.1:8600"
region = "us-east-1"
state_dir = "state"
[[fleet.keys]]
access_key_id = "AKIAFLEET"
secret_access_key = "s"
[[zone]]
name = "a"
id = "use1-az1"
api = "http://127.0.0.1:8480"
access_key_id = "AKIAA"
secret_access_key = "sa"
[[zone]]
name = "b"
id = "use1-az2"
api = "https://10.0.0.2:8480"
access_key_id = "AKIAB"
secret_access_key = "sb"
"#;

    fn load(text: &str) -> Result<Inventory, InventoryError> {
        let dir = std::env::temp_dir().join(format!("fleet-inv-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("fleet.toml");
        std::fs::write(&p, text).unwrap();
        let r = Inventory::load(&p);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn good_inventory_loads_and_resolves_paths() {
        let inv = load(GOOD).unwrap();
        assert_eq!(inv.zones.len(), 2);
        assert!(inv.fleet.state_dir.is_absolute());
        assert_eq!(inv.zone_by_id("use1-az2"), Some(1));
        assert_eq!(inv.zone_by_name("c"), None);
    }

    #[test]
    fn bad_inventories_name_the_key() {
        let cases = [
            (GOOD.replace("name = \"b\"", "name = \"a\""), "zone[1].name"),
            (GOOD.replace("use1-az2", "use1-az1"), "zone[1].id"),
            (
                GOOD.replace("https://10.0.0.2", "http://10.0.0.2"),
                "zone[1].api",
            ),
            (
                GOOD.replace("listen = \"127.0.0.1:8600\"", "listen = \"x\""),
                "fleet.listen",
            ),
            (
                GOOD.replace("arn:aws:network", "nope:network"),
                "fleet.firewall_arn",
            ),
            (GOOD.replace("AKIAB", ""), "zone[1].access_key_id"),
        ];
        for (text, key) in cases {
            let e = load(&text).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        assert!(load(&GOOD.replace("[[zone]]", "[[zones]]")).is_err());
    }
}
