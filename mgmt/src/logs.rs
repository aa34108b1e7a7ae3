//! Flow and alert logs: JSON lines in the shape of AWS Network Firewall's records (the
//! `firewall_name` / `availability_zone` / `event_timestamp` / `event` envelope around a
//! Suricata EVE body), written by the management side from worker events, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

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

    pub fn write_line(&mut self, v: &Value) {
        let mut line = v.to_string();
        line.push('\n');
        let res = match &mut self.out {
            Some(o) => o.write_all(line.as_bytes()),
            None => io::stdout().lock().write_all(line.as_bytes()),
        };
        match res {
            Ok(()) => {
                self.lines_written += 1;
                self.size += line.len() as u64;
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

fn tcp_object(flags: u8) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("tcp_flags".into(), json!(format!("{flags:02x}")));
    for (bit, name) in [
        (0x01, "fin"),
        (0x02, "syn"),
        (0x04, "rst"),
        (0x08, "psh"),
        (0x10, "ack"),
        (0x20, "urg"),
        (0x40, "ecn"),
        (0x80, "cwr"),
    ] {
        if flags & bit != 0 {
            o.insert(name.into(), json!(true));
        }
    }
    Value::Object(o)
}

/// Who the records say they come from.
#[derive(Clone)]
pub struct Envelope {
    pub firewall_name: String,
    pub zone: String,
}

impl Envelope {
    fn wrap(&self, at: SystemTime, event: Value) -> Value {
        json!({
            "firewall_name": self.firewall_name,
            "availability_zone": self.zone,
            "event_timestamp": format!("{}", crate::clock::unix_secs(at) as u64),
            "event": event,
        })
    }
}

/// The two `netflow` records (opener → responder, then responder → opener) of an ended flow.
pub fn netflow_records(
    env: &Envelope,
    clock: &Clock,
    r: &FlowRecord,
    reason: EndReason,
) -> [Value; 2] {
    let start = clock.wall(r.first_seen);
    let end = clock.wall(r.last_seen);
    let age = clock.secs(r.last_seen.saturating_sub(r.first_seen)) as u64;
    let (sp, dp) = dataplane::ops::visible_ports(&r.tuple);
    let dir = |d: usize| {
        let (src, dst, s_port, d_port) = if d == 0 {
            (r.tuple.src, r.tuple.dst, sp, dp)
        } else {
            (r.tuple.dst, r.tuple.src, dp, sp)
        };
        let mut ev = json!({
            "timestamp": eve_timestamp(end),
            "flow_id": r.flow_id,
            "event_type": "netflow",
            "src_ip": addr_to_ip(src).to_string(),
            "src_port": s_port,
            "dest_ip": addr_to_ip(dst).to_string(),
            "dest_port": d_port,
            "proto": proto_name(r.tuple.proto),
            "app_proto": "unknown",
            "netflow": {
                "pkts": r.pkts[d],
                "bytes": r.bytes[d],
                "start": eve_timestamp(start),
                "end": eve_timestamp(end),
                "age": age,
                "min_ttl": r.ttl_min[d],
                "max_ttl": r.ttl_max[d],
                "state": if r.state.is_active() { "established" } else { "closed" },
                "reason": reason.as_str(),
                "last_state": r.state.as_str(),
                "alerted": r.verdict != dataplane::packet::Verdict::Pass,
            },
            "flowgate": {"worker": r.worker, "vlan": r.vlan, "verdict": r.verdict.as_str(), "sid": r.sid, "policy_epoch": r.epoch},
        });
        if r.tuple.proto == proto::TCP {
            ev["tcp"] = tcp_object(r.tcp_flags[d]);
        }
        if matches!(r.tuple.proto, proto::ICMP | proto::ICMPV6) {
            ev["icmp_type"] = json!(r.tuple.dst_port >> 8);
            ev["icmp_code"] = json!(r.tuple.dst_port & 0xff);
        }
        env.wrap(end, ev)
    };
    [dir(0), dir(1)]
}

/// An `alert` record for a rule or default-action hit.
pub fn alert_record(
    env: &Envelope,
    clock: &Clock,
    a: &AlertRecord,
    signature: &str,
    rev: u32,
) -> Value {
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
        let v = tcp_object(0x1b);
        assert_eq!(v["tcp_flags"], "1b");
        assert_eq!(v["syn"], true);
        assert!(v.get("rst").is_none());
    }

    #[test]
    fn rate_limit_caps_per_second() {
        let mut r = RateLimit::new(3);
        let allowed = (0..10).filter(|_| r.allow()).count();
        assert_eq!(allowed, 3);
        assert_eq!(r.suppressed, 7);
    }
}
