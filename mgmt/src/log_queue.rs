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
//! forwarding (records reach the queue in batches, so it may pass `flush_cap` by one
//! batch). Flushed records arrive as the flush operation's own result batches
//! ([`RecordBatch`], shared with the history writer), not as copies; a batch counts
//! against `flush_cap` by the room its buffer takes, so memory stays bounded even when
//! batches are part empty. Capacity grown for a burst of events is given back once the
//! writer caught up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use dataplane::flow::EndReason;
use dataplane::worker::Event;

use crate::record_batch::RecordBatch;

pub struct LogQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    cap: usize,
    flush_cap: usize,
    /// Room taken (events, and the flushed batches' buffers in records: what memory they
    /// hold, not just what they carry) as of the last change, readable without the lock
    /// (the collector asks before every flushed record it takes).
    queued: AtomicUsize,
}

struct Inner {
    events: VecDeque<Event>,
    /// Flushed flows' records, in the flush operations' own batches.
    flushed: VecDeque<RecordBatch>,
    flushed_records: usize,
    /// The flushed batches' buffers, in records.
    flushed_room: usize,
    dropped: u64,
    closed: bool,
}

/// What the writer thread gets from [`LogQueue::take`].
pub enum Taken {
    /// Traffic events and a batch of flushed flows' records (either may be empty):
    /// one of each per take, so neither kind waits behind the other.
    Batch {
        events: Vec<Event>,
        flushed: Option<RecordBatch>,
    },
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
                flushed: VecDeque::new(),
                flushed_records: 0,
                flushed_room: 0,
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

    /// Queues every event of `events` that fits; the rest are counted as dropped. A
    /// flushed flow's end record (the rest of a flush of every flow cancelled mid-walk
    /// comes as events) always fits: those are never dropped, and there are at most as
    /// many as the flow table holds.
    pub fn extend(&self, events: &mut dyn Iterator<Item = Event>) {
        let mut q = self.lock();
        for ev in events {
            let flushed = matches!(
                ev,
                Event::FlowEnd {
                    reason: EndReason::Flushed,
                    ..
                }
            );
            if flushed || q.events.len() < self.cap {
                q.events.push_back(ev);
            } else {
                q.dropped += 1;
            }
        }
        self.publish_len(&q);
        drop(q);
        self.ready.notify_one();
    }

    fn publish_len(&self, q: &Inner) {
        self.queued
            .store(q.events.len() + q.flushed_room, Ordering::Relaxed);
    }

    /// Up to `max` queued events and the oldest flushed batch, waiting up to `wait` for
    /// something to arrive.
    pub fn take(&self, max: usize, wait: Duration) -> Taken {
        let mut q = self.lock();
        if q.events.is_empty() && q.flushed.is_empty() && !q.closed {
            q = self
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if q.events.is_empty() && q.events.capacity() > RETAINED_CAPACITY {
            q.events.shrink_to(RETAINED_CAPACITY);
        }
        if q.events.is_empty() && q.flushed.is_empty() {
            return if q.closed { Taken::Closed } else { Taken::Idle };
        }
        let n = q.events.len().min(max);
        let events = q.events.drain(..n).collect();
        let flushed = q.flushed.pop_front();
        if let Some(b) = &flushed {
            q.flushed_records -= b.len();
            q.flushed_room -= b.capacity();
        }
        self.publish_len(&q);
        Taken::Batch { events, flushed }
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

    /// Queues a batch of flushed flows' records (each taken off a worker's ring after
    /// [`LogQueue::has_room_for_flushed`]).
    pub fn push_flushed(&self, batch: RecordBatch) {
        if batch.is_empty() {
            return;
        }
        let mut q = self.lock();
        q.flushed_records += batch.len();
        q.flushed_room += batch.capacity();
        q.flushed.push_back(batch);
        self.publish_len(&q);
        drop(q);
        self.ready.notify_one();
    }

    /// Records waiting: events and flushed records.
    pub fn len(&self) -> usize {
        let q = self.lock();
        q.events.len() + q.flushed_records
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
    use crate::record_batch::{test_record, BatchPool};
    use dataplane::worker::cmd::AlertRecord;
    use dataplane::worker::FlowRecord;

    fn alert(sid: u32) -> Event {
        Event::Alert(AlertRecord {
            sid,
            ..AlertRecord::default()
        })
    }

    fn no_prefault(_: &[std::mem::MaybeUninit<FlowRecord>]) {}

    /// A batch of `n` flushed records, with flow ids `first..first + n`.
    fn flushed(pool: &std::sync::Arc<BatchPool>, first: u64, n: u64) -> RecordBatch {
        let records: Vec<FlowRecord> = (first..first + n).map(test_record).collect();
        pool.batch(&records)
    }

    /// The alerts' sids then the flushed records' flow ids of one take.
    fn taken(t: Taken) -> (Vec<u32>, Vec<u64>) {
        match t {
            Taken::Batch { events, flushed } => (
                events
                    .iter()
                    .map(|e| match e {
                        Event::Alert(a) => a.sid,
                        Event::FlowEnd { .. } => 0,
                    })
                    .collect(),
                flushed.map_or(vec![], |b| b.records().iter().map(|r| r.flow_id).collect()),
            ),
            Taken::Idle => (vec![], vec![]),
            Taken::Closed => (vec![u32::MAX], vec![]),
        }
    }

    fn sids(t: Taken) -> Vec<u32> {
        taken(t).0
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
        let pool = BatchPool::new(0, no_prefault);
        let q = LogQueue::new(2, 4);
        q.extend(&mut (1..=3).map(alert));
        assert_eq!((q.len(), q.dropped()), (2, 1), "traffic events stop at cap");
        assert!(q.has_room_for_flushed());
        q.push_flushed(flushed(&pool, 10, 2));
        assert_eq!(q.len(), 4, "flushed records count by record, not by batch");
        assert!(
            !q.has_room_for_flushed(),
            "flushed records stop at flush_cap"
        );
        q.extend(&mut std::iter::once(alert(4)));
        assert_eq!(q.dropped(), 2);
        assert_eq!(
            taken(q.take(10, Duration::ZERO)),
            (vec![1, 2], vec![10, 11])
        );
        assert!(q.has_room_for_flushed());
        assert!(q.is_empty());
    }

    #[test]
    fn flushed_end_events_are_never_dropped() {
        let q = LogQueue::new(1, 1);
        let flushed = |flow_id| Event::FlowEnd {
            record: test_record(flow_id),
            reason: EndReason::Flushed,
        };
        let timeout = Event::FlowEnd {
            record: test_record(9),
            reason: EndReason::Timeout,
        };
        q.extend(&mut [flushed(1), timeout, flushed(2), flushed(3)].into_iter());
        assert_eq!(
            (q.len(), q.dropped()),
            (3, 1),
            "only the traffic record dropped"
        );
    }

    #[test]
    fn a_flushed_batch_counts_the_room_its_buffer_takes() {
        use crate::record_batch::BATCH_RECORDS;
        let pool = BatchPool::new(1, no_prefault);
        let q = LogQueue::new(1, BATCH_RECORDS + 1);
        q.push_flushed(flushed(&pool, 0, BATCH_RECORDS as u64 / 8));
        assert_eq!(q.len(), BATCH_RECORDS / 8, "the metric counts records");
        assert!(q.has_room_for_flushed());
        q.push_flushed(flushed(&pool, 0, 2));
        assert!(
            !q.has_room_for_flushed(),
            "a pooled buffer an eighth full takes a whole batch's room"
        );
        let _ = q.take(1, Duration::ZERO);
        assert!(q.has_room_for_flushed());
    }

    #[test]
    fn each_take_carries_events_and_one_flushed_batch_so_neither_waits() {
        let pool = BatchPool::new(0, no_prefault);
        let q = LogQueue::new(100, 100);
        q.push_flushed(flushed(&pool, 1, 3));
        q.push_flushed(flushed(&pool, 4, 1));
        q.push_flushed(flushed(&pool, 9, 0));
        q.extend(&mut (1..=3).map(alert));
        assert_eq!(q.len(), 7, "an empty batch is not queued");
        assert_eq!(
            taken(q.take(2, Duration::ZERO)),
            (vec![1, 2], vec![1, 2, 3])
        );
        assert_eq!(taken(q.take(2, Duration::ZERO)), (vec![3], vec![4]));
        assert!(matches!(q.take(2, Duration::ZERO), Taken::Idle));
    }

    #[test]
    fn close_drains_before_reporting_closed() {
        let pool = BatchPool::new(0, no_prefault);
        let q = LogQueue::new(10, 10);
        q.push_flushed(flushed(&pool, 5, 1));
        q.extend(&mut std::iter::once(alert(7)));
        q.close();
        assert_eq!(
            taken(q.take(10, Duration::from_secs(5))),
            (vec![7], vec![5])
        );
        assert!(matches!(q.take(10, Duration::from_secs(5)), Taken::Closed));
    }

    #[test]
    fn a_waiting_writer_wakes_on_push() {
        let pool = BatchPool::new(0, no_prefault);
        let q = std::sync::Arc::new(LogQueue::new(10, 10));
        let q2 = std::sync::Arc::clone(&q);
        let t = std::thread::spawn(move || sids(q2.take(10, Duration::from_secs(30))));
        std::thread::sleep(Duration::from_millis(50));
        q.extend(&mut std::iter::once(alert(9)));
        assert_eq!(t.join().unwrap(), vec![9]);
        let q2 = std::sync::Arc::clone(&q);
        let t = std::thread::spawn(move || taken(q2.take(10, Duration::from_secs(30))).1);
        std::thread::sleep(Duration::from_millis(50));
        q.push_flushed(flushed(&pool, 3, 1));
        assert_eq!(t.join().unwrap(), vec![3]);
    }
}
