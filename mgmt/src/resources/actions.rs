//! The resource actions of the AWS API (firewall, policies, rule groups, logging, tags): one
//! request value in (decoded from JSON 1.0 or CBOR by [`crate::aws_api`]), one response
//! value out, errors in the service's types. Each request is first validated against the
//! service's model ([`super::model`]); then the action's own rules apply: lookups by ARN or
//! name, `UpdateToken` optimistic concurrency (`InvalidTokenException`), capacity, references
//! between resources, and — for the policy in force — translation and compilation before
//! anything is stored, then the swap ([`super::PolicyHost`]).
//!
//! Single-appliance choices (see `docs/api.md`): there is one firewall, this appliance; its
//! `VpcId` is a stable placeholder derived from its id, `SubnetMappings` is empty; managed
//! rule groups (`Scope: MANAGED`) list as empty; `DryRun` validates without storing.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::model::{model, Invalid};
use super::store::{self, PolicyRecord, RuleGroupRecord, State, Tags};
use super::{compile_policy, named_group, now_secs, referenced_arns, PolicyHost, ResourceManager};
use crate::aws_api::ApiError;
use crate::config::PolicySource;
use dataplane::policy::aws::{self as awsp, GroupType, RuleGroupShape};

/// Every action this module serves.
pub const ACTIONS: &[&str] = &[
    "DescribeFirewall",
    "ListFirewalls",
    "DescribeFirewallMetadata",
    "DescribeFirewallPolicy",
    "UpdateFirewallPolicy",
    "ListFirewallPolicies",
    "CreateFirewallPolicy",
    "CreateRuleGroup",
    "DescribeRuleGroup",
    "DescribeRuleGroupMetadata",
    "UpdateRuleGroup",
    "DeleteRuleGroup",
    "ListRuleGroups",
    "DescribeLoggingConfiguration",
    "UpdateLoggingConfiguration",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "AssociateFirewallPolicy",
];

/// The actions that change something (audited on success too).
pub fn is_mutating(action: &str) -> bool {
    matches!(
        action,
        "UpdateFirewallPolicy"
            | "CreateFirewallPolicy"
            | "CreateRuleGroup"
            | "UpdateRuleGroup"
            | "DeleteRuleGroup"
            | "UpdateLoggingConfiguration"
            | "TagResource"
            | "UntagResource"
            | "AssociateFirewallPolicy"
    )
}

/// The most capacity one rule group may have.
const MAX_GROUP_CAPACITY: i64 = 30_000;
const DEFAULT_PAGE: usize = 100;

fn error(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        kind,
        status: if kind == "InternalServerError" {
            500
        } else {
            400
        },
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    error("InvalidRequestException", message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    error("ResourceNotFoundException", message)
}

fn invalid_op(message: impl Into<String>) -> ApiError {
    error("InvalidOperationException", message)
}

fn internal(message: impl Into<String>) -> ApiError {
    error("InternalServerError", message)
}

fn stale(kind: &str, name: &str) -> ApiError {
    error(
        "InvalidTokenException",
        format!(
            "UpdateToken: the token is not the current one for {kind} '{name}' (it changed since you read it); describe it again and retry with the new token"
        ),
    )
}

fn str_of<'a>(v: &'a Value, member: &str) -> Option<&'a str> {
    v.get(member).and_then(Value::as_str)
}

fn tags_json(tags: &Tags) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

fn tags_from(v: Option<&Value>) -> Tags {
    let mut out: Tags = Vec::new();
    for t in v.and_then(Value::as_array).into_iter().flatten() {
        if let (Some(k), Some(val)) = (str_of(t, "Key"), str_of(t, "Value")) {
            merge_tag(&mut out, k, val);
        }
    }
    out
}

fn merge_tag(tags: &mut Tags, k: &str, v: &str) {
    match tags.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => tags.push((k.to_string(), v.to_string())),
    }
}

/// One page of `items`; `NextToken` is the offset of the next item.
fn page(
    body: &Value,
    items: Vec<Value>,
    max_default: usize,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let max = match body.get("MaxResults").and_then(Value::as_u64) {
        Some(0) | None => max_default,
        Some(n) => usize::try_from(n).unwrap_or(max_default),
    };
    let start = match str_of(body, "NextToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("offset:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| invalid(format!("NextToken: '{t}' is not a token this API gave out")))?,
    };
    let end = start.saturating_add(max).min(items.len());
    let next = (end < items.len()).then(|| format!("offset:{end}"));
    Ok((items[start..end].to_vec(), next))
}

fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(t) = next {
        v["NextToken"] = Value::from(t);
    }
    v
}

/// One resource action, on behalf of `caller`; returns the response and the ARN it created
/// or changed (for the audit log).
pub fn dispatch(
    mgr: &ResourceManager,
    host: &dyn PolicyHost,
    action: &str,
    body: &Value,
    caller: &str,
) -> Result<(Value, Option<String>), ApiError> {
    model().validate_input(action, body).map_err(|e| match e {
        Invalid::Type(m) => error("SerializationException", m),
        Invalid::Constraint(m) => invalid(m),
    })?;
    let ctx = Ctx { mgr, host, caller };
    if is_mutating(action) {
        let _one_at_a_time = mgr.mutation.lock().unwrap_or_else(|e| e.into_inner());
        return ctx.mutate(action, body);
    }
    let v = match action {
        "DescribeFirewall" => ctx.describe_firewall(body)?,
        "ListFirewalls" => ctx.list_firewalls(body)?,
        "DescribeFirewallMetadata" => ctx.describe_firewall_metadata(body)?,
        "DescribeFirewallPolicy" => ctx.describe_policy(body)?,
        "ListFirewallPolicies" => ctx.list_policies(body)?,
        "DescribeRuleGroup" => ctx.describe_group(body)?,
        "DescribeRuleGroupMetadata" => ctx.describe_group_metadata(body)?,
        "ListRuleGroups" => ctx.list_groups(body)?,
        "DescribeLoggingConfiguration" => ctx.describe_logging(body)?,
        "ListTagsForResource" => ctx.list_tags(body)?,
        other => {
            return Err(error(
                "UnknownOperationException",
                format!("unknown operation '{other}'"),
            ))
        }
    };
    Ok((v, None))
}

struct Ctx<'a> {
    mgr: &'a ResourceManager,
    host: &'a dyn PolicyHost,
    caller: &'a str,
}

impl Ctx<'_> {
    fn state(&self) -> State {
        self.mgr.lock().state().clone()
    }

    fn commit(&self, next: State) -> Result<(), ApiError> {
        self.mgr
            .lock()
            .commit(next)
            .map_err(|e| internal(format!("the change was not stored: {e}")))
    }

    fn mutate(&self, action: &str, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        match action {
            "CreateRuleGroup" => self.create_group(body),
            "UpdateRuleGroup" => self.update_group(body),
            "DeleteRuleGroup" => self.delete_group(body),
            "CreateFirewallPolicy" => self.create_policy(body),
            "UpdateFirewallPolicy" => self.update_policy(body),
            "AssociateFirewallPolicy" => self.associate(body),
            "UpdateLoggingConfiguration" => self.update_logging(body),
            "TagResource" => self.tag(body, true),
            _ => self.tag(body, false),
        }
    }

    // ---- the firewall ----------------------------------------------------------------

    /// Checks `FirewallArn` / `FirewallName` name this appliance (`required`: one must be given).
    fn check_firewall(&self, body: &Value, required: bool) -> Result<(), ApiError> {
        let id = &self.mgr.id;
        let arn = str_of(body, "FirewallArn");
        let name = str_of(body, "FirewallName");
        if required && arn.is_none() && name.is_none() {
            return Err(invalid("FirewallArn or FirewallName is required"));
        }
        if let Some(a) = arn {
            if a != id.firewall_arn {
                return Err(not_found(format!(
                    "firewall '{a}' not found: this appliance is '{}'",
                    id.firewall_arn
                )));
            }
        }
        if let Some(n) = name {
            if n != id.firewall_name {
                return Err(not_found(format!(
                    "firewall '{n}' not found: this appliance is '{}'",
                    id.firewall_name
                )));
            }
        }
        Ok(())
    }

    /// The ARN of the policy the firewall reports (the file's placeholder while a TOML runs).
    fn firewall_policy_arn(&self, s: &State) -> String {
        s.firewall
            .policy_arn
            .clone()
            .unwrap_or_else(|| self.mgr.id.file_policy_arn())
    }

    fn vpc_id(s: &State) -> String {
        let hex: String = s
            .firewall
            .id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(17)
            .collect();
        format!("vpc-{hex}")
    }

    fn firewall_json(&self, s: &State) -> Value {
        let id = &self.mgr.id;
        let mut fw = json!({
            "FirewallName": id.firewall_name,
            "FirewallArn": id.firewall_arn,
            "FirewallPolicyArn": self.firewall_policy_arn(s),
            "VpcId": Self::vpc_id(s),
            "SubnetMappings": [],
            "DeleteProtection": true,
            "SubnetChangeProtection": false,
            "FirewallPolicyChangeProtection": id.source == PolicySource::File,
            "FirewallId": s.firewall.id,
            "Tags": tags_json(&s.firewall.tags),
            "EncryptionConfiguration": {"Type": "AWS_OWNED_KMS_KEY"},
            "NumberOfAssociations": 0,
            "AvailabilityZoneMappings": [{"AvailabilityZone": id.zone}],
        });
        if let Some(d) = &id.description {
            fw["Description"] = Value::from(d.clone());
        }
        fw
    }

    fn firewall_status(&self, s: &State) -> Value {
        let mut config = Map::new();
        match s
            .firewall
            .policy_arn
            .as_ref()
            .and_then(|a| s.policies.get(a))
        {
            Some(p) => {
                config.insert(
                    p.name.clone(),
                    json!({"SyncStatus": self.mgr.sync_status(&p.name, &p.update_token), "UpdateToken": p.update_token}),
                );
                for g in super::referenced_groups(s, &p.body) {
                    config.insert(
                        g.name.clone(),
                        json!({"SyncStatus": self.mgr.sync_status(&g.name, &g.update_token), "UpdateToken": g.update_token}),
                    );
                }
            }
            None => {
                let name = format!("{}-file", self.mgr.id.firewall_name);
                let status = if self.mgr.applied_complete() {
                    "IN_SYNC"
                } else {
                    "PENDING"
                };
                config.insert(name, json!({"SyncStatus": status}));
            }
        }
        let all_in_sync = config
            .values()
            .all(|c| c.get("SyncStatus").and_then(Value::as_str) == Some("IN_SYNC"));
        let summary = if all_in_sync { "IN_SYNC" } else { "PENDING" };
        let mut attachment = json!({"Status": "READY"});
        if let Some(z) = &self.mgr.id.zone_id {
            attachment["EndpointId"] = Value::from(z.clone());
        }
        json!({
            "Status": "READY",
            "ConfigurationSyncStateSummary": summary,
            "SyncStates": { self.mgr.id.zone.clone(): { "Attachment": attachment, "Config": config } },
        })
    }

    fn describe_firewall(&self, body: &Value) -> Result<Value, ApiError> {
        self.check_firewall(body, true)?;
        let s = self.state();
        Ok(json!({
            "UpdateToken": s.firewall.update_token,
            "Firewall": self.firewall_json(&s),
            "FirewallStatus": self.firewall_status(&s),
        }))
    }

    fn list_firewalls(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let vpc = Self::vpc_id(&s);
        let in_vpcs = body
            .get("VpcIds")
            .and_then(Value::as_array)
            .is_none_or(|ids| ids.is_empty() || ids.iter().any(|v| v.as_str() == Some(&vpc)));
        let id = &self.mgr.id;
        let items = if in_vpcs {
            vec![json!({"FirewallName": id.firewall_name, "FirewallArn": id.firewall_arn})]
        } else {
            Vec::new()
        };
        let (items, next) = page(body, items, DEFAULT_PAGE)?;
        Ok(with_next(json!({"Firewalls": items}), next))
    }

    fn describe_firewall_metadata(&self, body: &Value) -> Result<Value, ApiError> {
        self.check_firewall(body, false)?;
        let s = self.state();
        let id = &self.mgr.id;
        let mut out = json!({
            "FirewallArn": id.firewall_arn,
            "FirewallPolicyArn": self.firewall_policy_arn(&s),
            "Status": "READY",
            "SupportedAvailabilityZones": { id.zone.clone(): {"IPAddressType": "DUALSTACK"} },
        });
        if let Some(d) = &id.description {
            out["Description"] = Value::from(d.clone());
        }
        Ok(out)
    }

    fn associate(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        self.check_firewall(body, true)?;
        let id = &self.mgr.id;
        let s = self.state();
        if let Some(t) = str_of(body, "UpdateToken") {
            if t != s.firewall.update_token {
                return Err(stale("firewall", &id.firewall_name));
            }
        }
        let arn = str_of(body, "FirewallPolicyArn").unwrap_or_default();
        let p = s
            .policies
            .get(arn)
            .ok_or_else(|| not_found(format!("FirewallPolicyArn: no firewall policy '{arn}'")))?
            .clone();
        if id.source == PolicySource::File {
            return Err(invalid_op(format!(
                "the policy of this firewall comes from the policy file {} (policy.source = \"file\"); set policy.source = \"api\" to manage it through the API",
                id.policy_file.display()
            )));
        }
        compile_policy(&s, &p.body)
            .map_err(|e| invalid(format!("firewall policy '{}' cannot run: {e}", p.name)))?;
        let mut next = s.clone();
        next.firewall.policy_arn = Some(arn.to_string());
        next.firewall.update_token = store::new_id();
        let token = next.firewall.update_token.clone();
        self.commit(next)?;
        self.apply()?;
        Ok((
            json!({"FirewallArn": id.firewall_arn, "FirewallName": id.firewall_name,
                   "FirewallPolicyArn": arn, "UpdateToken": token}),
            Some(arn.to_string()),
        ))
    }

    /// Puts the running policy, as the store now has it, into force.
    fn apply(&self) -> Result<(), ApiError> {
        let path = {
            let store = self.mgr.lock();
            let s = store.state();
            let Some(p) = s
                .firewall
                .policy_arn
                .as_ref()
                .and_then(|a| s.policies.get(a))
            else {
                return Ok(());
            };
            self.mgr.write_effective(&store, p).map_err(internal)?
        };
        let ok = self.host.apply_policy_file(&path, self.caller);
        self.mgr.mark_applied(ok.is_ok());
        if let Err(e) = ok {
            // Stored and compiled; not every worker took it yet: DescribeFirewall says PENDING.
            eprintln!("flowgate: the updated policy is not in force everywhere yet: {e}");
        }
        Ok(())
    }

    /// Whether `policy_arn` is the policy this firewall runs from the store.
    fn runs(&self, s: &State, policy_arn: &str) -> bool {
        self.mgr.id.source == PolicySource::Api
            && s.firewall.policy_arn.as_deref() == Some(policy_arn)
    }

    // ---- firewall policies -----------------------------------------------------------

    fn find_policy<'s>(&self, s: &'s State, body: &Value) -> Result<&'s PolicyRecord, ApiError> {
        let arn = str_of(body, "FirewallPolicyArn");
        let name = str_of(body, "FirewallPolicyName");
        let found = match (arn, name) {
            (None, None) => {
                return Err(invalid(
                    "FirewallPolicyArn or FirewallPolicyName is required",
                ))
            }
            (Some(a), _) => s.policies.get(a),
            (None, Some(n)) => s.policies.values().find(|p| p.name == n),
        };
        let p = found.ok_or_else(|| {
            let what = arn.or(name).unwrap_or_default();
            if arn == Some(self.mgr.id.file_policy_arn().as_str()) {
                not_found(format!(
                    "firewall policy '{what}' is the TOML policy file {}, which has no API shape",
                    self.mgr.id.policy_file.display()
                ))
            } else {
                not_found(format!("no firewall policy '{what}'"))
            }
        })?;
        if let (Some(n), Some(_)) = (name, arn) {
            if p.name != n {
                return Err(invalid(format!(
                    "FirewallPolicyName '{n}' does not match FirewallPolicyArn"
                )));
            }
        }
        Ok(p)
    }

    fn policy_response(&self, s: &State, p: &PolicyRecord) -> Value {
        let (mut stateless, mut stateful) = (0u64, 0u64);
        for g in super::referenced_groups(s, &p.body) {
            if g.kind == "STATELESS" {
                stateless += g.consumed_capacity;
            } else {
                stateful += g.consumed_capacity;
            }
        }
        let mut v = json!({
            "FirewallPolicyName": p.name,
            "FirewallPolicyArn": p.arn,
            "FirewallPolicyId": p.id,
            "FirewallPolicyStatus": "ACTIVE",
            "Tags": tags_json(&p.tags),
            "ConsumedStatelessRuleCapacity": stateless,
            "ConsumedStatefulRuleCapacity": stateful,
            "NumberOfAssociations": u32::from(s.firewall.policy_arn.as_deref() == Some(p.arn.as_str())),
            "LastModifiedTime": p.last_modified,
            "EncryptionConfiguration": {"Type": "AWS_OWNED_KMS_KEY"},
        });
        if let Some(d) = &p.description {
            v["Description"] = Value::from(d.clone());
        }
        v
    }

    fn describe_policy(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let p = self.find_policy(&s, body)?;
        Ok(json!({
            "UpdateToken": p.update_token,
            "FirewallPolicyResponse": self.policy_response(&s, p),
            "FirewallPolicy": p.body,
        }))
    }

    fn list_policies(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let items = s
            .policies
            .values()
            .map(|p| json!({"Name": p.name, "Arn": p.arn}))
            .collect();
        let (items, next) = page(body, items, DEFAULT_PAGE)?;
        Ok(with_next(json!({"FirewallPolicies": items}), next))
    }

    /// Every referenced group must exist, with the type of its reference list.
    fn check_references(s: &State, body: &Value) -> Result<(), ApiError> {
        for (member, kind) in [
            ("StatelessRuleGroupReferences", "STATELESS"),
            ("StatefulRuleGroupReferences", "STATEFUL"),
        ] {
            for (i, r) in body
                .get(member)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let arn = str_of(r, "ResourceArn").unwrap_or_default();
                match s.rule_groups.get(arn) {
                    Some(g) if g.kind == kind => {}
                    Some(g) => {
                        return Err(invalid(format!(
                            "FirewallPolicy.{member}[{i}].ResourceArn: '{arn}' is a {} rule group",
                            g.kind
                        )))
                    }
                    None => {
                        return Err(invalid(format!(
                            "FirewallPolicy.{member}[{i}].ResourceArn: no {kind} rule group '{arn}'"
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    fn create_policy(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        let s = self.state();
        let name = str_of(body, "FirewallPolicyName").unwrap_or_default();
        let arn = self.mgr.id.policy_arn(name);
        if s.policies.contains_key(&arn) {
            return Err(invalid(format!(
                "a firewall policy named '{name}' already exists"
            )));
        }
        let policy = body.get("FirewallPolicy").cloned().unwrap_or(Value::Null);
        Self::check_references(&s, &policy)?;
        compile_policy(&s, &policy).map_err(invalid)?;
        let rec = PolicyRecord {
            name: name.to_string(),
            arn: arn.clone(),
            id: store::new_id(),
            update_token: store::new_id(),
            description: str_of(body, "Description").map(str::to_string),
            tags: tags_from(body.get("Tags")),
            body: policy,
            last_modified: now_secs(),
            from_file: false,
        };
        let mut next = s.clone();
        next.policies.insert(arn.clone(), rec.clone());
        if body.get("DryRun") != Some(&Value::Bool(true)) {
            self.commit(next.clone())?;
        }
        Ok((
            json!({"UpdateToken": rec.update_token, "FirewallPolicyResponse": self.policy_response(&next, &rec)}),
            Some(arn),
        ))
    }

    fn update_policy(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        let s = self.state();
        let p = self.find_policy(&s, body)?.clone();
        if p.from_file {
            return Err(invalid_op(format!(
                "firewall policy '{}' comes from the policy file {} (policy.source = \"file\"); change the file, or set policy.source = \"api\"",
                p.name,
                self.mgr.id.policy_file.display()
            )));
        }
        if str_of(body, "UpdateToken") != Some(p.update_token.as_str()) {
            return Err(stale("firewall policy", &p.name));
        }
        let policy = body.get("FirewallPolicy").cloned().unwrap_or(Value::Null);
        Self::check_references(&s, &policy)?;
        compile_policy(&s, &policy).map_err(invalid)?;
        let mut rec = p.clone();
        rec.body = policy;
        rec.update_token = store::new_id();
        rec.last_modified = now_secs();
        if let Some(d) = str_of(body, "Description") {
            rec.description = Some(d.to_string());
        }
        let mut next = s.clone();
        next.policies.insert(rec.arn.clone(), rec.clone());
        if body.get("DryRun") != Some(&Value::Bool(true)) {
            self.commit(next.clone())?;
            if self.runs(&next, &rec.arn) {
                self.apply()?;
            }
        }
        Ok((
            json!({"UpdateToken": rec.update_token, "FirewallPolicyResponse": self.policy_response(&next, &rec)}),
            Some(rec.arn),
        ))
    }

    // ---- rule groups -----------------------------------------------------------------

    fn find_group<'s>(&self, s: &'s State, body: &Value) -> Result<&'s RuleGroupRecord, ApiError> {
        let arn = str_of(body, "RuleGroupArn");
        let name = str_of(body, "RuleGroupName");
        let kind = str_of(body, "Type");
        let found: Vec<&RuleGroupRecord> = match (arn, name) {
            (None, None) => return Err(invalid("RuleGroupArn or RuleGroupName is required")),
            (Some(a), _) => s.rule_groups.get(a).into_iter().collect(),
            (None, Some(n)) => s
                .rule_groups
                .values()
                .filter(|g| g.name == n && kind.is_none_or(|k| g.kind == k))
                .collect(),
        };
        match found.as_slice() {
            [g] => {
                if let Some(k) = kind {
                    if g.kind != k {
                        return Err(invalid(format!(
                            "Type: rule group '{}' is {}, not {k}",
                            g.name, g.kind
                        )));
                    }
                }
                if let (Some(n), Some(_)) = (name, arn) {
                    if g.name != n {
                        return Err(invalid(format!(
                            "RuleGroupName '{n}' does not match RuleGroupArn"
                        )));
                    }
                }
                Ok(g)
            }
            [] => Err(not_found(format!(
                "no rule group '{}'",
                arn.or(name).unwrap_or_default()
            ))),
            _ => Err(invalid(format!(
                "RuleGroupName '{}' names a STATEFUL and a STATELESS rule group: give Type",
                name.unwrap_or_default()
            ))),
        }
    }

    fn group_response(s: &State, g: &RuleGroupRecord) -> Value {
        let associations = s
            .policies
            .values()
            .filter(|p| referenced_arns(&p.body).contains(&g.arn))
            .count();
        let mut v = json!({
            "RuleGroupArn": g.arn,
            "RuleGroupName": g.name,
            "RuleGroupId": g.id,
            "Type": g.kind,
            "Capacity": g.capacity,
            "RuleGroupStatus": "ACTIVE",
            "Tags": tags_json(&g.tags),
            "ConsumedCapacity": g.consumed_capacity,
            "NumberOfAssociations": associations,
            "LastModifiedTime": g.last_modified,
            "EncryptionConfiguration": {"Type": "AWS_OWNED_KMS_KEY"},
        });
        if let Some(d) = &g.description {
            v["Description"] = Value::from(d.clone());
        }
        v
    }

    /// The `RuleGroup` body of a create/update: `RuleGroup`, or `Rules` (Suricata text).
    fn group_body(
        body: &Value,
        kind: GroupType,
        required: bool,
    ) -> Result<Option<Value>, ApiError> {
        for member in ["FirewallRuleGroup", "IpsRuleGroup"] {
            if body.get(member).is_some_and(|v| !v.is_null()) {
                return Err(invalid(format!(
                    "{member}: not supported; give RuleGroup or Rules"
                )));
            }
        }
        match (body.get("RuleGroup"), str_of(body, "Rules")) {
            (Some(_), Some(_)) => Err(invalid("give RuleGroup or Rules, not both")),
            (Some(g), None) => Ok(Some(g.clone())),
            (None, Some(rules)) => {
                if kind == GroupType::Stateless {
                    return Err(invalid("Rules: Suricata rules make a STATEFUL rule group"));
                }
                Ok(Some(json!({"RulesSource": {"RulesString": rules}})))
            }
            (None, None) if required => Err(invalid("RuleGroup or Rules is required")),
            (None, None) => Ok(None),
        }
    }

    /// Validates a rule group body; returns its consumed capacity.
    fn check_group(
        name: &str,
        kind: GroupType,
        capacity: u64,
        body: &Value,
    ) -> Result<u64, ApiError> {
        let shape: RuleGroupShape =
            serde_json::from_value(body.clone()).map_err(|e| invalid(format!("RuleGroup: {e}")))?;
        let used = awsp::validate_rule_group("RuleGroup", kind, &shape)
            .map_err(|e| invalid(e.to_string()))?;
        if used > capacity {
            return Err(invalid(format!(
                "RuleGroup: the rules of '{name}' consume capacity {used}, more than its Capacity {capacity}"
            )));
        }
        Ok(used)
    }

    fn create_group(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        let s = self.state();
        let name = str_of(body, "RuleGroupName").unwrap_or_default();
        let kind = match str_of(body, "Type") {
            Some("STATEFUL") => GroupType::Stateful,
            Some("STATELESS") => GroupType::Stateless,
            other => {
                return Err(invalid(format!(
                    "Type: '{}' rule groups are not supported (STATEFUL or STATELESS; domain lists and managed groups need application-layer inspection)",
                    other.unwrap_or_default()
                )))
            }
        };
        let capacity = body.get("Capacity").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=MAX_GROUP_CAPACITY).contains(&capacity) {
            return Err(invalid(format!(
                "Capacity: {capacity} is outside 1..={MAX_GROUP_CAPACITY}"
            )));
        }
        let capacity = capacity as u64;
        let arn = self.mgr.id.group_arn(kind, name);
        if s.rule_groups.contains_key(&arn) {
            return Err(invalid(format!(
                "a {} rule group named '{name}' already exists",
                kind.as_str()
            )));
        }
        let group = Self::group_body(body, kind, true)?.unwrap_or(Value::Null);
        let used = Self::check_group(name, kind, capacity, &group)?;
        let rec = RuleGroupRecord {
            name: name.to_string(),
            arn: arn.clone(),
            id: store::new_id(),
            kind: kind.as_str().into(),
            capacity,
            consumed_capacity: used,
            update_token: store::new_id(),
            description: str_of(body, "Description").map(str::to_string),
            tags: tags_from(body.get("Tags")),
            body: group,
            last_modified: now_secs(),
            from_file: false,
        };
        let mut next = s.clone();
        next.rule_groups.insert(arn.clone(), rec.clone());
        if body.get("DryRun") != Some(&Value::Bool(true)) {
            self.commit(next.clone())?;
        }
        Ok((
            json!({"UpdateToken": rec.update_token, "RuleGroupResponse": Self::group_response(&next, &rec)}),
            Some(arn),
        ))
    }

    fn update_group(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        let s = self.state();
        let g = self.find_group(&s, body)?.clone();
        if g.from_file {
            return Err(invalid_op(format!(
                "rule group '{}' comes from the policy file {} (policy.source = \"file\")",
                g.name,
                self.mgr.id.policy_file.display()
            )));
        }
        if str_of(body, "UpdateToken") != Some(g.update_token.as_str()) {
            return Err(stale("rule group", &g.name));
        }
        let kind = named_group(&g).map_err(internal)?.kind;
        let mut rec = g.clone();
        if let Some(new_body) = Self::group_body(body, kind, false)? {
            rec.consumed_capacity = Self::check_group(&g.name, kind, g.capacity, &new_body)?;
            rec.body = new_body;
        }
        if let Some(d) = str_of(body, "Description") {
            rec.description = Some(d.to_string());
        }
        rec.update_token = store::new_id();
        rec.last_modified = now_secs();
        let mut next = s.clone();
        next.rule_groups.insert(rec.arn.clone(), rec.clone());
        // The running policy must still compile with the new rules before anything is stored.
        let running = next
            .firewall
            .policy_arn
            .clone()
            .filter(|a| self.runs(&next, a))
            .and_then(|a| next.policies.get(&a).cloned())
            .filter(|p| referenced_arns(&p.body).contains(&rec.arn));
        if let Some(p) = &running {
            compile_policy(&next, &p.body).map_err(|e| {
                invalid(format!(
                    "the running firewall policy '{}' would not compile with this rule group: {e}",
                    p.name
                ))
            })?;
        }
        if body.get("DryRun") != Some(&Value::Bool(true)) {
            self.commit(next.clone())?;
            if running.is_some() {
                self.apply()?;
            }
        }
        Ok((
            json!({"UpdateToken": rec.update_token, "RuleGroupResponse": Self::group_response(&next, &rec)}),
            Some(rec.arn),
        ))
    }

    fn delete_group(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        let s = self.state();
        let g = self.find_group(&s, body)?.clone();
        if g.from_file {
            return Err(invalid_op(format!(
                "rule group '{}' comes from the policy file",
                g.name
            )));
        }
        if let Some(p) = s
            .policies
            .values()
            .find(|p| referenced_arns(&p.body).contains(&g.arn))
        {
            return Err(invalid_op(format!(
                "rule group '{}' is in use by firewall policy '{}'; remove the reference first",
                g.name, p.name
            )));
        }
        let mut response = Self::group_response(&s, &g);
        response["RuleGroupStatus"] = Value::from("DELETING");
        let mut next = s.clone();
        next.rule_groups.remove(&g.arn);
        self.commit(next)?;
        Ok((json!({"RuleGroupResponse": response}), Some(g.arn)))
    }

    fn describe_group(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let g = self.find_group(&s, body)?;
        Ok(json!({
            "UpdateToken": g.update_token,
            "RuleGroup": g.body,
            "RuleGroupResponse": Self::group_response(&s, g),
        }))
    }

    fn describe_group_metadata(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let g = self.find_group(&s, body)?;
        let mut v = json!({
            "RuleGroupArn": g.arn,
            "RuleGroupName": g.name,
            "Type": g.kind,
            "Capacity": g.capacity,
            "LastModifiedTime": g.last_modified,
        });
        if let Some(order) = g.body.pointer("/StatefulRuleOptions/RuleOrder") {
            v["StatefulRuleOptions"] = json!({"RuleOrder": order});
        }
        if let Some(d) = &g.description {
            v["Description"] = Value::from(d.clone());
        }
        Ok(v)
    }

    fn list_groups(&self, body: &Value) -> Result<Value, ApiError> {
        let s = self.state();
        let managed = str_of(body, "Scope") == Some("MANAGED")
            || body.get("ManagedType").is_some_and(|v| !v.is_null());
        let kind = str_of(body, "Type");
        let items = if managed {
            Vec::new()
        } else {
            s.rule_groups
                .values()
                .filter(|g| kind.is_none_or(|k| g.kind == k))
                .map(|g| json!({"Name": g.name, "Arn": g.arn}))
                .collect()
        };
        let (items, next) = page(body, items, DEFAULT_PAGE)?;
        Ok(with_next(json!({"RuleGroups": items}), next))
    }

    // ---- logging -----------------------------------------------------------------------

    fn describe_logging(&self, body: &Value) -> Result<Value, ApiError> {
        self.check_firewall(body, true)?;
        let s = self.state();
        Ok(json!({
            "FirewallArn": self.mgr.id.firewall_arn,
            "LoggingConfiguration": s.logging,
            "EnableMonitoringDashboard": false,
        }))
    }

    fn update_logging(&self, body: &Value) -> Result<(Value, Option<String>), ApiError> {
        self.check_firewall(body, true)?;
        let s = self.state();
        let by_type = |v: &Value| -> Result<BTreeMap<String, Value>, ApiError> {
            let mut m = BTreeMap::new();
            for c in v
                .get("LogDestinationConfigs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let t = str_of(c, "LogType").unwrap_or_default().to_string();
                if m.insert(t.clone(), c.clone()).is_some() {
                    return Err(invalid(format!(
                        "LoggingConfiguration.LogDestinationConfigs: LogType {t} appears twice"
                    )));
                }
            }
            Ok(m)
        };
        let new = body
            .get("LoggingConfiguration")
            .cloned()
            .unwrap_or_else(|| json!({"LogDestinationConfigs": []}));
        let (old_m, new_m) = (by_type(&s.logging)?, by_type(&new)?);
        let changes = old_m
            .keys()
            .chain(new_m.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| old_m.get(*k) != new_m.get(*k))
            .count();
        if changes > 1 {
            return Err(invalid(
                "LoggingConfiguration: you can create, update or delete only one log destination configuration per call",
            ));
        }
        let mut next = s.clone();
        next.logging = new.clone();
        self.commit(next)?;
        let id = &self.mgr.id;
        Ok((
            json!({"FirewallArn": id.firewall_arn, "FirewallName": id.firewall_name,
                   "LoggingConfiguration": new, "EnableMonitoringDashboard": false}),
            Some(id.firewall_arn.clone()),
        ))
    }

    // ---- tags --------------------------------------------------------------------------

    fn tags_of<'s>(&self, s: &'s mut State, arn: &str) -> Result<&'s mut Tags, ApiError> {
        if arn == self.mgr.id.firewall_arn {
            return Ok(&mut s.firewall.tags);
        }
        if let Some(p) = s.policies.get_mut(arn) {
            return Ok(&mut p.tags);
        }
        if let Some(g) = s.rule_groups.get_mut(arn) {
            return Ok(&mut g.tags);
        }
        Err(not_found(format!("ResourceArn: no resource '{arn}'")))
    }

    fn tag(&self, body: &Value, add: bool) -> Result<(Value, Option<String>), ApiError> {
        let arn = str_of(body, "ResourceArn").unwrap_or_default().to_string();
        let mut next = self.state();
        let tags = self.tags_of(&mut next, &arn)?;
        if add {
            for (k, v) in tags_from(body.get("Tags")) {
                merge_tag(tags, &k, &v);
            }
            if tags.len() > 200 {
                return Err(invalid("Tags: a resource can have at most 200 tags"));
            }
        } else {
            let keys: Vec<&str> = body
                .get("TagKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            tags.retain(|(k, _)| !keys.contains(&k.as_str()));
        }
        self.commit(next)?;
        Ok((json!({}), Some(arn)))
    }

    fn list_tags(&self, body: &Value) -> Result<Value, ApiError> {
        let arn = str_of(body, "ResourceArn").unwrap_or_default();
        let mut s = self.state();
        let tags = tags_json(self.tags_of(&mut s, arn)?);
        let items = tags.as_array().cloned().unwrap_or_default();
        let (items, next) = page(body, items, DEFAULT_PAGE)?;
        Ok(with_next(json!({"Tags": items}), next))
    }
}
