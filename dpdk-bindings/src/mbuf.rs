//! [`Mbuf`]: one owned `rte_mbuf`, freed on drop, with byte-slice views of its first segment.
//!
//! The accessors read `buf_addr`, `data_off`, `data_len` and `pkt_len` straight from the bindgen
//! struct so they inline; `tests/layout.rs` checks those offsets against the C compiler's.

use std::ptr::NonNull;
use std::slice;

use crate::sys;

/// An owned packet buffer. Dropping it returns it to its pool (`rte_pktmbuf_free`).
///
/// `Send` (an mbuf may be freed on any thread), not `Sync` (no shared access is needed and its
/// header is not synchronised).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: ownership of an mbuf may move between threads; the mempool it returns to is MP-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn header(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// Start of the first segment's packet data (`rte_pktmbuf_mtod`).
    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.header();
        // SAFETY: DPDK keeps data_off <= buf_len, so the result stays inside the mbuf's buffer.
        unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) }
    }

    /// The first segment's packet bytes (`data_len` bytes at `rte_pktmbuf_mtod`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: data_off + data_len <= buf_len is a DPDK invariant; the buffer is owned by self
        // and not aliased mutably while &self is held.
        unsafe { slice::from_raw_parts(self.data_ptr(), usize::from(self.header().data_len)) }
    }

    /// Mutable view of the first segment's packet bytes.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; &mut self guarantees exclusive access, and this crate never creates
        // mbuf clones or indirect mbufs that would share the buffer.
        unsafe { slice::from_raw_parts_mut(self.data_ptr(), usize::from(self.header().data_len)) }
    }

    /// Bytes of packet data in the first segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.header().data_len
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.header().pkt_len
    }

    /// Port the mbuf was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// Extends the packet by `len` bytes at its tail (`rte_pktmbuf_append`) and returns the new,
    /// uninitialised-by-contract bytes; `None` if the last segment lacks tailroom.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: self owns a valid mbuf.
        let tail = unsafe { sys::fg_pktmbuf_append(self.0.as_ptr(), len) };
        if tail.is_null() {
            return None;
        }
        // SAFETY: rte_pktmbuf_append returned a pointer to `len` bytes inside the buffer that now
        // belong to the packet; &mut self makes the borrow exclusive. The bytes are whatever the
        // previous user left (initialised memory), never uninitialised.
        Some(unsafe { slice::from_raw_parts_mut(tail.cast::<u8>(), usize::from(len)) })
    }

    /// Gives up ownership without freeing (e.g. when handing the mbuf to a driver).
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be non-null, point to a valid mbuf from a live mempool, and not be owned or used
    /// by anything else (it will be freed when the returned value drops).
    #[inline]
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Mbuf {
        debug_assert!(!raw.is_null(), "Mbuf::from_raw(NULL)");
        // SAFETY: the caller guarantees raw is non-null.
        Mbuf(unsafe { NonNull::new_unchecked(raw) })
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self exclusively owns the mbuf and never uses it again.
        unsafe { sys::fg_pktmbuf_free(self.0.as_ptr()) };
    }
}
