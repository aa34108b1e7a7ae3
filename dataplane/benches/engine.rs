//! The whole burst engine (`Engine::process_burst`: parse, stateless, key, hash, lookup,
//! update, verdict) on 64-byte frames already in memory, in bursts of 32 (SPEC §10:
//! ≥ 10 Mpps = ≤ 100 ns per packet with 1,000,000 flows; ≥ 2 M new flows/s with 1,000
//! rules; capture of 1,000,000 flows well under a second).
//!
//! * `process_burst/1_flow`: every packet hits the same flow (the cache-hot ceiling).
//! * `process_burst/1M_flows`: a 1,000,000-flow table warmed (with the real prefetch of
//!   `dpdk_bindings::prefetch_read`; `1M_flows_no_prefetch`: the default no-op hook); the trace is 1,048,576
//!   frames of random flows laid out contiguously (like an rx ring), so each packet's
//!   table accesses are cold and its frame read is sequential.
//! * `new_flows/1000_rules`: TCP SYNs of distinct flows against ~1,000 stateful rules
//!   (none matching until the last), each creating a flow in a fresh 1M-entry table.
//! * `capture_scan/1M_flows`: a capture matching every flow of a 1,000,000-flow table,
//!   driven by `Engine::poll` slices as the worker does between bursts, results drained
//!   like the management thread does; throughput in flows scanned.
//!
//! Time per iteration / 32 = ns per packet. Run: `cargo bench -p dataplane --bench engine`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow::{ShardConfig, TimeoutsSecs};
use dataplane::gen::{Family, Generator, Kind, Size, Spec};
use dataplane::ops::{Cidr, FlowFilter, FlowMatch};
use dataplane::policy::{load_policy, CompiledPolicy};
use dataplane::worker::cmd::{Command, ScanKind, ScanRequest};
use dataplane::worker::engine::{EngineConfig, RstBuf, WorkerRings};
use dataplane::worker::{Action, Engine, RejectRst, Reply, MAX_BURST};

const HZ: u64 = 1_000_000_000;
const BURST: usize = 32;
const FLOWS: u32 = 1_000_000;
/// Stride of the contiguous frame trace (64-byte frames padded to a cache line).
const STRIDE: usize = 64;

/// The lab's web/telnet rules after `fillers` rules the bench traffic never matches.
fn policy(fillers: usize) -> Arc<CompiledPolicy> {
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

fn engine(policy: &Arc<CompiledPolicy>, capacity: u32) -> Engine {
    let hits = vec![0u64; policy.rules().len()].into_boxed_slice();
    Engine::new(
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
            pass_untracked_when_full: false,
            expiry_slots_per_poll: 64,
            scan_slots_per_poll: 4096,
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
struct Trace {
    bytes: Vec<u8>,
    lens: Vec<u16>,
}

impl Trace {
    fn new(kind: Kind, flows: u32, packets: usize, order: impl Fn(usize) -> u64) -> Trace {
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
struct StaticTrace {
    frames: Vec<&'static [u8]>,
}

impl StaticTrace {
    fn new(kind: Kind, flows: u32, packets: usize, order: impl Fn(usize) -> u64) -> StaticTrace {
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
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

struct Run {
    engine: Engine,
    rings: WorkerRings,
    actions: [Action; MAX_BURST],
    rsts: RstBuf,
    now: u64,
}

impl Run {
    fn new(engine: Engine) -> Run {
        Run {
            engine,
            rings: WorkerRings::new(64, 1 << 16, 1 << 16),
            actions: [Action::Forward; MAX_BURST],
            rsts: RstBuf::new(),
            now: HZ,
        }
    }

    #[inline]
    fn burst(&mut self, frames: &[&[u8]]) {
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

    fn run_trace(&mut self, t: &StaticTrace) {
        for b in t.frames.chunks(BURST) {
            self.burst(b);
        }
    }
}

fn bench_engine(c: &mut Criterion) {
    let lab = policy(0);
    let mut g = c.benchmark_group("process_burst");
    g.throughput(Throughput::Elements(BURST as u64));

    let one = StaticTrace::new(Kind::Established, 1, BURST, |_| 0);
    let mut run = Run::new(engine(&lab, 65_536));
    run.engine.set_prefetcher(dpdk_bindings::prefetch_read);
    run.run_trace(&one);
    g.bench_function("1_flow", |b| b.iter(|| run.burst(black_box(&one.frames))));

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let order: Vec<u64> = (0..1 << 20)
        .map(|_| rng(&mut state) % u64::from(FLOWS))
        .collect();
    let warm = StaticTrace::new(Kind::Established, FLOWS, FLOWS as usize, |k| k as u64);
    let trace = StaticTrace::new(Kind::Established, FLOWS, 1 << 20, |k| order[k]);
    let mut run = Run::new(engine(&lab, FLOWS + FLOWS / 8));
    run.run_trace(&warm);
    assert_eq!(run.engine.shard().len(), FLOWS, "table not warmed");
    let bursts: Vec<&[&[u8]]> = trace.frames.chunks(BURST).collect();
    let mut next = 0usize;
    g.bench_function("1M_flows_no_prefetch", |b| {
        b.iter(|| {
            run.burst(black_box(bursts[next]));
            next = (next + 1) % bursts.len();
        })
    });
    run.engine.set_prefetcher(dpdk_bindings::prefetch_read);
    g.bench_function("1M_flows", |b| {
        b.iter(|| {
            run.burst(black_box(bursts[next]));
            next = (next + 1) % bursts.len();
        })
    });
    g.finish();
    drop(run);

    // New flows: each timed round creates up to `ROUND` flows in a fresh table.
    const ROUND: usize = 262_144;
    let rules = policy(998);
    eprintln!("new_flows policy: {}", rules.summary());
    let syns = StaticTrace::new(Kind::Syn, ROUND as u32, ROUND, |k| k as u64);
    let mut g = c.benchmark_group("new_flows");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(20);
    g.bench_function("1000_rules", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize * BURST;
            while left > 0 {
                let n = left.min(ROUND);
                let mut run = Run::new(engine(&rules, ROUND as u32 * 2));
                run.engine.set_prefetcher(dpdk_bindings::prefetch_read);
                let start = Instant::now();
                for b in syns.frames[..n].chunks(BURST) {
                    run.burst(b);
                }
                total += start.elapsed();
                assert_eq!(run.engine.counters().flows_created, n as u64);
                left -= n;
            }
            total
        })
    });
    g.finish();

    // Capture scan over a 1M-flow table, as Engine::poll slices it.
    let mut run = Run::new(engine(&lab, FLOWS + FLOWS / 8));
    run.engine.set_prefetcher(dpdk_bindings::prefetch_read);
    run.run_trace(&warm);
    let mut g = c.benchmark_group("capture_scan");
    g.throughput(Throughput::Elements(u64::from(FLOWS)));
    g.sample_size(10);
    let mut op = 0u64;
    g.bench_function("1M_flows", |b| {
        b.iter(|| {
            op += 1;
            let req = ScanRequest {
                op,
                kind: ScanKind::Capture,
                filter: FlowMatch {
                    filters: vec![
                        FlowFilter {
                            src: Cidr::parse("0.0.0.0/0").ok(),
                            ..FlowFilter::default()
                        },
                        FlowFilter {
                            src: Cidr::parse("::/0").ok(),
                            ..FlowFilter::default()
                        },
                    ],
                    ..FlowMatch::default()
                },
            };
            let _ = run.rings.commands.push(Command::StartScan(Box::new(req)));
            let mut matched = 0u64;
            loop {
                run.now += 1_000;
                run.engine.poll(run.now, &run.rings);
                let mut done = false;
                while let Some(r) = run.rings.replies.pop() {
                    match r {
                        Reply::ScanFlow { .. } => matched += 1,
                        Reply::ScanDone { .. } => done = true,
                        _ => {}
                    }
                }
                while run.rings.events.pop().is_some() {}
                if done {
                    break;
                }
            }
            assert_eq!(matched, u64::from(FLOWS));
        })
    });
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
