//! The two encapsulations that carry IP over Ethernet besides plain EtherType dispatch:
//! MPLS label stacks (RFC 3032) and PPPoE sessions (RFC 2516). The parser looks through
//! them so the IP inside is inspected like any IP, instead of passing as "non-IP".

use super::field::{u16_at, u32_at, u8_at};
use super::ParseError;

/// EtherTypes of the encapsulations.
pub mod ethertype {
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    pub const PPPOE_SESSION: u16 = 0x8864;
}

/// Longest MPLS label stack the parser walks (real stacks are 1-4 deep).
pub const MAX_MPLS_LABELS: usize = 8;

/// Length of one label stack entry.
pub const MPLS_LABEL_LEN: usize = 4;

/// What follows an encapsulation header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// IPv4 at this offset (relative to the start of the encapsulation).
    Ipv4(usize),
    /// IPv6 at this offset.
    Ipv6(usize),
    /// Something else (a pseudowire, PPP control protocols, …): not IP.
    NotIp,
}

/// Walks an MPLS label stack to its bottom entry and guesses the payload from its first
/// nibble, as every MPLS-aware tool does (RFC 4928: IP payloads start with 4 or 6, while
/// pseudowire control words start with 0).
#[inline]
pub fn walk_mpls(buf: &[u8]) -> Result<Inner, ParseError> {
    let mut offset = 0;
    for _ in 0..MAX_MPLS_LABELS {
        if buf.len() < offset + MPLS_LABEL_LEN {
            return Err(ParseError::TruncatedMpls);
        }
        let entry = u32_at(buf, offset);
        offset += MPLS_LABEL_LEN;
        if entry & 0x100 != 0 {
            return Ok(match buf.get(offset).map(|b| b >> 4) {
                Some(4) => Inner::Ipv4(offset),
                Some(6) => Inner::Ipv6(offset),
                _ => Inner::NotIp,
            });
        }
    }
    Err(ParseError::TooManyMplsLabels)
}

/// PPPoE session header (6 bytes) plus the 2-byte PPP protocol field.
pub const PPPOE_HEADER_LEN: usize = 8;

/// PPP protocol numbers of IP.
pub mod ppp {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
}

/// Checks a PPPoE session header (version 1, type 1, code 0, its length within the frame)
/// and returns what the PPP frame carries.
#[inline]
pub fn pppoe_session(buf: &[u8]) -> Result<Inner, ParseError> {
    if buf.len() < PPPOE_HEADER_LEN {
        return Err(ParseError::TruncatedPppoe);
    }
    let ver_type = u8_at(buf, 0);
    let code = u8_at(buf, 1);
    let len = usize::from(u16_at(buf, 4));
    // The length covers the PPP protocol field and payload (not the 6-byte header).
    if ver_type != 0x11 || code != 0 || len < 2 || 6 + len > buf.len() {
        return Err(ParseError::BadPppoeHeader);
    }
    Ok(match u16_at(buf, 6) {
        ppp::IPV4 => Inner::Ipv4(PPPOE_HEADER_LEN),
        ppp::IPV6 => Inner::Ipv6(PPPOE_HEADER_LEN),
        _ => Inner::NotIp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpls_stack_to_ip() {
        // Two labels, the second with bottom-of-stack, then an IPv4 header's first byte.
        let buf = [0, 1, 0x10, 64, 0, 2, 0x21, 64, 0x45, 0];
        assert_eq!(walk_mpls(&buf), Ok(Inner::Ipv4(8)));
        let buf = [0, 1, 0x11, 64, 0x60, 0];
        assert_eq!(walk_mpls(&buf), Ok(Inner::Ipv6(4)));
        // A pseudowire control word (first nibble 0) is not IP.
        let buf = [0, 1, 0x11, 64, 0x00, 0];
        assert_eq!(walk_mpls(&buf), Ok(Inner::NotIp));
        assert_eq!(walk_mpls(&buf[..3]), Err(ParseError::TruncatedMpls));
        // No bottom of stack within the bound.
        let deep = [0u8; 4 * (MAX_MPLS_LABELS + 1)];
        assert_eq!(walk_mpls(&deep), Err(ParseError::TooManyMplsLabels));
        assert_eq!(walk_mpls(&deep[..8]), Err(ParseError::TruncatedMpls));
    }

    #[test]
    fn pppoe_session_header() {
        let mut buf = [0x11, 0, 0x12, 0x34, 0, 22, 0x00, 0x21, 0x45];
        let mut long = buf.to_vec();
        long.resize(6 + 22, 0);
        assert_eq!(pppoe_session(&long), Ok(Inner::Ipv4(8)));
        // Length past the frame.
        assert_eq!(pppoe_session(&buf), Err(ParseError::BadPppoeHeader));
        buf[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(pppoe_session(&buf), Ok(Inner::Ipv4(8)));
        buf[6..8].copy_from_slice(&0xc021u16.to_be_bytes()); // LCP
        assert_eq!(pppoe_session(&buf), Ok(Inner::NotIp));
        buf[0] = 0x12;
        assert_eq!(pppoe_session(&buf), Err(ParseError::BadPppoeHeader));
        assert_eq!(pppoe_session(&buf[..7]), Err(ParseError::TruncatedPppoe));
    }
}
