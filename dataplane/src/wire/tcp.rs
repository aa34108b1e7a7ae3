//! TCP header view (RFC 9293 §3.1).
//!
//! `new_checked` validates that the fixed header is present and that the data offset is at
//! least 5 words and within the buffer, so options and payload are always in bounds.

use super::checksum;
use super::field::{set_u16, set_u32, set_u8, u16_at, u32_at, u8_at};
use super::ParseError;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// A view of a TCP segment (the buffer ends where the IP payload ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking the fixed header and the data offset.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::TruncatedTcp);
        }
        let packet = TcpPacket { buffer };
        let header_len = packet.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(ParseError::BadTcpDataOffset);
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(u8_at(self.buffer.as_ref(), field::DATA_OFFSET) >> 4) * 4
    }

    /// The flags byte (see [`crate::packet::tcp_flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS)
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or_default()
    }

    /// The window scale option's shift (RFC 7323 §2.2), if the options carry one. The
    /// walk is bounded by the 40 option bytes; a malformed list ends it.
    #[inline]
    pub fn window_scale(&self) -> Option<u8> {
        let mut opts = self.options();
        while let [kind, rest @ ..] = opts {
            match *kind {
                0 => return None,
                1 => opts = rest,
                _ => {
                    let len = usize::from(*rest.first()?);
                    if len < 2 {
                        return None;
                    }
                    if *kind == 3 && len == 3 {
                        return rest.get(1).copied();
                    }
                    opts = opts.get(len..)?;
                }
            }
        }
        None
    }

    /// The segment data.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..)
            .unwrap_or_default()
    }

    /// Verifies the checksum over an IPv4 pseudo-header.
    pub fn checksum_valid_v4(&self, src: u32, dst: u32) -> bool {
        checksum::l4_checksum_v4(src, dst, crate::packet::proto::TCP, self.buffer.as_ref()) == 0
    }

    /// Verifies the checksum over an IPv6 pseudo-header.
    pub fn checksum_valid_v6(&self, src: u128, dst: u128) -> bool {
        checksum::l4_checksum_v6(src, dst, crate::packet::proto::TCP, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, value);
    }

    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, value);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60); clears the reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, header_len: usize) {
        let words = ((header_len / 4) & 0x0f) as u8;
        set_u8(self.buffer.as_mut(), field::DATA_OFFSET, words << 4);
    }

    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        set_u8(self.buffer.as_mut(), field::FLAGS, value);
    }

    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Computes and stores the checksum over an IPv4 pseudo-header (whole buffer = segment).
    pub fn fill_checksum_v4(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let sum =
            checksum::l4_checksum_v4(src, dst, crate::packet::proto::TCP, self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// Computes and stores the checksum over an IPv6 pseudo-header (whole buffer = segment).
    pub fn fill_checksum_v6(&mut self, src: u128, dst: u128) {
        self.set_checksum(0);
        let sum =
            checksum::l4_checksum_v6(src, dst, crate::packet::proto::TCP, self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::tcp_flags;

    // 40000 -> 80, seq 0x01020304, ack 0x05060708, data offset 6 (one MSS option),
    // SYN|ACK, window 0xfaf0, urgent 0, payload "hi".
    static SEGMENT: [u8; 26] = [
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x60, 0x12, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, b'h', b'i',
    ];
    const SRC: u32 = 0xc612_0001; // 198.18.0.1
    const DST: u32 = 0xc612_0002;

    #[test]
    fn deconstruct() {
        let t = TcpPacket::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq_number(), 0x0102_0304);
        assert_eq!(t.ack_number(), 0x0506_0708);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!(t.window_len(), 0xfaf0);
        assert_eq!(t.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(t.payload(), b"hi");
    }

    #[test]
    fn construct_and_checksum() {
        let mut buf = SEGMENT;
        buf[..20].fill(0);
        let mut t = TcpPacket::new_unchecked(&mut buf[..]);
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_seq_number(0x0102_0304);
        t.set_ack_number(0x0506_0708);
        t.set_header_len(24);
        t.set_flags(tcp_flags::SYN | tcp_flags::ACK);
        t.set_window_len(0xfaf0);
        t.fill_checksum_v4(SRC, DST);
        let t = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_ne!(t.checksum(), 0);
        assert!(t.checksum_valid_v4(SRC, DST));
        assert!(!t.checksum_valid_v4(SRC, DST + 1));
        assert_eq!(buf[..16], SEGMENT[..16]);
    }

    #[test]
    fn truncated_and_bad_offset() {
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..19]),
            Err(ParseError::TruncatedTcp)
        );
        assert_eq!(
            TcpPacket::new_checked(&SEGMENT[..23]),
            Err(ParseError::BadTcpDataOffset),
            "options past the end"
        );
        let mut bytes = SEGMENT;
        bytes[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]),
            Err(ParseError::BadTcpDataOffset)
        );
    }

    #[test]
    fn header_only_has_empty_payload() {
        let t = TcpPacket::new_checked(&SEGMENT[..24]).unwrap();
        assert!(t.payload().is_empty());
    }

    #[test]
    fn window_scale_option_is_found_past_others() {
        let with = |opts: &[u8]| {
            let mut b = vec![0u8; 20 + opts.len()];
            b[12] = (((20 + opts.len()) / 4) << 4) as u8;
            b[20..].copy_from_slice(opts);
            TcpPacket::new_checked(&b[..]).unwrap().window_scale()
        };
        // MSS, SACK-permitted, timestamps, NOP, window scale 7 (Linux's SYN).
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        assert_eq!(with(&linux), Some(7));
        assert_eq!(with(&[2, 4, 5, 0xb4]), None);
        assert_eq!(with(&[1, 1, 1, 3, 3, 14, 0, 0]), Some(14));
        // End of list before it; a zero length; a length past the end.
        assert_eq!(with(&[0, 3, 3, 7]), None);
        assert_eq!(with(&[2, 0, 3, 3, 7, 0, 0, 0]), None);
        assert_eq!(with(&[2, 40, 3, 3]), None);
    }
}
