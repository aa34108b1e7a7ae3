//! Flow and alert logs: JSON lines in the shape of AWS Network Firewall's records (the
//! `firewall_name` / `availability_zone` / `event_timestamp` / `event` envelope around a
//! Suricata EVE body), written by the management side from worker events, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{eve_timestamp, Clock, EveStamps};
use crate::config::LogTarget;
use dataplane::flow::EndReason;
use dataplane::packet::{addr_to_ip, proto};
use dataplane::worker::cmd::AlertRecord;
use dataplane::worker::FlowRecord;

/// A JSON-lines sink: stdout, or a file rotated when it reaches `max_bytes`
/// (`name.1` is the newest rotated file, `name.<keep>` the oldest kept).
pub struct LineWriter {
    target: LogTarget,
    out: Option<BufWriter<File>>,
    size: u64,
    max_bytes: u64,
    keep: u32,
    /// Reused per line: formatting allocates nothing once it has grown.
    line: Vec<u8>,
    pub lines_written: u64,
    pub write_errors: u64,
}

impl LineWriter {
    pub fn open(target: LogTarget, max_bytes: u64, keep: u32) -> io::Result<LineWriter> {
        let mut w = LineWriter {
            target,
            out: None,
            size: 0,
            max_bytes: max_bytes.max(4096),
            keep,
            line: Vec::with_capacity(1024),
            lines_written: 0,
            write_errors: 0,
        };
        w.reopen()?;
        Ok(w)
    }

    fn path(&self) -> Option<&PathBuf> {
        match &self.target {
            LogTarget::File(p) => Some(p),
            LogTarget::Stdout => None,
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Some(p) = self.path().cloned() {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new().create(true).append(true).open(&p)?;
            self.size = f.metadata()?.len();
            self.out = Some(BufWriter::with_capacity(256 * 1024, f));
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Some(p) = self.path().cloned() else {
            return Ok(());
        };
        if let Some(mut o) = self.out.take() {
            o.flush()?;
        }
        let name = |i: u32| PathBuf::from(format!("{}.{i}", p.display()));
        if self.keep == 0 {
            std::fs::remove_file(&p).ok();
        } else {
            std::fs::remove_file(name(self.keep)).ok();
            for i in (1..self.keep).rev() {
                std::fs::rename(name(i), name(i + 1)).ok();
            }
            std::fs::rename(&p, name(1))?;
        }
        self.reopen()
    }

    pub fn write_line<T: Serialize>(&mut self, v: &T) {
        self.line.clear();
        if serde_json::to_writer(&mut self.line, v).is_err() {
            self.write_errors += 1;
            return;
        }
        self.finish_line();
    }

    /// Writes one line that `fill` appends to an empty buffer (no newline).
    pub fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        self.line.clear();
        fill(&mut self.line);
        self.finish_line();
    }

    fn finish_line(&mut self) {
        self.line.push(b'\n');
        let res = match &mut self.out {
            Some(o) => o.write_all(&self.line),
            None => io::stdout().lock().write_all(&self.line),
        };
        match res {
            Ok(()) => {
                self.lines_written += 1;
                self.size += self.line.len() as u64;
                if self.size >= self.max_bytes && self.rotate().is_err() {
                    self.write_errors += 1;
                }
            }
            Err(_) => self.write_errors += 1,
        }
    }

    /// Flushes, then syncs the file to disk (records that must survive a crash).
    pub fn sync(&mut self) {
        self.flush();
        if let Some(o) = &self.out {
            if o.get_ref().sync_data().is_err() {
                self.write_errors += 1;
            }
        }
    }

    pub fn flush(&mut self) {
        let ok = match &mut self.out {
            Some(o) => o.flush(),
            None => io::stdout().lock().flush(),
        };
        if ok.is_err() {
            self.write_errors += 1;
        }
    }
}

pub fn proto_name(p: u8) -> Cow<'static, str> {
    match p {
        proto::TCP => "TCP".into(),
        proto::UDP => "UDP".into(),
        proto::ICMP => "ICMP".into(),
        proto::ICMPV6 => "IPv6-ICMP".into(),
        proto::SCTP => "SCTP".into(),
        n => n.to_string().into(),
    }
}

/// Who the records say they come from.
#[derive(Clone)]
pub struct Envelope {
    pub firewall_name: String,
    pub zone: String,
    /// `{"firewall_name":…,"availability_zone":…,` with both names JSON-escaped once.
    json_prefix: String,
}

impl Envelope {
    pub fn new(firewall_name: &str, zone: &str) -> Envelope {
        let json_prefix = format!(
            "{{\"firewall_name\":{},\"availability_zone\":{},",
            Value::from(firewall_name),
            Value::from(zone)
        );
        Envelope {
            firewall_name: firewall_name.to_string(),
            zone: zone.to_string(),
            json_prefix,
        }
    }

    fn wrap<E>(&self, at: SystemTime, event: E) -> Wrapped<'_, E> {
        Wrapped {
            firewall_name: &self.firewall_name,
            availability_zone: &self.zone,
            event_timestamp: (crate::clock::unix_secs(at) as u64).to_string(),
            event,
        }
    }
}

/// The text both `netflow` records of a flow share, formatted once.
pub struct NetflowTimes {
    start: String,
    end: String,
    end_secs: u64,
}

impl NetflowTimes {
    pub fn of(clock: &Clock, stamps: &mut EveStamps, r: &FlowRecord) -> NetflowTimes {
        let (start, end) = (clock.wall(r.first_seen), clock.wall(r.last_seen));
        NetflowTimes {
            start: stamps.format(start),
            end: stamps.format(end),
            end_secs: crate::clock::unix_secs(end) as u64,
        }
    }
}

/// Appends address `a` as text: an IPv4 address as its dotted quad through `itoa` (a
/// flush of a million flows writes four million addresses, and `core::fmt`'s `Display`
/// took a third of the log writer's time), an IPv6 one through `Display` (RFC 5952).
fn write_ip(out: &mut Vec<u8>, addr: dataplane::packet::Addr) {
    match addr_to_ip(addr) {
        std::net::IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            let [a, b, c, d] = v4.octets();
            out.extend_from_slice(n.format(a).as_bytes());
            for o in [b, c, d] {
                out.push(b'.');
                out.extend_from_slice(n.format(o).as_bytes());
            }
        }
        ip => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Appends the `netflow` record of direction `d` (0: opener → responder, 1: back) of an
/// ended flow to `out`, without its newline. Written field by field rather than through
/// serde: a flush of a million flows writes two million of these, and the only text that
/// could need JSON escaping (the envelope's names) is escaped once, in [`Envelope`].
/// Field names and order follow EVE inside the service's envelope.
pub fn write_netflow(
    out: &mut Vec<u8>,
    env: &Envelope,
    clock: &Clock,
    times: &NetflowTimes,
    r: &FlowRecord,
    reason: EndReason,
    d: usize,
) {
    let (sp, dp) = dataplane::ops::visible_ports(&r.tuple);
    let (src, dst, s_port, d_port) = if d == 0 {
        (r.tuple.src, r.tuple.dst, sp, dp)
    } else {
        (r.tuple.dst, r.tuple.src, dp, sp)
    };
    let mut n = itoa::Buffer::new();
    let mut num = |out: &mut Vec<u8>, key: &[u8], v: u64| {
        out.extend_from_slice(key);
        out.extend_from_slice(n.format(v).as_bytes());
    };
    out.extend_from_slice(env.json_prefix.as_bytes());
    num(out, b"\"event_timestamp\":", times.end_secs);
    // The service writes event_timestamp as a string of epoch seconds.
    let at = out.len() - itoa::Buffer::new().format(times.end_secs).len();
    out.insert(at, b'"');
    out.push(b'"');
    out.extend_from_slice(b",\"event\":{\"timestamp\":\"");
    out.extend_from_slice(times.end.as_bytes());
    num(out, b"\",\"flow_id\":", r.flow_id);
    out.extend_from_slice(b",\"event_type\":\"netflow\",\"src_ip\":\"");
    write_ip(out, src);
    num(out, b"\",\"src_port\":", u64::from(s_port));
    out.extend_from_slice(b",\"dest_ip\":\"");
    write_ip(out, dst);
    num(out, b"\",\"dest_port\":", u64::from(d_port));
    out.extend_from_slice(b",\"proto\":\"");
    out.extend_from_slice(proto_name(r.tuple.proto).as_bytes());
    out.extend_from_slice(b"\",\"app_proto\":\"unknown\"");
    num(out, b",\"netflow\":{\"pkts\":", r.pkts[d]);
    num(out, b",\"bytes\":", r.bytes[d]);
    out.extend_from_slice(b",\"start\":\"");
    out.extend_from_slice(times.start.as_bytes());
    out.extend_from_slice(b"\",\"end\":\"");
    out.extend_from_slice(times.end.as_bytes());
    let age = clock.secs(r.last_seen.saturating_sub(r.first_seen)) as u64;
    num(out, b"\",\"age\":", age);
    num(out, b",\"min_ttl\":", u64::from(r.ttl_min[d]));
    num(out, b",\"max_ttl\":", u64::from(r.ttl_max[d]));
    out.extend_from_slice(b",\"state\":\"");
    out.extend_from_slice(if r.state.is_active() {
        b"established"
    } else {
        b"closed"
    });
    out.extend_from_slice(b"\",\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"last_state\":\"");
    out.extend_from_slice(r.state.as_str().as_bytes());
    out.extend_from_slice(b"\",\"alerted\":");
    out.extend_from_slice(if r.verdict != dataplane::packet::Verdict::Pass {
        b"true}"
    } else {
        b"false}"
    });
    if r.tuple.proto == proto::TCP {
        let flags = r.tcp_flags[d];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(b",\"tcp\":{\"tcp_flags\":\"");
        out.push(HEX[usize::from(flags >> 4)]);
        out.push(HEX[usize::from(flags & 0xf)]);
        out.push(b'"');
        for (bit, name) in TCP_FLAG_NAMES {
            if flags & bit != 0 {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":true");
            }
        }
        out.push(b'}');
    }
    if matches!(r.tuple.proto, proto::ICMP | proto::ICMPV6) {
        num(out, b",\"icmp_type\":", u64::from(r.tuple.dst_port >> 8));
        num(out, b",\"icmp_code\":", u64::from(r.tuple.dst_port & 0xff));
    }
    num(out, b",\"flowgate\":{\"worker\":", u64::from(r.worker));
    num(out, b",\"vlan\":", u64::from(r.vlan));
    out.extend_from_slice(b",\"verdict\":\"");
    out.extend_from_slice(r.verdict.as_str().as_bytes());
    num(out, b"\",\"sid\":", u64::from(r.sid));
    num(out, b",\"policy_epoch\":", u64::from(r.epoch));
    out.extend_from_slice(b"}}}");
}

const TCP_FLAG_NAMES: [(u8, &str); 8] = [
    (0x01, "fin"),
    (0x02, "syn"),
    (0x04, "rst"),
    (0x08, "psh"),
    (0x10, "ack"),
    (0x20, "urg"),
    (0x40, "ecn"),
    (0x80, "cwr"),
];

/// The service's envelope around an EVE record.
#[derive(Serialize)]
pub struct Wrapped<'a, E> {
    firewall_name: &'a str,
    availability_zone: &'a str,
    event_timestamp: String,
    event: E,
}

/// An `alert` record for a rule or default-action hit.
pub fn alert_record<'a>(
    env: &'a Envelope,
    clock: &Clock,
    a: &AlertRecord,
    signature: &str,
    rev: u32,
) -> Wrapped<'a, Value> {
    let at = clock.wall(a.at);
    let (sp, dp) = dataplane::ops::visible_ports(&a.tuple);
    let verdict = a.verdict.as_str();
    env.wrap(
        at,
        json!({
            "timestamp": eve_timestamp(at),
            "flow_id": a.flow_id,
            "event_type": "alert",
            "src_ip": addr_to_ip(a.tuple.src).to_string(),
            "src_port": sp,
            "dest_ip": addr_to_ip(a.tuple.dst).to_string(),
            "dest_port": dp,
            "proto": proto_name(a.tuple.proto),
            "app_proto": "unknown",
            "direction": if a.to_server { "to_server" } else { "to_client" },
            "alert": {
                "action": if a.alert_only { "allowed" } else { "blocked" },
                "signature_id": a.sid,
                "rev": rev,
                "signature": signature,
                "category": "",
                "severity": 3,
            },
            "verdict": {"action": if a.alert_only { "alert" } else { verdict }},
            "flowgate": {"worker": a.worker, "vlan": a.vlan, "policy_epoch": a.epoch},
        }),
    )
}

/// A per-second token bucket for alert lines.
pub struct RateLimit {
    per_sec: u32,
    window: Instant,
    used: u32,
    pub suppressed: u64,
}

impl RateLimit {
    pub fn new(per_sec: u32) -> RateLimit {
        RateLimit {
            per_sec,
            window: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    pub fn allow(&mut self) -> bool {
        if self.window.elapsed().as_secs() >= 1 {
            self.window = Instant::now();
            self.used = 0;
        }
        if self.used < self.per_sec {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("fg-logs-test-{}", std::process::id()));
        let p = dir.join("flow.log");
        let mut w = LineWriter::open(LogTarget::File(p.clone()), 4096, 2).unwrap();
        for i in 0..400 {
            w.write_line(&json!({"i": i, "pad": "x".repeat(40)}));
        }
        w.flush();
        assert!(p.exists());
        assert!(dir.join("flow.log.1").exists());
        assert!(dir.join("flow.log.2").exists());
        assert!(!dir.join("flow.log.3").exists());
        assert!(std::fs::metadata(&p).unwrap().len() < 4096 + 100);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut v4: Vec<u32> = vec![0, 1, 9, 10, 99, 100, 255, 256, 0x0a00_0001, u32::MAX];
        let mut x = 0x9e37_79b9_u32;
        v4.extend((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        }));
        let mut out = Vec::new();
        for ip in v4
            .into_iter()
            .map(|v| std::net::IpAddr::from(std::net::Ipv4Addr::from(v)))
            .chain(["::", "::1", "2001:2::1", "2001:2:0:0:1::ff"].map(|t| t.parse().unwrap()))
        {
            out.clear();
            write_ip(&mut out, dataplane::packet::ip_to_addr(ip));
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn tcp_flags_render_like_eve() {
        let v = netflow_lines(6, 0x1b).0["event"]["tcp"].clone();
        assert_eq!(v["tcp_flags"], "1b");
        assert_eq!(v["syn"], true);
        assert!(v.get("rst").is_none());
    }

    /// Both netflow lines of a TCP (or other `proto`) flow, parsed back as JSON.
    fn netflow_lines(proto_nr: u8, opener_flags: u8) -> (Value, Value) {
        use dataplane::flow::FlowState;
        use dataplane::packet::{ip_to_addr, Tuple, Verdict};
        let env = Envelope::new("fw \"edge\"\\1", "z");
        let clock = Clock::new(1000, || 0);
        let r = FlowRecord {
            tuple: Tuple {
                proto: proto_nr,
                src: ip_to_addr("198.18.0.1".parse().unwrap()),
                dst: ip_to_addr("2001:2::2".parse().unwrap()),
                src_port: 40000,
                dst_port: if proto_nr == proto::ICMP { 0x0800 } else { 443 },
            },
            vlan: 0,
            state: FlowState::Established,
            verdict: Verdict::Pass,
            sid: 7,
            epoch: 3,
            pkts: [10, 8],
            bytes: [1000, 800],
            tcp_flags: [opener_flags, 0x12],
            ttl_min: [60, 61],
            ttl_max: [64, 62],
            first_seen: 1000,
            last_seen: 3500,
            observed_at: 4000,
            worker: 1,
            flow_id: 42,
        };
        let times = NetflowTimes::of(&clock, &mut EveStamps::default(), &r);
        let line = |d| {
            let mut out = Vec::new();
            write_netflow(&mut out, &env, &clock, &times, &r, EndReason::Flushed, d);
            serde_json::from_slice::<Value>(&out)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
        };
        (line(0), line(1))
    }

    #[test]
    fn netflow_records_carry_both_directions_in_eve_shape() {
        let (a, b) = netflow_lines(proto::TCP, 0x1b);
        assert_eq!(a["firewall_name"], "fw \"edge\"\\1", "escaped once, right");
        // Epoch seconds, as a string (the service's shape).
        let ts: u64 = a["event_timestamp"].as_str().unwrap().parse().unwrap();
        assert!(ts > 1_600_000_000, "{ts}");
        assert_eq!(a["event"]["timestamp"], a["event"]["netflow"]["end"]);
        assert_eq!(a["event"]["netflow"]["min_ttl"], 60);
        assert_eq!(b["event"]["netflow"]["max_ttl"], 62);
        assert_eq!(a["event"]["netflow"]["alerted"], false);
        assert_eq!(a["event"]["flowgate"]["policy_epoch"], 3);
        assert_eq!(a["event"]["tcp"]["syn"], true);
        assert!(b["event"]["tcp"].get("fin").is_none());
        let (icmp, _) = netflow_lines(proto::ICMP, 0);
        assert_eq!(icmp["event"]["icmp_type"], 8);
        assert_eq!(icmp["event"]["icmp_code"], 0);
        assert!(icmp["event"].get("tcp").is_none());
        assert_eq!(a["availability_zone"], "z");
        assert_eq!(a["availability_zone"], "z");
        assert_eq!(a["event"]["event_type"], "netflow");
        assert_eq!(a["event"]["src_ip"], "198.18.0.1");
        assert_eq!(a["event"]["dest_ip"], "2001:2::2");
        assert_eq!(a["event"]["dest_port"], 443);
        assert_eq!(b["event"]["src_ip"], "2001:2::2");
        assert_eq!(b["event"]["src_port"], 443);
        assert_eq!(a["event"]["proto"], "TCP");
        assert_eq!(a["event"]["netflow"]["pkts"], 10);
        assert_eq!(b["event"]["netflow"]["bytes"], 800);
        assert_eq!(a["event"]["netflow"]["age"], 2);
        assert_eq!(a["event"]["netflow"]["reason"], "flushed");
        assert_eq!(a["event"]["netflow"]["last_state"], "ESTABLISHED");
        assert_eq!(a["event"]["tcp"]["tcp_flags"], "1b");
        assert_eq!(b["event"]["tcp"]["tcp_flags"], "12");
        assert!(a["event"].get("icmp_type").is_none());
        assert_eq!(a["event"]["flowgate"]["sid"], 7);
        assert_eq!(a["event"]["flow_id"], b["event"]["flow_id"]);
    }

    #[test]
    fn rate_limit_caps_per_second() {
        let mut r = RateLimit::new(3);
        let allowed = (0..10).filter(|_| r.allow()).count();
        assert_eq!(allowed, 3);
        assert_eq!(r.suppressed, 7);
    }
}
