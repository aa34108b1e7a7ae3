//! Operation lifecycle against played workers: broadcast, aggregation, one operation per
//! zone, worker timeout, result cap, paging, retention purge, history across restarts,
//! interrupted operations, unknown ids.

mod ops_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use dataplane::flow::FlowState;
use dataplane::worker::cmd::{Command, ScanKind};
use dataplane::worker::{Event, Reply};
use mgmt::control::Sink;
use mgmt::ops::{FilterSpec, OpKind, OpStatus, OpsError, OpsManager, StartRequest, WorkerScan};
use ops_support::*;

fn src_filter(cidr: &str) -> FilterSpec {
    FilterSpec {
        source: Some(cidr.into()),
        ..FilterSpec::default()
    }
}

fn capture() -> StartRequest {
    StartRequest::new(OpKind::Capture, vec![src_filter("198.18.0.0/15")], 0)
}

fn flush() -> StartRequest {
    StartRequest::new(OpKind::Flush, vec![src_filter("198.18.0.0/15")], 0)
}

/// Starts `req`, answers it with `flows` results from worker 0 and completes every worker.
fn run_to_completion(h: &Harness, req: StartRequest, flows: u16) -> String {
    let s = h.ops.start(req, "AKID").unwrap();
    let seqs: Vec<u64> = (0..h.rings.len()).map(|w| h.take_scan(w).op).collect();
    for i in 0..flows {
        h.flow(0, seqs[0], nth(i, 0));
    }
    for (w, seq) in seqs.iter().enumerate() {
        h.done(w, *seq, 100, if w == 0 { u64::from(flows) } else { 0 });
    }
    assert_eq!(h.ops.describe(&s.id).unwrap().status, OpStatus::Completed);
    s.id
}

#[test]
fn capture_is_broadcast_and_results_aggregate_until_every_worker_is_done() {
    let h = Harness::new("agg", 2, "");
    let mut req = capture();
    req.filters[0].destination_port = Some("80".into());
    req.min_age_seconds = 20;
    let s = h.ops.start(req, "AKID").unwrap();
    assert_eq!(s.status, OpStatus::InProgress);
    assert_eq!(s.id.len(), 36);
    assert!(mgmt::ops::is_operation_id(&s.id));

    let scans = [h.take_scan(0), h.take_scan(1)];
    assert_eq!(
        scans[0].op, scans[1].op,
        "one sequence number per operation"
    );
    assert_eq!(scans[0].kind, ScanKind::Capture);
    let m = &scans[0].filter;
    assert_eq!(m.min_age_ticks, 20 * TPS);
    assert_eq!(m.filters[0].src.unwrap().to_string(), "198.18.0.0/15");
    assert_eq!(m.filters[0].dst_port.lo, 80);
    let op = scans[0].op;

    h.flow(0, op, record("198.18.0.1", 40000, "198.18.1.1", 80, 42, 0));
    h.flow(0, op, record("198.18.0.2", 40001, "198.18.1.1", 80, 50, 0));
    h.done(0, op, 1000, 2);
    // Worker 1 still scanning: in progress, results withheld, live count visible.
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(d.status, OpStatus::InProgress);
    assert_eq!(d.flows_matched, 2);
    assert_eq!(d.workers[0].scan, WorkerScan::Done);
    assert_eq!(d.workers[1].scan, WorkerScan::Running);
    assert!(h.ops.results(&s.id, 100, None).unwrap().0.flows.is_empty());

    h.flow(1, op, record("2001:2::1", 5000, "2001:2::2", 443, 7, 1));
    h.done(1, op, 900, 1);
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(d.status, OpStatus::Completed);
    assert_eq!(d.message, None);
    assert_eq!(d.flows_matched, 3);
    assert_eq!(d.results_kept, 3);
    assert_eq!(d.workers[1].scanned, 900);
    assert!(d.completed_at_us.unwrap() >= d.requested_at_us);

    let (page, next) = h.ops.results(&s.id, 100, None).unwrap();
    assert!(next.is_none());
    let f = &page.flows;
    assert_eq!(f.len(), 3);
    assert_eq!(f[0].src_ip().to_string(), "198.18.0.1");
    assert_eq!(
        (f[0].src_port, f[0].dst_port, f[0].protocol),
        (40000, 80, 6)
    );
    assert_eq!(f[0].age_secs, 42);
    assert_eq!(f[0].packet_count(), 15);
    assert_eq!(f[0].byte_count(), 2200);
    assert_eq!(f[0].state, FlowState::Established);
    assert_eq!((f[0].sid, f[0].epoch), (7, 2));
    assert_eq!(f[2].dst_ip().to_string(), "2001:2::2");
    assert_eq!(f[2].worker, 1);

    // Replies for a settled operation are ignored.
    h.flow(1, op, nth(99, 1));
    assert_eq!(h.ops.describe(&s.id).unwrap().flows_matched, 3);
}

#[test]
fn a_second_operation_in_the_zone_is_throttled_until_the_first_settles() {
    let h = Harness::new("throttle", 1, "");
    let first = h.ops.start(capture(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    match h.ops.start(flush(), "AKID") {
        Err(OpsError::Throttled(m)) => {
            assert!(m.contains(&first.id) && m.contains(ZONE), "{m}")
        }
        other => panic!("expected throttling, got {other:?}"),
    }
    assert!(
        h.rings[0].commands.is_empty(),
        "a refused operation sends nothing"
    );
    // Validation comes first: an invalid request is invalid even while busy.
    let bad = StartRequest::new(OpKind::Flush, vec![], 0);
    assert!(matches!(
        h.ops.start(bad, "AKID"),
        Err(OpsError::InvalidRequest(_))
    ));

    h.done(0, op, 1, 0);
    let second = h.ops.start(flush(), "AKID").unwrap();
    assert_ne!(second.id, first.id);
    let scan = h.take_scan(0);
    assert_eq!(scan.kind, ScanKind::Flush);
    assert_ne!(scan.op, op, "each operation gets its own sequence number");
}

#[test]
fn a_worker_that_does_not_finish_in_time_completes_the_operation_with_errors() {
    let h = Harness::new("timeout", 2, "worker_timeout_ms = 150");
    let s = h.ops.start(capture(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    h.take_scan(1);
    h.flow(0, op, nth(1, 0));
    h.done(0, op, 10, 1);
    h.ops.tick();
    assert_eq!(h.ops.describe(&s.id).unwrap().status, OpStatus::InProgress);
    thread::sleep(Duration::from_millis(200));
    h.ops.tick();
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(d.status, OpStatus::CompletedWithErrors);
    assert_eq!(d.message.as_deref(), Some("Flow timeout"));
    let detail = d.detail.unwrap();
    assert!(
        detail.contains("worker 1 did not finish within 150 ms"),
        "{detail}"
    );
    assert_eq!(d.workers[1].scan, WorkerScan::TimedOut);
    assert_eq!(
        h.take_cancel(1),
        Some(op),
        "the late worker's scan is cancelled"
    );
    assert_eq!(h.take_cancel(0), None);
    // The partial results are served.
    assert_eq!(h.ops.results(&s.id, 10, None).unwrap().0.flows.len(), 1);
    // The late worker's answer changes nothing, and the zone is free again.
    h.flow(1, op, nth(2, 1));
    h.done(1, op, 10, 1);
    assert_eq!(h.ops.describe(&s.id).unwrap().results_kept, 1);
    assert!(h.ops.start(capture(), "AKID").is_ok());
}

#[test]
fn result_cap_stops_a_capture_and_marks_it_partial() {
    let h = Harness::new("cap", 2, "result_cap = 3");
    let s = h.ops.start(capture(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    h.take_scan(1);
    for i in 0..3 {
        h.flow(0, op, nth(i, 0));
    }
    assert_eq!(
        h.take_cancel(0),
        None,
        "no cancel before the cap is exceeded"
    );
    h.flow(0, op, nth(3, 0));
    assert_eq!(h.take_cancel(0), Some(op));
    assert_eq!(h.take_cancel(1), Some(op));
    h.flow(0, op, nth(4, 0)); // already in flight
    h.cancelled(0, op);
    h.cancelled(1, op);
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(d.status, OpStatus::CompletedWithErrors);
    assert_eq!(d.message.as_deref(), Some("Result cap of 3 flows reached"));
    assert_eq!(d.workers[0].scan, WorkerScan::Cancelled);
    assert_eq!((d.flows_matched, d.results_kept), (5, 3));
    assert_eq!(h.ops.results(&s.id, 100, None).unwrap().0.flows.len(), 3);
}

#[test]
fn result_cap_does_not_stop_a_flush() {
    let h = Harness::new("capflush", 1, "result_cap = 2");
    let s = h.ops.start(flush(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    for i in 0..5 {
        h.flow(0, op, nth(i, 0));
    }
    assert_eq!(h.take_cancel(0), None, "a flush keeps removing flows");
    h.done(0, op, 5, 5);
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(d.status, OpStatus::CompletedWithErrors);
    assert_eq!((d.flows_matched, d.results_kept), (5, 2));
    assert!(d.detail.unwrap().contains("every matched flow was flushed"));
    let m = h.ops.metrics();
    assert_eq!(m.flows_flushed, 5);
    assert_eq!(m.flows_captured, 0);
}

#[test]
fn an_operation_no_worker_accepts_fails() {
    // A one-slot command ring that is already full.
    let h = Harness::with_rings("unreach", 1, 1, "");
    h.rings[0].commands.push(Command::Stats).ok().unwrap();
    let s = h.ops.start(capture(), "AKID").unwrap();
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!(s.status, OpStatus::Failed);
    assert_eq!(d.status, OpStatus::Failed);
    assert_eq!(d.message.as_deref(), Some("Flow operation error"));
    assert_eq!(d.workers[0].scan, WorkerScan::Unreachable);
    // A failed operation does not hold the zone.
    assert_ne!(h.ops.start(capture(), "AKID").unwrap().id, s.id);
}

#[test]
fn results_and_history_page_with_opaque_tokens() {
    let h = Harness::new("paging", 1, "");
    let id = run_to_completion(&h, capture(), 5);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = h.ops.results(&id, 2, token.as_deref()).unwrap();
        pages += 1;
        seen.extend(page.flows.iter().map(|f| f.src_port));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec![40000, 40001, 40002, 40003, 40004]);
    for bad in ["garbage", "Zm9v", "not base64!"] {
        assert!(matches!(
            h.ops.results(&id, 2, Some(bad)),
            Err(OpsError::InvalidRequest(m)) if m.starts_with("NextToken")
        ));
    }
    // A token of another operation is refused.
    let other = run_to_completion(&h, flush(), 3);
    let (_, t) = h.ops.results(&other, 1, None).unwrap();
    assert!(matches!(
        h.ops.results(&id, 1, t.as_deref()),
        Err(OpsError::InvalidRequest(_))
    ));

    // History: newest first, by type, paged.
    let mut ids = vec![id, other];
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(2));
        ids.push(run_to_completion(&h, capture(), 0));
    }
    ids.reverse();
    let (first, t1) = h.ops.list(None, 2, None).unwrap();
    assert_eq!(
        first.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
    let (second, t2) = h.ops.list(None, 2, t1.as_deref()).unwrap();
    assert_eq!(second[0].id, ids[2]);
    let (third, t3) = h.ops.list(None, 2, t2.as_deref()).unwrap();
    assert_eq!(third.len(), 1);
    assert!(t3.is_none());
    let (flushes, _) = h.ops.list(Some(OpKind::Flush), 100, None).unwrap();
    assert_eq!(flushes.len(), 1);
    assert_eq!(flushes[0].kind, OpKind::Flush);
    // A token issued for an unfiltered listing does not page a filtered one.
    assert!(h.ops.list(Some(OpKind::Capture), 2, t1.as_deref()).is_err());
    assert!(matches!(
        h.ops.list(None, 0, None),
        Err(OpsError::InvalidRequest(_))
    ));
}

/// Result buffers are reused once their set leaves the memory cache: every operation
/// still reads back its own results (older ones from disk), never a later operation's.
#[test]
fn reused_result_buffers_never_mix_operations() {
    // A large table: small result sets are copied out and the reserved buffer goes back.
    reuse_round(Harness::new("reuse", 1, ""));
    // A tiny one: each set keeps its buffer, so an operation starting with no spare takes
    // the buffer of the oldest cached set, pushed out of memory early.
    reuse_round(Harness::new(
        "reusetiny",
        1,
        "[flow_table]\ncapacity_per_worker = 64",
    ));
}

fn reuse_round(h: Harness) {
    let ports = |id: &str| -> Vec<u16> {
        let (page, _) = h.ops.results(id, 100, None).unwrap();
        page.flows.iter().map(|f| f.src_port).collect()
    };
    let mut ids = Vec::new();
    for n in [5u16, 3, 7, 2, 6, 1] {
        let id = run_to_completion(&h, capture(), n);
        // Read while cached, so the set is held and then released.
        assert_eq!(ports(&id), (40000..40000 + n).collect::<Vec<_>>());
        ids.push((id, n));
    }
    for (id, n) in &ids {
        assert_eq!(ports(id), (40000..40000 + n).collect::<Vec<_>>(), "{id}");
    }
}

#[test]
fn operations_are_purged_after_the_retention_period() {
    let h = Harness::new("purge", 1, "history_retention_seconds = 1");
    let id = run_to_completion(&h, capture(), 2);
    h.ops.sync_history();
    let json = h.ops_dir().join(format!("{id}.json"));
    let flows = h.ops_dir().join(format!("{id}.flows"));
    assert!(json.exists() && flows.exists());
    h.ops.tick();
    assert!(h.ops.describe(&id).is_ok(), "still within retention");
    thread::sleep(Duration::from_millis(1100));
    h.ops.tick();
    assert!(matches!(h.ops.describe(&id), Err(OpsError::NotFound(_))));
    assert!(h.ops.list(None, 100, None).unwrap().0.is_empty());
    h.ops.sync_history();
    assert!(!json.exists() && !flows.exists(), "purged from disk too");
}

#[test]
fn history_and_results_survive_a_restart() {
    let h = Harness::new("restart", 1, "");
    let mut req = capture();
    req.filters[0].protocols = vec!["6".into()];
    req.min_age_seconds = 60;
    let id = run_to_completion(&h, req.clone(), 4);
    let before = h.ops.describe(&id).unwrap();
    let (page_before, _) = h.ops.results(&id, 100, None).unwrap();
    let h = h.restart();
    let after = h.ops.describe(&id).unwrap();
    assert_eq!(after, before);
    assert_eq!(after.request.filters, req.filters);
    assert_eq!(after.request.min_age_seconds, 60);
    let (page_after, _) = h.ops.results(&id, 100, None).unwrap();
    assert_eq!(page_after.flows, page_before.flows);
    assert_eq!(h.ops.list(None, 10, None).unwrap().0.len(), 1);
}

#[test]
fn operations_interrupted_by_a_crash_are_settled_at_start() {
    let h = Harness::new("crash", 1, "");
    // One operation with partial results on disk...
    let partial = h.ops.start(flush(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    h.flow(0, op, nth(1, 0));
    h.flow(0, op, nth(2, 0));
    h.ops.tick(); // streams them to the history
    let h = h.restart();
    let d = h.ops.describe(&partial.id).unwrap();
    assert_eq!(d.status, OpStatus::CompletedWithErrors);
    assert_eq!(d.message.as_deref(), Some("Flow operation error"));
    assert!(d.detail.unwrap().contains("2 partial results were kept"));
    assert_eq!(
        h.ops.results(&partial.id, 10, None).unwrap().0.flows.len(),
        2
    );

    // ...and one with none, plus a torn result record and a leftover temp file.
    let empty = h.ops.start(capture(), "AKID").unwrap();
    h.take_scan(0);
    h.ops.sync_history();
    std::fs::write(
        h.ops_dir().join(format!("{}.flows", empty.id)),
        b"FGFLOWS1torn",
    )
    .unwrap();
    std::fs::write(h.ops_dir().join("stray.json.tmp"), b"{").unwrap();
    let h = h.restart();
    let d = h.ops.describe(&empty.id).unwrap();
    assert_eq!(d.status, OpStatus::Failed);
    assert!(d.detail.unwrap().contains("no results were kept"));
    assert!(h
        .ops
        .results(&empty.id, 10, None)
        .unwrap()
        .0
        .flows
        .is_empty());
    assert!(!h.ops_dir().join("stray.json.tmp").exists());
    // The zone is free after the restart.
    assert!(h.ops.start(capture(), "AKID").is_ok());
}

#[test]
fn unknown_and_malformed_ids() {
    let h = Harness::new("ids", 1, "");
    let unknown = "0f8fad5b-d9cb-469f-a165-70867728950e";
    assert!(matches!(h.ops.describe(unknown), Err(OpsError::NotFound(m)) if m.contains(unknown)));
    assert!(matches!(
        h.ops.results(unknown, 1, None),
        Err(OpsError::NotFound(_))
    ));
    for bad in ["nope", "0F8FAD5B-D9CB-469F-A165-70867728950E", ""] {
        assert!(matches!(
            h.ops.describe(bad),
            Err(OpsError::InvalidRequest(m)) if m.starts_with("FlowOperationId")
        ));
    }
}

#[test]
fn metrics_count_operations_by_type_and_status() {
    let h = Harness::new("metrics", 1, "");
    run_to_completion(&h, capture(), 3);
    run_to_completion(&h, flush(), 2);
    let m = h.ops.metrics();
    assert_eq!(m.started, vec![(OpKind::Capture, 1), (OpKind::Flush, 1)]);
    let completed = |k, s| {
        m.completed
            .iter()
            .find(|(a, b, _)| *a == k && *b == s)
            .unwrap()
            .2
    };
    assert_eq!(completed(OpKind::Capture, OpStatus::Completed), 1);
    assert_eq!(completed(OpKind::Flush, OpStatus::Completed), 1);
    assert_eq!(completed(OpKind::Flush, OpStatus::Failed), 0);
    assert_eq!((m.flows_captured, m.flows_flushed), (3, 2));
    assert_eq!(m.durations[0].1.count, 1);
    assert_eq!(m.in_progress, 0);
    assert_eq!(m.history_write_errors, 0);
}

/// Forwards the collector's replies to the manager, as the app layer does.
struct Forward(Arc<OpsManager>);

impl Sink for Forward {
    fn on_reply(&self, worker: usize, reply: Reply) {
        self.0.on_reply(worker, reply);
    }
    fn on_events(&self, _: usize, events: &mut dyn Iterator<Item = Event>) {
        events.for_each(drop);
    }
    fn tick(&self) {
        self.0.tick();
    }
}

#[test]
fn end_to_end_through_the_rings_with_worker_threads_and_the_collector() {
    let h = Harness::new("e2e", 2, "");
    let stop = Arc::new(AtomicBool::new(false));
    // Each played worker answers a scan with `10 * (w + 1)` flows, then ScanDone.
    let workers: Vec<_> = h
        .rings
        .iter()
        .enumerate()
        .map(|(w, rings)| {
            let rings = Arc::clone(rings);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match rings.commands.pop() {
                        Some(Command::StartScan(req)) => {
                            let n = 10 * (w as u16 + 1);
                            for i in 0..n {
                                let mut r = Reply::ScanFlow {
                                    op: req.op,
                                    record: nth(i, w as u16),
                                    flushed: req.kind == ScanKind::Flush,
                                };
                                // Backpressure: retry while the reply ring is full.
                                while let Err(back) = rings.replies.push(r) {
                                    r = back;
                                    thread::yield_now();
                                }
                            }
                            let done = Reply::ScanDone {
                                op: req.op,
                                scanned: 1000,
                                matched: u64::from(n),
                                cancelled: false,
                            };
                            assert!(rings.replies.push(done).is_ok());
                        }
                        Some(_) => {}
                        None => thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        })
        .collect();
    let collector = h
        .control
        .spawn_collector(Arc::new(Forward(Arc::clone(&h.ops))), Arc::clone(&stop))
        .unwrap();
    let s = h.ops.start(capture(), "AKID").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let d = loop {
        let d = h.ops.describe(&s.id).unwrap();
        if d.status != OpStatus::InProgress || Instant::now() > deadline {
            break d;
        }
        thread::sleep(Duration::from_millis(5));
    };
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(d.status, OpStatus::Completed);
    assert_eq!(d.flows_matched, 30);
    let (page, _) = h.ops.results(&s.id, 100, None).unwrap();
    assert_eq!(page.flows.iter().filter(|f| f.worker == 1).count(), 20);
}

/// The flow ids `nth(i, _)` gives, sorted.
fn ids_of(is: impl IntoIterator<Item = u16>) -> Vec<u64> {
    let mut ids: Vec<u64> = is.into_iter().map(|i| nth(i, 0).flow_id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn every_flushed_flow_reaches_the_flow_log_once_listed_beyond_the_cap_or_late() {
    let h = Harness::new("flushlog", 2, "result_cap = 3\nworker_timeout_ms = 1");
    let s = h.ops.start(flush(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    h.take_scan(1);
    for i in 0..5 {
        h.flushed_flow(0, op, nth(i, 0));
    }
    h.done(0, op, 5, 5);
    // Worker 1 never answers in time: the operation settles without it.
    while h.ops.describe(&s.id).unwrap().status == OpStatus::InProgress {
        h.ops.tick();
        thread::yield_now();
    }
    let d = h.ops.describe(&s.id).unwrap();
    assert_eq!((d.flows_matched, d.results_kept), (5, 3));
    let mut logged = h.logged_flushed();
    logged.sort_unstable();
    assert_eq!(logged, ids_of(0..5), "listed and beyond the cap alike");
    // The late worker did remove its flow: its record is logged though no result lists it.
    h.flushed_flow(1, op, nth(9, 1));
    h.done(1, op, 1, 1);
    h.ops.tick();
    assert_eq!(h.logged_flushed(), ids_of([9]));
    assert_eq!(h.ops.describe(&s.id).unwrap().results_kept, 3);
}

#[test]
fn a_capture_logs_nothing() {
    let h = Harness::new("capnolog", 1, "");
    run_to_completion(&h, capture(), 5);
    h.ops.tick();
    assert_eq!(h.logged_flushed(), Vec::<u64>::new());
}

#[test]
fn flushed_records_reach_the_log_in_batches_while_the_flush_runs() {
    let h = Harness::new("flushbatch", 1, "");
    let s = h.ops.start(flush(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    let batch = mgmt::record_batch::BATCH_RECORDS as u16;
    for i in 0..=batch {
        h.flushed_flow(0, op, nth(i, 0));
    }
    assert_eq!(
        h.logged_flushed(),
        ids_of(0..batch),
        "a full batch is handed on at once, the rest waits for the next tick"
    );
    h.ops.tick();
    assert_eq!(h.logged_flushed(), ids_of([batch]));
    h.done(0, op, 9000, u64::from(batch) + 1);
    assert_eq!(h.ops.describe(&s.id).unwrap().status, OpStatus::Completed);
    assert_eq!(h.logged_flushed(), Vec::<u64>::new(), "nothing twice");
}

#[test]
fn a_flush_still_running_at_shutdown_hands_its_records_to_the_flow_log() {
    let h = Harness::new("flushshut", 1, "");
    h.ops.start(flush(), "AKID").unwrap();
    let op = h.take_scan(0).op;
    h.flushed_flow(0, op, nth(1, 0));
    h.flushed_flow(0, op, nth(2, 0));
    assert_eq!(h.logged_flushed(), Vec::<u64>::new());
    h.ops.hand_off_pending();
    assert_eq!(h.logged_flushed(), ids_of([1, 2]));
}
