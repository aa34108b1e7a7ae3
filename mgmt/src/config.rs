//! The appliance's configuration file: one TOML document, validated at start with
//! errors that name the file, the key and why. Relative paths resolve against the
//! config file's directory.

use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration was refused: the file, the key path and the reason.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub appliance: Appliance,
    pub eal: Eal,
    #[serde(rename = "port_pair")]
    pub port_pairs: Vec<PortPair>,
    pub workers: Workers,
    #[serde(default)]
    pub flow_table: FlowTable,
    #[serde(default)]
    pub dataplane: Dataplane,
    pub policy: PolicyRef,
    #[serde(default)]
    pub mgmt: Mgmt,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub operations: Operations,
    #[serde(default)]
    pub debug: Debug,
    /// The file this config was read from (set by [`Config::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appliance {
    pub firewall_name: String,
    pub firewall_arn: String,
    /// The appliance's zone (AWS's AvailabilityZone): one operation at a time per zone.
    pub zone: String,
    /// The zone's id (AWS's AvailabilityZoneId, like `use1-az1`), reported beside `zone`.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// Operation history, audit log and other durable state live here.
    pub state_dir: PathBuf,
    /// The firewall's description (AWS `Description`, up to 512 characters).
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eal {
    /// EAL arguments, without the program name. `--file-prefix` is added when absent
    /// (unique per process) so two appliances never share DPDK runtime files.
    pub args: Vec<String>,
    /// Mbufs in the packet pool (per appliance).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
}

fn default_mbufs() -> u32 {
    16_383
}

/// Two ports joined as a virtual wire: what is allowed in on `a` leaves on `b` and back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortPair {
    #[serde(default)]
    pub name: String,
    /// DPDK port names: vdev names (`net_af_packet0`) or PCI addresses (`0000:01:00.0`).
    pub a: String,
    pub b: String,
    /// RX/TX queues per port; queue q of both ports is served by one worker.
    #[serde(default = "one")]
    pub queues: u16,
    #[serde(default = "default_rx_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_tx_desc")]
    pub tx_desc: u16,
    #[serde(default = "yes")]
    pub promiscuous: bool,
    /// The ports' MTU (IP packet size) in bytes, 68..=9216; mbufs are sized for the largest
    /// MTU of any pair so every frame is inspected and forwarded whole, in one segment.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

/// Largest MTU: a 9,216-byte jumbo frame payload (the common switch maximum).
pub const MAX_MTU: u16 = 9216;

fn default_mtu() -> u16 {
    1500
}

fn one() -> u16 {
    1
}
fn yes() -> bool {
    true
}
fn default_rx_desc() -> u16 {
    1024
}
fn default_tx_desc() -> u16 {
    1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workers {
    /// EAL lcore ids that run workers (each must be enabled in the EAL args, not the main lcore).
    pub lcores: Vec<u32>,
    #[serde(default = "default_burst")]
    pub burst: u16,
}

fn default_burst() -> u16 {
    32
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowTable {
    pub capacity_per_worker: u32,
    /// Whether the outer VLAN id is part of the flow key (separate zones per VLAN).
    pub vlan_zone: bool,
    pub timeouts: Timeouts,
    pub emergency_timeouts: Timeouts,
    /// Emergency mode (short timeouts) starts at this occupancy, in percent…
    pub emergency_high_pct: u8,
    /// …and ends when occupancy falls to this.
    pub emergency_low_pct: u8,
    /// What a full shard does with a new flow after emergency eviction failed.
    pub full_action: FullAction,
    /// Slab slots the idle-expiry scan examines per poll iteration.
    pub expiry_slots_per_poll: u32,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            capacity_per_worker: 1 << 20,
            vlan_zone: true,
            timeouts: Timeouts::default(),
            emergency_timeouts: Timeouts::emergency(),
            emergency_high_pct: 95,
            emergency_low_pct: 80,
            full_action: FullAction::DropNew,
            expiry_slots_per_poll: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullAction {
    /// Drop the new flow's packet; established flows keep working.
    DropNew,
    /// Forward the packet untracked (fail open for new flows; for labs only).
    PassUntracked,
}

/// Idle timeouts in seconds, per protocol and state.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub tcp_new: u32,
    pub tcp_established: u32,
    pub tcp_closed: u32,
    pub udp_new: u32,
    pub udp_established: u32,
    pub icmp_new: u32,
    pub icmp_established: u32,
    pub other_new: u32,
    pub other_established: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_new: 60,
            tcp_established: 350,
            tcp_closed: 60,
            udp_new: 30,
            udp_established: 300,
            icmp_new: 30,
            icmp_established: 300,
            other_new: 30,
            other_established: 300,
        }
    }
}

impl Timeouts {
    /// Every timeout by its config key.
    fn fields(&self) -> [(&'static str, u32); 9] {
        [
            ("tcp_new", self.tcp_new),
            ("tcp_established", self.tcp_established),
            ("tcp_closed", self.tcp_closed),
            ("udp_new", self.udp_new),
            ("udp_established", self.udp_established),
            ("icmp_new", self.icmp_new),
            ("icmp_established", self.icmp_established),
            ("other_new", self.other_new),
            ("other_established", self.other_established),
        ]
    }

    /// Suricata's emergency timeouts.
    pub fn emergency() -> Self {
        Timeouts {
            tcp_new: 5,
            tcp_established: 100,
            tcp_closed: 10,
            udp_new: 10,
            udp_established: 100,
            icmp_new: 10,
            icmp_established: 100,
            other_new: 10,
            other_established: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameAction {
    Pass,
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dataplane {
    /// Malformed or truncated IP packets.
    pub malformed_action: FrameAction,
    /// Non-IP frames whose EtherType is not in `non_ip_pass_ethertypes` (dropped by
    /// default: anything that is not IP is not inspected, so it must not pass unnamed).
    pub non_ip_action: FrameAction,
    /// EtherTypes of non-IP frames that always pass (default: ARP, so the wire works).
    pub non_ip_pass_ethertypes: Vec<u16>,
    /// Datagrams whose fragments each worker tracks at once (later fragments follow the
    /// verdict of their first fragment).
    pub fragment_table_size: u32,
    /// How long a fragmented datagram's first-fragment verdict is kept, in milliseconds.
    pub fragment_timeout_ms: u32,
    /// Forward TCP segments outside their flow's window (counted in
    /// `flowgate_tcp_invalid_total`, still without effect on the flow) instead of
    /// dropping them, like Linux's `nf_conntrack_tcp_be_liberal`.
    pub tcp_liberal: bool,
    /// Where the RSTs of a rejected midstream packet go: `both` ends, or the `sender`
    /// only (what AWS Network Firewall does).
    pub reject_rst: RejectRst,
    /// RSTs each worker may generate per second (0: unlimited) …
    pub reject_rsts_per_sec: u32,
    /// … and the burst it may bank.
    pub reject_rst_burst: u32,
    /// How long a rejected flow's tombstone keeps its later packets from drawing RSTs.
    pub reject_tombstone_secs: u32,
}

impl Default for Dataplane {
    fn default() -> Self {
        Dataplane {
            malformed_action: FrameAction::Drop,
            non_ip_action: FrameAction::Drop,
            non_ip_pass_ethertypes: vec![0x0806],
            fragment_table_size: 4096,
            fragment_timeout_ms: 2000,
            tcp_liberal: false,
            reject_rst: RejectRst::Both,
            reject_rsts_per_sec: 1000,
            reject_rst_burst: 100,
            reject_tombstone_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectRst {
    /// Back to the rejected packet's sender only.
    Sender,
    /// To the sender and onward to the receiver.
    Both,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// The policy file, relative to this config file: TOML, or AWS-shaped `.json` / `.yaml` /
    /// `.yml` (API shapes or a CloudFormation template).
    pub file: PathBuf,
    /// Rules (stateful plus stateless) a policy may have; a bigger one is refused at
    /// start and on reload. Bounds the memory and time a compile takes.
    #[serde(default = "default_max_rules")]
    pub max_rules: usize,
    /// Which source is authoritative (see `mgmt::resources`).
    #[serde(default)]
    pub source: PolicySource,
}

fn default_max_rules() -> usize {
    crate::policy_mgr::DEFAULT_MAX_RULES
}

/// Who owns the running policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// The policy file runs; the API cannot change it.
    #[default]
    File,
    /// The API owns the policy once one is associated; the file seeds it.
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// AWS Signature Version 4 against `mgmt.keys`.
    Sigv4,
    /// No authentication: labs only, must be written explicitly.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mgmt {
    /// API listener (AWS JSON 1.0, native /v1/, health, and metrics unless split).
    pub listen: String,
    /// Optional separate Prometheus listener.
    pub metrics_listen: Option<String>,
    pub auth: Option<AuthMode>,
    pub region: String,
    pub keys: Vec<AccessKey>,
    /// Connections held at once on the API listener; when full, the oldest connection that
    /// has not sent an authenticated request is evicted.
    pub max_connections: usize,
    /// Connections one client address may hold.
    pub max_connections_per_ip: usize,
    pub max_body_bytes: usize,
    /// TLS handshake and each request head.
    pub header_timeout_ms: u64,
    /// A connection that has sent no authenticated request is closed this long after accept.
    pub unauthenticated_timeout_ms: u64,
    /// TLS for the API listener; without it a certificate is generated in `state_dir/tls`.
    pub tls: Option<TlsFiles>,
    /// Serve the API over plain HTTP instead (loopback listeners only; labs and tests).
    pub plain_http: bool,
}

/// `[mgmt.tls]`: the API listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for Mgmt {
    fn default() -> Self {
        Mgmt {
            listen: "127.0.0.1:8480".into(),
            metrics_listen: None,
            auth: None,
            region: "us-east-1".into(),
            keys: Vec::new(),
            max_connections: 4096,
            max_connections_per_ip: 64,
            max_body_bytes: 1 << 20,
            header_timeout_ms: 10_000,
            unauthenticated_timeout_ms: 10_000,
            tls: None,
            plain_http: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// Flow log: a file path (relative to the config), `stdout`, or `off`.
    pub flow_log: String,
    pub alert_log: String,
    pub audit_log: String,
    /// Rotate a log file when it reaches this size.
    pub max_file_bytes: u64,
    /// Rotated files kept (`flow.log.1` … `flow.log.N`).
    pub keep_files: u32,
    /// Alert records written per second at most (excess counted as suppressed).
    pub alert_rate_limit_per_sec: u32,
    /// Traffic records (flow ends by timeout/eviction, alerts) waiting for the log writer
    /// at most: beyond it they are dropped and counted, so memory stays flat under floods.
    pub queue_records: usize,
    /// Records a flush may queue at most (~150 bytes each, only while a flush's records
    /// are being written); beyond it the flush waits for the writer, never drops. Unset:
    /// twice the flow table's capacity, capped ([`Config::flush_queue_records`]).
    pub flush_queue_records: Option<usize>,
}

/// The default flush queue's bound at most (~600 MB of queued records at worst, and only
/// while a flush's records wait): beyond it a flush runs at the log writer's pace.
pub const FLUSH_QUEUE_DEFAULT_MAX: usize = 1 << 22;

impl Default for Logging {
    fn default() -> Self {
        Logging {
            flow_log: "flow.log".into(),
            alert_log: "alert.log".into(),
            audit_log: "audit.log".into(),
            max_file_bytes: 64 << 20,
            keep_files: 4,
            alert_rate_limit_per_sec: 1000,
            queue_records: 65_536,
            flush_queue_records: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Operations {
    pub history_retention_seconds: u64,
    /// Result records kept per operation; beyond it results are partial.
    pub result_cap: usize,
    /// A worker that has not finished its scan within this time is reported missing.
    pub worker_timeout_ms: u64,
    /// Time (ns) a worker's capture/flush scan may take per loop between bursts: the
    /// share of a busy core an operation takes (an idle worker loops faster, so its scan
    /// runs faster).
    pub scan_budget_ns: u32,
}

impl Default for Operations {
    fn default() -> Self {
        Operations {
            history_retention_seconds: 12 * 3600,
            result_cap: 1_000_000,
            worker_timeout_ms: 10_000,
            scan_budget_ns: 1_000,
        }
    }
}

/// Fault injection for reliability tests; everything off by default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Debug {
    /// Enables `/v1/debug/*` fault-injection endpoints.
    pub fault_injection: bool,
}

impl Config {
    /// The longest frame any port pair carries: its MTU plus Ethernet, two VLAN tags and
    /// room for an MPLS stack or a PPPoE header (64 bytes of L2 overhead in all).
    pub fn max_frame_len(&self) -> u16 {
        self.port_pairs.iter().map(|p| p.mtu).max().unwrap_or(1500) + 64
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::from_str(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors and anchors relative paths.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            ConfigError {
                file: path.to_path_buf(),
                key: line.map(|l| format!("line {l}")).unwrap_or_default(),
                reason: e.message().to_string(),
            }
        })?;
        cfg.source = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.appliance.state_dir = resolve(base, &cfg.appliance.state_dir);
        cfg.policy.file = resolve(base, &cfg.policy.file);
        if let Some(tls) = cfg.mgmt.tls.as_mut() {
            tls.cert_file = resolve(base, &tls.cert_file);
            tls.key_file = resolve(base, &tls.key_file);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Flows the whole flow table holds (all workers).
    pub fn table_flows(&self) -> usize {
        (self.flow_table.capacity_per_worker as usize).saturating_mul(self.workers.lcores.len())
    }

    /// How many records may wait for the log writer while a flush's records are queued
    /// (see [`Logging::flush_queue_records`]). By default twice the whole flow table, up
    /// to [`FLUSH_QUEUE_DEFAULT_MAX`], plus the traffic records' own bound (they share the
    /// queue): a flush of every flow completes at scan speed even while an earlier
    /// flush's records are still being written, since the writer (two lines per flow, on
    /// the management core) is slower than a scan.
    pub fn flush_queue_records(&self) -> usize {
        self.logging.flush_queue_records.unwrap_or_else(|| {
            self.table_flows()
                .saturating_mul(2)
                .min(FLUSH_QUEUE_DEFAULT_MAX)
                .saturating_add(self.logging.queue_records)
        })
    }

    fn err(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.source.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.appliance;
        if a.firewall_name.is_empty() {
            return Err(self.err("appliance.firewall_name", "must not be empty"));
        }
        if !a.firewall_arn.starts_with("arn:aws") || a.firewall_arn.len() > 256 {
            return Err(self.err(
                "appliance.firewall_arn",
                "must start with 'arn:aws' and be at most 256 characters",
            ));
        }
        if a.zone.is_empty() {
            return Err(self.err("appliance.zone", "must not be empty"));
        }
        if self.port_pairs.is_empty() {
            return Err(self.err("port_pair", "at least one [[port_pair]] is required"));
        }
        let mut names = HashSet::new();
        for (i, p) in self.port_pairs.iter().enumerate() {
            for n in [&p.a, &p.b] {
                if n.is_empty() {
                    return Err(self.err(&format!("port_pair[{i}]"), "port name is empty"));
                }
                if !names.insert(n.clone()) {
                    return Err(self.err(
                        &format!("port_pair[{i}]"),
                        format!("port '{n}' is used twice"),
                    ));
                }
            }
            if p.queues == 0 || p.queues > 64 {
                return Err(self.err(&format!("port_pair[{i}].queues"), "must be 1..=64"));
            }
            if !(68..=MAX_MTU).contains(&p.mtu) {
                return Err(self.err(
                    &format!("port_pair[{i}].mtu"),
                    format!("must be 68..={MAX_MTU}"),
                ));
            }
        }
        if self.port_pairs.len() * 2 > dataplane::worker::MAX_PORTS {
            return Err(self.err(
                "port_pair",
                format!("at most {} port pairs", dataplane::worker::MAX_PORTS / 2),
            ));
        }
        if self.workers.lcores.is_empty() {
            return Err(self.err("workers.lcores", "at least one worker lcore is required"));
        }
        let mut seen = HashSet::new();
        for l in &self.workers.lcores {
            if !seen.insert(*l) {
                return Err(self.err("workers.lcores", format!("lcore {l} listed twice")));
            }
        }
        if self.workers.burst == 0 || self.workers.burst as usize > dataplane::worker::MAX_BURST {
            return Err(self.err(
                "workers.burst",
                format!("must be 1..={}", dataplane::worker::MAX_BURST),
            ));
        }
        let dp = &self.dataplane;
        if !(64..=(1 << 20)).contains(&dp.fragment_table_size) {
            return Err(self.err(
                "dataplane.fragment_table_size",
                "must be between 64 and 1048576",
            ));
        }
        if !(10..=60_000).contains(&dp.fragment_timeout_ms) {
            return Err(self.err(
                "dataplane.fragment_timeout_ms",
                "must be between 10 and 60000",
            ));
        }
        let ft = &self.flow_table;
        if ft.capacity_per_worker < 64 || ft.capacity_per_worker > (1 << 26) {
            return Err(self.err(
                "flow_table.capacity_per_worker",
                "must be between 64 and 67108864",
            ));
        }
        if !(ft.emergency_low_pct < ft.emergency_high_pct && ft.emergency_high_pct <= 100) {
            return Err(self.err(
                "flow_table.emergency_high_pct",
                "need emergency_low_pct < emergency_high_pct <= 100",
            ));
        }
        if !(60..=6000).contains(&ft.timeouts.tcp_established) {
            return Err(self.err(
                "flow_table.timeouts.tcp_established",
                "must be 60..=6000 seconds (AWS TcpIdleTimeoutSeconds)",
            ));
        }
        if ft.expiry_slots_per_poll == 0 {
            return Err(self.err("flow_table.expiry_slots_per_poll", "must be > 0"));
        }
        let dp = &self.dataplane;
        if !(1..=3600).contains(&dp.reject_tombstone_secs) {
            return Err(self.err(
                "dataplane.reject_tombstone_secs",
                "must be 1..=3600 seconds",
            ));
        }
        if dp.reject_rst_burst == 0 {
            return Err(self.err("dataplane.reject_rst_burst", "must be > 0"));
        }
        let m = &self.mgmt;
        let listen = m.listen.parse::<SocketAddr>().map_err(|e| {
            self.err(
                "mgmt.listen",
                format!("'{}' is not host:port: {e}", m.listen),
            )
        })?;
        if m.plain_http && !listen.ip().is_loopback() {
            return Err(self.err(
                "mgmt.plain_http",
                format!("plain HTTP is allowed on loopback listeners only, not {listen}"),
            ));
        }
        if m.plain_http && m.tls.is_some() {
            return Err(self.err("mgmt.plain_http", "cannot be set with [mgmt.tls]"));
        }
        if let Some(ml) = &m.metrics_listen {
            ml.parse::<SocketAddr>()
                .map_err(|e| self.err("mgmt.metrics_listen", format!("'{ml}': {e}")))?;
        }
        match m.auth {
            None => return Err(self.err(
                "mgmt.auth",
                "must be set explicitly: \"sigv4\" (with [[mgmt.keys]]) or \"none\" (labs only)",
            )),
            Some(AuthMode::Sigv4) if m.keys.is_empty() => {
                return Err(self.err("mgmt.keys", "auth = \"sigv4\" needs at least one key"))
            }
            _ => {}
        }
        for (i, k) in m.keys.iter().enumerate() {
            if k.access_key_id.len() < 4 || k.secret_access_key.len() < 8 {
                return Err(self.err(
                    &format!("mgmt.keys[{i}]"),
                    "access_key_id (≥4 chars) and secret_access_key (≥8 chars) required",
                ));
            }
        }
        if m.max_connections == 0 || m.max_connections_per_ip == 0 || m.max_body_bytes < 1024 {
            return Err(self.err(
                "mgmt",
                "max_connections and max_connections_per_ip must be > 0 and max_body_bytes >= 1024",
            ));
        }
        if m.header_timeout_ms < 100 || m.unauthenticated_timeout_ms < 100 {
            return Err(self.err(
                "mgmt",
                "header_timeout_ms and unauthenticated_timeout_ms must be >= 100",
            ));
        }
        let o = &self.operations;
        if o.result_cap == 0 || o.worker_timeout_ms == 0 || o.scan_budget_ns == 0 {
            return Err(self.err(
                "operations",
                "result_cap, worker_timeout_ms and scan_budget_ns must be > 0",
            ));
        }
        self.validate_operable()
    }

    /// What parses but would leave the appliance unable to start, to forward, or to be
    /// managed: zero timeouts and sizes, colliding listeners, ambiguous keys.
    fn validate_operable(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.appliance.zone_id {
            if !is_zone_id(id) {
                return Err(self.err(
                    "appliance.zone_id",
                    format!("'{id}' is not an availability zone id (like 'use1-az1')"),
                ));
            }
        }
        if self.eal.mbufs < 1023 {
            return Err(self.err("eal.mbufs", "must be at least 1023"));
        }
        for (key, t) in [
            ("flow_table.timeouts", &self.flow_table.timeouts),
            (
                "flow_table.emergency_timeouts",
                &self.flow_table.emergency_timeouts,
            ),
        ] {
            if let Some((name, _)) = t.fields().into_iter().find(|(_, v)| *v == 0) {
                return Err(self.err(
                    &format!("{key}.{name}"),
                    "must be > 0 seconds (0 would expire every flow at once)",
                ));
            }
        }
        let m = &self.mgmt;
        if m.metrics_listen.as_deref() == Some(m.listen.as_str()) {
            return Err(self.err(
                "mgmt.metrics_listen",
                "must differ from mgmt.listen (both listeners cannot bind one address)",
            ));
        }
        if m.region.is_empty() {
            return Err(self.err("mgmt.region", "must not be empty (SigV4 signs it)"));
        }
        let mut ids = HashSet::new();
        for (i, k) in m.keys.iter().enumerate() {
            if !ids.insert(&k.access_key_id) {
                return Err(self.err(
                    &format!("mgmt.keys[{i}]"),
                    format!("access_key_id '{}' is listed twice", k.access_key_id),
                ));
            }
        }
        let l = &self.logging;
        if l.max_file_bytes < 4096 {
            return Err(self.err("logging.max_file_bytes", "must be at least 4096"));
        }
        if l.queue_records == 0 || l.flush_queue_records == Some(0) {
            return Err(self.err(
                "logging",
                "queue_records and flush_queue_records must be > 0",
            ));
        }
        if self.operations.history_retention_seconds == 0 {
            return Err(self.err(
                "operations.history_retention_seconds",
                "must be > 0 (0 purges every operation before its results can be read)",
            ));
        }
        if self.policy.max_rules == 0 {
            return Err(self.err("policy.max_rules", "must be > 0"));
        }
        Ok(())
    }

    /// The checks on the file system that start-up makes before it touches DPDK: the
    /// state directory can be created and the log files' directories exist. `--check`
    /// runs them too; it creates nothing.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        let state = &self.appliance.state_dir;
        if state.exists() && !state.is_dir() {
            return Err(self.err(
                "appliance.state_dir",
                format!("{} exists and is not a directory", state.display()),
            ));
        }
        if !creatable_dir(state) {
            return Err(self.err(
                "appliance.state_dir",
                format!("{} cannot be created", state.display()),
            ));
        }
        let l = &self.logging;
        for (key, v) in [
            ("logging.flow_log", &l.flow_log),
            ("logging.alert_log", &l.alert_log),
            ("logging.audit_log", &l.audit_log),
        ] {
            if let Some(LogTarget::File(f)) = self.log_target(v) {
                // The log writers create missing directories.
                if f.is_dir() || !f.parent().is_none_or(creatable_dir) {
                    return Err(self.err(
                        key,
                        format!("{} cannot be opened as a log file", f.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// EAL argv (program name first) with a unique `--file-prefix` unless one is given.
    pub fn eal_argv(&self) -> Vec<String> {
        let mut argv = vec!["flowgate".to_string()];
        argv.extend(self.eal.args.iter().cloned());
        if !self.eal.args.iter().any(|a| a.starts_with("--file-prefix")) {
            argv.push(format!("--file-prefix={}", generated_file_prefix()));
        }
        argv
    }

    /// A log destination resolved against the config's directory (`None` = off).
    pub fn log_target(&self, v: &str) -> Option<LogTarget> {
        match v {
            "off" | "" => None,
            "stdout" => Some(LogTarget::Stdout),
            p => Some(LogTarget::File(resolve(
                self.source.parent().unwrap_or(Path::new(".")),
                Path::new(p),
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
}

/// Whether `dir` is a directory or can be made one: its nearest existing ancestor is a
/// directory.
fn creatable_dir(dir: &Path) -> bool {
    dir.ancestors()
        .find(|a| a.as_os_str().is_empty() || a.exists())
        .is_some_and(|a| a.as_os_str().is_empty() || a.is_dir())
}

/// An AWS availability zone id: a region code, `-az`, and a number (`use1-az1`).
fn is_zone_id(s: &str) -> bool {
    s.split_once("-az").is_some_and(|(region, n)| {
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
    }) && s.len() <= 128
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The EAL `--file-prefix` this process uses unless the config gives one: unique per
/// process, so appliances on one host never share DPDK runtime state.
pub fn generated_file_prefix() -> String {
    format!("flowgate-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[appliance]
firewall_name = "fw"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fw"
zone = "zone-a"
state_dir = "state"
[eal]
args = ["--no-huge"]
[[port_pair]]
a = "net_null0"
b = "net_null1"
[workers]
lcores = [1]
[policy]
file = "p.toml"
[mgmt]
auth = "none"
"#;

    #[test]
    fn minimal_config_loads_with_defaults_and_resolved_paths() {
        let c = Config::from_str(MINIMAL, Path::new("/etc/fg/fw.toml")).unwrap();
        assert_eq!(c.appliance.state_dir, Path::new("/etc/fg/state"));
        assert_eq!(c.policy.file, Path::new("/etc/fg/p.toml"));
        assert_eq!(c.flow_table.timeouts.tcp_established, 350);
        assert_eq!(c.mgmt.listen, "127.0.0.1:8480");
        assert!(c.eal_argv().iter().any(|a| a.starts_with("--file-prefix=")));
        assert_eq!(
            c.log_target(&c.logging.flow_log),
            Some(LogTarget::File("/etc/fg/flow.log".into()))
        );
    }

    #[test]
    fn flush_queue_defaults_to_twice_the_flow_table() {
        let c = Config::from_str(
            &MINIMAL.replace("lcores = [1]", "lcores = [1, 2]"),
            Path::new("fw.toml"),
        )
        .unwrap();
        assert_eq!(c.flush_queue_records(), 2 * 2 * (1 << 20) + 65_536);
        let c = Config::from_str(
            &format!("{MINIMAL}\n[flow_table]\ncapacity_per_worker = 67108864\n"),
            Path::new("fw.toml"),
        )
        .unwrap();
        assert_eq!(c.flush_queue_records(), FLUSH_QUEUE_DEFAULT_MAX + 65_536);
        let c = Config::from_str(
            &format!("{MINIMAL}\n[logging]\nflush_queue_records = 5000\n"),
            Path::new("fw.toml"),
        )
        .unwrap();
        assert_eq!(c.flush_queue_records(), 5000);
    }

    fn err_of(text: &str) -> String {
        Config::from_str(text, Path::new("fw.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = err_of(&MINIMAL.replace("auth = \"none\"", ""));
        assert!(
            e.starts_with("fw.toml: mgmt.auth: must be set explicitly"),
            "{e}"
        );
        let e = err_of(&MINIMAL.replace("lcores = [1]", "lcores = [1, 1]"));
        assert_eq!(e, "fw.toml: workers.lcores: lcore 1 listed twice");
        let e = err_of(&MINIMAL.replace("net_null1", "net_null0"));
        assert_eq!(e, "fw.toml: port_pair[0]: port 'net_null0' is used twice");
        let e = err_of(&MINIMAL.replace("[mgmt]", "[mgmt]\nlisten = \"nowhere\""));
        assert!(e.contains("mgmt.listen: 'nowhere' is not host:port"), "{e}");
        let e = err_of(&format!(
            "{MINIMAL}\n[flow_table.timeouts]\ntcp_established = 10\n"
        ));
        assert!(e.contains("tcp_established: must be 60..=6000"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_line() {
        let e = err_of(&MINIMAL.replace("[workers]", "[workers]\nburts = 32"));
        assert!(
            e.contains("line") && e.contains("unknown field `burts`"),
            "{e}"
        );
    }

    #[test]
    fn configs_that_leave_the_appliance_unusable_are_refused() {
        let cases = [
            (
                "[mgmt]",
                "[mgmt]\nheader_timeout_ms = 0",
                "header_timeout_ms and unauthenticated_timeout_ms must be >= 100",
            ),
            (
                "[mgmt]",
                "[mgmt]\nmetrics_listen = \"127.0.0.1:8480\"",
                "mgmt.metrics_listen: must differ",
            ),
            (
                "[mgmt]",
                "[mgmt]\nregion = \"\"",
                "mgmt.region: must not be empty",
            ),
            (
                "[mgmt]",
                "[mgmt]\nmax_connections = 0",
                "max_connections and max_connections_per_ip must be > 0",
            ),
            (
                "args = [",
                "mbufs = 10\nargs = [",
                "eal.mbufs: must be at least 1023",
            ),
            (
                "[policy]",
                "[policy]\nmax_rules = 0",
                "policy.max_rules: must be > 0",
            ),
            (
                "zone = \"zone-a\"",
                "zone = \"zone-a\"\nzone_id = \"../x\"",
                "appliance.zone_id",
            ),
        ];
        for (from, to, want) in cases {
            let e = err_of(&MINIMAL.replace(from, to));
            assert!(e.contains(want), "{to}: {e}");
        }
        let appended = [
            (
                "[flow_table.timeouts]\ntcp_new = 0",
                "flow_table.timeouts.tcp_new: must be > 0",
            ),
            (
                "[flow_table.timeouts]\nudp_established = 0",
                "timeouts.udp_established",
            ),
            (
                "[flow_table.emergency_timeouts]\nicmp_new = 0",
                "emergency_timeouts.icmp_new",
            ),
            ("[logging]\nmax_file_bytes = 0", "logging.max_file_bytes"),
            ("[logging]\nqueue_records = 0", "queue_records"),
            ("[logging]\nflush_queue_records = 0", "flush_queue_records"),
            (
                "[operations]\nhistory_retention_seconds = 0",
                "history_retention_seconds",
            ),
            ("[operations]\nworker_timeout_ms = 0", "worker_timeout_ms"),
            (
                "[[mgmt.keys]]\naccess_key_id = \"AKIA1\"\nsecret_access_key = \"12345678\"\n\
                 [[mgmt.keys]]\naccess_key_id = \"AKIA1\"\nsecret_access_key = \"abcdefgh\"",
                "listed twice",
            ),
        ];
        for (extra, want) in appended {
            let e = err_of(&format!("{MINIMAL}\n{extra}\n"));
            assert!(e.contains(want), "{extra}: {e}");
        }
        let c = Config::from_str(
            &MINIMAL.replace(
                "zone = \"zone-a\"",
                "zone = \"zone-a\"\nzone_id = \"use1-az4\"",
            ),
            Path::new("fw.toml"),
        )
        .unwrap();
        assert_eq!(c.appliance.zone_id.as_deref(), Some("use1-az4"));
    }

    #[test]
    fn paths_start_up_cannot_use_are_refused() {
        let dir = std::env::temp_dir().join(format!("fg-cfg-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let at = dir.join("fw.toml");
        let ok = Config::from_str(MINIMAL, &at).unwrap();
        ok.check_paths().unwrap();
        std::fs::write(dir.join("state"), "a file").unwrap();
        let e = ok.check_paths().unwrap_err().to_string();
        assert!(
            e.contains("appliance.state_dir") && e.contains("not a directory"),
            "{e}"
        );
        let bad_log = Config::from_str(
            &MINIMAL.replace(
                "state_dir = \"state\"",
                "state_dir = \"st\"\n[logging]\naudit_log = \"state/sub/audit.log\"",
            ),
            &at,
        )
        .unwrap();
        let e = bad_log.check_paths().unwrap_err().to_string();
        assert!(e.contains("logging.audit_log"), "{e}");
        std::fs::remove_file(dir.join("state")).unwrap();
        bad_log.check_paths().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
