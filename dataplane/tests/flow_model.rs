//! Model test of the flow shard against a `HashMap` oracle with an injected clock.
//!
//! Random sequences of packets (lookup → update, or insert when absent, as the worker
//! does), removals, expiry slices (partial and full sweeps), sliced scans that remove
//! what they match, and drains, on small shards so that the table fills up. After every
//! step the shard must agree with the oracle: same flows under the same (stable) ids,
//! same length, same emergency mode, capacity never exceeded; expiry removes exactly the
//! flows idle past their timeout in the examined slots; eviction only ever takes a flow
//! that is not assured-and-alive, the lowest-ranked (closed, then unanswered pickups,
//! then other unassured flows, then expired assured ones) and within a rank the least
//! recently seen when all candidates are visible (capacity ≤ `EVICT_WINDOW`), and
//! `TableFull` only when none qualifies. TCP tracking itself is tested in `flow::tcp`:
//! here a segment the tracker refuses must change nothing, and the state, assured and
//! pickup bits of the others are taken from the shard.

use std::collections::{BTreeSet, HashMap};

use dataplane::flow::{
    Dir, FlowEntry, FlowId, FlowKey, FlowShard, FlowState, ShardConfig, TableFull, Timeouts,
    TimeoutsSecs, EVICT_WINDOW,
};
use dataplane::packet::{ip_to_addr, proto, tcp_flags, v4_to_addr, PacketMeta, Tuple};
use proptest::prelude::*;

/// Distinct flows the operations pick from (more than any shard's capacity).
const FLOWS: u8 = 48;

const NORMAL: TimeoutsSecs = TimeoutsSecs {
    tcp_new: 20,
    tcp_established: 50,
    tcp_closed: 10,
    udp_new: 8,
    udp_established: 30,
    icmp_new: 8,
    icmp_established: 30,
    other_new: 8,
    other_established: 30,
};

const EMERGENCY: TimeoutsSecs = TimeoutsSecs {
    tcp_new: 5,
    tcp_established: 25,
    tcp_closed: 3,
    udp_new: 3,
    udp_established: 12,
    icmp_new: 3,
    icmp_established: 12,
    other_new: 3,
    other_established: 12,
};

/// Flow `f`'s packet from its client (`reply == false`) or its server.
/// Flows cycle through UDP, TCP opened by SYN, and TCP picked up midstream (ACK); half of
/// them are IPv6.
fn packet(f: u8, reply: bool) -> PacketMeta {
    let client = if f.is_multiple_of(2) {
        v4_to_addr(0xc612_0000 | u32::from(f))
    } else {
        ip_to_addr(format!("2001:2::{f:x}").parse().unwrap())
    };
    let server = if f.is_multiple_of(2) {
        v4_to_addr(0xc613_0001)
    } else {
        ip_to_addr("2001:2::ffff".parse().unwrap())
    };
    // TCP segments a real connection could carry: SYN / SYN+ACK, or ACKs both ways
    // (client at 100, server at 500).
    let (protocol, flags, seq, ack) = match (f % 3, reply) {
        (0, _) => (proto::UDP, 0, 0, 0),
        (1, false) => (proto::TCP, tcp_flags::SYN, 100, 0),
        (1, true) => (proto::TCP, tcp_flags::SYN | tcp_flags::ACK, 500, 101),
        (_, false) => (proto::TCP, tcp_flags::ACK, 100, 500),
        (_, true) => (proto::TCP, tcp_flags::ACK, 500, 100),
    };
    let m = PacketMeta {
        proto: protocol,
        ip_version: if f.is_multiple_of(2) { 4 } else { 6 },
        src: client,
        dst: server,
        src_port: 1000 + u16::from(f),
        dst_port: 443,
        tcp_flags: flags,
        tcp_seq: seq,
        tcp_ack: ack,
        tcp_window: 1000,
        ttl: 64,
        frame_len: 60 + u16::from(f),
        ..PacketMeta::default()
    };
    if reply {
        PacketMeta {
            src: m.dst,
            dst: m.src,
            src_port: m.dst_port,
            dst_port: m.src_port,
            ..m
        }
    } else {
        m
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Advance the clock by `dt` then handle one packet of flow `flow`.
    Packet {
        flow: u8,
        reply: bool,
        dt: u8,
    },
    Remove {
        flow: u8,
    },
    /// Advance the clock, then one expiry slice of `slots` slots (0 = a full sweep).
    Expire {
        dt: u8,
        slots: u8,
    },
    /// A whole sliced scan (flush-style) removing flows whose number is ≡ 0 mod `modulus`.
    Flush {
        slice: u8,
        modulus: u8,
    },
    /// One scan slice from `cursor`, removing nothing.
    ScanSlice {
        cursor: u8,
        slots: u8,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..FLOWS, any::<bool>(), 0u8..6).prop_map(|(flow, reply, dt)| Op::Packet { flow, reply, dt }),
        2 => (0..FLOWS).prop_map(|flow| Op::Remove { flow }),
        3 => (0u8..20, 0u8..12).prop_map(|(dt, slots)| Op::Expire { dt, slots }),
        1 => (1u8..10, 1u8..5).prop_map(|(slice, modulus)| Op::Flush { slice, modulus }),
        1 => (0u8..50, 0u8..10).prop_map(|(cursor, slots)| Op::ScanSlice { cursor, slots }),
        1 => Just(Op::Drain),
    ]
}

#[derive(Clone, Copy, Debug)]
struct Expect {
    id: FlowId,
    opener_reply: bool,
    state: FlowState,
    last_seen: u64,
    first_seen: u64,
    pkts: u64,
    proto: u8,
    assured: bool,
    midstream: bool,
}

impl Expect {
    /// The shard's eviction order (lower first); `None`: protected.
    fn evict_rank(&self, expired: bool) -> Option<u8> {
        if matches!(self.state, FlowState::Closed | FlowState::TimeWait) {
            Some(0)
        } else if !self.assured {
            Some(if self.midstream { 1 } else { 2 })
        } else if expired {
            Some(3)
        } else {
            None
        }
    }
}

struct Model {
    shard: FlowShard,
    flows: HashMap<u8, Expect>,
    now: u64,
    emergency: bool,
    enter_len: usize,
    leave_len: usize,
    normal: Timeouts,
    emergency_t: Timeouts,
    capacity: u32,
    /// The model of the shard's expiry cursor.
    expire_cursor: u32,
}

fn flow_of(e: &FlowEntry) -> u8 {
    // Client port is 1000 + flow number; the opener may be either side.
    let t = e.opener_tuple();
    let port = if t.src_port >= 1000 {
        t.src_port
    } else {
        t.dst_port
    };
    (port - 1000) as u8
}

impl Model {
    fn new(capacity: u32, high: u8, low: u8) -> Model {
        let cfg = ShardConfig {
            capacity,
            timeouts: NORMAL,
            emergency_timeouts: EMERGENCY,
            emergency_high_pct: high,
            emergency_low_pct: low,
            ticks_per_sec: 1,
            tombstone_secs: 5,
            hash_seeds: None,
        };
        assert_eq!(cfg.validate(), Ok(()));
        let cap = capacity as usize;
        Model {
            shard: FlowShard::new(&cfg),
            flows: HashMap::new(),
            now: 1,
            emergency: false,
            enter_len: (cap * usize::from(high)).div_ceil(100),
            leave_len: cap * usize::from(low) / 100,
            normal: Timeouts::from_secs(&NORMAL, 1),
            emergency_t: Timeouts::from_secs(&EMERGENCY, 1),
            capacity,
            expire_cursor: 0,
        }
    }

    fn limits(&self) -> &Timeouts {
        if self.emergency {
            &self.emergency_t
        } else {
            &self.normal
        }
    }

    fn expired(&self, x: &Expect, limits: &Timeouts, now: u64) -> bool {
        // Unanswered pickups live only as long as a handshake in progress.
        let state = if x.midstream && !x.assured && x.state == FlowState::Established {
            FlowState::SynSent
        } else {
            x.state
        };
        now.saturating_sub(x.last_seen) > limits.idle_limit(x.proto, state)
    }

    fn forget(&mut self, flow: u8) {
        self.flows.remove(&flow);
        if self.flows.len() <= self.leave_len {
            self.emergency = false;
        }
    }

    fn admit(&mut self, flow: u8, x: Expect) {
        self.flows.insert(flow, x);
        if self.flows.len() >= self.enter_len {
            self.emergency = true;
        }
    }

    fn packet(&mut self, flow: u8, reply: bool) {
        let m = packet(flow, reply);
        let (key, swapped) = FlowKey::from_meta(&m, true);
        let hash = self.shard.hash(&key);
        let found = self.shard.lookup(&key, hash);
        assert_eq!(
            found,
            self.flows.get(&flow).map(|x| x.id),
            "lookup of {flow}"
        );
        if let Some(id) = found {
            let before = *self.shard.entry(id);
            let t = self.shard.update(id, swapped, &m, self.now);
            let x = self.flows.get_mut(&flow).unwrap();
            let want = if reply == x.opener_reply {
                Dir::Orig
            } else {
                Dir::Reply
            };
            assert_eq!(t.dir, want);
            if t.invalid.is_some() {
                assert_eq!(
                    *self.shard.entry(id),
                    before,
                    "a refused segment changed the flow"
                );
                return;
            }
            x.last_seen = self.now;
            x.pkts += 1;
            if x.proto == proto::UDP && t.dir == Dir::Reply {
                x.state = FlowState::Established;
            }
            let e = self.shard.entry(id);
            if x.proto == proto::TCP {
                x.state = e.state();
                x.assured = e.is_assured();
                x.midstream = e.is_midstream();
            }
            return;
        }
        let state = match (m.proto, m.tcp_flags) {
            (proto::TCP, tcp_flags::SYN) => FlowState::SynSent,
            (proto::TCP, _) => FlowState::Established,
            _ => FlowState::New,
        };
        let now = self.now;
        let fresh = |id| Expect {
            id,
            opener_reply: reply,
            state,
            last_seen: now,
            first_seen: now,
            pkts: 1,
            proto: m.proto,
            assured: false,
            midstream: m.proto == proto::TCP && state == FlowState::Established,
        };
        let full = self.flows.len() == self.capacity as usize;
        let evictable: Vec<(u8, Expect, u8)> = self
            .flows
            .iter()
            .filter_map(|(&f, &x)| {
                let assured =
                    x.assured || (x.proto != proto::TCP && x.state == FlowState::Established);
                let x2 = Expect { assured, ..x };
                Some((f, x, x2.evict_rank(self.expired(&x, self.limits(), now))?))
            })
            .collect();
        let mut evicted = Vec::new();
        let r = self
            .shard
            .insert(&key, hash, swapped, &m, now, &mut |e| evicted.push(*e));
        match r {
            Ok(id) => {
                if full {
                    assert_eq!(evicted.len(), 1, "a full table evicts exactly one flow");
                    let gone = flow_of(&evicted[0]);
                    let (x, rank) = evictable
                        .iter()
                        .find(|(f, _, _)| *f == gone)
                        .map(|(_, x, r)| (*x, *r))
                        .unwrap_or_else(|| panic!("evicted flow {gone} was protected"));
                    if self.capacity <= EVICT_WINDOW {
                        let first = evictable.iter().map(|(_, x, r)| (*r, x.last_seen)).min();
                        assert_eq!(
                            Some((rank, x.last_seen)),
                            first,
                            "not the lowest-ranked least recently seen"
                        );
                    }
                    assert_eq!(evicted[0].last_seen(), x.last_seen);
                    let k = evicted[0].key();
                    assert_eq!(
                        self.shard.lookup(k, self.shard.hash(k)),
                        None,
                        "evicted flow still found"
                    );
                    self.forget(gone);
                } else {
                    assert!(evicted.is_empty(), "evicted while not full");
                }
                assert!(
                    self.flows.values().all(|x| x.id != id),
                    "id {id:?} handed out twice"
                );
                let x = fresh(id);
                self.admit(flow, x);
            }
            Err(TableFull) => {
                assert!(
                    full,
                    "TableFull with {} of {}",
                    self.flows.len(),
                    self.capacity
                );
                assert!(evicted.is_empty());
                if self.capacity <= EVICT_WINDOW {
                    assert!(
                        evictable.is_empty(),
                        "refused although {evictable:?} qualify"
                    );
                }
            }
        }
    }

    fn expire(&mut self, slots: u32) {
        let n = slots.min(self.capacity);
        let limits = *self.limits();
        let now = self.now;
        let cap = self.capacity.max(1);
        let window: BTreeSet<u32> = (0..n).map(|i| (self.expire_cursor + i) % cap).collect();
        self.expire_cursor = (self.expire_cursor + n) % cap;
        let mut want: Vec<u8> = self
            .flows
            .iter()
            .filter(|(_, x)| window.contains(&x.id.index()) && self.expired(x, &limits, now))
            .map(|(&f, _)| f)
            .collect();
        let mut got = Vec::new();
        let examined = self
            .shard
            .expire_slice(now, slots, &mut |e| got.push(flow_of(e)));
        assert_eq!(examined, n);
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "expired flows at {now}");
        for f in got {
            self.forget(f);
        }
    }

    fn flush(&mut self, slice: u32, modulus: u8) {
        let mut cursor = Some(0);
        let mut visited = Vec::new();
        let mut removed = Vec::new();
        while let Some(c) = cursor {
            let next = self.shard.scan(c, slice, &mut |id, e| {
                let f = flow_of(e);
                visited.push((id, f));
                let hit = f.is_multiple_of(modulus);
                if hit {
                    removed.push(f);
                }
                hit
            });
            if let Some(n) = next {
                assert_eq!(n, c + slice, "cursor advances by the slice");
            }
            cursor = next;
        }
        let mut want: Vec<(FlowId, u8)> = self.flows.iter().map(|(&f, x)| (x.id, f)).collect();
        want.sort_unstable();
        assert_eq!(
            visited, want,
            "scan visits every live flow once, in slot order"
        );
        for f in removed {
            self.forget(f);
        }
    }

    fn scan_slice(&mut self, cursor: u32, slots: u32) {
        let mut visited = Vec::new();
        let next = self.shard.scan(cursor, slots, &mut |id, _| {
            visited.push(id);
            false
        });
        let end = cursor.saturating_add(slots).min(self.capacity);
        assert_eq!(next, (end < self.capacity).then_some(end));
        let mut want: Vec<FlowId> = self
            .flows
            .values()
            .map(|x| x.id)
            .filter(|id| (cursor..end).contains(&id.index()))
            .collect();
        want.sort_unstable();
        assert_eq!(visited, want);
    }

    fn check(&self) {
        assert_eq!(self.shard.len() as usize, self.flows.len());
        assert!(self.shard.len() <= self.shard.capacity());
        assert_eq!(self.shard.capacity(), self.capacity);
        assert_eq!(self.shard.in_emergency(), self.emergency, "emergency mode");
        for (&f, x) in &self.flows {
            let m = packet(f, x.opener_reply);
            let (key, swapped) = FlowKey::from_meta(&m, true);
            assert_eq!(
                self.shard.lookup(&key, self.shard.hash(&key)),
                Some(x.id),
                "flow {f}"
            );
            let e = self.shard.entry(x.id);
            assert_eq!(e.key(), &key);
            assert_eq!(e.opener_tuple(), Tuple::of(&m));
            assert_eq!(e.dir_of(swapped), Dir::Orig);
            assert_eq!(e.state(), x.state, "flow {f}");
            assert_eq!(e.last_seen(), x.last_seen);
            assert_eq!(e.first_seen(), x.first_seen);
            assert_eq!(e.pkts(Dir::Orig) + e.pkts(Dir::Reply), x.pkts);
            assert_eq!(
                self.shard.is_expired(e, self.now),
                self.expired(x, self.limits(), self.now)
            );
        }
    }
}

fn run(capacity: u32, high: u8, low: u8, ops: &[Op]) {
    let mut model = Model::new(capacity, high, low);
    for op in ops {
        match *op {
            Op::Packet { flow, reply, dt } => {
                model.now += u64::from(dt);
                model.packet(flow, reply);
            }
            Op::Remove { flow } => {
                if let Some(x) = model.flows.get(&flow).copied() {
                    let e = model.shard.remove(x.id);
                    assert_eq!(flow_of(&e), flow);
                    assert_eq!(e.last_seen(), x.last_seen);
                    model.forget(flow);
                }
            }
            Op::Expire { dt, slots } => {
                model.now += u64::from(dt);
                let slots = if slots == 0 {
                    capacity
                } else {
                    u32::from(slots)
                };
                model.expire(slots);
            }
            Op::Flush { slice, modulus } => model.flush(u32::from(slice), modulus),
            Op::ScanSlice { cursor, slots } => {
                model.scan_slice(u32::from(cursor), u32::from(slots))
            }
            Op::Drain => {
                let mut drained = Vec::new();
                model.shard.drain_all(&mut |e| drained.push(flow_of(e)));
                drained.sort_unstable();
                let mut want: Vec<u8> = model.flows.keys().copied().collect();
                want.sort_unstable();
                assert_eq!(drained, want);
                model.flows.clear();
                model.emergency = false;
                model.expire_cursor = 0;
            }
        }
        model.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Tiny shards: every slot is an eviction candidate, so eviction is checked exactly.
    #[test]
    fn tiny_shard_matches_model(
        capacity in 1u32..=EVICT_WINDOW,
        high in 50u8..=100,
        low_frac in 0u8..100,
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        let low = (u16::from(high) * u16::from(low_frac) / 100) as u8;
        run(capacity, high, low.min(high - 1), &ops);
    }

    /// Larger shards: eviction samples candidates; the protection rule still holds.
    #[test]
    fn shard_matches_model(
        capacity in 1u32..=40,
        high in 50u8..=100,
        low_frac in 0u8..100,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let low = (u16::from(high) * u16::from(low_frac) / 100) as u8;
        run(capacity, high, low.min(high - 1), &ops);
    }
}

/// A deterministic scenario that must evict: a full table of half-open flows.
#[test]
fn syn_flood_keeps_established_flows() {
    let mut model = Model::new(6, 95, 80);
    // Two established TCP flows (pickups both sides answered), four half-open (SYN).
    for f in [2u8, 5, 1, 4, 7, 10] {
        model.now += 1;
        model.packet(f, false);
    }
    for f in [2u8, 5] {
        model.now += 1;
        model.packet(f, true);
        assert!(model.flows[&f].assured);
    }
    model.check();
    // A flood of new SYN flows only ever replaces half-open ones.
    for f in (13..FLOWS).step_by(3) {
        model.now += 1;
        model.packet(f, false);
        model.check();
        assert!(model.flows.contains_key(&2) && model.flows.contains_key(&5));
    }
}
