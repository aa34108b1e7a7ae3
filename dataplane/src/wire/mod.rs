//! Zero-copy, panic-free packet views and the one-pass frame parser.
//!
//! Each header has a view `Foo<T: AsRef<[u8]>>` over a byte buffer (smoltcp's shape):
//! getters on `T: AsRef<[u8]>`, setters on `T: AsMut<[u8]>`, a private table of field
//! offsets. [`parse_frame`] walks Ethernet → VLAN tags → IPv4/IPv6 (+ extension headers) →
//! TCP/UDP/ICMP/ICMPv6/SCTP once and fills a [`PacketMeta`]; [`build`] makes frames (tests,
//! tools) and the packet-path TCP RSTs; [`checksum`] has the internet checksum and CRC32c.
//!
//! # Panic contract
//!
//! Frames come from the network, i.e. from attackers. Therefore:
//!
//! * `Foo::new_checked(buffer)` is the only way to view *untrusted* bytes. It validates
//!   every length the view relies on (header present, length fields within the buffer) and
//!   returns a [`ParseError`] otherwise.
//! * After `new_checked` returned `Ok`, no getter reads out of bounds. Moreover, no getter or
//!   setter can panic *at all*, checked or not: every field access goes through
//!   `field::{u16_at, set_u16, …}`, which yield 0 for an out-of-bounds read and ignore an
//!   out-of-bounds write. A view made with `new_unchecked` over a short buffer thus gives
//!   wrong values, never a crash.
//! * `new_unchecked` is for the emit path, where the caller sized the buffer. Setters that
//!   change a length field (`set_total_len`, `set_header_len`, `set_len`, `set_payload_len`)
//!   can invalidate a previous check; re-check before trusting the getters' meaning again.
//! * [`parse_frame`] and [`build::build_tcp_rst`] / [`build::build_tcp_rst_forward`] are on
//!   the packet path: no panic, no allocation, no lock, no syscall, on any input. The
//!   property tests and the fuzz target (`dataplane/fuzz`) hold them to that.

pub mod build;
pub mod checksum;
pub mod ethernet;
mod field;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use ethernet::EthernetFrame;
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::{Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet};
pub use sctp::SctpPacket;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vlan::VlanTag;

use crate::packet::{proto, v4_to_addr, Fragment, PacketMeta, Parsed};
use ethernet::ethertype;

/// Why a frame could not be parsed. Zero-sized payloads, `Copy`: attackers choose these,
/// so producing one must cost nothing. [`ParseError::as_str`] is the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    #[error("frame longer than 65535 bytes")]
    FrameTooLong,
    #[error("frame shorter than the 14-byte Ethernet header")]
    TruncatedEthernet,
    #[error("VLAN tag cut short")]
    TruncatedVlan,
    #[error("more than {} stacked VLAN tags", vlan::MAX_TAGS)]
    TooManyVlanTags,
    #[error("IPv4 packet shorter than the 20-byte header")]
    TruncatedIpv4,
    #[error("IPv4 ethertype but IP version is not 4")]
    BadIpv4Version,
    #[error("IPv4 header length below 20 bytes or past the end of the frame")]
    BadIpv4HeaderLength,
    #[error("IPv4 total length below the header length or past the end of the frame")]
    BadIpv4TotalLength,
    #[error("IPv6 packet shorter than the 40-byte header")]
    TruncatedIpv6,
    #[error("IPv6 ethertype but IP version is not 6")]
    BadIpv6Version,
    #[error("IPv6 payload length past the end of the frame")]
    BadIpv6PayloadLength,
    #[error("IPv6 extension header cut short")]
    TruncatedIpv6ExtHeader,
    #[error("more than {} IPv6 extension headers", ipv6::MAX_EXT_HEADERS)]
    TooManyIpv6ExtHeaders,
    #[error("TCP segment shorter than the 20-byte header")]
    TruncatedTcp,
    #[error("TCP data offset below 5 words or past the end of the segment")]
    BadTcpDataOffset,
    #[error("UDP datagram shorter than the 8-byte header")]
    TruncatedUdp,
    #[error("UDP length field below 8 or past the end of the IP payload")]
    BadUdpLength,
    #[error("ICMP message shorter than the 8-byte header")]
    TruncatedIcmp,
    #[error("SCTP packet shorter than the 12-byte common header")]
    TruncatedSctp,
}

impl ParseError {
    /// Every variant, in declaration order (to pre-register one counter per reason).
    pub const ALL: [ParseError; 19] = [
        ParseError::FrameTooLong,
        ParseError::TruncatedEthernet,
        ParseError::TruncatedVlan,
        ParseError::TooManyVlanTags,
        ParseError::TruncatedIpv4,
        ParseError::BadIpv4Version,
        ParseError::BadIpv4HeaderLength,
        ParseError::BadIpv4TotalLength,
        ParseError::TruncatedIpv6,
        ParseError::BadIpv6Version,
        ParseError::BadIpv6PayloadLength,
        ParseError::TruncatedIpv6ExtHeader,
        ParseError::TooManyIpv6ExtHeaders,
        ParseError::TruncatedTcp,
        ParseError::BadTcpDataOffset,
        ParseError::TruncatedUdp,
        ParseError::BadUdpLength,
        ParseError::TruncatedIcmp,
        ParseError::TruncatedSctp,
    ];

    /// A stable snake_case label for metrics and logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ParseError::FrameTooLong => "frame_too_long",
            ParseError::TruncatedEthernet => "truncated_ethernet",
            ParseError::TruncatedVlan => "truncated_vlan",
            ParseError::TooManyVlanTags => "too_many_vlan_tags",
            ParseError::TruncatedIpv4 => "truncated_ipv4",
            ParseError::BadIpv4Version => "bad_ipv4_version",
            ParseError::BadIpv4HeaderLength => "bad_ipv4_header_length",
            ParseError::BadIpv4TotalLength => "bad_ipv4_total_length",
            ParseError::TruncatedIpv6 => "truncated_ipv6",
            ParseError::BadIpv6Version => "bad_ipv6_version",
            ParseError::BadIpv6PayloadLength => "bad_ipv6_payload_length",
            ParseError::TruncatedIpv6ExtHeader => "truncated_ipv6_ext_header",
            ParseError::TooManyIpv6ExtHeaders => "too_many_ipv6_ext_headers",
            ParseError::TruncatedTcp => "truncated_tcp",
            ParseError::BadTcpDataOffset => "bad_tcp_data_offset",
            ParseError::TruncatedUdp => "truncated_udp",
            ParseError::BadUdpLength => "bad_udp_length",
            ParseError::TruncatedIcmp => "truncated_icmp",
            ParseError::TruncatedSctp => "truncated_sctp",
        }
    }

    /// Position of this variant in [`ParseError::ALL`] (a counter-array index).
    pub const fn index(&self) -> usize {
        *self as usize
    }
}

/// Parses one Ethernet frame in a single pass.
///
/// Returns [`Parsed::NonIp`] for a well-formed frame whose (innermost) EtherType is not IP,
/// [`Parsed::Ip`] with every [`PacketMeta`] field filled for IPv4/IPv6, or the first
/// [`ParseError`] met. Accepted on purpose: IPv4 header checksum errors (see
/// [`Ipv4Packet::checksum_valid`]), link padding after the IP packet, later fragments
/// (ports 0, `l4_offset` 0). Rejected: a truncated L4 header in an unfragmented packet or a
/// first fragment (a first fragment too short for the ports is the classic tiny-fragment
/// evasion, RFC 1858).
///
/// `payload_len` is the L4 payload: TCP segment data, UDP data per its length field, ICMP
/// data after the 8-byte header, SCTP chunks; for other protocols and later fragments, the
/// bytes after the last IP header.
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<Parsed, ParseError> {
    // Every offset and length below is bounded by this, so the `as u16` casts are lossless.
    let frame_len = u16::try_from(frame.len()).map_err(|_| ParseError::FrameTooLong)?;
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ether_type = eth.ethertype();
    let mut l3_offset = ethernet::HEADER_LEN;
    let mut vlan_id = 0;
    if vlan::is_vlan_tpid(ether_type) {
        (ether_type, l3_offset, vlan_id) = walk_vlan_tags(frame)?;
    }
    let l3 = frame.get(l3_offset..).unwrap_or_default();
    let mut meta = PacketMeta {
        vlan: vlan_id,
        l3_offset: l3_offset as u16,
        frame_len,
        ..PacketMeta::default()
    };
    match ether_type {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3)?;
            meta.ip_version = 4;
            meta.proto = ip.protocol();
            meta.src = v4_to_addr(ip.src_addr());
            meta.dst = v4_to_addr(ip.dst_addr());
            meta.ttl = ip.ttl();
            meta.fragment = match (ip.frag_offset(), ip.more_frags()) {
                (0, false) => Fragment::None,
                (0, true) => Fragment::First,
                _ => Fragment::Later,
            };
            parse_l4(&mut meta, ip.payload(), l3_offset + ip.header_len(), false)?;
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3)?;
            let payload = ip.payload();
            let upper = ipv6::walk_extension_headers(ip.next_header(), payload)?;
            meta.ip_version = 6;
            meta.proto = upper.proto;
            meta.src = ip.src_addr();
            meta.dst = ip.dst_addr();
            meta.ttl = ip.hop_limit();
            meta.fragment = upper.fragment;
            let l4 = payload.get(upper.offset..).unwrap_or_default();
            parse_l4(
                &mut meta,
                l4,
                l3_offset + ipv6::HEADER_LEN + upper.offset,
                true,
            )?;
        }
        _ => {
            return Ok(Parsed::NonIp {
                ethertype: ether_type,
            })
        }
    }
    Ok(Parsed::Ip(meta))
}

/// Walks stacked VLAN tags after the Ethernet header (which must start with a TPID).
/// Returns the innermost EtherType, the offset after the last tag and the outermost VLAN id.
#[inline]
fn walk_vlan_tags(frame: &[u8]) -> Result<(u16, usize, u16), ParseError> {
    let mut offset = ethernet::HEADER_LEN;
    let mut outer_vid = None;
    for _ in 0..vlan::MAX_TAGS {
        let tag = VlanTag::new_checked(frame.get(offset..).unwrap_or_default())?;
        let vid = *outer_vid.get_or_insert(tag.vid());
        offset += vlan::TAG_LEN;
        let next = tag.ethertype();
        if !vlan::is_vlan_tpid(next) {
            return Ok((next, offset, vid));
        }
    }
    Err(ParseError::TooManyVlanTags)
}

/// Fills the L4 fields of `meta` from `l4` (the bytes after the IP headers, padding
/// excluded) found at `l4_offset` in the frame.
#[inline]
fn parse_l4(
    meta: &mut PacketMeta,
    l4: &[u8],
    l4_offset: usize,
    is_v6: bool,
) -> Result<(), ParseError> {
    if meta.fragment == Fragment::Later {
        meta.payload_len = l4.len() as u16;
        return Ok(());
    }
    meta.l4_offset = l4_offset as u16;
    match meta.proto {
        proto::TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            meta.src_port = tcp.src_port();
            meta.dst_port = tcp.dst_port();
            meta.tcp_flags = tcp.flags();
            meta.tcp_seq = tcp.seq_number();
            meta.tcp_ack = tcp.ack_number();
            meta.tcp_window = tcp.window_len();
            if meta.tcp_flags & crate::packet::tcp_flags::SYN != 0 {
                meta.tcp_wscale = tcp.window_scale();
            }
            meta.payload_len = l4.len().saturating_sub(tcp.header_len()) as u16;
        }
        proto::UDP => {
            let udp = UdpPacket::new_checked(l4)?;
            meta.src_port = udp.src_port();
            meta.dst_port = udp.dst_port();
            meta.payload_len = udp.len().saturating_sub(udp::HEADER_LEN as u16);
        }
        proto::ICMP | proto::ICMPV6 if (meta.proto == proto::ICMPV6) == is_v6 => {
            let icmp = IcmpPacket::new_checked(l4)?;
            let msg_type = icmp.msg_type();
            if icmp::has_identifier(is_v6, msg_type) {
                meta.src_port = icmp.ident();
            }
            meta.dst_port = u16::from(msg_type) << 8 | u16::from(icmp.msg_code());
            meta.payload_len = l4.len().saturating_sub(icmp::HEADER_LEN) as u16;
        }
        proto::SCTP => {
            let sctp = SctpPacket::new_checked(l4)?;
            meta.src_port = sctp.src_port();
            meta.dst_port = sctp.dst_port();
            meta.payload_len = l4.len().saturating_sub(sctp::HEADER_LEN) as u16;
        }
        _ => meta.payload_len = l4.len() as u16,
    }
    Ok(())
}

#[cfg(test)]
mod parse_tests;
