//! Flow operations on the management side: the operation manager starts a capture or a
//! flush on every worker, aggregates the flows they stream back, settles the operation's
//! status (worker timeouts, result cap), keeps the history on disk for the retention period
//! and serves it, newest first and paginated.
//!
//! One operation runs at a time in this appliance's zone (AWS semantics). Each operation
//! gets a fresh `op` sequence number for the worker protocol, so replies that arrive after
//! their operation was settled (a late worker) are recognised and ignored (a late flushed
//! flow's record still reaches the flow log: the worker did remove it).
//!
//! Results leave the collector thread in shared batches ([`RecordBatch`]): to the history
//! writer, and for a flush also to the flow-log writer, since a flushed flow's result is its
//! end-of-flow record.

pub mod model;
mod store;
pub mod token;
pub mod validate;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::worker::cmd::{Command, FlowRecord, ScanKind, ScanRequest};
use dataplane::worker::Reply;

use crate::clock::Clock;
use crate::config::Config;
use crate::control::Control;
use crate::log_queue::LogQueue;
use crate::record_batch::{BatchPool, RecordBatch, BATCH_RECORDS};

pub use model::{
    FilterSpec, FlowResult, Naming, OpKind, OpStatus, Operation, OperationSummary, OpsError,
    StartRequest, WorkerProgress, WorkerScan,
};
pub(crate) use store::write_atomic;
use store::Store;
use token::{ListCursor, ResultsCursor};

/// How long `start` waits for room in a worker's command ring.
const SEND_WAIT: Duration = Duration::from_millis(200);
/// Completed operations whose results stay in memory (others are re-read from disk); one
/// fewer while an operation runs that had no spare buffer (it takes the oldest set's).
const CACHED_RESULT_SETS: usize = 2;
/// The result buffer reserved and faulted in at start holds this many records at most
/// (~140 MB); larger operations grow their buffer as results arrive.
const PREFAULTED_RESULTS_MAX: usize = 1 << 20;
/// A finished operation whose results fill less than 1/8 of a buffer at least this large
/// keeps a right-sized copy, and the buffer goes back to be the spare.
const RIGHT_SIZE_FROM: usize = 4096;
/// Upper bounds (seconds) of the operation-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 11] =
    [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// AWS `FlowOperationId`: `^([0-9a-f]{8})-([0-9a-f]{4}-){3}([0-9a-f]{12})$`.
pub fn is_operation_id(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One page of an operation's results, with the operation as it stands.
#[derive(Clone, Debug)]
pub struct ResultsPage {
    pub operation: Operation,
    pub flows: Vec<FlowResult>,
}

/// A cumulative histogram of operation durations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurationHistogram {
    /// `(upper bound in seconds, operations at most that long)`, for [`DURATION_BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl DurationHistogram {
    fn new() -> Self {
        DurationHistogram {
            buckets: DURATION_BUCKETS.iter().map(|b| (*b, 0)).collect(),
            count: 0,
            sum_seconds: 0.0,
        }
    }

    fn observe(&mut self, secs: f64) {
        for (bound, n) in &mut self.buckets {
            if secs <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += secs;
    }
}

/// What the operation manager exposes to Prometheus.
#[derive(Clone, Debug, PartialEq)]
pub struct OpsMetrics {
    pub started: Vec<(OpKind, u64)>,
    pub completed: Vec<(OpKind, OpStatus, u64)>,
    pub durations: Vec<(OpKind, DurationHistogram)>,
    pub flows_captured: u64,
    pub flows_flushed: u64,
    pub in_progress: u64,
    pub history_write_errors: u64,
}

struct Counters {
    started: [u64; 2],
    completed: [[u64; 4]; 2],
    durations: [DurationHistogram; 2],
    flows_captured: u64,
    flows_flushed: u64,
}

fn kind_index(k: OpKind) -> usize {
    match k {
        OpKind::Capture => 0,
        OpKind::Flush => 1,
    }
}

fn status_index(s: OpStatus) -> usize {
    match s {
        OpStatus::InProgress => 0,
        OpStatus::Completed => 1,
        OpStatus::CompletedWithErrors => 2,
        OpStatus::Failed => 3,
    }
}

struct Entry {
    op: Operation,
    /// `None`: on disk only (read back on demand).
    results: Option<Arc<ResultSet>>,
}

/// An operation's results in memory: the workers' records as they arrived for an
/// operation settled in this run (nothing is converted per flow on the collector; a page
/// is converted when served), or the results read back from disk.
enum ResultSet {
    Records(Vec<FlowRecord>),
    Stored(Vec<FlowResult>),
}

impl ResultSet {
    fn len(&self) -> usize {
        match self {
            ResultSet::Records(r) => r.len(),
            ResultSet::Stored(r) => r.len(),
        }
    }

    /// Results `[start, end)` (clamped).
    fn page(&self, start: usize, end: usize, clock: &Clock) -> Vec<FlowResult> {
        let end = end.min(self.len());
        let start = start.min(end);
        match self {
            ResultSet::Records(r) => r[start..end]
                .iter()
                .map(|r| FlowResult::from_record(r, clock))
                .collect(),
            ResultSet::Stored(r) => r[start..end].to_vec(),
        }
    }
}

/// The operation in progress.
struct Running {
    id: String,
    seq: u64,
    kind: OpKind,
    started: Instant,
    deadline: Instant,
    /// The workers' records, kept as they came (up to the result cap).
    results: Vec<FlowRecord>,
    /// `results[..persisted]` were handed to the history writer (and for a flush to the
    /// flow log).
    persisted: usize,
    /// Flows reported, including those beyond the result cap.
    matched: u64,
    cap_hit: bool,
    cancel_requested: bool,
}

struct State {
    history: HashMap<String, Entry>,
    running: Option<Running>,
    /// Operations whose results are cached in memory, most recently used last.
    cached: VecDeque<String>,
    /// A result buffer to fill next: reserved and faulted in at start for the largest
    /// scan the table allows, and afterwards the buffer of a result set dropped from the
    /// cache. Faulting in ~140 MB of fresh pages while a million results stream in was
    /// most of the collector's time, and the collector paces every scan.
    spare_results: Vec<FlowRecord>,
    /// Flushed flows' records that are no operation's listed results (beyond the result
    /// cap, or arriving after their operation was settled): bound for the flow log only.
    unlisted_flushed: Vec<FlowRecord>,
    counters: Counters,
}

/// Starts, tracks, persists and serves flow operations. `Send + Sync`; API threads and the
/// collector thread share it.
pub struct OpsManager {
    control: Arc<Control>,
    clock: Clock,
    zone: String,
    retention_us: u64,
    result_cap: usize,
    worker_timeout: Duration,
    store: Store,
    next_seq: AtomicU64,
    state: Mutex<State>,
    /// Buffers of the batches results leave in.
    batches: Arc<BatchPool>,
    /// Where flushed flows' records go (the app's flow-log queue).
    flow_log: OnceLock<Arc<LogQueue>>,
}

/// Keeps `buf` (emptied) as the next operation's result buffer if it is larger than the
/// spare already kept.
fn offer_spare<T>(spare: &mut Vec<T>, mut buf: Vec<T>) {
    if spare.capacity() < buf.capacity() {
        buf.clear();
        *spare = buf;
    }
}

/// What a finished operation's result set keeps: a few results in a large buffer (the one
/// reserved at start) are copied to their size and the buffer is offered back as the
/// spare, so a small capture never pins the reservation in the cache.
fn right_size<T: Clone>(spare: &mut Vec<T>, results: Vec<T>) -> Vec<T> {
    if results.capacity() < RIGHT_SIZE_FROM || results.len() >= results.capacity() / 8 {
        return results;
    }
    let kept = results.to_vec();
    offer_spare(spare, results);
    kept
}

impl OpsManager {
    /// Loads history from `<state_dir>/operations/`, marks operations that were IN_PROGRESS
    /// when the appliance died as FAILED (no results) or COMPLETED_WITH_ERRORS (partial
    /// results kept), and purges those past retention.
    pub fn new(
        cfg: &Config,
        control: Arc<Control>,
        clock: Clock,
    ) -> Result<Arc<OpsManager>, String> {
        let dir = cfg.appliance.state_dir.join("operations");
        let store = Store::open(dir.clone())
            .map_err(|e| format!("operation history {}: {e}", dir.display()))?;
        let loaded = store
            .load()
            .map_err(|e| format!("operation history {}: {e}", dir.display()))?;
        for s in &loaded.skipped {
            eprintln!("flowgate: operation history: skipping unreadable record {s}");
        }
        let retention_us = cfg
            .operations
            .history_retention_seconds
            .saturating_mul(1_000_000);
        let now = now_us();
        let mut history = HashMap::new();
        for mut op in loaded.operations {
            if op.requested_at_us.saturating_add(retention_us) <= now {
                store.remove(&op.id);
                continue;
            }
            if op.status == OpStatus::InProgress {
                let partial = store
                    .read_results(&op.id, true)
                    .map_err(|e| format!("operation history {}: {e}", dir.display()))?;
                mark_interrupted(&mut op, partial.len() as u64, now);
                store.seal(&op.id);
                store.save(&op);
            }
            history.insert(op.id.clone(), Entry { op, results: None });
        }
        let mut spare_results = Vec::new();
        let reserve = cfg
            .operations
            .result_cap
            .min(cfg.table_flows())
            .min(PREFAULTED_RESULTS_MAX);
        // Best effort: without it results fault their pages in as they arrive.
        if spare_results.try_reserve_exact(reserve).is_ok() {
            crate::background::prefault_results(spare_results.spare_capacity_mut());
        }
        // Batches for every record such a scan streams, whether the writers keep up or not.
        let batches = BatchPool::new(
            reserve.div_ceil(BATCH_RECORDS),
            crate::background::prefault_results,
        );
        Ok(Arc::new(OpsManager {
            control,
            clock,
            zone: cfg.appliance.zone.clone(),
            retention_us,
            result_cap: cfg.operations.result_cap.max(1),
            worker_timeout: Duration::from_millis(cfg.operations.worker_timeout_ms),
            store,
            next_seq: AtomicU64::new(1),
            state: Mutex::new(State {
                history,
                running: None,
                cached: VecDeque::new(),
                spare_results,
                unlisted_flushed: Vec::new(),
                counters: Counters {
                    started: [0; 2],
                    completed: [[0; 4]; 2],
                    durations: [DurationHistogram::new(), DurationHistogram::new()],
                    flows_captured: 0,
                    flows_flushed: 0,
                },
            }),
            batches,
            flow_log: OnceLock::new(),
        }))
    }

    /// Sends flushed flows' records to `queue` from now on (the app's flow-log queue; set
    /// once, before any operation starts). Without one (tests, fuzzing) a flush's records
    /// are only its results.
    pub fn log_flushed_to(&self, queue: Arc<LogQueue>) {
        let _ = self.flow_log.set(queue);
    }

    fn log_flushed(&self, batch: RecordBatch) {
        if let Some(q) = self.flow_log.get() {
            q.push_flushed(batch);
        }
    }

    /// Hands the results not yet handed on to the history writer and, for a flush, to the
    /// flow log.
    fn hand_off(&self, run: &mut Running) {
        if run.results.len() == run.persisted {
            return;
        }
        let batch = self.batches.batch(&run.results[run.persisted..]);
        run.persisted = run.results.len();
        if run.kind == OpKind::Flush {
            self.log_flushed(batch.clone());
        }
        self.store.append_records(&run.id, batch, self.clock);
    }

    /// Hands the unlisted flushed records to the flow log.
    fn hand_off_unlisted(&self, unlisted: &mut Vec<FlowRecord>) {
        if !unlisted.is_empty() {
            self.log_flushed(self.batches.batch(unlisted));
            unlisted.clear();
        }
    }

    fn log_unlisted(&self, unlisted: &mut Vec<FlowRecord>, record: FlowRecord) {
        unlisted.push(record);
        if unlisted.len() >= BATCH_RECORDS {
            self.hand_off_unlisted(unlisted);
        }
    }

    /// Shutdown, after the collector's last drain: hands on what is still held, so every
    /// flushed flow's record reaches the flow log even if its operation never settled.
    pub fn hand_off_pending(&self) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(run) = st.running.as_mut() {
            self.hand_off(run);
        }
        self.hand_off_unlisted(&mut st.unlisted_flushed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The zone this manager serializes operations in.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Validates `req`, refuses it while another operation is in progress, and broadcasts
    /// the scan to every worker. Returns at once; the status is normally IN_PROGRESS.
    pub fn start(&self, req: StartRequest, caller: &str) -> Result<OperationSummary, OpsError> {
        let filter = validate::compile(&req, self.clock.ticks_per_sec)?;
        let kind = req.kind;
        let workers = self.control.workers();
        // Room for every flow the table holds now (capped): the collector then appends
        // a large scan's results without reallocating and copying them as they stream in.
        let expected = self
            .control
            .views()
            .iter()
            .map(|v| usize::try_from(v.counters.flows_active).unwrap_or(usize::MAX))
            .fold(0usize, usize::saturating_add)
            .min(self.result_cap);
        let (id, seq) = {
            let mut st = self.lock();
            if let Some(r) = &st.running {
                return Err(OpsError::Throttled(format!(
                    "flow operation {} is in progress in zone {}: one operation runs at a time per zone",
                    r.id, self.zone
                )));
            }
            let id = loop {
                let id = uuid::Uuid::new_v4().to_string();
                if !st.history.contains_key(&id) {
                    break id;
                }
            };
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            if st.spare_results.capacity() == 0 && st.cached.len() >= CACHED_RESULT_SETS {
                // This operation pushes the oldest set out of memory when it settles;
                // pushing it out now lends it that set's buffer, pages already faulted in.
                Self::evict_oldest(&mut st);
            }
            let mut results = std::mem::take(&mut st.spare_results);
            // Best effort too: a huge reservation refused leaves the vector to grow.
            let _ = results.try_reserve(expected);
            let op = Operation {
                id: id.clone(),
                kind,
                status: OpStatus::InProgress,
                message: None,
                detail: None,
                zone: self.zone.clone(),
                caller: caller.to_string(),
                requested_at_us: now_us(),
                completed_at_us: None,
                request: StartRequest {
                    naming: Naming::Aws,
                    ..req
                },
                workers: (0..workers)
                    .map(|w| WorkerProgress {
                        worker: w as u16,
                        scan: WorkerScan::Running,
                        scanned: 0,
                        matched: 0,
                    })
                    .collect(),
                flows_matched: 0,
                results_kept: 0,
            };
            self.store.save(&op);
            st.counters.started[kind_index(kind)] += 1;
            let started = Instant::now();
            st.running = Some(Running {
                id: id.clone(),
                seq,
                kind,
                started,
                deadline: started + self.worker_timeout,
                results,
                persisted: 0,
                matched: 0,
                cap_hit: false,
                cancel_requested: false,
            });
            st.history.insert(id.clone(), Entry { op, results: None });
            (id, seq)
        };
        // The record is on disk before the caller hears of the operation: an acknowledged
        // operation survives a crash (it is settled as FAILED at the next start), never lost.
        self.store.barrier();
        // Sent without holding the state lock: the collector must keep draining replies
        // while a full command ring makes us wait.
        let scan_kind = match kind {
            OpKind::Capture => ScanKind::Capture,
            OpKind::Flush => ScanKind::Flush,
        };
        let unreachable: Vec<usize> = (0..workers)
            .filter(|w| {
                let cmd = Command::StartScan(Box::new(ScanRequest {
                    op: seq,
                    kind: scan_kind,
                    filter: filter.clone(),
                }));
                self.control.send(*w, cmd, SEND_WAIT).is_err()
            })
            .collect();
        let mut st = self.lock();
        if st.running.as_ref().is_some_and(|r| r.seq == seq) {
            if let Some(e) = st.history.get_mut(&id) {
                for w in &unreachable {
                    if let Some(p) = e.op.workers.get_mut(*w) {
                        p.scan = WorkerScan::Unreachable;
                    }
                }
            }
            self.finish_if_done(&mut st);
        }
        st.history
            .get(&id)
            .map(|e| e.op.summary())
            .ok_or_else(|| OpsError::Internal(format!("flow operation {id} vanished")))
    }

    /// Aggregates one worker reply (the app's collector forwards `ScanFlow`/`ScanDone`).
    pub fn on_reply(&self, worker: usize, reply: Reply) {
        self.on_replies(worker, &mut std::iter::once(reply));
    }

    /// Aggregates a batch of one worker's replies, in order, under one lock: a scan of a
    /// million flows is a million replies.
    pub fn on_replies(&self, worker: usize, replies: &mut dyn Iterator<Item = Reply>) {
        let cancels = {
            let mut st = self.lock();
            let now = Instant::now();
            let mut cancels = Vec::new();
            for reply in replies {
                match reply {
                    Reply::ScanFlow {
                        op,
                        record,
                        flushed,
                    } => {
                        cancels.extend(self.on_flow(&mut st, op, record, flushed, now));
                    }
                    Reply::ScanDone {
                        op,
                        scanned,
                        matched,
                        cancelled,
                    } => self.on_done(&mut st, worker, op, scanned, matched, cancelled),
                    _ => {}
                }
            }
            cancels
        };
        self.send_cancels(cancels);
    }

    fn on_flow(
        &self,
        st: &mut State,
        op: u64,
        flow: FlowRecord,
        flushed: bool,
        now: Instant,
    ) -> Vec<(usize, u64)> {
        let State {
            running,
            history,
            counters,
            unlisted_flushed,
            ..
        } = st;
        let Some(run) = running.as_mut().filter(|r| r.seq == op) else {
            if flushed {
                self.log_unlisted(unlisted_flushed, flow);
            }
            return Vec::new();
        };
        run.matched += 1;
        // A worker streaming results is answering: the timeout is for silence, so a scan
        // of a large table (or one paced by the flow-log writer) is not cut short.
        run.deadline = now + self.worker_timeout;
        match run.kind {
            OpKind::Capture => counters.flows_captured += 1,
            OpKind::Flush => counters.flows_flushed += 1,
        }
        let mut cancels = Vec::new();
        if run.results.len() < self.result_cap {
            run.results.push(flow);
            if run.results.len() - run.persisted >= BATCH_RECORDS {
                self.hand_off(run);
            }
            return cancels;
        }
        if flushed {
            self.log_unlisted(unlisted_flushed, flow);
        }
        if !run.cap_hit {
            run.cap_hit = true;
            // A capture beyond the cap is wasted work; a flush goes on removing flows (its
            // records beyond the cap are only counted).
            if run.kind == OpKind::Capture {
                run.cancel_requested = true;
                if let Some(e) = history.get(&run.id) {
                    cancels =
                        e.op.workers
                            .iter()
                            .filter(|w| w.scan == WorkerScan::Running)
                            .map(|w| (w.worker as usize, run.seq))
                            .collect();
                }
            }
        }
        cancels
    }

    fn on_done(
        &self,
        st: &mut State,
        worker: usize,
        op: u64,
        scanned: u64,
        matched: u64,
        cancelled: bool,
    ) {
        let Some(run) = st.running.as_ref().filter(|r| r.seq == op) else {
            return;
        };
        let cancel_requested = run.cancel_requested;
        let Some(p) = st
            .history
            .get_mut(&run.id)
            .and_then(|e| e.op.workers.get_mut(worker))
        else {
            return;
        };
        if p.scan != WorkerScan::Running {
            return;
        }
        p.scanned = scanned;
        p.matched = matched;
        p.scan = match (cancelled, cancel_requested) {
            (false, _) => WorkerScan::Done,
            (true, true) => WorkerScan::Cancelled,
            (true, false) => WorkerScan::Aborted,
        };
        self.finish_if_done(st);
    }

    fn finish_if_done(&self, st: &mut State) {
        let done = st.running.as_ref().is_some_and(|r| {
            st.history
                .get(&r.id)
                .is_none_or(|e| e.op.workers.iter().all(|w| w.scan.is_finished()))
        });
        if done {
            self.finish(st);
        }
    }

    /// Settles the running operation: status, message, persistence, metrics.
    fn finish(&self, st: &mut State) {
        let Some(mut run) = st.running.take() else {
            return;
        };
        // Handed on first: the flow log gets a flush's records whatever becomes of the
        // operation's record, and the results are appended before it is sealed below.
        self.hand_off(&mut run);
        self.hand_off_unlisted(&mut st.unlisted_flushed);
        let Some(entry) = st.history.get_mut(&run.id) else {
            return;
        };
        let op = &mut entry.op;
        let workers_named = |scan: WorkerScan| -> Vec<String> {
            op.workers
                .iter()
                .filter(|w| w.scan == scan)
                .map(|w| w.worker.to_string())
                .collect()
        };
        let timed_out = workers_named(WorkerScan::TimedOut);
        let unreachable = workers_named(WorkerScan::Unreachable);
        let aborted = workers_named(WorkerScan::Aborted);
        let mut problems: Vec<(String, String)> = Vec::new();
        if !timed_out.is_empty() {
            problems.push((
                "Flow timeout".into(),
                format!(
                    "worker {} did not finish within {} ms; flows on it are missing from the results",
                    timed_out.join(", "),
                    self.worker_timeout.as_millis()
                ),
            ));
        }
        if !unreachable.is_empty() {
            problems.push((
                "Flow operation error".into(),
                format!(
                    "worker {} could not be reached (command ring full); flows on it are missing",
                    unreachable.join(", ")
                ),
            ));
        }
        if !aborted.is_empty() {
            problems.push((
                "Flow operation error".into(),
                format!(
                    "worker {} stopped its scan early (shutdown)",
                    aborted.join(", ")
                ),
            ));
        }
        if run.cap_hit {
            let how = match run.kind {
                OpKind::Capture => "the capture was stopped early",
                OpKind::Flush => "every matched flow was flushed, only the first ones are listed",
            };
            problems.push((
                format!("Result cap of {} flows reached", self.result_cap),
                format!(
                    "result cap of {} flows reached: {} flows matched, {} kept; {how}",
                    self.result_cap,
                    run.matched,
                    run.results.len()
                ),
            ));
        }
        let nobody = !op.workers.is_empty() && unreachable.len() == op.workers.len();
        let (status, message, detail) = if nobody {
            (
                OpStatus::Failed,
                Some("Flow operation error".to_string()),
                Some("no worker accepted the scan command (command rings full)".to_string()),
            )
        } else if let Some((first, _)) = problems.first() {
            let detail = problems
                .iter()
                .map(|(_, d)| d.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            (
                OpStatus::CompletedWithErrors,
                Some(first.clone()),
                Some(detail),
            )
        } else {
            (OpStatus::Completed, None, None)
        };
        op.status = status;
        op.message = message;
        op.detail = detail;
        op.completed_at_us = Some(now_us());
        op.flows_matched = run.matched;
        op.results_kept = run.results.len() as u64;
        // Results are fsynced before the record says the operation is over.
        self.store.seal(&run.id);
        self.store.save(op);
        let results = right_size(&mut st.spare_results, run.results);
        entry.results = Some(Arc::new(ResultSet::Records(results)));
        let k = kind_index(run.kind);
        st.counters.completed[k][status_index(status)] += 1;
        st.counters.durations[k].observe(run.started.elapsed().as_secs_f64());
        Self::touch_cache(st, &run.id);
    }

    /// Marks `id`'s results as recently used and drops the oldest cached sets.
    fn touch_cache(st: &mut State, id: &str) {
        st.cached.retain(|c| c != id);
        st.cached.push_back(id.to_string());
        while st.cached.len() > CACHED_RESULT_SETS {
            Self::evict_oldest(st);
        }
    }

    /// Drops the oldest cached result set from memory (it stays on disk).
    fn evict_oldest(st: &mut State) {
        if let Some(old) = st.cached.pop_front() {
            let dropped = st.history.get_mut(&old).and_then(|e| e.results.take());
            // Unless a reader still holds it, its buffer is the next operation's.
            if let Some(Ok(ResultSet::Records(buf))) = dropped.map(Arc::try_unwrap) {
                offer_spare(&mut st.spare_results, buf);
            }
        }
    }

    fn send_cancels(&self, cancels: Vec<(usize, u64)>) {
        for (w, op) in cancels {
            // Best effort: a worker that cannot take the cancel finishes or times out anyway.
            let _ = self
                .control
                .send(w, Command::CancelScan { op }, Duration::from_millis(10));
        }
    }

    /// Housekeeping, about every 100 ms: worker timeouts, persisting streamed results,
    /// retention purge.
    pub fn tick(&self) {
        let cancels = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let mut cancels = Vec::new();
            let timed_out = st
                .running
                .as_ref()
                .is_some_and(|r| Instant::now() >= r.deadline);
            if timed_out {
                if let Some(run) = st.running.as_mut() {
                    run.cancel_requested = true;
                    let seq = run.seq;
                    if let Some(e) = st.history.get_mut(&run.id) {
                        for w in
                            e.op.workers
                                .iter_mut()
                                .filter(|w| w.scan == WorkerScan::Running)
                        {
                            w.scan = WorkerScan::TimedOut;
                            cancels.push((w.worker as usize, seq));
                        }
                    }
                }
                self.finish(st);
            } else if let Some(run) = st.running.as_mut() {
                self.hand_off(run);
            }
            self.hand_off_unlisted(&mut st.unlisted_flushed);
            self.purge(st);
            cancels
        };
        self.send_cancels(cancels);
    }

    fn purge(&self, st: &mut State) {
        let now = now_us();
        let expired: Vec<String> = st
            .history
            .values()
            .filter(|e| {
                e.op.status != OpStatus::InProgress
                    && e.op.requested_at_us.saturating_add(self.retention_us) <= now
            })
            .map(|e| e.op.id.clone())
            .collect();
        for id in expired {
            st.history.remove(&id);
            st.cached.retain(|c| *c != id);
            self.store.remove(&id);
        }
    }

    fn check_id(id: &str) -> Result<(), OpsError> {
        if is_operation_id(id) {
            Ok(())
        } else {
            Err(OpsError::InvalidRequest(format!(
                "FlowOperationId: '{id}' is not a valid flow operation id (a 36-character lowercase UUID)"
            )))
        }
    }

    fn not_found(id: &str) -> OpsError {
        OpsError::NotFound(format!(
            "flow operation {id} not found (unknown, or purged after the retention period)"
        ))
    }

    /// The operation as it stands (live counts while in progress).
    pub fn describe(&self, id: &str) -> Result<Operation, OpsError> {
        Self::check_id(id)?;
        let st = self.lock();
        let e = st.history.get(id).ok_or_else(|| Self::not_found(id))?;
        let mut op = e.op.clone();
        if let Some(run) = st.running.as_ref().filter(|r| r.id == id) {
            op.flows_matched = run.matched;
            op.results_kept = run.results.len() as u64;
        }
        Ok(op)
    }

    /// Operations newest first, optionally of one kind, `max` per page (≥ 1).
    pub fn list(
        &self,
        kind: Option<OpKind>,
        max: usize,
        token: Option<&str>,
    ) -> Result<(Vec<OperationSummary>, Option<String>), OpsError> {
        if max == 0 {
            return Err(OpsError::InvalidRequest(
                "MaxResults: must be at least 1".into(),
            ));
        }
        let cursor = token
            .map(|t| {
                ListCursor::decode(t)
                    .filter(|c| c.kind == kind)
                    .ok_or_else(|| bad_token("ListFlowOperations with the same filter"))
            })
            .transpose()?;
        let st = self.lock();
        let mut all: Vec<OperationSummary> = st
            .history
            .values()
            .filter(|e| kind.is_none_or(|k| e.op.kind == k))
            .map(|e| e.op.summary())
            .filter(|s| {
                cursor.as_ref().is_none_or(|c| {
                    (s.requested_at_us, s.id.as_str()) < (c.requested_at_us, c.id.as_str())
                })
            })
            .collect();
        drop(st);
        all.sort_by(|a, b| (b.requested_at_us, &b.id).cmp(&(a.requested_at_us, &a.id)));
        let more = all.len() > max;
        all.truncate(max);
        let next = more.then(|| all.last()).flatten().map(|last| {
            ListCursor {
                kind,
                requested_at_us: last.requested_at_us,
                id: last.id.clone(),
            }
            .encode()
        });
        Ok((all, next))
    }

    /// One page of `id`'s results. While the operation is in progress the page is empty
    /// (results are complete only once it is settled, as the service does).
    pub fn results(
        &self,
        id: &str,
        max: usize,
        token: Option<&str>,
    ) -> Result<(ResultsPage, Option<String>), OpsError> {
        Self::check_id(id)?;
        if max == 0 {
            return Err(OpsError::InvalidRequest(
                "MaxResults: must be at least 1".into(),
            ));
        }
        let offset = match token {
            None => 0,
            Some(t) => {
                ResultsCursor::decode(t)
                    .filter(|c| c.id == id)
                    .ok_or_else(|| bad_token("ListFlowOperationResults of the same operation"))?
                    .offset
            }
        };
        let (op, cached) = {
            let mut st = self.lock();
            let e = st.history.get(id).ok_or_else(|| Self::not_found(id))?;
            let op = e.op.clone();
            let cached = e.results.clone();
            if cached.is_some() {
                Self::touch_cache(&mut st, id);
            }
            (op, cached)
        };
        if op.status == OpStatus::InProgress {
            return Ok((
                ResultsPage {
                    operation: op,
                    flows: Vec::new(),
                },
                None,
            ));
        }
        if offset > op.results_kept {
            return Err(bad_token("ListFlowOperationResults of the same operation"));
        }
        let results = match cached {
            Some(r) => r,
            None if op.results_kept == 0 => Arc::new(ResultSet::Stored(Vec::new())),
            None => {
                // Everything submitted before is on disk after the barrier.
                self.store.barrier();
                let rs = self
                    .store
                    .read_results(id, false)
                    .map_err(|e| OpsError::Internal(format!("reading the results of {id}: {e}")))?;
                // Fewer readable records than the operation kept: the file is missing,
                // truncated or scribbled over. An empty or short answer would be a lie.
                if (rs.len() as u64) < op.results_kept {
                    return Err(OpsError::Internal(format!(
                        "the results of {id} are unreadable: {} of {} records intact",
                        rs.len(),
                        op.results_kept
                    )));
                }
                let rs = Arc::new(ResultSet::Stored(rs));
                let mut st = self.lock();
                if let Some(e) = st.history.get_mut(id) {
                    e.results = Some(Arc::clone(&rs));
                    Self::touch_cache(&mut st, id);
                }
                rs
            }
        };
        let start = (offset as usize).min(results.len());
        let end = start.saturating_add(max).min(results.len());
        let next = (end < results.len()).then(|| {
            ResultsCursor {
                id: id.to_string(),
                offset: end as u64,
            }
            .encode()
        });
        Ok((
            ResultsPage {
                operation: op,
                flows: results.page(start, end, &self.clock),
            },
            next,
        ))
    }

    pub fn metrics(&self) -> OpsMetrics {
        let st = self.lock();
        let c = &st.counters;
        OpsMetrics {
            started: OpKind::ALL
                .iter()
                .map(|k| (*k, c.started[kind_index(*k)]))
                .collect(),
            completed: OpKind::ALL
                .iter()
                .flat_map(|k| {
                    OpStatus::ALL[1..]
                        .iter()
                        .map(move |s| (*k, *s, c.completed[kind_index(*k)][status_index(*s)]))
                })
                .collect(),
            durations: OpKind::ALL
                .iter()
                .map(|k| (*k, c.durations[kind_index(*k)].clone()))
                .collect(),
            flows_captured: c.flows_captured,
            flows_flushed: c.flows_flushed,
            in_progress: u64::from(st.running.is_some()),
            history_write_errors: self.store.errors(),
        }
    }

    /// Waits until everything recorded so far is on disk (tests, orderly shutdown).
    pub fn sync_history(&self) {
        self.store.barrier();
    }
}

fn bad_token(for_what: &str) -> OpsError {
    OpsError::InvalidRequest(format!(
        "NextToken: invalid pagination token (use the NextToken returned by the previous {for_what})"
    ))
}

/// Settles an operation found IN_PROGRESS at start: the appliance died while it ran.
fn mark_interrupted(op: &mut Operation, partial: u64, now: u64) {
    for w in &mut op.workers {
        if w.scan == WorkerScan::Running {
            w.scan = WorkerScan::Aborted;
        }
    }
    op.results_kept = partial;
    op.flows_matched = op.flows_matched.max(partial);
    op.completed_at_us = Some(now);
    op.message = Some("Flow operation error".into());
    if partial == 0 {
        op.status = OpStatus::Failed;
        op.detail = Some(
            "the appliance stopped while the operation was in progress; no results were kept"
                .into(),
        );
    } else {
        op.status = OpStatus::CompletedWithErrors;
        op.detail = Some(format!(
            "the appliance stopped while the operation was in progress; {partial} partial results were kept"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_result_set_gives_its_large_buffer_back() {
        let mut spare: Vec<u64> = Vec::new();
        let mut big = Vec::with_capacity(100_000);
        big.extend(0..10u64);
        let kept = right_size(&mut spare, big);
        assert_eq!(kept, (0..10).collect::<Vec<_>>());
        assert!(kept.capacity() < 100, "{}", kept.capacity());
        let s = &spare;
        assert!(s.is_empty() && s.capacity() >= 100_000);
        // A buffer mostly used is kept as it is; the spare stays.
        let mut full = Vec::with_capacity(50_000);
        full.extend(0..40_000u64);
        let ptr = full.as_ptr();
        let kept = right_size(&mut spare, full);
        assert_eq!((kept.as_ptr(), kept.len()), (ptr, 40_000));
        assert!(spare.capacity() >= 100_000);
        // Only a larger buffer replaces the spare, and it is emptied.
        offer_spare(&mut spare, vec![7u64; 10]);
        assert!(spare.capacity() >= 100_000);
        offer_spare(&mut spare, vec![7u64; 200_000]);
        let s = spare;
        assert!(s.is_empty() && s.capacity() >= 200_000);
    }

    #[test]
    fn operation_id_pattern() {
        assert!(is_operation_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(is_operation_id(&uuid::Uuid::new_v4().to_string()));
        for bad in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5bxd9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "",
        ] {
            assert!(!is_operation_id(bad), "{bad}");
        }
    }

    #[test]
    fn histogram_is_cumulative() {
        let mut h = DurationHistogram::new();
        h.observe(0.2);
        h.observe(3.0);
        assert_eq!(h.count, 2);
        let at = |b: f64| h.buckets.iter().find(|(x, _)| *x == b).unwrap().1;
        assert_eq!(at(0.1), 0);
        assert_eq!(at(0.25), 1);
        assert_eq!(at(5.0), 2);
        assert!((h.sum_seconds - 3.2).abs() < 1e-9);
    }

    #[test]
    fn interrupted_operations_are_settled() {
        let mut op = Operation {
            id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            kind: OpKind::Flush,
            status: OpStatus::InProgress,
            message: None,
            detail: None,
            zone: "z".into(),
            caller: "k".into(),
            requested_at_us: 1,
            completed_at_us: None,
            request: StartRequest::new(OpKind::Flush, vec![], 0),
            workers: vec![WorkerProgress {
                worker: 0,
                scan: WorkerScan::Running,
                scanned: 0,
                matched: 0,
            }],
            flows_matched: 0,
            results_kept: 0,
        };
        let mut failed = op.clone();
        mark_interrupted(&mut failed, 0, 9);
        assert_eq!(failed.status, OpStatus::Failed);
        assert_eq!(failed.workers[0].scan, WorkerScan::Aborted);
        mark_interrupted(&mut op, 4, 9);
        assert_eq!(op.status, OpStatus::CompletedWithErrors);
        assert_eq!(op.results_kept, 4);
        assert_eq!(op.message.as_deref(), Some("Flow operation error"));
    }
}
