//! The engine on the frames the wire really carries: fragments following their first
//! fragment, ICMP errors following the flow they quote (under `drop_strict`), IP inside
//! MPLS and PPPoE inspected like any IP, non-IP frames passed only when named, malformed
//! options and IPv4-embedding IPv6 addresses refused — each with its counter.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use dataplane::flow::{ShardConfig, TimeoutsSecs};
use dataplane::fragments::FragConfig;
use dataplane::packet::proto;
use dataplane::packet::tcp_flags::{ACK, SYN};
use dataplane::policy::{CompiledPolicy, Policy};
use dataplane::wire::build::{
    encapsulate_mpls, encapsulate_pppoe, EchoKind, FrameBuilder, TcpSegment,
};
use dataplane::wire::ParseError;
use dataplane::worker::counters::non_ip_slot;
use dataplane::worker::engine::{EngineConfig, RstBuf, WorkerRings};
use dataplane::worker::{Action, DropReason, Engine, RejectRst};

const HZ: u64 = 1_000_000;

/// A strict-order policy: only the listed flows pass, everything else meets `drop_strict`.
fn strict(rules: &str, fragment_default: &str) -> Arc<CompiledPolicy> {
    let text = format!(
        r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "{fragment_default}"
[stateful]
rule_order = "strict_order"
stream_exception_policy = "drop"
default_actions = ["drop_strict"]
[[stateful.rule_groups]]
name = "t"
priority = 1
rules = [{rules}]
"#
    );
    let p = Policy::from_toml_str(&text, Path::new("t.toml")).expect("policy");
    Arc::new(CompiledPolicy::compile(&p, 1))
}

fn rule(action: &str, protocol: &str, dst: &str, dport: &str, sid: u32) -> String {
    format!(
        r#"{{ action = "{action}", protocol = "{protocol}", source = "any", source_port = "any", direction = "forward", destination = "{dst}", destination_port = "{dport}", sid = {sid} }},"#
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Harness {
    e: Engine,
    rings: WorkerRings,
    now: u64,
}

impl Harness {
    fn new(p: Arc<CompiledPolicy>) -> Harness {
        let hits = vec![0u64; p.rules().len()].into_boxed_slice();
        let cfg = EngineConfig {
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
            pass_non_ip: false,
            non_ip_pass_ethertypes: vec![0x0806],
            fragments: FragConfig {
                capacity: 256,
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
        Harness {
            e: Engine::new(cfg, p, hits),
            rings: WorkerRings::new(8, 4096, 4096),
            now: HZ,
        }
    }

    fn send(&mut self, port: usize, frames: &[Vec<u8>]) -> Vec<Action> {
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
        actions
    }

    fn one(&mut self, port: usize, frame: Vec<u8>) -> Action {
        self.send(port, &[frame])[0]
    }
}

fn syn(b: &FrameBuilder, sport: u16, dport: u16) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sport,
        dst_port: dport,
        seq: 1000,
        flags: SYN,
        window: 1000,
        ..Default::default()
    })
}

const FWD: Action = Action::Forward;

#[test]
fn later_fragments_follow_their_first_fragment_v4_and_v6() {
    for (client, server) in [("198.18.0.1", "198.18.0.2"), ("2001:2::1", "2001:2::2")] {
        let rules = rule("pass", "udp", "any", "5000", 1);
        let mut h = Harness::new(strict(&rules, "forward_to_sfe"));
        let b = FrameBuilder::new(ip(client), ip(server)).ident(77);
        let l4 = b.udp_l4(40000, 5000, &[0xab; 4000]);
        let allowed = b.fragments(proto::UDP, &l4, 1448);
        assert_eq!(allowed.len(), 3);
        assert_eq!(h.send(0, &allowed), vec![FWD; 3], "{client}: allowed port");
        let f = h.e.counters().fragments;
        assert_eq!((f.datagrams, f.followed, f.completed), (1, 2, 1));
        // All three fragments were counted in the flow.
        assert_eq!(h.e.shard().len(), 1);
        let total: u64 = allowed.iter().map(|x| x.len() as u64).sum();
        let rx = h.e.counters().ports[0].rx_bytes;
        assert_eq!(rx, total);

        // The same datagram to a denied port: no fragment crosses.
        let b2 = b.clone().ident(78);
        let denied = b2.fragments(proto::UDP, &b2.udp_l4(40000, 5001, &[0xcd; 4000]), 1448);
        let actions = h.send(0, &denied);
        assert!(
            actions
                .iter()
                .all(|a| matches!(a, Action::Drop(DropReason::Policy))),
            "{client}: {actions:?}"
        );
        // Forged later fragments of a datagram whose first never came.
        let b3 = b.clone().ident(79);
        let orphans = b3.fragments(proto::UDP, &b3.udp_l4(40000, 5000, &[0; 4000]), 1448);
        assert_eq!(
            h.send(0, &orphans[1..]),
            vec![Action::Drop(DropReason::Fragment); 2]
        );
        assert_eq!(h.e.counters().fragments.no_first, 2);
        assert_eq!(
            h.e.counters().ports[0].dropped[DropReason::Fragment as usize],
            2
        );
    }
}

#[test]
fn overlapping_fragments_are_dropped_and_counted() {
    let rules = rule("pass", "udp", "any", "5000", 1);
    let mut h = Harness::new(strict(&rules, "forward_to_sfe"));
    let b = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2")).ident(5);
    let l4 = b.udp_l4(40000, 5000, &[1; 64]);
    let first = b.clone().fragment(0, true).ip_packet(proto::UDP, &l4[..24]);
    // Offset 8: rewrites the UDP header's second half and the start of the data.
    let overlap = b.clone().fragment(8, false).ip_packet(proto::UDP, &l4[8..]);
    assert_eq!(h.one(0, first), FWD);
    assert_eq!(h.one(0, overlap), Action::Drop(DropReason::Fragment));
    assert_eq!(h.e.counters().fragments.overlap, 1);
}

#[test]
fn the_fragment_default_action_applies_to_udp_fragments_and_tcp_fragments_are_dropped() {
    let rules = rule("pass", "udp", "any", "5000", 1) + &rule("pass", "tcp", "any", "80", 2);
    let mut h = Harness::new(strict(&rules, "drop"));
    let b = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let frags = b.fragments(proto::UDP, &b.udp_l4(1, 5000, &[0; 3000]), 1480);
    assert!(h
        .send(0, &frags)
        .iter()
        .all(|a| *a == Action::Drop(DropReason::Stateless)));
    let mut h = Harness::new(strict(&rules, "forward_to_sfe"));
    let tcp = b.clone().fragment(0, true).tcp(&TcpSegment {
        src_port: 1,
        dst_port: 80,
        flags: SYN,
        ..Default::default()
    });
    assert_eq!(h.one(0, tcp), Action::Drop(DropReason::Stateless));
}

/// The ICMP error a router on the path sends back to `original`'s sender.
fn icmp_error(original: &[u8], router: &str, v6: bool, msg: (u8, u8)) -> Vec<u8> {
    let m = match dataplane::wire::parse_frame(original) {
        Ok(dataplane::packet::Parsed::Ip(m)) => m,
        other => panic!("{other:?}"),
    };
    let sender = dataplane::packet::addr_to_ip(m.src);
    let quote_len = if v6 { 1232 } else { 28 };
    let ip_bytes = &original[usize::from(m.l3_offset)..];
    let quote = &ip_bytes[..quote_len.min(ip_bytes.len())];
    FrameBuilder::new(ip(router), sender).icmp(msg.0, msg.1, [0, 0, 0x05, 0x00], quote)
}

#[test]
fn icmp_errors_about_allowed_flows_pass_drop_strict_and_the_rest_are_dropped() {
    for (client, far, router, v6) in [
        ("198.18.0.1", "198.18.1.2", "198.18.0.2", false),
        ("2001:2::1", "2001:2:1::2", "2001:2::2", true),
    ] {
        let rules = rule("pass", "tcp", "any", "80", 1)
            + &rule("pass", "udp", "any", "53", 2)
            + &rule("pass", "icmp", far, "any", 3)
            + &rule("drop", "udp", "any", "54", 4);
        // The rules allow traffic *to* the far side; nothing allows ICMP towards the client
        // from the router (an ICMP error is its own flow otherwise): drop_strict drops it.
        let mut h = Harness::new(strict(&rules, "drop"));
        let c = FrameBuilder::new(ip(client), ip(far));
        let open = syn(&c, 40000, 80);
        assert_eq!(h.one(0, open.clone()), FWD);
        // Fragmentation needed / packet too big about that SYN: passes (PMTUD works).
        let frag_needed = if v6 { (2, 0) } else { (3, 4) };
        assert_eq!(
            h.one(1, icmp_error(&open, router, v6, frag_needed)),
            FWD,
            "{client}"
        );
        // Time exceeded about a UDP datagram of an allowed flow (traceroute).
        let probe = c.clone().ttl(1).udp(33434, 53, &[0; 32]);
        assert_eq!(h.one(0, probe.clone()), FWD);
        let ttl_exceeded = if v6 { (3, 0) } else { (11, 0) };
        assert_eq!(h.one(1, icmp_error(&probe, router, v6, ttl_exceeded)), FWD);
        // Time exceeded about a ping (ping -t 1).
        let ping = c
            .clone()
            .ttl(1)
            .icmp_echo(EchoKind::Request, 9, 1, &[0; 56]);
        assert_eq!(h.one(0, ping.clone()), FWD);
        assert_eq!(h.one(1, icmp_error(&ping, router, v6, ttl_exceeded)), FWD);
        assert_eq!(h.e.counters().icmp_related_passed, 3);

        // A denied flow's error is dropped with it.
        let denied = c.udp(40001, 54, &[0; 8]);
        assert_eq!(h.one(0, denied.clone()), Action::Drop(DropReason::Policy));
        let unreach = if v6 { (1, 4) } else { (3, 3) };
        assert_eq!(
            h.one(1, icmp_error(&denied, router, v6, unreach)),
            Action::Drop(DropReason::Policy)
        );
        // An error about a flow that never existed (a probe or a forgery): dropped, counted.
        let never = c.udp(40002, 53, &[0; 8]);
        assert_eq!(
            h.one(1, icmp_error(&never, router, v6, unreach)),
            Action::Drop(DropReason::IcmpUnrelated)
        );
        // An error about an existing flow sent to someone else than its sender.
        let other = FrameBuilder::new(ip(far), ip(client)).udp(53, 40000, &[0; 8]);
        assert_eq!(
            h.one(0, icmp_error(&other, router, v6, unreach)),
            Action::Drop(DropReason::IcmpUnrelated),
            "quote's source is the far host, error goes to the client: not its sender"
        );
        assert_eq!(h.e.counters().icmp_unrelated, 2);
        assert_eq!(h.e.counters().icmp_related_dropped, 1);
        // Errors never create flows.
        assert_eq!(h.e.shard().len(), 4, "{client}");
    }
}

#[test]
fn ip_inside_mpls_and_pppoe_is_tracked_and_judged() {
    let rules = rule("pass", "tcp", "any", "80", 1);
    let mut h = Harness::new(strict(&rules, "drop"));
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2")).no_padding();
    let c6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2")).no_padding();
    assert_eq!(h.one(0, encapsulate_mpls(&syn(&c, 1, 80), &[16, 17])), FWD);
    assert_eq!(h.one(0, encapsulate_pppoe(&syn(&c, 2, 80), 0x1234)), FWD);
    assert_eq!(h.one(0, encapsulate_mpls(&syn(&c6, 3, 80), &[99])), FWD);
    assert_eq!(h.one(0, encapsulate_pppoe(&syn(&c6, 4, 80), 7)), FWD);
    assert_eq!(h.e.shard().len(), 4, "each is a flow");
    // The policy applies: port 81 is not allowed, inside MPLS or PPPoE or not.
    assert_eq!(
        h.one(0, encapsulate_mpls(&syn(&c, 5, 81), &[16])),
        Action::Drop(DropReason::Policy)
    );
    assert_eq!(
        h.one(0, encapsulate_pppoe(&syn(&c, 6, 81), 1)),
        Action::Drop(DropReason::Policy)
    );
    // The reply inside the same encapsulation finds the flow.
    let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1")).no_padding();
    let synack = s.tcp(&TcpSegment {
        src_port: 80,
        dst_port: 1,
        seq: 5000,
        ack: 1001,
        flags: SYN | ACK,
        window: 1000,
        ..Default::default()
    });
    assert_eq!(h.one(1, encapsulate_mpls(&synack, &[20])), FWD);
    assert_eq!(h.e.shard().len(), 6, "the two denied flows and no new one");
}

#[test]
fn only_named_non_ip_passes_and_each_ethertype_is_counted() {
    let mut h = Harness::new(strict("", "drop"));
    let mut arp = vec![0u8; 60];
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut lldp = arp.clone();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    let mut pppoe_lcp = arp.clone();
    pppoe_lcp[12..14].copy_from_slice(&0x8864u16.to_be_bytes());
    pppoe_lcp[14..22].copy_from_slice(&[0x11, 0, 0, 1, 0, 4, 0xc0, 0x21]);
    let mut mpls_pw = arp.clone();
    mpls_pw[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    mpls_pw[14..18].copy_from_slice(&[0, 1, 0x11, 64]); // then a control word (0)
    let actions = h.send(0, &[arp, lldp, pppoe_lcp, mpls_pw]);
    assert_eq!(actions[0], FWD);
    assert!(actions[1..]
        .iter()
        .all(|a| *a == Action::Drop(DropReason::NonIp)));
    let c = h.e.counters();
    for et in [0x0806, 0x88cc, 0x8864, 0x8847] {
        assert_eq!(c.non_ip_by_ethertype[non_ip_slot(et)], 1, "{et:#x}");
    }
}

#[test]
fn malformed_options_and_ipv4_embedding_ipv6_addresses_are_dropped_by_reason() {
    let rules = rule("pass", "tcp", "any", "any", 1);
    let mut h = Harness::new(strict(&rules, "drop"));
    // IPv4 option with length 1 (type 0x44 timestamp).
    let bad_v4 = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"))
        .ipv4_options(&[0x44, 1, 0, 0])
        .udp(1, 2, &[]);
    // ::ffff:198.18.0.1 would alias the IPv4 flows of 198.18.0.1.
    let mapped = FrameBuilder::new(ip("::ffff:198.18.0.1"), ip("2001:2::2"));
    let mapped = syn(&mapped, 1, 80);
    let compat = syn(
        &FrameBuilder::new(ip("2001:2::1"), ip("::198.18.0.2")),
        1,
        80,
    );
    let actions = h.send(0, &[bad_v4, mapped, compat]);
    assert!(actions
        .iter()
        .all(|a| *a == Action::Drop(DropReason::Malformed)));
    let c = h.e.counters();
    assert_eq!(c.malformed_by_reason[ParseError::BadIpv4Option.index()], 1);
    assert_eq!(
        c.malformed_by_reason[ParseError::Ipv4InIpv6Address.index()],
        2
    );
    assert_eq!(h.e.shard().len(), 0);
}
