//! The worker lcore's loop: the only code that touches mbufs. It builds its [`Engine`] on
//! its own lcore (so the flow table is first touched, hence placed, on the worker's NUMA
//! node), polls its RX queues in bursts of at most `workers.burst`, lends the frames to the
//! engine as byte slices, then forwards, drops (freed in bulk) or answers each mbuf as
//! decided, and between bursts lets the engine poll its rings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrayvec::ArrayVec;
use dataplane::flow::Prefetch;
use dataplane::policy::CompiledPolicy;
use dataplane::worker::engine::{RstBuf, WorkerRings};
use dataplane::worker::{Action, DropReason, Engine, EngineConfig, MAX_BURST};
use dpdk_bindings::{Burst, Mempool, RxQueue, TxQueue};

/// One port queue this worker owns: receive from it, transmit on it.
pub struct PortQueue {
    pub rx: RxQueue,
    pub tx: TxQueue,
    /// Index of this port in the appliance's port list (`pair * 2 + side`).
    pub port: usize,
    /// Index (in this worker's `queues`) of the peer port's queue.
    pub peer: usize,
}

/// What a worker builds its engine from, on its own lcore.
pub struct EngineParts {
    pub cfg: EngineConfig,
    pub policy: Arc<CompiledPolicy>,
    pub rule_hits: Box<[u64]>,
}

pub struct Worker {
    pub engine: EngineParts,
    pub queues: Vec<PortQueue>,
    pub rings: Arc<WorkerRings>,
    pub pool: Arc<Mempool>,
    pub burst: usize,
}

/// The shard's bucket and entry hints as real prefetches (`PREFETCHT0`), inlined into the
/// burst loop. (The benches have a twin in `dataplane/benches/common`: dpdk-bindings cannot
/// implement dataplane's trait.)
struct CachePrefetch;

impl Prefetch for CachePrefetch {
    #[inline(always)]
    fn read(p: *const u8) {
        dpdk_bindings::prefetch_read(p);
    }
}

/// Bytes a burst's mbufs carry (for tx byte counters).
fn burst_bytes<const N: usize>(b: &Burst<N>) -> u64 {
    (0..b.len()).map(|i| b.frame(i).len() as u64).sum()
}

impl Worker {
    /// Runs until `stop` is set, then ends every flow (reason `shutdown`) and publishes
    /// its final counters.
    pub fn run(self, stop: Arc<AtomicBool>) {
        let Worker {
            engine: parts,
            queues,
            rings,
            pool,
            burst,
        } = self;
        // Built here, on the worker's lcore: the shard's preallocated table is written
        // (first-touched) by this thread, so its pages come from this lcore's NUMA node.
        let engine = Engine::with_prefetch(parts.cfg, parts.policy, parts.rule_hits);
        RunningWorker {
            engine,
            queues,
            rings,
            pool,
            burst,
        }
        .run(stop);
    }
}

struct RunningWorker {
    engine: Engine<CachePrefetch>,
    queues: Vec<PortQueue>,
    rings: Arc<WorkerRings>,
    pool: Arc<Mempool>,
    burst: usize,
}

impl RunningWorker {
    fn run(mut self, stop: Arc<AtomicBool>) {
        let mut rx: Burst<MAX_BURST> = Burst::new();
        let mut tx: Vec<Burst<MAX_BURST>> = self.queues.iter().map(|_| Burst::new()).collect();
        let mut actions = [Action::Forward; MAX_BURST];
        let mut rsts = RstBuf::new();
        let burst = self.burst.clamp(1, MAX_BURST);
        // Capture/flush slices between bursts are timed with the TSC.
        self.engine.set_clock(dpdk_bindings::tsc);
        // The table resident now (flat memory from start, no first-touch faults on the
        // packet path), then on huge pages: random lookups in a 1M-flow table otherwise
        // pay a TLB miss each (no hugetlbfs with --no-huge; THP is usually in madvise mode).
        let (slab, windows, index, spare) = self.engine.shard().memory_regions();
        for e in [
            dpdk_bindings::prefault(slab).err(),
            dpdk_bindings::prefault(windows).err(),
            dpdk_bindings::prefault(index).err(),
            dpdk_bindings::prefault(spare).err(),
        ]
        .into_iter()
        .flatten()
        {
            eprintln!(
                "flowgate: worker flow table not prefaulted ({e}); pages fault in on first use"
            );
        }
        let huge = dpdk_bindings::collapse_to_huge_pages(slab).unwrap_or(0)
            + dpdk_bindings::collapse_to_huge_pages(windows).unwrap_or(0)
            + dpdk_bindings::collapse_to_huge_pages(index).unwrap_or(0)
            + dpdk_bindings::collapse_to_huge_pages(spare).unwrap_or(0);
        eprintln!(
            "flowgate: worker flow table: {} MiB on transparent huge pages",
            huge >> 20
        );
        while !stop.load(Ordering::Relaxed) {
            for qi in 0..self.queues.len() {
                let n = self.queues[qi].rx.rx_burst_up_to(&mut rx, burst);
                if n == 0 {
                    continue;
                }
                let now = dpdk_bindings::tsc();
                let in_port = self.queues[qi].port;
                let peer = self.queues[qi].peer;
                {
                    // Each frame's first line is prefetched as the burst is gathered, so all
                    // are on their way before pass 1 parses the first: with a DMA NIC under
                    // load each is a miss, and these overlap.
                    let frames: ArrayVec<&[u8], MAX_BURST> = (0..rx.len())
                        .map(|k| {
                            let frame = rx.frame(k);
                            dpdk_bindings::prefetch_read(frame.as_ptr());
                            frame
                        })
                        .collect();
                    self.engine.process_burst(
                        in_port,
                        &frames,
                        now,
                        &mut actions[..frames.len()],
                        &mut rsts,
                        &self.rings.events,
                    );
                }
                for (k, action) in actions.iter().enumerate().take(rx.len()) {
                    if *action != Action::Forward {
                        continue; // left in `rx`: freed with the other drops below
                    }
                    let Some(m) = rx.take(k) else { continue };
                    if tx[peer].is_full() {
                        self.flush(peer, &mut tx[peer]);
                    }
                    // Room was made above; a refused push hands the mbuf back and it is freed.
                    let _ = tx[peer].push(m);
                }
                // Every dropped mbuf in one rte_pktmbuf_free_bulk.
                rx.clear();
                for r in rsts.drain(..) {
                    let out = if r.back { qi } else { peer };
                    let Some(mut m) = self.pool.alloc() else {
                        self.engine.counters_mut().rst_alloc_failed += 1;
                        continue;
                    };
                    let len = r.len as usize;
                    match m.append(r.len) {
                        Some(buf) => buf.copy_from_slice(&r.frame[..len]),
                        None => {
                            self.engine.counters_mut().rst_alloc_failed += 1;
                            continue;
                        }
                    }
                    if tx[out].is_full() {
                        self.flush(out, &mut tx[out]);
                    }
                    let _ = tx[out].push(m);
                }
                self.flush(peer, &mut tx[peer]);
                if !tx[qi].is_empty() {
                    self.flush(qi, &mut tx[qi]);
                }
            }
            if let Some(millis) = self.engine.poll(dpdk_bindings::tsc(), &self.rings) {
                // Fault injection only (debug.fault_injection): simulate a stalled worker.
                std::thread::sleep(std::time::Duration::from_millis(millis as u64));
            }
        }
        for (qi, b) in tx.iter_mut().enumerate() {
            self.flush(qi, b);
        }
        self.engine
            .shutdown(dpdk_bindings::tsc(), &self.rings.events);
        self.rings.stats.force_push(*self.engine.counters());
    }

    fn flush(&mut self, qi: usize, b: &mut Burst<MAX_BURST>) {
        if b.is_empty() {
            return;
        }
        let bytes = burst_bytes(b);
        let total = b.len() as u64;
        let (sent, dropped) = self.queues[qi].tx.tx_burst(b);
        let port = self.queues[qi].port;
        let c = self.engine.counters_mut();
        if let Some(p) = c.ports.get_mut(port) {
            p.tx_packets += sent as u64;
            // Bytes are attributed proportionally when a tail was dropped (rare).
            p.tx_bytes += if dropped == 0 {
                bytes
            } else {
                bytes * sent as u64 / total.max(1)
            };
        }
        if dropped > 0 {
            c.drop(port, DropReason::TxFull, dropped as u64);
        }
    }
}
