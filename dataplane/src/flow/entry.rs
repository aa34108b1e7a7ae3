//! One flow's record in a shard's slab: key, opener side, state, verdict, per-direction
//! counters and the TCP tracking bits — two cache lines at most, asserted at compile time.

use super::key::FlowKey;
use super::state::{Dir, FlowState};
use crate::packet::{PacketMeta, Tuple, Verdict};

/// `FlowEntry::flags` bits.
pub(super) mod flag {
    /// The slab slot holds a flow (free slots have it clear).
    pub const LIVE: u8 = 1 << 0;
    /// The opener is the key's second endpoint.
    pub const OPENER_SWAPPED: u8 = 1 << 1;
    /// Created from a packet that did not start a connection (TCP without SYN).
    pub const MIDSTREAM: u8 = 1 << 2;
    /// An alert was already logged for this flow.
    pub const ALERTED: u8 = 1 << 3;
    /// Assured (conntrack's term): a TCP flow whose handshake completed, or a pickup
    /// both sides answered in window. Evicted last.
    pub const ASSURED: u8 = 1 << 4;
    /// A reject tombstone: the flow was refused with a RST; its packets are dropped
    /// silently until the tombstone expires.
    pub const TOMBSTONE: u8 = 1 << 5;
    /// The RST(s) of a rejected flow were sent; later packets draw none.
    pub const RST_SENT: u8 = 1 << 6;
}

/// `FlowEntry::tcp` bits, per direction (`<< dir`).
pub(super) mod tcp_bit {
    /// A FIN was sent in this direction.
    pub const FIN: u8 = 1 << 0;
    /// The other side acknowledged this direction's FIN.
    pub const FIN_ACKED: u8 = 1 << 2;
    /// `next_seq` of this direction is known.
    pub const SEQ_KNOWN: u8 = 1 << 4;

    /// The bit for direction index `d` (0 or 1).
    #[inline]
    pub const fn of(bit: u8, d: usize) -> u8 {
        bit << d
    }
}

/// A tracked flow. Per-direction arrays are indexed by [`Dir`] (opener first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub struct FlowEntry {
    pub(super) key: FlowKey,
    pub(super) pkts: [u64; 2],
    pub(super) bytes: [u64; 2],
    pub(super) first_seen: u64,
    pub(super) last_seen: u64,
    pub(super) sid: u32,
    pub(super) epoch: u32,
    pub(super) rule_index: u32,
    /// Next sequence number each direction is expected to send (seq + len + SYN + FIN of
    /// its furthest segment): what a generated RST towards the other side must carry.
    pub(super) next_seq: [u32; 2],
    pub(super) tcp_flags_seen: [u8; 2],
    pub(super) ttl_min: [u8; 2],
    pub(super) ttl_max: [u8; 2],
    pub(super) state: FlowState,
    pub(super) verdict: Verdict,
    /// [`flag`] bits.
    pub(super) flags: u8,
    /// [`tcp_bit`] bits.
    pub(super) tcp: u8,
}

// The layout budget (SPEC §10): at most two cache lines, cache-line aligned.
const _: () = assert!(core::mem::size_of::<FlowEntry>() <= 128);
const _: () = assert!(core::mem::align_of::<FlowEntry>() == 64);

impl FlowEntry {
    /// A free slab slot.
    pub(super) const FREE: FlowEntry = FlowEntry {
        key: FlowKey::EMPTY,
        pkts: [0; 2],
        bytes: [0; 2],
        first_seen: 0,
        last_seen: 0,
        sid: 0,
        epoch: 0,
        rule_index: 0,
        next_seq: [0; 2],
        tcp_flags_seen: [0; 2],
        ttl_min: [0; 2],
        ttl_max: [0; 2],
        state: FlowState::Closed,
        verdict: Verdict::Pass,
        flags: 0,
        tcp: 0,
    };

    /// A new live entry for a flow whose first packet is `m`, sent by the opener, before
    /// any state tracking (the shard sets the initial state).
    #[inline]
    pub(super) fn open(key: &FlowKey, swapped: bool, m: &PacketMeta, now: u64) -> FlowEntry {
        let mut e = FlowEntry {
            key: *key,
            first_seen: now,
            last_seen: now,
            state: FlowState::New,
            flags: flag::LIVE | if swapped { flag::OPENER_SWAPPED } else { 0 },
            ttl_min: [m.ttl, u8::MAX],
            ttl_max: [m.ttl, 0],
            ..FlowEntry::FREE
        };
        e.count(Dir::Orig, m);
        e
    }

    /// Counts packet `m` travelling in `dir`: packets, bytes, TTL range, TCP flags.
    #[inline]
    pub(super) fn count(&mut self, dir: Dir, m: &PacketMeta) {
        let d = dir.idx();
        self.pkts[d] = self.pkts[d].wrapping_add(1);
        self.bytes[d] = self.bytes[d].wrapping_add(u64::from(m.frame_len));
        self.ttl_min[d] = self.ttl_min[d].min(m.ttl);
        self.ttl_max[d] = self.ttl_max[d].max(m.ttl);
        self.tcp_flags_seen[d] |= m.tcp_flags;
    }

    #[inline]
    pub(super) fn is_live(&self) -> bool {
        self.flags & flag::LIVE != 0
    }

    /// The flow's canonical key.
    #[inline]
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// True when the opener is the key's second endpoint.
    #[inline]
    pub fn opener_swapped(&self) -> bool {
        self.flags & flag::OPENER_SWAPPED != 0
    }

    /// The flow's tuple as opened: `src` is the opener.
    #[inline]
    pub fn opener_tuple(&self) -> Tuple {
        self.key.tuple(self.opener_swapped())
    }

    #[inline]
    pub fn state(&self) -> FlowState {
        self.state
    }

    /// The verdict the flow carries (decided on its first packet).
    #[inline]
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The sid of the rule that decided the verdict (0 for default actions).
    #[inline]
    pub fn sid(&self) -> u32 {
        self.sid
    }

    /// Index of that rule in the policy that decided it.
    #[inline]
    pub fn rule_index(&self) -> u32 {
        self.rule_index
    }

    /// Epoch of the policy that decided the verdict.
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    #[inline]
    pub fn pkts(&self, d: Dir) -> u64 {
        self.pkts[d.idx()]
    }

    /// Bytes on the wire (frame lengths) sent in direction `d`.
    #[inline]
    pub fn bytes(&self, d: Dir) -> u64 {
        self.bytes[d.idx()]
    }

    /// Ticks of the first packet.
    #[inline]
    pub fn first_seen(&self) -> u64 {
        self.first_seen
    }

    /// Ticks of the latest packet.
    #[inline]
    pub fn last_seen(&self) -> u64 {
        self.last_seen
    }

    /// Ticks since the first packet (0 if `now` is earlier).
    #[inline]
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.first_seen)
    }

    /// Ticks since the latest packet (0 if `now` is earlier).
    #[inline]
    pub fn idle(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_seen)
    }

    /// OR of the TCP flags sent in direction `d`.
    #[inline]
    pub fn tcp_flags_seen(&self, d: Dir) -> u8 {
        self.tcp_flags_seen[d.idx()]
    }

    /// `(min, max)` TTL / hop limit seen in direction `d`; `(0, 0)` before any packet.
    #[inline]
    pub fn ttl_range(&self, d: Dir) -> (u8, u8) {
        let i = d.idx();
        if self.pkts[i] == 0 {
            (0, 0)
        } else {
            (self.ttl_min[i], self.ttl_max[i])
        }
    }

    /// The next sequence number direction `d` is expected to send, once known.
    #[inline]
    pub fn next_seq(&self, d: Dir) -> Option<u32> {
        let i = d.idx();
        (self.tcp & tcp_bit::of(tcp_bit::SEQ_KNOWN, i) != 0).then_some(self.next_seq[i])
    }

    /// Direction of a packet whose `swapped` (from [`FlowKey::from_meta`]) is given.
    #[inline]
    pub fn dir_of(&self, swapped: bool) -> Dir {
        if swapped == self.opener_swapped() {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }

    /// True when the flow was created from a packet that did not open a connection.
    #[inline]
    pub fn is_midstream(&self) -> bool {
        self.flags & flag::MIDSTREAM != 0
    }

    /// True for a TCP flow whose handshake completed (or a pickup both sides answered in
    /// window); for other protocols, once both directions were seen.
    #[inline]
    pub fn is_assured(&self) -> bool {
        if self.key.proto() == crate::packet::proto::TCP {
            self.flags & flag::ASSURED != 0
        } else {
            self.state == FlowState::Established
        }
    }

    /// True for a reject tombstone (see [`crate::flow::FlowShard::insert_tombstone`]).
    #[inline]
    pub fn is_tombstone(&self) -> bool {
        self.flags & flag::TOMBSTONE != 0
    }

    /// True once the flow's reject RSTs were sent.
    #[inline]
    pub fn rst_sent(&self) -> bool {
        self.flags & flag::RST_SENT != 0
    }

    /// Records that the flow's reject RSTs were sent (to send them once).
    #[inline]
    pub fn set_rst_sent(&mut self) {
        self.flags |= flag::RST_SENT;
    }

    /// True once [`FlowEntry::set_alerted`] was called.
    #[inline]
    pub fn is_alerted(&self) -> bool {
        self.flags & flag::ALERTED != 0
    }

    /// Records that an alert was logged for this flow (to log it once).
    #[inline]
    pub fn set_alerted(&mut self) {
        self.flags |= flag::ALERTED;
    }

    /// Stores the stateful engine's decision for this flow.
    #[inline]
    pub fn set_verdict(&mut self, v: Verdict, sid: u32, rule_index: u32, epoch: u32) {
        self.verdict = v;
        self.sid = sid;
        self.rule_index = rule_index;
        self.epoch = epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{proto, v4_to_addr};

    fn udp(ttl: u8, len: u16) -> PacketMeta {
        PacketMeta {
            proto: proto::UDP,
            src: v4_to_addr(1),
            dst: v4_to_addr(2),
            src_port: 1000,
            dst_port: 53,
            ttl,
            frame_len: len,
            ..PacketMeta::default()
        }
    }

    #[test]
    fn open_counts_the_first_packet_for_the_opener() {
        let m = udp(64, 100);
        let (k, s) = FlowKey::from_meta(&m, true);
        let e = FlowEntry::open(&k, s, &m, 7);
        assert!(e.is_live());
        assert_eq!(e.pkts(Dir::Orig), 1);
        assert_eq!(e.bytes(Dir::Orig), 100);
        assert_eq!(e.pkts(Dir::Reply), 0);
        assert_eq!(e.ttl_range(Dir::Orig), (64, 64));
        assert_eq!(e.ttl_range(Dir::Reply), (0, 0));
        assert_eq!((e.first_seen(), e.last_seen()), (7, 7));
        assert_eq!(e.opener_tuple(), Tuple::of(&m));
        assert_eq!(e.dir_of(s), Dir::Orig);
        assert_eq!(e.dir_of(!s), Dir::Reply);
        assert_eq!(e.next_seq(Dir::Orig), None);
        assert!(!e.is_midstream() && !e.is_alerted());
    }

    #[test]
    fn count_tracks_ttl_range_and_flags_per_direction() {
        let m = udp(64, 100);
        let (k, s) = FlowKey::from_meta(&m, true);
        let mut e = FlowEntry::open(&k, s, &m, 0);
        e.count(Dir::Reply, &udp(50, 10));
        e.count(Dir::Reply, &udp(55, 10));
        e.count(
            Dir::Orig,
            &PacketMeta {
                tcp_flags: 0x12,
                ..udp(60, 1)
            },
        );
        assert_eq!(e.ttl_range(Dir::Reply), (50, 55));
        assert_eq!(e.ttl_range(Dir::Orig), (60, 64));
        assert_eq!(e.bytes(Dir::Reply), 20);
        assert_eq!(e.pkts(Dir::Orig), 2);
        assert_eq!(e.tcp_flags_seen(Dir::Orig), 0x12);
        assert_eq!(e.tcp_flags_seen(Dir::Reply), 0);
    }

    #[test]
    fn verdict_and_alert_are_stored() {
        let m = udp(64, 100);
        let (k, s) = FlowKey::from_meta(&m, true);
        let mut e = FlowEntry::open(&k, s, &m, 0);
        e.set_verdict(Verdict::Reject, 42, 3, 9);
        e.set_alerted();
        assert_eq!(
            (e.verdict(), e.sid(), e.rule_index(), e.epoch()),
            (Verdict::Reject, 42, 3, 9)
        );
        assert!(e.is_alerted());
    }
}
