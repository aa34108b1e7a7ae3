//! The fleet's own Prometheus metrics: per-zone reachability and the latency of calls to
//! each appliance, and the latency and outcome of each client request. The appliances'
//! metrics are scraped from the appliances directly (README: one job, a `zone` label each).

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::upstream::UpstreamError;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    zone_up: IntGaugeVec,
    zone_policy_in_sync: IntGaugeVec,
    upstream_seconds: HistogramVec,
    upstream_errors: IntCounterVec,
    request_seconds: HistogramVec,
    requests: IntCounterVec,
}

impl Metrics {
    pub fn new(zones: &[String]) -> Metrics {
        let registry = Registry::new();
        let zone_up = IntGaugeVec::new(
            Opts::new(
                "flowgate_fleet_zone_up",
                "1 when the zone's appliance answered its last call or probe, else 0",
            ),
            &["zone"],
        )
        .expect("metric definition");
        let zone_policy_in_sync = IntGaugeVec::new(
            Opts::new(
                "flowgate_fleet_zone_policy_in_sync",
                "1 when the zone has every policy change the fleet accepted, else 0",
            ),
            &["zone"],
        )
        .expect("metric definition");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "flowgate_fleet_upstream_seconds",
                "Latency of calls from the fleet to a zone's appliance",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["zone", "action"],
        )
        .expect("metric definition");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "flowgate_fleet_upstream_errors_total",
                "Calls to a zone's appliance that failed, by kind (unreachable or the API error type)",
            ),
            &["zone", "kind"],
        )
        .expect("metric definition");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "flowgate_fleet_request_seconds",
                "Latency of client requests to the fleet, by action",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["action"],
        )
        .expect("metric definition");
        let requests = IntCounterVec::new(
            Opts::new(
                "flowgate_fleet_requests_total",
                "Client requests to the fleet, by action and outcome (ok or the error type)",
            ),
            &["action", "outcome"],
        )
        .expect("metric definition");
        for m in [&zone_up, &zone_policy_in_sync] {
            registry
                .register(Box::new(m.clone()))
                .expect("metric registration");
        }
        for m in [&upstream_seconds, &request_seconds] {
            registry
                .register(Box::new(m.clone()))
                .expect("metric registration");
        }
        for m in [&upstream_errors, &requests] {
            registry
                .register(Box::new(m.clone()))
                .expect("metric registration");
        }
        for z in zones {
            zone_up.with_label_values(&[z]).set(0);
            zone_policy_in_sync.with_label_values(&[z]).set(0);
        }
        Metrics {
            registry,
            zone_up,
            zone_policy_in_sync,
            upstream_seconds,
            upstream_errors,
            request_seconds,
            requests,
        }
    }

    pub fn observe_upstream(
        &self,
        zone: &str,
        action: &str,
        took: Duration,
        out: &Result<serde_json::Value, UpstreamError>,
    ) {
        self.upstream_seconds
            .with_label_values(&[zone, action])
            .observe(took.as_secs_f64());
        match out {
            Ok(_) => self.set_zone_up(zone, true),
            Err(UpstreamError::Api { kind, .. }) => {
                self.set_zone_up(zone, true);
                self.upstream_errors.with_label_values(&[zone, kind]).inc();
            }
            Err(UpstreamError::Unreachable { .. }) => {
                self.set_zone_up(zone, false);
                self.upstream_errors
                    .with_label_values(&[zone, "unreachable"])
                    .inc();
            }
        }
    }

    pub fn set_zone_up(&self, zone: &str, up: bool) {
        self.zone_up.with_label_values(&[zone]).set(i64::from(up));
    }

    pub fn set_zone_in_sync(&self, zone: &str, in_sync: bool) {
        self.zone_policy_in_sync
            .with_label_values(&[zone])
            .set(i64::from(in_sync));
    }

    pub fn observe_request(&self, action: &str, outcome: &str, took: Duration) {
        // Unknown actions share one label value: a client must not grow the series set.
        let action = if crate::router::is_known_action(action) {
            action
        } else {
            "(unknown)"
        };
        self.request_seconds
            .with_label_values(&[action])
            .observe(took.as_secs_f64());
        self.requests.with_label_values(&[action, outcome]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
