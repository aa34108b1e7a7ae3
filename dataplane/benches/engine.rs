//! The whole burst engine (`Engine::process_burst`: parse, stateless, key, hash, lookup,
//! update, verdict) on 64-byte frames already in memory, in bursts of 32 (SPEC §10:
//! ≥ 10 Mpps = ≤ 100 ns per packet with 1,000,000 flows; ≥ 2 M new flows/s with 1,000
//! rules; capture of 1,000,000 flows well under a second).
//!
//! * `process_burst/1_flow`: every packet hits the same flow (the cache-hot ceiling).
//! * `process_burst/1M_flows`: a 1,000,000-flow table warmed (with the appliance's
//!   prefetch, `dpdk_bindings::prefetch_read`; `1M_flows_no_prefetch`: an engine over
//!   `NoPrefetch`, whose hints do nothing); the trace is 1,048,576 frames of random flows
//!   laid out contiguously (like an rx ring), so each packet's table accesses are cold and
//!   its frame read is sequential.
//! * `new_flows/1000_rules`: TCP SYNs of distinct flows against ~1,000 stateful rules
//!   (none matching until the last), each creating a flow in a fresh 1M-entry table.
//! * `capture_scan/1M_flows`: a capture matching every flow of a 1,000,000-flow table,
//!   driven by `Engine::poll` slices as the worker does between bursts, results drained
//!   like the management thread does; throughput in flows scanned.
//!
//! Time per iteration / 32 = ns per packet. Run: `cargo bench -p dataplane --bench engine`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{engine, engine_without_prefetch, policy, rng, Run, StaticTrace, BURST, FLOWS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dataplane::flow::Prefetch;
use dataplane::gen::Kind;
use dataplane::ops::{Cidr, FlowFilter, FlowMatch};
use dataplane::worker::cmd::{ScanKind, ScanRequest};

/// Warms `run`'s table with `warm`, then times `bursts` (packets of random resident flows)
/// through it, round after round; the table is freed on return.
fn bench_table<P: Prefetch>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut run: Run<P>,
    warm: &StaticTrace,
    bursts: &[&[&[u8]]],
) {
    run.run_trace(warm);
    assert_eq!(run.engine.shard().len(), FLOWS, "table not warmed");
    let mut next = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            run.burst(black_box(bursts[next]));
            next = (next + 1) % bursts.len();
        })
    });
}

fn bench_engine(c: &mut Criterion) {
    let lab = policy(0);
    let mut g = c.benchmark_group("process_burst");
    g.throughput(Throughput::Elements(BURST as u64));

    let one = StaticTrace::new(Kind::Established, 1, BURST, |_| 0);
    let mut run = Run::new(engine(&lab, 65_536));
    run.run_trace(&one);
    g.bench_function("1_flow", |b| b.iter(|| run.burst(black_box(&one.frames))));

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let order: Vec<u64> = (0..1 << 20)
        .map(|_| rng(&mut state) % u64::from(FLOWS))
        .collect();
    let warm = StaticTrace::new(Kind::Established, FLOWS, FLOWS as usize, |k| k as u64);
    let trace = StaticTrace::new(Kind::Established, FLOWS, 1 << 20, |k| order[k]);
    let bursts: Vec<&[&[u8]]> = trace.frames.chunks(BURST).collect();
    // One table at a time (each is a few hundred MB), the same trace through both.
    let no_prefetch = Run::new(engine_without_prefetch(&lab, FLOWS + FLOWS / 8));
    bench_table(&mut g, "1M_flows_no_prefetch", no_prefetch, &warm, &bursts);
    bench_table(
        &mut g,
        "1M_flows",
        Run::new(engine(&lab, FLOWS + FLOWS / 8)),
        &warm,
        &bursts,
    );
    g.finish();

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
            let matched = run.scan_to_end(req);
            assert_eq!(matched, u64::from(FLOWS));
        })
    });
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
