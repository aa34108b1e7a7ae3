//! The contract between the parser and everything after it: what one parsed frame says,
//! in fixed-size plain fields, so the flow table and the policy never touch raw bytes.

/// An IP address in one 128-bit space: IPv6 as is, IPv4 as an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`), so one comparison and one CIDR routine serve both families.
pub type Addr = u128;

const V4_MAPPED_PREFIX: u128 = 0xffff_u128 << 32;

/// Maps an IPv4 address (host order `u32`) into the shared 128-bit space.
#[inline]
pub const fn v4_to_addr(v4: u32) -> Addr {
    V4_MAPPED_PREFIX | v4 as u128
}

/// True when `a` is an IPv4-mapped address.
#[inline]
pub const fn addr_is_v4(a: Addr) -> bool {
    (a >> 32) == 0xffff
}

/// Formats an [`Addr`] as the operator expects it (dotted quad for IPv4).
pub fn addr_to_ip(a: Addr) -> std::net::IpAddr {
    if addr_is_v4(a) {
        std::net::IpAddr::V4(std::net::Ipv4Addr::from(a as u32))
    } else {
        std::net::IpAddr::V6(std::net::Ipv6Addr::from(a))
    }
}

/// Parses an `IpAddr` into the shared space.
pub fn ip_to_addr(ip: std::net::IpAddr) -> Addr {
    match ip {
        std::net::IpAddr::V4(v4) => v4_to_addr(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

/// IANA protocol numbers the data path treats specially.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// TCP flag bits as they appear in the header's flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Where an IP packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    #[default]
    None,
    /// First fragment (offset 0, more fragments follow): carries the L4 header.
    First,
    /// A later fragment: no L4 header, ports are zero.
    Later,
}

/// Everything the flow table and the policy need from one IP packet.
///
/// Ports: TCP/UDP/SCTP source and destination ports. For ICMP and ICMPv6,
/// `src_port` is the identifier (echo / timestamp / info messages, else 0) and
/// `dst_port` is `type << 8 | code`; the flow key turns that into a direction-independent
/// key (an echo reply finds its request's flow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Outermost 802.1Q VLAN id (0 when untagged).
    pub vlan: u16,
    /// Offset of the IP header in the frame.
    pub l3_offset: u16,
    /// Offset of the L4 header in the frame (0 for later fragments).
    pub l4_offset: u16,
    /// IP version: 4 or 6.
    pub ip_version: u8,
    /// IANA protocol of the L4 header (after IPv6 extension headers).
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (0 for other protocols).
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_window: u16,
    /// The window scale option's shift, on SYN segments that carry one (else `None`).
    pub tcp_wscale: Option<u8>,
    /// L4 payload length in bytes (TCP: segment data length; used for sequence tracking).
    pub payload_len: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub fragment: Fragment,
    /// Length of the frame on the wire (bytes counted per flow).
    pub frame_len: u16,
}

impl PacketMeta {
    #[inline]
    pub fn is_tcp(&self) -> bool {
        self.proto == proto::TCP
    }
    #[inline]
    pub fn has_flag(&self, flag: u8) -> bool {
        self.tcp_flags & flag != 0
    }
}

/// What the parser made of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An IP packet with its metadata.
    Ip(PacketMeta),
    /// A well-formed non-IP frame (ARP, LLDP, …) with its innermost ethertype.
    NonIp { ethertype: u16 },
}

/// A 5-tuple in one direction, as the stateful rules and the flow operations see a flow:
/// `src` is the side that opened it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

impl Tuple {
    #[inline]
    pub fn of(p: &PacketMeta) -> Self {
        Tuple {
            proto: p.proto,
            src: p.src,
            dst: p.dst,
            src_port: p.src_port,
            dst_port: p.dst_port,
        }
    }
    #[inline]
    pub fn reversed(&self) -> Self {
        Tuple {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

/// The verdict a flow carries (decided once, on its first packet, by the stateful engine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Verdict {
    #[default]
    Pass = 0,
    Drop = 1,
    /// Drop and answer TCP with a RST (other protocols: drop).
    Reject = 2,
    /// `aws:drop_established`: let the TCP handshake through, drop the flow's packets once
    /// it is established; connectionless flows are dropped.
    DropEstablished = 3,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
            Verdict::DropEstablished => "drop_established",
        }
    }
    pub fn from_u8(v: u8) -> Verdict {
        match v {
            1 => Verdict::Drop,
            2 => Verdict::Reject,
            3 => Verdict::DropEstablished,
            _ => Verdict::Pass,
        }
    }
}
