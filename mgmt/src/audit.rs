//! The audit log (CloudTrail's role): one JSON line per mutating API call and per refused
//! call — when, who (access key id), from where, what, the operation it created, and how it
//! ended. Append-only (`O_APPEND`, one `write` per line, synced), so it survives restarts
//! and concurrent writers never interleave inside a line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::config::LogTarget;

enum Sink {
    Off,
    Stdout,
    File(File),
}

pub struct Audit {
    sink: Mutex<Sink>,
}

impl Audit {
    /// Opens (creating, appending to) the audit log; `None` disables it.
    pub fn open(target: Option<LogTarget>) -> io::Result<Audit> {
        let sink = match target {
            None => Sink::Off,
            Some(LogTarget::Stdout) => Sink::Stdout,
            Some(LogTarget::File(path)) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Sink::File(OpenOptions::new().create(true).append(true).open(&path)?)
            }
        };
        Ok(Audit {
            sink: Mutex::new(sink),
        })
    }

    /// An audit log that records nothing (tests, tools).
    pub fn disabled() -> Audit {
        Audit {
            sink: Mutex::new(Sink::Off),
        }
    }

    /// The line [`Audit::record`] writes, without its newline.
    #[allow(clippy::too_many_arguments)]
    pub fn line(
        at: SystemTime,
        caller: &str,
        source: SocketAddr,
        action: &str,
        operation_id: Option<&str>,
        outcome: &str,
        error_type: Option<&str>,
        detail: Option<&str>,
    ) -> Value {
        json!({
            "time": rfc3339(at),
            "access_key_id": caller,
            "source_address": source.ip().to_string(),
            "source_port": source.port(),
            "action": action,
            "operation_id": operation_id,
            "outcome": outcome,
            "error_type": error_type,
            "detail": detail,
        })
    }

    /// Appends one record. `outcome` is `"ok"`, `"refused"` (client error, nothing done) or
    /// `"error"` (server error). A failing audit write is reported on stderr, never fatal.
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
        let mut text = Self::line(
            SystemTime::now(),
            caller,
            source,
            action,
            operation_id,
            outcome,
            error_type,
            detail,
        )
        .to_string();
        text.push('\n');
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let res = match &mut *sink {
            Sink::Off => Ok(()),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|_| out.flush())
            }
            Sink::File(f) => f.write_all(text.as_bytes()).and_then(|_| f.sync_data()),
        };
        if let Err(e) = res {
            eprintln!("flowgate: audit log write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_one_json_line_each_across_reopen() {
        let dir = std::env::temp_dir().join(format!("fg-audit-{}", std::process::id()));
        let path = dir.join("sub").join("audit.log");
        let _ = std::fs::remove_dir_all(&dir);
        let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        {
            let a = Audit::open(Some(LogTarget::File(path.clone()))).unwrap();
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
        let a = Audit::open(Some(LogTarget::File(path.clone()))).unwrap();
        a.record(
            "AKID2",
            peer,
            "StartFlowCapture",
            None,
            "refused",
            Some("ThrottlingException"),
            Some("busy"),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["access_key_id"], "AKID1");
        assert_eq!(lines[0]["operation_id"], "op-1");
        assert_eq!(lines[0]["outcome"], "ok");
        assert_eq!(lines[0]["source_address"], "127.0.0.1");
        assert_eq!(lines[1]["error_type"], "ThrottlingException");
        assert_eq!(lines[1]["operation_id"], Value::Null);
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
