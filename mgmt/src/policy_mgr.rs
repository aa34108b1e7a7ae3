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
//!
//! Reloads run one at a time: a reload issued while another compiles waits for it, then
//! reads the files as they are by then, so the last reload issued is the one in force.
//! The epoch is assigned when a policy is swapped in (epochs only grow in swap order), and
//! the swap is all-or-nothing: if a worker cannot take the new policy, the workers that
//! did get the previous one back. A policy with more than `policy.max_rules` rules is
//! refused before it is compiled, which bounds the memory a compile takes.

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
    /// The policy file reloads read (switched by the API under `policy.source = "api"`).
    path: Mutex<PathBuf>,
    /// Stateful plus stateless rules a policy may have (`policy.max_rules`).
    max_rules: usize,
    /// Held for the whole of a reload (compile, swap, snapshot): one reload at a time.
    reload_lock: Mutex<()>,
    /// How long a worker's full command ring is waited on before the swap is rolled back.
    deliver_wait: Duration,
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

/// The default of `policy.max_rules`: the service's default stateful rule capacity.
pub const DEFAULT_MAX_RULES: usize = 30_000;

/// Compiles the policy at `path` with `epoch`, or says precisely why not.
pub fn compile(path: &Path, epoch: u32, max_rules: usize) -> Result<CompiledPolicy, String> {
    compile_recording(path, epoch, max_rules).map(|(c, _)| c)
}

/// Refuses a policy with more rules than `max_rules` before anything is compiled.
fn check_size(p: &policy::Policy, path: &Path, max_rules: usize) -> Result<(), String> {
    let rules = p.rules.len() + p.stateless_rules.len();
    if rules > max_rules {
        return Err(format!(
            "{}: {rules} rules ({} stateful, {} stateless) exceed policy.max_rules = {max_rules}; \
             split the policy or raise policy.max_rules in the appliance config",
            path.display(),
            p.rules.len(),
            p.stateless_rules.len(),
        ));
    }
    Ok(())
}

/// [`compile`], also returning the sources it read.
fn compile_recording(
    path: &Path,
    epoch: u32,
    max_rules: usize,
) -> Result<(CompiledPolicy, PolicySources), String> {
    let mut sources = PolicySources::new();
    let p = policy::load_policy_with(path, &mut |f: &Path| {
        let text = std::fs::read_to_string(f)?;
        sources.insert(f.to_path_buf(), text.clone());
        Ok(text)
    })
    .map_err(|e| e.to_string())?;
    check_size(&p, path, max_rules)?;
    Ok((CompiledPolicy::compile(&p, epoch), sources))
}

/// Compiles the snapshot at `snapshot`, reading the files from it instead of the disk.
fn compile_snapshot(
    snapshot: &Path,
    epoch: u32,
    max_rules: usize,
) -> Result<(CompiledPolicy, PathBuf), String> {
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
    check_size(&p, &snap.policy_file, max_rules)?;
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
        max_rules: usize,
    ) -> Result<PolicyManager, String> {
        let (compiled, last_error) = match compile_recording(path, 1, max_rules) {
            Ok((c, sources)) => {
                keep_snapshot(snapshot, path, sources);
                (c, None)
            }
            Err(e) => {
                let Some((c, from)) = snapshot.and_then(|s| compile_snapshot(s, 1, max_rules).ok())
                else {
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
            path: Mutex::new(path.to_path_buf()),
            max_rules,
            reload_lock: Mutex::new(()),
            deliver_wait: Duration::from_secs(2),
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

    pub fn path(&self) -> PathBuf {
        self.path.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the policy from `path` from the next reload on.
    pub fn set_path(&self, path: &Path) {
        *self.path.lock().unwrap_or_else(|e| e.into_inner()) = path.to_path_buf();
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

    /// Whether a reload is running now (compiling or handing the policy to the workers).
    pub fn reload_in_progress(&self) -> bool {
        matches!(
            self.reload_lock.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    fn fail(&self, msg: String) -> String {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
        msg
    }

    /// Re-reads the policy files and, if they are valid, hands the new policy to every
    /// worker. Returns the policy now in force. A reload issued while another runs waits
    /// for it (reloads are rare and short; waiting keeps "the last one issued wins").
    pub fn reload(&self, control: &Control) -> Result<Arc<CompiledPolicy>, String> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path();
        let (mut compiled, sources) =
            compile_recording(&path, 0, self.max_rules).map_err(|e| self.fail(e))?;
        // The epoch is taken only now, under the reload lock, so epochs grow in the order
        // policies go into force; an epoch handed to workers is never reused, even when
        // the swap is rolled back.
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        compiled.set_epoch(epoch);
        let compiled = Arc::new(compiled);
        let previous = self.current();
        for w in 0..control.workers() {
            let cmd = Command::SwapPolicy {
                policy: Arc::clone(&compiled),
                rule_hits: Self::hit_buffer(&compiled),
            };
            if let Err(e) = control.send(w, cmd, self.deliver_wait) {
                let rollback = self.roll_back(control, w, &previous);
                return Err(self.fail(format!(
                    "policy epoch {epoch} not delivered: {e}; {rollback}"
                )));
            }
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&compiled);
        keep_snapshot(self.snapshot.as_deref(), &path, sources);
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(compiled)
    }

    /// Hands `previous` back to workers `0..took` (those that took the refused policy),
    /// and says how that went.
    fn roll_back(&self, control: &Control, took: usize, previous: &Arc<CompiledPolicy>) -> String {
        let mut failed = Vec::new();
        for w in 0..took {
            let cmd = Command::SwapPolicy {
                policy: Arc::clone(previous),
                rule_hits: Self::hit_buffer(previous),
            };
            if control.send(w, cmd, self.deliver_wait).is_err() {
                failed.push(w);
            }
        }
        if failed.is_empty() {
            format!(
                "rolled back: every worker runs policy epoch {} again",
                previous.epoch()
            )
        } else {
            eprintln!(
                "flowgate: ERROR: policy rollback to epoch {} not delivered to workers {failed:?}",
                previous.epoch()
            );
            format!(
                "rollback to policy epoch {} not delivered to workers {failed:?}: they run the new policy",
                previous.epoch()
            )
        }
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
        let first = PolicyManager::load(&pol, 1, Some(&snap), DEFAULT_MAX_RULES).unwrap();
        assert_eq!(first.current().rules().len(), 1);
        assert!(first.last_error().is_none());
        assert!(snap.is_file(), "the validated policy is kept");

        // A broken rules file: refused without a snapshot, the kept policy runs with one.
        std::fs::write(&rules, "drop tcp any any -> any 23 (msg:\"t\";)\n").unwrap();
        let e = PolicyManager::load(&pol, 1, None, DEFAULT_MAX_RULES)
            .err()
            .unwrap();
        assert!(e.contains("g.rules:1") && e.contains("sid"), "{e}");
        let fallback = PolicyManager::load(&pol, 1, Some(&snap), DEFAULT_MAX_RULES).unwrap();
        assert_eq!(fallback.current().rules()[0].sid, 23);
        assert!(fallback.last_error().unwrap().contains("g.rules:1"));

        // A new valid policy replaces the snapshot (here through a fresh start).
        std::fs::write(&rules, "pass tcp any any -> any 80 (msg:\"w\"; sid:80;)\n").unwrap();
        PolicyManager::load(&pol, 1, Some(&snap), DEFAULT_MAX_RULES).unwrap();
        std::fs::write(&pol, "[stateful\n").unwrap();
        let later = PolicyManager::load(&pol, 1, Some(&snap), DEFAULT_MAX_RULES).unwrap();
        assert_eq!(later.current().rules()[0].sid, 80);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A scratch directory with a policy TOML whose rules file is `g.rules`.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("fg-policy-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("p.toml"), GOOD).unwrap();
            Scratch(dir)
        }
        fn policy(&self) -> PathBuf {
            self.0.join("p.toml")
        }
        /// Writes `n` drop rules (sids from `first`), atomically as an operator would.
        fn rules(&self, first: u32, n: u32) {
            let text: String = (first..first + n)
                .map(|sid| {
                    format!(
                        "drop tcp any any -> 198.18.{}.{} 443 (msg:\"r\"; sid:{sid};)\n",
                        (sid >> 8) & 0xff,
                        sid & 0xff
                    )
                })
                .collect();
            let tmp = self.0.join("g.rules.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(tmp, self.0.join("g.rules")).unwrap();
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A control with one worker per entry of `rings` (its command ring size) and no
    /// worker threads: what a worker would receive stays queued for the test to read.
    fn control(rings: &[usize]) -> Control {
        use dataplane::worker::engine::WorkerRings;
        let links = rings
            .iter()
            .enumerate()
            .map(|(i, &ring)| crate::control::WorkerLink {
                index: i as u16,
                lcore: i as u32 + 1,
                rings: Arc::new(WorkerRings::new(ring, 4, 4)),
            })
            .collect();
        Control::new(links, Duration::from_secs(5))
    }

    /// The epochs of the policies queued for `worker`, oldest first.
    fn queued_epochs(c: &Control, worker: usize) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(cmd) = c.links()[worker].rings.commands.pop() {
            if let Command::SwapPolicy { policy, .. } = cmd {
                out.push(policy.epoch());
            }
        }
        out
    }

    #[test]
    fn overlapping_reloads_leave_the_last_one_issued_in_force() {
        let s = Scratch::new("race");
        s.rules(1, 1);
        let mgr = Arc::new(PolicyManager::load(&s.policy(), 2, None, usize::MAX).unwrap());
        let ctl = Arc::new(control(&[16, 16]));
        // Reload A compiles a big policy; while it runs, the operator writes a small one
        // and issues reload B.
        s.rules(1_000, 20_000);
        let a = {
            let (mgr, ctl) = (Arc::clone(&mgr), Arc::clone(&ctl));
            std::thread::spawn(move || mgr.reload(&ctl))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !mgr.reload_in_progress() && !a.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "reload A never started"
            );
            std::thread::yield_now();
        }
        s.rules(7, 7);
        let b = mgr.reload(&ctl).expect("reload B");
        let a = a.join().unwrap().expect("reload A");
        assert!(
            b.epoch() > a.epoch(),
            "B (issued last) got epoch {}, A got {}",
            b.epoch(),
            a.epoch()
        );
        let now = mgr.current();
        assert_eq!(now.epoch(), b.epoch());
        assert_eq!(now.rules().len(), 7, "the policy in force is B's");
        for w in 0..2 {
            assert_eq!(queued_epochs(&ctl, w), vec![a.epoch(), b.epoch()]);
        }
    }

    #[test]
    fn a_swap_a_worker_cannot_take_is_rolled_back_everywhere() {
        let s = Scratch::new("rollback");
        s.rules(1, 1);
        let mut mgr = PolicyManager::load(&s.policy(), 2, None, usize::MAX).unwrap();
        mgr.deliver_wait = Duration::from_millis(50);
        let ctl = control(&[4, 1]);
        // Worker 1's command ring is full (the worker is stuck): it cannot take the policy.
        ctl.links()[1]
            .rings
            .commands
            .push(Command::Stats)
            .ok()
            .unwrap();
        s.rules(1, 3);
        let e = mgr.reload(&ctl).unwrap_err();
        assert!(
            e.contains("not delivered") && e.contains("rolled back"),
            "{e}"
        );
        assert_eq!(mgr.current().epoch(), 1);
        assert_eq!(mgr.current().rules().len(), 1);
        assert!(mgr.last_error().unwrap().contains("not delivered"));
        // Worker 0 took epoch 2, then got epoch 1 back; worker 1 never saw epoch 2.
        assert_eq!(queued_epochs(&ctl, 0), vec![2, 1]);
        assert_eq!(queued_epochs(&ctl, 1), Vec::<u32>::new());
        // The refused epoch is not reused.
        ctl.links()[1].rings.commands.pop();
        assert_eq!(mgr.reload(&ctl).unwrap().epoch(), 3);
    }

    #[test]
    fn a_policy_over_max_rules_is_refused_with_the_limit_named() {
        let s = Scratch::new("max");
        s.rules(1, 11);
        let e = PolicyManager::load(&s.policy(), 1, None, 10).err().unwrap();
        assert!(
            e.contains("11 rules") && e.contains("policy.max_rules = 10"),
            "{e}"
        );
        s.rules(1, 10);
        let mgr = PolicyManager::load(&s.policy(), 1, None, 10).unwrap();
        s.rules(1, 11);
        let e = mgr.reload(&control(&[4])).unwrap_err();
        assert!(e.contains("policy.max_rules"), "{e}");
        assert_eq!(mgr.current().rules().len(), 10, "the running policy stays");
    }
}
