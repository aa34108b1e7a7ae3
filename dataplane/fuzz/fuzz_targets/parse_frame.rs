//! Fuzzes `wire::parse_frame` and the RST generators fed by it.
//!
//! Run: `cd dataplane/fuzz && cargo +nightly fuzz run parse_frame corpus/parse_frame`.
//! The seed corpus holds real frames made by `wire::build` (TCP/UDP/ICMP/SCTP, IPv4 with
//! options and fragments, IPv6 with extension headers, VLAN and QinQ tags).
//!
//! Invariants checked beyond "does not panic": a parsed meta's offsets lie inside the frame
//! and its `frame_len` is the input length; an RST built from a TCP meta parses back as
//! a TCP RST of the reversed tuple.
#![no_main]

use dataplane::packet::{tcp_flags, Parsed};
use dataplane::wire::build::{build_tcp_rst, build_tcp_rst_forward};
use dataplane::wire::parse_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let Ok(Parsed::Ip(meta)) = parse_frame(frame) else {
        return;
    };
    assert_eq!(usize::from(meta.frame_len), frame.len());
    assert!(usize::from(meta.l3_offset) < frame.len());
    assert!(usize::from(meta.l4_offset) <= frame.len());

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
