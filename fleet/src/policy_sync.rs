//! Policy across zones. The fleet keeps the desired policy as a durable journal of the
//! changes it accepted (`UpdateFirewallPolicy`, rule group changes, …) in its state
//! directory, and per zone the last change that zone's appliance applied. A change is
//! validated on every reachable zone first (the action's `DryRun`), then journaled, then
//! applied to every reachable zone; a zone that was down or refused is caught up by the
//! background reconciler, in journal order, when it answers again. `DescribeFirewall`
//! reports a zone `IN_SYNC` once it has every journaled change, `PENDING` before.
//!
//! Each appliance keeps its own `UpdateToken`s; clients see the fleet's token per resource
//! (optimistic concurrency is checked here), and the appliance's current token is looked up
//! right before a change is applied to it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::router::ApiError;

const JOURNAL_FILE: &str = "desired-policy.json";
const ZONES_FILE: &str = "zone-sync.json";

/// The policy actions the fleet journals and replays on every zone.
pub const CHANGE_ACTIONS: &[&str] = &[
    "CreateFirewallPolicy",
    "UpdateFirewallPolicy",
    "DeleteFirewallPolicy",
    "AssociateFirewallPolicy",
    "CreateRuleGroup",
    "UpdateRuleGroup",
    "DeleteRuleGroup",
    "UpdateLoggingConfiguration",
    "UpdateFirewallDescription",
    "TagResource",
    "UntagResource",
];

/// Read-only resource actions: answered by one zone that has every change.
pub const READ_ACTIONS: &[&str] = &[
    "DescribeFirewallPolicy",
    "ListFirewallPolicies",
    "DescribeRuleGroup",
    "DescribeRuleGroupMetadata",
    "ListRuleGroups",
    "DescribeLoggingConfiguration",
    "ListTagsForResource",
    "DescribeFirewallMetadata",
];

/// Actions whose service model has `DryRun`: validated on every zone before anything is
/// applied anywhere.
pub fn has_dry_run(action: &str) -> bool {
    matches!(
        action,
        "CreateFirewallPolicy" | "UpdateFirewallPolicy" | "CreateRuleGroup" | "UpdateRuleGroup"
    )
}

/// The Describe call that returns the appliance's current `UpdateToken` for the resource a
/// change names, with the members that name it.
pub fn token_source(action: &str, body: &Value) -> Option<(&'static str, Value)> {
    let pick = |members: &[&str]| {
        let mut m = serde_json::Map::new();
        for k in members {
            if let Some(v) = body.get(*k) {
                m.insert((*k).to_string(), v.clone());
            }
        }
        Value::Object(m)
    };
    match action {
        "UpdateFirewallPolicy" => Some((
            "DescribeFirewallPolicy",
            pick(&["FirewallPolicyName", "FirewallPolicyArn"]),
        )),
        "UpdateRuleGroup" => Some((
            "DescribeRuleGroup",
            pick(&["RuleGroupName", "RuleGroupArn", "Type"]),
        )),
        "AssociateFirewallPolicy" | "UpdateFirewallDescription" => {
            Some(("DescribeFirewall", pick(&["FirewallName", "FirewallArn"])))
        }
        _ => None,
    }
}

/// The resource an action acts on, as the key of the fleet's `UpdateToken`s:
/// `firewall`, `firewall-policy/NAME`, `stateful-rulegroup/NAME`, `stateless-rulegroup/NAME`.
pub fn resource_key(action: &str, body: &Value) -> Option<String> {
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let from_arn = |arn: &str| arn.rsplit(':').next().map(str::to_string);
    if action.contains("FirewallPolicy") && action != "AssociateFirewallPolicy" {
        if let Some(arn) = s("FirewallPolicyArn") {
            return from_arn(arn);
        }
        return s("FirewallPolicyName").map(|n| format!("firewall-policy/{n}"));
    }
    if action.contains("RuleGroup") {
        if let Some(arn) = s("RuleGroupArn") {
            return from_arn(arn);
        }
        let kind = match s("Type") {
            Some("STATELESS") => "stateless",
            _ => "stateful",
        };
        return s("RuleGroupName").map(|n| format!("{kind}-rulegroup/{n}"));
    }
    if action.contains("Firewall") {
        return Some("firewall".into());
    }
    None
}

/// One accepted change, replayed on every zone in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    pub gen: u64,
    pub action: String,
    /// The request as the client sent it, less `DryRun` and `UpdateToken`.
    pub body: Value,
}

/// The durable desired state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// Changes up to this generation were applied by every zone and dropped.
    base_gen: u64,
    changes: Vec<Change>,
    /// Resource key → the `UpdateToken` the fleet gave clients.
    tokens: BTreeMap<String, String>,
    /// The policy associated with the firewall, when the fleet has seen one.
    firewall_policy_arn: Option<String>,
}

impl Journal {
    fn last_gen(&self) -> u64 {
        self.changes.last().map_or(self.base_gen, |c| c.gen)
    }
}

/// Where one zone stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ZoneSync {
    /// The last journaled change this zone applied.
    pub applied: u64,
    /// Why the next change could not be applied (refused or unreachable), if it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A copy of the sync state for reporting.
#[derive(Clone, Debug)]
pub struct SyncView {
    pub last_gen: u64,
    pub zones: BTreeMap<String, ZoneSync>,
    pub firewall_policy_arn: Option<String>,
}

impl SyncView {
    pub fn in_sync(&self, zone: &str) -> bool {
        self.zones
            .get(zone)
            .is_some_and(|z| z.applied >= self.last_gen)
    }
}

struct State {
    journal: Journal,
    zones: BTreeMap<String, ZoneSync>,
}

/// The desired policy and each zone's progress towards it, persisted in `dir`.
pub struct PolicySync {
    dir: PathBuf,
    state: Mutex<State>,
    /// Serialises change workflows (client changes and catch-up), which await on zones.
    pub workflow: tokio::sync::Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

impl PolicySync {
    /// Loads (or starts) the state in `dir` for `zones`.
    pub fn open(dir: &Path, zones: &[String]) -> Result<PolicySync, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let journal: Journal = read_json(&dir.join(JOURNAL_FILE))?.unwrap_or_default();
        let saved: BTreeMap<String, ZoneSync> =
            read_json(&dir.join(ZONES_FILE))?.unwrap_or_default();
        // A zone new to the inventory starts at the base: it gets every journaled change
        // (older ones were pruned once every then-known zone had them).
        let zones = zones
            .iter()
            .map(|z| {
                let s = saved.get(z).cloned().unwrap_or(ZoneSync {
                    applied: journal.base_gen,
                    error: None,
                });
                (z.clone(), s)
            })
            .collect();
        Ok(PolicySync {
            dir: dir.to_path_buf(),
            state: Mutex::new(State { journal, zones }),
            workflow: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> SyncView {
        let st = self.lock();
        SyncView {
            last_gen: st.journal.last_gen(),
            zones: st.zones.clone(),
            firewall_policy_arn: st.journal.firewall_policy_arn.clone(),
        }
    }

    /// The fleet's `UpdateToken` for `key`, minted (and kept) on first use.
    pub fn token(&self, key: &str) -> Result<String, ApiError> {
        let mut st = self.lock();
        if let Some(t) = st.journal.tokens.get(key) {
            return Ok(t.clone());
        }
        let t = uuid::Uuid::new_v4().to_string();
        st.journal.tokens.insert(key.to_string(), t.clone());
        self.save_journal(&st)?;
        Ok(t)
    }

    /// Checks a client's `UpdateToken` for `key` (the service's `InvalidTokenException`).
    pub fn check_token(&self, key: &str, given: &str) -> Result<(), ApiError> {
        let current = self.token(key)?;
        if current != given {
            return Err(ApiError::new(
                "InvalidTokenException",
                400,
                format!(
                    "UpdateToken: '{given}' is not the current token of {key}: describe the resource again and retry"
                ),
            ));
        }
        Ok(())
    }

    /// Journals a validated change durably and returns it with the resource's new token.
    pub fn append(
        &self,
        action: &str,
        body: Value,
        key: Option<&str>,
    ) -> Result<(Change, Option<String>), ApiError> {
        let mut st = self.lock();
        let change = Change {
            gen: st.journal.last_gen() + 1,
            action: action.to_string(),
            body,
        };
        if action == "AssociateFirewallPolicy" {
            if let Some(arn) = change.body.get("FirewallPolicyArn").and_then(Value::as_str) {
                st.journal.firewall_policy_arn = Some(arn.to_string());
            }
        }
        st.journal.changes.push(change.clone());
        let token = key.map(|k| {
            let t = uuid::Uuid::new_v4().to_string();
            st.journal.tokens.insert(k.to_string(), t.clone());
            t
        });
        if let Err(e) = self.save_journal(&st) {
            st.journal.changes.pop();
            return Err(e);
        }
        Ok((change, token))
    }

    /// Notes the firewall's policy ARN as a zone reported it (when the fleet has none yet).
    pub fn learn_policy_arn(&self, arn: &str) {
        let mut st = self.lock();
        if st.journal.firewall_policy_arn.is_none() {
            st.journal.firewall_policy_arn = Some(arn.to_string());
            let _ = self.save_journal(&st);
        }
    }

    /// The changes `zone` has not applied yet, in order.
    pub fn pending(&self, zone: &str) -> Vec<Change> {
        let st = self.lock();
        let applied = st.zones.get(zone).map_or(0, |z| z.applied);
        st.journal
            .changes
            .iter()
            .filter(|c| c.gen > applied)
            .cloned()
            .collect()
    }

    /// Records that `zone` applied change `gen`; prunes changes every zone has.
    pub fn applied(&self, zone: &str, gen: u64) -> Result<(), ApiError> {
        let mut st = self.lock();
        if let Some(z) = st.zones.get_mut(zone) {
            z.applied = z.applied.max(gen);
            z.error = None;
        }
        let min = st.zones.values().map(|z| z.applied).min().unwrap_or(0);
        if min > st.journal.base_gen {
            st.journal.changes.retain(|c| c.gen > min);
            st.journal.base_gen = min;
            self.save_journal(&st)?;
        }
        self.save_zones(&st)
    }

    /// Records why `zone` could not apply its next change.
    pub fn failed(&self, zone: &str, why: String) {
        let mut st = self.lock();
        if let Some(z) = st.zones.get_mut(zone) {
            z.error = Some(why);
        }
        let _ = self.save_zones(&st);
    }

    fn save_journal(&self, st: &State) -> Result<(), ApiError> {
        write_json(&self.dir, JOURNAL_FILE, &st.journal).map_err(internal)
    }

    fn save_zones(&self, st: &State) -> Result<(), ApiError> {
        write_json(&self.dir, ZONES_FILE, &st.zones).map_err(internal)
    }
}

fn internal(e: StateError) -> ApiError {
    ApiError::new(
        "InternalServerError",
        500,
        format!("fleet state could not be saved: {e}"),
    )
}

fn io_err(p: &Path, e: std::io::Error) -> StateError {
    StateError::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StateError::Io {
                path: p.display().to_string(),
                reason: format!("corrupt state file: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(p, e)),
    }
}

/// Writes `v` to `dir/name` atomically: a unique temporary file, fsync, rename, fsync of
/// the directory.
fn write_json<T: Serialize>(dir: &Path, name: &str, v: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| StateError::Io {
        path: name.into(),
        reason: e.to_string(),
    })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4()));
    let dest = dir.join(name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io_err(&dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("fleet-sync-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn journal_survives_reopen_and_is_pruned_when_every_zone_has_it() {
        let d = dir();
        let zones = vec!["a".to_string(), "b".to_string()];
        let s = PolicySync::open(&d, &zones).unwrap();
        let (c1, t1) = s
            .append(
                "UpdateFirewallPolicy",
                json!({"FirewallPolicyName": "p"}),
                Some("firewall-policy/p"),
            )
            .unwrap();
        assert_eq!(c1.gen, 1);
        s.applied("a", 1).unwrap();
        let v = s.view();
        assert!(v.in_sync("a") && !v.in_sync("b"));
        drop(s);
        let s = PolicySync::open(&d, &zones).unwrap();
        assert_eq!(s.pending("b").len(), 1, "zone b still owes change 1");
        assert!(s.pending("a").is_empty());
        assert_eq!(s.token("firewall-policy/p").unwrap(), t1.unwrap());
        s.applied("b", 1).unwrap();
        assert!(s.view().in_sync("b"));
        assert!(s.lock().journal.changes.is_empty(), "pruned");
        // A zone added to the inventory later starts at the pruned base.
        drop(s);
        let s = PolicySync::open(&d, &["a".into(), "b".into(), "c".into()]).unwrap();
        assert!(s.view().in_sync("c"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_tokens_are_refused() {
        let d = dir();
        let s = PolicySync::open(&d, &["a".into()]).unwrap();
        let t = s.token("firewall-policy/p").unwrap();
        s.check_token("firewall-policy/p", &t).unwrap();
        s.append("UpdateFirewallPolicy", json!({}), Some("firewall-policy/p"))
            .unwrap();
        let e = s.check_token("firewall-policy/p", &t).unwrap_err();
        assert_eq!(e.kind, "InvalidTokenException");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn resource_keys_agree_between_names_and_arns() {
        let arn = "arn:aws:network-firewall:us-east-1:0:stateful-rulegroup/web";
        assert_eq!(
            resource_key("UpdateRuleGroup", &json!({"RuleGroupArn": arn})),
            resource_key(
                "DescribeRuleGroup",
                &json!({"RuleGroupName": "web", "Type": "STATEFUL"})
            )
        );
        assert_eq!(
            resource_key(
                "UpdateFirewallPolicy",
                &json!({"FirewallPolicyArn": "arn:aws:network-firewall:us-east-1:0:firewall-policy/p"})
            )
            .as_deref(),
            Some("firewall-policy/p")
        );
        assert_eq!(
            resource_key("AssociateFirewallPolicy", &json!({})).as_deref(),
            Some("firewall")
        );
    }
}
