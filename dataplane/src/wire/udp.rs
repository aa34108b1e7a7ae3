//! UDP header view (RFC 768).
//!
//! `new_checked` validates `8 ≤ length ≤ buffer length`; bytes past `length` are ignored.

use super::checksum;
use super::field::{set_u16, u16_at};
use super::ParseError;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking the header and the length field.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedUdp);
        }
        let packet = UdpPacket { buffer };
        let udp_len = usize::from(packet.len());
        if udp_len < HEADER_LEN || udp_len > len {
            return Err(ParseError::BadUdpLength);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length of header and payload, from the length field.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload as bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..usize::from(self.len()))
            .unwrap_or_default()
    }

    fn datagram(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(..usize::from(self.len()))
            .unwrap_or_default()
    }

    /// Verifies the checksum over an IPv4 pseudo-header (0 means "not computed" in IPv4).
    pub fn checksum_valid_v4(&self, src: u32, dst: u32) -> bool {
        self.checksum() == 0
            || checksum::l4_checksum_v4(src, dst, crate::packet::proto::UDP, self.datagram()) == 0
    }

    /// Verifies the checksum over an IPv6 pseudo-header (mandatory in IPv6).
    pub fn checksum_valid_v6(&self, src: u128, dst: u128) -> bool {
        checksum::l4_checksum_v6(src, dst, crate::packet::proto::UDP, self.datagram()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    #[inline]
    pub fn set_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes and stores the checksum over an IPv4 pseudo-header; a computed 0 is sent
    /// as 0xffff (RFC 768) since 0 means "no checksum".
    pub fn fill_checksum_v4(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let sum = checksum::l4_checksum_v4(src, dst, crate::packet::proto::UDP, self.datagram());
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// Computes and stores the checksum over an IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: u128, dst: u128) {
        self.set_checksum(0);
        let sum = checksum::l4_checksum_v6(src, dst, crate::packet::proto::UDP, self.datagram());
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // 1024 -> 53, length 10, payload "ab", then 2 bytes beyond the length field.
    static DATAGRAM: [u8; 12] = [
        0x04, 0x00, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'a', b'b', 0xee, 0xee,
    ];

    #[test]
    fn deconstruct() {
        let u = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(u.src_port(), 1024);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 10);
        assert_eq!(u.payload(), b"ab", "bounded by the length field");
    }

    #[test]
    fn construct_and_checksum() {
        let src = u32::from_be_bytes([10, 0, 0, 1]);
        let dst = u32::from_be_bytes([10, 0, 0, 2]);
        let mut buf = [0u8; 10];
        buf[8..].copy_from_slice(b"ab");
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.set_src_port(1024);
        u.set_dst_port(53);
        u.set_len(10);
        u.fill_checksum_v4(src, dst);
        assert_eq!(buf[..6], DATAGRAM[..6]);
        // Known value, see checksum::test::known_udp_over_ipv4.
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), !(0x141eu16 + 0x65a1));
        let u = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(u.checksum_valid_v4(src, dst));
        assert!(!u.checksum_valid_v4(src, dst ^ 1));
    }

    #[test]
    fn truncated_and_bad_length() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]),
            Err(ParseError::TruncatedUdp)
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..9]),
            Err(ParseError::BadUdpLength),
            "length field past the buffer"
        );
        let mut bytes = DATAGRAM;
        bytes[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&bytes[..]),
            Err(ParseError::BadUdpLength)
        );
    }
}
