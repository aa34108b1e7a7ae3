//! The management thread's side of the worker rings. It never touches a shard: it sends
//! commands, and one collector thread drains every worker's reply, event and stats rings,
//! keeps the latest counters and each worker's heartbeat, and routes replies and events
//! to whoever handles them ([`Sink`]).
//!
//! The workers never wait on this side: when nobody drains their rings, events and
//! replies overflow (counted by the worker) and stats snapshots overwrite each other.
//! [`Control::kill_mgmt`] (fault injection) plays the management side's death to prove it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::worker::cmd::Command;
use dataplane::worker::engine::WorkerRings;
use dataplane::worker::{Event, Reply, WorkerCounters};

/// One worker as the management side knows it.
pub struct WorkerLink {
    pub index: u16,
    pub lcore: u32,
    pub rings: Arc<WorkerRings>,
}

/// Latest state per worker, as the collector saw it.
#[derive(Clone, Copy)]
pub struct WorkerView {
    pub counters: WorkerCounters,
    /// When the worker's loop counter last moved (its heartbeat).
    pub last_progress: Instant,
    pub seen: bool,
}

/// Receives what the workers send besides counters.
pub trait Sink: Send + Sync {
    fn on_reply(&self, worker: usize, reply: Reply);
    /// A batch of one worker's replies, in arrival order (up to [`REPLY_BATCH`]); the
    /// batch is left empty. By default each goes to [`Sink::on_reply`].
    fn on_replies(&self, worker: usize, replies: &mut Vec<Reply>) {
        for r in replies.drain(..) {
            self.on_reply(worker, r);
        }
    }
    /// Called with batches of events, in arrival order per worker.
    fn on_events(&self, worker: usize, events: &mut dyn Iterator<Item = Event>);
    /// Called about every 100 ms from the collector thread (timeouts, housekeeping).
    fn tick(&self) {}
    /// Whether `reply` can be taken now. A reply refused here stays parked and the rest
    /// of that worker's replies wait behind it (its ring fills, which pauses its scan);
    /// asked again on every round.
    fn accepts(&self, _reply: &Reply) -> bool {
        true
    }
}

/// Replies handed to [`Sink::on_replies`] at once: a scan streams one per matched flow,
/// so its consumer takes its locks once per batch rather than once per flow.
pub const REPLY_BATCH: usize = 1024;

pub struct Control {
    links: Vec<WorkerLink>,
    views: Mutex<Vec<WorkerView>>,
    /// Serialises command producers so each command ring keeps a single producer.
    send_lock: Mutex<()>,
    stall_after: Duration,
    /// Per worker, a reply the sink did not accept yet ([`Sink::accepts`]).
    parked: Mutex<Vec<Option<Reply>>>,
    /// Set once by [`Control::kill_mgmt`]; never cleared (a dead management side does not
    /// come back). An `Arc` so the HTTP servers can watch the same flag.
    mgmt_dead: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("worker {worker} did not accept the command within {waited_ms} ms (command ring full)")]
pub struct SendError {
    pub worker: usize,
    pub waited_ms: u64,
}

impl Control {
    pub fn new(links: Vec<WorkerLink>, stall_after: Duration) -> Control {
        let now = Instant::now();
        let views = links
            .iter()
            .map(|_| WorkerView {
                counters: WorkerCounters::default(),
                last_progress: now,
                seen: false,
            })
            .collect();
        let parked = (0..links.len()).map(|_| None).collect();
        Control {
            links,
            views: Mutex::new(views),
            send_lock: Mutex::new(()),
            stall_after,
            parked: Mutex::new(parked),
            mgmt_dead: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Fault injection: the management side dies as if its threads had crashed. The
    /// collector exits without a last drain and the HTTP servers watching
    /// [`Control::mgmt_dead_flag`] stop answering; the workers are not told anything, so
    /// they go on forwarding with the policy they hold.
    pub fn kill_mgmt(&self) {
        self.mgmt_dead.store(true, Ordering::Release);
    }

    /// Whether [`Control::kill_mgmt`] was called.
    pub fn mgmt_dead(&self) -> bool {
        self.mgmt_dead.load(Ordering::Acquire)
    }

    /// The flag [`Control::kill_mgmt`] sets, for the HTTP servers to watch.
    pub fn mgmt_dead_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.mgmt_dead)
    }

    pub fn workers(&self) -> usize {
        self.links.len()
    }

    pub fn links(&self) -> &[WorkerLink] {
        &self.links
    }

    /// Pushes `cmd` to worker `w`, waiting up to `wait` for ring space.
    pub fn send(&self, w: usize, cmd: Command, wait: Duration) -> Result<(), SendError> {
        let _g = self.send_lock.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + wait;
        let mut cmd = cmd;
        let link = &self.links[w];
        loop {
            match link.rings.commands.push(cmd) {
                Ok(()) => return Ok(()),
                Err(c) if Instant::now() < deadline => {
                    cmd = c;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => {
                    return Err(SendError {
                        worker: w,
                        waited_ms: wait.as_millis() as u64,
                    })
                }
            }
        }
    }

    pub fn views(&self) -> Vec<WorkerView> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Workers whose loop counter has not moved for longer than the stall threshold.
    pub fn stalled_workers(&self) -> Vec<usize> {
        let now = Instant::now();
        self.views()
            .iter()
            .enumerate()
            .filter(|(_, v)| now.duration_since(v.last_progress) > self.stall_after)
            .map(|(i, _)| i)
            .collect()
    }

    /// Command-ring depth per worker.
    pub fn ring_depths(&self) -> Vec<(usize, usize, usize)> {
        self.links
            .iter()
            .map(|l| {
                (
                    l.rings.commands.len(),
                    l.rings.replies.len(),
                    l.rings.events.len(),
                )
            })
            .collect()
    }

    /// Drains every worker's rings once; returns whether anything was received.
    /// `force` delivers every reply whether or not the sink accepts it (shutdown).
    fn drain_once(&self, sink: &dyn Sink, force: bool) -> bool {
        let mut any = false;
        let mut batch = Vec::with_capacity(REPLY_BATCH);
        for (w, link) in self.links.iter().enumerate() {
            let mut latest = None;
            while let Some(s) = link.rings.stats.pop() {
                latest = Some(s);
            }
            if let Some(s) = latest {
                let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
                let v = &mut views[w];
                if !v.seen || s.loops != v.counters.loops {
                    v.last_progress = Instant::now();
                }
                v.seen = true;
                v.counters = s;
            }
            // A parked reply goes first, in order; while the sink still refuses it the
            // worker's other replies wait on its ring.
            let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = parked[w].take();
            // Bounded per round so one busy worker cannot starve the others.
            for _ in 0..65_536 {
                let Some(r) = next.take().or_else(|| link.rings.replies.pop()) else {
                    break;
                };
                if !force && !sink.accepts(&r) {
                    parked[w] = Some(r);
                    break;
                }
                any = true;
                batch.push(r);
                if batch.len() >= REPLY_BATCH {
                    sink.on_replies(w, &mut batch);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                sink.on_replies(w, &mut batch);
                batch.clear();
            }
            drop(parked);
            if !link.rings.events.is_empty() {
                any = true;
                let mut it = std::iter::from_fn(|| link.rings.events.pop()).take(65_536);
                sink.on_events(w, &mut it);
            }
        }
        any
    }

    /// Runs the collector until `stop` is set; drains once more before returning so
    /// shutdown records (flows ended by `shutdown`) reach the logs. After
    /// [`Control::kill_mgmt`] it returns at once without that drain, as a crashed
    /// collector would: from then on nothing empties the workers' rings.
    pub fn spawn_collector(
        self: &Arc<Self>,
        sink: Arc<dyn Sink>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("fg-collector".into())
            .spawn(move || {
                let mut next_tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if me.mgmt_dead() {
                        eprintln!("flowgate: collector thread exited (management killed by fault injection)");
                        return;
                    }
                    let busy = me.drain_once(&*sink, false);
                    if Instant::now() >= next_tick {
                        sink.tick();
                        next_tick = Instant::now() + Duration::from_millis(100);
                    }
                    if !busy {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                while me.drain_once(&*sink, true) {}
            })
    }

    /// Drains whatever is left (used at shutdown after the workers stopped).
    pub fn drain_all(&self, sink: &dyn Sink) {
        while self.drain_once(sink, true) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::worker::cmd::AlertRecord;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Sink for Count {
        fn on_reply(&self, _: usize, _: Reply) {}
        fn on_events(&self, _: usize, events: &mut dyn Iterator<Item = Event>) {
            self.0.fetch_add(events.count(), Ordering::Relaxed);
        }
    }

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// After `kill_mgmt` the collector is gone: what a worker pushes stays in its rings, a
    /// full event ring refuses (the worker counts the loss) instead of blocking, and stats
    /// snapshots keep being overwritten.
    #[test]
    fn killed_collector_exits_and_leaves_the_rings_undrained() {
        let rings = Arc::new(WorkerRings::new(4, 4, 8));
        let control = Arc::new(Control::new(
            vec![WorkerLink {
                index: 0,
                lcore: 1,
                rings: Arc::clone(&rings),
            }],
            Duration::from_secs(2),
        ));
        let sink = Arc::new(Count::default());
        let stop = Arc::new(AtomicBool::new(false));
        let collector = control
            .spawn_collector(sink.clone(), Arc::clone(&stop))
            .unwrap();
        let alert = || Event::Alert(AlertRecord::default());
        rings.events.push(alert()).unwrap();
        wait_until("event drained", || sink.0.load(Ordering::Relaxed) == 1);

        control.kill_mgmt();
        assert!(control.mgmt_dead() && control.mgmt_dead_flag().load(Ordering::Relaxed));
        wait_until("collector exited", || collector.is_finished());
        let pushed = (0..100)
            .take_while(|_| rings.events.push(alert()).is_ok())
            .count();
        assert_eq!(pushed, 8, "the ring fills, then refuses without blocking");
        for _ in 0..10 {
            rings.stats.force_push(WorkerCounters::default());
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            sink.0.load(Ordering::Relaxed),
            1,
            "nothing drained after the kill"
        );
        assert_eq!(rings.events.len(), 8);
        assert!(!control.views()[0].seen, "stats no longer collected");
        collector.join().unwrap();
    }

    /// Takes `ScanDone` replies only while `open`, recording the order it got them in.
    struct Gate {
        open: AtomicBool,
        got: Mutex<Vec<u64>>,
    }

    impl Sink for Gate {
        fn on_reply(&self, _: usize, r: Reply) {
            if let Reply::ScanDone { op, .. } = r {
                self.got.lock().unwrap().push(op);
            }
        }
        fn on_events(&self, _: usize, _: &mut dyn Iterator<Item = Event>) {}
        fn accepts(&self, _: &Reply) -> bool {
            self.open.load(Ordering::Relaxed)
        }
    }

    /// A reply the sink refuses is parked, the ones behind it wait on the ring (which
    /// fills: the worker's scan pauses), and all arrive in order once it accepts; the
    /// shutdown drain delivers regardless.
    #[test]
    fn refused_replies_wait_in_order_and_shutdown_forces_them() {
        let rings = Arc::new(WorkerRings::new(4, 3, 4));
        let control = Control::new(
            vec![WorkerLink {
                index: 0,
                lcore: 1,
                rings: Arc::clone(&rings),
            }],
            Duration::from_secs(2),
        );
        let done = |op| Reply::ScanDone {
            op,
            scanned: 0,
            matched: 0,
            cancelled: false,
        };
        let gate = Gate {
            open: AtomicBool::new(false),
            got: Mutex::new(Vec::new()),
        };
        for op in 1..=3 {
            assert!(rings.replies.push(done(op)).is_ok());
        }
        assert!(!control.drain_once(&gate, false));
        assert!(gate.got.lock().unwrap().is_empty());
        assert!(
            rings.replies.push(done(4)).is_ok(),
            "one slot freed by the parked reply"
        );
        assert!(
            rings.replies.push(done(5)).is_err(),
            "then the ring is full"
        );
        gate.open.store(true, Ordering::Relaxed);
        assert!(control.drain_once(&gate, false));
        assert_eq!(*gate.got.lock().unwrap(), vec![1, 2, 3, 4]);

        gate.open.store(false, Ordering::Relaxed);
        assert!(rings.replies.push(done(6)).is_ok());
        control.drain_all(&gate);
        assert_eq!(*gate.got.lock().unwrap(), vec![1, 2, 3, 4, 6]);
    }
}
