//! Panic-free big-endian field access over byte slices.
//!
//! Every view in [`crate::wire`] reads and writes its header fields through these helpers.
//! They never panic: a read past the end yields 0 and a write past the end is ignored.
//! After a view's `new_checked` succeeded every field of its header is in bounds, so the
//! fallbacks are never taken; they exist so that a logic error can at worst produce a wrong
//! value, never a crash on attacker input.

/// Reads the byte at `at`, or 0 when out of bounds.
#[inline(always)]
pub(crate) fn u8_at(buf: &[u8], at: usize) -> u8 {
    match buf.get(at) {
        Some(&b) => b,
        None => 0,
    }
}

/// Reads a big-endian `u16` at `at`, or 0 when out of bounds.
#[inline(always)]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

/// Reads a big-endian `u32` at `at`, or 0 when out of bounds.
#[inline(always)]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Reads `N` bytes at `at`, or zeros when out of bounds.
#[inline(always)]
pub(crate) fn array_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    match buf.get(at..).and_then(|rest| rest.first_chunk::<N>()) {
        Some(a) => *a,
        None => [0; N],
    }
}

/// Writes one byte at `at`; ignored when out of bounds.
#[inline(always)]
pub(crate) fn set_u8(buf: &mut [u8], at: usize, value: u8) {
    if let Some(b) = buf.get_mut(at) {
        *b = value;
    }
}

/// Writes a big-endian `u16` at `at`; ignored when out of bounds.
#[inline(always)]
pub(crate) fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    set_bytes(buf, at, &value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`; ignored when out of bounds.
#[inline(always)]
pub(crate) fn set_u32(buf: &mut [u8], at: usize, value: u32) {
    set_bytes(buf, at, &value.to_be_bytes());
}

/// Copies `bytes` to `at`; ignored when it does not fit entirely.
#[inline(always)]
pub(crate) fn set_bytes(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at.wrapping_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_in_bounds_and_zero_out_of_bounds() {
        let buf = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(u8_at(&buf, 4), 0x9a);
        assert_eq!(u16_at(&buf, 1), 0x3456);
        assert_eq!(u32_at(&buf, 1), 0x3456_789a);
        assert_eq!(array_at::<2>(&buf, 3), [0x78, 0x9a]);
        assert_eq!(u8_at(&buf, 5), 0);
        assert_eq!(u16_at(&buf, 4), 0);
        assert_eq!(u32_at(&buf, 2), 0);
        assert_eq!(u32_at(&buf, usize::MAX), 0);
        assert_eq!(array_at::<2>(&buf, 4), [0, 0]);
    }

    #[test]
    fn writes_in_bounds_and_ignores_out_of_bounds() {
        let mut buf = [0u8; 4];
        set_u16(&mut buf, 0, 0xabcd);
        set_u8(&mut buf, 3, 7);
        assert_eq!(buf, [0xab, 0xcd, 0, 7]);
        set_u32(&mut buf, 1, 0xffff_ffff);
        set_u16(&mut buf, usize::MAX, 1);
        assert_eq!(buf, [0xab, 0xcd, 0, 7]);
        set_u32(&mut buf, 0, 0x0102_0304);
        assert_eq!(buf, [1, 2, 3, 4]);
    }
}
