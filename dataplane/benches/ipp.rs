//! Instructions per packet of the burst engine, for callgrind: deterministic where
//! wall-clock on a shared machine is not. Each case sets up outside the measured region
//! and runs its measured work inside `ipp_measured`, which `scripts/bench/ipp.sh` passes
//! to `valgrind --tool=callgrind --toggle-collect=…`, so only that work is counted.
//!
//! usage: ipp CASE [FLOWS] [PACKETS]
//!   one_flow   PACKETS packets of one established flow (table hit, cache-hot)
//!   table      FLOWS flows warmed, then PACKETS packets of random ones (table hits)
//!   new_flows  PACKETS SYNs of distinct flows against ~1,000 rules into a fresh table
//!   evict      PACKETS such SYNs into a full FLOWS-entry table (each evicts a flow and
//!              emits its end record: the appliance's new-flow benchmark)
//!   capture    a capture matching every flow of a FLOWS-flow table (per flow scanned)
//!   flush_all  a flush matching every flow of a FLOWS-flow table (the detach path)
//!
//! Prints `case=… units=N` (packets or flows the measured region handled). Run natively
//! it only checks that the case works. `cargo bench -p dataplane --bench ipp -- table`.

mod common;

use std::hint::black_box;

use common::{engine, policy, rng, Run, StaticTrace, BURST};
use dataplane::gen::Kind;
use dataplane::ops::{Cidr, FlowFilter, FlowMatch};
use dataplane::worker::cmd::{ScanKind, ScanRequest};

/// The only function callgrind collects in (`--toggle-collect=*ipp_measured*`).
#[inline(never)]
fn ipp_measured(work: &mut dyn FnMut()) {
    work();
}

fn match_all() -> FlowMatch {
    let src = |c: &str| FlowFilter {
        src: Cidr::parse(c).ok(),
        ..FlowFilter::default()
    };
    FlowMatch {
        filters: vec![src("0.0.0.0/0"), src("::/0")],
        ..FlowMatch::default()
    }
}

/// A run whose table holds `flows` established flows.
fn warmed(flows: u32) -> Run {
    let lab = policy(0);
    let warm = StaticTrace::new(Kind::Established, flows, flows as usize, |k| k as u64);
    let mut run = Run::new(engine(&lab, flows + flows / 8 + 64));
    run.run_trace(&warm);
    assert_eq!(run.engine.shard().len(), flows, "table not warmed");
    run
}

/// Runs a scan of every flow to completion; returns the flows it matched.
fn scan(run: &mut Run, kind: ScanKind) -> u64 {
    let req = ScanRequest {
        op: 1,
        kind,
        filter: match_all(),
    };
    run.scan_to_end(req)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let case = args.first().map_or("one_flow", String::as_str);
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| a.parse().unwrap_or_else(|_| panic!("not a number: {a}")))
            .unwrap_or(default)
    };
    let flows = num(1, 1_000_000) as u32;
    let packets = num(2, 65_536) as usize;
    let units = match case {
        "one_flow" => {
            let mut run = warmed(1);
            let one = StaticTrace::new(Kind::Established, 1, BURST, |_| 0);
            let bursts = packets.div_ceil(BURST);
            ipp_measured(&mut || {
                for _ in 0..bursts {
                    run.burst(black_box(&one.frames));
                }
            });
            (bursts * BURST) as u64
        }
        "table" => {
            let mut run = warmed(flows);
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let order: Vec<u64> = (0..packets)
                .map(|_| rng(&mut state) % u64::from(flows))
                .collect();
            let trace = StaticTrace::new(Kind::Established, flows, packets, |k| order[k]);
            ipp_measured(&mut || run.run_trace(black_box(&trace)));
            packets as u64
        }
        "new_flows" => {
            let rules = policy(998);
            let syns = StaticTrace::new(Kind::Syn, packets as u32, packets, |k| k as u64);
            let mut run = Run::new(engine(&rules, packets as u32 * 2));
            ipp_measured(&mut || run.run_trace(black_box(&syns)));
            assert_eq!(run.engine.counters().flows_created, packets as u64);
            packets as u64
        }
        "evict" => {
            let rules = policy(998);
            let total = flows + packets as u32;
            let fill = StaticTrace::new(Kind::Syn, total, flows as usize, |k| k as u64);
            let syns = StaticTrace::new(Kind::Syn, total, packets, |k| u64::from(flows) + k as u64);
            let mut run = Run::new(engine(&rules, flows));
            run.run_trace(&fill);
            assert_eq!(run.engine.shard().len(), flows, "table not full");
            ipp_measured(&mut || run.run_trace(black_box(&syns)));
            let c = run.engine.counters();
            assert_eq!(c.flows_created, u64::from(flows) + packets as u64);
            assert_eq!(c.flows_evicted, packets as u64);
            packets as u64
        }
        "capture" | "flush_all" => {
            let mut run = warmed(flows);
            let kind = if case == "capture" {
                ScanKind::Capture
            } else {
                ScanKind::Flush
            };
            let mut matched = 0;
            ipp_measured(&mut || matched = scan(&mut run, kind));
            assert_eq!(matched, u64::from(flows));
            u64::from(flows)
        }
        other => {
            panic!("unknown case {other} (one_flow, table, new_flows, evict, capture, flush_all)")
        }
    };
    println!("case={case} units={units}");
}
