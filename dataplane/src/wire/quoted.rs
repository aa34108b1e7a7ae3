//! The packet an ICMP/ICMPv6 error quotes (RFC 792, RFC 4443 §2.4): its IP header and at
//! least the first 8 bytes of its transport header, enough for the 5-tuple. The engine
//! looks that tuple's flow up so errors belong to their flow (conntrack's RELATED):
//! path-MTU discovery and traceroute work under `drop_strict`, and errors about flows
//! that never existed are dropped.

use super::field::{u16_at, u8_at};
use super::icmp::{self, IcmpPacket};
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::ParseError;
use crate::packet::{proto, v4_to_addr, PacketMeta};

/// ICMPv4 error types: destination unreachable (fragmentation needed included), time
/// exceeded, parameter problem. Redirects and source quench are not: a redirect changes
/// routing, not a flow, and source quench is deprecated (RFC 6633).
pub const V4_ERRORS: [u8; 3] = [
    icmp::icmpv4::DEST_UNREACHABLE,
    icmp::icmpv4::TIME_EXCEEDED,
    12,
];
/// ICMPv6 error types: destination unreachable, packet too big, time exceeded, parameter
/// problem.
pub const V6_ERRORS: [u8; 4] = [1, 2, 3, 4];

/// True when an ICMP message of `msg_type` is an error that quotes a packet.
#[inline]
pub fn is_error(is_v6: bool, msg_type: u8) -> bool {
    if is_v6 {
        V6_ERRORS.contains(&msg_type)
    } else {
        V4_ERRORS.contains(&msg_type)
    }
}

/// True for the IPv6 addresses that embed an IPv4 address: IPv4-mapped (`::ffff:0:0/96`)
/// and IPv4-compatible (`::/96` except `::` and `::1`). In one shared address space they
/// would alias IPv4 flows and rules, so packets carrying them are refused.
#[inline]
pub const fn embeds_ipv4(a: u128) -> bool {
    let high = a >> 32;
    high == 0xffff || (high == 0 && a > 1)
}

/// The quoted packet of the ICMP error `outer` (found at `outer.l4_offset` in `frame`) as
/// a [`PacketMeta`] with its protocol, addresses and ports (ICMP: identifier and
/// `type << 8 | code`, as the parser fills them), the outer VLAN and IP version.
///
/// # Errors
/// [`ParseError::BadIcmpQuote`] when the quote is not an IP header of the outer family
/// followed by 8 bytes of transport header, is a later fragment (no ports), or embeds
/// IPv4 in IPv6 addresses.
pub fn quoted_packet(frame: &[u8], outer: &PacketMeta) -> Result<PacketMeta, ParseError> {
    let start = usize::from(outer.l4_offset) + icmp::HEADER_LEN;
    let quote = frame.get(start..).unwrap_or_default();
    let bad = ParseError::BadIcmpQuote;
    let mut inner = PacketMeta {
        vlan: outer.vlan,
        ip_version: outer.ip_version,
        ..PacketMeta::default()
    };
    let l4 = if outer.ip_version == 4 {
        if quote.len() < ipv4::HEADER_LEN {
            return Err(bad);
        }
        // Not `new_checked`: the quoted total length is the original's, longer than the quote.
        let ip = Ipv4Packet::new_unchecked(quote);
        let header_len = ip.header_len();
        if ip.version() != 4 || header_len < ipv4::HEADER_LEN || ip.frag_offset() != 0 {
            return Err(bad);
        }
        inner.proto = ip.protocol();
        inner.src = v4_to_addr(ip.src_addr());
        inner.dst = v4_to_addr(ip.dst_addr());
        quote.get(header_len..).ok_or(bad)?
    } else {
        if quote.len() < ipv6::HEADER_LEN {
            return Err(bad);
        }
        let ip = Ipv6Packet::new_unchecked(quote);
        if ip.version() != 6 || embeds_ipv4(ip.src_addr()) || embeds_ipv4(ip.dst_addr()) {
            return Err(bad);
        }
        let rest = quote.get(ipv6::HEADER_LEN..).unwrap_or_default();
        let upper = ipv6::walk_extension_headers(ip.next_header(), rest).map_err(|_| bad)?;
        if upper.fragment == crate::packet::Fragment::Later {
            return Err(bad);
        }
        inner.proto = upper.proto;
        inner.src = ip.src_addr();
        inner.dst = ip.dst_addr();
        rest.get(upper.offset..).ok_or(bad)?
    };
    if l4.len() < 8 {
        return Err(bad);
    }
    match inner.proto {
        proto::TCP | proto::UDP | proto::SCTP => {
            inner.src_port = u16_at(l4, 0);
            inner.dst_port = u16_at(l4, 2);
        }
        proto::ICMP | proto::ICMPV6
            if (inner.proto == proto::ICMPV6) == (outer.ip_version == 6) =>
        {
            let msg = IcmpPacket::new_unchecked(l4);
            let is_v6 = outer.ip_version == 6;
            if is_error(is_v6, msg.msg_type()) {
                // An error about an error is never sent (RFC 1122 §3.2.2, RFC 4443 §2.4).
                return Err(bad);
            }
            if icmp::has_identifier(is_v6, msg.msg_type()) {
                inner.src_port = msg.ident();
            }
            inner.dst_port = u16::from(u8_at(l4, 0)) << 8 | u16::from(u8_at(l4, 1));
        }
        _ => {}
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Parsed;
    use crate::wire::build::{EchoKind, FrameBuilder};
    use crate::wire::parse_frame;

    fn meta(frame: &[u8]) -> PacketMeta {
        match parse_frame(frame) {
            Ok(Parsed::Ip(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// An ICMP error from `router` to the sender of `original`, quoting its first bytes.
    fn error_about(original: &[u8], router: &str, v6: bool, quote_len: usize) -> Vec<u8> {
        let m = meta(original);
        let sender = crate::packet::addr_to_ip(m.src);
        let b = FrameBuilder::new(router.parse().unwrap(), sender);
        let ip = &original[usize::from(m.l3_offset)..];
        let quote = &ip[..quote_len.min(ip.len())];
        let (t, c) = if v6 { (2, 0) } else { (3, 4) };
        b.icmp(t, c, [0, 0, 0x05, 0x00], quote)
    }

    #[test]
    fn udp_tcp_and_echo_quotes_give_the_original_tuple() {
        let b = FrameBuilder::new("198.18.0.1".parse().unwrap(), "198.18.1.2".parse().unwrap());
        let udp = b.udp(4000, 53, &[0; 1400]);
        let err = error_about(&udp, "198.18.0.2", false, 28);
        let outer = meta(&err);
        assert!(outer.icmp_error);
        let inner = quoted_packet(&err, &outer).unwrap();
        let orig = meta(&udp);
        assert_eq!(
            (
                inner.proto,
                inner.src,
                inner.dst,
                inner.src_port,
                inner.dst_port
            ),
            (orig.proto, orig.src, orig.dst, orig.src_port, orig.dst_port)
        );
        let echo = b.icmp_echo(EchoKind::Request, 77, 1, &[0; 1400]);
        let err = error_about(&echo, "198.18.0.2", false, 28);
        let inner = quoted_packet(&err, &meta(&err)).unwrap();
        assert_eq!((inner.src_port, inner.dst_port >> 8), (77, 8));

        let b6 = FrameBuilder::new("2001:2::1".parse().unwrap(), "2001:2:1::2".parse().unwrap());
        let udp6 = b6.udp(4000, 53, &[0; 1400]);
        let err6 = error_about(&udp6, "2001:2::2", true, 1232);
        let inner = quoted_packet(&err6, &meta(&err6)).unwrap();
        assert_eq!(
            (inner.src_port, inner.dst_port, inner.proto),
            (4000, 53, proto::UDP)
        );
    }

    #[test]
    fn short_or_foreign_quotes_are_refused() {
        let b = FrameBuilder::new("198.18.0.1".parse().unwrap(), "198.18.1.2".parse().unwrap());
        let udp = b.udp(4000, 53, &[0; 100]);
        // 20 bytes of IP header and only 4 of UDP.
        let err = error_about(&udp, "198.18.0.2", false, 24);
        assert_eq!(
            quoted_packet(&err, &meta(&err)),
            Err(ParseError::BadIcmpQuote)
        );
        // An IPv6 quote inside ICMPv4.
        let b6 = FrameBuilder::new("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
        let udp6 = b6.udp(1, 2, &[0; 10]);
        let m6 = meta(&udp6);
        let quote = &udp6[usize::from(m6.l3_offset)..];
        let err = FrameBuilder::new("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap())
            .icmp(3, 3, [0; 4], quote);
        assert_eq!(
            quoted_packet(&err, &meta(&err)),
            Err(ParseError::BadIcmpQuote)
        );
    }

    #[test]
    fn embedded_ipv4_addresses() {
        assert!(embeds_ipv4(0xffff_c612_0001));
        assert!(embeds_ipv4(0xc612_0001));
        assert!(!embeds_ipv4(0));
        assert!(!embeds_ipv4(1));
        assert!(!embeds_ipv4(0x2001_0002_u128 << 96 | 1));
    }
}
