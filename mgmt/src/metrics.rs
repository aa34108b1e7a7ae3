//! Prometheus exposition. Workers count in plain per-worker integers; at scrape time the
//! management side turns the latest snapshots into metric families (names follow the
//! Prometheus conventions: `flowgate_*_total` counters, base units). The per-worker, per-port
//! and NIC metrics are defined once each in the tables below; [`scrape`] walks them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use dataplane::flow::TcpInvalid;
use dataplane::worker::counters::{DropReason, PortCounters};
use dataplane::worker::WorkerCounters;

use crate::app::App;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

/// Collects metric families by name while a scrape is assembled.
#[derive(Default)]
pub struct Families {
    families: Vec<MetricFamily>,
    index: HashMap<&'static str, usize>,
}

impl Families {
    fn family(&mut self, name: &'static str, help: &str, kind: MetricType) -> &mut MetricFamily {
        let i = *self.index.entry(name).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(kind);
            self.families.push(f);
            self.families.len() - 1
        });
        &mut self.families[i]
    }

    fn labels(labels: &[(&str, &str)]) -> Vec<LabelPair> {
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect()
    }

    pub fn counter(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut m = Metric::default();
        m.set_label(Self::labels(labels));
        let mut c = Counter::default();
        c.set_value(v);
        m.set_counter(c);
        self.family(name, help, MetricType::COUNTER)
            .mut_metric()
            .push(m);
    }

    pub fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], v: f64) {
        let mut m = Metric::default();
        m.set_label(Self::labels(labels));
        let mut g = Gauge::default();
        g.set_value(v);
        m.set_gauge(g);
        self.family(name, help, MetricType::GAUGE)
            .mut_metric()
            .push(m);
    }

    /// A histogram from cumulative `(upper bound, count)` buckets.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[(f64, u64)],
        count: u64,
        sum: f64,
    ) {
        let mut h = Histogram::default();
        h.set_sample_count(count);
        h.set_sample_sum(sum);
        h.set_bucket(
            buckets
                .iter()
                .map(|(ub, c)| {
                    let mut b = Bucket::default();
                    b.set_upper_bound(*ub);
                    b.set_cumulative_count(*c);
                    b
                })
                .collect(),
        );
        let mut m = Metric::default();
        m.set_label(Self::labels(labels));
        m.set_histogram(h);
        self.family(name, help, MetricType::HISTOGRAM)
            .mut_metric()
            .push(m);
    }

    /// Adds families gathered from a `prometheus::Registry` (histograms etc.).
    pub fn extend(&mut self, more: Vec<MetricFamily>) {
        self.families.extend(more);
    }

    pub fn encode(self) -> String {
        let mut buf = Vec::new();
        // Text encoding of well-formed families cannot fail; an error yields what was written.
        let _ = TextEncoder::new().encode(&self.families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Counter or gauge.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

use Kind::{Counter as C, Gauge as G};

/// A metric read from one worker's counters, labelled by `worker`.
type WorkerDef = (&'static str, &'static str, Kind, fn(&WorkerCounters) -> f64);

const WORKER_METRICS: &[WorkerDef] = &[
    ("flowgate_flows_active", "Flows in the table", G, |c| {
        c.flows_active as f64
    }),
    (
        "flowgate_flow_table_capacity",
        "Flow table capacity",
        G,
        |c| c.table_capacity as f64,
    ),
    (
        "flowgate_flow_table_occupancy_ratio",
        "Flows in the table over its capacity",
        G,
        |c| c.flows_active as f64 / c.table_capacity.max(1) as f64,
    ),
    (
        "flowgate_flow_table_emergency",
        "1 while the shard is in emergency mode",
        G,
        |c| f64::from(u8::from(c.emergency_mode)),
    ),
    ("flowgate_flows_created_total", "Flows created", C, |c| {
        c.flows_created as f64
    }),
    (
        "flowgate_flows_closed_total",
        "Flows ended after a TCP close",
        C,
        |c| c.flows_closed as f64,
    ),
    (
        "flowgate_flows_expired_total",
        "Flows ended by idle timeout",
        C,
        |c| c.flows_expired as f64,
    ),
    (
        "flowgate_flows_flushed_total",
        "Flows removed by a flush",
        C,
        |c| c.flows_flushed as f64,
    ),
    (
        "flowgate_flows_evicted_total",
        "Flows evicted to make room",
        C,
        |c| c.flows_evicted as f64,
    ),
    (
        "flowgate_table_full_total",
        "New flows refused because the shard was full",
        C,
        |c| c.table_full_events as f64,
    ),
    ("flowgate_rsts_sent_total", "TCP resets generated", C, |c| {
        c.rsts_sent as f64
    }),
    (
        "flowgate_rsts_rate_limited_total",
        "TCP resets not generated because the worker's RST budget was spent",
        C,
        |c| c.rsts_rate_limited as f64,
    ),
    (
        "flowgate_reject_silenced_total",
        "Packets of rejected flows dropped without another RST (tombstones)",
        C,
        |c| c.reject_silenced as f64,
    ),
    (
        "flowgate_flow_hash_long_probes_total",
        "Flow index placements two or more buckets from home, or refused at the bound",
        C,
        |c| c.hash_long_probes as f64,
    ),
    (
        "flowgate_events_dropped_total",
        "Flow/alert events lost because the event ring was full",
        C,
        |c| c.events_dropped as f64,
    ),
    (
        "flowgate_scan_stalls_total",
        "Poll loops in which a capture or flush waited because its reply ring was full (the management side is the bound)",
        C,
        |c| c.scan_stalls as f64,
    ),
    (
        "flowgate_worker_policy_epoch",
        "Policy epoch the worker runs",
        G,
        |c| f64::from(c.policy_epoch),
    ),
    (
        "flowgate_worker_loops_total",
        "Worker poll-loop iterations (heartbeat)",
        C,
        |c| c.loops as f64,
    ),
];

/// A counter read from one worker's counters of one port, labelled by `port` and `worker`.
type PortDef = (&'static str, &'static str, fn(&PortCounters) -> f64);

const PORT_METRICS: &[PortDef] = &[
    ("flowgate_rx_packets_total", "Packets received", |p| {
        p.rx_packets as f64
    }),
    ("flowgate_rx_bytes_total", "Bytes received", |p| {
        p.rx_bytes as f64
    }),
    ("flowgate_tx_packets_total", "Packets transmitted", |p| {
        p.tx_packets as f64
    }),
    ("flowgate_tx_bytes_total", "Bytes transmitted", |p| {
        p.tx_bytes as f64
    }),
];

/// A NIC counter: its index in the binary's port statistics (`[ipackets, opackets, ibytes,
/// obytes, imissed, ierrors, oerrors, rx_nombuf]`), labelled by `port`.
const NIC_METRICS: &[(&str, &str, usize)] = &[
    (
        "flowgate_port_rx_missed_total",
        "Packets the NIC dropped (no RX descriptor)",
        4,
    ),
    (
        "flowgate_port_rx_errors_total",
        "Erroneous received packets (NIC)",
        5,
    ),
    (
        "flowgate_port_tx_errors_total",
        "Failed transmissions (NIC)",
        6,
    ),
    (
        "flowgate_port_rx_nombuf_total",
        "RX mbuf allocation failures",
        7,
    ),
];

impl Families {
    fn put(&mut self, kind: Kind, name: &'static str, help: &str, labels: &[(&str, &str)], v: f64) {
        match kind {
            Kind::Counter => self.counter(name, help, labels, v),
            Kind::Gauge => self.gauge(name, help, labels, v),
        }
    }
}

/// `GET /metrics`: the whole exposition.
pub fn scrape(app: &App) -> String {
    let mut f = Families::default();
    let stalled = app.control.stalled_workers();
    for (w, view) in app.control.views().iter().enumerate() {
        let c = &view.counters;
        let ws = w.to_string();
        let wl = [("worker", ws.as_str())];
        for (i, port) in app.ports.iter().enumerate() {
            let p = &c.ports[i];
            let l = [("port", port.as_str()), ("worker", ws.as_str())];
            for (name, help, value) in PORT_METRICS {
                f.counter(name, help, &l, value(p));
            }
            for r in DropReason::ALL {
                f.counter(
                    "flowgate_dropped_packets_total",
                    "Packets dropped, by the port they arrived on and why",
                    &[
                        ("port", port.as_str()),
                        ("worker", ws.as_str()),
                        ("reason", r.as_str()),
                    ],
                    p.dropped[r as usize] as f64,
                );
            }
        }
        for (name, help, kind, value) in WORKER_METRICS {
            f.put(*kind, name, help, &wl, value(c));
        }
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
        for r in TcpInvalid::ALL {
            f.counter(
                "flowgate_tcp_invalid_total",
                "TCP segments that did not count (out of window, inexact RST, ...) by reason",
                &[("worker", ws.as_str()), ("reason", r.as_str())],
                c.tcp_invalid[r as usize] as f64,
            );
        }
        wire_metrics(&mut f, &ws, c);
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
        f.gauge(
            "flowgate_worker_stalled",
            "1 when the worker's heartbeat stopped",
            &wl,
            f64::from(u8::from(stalled.contains(&w))),
        );
    }
    for (w, (cmd, reply, ev)) in app.control.ring_depths().into_iter().enumerate() {
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
    policy_metrics(&mut f, app);
    for (port, s) in (app.port_stats)() {
        for (name, help, i) in NIC_METRICS {
            f.counter(name, help, &[("port", port.as_str())], s[*i] as f64);
        }
    }
    let (in_use, cap) = (app.mempool)();
    f.gauge(
        "flowgate_mbuf_pool_in_use",
        "Mbufs in use",
        &[],
        f64::from(in_use),
    );
    f.gauge(
        "flowgate_mbuf_pool_capacity",
        "Mbufs in the pool",
        &[],
        f64::from(cap),
    );
    let l = app.logs.counts();
    for (kind, name, help, v) in [
        (
            C,
            "flowgate_flow_log_records_total",
            "Flow log records written",
            l.flow_records as f64,
        ),
        (
            G,
            "flowgate_log_queue_records",
            "Records waiting for the log writer",
            l.queued as f64,
        ),
        (
            C,
            "flowgate_log_queue_dropped_total",
            "Records dropped because the log writer fell behind (logging.queue_records)",
            l.queue_dropped as f64,
        ),
        (
            C,
            "flowgate_alert_log_records_total",
            "Alert log records written",
            l.alert_records as f64,
        ),
        (
            C,
            "flowgate_alert_log_suppressed_total",
            "Alert records suppressed by the rate limit",
            l.alerts_suppressed as f64,
        ),
    ] {
        f.put(kind, name, help, &[], v);
    }
    operation_metrics(&mut f, app);
    f.encode()
}

/// Per-worker wire counters: decode errors by reason, non-IP frames by EtherType,
/// fragment tracking and ICMP errors by the flow they quote.
fn wire_metrics(f: &mut Families, ws: &str, c: &WorkerCounters) {
    for e in dataplane::wire::ParseError::ALL {
        f.counter(
            "flowgate_malformed_packets_total",
            "Malformed or truncated frames by decode error",
            &[("worker", ws), ("reason", e.as_str())],
            c.malformed_by_reason[e.index()] as f64,
        );
    }
    for (slot, n) in c.non_ip_by_ethertype.iter().enumerate() {
        f.counter(
            "flowgate_non_ip_packets_total",
            "Non-IP frames by EtherType (passed: ARP and non_ip_pass_ethertypes)",
            &[
                ("worker", ws),
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
            &[("worker", ws), ("outcome", outcome)],
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
            &[("worker", ws), ("outcome", outcome)],
            v as f64,
        );
    }
}

fn policy_metrics(f: &mut Families, app: &App) {
    for ((sid, action), hits) in app.policy.rule_hits() {
        let s = sid.to_string();
        f.counter(
            "flowgate_rule_hits_total",
            "Flows decided (or alerted) by a stateful rule",
            &[("sid", s.as_str()), ("action", action.as_str())],
            hits as f64,
        );
    }
    let pol = app.policy.current();
    f.gauge(
        "flowgate_policy_epoch",
        "Epoch of the policy in force",
        &[],
        f64::from(pol.epoch()),
    );
    for (result, n) in [
        ("ok", &app.policy.reloads_ok),
        ("failed", &app.policy.reloads_failed),
    ] {
        f.counter(
            "flowgate_policy_reloads_total",
            "Policy reloads by result",
            &[("result", result)],
            n.load(Ordering::Relaxed) as f64,
        );
    }
    f.gauge(
        "flowgate_policy_last_reload_ok",
        "1 if the last reload succeeded",
        &[],
        f64::from(u8::from(app.policy.last_error().is_none())),
    );
}

fn operation_metrics(f: &mut Families, app: &App) {
    let om = app.ops.metrics();
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
    for (kind, name, help, v) in [
        (
            C,
            "flowgate_flows_captured_total",
            "Flows returned by captures",
            om.flows_captured as f64,
        ),
        (
            C,
            "flowgate_operation_flows_flushed_total",
            "Flows removed by flushes (as reported to operations)",
            om.flows_flushed as f64,
        ),
        (
            G,
            "flowgate_operations_in_progress",
            "Operations running now",
            om.in_progress as f64,
        ),
        (
            C,
            "flowgate_operation_history_write_errors_total",
            "Failed writes of operation history",
            om.history_write_errors as f64,
        ),
    ] {
        f.put(kind, name, help, &[], v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_text_format() {
        let mut f = Families::default();
        f.counter(
            "flowgate_rx_packets_total",
            "Packets received",
            &[("port", "a"), ("worker", "0")],
            5.0,
        );
        f.counter(
            "flowgate_rx_packets_total",
            "Packets received",
            &[("port", "b"), ("worker", "0")],
            7.0,
        );
        f.gauge(
            "flowgate_flows_active",
            "Active flows",
            &[("worker", "0")],
            3.0,
        );
        let text = f.encode();
        assert!(
            text.contains("# TYPE flowgate_rx_packets_total counter"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_rx_packets_total{port=\"b\",worker=\"0\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_flows_active{worker=\"0\"} 3"),
            "{text}"
        );
    }
}
