//! Internet checksum (RFC 1071) with IPv4/IPv6 pseudo-headers, and SCTP's CRC32c (RFC 9260).
//!
//! Sums are accumulated unfolded in a `u64` (no carry handling per word) and folded once at
//! the end, which is both simpler and faster than folding per word.

/// Adds `data` as big-endian 16-bit words to `sum` (an odd trailing byte is padded with zero).
#[inline]
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let &[a, b] = w {
            sum += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    if let &[last] = words.remainder() {
        sum += u64::from(last) << 8;
    }
    sum
}

/// Folds an unfolded sum into 16 bits (ones' complement addition), without complementing.
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field value for an unfolded sum: the ones' complement of the folded sum.
#[inline]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// The internet checksum of `data` (the value to store in a zeroed checksum field).
///
/// Over data that already contains a correct checksum this returns 0.
#[inline]
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768).
#[inline]
pub fn pseudo_header_v4(src: u32, dst: u32, proto: u8, l4_len: u16) -> u64 {
    u64::from(src >> 16)
        + u64::from(src & 0xffff)
        + u64::from(dst >> 16)
        + u64::from(dst & 0xffff)
        + u64::from(proto)
        + u64::from(l4_len)
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(src: u128, dst: u128, proto: u8, l4_len: u32) -> u64 {
    let s = accumulate(0, &src.to_be_bytes());
    let d = accumulate(0, &dst.to_be_bytes());
    s + d + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff) + u64::from(proto)
}

/// TCP/UDP/ICMPv6-style checksum of `segment` over an IPv4 pseudo-header.
///
/// `segment` longer than 65535 bytes cannot occur in IPv4; its length is truncated.
#[inline]
pub fn l4_checksum_v4(src: u32, dst: u32, proto: u8, segment: &[u8]) -> u16 {
    let pseudo = pseudo_header_v4(src, dst, proto, segment.len() as u16);
    finish(accumulate(pseudo, segment))
}

/// TCP/UDP/ICMPv6 checksum of `segment` over an IPv6 pseudo-header.
#[inline]
pub fn l4_checksum_v6(src: u128, dst: u128, proto: u8, segment: &[u8]) -> u16 {
    let pseudo = pseudo_header_v6(src, dst, proto, segment.len() as u32);
    finish(accumulate(pseudo, segment))
}

/// CRC32c (Castagnoli, reflected, as used by SCTP and iSCSI) of `data`.
///
/// Bitwise: SCTP packets are only built by tests and tools, never on the packet path.
pub fn crc32c(data: &[u8]) -> u32 {
    const POLY_REFLECTED: u32 = 0x82f6_3b78;
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (POLY_REFLECTED & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73: checksum 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&header), 0);
    }

    #[test]
    fn odd_length_pads_last_byte() {
        assert_eq!(fold(accumulate(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn known_udp_over_ipv4() {
        // 10.0.0.1:1024 -> 10.0.0.2:53, payload "ab": checked by hand, sum folds to ffff.
        let src = u32::from_be_bytes([10, 0, 0, 1]);
        let dst = u32::from_be_bytes([10, 0, 0, 2]);
        let mut udp = [0x04, 0x00, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'a', b'b'];
        let c = l4_checksum_v4(src, dst, 17, &udp);
        // pseudo: 0a00+0001+0a00+0002+0011+000a = 0x141e; udp: 0400+0035+000a+6162 = 0x65a1
        assert_eq!(c, !(0x141e + 0x65a1));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(l4_checksum_v4(src, dst, 17, &udp), 0);
    }

    #[test]
    fn known_udp_over_ipv6() {
        // ::1 -> ::2, ports 1 -> 2, empty payload: every word is easy to add by hand.
        let udp = [0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00];
        // pseudo: 1 + 2 + len 8 + next header 17 = 0x1c; udp: 1 + 2 + 8 = 0xb
        assert_eq!(l4_checksum_v6(1, 2, 17, &udp), !(0x1c + 0x0b));
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
