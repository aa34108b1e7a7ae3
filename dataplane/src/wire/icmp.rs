//! ICMP (RFC 792) and ICMPv6 (RFC 4443) header view: both share the 8-byte layout
//! type, code, checksum, then 4 message-specific bytes (identifier and sequence number for
//! the query messages).

use super::checksum;
use super::field::{set_u16, set_u8, u16_at, u8_at};
use super::ParseError;

/// ICMPv4 message types the parser treats specially.
pub mod icmpv4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const TIMESTAMP_REQUEST: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
    pub const INFO_REQUEST: u8 = 15;
    pub const INFO_REPLY: u8 = 16;
}

/// ICMPv6 message types the parser treats specially.
pub mod icmpv6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
}

/// Length of the common header, message-specific word included.
pub const HEADER_LEN: usize = 8;

/// True when a message of this type carries an identifier in bytes 4..6 (echo, timestamp
/// and information request/reply for ICMPv4; echo request/reply for ICMPv6).
#[inline]
pub const fn has_identifier(is_v6: bool, msg_type: u8) -> bool {
    if is_v6 {
        matches!(msg_type, icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY)
    } else {
        matches!(
            msg_type,
            icmpv4::ECHO_REPLY
                | icmpv4::ECHO_REQUEST
                | icmpv4::TIMESTAMP_REQUEST
                | icmpv4::TIMESTAMP_REPLY
                | icmpv4::INFO_REQUEST
                | icmpv4::INFO_REPLY
        )
    }
}

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::TruncatedIcmp);
        }
        Ok(IcmpPacket { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    #[inline]
    pub fn msg_code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::CODE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier of a query message (meaningful only when [`has_identifier`]).
    #[inline]
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::IDENT)
    }

    /// Sequence number of a query message (meaningful only when [`has_identifier`]).
    #[inline]
    pub fn seq_number(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::SEQ)
    }

    /// The data after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Verifies an ICMPv4 checksum (over the message only).
    pub fn checksum_valid_v4(&self) -> bool {
        checksum::internet_checksum(self.buffer.as_ref()) == 0
    }

    /// Verifies an ICMPv6 checksum (over an IPv6 pseudo-header).
    pub fn checksum_valid_v6(&self, src: u128, dst: u128) -> bool {
        checksum::l4_checksum_v6(src, dst, crate::packet::proto::ICMPV6, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::TYPE, value);
    }

    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::CODE, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    #[inline]
    pub fn set_seq_number(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, value);
    }

    /// Computes and stores an ICMPv4 checksum over the whole buffer.
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let sum = checksum::internet_checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// Computes and stores an ICMPv6 checksum over the whole buffer and a pseudo-header.
    pub fn fill_checksum_v6(&mut self, src: u128, dst: u128) {
        self.set_checksum(0);
        let sum =
            checksum::l4_checksum_v6(src, dst, crate::packet::proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // Echo request, id 0x1234, seq 1, payload "abcd", checksum left zero.
    static ECHO: [u8; 12] = [8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    #[test]
    fn deconstruct() {
        let i = IcmpPacket::new_checked(&ECHO[..]).unwrap();
        assert_eq!(i.msg_type(), icmpv4::ECHO_REQUEST);
        assert_eq!(i.msg_code(), 0);
        assert_eq!(i.ident(), 0x1234);
        assert_eq!(i.seq_number(), 1);
        assert_eq!(i.payload(), b"abcd");
    }

    #[test]
    fn construct_and_checksum() {
        let mut buf = [0u8; 12];
        buf[8..].copy_from_slice(b"abcd");
        let mut i = IcmpPacket::new_unchecked(&mut buf[..]);
        i.set_msg_type(icmpv4::ECHO_REQUEST);
        i.set_ident(0x1234);
        i.set_seq_number(1);
        i.fill_checksum_v4();
        // 0800 + 1234 + 0001 + 6162 + 6364 = 0xdefb -> checksum 0x2104
        assert_eq!(i.checksum(), 0x2104);
        assert!(i.checksum_valid_v4());
        let mut v6 = IcmpPacket::new_unchecked(&mut buf[..]);
        v6.set_msg_type(icmpv6::ECHO_REQUEST);
        v6.fill_checksum_v6(1, 2);
        assert!(v6.checksum_valid_v6(1, 2));
        assert!(!v6.checksum_valid_v6(1, 3));
    }

    #[test]
    fn truncated() {
        assert_eq!(
            IcmpPacket::new_checked(&ECHO[..7]),
            Err(ParseError::TruncatedIcmp)
        );
    }

    #[test]
    fn identifier_types() {
        for t in [0, 8, 13, 14, 15, 16] {
            assert!(has_identifier(false, t), "icmpv4 type {t}");
        }
        for t in [3, 5, 11, 12, 128] {
            assert!(!has_identifier(false, t), "icmpv4 type {t}");
        }
        assert!(has_identifier(true, 128) && has_identifier(true, 129));
        assert!(!has_identifier(true, 1) && !has_identifier(true, 8) && !has_identifier(true, 135));
    }
}
