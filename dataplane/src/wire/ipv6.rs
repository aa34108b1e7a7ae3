//! IPv6 header view (RFC 8200) and the bounded extension-header chain walk.
//!
//! `new_checked` validates version 6 and `40 + payload_length ≤ buffer length` (bytes past
//! that are link padding). [`walk_extension_headers`] follows hop-by-hop, routing, fragment,
//! destination-options and AH headers, at most [`MAX_EXT_HEADERS`] of them, to the upper
//! layer; a later fragment stops the walk because what follows is not a header.

use super::field::{set_bytes, set_u16, set_u32, set_u8, u16_at, u32_at, u8_at};
use super::ParseError;
use crate::packet::Fragment;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// Longest extension-header chain the parser walks. RFC 8200 §4.1 recommends at most one of
/// each kind (destination options twice); anything longer is an evasion attempt.
pub const MAX_EXT_HEADERS: usize = 8;

/// Next-header values of the extension headers the walk knows.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AUTH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// A view of an IPv6 packet's fixed header and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after validating the version and the payload length against it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedIpv6);
        }
        let packet = Ipv6Packet { buffer };
        if packet.version() != 6 {
            return Err(ParseError::BadIpv6Version);
        }
        if HEADER_LEN + usize::from(packet.payload_len()) > len {
            return Err(ParseError::BadIpv6PayloadLength);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (u32_at(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Length of everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    #[inline]
    pub fn src_addr(&self) -> u128 {
        read_u128(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_addr(&self) -> u128 {
        read_u128(self.buffer.as_ref(), field::DST)
    }

    /// The payload (extension headers and upper layer), padding excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer
            .as_ref()
            .get(HEADER_LEN..end)
            .unwrap_or_default()
    }
}

#[inline(always)]
fn read_u128(buf: &[u8], at: usize) -> u128 {
    u128::from_be_bytes(super::field::array_at(buf, at))
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, traffic class and flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, value);
    }

    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::NEXT_HEADER, value);
    }

    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::HOP_LIMIT, value);
    }

    #[inline]
    pub fn set_src_addr(&mut self, value: u128) {
        set_bytes(self.buffer.as_mut(), field::SRC, &value.to_be_bytes());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, value: u128) {
        set_bytes(self.buffer.as_mut(), field::DST, &value.to_be_bytes());
    }
}

/// A view of a hop-by-hop, routing, destination-options or AH extension header.
///
/// They share the first two bytes (next header, length); only the length unit differs:
/// 8-byte units not counting the first 8 bytes, except AH (RFC 4302: 4-byte units minus 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// Wraps `buffer` as an extension header of type `kind` after checking that the whole
    /// header, as its length field says, is in the buffer.
    #[inline]
    pub fn new_checked(buffer: T, kind: u8) -> Result<Self, ParseError> {
        let bytes = buffer.as_ref();
        if bytes.len() < 8 {
            return Err(ParseError::TruncatedIpv6ExtHeader);
        }
        let len_field = usize::from(u8_at(bytes, 1));
        let header_len = if kind == next_header::AUTH {
            (len_field + 2) * 4
        } else {
            (len_field + 1) * 8
        };
        if header_len > bytes.len() {
            return Err(ParseError::TruncatedIpv6ExtHeader);
        }
        Ok(Ipv6ExtHeader { buffer, header_len })
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 0)
    }

    /// Length of this header in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

/// Length of the fragment extension header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A view of the fragment extension header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6FragmentHeader { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(ParseError::TruncatedIpv6ExtHeader);
        }
        Ok(Ipv6FragmentHeader { buffer })
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), 0)
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2) & !7
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        u16_at(self.buffer.as_ref(), 2) & 1 != 0
    }

    #[inline]
    pub fn ident(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragmentHeader<T> {
    /// Writes the whole header (reserved bytes zeroed); `offset` in bytes, a multiple of 8.
    #[inline]
    pub fn emit(&mut self, next: u8, offset: u16, more_frags: bool, ident: u32) {
        let buf = self.buffer.as_mut();
        set_u8(buf, 0, next);
        set_u8(buf, 1, 0);
        set_u16(buf, 2, (offset & !7) | u16::from(more_frags));
        set_u32(buf, 4, ident);
    }
}

/// Option type of the Home Address destination option (RFC 6275 §6.3).
pub const OPT_HOME_ADDRESS: u8 = 0xc9;
/// Its data length: one IPv6 address.
const HOME_ADDRESS_LEN: usize = 16;

/// Walks the TLV options of a hop-by-hop or destination-options header (RFC 8200 §4.2):
/// Pad1 is one byte, every other option is type, data length, data. An option running past
/// the header, or a Home Address option that is not 16 bytes long or sits outside a
/// destination-options header, is a decode error (Suricata: `ipv6.exthdr_invalid_optlen`,
/// `ipv6.hao`-class events).
#[inline]
pub fn check_options(options: &[u8], in_dest_opts: bool) -> Result<(), ParseError> {
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        if kind == 0 {
            at += 1;
            continue;
        }
        let Some(&len) = options.get(at + 1) else {
            return Err(ParseError::BadIpv6Option);
        };
        let len = usize::from(len);
        if at + 2 + len > options.len() {
            return Err(ParseError::BadIpv6Option);
        }
        if kind == OPT_HOME_ADDRESS && (!in_dest_opts || len != HOME_ADDRESS_LEN) {
            return Err(ParseError::BadIpv6Option);
        }
        at += 2 + len;
    }
    Ok(())
}

/// Where the upper-layer header sits after the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Protocol of what follows the last extension header.
    pub proto: u8,
    /// Offset of it within the IPv6 payload.
    pub offset: usize,
    /// Fragment position, from the fragment header if any. An atomic fragment (offset 0,
    /// no more fragments, RFC 6946) is a whole datagram: [`Fragment::None`].
    pub fragment: Fragment,
    /// The fragment header's identification, offset (bytes) and M flag (0 without one).
    pub frag_id: u32,
    /// Offset (in the payload) of the fragmentable part: just after the fragment header.
    pub frag_data_offset: usize,
    pub frag_offset: u16,
    pub frag_more: bool,
}

/// Walks the extension-header chain starting with next-header `first` over `payload`.
///
/// Stops at the first header that is not a known extension header (ESP and "no next
/// header" included: nothing after them can be read) or after a later fragment's header.
#[inline]
pub fn walk_extension_headers(first: u8, payload: &[u8]) -> Result<UpperLayer, ParseError> {
    let mut proto = first;
    let mut offset = 0usize;
    let mut fragment = Fragment::None;
    let (mut frag_id, mut frag_offset, mut frag_more) = (0, 0, false);
    let mut seen_fragment_header = false;
    let mut frag_data_offset = 0;
    for _ in 0..=MAX_EXT_HEADERS {
        let rest = payload.get(offset..).unwrap_or_default();
        match proto {
            next_header::HOP_BY_HOP
            | next_header::ROUTING
            | next_header::DEST_OPTS
            | next_header::AUTH => {
                let ext = Ipv6ExtHeader::new_checked(rest, proto)?;
                if proto == next_header::HOP_BY_HOP || proto == next_header::DEST_OPTS {
                    let options = rest.get(2..ext.header_len()).unwrap_or_default();
                    check_options(options, proto == next_header::DEST_OPTS)?;
                }
                proto = ext.next_header();
                offset += ext.header_len();
            }
            next_header::FRAGMENT => {
                let frag = Ipv6FragmentHeader::new_checked(rest)?;
                if seen_fragment_header {
                    // Two fragment headers: RFC 8200 allows one; a second is an evasion.
                    return Err(ParseError::TooManyIpv6ExtHeaders);
                }
                seen_fragment_header = true;
                proto = frag.next_header();
                offset += FRAGMENT_HEADER_LEN;
                frag_data_offset = offset;
                (frag_id, frag_offset, frag_more) =
                    (frag.ident(), frag.frag_offset(), frag.more_frags());
                fragment = match (frag_offset, frag_more) {
                    (0, false) => Fragment::None,
                    (0, true) => Fragment::First,
                    _ => {
                        return Ok(UpperLayer {
                            proto,
                            offset,
                            fragment: Fragment::Later,
                            frag_id,
                            frag_data_offset,
                            frag_offset,
                            frag_more,
                        })
                    }
                };
            }
            _ => {
                return Ok(UpperLayer {
                    proto,
                    offset,
                    fragment,
                    frag_id,
                    frag_data_offset,
                    frag_offset,
                    frag_more,
                })
            }
        }
    }
    Err(ParseError::TooManyIpv6ExtHeaders)
}

#[cfg(test)]
mod test {
    use super::*;

    // 2001:db8::1 -> 2001:db8::2, hop limit 64, payload length 8: one empty UDP header.
    static PACKET: [u8; 50] = [
        0x60, 0xa1, 0x23, 0x45, 0x00, 0x08, 0x11, 0x40, // ver 6, TC 0x0a, flow 0x12345
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst
        0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00, // UDP
        0x00, 0x00, // link padding
    ];

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x0a);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), 0x2001_0db8_u128 << 96 | 1);
        assert_eq!(p.dst_addr(), 0x2001_0db8_u128 << 96 | 2);
        assert_eq!(p.payload(), &PACKET[40..48], "padding is not payload");
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        p.set_version_tc_flow(0x0a, 0x12345);
        p.set_payload_len(8);
        p.set_next_header(17);
        p.set_hop_limit(64);
        p.set_src_addr(0x2001_0db8_u128 << 96 | 1);
        p.set_dst_addr(0x2001_0db8_u128 << 96 | 2);
        assert_eq!(buf[..], PACKET[..40]);
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..39]),
            Err(ParseError::TruncatedIpv6)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET[..47]),
            Err(ParseError::BadIpv6PayloadLength)
        );
        let mut bytes = PACKET;
        bytes[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]),
            Err(ParseError::BadIpv6Version)
        );
    }

    #[test]
    fn walk_hop_by_hop_routing_ah_dest_to_tcp() {
        let mut chain = Vec::new();
        chain.extend_from_slice(&[next_header::ROUTING, 0, 1, 4, 0, 0, 0, 0]); // HbH, 8 bytes
        chain.extend_from_slice(&[next_header::AUTH, 1, 0, 0, 0, 0, 0, 0]); // routing, 16 bytes
        chain.extend_from_slice(&[0; 8]);
        chain.extend_from_slice(&[next_header::DEST_OPTS, 2, 0, 0, 0, 0, 0, 1]); // AH, 16 bytes
        chain.extend_from_slice(&[0; 8]);
        chain.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // dest opts, 8 bytes
        chain.extend_from_slice(&[0; 20]); // TCP
        let upper = walk_extension_headers(next_header::HOP_BY_HOP, &chain).unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                proto: 6,
                offset: 48,
                fragment: Fragment::None,
                frag_id: 0,
                frag_data_offset: 0,
                frag_offset: 0,
                frag_more: false,
            }
        );
    }

    #[test]
    fn walk_fragments() {
        let mut buf = [0u8; 16];
        Ipv6FragmentHeader::new_unchecked(&mut buf[..]).emit(17, 0, true, 7);
        let first = walk_extension_headers(next_header::FRAGMENT, &buf).unwrap();
        assert_eq!((first.proto, first.offset), (17, 8));
        assert_eq!(first.fragment, Fragment::First);

        Ipv6FragmentHeader::new_unchecked(&mut buf[..]).emit(
            next_header::DEST_OPTS,
            1232,
            false,
            7,
        );
        let later = walk_extension_headers(next_header::FRAGMENT, &buf).unwrap();
        assert_eq!(
            later.fragment,
            Fragment::Later,
            "a last fragment is a later one"
        );
        assert_eq!(
            later.proto,
            next_header::DEST_OPTS,
            "not walked past the fragment"
        );
        let h = Ipv6FragmentHeader::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (h.frag_offset(), h.more_frags(), h.ident()),
            (1232, false, 7)
        );

        Ipv6FragmentHeader::new_unchecked(&mut buf[..]).emit(17, 0, false, 7);
        let atomic = walk_extension_headers(next_header::FRAGMENT, &buf).unwrap();
        assert_eq!(atomic.fragment, Fragment::None);
    }

    #[test]
    fn walk_rejects_truncated_and_overlong_chains() {
        // The length field claims 16 bytes, only 8 are there.
        let short = [6, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_extension_headers(next_header::DEST_OPTS, &short),
            Err(ParseError::TruncatedIpv6ExtHeader)
        );
        assert_eq!(
            walk_extension_headers(next_header::FRAGMENT, &short[..7]),
            Err(ParseError::TruncatedIpv6ExtHeader)
        );
        // MAX_EXT_HEADERS destination-options headers are walked; one more is refused.
        let mut chain = [0u8; 8 * (MAX_EXT_HEADERS + 1)];
        for header in chain.chunks_mut(8) {
            header[0] = next_header::DEST_OPTS;
        }
        chain[8 * (MAX_EXT_HEADERS - 1)] = 6;
        assert!(walk_extension_headers(next_header::DEST_OPTS, &chain).is_ok());
        chain[8 * (MAX_EXT_HEADERS - 1)] = next_header::DEST_OPTS;
        assert_eq!(
            walk_extension_headers(next_header::DEST_OPTS, &chain),
            Err(ParseError::TooManyIpv6ExtHeaders)
        );
    }

    #[test]
    fn malformed_options_are_refused() {
        // Hop-by-hop: an option whose data runs past the header.
        let hbh = [6, 0, 0x1e, 5, 0, 0, 0, 0];
        assert_eq!(
            walk_extension_headers(next_header::HOP_BY_HOP, &hbh),
            Err(ParseError::BadIpv6Option)
        );
        // A Home Address option in a destination-options header, 16 bytes: accepted.
        let mut dst = vec![6, 2, 1, 2, 0, 0, OPT_HOME_ADDRESS, 16];
        dst.extend_from_slice(&[0x20; 16]);
        assert_eq!(dst.len(), 24);
        assert!(walk_extension_headers(next_header::DEST_OPTS, &dst).is_ok());
        // The same option 8 bytes long, or in a hop-by-hop header: refused.
        let short = [
            6,
            1,
            OPT_HOME_ADDRESS,
            8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            2,
            0,
            0,
        ];
        assert_eq!(
            walk_extension_headers(next_header::DEST_OPTS, &short),
            Err(ParseError::BadIpv6Option)
        );
        assert_eq!(
            walk_extension_headers(next_header::HOP_BY_HOP, &dst),
            Err(ParseError::BadIpv6Option)
        );
        // Two fragment headers.
        let mut two = [0u8; 24];
        Ipv6FragmentHeader::new_unchecked(&mut two[..]).emit(next_header::FRAGMENT, 0, true, 1);
        Ipv6FragmentHeader::new_unchecked(&mut two[8..]).emit(17, 0, true, 1);
        assert_eq!(
            walk_extension_headers(next_header::FRAGMENT, &two),
            Err(ParseError::TooManyIpv6ExtHeaders)
        );
    }

    #[test]
    fn esp_and_no_next_header_end_the_walk() {
        for proto in [next_header::ESP, next_header::NO_NEXT] {
            let upper = walk_extension_headers(proto, &[]).unwrap();
            assert_eq!((upper.proto, upper.offset), (proto, 0));
        }
    }
}
