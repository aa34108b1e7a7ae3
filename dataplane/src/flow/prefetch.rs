//! How the shard warms buckets and entries ahead of use: the [`Prefetch`] type parameter.
//!
//! A real prefetch (`_mm_prefetch`) needs `unsafe`, which this crate denies, so the shard
//! (and the engine around it) is generic over a `Prefetch` implementation: the binary uses
//! one that calls `dpdk_bindings::prefetch_read` (a safe wrapper: a prefetch never
//! faults), tests and benches the default [`NoPrefetch`]. A type, not a stored
//! `fn(*const u8)` as before: the call inlines to one `PREFETCHT0`, where the function
//! pointer cost four indirect calls per packet (5.7 % of the worker's samples,
//! BENCHMARKS.md). (A safe "touch the line" fallback was measured 15–25 % slower than
//! nothing: the loads retire in order behind `black_box`.)

/// Hints that the cache line at an address will be read soon.
pub trait Prefetch {
    /// Must never fault, whatever the address (null and dangling included).
    fn read(p: *const u8);
}

/// The portable default: does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrefetch;

impl Prefetch for NoPrefetch {
    #[inline(always)]
    fn read(p: *const u8) {
        let _ = p;
    }
}
