//! One worker's flow table: a slab of [`FlowEntry`] indexed by stable [`FlowId`]s, a
//! bucket index over it, a free stack, and incremental expiry / bounded scans.
//!
//! Everything is allocated in [`FlowShard::with_prefetch`]; afterwards no method allocates, locks
//! or panics. The shard is owned by one worker (no atomics): both directions of a flow
//! reach the same worker through symmetric RSS.

use core::marker::PhantomData;

use super::entry::{flag, FlowEntry};
use super::index::{BucketIndex, LONG_PROBE};
use super::key::{FlowHasher, FlowKey};
use super::prefetch::{NoPrefetch, Prefetch};
use super::state::{Dir, FlowState};
use super::tcp::{self, TcpInvalid, TcpWindow};
use super::timeouts::{Timeouts, TimeoutsSecs};
use crate::packet::{proto, PacketMeta, Verdict};

/// Largest capacity a shard accepts (2^28 entries = 32 GiB of slab).
pub const MAX_CAPACITY: u32 = 1 << 28;

/// How many slab slots (from a rotating cursor) are eviction candidates, besides the
/// entries in the new key's home bucket.
pub const EVICT_WINDOW: u32 = 8;

/// Sizing and timeouts of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardConfig {
    /// Flow entries (preallocated).
    pub capacity: u32,
    pub timeouts: TimeoutsSecs,
    /// Timeouts while in emergency mode.
    pub emergency_timeouts: TimeoutsSecs,
    /// Emergency mode starts when `len ≥ ⌈capacity × high / 100⌉` …
    pub emergency_high_pct: u8,
    /// … and ends when `len ≤ ⌊capacity × low / 100⌋`.
    pub emergency_low_pct: u8,
    /// TSC frequency: converts the timeouts to ticks.
    pub ticks_per_sec: u64,
    /// How long a reject tombstone lives (seconds).
    pub tombstone_secs: u32,
    /// The flow hash's key; `None` (the default): a random one from the OS.
    pub hash_seeds: Option<[u64; 4]>,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            capacity: 1_000_000,
            timeouts: TimeoutsSecs::default(),
            emergency_timeouts: TimeoutsSecs::emergency_default(),
            emergency_high_pct: 95,
            emergency_low_pct: 80,
            ticks_per_sec: 1_000_000_000,
            tombstone_secs: 5,
            hash_seeds: None,
        }
    }
}

/// Why a [`ShardConfig`] is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardConfigError {
    #[error(
        "flow table capacity must be between 1 and {MAX_CAPACITY} entries per worker, got {0}"
    )]
    Capacity(u32),
    #[error("emergency thresholds need 0 <= low < high <= 100 percent, got low {low} high {high}")]
    EmergencyPct { low: u8, high: u8 },
    #[error("ticks_per_sec must be positive")]
    TicksPerSec,
    #[error("{which} timeout for {what} must be at least 1 second")]
    ZeroTimeout {
        which: &'static str,
        what: &'static str,
    },
}

impl ShardConfig {
    /// Checks the config; [`FlowShard::with_prefetch`] clamps whatever this would reject.
    pub fn validate(&self) -> Result<(), ShardConfigError> {
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return Err(ShardConfigError::Capacity(self.capacity));
        }
        let (low, high) = (self.emergency_low_pct, self.emergency_high_pct);
        if low >= high || high > 100 {
            return Err(ShardConfigError::EmergencyPct { low, high });
        }
        if self.ticks_per_sec == 0 {
            return Err(ShardConfigError::TicksPerSec);
        }
        if self.tombstone_secs == 0 {
            return Err(ShardConfigError::ZeroTimeout {
                which: "reject",
                what: "tombstone",
            });
        }
        for (which, t) in [
            ("normal", &self.timeouts),
            ("emergency", &self.emergency_timeouts),
        ] {
            let fields = [
                ("tcp_new", t.tcp_new),
                ("tcp_established", t.tcp_established),
                ("tcp_closed", t.tcp_closed),
                ("udp_new", t.udp_new),
                ("udp_established", t.udp_established),
                ("icmp_new", t.icmp_new),
                ("icmp_established", t.icmp_established),
                ("other_new", t.other_new),
                ("other_established", t.other_established),
            ];
            if let Some((what, _)) = fields.into_iter().find(|&(_, v)| v == 0) {
                return Err(ShardConfigError::ZeroTimeout { which, what });
            }
        }
        Ok(())
    }
}

/// Why a flow left the table (the flow log's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    Timeout,
    Flushed,
    Shutdown,
    Evicted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Flushed => "flushed",
            EndReason::Shutdown => "shutdown",
            EndReason::Evicted => "evicted",
        }
    }
}

/// The shard is full and no candidate entry could be evicted for the new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("flow table full: no idle or unestablished flow to evict")]
pub struct TableFull;

/// What [`FlowShard::update`] made of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// The packet's direction (after the packet: a SYN that reopens a closed flow from
    /// the other side makes its sender the opener, so it is `Orig`).
    pub dir: Dir,
    /// Why a TCP segment did not count (it changed nothing, not even the counters).
    pub invalid: Option<TcpInvalid>,
}

/// A flow's stable slab index in its shard: valid until the flow is removed, never moved
/// by other removals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(u32);

impl FlowId {
    /// The slab index.
    #[inline]
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// One worker's flow table (see the module docs); `P` turns its hints into real
/// prefetches (see `flow/prefetch.rs`).
pub struct FlowShard<P: Prefetch = NoPrefetch> {
    entries: Box<[FlowEntry]>,
    /// TCP window state per slab slot (cold: read only for TCP packets).
    windows: Box<[TcpWindow]>,
    hasher: FlowHasher,
    /// Index placements [`LONG_PROBE`] or more buckets from home, and refusals.
    long_probes: u64,
    tombstone_ticks: u64,
    index: BucketIndex,
    /// The index a flush-all swaps in (see `shard/detach.rs`); empty when
    /// `spare_clear == spare.buckets()`, else cleared in slices from `spare_clear` on.
    spare: BucketIndex,
    spare_clear: usize,
    /// The flush-all walk in progress, if any.
    detached: Option<detach::Detached>,
    /// Stack of free slab slots; `free[..free_len]` are free, the top is reused first
    /// (its line is likely still cached).
    free: Box<[u32]>,
    free_len: u32,
    len: u32,
    timeouts: Timeouts,
    emergency_timeouts: Timeouts,
    emergency: bool,
    emergency_enter_len: u32,
    emergency_leave_len: u32,
    expire_cursor: u32,
    evict_cursor: u32,
    /// Target of accesses through a `FlowId` that is not from this shard, so that such a
    /// logic error cannot panic the packet path.
    stray: FlowEntry,
    stray_window: TcpWindow,
    /// Warms cache lines ahead of use (see `flow/prefetch.rs`).
    prefetch: PhantomData<P>,
}

impl FlowShard {
    /// [`FlowShard::with_prefetch`] without real prefetches (tests, tools).
    pub fn new(cfg: &ShardConfig) -> FlowShard {
        FlowShard::with_prefetch(cfg)
    }
}

impl<P: Prefetch> FlowShard<P> {
    /// Allocates and initialises everything the shard will ever use; its bucket and entry
    /// hints go to `P`. Out-of-range settings are clamped (capacity to [`MAX_CAPACITY`],
    /// percentages to 1..=100 with low < high); call [`ShardConfig::validate`] first to
    /// reject them instead.
    pub fn with_prefetch(cfg: &ShardConfig) -> FlowShard<P> {
        let capacity = cfg.capacity.min(MAX_CAPACITY);
        let high = u64::from(cfg.emergency_high_pct.clamp(1, 100));
        let low = u64::from(cfg.emergency_low_pct).min(high - 1);
        let cap = u64::from(capacity);
        let tps = cfg.ticks_per_sec.max(1);
        FlowShard {
            entries: vec![FlowEntry::FREE; capacity as usize].into_boxed_slice(),
            windows: vec![TcpWindow::default(); capacity as usize].into_boxed_slice(),
            hasher: cfg
                .hash_seeds
                .map_or_else(FlowHasher::from_os, FlowHasher::with_seeds),
            long_probes: 0,
            tombstone_ticks: u64::from(cfg.tombstone_secs.max(1)).saturating_mul(tps),
            index: BucketIndex::new(capacity),
            spare: BucketIndex::new(capacity),
            spare_clear: usize::MAX,
            detached: None,
            // Reversed so that slots are handed out 0, 1, 2, … from a fresh shard.
            free: (0..capacity).rev().collect(),
            free_len: capacity,
            len: 0,
            timeouts: Timeouts::from_secs(&cfg.timeouts, tps),
            emergency_timeouts: Timeouts::from_secs(&cfg.emergency_timeouts, tps),
            emergency: false,
            emergency_enter_len: (cap * high).div_ceil(100) as u32,
            emergency_leave_len: (cap * low / 100) as u32,
            expire_cursor: 0,
            evict_cursor: 0,
            stray: FlowEntry::FREE,
            stray_window: TcpWindow::ZERO,
            prefetch: PhantomData,
        }
    }

    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Live flows.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True while the shard is nearly full and expiry uses the emergency timeouts.
    #[inline]
    pub fn in_emergency(&self) -> bool {
        self.emergency
    }

    /// Sets the normal idle timeout of established TCP flows (a policy's
    /// `tcp_idle_timeout_seconds`); the emergency one stays as configured.
    pub fn set_tcp_established_timeout(&mut self, secs: u32, ticks_per_sec: u64) {
        self.timeouts
            .set_tcp_established(u64::from(secs).saturating_mul(ticks_per_sec.max(1)));
    }

    /// The timeouts in force now (emergency ones in emergency mode).
    #[inline]
    pub fn timeouts(&self) -> &Timeouts {
        if self.emergency {
            &self.emergency_timeouts
        } else {
            &self.timeouts
        }
    }

    /// True when `e` has been idle longer than its timeout in force now: the next
    /// [`FlowShard::expire_slice`] reaching it removes it.
    #[inline]
    pub fn is_expired(&self, e: &FlowEntry, now: u64) -> bool {
        e.idle(now) > idle_limit(self.timeouts(), self.tombstone_ticks, e)
    }

    /// The keyed hash of `key` in this shard (see [`FlowHasher`]).
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    /// Index placements that probed [`LONG_PROBE`] or more buckets past home, plus
    /// refusals at the probe bound (`flowgate_flow_hash_long_probes_total`).
    #[inline]
    pub fn long_probes(&self) -> u64 {
        self.long_probes
    }

    /// The TCP window state of flow `id` (meaningful for TCP flows).
    #[inline]
    pub fn tcp_window(&self, id: FlowId) -> &TcpWindow {
        static NONE: TcpWindow = TcpWindow::ZERO;
        self.windows.get(id.0 as usize).unwrap_or(&NONE)
    }

    /// The large arrays (slab, TCP windows, bucket index, spare index): the binary prefaults
    /// them and asks for huge pages on them (`dpdk_bindings::{prefault, collapse_to_huge_pages}`).
    pub fn memory_regions(&self) -> (&[FlowEntry], &[TcpWindow], &[impl Sized], &[impl Sized]) {
        (
            &self.entries,
            &self.windows,
            self.index.region(),
            self.spare.region(),
        )
    }

    /// Bytes of memory the shard holds (slab, TCP windows, index and its spare, free stack).
    pub fn memory_bytes(&self) -> usize {
        self.entries.len() * core::mem::size_of::<FlowEntry>()
            + self.windows.len() * core::mem::size_of::<TcpWindow>()
            + (self.index.buckets() + self.spare.buckets()) * 64
            + self.free.len() * 4
    }

    /// Hint: the home bucket of `hash` is read soon (pass 1 of a burst).
    #[inline]
    pub fn prefetch_bucket(&self, hash: u64) {
        P::read(self.index.home_ptr(hash));
    }

    /// Hint: the flow with `hash` is looked up soon: prefetches both lines of the entry
    /// its home bucket points to, and its TCP window if `tcp` (call after
    /// [`FlowShard::prefetch_bucket`] had time to land; a miss or a tag collision only
    /// wastes the hint). Returns that entry's id, the candidate to pass to
    /// [`FlowShard::lookup_hinted`].
    #[inline]
    pub fn prefetch_flow(&self, hash: u64, tcp: bool) -> Option<FlowId> {
        let id = self.index.first_candidate(hash).map(FlowId);
        if let Some(id) = id {
            self.prefetch_entry(id, tcp);
        }
        id
    }

    /// The flow with `key` (whose hash is `hash`), if present.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, hash: u64) -> Option<FlowId> {
        let entries = &self.entries;
        self.index
            .find(hash, |id| {
                entries
                    .get(id as usize)
                    .is_some_and(|e| e.key == *key && e.is_live())
            })
            .map(FlowId)
    }

    /// [`FlowShard::lookup`], trying `hint` first (the candidate
    /// [`FlowShard::prefetch_flow`] returned earlier in the burst): a hit then costs one
    /// key compare instead of a second pass over the bucket's tags.
    ///
    /// Any hint gives the same answer as `lookup`, however stale (its slot freed, reused
    /// by another flow, moved in the index by inserts and evictions since): every live
    /// entry that a flush-all has not detached is in the index, and no two indexed
    /// entries share a key, so a live, attached entry holding `key` is exactly the one
    /// `lookup` would find. Anything else falls back to the full lookup.
    #[inline]
    pub fn lookup_hinted(&self, key: &FlowKey, hash: u64, hint: Option<FlowId>) -> Option<FlowId> {
        if let Some(id) = hint {
            let hit = self
                .entries
                .get(id.0 as usize)
                .is_some_and(|e| e.key == *key && e.is_live() && !self.is_detached(id.0, e));
            if hit {
                return Some(id);
            }
        }
        self.lookup(key, hash)
    }

    /// Hint: entry `id` (both of its cache lines) and, if `tcp`, its TCP window are read soon.
    #[inline]
    pub fn prefetch_entry(&self, id: FlowId, tcp: bool) {
        if let Some(e) = self.entries.get(id.0 as usize) {
            let p: *const u8 = core::ptr::from_ref(e).cast();
            P::read(p);
            P::read(p.wrapping_add(64));
        }
        // Only TCP flows read their window: a UDP packet fetching the line would spend
        // one of the core's few outstanding misses for nothing.
        if tcp {
            if let Some(w) = self.windows.get(id.0 as usize) {
                P::read(core::ptr::from_ref(w).cast());
            }
        }
    }

    #[inline]
    pub fn entry(&self, id: FlowId) -> &FlowEntry {
        self.entries.get(id.0 as usize).unwrap_or(&self.stray)
    }

    #[inline]
    pub fn entry_mut(&mut self, id: FlowId) -> &mut FlowEntry {
        match self.entries.get_mut(id.0 as usize) {
            Some(e) => e,
            None => &mut self.stray,
        }
    }

    /// Creates a flow whose first packet is `m`, sent by the opener (`swapped` as
    /// [`FlowKey::from_meta`] returned it), at `now`; the key must not be in the table
    /// (look it up first). Initial state: TCP SYN → `SynSent`; TCP RST → `Closed`; other
    /// TCP (midstream pickup) → `Established`, marked midstream; other protocols → `New`.
    /// The packet is counted. Verdict: `Pass`, sid/rule/epoch 0 until
    /// [`FlowEntry::set_verdict`].
    ///
    /// When the table is full, one entry is evicted if a candidate qualifies (conntrack's
    /// early drop): the candidates are the entries in the key's home bucket plus
    /// [`EVICT_WINDOW`] slab slots at a rotating cursor. An assured flow (TCP handshake
    /// completed or pickup answered both ways; other protocols: both directions seen)
    /// that is live and not expired under the timeouts in force is never evicted. The
    /// others go in this order, the least recently seen first within a rank: reject
    /// tombstones and reset or closed flows; unassured pickups; other unassured flows
    /// (handshakes in progress, one-way datagrams); expired assured flows. So a flood of
    /// spoofed ACKs under `continue` only ever displaces its own pickups. The evicted
    /// entry is passed to `on_evict` (already removed). Otherwise `TableFull`.
    #[inline]
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        swapped: bool,
        m: &PacketMeta,
        now: u64,
        on_evict: &mut impl FnMut(&FlowEntry),
    ) -> Result<FlowId, TableFull> {
        debug_assert!(self.lookup(key, hash).is_none(), "flow inserted twice");
        let slot = match self.pop_free() {
            Some(slot) => slot,
            None => self.evict_for(hash, now, on_evict)?,
        };
        let mut e = FlowEntry::open(key, swapped, m, now);
        if key.proto() == proto::TCP {
            if let Some(w) = self.windows.get_mut(slot as usize) {
                tcp::open(&mut e, w, m);
            }
        }
        self.place(slot, hash, e)
    }

    /// A reject tombstone for the flow of `m` (the engine refused it with a RST): a
    /// `Closed` entry with verdict `Reject` whose packets the engine drops without
    /// another RST, removed [`ShardConfig::tombstone_secs`] after creation (packets do
    /// not refresh it) or earlier by a SYN reusing the tuple. Evicted before anything
    /// else when the table is full.
    pub fn insert_tombstone(
        &mut self,
        key: &FlowKey,
        hash: u64,
        swapped: bool,
        m: &PacketMeta,
        now: u64,
        on_evict: &mut impl FnMut(&FlowEntry),
    ) -> Result<FlowId, TableFull> {
        let slot = match self.pop_free() {
            Some(slot) => slot,
            None => self.evict_for(hash, now, on_evict)?,
        };
        let mut e = FlowEntry::open(key, swapped, m, now);
        e.state = FlowState::Closed;
        e.flags |= flag::TOMBSTONE | flag::RST_SENT;
        e.verdict = Verdict::Reject;
        self.place(slot, hash, e)
    }

    /// Stores the new entry `e` in free slot `slot` and indexes it under `hash`.
    #[inline]
    fn place(&mut self, slot: u32, hash: u64, e: FlowEntry) -> Result<FlowId, TableFull> {
        let Some(dst) = self.entries.get_mut(slot as usize) else {
            return Err(TableFull);
        };
        *dst = e;
        match self.index.insert(hash, slot) {
            Some(distance) if distance >= LONG_PROBE => self.long_probes += 1,
            Some(_) => {}
            None => {
                // Past the probe bound: undo rather than leak the slot.
                self.long_probes += 1;
                if let Some(dst) = self.entries.get_mut(slot as usize) {
                    dst.flags = 0;
                }
                self.push_free(slot);
                return Err(TableFull);
            }
        }
        self.len += 1;
        if self.len >= self.emergency_enter_len {
            self.emergency = true;
        }
        Ok(FlowId(slot))
    }

    /// Accounts packet `m` of flow `id` at `now`: TCP window and state tracking (see
    /// [`super::tcp`]), then counters, last_seen, TTL, TCP flags; connectionless flows go
    /// `New` → `Established` on their first reply. A TCP segment that does not count
    /// (out of window, …) changes nothing and comes back with its reason.
    #[inline]
    pub fn update(&mut self, id: FlowId, swapped: bool, m: &PacketMeta, now: u64) -> Tracked {
        let slot = id.0 as usize;
        let (e, w) = match (self.entries.get_mut(slot), self.windows.get_mut(slot)) {
            (Some(e), Some(w)) => (e, w),
            _ => (&mut self.stray, &mut self.stray_window),
        };
        let dir = e.dir_of(swapped);
        if e.key.proto() == proto::TCP {
            if let Err(why) = tcp::on_packet(e, w, dir, m) {
                return Tracked {
                    dir,
                    invalid: Some(why),
                };
            }
        } else if dir == Dir::Reply && e.state == FlowState::New {
            e.state = FlowState::Established;
        }
        // A reopening SYN from the responder made it the opener.
        let dir = e.dir_of(swapped);
        e.count(dir, m);
        e.last_seen = e.last_seen.max(now);
        Tracked { dir, invalid: None }
    }

    /// Removes flow `id` and returns a copy of it. Removing a free slot changes nothing
    /// and returns its stale contents.
    pub fn remove(&mut self, id: FlowId) -> FlowEntry {
        self.remove_slot(id.0)
    }

    /// Incremental expiry: examines at most `max_slots` slab slots (at most one full
    /// turn) from the shard's expiry cursor, wrapping, and removes the entries idle
    /// longer than their state's timeout — the emergency timeouts if the shard is in
    /// emergency mode when the slice starts — passing each (removed) to `on_expire`.
    /// Returns the number of slots examined.
    pub fn expire_slice(
        &mut self,
        now: u64,
        max_slots: u32,
        on_expire: &mut impl FnMut(&FlowEntry),
    ) -> u32 {
        let cap = self.capacity();
        let n = max_slots.min(cap);
        let limits = *self.timeouts();
        let tombstone = self.tombstone_ticks;
        for _ in 0..n {
            let slot = self.expire_cursor;
            self.expire_cursor = if slot + 1 >= cap { 0 } else { slot + 1 };
            // A detached flow is left to the flush-all walk (it ends as flushed).
            let expired = self.entries.get(slot as usize).is_some_and(|e| {
                e.is_live()
                    && e.idle(now) > idle_limit(&limits, tombstone, e)
                    && !self.is_detached(slot, e)
            });
            if expired {
                let e = self.remove_slot(slot);
                on_expire(&e);
            }
        }
        n
    }

    /// Bounded scan for capture/flush: visits slab slots `[cursor, cursor + max_slots)`
    /// (not wrapping) and calls `f` for each live flow (reject tombstones are not flows
    /// and are skipped); when `f` returns true the flow is
    /// removed (after `f` saw it). Returns the next cursor, or `None` once the end of
    /// the slab is reached. Removal never moves other flows, so ids stay valid.
    pub fn scan(
        &mut self,
        cursor: u32,
        max_slots: u32,
        f: &mut impl FnMut(FlowId, &FlowEntry) -> bool,
    ) -> Option<u32> {
        let cap = self.capacity();
        let start = cursor.min(cap);
        let end = start.saturating_add(max_slots).min(cap);
        for slot in start..end {
            let remove = match self.entries.get(slot as usize) {
                // Detached flows belong to the flush-all walk.
                Some(e) if e.is_live() && !e.is_tombstone() && !self.is_detached(slot, e) => {
                    f(FlowId(slot), e)
                }
                _ => false,
            };
            if remove {
                self.remove_slot(slot);
            }
        }
        (end < cap).then_some(end)
    }

    /// Shutdown: hands every flow to `on_each` and empties the table.
    pub fn drain_all(&mut self, on_each: &mut impl FnMut(&FlowEntry)) {
        for e in self.entries.iter_mut().filter(|e| e.is_live()) {
            on_each(e);
            e.flags = 0;
        }
        self.index.clear();
        self.detached = None;
        let cap = self.capacity();
        for (slot, id) in self.free.iter_mut().zip((0..cap).rev()) {
            *slot = id;
        }
        self.free_len = cap;
        self.len = 0;
        self.emergency = false;
        self.expire_cursor = 0;
        self.evict_cursor = 0;
    }

    #[inline]
    fn pop_free(&mut self) -> Option<u32> {
        let top = self.free_len.checked_sub(1)?;
        let slot = *self.free.get(top as usize)?;
        self.free_len = top;
        Some(slot)
    }

    #[inline]
    fn push_free(&mut self, slot: u32) {
        if let Some(s) = self.free.get_mut(self.free_len as usize) {
            *s = slot;
            self.free_len += 1;
        }
    }

    fn remove_slot(&mut self, slot: u32) -> FlowEntry {
        let Some(e) = self.entries.get_mut(slot as usize) else {
            return self.stray;
        };
        let copy = *e;
        if !copy.is_live() {
            return copy;
        }
        e.flags &= !flag::LIVE;
        let hash = self.hasher.hash(&copy.key);
        self.index.remove(hash, slot);
        self.push_free(slot);
        self.len = self.len.saturating_sub(1);
        if self.len <= self.emergency_leave_len {
            self.emergency = false;
        }
        copy
    }

    /// Whether a full table may evict `e` for a new flow at `now`, and how readily (lower
    /// first; see [`FlowShard::insert`]). `None`: protected.
    #[inline]
    fn evict_rank(&self, e: &FlowEntry, now: u64) -> Option<u8> {
        if !e.is_live() {
            return None;
        }
        if e.is_tombstone() || matches!(e.state, FlowState::Closed | FlowState::TimeWait) {
            Some(0)
        } else if !e.is_assured() {
            Some(if e.is_midstream() { 1 } else { 2 })
        } else if self.is_expired(e, now) {
            Some(3)
        } else {
            None
        }
    }

    /// Frees one slot by evicting the least recently seen evictable candidate.
    #[cold]
    fn evict_for(
        &mut self,
        hash: u64,
        now: u64,
        on_evict: &mut impl FnMut(&FlowEntry),
    ) -> Result<u32, TableFull> {
        let cap = self.capacity();
        if cap == 0 {
            return Err(TableFull);
        }
        let window = EVICT_WINDOW.min(cap);
        let cursor = self.evict_cursor;
        // cursor < cap and window <= cap, so one subtraction wraps (no division per slot).
        let at = |i: u32| {
            let slot = u64::from(cursor) + u64::from(i);
            let cap = u64::from(cap);
            (if slot >= cap { slot - cap } else { slot }) as u32
        };
        self.evict_cursor = at(window);
        // The running best as (rank, last_seen, slot): a plain loop, because this runs for
        // every new flow into a full table (the appliance's flood case).
        let mut best: Option<(u8, u64, u32)> = None;
        let mut consider = |slot: u32| {
            let Some(e) = self.entries.get(slot as usize) else {
                return; // NO_ID: an empty place in the home bucket
            };
            if self.is_detached(slot, e) {
                return;
            }
            if let Some(rank) = self.evict_rank(e, now) {
                if best.is_none_or(|(r, seen, _)| rank < r || (rank == r && e.last_seen < seen)) {
                    best = Some((rank, e.last_seen, slot));
                }
            }
        };
        for &slot in self.index.home_ids(hash) {
            consider(slot);
        }
        for i in 0..window {
            consider(at(i));
        }
        let (_, _, victim) = best.ok_or(TableFull)?;
        let e = self.remove_slot(victim);
        on_evict(&e);
        self.pop_free().ok_or(TableFull)
    }
}

mod detach;
/// How long `e` may stay idle under `limits`: a tombstone for `tombstone` ticks; a TCP
/// pickup nobody answered only as long as a handshake in progress (conntrack's
/// unassured timeout), so a flood of spoofed ACKs ages out fast; else per state.
#[inline]
fn idle_limit(limits: &Timeouts, tombstone: u64, e: &FlowEntry) -> u64 {
    if e.is_tombstone() {
        tombstone
    } else if e.is_midstream() && !e.is_assured() && e.state == FlowState::Established {
        limits.idle_limit(proto::TCP, FlowState::SynSent)
    } else {
        limits.idle_limit(e.key.proto(), e.state)
    }
}

#[cfg(test)]
mod tests;
