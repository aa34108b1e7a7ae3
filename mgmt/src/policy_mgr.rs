//! The policy in force: loaded and compiled on the management side, handed to every
//! worker as an immutable `Arc` by command, and reloaded without restart (API or SIGHUP).
//! A new policy is validated completely first; a bad one is refused and the running one
//! stays. The old policy is freed when the last worker has handed its `Arc` back.
//!
//! Every policy that passes validation is also kept as a snapshot (the exact text of the
//! TOML and each `.rules` file it read) under the state directory, written atomically. If
//! the files on disk are invalid at start-up (an edit interrupted by a crash, a bad copy),
//! the appliance starts with that last validated policy, says so loudly, and keeps the
//! file's error as the last reload error, instead of refusing to forward at all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::policy::{self, CompiledPolicy};
use dataplane::worker::Command;

use crate::control::Control;

/// A worker's rule-hit counters and the policy epoch they belong to.
type EpochHits = (u32, Box<[u64]>);

pub struct PolicyManager {
    path: PathBuf,
    /// Where the last validated policy is kept (`None`: not kept, e.g. `--check`).
    snapshot: Option<PathBuf>,
    current: Mutex<Arc<CompiledPolicy>>,
    next_epoch: AtomicU32,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Rule hits of policies no longer in force, by (sid, action), so counters stay monotonic.
    retired_hits: Mutex<HashMap<(u32, String), u64>>,
    /// Latest rule-hit snapshot per worker for the current epoch.
    live_hits: Mutex<Vec<Option<EpochHits>>>,
}

/// The text of every file a validated policy was read from, by path as the loader
/// resolved it.
type PolicySources = BTreeMap<PathBuf, String>;

/// Compiles the policy at `path` with `epoch`, or says precisely why not.
pub fn compile(path: &Path, epoch: u32) -> Result<CompiledPolicy, String> {
    compile_recording(path, epoch).map(|(c, _)| c)
}

/// [`compile`], also returning the sources it read.
fn compile_recording(path: &Path, epoch: u32) -> Result<(CompiledPolicy, PolicySources), String> {
    let mut sources = PolicySources::new();
    let p = policy::load_policy_with(path, &mut |f: &Path| {
        let text = std::fs::read_to_string(f)?;
        sources.insert(f.to_path_buf(), text.clone());
        Ok(text)
    })
    .map_err(|e| e.to_string())?;
    Ok((CompiledPolicy::compile(&p, epoch), sources))
}

/// Compiles the snapshot at `snapshot`, reading the files from it instead of the disk.
fn compile_snapshot(snapshot: &Path, epoch: u32) -> Result<(CompiledPolicy, PathBuf), String> {
    let bytes = std::fs::read(snapshot).map_err(|e| e.to_string())?;
    let snap: Snapshot =
        serde_json::from_slice(&bytes).map_err(|e| format!("unreadable snapshot: {e}"))?;
    let p = policy::load_policy_with(&snap.policy_file, &mut |f: &Path| {
        snap.files
            .get(f)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not in the snapshot"))
    })
    .map_err(|e| e.to_string())?;
    Ok((CompiledPolicy::compile(&p, epoch), snap.policy_file))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    policy_file: PathBuf,
    files: PolicySources,
}

/// Keeps the validated policy's sources at `to` (written atomically); a failure to keep
/// it is reported, never fatal: the policy itself is valid and goes into force.
fn keep_snapshot(to: Option<&Path>, policy_file: &Path, files: PolicySources) {
    let Some(to) = to else {
        return;
    };
    let saved = serde_json::to_vec(&Snapshot {
        policy_file: policy_file.to_path_buf(),
        files,
    })
    .map_err(std::io::Error::from)
    .and_then(|body| {
        let dir = to.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = to
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("policy-snapshot.json");
        crate::ops::write_atomic(dir, name, &body)
    });
    if let Err(e) = saved {
        eprintln!(
            "flowgate: cannot keep the validated policy at {}: {e}",
            to.display()
        );
    }
}

impl PolicyManager {
    /// Loads the initial policy (epoch 1) from `path`. If it is invalid, the last validated
    /// policy kept at `snapshot` runs instead (loudly); without one, start-up refuses:
    /// nothing is forwarded without a policy (fail closed). `snapshot: None` keeps no copy.
    pub fn load(
        path: &Path,
        workers: usize,
        snapshot: Option<&Path>,
    ) -> Result<PolicyManager, String> {
        let (compiled, last_error) = match compile_recording(path, 1) {
            Ok((c, sources)) => {
                keep_snapshot(snapshot, path, sources);
                (c, None)
            }
            Err(e) => {
                let Some((c, from)) = snapshot.and_then(|s| compile_snapshot(s, 1).ok()) else {
                    return Err(e);
                };
                eprintln!(
                    "flowgate: WARNING: policy {} is invalid ({e}); running the last validated \
                     policy ({} as it was when validated) until a reload succeeds",
                    path.display(),
                    from.display(),
                );
                (
                    c,
                    Some(format!(
                        "at start-up: {e} (running the last validated policy)"
                    )),
                )
            }
        };
        Ok(PolicyManager {
            path: path.to_path_buf(),
            snapshot: snapshot.map(Path::to_path_buf),
            current: Mutex::new(Arc::new(compiled)),
            next_epoch: AtomicU32::new(2),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_error: Mutex::new(last_error),
            retired_hits: Mutex::new(HashMap::new()),
            live_hits: Mutex::new((0..workers).map(|_| None).collect()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn current(&self) -> Arc<CompiledPolicy> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A zeroed rule-hit array for `p`, allocated here so workers never allocate.
    pub fn hit_buffer(p: &CompiledPolicy) -> Box<[u64]> {
        vec![0u64; p.rules().len()].into_boxed_slice()
    }

    /// Re-reads the policy files and, if they are valid, hands the new policy to every
    /// worker. Returns the new epoch.
    pub fn reload(&self, control: &Control) -> Result<Arc<CompiledPolicy>, String> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        let compiled = match compile_recording(&self.path, epoch) {
            Ok((c, sources)) => {
                keep_snapshot(self.snapshot.as_deref(), &self.path, sources);
                Arc::new(c)
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
                return Err(e);
            }
        };
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        for w in 0..control.workers() {
            let cmd = Command::SwapPolicy {
                policy: Arc::clone(&compiled),
                rule_hits: Self::hit_buffer(&compiled),
            };
            if let Err(e) = control.send(w, cmd, Duration::from_secs(2)) {
                // Workers that took the new policy keep it; the operator sees which did not.
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                let msg = format!("policy epoch {epoch} not delivered: {e}");
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
                *cur = Arc::clone(&compiled);
                return Err(msg);
            }
        }
        *cur = Arc::clone(&compiled);
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(compiled)
    }

    /// A worker handed back the policy it replaced and that policy's final rule hits.
    pub fn on_swapped(&self, worker: usize, old: Arc<CompiledPolicy>, old_hits: Box<[u64]>) {
        self.retire(&old, &old_hits);
        if let Some(slot) = self
            .live_hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(worker)
        {
            *slot = None;
        }
        // `old` drops here, on the management side: freed once every worker returned it.
    }

    fn retire(&self, p: &CompiledPolicy, hits: &[u64]) {
        let mut retired = self.retired_hits.lock().unwrap_or_else(|e| e.into_inner());
        for (r, h) in p.rules().iter().zip(hits) {
            if *h > 0 {
                *retired.entry((r.sid, action_name(r))).or_default() += h;
            }
        }
    }

    pub fn on_rule_hits(&self, worker: usize, epoch: u32, hits: Box<[u64]>) {
        if let Some(slot) = self
            .live_hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(worker)
        {
            *slot = Some((epoch, hits));
        }
    }

    /// Cumulative rule hits by (sid, action) across epochs.
    pub fn rule_hits(&self) -> HashMap<(u32, String), u64> {
        let mut out = self
            .retired_hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let cur = self.current();
        for (epoch, hits) in self
            .live_hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
        {
            if *epoch != cur.epoch() {
                continue;
            }
            for (r, h) in cur.rules().iter().zip(hits.iter()) {
                if *h > 0 {
                    *out.entry((r.sid, action_name(r))).or_default() += h;
                }
            }
        }
        out
    }

    /// `GET /v1/policy`: the policy in force, its engine options, its rule groups (names
    /// and rule counts, in file order) and every stateful rule with its hits (read-only;
    /// the console's Policy page).
    pub fn describe_json(&self) -> serde_json::Value {
        let p = self.current();
        let hits = self.rule_hits();
        let mut groups: Vec<(String, usize)> = Vec::new();
        let rules: Vec<serde_json::Value> = p
            .rules()
            .iter()
            .map(|r| {
                match groups.iter_mut().find(|(g, _)| *g == r.group) {
                    Some((_, n)) => *n += 1,
                    None => groups.push((r.group.clone(), 1)),
                }
                serde_json::json!({
                    "sid": r.sid, "rev": r.rev, "action": r.action.as_str(), "msg": r.msg,
                    "group": r.group,
                    "hits": hits.get(&(r.sid, action_name(r))).copied().unwrap_or(0),
                })
            })
            .collect();
        serde_json::json!({
            "epoch": p.epoch(),
            "rules": rules.len(),
            "stateful_rules": rules,
            "rule_groups": groups.iter().map(|(name, n)| serde_json::json!({"name": name, "rules": n})).collect::<Vec<_>>(),
            "summary": p.summary(),
            "stream_exception_policy": p.stream_exception().as_str(),
            "rule_order": p.rule_order().as_str(),
            "tcp_idle_timeout_seconds": p.tcp_idle_timeout_secs(),
            "file": self.path().display().to_string(),
            "last_reload_error": self.last_error(),
        })
    }

    /// Asks every worker for its current rule-hit counters (answers arrive as replies).
    pub fn request_rule_hits(&self, control: &Control) {
        let cur = self.current();
        for w in 0..control.workers() {
            let _ = control.send(
                w,
                Command::RuleHits {
                    buf: Self::hit_buffer(&cur),
                },
                Duration::from_millis(1),
            );
        }
    }
}

fn action_name(r: &policy::RuleInfo) -> String {
    format!("{:?}", r.action).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[stateful]\nrule_order = \"default_action_order\"\n[[stateful.rule_groups]]\nname = \"g\"\nrules_file = \"g.rules\"\n";

    #[test]
    fn an_invalid_file_at_start_falls_back_on_the_last_validated_policy() {
        let dir = std::env::temp_dir().join(format!("fg-policy-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (pol, rules, snap) = (
            dir.join("p.toml"),
            dir.join("g.rules"),
            dir.join("state/snap.json"),
        );
        std::fs::write(&pol, GOOD).unwrap();
        std::fs::write(&rules, "drop tcp any any -> any 23 (msg:\"t\"; sid:23;)\n").unwrap();
        let first = PolicyManager::load(&pol, 1, Some(&snap)).unwrap();
        assert_eq!(first.current().rules().len(), 1);
        assert!(first.last_error().is_none());
        assert!(snap.is_file(), "the validated policy is kept");

        // A broken rules file: refused without a snapshot, the kept policy runs with one.
        std::fs::write(&rules, "drop tcp any any -> any 23 (msg:\"t\";)\n").unwrap();
        let e = PolicyManager::load(&pol, 1, None).err().unwrap();
        assert!(e.contains("g.rules:1") && e.contains("sid"), "{e}");
        let fallback = PolicyManager::load(&pol, 1, Some(&snap)).unwrap();
        assert_eq!(fallback.current().rules()[0].sid, 23);
        assert!(fallback.last_error().unwrap().contains("g.rules:1"));

        // A new valid policy replaces the snapshot (here through a fresh start).
        std::fs::write(&rules, "pass tcp any any -> any 80 (msg:\"w\"; sid:80;)\n").unwrap();
        PolicyManager::load(&pol, 1, Some(&snap)).unwrap();
        std::fs::write(&pol, "[stateful\n").unwrap();
        let later = PolicyManager::load(&pol, 1, Some(&snap)).unwrap();
        assert_eq!(later.current().rules()[0].sid, 80);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
