//! Cache-warming hooks for the burst loop's "prefetch ahead" passes.
//!
//! `core::arch::x86_64::_mm_prefetch` is not callable from safe code in this toolchain
//! (Rust 1.95): it is a `#[target_feature(enable = "sse")]` function, so any caller
//! without that attribute needs `unsafe`, and this crate denies `unsafe_code`. The hooks
//! are therefore the portable no-op fallback on every target. We measured the safe
//! alternative — *touching* the line with a load fed to `black_box` — with 1,000,000
//! resident flows (KVM guest, 4 KiB pages): it was 15–25 % slower than doing nothing,
//! because `black_box` is a compiler barrier and the loads still retire in order, while
//! the plain burst loop already lets the core overlap the independent lookups.
//! The shard keeps `prefetch_bucket` / `prefetch_entry` so that the engine's pipeline
//! shape stays right and a real prefetch drops in here once it is safe to call.

/// Hint that `*v` will be read soon (currently a no-op: see the module docs).
#[inline(always)]
pub(super) fn hint_read<T>(v: &T) {
    let _ = v;
}
