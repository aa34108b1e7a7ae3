//! Flow shard micro-benchmarks (SPEC §10: ≤ 100 ns per packet with 1,000,000 flows).
//!
//! * `lookup_update/1M_flows/*`: packets of random resident flows (both directions),
//!   handled in bursts of 32 the way the engine does it — pass 1 key + hash + bucket
//!   prefetch for the burst, pass 2 lookup + entry prefetch, pass 3 update. Throughput
//!   is in packets; time per iteration / 32 = ns per packet. `no_prefetch` is the same
//!   loop without the prefetch calls (the shard prefetches with the appliance's
//!   `PREFETCHT0`, so the pair shows what it buys).
//! * `insert/1M_capacity`: new flows per second into a shard filling up to 1,000,000.
//! * `scan/1M_flows`: capture-style scan slots per second (no match, slices of 4096).
//!
//! Run: `cargo bench -p dataplane --bench flow`.

mod common;

use std::time::{Duration, Instant};

use common::CachePrefetch;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dataplane::flow::{FlowId, FlowKey, FlowShard, ShardConfig};
use dataplane::packet::{proto, tcp_flags, v4_to_addr, PacketMeta};

const FLOWS: u32 = 1_000_000;
const BURST: usize = 32;
/// Packets replayed by the lookup benchmark (random flows, random directions).
const TRACE: usize = 1 << 16;

/// The client → server packet of flow `i` (TCP, established).
fn packet(i: u32, reply: bool) -> PacketMeta {
    let m = PacketMeta {
        proto: proto::TCP,
        ip_version: 4,
        src: v4_to_addr(0x0a00_0000 | (i >> 4)),
        dst: v4_to_addr(0xc612_0000 | (i & 0xf)),
        src_port: 1024 + (i % 60_000) as u16,
        dst_port: 443,
        tcp_flags: tcp_flags::ACK,
        tcp_seq: i,
        tcp_ack: 1,
        payload_len: 10,
        ttl: 64,
        frame_len: 64,
        ..PacketMeta::default()
    };
    if reply {
        PacketMeta {
            src: m.dst,
            dst: m.src,
            src_port: m.dst_port,
            dst_port: m.src_port,
            ..m
        }
    } else {
        m
    }
}

/// xorshift64*: deterministic pseudo-random flow choice.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

type Shard = FlowShard<CachePrefetch>;

fn shard(capacity: u32) -> Shard {
    FlowShard::with_prefetch(&ShardConfig {
        capacity,
        ticks_per_sec: 1_000_000_000,
        ..ShardConfig::default()
    })
}

fn filled_shard() -> Shard {
    let mut s = shard(FLOWS);
    for i in 0..FLOWS {
        let m = packet(i, false);
        let (k, sw) = FlowKey::from_meta(&m, true);
        s.insert(&k, s.hash(&k), sw, &m, 1, &mut |_| {})
            .expect("room");
    }
    s
}

/// One burst through the shard, engine style.
#[inline(always)]
fn burst(s: &mut Shard, pkts: &[PacketMeta], now: u64, prefetch: bool) -> u32 {
    let mut keys = [(FlowKey::default(), false, 0u64); BURST];
    for (slot, m) in keys.iter_mut().zip(pkts) {
        let (k, sw) = FlowKey::from_meta(m, true);
        let h = s.hash(&k);
        if prefetch {
            s.prefetch_bucket(h);
        }
        *slot = (k, sw, h);
    }
    let mut ids: [Option<FlowId>; BURST] = [None; BURST];
    for (id, (k, _, h)) in ids.iter_mut().zip(&keys) {
        *id = s.lookup(k, *h);
        if let (true, Some(id)) = (prefetch, *id) {
            s.prefetch_entry(id, true);
        }
    }
    let mut hits = 0;
    for ((id, (_, sw, _)), m) in ids.iter().zip(&keys).zip(pkts) {
        if let Some(id) = *id {
            s.update(id, *sw, m, now);
            hits += 1;
        }
    }
    hits
}

fn lookup_update(c: &mut Criterion) {
    let mut s = filled_shard();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let trace: Vec<PacketMeta> = (0..TRACE)
        .map(|_| {
            let r = rng(&mut seed);
            packet((r % u64::from(FLOWS)) as u32, r >> 63 == 1)
        })
        .collect();
    let mut g = c.benchmark_group("lookup_update/1M_flows");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, prefetch) in [("burst32_prefetch", true), ("burst32_no_prefetch", false)] {
        let mut at = 0usize;
        let mut now = 2u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                let pkts = &trace[at..at + BURST];
                at = (at + BURST) % TRACE;
                now += 1;
                black_box(burst(&mut s, pkts, now, prefetch))
            })
        });
    }
    g.finish();
    assert_eq!(s.len(), FLOWS);
}

fn insert(c: &mut Criterion) {
    let mut s = shard(FLOWS);
    let metas: Vec<PacketMeta> = (0..FLOWS)
        .map(|i| PacketMeta {
            tcp_flags: tcp_flags::SYN,
            ..packet(i, false)
        })
        .collect();
    let mut g = c.benchmark_group("insert");
    g.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    g.bench_function("1M_capacity", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                if next == metas.len() {
                    s.drain_all(&mut |_| {});
                    next = 0;
                }
                let n = left.min((metas.len() - next) as u64) as usize;
                let t = Instant::now();
                for m in &metas[next..next + n] {
                    let (k, sw) = FlowKey::from_meta(m, true);
                    let _ = black_box(s.insert(&k, s.hash(&k), sw, m, 1, &mut |_| {}));
                }
                spent += t.elapsed();
                next += n;
                left -= n as u64;
            }
            spent
        })
    });
    g.finish();
}

fn scan(c: &mut Criterion) {
    let mut s = filled_shard();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(u64::from(FLOWS)));
    g.bench_function("1M_flows", |b| {
        b.iter(|| {
            let mut matched = 0u32;
            let mut cursor = Some(0);
            while let Some(at) = cursor {
                cursor = s.scan(at, 4096, &mut |_, e| {
                    matched += u32::from(e.pkts(dataplane::flow::Dir::Reply) > 0);
                    false
                });
            }
            black_box(matched)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = lookup_update, insert, scan
}
criterion_main!(benches);
