//! SCTP common header view (RFC 9260 §3.1): the data path needs only the ports.

use super::checksum;
use super::field::{set_u16, set_u32, u16_at, u32_at};
use super::ParseError;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const VERIFICATION_TAG: usize = 4;
    pub const CHECKSUM: usize = 8;
}

/// Length of the common header.
pub const HEADER_LEN: usize = 12;

/// A view of an SCTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the common header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::TruncatedSctp);
        }
        Ok(SctpPacket { buffer })
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
    pub fn verification_tag(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::VERIFICATION_TAG)
    }

    /// The CRC32c as stored on the wire (RFC 9260 stores it least significant byte first).
    #[inline]
    pub fn checksum(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::CHECKSUM).swap_bytes()
    }

    /// The chunks after the common header.
    #[inline]
    pub fn chunks(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Verifies the CRC32c over the whole packet with the checksum field taken as zero.
    pub fn checksum_valid(&self) -> bool {
        let bytes = self.buffer.as_ref();
        let (Some(head), Some(tail)) = (bytes.get(..field::CHECKSUM), bytes.get(HEADER_LEN..))
        else {
            return false;
        };
        let mut copy = [0u8; HEADER_LEN];
        copy[..field::CHECKSUM].copy_from_slice(head);
        crc32c_of(&copy, tail) == self.checksum()
    }
}

fn crc32c_of(header: &[u8; HEADER_LEN], chunks: &[u8]) -> u32 {
    // Not on the packet path: a contiguous copy keeps the CRC a one-shot function.
    let mut all = Vec::with_capacity(HEADER_LEN + chunks.len());
    all.extend_from_slice(header);
    all.extend_from_slice(chunks);
    checksum::crc32c(&all)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    #[inline]
    pub fn set_verification_tag(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::VERIFICATION_TAG, value);
    }

    /// Computes and stores the CRC32c over the whole buffer.
    pub fn fill_checksum(&mut self) {
        set_u32(self.buffer.as_mut(), field::CHECKSUM, 0);
        let crc = checksum::crc32c(self.buffer.as_ref());
        set_u32(self.buffer.as_mut(), field::CHECKSUM, crc.swap_bytes());
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // 5000 -> 36412, vtag 0xdeadbeef, one empty COOKIE ACK chunk (type 11, len 4).
    static PACKET: [u8; 16] = [
        0x13, 0x88, 0x8e, 0x3c, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 11, 0, 0, 4,
    ];

    #[test]
    fn deconstruct() {
        let s = SctpPacket::new_checked(&PACKET[..]).unwrap();
        assert_eq!(s.src_port(), 5000);
        assert_eq!(s.dst_port(), 36412);
        assert_eq!(s.verification_tag(), 0xdead_beef);
        assert_eq!(s.chunks(), &[11, 0, 0, 4]);
    }

    #[test]
    fn construct_and_checksum() {
        let mut buf = PACKET;
        let mut s = SctpPacket::new_unchecked(&mut buf[..]);
        s.fill_checksum();
        let s = SctpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(s.checksum(), checksum::crc32c(&PACKET));
        assert!(s.checksum_valid());
        buf[13] = 1;
        assert!(!SctpPacket::new_checked(&buf[..]).unwrap().checksum_valid());
    }

    #[test]
    fn truncated() {
        assert_eq!(
            SctpPacket::new_checked(&PACKET[..11]),
            Err(ParseError::TruncatedSctp)
        );
    }
}
