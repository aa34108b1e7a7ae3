//! Frame building: complete, valid frames for tests, the pcap generator and the benchmark
//! ([`FrameBuilder`], allocating), and the packet-path TCP RST generators
//! ([`build_tcp_rst`], [`build_tcp_rst_forward`]: no allocation, no panic).

use std::net::IpAddr;

use super::ethernet::{self, ethertype, EthernetFrame, MacAddr, MIN_FRAME_LEN};
use super::icmp::{self, icmpv4, icmpv6, IcmpPacket};
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, next_header, Ipv6FragmentHeader, Ipv6Packet};
use super::sctp::{self, SctpPacket};
use super::tcp::{self, TcpPacket};
use super::udp::{self, UdpPacket};
use super::vlan::{self, VlanTag};
use crate::packet::{addr_is_v4, ip_to_addr, proto, tcp_flags, Addr, Fragment, PacketMeta};

/// TTL / hop limit of generated RSTs.
pub const RST_TTL: u8 = 64;

/// Default MACs of built frames (locally administered).
pub const DEFAULT_SRC_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x01];
pub const DEFAULT_DST_MAC: MacAddr = [0x02, 0, 0, 0, 0, 0x02];

/// The TCP header fields and data of a segment to build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// Flags byte (see [`crate::packet::tcp_flags`]).
    pub flags: u8,
    pub window: u16,
    /// Raw options, padded with zeros (end of option list) to a multiple of 4, at most 40.
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

/// Echo request or echo reply (ICMP types 8/0, ICMPv6 types 128/129).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoKind {
    Request,
    Reply,
}

/// Builds complete Ethernet frames with correct lengths and checksums.
///
/// The IP family follows the addresses: IPv6 if either is IPv6 (an IPv4 address is then
/// used as its IPv4-mapped IPv6 form), else IPv4. Frames are padded with zeros to the
/// 60-byte Ethernet minimum unless [`FrameBuilder::no_padding`].
///
/// ```
/// use dataplane::wire::build::{FrameBuilder, TcpSegment};
/// let frame = FrameBuilder::new("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
///     .vlan(100)
///     .tcp(&TcpSegment { src_port: 40000, dst_port: 80, flags: 0x02, ..Default::default() });
/// assert_eq!(frame.len(), 60); // 58 bytes of headers, padded to the Ethernet minimum
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBuilder {
    src_mac: MacAddr,
    dst_mac: MacAddr,
    /// (TPID, VLAN id), outermost first.
    vlans: Vec<(u16, u16)>,
    src: Addr,
    dst: Addr,
    is_v6: bool,
    ttl: u8,
    ident: u32,
    ipv4_options: Vec<u8>,
    ipv6_ext_headers: Vec<u8>,
    /// (offset in bytes, more fragments).
    fragment: Option<(u16, bool)>,
    pad: bool,
}

impl FrameBuilder {
    pub fn new(src: IpAddr, dst: IpAddr) -> Self {
        let is_v6 = src.is_ipv6() || dst.is_ipv6();
        let to_addr = |ip: IpAddr| match ip {
            IpAddr::V4(v4) if is_v6 => u128::from(v4.to_ipv6_mapped()),
            _ => ip_to_addr(ip),
        };
        FrameBuilder {
            src_mac: DEFAULT_SRC_MAC,
            dst_mac: DEFAULT_DST_MAC,
            vlans: Vec::new(),
            src: to_addr(src),
            dst: to_addr(dst),
            is_v6,
            ttl: 64,
            ident: 0x1234,
            ipv4_options: Vec::new(),
            ipv6_ext_headers: Vec::new(),
            fragment: None,
            pad: true,
        }
    }

    /// Sets the source and destination MAC addresses.
    pub fn macs(mut self, src: MacAddr, dst: MacAddr) -> Self {
        self.src_mac = src;
        self.dst_mac = dst;
        self
    }

    /// Adds an 802.1Q tag (TPID 0x8100) inside the tags added so far.
    pub fn vlan(self, vid: u16) -> Self {
        self.vlan_with_tpid(ethertype::VLAN, vid)
    }

    /// Adds a tag with the given TPID (e.g. 0x88a8 for a QinQ outer tag).
    pub fn vlan_with_tpid(mut self, tpid: u16, vid: u16) -> Self {
        self.vlans.push((tpid, vid & 0x0fff));
        self
    }

    /// Sets the IPv4 TTL or IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 identification (low 16 bits) or IPv6 fragment identification.
    pub fn ident(mut self, ident: u32) -> Self {
        self.ident = ident;
        self
    }

    /// IPv4 options, zero-padded to a multiple of 4 and cut at 40 bytes. Ignored for IPv6.
    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        self.ipv4_options = padded(options, 40);
        self
    }

    /// Appends a minimal IPv6 extension header of this kind ([`next_header::HOP_BY_HOP`],
    /// `ROUTING`, `DEST_OPTS` or `AUTH`; others are ignored). Ignored for IPv4.
    pub fn ipv6_ext_header(mut self, kind: u8) -> Self {
        if matches!(
            kind,
            next_header::HOP_BY_HOP
                | next_header::ROUTING
                | next_header::DEST_OPTS
                | next_header::AUTH
        ) {
            self.ipv6_ext_headers.push(kind);
        }
        self
    }

    /// Marks the packet as a fragment: offset in bytes (rounded down to a multiple of 8) and
    /// the more-fragments flag. IPv4 sets the header fields; IPv6 adds a fragment header
    /// after the other extension headers. The L4 bytes are built as if unfragmented.
    pub fn fragment(mut self, offset: u16, more_frags: bool) -> Self {
        self.fragment = Some((offset & !7, more_frags));
        self
    }

    /// Does not pad the frame to the 60-byte Ethernet minimum.
    pub fn no_padding(mut self) -> Self {
        self.pad = false;
        self
    }

    /// Where the parser will say this packet sits in a fragmented datagram.
    pub fn fragment_kind(&self) -> Fragment {
        match self.fragment {
            None | Some((0, false)) => Fragment::None,
            Some((0, true)) => Fragment::First,
            Some(_) => Fragment::Later,
        }
    }

    /// Offset of the IP header in built frames.
    pub fn l3_offset(&self) -> usize {
        ethernet::HEADER_LEN + vlan::TAG_LEN * self.vlans.len()
    }

    /// Length of the IP header(s) in built frames, IPv6 extension headers included.
    pub fn ip_headers_len(&self) -> usize {
        if self.is_v6 {
            let ext: usize = self
                .ipv6_ext_headers
                .iter()
                .map(|&k| ext_header_len(k))
                .sum();
            let frag = if self.fragment.is_some() {
                ipv6::FRAGMENT_HEADER_LEN
            } else {
                0
            };
            ipv6::HEADER_LEN + ext + frag
        } else {
            ipv4::HEADER_LEN + self.ipv4_options.len()
        }
    }

    /// A TCP segment.
    pub fn tcp(&self, segment: &TcpSegment<'_>) -> Vec<u8> {
        let options = padded(segment.options, 40);
        let header_len = tcp::HEADER_LEN + options.len();
        let mut l4 = vec![0u8; header_len + segment.payload.len()];
        l4[tcp::HEADER_LEN..header_len].copy_from_slice(&options);
        l4[header_len..].copy_from_slice(segment.payload);
        let mut t = TcpPacket::new_unchecked(&mut l4[..]);
        t.set_src_port(segment.src_port);
        t.set_dst_port(segment.dst_port);
        t.set_seq_number(segment.seq);
        t.set_ack_number(segment.ack);
        t.set_header_len(header_len);
        t.set_flags(segment.flags);
        t.set_window_len(segment.window);
        if self.is_v6 {
            t.fill_checksum_v6(self.src, self.dst);
        } else {
            t.fill_checksum_v4(self.src as u32, self.dst as u32);
        }
        self.ip_packet(proto::TCP, &l4)
    }

    /// A UDP datagram.
    pub fn udp(&self, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; udp::HEADER_LEN + payload.len()];
        l4[udp::HEADER_LEN..].copy_from_slice(payload);
        let mut u = UdpPacket::new_unchecked(&mut l4[..]);
        u.set_src_port(src_port);
        u.set_dst_port(dst_port);
        u.set_len((udp::HEADER_LEN + payload.len()) as u16);
        if self.is_v6 {
            u.fill_checksum_v6(self.src, self.dst);
        } else {
            u.fill_checksum_v4(self.src as u32, self.dst as u32);
        }
        self.ip_packet(proto::UDP, &l4)
    }

    /// An ICMP echo (IPv4) or ICMPv6 echo (IPv6) request or reply.
    pub fn icmp_echo(&self, kind: EchoKind, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let msg_type = match (self.is_v6, kind) {
            (false, EchoKind::Request) => icmpv4::ECHO_REQUEST,
            (false, EchoKind::Reply) => icmpv4::ECHO_REPLY,
            (true, EchoKind::Request) => icmpv6::ECHO_REQUEST,
            (true, EchoKind::Reply) => icmpv6::ECHO_REPLY,
        };
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&ident.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        self.icmp(msg_type, 0, rest, payload)
    }

    /// Any ICMP (IPv4) or ICMPv6 (IPv6) message: type, code, the 4 message-specific bytes
    /// and the data.
    pub fn icmp(&self, msg_type: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; icmp::HEADER_LEN + payload.len()];
        l4[4..8].copy_from_slice(&rest);
        l4[icmp::HEADER_LEN..].copy_from_slice(payload);
        let mut i = IcmpPacket::new_unchecked(&mut l4[..]);
        i.set_msg_type(msg_type);
        i.set_msg_code(code);
        if self.is_v6 {
            i.fill_checksum_v6(self.src, self.dst);
            self.ip_packet(proto::ICMPV6, &l4)
        } else {
            i.fill_checksum_v4();
            self.ip_packet(proto::ICMP, &l4)
        }
    }

    /// An SCTP packet with the given verification tag and raw chunks, CRC32c filled.
    pub fn sctp(&self, src_port: u16, dst_port: u16, vtag: u32, chunks: &[u8]) -> Vec<u8> {
        let mut l4 = vec![0u8; sctp::HEADER_LEN + chunks.len()];
        l4[sctp::HEADER_LEN..].copy_from_slice(chunks);
        let mut s = SctpPacket::new_unchecked(&mut l4[..]);
        s.set_src_port(src_port);
        s.set_dst_port(dst_port);
        s.set_verification_tag(vtag);
        s.fill_checksum();
        self.ip_packet(proto::SCTP, &l4)
    }

    /// Wraps raw upper-layer bytes of protocol `protocol` (taken as is) in IP and Ethernet.
    pub fn ip_packet(&self, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let l3_offset = self.l3_offset();
        let ip_headers_len = self.ip_headers_len();
        let l4_offset = l3_offset + ip_headers_len;
        let len = l4_offset + l4.len();
        let mut frame = vec![
            0u8;
            if self.pad {
                len.max(MIN_FRAME_LEN)
            } else {
                len
            }
        ];
        frame[l4_offset..len].copy_from_slice(l4);

        let ip_ethertype = if self.is_v6 {
            ethertype::IPV6
        } else {
            ethertype::IPV4
        };
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        eth.set_ethertype(self.vlans.first().map_or(ip_ethertype, |&(tpid, _)| tpid));
        for (i, &(_, vid)) in self.vlans.iter().enumerate() {
            let next = self
                .vlans
                .get(i + 1)
                .map_or(ip_ethertype, |&(tpid, _)| tpid);
            let at = ethernet::HEADER_LEN + i * vlan::TAG_LEN;
            let mut tag = VlanTag::new_unchecked(&mut frame[at..]);
            tag.set_tci(0, false, vid);
            tag.set_ethertype(next);
        }

        let ip = &mut frame[l3_offset..len];
        if self.is_v6 {
            self.emit_ipv6(ip, protocol, ip_headers_len);
        } else {
            self.emit_ipv4(ip, protocol, ip_headers_len);
        }
        frame
    }

    /// The upper-layer bytes `l4` of protocol `protocol` cut into IP fragments of
    /// `chunk` bytes (rounded down to a multiple of 8, at least 8), as a sender's stack
    /// does: the first carries the L4 header, the last clears more-fragments.
    pub fn fragments(&self, protocol: u8, l4: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let chunk = (chunk / 8 * 8).max(8);
        l4.chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let offset = (i * chunk) as u16;
                let more = (i + 1) * chunk < l4.len();
                self.clone()
                    .fragment(offset, more)
                    .ip_packet(protocol, part)
            })
            .collect()
    }

    /// The UDP header and payload bytes [`Self::udp`] would put in one datagram (checksum
    /// filled), for [`Self::fragments`].
    pub fn udp_l4(&self, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut whole = self.clone();
        whole.fragment = None;
        whole.pad = false;
        let frame = whole.udp(src_port, dst_port, payload);
        frame[whole.l3_offset() + whole.ip_headers_len()..].to_vec()
    }

    fn emit_ipv4(&self, ip: &mut [u8], protocol: u8, header_len: usize) {
        ip[ipv4::HEADER_LEN..header_len].copy_from_slice(&self.ipv4_options);
        let (offset, more) = self.fragment.unwrap_or((0, false));
        let total_len = ip.len() as u16;
        let mut p = Ipv4Packet::new_unchecked(ip);
        p.set_version_and_header_len(header_len);
        p.set_total_len(total_len);
        p.set_ident(self.ident as u16);
        p.set_flags_and_frag_offset(self.fragment.is_none(), more, offset);
        p.set_ttl(self.ttl);
        p.set_protocol(protocol);
        p.set_src_addr(self.src as u32);
        p.set_dst_addr(self.dst as u32);
        p.fill_checksum();
    }

    fn emit_ipv6(&self, ip: &mut [u8], protocol: u8, headers_len: usize) {
        let payload_len = (ip.len() - ipv6::HEADER_LEN) as u16;
        // The chain: extension headers in order, then the fragment header, then `protocol`.
        let mut kinds: Vec<u8> = self.ipv6_ext_headers.clone();
        if self.fragment.is_some() {
            kinds.push(next_header::FRAGMENT);
        }
        let mut at = ipv6::HEADER_LEN;
        for (i, &kind) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(protocol);
            if kind == next_header::FRAGMENT {
                let (offset, more) = self.fragment.unwrap_or((0, false));
                Ipv6FragmentHeader::new_unchecked(&mut ip[at..])
                    .emit(next, offset, more, self.ident);
                at += ipv6::FRAGMENT_HEADER_LEN;
            } else {
                let len = ext_header_len(kind);
                let h = &mut ip[at..at + len];
                h[0] = next;
                h[1] = if kind == next_header::AUTH {
                    (len / 4 - 2) as u8
                } else {
                    (len / 8 - 1) as u8
                };
                if kind != next_header::AUTH && kind != next_header::ROUTING {
                    // One PadN option filling the 6 option bytes.
                    h[2..4].copy_from_slice(&[1, 4]);
                }
                at += len;
            }
        }
        debug_assert_eq!(at, headers_len);
        let first = kinds.first().copied().unwrap_or(protocol);
        let mut p = Ipv6Packet::new_unchecked(ip);
        p.set_version_tc_flow(0, 0);
        p.set_payload_len(payload_len);
        p.set_next_header(first);
        p.set_hop_limit(self.ttl);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

/// `frame` (untagged Ethernet carrying IPv4 or IPv6) with an MPLS label stack of `labels`
/// inserted after the Ethernet header (EtherType 0x8847, TTL 64, bottom-of-stack on the last).
pub fn encapsulate_mpls(frame: &[u8], labels: &[u32]) -> Vec<u8> {
    let mut out = frame[..ethernet::HEADER_LEN].to_vec();
    out[12..14].copy_from_slice(&super::encap::ethertype::MPLS_UNICAST.to_be_bytes());
    for (i, &label) in labels.iter().enumerate() {
        let bos = u32::from(i + 1 == labels.len());
        out.extend_from_slice(&((label & 0xf_ffff) << 12 | bos << 8 | 64).to_be_bytes());
    }
    out.extend_from_slice(&frame[ethernet::HEADER_LEN..]);
    out
}

/// `frame` (untagged Ethernet carrying IPv4 or IPv6, no link padding) as a PPPoE session
/// frame of session `session` (EtherType 0x8864, PPP protocol 0x0021 / 0x0057).
pub fn encapsulate_pppoe(frame: &[u8], session: u16) -> Vec<u8> {
    let ip = &frame[ethernet::HEADER_LEN..];
    let ppp_proto = if ip.first().map(|b| b >> 4) == Some(6) {
        super::encap::ppp::IPV6
    } else {
        super::encap::ppp::IPV4
    };
    let mut out = frame[..ethernet::HEADER_LEN].to_vec();
    out[12..14].copy_from_slice(&super::encap::ethertype::PPPOE_SESSION.to_be_bytes());
    out.extend_from_slice(&[0x11, 0]);
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&ppp_proto.to_be_bytes());
    out.extend_from_slice(ip);
    out
}

/// Bytes of the minimal extension header the builder emits for `kind`.
fn ext_header_len(kind: u8) -> usize {
    if kind == next_header::AUTH {
        16 // next, len, reserved, SPI, sequence, 32-bit ICV
    } else {
        8
    }
}

fn padded(bytes: &[u8], max: usize) -> Vec<u8> {
    let mut v = bytes[..bytes.len().min(max)].to_vec();
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

/// Builds, into `out`, the TCP RST answering the received TCP `frame` (parsed as `meta`):
/// back to its sender, per RFC 9293 §3.10.7.1.
///
/// MACs, IP addresses and ports are swapped, the VLAN tags kept; the IP header has no
/// options or extension headers and TTL/hop limit [`RST_TTL`]. If the segment had ACK:
/// `seq = SEG.ACK`, flags RST; otherwise `seq = 0`, `ack = SEG.SEQ + SEG.LEN` (SYN and FIN
/// count one each), flags RST|ACK. Checksums are filled and the frame is zero-padded to 60
/// bytes. Returns the frame length, or `None` if `meta` is not an unfragmented or first-
/// fragment TCP packet of `frame` or `out` is too small.
///
/// Packet path: no allocation, no panic.
pub fn build_tcp_rst(frame: &[u8], meta: &PacketMeta, out: &mut [u8]) -> Option<usize> {
    if !meta.is_tcp() || meta.fragment == Fragment::Later {
        return None;
    }
    let (seq, ack, flags) = if meta.has_flag(tcp_flags::ACK) {
        (meta.tcp_ack, 0, tcp_flags::RST)
    } else {
        let seg_len = u32::from(meta.payload_len)
            + u32::from(meta.has_flag(tcp_flags::SYN))
            + u32::from(meta.has_flag(tcp_flags::FIN));
        (
            0,
            meta.tcp_seq.wrapping_add(seg_len),
            tcp_flags::RST | tcp_flags::ACK,
        )
    };
    let reply = TcpReply {
        src: meta.dst,
        dst: meta.src,
        src_port: meta.dst_port,
        dst_port: meta.src_port,
        seq,
        ack,
        flags,
    };
    write_tcp_frame(frame, meta, true, &reply, out)
}

/// Builds, into `out`, a TCP RST that continues in the direction of the received `frame`
/// (same MACs, VLAN tags, addresses and ports) with sequence number `seq`: it resets the
/// receiver of `frame` when its peer's next sequence number is known (from a flushed flow).
///
/// Flags RST only, ack 0, TTL/hop limit [`RST_TTL`], no IP options, checksums filled,
/// zero-padded to 60 bytes. Returns the frame length, or `None` as [`build_tcp_rst`].
///
/// Packet path: no allocation, no panic.
pub fn build_tcp_rst_forward(
    frame: &[u8],
    meta: &PacketMeta,
    seq: u32,
    out: &mut [u8],
) -> Option<usize> {
    if !meta.is_tcp() || meta.fragment == Fragment::Later {
        return None;
    }
    let reply = TcpReply {
        src: meta.src,
        dst: meta.dst,
        src_port: meta.src_port,
        dst_port: meta.dst_port,
        seq,
        ack: 0,
        flags: tcp_flags::RST,
    };
    write_tcp_frame(frame, meta, false, &reply, out)
}

/// The L3/L4 fields of a generated bare TCP segment.
struct TcpReply {
    src: Addr,
    dst: Addr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
}

/// Writes the L2 header of `frame` (MACs swapped if asked) and a fresh IP + 20-byte TCP
/// header for `reply` into `out`.
fn write_tcp_frame(
    frame: &[u8],
    meta: &PacketMeta,
    swap_macs: bool,
    reply: &TcpReply,
    out: &mut [u8],
) -> Option<usize> {
    let l2_len = usize::from(meta.l3_offset);
    let l2 = frame.get(..l2_len)?;
    if l2_len < ethernet::HEADER_LEN {
        return None;
    }
    let ip_len = match meta.ip_version {
        4 if addr_is_v4(reply.src) && addr_is_v4(reply.dst) => ipv4::HEADER_LEN,
        6 => ipv6::HEADER_LEN,
        _ => return None,
    };
    let len = l2_len + ip_len + tcp::HEADER_LEN;
    let frame_len = len.max(MIN_FRAME_LEN);
    let out = out.get_mut(..frame_len)?;
    let (l2_out, rest) = out.split_at_mut_checked(l2_len)?;
    let (l3_out, rest) = rest.split_at_mut_checked(ip_len)?;
    let (l4_out, padding) = rest.split_at_mut_checked(tcp::HEADER_LEN)?;
    l2_out.copy_from_slice(l2);
    padding.fill(0);
    if swap_macs {
        let original = EthernetFrame::new_unchecked(l2);
        let mut eth = EthernetFrame::new_unchecked(&mut *l2_out);
        eth.set_src_addr(original.dst_addr());
        eth.set_dst_addr(original.src_addr());
    }

    let mut tcp = TcpPacket::new_unchecked(&mut *l4_out);
    tcp.set_src_port(reply.src_port);
    tcp.set_dst_port(reply.dst_port);
    tcp.set_seq_number(reply.seq);
    tcp.set_ack_number(reply.ack);
    tcp.set_header_len(tcp::HEADER_LEN);
    tcp.set_flags(reply.flags);
    tcp.set_window_len(0);
    tcp.set_urgent_at(0);

    if ip_len == ipv4::HEADER_LEN {
        let (src, dst) = (reply.src as u32, reply.dst as u32);
        tcp.fill_checksum_v4(src, dst);
        let mut ip = Ipv4Packet::new_unchecked(l3_out);
        ip.set_version_and_header_len(ipv4::HEADER_LEN);
        ip.set_dscp_ecn(0);
        ip.set_total_len((ipv4::HEADER_LEN + tcp::HEADER_LEN) as u16);
        ip.set_ident(0);
        ip.set_flags_and_frag_offset(true, false, 0);
        ip.set_ttl(RST_TTL);
        ip.set_protocol(proto::TCP);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    } else {
        tcp.fill_checksum_v6(reply.src, reply.dst);
        let mut ip = Ipv6Packet::new_unchecked(l3_out);
        ip.set_version_tc_flow(0, 0);
        ip.set_payload_len(tcp::HEADER_LEN as u16);
        ip.set_next_header(proto::TCP);
        ip.set_hop_limit(RST_TTL);
        ip.set_src_addr(reply.src);
        ip.set_dst_addr(reply.dst);
    }
    Some(frame_len)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::{v4_to_addr, Parsed};
    use crate::wire::parse_frame;

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn meta_of(frame: &[u8]) -> PacketMeta {
        match parse_frame(frame) {
            Ok(Parsed::Ip(meta)) => meta,
            other => panic!("not IP: {other:?}"),
        }
    }

    #[test]
    fn tcp_v4_frame_is_exactly_the_expected_bytes() {
        let frame = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2")).tcp(&TcpSegment {
            src_port: 40000,
            dst_port: 80,
            seq: 1,
            flags: tcp_flags::SYN,
            window: 1024,
            ..Default::default()
        });
        #[rustfmt::skip]
        let expected: [u8; 60] = [
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0x00, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0,
        ];
        // Everything but the two checksums, which are verified separately.
        let mut masked = frame.clone();
        masked[24..26].fill(0);
        masked[50..52].fill(0);
        assert_eq!(masked, expected);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.checksum_valid());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.checksum_valid_v4(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn rst_for_segment_with_ack_uses_its_ack_as_seq() {
        let frame = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"))
            .vlan_with_tpid(ethertype::QINQ, 10)
            .vlan(20)
            .ipv4_options(&[1, 1, 1, 1])
            .tcp(&TcpSegment {
                src_port: 40000,
                dst_port: 22,
                seq: 1000,
                ack: 5000,
                flags: tcp_flags::ACK | tcp_flags::PSH,
                window: 512,
                payload: b"data",
                ..Default::default()
            });
        let meta = meta_of(&frame);
        let mut out = [0xffu8; 128];
        let len = build_tcp_rst(&frame, &meta, &mut out).unwrap();
        assert_eq!(len, 14 + 8 + 20 + 20);
        let rst = &out[..len];
        assert_eq!(&rst[0..6], &frame[6..12], "dst MAC = original src");
        assert_eq!(&rst[6..12], &frame[0..6]);
        assert_eq!(&rst[12..22], &frame[12..22], "VLAN tags kept");
        let r = meta_of(rst);
        assert_eq!(
            (r.src, r.dst),
            (v4_to_addr(0xc612_0002), v4_to_addr(0xc612_0001))
        );
        assert_eq!((r.src_port, r.dst_port), (22, 40000));
        assert_eq!(
            (r.tcp_seq, r.tcp_ack, r.tcp_flags),
            (5000, 0, tcp_flags::RST)
        );
        assert_eq!((r.ttl, r.vlan, r.payload_len), (RST_TTL, 10, 0));
        let ip = Ipv4Packet::new_checked(&rst[22..]).unwrap();
        assert!(ip.checksum_valid());
        assert_eq!(ip.header_len(), 20, "no options in the reply");
        assert!(TcpPacket::new_checked(ip.payload())
            .unwrap()
            .checksum_valid_v4(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn rst_for_syn_fin_without_ack_acks_the_segment() {
        let b = FrameBuilder::new(ip("2001:2::1"), ip("2001:2::2"))
            .ipv6_ext_header(next_header::HOP_BY_HOP);
        let frame = b.tcp(&TcpSegment {
            src_port: 1,
            dst_port: 2,
            seq: u32::MAX - 1,
            flags: tcp_flags::SYN | tcp_flags::FIN,
            payload: b"xyz",
            ..Default::default()
        });
        let meta = meta_of(&frame);
        let mut out = [0u8; 128];
        let len = build_tcp_rst(&frame, &meta, &mut out).unwrap();
        assert_eq!(len, 14 + 40 + 20);
        let r = meta_of(&out[..len]);
        assert_eq!(r.tcp_seq, 0);
        assert_eq!(r.tcp_ack, (u32::MAX - 1).wrapping_add(3 + 2), "wraps");
        assert_eq!(r.tcp_flags, tcp_flags::RST | tcp_flags::ACK);
        assert_eq!((r.src, r.dst), (meta.dst, meta.src));
        assert_eq!(r.l4_offset, 54, "no extension headers in the reply");
        let ip = Ipv6Packet::new_checked(&out[14..len]).unwrap();
        assert!(TcpPacket::new_checked(ip.payload())
            .unwrap()
            .checksum_valid_v6(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn rst_forward_keeps_direction() {
        let frame = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"))
            .vlan(7)
            .tcp(&TcpSegment {
                src_port: 40000,
                dst_port: 443,
                seq: 10,
                ack: 20,
                flags: tcp_flags::ACK,
                ..Default::default()
            });
        let meta = meta_of(&frame);
        let mut out = [0u8; 64];
        let len = build_tcp_rst_forward(&frame, &meta, 777, &mut out).unwrap();
        assert_eq!(len, 60, "14 + 4 + 20 + 20 = 58, padded");
        let r = meta_of(&out[..len]);
        assert_eq!(&out[..18], &frame[..18], "same MACs and tag");
        assert_eq!(
            (r.src, r.dst, r.src_port, r.dst_port),
            (meta.src, meta.dst, 40000, 443)
        );
        assert_eq!(
            (r.tcp_seq, r.tcp_ack, r.tcp_flags),
            (777, 0, tcp_flags::RST)
        );
    }

    #[test]
    fn rst_pads_short_frames_with_zeros() {
        let frame = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2")).tcp(&TcpSegment {
            flags: tcp_flags::ACK,
            ..Default::default()
        });
        let meta = meta_of(&frame);
        let mut out = [0xeeu8; 80];
        assert_eq!(build_tcp_rst(&frame, &meta, &mut out), Some(60));
        assert_eq!(out[54..60], [0; 6]);
        assert_eq!(out[60], 0xee, "nothing written past the frame");
    }

    #[test]
    fn rst_refuses_small_buffers_and_non_tcp() {
        let b = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
        let frame = b.tcp(&TcpSegment::default());
        let meta = meta_of(&frame);
        assert_eq!(build_tcp_rst(&frame, &meta, &mut [0u8; 59]), None);
        assert_eq!(
            build_tcp_rst_forward(&frame, &meta, 1, &mut [0u8; 59]),
            None
        );
        let udp = b.udp(1, 2, b"");
        assert_eq!(build_tcp_rst(&udp, &meta_of(&udp), &mut [0u8; 128]), None);
        let later = b.clone().fragment(64, false).tcp(&TcpSegment::default());
        assert_eq!(
            build_tcp_rst(&later, &meta_of(&later), &mut [0u8; 128]),
            None
        );
        // A meta that does not belong to the frame must not panic.
        let bogus = PacketMeta {
            l3_offset: 500,
            ..meta
        };
        assert_eq!(build_tcp_rst(&frame, &bogus, &mut [0u8; 128]), None);
    }
}
