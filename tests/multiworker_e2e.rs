//! Flow operations across several workers through the real binary:
//! * a known set of flows on two workers (veth pairs attached with `net_af_packet`, traffic
//!   sent by a raw-socket helper so a second stage can follow the flush): a capture returns
//!   exactly them with their counters and workers, a flush removes exactly them, and their
//!   next packets are midstream;
//! * a 1,000,000-flow table on two workers (`net_pcap`): a capture and a flush scan all of
//!   it while looping traffic (`infinite_rx`) keeps being forwarded by both workers.

mod common;

use common::*;
use dataplane::packet::tcp_flags::{ACK, SYN};
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn write_pcap(path: &Path, frames: impl IntoIterator<Item = Vec<u8>>) {
    let mut w = PcapOut::create(path);
    for f in frames {
        w.put(&f);
    }
    w.finish();
}

fn syn(b: &FrameBuilder, sport: u16, dport: u16) -> Vec<u8> {
    tcp(b, sport, dport, SYN)
}

fn tcp(b: &FrameBuilder, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sport,
        dst_port: dport,
        seq: 1000,
        ack: if flags & ACK != 0 { 5001 } else { 0 },
        flags,
        window: 65535,
        options: &[],
        payload: &[],
    })
}

const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

/// Starts a native-API operation and waits until it is settled; returns the operation.
fn run_op(api: &str, kind: &str, body: &Value) -> Value {
    let (st, resp) = http(
        "POST",
        api,
        &format!("/v1/operations/{kind}"),
        &body.to_string(),
    );
    assert_eq!(st, 202, "start {kind}: {resp}");
    let id = serde_json::from_str::<Value>(&resp).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_op(api, &id, 120)
}

fn wait_op(api: &str, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (st, resp) = http("GET", api, &format!("/v1/operations/{id}"), "");
        assert_eq!(st, 200, "{resp}");
        let op: Value = serde_json::from_str(&resp).unwrap();
        if op["status"] != "IN_PROGRESS" {
            return op;
        }
        assert!(
            Instant::now() < deadline,
            "operation {id} never settled: {op}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn results(api: &str, id: &str) -> Vec<Value> {
    let (st, resp) = http(
        "GET",
        api,
        &format!("/v1/operations/{id}/results?max=10000"),
        "",
    );
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    assert!(v["next_token"].is_null(), "results fit one page");
    v["flows"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// A known set of flows on two workers, over veth pairs.

/// Sends each (interface, frames) in order through the raw-socket helper.
fn send(dir: &TempDir, stage: &str, batches: &[(&str, &[Vec<u8>])]) {
    let mut args = vec![repo()
        .join("tests/helpers/send_frames.py")
        .display()
        .to_string()];
    for (k, (iface, frames)) in batches.iter().enumerate() {
        let path = dir.path(&format!("{stage}-{k}.pcap"));
        write_pcap(&path, frames.iter().cloned());
        args.push(iface.to_string());
        args.push(path.display().to_string());
    }
    let out = Command::new("python3")
        .args(&args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "send_frames.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One expected flow: (src, dst, sport, dport, proto, packets, bytes, worker).
type Expected = (String, String, u64, u64, u64, u64, u64, u64);

struct Side {
    iface: &'static str,
    worker: u64,
    client: IpAddr,
    server: IpAddr,
    tcp_base: u16,
    udp_base: u16,
}

const TCP_PER_WORKER: u16 = 12;
const UDP_PER_WORKER: u16 = 8;

impl Side {
    fn builder(&self) -> FrameBuilder {
        FrameBuilder::new(self.client, self.server)
    }
    /// Stage 1: a SYN per TCP flow, 1-3 packets per UDP flow.
    fn stage1(&self) -> Vec<Vec<u8>> {
        let b = self.builder();
        let mut f: Vec<Vec<u8>> = (0..TCP_PER_WORKER)
            .map(|i| syn(&b, self.tcp_base + i, 443))
            .collect();
        for i in 0..UDP_PER_WORKER {
            for _ in 0..=(i % 3) {
                f.push(self.udp(i));
            }
        }
        f
    }
    fn udp(&self, i: u16) -> Vec<u8> {
        self.builder()
            .udp(self.udp_base + i, 53, &vec![b'u'; 20 + usize::from(i)])
    }
    /// Stage 2: the next packet of every flow (an ACK for TCP, one more datagram for UDP).
    fn stage2(&self) -> Vec<Vec<u8>> {
        let b = self.builder();
        (0..TCP_PER_WORKER)
            .map(|i| tcp(&b, self.tcp_base + i, 443, ACK))
            .chain((0..UDP_PER_WORKER).map(|i| self.udp(i)))
            .collect()
    }
    /// The flows of [`Side::stage1`]; byte counts are whole frames, as the worker counts them.
    fn expected(&self) -> BTreeSet<Expected> {
        let mut s = BTreeSet::new();
        let len = |f: &Vec<u8>| f.len() as u64;
        let tcp_syn = syn(&self.builder(), self.tcp_base, 443);
        for i in 0..TCP_PER_WORKER {
            s.insert((
                self.client.to_string(),
                self.server.to_string(),
                u64::from(self.tcp_base + i),
                443,
                6,
                1,
                len(&tcp_syn),
                self.worker,
            ));
        }
        for i in 0..UDP_PER_WORKER {
            let n = u64::from(i % 3) + 1;
            s.insert((
                self.client.to_string(),
                self.server.to_string(),
                u64::from(self.udp_base + i),
                53,
                17,
                n,
                n * len(&self.udp(i)),
                self.worker,
            ));
        }
        s
    }
}

fn rows(flows: &[Value]) -> BTreeSet<Expected> {
    flows
        .iter()
        .map(|f| {
            let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f}"));
            (
                f["src"].as_str().unwrap().to_string(),
                f["dst"].as_str().unwrap().to_string(),
                n("src_port"),
                n("dst_port"),
                n("protocol"),
                n("packets"),
                n("bytes"),
                n("worker"),
            )
        })
        .collect()
}

#[test]
fn two_workers_capture_exact_set_flush_exactly_them_then_midstream() {
    require_root();
    let dir = TempDir::new("mw-exact");
    let veths = Veths::create(&["fg-mw-a0", "fg-mw-b0", "fg-mw-a1", "fg-mw-b1"]);
    let sides = [
        Side {
            iface: "fg-mw-a0p",
            worker: 0,
            client: "198.18.0.10".parse().unwrap(),
            server: "198.18.1.10".parse().unwrap(),
            tcp_base: 41000,
            udp_base: 5000,
        },
        Side {
            iface: "fg-mw-a1p",
            worker: 1,
            client: "198.18.2.10".parse().unwrap(),
            server: "198.18.3.10".parse().unwrap(),
            tcp_base: 42000,
            udp_base: 6000,
        },
    ];
    std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
    let vdevs: Vec<String> = veths
        .names()
        .iter()
        .enumerate()
        .map(|(k, n)| format!("net_af_packet{k},iface={n}"))
        .collect();
    let api = format!("127.0.0.1:{}", free_port());
    let config = TestConfig::new(
        "mw-exact",
        &api,
        eal_args(2, &vdevs),
        2,
        &[
            ("net_af_packet0", "net_af_packet1"),
            ("net_af_packet2", "net_af_packet3"),
        ],
    )
    .set("eal", "mbufs", "16383")
    .set_pairs("rx_desc", "512")
    .set_pairs("tx_desc", "512")
    .set("flow_table", "capacity_per_worker", "65536")
    .set("flow_table.timeouts", "tcp_new", "900")
    .set("flow_table.timeouts", "udp_new", "900")
    .set_str("logging", "alert_log", "off")
    .render();
    let mut fg = Appliance::start(&dir.0, &config, &api);
    let stage1: Vec<Vec<Vec<u8>>> = sides.iter().map(Side::stage1).collect();
    send(
        &dir,
        "stage1",
        &[(sides[0].iface, &stage1[0]), (sides[1].iface, &stage1[1])],
    );
    let (n0, n1) = (stage1[0].len() as f64, stage1[1].len() as f64);
    fg.wait_for(20, "stage 1 received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_af_packet0\"") >= n0
            && a.metric("flowgate_rx_packets_total", "port=\"net_af_packet2\"") >= n1
    });
    // Counts are checked on the flows themselves (captures below), not on port counters:
    // a stray frame the kernel might put on a fresh veth must not fail the test.
    let per_worker = f64::from(TCP_PER_WORKER + UDP_PER_WORKER);

    // Capture everything in 198.18.0.0/15: exactly the 40 flows, counters and workers right.
    let everything = json!({"filters": [{"src": "198.18.0.0/15"}]});
    let cap = run_op(&api, "capture", &everything);
    assert_eq!(cap["status"], "COMPLETED", "{cap}");
    let got = rows(&results(&api, cap["id"].as_str().unwrap()));
    let all: BTreeSet<Expected> = sides.iter().flat_map(Side::expected).collect();
    assert_eq!(got, all, "captured flows");
    for w in cap["workers"].as_array().unwrap() {
        assert_eq!(w["scan"], "done", "{cap}");
        assert_eq!(w["matched"], per_worker as u64, "{cap}");
    }

    // Flush the TCP flows to port 443 on both workers: exactly those go.
    let flush = run_op(
        &api,
        "flush",
        &json!({"filters": [{"src": "198.18.0.0/15", "dst_port": "443", "protocols": ["tcp"]}]}),
    );
    assert_eq!(flush["status"], "COMPLETED", "{flush}");
    let tcp: BTreeSet<Expected> = all.iter().filter(|r| r.4 == 6).cloned().collect();
    let udp: BTreeSet<Expected> = all.iter().filter(|r| r.4 == 17).cloned().collect();
    assert_eq!(
        rows(&results(&api, flush["id"].as_str().unwrap())),
        tcp,
        "flushed flows"
    );
    // Worker counters reach /metrics with the next stats snapshot (every 100 ms).
    fg.wait_for(5, "flushed counter", |a| {
        a.metric("flowgate_flows_flushed_total", "") == 2.0 * f64::from(TCP_PER_WORKER)
    });
    let left = run_op(&api, "capture", &everything);
    assert_eq!(
        rows(&results(&api, left["id"].as_str().unwrap())),
        udp,
        "flows left after the flush"
    );

    // Stage 2: the next packet of every flow. Flushed TCP flows are midstream (dropped by
    // the stream exception policy); the UDP flows were kept and count one more packet.
    let midstream_before = fg.metric("flowgate_midstream_packets_total", "");
    let stage2: Vec<Vec<Vec<u8>>> = sides.iter().map(Side::stage2).collect();
    send(
        &dir,
        "stage2",
        &[(sides[0].iface, &stage2[0]), (sides[1].iface, &stage2[1])],
    );
    let (m0, m1) = (n0 + stage2[0].len() as f64, n1 + stage2[1].len() as f64);
    fg.wait_for(20, "stage 2 received", |a| {
        a.metric("flowgate_rx_packets_total", "port=\"net_af_packet0\"") >= m0
            && a.metric("flowgate_rx_packets_total", "port=\"net_af_packet2\"") >= m1
    });
    let m = fg.metrics();
    let flushed_n = 2.0 * f64::from(TCP_PER_WORKER);
    assert_eq!(
        metric_sum(&m, "flowgate_midstream_packets_total", "") - midstream_before,
        flushed_n,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "flowgate_dropped_packets_total", "reason=\"midstream\""),
        flushed_n,
        "{m}"
    );
    let after = run_op(&api, "capture", &everything);
    let bumped: BTreeSet<Expected> = udp
        .iter()
        .map(|r| {
            let per = r.6 / r.5;
            let mut r = r.clone();
            r.5 += 1;
            r.6 += per;
            r
        })
        .collect();
    assert_eq!(
        rows(&results(&api, after["id"].as_str().unwrap())),
        bumped,
        "flows after stage 2"
    );
    fg.stop();
    let log = std::fs::read_to_string(dir.path("flow.log")).unwrap();
    let flushed_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"reason\":\"flushed\""))
        .collect();
    // One netflow record per direction of each flushed flow.
    assert_eq!(flushed_lines.len() as f64, 2.0 * flushed_n, "{log}");
    assert!(flushed_lines.iter().all(|l| l.contains("\"last_state\"")));
    drop(veths);
}

// ---------------------------------------------------------------------------------------
// 1,000,000 flows on two workers.

/// Flow `i` of the large table: source 198.18.0.0 + i/16 (inside 198.18.0.0/16), source
/// port 10000 + i%16, destination 198.19.0.1, port 443 for odd `i`, 80 for even `i`.
fn big_flow(i: u32) -> (Ipv4Addr, u16, u16) {
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i >> 4));
    (
        src,
        10000 + (i & 15) as u16,
        if i & 1 == 1 { 443 } else { 80 },
    )
}

const BIG_FLOWS: u32 = 1_000_000;

fn big_pcap(path: &Path, range: std::ops::Range<u32>) {
    let dst = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1));
    write_pcap(
        path,
        range.map(|i| {
            let (src, sport, dport) = big_flow(i);
            syn(&FrameBuilder::new(IpAddr::V4(src), dst), sport, dport)
        }),
    );
}

#[test]
fn capture_and_flush_of_a_million_flows_on_two_workers_never_stop_forwarding() {
    require_root();
    let dir = TempDir::new("mw-big");
    let half = BIG_FLOWS / 2;
    big_pcap(&dir.path("big0.pcap"), 0..half);
    big_pcap(&dir.path("big1.pcap"), half..BIG_FLOWS);
    write_pcap(&dir.path("empty.pcap"), []);
    // Looping traffic, one UDP flow per worker, outside the big table's addresses.
    for w in 0..2u16 {
        let b = FrameBuilder::new("2001:2::10".parse().unwrap(), "2001:2::20".parse().unwrap());
        write_pcap(
            &dir.path(&format!("loop{w}.pcap")),
            (0..32).map(|_| b.udp(7000 + w, 7000, b"keepalive")),
        );
    }
    std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
    // Pairs 0 and 2 go to worker 0, pairs 1 and 3 to worker 1 (round-robin).
    let p = |n: &str| dir.path(n).display().to_string();
    let vdevs = vec![
        format!("net_pcap0,rx_pcap={}", p("big0.pcap")),
        format!("net_pcap1,rx_pcap={}", p("empty.pcap")),
        format!("net_pcap2,rx_pcap={}", p("big1.pcap")),
        format!("net_pcap3,rx_pcap={}", p("empty.pcap")),
        format!("net_pcap4,rx_pcap={},infinite_rx=1", p("loop0.pcap")),
        format!("net_pcap5,rx_pcap={}", p("empty.pcap")),
        format!("net_pcap6,rx_pcap={},infinite_rx=1", p("loop1.pcap")),
        format!("net_pcap7,rx_pcap={}", p("empty.pcap")),
    ];
    let api = format!("127.0.0.1:{}", free_port());
    let pairs: Vec<(String, String)> = (0..4)
        .map(|k| {
            (
                format!("net_pcap{}", 2 * k),
                format!("net_pcap{}", 2 * k + 1),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let config = TestConfig::new("mw-big", &api, eal_args(2, &vdevs), 2, &pairs)
        .set("eal", "mbufs", "16383")
        .set_pairs("rx_desc", "512")
        .set_pairs("tx_desc", "512")
        .set("flow_table", "capacity_per_worker", "1048576")
        .set("flow_table.timeouts", "tcp_new", "900")
        .set("flow_table.timeouts", "udp_new", "900")
        .set_str("logging", "flow_log", "off")
        .set_str("logging", "alert_log", "off")
        .set("operations", "result_cap", "10000")
        .set("operations", "worker_timeout_ms", "60000")
        .render();
    let mut fg = Appliance::start(&dir.0, &config, &api);
    fg.wait_for(90, "the big table", |a| {
        a.metric("flowgate_flows_created_total", "") >= f64::from(BIG_FLOWS + 2)
    });
    let m = fg.metrics();
    assert_eq!(
        metric_sum(&m, "flowgate_flows_active", ""),
        f64::from(BIG_FLOWS + 2),
        "{m}"
    );
    assert_eq!(metric_sum(&m, "flowgate_table_full_total", ""), 0.0);

    // Forwarding progress sampled on both looping ports while `op` runs.
    let tx = |a: &Appliance| {
        let m = a.metrics();
        [
            metric_sum(&m, "flowgate_tx_packets_total", "port=\"net_pcap5\""),
            metric_sum(&m, "flowgate_tx_packets_total", "port=\"net_pcap7\""),
        ]
    };
    let watch = |kind: &str, body: Value| -> (Value, Vec<[f64; 2]>) {
        let (st, resp) = http(
            "POST",
            &api,
            &format!("/v1/operations/{kind}"),
            &body.to_string(),
        );
        assert_eq!(st, 202, "{resp}");
        let id = serde_json::from_str::<Value>(&resp).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = Instant::now();
        let mut samples = vec![tx(&fg)];
        loop {
            let (_, resp) = http("GET", &api, &format!("/v1/operations/{id}"), "");
            let op: Value = serde_json::from_str(&resp).unwrap();
            samples.push(tx(&fg));
            // Sample at least 400 ms even when the operation is faster than the 100 ms
            // stats snapshots, so every span checked holds several snapshots.
            if op["status"] != "IN_PROGRESS" && started.elapsed() > Duration::from_millis(400) {
                return (op, samples);
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{kind} never settled"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let before = tx(&fg);
    std::thread::sleep(Duration::from_millis(300));
    let idle = tx(&fg);
    assert!(
        idle[0] > before[0] && idle[1] > before[1],
        "looping traffic is not forwarded"
    );

    // Capture: two /24s on port 443, one on each worker's shard (2048 flows each).
    let (cap, samples) = watch(
        "capture",
        json!({"filters": [
            {"src": "198.18.0.0/24", "dst_port": 443},
            {"src": "198.18.200.0/24", "dst_port": "443", "protocols": ["6"]},
        ]}),
    );
    assert_eq!(cap["status"], "COMPLETED", "{cap}");
    assert_eq!(cap["flows_matched"], 4096, "{cap}");
    for w in cap["workers"].as_array().unwrap() {
        assert_eq!(w["scan"], "done", "{cap}");
        assert!(w["scanned"].as_u64().unwrap() >= u64::from(half), "{cap}");
    }
    let flows = results(&api, cap["id"].as_str().unwrap());
    let got: BTreeSet<(String, u64, u64)> = flows
        .iter()
        .map(|f| {
            assert_eq!(
                (f["packets"].as_u64(), f["state"].as_str()),
                (Some(1), Some("SYN_SENT")),
                "{f}"
            );
            (
                f["src"].as_str().unwrap().to_string(),
                f["src_port"].as_u64().unwrap(),
                f["worker"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64, u64)> = (0..BIG_FLOWS)
        .filter(|i| i & 1 == 1 && matches!(big_flow(*i).0.octets()[2], 0 | 200))
        .map(|i| {
            let (src, sport, _) = big_flow(i);
            (src.to_string(), u64::from(sport), u64::from(i >= half))
        })
        .collect();
    assert_eq!(got, want, "captured set");
    let cap_secs = cap["duration_seconds"].as_f64().unwrap();
    assert_moving(&samples, "capture");

    // Flush every port-80 flow (500,000): all removed, only the first result_cap listed.
    let (flush, samples) = watch(
        "flush",
        json!({"filters": [{"dst": "198.19.0.1/32", "dst_port": 80}]}),
    );
    assert_eq!(flush["status"], "COMPLETED_WITH_ERRORS", "{flush}");
    assert_eq!(
        flush["message"], "Result cap of 10000 flows reached",
        "{flush}"
    );
    assert_eq!(flush["flows_matched"], u64::from(half), "{flush}");
    assert_eq!(flush["results_kept"], 10000, "{flush}");
    let flush_secs = flush["duration_seconds"].as_f64().unwrap();
    assert_moving(&samples, "flush");
    // Workers publish their counters every 100 ms: the operation can complete before the
    // snapshot that counts its last flows reaches /metrics.
    fg.wait_for(5, "counters of the flush published", |a| {
        let m = a.metrics();
        metric_sum(&m, "flowgate_flows_flushed_total", "") == f64::from(half)
            && metric_sum(&m, "flowgate_flows_active", "") == f64::from(half + 2)
    });
    let m = fg.metrics();
    assert_eq!(
        metric_sum(&m, "flowgate_flows_active", ""),
        f64::from(half + 2),
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "flowgate_flows_flushed_total", ""),
        f64::from(half),
        "{m}"
    );
    eprintln!(
        "1,000,000-flow table on 2 workers: capture {cap_secs:.3} s, flush of 500,000 flows {flush_secs:.3} s"
    );
    fg.stop();
}

/// Both looping ports forwarded over the whole operation and within every span of seven
/// samples (≥ 300 ms, three stats snapshots): a worker scanning its shard in one go would
/// show a flat stretch.
fn assert_moving(samples: &[[f64; 2]], what: &str) {
    let spans = std::iter::once((samples[0], samples[samples.len() - 1]))
        .chain(samples.windows(7).map(|s| (s[0], s[6])));
    for (from, to) in spans {
        for (w, (a, b)) in from.iter().zip(to).enumerate() {
            assert!(
                b > *a,
                "worker {w} stopped forwarding during the {what}: {samples:?}"
            );
        }
    }
}
