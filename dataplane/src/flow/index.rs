//! The hash index of a shard: a power-of-two array of 64-byte buckets, each holding up to
//! seven `(hash tag, slab index)` pairs, so a lookup costs one cache line plus one entry.
//!
//! Placement is linear probing over buckets with F14-style overflow counts: a bucket's
//! `overflow` counts the entries that probed past it because it was full, so a lookup
//! stops at the first bucket with `overflow == 0`, and removal needs no tombstones (it
//! decrements the counts along the removed entry's probe path). The bucket array is
//! sized for a load factor of at most 1/2 at full slab capacity, so almost every key
//! lives in its home bucket. Probing is bounded: a key is placed at most
//! [`MAX_PROBE`] buckets past its home or refused (with the keyed hash this needs an
//! astronomically unlucky table, never a crafted one), so no lookup reads more than
//! `MAX_PROBE + 1` buckets; the shard counts placements [`LONG_PROBE`] or more away.

/// Pairs per bucket (7 × 8 bytes + overflow + padding = one cache line).
const SLOTS: usize = 7;
/// Slab index of an empty slot.
const NO_ID: u32 = u32::MAX;
/// The furthest (in buckets) a key may be placed from its home bucket.
pub(super) const MAX_PROBE: usize = 16;
/// A placement this many buckets from home (or more) is counted as a long probe.
pub(super) const LONG_PROBE: usize = 2;

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; SLOTS],
    /// Entries stored further along the probe sequence that passed this bucket.
    overflow: u32,
    ids: [u32; SLOTS],
    _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [0; SLOTS],
        overflow: 0,
        ids: [NO_ID; SLOTS],
        _pad: 0,
    };
}

/// The part of the hash that selects a bucket is the low bits; the tag is the high half,
/// so the two are independent for any table below 2^32 buckets.
#[inline(always)]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

pub(super) struct BucketIndex {
    buckets: Box<[Bucket]>,
    mask: usize,
}

impl BucketIndex {
    /// An empty index with room for `entries` keys at load factor ≤ 1/2.
    pub(super) fn new(entries: u32) -> BucketIndex {
        let needed = (u64::from(entries) * 2).div_ceil(SLOTS as u64).max(1);
        let n = needed.next_power_of_two() as usize;
        BucketIndex {
            buckets: vec![Bucket::EMPTY; n].into_boxed_slice(),
            mask: n - 1,
        }
    }

    #[inline(always)]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    #[inline(always)]
    fn next(&self, b: usize) -> usize {
        (b + 1) & self.mask
    }

    /// The bucket array, for prefaulting and huge-page advice.
    pub(super) fn region(&self) -> &[impl Sized] {
        &self.buckets
    }

    /// Number of buckets.
    pub(super) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Address of the home bucket of `hash` (what a prefetch warms).
    #[inline(always)]
    pub(super) fn home_ptr(&self, hash: u64) -> *const u8 {
        self.buckets
            .get(self.home(hash))
            .map_or(core::ptr::null(), |b| core::ptr::from_ref(b).cast())
    }

    /// The first slab index in the home bucket of `hash` whose tag matches: almost always
    /// the flow's entry, so it is the one to prefetch before the real lookup, and the
    /// hint [`super::FlowShard::lookup_hinted`] checks first (so the bucket's tags are
    /// compared once per packet, here, rather than again in [`BucketIndex::find`]).
    #[inline(always)]
    pub(super) fn first_candidate(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let bucket = self.buckets.get(self.home(hash))?;
        let hits = bucket
            .tags
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &t)| acc | (u32::from(t == tag) << i));
        if hits == 0 {
            return None;
        }
        bucket
            .ids
            .get(hits.trailing_zeros() as usize)
            .copied()
            .filter(|&id| id != NO_ID)
    }

    /// The slab index stored under `hash` for which `is_match` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag_of(hash);
        let mut b = self.home(hash);
        for _ in 0..=MAX_PROBE.min(self.mask) {
            let bucket = self.buckets.get(b)?;
            // Branch-free tag compare over the bucket (vectorises), then visit the hits.
            let mut hits = bucket
                .tags
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &t)| acc | (u32::from(t == tag) << i));
            while hits != 0 {
                let slot = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if let Some(&id) = bucket.ids.get(slot) {
                    if id != NO_ID && is_match(id) {
                        return Some(id);
                    }
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Slab indexes stored in the home bucket of `hash` (eviction candidates).
    /// Empty places hold [`NO_ID`], which is past any slab.
    pub(super) fn home_ids(&self, hash: u64) -> &[u32; SLOTS] {
        const NONE: [u32; SLOTS] = [NO_ID; SLOTS];
        self.buckets.get(self.home(hash)).map_or(&NONE, |b| &b.ids)
    }

    /// Adds `id` under `hash`; returns how many buckets past its home it went, or `None`
    /// when the home bucket and the [`MAX_PROBE`] after it are full.
    pub(super) fn insert(&mut self, hash: u64, id: u32) -> Option<usize> {
        let home = self.home(hash);
        let mut b = home;
        for distance in 0..=MAX_PROBE.min(self.mask) {
            let bucket = self.buckets.get_mut(b)?;
            if let Some(s) = bucket.ids.iter().position(|&i| i == NO_ID) {
                if let (Some(t), Some(i)) = (bucket.tags.get_mut(s), bucket.ids.get_mut(s)) {
                    *t = tag_of(hash);
                    *i = id;
                }
                self.adjust_overflow(home, distance, true);
                return Some(distance);
            }
            b = self.next(b);
        }
        None
    }

    /// Removes `id` stored under `hash`; false if it is not there.
    pub(super) fn remove(&mut self, hash: u64, id: u32) -> bool {
        let home = self.home(hash);
        let mut b = home;
        for distance in 0..=MAX_PROBE.min(self.mask) {
            let Some(bucket) = self.buckets.get_mut(b) else {
                return false;
            };
            if let Some(s) = bucket.ids.iter().position(|&i| i == id) {
                if let (Some(t), Some(i)) = (bucket.tags.get_mut(s), bucket.ids.get_mut(s)) {
                    *t = 0;
                    *i = NO_ID;
                }
                self.adjust_overflow(home, distance, false);
                return true;
            }
            if bucket.overflow == 0 {
                return false;
            }
            b = self.next(b);
        }
        false
    }

    /// Counts (or uncounts) an entry that probed `distance` buckets past `home`.
    fn adjust_overflow(&mut self, home: usize, distance: usize, add: bool) {
        let mut b = home;
        for _ in 0..distance {
            if let Some(bucket) = self.buckets.get_mut(b) {
                bucket.overflow = if add {
                    bucket.overflow.saturating_add(1)
                } else {
                    bucket.overflow.saturating_sub(1)
                };
            }
            b = self.next(b);
        }
    }

    /// Empties the index (keeps its memory).
    pub(super) fn clear(&mut self) {
        self.buckets.fill(Bucket::EMPTY);
    }

    /// Empties buckets `[from, from + n)` (clamped); returns where the next call starts,
    /// the bucket count once the whole index is empty. Sequential stores only: a spare
    /// index is cleared this way in slices while its twin serves lookups.
    pub(super) fn clear_range(&mut self, from: usize, n: usize) -> usize {
        let len = self.buckets.len();
        let start = from.min(len);
        let end = start.saturating_add(n).min(len);
        if let Some(part) = self.buckets.get_mut(start..end) {
            part.fill(Bucket::EMPTY);
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_for_half_load() {
        assert_eq!(BucketIndex::new(0).buckets(), 1);
        assert_eq!(BucketIndex::new(7).buckets(), 2);
        assert_eq!(BucketIndex::new(1_000_000).buckets(), 1 << 19);
        for n in [1u32, 5, 100, 4097, 123_456] {
            assert!(BucketIndex::new(n).buckets() * SLOTS >= 2 * n as usize);
        }
    }

    #[test]
    fn overflow_chains_survive_removal_in_any_order() {
        // Everything hashes to bucket 0 of 4: the chain spills over three buckets.
        let mut ix = BucketIndex::new(14);
        assert_eq!(ix.buckets(), 4);
        let hash = |i: u32| (u64::from(i) << 32) | 4; // home bucket 0, distinct tags
        for i in 0..20 {
            assert_eq!(ix.insert(hash(i), i), Some(i as usize / SLOTS));
        }
        for i in 0..20 {
            assert_eq!(ix.find(hash(i), |id| id == i), Some(i));
        }
        // Remove from the home bucket first: later entries must still be found.
        for i in (0..20).step_by(2) {
            assert!(ix.remove(hash(i), i));
            assert!(!ix.remove(hash(i), i), "removed twice");
        }
        for i in 0..20 {
            let want = (i % 2 == 1).then_some(i);
            assert_eq!(ix.find(hash(i), |id| id == i), want, "{i}");
        }
        for i in (1..20).step_by(2) {
            assert!(ix.remove(hash(i), i));
        }
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
        assert!(ix.buckets.iter().all(|b| b.ids.iter().all(|&i| i == NO_ID)));
    }

    #[test]
    fn full_index_refuses_and_stays_consistent() {
        let mut ix = BucketIndex::new(1); // 1 bucket, 7 slots
        for i in 0..7 {
            assert_eq!(ix.insert(u64::from(i) << 32, i), Some(0));
        }
        assert_eq!(ix.insert(99 << 32, 99), None);
        assert_eq!(ix.find(99 << 32, |_| true), None);
        assert_eq!(ix.home_ids(0).iter().filter(|&&id| id != NO_ID).count(), 7);
        ix.clear();
        assert_eq!(ix.home_ids(0).iter().filter(|&&id| id != NO_ID).count(), 0);
        assert_eq!(ix.find(3 << 32, |_| true), None);
    }

    #[test]
    fn clear_range_empties_in_slices() {
        let mut ix = BucketIndex::new(100);
        for i in 0..50u32 {
            assert!(ix
                .insert(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15), i)
                .is_some());
        }
        let mut at = 0;
        while at < ix.buckets() {
            at = ix.clear_range(at, 3);
        }
        assert_eq!(ix.clear_range(at, 3), ix.buckets(), "past the end: no-op");
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
        assert!(ix.buckets.iter().all(|b| b.ids.iter().all(|&i| i == NO_ID)));
    }

    #[test]
    fn tag_collisions_are_resolved_by_the_matcher() {
        let mut ix = BucketIndex::new(100);
        assert_eq!(ix.insert(42, 1), Some(0));
        assert_eq!(ix.insert(42, 2), Some(0));
        assert_eq!(ix.find(42, |id| id == 2), Some(2));
        assert_eq!(ix.find(42, |id| id == 3), None);
        // Same tag, other bucket: not found.
        assert_eq!(ix.find(43, |_| true), None);
    }

    #[test]
    fn probing_is_bounded() {
        // Everything hashes to bucket 0 of a large index: it fills MAX_PROBE + 1 buckets,
        // then refuses, and lookups of absent keys stop there.
        let mut ix = BucketIndex::new(10_000);
        let hash = |i: u32| u64::from(i) << 32;
        let fits = (MAX_PROBE + 1) * SLOTS;
        for i in 0..fits as u32 {
            assert_eq!(ix.insert(hash(i), i), Some(i as usize / SLOTS));
        }
        assert_eq!(ix.insert(hash(fits as u32), 99_999), None);
        assert_eq!(ix.find(hash(fits as u32), |_| true), None);
        let last = fits as u32 - 1;
        assert_eq!(ix.find(hash(last), |id| id == last), Some(last));
        assert!(ix.remove(hash(last), last));
    }
}
