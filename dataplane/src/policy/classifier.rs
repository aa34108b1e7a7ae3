//! The bit-vector classifier behind [`super::CompiledPolicy`]: finds the matching entries of a
//! 5-tuple without scanning the rules.
//!
//! Entries are numbered in evaluation order. For each dimension (protocol, source address,
//! destination address, source port, destination port) the value space is cut into elementary
//! intervals at every rule boundary; each interval maps to a *class*, and each class to the
//! set of entries whose set covers the interval (identical sets share one class).
//! Protocols and ports use direct 256- and 65536-entry class tables; addresses (128-bit) use a
//! binary search over the sorted interval starts.
//!
//! Memory stays near-linear in the rules: entries that match a whole dimension (`any`) are
//! kept once per dimension in a dense *wildcard* bitset instead of in every class, and a
//! class stores only its non-zero 64-bit words (word index, bits). A dense bitset per class
//! would cost classes × entries / 8 bytes — 100,000 rules with distinct destinations took
//! 1.7 GB that way. Classes are built by one sweep over the interval boundaries that keeps
//! only the entries covering the current interval, so the build never holds a dense
//! intervals × entries matrix either.
//!
//! A lookup ANDs the five dimensions word by word (wildcard | class) in ascending word
//! order, driven by the sparsest dimension that has no wildcard entries, so the first match
//! in evaluation order is found first and the walk stops as soon as the caller has its
//! answer.

use std::collections::{BTreeMap, HashMap};

use super::sets::{RangeSet, ADDR_MAX, PORT_MAX};

/// The five match dimensions of one entry, as interval sets.
pub(crate) struct EntrySets {
    pub protos: RangeSet,
    pub src: RangeSet,
    pub dst: RangeSet,
    pub src_ports: RangeSet,
    pub dst_ports: RangeSet,
}

/// The classes of one dimension as sparse bitsets: class `c` holds the words
/// `word_index[start[c]..start[c + 1]]` (ascending) with bits `word_bits[…]`; entries that
/// cover the whole dimension are in `wildcard` (dense, empty when there are none).
#[derive(Debug, Default)]
struct Classes {
    wildcard: Vec<u64>,
    start: Vec<u32>,
    word_index: Vec<u32>,
    word_bits: Vec<u64>,
}

/// One dimension's contribution to a lookup: its wildcard words and one class.
#[derive(Clone, Copy)]
struct ClassView<'a> {
    wildcard: &'a [u64],
    word_index: &'a [u32],
    word_bits: &'a [u64],
}

/// A dimension looked up through a direct table (protocols, ports).
#[derive(Debug, Default)]
struct TableDim {
    class_of: Vec<u16>,
    classes: Classes,
}

/// A dimension looked up by binary search (addresses).
#[derive(Debug, Default)]
struct SearchDim {
    /// Sorted starts of the elementary intervals; the first is 0.
    starts: Vec<u128>,
    class_of: Vec<u32>,
    classes: Classes,
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

/// Elementary intervals of a dimension and, for each, its class.
fn build_dim(sets: &[&RangeSet], max: u128, words: usize) -> (Vec<u128>, Vec<u32>, Classes) {
    let full = RangeSet::full(max);
    let mut wildcard = Vec::new();
    let mut starts: Vec<u128> = vec![0];
    for (entry, set) in sets.iter().enumerate() {
        if **set == full {
            if wildcard.is_empty() {
                wildcard = vec![0u64; words];
            }
            if let Some(w) = wildcard.get_mut(entry / 64) {
                *w |= 1u64 << (entry % 64);
            }
            continue;
        }
        for &(lo, hi) in &set.0 {
            starts.push(lo);
            if hi < max {
                starts.push(hi + 1);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();

    // Sweep: at interval `i` the entries whose range starts there join and those whose
    // range ended just before leave. An entry's ranges are disjoint and non-adjacent, so
    // it never joins and leaves at the same interval.
    let mut events: Vec<(u32, bool, u32)> = Vec::new(); // (interval, joins, entry)
    for (entry, set) in sets.iter().enumerate() {
        if **set == full {
            continue;
        }
        let entry = u32::try_from(entry).unwrap_or(u32::MAX);
        for &(lo, hi) in &set.0 {
            let first = starts.partition_point(|&s| s < lo);
            let end = starts.partition_point(|&s| s <= hi);
            events.push((u32::try_from(first).unwrap_or(u32::MAX), true, entry));
            events.push((u32::try_from(end).unwrap_or(u32::MAX), false, entry));
        }
    }
    events.sort_unstable();

    let n = starts.len();
    let mut active: BTreeMap<u32, u64> = BTreeMap::new();
    let mut class_ids: HashMap<Vec<(u32, u64)>, u32> = HashMap::new();
    let mut classes = Classes {
        wildcard,
        start: vec![0],
        ..Classes::default()
    };
    let mut class_of = Vec::with_capacity(n);
    let mut next_event = events.iter().peekable();
    for interval in 0..n {
        while let Some(&&(at, joins, entry)) = next_event.peek() {
            if at as usize != interval {
                break;
            }
            next_event.next();
            let (word, bit) = (entry / 64, 1u64 << (entry % 64));
            if joins {
                *active.entry(word).or_default() |= bit;
            } else if let Some(w) = active.get_mut(&word) {
                *w &= !bit;
                if *w == 0 {
                    active.remove(&word);
                }
            }
        }
        let key: Vec<(u32, u64)> = active.iter().map(|(&w, &b)| (w, b)).collect();
        let next = u32::try_from(class_ids.len()).unwrap_or(u32::MAX);
        let id = *class_ids.entry(key).or_insert_with_key(|key| {
            for &(w, b) in key {
                classes.word_index.push(w);
                classes.word_bits.push(b);
            }
            classes
                .start
                .push(u32::try_from(classes.word_index.len()).unwrap_or(u32::MAX));
            next
        });
        class_of.push(id);
    }
    (starts, class_of, classes)
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

impl Classes {
    #[inline]
    fn view(&self, class: usize) -> ClassView<'_> {
        let range = match (self.start.get(class), self.start.get(class + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        };
        ClassView {
            wildcard: &self.wildcard,
            word_index: self.word_index.get(range.clone()).unwrap_or(&[]),
            word_bits: self.word_bits.get(range).unwrap_or(&[]),
        }
    }

    fn count(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// 64-bit words stored for this dimension (wildcard plus every class).
    fn stored_words(&self) -> usize {
        self.wildcard.len() + self.word_bits.len()
    }
}

impl ClassView<'_> {
    const EMPTY: ClassView<'static> = ClassView {
        wildcard: &[],
        word_index: &[],
        word_bits: &[],
    };

    /// The bits of word `w`; `cursor` only moves forward, so `w` must not decrease
    /// between calls with the same cursor.
    #[inline]
    fn word(&self, cursor: &mut usize, w: u32) -> u64 {
        while self.word_index.get(*cursor).is_some_and(|&i| i < w) {
            *cursor += 1;
        }
        let class = match (self.word_index.get(*cursor), self.word_bits.get(*cursor)) {
            (Some(&i), Some(&b)) if i == w => b,
            _ => 0,
        };
        class | self.wildcard.get(w as usize).copied().unwrap_or(0)
    }
}

impl TableDim {
    #[inline]
    fn lookup(&self, v: usize) -> ClassView<'_> {
        match self.class_of.get(v) {
            Some(&c) => self.classes.view(usize::from(c)),
            None => ClassView::EMPTY,
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
    fn lookup(&self, a: u128) -> ClassView<'_> {
        let idx = self.starts.partition_point(|&s| s <= a).wrapping_sub(1);
        match self.class_of.get(idx) {
            Some(&c) => self.classes.view(c as usize),
            None => ClassView::EMPTY,
        }
    }
}

/// The matching entries in word `w`: the AND of the five dimensions.
#[inline]
fn and_at(dims: &[ClassView<'_>; 5], cursors: &mut [usize; 5], w: u32) -> u64 {
    let mut m = u64::MAX;
    for (d, c) in dims.iter().zip(cursors.iter_mut()) {
        m &= d.word(c, w);
        if m == 0 {
            break;
        }
    }
    m
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
        let dims = [
            self.proto.lookup(usize::from(proto)),
            self.src.lookup(src),
            self.dst.lookup(dst),
            self.src_port.lookup(usize::from(sport)),
            self.dst_port.lookup(usize::from(dport)),
        ];
        let mut cursors = [0usize; 5];
        let mut walk = |w: u32, cursors: &mut [usize; 5]| {
            let mut m = and_at(&dims, cursors, w);
            while m != 0 {
                let entry = w as usize * 64 + m.trailing_zeros() as usize;
                if visit(entry) {
                    return true;
                }
                m &= m - 1;
            }
            false
        };
        // A dimension without wildcard entries matches only in its class's words: walk
        // those of the sparsest such dimension; otherwise every word may match.
        let driver = dims
            .iter()
            .filter(|d| d.wildcard.is_empty())
            .min_by_key(|d| d.word_index.len());
        match driver {
            Some(d) => {
                for &w in d.word_index {
                    if walk(w, &mut cursors) {
                        return;
                    }
                }
            }
            None => {
                let words = u32::try_from(self.words).unwrap_or(u32::MAX);
                for w in 0..words {
                    if walk(w, &mut cursors) {
                        return;
                    }
                }
            }
        }
    }

    /// Number of distinct classes per dimension (for the summary line).
    pub fn class_counts(&self) -> [usize; 5] {
        [
            self.proto.classes.count(),
            self.src.classes.count(),
            self.dst.classes.count(),
            self.src_port.classes.count(),
            self.dst_port.classes.count(),
        ]
    }

    /// 64-bit words of class storage over all dimensions (the part that grows with rules).
    pub fn stored_words(&self) -> usize {
        [
            &self.proto.classes,
            &self.src.classes,
            &self.dst.classes,
            &self.src_port.classes,
            &self.dst_port.classes,
        ]
        .iter()
        .map(|c| c.stored_words())
        .sum()
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

    /// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below
        }
        fn set(&mut self, max: u128, span: u64) -> RangeSet {
            match self.next(4) {
                0 => RangeSet::full(max),
                _ => {
                    let ranges = (0..=self.next(2))
                        .map(|_| {
                            let lo = u128::from(self.next(span));
                            (lo, (lo + u128::from(self.next(span / 4 + 1))).min(max))
                        })
                        .collect();
                    RangeSet::from_ranges(ranges)
                }
            }
        }
    }

    fn covers(s: &RangeSet, v: u128) -> bool {
        s.0.iter().any(|&(lo, hi)| lo <= v && v <= hi)
    }

    #[test]
    fn agrees_with_a_linear_scan_on_random_entries() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let entries: Vec<EntrySets> = (0..300)
            .map(|_| EntrySets {
                protos: rng.set(255, 20),
                src: rng.set(ADDR_MAX, 64),
                dst: rng.set(ADDR_MAX, 64),
                src_ports: rng.set(PORT_MAX, 64),
                dst_ports: rng.set(PORT_MAX, 64),
            })
            .collect();
        let c = Classifier::new(&entries);
        for _ in 0..3000 {
            let (proto, src, dst) = (rng.next(22) as u8, rng.next(80), rng.next(80));
            let (sp, dp) = (rng.next(80) as u16, rng.next(80) as u16);
            let want: Vec<usize> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    covers(&e.protos, u128::from(proto))
                        && covers(&e.src, u128::from(src))
                        && covers(&e.dst, u128::from(dst))
                        && covers(&e.src_ports, u128::from(sp))
                        && covers(&e.dst_ports, u128::from(dp))
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(
                matches(&c, proto, u128::from(src), u128::from(dst), sp, dp),
                want,
                "proto {proto} src {src} dst {dst} sport {sp} dport {dp}"
            );
        }
    }

    #[test]
    fn storage_grows_linearly_with_distinct_destinations() {
        // The shape that used to cost classes x entries bits: every rule its own
        // destination, any source, one port. Dense class bitsets would hold about
        // 2 x 20,000 x 313 words here; the sparse classes hold a few words per rule.
        let n = 20_000u128;
        let entries: Vec<EntrySets> = (0..n)
            .map(|i| EntrySets {
                protos: set(&[(6, 6)]),
                src: RangeSet::full(ADDR_MAX),
                dst: set(&[(1000 + 2 * i, 1000 + 2 * i)]),
                src_ports: RangeSet::full(PORT_MAX),
                dst_ports: set(&[(443, 443)]),
            })
            .collect();
        let c = Classifier::new(&entries);
        let words = c.stored_words();
        assert!(
            words < 8 * n as usize,
            "{words} words of class storage for {n} rules"
        );
        assert_eq!(matches(&c, 6, 7, 1000 + 2 * 777, 1, 443), vec![777]);
        assert!(matches(&c, 6, 7, 1001 + 2 * 777, 1, 443).is_empty());
    }
}
