//! The management application's state: the configuration, the worker control plane, the
//! policy manager, the operation manager, the log sinks and the audit trail. It receives
//! everything the workers send (it is the collector's [`Sink`]); [`crate::router`] answers
//! HTTP with it, [`crate::metrics`] and [`crate::stats`] report on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use dataplane::worker::{Event, Reply};

use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::console::ConsoleSettings;
use crate::control::{Control, Sink};
use crate::log_sink::LogSinks;
use crate::ops::OpsManager;
use crate::policy_mgr::PolicyManager;
use crate::resources::{PolicyHost, ResourceManager};
use sigv4::KeyStore;

/// Port names by the workers' port index (`pair * 2 + side`).
pub type PortNames = Vec<String>;

/// DPDK-level port statistics, provided by the binary (the mgmt crate has no FFI):
/// `[ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf]` per port.
pub type PortStats = Box<dyn Fn() -> Vec<(String, [u64; 8])> + Send + Sync>;
/// Mbufs in use and the pool's capacity.
pub type MempoolStats = Box<dyn Fn() -> (u32, u32) + Send + Sync>;

pub struct App {
    pub cfg: Config,
    pub control: Arc<Control>,
    pub policy: PolicyManager,
    pub ops: Arc<OpsManager>,
    /// The AWS resources (firewall, policies, rule groups, logging, tags).
    pub resources: ResourceManager,
    pub clock: Clock,
    pub audit: Audit,
    pub(crate) ports: PortNames,
    pub(crate) keys: KeyStore,
    pub(crate) logs: LogSinks,
    pub(crate) started: Instant,
    pub(crate) port_stats: PortStats,
    pub(crate) mempool: MempoolStats,
    /// What the web console's unauthenticated `config.json` tells the page.
    pub(crate) console: ConsoleSettings,
}

pub struct AppParts {
    pub cfg: Config,
    pub control: Arc<Control>,
    pub policy: PolicyManager,
    pub resources: ResourceManager,
    pub clock: Clock,
    pub ports: PortNames,
    pub port_stats: PortStats,
    pub mempool: MempoolStats,
}

impl App {
    pub fn new(p: AppParts) -> Result<Arc<App>, String> {
        let cfg = p.cfg;
        let logs = LogSinks::open(&cfg)?;
        let ops = OpsManager::new(&cfg, Arc::clone(&p.control), p.clock)?;
        // A flushed flow's result is its end-of-flow record: the operation manager hands
        // the flush's result batches to the flow log as they are made.
        ops.log_flushed_to(Arc::clone(&logs.queue));
        let audit = Audit::open(
            cfg.log_target(&cfg.logging.audit_log),
            cfg.logging.max_file_bytes,
            cfg.logging.keep_files,
        )
        .map_err(|e| format!("cannot open audit log: {e}"))?;
        Ok(Arc::new(App {
            control: p.control,
            policy: p.policy,
            ops,
            resources: p.resources,
            clock: p.clock,
            audit,
            ports: p.ports,
            keys: crate::auth::key_store(&cfg),
            logs,
            started: Instant::now(),
            port_stats: p.port_stats,
            mempool: p.mempool,
            console: ConsoleSettings {
                region: cfg.mgmt.region.clone(),
                zones: vec![cfg.appliance.zone.clone()],
                fleet: false,
            },
            cfg,
        }))
    }

    /// Re-reads the policy files (API, CLI and SIGHUP).
    pub fn reload_policy(&self, caller: &str, source: Option<SocketAddr>) -> Result<Value, String> {
        let res = self.policy.reload(&self.control);
        self.resources.after_reload(res.is_ok());
        let src = source.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        match &res {
            Ok(p) => {
                self.audit.record(
                    caller,
                    src,
                    "ReloadPolicy",
                    None,
                    "ok",
                    None,
                    Some(&p.summary()),
                );
                eprintln!("flowgate: policy reloaded: {}", p.summary());
            }
            Err(e) => {
                self.audit.record(
                    caller,
                    src,
                    "ReloadPolicy",
                    None,
                    "failed",
                    Some("InvalidPolicy"),
                    Some(e),
                );
                eprintln!("flowgate: policy reload refused, running policy kept: {e}");
            }
        }
        res.map(|p| {
            json!({
                "epoch": p.epoch(),
                "rules": p.rules().len(),
                "summary": p.summary(),
                "file": self.policy.path().display().to_string(),
            })
        })
    }

    /// `Err(why)` while a worker is stalled or has not reported yet.
    pub fn ready(&self) -> Result<(), String> {
        let stalled = self.control.stalled_workers();
        if !stalled.is_empty() {
            return Err(format!("workers not making progress: {stalled:?}"));
        }
        let views = self.control.views();
        if let Some(w) = views.iter().position(|v| !v.seen) {
            return Err(format!("worker {w} has not reported yet"));
        }
        Ok(())
    }

    /// Starts the thread that writes the flow and alert logs from the queue the collector
    /// fills.
    pub fn spawn_log_writer(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("fg-logs".into())
            .spawn(move || {
                crate::background::enter();
                me.logs.run_writer(&me.policy, &me.clock);
            })
    }

    /// Shutdown, after the collector's last drain: writes what is queued, stops the log
    /// writer, writes the audit log's pending refusal tallies.
    pub fn close_logs(&self, writer: std::thread::JoinHandle<()>) {
        self.ops.hand_off_pending();
        self.logs.close(writer);
        self.audit.flush();
    }
}

/// The resource actions switch the running policy through the same path as a reload.
impl PolicyHost for App {
    fn apply_policy_file(&self, path: &std::path::Path, caller: &str) -> Result<(), String> {
        self.policy.set_path(path);
        self.reload_policy(caller, None).map(|_| ())
    }
}

impl Sink for App {
    fn on_reply(&self, worker: usize, reply: Reply) {
        match reply {
            Reply::PolicySwapped { old, old_hits, .. } => {
                self.policy.on_swapped(worker, old, old_hits)
            }
            Reply::RuleHits { epoch, hits } => self.policy.on_rule_hits(worker, epoch, hits),
            r @ (Reply::ScanFlow { .. } | Reply::ScanDone { .. }) => self.ops.on_reply(worker, r),
        }
    }

    /// A scan's replies in bulk, to the operation manager under one lock (it hands the
    /// flushed flows' records on to the flow log).
    fn on_replies(&self, worker: usize, replies: &mut Vec<Reply>) {
        // The rare other replies first (as before), then the scan's, straight from the
        // batch without another copy.
        let others = replies.extract_if(.., |r| {
            !matches!(r, Reply::ScanFlow { .. } | Reply::ScanDone { .. })
        });
        for other in others {
            self.on_reply(worker, other);
        }
        self.ops.on_replies(worker, &mut replies.drain(..));
    }

    fn on_events(&self, _worker: usize, events: &mut dyn Iterator<Item = Event>) {
        self.logs.queue.extend(events);
    }

    /// A flushed flow's end record is taken only when the log queue has room for it:
    /// flushed records are never dropped, the flush waits for the log writer instead.
    fn accepts(&self, reply: &Reply) -> bool {
        !matches!(reply, Reply::ScanFlow { flushed: true, .. })
            || self.logs.queue.has_room_for_flushed()
    }

    fn tick(&self) {
        self.ops.tick();
        self.audit.tick();
        self.policy.request_rule_hits(&self.control);
    }
}
