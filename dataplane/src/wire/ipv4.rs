//! IPv4 header view (RFC 791): options, fragmentation fields, header checksum.
//!
//! `new_checked` validates what the parser relies on: version 4, IHL ≥ 5, the header within
//! the buffer, and `header_len ≤ total_length ≤ buffer length` (bytes past `total_length`
//! are link-layer padding and are ignored). The header checksum is *not* required to be
//! valid (a firewall forwards what the endpoints will judge); [`Ipv4Packet::checksum_valid`]
//! tells.

use super::checksum;
use super::field::{set_u16, set_u32, set_u8, u16_at, u32_at, u8_at};
use super::ParseError;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after validating version, IHL and total length against it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Ipv4Packet { buffer };
        packet.check()?;
        Ok(packet)
    }

    #[inline]
    fn check(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedIpv4);
        }
        if self.version() != 4 {
            return Err(ParseError::BadIpv4Version);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(ParseError::BadIpv4HeaderLength);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > len {
            return Err(ParseError::BadIpv4TotalLength);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::DSCP_ECN)
    }

    /// Total length of the datagram (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (u16_at(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK) << 3
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TTL)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address, host order.
    #[inline]
    pub fn src_addr(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address, host order.
    #[inline]
    pub fn dst_addr(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::DST)
    }

    /// The options bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or_default()
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn checksum_valid(&self) -> bool {
        let header = self.buffer.as_ref().get(..self.header_len());
        header.is_some_and(|h| checksum::internet_checksum(h) == 0)
    }

    /// The datagram payload: from the end of the header to `total_length` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let total = usize::from(self.total_len());
        self.buffer
            .as_ref()
            .get(self.header_len()..total)
            .unwrap_or_default()
    }
}

/// Walks the options area (RFC 791 §3.1): end-of-list and no-op are one byte, every other
/// option is type, length (≥ 2, counting both), data. An option whose length is below 2
/// or runs past the header is a decode error (Suricata's `ipv4.opt_invalid_len`): such
/// packets are dropped, not skipped over, since endpoints disagree on how to read them.
#[inline]
pub fn check_options(options: &[u8]) -> Result<(), ParseError> {
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        match kind {
            0 => return Ok(()),
            1 => at += 1,
            _ => {
                let len = usize::from(options.get(at + 1).copied().unwrap_or(0));
                if len < 2 || at + len > options.len() {
                    return Err(ParseError::BadIpv4Option);
                }
                at += len;
            }
        }
    }
    Ok(())
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        set_u8(self.buffer.as_mut(), field::VER_IHL, 0x40 | ihl);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::DSCP_ECN, value);
    }

    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::TOTAL_LEN, value);
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Sets DF, MF and the fragment offset (in bytes; must be a multiple of 8).
    #[inline]
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut value = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DF;
        }
        if more_frags {
            value |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLAGS_FRAG, value);
    }

    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::TTL, value);
    }

    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    #[inline]
    pub fn set_src_addr(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SRC, value);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::DST, value);
    }

    /// Recomputes the header checksum over the first `header_len()` bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = self
            .buffer
            .as_ref()
            .get(..header_len)
            .map_or(0, checksum::internet_checksum);
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, ident 0, DF, TTL 64, one NOP×4 option word,
    // total length 28 (24 header + 4 payload), then 2 bytes of link padding.
    static PACKET: [u8; 30] = [
        0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7, 0x01, 0x01, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
    ];

    fn packet_with_checksum() -> [u8; 30] {
        let mut bytes = PACKET;
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    #[test]
    fn deconstruct() {
        let bytes = packet_with_checksum();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), 0xc0a8_0001);
        assert_eq!(p.dst_addr(), 0xc0a8_00c7);
        assert_eq!(p.options(), &[1, 1, 1, 1]);
        assert_eq!(
            p.payload(),
            &[0xde, 0xad, 0xbe, 0xef],
            "padding is not payload"
        );
        assert!(p.checksum_valid());
    }

    #[test]
    fn bad_checksum_is_reported_not_rejected() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert!(!p.checksum_valid());
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version_and_header_len(24);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_flags_and_frag_offset(true, false, 0);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src_addr(0xc0a8_0001);
        p.set_dst_addr(0xc0a8_00c7);
        buf[20..].copy_from_slice(&PACKET[20..28]);
        Ipv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        assert_eq!(buf[..], packet_with_checksum()[..28]);
    }

    #[test]
    fn fragment_fields() {
        let mut bytes = PACKET;
        Ipv4Packet::new_unchecked(&mut bytes[..]).set_flags_and_frag_offset(false, true, 1480);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..19]),
            Err(ParseError::TruncatedIpv4)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..21]),
            Err(ParseError::BadIpv4HeaderLength),
            "options run past the buffer"
        );
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..27]),
            Err(ParseError::BadIpv4TotalLength)
        );
    }

    #[test]
    fn malformed() {
        let mut bytes = PACKET;
        bytes[0] = 0x66;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadIpv4Version)
        );
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadIpv4HeaderLength)
        );
        bytes[0] = 0x46;
        bytes[3] = 20; // total length below the 24-byte header
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(ParseError::BadIpv4TotalLength)
        );
    }

    #[test]
    fn overlong_buffer_keeps_payload_bounded() {
        let mut long = [0u8; 64];
        long[..30].copy_from_slice(&PACKET);
        let p = Ipv4Packet::new_checked(&long[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }
}
