//! Flush-all by detaching the index: the fast path of a flush whose filter selects every
//! flow. Instead of removing a million flows one by one from the hash index (a random
//! bucket access each), the shard swaps its index for an empty spare in O(1): from that
//! instant no flow that existed is found by a lookup, so later packets of those flows meet
//! the stream exception policy, as after any flush. The detached entries stay in the slab
//! until [`FlowShard::drain_detached`] walks it sequentially (in slices between bursts),
//! handing each to the caller for its flushed-flow record and freeing its slot; an entry
//! the caller keeps (a flow the flush does not select, e.g. a closed one) is indexed
//! again. The old index becomes the spare and is emptied in slices
//! ([`FlowShard::clear_spare_slice`]), so a later flush-all can detach again.
//!
//! While a detach is in progress an entry is *detached* when it is live, in a slot the
//! walk has not reached, and was created at or before the cutoff: expiry and eviction
//! leave such entries to the walk.

use super::FlowShard;
use crate::flow::entry::{flag, FlowEntry};
use crate::flow::prefetch::Prefetch;

/// A flush-all in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Detached {
    /// Flows first seen at or before this instant (ticks) were detached.
    pub(super) cutoff: u64,
    /// Next slab slot the walk examines.
    pub(super) cursor: u32,
}

impl<P: Prefetch> FlowShard<P> {
    /// Whether [`FlowShard::detach_all`] can run now: no detach in progress and the spare
    /// index is empty (it is emptied in slices after the previous detach).
    pub fn can_detach_all(&self) -> bool {
        self.detached.is_none() && self.spare_clear >= self.spare.buckets()
    }

    /// True between [`FlowShard::detach_all`] and the end of its walk.
    #[inline]
    pub fn is_detaching(&self) -> bool {
        self.detached.is_some()
    }

    /// Detaches every flow first seen at or before `cutoff` from the index at once (see
    /// the module docs). False, changing nothing, when [`FlowShard::can_detach_all`] is not.
    pub fn detach_all(&mut self, cutoff: u64) -> bool {
        if !self.can_detach_all() {
            return false;
        }
        std::mem::swap(&mut self.index, &mut self.spare);
        self.spare_clear = 0;
        self.detached = Some(Detached { cutoff, cursor: 0 });
        true
    }

    /// Whether the live entry `e` in `slot` is still waiting for the walk.
    #[inline]
    pub(super) fn is_detached(&self, slot: u32, e: &FlowEntry) -> bool {
        self.detached
            .is_some_and(|d| slot >= d.cursor && e.first_seen <= d.cutoff)
    }

    /// Walks at most `max_slots` slab slots of the detach in progress. Each detached
    /// entry goes to `f(entry, false)`: true flushes it (its slot is freed after `f` saw
    /// it), false keeps it and it is indexed again, unless a flow with its key was created
    /// since the detach: then the old entry ends, and goes to `f(entry, true)` first
    /// (the return value is ignored). Returns the slots still to walk, `None` once the
    /// walk is over (or when no detach is in progress).
    pub fn drain_detached(
        &mut self,
        max_slots: u32,
        f: &mut impl FnMut(&FlowEntry, bool) -> bool,
    ) -> Option<u32> {
        let mut d = self.detached?;
        let cap = self.capacity();
        let end = d.cursor.saturating_add(max_slots).min(cap);
        for slot in d.cursor..end {
            let Some(e) = self.entries.get(slot as usize) else {
                break;
            };
            if !(e.is_live() && e.first_seen <= d.cutoff) {
                continue;
            }
            let keep = !f(e, false) && {
                // Rare (a flow the flush does not select): one index probe.
                let hash = self.hash(&e.key);
                if self.lookup(&e.key, hash).is_some() {
                    f(e, true);
                    false
                } else {
                    self.index.insert(hash, slot).is_some()
                }
            };
            if !keep {
                self.free_detached(slot);
            }
        }
        d.cursor = end;
        if end >= cap {
            self.detached = None;
            None
        } else {
            self.detached = Some(d);
            Some(cap - end)
        }
    }

    fn free_detached(&mut self, slot: u32) {
        if let Some(e) = self.entries.get_mut(slot as usize) {
            e.flags &= !flag::LIVE;
        }
        self.push_free(slot);
        self.len = self.len.saturating_sub(1);
        if self.len <= self.emergency_leave_len {
            self.emergency = false;
        }
    }

    /// Empties up to `buckets` more buckets of the spare index; true once it is empty.
    pub fn clear_spare_slice(&mut self, buckets: usize) -> bool {
        if self.spare_clear < self.spare.buckets() {
            self.spare_clear = self.spare.clear_range(self.spare_clear, buckets);
        }
        self.spare_clear >= self.spare.buckets()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::shard::{FlowId, ShardConfig, TableFull};
    use crate::flow::FlowKey;
    use crate::packet::{proto, v4_to_addr, PacketMeta};

    const TPS: u64 = 1000;

    fn shard(capacity: u32) -> FlowShard {
        FlowShard::new(&ShardConfig {
            capacity,
            ticks_per_sec: TPS,
            ..ShardConfig::default()
        })
    }

    fn udp(i: u32) -> PacketMeta {
        PacketMeta {
            proto: proto::UDP,
            ip_version: 4,
            src: v4_to_addr(0xc612_0000 + i),
            dst: v4_to_addr(0xc613_0001),
            src_port: 1024 + i as u16,
            dst_port: 53,
            ttl: 64,
            frame_len: 100,
            ..PacketMeta::default()
        }
    }

    fn add(s: &mut FlowShard, i: u32, now: u64) -> Result<FlowId, TableFull> {
        let m = udp(i);
        let (k, sw) = FlowKey::from_meta(&m, true);
        s.insert(&k, s.hash(&k), sw, &m, now, &mut |_| {})
    }

    fn find(s: &FlowShard, i: u32) -> Option<FlowId> {
        let (k, _) = FlowKey::from_meta(&udp(i), true);
        s.lookup(&k, s.hash(&k))
    }

    fn src_of(e: &FlowEntry) -> u32 {
        (e.opener_tuple().src as u32).wrapping_sub(0xc612_0000)
    }

    #[test]
    fn detach_hides_every_flow_at_once_and_the_walk_frees_them() {
        let mut s = shard(200);
        for i in 0..100 {
            add(&mut s, i, 5).unwrap();
        }
        assert!(s.can_detach_all());
        assert!(s.detach_all(10));
        assert!(!s.detach_all(10), "one detach at a time");
        assert!((0..100).all(|i| find(&s, i).is_none()), "no flow is found");
        // A packet of a detached flow now creates a new flow, found from then on.
        let again = add(&mut s, 7, 11).unwrap();
        assert_eq!(find(&s, 7), Some(again));
        assert_eq!(s.len(), 101);
        let mut seen = Vec::new();
        let mut left = Some(0);
        while left.is_some() {
            left = s.drain_detached(16, &mut |e, superseded| {
                assert!(!superseded);
                seen.push(src_of(e));
                true
            });
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..100).collect::<Vec<_>>(),
            "each detached flow exactly once"
        );
        assert!(!s.is_detaching());
        assert_eq!(s.len(), 1);
        assert_eq!(find(&s, 7), Some(again), "the new flow survives the walk");
        // The spare is emptied in slices before another detach.
        assert!(!s.can_detach_all());
        while !s.clear_spare_slice(3) {}
        assert!(s.can_detach_all());
        // Freed slots are reused.
        for i in 200..399 {
            add(&mut s, i, 20).unwrap();
        }
        assert_eq!(s.len(), 200);
    }

    #[test]
    fn kept_flows_are_indexed_again_unless_their_tuple_was_reused() {
        let mut s = shard(64);
        let ids: Vec<FlowId> = (0..10).map(|i| add(&mut s, i, 5).unwrap()).collect();
        assert!(s.detach_all(10));
        let reused = add(&mut s, 2, 11).unwrap();
        let mut superseded = Vec::new();
        while s
            .drain_detached(4, &mut |e, sup| {
                if sup {
                    superseded.push(src_of(e));
                }
                src_of(e) % 2 == 1 // flush odd ones, keep even ones
            })
            .is_some()
        {}
        assert_eq!(superseded, vec![2]);
        for i in [0, 4, 6, 8] {
            assert_eq!(find(&s, i), Some(ids[i as usize]), "kept flow {i}");
        }
        assert_eq!(find(&s, 2), Some(reused));
        assert!((1..10).step_by(2).all(|i| find(&s, i).is_none()));
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn expiry_eviction_and_scans_leave_detached_flows_to_the_walk() {
        let mut s = shard(8);
        for i in 0..8 {
            add(&mut s, i, 5).unwrap();
        }
        assert!(s.detach_all(10));
        // Full of unestablished flows, each evictable, but detached: none is evicted.
        assert!(add(&mut s, 100, 11).is_err());
        // Long idle, but left to the walk.
        let mut expired = 0;
        s.expire_slice(1_000_000, 8, &mut |_| expired += 1);
        assert_eq!(expired, 0);
        let mut scanned = 0;
        assert_eq!(
            s.scan(0, 8, &mut |_, _| {
                scanned += 1;
                true
            }),
            None
        );
        assert_eq!(scanned, 0);
        let mut flushed = 0;
        assert_eq!(
            s.drain_detached(8, &mut |_, _| {
                flushed += 1;
                true
            }),
            None
        );
        assert_eq!(flushed, 8);
        assert!(s.is_empty());
        assert!(add(&mut s, 100, 12).is_ok());
    }
}
