//! Per-worker fragment tracking ("virtual reassembly", VPP's shape): non-first fragments
//! carry no ports, so they cannot be matched to a flow or a rule on their own. The first
//! fragment of a datagram is judged like any packet; its verdict and flow are recorded
//! here under (source, destination, protocol, identification, VLAN), and every later
//! fragment of the datagram follows that verdict and is counted in that flow. Nothing is
//! reassembled and no packet is held: fragments are forwarded as they arrive, unchanged.
//!
//! Attacks this refuses (each dropped and counted):
//! * later fragments whose first fragment was never seen (out of order, or forged to slip
//!   past the port rules): no verdict to follow;
//! * overlapping fragments (RFC 1858, RFC 3128: rewriting the ports or flags the first
//!   fragment showed) and duplicates — once seen, the whole rest of the datagram is dropped;
//! * datagrams past 65,535 bytes, non-final fragments whose length is not a multiple of 8,
//!   and datagrams in more than [`MAX_PIECES`] disjoint pieces or [`MAX_FRAGMENTS`]
//!   fragments.
//!
//! The table is preallocated ([`FragConfig::capacity`] slots), open-addressed with a
//! bounded probe, keyed by a per-start random hash so nobody can aim collisions at it.
//! Entries expire [`FragConfig::timeout_ticks`] after their first fragment; a full probe
//! window evicts its oldest entry (counted), so a flood of first fragments costs the
//! flooder's own datagrams, never memory.

use std::hash::BuildHasher;

use crate::flow::FlowKey;
use crate::packet::{Addr, Fragment, PacketMeta};

/// Disjoint byte ranges one datagram may be in at a time (in-order delivery keeps it at 1).
pub const MAX_PIECES: usize = 6;
/// Fragments one datagram may have (a 65,535-byte datagram over a 1,280-byte MTU has 52).
pub const MAX_FRAGMENTS: u16 = 64;
/// Slots examined for one datagram.
const PROBE: usize = 8;
/// Largest IP datagram (IPv4 total length; IPv6 payload length without jumbograms).
const MAX_DATAGRAM: u32 = 65_535;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams tracked at once per worker (rounded up to a power of two, at least 64).
    pub capacity: u32,
    /// How long a datagram's entry lives after its first fragment, in clock ticks.
    pub timeout_ticks: u64,
}

/// What the tracker counts (published in the worker's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// First fragments recorded.
    pub datagrams: u64,
    /// Later fragments forwarded, following their forwarded first fragment.
    pub followed: u64,
    /// Later fragments dropped, following their dropped first fragment.
    pub dropped_with_first: u64,
    /// Later fragments dropped: no first fragment seen (or its entry expired or evicted).
    pub no_first: u64,
    /// Fragments dropped for overlapping (or duplicating) a fragment already seen, and the
    /// rest of such datagrams.
    pub overlap: u64,
    /// Fragments dropped for a bad length, a datagram past 65,535 bytes, or too many pieces.
    pub bad: u64,
    /// Live entries evicted to make room for a new datagram.
    pub evicted: u64,
    /// Datagrams all of whose fragments were seen.
    pub completed: u64,
}

/// Why a later fragment is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragDrop {
    NoFirst,
    Overlap,
    Bad,
}

/// The datagram a fragment belongs to (RFC 791 / RFC 8200: source, destination, protocol,
/// identification), plus the VLAN so separate zones never share datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: Addr,
    dst: Addr,
    id: u32,
    vlan: u16,
    proto: u8,
}

impl DatagramKey {
    fn of(m: &PacketMeta) -> DatagramKey {
        DatagramKey {
            src: m.src,
            dst: m.dst,
            id: m.frag_id,
            vlan: m.vlan,
            proto: m.proto,
        }
    }
}

/// One tracked datagram.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: DatagramKey,
    /// Tick after which the slot is free; 0 = free.
    expires: u64,
    forward: bool,
    /// Overlap seen: every further fragment is dropped.
    poisoned: bool,
    flow: Option<(FlowKey, bool, u64)>,
    /// Covered byte ranges `[start, end)`, sorted, disjoint, non-adjacent.
    pieces: [(u32, u32); MAX_PIECES],
    n_pieces: u8,
    fragments: u16,
    /// End of the datagram once its last fragment came.
    total: Option<u32>,
}

/// What a later fragment should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Forward it (the first fragment was forwarded); count it in this flow (key, swapped,
    /// hash) if any.
    Forward(Option<(FlowKey, bool, u64)>),
    /// The first fragment was dropped: drop this one too (same reason, the policy).
    DropLikeFirst,
    Drop(FragDrop),
}

pub struct FragmentTracker {
    slots: Box<[Slot]>,
    mask: usize,
    timeout: u64,
    hasher: std::collections::hash_map::RandomState,
    counters: FragCounters,
}

impl FragmentTracker {
    /// Preallocates the table (the only allocation it makes) and draws its hash key.
    pub fn new(cfg: &FragConfig) -> FragmentTracker {
        let n = (cfg.capacity.max(64) as usize).next_power_of_two();
        FragmentTracker {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n - 1,
            timeout: cfg.timeout_ticks.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            counters: FragCounters::default(),
        }
    }

    pub fn counters(&self) -> &FragCounters {
        &self.counters
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Datagrams tracked and not expired at `now`.
    pub fn live(&self, now: u64) -> usize {
        self.slots.iter().filter(|s| s.expires > now).count()
    }

    fn home(&self, key: &DatagramKey) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    fn find(&self, key: &DatagramKey, now: u64) -> Option<usize> {
        let home = self.home(key);
        (0..PROBE)
            .map(|k| (home + k) & self.mask)
            .find(|&i| self.slots[i].expires > now && self.slots[i].key == *key)
    }

    /// Records the verdict of the first fragment `m` (`forward`: it was forwarded) and the
    /// flow it was counted in. Returns `Err` when the datagram already has a first
    /// fragment (a duplicate or overlapping first fragment): drop this one.
    pub fn record_first(
        &mut self,
        m: &PacketMeta,
        forward: bool,
        flow: Option<(FlowKey, bool, u64)>,
        now: u64,
    ) -> Result<(), FragDrop> {
        debug_assert_eq!(m.fragment, Fragment::First);
        let key = DatagramKey::of(m);
        if let Some(i) = self.find(&key, now) {
            self.slots[i].poisoned = true;
            self.counters.overlap += 1;
            return Err(FragDrop::Overlap);
        }
        let len = u32::from(m.frag_len);
        if len == 0 || !len.is_multiple_of(8) {
            self.counters.bad += 1;
            return Err(FragDrop::Bad);
        }
        let home = self.home(&key);
        let mut victim = home;
        for k in 0..PROBE {
            let i = (home + k) & self.mask;
            if self.slots[i].expires <= now {
                victim = i;
                break;
            }
            if self.slots[i].expires < self.slots[victim].expires {
                victim = i;
            }
        }
        if self.slots[victim].expires > now {
            self.counters.evicted += 1;
        }
        let mut slot = Slot {
            key,
            expires: now + self.timeout,
            forward,
            flow,
            fragments: 1,
            n_pieces: 1,
            ..Slot::default()
        };
        slot.pieces[0] = (0, len);
        self.slots[victim] = slot;
        self.counters.datagrams += 1;
        Ok(())
    }

    /// Decides the later fragment `m`: follow the first fragment's verdict, or drop.
    pub fn follow(&mut self, m: &PacketMeta, now: u64) -> Follow {
        debug_assert_eq!(m.fragment, Fragment::Later);
        let key = DatagramKey::of(m);
        let Some(i) = self.find(&key, now) else {
            self.counters.no_first += 1;
            return Follow::Drop(FragDrop::NoFirst);
        };
        let slot = &mut self.slots[i];
        if slot.poisoned {
            self.counters.overlap += 1;
            return Follow::Drop(FragDrop::Overlap);
        }
        let start = u32::from(m.frag_offset);
        let end = start + u32::from(m.frag_len);
        let bad_len = m.frag_len == 0 || (m.frag_more && !m.frag_len.is_multiple_of(8));
        let past_end =
            slot.total.is_some_and(|t| end > t) || (!m.frag_more && slot.total.is_some());
        if bad_len || end > MAX_DATAGRAM || past_end || slot.fragments >= MAX_FRAGMENTS {
            slot.poisoned = true;
            self.counters.bad += 1;
            return Follow::Drop(FragDrop::Bad);
        }
        let pieces = &slot.pieces[..usize::from(slot.n_pieces)];
        if pieces.iter().any(|&(s, e)| start < e && s < end) {
            slot.poisoned = true;
            self.counters.overlap += 1;
            return Follow::Drop(FragDrop::Overlap);
        }
        if !m.frag_more {
            // The datagram ends here; nothing may already lie beyond.
            if pieces.iter().any(|&(_, e)| e > end) {
                slot.poisoned = true;
                self.counters.bad += 1;
                return Follow::Drop(FragDrop::Bad);
            }
            slot.total = Some(end);
        }
        if !insert_piece(slot, start, end) {
            slot.poisoned = true;
            self.counters.bad += 1;
            return Follow::Drop(FragDrop::Bad);
        }
        slot.fragments += 1;
        let (forward, flow) = (slot.forward, slot.flow);
        if slot
            .total
            .is_some_and(|t| slot.n_pieces == 1 && slot.pieces[0] == (0, t))
        {
            // Complete: free the slot now rather than at its timeout.
            slot.expires = 0;
            self.counters.completed += 1;
        }
        if forward {
            self.counters.followed += 1;
            Follow::Forward(flow)
        } else {
            self.counters.dropped_with_first += 1;
            Follow::DropLikeFirst
        }
    }
}

/// Adds `[start, end)` (disjoint from every piece) to the slot's sorted pieces, merging
/// adjacent ones. False when that would need more than [`MAX_PIECES`] pieces.
fn insert_piece(slot: &mut Slot, start: u32, end: u32) -> bool {
    let n = usize::from(slot.n_pieces);
    let mut v: [(u32, u32); MAX_PIECES + 1] = [(0, 0); MAX_PIECES + 1];
    let mut len = 0;
    let mut placed = false;
    for &p in &slot.pieces[..n] {
        if !placed && start < p.0 {
            v[len] = (start, end);
            len += 1;
            placed = true;
        }
        v[len] = p;
        len += 1;
    }
    if !placed {
        v[len] = (start, end);
        len += 1;
    }
    // Merge touching neighbours.
    let mut out = 0;
    for k in 0..len {
        if out > 0 && v[out - 1].1 == v[k].0 {
            v[out - 1].1 = v[k].1;
        } else {
            v[out] = v[k];
            out += 1;
        }
    }
    if out > MAX_PIECES {
        return false;
    }
    slot.pieces[..out].copy_from_slice(&v[..out]);
    slot.n_pieces = out as u8;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{proto, v4_to_addr};

    const HZ: u64 = 1000;

    fn tracker() -> FragmentTracker {
        FragmentTracker::new(&FragConfig {
            capacity: 64,
            timeout_ticks: 2 * HZ,
        })
    }

    fn frag(id: u32, offset: u16, len: u16, more: bool) -> PacketMeta {
        PacketMeta {
            ip_version: 4,
            proto: proto::UDP,
            src: v4_to_addr(0xc612_0001),
            dst: v4_to_addr(0xc612_0002),
            fragment: if offset == 0 {
                Fragment::First
            } else {
                Fragment::Later
            },
            frag_id: id,
            frag_offset: offset,
            frag_more: more,
            frag_len: len,
            ..PacketMeta::default()
        }
    }

    #[test]
    fn later_fragments_follow_the_first_and_the_slot_frees_when_complete() {
        let mut t = tracker();
        t.record_first(&frag(7, 0, 1480, true), true, None, 10)
            .unwrap();
        assert_eq!(
            t.follow(&frag(7, 1480, 1480, true), 11),
            Follow::Forward(None)
        );
        assert_eq!(
            t.follow(&frag(7, 2960, 1048, false), 12),
            Follow::Forward(None)
        );
        assert_eq!(t.counters().completed, 1);
        assert_eq!(t.live(12), 0);
        // A denied first fragment: the rest is dropped with it.
        t.record_first(&frag(8, 0, 1480, true), false, None, 20)
            .unwrap();
        assert_eq!(
            t.follow(&frag(8, 1480, 100, false), 21),
            Follow::DropLikeFirst
        );
    }

    #[test]
    fn fragments_without_a_first_or_after_expiry_are_dropped() {
        let mut t = tracker();
        assert_eq!(
            t.follow(&frag(1, 1480, 8, false), 5),
            Follow::Drop(FragDrop::NoFirst)
        );
        t.record_first(&frag(1, 0, 1480, true), true, None, 10)
            .unwrap();
        assert_eq!(
            t.follow(&frag(1, 1480, 8, false), 10 + 2 * HZ),
            Follow::Drop(FragDrop::NoFirst)
        );
        assert_eq!(t.counters().no_first, 2);
    }

    #[test]
    fn overlaps_duplicates_and_tiny_overwrites_poison_the_datagram() {
        let mut t = tracker();
        t.record_first(&frag(2, 0, 24, true), true, None, 1)
            .unwrap();
        // RFC 1858 style: offset 8 rewrites the L4 header the first fragment showed.
        assert_eq!(
            t.follow(&frag(2, 8, 16, true), 2),
            Follow::Drop(FragDrop::Overlap)
        );
        // Once poisoned, even a clean continuation is dropped.
        assert_eq!(
            t.follow(&frag(2, 24, 8, false), 3),
            Follow::Drop(FragDrop::Overlap)
        );
        // A second first fragment.
        t.record_first(&frag(3, 0, 16, true), true, None, 1)
            .unwrap();
        assert_eq!(
            t.record_first(&frag(3, 0, 16, true), true, None, 2),
            Err(FragDrop::Overlap)
        );
        // A duplicate later fragment.
        t.record_first(&frag(4, 0, 16, true), true, None, 1)
            .unwrap();
        assert!(matches!(
            t.follow(&frag(4, 16, 16, true), 2),
            Follow::Forward(_)
        ));
        assert_eq!(
            t.follow(&frag(4, 16, 16, true), 3),
            Follow::Drop(FragDrop::Overlap)
        );
    }

    #[test]
    fn bad_lengths_and_oversized_datagrams() {
        let mut t = tracker();
        assert_eq!(
            t.record_first(&frag(5, 0, 20, true), true, None, 1),
            Err(FragDrop::Bad),
            "a non-final fragment's length is a multiple of 8"
        );
        t.record_first(&frag(6, 0, 1480, true), true, None, 1)
            .unwrap();
        assert_eq!(
            t.follow(&frag(6, 65528, 16, false), 2),
            Follow::Drop(FragDrop::Bad)
        );
        t.record_first(&frag(9, 0, 16, true), true, None, 1)
            .unwrap();
        assert!(matches!(
            t.follow(&frag(9, 64, 8, false), 2),
            Follow::Forward(_)
        ));
        // Past the end the last fragment set.
        assert_eq!(
            t.follow(&frag(9, 72, 8, true), 3),
            Follow::Drop(FragDrop::Bad)
        );
    }

    #[test]
    fn out_of_order_pieces_merge_and_are_bounded() {
        let mut t = tracker();
        t.record_first(&frag(10, 0, 8, true), true, None, 1)
            .unwrap();
        // Every other 8-byte piece: up to MAX_PIECES disjoint ranges are accepted.
        for k in 1..MAX_PIECES as u16 {
            assert!(
                matches!(t.follow(&frag(10, 16 * k, 8, true), 2), Follow::Forward(_)),
                "{k}"
            );
        }
        assert_eq!(
            t.follow(&frag(10, 16 * MAX_PIECES as u16, 8, true), 2),
            Follow::Drop(FragDrop::Bad)
        );
        // Filling holes merges pieces.
        t.record_first(&frag(11, 0, 8, true), true, None, 1)
            .unwrap();
        assert!(matches!(
            t.follow(&frag(11, 16, 8, false), 2),
            Follow::Forward(_)
        ));
        assert!(matches!(
            t.follow(&frag(11, 8, 8, true), 2),
            Follow::Forward(_)
        ));
        assert_eq!(t.counters().completed, 1);
    }

    #[test]
    fn a_flood_of_first_fragments_evicts_within_the_table() {
        let mut t = tracker();
        for id in 0..10_000 {
            let _ = t.record_first(&frag(id, 0, 8, true), true, None, 1);
        }
        assert!(t.live(1) <= t.capacity());
        assert!(t.counters().evicted > 0);
        // The newest datagram is still tracked.
        assert!(matches!(
            t.follow(&frag(9_999, 8, 8, false), 2),
            Follow::Forward(_)
        ));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::packet::{proto, v4_to_addr};
    use proptest::prelude::*;

    fn meta(id: u32, offset: u16, len: u16, more: bool) -> PacketMeta {
        PacketMeta {
            ip_version: 4,
            proto: proto::UDP,
            src: v4_to_addr(1),
            dst: v4_to_addr(2),
            fragment: if offset == 0 && more {
                Fragment::First
            } else {
                Fragment::Later
            },
            frag_id: id,
            frag_offset: offset,
            frag_more: more,
            frag_len: len,
            ..PacketMeta::default()
        }
    }

    proptest! {
        /// Any sequence of fragments (ids from a small set so datagrams collide, arbitrary
        /// offsets and lengths): no panic, the table stays within its capacity, fragments
        /// of a datagram whose first fragment was dropped are never forwarded, and bytes a
        /// forwarded fragment covered are never forwarded twice.
        #[test]
        fn arbitrary_fragment_sequences(
            seq in proptest::collection::vec((0u32..4, 0u16..8192, 0u16..2048, any::<bool>(), any::<bool>()), 0..200)
        ) {
            let mut t = FragmentTracker::new(&FragConfig { capacity: 64, timeout_ticks: 1_000_000 });
            let mut forwarded: std::collections::HashMap<u32, Vec<(u32, u32)>> = Default::default();
            let mut first_allowed: std::collections::HashMap<u32, bool> = Default::default();
            for (now, (id, offset, len, more, allow)) in seq.into_iter().enumerate() {
                let offset = offset & !7;
                let m = meta(id, offset, len, more);
                let now = now as u64 + 1;
                if m.fragment == Fragment::First {
                    if t.record_first(&m, allow, None, now).is_ok() {
                        first_allowed.insert(id, allow);
                        forwarded.insert(id, vec![(0, u32::from(len))]);
                    }
                    continue;
                }
                if let Follow::Forward(_) = t.follow(&m, now) {
                    prop_assert_eq!(first_allowed.get(&id), Some(&true));
                    let (s, e) = (u32::from(offset), u32::from(offset) + u32::from(len));
                    let seen = forwarded.entry(id).or_default();
                    prop_assert!(!seen.iter().any(|&(a, b)| s < b && a < e), "bytes forwarded twice");
                    prop_assert!(e <= MAX_DATAGRAM);
                    seen.push((s, e));
                }
                prop_assert!(t.live(now) <= t.capacity());
            }
        }
    }
}
