//! Transparent huge pages for large heap tables (the flow shard's slab and index): with
//! `--no-huge` and THP in `madvise` mode, a 1M-flow table on 4 KiB pages costs a TLB miss
//! and a page walk on almost every lookup.
//!
//! Both helpers take a borrowed slice, not a pointer and a length: the borrow proves the
//! range is one live allocation for the whole call, so safe code cannot aim `madvise` at
//! memory it does not own.

use std::io;

use crate::error::os_result;

const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned part of `region` with huge pages now
/// (`MADV_HUGEPAGE`, then `MADV_COLLAPSE`, Linux ≥ 6.1): the contents stay as they are.
/// Returns the bytes covered; an error (old kernel, THP disabled) changes nothing.
pub fn collapse_to_huge_pages<T>(region: &[T]) -> io::Result<usize> {
    let addr = region.as_ptr().cast::<u8>();
    let len = core::mem::size_of_val(region);
    let start = (addr as usize).next_multiple_of(HUGE_PAGE);
    let end = (addr as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return Ok(0);
    }
    for advice in [libc::MADV_HUGEPAGE, libc::MADV_COLLAPSE] {
        // SAFETY: the range lies inside `region`, a live allocation borrowed for the whole
        // call; these two advices never change the contents or the validity
        // of the mapping (a collapse copies the data into a huge page atomically).
        os_result(unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) })?;
    }
    Ok(end - start)
}

/// Faults in every page of `region` now, writable (`MADV_POPULATE_WRITE`, Linux ≥ 5.14),
/// so a table preallocated at start is resident at start — and, called on the thread that
/// will use it, on that thread's NUMA node: memory use is flat from then on, and the
/// packet path never takes a first-touch page fault. The contents stay as they are. An
/// error (old kernel, a read-only mapping) changes nothing.
pub fn prefault<T>(region: &[T]) -> io::Result<()> {
    const PAGE: usize = 4096;
    let addr = region.as_ptr().cast::<u8>();
    let len = core::mem::size_of_val(region);
    let start = addr as usize / PAGE * PAGE;
    let end = (addr as usize).saturating_add(len);
    if len == 0 {
        return Ok(());
    }
    // SAFETY: `[start, end)` covers `region`, a live allocation borrowed for the whole
    // call, rounded down to its first page, which belongs to the same mapping; populating
    // only maps pages (zero-filled if never touched) and never changes their contents.
    os_result(unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_POPULATE_WRITE,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_contents_and_ignores_small_ranges() {
        let v: Vec<u8> = (0..8 * HUGE_PAGE).map(|i| (i % 251) as u8).collect();
        // Either it worked (bytes covered) or the kernel refused; the data is intact.
        if let Ok(n) = collapse_to_huge_pages(&v) {
            assert!(n >= 6 * HUGE_PAGE && n <= v.len(), "{n}");
        }
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        assert_eq!(collapse_to_huge_pages(&v[..4096]).unwrap(), 0);
    }

    #[test]
    fn prefault_keeps_contents() {
        let v: Vec<u8> = (0..3 * HUGE_PAGE + 123).map(|i| (i % 253) as u8).collect();
        prefault(&v[7..]).expect("MADV_POPULATE_WRITE");
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
        prefault(&v[..0]).unwrap();
        let words: Vec<u64> = vec![7; 1 << 18];
        prefault(&words).unwrap();
        assert!(words.iter().all(|&w| w == 7));
    }
}
