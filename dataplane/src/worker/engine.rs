//! The burst engine one worker runs: everything between "these frames arrived on port
//! P" and "forward this one, drop that one, send these RSTs". It owns the worker's flow
//! shard outright and reads the current policy through an `Arc` swapped by command.
//!
//! A burst is processed in passes (VPP's shape): pass 1 parses every frame, runs the
//! stateless rules, builds the flow key and hash and prefetches the hash bucket; then the
//! entries those buckets point to are prefetched; pass 2 looks up / creates flows and
//! applies their verdicts. Two kinds of packet take their own way through pass 2: later
//! fragments follow their first fragment's verdict ([`crate::fragments`]), and ICMP errors
//! follow the flow they quote (conntrack's RELATED). Between bursts [`Engine::poll`]
//! handles management commands, a (paced) slice of idle expiry and a slice of any running
//! capture/flush scan, so forwarding never waits for a large table. Scan slices are sized
//! by time (`scan_budget_ns` per loop, read from the clock installed with
//! [`Engine::set_clock`] every [`SCAN_CHUNK`] slots), not by a slot count, so a scan takes
//! a fixed share of a busy core and all of an idle one. A flush whose filter selects every
//! flow detaches the whole index at once and drains the slab sequentially
//! (`flow/shard/detach.rs`).
//!
//! Nothing here allocates, locks, makes syscalls or panics.

use std::sync::Arc;

use arrayvec::ArrayVec;
use crossbeam::queue::ArrayQueue;

use super::cmd::{AlertRecord, Command, Event, FlowRecord, Reply, ScanKind, ScanRequest};
use super::counters::{non_ip_slot, DropReason, WorkerCounters};
use super::reject::{RejectRst, RstBudget};
use super::{MAX_BURST, RST_FRAME_MAX};
use crate::flow::{
    EndReason, FlowEntry, FlowId, FlowKey, FlowShard, FlowState, NoPrefetch, Prefetch, ShardConfig,
};
use crate::fragments::{Follow, FragConfig, FragmentTracker};
use crate::ops::FlowMatch;
use crate::packet::{proto, tcp_flags, Fragment, PacketMeta, Parsed, Tuple, Verdict};
use crate::policy::{CompiledPolicy, StatelessAction, StreamException, NO_RULE};
use crate::wire::{self, build};

/// What to do with one received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send it out of the peer port of the port it arrived on.
    Forward,
    Drop(DropReason),
}

/// A generated TCP RST frame and where it goes.
#[derive(Clone, Copy)]
pub struct Rst {
    pub frame: [u8; RST_FRAME_MAX],
    pub len: u16,
    /// True: out of the port the triggering packet came in on (towards its sender).
    /// False: onward, out of the peer port (towards its receiver).
    pub back: bool,
}

/// RSTs one burst can generate (two per packet at most).
pub type RstBuf = ArrayVec<Rst, { MAX_BURST * 2 }>;

/// The rings a worker shares with the management thread (one producer, one consumer each).
pub struct WorkerRings {
    pub commands: ArrayQueue<Command>,
    pub replies: ArrayQueue<Reply>,
    pub events: ArrayQueue<Event>,
    /// Latest counters snapshots (the oldest is overwritten when full).
    pub stats: ArrayQueue<WorkerCounters>,
}

impl WorkerRings {
    pub fn new(commands: usize, replies: usize, events: usize) -> WorkerRings {
        WorkerRings {
            commands: ArrayQueue::new(commands.max(1)),
            replies: ArrayQueue::new(replies.max(1)),
            events: ArrayQueue::new(events.max(1)),
            stats: ArrayQueue::new(4),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub worker: u16,
    pub shard: ShardConfig,
    pub vlan_zone: bool,
    pub pass_malformed: bool,
    /// Non-IP frames whose EtherType is not in `non_ip_pass_ethertypes` pass too.
    pub pass_non_ip: bool,
    /// Non-IP EtherTypes that always pass (default: ARP only).
    pub non_ip_pass_ethertypes: Vec<u16>,
    /// The fragment tracker's table size and timeout.
    pub fragments: FragConfig,
    /// Forward new flows untracked when the shard is full (default: drop them).
    pub pass_untracked_when_full: bool,
    pub expiry_slots_per_poll: u32,
    /// Time a capture/flush scan may take per loop between bursts (nanoseconds).
    pub scan_budget_ns: u32,
    pub ticks_per_sec: u64,
    /// Forward TCP segments outside their flow's window (counted, still without effect
    /// on the flow), like conntrack's `nf_conntrack_tcp_be_liberal`; default: drop them.
    pub tcp_liberal: bool,
    /// Where the RSTs of a rejected midstream packet go.
    pub reject_rst: RejectRst,
    /// Generated RSTs per second per worker (0: unlimited) and the burst banked.
    pub rst_rate_per_sec: u32,
    pub rst_burst: u32,
}

/// Slab slots a scan examines between two clock reads (and per loop without a clock).
pub const SCAN_CHUNK: u32 = 32;
/// Spare-index buckets emptied between two clock reads (4 KiB of stores).
const SPARE_CLEAR_CHUNK: usize = 64;
/// While a flush-all walk runs and fewer slab slots than this are free, a slice goes on
/// past its time budget (as far as the reply ring allows): new flows need the slots.
const DETACH_MIN_FREE: u32 = 4 * MAX_BURST as u32;

/// A cheap monotonic clock in the engine's ticks (the binary installs the TSC read).
pub type Clock = fn() -> u64;

/// The established-TCP idle timeout in force: the policy's `tcp_idle_timeout_seconds`
/// (AWS `FlowTimeouts.TcpIdleTimeoutSeconds`) when it sets one, else the config's.
fn tcp_idle_secs(cfg: &EngineConfig, policy: &CompiledPolicy) -> u32 {
    policy
        .tcp_idle_timeout_secs()
        .unwrap_or(cfg.shard.timeouts.tcp_established)
}

/// Which way a packet takes through pass 2.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Path {
    /// Decided in pass 1.
    #[default]
    Done,
    /// Flow lookup / creation (`key` is set).
    Flow,
    /// A later fragment: its first fragment's verdict.
    LaterFragment,
    /// An ICMP error: the verdict of the flow it quotes.
    IcmpError,
}

/// Per-packet scratch filled by pass 1 and consumed by pass 2.
#[derive(Clone, Copy, Default)]
struct Staged {
    meta: PacketMeta,
    key: Option<FlowKey>,
    swapped: bool,
    hash: u64,
    path: Path,
    /// The entry the flow's home bucket pointed at in pass 1½ (a lookup hint, checked).
    hint: Option<FlowId>,
}

struct ActiveScan {
    req: Box<ScanRequest>,
    started_at: u64,
    cursor: u32,
    scanned: u64,
    matched: u64,
    /// A flush-all on the detach fast path: the shard's walk replaces the cursor.
    detached: bool,
}

/// One worker's burst engine; `P` turns the shard's hints into real prefetches (the binary
/// passes one built on `dpdk_bindings::prefetch_read`; tests run without).
pub struct Engine<P: Prefetch = NoPrefetch> {
    cfg: EngineConfig,
    shard: FlowShard<P>,
    frags: FragmentTracker,
    policy: Arc<CompiledPolicy>,
    rule_hits: Box<[u64]>,
    counters: WorkerCounters,
    staged: [Staged; MAX_BURST],
    scan: Option<ActiveScan>,
    /// A reply the ring had no room for; retried before any new command is taken.
    pending_reply: Option<Reply>,
    next_publish: u64,
    /// Expiry slices are paced, not run every poll: see [`EXPIRY_SWEEPS_PER_SEC`].
    next_expire: u64,
    expire_interval: u64,
    /// Scan time per loop, in ticks.
    scan_budget: u64,
    /// Since when the walk of a cancelled flush-all has found the event ring full.
    orphan_wait_since: Option<u64>,
    clock: Option<Clock>,
    rst_budget: RstBudget,
}

/// How long the walk of a cancelled flush-all waits for room on a full event ring before
/// it goes on without (see [`Engine::drain_orphaned_detach`]).
pub const ORPHAN_WAIT_MAX_SECS: u64 = 1;

/// Full expiry sweeps of the slab per second. Timeouts are whole seconds, so a one-second
/// sweep keeps expiry within a second of due, while a slice on every poll (millions of
/// polls a second) cost 11 % of the worker's time on a 1.2M-entry table, and 4 sweeps/s
/// still 7 % (perf, BENCHMARKS.md).
pub const EXPIRY_SWEEPS_PER_SEC: u64 = 1;

impl Engine {
    /// [`Engine::with_prefetch`] without real prefetches (tests, tools).
    pub fn new(cfg: EngineConfig, policy: Arc<CompiledPolicy>, rule_hits: Box<[u64]>) -> Engine {
        Engine::with_prefetch(cfg, policy, rule_hits)
    }
}

impl<P: Prefetch> Engine<P> {
    /// Builds the engine and preallocates its shard (the only allocation it makes).
    pub fn with_prefetch(
        cfg: EngineConfig,
        policy: Arc<CompiledPolicy>,
        rule_hits: Box<[u64]>,
    ) -> Engine<P> {
        let mut shard = FlowShard::with_prefetch(&cfg.shard);
        shard.set_tcp_established_timeout(tcp_idle_secs(&cfg, &policy), cfg.shard.ticks_per_sec);
        let mut counters = WorkerCounters {
            table_capacity: shard.capacity() as u64,
            policy_epoch: policy.epoch(),
            ..WorkerCounters::default()
        };
        counters.flows_active = 0;
        let slices = u64::from(shard.capacity())
            .div_ceil(u64::from(cfg.expiry_slots_per_poll.max(1)))
            .max(1);
        let expire_interval = cfg.ticks_per_sec / (slices * EXPIRY_SWEEPS_PER_SEC);
        let frags = FragmentTracker::new(&cfg.fragments);
        let scan_budget =
            (u128::from(cfg.scan_budget_ns) * u128::from(cfg.ticks_per_sec) / 1_000_000_000) as u64;
        let rst_budget = RstBudget::new(cfg.rst_rate_per_sec, cfg.rst_burst, cfg.ticks_per_sec);
        Engine {
            cfg,
            shard,
            frags,
            policy,
            rule_hits,
            counters,
            staged: [Staged::default(); MAX_BURST],
            scan: None,
            pending_reply: None,
            next_publish: 0,
            next_expire: 0,
            expire_interval,
            scan_budget,
            orphan_wait_since: None,
            clock: None,
            rst_budget,
        }
    }

    pub fn counters(&self) -> &WorkerCounters {
        &self.counters
    }

    /// The glue counts transmit results here (tx packets/bytes, tx_full drops).
    pub fn counters_mut(&mut self) -> &mut WorkerCounters {
        &mut self.counters
    }

    pub fn shard(&self) -> &FlowShard<P> {
        &self.shard
    }

    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// Installs the clock scan slices are timed with (the binary passes
    /// `dpdk_bindings::tsc`). Without one a slice is one [`SCAN_CHUNK`].
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = Some(clock);
    }

    /// Decides every frame of a burst that arrived on `in_port`. `actions[i]` receives the
    /// decision for `frames[i]`; generated RSTs are appended to `rsts`.
    pub fn process_burst(
        &mut self,
        in_port: usize,
        frames: &[&[u8]],
        now: u64,
        actions: &mut [Action],
        rsts: &mut RstBuf,
        events: &ArrayQueue<Event>,
    ) {
        let n = frames.len().min(actions.len()).min(MAX_BURST);
        self.stage_burst(in_port, &frames[..n], &mut actions[..n]);
        // Pass 1½: the buckets prefetched in pass 1 have landed; prefetch the entries they
        // point to so that pass 2's lookups and updates overlap their misses.
        // The candidate each prefetch found is kept as pass 2's lookup hint. Nothing
        // changes the index during this pass, so a packet with the previous flow packet's
        // hash (the same flow, as a burst often holds) gets the same candidate: it is
        // copied, and its lines, just hinted, are not hinted again.
        let Engine { shard, staged, .. } = self;
        // (A first flow packet whose hash happens to be 0 just goes without candidate and
        // prefetch: hints only save work, pass 2's lookup is right without one.)
        let (mut last_hash, mut hint) = (0u64, None);
        for s in staged.iter_mut().take(n) {
            if let Some(key) = &s.key {
                if s.hash != last_hash {
                    hint = shard.prefetch_flow(s.hash, key.proto() == proto::TCP);
                    last_hash = s.hash;
                }
                s.hint = hint;
            }
        }
        for i in 0..n {
            let s = &self.staged[i];
            // The key stays in `staged` (read there by reference, not copied out).
            actions[i] = match s.path {
                Path::Flow if s.key.is_some() => {
                    let action = self.decide_tracked(i, frames[i], now, rsts, events);
                    if self.staged[i].meta.fragment == Fragment::First {
                        self.record_first_fragment(i, action, now)
                    } else {
                        action
                    }
                }
                Path::LaterFragment => self.follow_first_fragment(i, now),
                Path::IcmpError => self.decide_icmp_error(i, frames[i]),
                _ => continue,
            };
            if let Action::Drop(r) = actions[i] {
                self.counters.drop(in_port, r, 1);
            }
        }
    }

    /// After the first fragment of a datagram was decided: remember the verdict for the
    /// later fragments. A duplicate or malformed first fragment is dropped.
    fn record_first_fragment(&mut self, i: usize, action: Action, now: u64) -> Action {
        let Staged {
            meta,
            key,
            swapped,
            hash,
            ..
        } = self.staged[i];
        let forward = action == Action::Forward;
        let flow = key.map(|key| (key, swapped, hash));
        let result = self.frags.record_first(&meta, forward, flow, now);
        self.counters.fragments = *self.frags.counters();
        match result {
            Ok(()) => action,
            Err(_) => Action::Drop(DropReason::Fragment),
        }
    }

    /// A later fragment: the verdict its first fragment got, counted in the same flow.
    fn follow_first_fragment(&mut self, i: usize, now: u64) -> Action {
        let m = self.staged[i].meta;
        let follow = self.frags.follow(&m, now);
        self.counters.fragments = *self.frags.counters();
        match follow {
            Follow::Forward(flow) => {
                if let Some((key, swapped, hash)) = flow {
                    // Only connectionless flows: a TCP flow's state machine must not see
                    // a fragment as a segment (AWS drops TCP fragments statelessly anyway).
                    if key.proto() != proto::TCP {
                        if let Some(id) = self.shard.lookup(&key, hash) {
                            self.shard.update(id, swapped, &m, now);
                        }
                    }
                }
                Action::Forward
            }
            Follow::DropLikeFirst => Action::Drop(DropReason::Policy),
            Follow::Drop(_) => Action::Drop(DropReason::Fragment),
        }
    }

    /// An ICMP error belongs to the flow it quotes (conntrack's RELATED): it passes when
    /// that flow exists and is allowed — whatever the rules say about the error itself, so
    /// path-MTU discovery and traceroute work under `drop_strict` — and is dropped when
    /// the flow is denied, or does not exist (a probe or a forged error).
    fn decide_icmp_error(&mut self, i: usize, frame: &[u8]) -> Action {
        let m = self.staged[i].meta;
        let inner = match wire::quoted_packet(frame, &m) {
            Ok(inner) => inner,
            Err(_) => {
                self.counters.icmp_unrelated += 1;
                return Action::Drop(DropReason::IcmpUnrelated);
            }
        };
        // The error goes back to the quoted packet's sender.
        if inner.src != m.dst {
            self.counters.icmp_unrelated += 1;
            return Action::Drop(DropReason::IcmpUnrelated);
        }
        let (key, _) = FlowKey::from_meta(&inner, self.cfg.vlan_zone);
        match self.shard.lookup(&key, self.shard.hash(&key)) {
            Some(id) if self.shard.entry(id).verdict() == Verdict::Pass => {
                self.counters.icmp_related_passed += 1;
                Action::Forward
            }
            Some(_) => {
                self.counters.icmp_related_dropped += 1;
                Action::Drop(DropReason::Policy)
            }
            None => {
                self.counters.icmp_unrelated += 1;
                Action::Drop(DropReason::IcmpUnrelated)
            }
        }
    }

    /// Pass 1: parse, stateless rules, key, hash, bucket prefetch.
    fn stage_burst(&mut self, in_port: usize, frames: &[&[u8]], actions: &mut [Action]) {
        let Engine {
            policy,
            shard,
            staged,
            counters,
            cfg,
            ..
        } = self;
        let mut rx_bytes = 0u64;
        for (i, frame) in frames.iter().enumerate() {
            rx_bytes += frame.len() as u64;
            let s = &mut staged[i];
            s.key = None;
            s.path = Path::Done;
            actions[i] = match wire::parse_frame(frame) {
                Ok(Parsed::Ip(m)) => match policy.stateless(&m) {
                    StatelessAction::ForwardToSfe if m.fragment == Fragment::Later => {
                        s.meta = m;
                        s.path = Path::LaterFragment;
                        Action::Forward // replaced in pass 2
                    }
                    StatelessAction::ForwardToSfe if m.icmp_error => {
                        s.meta = m;
                        s.path = Path::IcmpError;
                        Action::Forward // replaced in pass 2
                    }
                    StatelessAction::ForwardToSfe => {
                        let (key, swapped) = FlowKey::from_meta(&m, cfg.vlan_zone);
                        let hash = shard.hash(&key);
                        shard.prefetch_bucket(hash);
                        *s = Staged {
                            meta: m,
                            key: Some(key),
                            swapped,
                            hash,
                            path: Path::Flow,
                            hint: None, // set in pass 1½
                        };
                        Action::Forward // replaced in pass 2
                    }
                    StatelessAction::Pass => {
                        counters.by_engine_action[0][0] += 1;
                        Action::Forward
                    }
                    StatelessAction::Drop => {
                        counters.by_engine_action[0][1] += 1;
                        counters.drop(in_port, DropReason::Stateless, 1);
                        Action::Drop(DropReason::Stateless)
                    }
                },
                Ok(Parsed::NonIp { ethertype }) => {
                    counters.non_ip += 1;
                    counters.non_ip_by_ethertype[non_ip_slot(ethertype)] += 1;
                    if cfg.pass_non_ip || cfg.non_ip_pass_ethertypes.contains(&ethertype) {
                        Action::Forward
                    } else {
                        counters.drop(in_port, DropReason::NonIp, 1);
                        Action::Drop(DropReason::NonIp)
                    }
                }
                Err(e) => {
                    counters.malformed += 1;
                    counters.malformed_by_reason[e.index()] += 1;
                    if cfg.pass_malformed {
                        Action::Forward
                    } else {
                        counters.drop(in_port, DropReason::Malformed, 1);
                        Action::Drop(DropReason::Malformed)
                    }
                }
            };
        }
        if let Some(p) = counters.ports.get_mut(in_port) {
            p.rx_packets += frames.len() as u64;
            p.rx_bytes += rx_bytes;
        }
    }

    /// Pass 2 for one packet that the stateless engine handed to the stateful one.
    fn decide_tracked(
        &mut self,
        i: usize,
        frame: &[u8],
        now: u64,
        rsts: &mut RstBuf,
        events: &ArrayQueue<Event>,
    ) -> Action {
        // The packet's meta is read in place on the way of an established flow (a copy of
        // it cost 10 instructions a packet); the other ways take `&mut self` and a copy.
        let s = &self.staged[i];
        let Some(key_ref) = s.key.as_ref() else {
            // Unreachable (process_burst sends only keyed packets); fail closed regardless.
            return Action::Drop(DropReason::Malformed);
        };
        let (swapped, hash) = (s.swapped, s.hash);
        let pure_syn = s.meta.is_tcp()
            && s.meta.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST)
                == tcp_flags::SYN;
        let found = self.shard.lookup_hinted(key_ref, hash, s.hint);
        if let Some(id) = found {
            let e = self.shard.entry(id);
            let (state, tombstone) = (e.state(), e.is_tombstone());
            if tombstone && !pure_syn {
                // A rejected flow: its RSTs went out already.
                self.counters.midstream_rejected += 1;
                self.counters.reject_silenced += 1;
                return Action::Drop(DropReason::Midstream);
            }
            // A new connection reusing the 5-tuple of a closed one (or of a rejected one)
            // is a new flow, judged by the policy in force now (below).
            if !(pure_syn && matches!(state, FlowState::Closed | FlowState::TimeWait)) {
                let t = self.shard.update(id, swapped, &s.meta, now);
                if let Some(why) = t.invalid {
                    if let Some(c) = self.counters.tcp_invalid.get_mut(why as usize) {
                        *c += 1;
                    }
                    if why.drops() && !self.cfg.tcp_liberal {
                        return Action::Drop(DropReason::TcpInvalid);
                    }
                }
                // What `apply_verdict` makes of a passing flow, without the copy.
                if self.shard.entry(id).verdict() == Verdict::Pass {
                    return Action::Forward;
                }
                let m = s.meta;
                return self.apply_verdict(id, &m, frame, now, rsts);
            }
        }
        let (m, key) = (s.meta, *key_ref);
        if let Some(id) = found {
            // The reopening SYN: the closed flow ends first.
            let tombstone = self.shard.entry(id).is_tombstone();
            let old = self.shard.remove(id);
            if !tombstone {
                self.counters.flows_closed += 1;
                self.emit_end(&old, EndReason::Timeout, now, events);
            }
        }
        if m.is_tcp() && !pure_syn {
            return self.midstream(key, hash, swapped, &m, frame, now, rsts, events);
        }
        let decision = self.policy.stateful(&Tuple::of(&m), false);
        match self.create_flow(key, hash, swapped, &m, now, decision, events) {
            Some(id) => self.apply_verdict(id, &m, frame, now, rsts),
            None if self.cfg.pass_untracked_when_full => Action::Forward,
            None => Action::Drop(DropReason::TableFull),
        }
    }

    /// A TCP packet that does not open a connection and has no flow: the stream exception
    /// policy decides.
    #[allow(clippy::too_many_arguments)]
    fn midstream(
        &mut self,
        key: FlowKey,
        hash: u64,
        swapped: bool,
        m: &PacketMeta,
        frame: &[u8],
        now: u64,
        rsts: &mut RstBuf,
        events: &ArrayQueue<Event>,
    ) -> Action {
        match self.policy.stream_exception() {
            StreamException::Drop => {
                self.counters.midstream_dropped += 1;
                Action::Drop(DropReason::Midstream)
            }
            StreamException::Reject => {
                self.counters.midstream_rejected += 1;
                // Never answer a RST with a RST. One RST pair per flow: a tombstone keeps
                // the flow's later (or spoofed) packets from drawing more.
                let onward = self.cfg.reject_rst == RejectRst::Both;
                if !m.has_flag(tcp_flags::RST) && self.push_rsts(m, frame, onward, now, rsts) {
                    self.tombstone(key, hash, swapped, m, now, events);
                }
                Action::Drop(DropReason::Midstream)
            }
            StreamException::Continue => {
                self.counters.midstream_continued += 1;
                let decision = self.policy.stateful(&Tuple::of(m), true);
                match self.create_flow(key, hash, swapped, m, now, decision, events) {
                    Some(id) => self.apply_verdict(id, m, frame, now, rsts),
                    None if self.cfg.pass_untracked_when_full => Action::Forward,
                    None => Action::Drop(DropReason::TableFull),
                }
            }
        }
    }

    /// Leaves a reject tombstone for the flow of `m` (see `FlowShard::insert_tombstone`).
    /// A full table without an evictable candidate just goes without: the RST budget
    /// still bounds what that flow's packets can draw.
    fn tombstone(
        &mut self,
        key: FlowKey,
        hash: u64,
        swapped: bool,
        m: &PacketMeta,
        now: u64,
        events: &ArrayQueue<Event>,
    ) {
        let Engine {
            shard,
            counters,
            cfg,
            ..
        } = self;
        let worker = cfg.worker;
        let _ = shard.insert_tombstone(&key, hash, swapped, m, now, &mut |e: &FlowEntry| {
            end_evicted(e, worker, now, counters, events);
        });
    }

    /// Creates the flow `m` opens with the stateful `decision`; `None` when the shard is full.
    #[allow(clippy::too_many_arguments)]
    fn create_flow(
        &mut self,
        key: FlowKey,
        hash: u64,
        swapped: bool,
        m: &PacketMeta,
        now: u64,
        decision: crate::policy::StatefulDecision,
        events: &ArrayQueue<Event>,
    ) -> Option<FlowId> {
        let Engine {
            shard,
            counters,
            cfg,
            ..
        } = self;
        let worker = cfg.worker;
        let inserted = shard.insert(&key, hash, swapped, m, now, &mut |e: &FlowEntry| {
            end_evicted(e, worker, now, counters, events);
        });
        let id = match inserted {
            Ok(id) => id,
            Err(_) => {
                self.counters.table_full_events += 1;
                return None;
            }
        };
        let epoch = self.policy.epoch();
        let e = self.shard.entry_mut(id);
        e.set_verdict(decision.verdict, decision.sid, decision.rule_index, epoch);
        self.counters.flows_created += 1;
        if let Some(h) = self.rule_hits.get_mut(decision.rule_index as usize) {
            *h += 1;
        }
        let engine_action = match decision.verdict {
            Verdict::Pass => 0,
            Verdict::Drop | Verdict::DropEstablished => 1,
            Verdict::Reject => 2,
        };
        self.counters.by_engine_action[1][engine_action] += 1;
        let blocked =
            decision.verdict != Verdict::Pass && decision.verdict != Verdict::DropEstablished;
        if decision.alert_rule_index != NO_RULE || blocked {
            let (rule_index, alert_only) = if blocked {
                (decision.rule_index, false)
            } else {
                self.counters.by_engine_action[1][3] += 1;
                (decision.alert_rule_index, true)
            };
            let sid = self
                .policy
                .rules()
                .get(rule_index as usize)
                .map_or(decision.sid, |r| r.sid);
            // Built only for alerts: a record per new flow cost 6 % with 1M flows (perf).
            let flow_id = FlowRecord::of(self.shard.entry(id), worker, now).flow_id;
            let alert = AlertRecord {
                tuple: Tuple::of(m),
                vlan: m.vlan,
                rule_index,
                sid,
                epoch,
                verdict: decision.verdict,
                alert_only,
                to_server: true,
                at: now,
                worker,
                flow_id,
            };
            if events.push(Event::Alert(alert)).is_err() {
                self.counters.events_dropped += 1;
            }
        }
        Some(id)
    }

    /// Applies flow `id`'s verdict to its packet `m`. A rejected TCP flow draws its RST
    /// once (the flow remembers it), not one per packet.
    fn apply_verdict(
        &mut self,
        id: FlowId,
        m: &PacketMeta,
        frame: &[u8],
        now: u64,
        rsts: &mut RstBuf,
    ) -> Action {
        let e = self.shard.entry(id);
        let (verdict, state, rst_sent) = (e.verdict(), e.state(), e.rst_sent());
        match verdict {
            Verdict::Pass => Action::Forward,
            Verdict::Drop => Action::Drop(DropReason::Policy),
            Verdict::Reject => {
                if m.is_tcp() && !m.has_flag(tcp_flags::RST) {
                    if rst_sent {
                        self.counters.reject_silenced += 1;
                    } else if self.push_rsts(m, frame, false, now, rsts) {
                        self.shard.entry_mut(id).set_rst_sent();
                    }
                }
                Action::Drop(DropReason::Policy)
            }
            Verdict::DropEstablished => {
                if m.is_tcp() && matches!(state, FlowState::SynSent | FlowState::SynRecv) {
                    Action::Forward
                } else {
                    Action::Drop(DropReason::Policy)
                }
            }
        }
    }

    /// A RST back to the sender (RFC 9293 reset generation) and, when `onward` (a
    /// midstream packet under `reject_rst = "both"`), one onward to its receiver with the
    /// sender's sequence number, so both ends of a flushed connection learn at once that
    /// it is gone. The RSTs are paid for from the worker's budget, all or none; false when
    /// none was sent (budget spent, or no room in the burst's RST buffer).
    fn push_rsts(
        &mut self,
        m: &PacketMeta,
        frame: &[u8],
        onward: bool,
        now: u64,
        rsts: &mut RstBuf,
    ) -> bool {
        let onward = onward && !m.has_flag(tcp_flags::SYN);
        if !self.rst_budget.take(1 + u64::from(onward), now) {
            self.counters.rsts_rate_limited += 1 + u64::from(onward);
            return false;
        }
        let mut back = Rst {
            frame: [0; RST_FRAME_MAX],
            len: 0,
            back: true,
        };
        let mut sent = false;
        if let Some(len) = build::build_tcp_rst(frame, m, &mut back.frame) {
            back.len = len as u16;
            if rsts.try_push(back).is_ok() {
                self.counters.rsts_sent += 1;
                sent = true;
            }
        }
        if onward {
            let mut fwd = Rst {
                frame: [0; RST_FRAME_MAX],
                len: 0,
                back: false,
            };
            if let Some(len) = build::build_tcp_rst_forward(frame, m, m.tcp_seq, &mut fwd.frame) {
                fwd.len = len as u16;
                if rsts.try_push(fwd).is_ok() {
                    self.counters.rsts_sent += 1;
                    sent = true;
                }
            }
        }
        sent
    }

    fn emit_end(&mut self, e: &FlowEntry, reason: EndReason, now: u64, events: &ArrayQueue<Event>) {
        let record = FlowRecord::of(e, self.cfg.worker, now);
        if events.push(Event::FlowEnd { record, reason }).is_err() {
            self.counters.events_dropped += 1;
        }
    }

    /// Work between bursts: commands, a slice of idle expiry, a slice of a running scan,
    /// and the periodic counters snapshot. Returns a requested stall (fault injection).
    pub fn poll(&mut self, now: u64, rings: &WorkerRings) -> Option<u32> {
        self.counters.loops += 1;
        let mut stall = None;
        if let Some(r) = self.pending_reply.take() {
            if let Err(r) = rings.replies.push(r) {
                self.pending_reply = Some(r);
            }
        }
        if self.pending_reply.is_none() {
            if let Some(cmd) = rings.commands.pop() {
                stall = self.handle_command(cmd, now, rings);
            }
        }
        if now >= self.next_expire {
            self.next_expire = now + self.expire_interval;
            self.expire_slice(now, &rings.events);
        }
        self.scan_slice(now, rings);
        if now >= self.next_publish {
            self.next_publish = now + self.cfg.ticks_per_sec / 10;
            self.publish_stats(rings);
        }
        stall
    }

    fn publish_stats(&mut self, rings: &WorkerRings) {
        self.counters.flows_active = self.shard.len() as u64;
        self.counters.emergency_mode = self.shard.in_emergency();
        self.counters.hash_long_probes = self.shard.long_probes();
        self.counters.policy_epoch = self.policy.epoch();
        rings.stats.force_push(self.counters);
    }

    fn reply(&mut self, r: Reply, rings: &WorkerRings) {
        if let Err(r) = rings.replies.push(r) {
            self.pending_reply = Some(r);
        }
    }

    fn handle_command(&mut self, cmd: Command, now: u64, rings: &WorkerRings) -> Option<u32> {
        match cmd {
            Command::Stats => self.publish_stats(rings),
            Command::SwapPolicy { policy, rule_hits } => {
                let epoch = policy.epoch();
                // The policy's TcpIdleTimeoutSeconds applies to every flow from now on,
                // established ones included (as the service applies a changed timeout).
                self.shard.set_tcp_established_timeout(
                    tcp_idle_secs(&self.cfg, &policy),
                    self.cfg.shard.ticks_per_sec,
                );
                let old = std::mem::replace(&mut self.policy, policy);
                let old_hits = std::mem::replace(&mut self.rule_hits, rule_hits);
                self.counters.policy_epoch = epoch;
                self.reply(
                    Reply::PolicySwapped {
                        epoch,
                        old,
                        old_hits,
                    },
                    rings,
                );
            }
            Command::RuleHits { mut buf } => {
                let n = buf.len().min(self.rule_hits.len());
                buf[..n].copy_from_slice(&self.rule_hits[..n]);
                let epoch = self.policy.epoch();
                self.reply(Reply::RuleHits { epoch, hits: buf }, rings);
            }
            Command::StartScan(req) => {
                if let Some(prev) = self.scan.take() {
                    self.finish_scan(prev, true, rings);
                }
                // Fast path: a flush of every flow detaches the whole index at once.
                let detached = req.kind == ScanKind::Flush
                    && req.filter.selects_every_active_flow()
                    && self.shard.detach_all(now);
                self.scan = Some(ActiveScan {
                    req,
                    started_at: now,
                    cursor: 0,
                    scanned: 0,
                    matched: 0,
                    detached,
                });
            }
            Command::CancelScan { op } => {
                if self.scan.as_ref().is_some_and(|s| s.req.op == op) {
                    if let Some(s) = self.scan.take() {
                        self.finish_scan(s, true, rings);
                    }
                }
            }
            Command::Stall { millis } => return Some(millis),
        }
        None
    }

    fn finish_scan(&mut self, s: ActiveScan, cancelled: bool, rings: &WorkerRings) {
        self.reply(
            Reply::ScanDone {
                op: s.req.op,
                scanned: s.scanned,
                matched: s.matched,
                cancelled,
            },
            rings,
        );
    }

    fn expire_slice(&mut self, now: u64, events: &ArrayQueue<Event>) {
        let Engine {
            shard,
            counters,
            cfg,
            ..
        } = self;
        let worker = cfg.worker;
        shard.expire_slice(now, cfg.expiry_slots_per_poll, &mut |e: &FlowEntry| {
            if e.is_tombstone() {
                return;
            }
            if matches!(e.state(), FlowState::Closed | FlowState::TimeWait) {
                counters.flows_closed += 1;
            } else {
                counters.flows_expired += 1;
            }
            let record = FlowRecord::of(e, worker, now);
            if events
                .push(Event::FlowEnd {
                    record,
                    reason: EndReason::Timeout,
                })
                .is_err()
            {
                counters.events_dropped += 1;
            }
        });
    }

    /// One time-budgeted slice of the running capture/flush (or, with none running, of
    /// emptying the spare index a flush-all left). Results stream out on the reply ring;
    /// a chunk starts only when the ring has room for all it can match, otherwise the
    /// scan waits (backpressure) instead of losing results or blocking the worker.
    fn scan_slice(&mut self, now: u64, rings: &WorkerRings) {
        if self.pending_reply.is_some() {
            return;
        }
        let Some(detached) = self.scan.as_ref().map(|s| s.detached) else {
            if self.shard.is_detaching() {
                self.drain_orphaned_detach(now, &rings.events);
            } else {
                self.clear_spare(now);
            }
            return;
        };
        let mut chunks = 0u32;
        loop {
            let free = rings.replies.capacity() - rings.replies.len();
            if free < SCAN_CHUNK as usize + 1 {
                if chunks == 0 {
                    self.counters.scan_stalls += 1;
                }
                return;
            }
            let done = if detached {
                self.detached_chunk(now, rings)
            } else {
                self.scan_chunk(now, rings)
            };
            chunks += 1;
            if done {
                if let Some(s) = self.scan.take() {
                    self.finish_scan(s, false, rings);
                }
                return;
            }
            // New flows need slots that only the walk frees: it goes on past the budget.
            let starved = detached && self.shard.capacity() - self.shard.len() < DETACH_MIN_FREE;
            if !starved && !self.within_budget(now) {
                return;
            }
        }
    }

    /// Whether the clock says the slice that started at `start` may go on.
    #[inline]
    fn within_budget(&self, start: u64) -> bool {
        self.clock
            .is_some_and(|clock| clock().wrapping_sub(start) < self.scan_budget)
    }

    /// A flush-all cancelled mid-walk (shutdown of the operation, a newer one): its flows
    /// are already gone from the index, so the walk ends them all, their records going out
    /// as flow-end events (reason `flushed`) instead of operation results, never dropped
    /// (the collector queues them past the traffic records' bound).
    fn drain_orphaned_detach(&mut self, now: u64, events: &ArrayQueue<Event>) {
        loop {
            // A flushed flow's record is not dropped while the management side drains the
            // ring: the walk waits for room (this worker is its only producer) as a scan
            // waits on the reply ring. The walk frees the slots new flows need, so after
            // [`ORPHAN_WAIT_MAX_SECS`] of a full ring (a management side that died) it goes
            // on, records beyond the ring's room dropped and counted.
            if events.capacity() - events.len() < SCAN_CHUNK as usize {
                let since = *self.orphan_wait_since.get_or_insert(now);
                let limit = ORPHAN_WAIT_MAX_SECS.saturating_mul(self.cfg.ticks_per_sec);
                if now.wrapping_sub(since) < limit {
                    self.counters.scan_stalls += 1;
                    return;
                }
            } else {
                self.orphan_wait_since = None;
            }
            let Engine {
                shard,
                counters,
                cfg,
                ..
            } = self;
            let worker = cfg.worker;
            let left = shard.drain_detached(SCAN_CHUNK, &mut |e: &FlowEntry, superseded| {
                let (reason, record) = (
                    if superseded {
                        EndReason::Timeout
                    } else {
                        EndReason::Flushed
                    },
                    FlowRecord::of(e, worker, now),
                );
                if superseded {
                    counters.flows_closed += 1;
                } else {
                    counters.flows_flushed += 1;
                }
                if events.push(Event::FlowEnd { record, reason }).is_err() {
                    counters.events_dropped += 1;
                }
                !superseded
            });
            if left.is_none() || !self.within_budget(now) {
                return;
            }
        }
    }

    /// Empties the spare index a flush-all left, in time-budgeted chunks.
    fn clear_spare(&mut self, now: u64) {
        while !self.shard.clear_spare_slice(SPARE_CLEAR_CHUNK) {
            if !self.within_budget(now) {
                return;
            }
        }
    }

    /// One [`SCAN_CHUNK`] of a capture or flush by slab cursor; true when the scan is over.
    fn scan_chunk(&mut self, now: u64, rings: &WorkerRings) -> bool {
        let Engine {
            shard,
            policy,
            counters,
            cfg,
            scan,
            ..
        } = self;
        let Some(scan) = scan.as_mut() else {
            return true;
        };
        let worker = cfg.worker;
        let flush = scan.req.kind == ScanKind::Flush;
        let started_at = scan.started_at;
        let op = scan.req.op;
        let filter = &scan.req.filter;
        let every = filter.selects_every_active_flow();
        let mut matched = 0u64;
        let mut scanned = 0u64;
        let next = shard.scan(scan.cursor, SCAN_CHUNK, &mut |_, e: &FlowEntry| {
            scanned += 1;
            // Flows created after the operation started are not part of it.
            if e.first_seen() > started_at || !selects(filter, every, e, now, policy) {
                return false;
            }
            matched += 1;
            let record = FlowRecord::of(e, worker, now);
            // Room was checked by the caller: this ring has one producer (us).
            let _ = rings.replies.push(Reply::ScanFlow {
                op,
                record,
                flushed: flush,
            });
            if flush {
                counters.flows_flushed += 1;
            }
            flush
        });
        scan.scanned += scanned;
        scan.matched += matched;
        match next {
            Some(c) => {
                scan.cursor = c;
                false
            }
            None => true,
        }
    }

    /// One [`SCAN_CHUNK`] of a flush-all's walk over the detached slab; true when over.
    fn detached_chunk(&mut self, now: u64, rings: &WorkerRings) -> bool {
        let Engine {
            shard,
            policy,
            counters,
            cfg,
            scan,
            ..
        } = self;
        let Some(scan) = scan.as_mut() else {
            return true;
        };
        let worker = cfg.worker;
        let op = scan.req.op;
        let filter = &scan.req.filter;
        let every = filter.selects_every_active_flow();
        let mut matched = 0u64;
        let mut scanned = 0u64;
        let left = shard.drain_detached(SCAN_CHUNK, &mut |e: &FlowEntry, superseded| {
            if superseded {
                let record = FlowRecord::of(e, worker, now);
                // A closed flow the flush kept, whose 5-tuple was reused meanwhile: it
                // ends as a closed flow reused by a new connection does.
                counters.flows_closed += 1;
                if rings
                    .events
                    .push(Event::FlowEnd {
                        record,
                        reason: EndReason::Timeout,
                    })
                    .is_err()
                {
                    counters.events_dropped += 1;
                }
                return false;
            }
            scanned += 1;
            if !selects(filter, every, e, now, policy) {
                return false;
            }
            matched += 1;
            counters.flows_flushed += 1;
            let record = FlowRecord::of(e, worker, now);
            // Room was checked by the caller: this ring has one producer (us).
            let _ = rings.replies.push(Reply::ScanFlow {
                op,
                record,
                flushed: true,
            });
            true
        });
        scan.scanned += scanned;
        scan.matched += matched;
        left.is_none()
    }

    /// Shutdown: every flow still in the table ends with reason `shutdown`.
    pub fn shutdown(&mut self, now: u64, events: &ArrayQueue<Event>) {
        let Engine {
            shard,
            counters,
            cfg,
            ..
        } = self;
        let worker = cfg.worker;
        shard.drain_all(&mut |e: &FlowEntry| {
            if e.is_tombstone() {
                return;
            }
            let record = FlowRecord::of(e, worker, now);
            if events
                .push(Event::FlowEnd {
                    record,
                    reason: EndReason::Shutdown,
                })
                .is_err()
            {
                counters.events_dropped += 1;
            }
        });
        self.counters.flows_active = 0;
    }
}

/// Whether an operation selects `e`. `every` is `filter.selects_every_active_flow()`,
/// taken once per chunk: then being active is the whole test, which spares a flush-all or
/// a capture of everything the per-flow filter walk (a third of its cost per flow).
#[inline]
fn selects(
    filter: &FlowMatch,
    every: bool,
    e: &FlowEntry,
    now: u64,
    policy: &CompiledPolicy,
) -> bool {
    if every {
        e.state().is_active()
    } else {
        filter.matches(e, now, policy)
    }
}

/// Reports flow `e`, evicted to make room, as ended (tombstones are not flows: they
/// leave silently).
fn end_evicted(
    e: &FlowEntry,
    worker: u16,
    now: u64,
    counters: &mut WorkerCounters,
    events: &ArrayQueue<Event>,
) {
    if e.is_tombstone() {
        return;
    }
    counters.flows_evicted += 1;
    let record = FlowRecord::of(e, worker, now);
    if events
        .push(Event::FlowEnd {
            record,
            reason: EndReason::Evicted,
        })
        .is_err()
    {
        counters.events_dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::TimeoutsSecs;
    use crate::gen::{Family, Generator, Kind, Size, Spec};
    use crate::policy::Policy;

    const HZ: u64 = 1_000_000;

    fn engine(capacity: u32, slots: u32) -> Engine {
        engine_with(capacity, slots)
    }

    fn engine_with<P: Prefetch>(capacity: u32, slots: u32) -> Engine<P> {
        let text = "[stateless]\ndefault_action = \"forward_to_sfe\"\n";
        let p = Policy::from_toml_str(text, std::path::Path::new("t.toml")).unwrap();
        let p = Arc::new(CompiledPolicy::compile(&p, 1));
        let hits = vec![0u64; p.rules().len()].into_boxed_slice();
        let cfg = EngineConfig {
            worker: 0,
            shard: ShardConfig {
                capacity,
                timeouts: TimeoutsSecs::default(),
                emergency_timeouts: TimeoutsSecs::emergency_default(),
                emergency_high_pct: 95,
                emergency_low_pct: 80,
                ticks_per_sec: HZ,
                tombstone_secs: 5,
                // Fixed: where flows land (hence which hints are given) is the same each run.
                hash_seeds: Some([1, 2, 3, 4]),
            },
            vlan_zone: true,
            pass_malformed: false,
            pass_non_ip: true,
            non_ip_pass_ethertypes: vec![0x0806],
            fragments: FragConfig {
                capacity: 256,
                timeout_ticks: 2 * HZ,
            },
            pass_untracked_when_full: false,
            expiry_slots_per_poll: slots,
            scan_budget_ns: 1_000,
            ticks_per_sec: HZ,
            tcp_liberal: false,
            reject_rst: RejectRst::Both,
            rst_rate_per_sec: 1000,
            rst_burst: 64,
        };
        Engine::with_prefetch(cfg, p, hits)
    }

    /// `n` UDP flows created at `now`.
    fn fill<P: Prefetch>(e: &mut Engine<P>, n: u32, now: u64, rings: &WorkerRings) {
        fill_kind(e, n, now, rings, Kind::Udp);
    }

    /// One packet (of `kind`) for each of `n` flows at `now`: creates them, or hits them if
    /// they exist.
    fn fill_kind<P: Prefetch>(
        e: &mut Engine<P>,
        n: u32,
        now: u64,
        rings: &WorkerRings,
        kind: Kind,
    ) {
        let g = Generator::new(Spec {
            flows: n,
            packets: u64::from(n),
            kind,
            family: Family::Mixed,
            size: Size::Min,
            seed: 3,
            dst_port: 53,
        })
        .unwrap();
        let frames: Vec<Vec<u8>> = (0..u64::from(n)).map(|k| g.frame(k)).collect();
        for chunk in frames.chunks(MAX_BURST) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let mut actions = [Action::Forward; MAX_BURST];
            let mut rsts = RstBuf::new();
            e.process_burst(0, &refs, now, &mut actions, &mut rsts, &rings.events);
        }
        assert_eq!(e.shard().len(), n);
    }

    #[test]
    fn expiry_is_paced_yet_sweeps_the_table_within_its_period() {
        let rings = WorkerRings::new(8, 64, 4096);
        let mut e = engine(1024, 64);
        fill(&mut e, 200, HZ, &rings);
        // Long past the UDP timeout: every flow is due.
        let late = HZ * 1000;
        for _ in 0..1000 {
            e.poll(late, &rings);
        }
        assert_eq!(
            e.shard().len(),
            200 - 64,
            "polls at one instant run one slice, not one per poll"
        );
        // Within one sweep period (plus one interval) everything due is gone.
        let period = HZ / EXPIRY_SWEEPS_PER_SEC;
        let mut now = late;
        while now <= late + period + e.expire_interval {
            now += 10;
            e.poll(now, &rings);
        }
        assert_eq!(e.shard().len(), 0);
        assert_eq!(e.counters().flows_expired, 200);
    }

    static HINTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Counts the hints it is given (only this module's prefetcher test uses it).
    struct CountingPrefetch;

    impl Prefetch for CountingPrefetch {
        fn read(p: *const u8) {
            if !p.is_null() {
                HINTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn the_prefetcher_is_called_for_buckets_and_entries() {
        let rings = WorkerRings::new(8, 64, 4096);
        let mut e = engine_with::<CountingPrefetch>(4096, 64);
        fill(&mut e, 1000, HZ, &rings);
        // New flows: one bucket hint per packet (no entry yet to point at).
        let after_create = HINTS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(after_create >= 1000, "{after_create}");
        // Known UDP flows: bucket + both lines of the entry per packet, and no TCP window
        // line (UDP never reads it); decisions unchanged.
        fill_again(&mut e, 1000, &rings);
        let after_hits = HINTS.load(std::sync::atomic::Ordering::Relaxed) - after_create;
        assert_eq!(after_hits, 3000);
        assert_eq!(e.counters().flows_created, 1000);

        // Known TCP flows: the same, plus the TCP window line their tracking reads.
        let mut e = engine_with::<CountingPrefetch>(4096, 64);
        fill_kind(&mut e, 1000, HZ, &rings, Kind::Syn);
        let before = HINTS.load(std::sync::atomic::Ordering::Relaxed);
        fill_kind(&mut e, 1000, HZ + 1, &rings, Kind::Syn);
        let tcp_hits = HINTS.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert_eq!(tcp_hits, 4000);
        assert_eq!(e.counters().flows_created, 1000);
    }

    fn fill_again<P: Prefetch>(e: &mut Engine<P>, n: u32, rings: &WorkerRings) {
        fill(e, n, HZ + 1, rings);
    }

    /// Pass 2 must never apply a packet to an entry that an earlier packet of the same
    /// burst evicted and refilled, although pass 1½ took the packet's lookup hint (and
    /// any same-flow reuse) before that happened.
    #[test]
    fn a_flow_evicted_within_the_burst_is_not_found_through_its_old_slot() {
        let rings = WorkerRings::new(8, 64, 4096);
        let mut e = engine(1, 64); // one slot: every new flow evicts the resident one
        let g = Generator::new(Spec {
            flows: 2,
            packets: 2,
            kind: Kind::Udp,
            family: Family::V4,
            size: Size::Min,
            seed: 3,
            dst_port: 53,
        })
        .unwrap();
        let (a, b) = (g.frame(0), g.frame(1));
        let burst = |e: &mut Engine, frames: &[&[u8]], now: u64| {
            let mut actions = [Action::Forward; MAX_BURST];
            let mut rsts = RstBuf::new();
            e.process_burst(0, frames, now, &mut actions, &mut rsts, &rings.events);
            assert!(actions[..frames.len()]
                .iter()
                .all(|&a| a == Action::Forward));
        };
        burst(&mut e, &[&a], HZ);
        assert_eq!(e.counters().flows_created, 1);
        // A (hinted to slot 0), A again, B (evicts A, takes slot 0), A (its hint and the
        // previous A's now point at B's entry: must create A anew, evicting B).
        burst(&mut e, &[&a, &a, &b, &a], HZ + 1);
        let c = e.counters();
        assert_eq!((c.flows_created, c.flows_evicted), (3, 2));
        let tuple = |frame: &[u8]| match wire::parse_frame(frame) {
            Ok(Parsed::Ip(m)) => Tuple::of(&m),
            _ => unreachable!("the generator's frames parse"),
        };
        let mut ends = Vec::new();
        while let Some(ev) = rings.events.pop() {
            if let Event::FlowEnd { record, reason } = ev {
                assert_eq!(reason, EndReason::Evicted);
                ends.push((record.tuple, record.pkts[0] + record.pkts[1]));
            }
        }
        assert_eq!(
            ends,
            [(tuple(&a), 3), (tuple(&b), 1)],
            "A ended with its 3 packets, B with its 1"
        );
        let mut live = Vec::new();
        e.shard.scan(0, 1, &mut |_, f| {
            live.push((f.opener_tuple(), f.pkts(crate::flow::Dir::Orig)));
            false
        });
        assert_eq!(
            live,
            [(tuple(&a), 1)],
            "A anew, holding only the last packet"
        );
    }
}
