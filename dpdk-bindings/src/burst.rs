//! [`Burst`]: a fixed-capacity array of owned mbufs, reused across polls so the packet path never
//! allocates.
//!
//! Invariants: `slots[len..]` are all null; `slots[..len]` are owned mbufs or null *holes* left by
//! [`Burst::take`]. Holes keep indices stable while a worker walks the burst; [`Burst::compact`]
//! (called by rx and tx) squeezes them out before the array is handed to a driver.

use std::ptr;

use crate::mbuf::Mbuf;
use crate::sys;

/// Up to `N` owned mbufs (typically `N = 32`). Dropping it frees whatever it still holds.
pub struct Burst<const N: usize> {
    slots: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: a Burst owns its mbufs exactly like a `[Option<Mbuf>; N]`, and Mbuf is Send.
unsafe impl<const N: usize> Send for Burst<N> {}

impl<const N: usize> Burst<N> {
    /// DPDK burst counts are u16; a zero-size burst could never make progress.
    const VALID_CAPACITY: () = assert!(
        N > 0 && N <= u16::MAX as usize,
        "Burst<N> needs 1 <= N <= 65535"
    );

    /// An empty burst.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::VALID_CAPACITY;
        Burst {
            slots: [ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Number of slots in use, holes included: iterate `0..len()` and skip empty frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No slots in use.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All `N` slots in use (holes included).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Capacity `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Mbufs actually held (slots minus holes).
    pub fn held(&self) -> usize {
        self.slots[..self.len]
            .iter()
            .filter(|p| !p.is_null())
            .count()
    }

    /// The mbuf in slot `i`, if any.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        let slot = self.slots.get(i)?;
        if slot.is_null() {
            return None;
        }
        // SAFETY: Mbuf is a repr(transparent) NonNull<rte_mbuf>, which has the layout of a non-null
        // *mut rte_mbuf; the slot is non-null and owned by self, borrowed for &self's lifetime.
        Some(unsafe { &*(slot as *const *mut sys::rte_mbuf).cast::<Mbuf>() })
    }

    /// Mutable access to the mbuf in slot `i`, if any.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        let slot = self.slots.get_mut(i)?;
        if slot.is_null() {
            return None;
        }
        // SAFETY: as in `get`, with exclusive access through &mut self.
        Some(unsafe { &mut *(slot as *mut *mut sys::rte_mbuf).cast::<Mbuf>() })
    }

    /// Data of mbuf `i`; empty if `i >= len()` or slot `i` is a hole.
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        match self.get(i) {
            Some(m) => m.data(),
            None => &[],
        }
    }

    /// Mutable data of mbuf `i`; empty if `i >= len()` or slot `i` is a hole.
    #[inline]
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        match self.get_mut(i) {
            Some(m) => m.data_mut(),
            None => &mut [],
        }
    }

    /// Appends `m`, or hands it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = m.into_raw();
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// Moves mbuf `i` out, leaving a hole (indices of the others do not change).
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        let slot = self.slots.get_mut(i)?;
        let raw = std::mem::replace(slot, ptr::null_mut());
        // SAFETY: a non-null slot is an mbuf owned by self; nulling the slot transfers ownership.
        (!raw.is_null()).then(|| unsafe { Mbuf::from_raw(raw) })
    }

    /// Removes holes, keeping the order of the remaining mbufs.
    #[inline]
    pub fn compact(&mut self) {
        let mut kept = 0;
        // `min(N)` lets the compiler drop the bounds checks (len <= N always holds).
        for i in 0..self.len.min(N) {
            let raw = self.slots[i];
            if !raw.is_null() {
                self.slots[i] = ptr::null_mut();
                self.slots[kept] = raw;
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Frees every held mbuf (one `rte_pktmbuf_free_bulk`) and empties the burst.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: slots[..len] are owned mbufs or NULL, which rte_pktmbuf_free_bulk skips; len <= N
        // fits in c_uint. The slots are nulled right after, so nothing is freed twice.
        unsafe { sys::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), self.len as u32) };
        self.slots[..self.len].fill(ptr::null_mut());
        self.len = 0;
    }

    /// Prefetches the first cache line of mbuf `i`'s packet data into all cache levels.
    #[inline]
    pub fn prefetch_data(&self, i: usize) {
        if let Some(m) = self.get(i) {
            crate::prefetch_read(m.data().as_ptr());
        }
    }

    /// Free slots after compaction, for a driver to fill: (pointer to first free slot, count).
    #[inline]
    pub(crate) fn free_room(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        self.compact();
        let room = (N - self.len) as u16; // N <= u16::MAX by VALID_CAPACITY
                                          // SAFETY: len <= N, so the offset is at most one past the end of the array.
        (unsafe { self.slots.as_mut_ptr().add(self.len) }, room)
    }

    /// Records that a driver filled `n` slots returned by [`Self::free_room`].
    #[inline]
    pub(crate) fn commit_filled(&mut self, n: u16) {
        debug_assert!(self.len + usize::from(n) <= N);
        self.len = (self.len + usize::from(n)).min(N);
    }

    /// Compacted contents for a driver: (pointer to first mbuf, count).
    #[inline]
    pub(crate) fn filled(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        self.compact();
        (self.slots.as_mut_ptr(), self.len as u16)
    }

    /// After a driver took ownership of the first `sent` mbufs: forget them, free the rest.
    /// Returns how many were freed.
    #[inline]
    pub(crate) fn release_after_send(&mut self, sent: u16) -> u16 {
        let sent = usize::from(sent).min(self.len);
        self.slots[..sent].fill(ptr::null_mut());
        let unsent = self.len - sent;
        self.clear();
        unsent as u16
    }
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> std::fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("capacity", &N)
            .field("len", &self.len)
            .field("held", &self.held())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake mbuf headers whose one-byte data is their index; they are never given to DPDK, so every
    /// test must hand all of them back (`into_raw`) before the burst is dropped.
    struct Fakes {
        _headers: Vec<sys::rte_mbuf>,
        _bytes: Vec<u8>,
        /// Taken once so later accesses do not invalidate earlier pointers.
        base: *mut sys::rte_mbuf,
        n: usize,
    }

    impl Fakes {
        fn new(n: usize) -> Self {
            let mut headers: Vec<sys::rte_mbuf> =
                (0..n).map(|_| sys::rte_mbuf::default()).collect();
            let mut bytes: Vec<u8> = (0..n as u8).collect();
            let data = bytes.as_mut_ptr();
            for (i, h) in headers.iter_mut().enumerate() {
                // SAFETY: i < bytes.len(), so the pointer stays inside `bytes`.
                h.buf_addr = unsafe { data.add(i) }.cast();
                h.data_len = 1;
                h.pkt_len = 1;
            }
            let base = headers.as_mut_ptr();
            Fakes {
                _headers: headers,
                _bytes: bytes,
                base,
                n,
            }
        }

        fn mbuf(&mut self, i: usize) -> Mbuf {
            assert!(i < self.n);
            // SAFETY: i is in bounds, the header is valid, and each index becomes an Mbuf at most once.
            unsafe { Mbuf::from_raw(self.base.add(i)) }
        }
    }

    fn id(burst: &Burst<8>, i: usize) -> Option<u8> {
        burst.frame(i).first().copied()
    }

    #[test]
    fn empty_burst_answers_without_mbufs() {
        let mut burst: Burst<8> = Burst::new();
        assert!(burst.is_empty() && !burst.is_full());
        assert_eq!((burst.len(), burst.held(), burst.capacity()), (0, 0, 8));
        assert!(burst.frame(0).is_empty() && burst.frame(usize::MAX).is_empty());
        assert!(burst.take(0).is_none() && burst.take(100).is_none());
        burst.prefetch_data(3);
        let (_, room) = burst.free_room();
        assert_eq!(room, 8);
    }

    /// Model test: random push/take/compact sequences against a `Vec<Option<u8>>` oracle.
    #[test]
    fn holes_and_compaction_match_a_vec_model() {
        let mut fakes = Fakes::new(64);
        let mut next_fake = 0usize;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        let mut burst: Burst<8> = Burst::new();
        let mut model: Vec<Option<u8>> = Vec::new();
        let mut out = Vec::new();
        for _ in 0..400 {
            match rand(3) {
                0 if next_fake < 64 => {
                    let m = fakes.mbuf(next_fake);
                    match burst.push(m) {
                        Ok(()) => {
                            model.push(Some(next_fake as u8));
                            next_fake += 1;
                        }
                        Err(m) => {
                            assert_eq!(model.len(), 8, "push refused only when full");
                            out.push(m.into_raw());
                            next_fake += 1;
                        }
                    }
                }
                1 => {
                    let i = rand(10);
                    let expected = model.get_mut(i).and_then(Option::take);
                    let got = burst.take(i).map(|m| {
                        let first = m.data()[0];
                        out.push(m.into_raw());
                        first
                    });
                    assert_eq!(got, expected);
                }
                _ => {
                    burst.compact();
                    model.retain(Option::is_some);
                }
            }
            assert_eq!(burst.len(), model.len());
            assert_eq!(burst.is_full(), model.len() == 8);
            assert_eq!(burst.held(), model.iter().flatten().count());
            for (i, want) in model.iter().enumerate() {
                assert_eq!(id(&burst, i), *want, "slot {i}");
            }
            let (_, room) = burst.free_room();
            model.retain(Option::is_some);
            assert_eq!(
                usize::from(room),
                8 - model.len(),
                "free_room compacts first"
            );
        }
        for i in 0..8 {
            if let Some(m) = burst.take(i) {
                out.push(m.into_raw());
            }
        }
        burst.compact();
        assert!(burst.is_empty());
        assert_eq!(out.len(), next_fake, "every fake came back exactly once");
    }
}
