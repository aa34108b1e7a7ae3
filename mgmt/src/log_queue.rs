//! The hand-off between the collector thread and the log writer thread. The collector
//! must never wait on disk: it drains the workers' reply rings, and a flush scan only
//! advances while its reply ring has room, so formatting and writing a million flow-log
//! records inline would hold a flush up for seconds. The collector queues events here
//! (a mutex held for a push or a swap, never across I/O) and the writer thread formats
//! and writes them at its own pace.
//!
//! Two bounds, by record count. Events from the traffic (flow ends by timeout or
//! eviction, alerts) are queued while fewer than `cap` records wait, and dropped and
//! counted beyond, as the worker event rings do: a flood can end flows faster than any
//! disk takes their records, and memory stays flat whatever the traffic. A flushed flow's
//! record is never dropped: an operator's flush may queue up to `flush_cap` records (its
//! records are written after it completes, so the flush takes scan time, not disk time),
//! and beyond that the collector leaves it on the worker's reply ring until there is room
//! ([`LogQueue::has_room_for_flushed`]), which pauses that worker's scan, never its
//! forwarding (the collector hands records over in batches, so the queue may pass
//! `flush_cap` by one batch). Capacity grown for a flush is given back once the writer
//! caught up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use dataplane::worker::Event;

pub struct LogQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    cap: usize,
    flush_cap: usize,
    /// `events.len()` as of the last change, readable without the lock (the collector
    /// asks before every flushed record it takes).
    queued: AtomicUsize,
}

struct Inner {
    events: VecDeque<Event>,
    dropped: u64,
    closed: bool,
}

/// What the writer thread gets from [`LogQueue::take`].
pub enum Taken {
    Batch(Vec<Event>),
    /// Nothing arrived within the wait (time to flush buffered output).
    Idle,
    /// Closed and drained: the writer stops.
    Closed,
}

/// Capacity kept after a burst drains; a flush of a large table can queue far more, and
/// that memory is given back once the writer caught up.
const RETAINED_CAPACITY: usize = 65_536;

impl LogQueue {
    pub fn new(cap: usize, flush_cap: usize) -> LogQueue {
        LogQueue {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                dropped: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            cap: cap.max(1),
            flush_cap: flush_cap.max(cap).max(1),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues every event of `events` that fits; the rest are counted as dropped.
    pub fn extend(&self, events: &mut dyn Iterator<Item = Event>) {
        let mut q = self.lock();
        for ev in events {
            if q.events.len() < self.cap {
                q.events.push_back(ev);
            } else {
                q.dropped += 1;
            }
        }
        self.queued.store(q.events.len(), Ordering::Relaxed);
        drop(q);
        self.ready.notify_one();
    }

    /// Up to `max` queued events, waiting up to `wait` for the first one.
    pub fn take(&self, max: usize, wait: Duration) -> Taken {
        let mut q = self.lock();
        if q.events.is_empty() && !q.closed {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if q.events.is_empty() {
            if q.events.capacity() > RETAINED_CAPACITY {
                q.events.shrink_to(RETAINED_CAPACITY);
            }
            return if q.closed { Taken::Closed } else { Taken::Idle };
        }
        let n = q.events.len().min(max);
        let batch = q.events.drain(..n).collect();
        self.queued.store(q.events.len(), Ordering::Relaxed);
        Taken::Batch(batch)
    }

    /// No more events will come; the writer stops once it has written what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Whether one more flushed flow's record fits (the collector checks before taking it
    /// off a worker's ring, so those are never dropped: the scan waits instead).
    pub fn has_room_for_flushed(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < self.flush_cap
    }

    /// Queues a flushed flow's record (after [`LogQueue::has_room_for_flushed`]).
    pub fn push_flushed(&self, ev: Event) {
        self.push_flushed_batch(&mut std::iter::once(ev));
    }

    /// Queues flushed flows' records (each taken after [`LogQueue::has_room_for_flushed`]).
    pub fn push_flushed_batch(&self, events: &mut dyn Iterator<Item = Event>) {
        let mut q = self.lock();
        let before = q.events.len();
        q.events.extend(events);
        if q.events.len() == before {
            return;
        }
        self.queued.store(q.events.len(), Ordering::Relaxed);
        drop(q);
        self.ready.notify_one();
    }

    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::worker::cmd::AlertRecord;

    fn alert(sid: u32) -> Event {
        Event::Alert(AlertRecord {
            sid,
            ..AlertRecord::default()
        })
    }

    fn sids(t: Taken) -> Vec<u32> {
        match t {
            Taken::Batch(b) => b
                .iter()
                .map(|e| match e {
                    Event::Alert(a) => a.sid,
                    Event::FlowEnd { .. } => 0,
                })
                .collect(),
            Taken::Idle => vec![],
            Taken::Closed => vec![u32::MAX],
        }
    }

    #[test]
    fn keeps_order_bounds_and_counts_overflow() {
        let q = LogQueue::new(3, 5);
        q.extend(&mut (1..=5).map(alert));
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        assert_eq!(sids(q.take(2, Duration::ZERO)), vec![1, 2]);
        assert_eq!(sids(q.take(10, Duration::ZERO)), vec![3]);
        assert!(matches!(q.take(10, Duration::ZERO), Taken::Idle));
    }

    #[test]
    fn flushed_records_have_their_own_larger_bound() {
        let q = LogQueue::new(2, 4);
        q.extend(&mut (1..=3).map(alert));
        assert_eq!((q.len(), q.dropped()), (2, 1), "traffic events stop at cap");
        assert!(q.has_room_for_flushed());
        q.push_flushed(alert(10));
        q.push_flushed(alert(11));
        assert!(
            !q.has_room_for_flushed(),
            "flushed records stop at flush_cap"
        );
        q.extend(&mut std::iter::once(alert(4)));
        assert_eq!(q.dropped(), 2);
        assert_eq!(sids(q.take(10, Duration::ZERO)), vec![1, 2, 10, 11]);
        assert!(q.has_room_for_flushed());
    }

    #[test]
    fn close_drains_before_reporting_closed() {
        let q = LogQueue::new(10, 10);
        q.extend(&mut std::iter::once(alert(7)));
        q.close();
        assert_eq!(sids(q.take(10, Duration::from_secs(5))), vec![7]);
        assert!(matches!(q.take(10, Duration::from_secs(5)), Taken::Closed));
    }

    #[test]
    fn a_waiting_writer_wakes_on_push() {
        let q = std::sync::Arc::new(LogQueue::new(10, 10));
        let q2 = std::sync::Arc::clone(&q);
        let t = std::thread::spawn(move || sids(q2.take(10, Duration::from_secs(30))));
        std::thread::sleep(Duration::from_millis(50));
        q.extend(&mut std::iter::once(alert(9)));
        assert_eq!(t.join().unwrap(), vec![9]);
    }
}
