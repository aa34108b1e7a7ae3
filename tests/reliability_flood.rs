//! Flow-table exhaustion through the real binary and DPDK path (`net_pcap` vdevs): a
//! SYN + UDP flood with random sources hits a small table while established TCP
//! connections are open. Established flows keep working (their later segments all come
//! out of port B), the table enters emergency mode and leaves it once the flood's flows
//! expire on the emergency timeouts, every packet is forwarded or dropped with a reason,
//! and the RSS stays flat.
//!
//! CI runs the short version; `scripts/reliability/flood.sh` runs it at scale with
//! `FG_REL_FLOOD_FLOWS` (flows offered) and prints the figures (`FG_REL_REPORT=1`).

mod common;

use common::*;
use dataplane::packet::tcp_flags::{ACK, PSH, SYN};
use dataplane::wire::build::{FrameBuilder, TcpSegment};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

const CAPACITY: u32 = 4096;
const ESTABLISHED: u16 = 64;

const PASS_ALL: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

fn seg(
    b: &FrameBuilder,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    p: &[u8],
) -> Vec<u8> {
    b.tcp(&TcpSegment {
        src_port: sport,
        dst_port: dport,
        seq,
        ack,
        flags,
        window: 65535,
        options: &[],
        payload: p,
    })
}

/// xorshift64*: deterministic "random" flood sources.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS of the appliance")
}

struct Offered {
    /// Data segments of the established connections sent after the flood.
    after_flood: Vec<Vec<u8>>,
    total: u64,
}

/// Handshakes + one data segment per connection, then `flood` new flows (2/3 SYNs, 1/3
/// UDP) from random sources in 198.18.0.0/15, then a second data segment per connection.
fn write_traffic(path: &Path, flood: u64) -> Offered {
    let client = FrameBuilder::new(ip("198.18.0.1"), ip("198.18.0.2"));
    let server = FrameBuilder::new(ip("198.18.0.2"), ip("198.18.0.1"));
    let mut w = PcapOut::create(path);
    let mut total = 0u64;
    let mut put = |f: &[u8]| {
        total += 1;
        w.put(f);
    };
    for c in 0..ESTABLISHED {
        let sport = 30000 + c;
        put(&seg(&client, sport, 443, 100, 0, SYN, &[]));
        put(&seg(&server, 443, sport, 900, 101, SYN | ACK, &[]));
        put(&seg(&client, sport, 443, 101, 901, ACK, &[]));
        put(&seg(&client, sport, 443, 101, 901, PSH | ACK, b"before"));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..flood {
        let r = rng.next();
        // 198.18.0.0/15 minus the two lab hosts' /24.
        let src = Ipv4Addr::from(0xc612_0000 | (((r >> 8) as u32) & 0x1_ffff) | 0x100);
        let b = FrameBuilder::new(IpAddr::V4(src), ip("198.18.0.2"));
        let sport = 1024 + (r >> 40) as u16 % 60000;
        let f = if i % 3 == 2 {
            b.udp(sport, 53, b"flood")
        } else {
            seg(&b, sport, 80, r as u32, 0, SYN, &[])
        };
        put(&f);
    }
    let mut after_flood = Vec::new();
    for c in 0..ESTABLISHED {
        let f = seg(&client, 30000 + c, 443, 107, 901, PSH | ACK, b"after!");
        put(&f);
        after_flood.push(f);
    }

    w.finish();
    Offered { after_flood, total }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config(dir: &TempDir, api: &str) -> String {
    let mut c = TestConfig::pcap(dir, "flood-test", api)
        .set("flow_table", "capacity_per_worker", &CAPACITY.to_string())
        .set("flow_table", "emergency_high_pct", "90")
        .set("flow_table", "emergency_low_pct", "50")
        .set_str("flow_table", "full_action", "drop_new")
        .set("flow_table", "expiry_slots_per_poll", "256");
    for (key, secs) in [
        ("tcp_new", 4),
        ("tcp_established", 100),
        ("tcp_closed", 1),
        ("udp_new", 4),
        ("udp_established", 4),
        ("icmp_new", 1),
        ("icmp_established", 1),
        ("other_new", 1),
        ("other_established", 1),
    ] {
        c = c.set("flow_table.emergency_timeouts", key, &secs.to_string());
    }
    c.render()
}

#[test]
fn flood_against_full_table_keeps_established_flows_and_flat_memory() {
    require_root();
    let flood: u64 = std::env::var("FG_REL_FLOOD_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    let dir = TempDir::new("flood");
    let offered = write_traffic(&dir.path("in_a.pcap"), flood);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    std::fs::write(dir.path("policy.toml"), PASS_ALL).unwrap();
    let api = format!("127.0.0.1:{}", free_port());

    // The pcap vdev starts reading at start-up: RSS "before" is taken on an identical
    // appliance with no traffic, so start-up allocations are out of the comparison.
    let idle_dir = TempDir::new("flood-idle");
    write_pcap(&idle_dir.path("in_a.pcap"), &[]);
    write_pcap(&idle_dir.path("in_b.pcap"), &[]);
    std::fs::write(idle_dir.path("policy.toml"), PASS_ALL).unwrap();
    let idle_api = format!("127.0.0.1:{}", free_port());
    let mut idle = Appliance::start(&idle_dir.0, &config(&idle_dir, &idle_api), &idle_api);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(idle.child.as_ref().unwrap().id());
    idle.stop();

    let started = Instant::now();
    let mut fg = Appliance::start(&dir.0, &config(&dir, &api), &api);
    let pid = fg.child.as_ref().unwrap().id();
    let n = offered.total as f64;
    let mut rss_during = 0;
    let mut emergency_seen = false;
    fg.wait_for(120, "every offered frame received", |a| {
        rss_during = rss_during.max(rss_kib(pid));
        emergency_seen |= a.metric("flowgate_flow_table_emergency", "") >= 1.0;
        a.metric("flowgate_rx_packets_total", "port=\"net_pcap0\"") >= n
    });
    let replay_secs = started.elapsed().as_secs_f64();
    let m = fg.metrics();
    emergency_seen |= metric_sum(&m, "flowgate_flow_table_emergency", "") >= 1.0;
    let held = metric_sum(&m, "flowgate_flows_active", "");
    let evicted = metric_sum(&m, "flowgate_flows_evicted_total", "");
    let full = metric_sum(&m, "flowgate_table_full_total", "");
    let tx = metric_sum(&m, "flowgate_tx_packets_total", "port=\"net_pcap1\"");
    let dropped = metric_sum(&m, "flowgate_dropped_packets_total", "");
    let table_full_drops = metric_sum(
        &m,
        "flowgate_dropped_packets_total",
        "reason=\"table_full\"",
    );
    assert!(emergency_seen, "emergency mode never entered:\n{m}");
    assert!(held <= f64::from(CAPACITY), "table over capacity:\n{m}");
    assert!(
        evicted > 0.0,
        "a full table must evict unestablished flows:\n{m}"
    );
    assert_eq!(
        tx + dropped,
        n,
        "every frame forwarded or dropped with a reason:\n{m}"
    );
    assert_eq!(
        table_full_drops, full,
        "table-full drops counted by reason:\n{m}"
    );

    // Emergency timeouts (4 s for new flows) drain the flood; the table leaves emergency
    // mode at the low watermark (50 %).
    fg.wait_for(30, "emergency mode left", |a| {
        a.metric("flowgate_flow_table_emergency", "") == 0.0
    });
    // Below the low watermark the normal (longer) timeouts apply again: the rest of the
    // flood ages out later; the established connections are all still there.
    let active_after = fg.metric("flowgate_flows_active", "");
    assert!(
        active_after >= f64::from(ESTABLISHED) && active_after <= f64::from(CAPACITY / 2),
        "after emergency: {active_after} flows active"
    );
    let rss_after = rss_kib(pid);
    fg.stop();

    // Every established connection's post-flood segment went through, in order.
    let out = read_pcap(&dir.path("out_b.pcap"));
    let survived = offered
        .after_flood
        .iter()
        .filter(|f| out.contains(f))
        .count();
    assert_eq!(
        survived,
        usize::from(ESTABLISHED),
        "established flows dropped"
    );
    // Flat memory: the flow table is preallocated; allow 16 MiB of allocator noise.
    let growth = rss_during.max(rss_after).saturating_sub(rss_before);
    assert!(
        growth < 16 * 1024,
        "RSS grew by {growth} KiB (before {rss_before}, during {rss_during}, after {rss_after})"
    );
    if std::env::var_os("FG_REL_REPORT").is_some() {
        println!(
            "FLOOD offered_frames={} flood_flows={flood} capacity={CAPACITY} replay_secs={replay_secs:.2} \
             held_after_flood={held} evicted={evicted} table_full_drops={table_full_drops} \
             dropped_total={dropped} forwarded={tx} established={ESTABLISHED} survived={survived} \
             rss_kib_before={rss_before} rss_kib_during={rss_during} rss_kib_after={rss_after}",
            offered.total
        );
    }
}
