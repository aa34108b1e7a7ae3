//! Byte-level tests of [`super::parse_frame`]: one fixture per path through the parser,
//! truncations and malformed fields.

use super::build::{EchoKind, FrameBuilder, TcpSegment};
use super::ipv6::next_header;
use super::*;
use crate::packet::tcp_flags;
use std::net::IpAddr;

fn ip(a: &str) -> IpAddr {
    a.parse().unwrap()
}

fn v4() -> FrameBuilder {
    FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"))
}

fn v6() -> FrameBuilder {
    FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"))
}

fn meta(frame: &[u8]) -> PacketMeta {
    match parse_frame(frame) {
        Ok(Parsed::Ip(meta)) => meta,
        other => panic!("expected IP, got {other:?}"),
    }
}

/// A 64-byte VLAN-tagged IPv4 TCP SYN, written out by hand.
#[rustfmt::skip]
static VLAN_TCP_SYN: [u8; 64] = [
    0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x81, 0x00, // Ethernet, TPID 802.1Q
    0x20, 0x64, 0x08, 0x00,                                     // PCP 1, VID 100, IPv4
    0x45, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x40, 0x00, 0x3f, 0x06, 0x00, 0x00, // TTL 63, TCP
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02,             // 198.18.0.1 -> .2
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, // 40000 -> 80, seq 1000
    0x60, 0x02, 0x72, 0x10, 0x00, 0x00, 0x00, 0x00,             // doff 6, SYN, window 29200
    0x02, 0x04, 0x05, 0xb4,                                     // MSS 1460
    0x00, 0x00,                                                 // link padding
];

#[test]
fn deconstruct_vlan_tcp_syn() {
    let m = meta(&VLAN_TCP_SYN);
    assert_eq!(
        m,
        PacketMeta {
            vlan: 100,
            l3_offset: 18,
            l4_offset: 38,
            ip_version: 4,
            proto: proto::TCP,
            src: v4_to_addr(0xc612_0001),
            dst: v4_to_addr(0xc612_0002),
            src_port: 40000,
            dst_port: 80,
            tcp_flags: tcp_flags::SYN,
            tcp_seq: 1000,
            tcp_ack: 0,
            tcp_window: 29200,
            tcp_wscale: None,
            payload_len: 0,
            ttl: 63,
            fragment: Fragment::None,
            frame_len: 64,
        }
    );
}

#[test]
fn truncating_the_fixture_at_every_length_is_an_error() {
    // The IP total length says 44 bytes from offset 18: every shorter cut is malformed.
    for len in 0..62 {
        let err = parse_frame(&VLAN_TCP_SYN[..len]).unwrap_err();
        let expected = match len {
            0..=13 => ParseError::TruncatedEthernet,
            14..=17 => ParseError::TruncatedVlan,
            18..=37 => ParseError::TruncatedIpv4,
            _ => ParseError::BadIpv4TotalLength,
        };
        assert_eq!(err, expected, "cut at {len}");
    }
    assert!(
        parse_frame(&VLAN_TCP_SYN[..62]).is_ok(),
        "exactly total length"
    );
}

#[test]
fn overlong_frame_counts_padding_in_frame_len_only() {
    let mut long = VLAN_TCP_SYN.to_vec();
    long.resize(1500, 0xaa);
    let m = meta(&long);
    assert_eq!(m.frame_len, 1500);
    assert_eq!(m.payload_len, 0);
    assert_eq!(
        parse_frame(&vec![0u8; 65536]),
        Err(ParseError::FrameTooLong)
    );
}

#[test]
fn non_ip_frames() {
    let mut arp = [0u8; 60];
    arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
    assert_eq!(
        parse_frame(&arp),
        Ok(Parsed::NonIp {
            ethertype: ethertype::ARP
        })
    );
    // LLDP inside QinQ reports the innermost ethertype.
    let mut qinq = [0u8; 60];
    qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
    qinq[16..18].copy_from_slice(&ethertype::VLAN.to_be_bytes());
    qinq[20..22].copy_from_slice(&ethertype::LLDP.to_be_bytes());
    assert_eq!(
        parse_frame(&qinq),
        Ok(Parsed::NonIp {
            ethertype: ethertype::LLDP
        })
    );
}

#[test]
fn vlan_stack_depth_is_bounded() {
    let frame = (0..vlan::MAX_TAGS)
        .fold(v4(), |b, i| b.vlan(i as u16 + 1))
        .udp(1, 2, b"");
    let m = meta(&frame);
    assert_eq!(m.vlan, 1, "outermost tag");
    assert_eq!(usize::from(m.l3_offset), 14 + 4 * vlan::MAX_TAGS);
    let deeper = v4().vlan(1).vlan(2).vlan(3).vlan(4).vlan(5).udp(1, 2, b"");
    assert_eq!(parse_frame(&deeper), Err(ParseError::TooManyVlanTags));
}

#[test]
fn qinq_outer_tag_is_reported() {
    let frame = v6()
        .vlan_with_tpid(ethertype::QINQ_LEGACY, 300)
        .vlan(400)
        .udp(53, 5353, b"q");
    let m = meta(&frame);
    assert_eq!((m.vlan, m.l3_offset, m.l4_offset), (300, 22, 62));
    assert_eq!((m.src_port, m.dst_port, m.payload_len), (53, 5353, 1));
}

#[test]
fn ipv4_options_move_the_l4_header() {
    let frame = v4().ipv4_options(&[0x94, 0x04, 0, 0]).tcp(&TcpSegment {
        src_port: 5,
        dst_port: 6,
        flags: tcp_flags::ACK,
        payload: &[1, 2, 3],
        ..Default::default()
    });
    let m = meta(&frame);
    assert_eq!((m.l3_offset, m.l4_offset), (14, 38));
    assert_eq!((m.src_port, m.dst_port, m.payload_len), (5, 6, 3));
}

#[test]
fn bad_ipv4_checksum_is_accepted() {
    let mut frame = v4().udp(1, 2, b"");
    frame[24] ^= 0xff;
    assert!(!Ipv4Packet::new_checked(&frame[14..])
        .unwrap()
        .checksum_valid());
    assert_eq!(meta(&frame).src_port, 1);
}

#[test]
fn ipv4_fragments() {
    let first = meta(&v4().fragment(0, true).udp(1, 2, &[0; 32]));
    assert_eq!(first.fragment, Fragment::First);
    assert_eq!(
        (first.src_port, first.dst_port, first.l4_offset),
        (1, 2, 34)
    );

    let later = meta(&v4().fragment(1480, true).udp(1, 2, &[0; 32]));
    assert_eq!(later.fragment, Fragment::Later);
    assert_eq!((later.src_port, later.dst_port, later.l4_offset), (0, 0, 0));
    assert_eq!(later.payload_len, 40, "all bytes after the IP header");
    assert_eq!(later.proto, proto::UDP);

    // A first fragment too short for the TCP header is the tiny-fragment attack.
    let mut tiny = v4().fragment(0, true).ip_packet(proto::TCP, &[0; 8]);
    assert_eq!(parse_frame(&tiny), Err(ParseError::TruncatedTcp));
    // The same bytes as a later fragment are fine.
    tiny[20] = 0x20; // MF + offset 8
    tiny[21] = 0x01;
    assert_eq!(meta(&tiny).fragment, Fragment::Later);
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    let b = v6()
        .ipv6_ext_header(next_header::HOP_BY_HOP)
        .ipv6_ext_header(next_header::ROUTING)
        .ipv6_ext_header(next_header::AUTH)
        .ipv6_ext_header(next_header::DEST_OPTS);
    let m = meta(&b.tcp(&TcpSegment {
        src_port: 7,
        dst_port: 8,
        ..Default::default()
    }));
    assert_eq!(
        (m.ip_version, m.proto, m.l4_offset),
        (6, proto::TCP, 54 + 40)
    );
    assert_eq!((m.src_port, m.dst_port), (7, 8));

    let first = meta(&b.clone().fragment(0, true).udp(1, 2, b""));
    assert_eq!(
        (first.fragment, first.src_port, first.l4_offset),
        (Fragment::First, 1, 102)
    );
    let later = meta(&b.clone().fragment(8, false).udp(1, 2, b""));
    assert_eq!(
        (later.fragment, later.src_port, later.l4_offset),
        (Fragment::Later, 0, 0)
    );
    assert_eq!((later.proto, later.payload_len), (proto::UDP, 8));
}

#[test]
fn ipv6_errors() {
    let frame = v6().ipv6_ext_header(next_header::DEST_OPTS).udp(1, 2, b"");
    // Claim a 16-byte destination-options header with only 16 bytes of payload left.
    let mut bad = frame.clone();
    bad[55] = 2;
    assert_eq!(parse_frame(&bad), Err(ParseError::TruncatedIpv6ExtHeader));
    let mut bad = frame.clone();
    bad[14] = 0x40;
    assert_eq!(parse_frame(&bad), Err(ParseError::BadIpv6Version));
    let mut bad = frame;
    bad[19] = 0xff;
    assert_eq!(parse_frame(&bad), Err(ParseError::BadIpv6PayloadLength));
    assert_eq!(
        parse_frame(&v6().ip_packet(proto::UDP, &[0; 7])),
        Err(ParseError::TruncatedUdp)
    );
}

#[test]
fn icmp_port_convention() {
    let req = meta(&v4().icmp_echo(EchoKind::Request, 0xbeef, 1, b"ping"));
    assert_eq!(
        (req.src_port, req.dst_port, req.payload_len),
        (0xbeef, 8 << 8, 4)
    );
    let rep = meta(&v6().icmp_echo(EchoKind::Reply, 0xbeef, 1, b""));
    assert_eq!(
        (rep.proto, rep.src_port, rep.dst_port),
        (proto::ICMPV6, 0xbeef, 129 << 8)
    );
    // Port unreachable: no identifier, type 3 code 3.
    let unreach = meta(&v4().icmp(3, 3, [0, 0, 0x12, 0x34], &[0; 28]));
    assert_eq!((unreach.src_port, unreach.dst_port), (0, 0x0303));
    let ts = meta(&v4().icmp(13, 0, [0x44, 0x55, 0, 1], &[0; 12]));
    assert_eq!(
        ts.src_port, 0x4455,
        "timestamp request carries an identifier"
    );
    // ICMPv4 inside IPv6 is just another protocol: no ports.
    let odd = meta(&v6().ip_packet(proto::ICMP, &[8, 0, 0, 0, 1, 2, 3, 4]));
    assert_eq!((odd.src_port, odd.dst_port, odd.payload_len), (0, 0, 8));
}

#[test]
fn sctp_and_other_protocols() {
    let s = meta(&v4().sctp(5000, 36412, 1, &[11, 0, 0, 4]));
    assert_eq!(
        (s.proto, s.src_port, s.dst_port, s.payload_len),
        (proto::SCTP, 5000, 36412, 4)
    );
    let gre = meta(&v4().ip_packet(47, &[0; 10]));
    assert_eq!(
        (gre.proto, gre.src_port, gre.l4_offset, gre.payload_len),
        (47, 0, 34, 10)
    );
}

#[test]
fn truncated_l4_headers_are_errors() {
    let cases = [
        (proto::TCP, 19, ParseError::TruncatedTcp),
        (proto::UDP, 7, ParseError::TruncatedUdp),
        (proto::ICMP, 7, ParseError::TruncatedIcmp),
        (proto::SCTP, 11, ParseError::TruncatedSctp),
    ];
    for (protocol, len, err) in cases {
        assert_eq!(
            parse_frame(&v4().ip_packet(protocol, &vec![0x50; len])),
            Err(err)
        );
    }
    // TCP data offset 4 words.
    let mut tcp = [0u8; 20];
    tcp[12] = 0x40;
    assert_eq!(
        parse_frame(&v4().ip_packet(proto::TCP, &tcp)),
        Err(ParseError::BadTcpDataOffset)
    );
    // UDP length past the IP payload.
    let udp = [0, 1, 0, 2, 0, 9, 0, 0];
    assert_eq!(
        parse_frame(&v4().ip_packet(proto::UDP, &udp)),
        Err(ParseError::BadUdpLength)
    );
}

#[test]
fn error_labels_are_unique_and_indexed() {
    let mut labels: Vec<&str> = ParseError::ALL.iter().map(ParseError::as_str).collect();
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert!(!e.to_string().is_empty());
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), ParseError::ALL.len());
}
