//! Property tests of the wire layer: the parser never panics, frames built by
//! `wire::build` parse back to exactly what was built, truncation is either an error or the
//! same meta, and generated RSTs are valid replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::packet::{ip_to_addr, proto, tcp_flags, Fragment, PacketMeta, Parsed};
use dataplane::wire::build::{
    build_tcp_rst, build_tcp_rst_forward, EchoKind, FrameBuilder, TcpSegment,
};
use dataplane::wire::ethernet::ethertype;
use dataplane::wire::ipv6::next_header;
use dataplane::wire::{parse_frame, Ipv4Packet, Ipv6Packet, TcpPacket};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum L4 {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options_words: usize,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    Echo {
        reply: bool,
        ident: u16,
        seq: u16,
    },
    Sctp {
        src_port: u16,
        dst_port: u16,
        vtag: u32,
    },
}

#[derive(Debug, Clone)]
struct Spec {
    src: IpAddr,
    dst: IpAddr,
    /// (tpid, vid), outermost first.
    vlans: Vec<(u16, u16)>,
    ttl: u8,
    ipv4_option_words: usize,
    ipv6_ext: Vec<u8>,
    fragment: Option<(u16, bool)>,
    l4: L4,
    payload: Vec<u8>,
}

impl Spec {
    fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }

    fn builder(&self) -> FrameBuilder {
        let mut b = FrameBuilder::new(self.src, self.dst).ttl(self.ttl);
        for &(tpid, vid) in &self.vlans {
            b = b.vlan_with_tpid(tpid, vid);
        }
        b = b.ipv4_options(&vec![1; 4 * self.ipv4_option_words]);
        for &kind in &self.ipv6_ext {
            b = b.ipv6_ext_header(kind);
        }
        if let Some((offset, more)) = self.fragment {
            b = b.fragment(offset, more);
        }
        b
    }

    fn build(&self) -> Vec<u8> {
        let b = self.builder();
        match self.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                options_words,
            } => b.tcp(&TcpSegment {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                options: &vec![1; 4 * options_words],
                payload: &self.payload,
            }),
            L4::Udp { src_port, dst_port } => b.udp(src_port, dst_port, &self.payload),
            L4::Echo { reply, ident, seq } => {
                let kind = if reply {
                    EchoKind::Reply
                } else {
                    EchoKind::Request
                };
                b.icmp_echo(kind, ident, seq, &self.payload)
            }
            L4::Sctp {
                src_port,
                dst_port,
                vtag,
            } => b.sctp(src_port, dst_port, vtag, &self.payload),
        }
    }

    fn fragment_kind(&self) -> Fragment {
        match self.fragment {
            None => Fragment::None,
            Some((offset, more)) => match (offset & !7, more) {
                (0, false) => Fragment::None,
                (0, true) => Fragment::First,
                _ => Fragment::Later,
            },
        }
    }

    /// The meta the parser must produce, computed from the spec alone.
    fn expected_meta(&self) -> PacketMeta {
        let l3_offset = 14 + 4 * self.vlans.len();
        let ip_len = if self.is_v6() {
            let ext: usize = self
                .ipv6_ext
                .iter()
                .map(|&k| if k == next_header::AUTH { 16 } else { 8 })
                .sum();
            40 + ext + if self.fragment.is_some() { 8 } else { 0 }
        } else {
            20 + 4 * self.ipv4_option_words
        };
        let l4_offset = l3_offset + ip_len;
        let (l4_proto, l4_header_len) = match self.l4 {
            L4::Tcp { options_words, .. } => (proto::TCP, 20 + 4 * options_words),
            L4::Udp { .. } => (proto::UDP, 8),
            L4::Echo { .. } if self.is_v6() => (proto::ICMPV6, 8),
            L4::Echo { .. } => (proto::ICMP, 8),
            L4::Sctp { .. } => (proto::SCTP, 12),
        };
        let frame_len = (l4_offset + l4_header_len + self.payload.len()).max(60);
        let mut m = PacketMeta {
            vlan: self.vlans.first().map_or(0, |&(_, vid)| vid),
            l3_offset: l3_offset as u16,
            l4_offset: l4_offset as u16,
            ip_version: if self.is_v6() { 6 } else { 4 },
            proto: l4_proto,
            src: ip_to_addr(self.src),
            dst: ip_to_addr(self.dst),
            ttl: self.ttl,
            fragment: self.fragment_kind(),
            frame_len: frame_len as u16,
            payload_len: self.payload.len() as u16,
            ..PacketMeta::default()
        };
        if let (Some((offset, more)), true) = (self.fragment, m.fragment != Fragment::None) {
            m.frag_id = 0x1234; // the builder's default identification
            m.frag_offset = offset & !7;
            m.frag_more = more;
            m.frag_len = (l4_header_len + self.payload.len()) as u16;
        }
        if m.fragment == Fragment::Later {
            m.l4_offset = 0;
            m.payload_len = (l4_header_len + self.payload.len()) as u16;
            return m;
        }
        match self.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                ..
            } => {
                (m.src_port, m.dst_port) = (src_port, dst_port);
                (m.tcp_seq, m.tcp_ack, m.tcp_flags, m.tcp_window) = (seq, ack, flags, window);
            }
            L4::Udp { src_port, dst_port }
            | L4::Sctp {
                src_port, dst_port, ..
            } => (m.src_port, m.dst_port) = (src_port, dst_port),
            L4::Echo { reply, ident, .. } => {
                let msg_type: u16 = match (self.is_v6(), reply) {
                    (false, false) => 8,
                    (false, true) => 0,
                    (true, false) => 128,
                    (true, true) => 129,
                };
                (m.src_port, m.dst_port) = (ident, msg_type << 8);
            }
        }
        m
    }
}

fn addresses() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(s, d)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)))),
        // Avoid IPv4-mapped IPv6 addresses: the builder would still send IPv6 but the
        // shared address space could not tell them apart from IPv4 (the RST needs that).
        (any::<u128>(), any::<u128>()).prop_map(|(s, d)| (
            IpAddr::V6(Ipv6Addr::from(s | 1 << 127)),
            IpAddr::V6(Ipv6Addr::from(d | 1 << 127))
        )),
    ]
}

fn vlans() -> impl Strategy<Value = Vec<(u16, u16)>> {
    let tpid = prop_oneof![
        Just(ethertype::VLAN),
        Just(ethertype::QINQ),
        Just(ethertype::QINQ_LEGACY)
    ];
    prop::collection::vec((tpid, 0u16..4096), 0..=2)
}

fn tcp(fixed_flags: Option<u8>) -> impl Strategy<Value = L4> {
    (
        any::<(u16, u16, u32, u32, u8, u16)>(),
        0usize..=3,
        Just(fixed_flags),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack, flags, window), options_words, fixed)| L4::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags: fixed.unwrap_or(flags),
                window,
                options_words,
            },
        )
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        tcp(None),
        any::<(u16, u16)>().prop_map(|(src_port, dst_port)| L4::Udp { src_port, dst_port }),
        any::<(bool, u16, u16)>().prop_map(|(reply, ident, seq)| L4::Echo { reply, ident, seq }),
        any::<(u16, u16, u32)>().prop_map(|(src_port, dst_port, vtag)| L4::Sctp {
            src_port,
            dst_port,
            vtag
        }),
    ]
}

fn ipv6_ext() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        Just(next_header::HOP_BY_HOP),
        Just(next_header::ROUTING),
        Just(next_header::DEST_OPTS),
        Just(next_header::AUTH)
    ];
    prop::collection::vec(kind, 0..=3)
}

fn spec_with(l4: impl Strategy<Value = L4>, fragments: bool) -> impl Strategy<Value = Spec> {
    let fragment = if fragments {
        prop::option::weighted(0.3, (0u16..4000, any::<bool>())).boxed()
    } else {
        Just(None).boxed()
    };
    (
        addresses(),
        vlans(),
        any::<u8>(),
        0usize..=2,
        ipv6_ext(),
        fragment,
        l4,
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(
            |((src, dst), vlans, ttl, ipv4_option_words, ipv6_ext, fragment, l4, payload)| Spec {
                src,
                dst,
                vlans,
                ttl,
                ipv4_option_words,
                ipv6_ext,
                fragment,
                l4,
                payload,
            },
        )
}

fn parsed_meta(frame: &[u8]) -> PacketMeta {
    match parse_frame(frame) {
        Ok(Parsed::Ip(meta)) => meta,
        other => panic!("expected an IP frame, got {other:?}"),
    }
}

/// Asserts the IP header checksum (IPv4) and the TCP checksum of a bare generated segment.
fn assert_checksums_valid(frame: &[u8], m: &PacketMeta) {
    let l3 = &frame[usize::from(m.l3_offset)..];
    if m.ip_version == 4 {
        let ip = Ipv4Packet::new_checked(l3).unwrap();
        assert!(ip.checksum_valid(), "IPv4 header checksum");
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(
            tcp.checksum_valid_v4(ip.src_addr(), ip.dst_addr()),
            "TCP checksum"
        );
    } else {
        let ip = Ipv6Packet::new_checked(l3).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(
            tcp.checksum_valid_v6(ip.src_addr(), ip.dst_addr()),
            "TCP checksum"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(Parsed::Ip(m)) = parse_frame(&bytes) {
            prop_assert_eq!(usize::from(m.frame_len), bytes.len());
            prop_assert!(usize::from(m.l4_offset) <= bytes.len());
        }
    }

    /// Random bytes behind a plausible Ethernet/VLAN/IP prefix reach the deeper layers.
    #[test]
    fn arbitrary_ip_bodies_never_panic(
        tags in 0usize..3,
        v6 in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = vec![0u8; 12];
        for _ in 0..tags {
            frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        frame.extend_from_slice(if v6 { &[0x86, 0xdd, 0x60] } else { &[0x08, 0x00, 0x45] });
        frame.extend_from_slice(&body);
        let _ = parse_frame(&frame);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        spec in spec_with(l4(), true),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut frame = spec.build();
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        if let Ok(Parsed::Ip(m)) = parse_frame(&frame) {
            prop_assert!(usize::from(m.l3_offset) < frame.len());
            prop_assert!(usize::from(m.l4_offset) <= frame.len());
        }
    }

    #[test]
    fn build_then_parse_round_trips(spec in spec_with(l4(), true)) {
        let frame = spec.build();
        prop_assert_eq!(parsed_meta(&frame), spec.expected_meta());
    }

    #[test]
    fn truncation_is_an_error_or_the_same_meta(spec in spec_with(l4(), true)) {
        let frame = spec.build();
        let full = parsed_meta(&frame);
        let l3_offset = usize::from(full.l3_offset);
        let ip_end = l3_offset + if full.ip_version == 4 {
            usize::from(Ipv4Packet::new_checked(&frame[l3_offset..]).unwrap().total_len())
        } else {
            40 + usize::from(Ipv6Packet::new_checked(&frame[l3_offset..]).unwrap().payload_len())
        };
        for len in 0..frame.len() {
            match parse_frame(&frame[..len]) {
                Ok(Parsed::Ip(m)) => {
                    prop_assert!(len >= ip_end, "cut at {} inside the IP packet parsed", len);
                    prop_assert_eq!(m, PacketMeta { frame_len: len as u16, ..full });
                }
                Ok(other) => prop_assert!(false, "cut at {} parsed as {:?}", len, other),
                Err(_) => prop_assert!(len < ip_end, "cut at {} in the padding failed", len),
            }
        }
    }

    #[test]
    fn rst_reply_parses_back_swapped(spec in spec_with(tcp(None), false)) {
        let frame = spec.build();
        let m = parsed_meta(&frame);
        let mut out = [0u8; 128];
        let len = build_tcp_rst(&frame, &m, &mut out).unwrap();
        let rst = &out[..len];
        let r = parsed_meta(rst);
        prop_assert_eq!((r.src, r.dst, r.src_port, r.dst_port), (m.dst, m.src, m.dst_port, m.src_port));
        prop_assert_eq!((r.vlan, r.l3_offset, r.ip_version, r.ttl), (m.vlan, m.l3_offset, m.ip_version, 64));
        prop_assert_eq!(&rst[..6], &frame[6..12]);
        prop_assert_eq!(&rst[6..12], &frame[..6]);
        prop_assert_eq!(&rst[12..usize::from(m.l3_offset)], &frame[12..usize::from(m.l3_offset)]);
        prop_assert!(r.has_flag(tcp_flags::RST));
        prop_assert_eq!(r.payload_len, 0);
        if m.has_flag(tcp_flags::ACK) {
            prop_assert_eq!((r.tcp_flags, r.tcp_seq, r.tcp_ack), (tcp_flags::RST, m.tcp_ack, 0));
        } else {
            let seg_len = u32::from(m.payload_len)
                + u32::from(m.has_flag(tcp_flags::SYN))
                + u32::from(m.has_flag(tcp_flags::FIN));
            prop_assert_eq!(r.tcp_flags, tcp_flags::RST | tcp_flags::ACK);
            prop_assert_eq!((r.tcp_seq, r.tcp_ack), (0, m.tcp_seq.wrapping_add(seg_len)));
        }
        prop_assert_eq!(len, usize::from(r.l4_offset + 20).max(60));
        assert_checksums_valid(rst, &r);
    }

    #[test]
    fn rst_forward_parses_back_same_direction(
        spec in spec_with(tcp(Some(tcp_flags::ACK)), false),
        seq in any::<u32>(),
    ) {
        let frame = spec.build();
        let m = parsed_meta(&frame);
        let mut out = [0u8; 128];
        let len = build_tcp_rst_forward(&frame, &m, seq, &mut out).unwrap();
        let r = parsed_meta(&out[..len]);
        prop_assert_eq!(&out[..usize::from(m.l3_offset)], &frame[..usize::from(m.l3_offset)]);
        prop_assert_eq!((r.src, r.dst, r.src_port, r.dst_port), (m.src, m.dst, m.src_port, m.dst_port));
        prop_assert_eq!((r.tcp_flags, r.tcp_seq, r.tcp_ack), (tcp_flags::RST, seq, 0));
        assert_checksums_valid(&out[..len], &r);
    }
}
