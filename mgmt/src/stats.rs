//! `GET /v1/stats`: the live flow table and traffic, aggregated over the workers' latest
//! counter snapshots and per worker.

use serde_json::{json, Value};

use dataplane::flow::TcpInvalid;
use dataplane::worker::counters::DropReason;
use dataplane::worker::WorkerCounters;

use crate::app::App;

/// The sum of the workers' counters.
pub fn totals(views: &[WorkerCounters]) -> WorkerCounters {
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
        let (f, g) = (&mut t.fragments, &v.fragments);
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

/// The `/v1/stats` document.
pub fn stats_json(app: &App) -> Value {
    let views = app.control.views();
    let counters: Vec<WorkerCounters> = views.iter().map(|v| v.counters).collect();
    let t = totals(&counters);
    let stalled = app.control.stalled_workers();
    let ports: Vec<Value> = app
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
            json!({"worker": i, "lcore": app.control.links()[i].lcore,
                   "flows_active": c.flows_active, "table_capacity": c.table_capacity,
                   "emergency_mode": c.emergency_mode, "policy_epoch": c.policy_epoch,
                   "stalled": stalled.contains(&i), "loops": c.loops})
        })
        .collect();
    let pol = app.policy.current();
    json!({
        "firewall_name": app.cfg.appliance.firewall_name,
        "firewall_arn": app.cfg.appliance.firewall_arn,
        "zone": app.cfg.appliance.zone,
        "uptime_seconds": app.started.elapsed().as_secs(),
        "policy": {"epoch": pol.epoch(), "rules": pol.rules().len(), "summary": pol.summary(),
                   "last_reload_error": app.policy.last_error()},
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
