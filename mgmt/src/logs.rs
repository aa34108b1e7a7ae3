//! Flow and alert logs: JSON lines in the shape of AWS Network Firewall's records (the
//! `firewall_name` / `availability_zone` / `event_timestamp` / `event` envelope around a
//! Suricata EVE body), written by the management side from worker events, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{eve_timestamp, Clock};
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

pub fn proto_name(p: u8) -> String {
    match p {
        proto::TCP => "TCP".into(),
        proto::UDP => "UDP".into(),
        proto::ICMP => "ICMP".into(),
        proto::ICMPV6 => "IPv6-ICMP".into(),
        proto::SCTP => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Who the records say they come from.
#[derive(Clone)]
pub struct Envelope {
    pub firewall_name: String,
    pub zone: String,
}

impl Envelope {
    fn wrap<E>(&self, at: SystemTime, event: E) -> Wrapped<'_, E> {
        Wrapped {
            firewall_name: &self.firewall_name,
            availability_zone: &self.zone,
            event_timestamp: (crate::clock::unix_secs(at) as u64).to_string(),
            event,
        }
    }
}

/// One `netflow` record, typed so a flush of a million flows formats its two million
/// lines without building a JSON tree per line. Field names and order follow EVE.
#[derive(Serialize)]
pub struct NetflowEvent {
    timestamp: String,
    flow_id: u64,
    event_type: &'static str,
    src_ip: IpAddr,
    src_port: u16,
    dest_ip: IpAddr,
    dest_port: u16,
    proto: String,
    app_proto: &'static str,
    netflow: Netflow,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<TcpFlags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u16>,
    flowgate: NetflowExt,
}

#[derive(Serialize)]
struct Netflow {
    pkts: u64,
    bytes: u64,
    start: String,
    end: String,
    age: u64,
    min_ttl: u8,
    max_ttl: u8,
    state: &'static str,
    reason: &'static str,
    last_state: &'static str,
    alerted: bool,
}

#[derive(Serialize)]
struct NetflowExt {
    worker: u16,
    vlan: u16,
    verdict: &'static str,
    sid: u32,
    policy_epoch: u32,
}

/// EVE's `tcp` object: `tcp_flags` in hex, then `true` for each flag seen.
struct TcpFlags(u8);

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const NAMES: [(u8, &str); 8] = [
            (0x01, "fin"),
            (0x02, "syn"),
            (0x04, "rst"),
            (0x08, "psh"),
            (0x10, "ack"),
            (0x20, "urg"),
            (0x40, "ecn"),
            (0x80, "cwr"),
        ];
        let mut m = s.serialize_map(Some(1 + self.0.count_ones() as usize))?;
        m.serialize_entry("tcp_flags", &format_args!("{:02x}", self.0))?;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                m.serialize_entry(name, &true)?;
            }
        }
        m.end()
    }
}

/// The service's envelope around an EVE record.
#[derive(Serialize)]
pub struct Wrapped<'a, E> {
    firewall_name: &'a str,
    availability_zone: &'a str,
    event_timestamp: String,
    event: E,
}

/// The two `netflow` records (opener → responder, then responder → opener) of an ended flow.
pub fn netflow_records<'a>(
    env: &'a Envelope,
    clock: &Clock,
    r: &FlowRecord,
    reason: EndReason,
) -> [Wrapped<'a, NetflowEvent>; 2] {
    let start = clock.wall(r.first_seen);
    let end = clock.wall(r.last_seen);
    let age = clock.secs(r.last_seen.saturating_sub(r.first_seen)) as u64;
    let (sp, dp) = dataplane::ops::visible_ports(&r.tuple);
    let (start_s, end_s) = (eve_timestamp(start), eve_timestamp(end));
    let icmp = matches!(r.tuple.proto, proto::ICMP | proto::ICMPV6);
    let dir = |d: usize| {
        let (src, dst, s_port, d_port) = if d == 0 {
            (r.tuple.src, r.tuple.dst, sp, dp)
        } else {
            (r.tuple.dst, r.tuple.src, dp, sp)
        };
        env.wrap(
            end,
            NetflowEvent {
                timestamp: end_s.clone(),
                flow_id: r.flow_id,
                event_type: "netflow",
                src_ip: addr_to_ip(src),
                src_port: s_port,
                dest_ip: addr_to_ip(dst),
                dest_port: d_port,
                proto: proto_name(r.tuple.proto),
                app_proto: "unknown",
                netflow: Netflow {
                    pkts: r.pkts[d],
                    bytes: r.bytes[d],
                    start: start_s.clone(),
                    end: end_s.clone(),
                    age,
                    min_ttl: r.ttl_min[d],
                    max_ttl: r.ttl_max[d],
                    state: if r.state.is_active() {
                        "established"
                    } else {
                        "closed"
                    },
                    reason: reason.as_str(),
                    last_state: r.state.as_str(),
                    alerted: r.verdict != dataplane::packet::Verdict::Pass,
                },
                tcp: (r.tuple.proto == proto::TCP).then_some(TcpFlags(r.tcp_flags[d])),
                icmp_type: icmp.then_some(r.tuple.dst_port >> 8),
                icmp_code: icmp.then_some(r.tuple.dst_port & 0xff),
                flowgate: NetflowExt {
                    worker: r.worker,
                    vlan: r.vlan,
                    verdict: r.verdict.as_str(),
                    sid: r.sid,
                    policy_epoch: r.epoch,
                },
            },
        )
    };
    [dir(0), dir(1)]
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
    fn tcp_flags_render_like_eve() {
        let v = serde_json::to_value(TcpFlags(0x1b)).unwrap();
        assert_eq!(v["tcp_flags"], "1b");
        assert_eq!(v["syn"], true);
        assert!(v.get("rst").is_none());
    }

    #[test]
    fn netflow_records_carry_both_directions_in_eve_shape() {
        use dataplane::flow::FlowState;
        use dataplane::packet::{ip_to_addr, Tuple, Verdict};
        let env = Envelope {
            firewall_name: "fw".into(),
            zone: "z".into(),
        };
        let clock = Clock::new(1000, || 0);
        let r = FlowRecord {
            tuple: Tuple {
                proto: proto::TCP,
                src: ip_to_addr("198.18.0.1".parse().unwrap()),
                dst: ip_to_addr("2001:2::2".parse().unwrap()),
                src_port: 40000,
                dst_port: 443,
            },
            vlan: 0,
            state: FlowState::Established,
            verdict: Verdict::Pass,
            sid: 7,
            epoch: 3,
            pkts: [10, 8],
            bytes: [1000, 800],
            tcp_flags: [0x1b, 0x12],
            ttl_min: [60, 61],
            ttl_max: [64, 62],
            first_seen: 1000,
            last_seen: 3500,
            observed_at: 4000,
            worker: 1,
            flow_id: 42,
        };
        let lines: Vec<Value> = netflow_records(&env, &clock, &r, EndReason::Flushed)
            .iter()
            .map(|w| serde_json::to_value(w).unwrap())
            .collect();
        let (a, b) = (&lines[0], &lines[1]);
        assert_eq!(a["firewall_name"], "fw");
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
