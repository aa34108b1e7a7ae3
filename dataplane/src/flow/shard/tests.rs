use super::*;
use crate::packet::{tcp_flags, v4_to_addr, Verdict};

const TPS: u64 = 1000; // 1 tick = 1 ms

fn cfg(capacity: u32) -> ShardConfig {
    ShardConfig {
        capacity,
        ticks_per_sec: TPS,
        ..ShardConfig::default()
    }
}

fn udp(i: u32) -> PacketMeta {
    PacketMeta {
        proto: proto::UDP,
        ip_version: 4,
        src: v4_to_addr(0xc612_0000 + i),
        dst: v4_to_addr(0xc613_0001),
        src_port: 1024 + (i % 50_000) as u16,
        dst_port: 53,
        ttl: 64,
        frame_len: 100,
        ..PacketMeta::default()
    }
}

fn tcp(i: u32, flags: u8) -> PacketMeta {
    PacketMeta {
        proto: proto::TCP,
        tcp_flags: flags,
        tcp_seq: 1000,
        dst_port: 443,
        ..udp(i)
    }
}

fn reply(m: &PacketMeta) -> PacketMeta {
    PacketMeta {
        src: m.dst,
        dst: m.src,
        src_port: m.dst_port,
        dst_port: m.src_port,
        ..*m
    }
}

fn add(s: &mut FlowShard, m: &PacketMeta, now: u64) -> Result<FlowId, TableFull> {
    let (k, sw) = FlowKey::from_meta(m, true);
    s.insert(&k, s.hash(&k), sw, m, now, &mut |_| {})
}

fn find(s: &FlowShard, m: &PacketMeta) -> Option<FlowId> {
    let (k, _) = FlowKey::from_meta(m, true);
    s.lookup(&k, s.hash(&k))
}

#[test]
fn insert_lookup_update_both_directions() {
    let mut s = FlowShard::new(&cfg(100));
    assert!(s.is_empty());
    let m = udp(1);
    let id = add(&mut s, &m, 10).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(find(&s, &m), Some(id));
    assert_eq!(find(&s, &reply(&m)), Some(id));
    assert_eq!(find(&s, &udp(2)), None);
    let e = s.entry(id);
    assert_eq!(e.state(), FlowState::New);
    assert_eq!(e.opener_tuple(), crate::packet::Tuple::of(&m));
    assert_eq!((e.first_seen(), e.last_seen()), (10, 10));

    let (_, sw) = FlowKey::from_meta(&m, true);
    assert_eq!(s.update(id, sw, &m, 11).dir, Dir::Orig);
    assert_eq!(s.entry(id).state(), FlowState::New, "same direction again");
    assert_eq!(s.update(id, !sw, &reply(&m), 12).dir, Dir::Reply);
    let e = s.entry(id);
    assert_eq!(e.state(), FlowState::Established);
    assert_eq!((e.pkts(Dir::Orig), e.pkts(Dir::Reply)), (2, 1));
    assert_eq!((e.bytes(Dir::Orig), e.bytes(Dir::Reply)), (200, 100));
    assert_eq!(e.last_seen(), 12);
    // A late timestamp never moves last_seen back.
    s.update(id, sw, &m, 5);
    assert_eq!(s.entry(id).last_seen(), 12);
}

#[test]
fn icmp_echo_reply_establishes_the_request_flow() {
    let mut s = FlowShard::new(&cfg(10));
    let req = PacketMeta {
        proto: proto::ICMP,
        src_port: 9,
        dst_port: 8 << 8,
        ..udp(1)
    };
    let rep = PacketMeta {
        src: req.dst,
        dst: req.src,
        dst_port: 0,
        ..req
    };
    let id = add(&mut s, &req, 0).unwrap();
    assert_eq!(find(&s, &rep), Some(id));
    let (_, sw) = FlowKey::from_meta(&rep, true);
    assert_eq!(s.update(id, sw, &rep, 1).dir, Dir::Reply);
    assert_eq!(s.entry(id).state(), FlowState::Established);
}

#[test]
fn initial_state_by_protocol_and_flags() {
    let mut s = FlowShard::new(&cfg(10));
    let syn = add(&mut s, &tcp(1, tcp_flags::SYN), 0).unwrap();
    let mid = add(&mut s, &tcp(2, tcp_flags::ACK), 0).unwrap();
    let other = add(
        &mut s,
        &PacketMeta {
            proto: 47,
            ..udp(3)
        },
        0,
    )
    .unwrap();
    assert_eq!(s.entry(syn).state(), FlowState::SynSent);
    assert_eq!(s.entry(mid).state(), FlowState::Established);
    assert!(s.entry(mid).is_midstream());
    assert!(!s.entry(syn).is_midstream());
    assert_eq!(s.entry(other).state(), FlowState::New);
}

#[test]
fn remove_frees_the_slot_and_keeps_other_ids() {
    let mut s = FlowShard::new(&cfg(4));
    let ids: Vec<_> = (0..4).map(|i| add(&mut s, &udp(i), 0).unwrap()).collect();
    s.entry_mut(ids[1]).set_verdict(Verdict::Drop, 7, 1, 2);
    let gone = s.remove(ids[1]);
    assert_eq!(gone.verdict(), Verdict::Drop);
    assert_eq!(gone.opener_tuple(), crate::packet::Tuple::of(&udp(1)));
    assert_eq!(s.len(), 3);
    assert_eq!(find(&s, &udp(1)), None);
    for i in [0, 2, 3] {
        assert_eq!(find(&s, &udp(i)), Some(ids[i as usize]));
    }
    // Removing again is harmless.
    s.remove(ids[1]);
    assert_eq!(s.len(), 3);
    // The freed slot is reused.
    assert_eq!(add(&mut s, &udp(9), 0), Ok(ids[1]));
}

#[test]
fn full_table_of_fresh_established_flows_refuses_new_ones() {
    let mut s = FlowShard::new(&cfg(4));
    for i in 0..4 {
        let id = add(&mut s, &udp(i), 0).unwrap();
        let (_, sw) = FlowKey::from_meta(&udp(i), true);
        s.update(id, !sw, &reply(&udp(i)), 1);
    }
    let mut evicted = 0;
    let (k, sw) = FlowKey::from_meta(&udp(9), true);
    let r = s.insert(&k, s.hash(&k), sw, &udp(9), 2, &mut |_| evicted += 1);
    assert_eq!(r, Err(TableFull));
    assert_eq!(evicted, 0);
    assert_eq!(s.len(), 4);
    assert_eq!(find(&s, &udp(9)), None);
}

#[test]
fn full_table_evicts_the_oldest_unestablished_flow() {
    let mut s = FlowShard::new(&cfg(4));
    // 0: established; 1, 2: half-open (seen at 5 and 3); 3: established.
    for (i, t) in [(0, 0), (1, 5), (2, 3), (3, 0)] {
        add(&mut s, &udp(i), t).unwrap();
    }
    for i in [0, 3] {
        let id = find(&s, &udp(i)).unwrap();
        let (_, sw) = FlowKey::from_meta(&udp(i), true);
        s.update(id, !sw, &reply(&udp(i)), 1);
    }
    let mut gone = Vec::new();
    let (k, sw) = FlowKey::from_meta(&udp(9), true);
    let id = s
        .insert(&k, s.hash(&k), sw, &udp(9), 6, &mut |e| gone.push(*e))
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].opener_tuple(), crate::packet::Tuple::of(&udp(2)));
    assert_eq!(find(&s, &udp(2)), None);
    assert_eq!(find(&s, &udp(9)), Some(id));
    assert_eq!(s.len(), 4);
}

#[test]
fn full_table_evicts_an_expired_established_flow() {
    let mut s = FlowShard::new(&cfg(2));
    for i in 0..2 {
        let id = add(&mut s, &udp(i), 0).unwrap();
        let (_, sw) = FlowKey::from_meta(&udp(i), true);
        s.update(id, !sw, &reply(&udp(i)), 0);
    }
    assert!(s.in_emergency());
    // Emergency UDP established timeout: 100 s.
    let now = 100 * TPS;
    assert_eq!(
        add(&mut s, &udp(9), now),
        Err(TableFull),
        "idle == limit is alive"
    );
    let (k, sw) = FlowKey::from_meta(&udp(9), true);
    let mut gone = 0;
    assert!(s
        .insert(&k, s.hash(&k), sw, &udp(9), now + 1, &mut |_| gone += 1)
        .is_ok());
    assert_eq!(gone, 1);
}

#[test]
fn expiry_removes_exactly_the_idle_flows() {
    let mut s = FlowShard::new(&cfg(64));
    let udp_new = 30 * TPS;
    let stale = add(&mut s, &udp(1), 0).unwrap();
    let fresh = add(&mut s, &udp(2), 10).unwrap();
    let syn = add(&mut s, &tcp(3, tcp_flags::SYN), 0).unwrap(); // tcp_new: 60 s
    let mut out = Vec::new();
    // At exactly the limit nothing goes.
    assert_eq!(s.expire_slice(udp_new, 64, &mut |e| out.push(*e)), 64);
    assert!(out.is_empty());
    s.expire_slice(udp_new + 1, 64, &mut |e| out.push(*e));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].opener_tuple(), crate::packet::Tuple::of(&udp(1)));
    assert_eq!(find(&s, &udp(1)), None);
    assert_eq!(s.entry(fresh).state(), FlowState::New);
    assert_eq!(s.entry(syn).state(), FlowState::SynSent);
    assert_eq!(s.len(), 2);
    let _ = stale;
    out.clear();
    s.expire_slice(60 * TPS + 1, 64, &mut |e| out.push(*e));
    assert_eq!(out.len(), 2);
    assert!(s.is_empty());
}

#[test]
fn expiry_slices_walk_the_slab_with_a_wrapping_cursor() {
    let mut s = FlowShard::new(&cfg(10));
    for i in 0..10 {
        add(&mut s, &udp(i), 0).unwrap();
    }
    let late = 31 * TPS;
    let mut n = 0;
    assert_eq!(s.expire_slice(late, 4, &mut |_| n += 1), 4);
    assert_eq!((n, s.len()), (4, 6));
    assert_eq!(s.expire_slice(late, 4, &mut |_| n += 1), 4);
    assert_eq!(s.expire_slice(late, 4, &mut |_| n += 1), 4); // wraps after slot 9
    assert_eq!((n, s.len()), (10, 0));
    // At most one turn per call.
    assert_eq!(s.expire_slice(late, 1000, &mut |_| n += 1), 10);
}

#[test]
fn emergency_mode_has_hysteresis_and_shorter_timeouts() {
    // 20 entries: enter at 19 (95 %), leave at 16 (80 %).
    let mut s = FlowShard::new(&cfg(20));
    let ids: Vec<_> = (0..19).map(|i| add(&mut s, &udp(i), 0).unwrap()).collect();
    assert!(s.in_emergency());
    // UDP new: 30 s normally, 10 s in emergency.
    let mut n = 0;
    s.remove(ids[0]);
    s.remove(ids[1]);
    assert!(s.in_emergency(), "17 > 16");
    s.expire_slice(11 * TPS, 20, &mut |_| n += 1);
    assert_eq!(n, 17, "the emergency timeout applied to the whole slice");
    assert!(!s.in_emergency());

    let ids: Vec<_> = (0..16)
        .map(|i| add(&mut s, &udp(i), 20 * TPS).unwrap())
        .collect();
    assert!(!s.in_emergency());
    s.expire_slice(31 * TPS, 20, &mut |_| n += 1);
    assert_eq!(s.len(), 16, "normal timeout outside emergency");
    assert_eq!(ids.len(), 16);
}

#[test]
fn scan_visits_live_flows_in_slices_and_removes_on_request() {
    let mut s = FlowShard::new(&cfg(10));
    let ids: Vec<_> = (0..10).map(|i| add(&mut s, &udp(i), 0).unwrap()).collect();
    s.remove(ids[3]);
    let mut seen = Vec::new();
    let mut cursor = Some(0);
    let mut slices = 0;
    while let Some(c) = cursor {
        cursor = s.scan(c, 4, &mut |id, e| {
            seen.push(id);
            e.opener_tuple().src_port % 2 == 0 // remove the even client ports
        });
        slices += 1;
    }
    assert_eq!(slices, 3);
    let mut want: Vec<_> = ids.clone();
    want.remove(3);
    assert_eq!(seen, want);
    assert_eq!(s.len(), 4); // 1, 5, 7, 9
    for i in 0..10u32 {
        assert_eq!(
            find(&s, &udp(i)).is_some(),
            [1, 5, 7, 9].contains(&i),
            "{i}"
        );
    }
    // Surviving ids did not move.
    assert_eq!(find(&s, &udp(7)), Some(ids[7]));
    assert_eq!(s.scan(10, 5, &mut |_, _| true), None);
    assert_eq!(s.scan(u32::MAX, 5, &mut |_, _| true), None);
}

#[test]
fn drain_all_hands_out_everything_and_resets() {
    let mut s = FlowShard::new(&cfg(8));
    for i in 0..8 {
        add(&mut s, &udp(i), 0).unwrap();
    }
    assert!(s.in_emergency());
    let mut n = 0;
    s.drain_all(&mut |e| {
        assert!(e.is_live());
        n += 1
    });
    assert_eq!(n, 8);
    assert!(s.is_empty() && !s.in_emergency());
    assert_eq!(find(&s, &udp(0)), None);
    for i in 0..8 {
        assert!(add(&mut s, &udp(i + 100), 0).is_ok());
    }
    assert_eq!(s.len(), 8);
}

#[test]
fn foreign_ids_do_not_panic() {
    let mut s = FlowShard::new(&cfg(4));
    let bogus = FlowId(1_000);
    assert!(!s.entry(bogus).is_live());
    s.update(bogus, false, &udp(1), 1);
    s.prefetch_entry(bogus, true);
    s.remove(bogus);
    assert!(s.is_empty());
}

#[test]
fn zero_capacity_shard_refuses_everything() {
    let mut s = FlowShard::new(&cfg(0));
    assert_eq!(add(&mut s, &udp(1), 0), Err(TableFull));
    assert_eq!(s.expire_slice(0, 10, &mut |_| {}), 0);
    assert_eq!(s.scan(0, 10, &mut |_, _| true), None);
}

#[test]
fn config_validation_names_the_problem() {
    assert_eq!(ShardConfig::default().validate(), Ok(()));
    assert_eq!(cfg(0).validate(), Err(ShardConfigError::Capacity(0)));
    let bad = ShardConfig {
        emergency_low_pct: 95,
        ..cfg(10)
    };
    assert_eq!(
        bad.validate(),
        Err(ShardConfigError::EmergencyPct { low: 95, high: 95 })
    );
    let bad = ShardConfig {
        emergency_timeouts: TimeoutsSecs {
            udp_new: 0,
            ..TimeoutsSecs::emergency_default()
        },
        ..cfg(10)
    };
    let err = bad.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "emergency timeout for udp_new must be at least 1 second"
    );
}

#[test]
fn many_flows_round_trip() {
    let n = 50_000;
    let mut s = FlowShard::new(&cfg(n));
    for i in 0..n {
        let m = tcp(i, tcp_flags::SYN);
        let id = add(&mut s, &m, 0).unwrap();
        assert_eq!(id.index(), i, "fresh shard hands out slots in order");
    }
    for i in (0..n).step_by(3) {
        let id = find(&s, &tcp(i, tcp_flags::SYN)).unwrap();
        s.remove(id);
    }
    for i in 0..n {
        assert_eq!(find(&s, &reply(&tcp(i, 0))).is_some(), i % 3 != 0, "{i}");
    }
}

/// A TCP flow of client `i`: handshake completed (assured) at `t`.
fn assured_tcp(s: &mut FlowShard, i: u32, t: u64) -> FlowId {
    let syn = PacketMeta {
        tcp_window: 1000,
        ..tcp(i, tcp_flags::SYN)
    };
    let id = add(s, &syn, t).unwrap();
    let (_, sw) = FlowKey::from_meta(&syn, true);
    let syn_ack = PacketMeta {
        tcp_flags: tcp_flags::SYN | tcp_flags::ACK,
        tcp_seq: 9000,
        tcp_ack: 1001,
        ..reply(&syn)
    };
    assert_eq!(s.update(id, !sw, &syn_ack, t).invalid, None);
    let ack = PacketMeta {
        tcp_flags: tcp_flags::ACK,
        tcp_seq: 1001,
        tcp_ack: 9001,
        ..syn
    };
    assert_eq!(s.update(id, sw, &ack, t).invalid, None);
    assert!(s.entry(id).is_assured());
    id
}

#[test]
fn early_drop_takes_pickups_before_handshakes_and_never_assured_flows() {
    let mut s = FlowShard::new(&cfg(6));
    // Two assured connections, seen long ago; two handshakes in progress; two pickups
    // (what a spoofed ACK flood creates), the most recent.
    let assured = [assured_tcp(&mut s, 0, 0), assured_tcp(&mut s, 1, 0)];
    let syns = [
        add(&mut s, &tcp(2, tcp_flags::SYN), 5).unwrap(),
        add(&mut s, &tcp(3, tcp_flags::SYN), 6).unwrap(),
    ];
    let pickups = [
        add(&mut s, &tcp(4, tcp_flags::ACK), 8).unwrap(),
        add(&mut s, &tcp(5, tcp_flags::ACK), 7).unwrap(),
    ];
    assert!(pickups.iter().all(|&p| !s.entry(p).is_assured()));
    let mut next = 10;
    let mut insert = |s: &mut FlowShard, i: u32, flags: u8| {
        next += 1;
        let m = tcp(i, flags);
        let (k, sw) = FlowKey::from_meta(&m, true);
        let h = s.hash(&k);
        let mut gone = Vec::new();
        s.insert(&k, h, sw, &m, next, &mut |e| gone.push(e.opener_tuple()))
            .unwrap();
        gone
    };
    // Pickups go first, the older one first, then the handshakes; assured never.
    let mut gone = insert(&mut s, 100, tcp_flags::ACK);
    gone.extend(insert(&mut s, 101, tcp_flags::ACK));
    gone.extend(insert(&mut s, 102, tcp_flags::ACK));
    let t = |i: u32, f: u8| crate::packet::Tuple::of(&tcp(i, f));
    assert_eq!(
        gone,
        [
            t(5, tcp_flags::ACK),
            t(4, tcp_flags::ACK),
            t(100, tcp_flags::ACK)
        ]
    );
    assert_eq!(find(&s, &tcp(2, 0)), Some(syns[0]));
    assert_eq!(find(&s, &tcp(3, 0)), Some(syns[1]));
    // A flood of pickups churns among itself: established sessions and handshakes stay.
    for i in 200..300 {
        insert(&mut s, i, tcp_flags::ACK);
    }
    assert!(assured.iter().all(|&a| s.entry(a).is_live()));
    assert_eq!(find(&s, &tcp(2, 0)), Some(syns[0]));
    // A new connection displaces a pickup, not a session.
    insert(&mut s, 400, tcp_flags::SYN);
    assert_eq!(find(&s, &tcp(0, 0)), Some(assured[0]));
    assert_eq!(find(&s, &tcp(1, 0)), Some(assured[1]));
    assert!(find(&s, &tcp(400, 0)).is_some());
}

#[test]
fn unanswered_pickups_age_out_like_handshakes() {
    let mut s = FlowShard::new(&cfg(8));
    let pickup = add(&mut s, &tcp(1, tcp_flags::ACK), 0).unwrap();
    let answered = add(&mut s, &tcp(2, tcp_flags::ACK), 0).unwrap();
    let m = tcp(2, tcp_flags::ACK);
    let (_, sw) = FlowKey::from_meta(&m, true);
    let r = PacketMeta {
        tcp_seq: 0,
        tcp_ack: 1000,
        ..reply(&m)
    };
    assert_eq!(s.update(answered, !sw, &r, 0).invalid, None);
    assert!(s.entry(answered).is_assured());
    // tcp_new is 60 s: the unanswered pickup goes then, the answered one stays.
    let now = 61 * TPS;
    assert!(s.is_expired(s.entry(pickup), now));
    assert!(!s.is_expired(s.entry(answered), now));
    s.expire_slice(now, 8, &mut |_| {});
    assert_eq!(s.len(), 1);
}

#[test]
fn tombstones_expire_fast_are_not_refreshed_and_are_invisible_to_scans() {
    let mut s = FlowShard::new(&cfg(8));
    let m = tcp(1, tcp_flags::ACK);
    let (k, sw) = FlowKey::from_meta(&m, true);
    let h = s.hash(&k);
    let id = s.insert_tombstone(&k, h, sw, &m, 0, &mut |_| {}).unwrap();
    let e = s.entry(id);
    assert!(e.is_tombstone() && e.rst_sent());
    assert_eq!(
        (e.state(), e.verdict()),
        (FlowState::Closed, Verdict::Reject)
    );
    assert_eq!(find(&s, &m), Some(id));
    let mut seen = 0;
    assert_eq!(
        s.scan(0, 8, &mut |_, _| {
            seen += 1;
            false
        }),
        None
    );
    assert_eq!(seen, 0);
    // Five seconds by default.
    assert!(!s.is_expired(s.entry(id), 5 * TPS));
    assert!(s.is_expired(s.entry(id), 5 * TPS + 1));
    s.expire_slice(5 * TPS + 1, 8, &mut |_| {});
    assert!(s.is_empty());
}

#[test]
fn out_of_window_segments_do_not_refresh_the_idle_timer() {
    let mut s = FlowShard::new(&cfg(8));
    let id = assured_tcp(&mut s, 1, 0);
    let m = tcp(1, tcp_flags::ACK);
    let (_, sw) = FlowKey::from_meta(&m, true);
    let spoofed = PacketMeta {
        tcp_seq: 1001 + (1 << 31),
        tcp_ack: 9001,
        ..m
    };
    let pkts = s.entry(id).pkts(Dir::Orig);
    let t = s.update(id, sw, &spoofed, 50 * TPS);
    assert_eq!(t.invalid, Some(crate::flow::TcpInvalid::SeqOutOfWindow));
    assert_eq!(s.entry(id).last_seen(), 0);
    assert_eq!(s.entry(id).pkts(Dir::Orig), pkts);
}

#[test]
fn a_stale_lookup_hint_never_returns_another_flow() {
    // Capacity 1: the second flow evicts the first and reuses its slot, so the hint taken
    // for the first flow before that points at the second one's entry.
    let mut s = FlowShard::new(&cfg(1));
    let (a, b) = (udp(1), udp(2));
    let (ka, _) = FlowKey::from_meta(&a, true);
    let (kb, _) = FlowKey::from_meta(&b, true);
    let (ha, hb) = (s.hash(&ka), s.hash(&kb));
    let id_a = add(&mut s, &a, 0).unwrap();
    let hint = s.prefetch_flow(ha, false);
    assert_eq!(hint, Some(id_a));
    assert_eq!(s.lookup_hinted(&ka, ha, hint), Some(id_a));
    let id_b = add(&mut s, &b, 1).unwrap();
    assert_eq!(id_b, id_a, "the slot was reused");
    assert_eq!(
        s.lookup_hinted(&ka, ha, hint),
        None,
        "stale hint: slot reused"
    );
    assert_eq!(s.lookup_hinted(&kb, hb, hint), Some(id_b));
    // Removed: the slot is free, the hint finds nothing.
    s.remove(id_b);
    assert_eq!(
        s.lookup_hinted(&kb, hb, hint),
        None,
        "stale hint: slot freed"
    );
    // A hint that is wrong or out of range only costs the full lookup.
    let mut s = FlowShard::new(&cfg(10));
    let ha = s.hash(&ka); // a new shard, a new hash key
    let id_a = add(&mut s, &a, 0).unwrap();
    let id_b = add(&mut s, &b, 0).unwrap();
    assert_eq!(s.lookup_hinted(&ka, ha, Some(id_b)), Some(id_a));
    assert_eq!(s.lookup_hinted(&ka, ha, Some(FlowId(99))), Some(id_a));
    assert_eq!(s.lookup_hinted(&ka, ha, None), Some(id_a));
}

#[test]
fn a_lookup_hint_never_returns_a_detached_flow() {
    // After a flush-all detaches the index, a hint taken before it must not resurrect the
    // detached entry (still live in the slab until the walk reaches it).
    let mut s = FlowShard::new(&cfg(10));
    let a = udp(1);
    let (ka, _) = FlowKey::from_meta(&a, true);
    let ha = s.hash(&ka);
    let id = add(&mut s, &a, 0).unwrap();
    let hint = s.prefetch_flow(ha, false);
    assert_eq!(hint, Some(id));
    assert!(s.detach_all(5));
    assert_eq!(s.lookup(&ka, ha), None);
    assert_eq!(s.lookup_hinted(&ka, ha, hint), None);
}
