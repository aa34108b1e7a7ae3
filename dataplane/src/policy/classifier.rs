//! The bit-vector classifier behind [`super::CompiledPolicy`]: finds the matching entries of a
//! 5-tuple without scanning the rules.
//!
//! Entries are numbered in evaluation order. For each dimension (protocol, source address,
//! destination address, source port, destination port) the value space is cut into elementary
//! intervals at every rule boundary; each interval maps to a *class*, and each class to the
//! bitset of entries whose set covers the interval (identical bitsets share one class).
//! Protocols and ports use direct 256- and 65536-entry class tables; addresses (128-bit) use a
//! binary search over the sorted interval starts. A lookup ANDs five bitsets word by word and
//! walks the set bits in order, so the first match in evaluation order is found first and
//! the walk stops as soon as the caller has its answer.

use std::collections::HashMap;

use super::sets::{RangeSet, ADDR_MAX, PORT_MAX};

/// The five match dimensions of one entry, as interval sets.
pub(crate) struct EntrySets {
    pub protos: RangeSet,
    pub src: RangeSet,
    pub dst: RangeSet,
    pub src_ports: RangeSet,
    pub dst_ports: RangeSet,
}

/// Class bitsets of one dimension: class `c` is `bits[c * words .. (c + 1) * words]`.
#[derive(Debug, Default)]
struct ClassBits {
    bits: Vec<u64>,
}

/// A dimension looked up through a direct table (protocols, ports).
#[derive(Debug, Default)]
struct TableDim {
    class_of: Vec<u16>,
    classes: ClassBits,
}

/// A dimension looked up by binary search (addresses).
#[derive(Debug, Default)]
struct SearchDim {
    /// Sorted starts of the elementary intervals; the first is 0.
    starts: Vec<u128>,
    class_of: Vec<u32>,
    classes: ClassBits,
}

/// The compiled classifier. Immutable; lookups never allocate or panic.
#[derive(Debug, Default)]
pub(crate) struct Classifier {
    words: usize,
    proto: TableDim,
    src: SearchDim,
    dst: SearchDim,
    src_port: TableDim,
    dst_port: TableDim,
}

/// Elementary intervals of a dimension and, for each, the bitset of covering entries
/// (deduplicated into classes).
fn build_dim(sets: &[&RangeSet], max: u128, words: usize) -> (Vec<u128>, Vec<u32>, ClassBits) {
    let mut starts: Vec<u128> = vec![0];
    for set in sets {
        for &(lo, hi) in &set.0 {
            starts.push(lo);
            if hi < max {
                starts.push(hi + 1);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let n = starts.len();
    let mut per_interval = vec![0u64; n * words];
    for (entry, set) in sets.iter().enumerate() {
        let (word, bit) = (entry / 64, 1u64 << (entry % 64));
        for &(lo, hi) in &set.0 {
            let first = starts.partition_point(|&s| s < lo);
            let end = starts.partition_point(|&s| s <= hi);
            for i in first..end {
                if let Some(w) = per_interval.get_mut(i * words + word) {
                    *w |= bit;
                }
            }
        }
    }
    let mut class_ids: HashMap<&[u64], u32> = HashMap::new();
    let mut bits = Vec::new();
    let mut class_of = Vec::with_capacity(n);
    for chunk in per_interval.chunks(words.max(1)).take(n) {
        let next = u32::try_from(class_ids.len()).unwrap_or(u32::MAX);
        let id = *class_ids.entry(chunk).or_insert_with(|| {
            bits.extend_from_slice(chunk);
            next
        });
        class_of.push(id);
    }
    (starts, class_of, ClassBits { bits })
}

fn build_table(sets: &[&RangeSet], max: u128, words: usize) -> TableDim {
    let (starts, class_of, classes) = build_dim(sets, max, words);
    let size = usize::try_from(max).unwrap_or(0) + 1;
    let mut table = vec![0u16; size];
    for (i, (&start, &class)) in starts.iter().zip(&class_of).enumerate() {
        let end = starts
            .get(i + 1)
            .map_or(size, |&s| usize::try_from(s).unwrap_or(size));
        let start = usize::try_from(start).unwrap_or(size);
        if let Some(slot) = table.get_mut(start..end) {
            // At most 65536 intervals, so class ids fit.
            slot.fill(u16::try_from(class).unwrap_or(u16::MAX));
        }
    }
    TableDim {
        class_of: table,
        classes,
    }
}

impl ClassBits {
    #[inline]
    fn get(&self, class: usize, words: usize) -> &[u64] {
        self.bits
            .get(class * words..class * words + words)
            .unwrap_or(&[])
    }
}

impl TableDim {
    #[inline]
    fn lookup(&self, v: usize, words: usize) -> &[u64] {
        match self.class_of.get(v) {
            Some(&c) => self.classes.get(usize::from(c), words),
            None => &[],
        }
    }
}

impl SearchDim {
    fn new(sets: &[&RangeSet], words: usize) -> Self {
        let (starts, class_of, classes) = build_dim(sets, ADDR_MAX, words);
        SearchDim {
            starts,
            class_of,
            classes,
        }
    }

    #[inline]
    fn lookup(&self, a: u128, words: usize) -> &[u64] {
        let idx = self.starts.partition_point(|&s| s <= a).wrapping_sub(1);
        match self.class_of.get(idx) {
            Some(&c) => self.classes.get(c as usize, words),
            None => &[],
        }
    }
}

impl Classifier {
    /// Builds the classifier; entry `i` of `entries` gets bit `i`.
    pub fn new(entries: &[EntrySets]) -> Self {
        let words = entries.len().div_ceil(64);
        let pick = |f: fn(&EntrySets) -> &RangeSet| entries.iter().map(f).collect::<Vec<_>>();
        Classifier {
            words,
            proto: build_table(&pick(|e| &e.protos), 255, words),
            src: SearchDim::new(&pick(|e| &e.src), words),
            dst: SearchDim::new(&pick(|e| &e.dst), words),
            src_port: build_table(&pick(|e| &e.src_ports), PORT_MAX, words),
            dst_port: build_table(&pick(|e| &e.dst_ports), PORT_MAX, words),
        }
    }

    /// Calls `visit` with each matching entry in ascending order until it returns `true`.
    #[inline]
    pub fn find(
        &self,
        proto: u8,
        src: u128,
        dst: u128,
        sport: u16,
        dport: u16,
        mut visit: impl FnMut(usize) -> bool,
    ) {
        let w = self.words;
        let p = self.proto.lookup(usize::from(proto), w);
        let s = self.src.lookup(src, w);
        let d = self.dst.lookup(dst, w);
        let sp = self.src_port.lookup(usize::from(sport), w);
        let dp = self.dst_port.lookup(usize::from(dport), w);
        let words = p.iter().zip(s).zip(d).zip(sp).zip(dp);
        for (i, ((((p, s), d), sp), dp)) in words.enumerate() {
            let mut m = p & s & d & sp & dp;
            while m != 0 {
                let entry = i * 64 + m.trailing_zeros() as usize;
                if visit(entry) {
                    return;
                }
                m &= m - 1;
            }
        }
    }

    /// Number of distinct classes per dimension (for the summary line).
    pub fn class_counts(&self) -> [usize; 5] {
        let n = |c: &ClassBits| c.bits.len().checked_div(self.words).unwrap_or(0);
        [
            n(&self.proto.classes),
            n(&self.src.classes),
            n(&self.dst.classes),
            n(&self.src_port.classes),
            n(&self.dst_port.classes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u128, u128)]) -> RangeSet {
        RangeSet::from_ranges(r.to_vec())
    }

    fn matches(c: &Classifier, proto: u8, src: u128, dst: u128, sp: u16, dp: u16) -> Vec<usize> {
        let mut out = Vec::new();
        c.find(proto, src, dst, sp, dp, |e| {
            out.push(e);
            false
        });
        out
    }

    #[test]
    fn finds_all_matches_in_order_across_words() {
        // 130 entries so bitsets span three words; entry i matches dst port i only,
        // except every 10th which matches any port.
        let entries: Vec<EntrySets> = (0..130u128)
            .map(|i| EntrySets {
                protos: set(&[(6, 6)]),
                src: RangeSet::full(ADDR_MAX),
                dst: set(&[(100, 200)]),
                src_ports: RangeSet::full(PORT_MAX),
                dst_ports: if i % 10 == 0 {
                    RangeSet::full(PORT_MAX)
                } else {
                    set(&[(i, i)])
                },
            })
            .collect();
        let c = Classifier::new(&entries);
        let every_tenth: Vec<usize> = (0..130).step_by(10).collect();
        let mut want = every_tenth.clone();
        want.push(125);
        want.sort_unstable();
        assert_eq!(matches(&c, 6, 1, 150, 9, 125), want);
        assert_eq!(matches(&c, 6, 1, 150, 9, 5000), every_tenth);
        assert!(matches(&c, 17, 1, 150, 9, 125).is_empty());
        assert!(matches(&c, 6, 1, 201, 9, 125).is_empty());
        assert_eq!(
            matches(&c, 6, u128::MAX, 100, 0, 1),
            vec![0, 1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
        );
    }

    #[test]
    fn stops_when_visitor_says_so() {
        let all = EntrySets {
            protos: RangeSet::full(255),
            src: RangeSet::full(ADDR_MAX),
            dst: RangeSet::full(ADDR_MAX),
            src_ports: RangeSet::full(PORT_MAX),
            dst_ports: RangeSet::full(PORT_MAX),
        };
        let c = Classifier::new(&[all]);
        let mut seen = 0;
        c.find(0, 0, u128::MAX, 0, 65535, |_| {
            seen += 1;
            true
        });
        assert_eq!(seen, 1);
        assert_eq!(c.class_counts(), [1, 1, 1, 1, 1]);
    }

    #[test]
    fn empty_classifier_matches_nothing() {
        let c = Classifier::new(&[]);
        assert!(matches(&c, 6, 1, 2, 3, 4).is_empty());
    }
}
