//! Packet-buffer pools (`rte_pktmbuf_pool_create`) shared by ports and workers.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::{Eal, LiveObject};
use crate::error::{DpdkError, Result};
use crate::mbuf::Mbuf;
use crate::sys;

/// Default mbuf data room: 2048 bytes of packet data plus `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
/// Bytes reserved in front of the packet data of every mbuf.
pub const MBUF_HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

/// A pool of packet mbufs. Cloning is cheap and shares the pool; it is freed when the last clone
/// (including the one each started [`crate::Port`] keeps for its rx rings) is dropped.
///
/// `Send + Sync`: DPDK mempools are multi-producer/multi-consumer safe, and threads that are not
/// EAL lcores simply bypass the per-lcore cache.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    /// Taken (and forgotten) when the pool is leaked, so the EAL stays up for its mbufs.
    live: Option<LiveObject>,
}

// SAFETY: an rte_mempool created without single-producer/consumer flags may be used from any thread;
// the pointer itself is never mutated after creation.
unsafe impl Send for PoolInner {}
// SAFETY: as above; all shared-reference operations (alloc, counts) are MP-safe DPDK calls.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs with a per-lcore cache of `cache` and `data_room` bytes of
    /// buffer per mbuf (including [`MBUF_HEADROOM`]; use [`DEFAULT_DATA_ROOM`] for 1500-byte MTUs),
    /// on the main lcore's NUMA socket. DPDK pools are most efficient when `n_mbufs` is 2^k - 1.
    ///
    /// # Errors
    /// [`DpdkError::DataRoomTooSmall`], [`DpdkError::InteriorNul`], or [`DpdkError::Call`] from
    /// `rte_pktmbuf_pool_create` (e.g. `ENOMEM`/`ENOBUFS` when `-m` is too small, `EEXIST` for a
    /// duplicate name, `EINVAL` for a cache larger than allowed).
    pub fn new(eal: &Eal, name: &str, n_mbufs: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        if data_room <= MBUF_HEADROOM {
            return Err(DpdkError::DataRoomTooSmall {
                name: name.to_owned(),
                data_room,
                headroom: MBUF_HEADROOM,
            });
        }
        let c_name = CString::new(name).map_err(|_| DpdkError::InteriorNul {
            what: "mempool name",
            value: name.to_owned(),
        })?;
        // SAFETY: c_name is a valid C string for the duration of the call; EAL is initialised (eal
        // exists); DPDK copies the name.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                n_mbufs,
                cache,
                0,
                data_room,
                eal.socket_id(),
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            DpdkError::from_rte_errno(format!("rte_pktmbuf_pool_create({name:?}, n={n_mbufs})"))
        })?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_owned(),
                live: Some(LiveObject::new()),
            }),
        })
    }

    /// Allocates one mbuf (reset, empty), or `None` if the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid while self lives; rte_pktmbuf_alloc is MP-safe.
        let m = unsafe { sys::fg_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated mbuf that nobody else references.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m.as_ptr()) })
    }

    /// Mbufs currently allocated (held by the application or by device rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid; the count is a racy but memory-safe snapshot.
        unsafe { sys::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    /// Total number of mbufs in the pool.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the pool pointer is valid and `size` is immutable after creation.
        unsafe { self.inner.raw.as_ref().size }
    }

    /// Name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool pointer is valid until freed below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if in_use != 0 {
            // Mbufs do not keep their pool alive (that would cost a refcount per packet). Freeing the
            // pool now would make their eventual free a use-after-free, so leak it instead.
            // The leaked pool stays a live DPDK object for good: `Eal::drop` then skips
            // `rte_eal_cleanup`, so an `Mbuf` still held (safe code can hold one past the
            // pool and the `Eal`) never frees into a torn-down EAL.
            std::mem::forget(self.live.take());
            eprintln!(
                "dpdk-bindings: mempool {:?} dropped with {in_use} mbufs in use; leaking it (EAL cleanup skipped)",
                self.name
            );
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding and no port references it (ports hold a clone).
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}
