//! The worker engine end to end without DPDK: frames in, actions and RSTs out, commands
//! and replies over the real rings.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use dataplane::flow::{FlowState, ShardConfig, TimeoutsSecs};
use dataplane::fragments::FragConfig;
use dataplane::ops::{Cidr, FlowFilter, FlowMatch, PortRange};
use dataplane::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use dataplane::packet::Parsed;
use dataplane::policy::{CompiledPolicy, Policy};
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use dataplane::wire::parse_frame;
use dataplane::worker::cmd::{Command, ScanKind, ScanRequest};
use dataplane::worker::engine::{EngineConfig, RstBuf, WorkerRings};
use dataplane::worker::{Action, DropReason, Engine, Event, RejectRst, Reply};

const HZ: u64 = 1_000_000;

fn policy(stream: &str, rules: &str, epoch: u32) -> Arc<CompiledPolicy> {
    let text = format!(
        r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "{stream}"
[[stateful.rule_groups]]
name = "t"
rules = [{rules}]
"#
    );
    let p = Policy::from_toml_str(&text, Path::new("test-policy.toml")).expect("policy");
    Arc::new(CompiledPolicy::compile(&p, epoch))
}

fn engine_with(p: Arc<CompiledPolicy>, tune: impl FnOnce(&mut EngineConfig)) -> Engine {
    let hits = vec![0u64; p.rules().len()].into_boxed_slice();
    let mut cfg = EngineConfig {
        worker: 0,
        shard: ShardConfig {
            capacity: 1024,
            timeouts: TimeoutsSecs::default(),
            emergency_timeouts: TimeoutsSecs::default(),
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
    };
    tune(&mut cfg);
    Engine::new(cfg, p, hits)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn seg(b: &FrameBuilder, sp: u16, dp: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sp,
        dst_port: dp,
        seq,
        ack,
        flags,
        window: 1000,
        options: &[],
        payload: if flags & PSH != 0 { b"data" } else { &[] },
    })
}

struct Harness {
    e: Engine,
    rings: WorkerRings,
    now: u64,
}

impl Harness {
    fn new(p: Arc<CompiledPolicy>) -> Harness {
        Harness::with(p, |_| {})
    }

    fn with(p: Arc<CompiledPolicy>, tune: impl FnOnce(&mut EngineConfig)) -> Harness {
        Harness {
            e: engine_with(p, tune),
            rings: WorkerRings::new(8, 4096, 4096),
            now: HZ,
        }
    }

    /// SYN, SYN+ACK, ACK between 198.18.0.1:`sp` and 198.18.0.2:`dp` (client ISN 10,
    /// server ISN 50): next sequence numbers 11 and 51.
    fn handshake(&mut self, sp: u16, dp: u16) {
        let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
        let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
        let (a, _) = self.send(0, &[seg(&c, sp, dp, 10, 0, SYN)]);
        assert_eq!(a, vec![Action::Forward]);
        let (a, _) = self.send(1, &[seg(&s, dp, sp, 50, 11, SYN | ACK)]);
        assert_eq!(a, vec![Action::Forward]);
        let (a, _) = self.send(0, &[seg(&c, sp, dp, 11, 51, ACK)]);
        assert_eq!(a, vec![Action::Forward]);
    }

    fn send(&mut self, port: usize, frames: &[Vec<u8>]) -> (Vec<Action>, RstBuf) {
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let mut actions = vec![Action::Forward; refs.len()];
        let mut rsts = RstBuf::new();
        self.now += 1000;
        self.e.process_burst(
            port,
            &refs,
            self.now,
            &mut actions,
            &mut rsts,
            &self.rings.events,
        );
        (actions, rsts)
    }

    fn poll_until_done(&mut self, op: u64) -> Vec<Reply> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            self.now += 10;
            self.e.poll(self.now, &self.rings);
            while let Some(r) = self.rings.replies.pop() {
                let done = matches!(r, Reply::ScanDone { op: o, .. } if o == op);
                out.push(r);
                if done {
                    return out;
                }
            }
        }
        panic!("scan did not finish");
    }
}

#[test]
fn handshake_creates_one_flow_and_forwards_both_directions() {
    let mut h = Harness::new(policy("drop", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
    let (a, _) = h.send(0, &[seg(&c, 1234, 80, 10, 0, SYN)]);
    assert_eq!(a, vec![Action::Forward]);
    let (a, _) = h.send(1, &[seg(&s, 80, 1234, 50, 11, SYN | ACK)]);
    assert_eq!(a, vec![Action::Forward]);
    let (a, _) = h.send(
        0,
        &[
            seg(&c, 1234, 80, 11, 51, ACK),
            seg(&c, 1234, 80, 11, 51, PSH | ACK),
        ],
    );
    assert_eq!(a, vec![Action::Forward, Action::Forward]);
    assert_eq!(h.e.shard().len(), 1);
    assert_eq!(h.e.counters().flows_created, 1);
    assert_eq!(h.e.counters().ports[0].rx_packets, 3);
    assert_eq!(h.e.counters().ports[1].rx_packets, 1);
}

#[test]
fn midstream_under_drop_and_reject() {
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let mid = seg(&c, 1234, 80, 77, 99, PSH | ACK);
    let mut h = Harness::new(policy("drop", "", 1));
    let (a, rsts) = h.send(0, std::slice::from_ref(&mid));
    assert_eq!(a, vec![Action::Drop(DropReason::Midstream)]);
    assert!(rsts.is_empty());
    assert_eq!(h.e.counters().midstream_dropped, 1);

    let mut h = Harness::new(policy("reject", "", 1));
    let (a, rsts) = h.send(0, std::slice::from_ref(&mid));
    assert_eq!(a, vec![Action::Drop(DropReason::Midstream)]);
    assert_eq!(
        rsts.len(),
        2,
        "one RST back to the sender, one onward to the receiver"
    );
    let Parsed::Ip(back) = parse_frame(&rsts[0].frame[..rsts[0].len as usize]).unwrap() else {
        panic!()
    };
    assert!(rsts[0].back);
    assert_eq!(
        (back.src_port, back.dst_port, back.tcp_flags, back.tcp_seq),
        (80, 1234, RST, 99)
    );
    let Parsed::Ip(fwd) = parse_frame(&rsts[1].frame[..rsts[1].len as usize]).unwrap() else {
        panic!()
    };
    assert!(!rsts[1].back);
    assert_eq!((fwd.src_port, fwd.dst_port, fwd.tcp_seq), (1234, 80, 77));
    assert!(fwd.tcp_flags & RST != 0);
    assert_eq!(h.e.counters().midstream_rejected, 1);
    assert_eq!(h.e.counters().rsts_sent, 2);
    // A RST is never answered with a RST.
    let (_, rsts) = h.send(0, &[seg(&c, 1234, 80, 77, 99, RST)]);
    assert!(rsts.is_empty());
}

#[test]
fn midstream_continue_creates_flow_with_the_rules_verdict() {
    let rules = r#"{ action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "22", sid = 22 }"#;
    let mut h = Harness::new(policy("continue", rules, 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let (a, _) = h.send(
        0,
        &[seg(&c, 1000, 80, 1, 1, ACK), seg(&c, 1001, 22, 1, 1, ACK)],
    );
    assert_eq!(a, vec![Action::Forward, Action::Drop(DropReason::Policy)]);
    assert_eq!(h.e.counters().midstream_continued, 2);
    assert_eq!(h.e.shard().len(), 2);
}

#[test]
fn flush_removes_exactly_the_matching_flows_and_logs_them() {
    let mut h = Harness::new(policy("reject", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    for port in [7000u16, 7001, 7002] {
        h.handshake(40000 + port, port);
    }
    let filter = FlowMatch {
        filters: vec![FlowFilter {
            dst: Some(Cidr::parse("198.18.0.2/32").unwrap()),
            dst_port: PortRange::parse("7001").unwrap(),
            ..FlowFilter::default()
        }],
        ..FlowMatch::default()
    };
    let req = ScanRequest {
        op: 9,
        kind: ScanKind::Flush,
        filter,
    };
    assert!(h
        .rings
        .commands
        .push(Command::StartScan(Box::new(req)))
        .is_ok());
    let replies = h.poll_until_done(9);
    let flows: Vec<_> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::ScanFlow {
                record,
                flushed: true,
                ..
            } => Some(record.tuple.dst_port),
            _ => None,
        })
        .collect();
    assert_eq!(
        flows,
        vec![7001],
        "the flushed flow, marked as its end record"
    );
    assert_eq!(h.e.shard().len(), 2);
    assert_eq!(h.e.counters().flows_flushed, 1);
    // The reply is the flow's end record: no second copy goes through the lossy event ring.
    let flushed_events = std::iter::from_fn(|| h.rings.events.pop())
        .filter(|e| {
            matches!(
                e,
                Event::FlowEnd {
                    reason: dataplane::flow::EndReason::Flushed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(flushed_events, 0);
    // The flushed connection's next packet is midstream and gets reset.
    let (a, rsts) = h.send(0, &[seg(&c, 47001, 7001, 11, 51, PSH | ACK)]);
    assert_eq!(a, vec![Action::Drop(DropReason::Midstream)]);
    assert_eq!(rsts.len(), 2);
    // The others still pass.
    let (a, _) = h.send(0, &[seg(&c, 47000, 7000, 11, 51, ACK)]);
    assert_eq!(a, vec![Action::Forward]);
}

fn flush_all(op: u64) -> Command {
    let src = |c: &str| FlowFilter {
        src: Some(Cidr::parse(c).unwrap()),
        ..FlowFilter::default()
    };
    Command::StartScan(Box::new(ScanRequest {
        op,
        kind: ScanKind::Flush,
        filter: FlowMatch {
            filters: vec![src("0.0.0.0/0"), src("::/0")],
            ..FlowMatch::default()
        },
    }))
}

fn flushed_ports(replies: &[Reply]) -> Vec<u16> {
    let mut ports: Vec<u16> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::ScanFlow {
                record,
                flushed: true,
                ..
            } => Some(record.tuple.dst_port),
            _ => None,
        })
        .collect();
    ports.sort_unstable();
    ports
}

/// The whole-table path: every flow gone at once, each one's end record still delivered
/// (exactly once, as the scan's reply), later packets meet the stream exception policy,
/// and flows created during the walk are not part of the flush.
#[test]
fn flush_of_every_flow_detaches_the_table_and_logs_each_flow() {
    let mut h = Harness::new(policy("reject", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let ports: Vec<u16> = (7000..7200).collect();
    for &p in &ports {
        h.send(0, &[seg(&c, 40000 + p, p, 1, 0, SYN)]);
    }
    assert_eq!(h.e.shard().len(), 200);
    assert!(h.rings.commands.push(flush_all(5)).is_ok());
    // One poll takes the command and detaches the index: no flow is found any more.
    h.now += 10;
    h.e.poll(h.now, &h.rings);
    assert!(h.e.shard().is_detaching());
    let (a, rsts) = h.send(0, &[seg(&c, 47000, 7000, 2, 1, PSH | ACK)]);
    assert_eq!(a, vec![Action::Drop(DropReason::Midstream)]);
    assert_eq!(rsts.len(), 2);
    // A new connection during the walk is a new flow, not flushed.
    let (a, _) = h.send(0, &[seg(&c, 41000, 9000, 1, 0, SYN)]);
    assert_eq!(a, vec![Action::Forward]);
    let mut replies = Vec::new();
    while let Some(r) = h.rings.replies.pop() {
        replies.push(r);
    }
    replies.extend(h.poll_until_done(5));
    assert_eq!(flushed_ports(&replies), ports);
    match replies.last() {
        Some(Reply::ScanDone {
            matched, cancelled, ..
        }) => assert_eq!((*matched, *cancelled), (200, false)),
        _ => panic!("no ScanDone"),
    }
    assert_eq!(h.e.counters().flows_flushed, 200);
    // Left: the flow created during the walk, and the reject tombstone the reset
    // midstream packet left (one RST pair per flow).
    assert_eq!(h.e.shard().len(), 2);
    let flushed_events = std::iter::from_fn(|| h.rings.events.pop())
        .filter(|e| {
            matches!(
                e,
                Event::FlowEnd {
                    reason: dataplane::flow::EndReason::Flushed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(flushed_events, 0, "no second copy on the event ring");
}

/// 300 flows, a flush of every flow (op 6) started and, one loop into its walk, cancelled.
fn start_and_cancel_a_flush_of_300_flows(h: &mut Harness) {
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    for p in 7000..7300u16 {
        h.send(0, &[seg(&c, 40000 + p, p, 1, 0, SYN)]);
    }
    assert!(h.rings.commands.push(flush_all(6)).is_ok());
    h.now += 10;
    h.e.poll(h.now, &h.rings);
    assert!(h.rings.commands.push(Command::CancelScan { op: 6 }).is_ok());
}

/// Empties the event ring; how many of its events were flushed flows' end records.
fn take_flushed_events(h: &Harness) -> usize {
    std::iter::from_fn(|| h.rings.events.pop())
        .filter(|e| {
            matches!(
                e,
                Event::FlowEnd {
                    reason: dataplane::flow::EndReason::Flushed,
                    ..
                }
            )
        })
        .count()
}

/// `rounds` poll loops, taking every reply and, every `events_every` loops, the event
/// ring's flushed flows' end records: the replies, and how many such records.
fn poll_collecting(h: &mut Harness, rounds: usize, events_every: usize) -> (Vec<Reply>, usize) {
    let mut replies = Vec::new();
    let mut events = 0usize;
    for round in 1..=rounds {
        h.now += 10;
        h.e.poll(h.now, &h.rings);
        replies.extend(std::iter::from_fn(|| h.rings.replies.pop()));
        if round % events_every == 0 {
            events += take_flushed_events(h);
        }
    }
    (replies, events)
}

/// A flush-all cancelled mid-walk still ends every detached flow: the rest of the walk
/// runs between bursts and their records go out as flow-end events.
#[test]
fn cancelled_flush_of_every_flow_still_ends_and_logs_every_flow() {
    let mut h = Harness::new(policy("reject", "", 1));
    start_and_cancel_a_flush_of_300_flows(&mut h);
    let (replies, events) = poll_collecting(&mut h, 1000, 1);
    assert!(replies.iter().any(|r| matches!(
        r,
        Reply::ScanDone {
            op: 6,
            cancelled: true,
            ..
        }
    )));
    assert!(!h.e.shard().is_detaching());
    assert!(h.e.shard().is_empty());
    assert_eq!(
        flushed_ports(&replies).len() + events,
        300,
        "every flow logged once"
    );
    assert_eq!(h.e.counters().flows_flushed, 300);
}

#[test]
fn policy_swap_keeps_existing_verdicts_and_judges_new_flows_anew() {
    let mut h = Harness::new(policy("drop", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    h.handshake(5000, 7001);
    let deny = r#"{ action = "drop", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "7001", sid = 71 }"#;
    let p2 = policy("drop", deny, 2);
    let hits = vec![0u64; p2.rules().len()].into_boxed_slice();
    assert!(h
        .rings
        .commands
        .push(Command::SwapPolicy {
            policy: p2,
            rule_hits: hits
        })
        .is_ok());
    h.e.poll(h.now, &h.rings);
    assert!(matches!(
        h.rings.replies.pop(),
        Some(Reply::PolicySwapped { epoch: 2, .. })
    ));
    // Existing flow keeps its pass verdict…
    let (a, _) = h.send(0, &[seg(&c, 5000, 7001, 11, 51, ACK)]);
    assert_eq!(a, vec![Action::Forward]);
    // …a new connection to the same port is dropped by the new policy.
    let (a, _) = h.send(0, &[seg(&c, 5001, 7001, 1, 0, SYN)]);
    assert_eq!(a, vec![Action::Drop(DropReason::Policy)]);
    // verdict_changed selects exactly the old flow.
    let req = ScanRequest {
        op: 3,
        kind: ScanKind::Capture,
        filter: FlowMatch {
            filters: vec![FlowFilter {
                dst: Some(Cidr::parse("198.18.0.0/24").unwrap()),
                ..FlowFilter::default()
            }],
            verdict_changed: true,
            ..FlowMatch::default()
        },
    };
    assert!(h
        .rings
        .commands
        .push(Command::StartScan(Box::new(req)))
        .is_ok());
    let got: Vec<u16> = h
        .poll_until_done(3)
        .iter()
        .filter_map(|r| match r {
            Reply::ScanFlow { record, .. } => Some(record.tuple.src_port),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![5000]);
}

#[test]
fn the_policys_tcp_idle_timeout_applies_at_start_and_on_every_swap() {
    let established = |h: &Harness| {
        h.e.shard()
            .timeouts()
            .idle_limit(dataplane::packet::proto::TCP, FlowState::Established)
    };
    let with_timeout = |secs: u32, epoch: u32| {
        let text = format!(
            "[stateful]\nrule_order = \"default_action_order\"\ntcp_idle_timeout_seconds = {secs}\n"
        );
        let p = Policy::from_toml_str(&text, Path::new("t.toml")).expect("policy");
        Arc::new(CompiledPolicy::compile(&p, epoch))
    };
    let mut h = Harness::new(with_timeout(120, 1));
    assert_eq!(established(&h), 120 * HZ);
    for (p, want) in [
        (with_timeout(600, 2), 600 * HZ),
        // A policy without one falls back to the config's value.
        (
            policy("drop", "", 3),
            u64::from(TimeoutsSecs::default().tcp_established) * HZ,
        ),
    ] {
        let hits = vec![0u64; p.rules().len()].into_boxed_slice();
        assert!(h
            .rings
            .commands
            .push(Command::SwapPolicy {
                policy: p,
                rule_hits: hits
            })
            .is_ok());
        h.e.poll(h.now, &h.rings);
        assert!(matches!(
            h.rings.replies.pop(),
            Some(Reply::PolicySwapped { .. })
        ));
        assert_eq!(established(&h), want);
    }
}

fn invalid(h: &Harness, reason: &str) -> u64 {
    let i = dataplane::flow::TcpInvalid::ALL
        .iter()
        .position(|r| r.as_str() == reason)
        .expect("reason");
    h.e.counters().tcp_invalid[i]
}

fn state_of(h: &Harness, sp: u16) -> FlowState {
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let Parsed::Ip(m) = parse_frame(&seg(&c, sp, 7001, 0, 0, ACK)).unwrap() else {
        panic!()
    };
    let (k, _) = dataplane::flow::FlowKey::from_meta(&m, true);
    let id = h.e.shard().lookup(&k, h.e.shard().hash(&k)).expect("flow");
    h.e.shard().entry(id).state()
}

#[test]
fn spoofed_rsts_and_fins_neither_pass_nor_close_a_live_flow() {
    let mut h = Harness::new(policy("reject", "", 1));
    h.handshake(4000, 7001);
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
    let far = 1u32 << 31;
    let (a, rsts) = h.send(
        0,
        &[
            seg(&c, 4000, 7001, 11 + far, 51, RST),
            seg(&c, 4000, 7001, 11 + 500, 51, RST | ACK),
            seg(&c, 4000, 7001, 11 + far, 51, FIN | ACK),
            seg(&c, 4000, 7001, 11, 51 + far, FIN | ACK),
        ],
    );
    assert_eq!(
        a,
        vec![
            Action::Drop(DropReason::TcpInvalid),
            // In window but inexact: forwarded for the endpoint's challenge ACK.
            Action::Forward,
            Action::Drop(DropReason::TcpInvalid),
            Action::Drop(DropReason::TcpInvalid),
        ]
    );
    assert!(
        rsts.is_empty(),
        "a dropped segment of a live flow draws no RST"
    );
    let (a, _) = h.send(1, &[seg(&s, 7001, 4000, 51u32.wrapping_sub(far), 11, RST)]);
    assert_eq!(a, vec![Action::Drop(DropReason::TcpInvalid)]);
    assert_eq!(state_of(&h, 4000), FlowState::Established);
    assert_eq!(invalid(&h, "rst_out_of_window"), 2);
    assert_eq!(invalid(&h, "rst_in_window_inexact"), 1);
    assert_eq!(invalid(&h, "seq_out_of_window"), 1);
    assert_eq!(invalid(&h, "ack_out_of_window"), 1);
    assert_eq!(
        h.e.counters().ports[0].dropped[DropReason::TcpInvalid as usize],
        3
    );
    // The genuine data and then the exact RST.
    let (a, _) = h.send(0, &[seg(&c, 4000, 7001, 11, 51, PSH | ACK)]);
    assert_eq!(a, vec![Action::Forward]);
    let (a, _) = h.send(0, &[seg(&c, 4000, 7001, 15, 51, RST)]);
    assert_eq!(a, vec![Action::Forward]);
    assert_eq!(state_of(&h, 4000), FlowState::Closed);
}

#[test]
fn liberal_mode_forwards_out_of_window_segments_without_effect() {
    let mut h = Harness::with(policy("reject", "", 1), |c| c.tcp_liberal = true);
    h.handshake(4000, 7001);
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let (a, _) = h.send(
        0,
        &[
            seg(&c, 4000, 7001, 11 + (1 << 31), 51, FIN | ACK),
            seg(&c, 4000, 7001, 11 + (1 << 30), 51, RST),
        ],
    );
    assert_eq!(a, vec![Action::Forward, Action::Forward]);
    assert_eq!(state_of(&h, 4000), FlowState::Established);
    assert_eq!(invalid(&h, "seq_out_of_window"), 1);
    assert_eq!(invalid(&h, "rst_out_of_window"), 1);
}

#[test]
fn a_hundred_spoofed_packets_of_one_rejected_flow_draw_one_rst_pair() {
    let mut h = Harness::new(policy("reject", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let mut x = 0x1234_5678u32;
    let frames: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            seg(&c, 45678, 7002, x, x.rotate_left(7), ACK)
        })
        .collect();
    let mut total = 0;
    for chunk in frames.chunks(32) {
        let (a, rsts) = h.send(0, chunk);
        assert!(a.iter().all(|a| *a == Action::Drop(DropReason::Midstream)));
        total += rsts.len();
    }
    assert_eq!(total, 2, "one RST back, one onward");
    assert_eq!(h.e.counters().rsts_sent, 2);
    assert_eq!(h.e.counters().reject_silenced, 99);
    assert_eq!(h.e.counters().midstream_rejected, 100);
    // The tombstone is no flow: nothing to capture, no flow created.
    assert_eq!(h.e.counters().flows_created, 0);
    // A new connection on the same tuple is judged afresh (the policy passes it).
    let (a, _) = h.send(0, &[seg(&c, 45678, 7002, 1, 0, SYN)]);
    assert_eq!(a, vec![Action::Forward]);
    assert_eq!(h.e.counters().flows_created, 1);
    // After the tombstone expired (5 s), a packet of the flow draws its RSTs again.
    let mut h = Harness::new(policy("reject", "", 1));
    h.send(0, &frames[..1]);
    h.now += 6 * HZ;
    for _ in 0..100 {
        h.now += 1;
        h.e.poll(h.now, &h.rings);
    }
    assert_eq!(h.e.shard().len(), 0, "tombstone expired");
    let (_, rsts) = h.send(0, &frames[1..2]);
    assert_eq!(rsts.len(), 2);
}

#[test]
fn reject_rst_can_go_to_the_sender_only() {
    let mut h = Harness::with(policy("reject", "", 1), |c| {
        c.reject_rst = RejectRst::Sender
    });
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let (_, rsts) = h.send(0, &[seg(&c, 1234, 80, 77, 99, PSH | ACK)]);
    assert_eq!(rsts.len(), 1);
    assert!(rsts[0].back);
}

#[test]
fn the_rst_budget_bounds_floods_of_distinct_flows() {
    // 64 tokens banked, 1000 a second: 32 RST pairs at one instant, then 2 per ms.
    let mut h = Harness::new(policy("reject", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let frames: Vec<Vec<u8>> = (0..200u16)
        .map(|i| seg(&c, 10_000 + i, 7002, 1, 1, ACK))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let mut sent = 0;
    for chunk in refs.chunks(32) {
        let mut actions = vec![Action::Forward; chunk.len()];
        let mut rsts = RstBuf::new();
        h.e.process_burst(0, chunk, h.now, &mut actions, &mut rsts, &h.rings.events);
        sent += rsts.len();
    }
    assert_eq!(sent, 64);
    assert_eq!(h.e.counters().rsts_sent, 64);
    assert_eq!(h.e.counters().rsts_rate_limited, 2 * (200 - 32));
    // Flows refused a RST got no tombstone: their next packet may still draw one.
    h.now += HZ;
    let (_, rsts) = h.send(0, &frames[199..]);
    assert_eq!(rsts.len(), 2);
}

#[test]
fn a_policy_rejected_flow_draws_its_rst_once() {
    let rules = r#"{ action = "reject", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "any", destination_port = "23", sid = 23 }"#;
    let mut h = Harness::new(policy("drop", rules, 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let mut total = 0;
    for _ in 0..10 {
        let (a, rsts) = h.send(0, &[seg(&c, 5555, 23, 10, 0, SYN)]);
        assert_eq!(a, vec![Action::Drop(DropReason::Policy)]);
        total += rsts.len();
    }
    assert_eq!(total, 1);
    assert_eq!(h.e.counters().reject_silenced, 9);
}

#[test]
fn a_spoofed_ack_flood_under_continue_does_not_pin_the_table() {
    // 1024 flows; 4 established sessions, then 20,000 spoofed ACKs from random sources.
    let mut h = Harness::new(policy("continue", "", 1));
    for sp in 1..=4 {
        h.handshake(sp, 7001);
    }
    let mut x = 0x9e37_79b9u32;
    for round in 0..625u32 {
        let frames: Vec<Vec<u8>> = (0..32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let src = std::net::Ipv4Addr::from(0xc612_0000 | (x & 0x1ffff));
                let b = FrameBuilder::new(IpAddr::V4(src), ip("198.18.0.2"));
                seg(&b, (x >> 17) as u16 | 1024, 80, x, x.rotate_left(9), ACK)
            })
            .collect();
        let (a, _) = h.send(0, &frames);
        assert!(a.iter().all(|a| *a == Action::Forward), "round {round}");
        // The sessions keep working throughout.
        let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
        let (a, _) = h.send(0, &[seg(&c, 1 + (round % 4) as u16, 7001, 11, 51, ACK)]);
        assert_eq!(a, vec![Action::Forward], "round {round}");
    }
    assert!(
        h.e.counters().flows_evicted > 15_000,
        "{:?}",
        h.e.counters().flows_evicted
    );
    assert_eq!(h.e.counters().table_full_events, 0);
    for sp in 1..=4 {
        assert_eq!(state_of(&h, sp), FlowState::Established);
    }
    // A new connection gets a slot.
    h.handshake(9999, 7001);
    assert_eq!(state_of(&h, 9999), FlowState::Established);
}

/// The rest of a cancelled flush-all goes out on the event ring; when the collector is slow
/// to drain it, the walk waits for room rather than dropping a flushed flow's record.
#[test]
fn a_cancelled_flush_of_every_flow_waits_for_room_on_a_full_event_ring() {
    let mut h = Harness::new(policy("reject", "", 1));
    h.rings = WorkerRings::new(8, 4096, 40);
    start_and_cancel_a_flush_of_300_flows(&mut h);
    // The collector keeps up only every tenth loop.
    let (replies, events) = poll_collecting(&mut h, 1000, 10);
    assert!(h.e.shard().is_empty());
    assert_eq!(h.e.counters().events_dropped, 0);
    assert_eq!(
        flushed_ports(&replies).len() + events,
        300,
        "every flow logged once"
    );
}

/// …but a management side that stopped draining the ring for good (it died) does not keep
/// the walk, and so the slots it frees, from new flows: after a second it goes on.
#[test]
fn a_cancelled_flush_of_every_flow_goes_on_when_the_event_ring_stays_full() {
    let mut h = Harness::new(policy("reject", "", 1));
    h.rings = WorkerRings::new(8, 4096, 40);
    start_and_cancel_a_flush_of_300_flows(&mut h);
    for _ in 0..100 {
        h.now += 10;
        h.e.poll(h.now, &h.rings);
    }
    assert!(h.e.shard().is_detaching(), "waits while the ring is full");
    assert_eq!(h.e.counters().events_dropped, 0);
    h.now += dataplane::worker::engine::ORPHAN_WAIT_MAX_SECS * HZ;
    for _ in 0..100 {
        h.now += 10;
        h.e.poll(h.now, &h.rings);
    }
    assert!(!h.e.shard().is_detaching());
    assert!(h.e.shard().is_empty());
    assert!(h.e.counters().events_dropped > 0);
}
