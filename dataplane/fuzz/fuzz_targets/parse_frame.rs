//! Fuzzes `wire::parse_frame` (MPLS, PPPoE, options and fragments included), the ICMP
//! error quote parser, the fragment tracker and the RST generators fed by it.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run parse_frame corpus/parse_frame`.
//! The seed corpus holds real frames made by `wire::build` (TCP/UDP/ICMP/SCTP, IPv4 with
//! options and fragments, IPv6 with extension headers, VLAN and QinQ tags).
//!
//! Invariants checked beyond "does not panic": a parsed meta's offsets lie inside the frame
//! and its `frame_len` is the input length; an RST built from a TCP meta parses back as
//! a TCP RST of the reversed tuple; a quoted packet has its error's IP version and VLAN;
//! the fragment tracker never holds more datagrams than its table.
#![no_main]

use dataplane::fragments::{FragConfig, FragmentTracker};
use dataplane::packet::{tcp_flags, Fragment, Parsed};
use dataplane::wire::build::{build_tcp_rst, build_tcp_rst_forward};
use dataplane::wire::{parse_frame, quoted_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(Parsed::Ip(meta)) = parse_frame(frame) else {
        return;
    };
    assert_eq!(usize::from(meta.frame_len), frame.len());
    assert!(usize::from(meta.l3_offset) < frame.len());
    assert!(usize::from(meta.l4_offset) <= frame.len());

    if meta.icmp_error {
        if let Ok(inner) = quoted_packet(frame, &meta) {
            assert_eq!((inner.ip_version, inner.vlan), (meta.ip_version, meta.vlan));
        }
    }
    if meta.fragment != Fragment::None {
        // The frame as a fragment of a datagram, then every 8-byte shift of it as a later one.
        let mut t = FragmentTracker::new(&FragConfig {
            capacity: 64,
            timeout_ticks: 100,
        });
        let mut first = meta;
        first.fragment = Fragment::First;
        first.frag_offset = 0;
        first.frag_more = true;
        let _ = t.record_first(&first, true, None, 1);
        for k in 0..16u16 {
            let mut later = meta;
            later.fragment = Fragment::Later;
            later.frag_offset = meta.frag_offset.wrapping_add(k * 8);
            let _ = t.follow(&later, 2);
        }
        assert!(t.live(2) <= t.capacity());
    }

    let mut out = [0u8; 128];
    if let Some(len) = build_tcp_rst(frame, &meta, &mut out) {
        let Ok(Parsed::Ip(rst)) = parse_frame(&out[..len]) else {
            panic!("generated RST does not parse");
        };
        assert!(rst.has_flag(tcp_flags::RST));
        assert_eq!((rst.src, rst.dst), (meta.dst, meta.src));
        assert_eq!((rst.src_port, rst.dst_port), (meta.dst_port, meta.src_port));
    }
    if let Some(len) = build_tcp_rst_forward(frame, &meta, 1, &mut out) {
        assert!(
            parse_frame(&out[..len]).is_ok(),
            "forward RST does not parse"
        );
    }
});
