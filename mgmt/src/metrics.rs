//! Prometheus exposition. Workers count in plain per-worker integers; at scrape time the
//! management thread turns the latest snapshots into metric families (names follow the
//! Prometheus conventions: `flowgate_*_total` counters, base units).

use std::collections::HashMap;

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
