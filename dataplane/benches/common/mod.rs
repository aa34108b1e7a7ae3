//! Setup shared by the engine benchmarks (`engine.rs`, criterion wall-clock; `ipp.rs`,
//! instructions per packet under callgrind; `flow.rs` takes only the prefetch): the bench
//! policy, an engine, frame traces laid out like an rx ring, and a burst driver.
#![allow(dead_code)] // each bench uses its own part

use std::sync::Arc;

use dataplane::flow::{NoPrefetch, Prefetch, ShardConfig, TimeoutsSecs};
use dataplane::fragments::FragConfig;
use dataplane::gen::{Family, Generator, Kind, Size, Spec};
use dataplane::policy::{load_policy, CompiledPolicy};
use dataplane::worker::cmd::{Command, ScanRequest};
use dataplane::worker::engine::{EngineConfig, RstBuf, WorkerRings};
use dataplane::worker::{Action, Engine, RejectRst, Reply, MAX_BURST};

pub const HZ: u64 = 1_000_000_000;
pub const BURST: usize = 32;
pub const FLOWS: u32 = 1_000_000;
/// Stride of the contiguous frame trace (64-byte frames padded to a cache line).
pub const STRIDE: usize = 64;

/// The lab's web/telnet rules after `fillers` rules the bench traffic never matches.
pub fn policy(fillers: usize) -> Arc<CompiledPolicy> {
    let mut rules = String::new();
    for i in 0..fillers {
        let action = if i % 2 == 0 { "pass" } else { "drop" };
        let proto = if i % 3 == 0 { "udp" } else { "tcp" };
        rules += &format!(
            "{action} {proto} any any -> 198.19.{}.{} {} (msg:\"filler\"; sid:{};)\n",
            i / 250,
            i % 250 + 1,
            1024 + i,
            2_000_000 + i
        );
    }
    rules += "pass tcp any any -> $HOME_NET [80, 8080] (msg:\"web\"; sid:1;)\n";
    rules += "drop tcp any any -> $HOME_NET 23 (msg:\"telnet\"; sid:2;)\n";
    let dir = std::env::temp_dir().join(format!("fg-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("bench.rules"), rules).expect("write rules");
    let toml = dir.join("bench.toml");
    std::fs::write(
        &toml,
        r#"
[variables]
HOME_NET = ["198.18.0.0/15", "2001:2::/48"]
[stateless]
default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "continue"
[[stateful.rule_groups]]
name = "bench"
rules_file = "bench.rules"
"#,
    )
    .expect("write policy");
    let p = load_policy(&toml).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(CompiledPolicy::compile(&p, 1))
}

/// The appliance's prefetch (`PREFETCHT0` through `dpdk_bindings::prefetch_read`), as the
/// binary's twin in `src/lcore.rs` (dpdk-bindings cannot implement dataplane's trait).
pub struct CachePrefetch;

impl Prefetch for CachePrefetch {
    #[inline(always)]
    fn read(p: *const u8) {
        dpdk_bindings::prefetch_read(p);
    }
}

/// An engine over a `capacity`-flow table with the appliance's prefetch.
pub fn engine(policy: &Arc<CompiledPolicy>, capacity: u32) -> Engine<CachePrefetch> {
    engine_with(policy, capacity)
}

/// [`engine`] whose hints do nothing (what the prefetch buys).
pub fn engine_without_prefetch(policy: &Arc<CompiledPolicy>, capacity: u32) -> Engine<NoPrefetch> {
    engine_with(policy, capacity)
}

fn engine_with<P: Prefetch>(policy: &Arc<CompiledPolicy>, capacity: u32) -> Engine<P> {
    let hits = vec![0u64; policy.rules().len()].into_boxed_slice();
    Engine::with_prefetch(
        EngineConfig {
            worker: 0,
            shard: ShardConfig {
                capacity,
                timeouts: TimeoutsSecs::default(),
                emergency_timeouts: TimeoutsSecs::emergency_default(),
                emergency_high_pct: 95,
                emergency_low_pct: 80,
                ticks_per_sec: HZ,
                tombstone_secs: 5,
                hash_seeds: None,
            },
            vlan_zone: true,
            pass_malformed: false,
            pass_non_ip: true,
            non_ip_pass_ethertypes: vec![0x0806],
            fragments: FragConfig {
                capacity: 1024,
                timeout_ticks: 2 * HZ,
            },
            pass_untracked_when_full: false,
            expiry_slots_per_poll: 64,
            scan_budget_ns: 1_000,
            ticks_per_sec: HZ,
            tcp_liberal: false,
            reject_rst: RejectRst::Both,
            rst_rate_per_sec: 1000,
            rst_burst: 64,
        },
        Arc::clone(policy),
        hits,
    )
}

/// `packets` frames of `kind` (flow `order(k)` for packet k), contiguous at `STRIDE`.
pub struct Trace {
    pub bytes: Vec<u8>,
    pub lens: Vec<u16>,
}

impl Trace {
    pub fn new(kind: Kind, flows: u32, packets: usize, order: impl Fn(usize) -> u64) -> Trace {
        let g = Generator::new(Spec {
            flows,
            packets: u64::from(flows),
            kind,
            family: Family::V4,
            size: Size::Min,
            seed: 5,
            dst_port: 80,
        })
        .expect("spec");
        let mut bytes = vec![0u8; packets * STRIDE];
        let mut lens = Vec::with_capacity(packets);
        for (k, slot) in bytes.chunks_exact_mut(STRIDE).enumerate() {
            let f = g.frame(order(k));
            slot[..f.len()].copy_from_slice(&f);
            lens.push(f.len() as u16);
        }
        Trace { bytes, lens }
    }
}

/// A trace whose frames are `&'static` (leaked once per benchmark).
pub struct StaticTrace {
    pub frames: Vec<&'static [u8]>,
}

impl StaticTrace {
    pub fn new(
        kind: Kind,
        flows: u32,
        packets: usize,
        order: impl Fn(usize) -> u64,
    ) -> StaticTrace {
        let t = Trace::new(kind, flows, packets, order);
        let bytes: &'static [u8] = Box::leak(t.bytes.into_boxed_slice());
        let frames = t
            .lens
            .iter()
            .enumerate()
            .map(|(k, &len)| &bytes[k * STRIDE..k * STRIDE + len as usize])
            .collect();
        StaticTrace { frames }
    }
}

/// xorshift64*: the random flow order of the 1M trace.
pub fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

pub struct Run<P: Prefetch = CachePrefetch> {
    pub engine: Engine<P>,
    pub rings: WorkerRings,
    pub actions: [Action; MAX_BURST],
    pub rsts: RstBuf,
    pub now: u64,
}

impl<P: Prefetch> Run<P> {
    pub fn new(engine: Engine<P>) -> Run<P> {
        Run {
            engine,
            rings: WorkerRings::new(64, 1 << 16, 1 << 16),
            actions: [Action::Forward; MAX_BURST],
            rsts: RstBuf::new(),
            now: HZ,
        }
    }

    #[inline]
    pub fn burst(&mut self, frames: &[&[u8]]) {
        self.now += 1_000;
        self.rsts.clear();
        self.engine.process_burst(
            0,
            frames,
            self.now,
            &mut self.actions[..frames.len()],
            &mut self.rsts,
            &self.rings.events,
        );
        // Flow-end / alert events would be drained by the management thread.
        while self.rings.events.pop().is_some() {}
    }

    pub fn run_trace(&mut self, t: &StaticTrace) {
        for b in t.frames.chunks(BURST) {
            self.burst(b);
        }
    }

    /// Starts `req` and polls until the worker reports it done; returns the flows it matched.
    pub fn scan_to_end(&mut self, req: ScanRequest) -> u64 {
        assert!(self
            .rings
            .commands
            .push(Command::StartScan(Box::new(req)))
            .is_ok());
        let mut matched = 0u64;
        loop {
            self.now += 1_000;
            self.engine.poll(self.now, &self.rings);
            let mut done = false;
            while let Some(r) = self.rings.replies.pop() {
                match r {
                    Reply::ScanFlow { .. } => matched += 1,
                    Reply::ScanDone { .. } => done = true,
                    _ => {}
                }
            }
            while self.rings.events.pop().is_some() {}
            if done {
                return matched;
            }
        }
    }
}
