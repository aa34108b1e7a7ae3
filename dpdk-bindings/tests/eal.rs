//! End-to-end test of the safe layer on a real EAL with virtual devices.
//!
//! `rte_eal_init` works once per process, so everything runs sequentially inside one `#[test]`.
//! Needs root (as in CI). `net_ring0` is a loopback per queue: what is sent on tx queue q comes
//! back on rx queue q; each ring holds 1023 mbufs. `net_null0` sinks tx and generates rx.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_bindings::{
    dpdk_version, launch_on_lcore, pause, port_stats, tsc, Burst, DpdkError, Eal, Mbuf, Mempool,
    Port, PortConfig, PortId, DEFAULT_DATA_ROOM,
};

/// Capacity of each net_ring queue's ring (size 1024, one slot kept empty).
const RING_CAPACITY: usize = 1023;

fn frame(tag: u8, seq: u16, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect();
    bytes[..2].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// Removes EAL's runtime directory even when an assertion fails part-way.
struct RuntimeDirCleanup(String);

impl Drop for RuntimeDirCleanup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has free mbufs");
    m.append(bytes.len() as u16)
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}

#[test]
fn eal_ports_bursts_and_lcores() {
    let prefix = format!("fg-bind-test-{}", std::process::id());
    let _cleanup = RuntimeDirCleanup(format!("/var/run/dpdk/{prefix}"));
    let args: Vec<String> = [
        "dpdk-bindings-test",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        &format!("--file-prefix={prefix}"),
        "--no-telemetry",
        "--log-level=error",
        "--lcores=0@0,1@0",
        "--vdev=net_ring0",
        "--vdev=net_null0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    assert!(matches!(
        Eal::init(&["x".to_owned(), "bad\0arg".to_owned()]),
        Err(DpdkError::InteriorNul { .. })
    ));
    let eal = Eal::init(&args).expect("EAL init (run as root)");
    assert_eq!(
        Eal::init(&args).unwrap_err(),
        DpdkError::EalAlreadyInitialized
    );

    check_eal_queries(&eal);
    check_mempool_and_mbuf(&eal);
    check_ports(&eal);
    check_lcores(&eal);
    let held = check_pool_dropped_with_mbufs_in_flight(&eal);

    drop(eal);
    // The EAL was not cleaned up (the leaked pool is a live object): the mbuf that outlived
    // its pool and the EAL token is still valid memory, and freeing it is sound.
    let mut held = held;
    held.data_mut()[0] = 0xee;
    assert_eq!(held.data()[0], 0xee);
    drop(held);
}

/// A pool dropped while one of its mbufs is held is leaked, and stays a live DPDK object,
/// so that `Eal::drop` skips `rte_eal_cleanup` (which would unmap the mbuf's memory).
fn check_pool_dropped_with_mbufs_in_flight(eal: &Eal) -> Mbuf {
    let before = dpdk_bindings::live_dpdk_objects();
    let pool = Mempool::new(eal, "fg_leak_test", 63, 0, 2048 + 128).expect("pool");
    let m = mbuf_with(&pool, &[1, 2, 3, 4]);
    drop(pool);
    assert_eq!(
        dpdk_bindings::live_dpdk_objects(),
        before + 1,
        "a leaked pool keeps the EAL alive"
    );
    m
}

fn check_eal_queries(eal: &Eal) {
    assert!(dpdk_version().contains("22.11"), "{}", dpdk_version());
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    let hz = eal.tsc_hz();
    assert!(hz > 100_000_000, "tsc_hz {hz}");
    // tsc() and the shim's rte_rdtsc read the same counter.
    let a = tsc();
    let b = shim_rdtsc();
    let c = tsc();
    assert!(a <= b && b <= c, "{a} {b} {c}");
    let start = Instant::now();
    let t0 = tsc();
    while start.elapsed() < Duration::from_millis(20) {
        pause();
    }
    let measured = (tsc() - t0) as f64 / hz as f64;
    assert!(
        (0.015..0.5).contains(&measured),
        "20 ms measured as {measured} s of TSC"
    );
}

#[allow(unsafe_code)]
fn shim_rdtsc() -> u64 {
    // SAFETY: fg_rdtsc only reads the cycle counter.
    unsafe { dpdk_bindings::sys::fg_rdtsc() }
}

fn check_mempool_and_mbuf(eal: &Eal) {
    assert!(matches!(
        Mempool::new(eal, "fg_tiny", 63, 0, 64),
        Err(DpdkError::DataRoomTooSmall { .. })
    ));
    let pool = Mempool::new(eal, "fg_unit_pool", 255, 16, DEFAULT_DATA_ROOM).expect("mempool");
    assert_eq!(pool.capacity(), 255);
    assert_eq!(pool.in_use(), 0);
    let dup = Mempool::new(eal, "fg_unit_pool", 63, 0, DEFAULT_DATA_ROOM).unwrap_err();
    assert!(
        matches!(&dup, DpdkError::Call { errno, .. } if *errno == libc::EEXIST),
        "{dup}"
    );

    let mut m = pool.alloc().expect("alloc");
    assert_eq!(pool.in_use(), 1);
    assert_eq!((m.data_len(), m.pkt_len()), (0, 0));
    m.append(60).expect("tailroom").copy_from_slice(&[0xab; 60]);
    m.append(4)
        .expect("tailroom")
        .copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.pkt_len(), 64);
    assert_eq!(&m.data()[58..], &[0xab, 0xab, 1, 2, 3, 4]);
    m.data_mut()[0] = 0;
    assert_eq!(m.data()[0], 0);
    let room = DEFAULT_DATA_ROOM - dpdk_bindings::MBUF_HEADROOM;
    assert!(m.append(room).is_none(), "append beyond tailroom must fail");
    assert_eq!(m.pkt_len(), 64, "a failed append leaves the mbuf unchanged");

    // Raw round trip keeps the same buffer.
    let raw = m.into_raw();
    assert_eq!(pool.in_use(), 1);
    #[allow(unsafe_code)]
    // SAFETY: raw came from into_raw just above and is owned by nobody else.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.pkt_len(), 64);
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Exhaustion returns None rather than failing.
    let held: Vec<Mbuf> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(held.len(), 255);
    assert!(pool.alloc().is_none());
    drop(held);
    assert_eq!(pool.in_use(), 0);

    // Burst bookkeeping with real mbufs: push until full, holes, compaction, bulk free.
    let mut burst: Burst<4> = Burst::new();
    for seq in 0..4u16 {
        burst
            .push(mbuf_with(&pool, &frame(1, seq, 64)))
            .expect("room");
    }
    assert!(burst.is_full());
    let extra = burst.push(mbuf_with(&pool, &frame(1, 9, 64))).unwrap_err();
    assert_eq!(&extra.data()[..2], &9u16.to_be_bytes());
    drop(extra);
    let taken = burst.take(1).expect("slot 1 held");
    assert_eq!(&taken.data()[..2], &1u16.to_be_bytes());
    assert!(burst.take(1).is_none(), "a hole yields nothing");
    assert!(burst.frame(1).is_empty() && burst.frame(99).is_empty());
    assert_eq!((burst.len(), burst.held()), (4, 3));
    burst.prefetch_data(2);
    burst.prefetch_data(1);
    burst.compact();
    assert_eq!((burst.len(), burst.held()), (3, 3));
    let seqs: Vec<&[u8]> = (0..3).map(|i| &burst.frame(i)[..2]).collect();
    assert_eq!(seqs, [&[0, 0][..], &[0, 2], &[0, 3]]);
    assert_eq!(pool.in_use(), 4);
    burst.clear();
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), 1);
    drop(taken);
    burst.push(pool.alloc().expect("alloc")).expect("room");
    drop(burst);
    assert_eq!(pool.in_use(), 0, "Burst::drop frees what it holds");
}

fn check_ports(eal: &Eal) {
    assert_eq!(Port::count(eal), 2);
    let ring = Port::by_name(eal, "net_ring0").expect("net_ring0");
    let null = Port::by_name(eal, "net_null0").expect("net_null0");
    assert_ne!(ring, null);
    assert_eq!(
        Port::by_name(eal, "net_nope0").unwrap_err(),
        DpdkError::NoSuchPortName("net_nope0".into())
    );
    assert!(port_stats(PortId(999)).is_none());

    let pool = Mempool::new(eal, "fg_port_pool", 8191, 64, DEFAULT_DATA_ROOM).expect("mempool");
    let two_queues = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 512,
        tx_desc: 512,
        symmetric_rss: true,
        promiscuous: true,
        mtu: None,
    };
    let bad = |cfg: PortConfig| Port::start(eal, ring, &cfg, &pool).unwrap_err();
    assert_eq!(
        bad(PortConfig {
            rx_queues: 0,
            ..two_queues.clone()
        }),
        DpdkError::NoQueues {
            port: ring.0,
            direction: "rx"
        }
    );
    assert!(matches!(
        bad(PortConfig {
            tx_queues: 17,
            ..two_queues.clone()
        }),
        DpdkError::TooManyQueues {
            direction: "tx",
            requested: 17,
            max: 16,
            ..
        }
    ));
    assert_eq!(
        Port::start(eal, PortId(31), &two_queues, &pool).unwrap_err(),
        DpdkError::InvalidPort(31)
    );

    let (ring_port, info) = Port::start(eal, ring, &two_queues, &pool).expect("start net_ring0");
    assert_eq!(info.driver, "net_ring");
    assert!(
        !info.rss_enabled,
        "net_ring has no RSS, so none may be configured"
    );
    assert_eq!((info.max_rx_queues, info.max_tx_queues), (16, 16));
    assert_eq!(ring_port.id(), ring);
    assert!(ring_port.link_up());
    let again = Port::start(eal, ring, &two_queues, &pool).unwrap_err();
    assert!(
        matches!(&again, DpdkError::Call { errno, .. } if *errno == libc::EBUSY),
        "{again}"
    );

    let mut rx0 = ring_port.rx_queue(0);
    let mut rx1 = ring_port.rx_queue(1);
    let mut tx0 = ring_port.tx_queue(0);
    let mut tx1 = ring_port.tx_queue(1);
    assert!(matches!(
        ring_port.try_rx_queue(0),
        Err(DpdkError::QueueUnavailable { queue: 0, .. })
    ));
    assert!(matches!(
        ring_port.try_tx_queue(2),
        Err(DpdkError::QueueUnavailable { queue: 2, .. })
    ));

    // Loopback: bytes come back identical, each queue on its own ring.
    let before = ring_port.stats();
    let sent_q0: Vec<Vec<u8>> = (0..20)
        .map(|s| frame(0x10, s, 60 + usize::from(s) * 50))
        .collect();
    let sent_q1: Vec<Vec<u8>> = (0..5).map(|s| frame(0x20, s, 1514)).collect();
    let mut out: Burst<32> = Burst::new();
    for f in &sent_q0 {
        out.push(mbuf_with(&pool, f)).expect("room");
    }
    let taken = out.take(3).expect("held");
    assert_eq!(
        tx0.tx_burst(&mut out),
        (19, 0),
        "holes are compacted before tx"
    );
    assert!(out.is_empty());
    out.push(taken).expect("room");
    assert_eq!(tx0.tx_burst(&mut out), (1, 0));
    for f in &sent_q1 {
        out.push(mbuf_with(&pool, f)).expect("room");
    }
    assert_eq!(tx1.tx_burst(&mut out), (5, 0));

    let mut got: Burst<32> = Burst::new();
    assert_eq!(rx0.rx_burst(&mut got), 20);
    let mut expected_q0 = sent_q0.clone();
    let moved = expected_q0.remove(3);
    expected_q0.push(moved);
    let received: Vec<&[u8]> = (0..got.len()).map(|i| got.frame(i)).collect();
    assert_eq!(
        received,
        expected_q0.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    got.clear();
    assert_eq!(rx0.rx_burst(&mut got), 0, "queue 0 is drained");
    // rx fills only the free room, and compacts holes first.
    let mut small: Burst<4> = Burst::new();
    assert_eq!(rx1.rx_burst(&mut small), 4);
    assert!(small.is_full());
    assert_eq!(rx1.rx_burst(&mut small), 0, "no room, nothing received");
    drop(small.take(0));
    drop(small.take(2));
    assert_eq!(rx1.rx_burst(&mut small), 1, "one frame left on queue 1");
    assert_eq!(small.len(), 3, "holes were compacted before receiving");
    let seqs: Vec<u16> = (0..3)
        .map(|i| u16::from_be_bytes([small.frame(i)[0], small.frame(i)[1]]))
        .collect();
    assert_eq!(seqs, [1, 3, 4]);
    assert_eq!(small.frame(2), &sent_q1[4][..]);
    drop(small);

    let after = ring_port.stats();
    assert_eq!(after.opackets - before.opackets, 25);
    assert_eq!(after.ipackets - before.ipackets, 25);

    // Overflow: more than the ring holds; the unsent tail is freed and counted.
    let in_use_before = pool.in_use();
    let mut big: Burst<2048> = Burst::new();
    for seq in 0..2048u16 {
        big.push(mbuf_with(&pool, &frame(0x30, seq, 64)))
            .expect("room");
    }
    assert_eq!(
        tx0.tx_burst(&mut big),
        (RING_CAPACITY as u16, (2048 - RING_CAPACITY) as u16)
    );
    assert!(big.is_empty());
    assert_eq!(
        pool.in_use() - in_use_before,
        RING_CAPACITY as u32,
        "dropped mbufs went back to the pool"
    );
    // net_ring counts only what it enqueued (it keeps no tx error counter).
    assert_eq!(
        ring_port.stats().opackets - after.opackets,
        RING_CAPACITY as u64
    );
    let mut drained = 0;
    loop {
        let n = rx0.rx_burst(&mut big);
        if n == 0 {
            break;
        }
        drained += n;
        big.clear();
    }
    assert_eq!(drained, RING_CAPACITY);
    assert_eq!(pool.in_use(), in_use_before);

    // Queue handles are released on drop and can be taken again.
    drop(rx0);
    let rx0 = ring_port.try_rx_queue(0).expect("released on drop");

    // net_null supports RSS: symmetric RSS is configured; tx always succeeds, rx generates frames.
    let (null_port, null_info) =
        Port::start(eal, null, &two_queues, &pool).expect("start net_null0");
    assert_eq!(null_info.driver, "net_null");
    assert!(null_info.rss_enabled);
    let mut null_rx = null_port.rx_queue(1);
    let mut null_tx = null_port.tx_queue(0);
    let mut burst: Burst<32> = Burst::new();
    assert_eq!(null_rx.rx_burst(&mut burst), 32);
    assert_eq!(null_tx.tx_burst(&mut burst), (32, 0));
    assert!(null_port.stats().ipackets >= 32);
    assert_eq!(port_stats(null).expect("valid port").opackets, 32);

    // Ports stay open while a queue handle lives, and close once the last one is gone.
    drop(null_port);
    assert_eq!(null_tx.tx_burst(&mut burst), (0, 0));
    burst.push(pool.alloc().expect("alloc")).expect("room");
    assert_eq!(
        null_tx.tx_burst(&mut burst),
        (1, 0),
        "port still started while a queue lives"
    );
    drop((null_rx, null_tx));
    drop((rx0, rx1, tx0, tx1, ring_port));
    assert_eq!(
        pool.in_use(),
        0,
        "closing the ports returned their rx ring mbufs"
    );
}

fn check_lcores(eal: &Eal) {
    assert_eq!(
        launch_on_lcore(eal, 0, || {}).unwrap_err(),
        DpdkError::NotAWorkerLcore(0)
    );
    assert_eq!(
        launch_on_lcore(eal, 5, || {}).unwrap_err(),
        DpdkError::NotAWorkerLcore(5)
    );

    let ran_on = Arc::new(AtomicU64::new(u64::MAX));
    let flag = ran_on.clone();
    let pool = Mempool::new(eal, "fg_lcore_pool", 63, 0, DEFAULT_DATA_ROOM).expect("mempool");
    let worker_pool = pool.clone();
    let handle = launch_on_lcore(eal, 1, move || {
        // Mbufs can be allocated and freed on the worker; the lcore id proves where we ran.
        drop(worker_pool.alloc().expect("alloc on worker"));
        #[allow(unsafe_code)]
        // SAFETY: fg_lcore_id only reads DPDK's per-thread lcore id.
        let lcore = unsafe { dpdk_bindings::sys::fg_lcore_id() };
        flag.store(u64::from(lcore), Ordering::Release);
    })
    .expect("launch");
    assert_eq!(handle.lcore(), 1);
    assert_eq!(handle.join(), Ok(()));
    assert_eq!(ran_on.load(Ordering::Acquire), 1);
    assert_eq!(pool.in_use(), 0);

    // A busy lcore refuses a second launch.
    let release = Arc::new(AtomicBool::new(false));
    let wait_for = release.clone();
    let busy = launch_on_lcore(eal, 1, move || {
        while !wait_for.load(Ordering::Acquire) {
            pause();
        }
    })
    .expect("launch");
    let refused = launch_on_lcore(eal, 1, || {}).unwrap_err();
    assert!(
        matches!(&refused, DpdkError::Call { errno, .. } if *errno == libc::EBUSY),
        "{refused}"
    );
    release.store(true, Ordering::Release);
    assert_eq!(busy.join(), Ok(()));

    // A panic is contained on the lcore and reported by join; the process and the lcore survive.
    let panicking = launch_on_lcore(eal, 1, || panic!("boom on purpose")).expect("launch");
    let err = panicking.join().unwrap_err();
    assert!(err.contains("boom on purpose"), "{err}");
    let after_panic = launch_on_lcore(eal, 1, || {}).expect("lcore usable after a panic");
    // Dropping without join waits for the lcore.
    drop(after_panic);
    launch_on_lcore(eal, 1, || {})
        .expect("free again")
        .join()
        .expect("ran");
}
