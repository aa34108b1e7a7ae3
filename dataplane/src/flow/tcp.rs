//! TCP connection tracking on a flow entry: the handshake, the close of each side, RST
//! handling, and sequence-window tracking after Linux conntrack's `tcp_in_window` and
//! pf's state windows, so that a segment an endpoint would not accept cannot move a
//! flow's state.
//!
//! Per direction the tracker keeps (conntrack's names): `end`, the sequence number just
//! past the furthest segment sent (the entry's `next_seq`, also what a generated RST
//! must carry); `maxend`, the furthest sequence number the other side has allowed (its
//! highest ACK plus its window); `maxwin`, the largest window the direction advertised
//! (scaled); `maxack`, its highest ACK; and the window scale from its SYN (RFC 7323: used
//! only when both SYNs carry the option). These live in a [`TcpWindow`] beside the entry
//! (the shard's cold array), because the 128-byte entry has no room for them.
//!
//! A segment of direction `d` (receiver `o`) is **in window** when, as in conntrack:
//! 1. `seq ≤ maxend[d]` — it does not start beyond what the receiver allowed;
//! 2. `seq + len ≥ end[d] − maxwin[o]` — it is not older than one receiver window;
//! 3. `ack ≤ end[o]` — it does not acknowledge data the receiver never sent;
//! 4. `ack ≥ end[o] − max(maxwin[d], 66000)` — nor acknowledge far behind.
//!
//! Only in-window segments count: they advance `end`/`maxend`/`maxwin`, refresh the
//! flow's idle timer, and may change its state (handshake, FIN, FIN acknowledged). Other
//! segments are reported as a [`TcpInvalid`] reason and change nothing; the engine
//! drops them unless the tracker runs liberal (then they are forwarded, still without
//! effect on the flow).
//!
//! * **Handshake**: the SYN sets the opener's `end`; the SYN+ACK must acknowledge it
//!   exactly (`ack == end[orig]`), else it is `BadSynAck`; the opener's in-window ACK
//!   completes the handshake and makes the flow *assured* (evicted last).
//! * **RST** (RFC 5961 §3): accepted only with the exact next sequence number — the
//!   sender's `end`, or the receiver's highest ACK — or, answering a SYN, when it
//!   acknowledges the SYN exactly. A RST in window but not exact is forwarded unchanged
//!   and ignored (`RstInWindow`): the endpoint answers it with a challenge ACK and a
//!   genuine sender then resets with the exact number. A RST outside the window is
//!   dropped (`RstOutOfWindow`). A blind RST therefore has a 2⁻³² chance, not 1 MiB/4 GiB.
//! * **Midstream pickups** (the stream exception policy `continue`) learn the window
//!   from their first packets as conntrack does: the first segment of each direction
//!   sets its `end` and `maxend = end + window`, and the opener's ACK number stands in for
//!   the other side's `end` until that side speaks (so even its first segment is checked).
//!   The window scale of a pickup is unknown, so its windows are taken at the largest
//!   scale (14): data is never refused for want of the SYNs, while RSTs still need the
//!   exact sequence number. A pickup is assured once both directions sent in-window
//!   segments.
//! * The close is derived from four bits — FIN sent and FIN acknowledged, per direction —
//!   so retransmissions and reordering never move the state backwards.
//! * A SYN on a `TimeWait` or `Closed` flow reopens it (port reuse): counters,
//!   first_seen and verdict are kept, the sender of the SYN becomes the opener
//!   (per-direction counters are swapped if needed), tracking restarts, and the state goes
//!   back to `SynSent`. A SYN on a live flow is forwarded and ignored (`StraySyn`).
//!
//! No SACK blocks are parsed (conntrack uses them only to widen check 4 for SACK-less
//! stacks' benefit; a SACK never acknowledges beyond `end`, so check 3 holds without).

use super::entry::{flag, tcp_bit, FlowEntry};
use super::state::{Dir, FlowState};
use crate::packet::{tcp_flags, PacketMeta};

/// The largest window scale shift (RFC 7323 §2.3); also the one assumed for pickups.
pub const MAX_WSCALE: u8 = 14;

/// The least acknowledgement window of check 4 (conntrack's `MAXACKWINCONST`).
const MIN_ACK_WINDOW: u32 = 66_000;

/// Why a TCP segment did not count (the `reason` label of `flowgate_tcp_invalid_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpInvalid {
    /// Its sequence number lies outside the sender's window (checks 1–2).
    SeqOutOfWindow = 0,
    /// Its acknowledgement number lies outside the receiver's window (checks 3–4).
    AckOutOfWindow = 1,
    /// A RST whose sequence number is outside the window.
    RstOutOfWindow = 2,
    /// A RST in window but not at the exact next sequence number: forwarded, ignored.
    RstInWindow = 3,
    /// A SYN+ACK that does not acknowledge the opener's SYN.
    BadSynAck = 4,
    /// A SYN on a live connection: forwarded (the endpoint answers with a challenge ACK),
    /// ignored.
    StraySyn = 5,
    /// A segment without SYN or RST before the responder's SYN+ACK.
    NotSynchronized = 6,
    /// A segment after the flow was reset: forwarded, ignored.
    AfterReset = 7,
}

impl TcpInvalid {
    pub const COUNT: usize = 8;
    pub const ALL: [TcpInvalid; Self::COUNT] = [
        TcpInvalid::SeqOutOfWindow,
        TcpInvalid::AckOutOfWindow,
        TcpInvalid::RstOutOfWindow,
        TcpInvalid::RstInWindow,
        TcpInvalid::BadSynAck,
        TcpInvalid::StraySyn,
        TcpInvalid::NotSynchronized,
        TcpInvalid::AfterReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpInvalid::SeqOutOfWindow => "seq_out_of_window",
            TcpInvalid::AckOutOfWindow => "ack_out_of_window",
            TcpInvalid::RstOutOfWindow => "rst_out_of_window",
            TcpInvalid::RstInWindow => "rst_in_window_inexact",
            TcpInvalid::BadSynAck => "syn_ack_not_acking_syn",
            TcpInvalid::StraySyn => "syn_on_open_flow",
            TcpInvalid::NotSynchronized => "before_syn_ack",
            TcpInvalid::AfterReset => "after_reset",
        }
    }

    /// True for segments dropped by default; false for those forwarded and ignored
    /// because the endpoint itself copes with them (RFC 5961 challenge ACKs).
    #[inline]
    pub fn drops(self) -> bool {
        !matches!(
            self,
            TcpInvalid::RstInWindow | TcpInvalid::StraySyn | TcpInvalid::AfterReset
        )
    }
}

/// `TcpWindow::flags` bits, per direction.
mod wflag {
    /// The direction's SYN carried a window scale option.
    pub const WSCALE: u8 = 1 << 0;
    /// `maxack` is set.
    pub const MAXACK: u8 = 1 << 1;
    /// The direction sent an in-window segment (its `maxwin` is its own).
    pub const SEEN: u8 = 1 << 2;
}

/// The window state of one TCP flow (see the module docs), kept beside its entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct TcpWindow {
    maxend: [u32; 2],
    maxwin: [u32; 2],
    maxack: [u32; 2],
    scale: [u8; 2],
    flags: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<TcpWindow>() == 32);

impl TcpWindow {
    /// Nothing tracked yet.
    pub const ZERO: TcpWindow = TcpWindow {
        maxend: [0; 2],
        maxwin: [0; 2],
        maxack: [0; 2],
        scale: [0; 2],
        flags: [0; 2],
    };

    /// The furthest sequence number direction `d` may send.
    #[inline]
    pub fn maxend(&self, d: Dir) -> u32 {
        self.maxend[d.idx()]
    }

    /// The largest (scaled) window direction `d` advertised.
    #[inline]
    pub fn maxwin(&self, d: Dir) -> u32 {
        self.maxwin[d.idx()]
    }

    /// The window scale shift applied to direction `d`'s windows.
    #[inline]
    pub fn scale(&self, d: Dir) -> u8 {
        self.scale[d.idx()]
    }
}

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

/// Sequence number just past segment `m` (SYN and FIN take one each).
#[inline]
fn seg_end(m: &PacketMeta) -> u32 {
    let ctl = u32::from(m.tcp_flags & tcp_flags::SYN != 0) + u32::from(m.has_flag(tcp_flags::FIN));
    m.tcp_seq
        .wrapping_add(u32::from(m.payload_len))
        .wrapping_add(ctl)
}

#[inline]
fn has_known(tcp: u8, d: usize) -> bool {
    tcp & tcp_bit::of(tcp_bit::SEQ_KNOWN, d) != 0
}

#[inline]
fn end_of(e: &FlowEntry, d: usize) -> u32 {
    e.next_seq.get(d).copied().unwrap_or(0)
}

#[inline]
fn set_end(e: &mut FlowEntry, d: usize, end: u32) {
    if let Some(n) = e.next_seq.get_mut(d) {
        *n = end;
    }
    e.tcp |= tcp_bit::of(tcp_bit::SEQ_KNOWN, d);
}

/// Starts direction `d`'s sequence space from its SYN (or SYN+ACK) `m`.
#[inline]
fn init_from_syn(e: &mut FlowEntry, w: &mut TcpWindow, d: usize, m: &PacketMeta) {
    let end = seg_end(m);
    set_end(e, d, end);
    let (Some(maxend), Some(maxwin), Some(scale), Some(flags)) = (
        w.maxend.get_mut(d),
        w.maxwin.get_mut(d),
        w.scale.get_mut(d),
        w.flags.get_mut(d),
    ) else {
        return;
    };
    *maxend = end;
    // A SYN's window is never scaled (RFC 7323 §2.2).
    *maxwin = u32::from(m.tcp_window).max(1);
    *scale = m.tcp_wscale.unwrap_or(0).min(MAX_WSCALE);
    *flags = wflag::SEEN
        | if m.tcp_wscale.is_some() {
            wflag::WSCALE
        } else {
            0
        };
}

/// RFC 7323: window scaling is on only if both SYNs carried the option.
#[inline]
fn negotiate_scale(w: &mut TcpWindow) {
    if w.flags[0] & w.flags[1] & wflag::WSCALE == 0 {
        w.scale = [0; 2];
    }
}

/// Direction `d` of a pickup sends its first segment: learn its window from it
/// (conntrack's "we are in the middle of a connection").
#[inline]
fn learn_midstream(e: &mut FlowEntry, w: &mut TcpWindow, d: usize, m: &PacketMeta) {
    let end = seg_end(m);
    set_end(e, d, end);
    let o = d ^ 1;
    let maxwin = (u32::from(m.tcp_window) << MAX_WSCALE).max(1);
    if let (Some(mw), Some(me)) = (w.maxwin.get_mut(d), w.maxend.get_mut(d)) {
        *mw = maxwin;
        *me = end.wrapping_add(maxwin);
    }
    if m.has_flag(tcp_flags::ACK) && !has_known(e.tcp, o) {
        // The ACK number is where the other side's data resumes: its provisional `end`,
        // so that its first segment is checked too.
        set_end(e, o, m.tcp_ack);
        if let Some(me) = w.maxend.get_mut(o) {
            *me = m.tcp_ack;
        }
    }
}

/// Sets the initial state of a TCP flow from its first packet (already counted for the
/// opener): SYN → `SynSent`; RST → `Closed`; anything else (SYN+ACK included) is a
/// midstream pickup → `Established`, marked midstream, its window learnt.
#[inline]
pub(super) fn open(e: &mut FlowEntry, w: &mut TcpWindow, m: &PacketMeta) {
    let f = m.tcp_flags;
    *w = TcpWindow::default();
    if f & tcp_flags::RST != 0 {
        e.state = FlowState::Closed;
    } else if f & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
        e.state = FlowState::SynSent;
        init_from_syn(e, w, 0, m);
    } else {
        e.flags |= flag::MIDSTREAM;
        e.state = FlowState::Established;
        w.scale = [MAX_WSCALE; 2];
        learn_midstream(e, w, 0, m);
        // The first segment is its own reference: record its window and ACK.
        update_window(e, w, 0, m);
    }
}

/// Port reuse: the SYN's sender becomes the opener of a fresh connection on this entry.
fn reopen(e: &mut FlowEntry, w: &mut TcpWindow, dir: Dir) {
    if dir == Dir::Reply {
        e.flags ^= flag::OPENER_SWAPPED;
        e.pkts.swap(0, 1);
        e.bytes.swap(0, 1);
        e.tcp_flags_seen.swap(0, 1);
        e.ttl_min.swap(0, 1);
        e.ttl_max.swap(0, 1);
    }
    e.flags &= !(flag::MIDSTREAM | flag::ASSURED);
    e.tcp = 0;
    *w = TcpWindow::default();
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

/// Checks 1–4 of the module docs for segment `m` of direction `d`.
#[inline]
fn in_window(e: &FlowEntry, w: &TcpWindow, d: usize, m: &PacketMeta) -> Result<(), TcpInvalid> {
    let o = d ^ 1;
    let seq = m.tcp_seq;
    let end = seg_end(m);
    let sender_end = end_of(e, d);
    let maxend = w.maxend.get(d).copied().unwrap_or(0);
    let recv_win = w.maxwin.get(o).copied().unwrap_or(0);
    let recv_win = if recv_win == 0 {
        MIN_ACK_WINDOW
    } else {
        recv_win
    };
    if !seq_ge(maxend, seq) || !seq_ge(end, sender_end.wrapping_sub(recv_win)) {
        return Err(TcpInvalid::SeqOutOfWindow);
    }
    if m.has_flag(tcp_flags::ACK) && has_known(e.tcp, o) {
        let recv_end = end_of(e, o);
        let ack_win = w.maxwin.get(d).copied().unwrap_or(0).max(MIN_ACK_WINDOW);
        let ack = m.tcp_ack;
        if !seq_ge(recv_end, ack) || !seq_ge(ack, recv_end.wrapping_sub(ack_win)) {
            return Err(TcpInvalid::AckOutOfWindow);
        }
    }
    Ok(())
}

/// Records an in-window segment `m` of direction `d` (conntrack's "update sender data"
/// and "update receiver data").
#[inline]
fn update_window(e: &mut FlowEntry, w: &mut TcpWindow, d: usize, m: &PacketMeta) {
    let o = d ^ 1;
    let end = seg_end(m);
    let scale = w.scale.get(d).copied().unwrap_or(0);
    let win = if m.has_flag(tcp_flags::SYN) {
        u32::from(m.tcp_window)
    } else {
        u32::from(m.tcp_window) << scale
    };
    if let Some(mw) = w.maxwin.get_mut(d) {
        *mw = (*mw).max(win).max(1);
    }
    if let Some(f) = w.flags.get_mut(d) {
        *f |= wflag::SEEN;
    }
    if seq_gt(end, end_of(e, d)) {
        set_end(e, d, end);
    }
    if !m.has_flag(tcp_flags::ACK) || !has_known(e.tcp, o) {
        return;
    }
    let ack = m.tcp_ack;
    let maxack_set = w.flags.get(d).is_some_and(|f| f & wflag::MAXACK != 0);
    if let (Some(ma), Some(f)) = (w.maxack.get_mut(d), w.flags.get_mut(d)) {
        if !maxack_set || seq_gt(ack, *ma) {
            *ma = ack;
            *f |= wflag::MAXACK;
        }
    }
    // The sender's data beyond what it was allowed widens the receiver's window (a
    // window update we did not see).
    let sender_maxend = w.maxend.get(d).copied().unwrap_or(0);
    if let Some(rw) = w.maxwin.get_mut(o) {
        if *rw != 0 && seq_gt(end, sender_maxend) {
            *rw = rw.wrapping_add(end.wrapping_sub(sender_maxend));
        }
    }
    // The receiver may now send up to this ACK plus this window.
    if let Some(rme) = w.maxend.get_mut(o) {
        let limit = ack.wrapping_add(win);
        if seq_ge(limit, *rme) {
            *rme = if win == 0 {
                limit.wrapping_add(1)
            } else {
                limit
            };
        }
    }
}

/// A RST of direction `d` (see the module docs).
#[inline]
fn on_rst(e: &mut FlowEntry, w: &TcpWindow, dir: Dir, m: &PacketMeta) -> Result<(), TcpInvalid> {
    let d = dir.idx();
    let o = d ^ 1;
    if e.state == FlowState::Closed {
        return Err(TcpInvalid::AfterReset);
    }
    // A RST answering a SYN carries no sequence of its own: it must acknowledge the SYN.
    if e.state == FlowState::SynSent && !has_known(e.tcp, d) {
        let acks_syn =
            m.has_flag(tcp_flags::ACK) && has_known(e.tcp, o) && m.tcp_ack == end_of(e, o);
        return if acks_syn {
            e.state = FlowState::Closed;
            Ok(())
        } else {
            Err(TcpInvalid::RstOutOfWindow)
        };
    }
    if !has_known(e.tcp, d) {
        return Err(TcpInvalid::RstOutOfWindow);
    }
    let seq = m.tcp_seq;
    let receiver_acked = w.flags.get(o).is_some_and(|f| f & wflag::MAXACK != 0)
        && w.maxack.get(o).is_some_and(|&a| a == seq);
    if seq == end_of(e, d) || receiver_acked {
        e.state = FlowState::Closed;
        return Ok(());
    }
    let maxend = w.maxend.get(d).copied().unwrap_or(0);
    let recv_win = w.maxwin.get(o).copied().unwrap_or(0).max(MIN_ACK_WINDOW);
    if seq_ge(maxend, seq) && seq_ge(seq, end_of(e, d).wrapping_sub(recv_win)) {
        Err(TcpInvalid::RstInWindow)
    } else {
        Err(TcpInvalid::RstOutOfWindow)
    }
}

/// A SYN or SYN+ACK on an existing flow.
#[inline]
fn on_syn(
    e: &mut FlowEntry,
    w: &mut TcpWindow,
    dir: Dir,
    m: &PacketMeta,
) -> Result<(), TcpInvalid> {
    let d = dir.idx();
    let o = d ^ 1;
    if !m.has_flag(tcp_flags::ACK) {
        match (e.state, dir) {
            (FlowState::TimeWait | FlowState::Closed, _) => {
                reopen(e, w, dir);
                init_from_syn(e, w, 0, m);
            }
            // Retransmitted (or re-chosen) SYN.
            (FlowState::SynSent, Dir::Orig) => init_from_syn(e, w, 0, m),
            // Simultaneous open: the responder's own SYN.
            (FlowState::SynSent, Dir::Reply) => {
                init_from_syn(e, w, 1, m);
                negotiate_scale(w);
                e.state = FlowState::SynRecv;
            }
            _ => return Err(TcpInvalid::StraySyn),
        }
        return Ok(());
    }
    match (e.state, dir) {
        // The responder's SYN+ACK (or its retransmission), or in a simultaneous open the
        // opener's: it must acknowledge the other side's SYN exactly.
        (FlowState::SynSent | FlowState::SynRecv, Dir::Reply) | (FlowState::SynRecv, Dir::Orig) => {
            if !has_known(e.tcp, o) || m.tcp_ack != end_of(e, o) {
                return Err(TcpInvalid::BadSynAck);
            }
            if dir == Dir::Reply {
                init_from_syn(e, w, d, m);
                negotiate_scale(w);
            }
            update_window(e, w, d, m);
            e.state = FlowState::SynRecv;
            Ok(())
        }
        _ => Err(TcpInvalid::StraySyn),
    }
}

/// Tracks segment `m` of an existing TCP flow, travelling in `dir`. `Ok` when it counts
/// (state and windows updated); otherwise why not, with the flow unchanged — except a
/// SYN reopening a closed flow, which is `Ok`.
#[inline]
pub(super) fn on_packet(
    e: &mut FlowEntry,
    w: &mut TcpWindow,
    dir: Dir,
    m: &PacketMeta,
) -> Result<(), TcpInvalid> {
    let f = m.tcp_flags;
    if f & tcp_flags::RST != 0 {
        return on_rst(e, w, dir, m);
    }
    if f & tcp_flags::SYN != 0 {
        return on_syn(e, w, dir, m);
    }
    if e.state == FlowState::Closed {
        return Err(TcpInvalid::AfterReset);
    }
    if e.state == FlowState::SynSent {
        // Before the SYN+ACK neither side has anything to acknowledge.
        return Err(TcpInvalid::NotSynchronized);
    }
    let d = dir.idx();
    if !has_known(e.tcp, d) {
        if !e.is_midstream() {
            // The responder speaks before its SYN+ACK.
            return Err(TcpInvalid::NotSynchronized);
        }
        learn_midstream(e, w, d, m);
    }
    in_window(e, w, d, m)?;
    // This packet may acknowledge the other side's FIN (checked before the update moves
    // anything, against the other side's end).
    let other = dir.opposite();
    let acks_other_fin = f & tcp_flags::ACK != 0
        && e.tcp & tcp_bit::of(tcp_bit::FIN, other.idx()) != 0
        && seq_ge(m.tcp_ack, end_of(e, other.idx()));
    update_window(e, w, d, m);
    match e.state {
        FlowState::Established
        | FlowState::FinWait
        | FlowState::CloseWait
        | FlowState::Closing
        | FlowState::TimeWait => {}
        // The opener's in-window ACK completes the handshake.
        FlowState::SynRecv if dir == Dir::Orig && f & tcp_flags::ACK != 0 => {
            e.state = FlowState::Established;
            e.flags |= flag::ASSURED;
        }
        // SynSent waits for the SYN+ACK.
        _ => return Ok(()),
    }
    if e.is_midstream() && w.flags[0] & w.flags[1] & wflag::SEEN != 0 {
        // A pickup that both sides answer in window is a real connection.
        e.flags |= flag::ASSURED;
    }
    if acks_other_fin {
        e.tcp |= tcp_bit::of(tcp_bit::FIN_ACKED, other.idx());
    }
    if f & tcp_flags::FIN != 0 {
        e.tcp |= tcp_bit::of(tcp_bit::FIN, d);
    }
    e.state = close_state(e.tcp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowId, FlowKey, FlowShard, ShardConfig};
    use crate::packet::{proto, v4_to_addr};
    use tcp_flags::{ACK, FIN, PSH, RST, SYN};

    const CLIENT_ISN: u32 = 1000;
    const SERVER_ISN: u32 = 5000;
    const WIN: u16 = 65_535;

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
            tcp_window: WIN,
            payload_len: len,
            ttl: 64,
            frame_len: 54 + len,
            ..PacketMeta::default()
        }
    }

    fn win(m: PacketMeta, window: u16, wscale: Option<u8>) -> PacketMeta {
        PacketMeta {
            tcp_window: window,
            tcp_wscale: wscale,
            ..m
        }
    }

    impl Conn {
        fn open(first: PacketMeta) -> Conn {
            let mut shard = FlowShard::new(&ShardConfig {
                capacity: 16,
                ..ShardConfig::default()
            });
            let (key, swapped) = FlowKey::from_meta(&first, true);
            let hash = shard.hash(&key);
            let id = shard
                .insert(&key, hash, swapped, &first, 1, &mut |_| {})
                .unwrap();
            Conn { shard, id, now: 1 }
        }

        /// Sends `m`; panics unless it counts.
        fn send(&mut self, m: PacketMeta) -> Dir {
            let t = self.try_send(m);
            assert_eq!(t.invalid, None, "{m:?}");
            t.dir
        }

        fn try_send(&mut self, m: PacketMeta) -> crate::flow::Tracked {
            self.now += 1;
            let (key, swapped) = FlowKey::from_meta(&m, true);
            let hash = self.shard.hash(&key);
            assert_eq!(self.shard.lookup(&key, hash), Some(self.id));
            self.shard.update(self.id, swapped, &m, self.now)
        }

        /// Sends `m`, which must not count and must change nothing but the invalid count.
        fn reject(&mut self, m: PacketMeta, why: TcpInvalid) {
            let (e, w) = (*self.entry(), *self.window());
            assert_eq!(self.try_send(m).invalid, Some(why), "{m:?}");
            assert_eq!(*self.entry(), e, "entry changed by {m:?}");
            assert_eq!(*self.window(), w, "window changed by {m:?}");
        }

        fn state(&self) -> FlowState {
            self.shard.entry(self.id).state()
        }

        fn entry(&self) -> &FlowEntry {
            self.shard.entry(self.id)
        }

        fn window(&self) -> &TcpWindow {
            self.shard.tcp_window(self.id)
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
            assert!(!c.entry().is_assured());
            assert_eq!(
                c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0)),
                Dir::Orig
            );
            assert_eq!(c.state(), FlowState::Established);
            assert!(c.entry().is_assured());
            c
        }
    }

    #[test]
    fn three_way_handshake_tracks_sequence_numbers_and_windows() {
        let mut c = Conn::established();
        assert!(!c.entry().is_midstream());
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 1));
        assert_eq!(c.entry().next_seq(Dir::Reply), Some(SERVER_ISN + 1));
        // Each side may send up to the other's ACK plus its window.
        assert_eq!(
            c.window().maxend(Dir::Orig),
            CLIENT_ISN + 1 + u32::from(WIN)
        );
        assert_eq!(
            c.window().maxend(Dir::Reply),
            SERVER_ISN + 1 + u32::from(WIN)
        );
        c.send(seg(true, ACK | PSH, CLIENT_ISN + 1, SERVER_ISN + 1, 100));
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 101));
        // A retransmission of older data does not move it back.
        c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 50));
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 101));
        assert_eq!(c.entry().tcp_flags_seen(Dir::Orig), SYN | ACK | PSH);
        assert_eq!(c.entry().tcp_flags_seen(Dir::Reply), SYN | ACK);
        assert_eq!(c.entry().pkts(Dir::Orig), 4);
        assert_eq!(c.entry().bytes(Dir::Orig), 54 * 4 + 150);
    }

    #[test]
    fn syn_ack_must_acknowledge_the_syn() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        for ack in [0, CLIENT_ISN, CLIENT_ISN + 2, CLIENT_ISN + 1 + (1 << 31)] {
            c.reject(
                seg(false, SYN | ACK, SERVER_ISN, ack, 0),
                TcpInvalid::BadSynAck,
            );
        }
        assert_eq!(c.state(), FlowState::SynSent);
        c.send(seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0));
        assert_eq!(c.state(), FlowState::SynRecv);
    }

    #[test]
    fn nothing_but_syns_and_rsts_before_the_syn_ack() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        c.reject(
            seg(true, ACK, CLIENT_ISN + 1, 0, 10),
            TcpInvalid::NotSynchronized,
        );
        c.reject(
            seg(false, ACK, SERVER_ISN + 1, CLIENT_ISN + 1, 10),
            TcpInvalid::NotSynchronized,
        );
        assert_eq!(c.state(), FlowState::SynSent);
        // Only the opener's ACK completes it, not the responder's.
        c.send(seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0));
        c.send(seg(false, ACK, SERVER_ISN + 1, CLIENT_ISN + 1, 10));
        assert_eq!(c.state(), FlowState::SynRecv);
    }

    #[test]
    fn the_handshake_ack_must_be_in_window() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        c.send(seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0));
        // Acknowledges data the server never sent.
        c.reject(
            seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1000, 0),
            TcpInvalid::AckOutOfWindow,
        );
        c.reject(
            seg(true, ACK, CLIENT_ISN + 1 + (1 << 31), SERVER_ISN + 1, 0),
            TcpInvalid::SeqOutOfWindow,
        );
        assert_eq!(c.state(), FlowState::SynRecv);
        c.send(seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0));
        assert_eq!(c.state(), FlowState::Established);
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
        c.send(seg(true, FIN | ACK, cs, ss, 0));
        c.send(seg(false, FIN | ACK, ss, cs, 0));
        assert_eq!(c.state(), FlowState::Closing);
        c.send(seg(true, ACK, cs + 1, ss + 1, 0));
        assert_eq!(c.state(), FlowState::Closing, "client's FIN unacknowledged");
        c.send(seg(false, ACK, ss + 1, cs + 1, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn an_ack_short_of_the_fin_does_not_acknowledge_it() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        c.send(seg(true, ACK, cs, ss, 100));
        c.send(seg(true, FIN | ACK, cs + 100, ss, 0));
        c.send(seg(false, FIN | ACK, ss, cs + 100, 0));
        c.send(seg(true, ACK, cs + 101, ss + 1, 0));
        assert_eq!(c.state(), FlowState::Closing);
        c.send(seg(false, ACK, ss + 1, cs + 101, 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn out_of_window_fin_and_data_change_nothing() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        let far = 1u32 << 31;
        c.reject(
            seg(true, FIN | ACK, cs + far, ss, 0),
            TcpInvalid::SeqOutOfWindow,
        );
        // Just past what the server allowed.
        c.reject(
            seg(true, FIN | ACK, cs + u32::from(WIN) + 1, ss, 0),
            TcpInvalid::SeqOutOfWindow,
        );
        c.reject(
            seg(false, FIN | ACK, ss, cs + far, 0),
            TcpInvalid::AckOutOfWindow,
        );
        c.reject(
            seg(false, ACK, ss.wrapping_sub(200_000), cs, 10),
            TcpInvalid::SeqOutOfWindow,
        );
        // Acknowledging data the client never sent.
        c.reject(seg(false, ACK, ss, cs + 1, 0), TcpInvalid::AckOutOfWindow);
        assert_eq!(c.state(), FlowState::Established);
        assert_eq!(
            c.entry().pkts(Dir::Reply),
            1,
            "invalid segments are not counted"
        );
    }

    #[test]
    fn rst_needs_the_exact_sequence_number() {
        for from_client in [true, false] {
            let mut c = Conn::established();
            let seq = if from_client {
                CLIENT_ISN + 1
            } else {
                SERVER_ISN + 1
            };
            // In window but not exact: forwarded and ignored (RFC 5961 §3.2).
            for off in [1u32, 10, 1000, 60_000] {
                c.reject(
                    seg(from_client, RST, seq + off, 0, 0),
                    TcpInvalid::RstInWindow,
                );
            }
            // Outside the window.
            for off in [1u32 << 20, 1 << 31, 0u32.wrapping_sub(1 << 20)] {
                c.reject(
                    seg(from_client, RST | ACK, seq.wrapping_add(off), 0, 0),
                    TcpInvalid::RstOutOfWindow,
                );
            }
            assert_eq!(c.state(), FlowState::Established);
            c.send(seg(from_client, RST, seq, 0, 0));
            assert_eq!(c.state(), FlowState::Closed, "from client: {from_client}");
            assert!(!c.state().is_active());
            // Later segments are forwarded but do not count.
            c.reject(seg(from_client, RST, seq, 0, 0), TcpInvalid::AfterReset);
            c.reject(
                seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0),
                TcpInvalid::AfterReset,
            );
        }
    }

    #[test]
    fn rst_at_the_receivers_ack_is_exact_too() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        // The client sent 100 bytes the server has not acknowledged yet: a RST at the
        // server's last ACK (what RCV.NXT is to the server) is exact.
        c.send(seg(true, ACK, cs, ss, 100));
        c.reject(seg(true, RST, cs + 50, 0, 0), TcpInvalid::RstInWindow);
        c.send(seg(true, RST, cs, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
    }

    #[test]
    fn rst_answering_a_syn_must_acknowledge_it() {
        let mut c = Conn::open(seg(true, SYN, CLIENT_ISN, 0, 0));
        c.reject(
            seg(false, RST | ACK, 0, CLIENT_ISN + 2, 0),
            TcpInvalid::RstOutOfWindow,
        );
        c.reject(
            seg(false, RST, 0, CLIENT_ISN + 1, 0),
            TcpInvalid::RstOutOfWindow,
        );
        assert_eq!(c.state(), FlowState::SynSent);
        c.send(seg(false, RST | ACK, 0, CLIENT_ISN + 1, 0));
        assert_eq!(c.state(), FlowState::Closed);
    }

    #[test]
    fn syn_reopens_a_closed_flow_keeping_counters() {
        let mut c = Conn::established();
        c.send(seg(true, RST, CLIENT_ISN + 1, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
        let first_seen = c.entry().first_seen();
        assert_eq!(c.send(seg(true, SYN, 90_000, 0, 0)), Dir::Orig);
        assert_eq!(c.state(), FlowState::SynSent);
        assert_eq!(c.entry().pkts(Dir::Orig), 4);
        assert_eq!(c.entry().first_seen(), first_seen);
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(90_001));
        assert_eq!(c.entry().next_seq(Dir::Reply), None);
        assert!(!c.entry().is_assured());
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
        c.reject(seg(true, SYN, 123_456, 0, 0), TcpInvalid::StraySyn);
        c.reject(seg(false, SYN | ACK, 1, 2, 0), TcpInvalid::StraySyn);
        assert_eq!(c.state(), FlowState::Established);
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(CLIENT_ISN + 1));
    }

    #[test]
    fn midstream_pickup_learns_the_window_from_its_first_packets() {
        let mut c = Conn::open(seg(true, ACK, 4242, 777, 10));
        assert_eq!(c.state(), FlowState::Established);
        assert!(c.entry().is_midstream());
        assert!(!c.entry().is_assured());
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(4252));
        // The opener's ACK stands for the server's position until it speaks…
        assert_eq!(c.entry().next_seq(Dir::Reply), Some(777));
        // …so a spoofed first server segment far from it is refused.
        c.reject(
            seg(false, ACK, 777 + (1 << 31), 4252, 0),
            TcpInvalid::SeqOutOfWindow,
        );
        c.reject(seg(false, RST, 777 + 5, 0, 0), TcpInvalid::RstInWindow);
        c.reject(
            seg(false, FIN | ACK, 777, 4252 + 1000, 0),
            TcpInvalid::AckOutOfWindow,
        );
        c.send(seg(false, ACK, 777, 4252, 0));
        assert!(c.entry().is_assured(), "both sides answered in window");
        c.send(seg(false, FIN | ACK, 777, 4252, 0));
        assert_eq!(c.state(), FlowState::CloseWait);
        // The window of a pickup is taken at the largest scale: big windows pass.
        c.send(seg(true, ACK, 4252 + 1_000_000, 778, 1000));
        assert_eq!(c.window().scale(Dir::Orig), MAX_WSCALE);
    }

    #[test]
    fn a_pickup_rst_from_the_silent_side_needs_the_acked_sequence() {
        // A spoofed ACK flood draws RSTs from the server carrying the flood's ACK number:
        // exact, so the pickup closes.
        let mut c = Conn::open(seg(true, ACK, 4242, 777, 0));
        c.reject(seg(false, RST, 778, 0, 0), TcpInvalid::RstInWindow);
        c.send(seg(false, RST, 777, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
    }

    #[test]
    fn first_packet_rst_or_syn_ack() {
        let c = Conn::open(seg(true, RST, 5, 0, 0));
        assert_eq!(c.state(), FlowState::Closed);
        let c = Conn::open(seg(false, SYN | ACK, 5, 6, 0));
        assert_eq!(c.state(), FlowState::Established);
        assert!(c.entry().is_midstream());
    }

    /// Fixture: window scaling (RFC 7323) is on only when both SYNs carry the option.
    #[test]
    fn window_scaling_needs_both_syns() {
        for (client_ws, server_ws, scaled) in [
            (Some(7), Some(7), true),
            (Some(7), None, false),
            (None, Some(7), false),
        ] {
            let mut c = Conn::open(win(seg(true, SYN, CLIENT_ISN, 0, 0), 64_240, client_ws));
            c.send(win(
                seg(false, SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 0),
                65_160,
                server_ws,
            ));
            // The server's first scaled window: 2000 << 7 = 256,000 bytes.
            c.send(win(
                seg(true, ACK, CLIENT_ISN + 1, SERVER_ISN + 1, 0),
                502,
                None,
            ));
            c.send(win(
                seg(false, ACK, SERVER_ISN + 1, CLIENT_ISN + 1, 0),
                2000,
                None,
            ));
            let want = if scaled { 2000 << 7 } else { 65_160 };
            assert_eq!(
                c.window().maxwin(Dir::Reply),
                want,
                "{client_ws:?} {server_ws:?}"
            );
            assert_eq!(c.window().scale(Dir::Reply), if scaled { 7 } else { 0 });
            let edge = CLIENT_ISN + 1 + (2000u32 << if scaled { 7 } else { 0 });
            // Data up to the window's edge counts; beyond it does not.
            let seg_at = |seq| seg(true, ACK, seq, SERVER_ISN + 1, 1000);
            let t = c.try_send(seg_at(edge - 1000));
            assert_eq!(t.invalid, None);
            if scaled {
                c.reject(seg_at(edge + 1), TcpInvalid::SeqOutOfWindow);
            } else {
                // Unscaled: 2000 bytes of window; 256,000 would be far beyond.
                c.reject(
                    seg_at(CLIENT_ISN + 1 + (2000 << 7) - 1000),
                    TcpInvalid::SeqOutOfWindow,
                );
            }
        }
    }

    /// Fixture: a SACK-less sender retransmits a lost segment after later ones.
    #[test]
    fn sackless_retransmissions_count_and_do_not_move_end_back() {
        let mut c = Conn::established();
        let (cs, ss) = (CLIENT_ISN + 1, SERVER_ISN + 1);
        for i in 0..10 {
            c.send(seg(true, ACK | PSH, cs + i * 1000, ss, 1000));
        }
        // Segment 3 was lost: the server keeps acknowledging cs + 3000 (duplicate ACKs).
        for _ in 0..3 {
            c.send(seg(false, ACK, ss, cs + 3000, 0));
        }
        // Go-back-N retransmission of everything from the hole.
        for i in 3..10 {
            c.send(seg(true, ACK, cs + i * 1000, ss, 1000));
            assert_eq!(c.entry().next_seq(Dir::Orig), Some(cs + 10_000));
        }
        c.send(seg(false, ACK, ss, cs + 10_000, 0));
        assert_eq!(c.window().maxend(Dir::Orig), cs + 10_000 + u32::from(WIN));
        assert_eq!(c.state(), FlowState::Established);
    }

    /// Fixture: sequence numbers wrapping through zero, for both sides, to TIME_WAIT.
    #[test]
    fn wrapped_sequence_numbers() {
        let (cisn, sisn) = (u32::MAX - 1500, u32::MAX - 10);
        let mut c = Conn::open(seg(true, SYN, cisn, 0, 0));
        c.send(seg(false, SYN | ACK, sisn, cisn.wrapping_add(1), 0));
        let (mut cs, ss) = (cisn.wrapping_add(1), sisn.wrapping_add(1));
        c.send(seg(true, ACK, cs, ss, 0));
        for _ in 0..3 {
            c.send(seg(true, ACK, cs, ss, 1000));
            cs = cs.wrapping_add(1000);
        }
        assert_eq!(c.entry().next_seq(Dir::Orig), Some(cs));
        assert!(cs < cisn, "wrapped");
        c.send(seg(false, ACK, ss, cs, 100));
        c.reject(
            seg(true, ACK, cs.wrapping_add(1 << 31), ss, 10),
            TcpInvalid::SeqOutOfWindow,
        );
        c.send(seg(true, FIN | ACK, cs, ss.wrapping_add(100), 0));
        c.send(seg(
            false,
            FIN | ACK,
            ss.wrapping_add(100),
            cs.wrapping_add(1),
            0,
        ));
        c.send(seg(true, ACK, cs.wrapping_add(1), ss.wrapping_add(101), 0));
        assert_eq!(c.state(), FlowState::TimeWait);
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(seq_ge(5, u32::MAX - 5));
        assert!(!seq_ge(u32::MAX - 5, 5));
        assert!(seq_gt(0, u32::MAX));
        assert!(!seq_gt(7, 7));
    }

    mod model {
        //! Property test: a reference TCP conversation (two endpoints that respect each
        //! other's windows, deliver in order, retransmit, close) interleaved with spoofed
        //! segments. Every genuine segment must count and leave the flow in the state the
        //! model derives; every spoofed one must be refused and change nothing.
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// `dir` sends up to `len` bytes (clamped to the peer's window), maybe a FIN.
            Send {
                client: bool,
                len: u16,
                fin: bool,
                window: u16,
            },
            /// `dir` retransmits its last data segment.
            Retransmit { client: bool },
            /// A segment far outside the window (seq or ack off by 2^31 ± 2^29).
            SpoofFar {
                client: bool,
                flags: u8,
                off: u32,
                bad_ack: bool,
            },
            /// A RST `delta` past the exact sequence number.
            SpoofRstNear { client: bool, delta: u16 },
        }

        fn op() -> impl Strategy<Value = Op> {
            let flags = prop::sample::select(vec![ACK, FIN | ACK, RST, RST | ACK, ACK | PSH]);
            prop_oneof![
                4 => (any::<bool>(), 0u16..3000, prop::bool::weighted(0.05), 1u16..=65_535)
                    .prop_map(|(client, len, fin, window)| Op::Send { client, len, fin, window }),
                1 => any::<bool>().prop_map(|client| Op::Retransmit { client }),
                2 => (any::<bool>(), flags, 0u32..(1 << 30), any::<bool>())
                    .prop_map(|(client, flags, off, bad_ack)| Op::SpoofFar { client, flags, off, bad_ack }),
                1 => (any::<bool>(), 1u16..=u16::MAX)
                    .prop_map(|(client, delta)| Op::SpoofRstNear { client, delta }),
            ]
        }

        /// One endpoint as the model sees it.
        #[derive(Clone, Copy, Debug, Default)]
        struct Side {
            snd_nxt: u32,
            /// Highest ACK received from the peer, and the peer's window (scaled).
            acked: u32,
            peer_window: u32,
            scale: u8,
            window: u16,
            fin_seq: Option<u32>,
            last: Option<(u32, u16)>,
        }

        fn run(cisn: u32, sisn: u32, ws: (Option<u8>, Option<u8>), ops: &[Op]) {
            let scaled = ws.0.is_some() && ws.1.is_some();
            let mut c = Conn::open(win(seg(true, SYN, cisn, 0, 0), 29_200, ws.0));
            c.send(win(
                seg(false, SYN | ACK, sisn, cisn.wrapping_add(1), 0),
                28_960,
                ws.1,
            ));
            let mut sides = [
                Side {
                    snd_nxt: cisn.wrapping_add(1),
                    acked: cisn.wrapping_add(1),
                    peer_window: 28_960,
                    scale: if scaled { ws.0.unwrap_or(0) } else { 0 },
                    window: 29_200,
                    ..Side::default()
                },
                Side {
                    snd_nxt: sisn.wrapping_add(1),
                    acked: sisn.wrapping_add(1),
                    peer_window: 29_200,
                    scale: if scaled { ws.1.unwrap_or(0) } else { 0 },
                    window: 28_960,
                    ..Side::default()
                },
            ];
            c.send(win(
                seg(true, ACK, cisn.wrapping_add(1), sisn.wrapping_add(1), 0),
                29_200,
                None,
            ));
            sides[1].peer_window = 29_200u32 << sides[0].scale;
            assert_eq!(c.state(), FlowState::Established);
            for op in ops {
                match *op {
                    Op::Send {
                        client,
                        len,
                        fin,
                        window,
                    } => {
                        let (d, o) = if client { (0, 1) } else { (1, 0) };
                        let s = sides[d];
                        let room = s.acked.wrapping_add(s.peer_window).wrapping_sub(s.snd_nxt);
                        let room = if (room as i32) < 0 { 0 } else { room };
                        // After its FIN a side only acknowledges; a FIN needs room too.
                        let closed = s.fin_seq.is_some();
                        let len = if closed {
                            0
                        } else {
                            u32::from(len).min(room) as u16
                        };
                        let fin = fin && !closed && u32::from(len) < room;
                        let ack = sides[o].snd_nxt;
                        let flags = ACK | if fin { FIN } else { 0 };
                        let m = win(seg(client, flags, s.snd_nxt, ack, len), window, None);
                        let t = c.try_send(m);
                        assert_eq!(t.invalid, None, "genuine {m:?} refused");
                        // The peer receives everything in order and learns the window.
                        let peer = &mut sides[o];
                        peer.acked = ack;
                        peer.peer_window = u32::from(window) << s.scale;
                        let sd = &mut sides[d];
                        if len > 0 {
                            sd.last = Some((sd.snd_nxt, len));
                        }
                        sd.snd_nxt = sd.snd_nxt.wrapping_add(u32::from(len));
                        sd.window = window;
                        if fin {
                            sd.fin_seq = Some(sd.snd_nxt);
                            sd.snd_nxt = sd.snd_nxt.wrapping_add(1);
                        }
                    }
                    Op::Retransmit { client } => {
                        let (d, o) = if client { (0, 1) } else { (1, 0) };
                        let Some((seq, len)) = sides[d].last else {
                            continue;
                        };
                        let m = win(
                            seg(client, ACK, seq, sides[o].snd_nxt, len),
                            sides[d].window,
                            None,
                        );
                        assert_eq!(c.try_send(m).invalid, None, "retransmission {m:?}");
                        sides[o].acked = sides[o].snd_nxt;
                    }
                    Op::SpoofFar {
                        client,
                        flags,
                        off,
                        bad_ack,
                    } => {
                        let (d, o) = if client { (0, 1) } else { (1, 0) };
                        let far = (1u32 << 31).wrapping_add(off).wrapping_sub(1 << 29);
                        let (mut seq, mut ack) = (sides[d].snd_nxt, sides[o].snd_nxt);
                        if bad_ack && flags & RST == 0 {
                            ack = ack.wrapping_add(far);
                        } else {
                            seq = seq.wrapping_add(far);
                        }
                        let m = seg(
                            client,
                            flags,
                            seq,
                            ack,
                            if flags & RST != 0 { 0 } else { 100 },
                        );
                        let (e, w) = (*c.entry(), *c.window());
                        let t = c.try_send(m);
                        assert!(t.invalid.is_some(), "spoofed {m:?} counted");
                        assert_eq!(
                            (*c.entry(), *c.window()),
                            (e, w),
                            "spoofed {m:?} changed the flow"
                        );
                    }
                    Op::SpoofRstNear { client, delta } => {
                        let d = usize::from(!client);
                        let m = seg(
                            client,
                            RST,
                            sides[d].snd_nxt.wrapping_add(u32::from(delta)),
                            0,
                            0,
                        );
                        let (e, w) = (*c.entry(), *c.window());
                        let t = c.try_send(m);
                        assert!(
                            matches!(
                                t.invalid,
                                Some(TcpInvalid::RstInWindow | TcpInvalid::RstOutOfWindow)
                            ),
                            "{t:?}"
                        );
                        assert_eq!(
                            (*c.entry(), *c.window()),
                            (e, w),
                            "inexact RST changed the flow"
                        );
                    }
                }
                // The state the model implies.
                let fin = |d: usize| sides[d].fin_seq.is_some();
                let acked = |d: usize| sides[d].fin_seq.is_some_and(|f| seq_gt(sides[d].acked, f));
                let want = match (fin(0), fin(1)) {
                    (false, false) => FlowState::Established,
                    (true, false) => FlowState::FinWait,
                    (false, true) => FlowState::CloseWait,
                    (true, true) if acked(0) && acked(1) => FlowState::TimeWait,
                    (true, true) => FlowState::Closing,
                };
                assert_eq!(c.state(), want, "after {op:?}");
                assert_eq!(c.entry().next_seq(Dir::Orig), Some(sides[0].snd_nxt));
                assert_eq!(c.entry().next_seq(Dir::Reply), Some(sides[1].snd_nxt));
            }
            // The genuine RST closes it, exactly.
            c.send(seg(true, RST, sides[0].snd_nxt, 0, 0));
            assert_eq!(c.state(), FlowState::Closed);
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn genuine_segments_count_and_spoofed_ones_change_nothing(
                cisn in any::<u32>(),
                sisn in any::<u32>(),
                ws in (prop::option::of(0u8..=14), prop::option::of(0u8..=14)),
                ops in prop::collection::vec(op(), 1..120),
            ) {
                run(cisn, sisn, ws, &ops);
            }
        }
    }
}
