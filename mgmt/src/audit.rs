//! The audit log (CloudTrail's role), bounded whatever clients send:
//!
//! * every authenticated call is recorded — state-changing successes (starts, reloads) one
//!   line each, synced to disk before the caller is answered; reads (Describe/List) one line
//!   each, unsynced; server errors one line each;
//! * refusals (bad signatures, malformed or invalid requests, unknown actions) are *counted*
//!   per source address and error type over a window of [`REFUSAL_WINDOW`], and written as
//!   one line per pair when the window closes (`count`, `first_seen`, `last_seen`, a sample
//!   action), so a flood of junk costs a few lines, not one synced line per request;
//! * fields a caller controls (key id, action, detail) are truncated to [`MAX_FIELD_CHARS`]
//!   with control characters replaced, and refusals carry no free text at all (parse errors
//!   can echo the request's `Authorization` header);
//! * the file is rotated by size like the flow logs (`logging.max_file_bytes`, `keep_files`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::clock::rfc3339;
use crate::config::LogTarget;
use crate::logs::LineWriter;

/// How long refusals are counted before their tallies are written.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Characters kept of any caller-controlled field.
pub const MAX_FIELD_CHARS: usize = 128;
/// Distinct (source, error type) pairs tallied per window; beyond it, refusals are counted
/// under source `0.0.0.0` and error type `(other)`.
const MAX_TALLIES: usize = 1024;

pub struct Audit {
    inner: Mutex<Inner>,
}

struct Inner {
    writer: Option<LineWriter>,
    window_started: Instant,
    tallies: HashMap<(IpAddr, String), Tally>,
}

struct Tally {
    count: u64,
    first_seen: SystemTime,
    last_seen: SystemTime,
    action: String,
    access_key_id: String,
}

impl Audit {
    /// Opens (creating, appending to) the audit log, rotated at `max_bytes` keeping `keep`
    /// old files; `None` disables it.
    pub fn open(target: Option<LogTarget>, max_bytes: u64, keep: u32) -> io::Result<Audit> {
        let writer = target
            .map(|t| LineWriter::open(t, max_bytes, keep))
            .transpose()?;
        Ok(Audit {
            inner: Mutex::new(Inner {
                writer,
                window_started: Instant::now(),
                tallies: HashMap::new(),
            }),
        })
    }

    /// An audit log that records nothing (tests, tools).
    pub fn disabled() -> Audit {
        Audit {
            inner: Mutex::new(Inner {
                writer: None,
                window_started: Instant::now(),
                tallies: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one call. `outcome` is `"ok"` (a state-changing call succeeded: the line is
    /// synced), `"refused"` (a client error, nothing done: tallied) or `"error"` (a server
    /// error). A failing audit write is reported on stderr, never fatal.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        caller: &str,
        source: SocketAddr,
        action: &str,
        operation_id: Option<&str>,
        outcome: &str,
        error_type: Option<&str>,
        detail: Option<&str>,
    ) {
        let now = SystemTime::now();
        let mut inner = self.lock();
        inner.close_window_if_due(false);
        if outcome == "refused" {
            inner.tally(now, caller, source.ip(), action, error_type.unwrap_or("-"));
            return;
        }
        let line = json!({
            "time": rfc3339(now),
            "access_key_id": clean(caller),
            "source_address": source.ip().to_string(),
            "source_port": source.port(),
            "action": clean(action),
            "operation_id": operation_id.map(clean),
            "outcome": outcome,
            "error_type": error_type.map(clean),
            "detail": detail.map(clean),
        });
        inner.write(&line, outcome == "ok");
    }

    /// Records a successful read (Describe/List, `GET`): one unsynced line.
    pub fn read(&self, caller: &str, source: SocketAddr, action: &str) {
        let mut inner = self.lock();
        inner.close_window_if_due(false);
        let line = json!({
            "time": rfc3339(SystemTime::now()),
            "access_key_id": clean(caller),
            "source_address": source.ip().to_string(),
            "source_port": source.port(),
            "action": clean(action),
            "outcome": "ok",
            "read_only": true,
        });
        inner.write(&line, false);
    }

    /// Writes the refusal tallies of a window that has ended (call it periodically).
    pub fn tick(&self) {
        self.lock().close_window_if_due(false);
    }

    /// Writes every refusal tally now and flushes (shutdown, tests).
    pub fn flush(&self) {
        let mut inner = self.lock();
        inner.close_window_if_due(true);
        if let Some(w) = inner.writer.as_mut() {
            w.flush();
        }
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Inner {
    fn write(&mut self, line: &serde_json::Value, sync: bool) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let errors = w.write_errors;
        w.write_line(line);
        if sync {
            w.sync();
        } else {
            w.flush();
        }
        if w.write_errors > errors {
            eprintln!("flowgate: audit log write failed");
        }
    }

    fn tally(&mut self, now: SystemTime, caller: &str, ip: IpAddr, action: &str, error: &str) {
        let mut key = (ip, clean(error));
        if !self.tallies.contains_key(&key) && self.tallies.len() >= MAX_TALLIES {
            key = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), "(other)".to_string());
        }
        let t = self.tallies.entry(key).or_insert_with(|| Tally {
            count: 0,
            first_seen: now,
            last_seen: now,
            action: clean(action),
            access_key_id: key_id_only(caller),
        });
        t.count += 1;
        t.last_seen = now;
    }

    fn close_window_if_due(&mut self, force: bool) {
        if !force && self.window_started.elapsed() < REFUSAL_WINDOW {
            return;
        }
        self.window_started = Instant::now();
        let mut tallies: Vec<_> = self.tallies.drain().collect();
        tallies.sort_by_key(|(_, t)| t.first_seen);
        for ((ip, error_type), t) in tallies {
            let line = json!({
                "time": rfc3339(t.last_seen),
                "access_key_id": t.access_key_id,
                "source_address": ip.to_string(),
                "action": t.action,
                "outcome": "refused",
                "error_type": error_type,
                "count": t.count,
                "first_seen": rfc3339(t.first_seen),
                "last_seen": rfc3339(t.last_seen),
            });
            self.write(&line, false);
        }
    }
}

/// `s` cut to [`MAX_FIELD_CHARS`] characters with control characters replaced by `?`.
pub fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_FIELD_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(MAX_FIELD_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A caller's claimed key id as recorded for a refusal: only if it looks like one.
fn key_id_only(caller: &str) -> String {
    if !caller.is_empty()
        && caller.len() <= MAX_FIELD_CHARS
        && caller.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        caller.to_string()
    } else {
        "-".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fg-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn records_append_one_json_line_each_across_reopen() {
        let dir = temp("reopen");
        let path = dir.join("sub").join("audit.log");
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        {
            let a = Audit::open(Some(LogTarget::File(path.clone())), 1 << 20, 2).unwrap();
            a.record(
                "AKID1",
                peer,
                "StartFlowFlush",
                Some("op-1"),
                "ok",
                None,
                None,
            );
        }
        let a = Audit::open(Some(LogTarget::File(path.clone())), 1 << 20, 2).unwrap();
        a.read("AKID2", peer, "DescribeFlowOperation");
        let l = lines(&path);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["access_key_id"], "AKID1");
        assert_eq!(l[0]["operation_id"], "op-1");
        assert_eq!(l[0]["outcome"], "ok");
        assert_eq!(l[0]["source_address"], "127.0.0.1");
        assert_eq!(l[1]["action"], "DescribeFlowOperation");
        assert_eq!(l[1]["read_only"], true);
        assert!(l[1]["time"].as_str().unwrap().ends_with('Z'));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refusals_are_tallied_per_source_and_error_type() {
        let dir = temp("tally");
        let path = dir.join("audit.log");
        let a = Audit::open(Some(LogTarget::File(path.clone())), 1 << 20, 2).unwrap();
        for i in 0..10_000u32 {
            let peer = SocketAddr::from(([198, 18, 0, (i % 2) as u8 + 1], 40000));
            a.record(
                "AKIDX",
                peer,
                "StartFlowCapture",
                None,
                "refused",
                Some("InvalidSignatureException"),
                Some("Authorization: AWS4-HMAC-SHA256 Credential=…secret stuff"),
            );
        }
        assert!(
            lines(&path).is_empty(),
            "nothing written until the window closes"
        );
        a.flush();
        let l = lines(&path);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            l[0]["count"].as_u64().unwrap() + l[1]["count"].as_u64().unwrap(),
            10_000
        );
        assert_eq!(l[0]["error_type"], "InvalidSignatureException");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("Authorization"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn caller_controlled_fields_are_truncated_and_cleaned() {
        assert_eq!(clean("a\nb\u{1b}c"), "a?b?c");
        let long = "x".repeat(10_000);
        assert_eq!(clean(&long).chars().count(), MAX_FIELD_CHARS + 1);
        assert_eq!(key_id_only("AKID 1"), "-");
        assert_eq!(key_id_only("AKID1"), "AKID1");
        // Tallies are bounded too.
        let a = Audit::disabled();
        let mut inner = a.lock();
        for i in 0..(MAX_TALLIES as u32 * 3) {
            let ip = IpAddr::from(i.to_be_bytes());
            inner.tally(SystemTime::now(), "k", ip, "x", "E");
        }
        assert_eq!(inner.tallies.len(), MAX_TALLIES + 1);
    }

    #[test]
    fn the_log_rotates_by_size() {
        let dir = temp("rotate");
        let path = dir.join("audit.log");
        let a = Audit::open(Some(LogTarget::File(path.clone())), 8192, 2).unwrap();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..1000 {
            a.read("AKID", peer, "ListFlowOperations");
        }
        let total: u64 = ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
            .iter()
            .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
            .map(|m| m.len())
            .sum();
        assert!(total <= 3 * 8192 + 512, "{total}");
        assert!(!dir.join("audit.log.3").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
