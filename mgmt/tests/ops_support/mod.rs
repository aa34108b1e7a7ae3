//! Shared by the flow-operation and AWS API tests: a config on a scratch state directory, an
//! operation manager over real worker rings (no data plane behind them: the tests play the
//! workers), and flow records.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::flow::FlowState;
use dataplane::packet::{ip_to_addr, Tuple, Verdict};
use dataplane::worker::cmd::{Command, ScanRequest};
use dataplane::worker::engine::WorkerRings;
use dataplane::worker::{FlowRecord, Reply};
use mgmt::clock::Clock;
use mgmt::config::Config;
use mgmt::control::{Control, WorkerLink};
use mgmt::log_queue::{LogQueue, Taken};
use mgmt::ops::OpsManager;

pub const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/fw";
pub const ZONE: &str = "zone-a";
/// Ticks per second of the test clock.
pub const TPS: u64 = 1000;
/// "Now" in ticks, as the workers report it.
pub const NOW: u64 = 10_000_000;

fn now_ticks() -> u64 {
    NOW
}

pub fn clock() -> Clock {
    Clock::new(TPS, now_ticks)
}

/// A fresh scratch directory.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fg-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A valid config whose state directory is `dir`; `operations` is the body of the
/// `[operations]` table.
pub fn config(dir: &Path, operations: &str) -> Config {
    let text = format!(
        r#"
[appliance]
firewall_name = "fw"
firewall_arn = "{ARN}"
zone = "{ZONE}"
state_dir = "{}"
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
[logging]
audit_log = "{}"
[operations]
{operations}
"#,
        dir.display(),
        dir.join("audit.log").display()
    );
    Config::from_str(&text, &dir.join("fw.toml")).unwrap()
}

/// Removes its directory when dropped.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Harness {
    pub cfg: Config,
    pub dir: Scratch,
    pub rings: Vec<Arc<WorkerRings>>,
    pub control: Arc<Control>,
    pub ops: Arc<OpsManager>,
    /// The flow-log queue the manager hands flushed flows' records to.
    pub log: Arc<LogQueue>,
}

fn ops_manager(cfg: &Config, control: &Arc<Control>) -> (Arc<OpsManager>, Arc<LogQueue>) {
    let ops = OpsManager::new(cfg, Arc::clone(control), clock()).unwrap();
    let log = Arc::new(LogQueue::new(1000, 1_000_000));
    ops.log_flushed_to(Arc::clone(&log));
    (ops, log)
}

impl Harness {
    /// `workers` workers with roomy rings.
    pub fn new(tag: &str, workers: usize, operations: &str) -> Harness {
        Self::with_rings(tag, workers, 64, operations)
    }

    pub fn with_rings(tag: &str, workers: usize, command_ring: usize, operations: &str) -> Harness {
        let dir = scratch(tag);
        let cfg = config(&dir, operations);
        let rings: Vec<Arc<WorkerRings>> = (0..workers)
            .map(|_| Arc::new(WorkerRings::new(command_ring, 4096, 64)))
            .collect();
        let links = rings
            .iter()
            .enumerate()
            .map(|(i, r)| WorkerLink {
                index: i as u16,
                lcore: i as u32 + 1,
                rings: Arc::clone(r),
            })
            .collect();
        let control = Arc::new(Control::new(links, Duration::from_secs(5)));
        let (ops, log) = ops_manager(&cfg, &control);
        Harness {
            cfg,
            dir: Scratch(dir),
            rings,
            control,
            ops,
            log,
        }
    }

    /// Simulates an appliance restart: every pending history write lands, the manager goes
    /// away without settling anything, and a new one loads the same state directory.
    pub fn restart(self) -> Harness {
        let Harness {
            cfg,
            dir,
            rings,
            control,
            ops,
            ..
        } = self;
        ops.sync_history();
        assert_eq!(
            Arc::strong_count(&ops),
            1,
            "a test still holds the old manager"
        );
        // Dropping the manager joins its history writer before the new one loads.
        drop(ops);
        let (ops, log) = ops_manager(&cfg, &control);
        Harness {
            cfg,
            dir,
            rings,
            control,
            ops,
            log,
        }
    }

    pub fn ops_dir(&self) -> PathBuf {
        self.dir.0.join("operations")
    }

    /// The next command worker `w` received, which must be a scan start.
    pub fn take_scan(&self, w: usize) -> Box<ScanRequest> {
        match self.rings[w].commands.pop() {
            Some(Command::StartScan(req)) => req,
            Some(_) => panic!("worker {w}: expected StartScan, got another command"),
            None => panic!("worker {w}: no command"),
        }
    }

    /// The `op` of a `CancelScan` worker `w` received, if any.
    pub fn take_cancel(&self, w: usize) -> Option<u64> {
        match self.rings[w].commands.pop() {
            Some(Command::CancelScan { op }) => Some(op),
            Some(_) => panic!("worker {w}: expected CancelScan"),
            None => None,
        }
    }

    pub fn flow(&self, w: usize, op: u64, record: FlowRecord) {
        self.ops.on_reply(
            w,
            Reply::ScanFlow {
                op,
                record,
                flushed: false,
            },
        );
    }

    /// A flow a flush removed: its result is also its end-of-flow record.
    pub fn flushed_flow(&self, w: usize, op: u64, record: FlowRecord) {
        self.ops.on_reply(
            w,
            Reply::ScanFlow {
                op,
                record,
                flushed: true,
            },
        );
    }

    /// The flow ids of the flushed records the manager has handed to the flow log so far
    /// (taken off the queue).
    pub fn logged_flushed(&self) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Taken::Batch { events, flushed } = self.log.take(usize::MAX, Duration::ZERO) {
            assert!(events.is_empty(), "only flushed records are queued here");
            ids.extend(flushed.iter().flat_map(|b| b.records()).map(|r| r.flow_id));
        }
        ids
    }

    pub fn done(&self, w: usize, op: u64, scanned: u64, matched: u64) {
        self.ops.on_reply(
            w,
            Reply::ScanDone {
                op,
                scanned,
                matched,
                cancelled: false,
            },
        );
    }

    pub fn cancelled(&self, w: usize, op: u64) {
        self.ops.on_reply(
            w,
            Reply::ScanDone {
                op,
                scanned: 0,
                matched: 0,
                cancelled: true,
            },
        );
    }
}

/// A TCP flow `src:sport → dst:dport` opened `age` seconds ago, seen by worker `w`.
pub fn record(src: &str, sport: u16, dst: &str, dport: u16, age: u64, w: u16) -> FlowRecord {
    FlowRecord {
        tuple: Tuple {
            proto: 6,
            src: ip_to_addr(src.parse().unwrap()),
            dst: ip_to_addr(dst.parse().unwrap()),
            src_port: sport,
            dst_port: dport,
        },
        vlan: 0,
        state: FlowState::Established,
        verdict: Verdict::Pass,
        sid: 7,
        epoch: 2,
        pkts: [10, 5],
        bytes: [1500, 700],
        tcp_flags: [0x12, 0x12],
        ttl_min: [64, 64],
        ttl_max: [64, 64],
        first_seen: NOW - age * TPS,
        last_seen: NOW,
        observed_at: NOW,
        worker: w,
        flow_id: 1000 + u64::from(sport),
    }
}

/// A flow numbered `i` (distinct source ports).
pub fn nth(i: u16, w: u16) -> FlowRecord {
    record("198.18.0.1", 40000 + i, "198.18.1.1", 80, 30, w)
}
