//! Cache warming for the burst loop's "prefetch ahead" passes, without `unsafe`.
//!
//! `core::arch::x86_64::_mm_prefetch` is not callable from safe code in this toolchain
//! (it is a `#[target_feature(enable = "sse")]` function, so a caller without that
//! attribute needs `unsafe`, and this crate denies `unsafe_code`). Instead we *touch* the
//! line: one plain load whose value goes only into `black_box`. Nothing waits on it, so
//! an out-of-order core keeps issuing the rest of the burst while the miss is in flight,
//! and the touches of a burst overlap like prefetches. It is portable (no `#[cfg]`
//! needed) and measured against a no-op in `benches/flow.rs`' notes.

/// Starts loading the cache line holding `*v`.
#[inline(always)]
pub(super) fn touch<T: Copy>(v: &T) {
    core::hint::black_box(*v);
}
