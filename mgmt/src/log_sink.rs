//! The flow and alert log sinks: the queue the collector fills with worker events, and the
//! writer thread that formats them (AWS Network Firewall's record shapes, see
//! [`crate::logs`]) into the rotated files, rate-limiting alerts. Counts what it wrote for
//! the metrics.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dataplane::flow::EndReason;
use dataplane::policy::NO_RULE;
use dataplane::worker::{Event, FlowRecord};

use crate::clock::{Clock, EveStamps};
use crate::config::Config;
use crate::log_queue::{LogQueue, Taken};
use crate::logs::{alert_record, write_netflow, Envelope, LineWriter, NetflowTimes, RateLimit};
use crate::policy_mgr::PolicyManager;
use crate::record_batch::RecordBatch;

struct Files {
    flow: Option<LineWriter>,
    alert: Option<LineWriter>,
    alert_limit: RateLimit,
    flow_records: u64,
    alert_records: u64,
    /// Flow records' times, formatted once per second of the clock.
    stamps: EveStamps,
}

/// What the sinks have done, for `/metrics`.
pub struct LogCounts {
    pub flow_records: u64,
    pub alert_records: u64,
    pub alerts_suppressed: u64,
    pub queued: usize,
    pub queue_dropped: u64,
}

pub struct LogSinks {
    files: Mutex<Files>,
    /// Events on their way to the writer thread (shared with the operation manager, which
    /// hands it flushed flows' records).
    pub queue: Arc<LogQueue>,
    envelope: Envelope,
}

impl LogSinks {
    /// Opens the flow and alert logs `cfg` names.
    pub fn open(cfg: &Config) -> Result<LogSinks, String> {
        let open = |v: &str| -> Result<Option<LineWriter>, String> {
            cfg.log_target(v)
                .map(|t| {
                    LineWriter::open(
                        t.clone(),
                        cfg.logging.max_file_bytes,
                        cfg.logging.keep_files,
                    )
                    .map_err(|e| format!("cannot open log {t:?}: {e}"))
                })
                .transpose()
        };
        Ok(LogSinks {
            files: Mutex::new(Files {
                flow: open(&cfg.logging.flow_log)?,
                alert: open(&cfg.logging.alert_log)?,
                alert_limit: RateLimit::new(cfg.logging.alert_rate_limit_per_sec),
                flow_records: 0,
                alert_records: 0,
                stamps: EveStamps::default(),
            }),
            queue: Arc::new(LogQueue::new(
                cfg.logging.queue_records,
                cfg.flush_queue_records(),
            )),
            envelope: Envelope::new(&cfg.appliance.firewall_name, &cfg.appliance.zone),
        })
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn counts(&self) -> LogCounts {
        let f = self.files();
        LogCounts {
            flow_records: f.flow_records,
            alert_records: f.alert_records,
            alerts_suppressed: f.alert_limit.suppressed,
            queued: self.queue.len(),
            queue_dropped: self.queue.dropped(),
        }
    }

    fn write(
        &self,
        events: &mut dyn Iterator<Item = Event>,
        flushed: Option<&RecordBatch>,
        policy: &PolicyManager,
        clock: &Clock,
    ) {
        let mut f = self.files();
        let pol = policy.current();
        for ev in events {
            match ev {
                Event::FlowEnd { record, reason } => {
                    self.write_flow_end(&mut f, &record, reason, clock)
                }
                Event::Alert(a) => {
                    if f.alert.is_none() || !f.alert_limit.allow() {
                        continue;
                    }
                    let (msg, rev) = if a.rule_index == NO_RULE || a.epoch != pol.epoch() {
                        (format!("aws default action (sid {})", a.sid), 0)
                    } else {
                        pol.rules()
                            .get(a.rule_index as usize)
                            .map_or((String::new(), 0), |r| (r.msg.clone(), r.rev))
                    };
                    let rec = alert_record(&self.envelope, clock, &a, &msg, rev);
                    if let Some(w) = f.alert.as_mut() {
                        w.write_line(&rec);
                    }
                    f.alert_records += 1;
                }
            }
        }
        drop(f);
        // In slices, letting `/metrics` (which reads the counts) in between.
        for slice in flushed.map_or(&[][..], RecordBatch::records).chunks(1024) {
            let mut f = self.files();
            for record in slice {
                self.write_flow_end(&mut f, record, EndReason::Flushed, clock);
            }
        }
    }

    /// A flow's two netflow records (one per direction).
    fn write_flow_end(&self, f: &mut Files, record: &FlowRecord, reason: EndReason, clock: &Clock) {
        let Files { flow, stamps, .. } = f;
        let Some(w) = flow.as_mut() else {
            return;
        };
        let times = NetflowTimes::of(clock, stamps, record);
        for d in 0..2 {
            w.write_with(|out| {
                write_netflow(out, &self.envelope, clock, &times, record, reason, d)
            });
        }
        f.flow_records += 2;
    }

    fn flush(&self) {
        let mut f = self.files();
        if let Some(w) = f.flow.as_mut() {
            w.flush();
        }
        if let Some(w) = f.alert.as_mut() {
            w.flush();
        }
    }

    /// The writer thread's loop: writes queued events until the queue is closed, flushing
    /// whenever it has caught up, so a record reaches the file within a batch's time of
    /// arriving.
    pub fn run_writer(&self, policy: &PolicyManager, clock: &Clock) {
        loop {
            match self.queue.take(4096, Duration::from_millis(200)) {
                Taken::Batch { events, flushed } => {
                    self.write(&mut events.into_iter(), flushed.as_ref(), policy, clock);
                    if self.queue.is_empty() {
                        self.flush();
                    }
                }
                Taken::Idle => self.flush(),
                Taken::Closed => {
                    self.flush();
                    return;
                }
            }
        }
    }

    /// Shutdown, after the collector's last drain: writes what is queued and stops the
    /// writer.
    pub fn close(&self, writer: JoinHandle<()>) {
        self.queue.close();
        let _ = writer.join();
        self.flush();
    }
}
