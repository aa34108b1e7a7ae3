//! The prefetcher the shard calls to warm buckets and entries ahead of use.
//!
//! A real prefetch (`_mm_prefetch`) needs `unsafe`, which this crate denies, so the shard
//! holds a plain `fn(*const u8)` that the binary sets to `dpdk_bindings::prefetch_read`
//! (a safe wrapper: a prefetch never faults) with [`super::FlowShard::set_prefetcher`].
//! Tests and benches without it get [`no_prefetch`]. (A safe "touch the line" fallback was
//! measured 15–25 % slower than nothing: the loads retire in order behind `black_box`.)
//! The call is indirect but always to the same target, so it predicts perfectly; with
//! 1,000,000 resident flows it saves far more than it costs (see BENCHMARKS.md).

/// Hint that the cache line at the address will be read soon. Must never fault.
pub type Prefetcher = fn(*const u8);

/// The portable default: does nothing.
#[inline]
pub fn no_prefetch(p: *const u8) {
    let _ = p;
}
