//! TCP connection tracking on a flow entry: the handshake, the close of each side, RST
//! handling, and the per-direction "next sequence number" a generated RST must carry.
//!
//! Choices (what a firewall needs, not a full TCP): the close is derived from four bits —
//! FIN sent and FIN acknowledged, per direction — so retransmissions and reordering
//! never move the state backwards. A RST closes the flow only when its sequence number
//! lies within [`RST_SEQ_WINDOW`] of what the sender is known to have sent (or, before
//! the sender sent anything, when it acknowledges the other side's next sequence number):
//! a blind RST cannot shorten a connection's life in the table. A SYN on a `TimeWait` or
//! `Closed` flow reopens it (port reuse): counters, first_seen and verdict are kept, the
//! sender of the SYN becomes the opener (per-direction counters are swapped if needed),
//! sequence and FIN tracking restart, and the state goes back to `SynSent`.

use super::entry::{flag, tcp_bit, FlowEntry};
use super::state::{Dir, FlowState};
use crate::packet::{tcp_flags, PacketMeta};

/// How far a RST's sequence number may be from the tracked one and still be believed:
/// covers a window-scaled receive window without accepting blind guesses over the whole
/// sequence space.
pub const RST_SEQ_WINDOW: u32 = 1 << 20;

/// `a` is at or after `b` in sequence space (RFC 1982 serial arithmetic).
#[inline]
fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// `a` is strictly after `b` in sequence space.
#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` lies within `RST_SEQ_WINDOW` of `b`, either side.
#[inline]
fn seq_near(a: u32, b: u32) -> bool {
    a.wrapping_sub(b).wrapping_add(RST_SEQ_WINDOW) <= 2 * RST_SEQ_WINDOW
}

/// Sequence number just past segment `m` (SYN and FIN take one each).
#[inline]
fn seg_end(m: &PacketMeta) -> u32 {
    let ctl = u32::from(m.tcp_flags & tcp_flags::SYN != 0) + u32::from(m.has_flag(tcp_flags::FIN));
    m.tcp_seq
        .wrapping_add(u32::from(m.payload_len))
        .wrapping_add(ctl)
}

/// Advances `next_seq[d]` to the end of `m` if it is further (or sets it when unknown or
/// when `reseed`, for a SYN that starts a new sequence space).
#[inline]
fn track_seq(e: &mut FlowEntry, d: usize, m: &PacketMeta, reseed: bool) {
    let end = seg_end(m);
    let Some(next) = e.next_seq.get_mut(d) else {
        return;
    };
    if reseed || !has_known(e.tcp, d) || seq_gt(end, *next) {
        *next = end;
        e.tcp |= tcp_bit::of(tcp_bit::SEQ_KNOWN, d);
    }
}

#[inline]
fn has_known(tcp: u8, d: usize) -> bool {
    tcp & tcp_bit::of(tcp_bit::SEQ_KNOWN, d) != 0
}

/// Sets the initial state of a TCP flow from its first packet (already counted for the
/// opener): SYN → `SynSent`; RST → `Closed`; anything else (SYN+ACK included) is a
/// midstream pickup → `Established`, marked midstream.
#[inline]
pub(super) fn open(e: &mut FlowEntry, m: &PacketMeta) {
    let f = m.tcp_flags;
    e.state = if f & tcp_flags::RST != 0 {
        FlowState::Closed
    } else if f & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
        FlowState::SynSent
    } else {
        e.flags |= flag::MIDSTREAM;
        FlowState::Established
    };
    if f & tcp_flags::RST == 0 {
        track_seq(e, Dir::Orig.idx(), m, true);
    }
}

/// Whether a RST sent in direction `d` is believable (see the module docs).
#[inline]
fn rst_plausible(e: &FlowEntry, d: usize, m: &PacketMeta) -> bool {
    let o = d ^ 1;
    if has_known(e.tcp, d) {
        e.next_seq.get(d).is_some_and(|&n| seq_near(m.tcp_seq, n))
    } else if m.has_flag(tcp_flags::ACK) && has_known(e.tcp, o) {
        e.next_seq.get(o).is_some_and(|&n| seq_near(m.tcp_ack, n))
    } else {
        // Nothing tracked to check it against.
        true
    }
}

/// Port reuse: the SYN's sender becomes the opener of a fresh connection on this entry.
fn reopen(e: &mut FlowEntry, dir: Dir) {
    if dir == Dir::Reply {
        e.flags ^= flag::OPENER_SWAPPED;
        e.pkts.swap(0, 1);
        e.bytes.swap(0, 1);
        e.tcp_flags_seen.swap(0, 1);
        e.ttl_min.swap(0, 1);
        e.ttl_max.swap(0, 1);
    }
    e.flags &= !flag::MIDSTREAM;
    e.tcp = 0;
    e.state = FlowState::SynSent;
}

/// The state implied by the FIN bits once the connection is synchronized.
#[inline]
fn close_state(tcp: u8) -> FlowState {
    let fin = |d| tcp & tcp_bit::of(tcp_bit::FIN, d) != 0;
    let acked = |d| tcp & tcp_bit::of(tcp_bit::FIN_ACKED, d) != 0;
    match (fin(0), fin(1)) {
        (false, false) => FlowState::Established,
        (true, false) => FlowState::FinWait,
        (false, true) => FlowState::CloseWait,
        (true, true) if acked(0) && acked(1) => FlowState::TimeWait,
        (true, true) => FlowState::Closing,
    }
}

/// Tracks packet `m` of an existing TCP flow, travelling in `dir` (already counted).
#[inline]
pub(super) fn on_packet(e: &mut FlowEntry, dir: Dir, m: &PacketMeta) {
    let f = m.tcp_flags;
    let d = dir.idx();
    if f & tcp_flags::RST != 0 {
        if rst_plausible(e, d, m) {
            e.state = FlowState::Closed;
        }
        return;
    }
    if f & tcp_flags::SYN != 0 {
        match (f & tcp_flags::ACK != 0, e.state, dir) {
            (false, FlowState::TimeWait | FlowState::Closed, _) => {
                reopen(e, dir);
                track_seq(e, Dir::Orig.idx(), m, true);
            }
            // Retransmitted (or re-chosen) SYN.
            (false, FlowState::SynSent, Dir::Orig) => track_seq(e, d, m, true),
            // Simultaneous open, or the responder's SYN+ACK.
            (_, FlowState::SynSent, Dir::Reply) => {
                e.state = FlowState::SynRecv;
                track_seq(e, d, m, true);
            }
            // A stray SYN on a live connection changes nothing.
            _ => {}
        }
        return;
    }
    track_seq(e, d, m, false);
    match e.state {
        FlowState::Established
        | FlowState::FinWait
        | FlowState::CloseWait
        | FlowState::Closing
        | FlowState::TimeWait => {}
        // The opener's ACK completes the handshake.
        FlowState::SynRecv if dir == Dir::Orig && f & tcp_flags::ACK != 0 => {
            e.state = FlowState::Established;
        }
        // SynSent waits for a SYN; Closed for a SYN that reopens.
        _ => return,
    }
    // This packet may acknowledge the other side's FIN (checked before recording its own).
    let other = dir.opposite();
    let other_fin = tcp_bit::of(tcp_bit::FIN, other.idx());
    if f & tcp_flags::ACK != 0
        && e.tcp & other_fin != 0
        && e.next_seq(other).is_some_and(|n| seq_ge(m.tcp_ack, n))
    {
        e.tcp |= tcp_bit::of(tcp_bit::FIN_ACKED, other.idx());
    }
    if f & tcp_flags::FIN != 0 {
        e.tcp |= tcp_bit::of(tcp_bit::FIN, d);
    }
    e.state = close_state(e.tcp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowId, FlowKey, FlowShard, ShardConfig};
    use crate::packet::{proto, v4_to_addr};
    use tcp_flags::{ACK, FIN, RST, SYN};

    const CLIENT_ISN: u32 = 1000;
    const SERVER_ISN: u32 = 5000;

    /// One TCP connection 198.18.0.1:40000 → 198.18.1.2:80 through a small shard.
    struct Conn {
        shard: FlowShard,
        id: FlowId,
        now: u64,
    }

    fn seg(from_client: bool, flags: u8, seq: u32, ack: u32, len: u16) -> PacketMeta {
        let (c, s) = (v4_to_addr(0xc612_0001), v4_to_addr(0xc612_0102));
        let (src, dst, src_port, dst_port) = if from_client {
            (c, s, 40000, 80)
        } else {
            (s, c, 80, 40000)
        };
        PacketMeta {
            proto: proto::TCP,
            ip_version: 4,
            src,
            dst,
            src_port,
            dst_port,
            tcp_flags: flags,
            tcp_seq: seq,
            tcp_ack: ack,
            payload_len: len,
            ttl: 64,
            frame_len: 54 + len,
            ..PacketMeta::default()
        }
    }

    impl Conn {
        fn open(first: PacketMeta) -> Conn {
            let mut shard = FlowShard::new(&ShardConfig {
                capacity: 16,
                ..ShardConfig::default()
            });
            let (key, swapped) = FlowKey::from_meta(&first, true);
            let id = shard
                .insert(&key, key.hash(), swapped, &first, 1, &mut |_| {})
                .unwrap();
            Conn { shard, id, now: 1 }
        }

        fn send(&mut self, m: PacketMeta) -> Dir {
            self.now += 1;
            let (key, swapped) = FlowKey::from_meta(&m, true);
            assert_eq!(self.shard.lookup(&key, key.hash()), Some(self.id));
            self.shard.update(self.id, swapped, &m, self.now)
        }

        fn state(&self) -> FlowState {
            self.shard.entry(self.id).state()
        }

        fn entry(&self) -> &FlowEntry {
            self.shard.entry(self.id)
        }

        /// SYN, SYN+ACK, ACK: established, client next seq 1001, server 5001.
        fn established() -> Conn {
            let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
            assert_eq!(c.state(), FlowState::SynSent);
            assert_eq!(
                c.send(seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0)),
                Dir::Reply
            );
            assert_eq!(c.state(), FlowState::SynRecv);
            assert_eq!(
                c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0)),
                Dir::Orig
            );
            assert_eq!(c.state(), FlowState::Established);
            c
        }
    }

    #[test]
    fn three_way_handshake_tracks_sequence_numbers() {
        let mut c = Conn::established();
        assert!(!c.entry().is_midstream());
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 1));
        assert_eq!(c.entry().next_seq(Dir::Reply), Some(SERVER_ISN + 1));
        c.send(seg(
            true,
            ACK | tcp_flags::PSH,
            CLIENT_ISN + 1,
            SERVER_ISN + 1,
            100,
        ));
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 101));
        // A retransmission of older data does not move it back.
        c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 50));
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 101));
        assert_eq!(
            c.entry().tcp_flags_seen(Dir::Orig),
            SYN | ACK | tcp_flags::PSH
        );
        assert_eq!(c.entry().tcp_flags_seen(Dir::Reply), SYN | ACK);
        assert_eq!(c.entry().pkts(Dir::Orig), 4);
        assert_eq!(c.entry().bytes(Dir::Orig), 54 * 4 + 150);
    }

    #[test]
    fn data_before_the_handshake_completes_does_not_establish() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        c.send(seg(true, ACK, CLIENT_ISN + 1, 0, 10));
        assert_eq!(c.state(), FlowState::SynSent);
        // Only the opener's ACK completes it, not the responder's.
        c.send(seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0));
        c.send(seg(false, ACK, SERVER_ISN + 1, CLIENT_ISN + 1, 10));
        assert_eq!(c.state(), FlowState::SynRecv);
    }

    #[test]
    fn client_closes_first() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        c.send(seg(true, FIN | ACK, cs, ss, 0));
        assert_eq!(c.state(), FlowState::FinWait);
        c.send(seg(false, ACK, ss, cs + 1, 0));
        assert_eq!(c.state(), FlowState::FinWait);
        // Half-closed: the server may still send data.
        c.send(seg(false, ACK, ss, cs + 1, 200));
        assert_eq!(c.state(), FlowState::FinWait);
        c.send(seg(false, FIN | ACK, ss + 200, cs + 1, 0));
        assert_eq!(c.state(), FlowState::Closing, "LAST_ACK");
        c.send(seg(true, ACK, cs + 1, ss + 201, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
        // A retransmitted FIN does not move it back.
        c.send(seg(false, FIN | ACK, ss + 200, cs + 1, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
        assert!(c.state().is_active());
    }

    #[test]
    fn server_closes_first_with_fin_ack_from_client() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        c.send(seg(false, FIN | ACK, ss, cs, 0));
        assert_eq!(c.state(), FlowState::CloseWait);
        // The client's FIN acknowledges the server's in the same segment.
        c.send(seg(true, FIN | ACK, cs, ss + 1, 0));
        assert_eq!(c.state(), FlowState::Closing);
        c.send(seg(false, ACK, ss + 1, cs + 1, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn simultaneous_close_needs_both_acks() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        // Both FINs cross; neither acknowledges the other's FIN.
        c.send(seg(true, FIN | ACK, cs, ss, 0));
        c.send(seg(false, FIN | ACK, ss, cs, 0));
        assert_eq!(c.state(), FlowState::Closing);
        c.send(seg(true, ACK, cs + 1, ss + 1, 0));
        assert_eq!(
            c.state(),
            FlowState::Closing,
            "client's FIN still unacknowledged"
        );
        c.send(seg(false, ACK, ss + 1, cs + 1, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn an_ack_short_of_the_fin_does_not_acknowledge_it() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        c.send(seg(true, ACK, cs, ss, 100));
        c.send(seg(true, FIN | ACK, cs + 100, ss, 0));
        // Acknowledges the data but not the FIN (FIN is at cs + 100).
        c.send(seg(false, FIN | ACK, ss, cs + 100, 0));
        c.send(seg(true, ACK, cs + 101, ss + 1, 0));
        assert_eq!(c.state(), FlowState::Closing);
        c.send(seg(false, ACK, ss + 1, cs + 101, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn plausible_rst_closes() {
        for from_client in [true, false] {
            let mut c = Conn::established();
            let seq = if from_client {
                CLIENT_ISN + 1
            } else {
                SERVER_ISN + 1
            };
            c.send(seg(from_client, RST, seq + 10, 0, 0));
            assert_eq!(c.state(), FlowState::Closed, "from client: {from_client}");
            assert!(!c.state().is_active());
        }
    }

    #[test]
    fn implausible_rst_is_counted_but_ignored() {
        let mut c = Conn::established();
        let pkts = c.entry().pkts(Dir::Reply);
        c.send(seg(false, RST, SERVER_ISN + 1 + 2 * RST_SEQ_WINDOW, 0, 0));
        c.send(seg(
            false,
            RST | ACK,
            SERVER_ISN.wrapping_sub(RST_SEQ_WINDOW + 2),
            0,
            0,
        ));
        assert_eq!(c.state(), FlowState::Established);
        assert_eq!(c.entry().pkts(Dir::Reply), pkts + 2);
        // Nor does it disturb the tracked sequence number.
        assert_eq!(c.entry().next_seq(Dir::Reply), Some(SERVER_ISN + 1));
    }

    #[test]
    fn rst_answering_a_syn_must_acknowledge_it() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        c.send(seg(
            false,
            RST | ACK,
            0,
            CLIENT_ISN + 1 + 3 * RST_SEQ_WINDOW,
            0,
        ));
        assert_eq!(c.state(), FlowState::SynSent);
        c.send(seg(false, RST | ACK, 0, CLIENT_ISN + 1, 0));
        assert_eq!(c.state(), FlowState::Closed);
    }

    #[test]
    fn syn_reopens_a_closed_flow_keeping_counters() {
        let mut c = Conn::established();
        c.send(seg(true, RST, CLIENT_ISN + 1, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
        // Non-SYN traffic leaves it closed.
        c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0));
        assert_eq!(c.state(), FlowState::Closed);
        let first_seen = c.entry().first_seen();
        assert_eq!(c.send(seg(true, SYN, 90_000, 0, 0)), Dir::Orig);
        assert_eq!(c.state(), FlowState::SynSent);
        assert_eq!(c.entry().pkts(Dir::Orig), 5);
        assert_eq!(c.entry().first_seen(), first_seen);
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(90_001));
        assert_eq!(c.entry().next_seq(Dir::Reply), None);
        c.send(seg(false, SYN | ACK, 70_000, 90_001, 0));
        c.send(seg(true, ACK, 90_001, 70_001, 0));
        assert_eq!(c.state(), FlowState::Established);
    }

    #[test]
    fn syn_from_the_responder_reopens_with_it_as_opener() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        c.send(seg(true, FIN | ACK, cs, ss, 0));
        c.send(seg(false, FIN | ACK, ss, cs + 1, 0));
        c.send(seg(true, ACK, cs + 1, ss + 1, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
        let before = *c.entry();
        // The old server now connects to the old client's port.
        let syn = seg(false, SYN, 7, 0, 0);
        assert_eq!(c.send(syn), Dir::Orig);
        let e = c.entry();
        assert_eq!(e.state(), FlowState::SynSent);
        assert_eq!(e.opener_tuple(), crate::packet::Tuple::of(&syn));
        assert_eq!(e.pkts(Dir::Orig), before.pkts(Dir::Reply) + 1);
        assert_eq!(e.pkts(Dir::Reply), before.pkts(Dir::Orig));
        assert_eq!(e.bytes(Dir::Reply), before.bytes(Dir::Orig));
        assert_eq!(e.next_seq(Dir::Orig), Some(8));
        // And the old client is now the responder.
        assert_eq!(c.send(seg(true, SYN | ACK, 3, 8, 0)), Dir::Reply);
        assert_eq!(c.state(), FlowState::SynRecv);
    }

    #[test]
    fn stray_syn_on_a_live_connection_changes_nothing() {
        let mut c = Conn::established();
        c.send(seg(true, SYN, 123_456, 0, 0));
        assert_eq!(c.state(), FlowState::Established);
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 1));
        c.send(seg(false, SYN | ACK, 1, 2, 0));
        assert_eq!(c.state(), FlowState::Established);
    }

    #[test]
    fn midstream_pickup_is_established_and_learns_both_sides() {
        let mut c = Conn::open(seg(true, ACK, 4242, 777, 10));
        assert_eq!(c.state(), FlowState::Established);
        assert!(c.entry().is_midstream());
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(4252));
        assert_eq!(c.entry().next_seq(Dir::Reply), None);
        c.send(seg(false, ACK, 777, 4252, 0));
        assert_eq!(c.entry().next_seq(Dir::Reply), Some(777));
        c.send(seg(false, FIN | ACK, 777, 4252, 0));
        assert_eq!(c.state(), FlowState::CloseWait);
    }

    #[test]
    fn first_packet_rst_or_syn_ack() {
        let c = Conn::open(seg(true, RST, 5, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
        let c = Conn::open(seg(false, SYN | ACK, 5, 6, 0));
        assert_eq!(c.state(), FlowState::Established);
        assert!(c.entry().is_midstream());
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(seq_ge(5, u32::MAX - 5));
        assert!(!seq_ge(u32::MAX - 5, 5));
        assert!(seq_gt(0, u32::MAX));
        assert!(seq_near(3, u32::MAX - 3));
        assert!(seq_near(RST_SEQ_WINDOW, 0));
        assert!(!seq_near(RST_SEQ_WINDOW + 1, 0));
        assert!(!seq_near(0u32.wrapping_sub(RST_SEQ_WINDOW + 1), 0));
    }
}
