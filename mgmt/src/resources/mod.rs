//! AWS Network Firewall's resource model as this appliance's own: the firewall (this
//! appliance), firewall policies, rule groups (STATEFUL, STATELESS), the logging
//! configuration and tags, persisted under `state_dir` ([`store`]), served by the AWS API
//! actions in [`actions`] (validated against the service's model, [`model`]), and — for the
//! policy associated with the firewall — compiled and swapped into the workers like a reload.
//!
//! # Which source is authoritative
//! `[policy] source`:
//! * `"file"` (default): the policy file runs (TOML, or AWS-shaped JSON/YAML). An AWS-shaped
//!   file's policy and rule groups are imported on every start as read-only resources
//!   (`InvalidOperationException` for API changes to them); a TOML file is reported as the
//!   policy `<firewall name>-file` (no API shape). Other policies and rule groups can be
//!   created through the API and are kept, but only the file runs.
//! * `"api"`: the API owns the policy once one is associated. On first start (no associated
//!   policy yet) an AWS-shaped file seeds the store (its resources are created and its
//!   policy associated); a TOML file runs until `AssociateFirewallPolicy`. From then on the
//!   associated policy and the rule groups it references, as kept in the store, are what
//!   runs: every start and reload compiles them (written out as the self-contained
//!   `state_dir/resources/effective-policy.json`), and the policy file is no longer read.
//!
//! # Sync state
//! `DescribeFirewall` reports, per zone, each resource of the running policy as `IN_SYNC`
//! when the version (update token) in the store is the one every worker runs, `PENDING`
//! otherwise (a swap in progress or one that did not reach every worker).

pub mod actions;
pub mod model;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use dataplane::policy::aws::{FirewallPolicyShape, GroupType, NamedGroup, RuleGroupShape};
use dataplane::policy::aws_file::{self, AwsDocument};
use dataplane::policy::Policy;
use serde_json::{json, Value};

use crate::config::{Config, PolicySource};
use store::{PolicyRecord, RuleGroupRecord, State, Store};

/// The effective policy file written from the store under `policy.source = "api"`.
pub const EFFECTIVE_POLICY: &str = "effective-policy.json";

/// What the resource actions need from the running appliance: switching the running
/// policy to a policy file (validated, compiled and swapped like a reload).
pub trait PolicyHost {
    /// Runs the policy at `path` from now on; `Err` when it did not reach every worker.
    fn apply_policy_file(&self, path: &Path, caller: &str) -> Result<(), String>;
}

/// This appliance's identity, from the config.
#[derive(Clone, Debug)]
pub struct Identity {
    pub firewall_name: String,
    pub firewall_arn: String,
    /// `arn:aws:network-firewall:<region>:<account>:`, from the firewall's ARN.
    pub arn_prefix: String,
    pub zone: String,
    pub zone_id: Option<String>,
    pub description: Option<String>,
    pub source: PolicySource,
    pub policy_file: PathBuf,
}

impl Identity {
    pub fn from_config(cfg: &Config) -> Identity {
        let a = &cfg.appliance;
        // arn:partition:service:region:account:resource → keep the first five fields.
        let fields: Vec<&str> = a.firewall_arn.splitn(6, ':').collect();
        let arn_prefix = match fields.as_slice() {
            [p, part, svc, region, account, _] => format!("{p}:{part}:{svc}:{region}:{account}:"),
            _ => "arn:aws:network-firewall:us-east-1:000000000000:".to_string(),
        };
        Identity {
            firewall_name: a.firewall_name.clone(),
            firewall_arn: a.firewall_arn.clone(),
            arn_prefix,
            zone: a.zone.clone(),
            zone_id: a.zone_id.clone(),
            description: a.description.clone(),
            source: cfg.policy.source,
            policy_file: cfg.policy.file.clone(),
        }
    }

    pub fn policy_arn(&self, name: &str) -> String {
        format!("{}firewall-policy/{name}", self.arn_prefix)
    }

    pub fn group_arn(&self, kind: GroupType, name: &str) -> String {
        format!("{}{}/{name}", self.arn_prefix, kind.arn_resource())
    }

    /// The ARN reported for a TOML policy file, which has no API shape.
    pub fn file_policy_arn(&self) -> String {
        self.policy_arn(&format!("{}-file", self.firewall_name))
    }
}

/// The versions of the running policy's resources, by name → update token.
#[derive(Clone, Debug, Default)]
struct Applied {
    tokens: BTreeMap<String, String>,
    /// The last swap reached every worker.
    complete: bool,
}

pub struct ResourceManager {
    pub id: Identity,
    store: Mutex<Store>,
    applied: Mutex<Applied>,
    /// Held through a whole mutating action (store, then swap), so changes apply in order.
    mutation: Mutex<()>,
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// A rule group record's body as the translator takes it.
pub fn named_group(r: &RuleGroupRecord) -> Result<NamedGroup, String> {
    let kind = match r.kind.as_str() {
        "STATELESS" => GroupType::Stateless,
        _ => GroupType::Stateful,
    };
    let group: RuleGroupShape = serde_json::from_value(r.body.clone())
        .map_err(|e| format!("RuleGroup '{}': {e}", r.name))?;
    Ok(NamedGroup {
        arn: r.arn.clone(),
        name: r.name.clone(),
        kind,
        group,
    })
}

/// Compiles a policy body against the rule groups of `state`.
pub fn compile_policy(state: &State, body: &Value) -> Result<Policy, String> {
    let shape: FirewallPolicyShape =
        serde_json::from_value(body.clone()).map_err(|e| format!("FirewallPolicy: {e}"))?;
    let groups = referenced_groups(state, body)
        .iter()
        .map(|r| named_group(r))
        .collect::<Result<Vec<_>, _>>()?;
    dataplane::policy::aws::policy_from_aws(&shape, &groups).map_err(|e| e.to_string())
}

/// The ARNs a policy body references (stateless, then stateful).
pub fn referenced_arns(body: &Value) -> Vec<String> {
    [
        "StatelessRuleGroupReferences",
        "StatefulRuleGroupReferences",
    ]
    .iter()
    .filter_map(|m| body.get(m).and_then(Value::as_array))
    .flatten()
    .filter_map(|r| r.get("ResourceArn").and_then(Value::as_str))
    .map(str::to_string)
    .collect()
}

/// The store's rule groups a policy body references (those that exist).
pub fn referenced_groups<'a>(state: &'a State, body: &Value) -> Vec<&'a RuleGroupRecord> {
    referenced_arns(body)
        .iter()
        .filter_map(|a| state.rule_groups.get(a))
        .collect()
}

/// The self-contained policy file for `policy` (API shapes, its rule groups inlined).
fn effective_document(state: &State, policy: &PolicyRecord) -> Value {
    let groups: Vec<Value> = referenced_groups(state, &policy.body)
        .into_iter()
        .map(|g| {
            json!({"RuleGroupName": g.name, "Type": g.kind, "Capacity": g.capacity,
                   "RuleGroupArn": g.arn, "RuleGroup": g.body})
        })
        .collect();
    json!({
        "FirewallPolicyName": policy.name,
        "FirewallPolicyArn": policy.arn,
        "UpdateToken": policy.update_token,
        "FirewallPolicy": policy.body,
        "RuleGroups": groups,
    })
}

impl ResourceManager {
    /// Opens the store, imports an AWS-shaped policy file as [`module docs`](self) say, and
    /// returns the manager and the policy file the appliance runs now.
    pub fn open(cfg: &Config) -> Result<(ResourceManager, PathBuf), String> {
        let id = Identity::from_config(cfg);
        let mut store = Store::open(&cfg.appliance.state_dir).map_err(|e| e.to_string())?;
        let file = &cfg.policy.file;
        if aws_file::is_aws_file(file) {
            let seed =
                id.source == PolicySource::Api && store.state().firewall.policy_arn.is_none();
            if id.source == PolicySource::File || seed {
                match std::fs::read_to_string(file)
                    .map_err(|e| format!("{}: {e}", file.display()))
                    .and_then(|t| aws_file::read_document(&t, file).map_err(|e| e.to_string()))
                {
                    Ok(doc) => {
                        if let Some(note) = &doc.inferred {
                            eprintln!("flowgate: {}: {note}", file.display());
                        }
                        let next =
                            import(&id, store.state(), &doc, id.source == PolicySource::File);
                        store.commit(next).map_err(|e| e.to_string())?;
                    }
                    // The policy manager reports the file's error (and may fall back on the
                    // last validated policy); nothing is imported.
                    Err(e) => eprintln!("flowgate: policy file not imported as resources: {e}"),
                }
            }
        }
        let mgr = ResourceManager {
            id,
            store: Mutex::new(store),
            applied: Mutex::new(Applied::default()),
            mutation: Mutex::new(()),
        };
        let run = match (mgr.id.source, mgr.running_policy()) {
            (PolicySource::Api, Some(p)) => mgr.write_effective(&mgr.lock(), &p)?,
            _ => file.clone(),
        };
        Ok((mgr, run))
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The associated policy's record, if the firewall has one in the store.
    pub fn running_policy(&self) -> Option<PolicyRecord> {
        let s = self.lock();
        let arn = s.state().firewall.policy_arn.clone()?;
        s.state().policies.get(&arn).cloned()
    }

    fn write_effective(&self, store: &Store, p: &PolicyRecord) -> Result<PathBuf, String> {
        let doc = effective_document(store.state(), p);
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
        store
            .write_file(EFFECTIVE_POLICY, &bytes)
            .map_err(|e| e.to_string())
    }

    /// Records that the running policy's resources are now in force (or not everywhere).
    pub fn mark_applied(&self, complete: bool) {
        let s = self.lock();
        let mut tokens = BTreeMap::new();
        if let Some(p) = s
            .state()
            .firewall
            .policy_arn
            .as_ref()
            .and_then(|a| s.state().policies.get(a))
        {
            tokens.insert(p.name.clone(), p.update_token.clone());
            for g in referenced_groups(s.state(), &p.body) {
                tokens.insert(g.name.clone(), g.update_token.clone());
            }
        }
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = Applied { tokens, complete };
    }

    /// Whether the last swap (or the start-up load) reached every worker.
    pub fn applied_complete(&self) -> bool {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .complete
    }

    /// A reload (start-up, API, SIGHUP, or an action's swap) finished: `in_force` says
    /// whether the policy on disk now runs on every worker.
    pub fn after_reload(&self, in_force: bool) {
        if in_force
            && self.id.source == PolicySource::File
            && aws_file::is_aws_file(&self.id.policy_file)
        {
            // The file owns its resources: mirror what now runs.
            let file = &self.id.policy_file;
            let doc = std::fs::read_to_string(file)
                .map_err(|e| e.to_string())
                .and_then(|t| aws_file::read_document(&t, file).map_err(|e| e.to_string()));
            match doc {
                Ok(doc) => {
                    let mut store = self.lock();
                    let next = import(&self.id, store.state(), &doc, true);
                    if let Err(e) = store.commit(next) {
                        eprintln!("flowgate: the policy file's resources were not stored: {e}");
                    }
                }
                Err(e) => eprintln!("flowgate: policy file not imported as resources: {e}"),
            }
        }
        self.mark_applied(in_force);
    }

    /// `IN_SYNC` / `PENDING` for a resource of the running policy.
    fn sync_status(&self, name: &str, token: &str) -> &'static str {
        let a = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if a.complete && a.tokens.get(name).is_some_and(|t| t == token) {
            "IN_SYNC"
        } else {
            "PENDING"
        }
    }
}

/// `state` with `doc`'s rule groups and policy imported (ARNs rewritten to this appliance's),
/// the policy associated. `from_file`: the file owns them (replaced on every start);
/// otherwise existing resources of the same name are kept (a seed never overwrites).
fn import(id: &Identity, state: &State, doc: &AwsDocument, from_file: bool) -> State {
    let mut next = state.clone();
    let now = now_secs();
    let mut body = doc.policy.body.clone();
    for g in &doc.rule_groups {
        let arn = id.group_arn(g.kind, &g.name);
        rewrite_reference(&mut body, &doc.group_arn(g), &arn);
        if !from_file && next.rule_groups.contains_key(&arn) {
            continue;
        }
        let consumed = serde_json::from_value::<RuleGroupShape>(g.body.clone())
            .map(|s| dataplane::policy::aws::consumed_capacity(&s))
            .unwrap_or(0);
        let prev = next.rule_groups.get(&arn);
        next.rule_groups.insert(
            arn.clone(),
            RuleGroupRecord {
                name: g.name.clone(),
                arn: arn.clone(),
                id: prev.map_or_else(store::new_id, |p| p.id.clone()),
                kind: g.kind.as_str().into(),
                capacity: g.capacity.unwrap_or(consumed),
                consumed_capacity: consumed,
                update_token: match prev {
                    Some(p) if p.body == g.body => p.update_token.clone(),
                    _ => store::new_id(),
                },
                description: g.description.clone(),
                tags: g.tags.clone(),
                body: g.body.clone(),
                last_modified: prev
                    .filter(|p| p.body == g.body)
                    .map_or(now, |p| p.last_modified),
                from_file,
            },
        );
    }
    let arn = id.policy_arn(&doc.policy.name);
    if from_file || !next.policies.contains_key(&arn) {
        let prev = next.policies.get(&arn);
        next.policies.insert(
            arn.clone(),
            PolicyRecord {
                name: doc.policy.name.clone(),
                arn: arn.clone(),
                id: prev.map_or_else(store::new_id, |p| p.id.clone()),
                update_token: match prev {
                    Some(p) if p.body == body => p.update_token.clone(),
                    _ => store::new_id(),
                },
                description: doc.policy.description.clone(),
                tags: doc.policy.tags.clone(),
                last_modified: prev
                    .filter(|p| p.body == body)
                    .map_or(now, |p| p.last_modified),
                body,
                from_file,
            },
        );
    }
    if next.firewall.policy_arn.as_deref() != Some(arn.as_str()) {
        next.firewall.policy_arn = Some(arn);
        next.firewall.update_token = store::new_id();
    }
    next
}

/// Replaces references to `from` with `to` in a policy body.
fn rewrite_reference(body: &mut Value, from: &str, to: &str) {
    for member in [
        "StatelessRuleGroupReferences",
        "StatefulRuleGroupReferences",
    ] {
        if let Some(list) = body.get_mut(member).and_then(Value::as_array_mut) {
            for r in list {
                if r.get("ResourceArn").and_then(Value::as_str) == Some(from) {
                    r["ResourceArn"] = Value::from(to);
                }
            }
        }
    }
}
