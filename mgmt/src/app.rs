//! The management application: owns the configuration, the worker control plane, the
//! policy manager, the operation manager, the logs and the audit trail, and answers HTTP
//! (health, metrics, the native `/v1/` API and the AWS JSON 1.0 API). It also receives
//! everything the workers send (it is the collector's [`Sink`]).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use dataplane::flow::{EndReason, TcpInvalid};
use dataplane::policy::NO_RULE;
use dataplane::worker::counters::DropReason;
use dataplane::worker::{Event, Reply, WorkerCounters};

use crate::audit::Audit;
use crate::aws_api::Protocol;
use crate::clock::Clock;
use crate::config::{AuthMode, Config};
use crate::console::ConsoleSettings;
use crate::control::{Control, Sink};
use crate::http::server::{Handler, LimitKind, Request, Response};
use crate::log_queue::{LogQueue, Taken};
use crate::logs::{alert_record, write_netflow, Envelope, LineWriter, NetflowTimes, RateLimit};
use crate::metrics::Families;
use crate::ops::OpsManager;
use crate::policy_mgr::PolicyManager;
use crate::resources::{PolicyHost, ResourceManager};
use crate::sigv4::{self, Credentials, KeyStore};

/// Port names by the workers' port index (`pair * 2 + side`).
pub type PortNames = Vec<String>;

struct LogState {
    flow: Option<LineWriter>,
    alert: Option<LineWriter>,
    alert_limit: RateLimit,
    flow_records: u64,
    alert_records: u64,
}

pub struct App {
    pub cfg: Config,
    pub control: Arc<Control>,
    pub policy: PolicyManager,
    /// The AWS resources (firewall, policies, rule groups, logging, tags).
    pub resources: ResourceManager,
    pub ops: Arc<OpsManager>,
    pub clock: Clock,
    pub audit: Audit,
    ports: PortNames,
    keys: KeyStore,
    envelope: Envelope,
    logs: Mutex<LogState>,
    /// Events on their way to the log writer thread ([`App::spawn_log_writer`]).
    log_queue: LogQueue,
    started: Instant,
    /// DPDK-level port statistics, provided by the binary (the mgmt crate has no FFI).
    port_stats: Box<dyn Fn() -> Vec<(String, [u64; 8])> + Send + Sync>,
    mempool: Box<dyn Fn() -> (u32, u32) + Send + Sync>,
    /// What the web console's unauthenticated `config.json` tells the page.
    console: ConsoleSettings,
}

pub struct AppParts {
    pub cfg: Config,
    pub control: Arc<Control>,
    pub policy: PolicyManager,
    pub resources: ResourceManager,
    pub clock: Clock,
    pub ports: PortNames,
    pub port_stats: Box<dyn Fn() -> Vec<(String, [u64; 8])> + Send + Sync>,
    pub mempool: Box<dyn Fn() -> (u32, u32) + Send + Sync>,
}

impl App {
    pub fn new(p: AppParts) -> Result<Arc<App>, String> {
        let cfg = p.cfg;
        let ops = OpsManager::new(&cfg, Arc::clone(&p.control), p.clock)?;
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
        let logs = LogState {
            flow: open(&cfg.logging.flow_log)?,
            alert: open(&cfg.logging.alert_log)?,
            alert_limit: RateLimit::new(cfg.logging.alert_rate_limit_per_sec),
            flow_records: 0,
            alert_records: 0,
        };
        let audit = Audit::open(cfg.log_target(&cfg.logging.audit_log))
            .map_err(|e| format!("cannot open audit log: {e}"))?;
        let keys = KeyStore::new(
            cfg.mgmt
                .keys
                .iter()
                .map(|k| Credentials {
                    access_key_id: k.access_key_id.clone(),
                    secret_access_key: k.secret_access_key.clone(),
                })
                .collect(),
        );
        let envelope = Envelope::new(&cfg.appliance.firewall_name, &cfg.appliance.zone);
        let console = ConsoleSettings {
            region: cfg.mgmt.region.clone(),
            zones: vec![cfg.appliance.zone.clone()],
        };
        Ok(Arc::new(App {
            control: p.control,
            policy: p.policy,
            resources: p.resources,
            ops,
            clock: p.clock,
            audit,
            ports: p.ports,
            keys,
            envelope,
            log_queue: LogQueue::new(cfg.logging.queue_records, cfg.logging.flush_queue_records),
            logs: Mutex::new(logs),
            started: Instant::now(),
            port_stats: p.port_stats,
            mempool: p.mempool,
            console,
            cfg,
        }))
    }

    /// Re-reads the policy files (API, CLI and SIGHUP).
    pub fn reload_policy(&self, caller: &str, source: Option<SocketAddr>) -> Result<Value, String> {
        let res = self.policy.reload(&self.control);
        self.resources.after_reload(res.is_ok());
        let src = source.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        match &res {
            Ok(p) => {
                self.audit.record(
                    caller,
                    src,
                    "ReloadPolicy",
                    None,
                    "ok",
                    None,
                    Some(&p.summary()),
                );
                eprintln!("flowgate: policy reloaded: {}", p.summary());
            }
            Err(e) => {
                self.audit.record(
                    caller,
                    src,
                    "ReloadPolicy",
                    None,
                    "refused",
                    Some("InvalidPolicy"),
                    Some(e),
                );
                eprintln!("flowgate: policy reload refused, running policy kept: {e}");
            }
        }
        res.map(|p| {
            json!({
                "epoch": p.epoch(),
                "rules": p.rules().len(),
                "summary": p.summary(),
                "file": self.policy.path().display().to_string(),
            })
        })
    }

    fn totals(views: &[WorkerCounters]) -> WorkerCounters {
        let mut t = WorkerCounters::default();
        for v in views {
            t.flows_created += v.flows_created;
            t.flows_closed += v.flows_closed;
            t.flows_expired += v.flows_expired;
            t.flows_flushed += v.flows_flushed;
            t.flows_evicted += v.flows_evicted;
            t.flows_active += v.flows_active;
            t.table_capacity += v.table_capacity;
            t.table_full_events += v.table_full_events;
            t.midstream_dropped += v.midstream_dropped;
            t.midstream_continued += v.midstream_continued;
            t.midstream_rejected += v.midstream_rejected;
            t.rsts_sent += v.rsts_sent;
            t.rsts_rate_limited += v.rsts_rate_limited;
            t.reject_silenced += v.reject_silenced;
            t.hash_long_probes += v.hash_long_probes;
            for (a, b) in t.tcp_invalid.iter_mut().zip(v.tcp_invalid.iter()) {
                *a += b;
            }
            t.malformed += v.malformed;
            t.non_ip += v.non_ip;
            let f = &mut t.fragments;
            let g = &v.fragments;
            f.datagrams += g.datagrams;
            f.followed += g.followed;
            f.dropped_with_first += g.dropped_with_first;
            f.no_first += g.no_first;
            f.overlap += g.overlap;
            f.bad += g.bad;
            f.evicted += g.evicted;
            f.completed += g.completed;
            t.icmp_related_passed += v.icmp_related_passed;
            t.icmp_related_dropped += v.icmp_related_dropped;
            t.icmp_unrelated += v.icmp_unrelated;
            t.events_dropped += v.events_dropped;
            for (p, q) in t.ports.iter_mut().zip(v.ports.iter()) {
                p.rx_packets += q.rx_packets;
                p.rx_bytes += q.rx_bytes;
                p.tx_packets += q.tx_packets;
                p.tx_bytes += q.tx_bytes;
                for (a, b) in p.dropped.iter_mut().zip(q.dropped.iter()) {
                    *a += b;
                }
            }
        }
        t
    }

    /// `GET /v1/stats`: the live flow table and traffic, aggregated and per worker.
    pub fn stats_json(&self) -> Value {
        let views = self.control.views();
        let counters: Vec<WorkerCounters> = views.iter().map(|v| v.counters).collect();
        let t = Self::totals(&counters);
        let stalled = self.control.stalled_workers();
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let p = &t.ports[i];
                let drops: serde_json::Map<String, Value> = DropReason::ALL
                    .iter()
                    .map(|r| (r.as_str().to_string(), json!(p.dropped[*r as usize])))
                    .collect();
                json!({"port": name, "rx_packets": p.rx_packets, "rx_bytes": p.rx_bytes,
                       "tx_packets": p.tx_packets, "tx_bytes": p.tx_bytes, "dropped": drops})
            })
            .collect();
        let workers: Vec<Value> = views
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = &v.counters;
                json!({"worker": i, "lcore": self.control.links()[i].lcore,
                       "flows_active": c.flows_active, "table_capacity": c.table_capacity,
                       "emergency_mode": c.emergency_mode, "policy_epoch": c.policy_epoch,
                       "stalled": stalled.contains(&i), "loops": c.loops})
            })
            .collect();
        let pol = self.policy.current();
        json!({
            "firewall_name": self.cfg.appliance.firewall_name,
            "firewall_arn": self.cfg.appliance.firewall_arn,
            "zone": self.cfg.appliance.zone,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "policy": {"epoch": pol.epoch(), "rules": pol.rules().len(), "summary": pol.summary(),
                       "last_reload_error": self.policy.last_error()},
            "flows": {"active": t.flows_active, "capacity": t.table_capacity,
                      "created": t.flows_created, "closed": t.flows_closed, "expired": t.flows_expired,
                      "flushed": t.flows_flushed, "evicted": t.flows_evicted,
                      "table_full": t.table_full_events},
            "midstream": {"dropped": t.midstream_dropped, "continued": t.midstream_continued,
                          "rejected": t.midstream_rejected, "rsts_sent": t.rsts_sent},
            "reject": {"rsts_sent": t.rsts_sent, "rsts_rate_limited": t.rsts_rate_limited,
                       "silenced": t.reject_silenced},
            "tcp_invalid": TcpInvalid::ALL.iter()
                .map(|r| (r.as_str().to_string(), json!(t.tcp_invalid[*r as usize])))
                .collect::<serde_json::Map<String, Value>>(),
            "flow_hash_long_probes": t.hash_long_probes,
            "malformed": t.malformed, "non_ip": t.non_ip, "events_dropped": t.events_dropped,
            "fragments": {"datagrams": t.fragments.datagrams, "followed": t.fragments.followed,
                          "dropped_with_first": t.fragments.dropped_with_first,
                          "no_first": t.fragments.no_first, "overlap": t.fragments.overlap,
                          "bad": t.fragments.bad, "evicted": t.fragments.evicted,
                          "completed": t.fragments.completed},
            "icmp_errors": {"related_passed": t.icmp_related_passed,
                            "related_dropped": t.icmp_related_dropped,
                            "unrelated": t.icmp_unrelated},
            "ports": ports,
            "workers": workers,
        })
    }

    /// `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        let views = self.control.views();
        let mut f = Families::default();
        for (w, v) in views.iter().enumerate() {
            let c = &v.counters;
            let ws = w.to_string();
            let wl = [("worker", ws.as_str())];
            for (i, name) in self.ports.iter().enumerate() {
                let p = &c.ports[i];
                let l = [("port", name.as_str()), ("worker", ws.as_str())];
                f.counter(
                    "flowgate_rx_packets_total",
                    "Packets received",
                    &l,
                    p.rx_packets as f64,
                );
                f.counter(
                    "flowgate_rx_bytes_total",
                    "Bytes received",
                    &l,
                    p.rx_bytes as f64,
                );
                f.counter(
                    "flowgate_tx_packets_total",
                    "Packets transmitted",
                    &l,
                    p.tx_packets as f64,
                );
                f.counter(
                    "flowgate_tx_bytes_total",
                    "Bytes transmitted",
                    &l,
                    p.tx_bytes as f64,
                );
                for r in DropReason::ALL {
                    f.counter(
                        "flowgate_dropped_packets_total",
                        "Packets dropped, by the port they arrived on and why",
                        &[
                            ("port", name.as_str()),
                            ("worker", ws.as_str()),
                            ("reason", r.as_str()),
                        ],
                        p.dropped[r as usize] as f64,
                    );
                }
            }
            f.gauge(
                "flowgate_flows_active",
                "Flows in the table",
                &wl,
                c.flows_active as f64,
            );
            f.gauge(
                "flowgate_flow_table_capacity",
                "Flow table capacity",
                &wl,
                c.table_capacity as f64,
            );
            f.gauge(
                "flowgate_flow_table_occupancy_ratio",
                "Flows in the table over its capacity",
                &wl,
                c.flows_active as f64 / (c.table_capacity.max(1)) as f64,
            );
            f.gauge(
                "flowgate_flow_table_emergency",
                "1 while the shard is in emergency mode",
                &wl,
                c.emergency_mode as u8 as f64,
            );
            f.counter(
                "flowgate_flows_created_total",
                "Flows created",
                &wl,
                c.flows_created as f64,
            );
            f.counter(
                "flowgate_flows_closed_total",
                "Flows ended after a TCP close",
                &wl,
                c.flows_closed as f64,
            );
            f.counter(
                "flowgate_flows_expired_total",
                "Flows ended by idle timeout",
                &wl,
                c.flows_expired as f64,
            );
            f.counter(
                "flowgate_flows_flushed_total",
                "Flows removed by a flush",
                &wl,
                c.flows_flushed as f64,
            );
            f.counter(
                "flowgate_flows_evicted_total",
                "Flows evicted to make room",
                &wl,
                c.flows_evicted as f64,
            );
            f.counter(
                "flowgate_table_full_total",
                "New flows refused because the shard was full",
                &wl,
                c.table_full_events as f64,
            );
            for (outcome, v) in [
                ("dropped", c.midstream_dropped),
                ("continued", c.midstream_continued),
                ("rejected", c.midstream_rejected),
            ] {
                f.counter(
                    "flowgate_midstream_packets_total",
                    "Midstream packets by stream exception outcome",
                    &[("worker", ws.as_str()), ("outcome", outcome)],
                    v as f64,
                );
            }
            f.counter(
                "flowgate_rsts_sent_total",
                "TCP resets generated",
                &wl,
                c.rsts_sent as f64,
            );
            f.counter(
                "flowgate_rsts_rate_limited_total",
                "TCP resets not generated because the worker's RST budget was spent",
                &wl,
                c.rsts_rate_limited as f64,
            );
            f.counter(
                "flowgate_reject_silenced_total",
                "Packets of rejected flows dropped without another RST (tombstones)",
                &wl,
                c.reject_silenced as f64,
            );
            for r in TcpInvalid::ALL {
                f.counter(
                    "flowgate_tcp_invalid_total",
                    "TCP segments that did not count (out of window, inexact RST, ...) by reason",
                    &[("worker", ws.as_str()), ("reason", r.as_str())],
                    c.tcp_invalid[r as usize] as f64,
                );
            }
            f.counter(
                "flowgate_flow_hash_long_probes_total",
                "Flow index placements two or more buckets from home, or refused at the bound",
                &wl,
                c.hash_long_probes as f64,
            );
            for (e, engine) in ["stateless", "stateful"].iter().enumerate() {
                for (a, action) in ["pass", "drop", "reject", "alert"].iter().enumerate() {
                    f.counter(
                        "flowgate_packets_by_action_total",
                        "Decisions by engine and action (stateful: per new flow)",
                        &[
                            ("worker", ws.as_str()),
                            ("engine", engine),
                            ("action", action),
                        ],
                        c.by_engine_action[e][a] as f64,
                    );
                }
            }
            for e in dataplane::wire::ParseError::ALL {
                f.counter(
                    "flowgate_malformed_packets_total",
                    "Malformed or truncated frames by decode error",
                    &[("worker", ws.as_str()), ("reason", e.as_str())],
                    c.malformed_by_reason[e.index()] as f64,
                );
            }
            for (slot, n) in c.non_ip_by_ethertype.iter().enumerate() {
                f.counter(
                    "flowgate_non_ip_packets_total",
                    "Non-IP frames by EtherType (passed: ARP and non_ip_pass_ethertypes)",
                    &[
                        ("worker", ws.as_str()),
                        ("ethertype", dataplane::worker::counters::non_ip_label(slot)),
                    ],
                    *n as f64,
                );
            }
            let fr = &c.fragments;
            for (outcome, v) in [
                ("datagram", fr.datagrams),
                ("followed", fr.followed),
                ("dropped_with_first", fr.dropped_with_first),
                ("no_first", fr.no_first),
                ("overlap", fr.overlap),
                ("bad", fr.bad),
                ("evicted", fr.evicted),
                ("completed", fr.completed),
            ] {
                f.counter(
                    "flowgate_fragments_total",
                    "Fragment tracking: first fragments recorded (datagram); later fragments forwarded (followed) or dropped with their first (dropped_with_first), or dropped as orphans (no_first), overlaps (overlap) or bad lengths (bad); entries evicted; datagrams completed",
                    &[("worker", ws.as_str()), ("outcome", outcome)],
                    v as f64,
                );
            }
            for (outcome, v) in [
                ("related_passed", c.icmp_related_passed),
                ("related_dropped", c.icmp_related_dropped),
                ("unrelated", c.icmp_unrelated),
            ] {
                f.counter(
                    "flowgate_icmp_errors_total",
                    "ICMP errors by the flow they quote: allowed (passed), denied, none",
                    &[("worker", ws.as_str()), ("outcome", outcome)],
                    v as f64,
                );
            }
            f.counter(
                "flowgate_events_dropped_total",
                "Flow/alert events lost because the event ring was full",
                &wl,
                c.events_dropped as f64,
            );
            f.gauge(
                "flowgate_worker_policy_epoch",
                "Policy epoch the worker runs",
                &wl,
                c.policy_epoch as f64,
            );
            f.counter(
                "flowgate_worker_loops_total",
                "Worker poll-loop iterations (heartbeat)",
                &wl,
                c.loops as f64,
            );
            f.gauge(
                "flowgate_worker_stalled",
                "1 when the worker's heartbeat stopped",
                &wl,
                self.control.stalled_workers().contains(&w) as u8 as f64,
            );
        }
        for (w, (cmd, reply, ev)) in self.control.ring_depths().into_iter().enumerate() {
            let ws = w.to_string();
            for (ring, depth) in [("command", cmd), ("reply", reply), ("event", ev)] {
                f.gauge(
                    "flowgate_ring_depth",
                    "Entries waiting in a worker ring",
                    &[("worker", ws.as_str()), ("ring", ring)],
                    depth as f64,
                );
            }
        }
        for ((sid, action), hits) in self.policy.rule_hits() {
            let s = sid.to_string();
            f.counter(
                "flowgate_rule_hits_total",
                "Flows decided (or alerted) by a stateful rule",
                &[("sid", s.as_str()), ("action", action.as_str())],
                hits as f64,
            );
        }
        let pol = self.policy.current();
        f.gauge(
            "flowgate_policy_epoch",
            "Epoch of the policy in force",
            &[],
            pol.epoch() as f64,
        );
        f.counter(
            "flowgate_policy_reloads_total",
            "Policy reloads by result",
            &[("result", "ok")],
            self.policy.reloads_ok.load(Ordering::Relaxed) as f64,
        );
        f.counter(
            "flowgate_policy_reloads_total",
            "Policy reloads by result",
            &[("result", "failed")],
            self.policy.reloads_failed.load(Ordering::Relaxed) as f64,
        );
        f.gauge(
            "flowgate_policy_last_reload_ok",
            "1 if the last reload succeeded",
            &[],
            self.policy.last_error().is_none() as u8 as f64,
        );
        for (port, s) in (self.port_stats)() {
            let l = [("port", port.as_str())];
            f.counter(
                "flowgate_port_rx_missed_total",
                "Packets the NIC dropped (no RX descriptor)",
                &l,
                s[4] as f64,
            );
            f.counter(
                "flowgate_port_rx_errors_total",
                "Erroneous received packets (NIC)",
                &l,
                s[5] as f64,
            );
            f.counter(
                "flowgate_port_tx_errors_total",
                "Failed transmissions (NIC)",
                &l,
                s[6] as f64,
            );
            f.counter(
                "flowgate_port_rx_nombuf_total",
                "RX mbuf allocation failures",
                &l,
                s[7] as f64,
            );
        }
        let (in_use, cap) = (self.mempool)();
        f.gauge(
            "flowgate_mbuf_pool_in_use",
            "Mbufs in use",
            &[],
            in_use as f64,
        );
        f.gauge(
            "flowgate_mbuf_pool_capacity",
            "Mbufs in the pool",
            &[],
            cap as f64,
        );
        {
            let l = self.logs.lock().unwrap_or_else(|e| e.into_inner());
            f.counter(
                "flowgate_flow_log_records_total",
                "Flow log records written",
                &[],
                l.flow_records as f64,
            );
            f.gauge(
                "flowgate_log_queue_records",
                "Records waiting for the log writer",
                &[],
                self.log_queue.len() as f64,
            );
            f.counter(
                "flowgate_log_queue_dropped_total",
                "Records dropped because the log writer fell behind (logging.queue_records)",
                &[],
                self.log_queue.dropped() as f64,
            );
            f.counter(
                "flowgate_alert_log_records_total",
                "Alert log records written",
                &[],
                l.alert_records as f64,
            );
            f.counter(
                "flowgate_alert_log_suppressed_total",
                "Alert records suppressed by the rate limit",
                &[],
                l.alert_limit.suppressed as f64,
            );
        }
        let om = self.ops.metrics();
        for (kind, n) in &om.started {
            f.counter(
                "flowgate_operations_started_total",
                "Flow operations started",
                &[("type", kind.short_name())],
                *n as f64,
            );
        }
        for (kind, status, n) in &om.completed {
            f.counter(
                "flowgate_operations_completed_total",
                "Flow operations finished, by type and final status",
                &[("type", kind.short_name()), ("status", status.as_str())],
                *n as f64,
            );
        }
        for (kind, h) in &om.durations {
            f.histogram(
                "flowgate_operation_duration_seconds",
                "Time from the API call to the operation's final status",
                &[("type", kind.short_name())],
                &h.buckets,
                h.count,
                h.sum_seconds,
            );
        }
        f.counter(
            "flowgate_flows_captured_total",
            "Flows returned by captures",
            &[],
            om.flows_captured as f64,
        );
        f.counter(
            "flowgate_operation_flows_flushed_total",
            "Flows removed by flushes (as reported to operations)",
            &[],
            om.flows_flushed as f64,
        );
        f.gauge(
            "flowgate_operations_in_progress",
            "Operations running now",
            &[],
            om.in_progress as f64,
        );
        f.counter(
            "flowgate_operation_history_write_errors_total",
            "Failed writes of operation history",
            &[],
            om.history_write_errors as f64,
        );
        f.encode()
    }

    fn ready(&self) -> Result<(), String> {
        let stalled = self.control.stalled_workers();
        if !stalled.is_empty() {
            return Err(format!("workers not making progress: {stalled:?}"));
        }
        let views = self.control.views();
        if let Some(w) = views.iter().position(|v| !v.seen) {
            return Err(format!("worker {w} has not reported yet"));
        }
        Ok(())
    }

    /// Authenticates an API request; `Err` is the response to send.
    /// Verifies the request's SigV4 signature; refusals are audited and answered in the
    /// request's protocol.
    fn authenticate(&self, req: &Request, protocol: Protocol) -> Result<String, Response> {
        if self.cfg.mgmt.auth == Some(AuthMode::None) {
            return Ok("anonymous".into());
        }
        let vr = sigv4::VerifyRequest {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &req.headers,
            body: &req.body,
        };
        sigv4::verify(
            &vr,
            &self.keys,
            &self.cfg.mgmt.region,
            "network-firewall",
            SystemTime::now(),
        )
        .map_err(|e| {
            let action = match crate::aws_api::action_name(req, protocol) {
                "" => req.path.clone(),
                a => a.to_string(),
            };
            let key = req
                .header("authorization")
                .and_then(|a| a.split("Credential=").nth(1))
                .and_then(|c| c.split('/').next())
                .unwrap_or("-");
            self.audit.record(
                key,
                req.peer,
                &action,
                None,
                "refused",
                Some(e.aws_type()),
                Some(&e.to_string()),
            );
            protocol.error(e.http_status(), e.aws_type(), &e.to_string())
        })
    }

    fn route(&self, req: &Request) -> Response {
        if crate::console::owns(&req.path) {
            return crate::console::handle(req, &self.console);
        }
        if let Some(protocol) = Protocol::of_path(&req.path) {
            return match self.authenticate(req, protocol) {
                Ok(caller) => crate::aws_api::handle_with(
                    &self.ops,
                    &self.cfg,
                    req,
                    &caller,
                    &self.audit,
                    protocol,
                    Some(crate::aws_api::Resources {
                        mgr: &self.resources,
                        host: self,
                    }),
                ),
                Err(r) => r,
            };
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz") => Response::text(200, "ok\n"),
            ("GET", "/readyz") => match self.ready() {
                Ok(()) => Response::text(200, "ready\n"),
                Err(why) => Response::text(503, format!("not ready: {why}\n")),
            },
            ("GET", "/metrics") => Response::text(200, self.metrics_text())
                .with_header("Content-Type", "text/plain; version=0.0.4"),
            (_, p) if p.starts_with("/v1/") => match self.authenticate(req, Protocol::Json) {
                Ok(caller) => self.route_v1(req, &caller),
                Err(r) => r,
            },
            _ => Response::json(
                404,
                &json!({"error": "NotFound", "message": format!("no route for {} {}", req.method, req.path)}),
            ),
        }
    }

    fn route_v1(&self, req: &Request, caller: &str) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/stats") => Response::json(200, &self.stats_json()),
            ("POST", "/v1/policy/reload") => match self.reload_policy(caller, Some(req.peer)) {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::json(400, &json!({"error": "InvalidPolicy", "message": e})),
            },
            ("GET", "/v1/policy") => Response::json(200, &self.policy.describe_json()),
            (_, p) if p.starts_with("/v1/debug/") => crate::debug_api::handle(self, req)
                .unwrap_or_else(|| Response::json(404, &json!({"error": "NotFound", "message": "fault injection is disabled"}))),
            _ => crate::native_api::handle(&self.ops, req, caller, &self.audit).unwrap_or_else(|| {
                Response::json(404, &json!({"error": "NotFound", "message": format!("no route for {} {}", req.method, req.path)}))
            }),
        }
    }

    fn log_events(&self, events: &mut dyn Iterator<Item = Event>) {
        let mut l = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let pol = self.policy.current();
        for ev in events {
            match ev {
                Event::FlowEnd { record, reason } => {
                    if let Some(w) = l.flow.as_mut() {
                        let times = NetflowTimes::of(&self.clock, &record);
                        for d in 0..2 {
                            w.write_with(|out| {
                                write_netflow(
                                    out,
                                    &self.envelope,
                                    &self.clock,
                                    &times,
                                    &record,
                                    reason,
                                    d,
                                )
                            });
                        }
                        l.flow_records += 2;
                    }
                }
                Event::Alert(a) => {
                    if l.alert.is_none() || !l.alert_limit.allow() {
                        continue;
                    }
                    let (msg, rev) = if a.rule_index == NO_RULE || a.epoch != pol.epoch() {
                        (default_signature(a.sid), 0)
                    } else {
                        pol.rules()
                            .get(a.rule_index as usize)
                            .map_or((String::new(), 0), |r| (r.msg.clone(), r.rev))
                    };
                    let rec = alert_record(&self.envelope, &self.clock, &a, &msg, rev);
                    if let Some(w) = l.alert.as_mut() {
                        w.write_line(&rec);
                    }
                    l.alert_records += 1;
                }
            }
        }
    }

    fn flush_logs(&self) {
        let mut l = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = l.flow.as_mut() {
            w.flush();
        }
        if let Some(w) = l.alert.as_mut() {
            w.flush();
        }
    }

    /// Starts the thread that formats and writes the flow and alert logs from the queue
    /// the collector fills. It flushes whenever it has caught up, so a record reaches
    /// the file within a batch's time of arriving.
    pub fn spawn_log_writer(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("fg-logs".into())
            .spawn(move || {
                crate::background::enter();
                me.write_logs_until_closed();
            })
    }

    fn write_logs_until_closed(&self) {
        loop {
            match self.log_queue.take(4096, Duration::from_millis(200)) {
                Taken::Batch(batch) => {
                    self.log_events(&mut batch.into_iter());
                    if self.log_queue.is_empty() {
                        self.flush_logs();
                    }
                }
                Taken::Idle => self.flush_logs(),
                Taken::Closed => {
                    self.flush_logs();
                    return;
                }
            }
        }
    }

    /// Shutdown, after the collector's last drain: writes what is queued and stops the
    /// log writer.
    pub fn close_logs(&self, writer: std::thread::JoinHandle<()>) {
        self.log_queue.close();
        let _ = writer.join();
        self.flush_logs();
    }
}

/// The resource actions switch the running policy through the same path as a reload.
impl PolicyHost for App {
    fn apply_policy_file(&self, path: &std::path::Path, caller: &str) -> Result<(), String> {
        self.policy.set_path(path);
        self.reload_policy(caller, None).map(|_| ())
    }
}

fn default_signature(sid: u32) -> String {
    format!("aws default action (sid {sid})")
}

/// The AWS error shape for refusals made before a request is read far enough to know its
/// protocol (listener limits): JSON 1.0, which every client's error parser falls back on.
pub fn aws_error(status: u16, kind: &str, message: &str) -> Response {
    Protocol::Json.error(status, kind, message)
}

impl Sink for App {
    fn on_reply(&self, worker: usize, reply: Reply) {
        match reply {
            Reply::PolicySwapped { old, old_hits, .. } => {
                self.policy.on_swapped(worker, old, old_hits)
            }
            Reply::RuleHits { epoch, hits } => self.policy.on_rule_hits(worker, epoch, hits),
            Reply::ScanFlow {
                record,
                flushed: true,
                ..
            } => {
                self.log_queue.push_flushed(Event::FlowEnd {
                    record,
                    reason: EndReason::Flushed,
                });
                self.ops.on_reply(worker, reply);
            }
            r @ (Reply::ScanFlow { .. } | Reply::ScanDone { .. }) => self.ops.on_reply(worker, r),
        }
    }

    /// A scan's replies in bulk: the flushed records go to the log queue and the scan
    /// replies to the operation manager, one lock each per batch.
    fn on_replies(&self, worker: usize, replies: &mut Vec<Reply>) {
        self.log_queue
            .push_flushed_batch(&mut replies.iter().filter_map(|r| match r {
                Reply::ScanFlow {
                    record,
                    flushed: true,
                    ..
                } => Some(Event::FlowEnd {
                    record: *record,
                    reason: EndReason::Flushed,
                }),
                _ => None,
            }));
        let mut scan = Vec::with_capacity(replies.len());
        for r in replies.drain(..) {
            match r {
                r @ (Reply::ScanFlow { .. } | Reply::ScanDone { .. }) => scan.push(r),
                other => self.on_reply(worker, other),
            }
        }
        self.ops.on_replies(worker, &mut scan.into_iter());
    }

    fn on_events(&self, _worker: usize, events: &mut dyn Iterator<Item = Event>) {
        self.log_queue.extend(events);
    }

    /// A flushed flow's end record is taken only when the log queue has room for it:
    /// flushed records are never dropped, the flush waits for the log writer instead.
    fn accepts(&self, reply: &Reply) -> bool {
        !matches!(reply, Reply::ScanFlow { flushed: true, .. })
            || self.log_queue.has_room_for_flushed()
    }

    fn tick(&self) {
        self.ops.tick();
        self.policy.request_rule_hits(&self.control);
    }
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        self.route(req)
    }

    fn on_limit(&self, kind: LimitKind, _peer: SocketAddr) -> Response {
        let (status, ty, msg) = match kind {
            LimitKind::BodyTooLarge => (413, "InvalidRequestException", "request body too large"),
            LimitKind::HeadersTooLarge => {
                (431, "InvalidRequestException", "request headers too large")
            }
            LimitKind::HeaderTimeout | LimitKind::BodyTimeout => (
                408,
                "InvalidRequestException",
                "request not received in time",
            ),
            LimitKind::TooManyConnections => (503, "ThrottlingException", "too many connections"),
            LimitKind::UnsupportedTransferEncoding => (
                411,
                "InvalidRequestException",
                "unsupported transfer encoding",
            ),
            LimitKind::HandlerPanicked => (500, "InternalServerError", "internal error"),
            LimitKind::BadRequest(why) => (400, "InvalidRequestException", why),
        };
        aws_error(status, ty, msg)
    }
}
