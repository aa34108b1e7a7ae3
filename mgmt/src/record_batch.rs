//! Batches of the workers' flow records, shared without copies by everyone who consumes an
//! operation's results on another thread: the history writer, and for a flush the flow-log
//! writer (a flushed flow's result is also its end-of-flow record).
//!
//! A batch's buffer comes from a [`BatchPool`] and goes back to it when the last holder
//! drops the batch. A flush of a million flows streams ~130 MB of records through these;
//! as fresh allocations (and, before that, as copies grown into the log queue) their pages
//! were faulted in and zeroed by the kernel while the collector thread, which paces every
//! scan, waited. The pool keeps, and faults in at start, enough buffers for the largest
//! scan the flow table allows (bounded like the operation result buffer); beyond that a
//! batch is allocated and freed as any vector.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, PoisonError};

use dataplane::worker::FlowRecord;

/// Records per batch: the collector hands results on every this many.
pub const BATCH_RECORDS: usize = 8192;

/// Spare batch buffers, each with room for [`BATCH_RECORDS`] records.
pub struct BatchPool {
    spare: Mutex<Vec<Vec<FlowRecord>>>,
    keep: usize,
}

/// An immutable, shared batch of records; cloning it is a reference count.
#[derive(Clone)]
pub struct RecordBatch(Arc<Pooled>);

struct Pooled {
    records: Vec<FlowRecord>,
    pool: Arc<BatchPool>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.records));
    }
}

impl BatchPool {
    /// A pool that keeps up to `keep` spare buffers, all allocated now and handed to
    /// `prefault` (which faults their pages in) so the first large scan does not.
    pub fn new(keep: usize, prefault: fn(&[MaybeUninit<FlowRecord>])) -> Arc<BatchPool> {
        let mut spare = Vec::new();
        for _ in 0..keep {
            let mut buf = Vec::new();
            // Best effort: without it batches are allocated as they are needed.
            if buf.try_reserve_exact(BATCH_RECORDS).is_err() {
                break;
            }
            prefault(buf.spare_capacity_mut());
            spare.push(buf);
        }
        Arc::new(BatchPool {
            spare: Mutex::new(spare),
            keep,
        })
    }

    /// How many buffers wait to be reused.
    #[cfg(test)]
    fn spare(&self) -> usize {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// A batch holding a copy of `records`, in a pooled buffer unless it would fill less
    /// than an eighth of one (the remainder of a scan at a tick, a late record): those get
    /// a buffer of their size, so a trickle of small batches never pins a pool's worth of
    /// memory. More than [`BATCH_RECORDS`] records get a buffer of their size too.
    pub fn batch(self: &Arc<Self>, records: &[FlowRecord]) -> RecordBatch {
        let pooled = (BATCH_RECORDS / 8..=BATCH_RECORDS).contains(&records.len());
        let reused = if pooled {
            self.spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
        } else {
            None
        };
        let mut buf = reused.unwrap_or_else(|| {
            Vec::with_capacity(if pooled { BATCH_RECORDS } else { records.len() })
        });
        buf.extend_from_slice(records);
        RecordBatch(Arc::new(Pooled {
            records: buf,
            pool: Arc::clone(self),
        }))
    }

    fn give_back(&self, mut buf: Vec<FlowRecord>) {
        if buf.capacity() != BATCH_RECORDS {
            return;
        }
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < self.keep {
            spare.push(buf);
        }
    }
}

impl RecordBatch {
    pub fn records(&self) -> &[FlowRecord] {
        &self.0.records
    }

    pub fn len(&self) -> usize {
        self.0.records.len()
    }

    /// Records the batch's buffer has room for: what it holds in memory.
    pub fn capacity(&self) -> usize {
        self.0.records.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.0.records.is_empty()
    }
}

/// A flow record for tests, told apart by its `flow_id`.
#[cfg(test)]
pub(crate) fn test_record(flow_id: u64) -> FlowRecord {
    FlowRecord {
        tuple: dataplane::packet::Tuple::default(),
        vlan: 0,
        state: dataplane::flow::FlowState::Established,
        verdict: dataplane::packet::Verdict::Pass,
        sid: 0,
        epoch: 0,
        pkts: [0; 2],
        bytes: [0; 2],
        tcp_flags: [0; 2],
        ttl_min: [0; 2],
        ttl_max: [0; 2],
        first_seen: 0,
        last_seen: 0,
        observed_at: 0,
        worker: 0,
        flow_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_prefault(_: &[MaybeUninit<FlowRecord>]) {}

    #[test]
    fn a_batch_goes_back_to_the_pool_when_its_last_holder_drops_it() {
        let pool = BatchPool::new(2, no_prefault);
        assert_eq!(pool.spare(), 2);
        let mut records = vec![test_record(1); BATCH_RECORDS / 8];
        records[1] = test_record(2);
        let a = pool.batch(&records);
        let shared = a.clone();
        assert_eq!(pool.spare(), 1);
        drop(a);
        assert_eq!(pool.spare(), 1, "still held by the other holder");
        assert_eq!(
            shared
                .records()
                .iter()
                .take(3)
                .map(|r| r.flow_id)
                .collect::<Vec<_>>(),
            [1, 2, 1]
        );
        drop(shared);
        assert_eq!(pool.spare(), 2);
        let b = pool.batch(&vec![test_record(3); BATCH_RECORDS]);
        assert_eq!(pool.spare(), 1);
        assert_eq!(b.len(), BATCH_RECORDS, "a reused buffer starts empty");
        assert_eq!(b.records()[0].flow_id, 3);
    }

    #[test]
    fn a_small_batch_gets_a_buffer_of_its_size_and_leaves_the_pool_alone() {
        let pool = BatchPool::new(1, no_prefault);
        let small = pool.batch(&[test_record(1), test_record(2)]);
        assert_eq!((small.len(), small.capacity()), (2, 2));
        assert_eq!(pool.spare(), 1);
        drop(small);
        assert_eq!(pool.spare(), 1);
        let eighth = pool.batch(&vec![test_record(1); BATCH_RECORDS / 8]);
        assert_eq!(
            eighth.capacity(),
            BATCH_RECORDS,
            "from an eighth on, pooled"
        );
        assert_eq!(pool.spare(), 0);
    }

    #[test]
    fn the_pool_keeps_no_more_than_it_was_sized_for() {
        let pool = BatchPool::new(1, no_prefault);
        let batches: Vec<_> = (0..3)
            .map(|i| pool.batch(&vec![test_record(i); BATCH_RECORDS]))
            .collect();
        assert_eq!(pool.spare(), 0);
        drop(batches);
        assert_eq!(pool.spare(), 1);
        let big = pool.batch(&vec![test_record(9); BATCH_RECORDS + 1]);
        assert_eq!(big.len(), BATCH_RECORDS + 1);
        drop(big);
        assert_eq!(
            pool.spare(),
            1,
            "an oversized batch neither takes nor leaves a buffer"
        );
    }

    #[test]
    fn every_kept_buffer_is_prefaulted_at_start() {
        static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn count(spare: &[MaybeUninit<FlowRecord>]) {
            SEEN.fetch_add(spare.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let _pool = BatchPool::new(3, count);
        assert_eq!(
            SEEN.load(std::sync::atomic::Ordering::Relaxed),
            3 * BATCH_RECORDS
        );
    }
}
