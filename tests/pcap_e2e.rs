//! Pcap in, pcap out, through the real binary and the real DPDK path (`net_pcap` vdevs):
//! known traffic goes in on port A; every valid frame must come out of port B
//! byte-identical and in order, malformed frames are counted and dropped, and the flow
//! counters on `/metrics` match the traffic. A second test checks policy verdicts:
//! pass, drop, reject (the RST leaves port A) and alert.

mod common;

use common::*;
use dataplane::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use dataplane::wire::build::{EchoKind, FrameBuilder, TcpSegment};
use dataplane::wire::parse_frame;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(
    b: &FrameBuilder,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sport,
        dst_port: dport,
        seq,
        ack,
        flags,
        window: 65535,
        options: &[],
        payload,
    })
}

const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

fn config(dir: &TempDir, api: &str, policy_file: &str) -> String {
    TestConfig::pcap(dir, "pcap-test", api)
        .set_str("policy", "file", policy_file)
        .render()
}

struct Traffic {
    valid: Vec<Vec<u8>>,
    all: Vec<Vec<u8>>,
    malformed: usize,
}

/// TCP handshake/data/close (IPv4), UDP, ICMP echo, IPv6 TCP and UDP, VLAN and QinQ UDP,
/// ARP, and malformed frames interleaved.
fn mixed_traffic() -> Traffic {
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
    let c6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"));
    let s6 = FrameBuilder::new(ip("2001:2::2"), ip("2001:2::1"));
    let data = [0x41u8; 100];
    let mut valid = vec![
        tcp(&c, 40000, 80, 1000, 0, SYN, &[]),
        tcp(&s, 80, 40000, 5000, 1001, SYN | ACK, &[]),
        tcp(&c, 40000, 80, 1001, 5001, ACK, &[]),
        tcp(&c, 40000, 80, 1001, 5001, PSH | ACK, &data),
        tcp(&s, 80, 40000, 5001, 1101, ACK, &[]),
        tcp(&c, 40000, 80, 1101, 5001, FIN | ACK, &[]),
        tcp(&s, 80, 40000, 5001, 1102, FIN | ACK, &[]),
        tcp(&c, 40000, 80, 1102, 5002, ACK, &[]),
        c.udp(5353, 53, b"query"),
        s.udp(53, 5353, b"answer"),
        c.icmp_echo(EchoKind::Request, 7, 1, b"ping"),
        s.icmp_echo(EchoKind::Reply, 7, 1, b"ping"),
        tcp(&c6, 41000, 443, 1, 0, SYN, &[]),
        tcp(&s6, 443, 41000, 9, 2, SYN | ACK, &[]),
        c6.udp(41001, 5201, b"v6 udp"),
        c.clone().vlan(100).udp(6000, 6001, b"vlan"),
        c.clone()
            .vlan_with_tpid(0x88a8, 200)
            .vlan(300)
            .udp(6002, 6003, b"qinq"),
    ];
    // ARP who-has 198.18.0.2 (non-IP: passes so the wire keeps working).
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.extend_from_slice(&[
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2,
    ]);
    arp.resize(60, 0);
    valid.push(arp);

    let good = tcp(&c, 40001, 80, 1, 0, SYN, &[]);
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43; // IHL 3 < 5
    let mut bad_len = c.udp(1, 2, b"x");
    bad_len[16] = 0xff; // total length beyond the frame
    let truncated_ip = good[..24].to_vec();
    let truncated_tcp = {
        let mut f = good[..14 + 20 + 10].to_vec();
        // total length says 30 bytes: the TCP header is cut short
        f[16] = 0;
        f[17] = 30;
        f
    };
    let malformed = vec![bad_ihl, bad_len, truncated_ip, truncated_tcp, vec![0u8; 10]];
    for m in &malformed {
        assert!(parse_frame(m).is_err(), "fixture must be malformed: {m:?}");
    }
    let mut all = Vec::new();
    let mut mi = malformed.iter();
    for (i, f) in valid.iter().enumerate() {
        all.push(f.clone());
        if i % 4 == 1 {
            if let Some(m) = mi.next() {
                all.push(m.clone());
            }
        }
    }
    all.extend(mi.cloned());
    Traffic {
        malformed: malformed.len(),
        valid,
        all,
    }
}

#[test]
fn forwards_valid_frames_byte_identical_and_counts_malformed() {
    require_root();
    let dir = TempDir::new("pcap");
    let t = mixed_traffic();
    write_pcap(&dir.path("in_a.pcap"), &t.all);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut fg = Appliance::start(&dir.0, &config(&dir, &api, "policy.toml"), &api);
    let n = t.all.len() as f64;
    fg.wait_for(20, "all frames received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= n
    });
    let m = fg.metrics();
    assert_eq!(
        metric_sum(&m, "flowgate_malformed_packets_total", ""),
        t.malformed as f64,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"malformed\""),
        t.malformed as f64
    );
    assert_eq!(
        metric_sum(&m, "flowgate_flows_created_total", ""),
        7.0,
        "{m}"
    );
    // The data plane's counters of [1/6] and the TCP/reject counters, each exported under
    // its name and labels by the metrics table (mgmt/src/metrics.rs).
    for series in [
        "flowgate_rsts_rate_limited_total{worker=\"0\"}",
        "flowgate_reject_silenced_total{worker=\"0\"}",
        "flowgate_flow_hash_long_probes_total{worker=\"0\"}",
        "flowgate_tcp_invalid_total{worker=\"0\",reason=",
        "flowgate_malformed_packets_total{worker=\"0\",reason=",
        "flowgate_non_ip_packets_total{worker=\"0\",ethertype=\"arp\"}",
        "flowgate_fragments_total{worker=\"0\",outcome=\"dropped_with_first\"}",
        "flowgate_icmp_errors_total{worker=\"0\",outcome=\"related_passed\"}",
        "flowgate_midstream_packets_total{worker=\"0\",outcome=\"rejected\"}",
        "flowgate_dropped_packets_total{port=\"net_pcap0\",worker=\"0\",reason=\"malformed\"}",
        "flowgate_events_dropped_total{worker=\"0\"}",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(series)),
            "{series} missing from /metrics:\n{m}"
        );
    }
    assert_eq!(
        metric_sum(&m, "flowgate_tx_packets_total", "port=\"net_pcap1\""),
        t.valid.len() as f64
    );
    fg.stop();
    let out = read_pcap(&dir.path("out_b.pcap"));
    assert_eq!(out.len(), t.valid.len(), "forwarded frame count");
    for (i, (got, want)) in out.iter().zip(&t.valid).enumerate() {
        assert_eq!(got, want, "frame {i} differs");
    }
    assert!(read_pcap(&dir.path("out_a.pcap")).is_empty());
    // Shutdown ends every flow in the log (two netflow records per flow).
    let flow_log = std::fs::read_to_string(dir.path("flow.log")).unwrap();
    assert_eq!(flow_log.lines().count(), 14, "{flow_log}");
    assert!(flow_log.contains("\"reason\":\"shutdown\""));
}

const VERDICTS: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[[stateless.rules]]
priority = 1
action = "drop"
destination_ports = ["9999"]
protocols = [17]
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
[[stateful.rule_groups]]
name = "t"
rules_file = "verdicts.rules"
"#;

const VERDICT_RULES: &str = r#"
pass tcp any any -> any 80 (msg:"web"; sid:1;)
drop tcp any any -> any 23 (msg:"telnet"; sid:2;)
reject tcp any any -> any 25 (msg:"smtp"; sid:3;)
alert udp any any -> any 53 (msg:"dns seen"; sid:4; rev:2;)
"#;

#[test]
fn policy_verdicts_pass_drop_reject_alert() {
    require_root();
    let dir = TempDir::new("verdicts");
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let web = tcp(&c, 40000, 80, 100, 0, SYN, &[]);
    let telnet = tcp(&c, 40001, 23, 200, 0, SYN, &[]);
    let smtp = tcp(&c, 40002, 25, 300, 0, SYN, &[]);
    let dns = c.udp(5353, 53, b"q");
    let blocked_udp = c.udp(5353, 9999, b"stateless drop");
    let midstream = tcp(&c, 40003, 80, 400, 1, ACK, &[]);
    write_pcap(
        &dir.path("in_a.pcap"),
        &[
            web.clone(),
            telnet,
            smtp.clone(),
            dns.clone(),
            blocked_udp,
            midstream,
        ],
    );
    write_pcap(&dir.path("in_b.pcap"), &[]);
    std::fs::write(dir.path("policy.toml"), VERDICTS).unwrap();
    std::fs::write(dir.path("verdicts.rules"), VERDICT_RULES).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut fg = Appliance::start(&dir.0, &config(&dir, &api, "policy.toml"), &api);
    fg.wait_for(20, "all frames received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= 6.0
    });
    let m = fg.metrics();
    assert_eq!(
        metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"policy\""),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"stateless\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"midstream\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(
            &m,
            "flowgate_midstream_packets_total",
            "outcome=\"dropped\""
        ),
        1.0,
        "{m}"
    );
    assert_eq!(metric_sum(&m, "flowgate_rsts_sent_total", ""), 1.0, "{m}");
    fg.stop();
    // Forwarded: web SYN and the DNS query (alert passes).
    assert_eq!(read_pcap(&dir.path("out_b.pcap")), vec![web, dns]);
    // The reject's RST went back out of port A, towards the sender, with RFC 9293 fields.
    let back = read_pcap(&dir.path("out_a.pcap"));
    assert_eq!(back.len(), 1);
    let dataplane::packet::Parsed::Ip(rst) = parse_frame(&back[0]).unwrap() else {
        panic!("RST is not IP")
    };
    let dataplane::packet::Parsed::Ip(syn) = parse_frame(&smtp).unwrap() else {
        panic!()
    };
    assert_eq!((rst.src, rst.dst), (syn.dst, syn.src));
    assert_eq!((rst.src_port, rst.dst_port), (25, 40002));
    assert_eq!(rst.tcp_flags, RST | ACK);
    assert_eq!(rst.tcp_seq, 0);
    assert_eq!(rst.tcp_ack, 301);
    assert_eq!(&back[0][0..6], &smtp[6..12], "L2 addresses swapped");
    let alerts = std::fs::read_to_string(dir.path("alert.log")).unwrap();
    for sid in [
        "\"signature_id\":2",
        "\"signature_id\":3",
        "\"signature_id\":4",
    ] {
        assert!(alerts.contains(sid), "{sid} missing in {alerts}");
    }
    assert!(alerts.contains("\"signature\":\"dns seen\""), "{alerts}");
}

const WIRE_POLICY: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
[[stateful.rule_groups]]
name = "t"
rules_file = "wire.rules"
"#;

const WIRE_RULES: &str = r#"
drop udp any any -> any 6666 (msg:"denied udp"; sid:10;)
"#;

/// A frame with `mtu = 9216` on the pair: what the wire really carries.
fn jumbo_config(dir: &TempDir, api: &str) -> String {
    config(dir, api, "policy.toml")
        .replace("b = \"net_pcap1\"\n", "b = \"net_pcap1\"\nmtu = 9216\n")
}

/// Jumbo TCP (IPv4 and IPv6, 9,000-byte IP packets), fragmented UDP (IPv4 and IPv6, to an
/// allowed and to a denied port), an orphan and an overlapping fragment, TCP inside MPLS
/// and PPPoE, malformed IPv4 and IPv6 options, ARP and LLDP: every frame is forwarded
/// byte-identical or dropped with the counter of its reason, and the flows are what a
/// per-frame count of distinct 5-tuples gives.
#[test]
fn jumbo_frames_fragments_mpls_pppoe_and_malformed_options() {
    use dataplane::packet::proto;
    use dataplane::wire::build::{encapsulate_mpls, encapsulate_pppoe};
    require_root();
    let dir = TempDir::new("wire");
    let c = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let s = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
    let c6 = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"));
    let s6 = FrameBuilder::new(ip("2001:2::2"), ip("2001:2::1"));
    // (frame, forwarded?, drop reason label)
    let mut frames: Vec<(Vec<u8>, Option<&str>)> = Vec::new();
    let mut fwd = |f: Vec<u8>| frames.push((f, None));
    // Jumbo TCP: 9,000-byte IP packets (9,014-byte frames), both families.
    fwd(tcp(&c, 40000, 80, 1, 0, SYN, &[]));
    fwd(tcp(&s, 80, 40000, 9, 2, SYN | ACK, &[]));
    let big4 = tcp(&c, 40000, 80, 2, 10, PSH | ACK, &[0x4a; 9000 - 40]);
    assert_eq!(big4.len(), 9014);
    fwd(big4);
    fwd(tcp(&c6, 40000, 80, 1, 0, SYN, &[]));
    fwd(tcp(&s6, 80, 40000, 9, 2, SYN | ACK, &[]));
    let big6 = tcp(&c6, 40000, 80, 2, 10, PSH | ACK, &[0x6a; 9000 - 60]);
    assert_eq!(big6.len(), 9014);
    fwd(big6);
    // Fragmented UDP to an allowed port (4,000-byte datagrams over a 1,500 MTU).
    for b in [c.clone().ident(100), c6.clone().ident(100)] {
        for f in b.fragments(proto::UDP, &b.udp_l4(5000, 5001, &[0x55; 4000]), 1448) {
            fwd(f);
        }
    }
    // TCP inside MPLS (two labels) and a PPPoE session.
    let n = c.clone().no_padding();
    let sn = s.clone().no_padding();
    fwd(encapsulate_mpls(
        &tcp(&n, 41000, 80, 1, 0, SYN, &[]),
        &[16, 1000],
    ));
    fwd(encapsulate_mpls(
        &tcp(&sn, 80, 41000, 9, 2, SYN | ACK, &[]),
        &[17],
    ));
    fwd(encapsulate_pppoe(&tcp(&n, 42000, 80, 1, 0, SYN, &[]), 0x2a));
    fwd(encapsulate_pppoe(
        &tcp(&sn, 80, 42000, 9, 2, SYN | ACK, &[]),
        0x2a,
    ));
    let n6 = c6.clone().no_padding();
    fwd(encapsulate_pppoe(
        &tcp(&n6, 43000, 80, 1, 0, SYN, &[]),
        0x2b,
    ));
    // ARP passes.
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.resize(60, 0);
    fwd(arp);
    // Dropped: fragments of a datagram to a denied port (all three, by the policy).
    let denied = c.clone().ident(200);
    for f in denied.fragments(proto::UDP, &denied.udp_l4(5002, 6666, &[0; 4000]), 1448) {
        frames.push((f, Some("policy")));
    }
    // An orphan later fragment (its first never came).
    let orphan = c.clone().ident(300);
    let orphan = orphan.fragments(proto::UDP, &orphan.udp_l4(5003, 5001, &[0; 2000]), 1448);
    frames.push((orphan[1].clone(), Some("fragment")));
    // An overlapping fragment (offset 8 rewrites the UDP header the first one showed).
    let ov = c.clone().ident(400);
    let l4 = ov.udp_l4(5004, 5001, &[1; 100]);
    frames.push((
        ov.clone()
            .fragment(0, true)
            .ip_packet(proto::UDP, &l4[..48]),
        None,
    ));
    frames.push((
        ov.clone()
            .fragment(8, false)
            .ip_packet(proto::UDP, &l4[8..]),
        Some("fragment"),
    ));
    // Malformed options: an IPv4 option of length 1, an IPv6 Home Address option of 4 bytes.
    let bad_v4 = c
        .clone()
        .ipv4_options(&[0x44, 1, 0, 0])
        .udp(5005, 5001, b"x");
    frames.push((bad_v4, Some("malformed")));
    let mut bad_hao = c6
        .clone()
        .ipv6_ext_header(dataplane::wire::ipv6::next_header::DEST_OPTS)
        .udp(5006, 5001, b"x");
    bad_hao[14 + 40 + 2..14 + 40 + 8].copy_from_slice(&[0xc9, 4, 0, 0, 0, 0]);
    frames.push((bad_hao, Some("malformed")));
    // LLDP: non-IP, not named: dropped.
    let mut lldp = vec![
        0x01, 0x80, 0xc2, 0, 0, 0x0e, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xcc,
    ];
    lldp.resize(60, 0);
    frames.push((lldp, Some("non_ip")));

    let all: Vec<Vec<u8>> = frames.iter().map(|(f, _)| f.clone()).collect();
    let forwarded: Vec<Vec<u8>> = frames
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(f, _)| f.clone())
        .collect();
    // Distinct flows, as a per-frame 5-tuple count gives: TCP v4 and v6 (jumbo), UDP v4
    // and v6 (fragmented), TCP in MPLS, in PPPoE (v4 and v6), the denied UDP, the
    // overlapping datagram's UDP. Orphans, malformed and non-IP frames make none.
    let expected_flows = 9.0;

    write_pcap(&dir.path("in_a.pcap"), &all);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    std::fs::write(dir.path("policy.toml"), WIRE_POLICY).unwrap();
    std::fs::write(dir.path("wire.rules"), WIRE_RULES).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut fg = Appliance::start(&dir.0, &jumbo_config(&dir, &api), &api);
    let n = all.len() as f64;
    fg.wait_for(20, "all frames received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= n
    });
    let m = fg.metrics();
    for reason in ["policy", "fragment", "malformed", "non_ip"] {
        let want = frames.iter().filter(|(_, r)| *r == Some(reason)).count() as f64;
        assert_eq!(
            metric_sum(
                &m,
                "flowgate_dropped_packets_total",
                &format!("reason=\"{reason}\"")
            ),
            want,
            "drops for {reason}\n{m}"
        );
    }
    assert_eq!(
        metric_sum(
            &m,
            "flowgate_malformed_packets_total",
            "reason=\"bad_ipv4_option\""
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &m,
            "flowgate_malformed_packets_total",
            "reason=\"bad_ipv6_option\""
        ),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_fragments_total", "outcome=\"no_first\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_fragments_total", "outcome=\"overlap\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_fragments_total", "outcome=\"followed\""),
        4.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_non_ip_packets_total", "ethertype=\"lldp\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_non_ip_packets_total", "ethertype=\"arp\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "flowgate_flows_created_total", ""),
        expected_flows,
        "{m}"
    );
    fg.stop();
    let out = read_pcap(&dir.path("out_b.pcap"));
    assert_eq!(out.len(), forwarded.len(), "forwarded frame count");
    for (i, (got, want)) in out.iter().zip(&forwarded).enumerate() {
        assert_eq!(got.len(), want.len(), "frame {i} length");
        assert!(got == want, "frame {i} differs");
    }
}
