//! A safe cache prefetch for the data plane crates, which deny `unsafe` (the binary wraps it
//! in a `dataplane::flow::Prefetch` implementation, inlined into the burst loop).

/// Hints that the cache line holding `p` is read soon (`PREFETCHT0`, like DPDK's
/// `rte_prefetch0`). Any address is fine, null or dangling included: a prefetch never
/// faults and has no architectural effect.
#[inline(always)]
pub fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, which every x86_64 CPU has; PREFETCHT0 never
    // dereferences architecturally and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the shim only calls `rte_prefetch0(p)`, a cache hint that never dereferences
    // `p` architecturally and never faults, whatever the address.
    unsafe {
        crate::sys::fg_prefetch0(p.cast());
    }
}

#[cfg(test)]
mod tests {
    use super::prefetch_read;

    #[test]
    fn any_address_is_harmless() {
        let v = [1u8; 64];
        prefetch_read(v.as_ptr());
        prefetch_read(core::ptr::null());
        prefetch_read(usize::MAX as *const u8);
        assert_eq!(v[0], 1);
    }
}
