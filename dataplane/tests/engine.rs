//! The worker engine end to end without DPDK: frames in, actions and RSTs out, commands
//! and replies over the real rings.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use dataplane::flow::{FlowState, ShardConfig, TimeoutsSecs};
use dataplane::ops::{Cidr, FlowFilter, FlowMatch, PortRange};
use dataplane::packet::tcp_flags::{ACK, PSH, RST, SYN};
use dataplane::packet::Parsed;
use dataplane::policy::{CompiledPolicy, Policy};
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use dataplane::wire::parse_frame;
use dataplane::worker::cmd::{Command, ScanKind, ScanRequest};
use dataplane::worker::engine::{EngineConfig, RstBuf, WorkerRings};
use dataplane::worker::{Action, DropReason, Engine, Event, Reply};

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

fn engine(p: Arc<CompiledPolicy>) -> Engine {
    let hits = vec![0u64; p.rules().len()].into_boxed_slice();
    Engine::new(
        EngineConfig {
            worker: 0,
            shard: ShardConfig {
                capacity: 1024,
                timeouts: TimeoutsSecs::default(),
                emergency_timeouts: TimeoutsSecs::default(),
                emergency_high_pct: 95,
                emergency_low_pct: 80,
                ticks_per_sec: HZ,
            },
            vlan_zone: true,
            pass_malformed: false,
            pass_non_ip: true,
            pass_untracked_when_full: false,
            expiry_slots_per_poll: 64,
            scan_budget_ns: 1_000,
            ticks_per_sec: HZ,
        },
        p,
        hits,
    )
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
        Harness {
            e: engine(p),
            rings: WorkerRings::new(8, 4096, 4096),
            now: HZ,
        }
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
        h.send(0, &[seg(&c, 40000 + port, port, 1, 0, SYN)]);
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
    let (a, rsts) = h.send(0, &[seg(&c, 47001, 7001, 2, 1, PSH | ACK)]);
    assert_eq!(a, vec![Action::Drop(DropReason::Midstream)]);
    assert_eq!(rsts.len(), 2);
    // The others still pass.
    let (a, _) = h.send(0, &[seg(&c, 47000, 7000, 2, 1, ACK)]);
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
    assert_eq!(
        h.e.shard().len(),
        1,
        "only the flow created during the walk"
    );
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
    let (a, _) = h.send(0, &[seg(&c, 41000, 9000, 2, 1, ACK)]);
    assert_eq!(a, vec![Action::Forward], "the new flow is still tracked");
}

/// A flush-all cancelled mid-walk still ends every detached flow: the rest of the walk
/// runs between bursts and their records go out as flow-end events.
#[test]
fn cancelled_flush_of_every_flow_still_ends_and_logs_every_flow() {
    let mut h = Harness::new(policy("reject", "", 1));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    for p in 7000..7300u16 {
        h.send(0, &[seg(&c, 40000 + p, p, 1, 0, SYN)]);
    }
    assert!(h.rings.commands.push(flush_all(6)).is_ok());
    h.now += 10;
    h.e.poll(h.now, &h.rings);
    assert!(h.rings.commands.push(Command::CancelScan { op: 6 }).is_ok());
    let mut replies = Vec::new();
    let mut events = 0usize;
    for _ in 0..1000 {
        h.now += 10;
        h.e.poll(h.now, &h.rings);
        while let Some(r) = h.rings.replies.pop() {
            replies.push(r);
        }
        events += std::iter::from_fn(|| h.rings.events.pop())
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
    }
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
    h.send(0, &[seg(&c, 5000, 7001, 1, 0, SYN)]);
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
    let (a, _) = h.send(0, &[seg(&c, 5000, 7001, 2, 1, ACK)]);
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
