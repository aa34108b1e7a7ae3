//! The policy in force: loaded and compiled on the management side, handed to every
//! worker as an immutable `Arc` by command, and reloaded without restart (API or SIGHUP).
//! A new policy is validated completely first; a bad one is refused and the running one
//! stays. The old policy is freed when the last worker has handed its `Arc` back.

use std::collections::HashMap;
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

/// Compiles the policy at `path` with `epoch`, or says precisely why not.
pub fn compile(path: &Path, epoch: u32) -> Result<CompiledPolicy, String> {
    let p = policy::load_policy(path).map_err(|e| e.to_string())?;
    Ok(CompiledPolicy::compile(&p, epoch))
}

impl PolicyManager {
    /// Loads the initial policy (epoch 1). Start-up refuses a bad policy: nothing is
    /// forwarded without one (fail closed).
    pub fn load(path: &Path, workers: usize) -> Result<PolicyManager, String> {
        let compiled = compile(path, 1)?;
        Ok(PolicyManager {
            path: path.to_path_buf(),
            current: Mutex::new(Arc::new(compiled)),
            next_epoch: AtomicU32::new(2),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
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
        let compiled = match compile(&self.path, epoch) {
            Ok(c) => Arc::new(c),
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
