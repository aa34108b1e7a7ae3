//! What the fleet does with each AWS action (authentication and the wire protocols
//! happened before [`Router::handle`]):
//! * flow operations go to the zone named by `AvailabilityZone` / `AvailabilityZoneId`
//!   (an unknown zone is refused with `InvalidRequestException`); `ListFlowOperations`
//!   without a zone merges every zone's list ([`crate::list_merge`]); a Describe/Results
//!   call without a zone asks every zone which one knows the id. Operation ids stay the
//!   appliances' own.
//! * `DescribeFirewall` / `ListFirewalls` are answered from the inventory and each zone's
//!   reachability and policy sync state.
//! * policy changes go through [`crate::policy_sync`]; policy reads go to a zone that has
//!   every change.
//!
//! An unreachable zone fails only the calls that need it, with `InternalServerError`
//! naming the zone and why.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Map, Value};

use crate::inventory::Inventory;
use crate::list_merge::{self, MergeCursor, ZonePage};
use crate::metrics::Metrics;
use crate::policy_sync::{self, PolicySync, CHANGE_ACTIONS, READ_ACTIONS};
use crate::upstream::{UpstreamError, ZoneClient};

const FLOW_ACTIONS: &[&str] = &[
    "StartFlowCapture",
    "StartFlowFlush",
    "DescribeFlowOperation",
    "ListFlowOperations",
    "ListFlowOperationResults",
];
const FIREWALL_ACTIONS: &[&str] = &["DescribeFirewall", "ListFirewalls"];
/// `PaginationMaxResults`.
const MAX_RESULTS: i64 = 100;

pub fn is_known_action(a: &str) -> bool {
    FLOW_ACTIONS.contains(&a)
        || FIREWALL_ACTIONS.contains(&a)
        || CHANGE_ACTIONS.contains(&a)
        || READ_ACTIONS.contains(&a)
}

/// An error in the service's shape: `{"__type": kind, "message": …}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: String,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: &str, status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            kind: kind.to_string(),
            status,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidRequestException", 400, message)
    }
    fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", 400, message)
    }
}

/// The appliance's request decoding errors (shared with [`mgmt::aws_api`]).
impl From<mgmt::aws_api::ApiError> for ApiError {
    fn from(e: mgmt::aws_api::ApiError) -> ApiError {
        ApiError::new(e.kind, e.status, e.message)
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> ApiError {
        match e {
            UpstreamError::Api {
                status,
                kind,
                message,
            } => ApiError {
                kind,
                status,
                message,
            },
            e @ UpstreamError::Unreachable { .. } => {
                ApiError::new("InternalServerError", 500, e.to_string())
            }
        }
    }
}

/// Prefixes an appliance's refusal with its zone, so a multi-zone answer says which.
fn in_zone(zone: &str, e: UpstreamError) -> ApiError {
    match e {
        UpstreamError::Api {
            status,
            kind,
            message,
        } => ApiError {
            kind,
            status,
            message: format!("zone {zone}: {message}"),
        },
        e => e.into(),
    }
}

/// The fleet's routing state: the inventory, a client per zone, the policy sync state.
pub struct Router {
    pub inv: Inventory,
    pub zones: Vec<ZoneClient>,
    pub metrics: Arc<Metrics>,
    pub sync: PolicySync,
}

fn str_member<'a>(body: &'a Value, member: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::serialization(format!(
            "{member}: expected a string"
        ))),
    }
}

impl Router {
    pub fn new(inv: Inventory, metrics: Arc<Metrics>) -> Result<Router, String> {
        let zones = inv
            .zones
            .iter()
            .map(|z| ZoneClient::new(z, &inv.fleet))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
        let sync = PolicySync::open(&inv.fleet.state_dir.join("policy"), &names)
            .map_err(|e| e.to_string())?;
        Ok(Router {
            inv,
            zones,
            metrics,
            sync,
        })
    }

    fn zone_names(&self) -> String {
        self.zones
            .iter()
            .map(|z| format!("{} ({})", z.name, z.id))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs one action whose request body is `body` (already decoded from JSON or CBOR).
    pub async fn handle(&self, action: &str, body: Value) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::serialization("request body must be an object"));
        }
        match action {
            "StartFlowCapture" | "StartFlowFlush" => {
                self.check_arn(&body)?;
                let z = self.required_zone(&body)?;
                self.forward(z, action, &body).await
            }
            "DescribeFlowOperation" | "ListFlowOperationResults" => {
                self.check_arn(&body)?;
                let z = match self.zone_of(&body)? {
                    Some(z) => z,
                    None => self.find_operation(&body).await?,
                };
                self.forward(z, action, &body).await
            }
            "ListFlowOperations" => {
                self.check_arn(&body)?;
                match self.zone_of(&body)? {
                    Some(z) => self.forward(z, action, &body).await,
                    None => self.list_merged(&body).await,
                }
            }
            "DescribeFirewall" => {
                self.check_firewall_named(&body)?;
                self.describe_firewall().await
            }
            "ListFirewalls" => Ok(json!({"Firewalls": [{
                "FirewallName": self.inv.fleet.firewall_name,
                "FirewallArn": self.inv.fleet.firewall_arn,
            }]})),
            a if CHANGE_ACTIONS.contains(&a) => self.change(a, body).await,
            a if READ_ACTIONS.contains(&a) => self.read(a, body).await,
            a => Err(ApiError::new(
                "UnknownOperationException",
                400,
                format!("unknown operation '{a}'"),
            )),
        }
    }

    fn check_arn(&self, body: &Value) -> Result<(), ApiError> {
        let arn = str_member(body, "FirewallArn")?
            .ok_or_else(|| ApiError::invalid("FirewallArn: missing required parameter"))?;
        if arn != self.inv.fleet.firewall_arn {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                400,
                format!(
                    "firewall '{arn}' not found: this endpoint serves '{}'",
                    self.inv.fleet.firewall_arn
                ),
            ));
        }
        Ok(())
    }

    fn check_firewall_named(&self, body: &Value) -> Result<(), ApiError> {
        let f = &self.inv.fleet;
        let name_ok = str_member(body, "FirewallName")?.is_none_or(|n| n == f.firewall_name);
        let arn_ok = str_member(body, "FirewallArn")?.is_none_or(|a| a == f.firewall_arn);
        if !name_ok || !arn_ok {
            return Err(ApiError::new(
                "ResourceNotFoundException",
                400,
                format!(
                    "firewall not found: this endpoint serves '{}'",
                    f.firewall_arn
                ),
            ));
        }
        Ok(())
    }

    /// The zone a request names, if any; a zone this firewall does not have is refused.
    fn zone_of(&self, body: &Value) -> Result<Option<usize>, ApiError> {
        let by_name = match str_member(body, "AvailabilityZone")? {
            None => None,
            Some(n) => Some(self.inv.zone_by_name(n).ok_or_else(|| {
                ApiError::invalid(format!(
                    "AvailabilityZone: '{n}' is not one of this firewall's availability zones: {}",
                    self.zone_names()
                ))
            })?),
        };
        let by_id = match str_member(body, "AvailabilityZoneId")? {
            None => None,
            Some(id) => Some(self.inv.zone_by_id(id).ok_or_else(|| {
                ApiError::invalid(format!(
                    "AvailabilityZoneId: '{id}' is not one of this firewall's availability zones: {}",
                    self.zone_names()
                ))
            })?),
        };
        match (by_name, by_id) {
            (Some(a), Some(b)) if a != b => Err(ApiError::invalid(
                "AvailabilityZone and AvailabilityZoneId name different zones",
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// Starting an operation needs a zone when the firewall has more than one.
    fn required_zone(&self, body: &Value) -> Result<usize, ApiError> {
        match self.zone_of(body)? {
            Some(z) => Ok(z),
            None if self.zones.len() == 1 => Ok(0),
            None => Err(ApiError::invalid(format!(
                "AvailabilityZone: required, this firewall spans {} zones: {}",
                self.zones.len(),
                self.zone_names()
            ))),
        }
    }

    /// `body` for zone `z`'s appliance: its firewall ARN, its zone by name.
    fn scoped(&self, z: usize, body: &Value) -> Value {
        let zone = &self.zones[z];
        let mut b = body.clone();
        if let Some(o) = b.as_object_mut() {
            o.insert("FirewallArn".into(), json!(zone.firewall_arn));
            o.insert("AvailabilityZone".into(), json!(zone.name));
            o.remove("AvailabilityZoneId");
        }
        b
    }

    /// The appliance's answer with the fleet's firewall ARN in place of the zone's.
    fn unscoped(&self, mut v: Value) -> Value {
        if let Some(o) = v.as_object_mut() {
            if o.contains_key("FirewallArn") {
                o.insert("FirewallArn".into(), json!(self.inv.fleet.firewall_arn));
            }
        }
        v
    }

    async fn forward(&self, z: usize, action: &str, body: &Value) -> Result<Value, ApiError> {
        let zone = &self.zones[z];
        zone.call(action, &self.scoped(z, body), &self.metrics)
            .await
            .map(|v| self.unscoped(v))
            .map_err(ApiError::from)
    }

    /// The zone whose appliance knows `FlowOperationId` (ids are UUIDs, unique per fleet).
    async fn find_operation(&self, body: &Value) -> Result<usize, ApiError> {
        if self.zones.len() == 1 {
            return Ok(0);
        }
        let id = str_member(body, "FlowOperationId")?
            .ok_or_else(|| ApiError::invalid("FlowOperationId: missing required parameter"))?;
        let probes = self.zones.iter().enumerate().map(|(i, zone)| {
            let req = self.scoped(i, &json!({"FirewallArn": "", "FlowOperationId": id}));
            async move {
                zone.call("DescribeFlowOperation", &req, &self.metrics)
                    .await
            }
        });
        let answers = join_all(probes).await;
        let mut down = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(_) => return Ok(i),
                Err(UpstreamError::Api { kind, .. }) if kind == "ResourceNotFoundException" => {}
                Err(e @ UpstreamError::Api { .. }) => return Err(in_zone(&self.zones[i].name, e)),
                Err(e) => down.push(e.to_string()),
            }
        }
        if down.is_empty() {
            Err(ApiError::new(
                "ResourceNotFoundException",
                400,
                format!("flow operation '{id}' not found in any zone"),
            ))
        } else {
            Err(ApiError::new(
                "InternalServerError",
                500,
                format!(
                    "flow operation '{id}' not found in the zones that answered; give AvailabilityZone, or retry when every zone is reachable ({})",
                    down.join("; ")
                ),
            ))
        }
    }

    async fn list_merged(&self, body: &Value) -> Result<Value, ApiError> {
        let kind = str_member(body, "FlowOperationType")?;
        let max = match body.get("MaxResults") {
            None | Some(Value::Null) => MAX_RESULTS,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| ApiError::serialization("MaxResults: expected an integer"))?,
        };
        if !(1..=MAX_RESULTS).contains(&max) {
            return Err(ApiError::invalid(format!(
                "MaxResults: {max} is out of range: use 1 to {MAX_RESULTS}"
            )));
        }
        let cursor = match str_member(body, "NextToken")? {
            None => MergeCursor::start(kind, self.zones.iter().map(|z| z.name.as_str())),
            Some(t) => MergeCursor::decode(t, kind, |z| self.inv.zone_by_name(z).is_some())
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        };
        let page_req = |z: usize, token: &str, n: i64| {
            let mut b = self.scoped(z, &json!({"FirewallArn": ""}));
            if let Some(k) = kind {
                b["FlowOperationType"] = json!(k);
            }
            b["MaxResults"] = json!(n);
            if !token.is_empty() {
                b["NextToken"] = json!(token);
            }
            b
        };
        let zones: Vec<(usize, String)> = cursor
            .zones
            .iter()
            .filter_map(|(name, tok)| Some((self.inv.zone_by_name(name)?, tok.clone())))
            .collect();
        let calls = zones.iter().map(|(z, tok)| {
            let req = page_req(*z, tok, max);
            async move {
                self.zones[*z]
                    .call("ListFlowOperations", &req, &self.metrics)
                    .await
            }
        });
        let mut pages = Vec::with_capacity(zones.len());
        for ((z, _), answer) in zones.iter().zip(join_all(calls).await) {
            let v = answer.map_err(|e| match e {
                e @ UpstreamError::Unreachable { .. } => ApiError::new(
                    "InternalServerError",
                    500,
                    format!("{e}; the merged list needs every zone: give AvailabilityZone to list the others"),
                ),
                e => in_zone(&self.zones[*z].name, e),
            })?;
            pages.push(ZonePage {
                zone: self.zones[*z].name.clone(),
                // Each item names its zone (an extra member clients that do not know it
                // ignore): the console's "all zones" history links to the right zone.
                items: v
                    .get("FlowOperations")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut item| {
                        if let Some(o) = item.as_object_mut() {
                            o.insert("AvailabilityZone".into(), json!(self.zones[*z].name));
                        }
                        item
                    })
                    .collect(),
                next: v
                    .get("NextToken")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        let (items, taken) = list_merge::merge(&pages, max as usize);
        let mut next = cursor.clone();
        for (((z, tok), page), n) in zones.iter().zip(&pages).zip(taken) {
            let name = &page.zone;
            if n == page.items.len() {
                match &page.next {
                    Some(t) => next.zones.insert(name.clone(), t.clone()),
                    None => next.zones.remove(name),
                };
            } else if n > 0 {
                // Part of this zone's page was used: ask the zone for a page of exactly
                // that many, whose token resumes right after the last item used.
                let v = self.zones[*z]
                    .call(
                        "ListFlowOperations",
                        &page_req(*z, tok, n as i64),
                        &self.metrics,
                    )
                    .await
                    .map_err(|e| in_zone(name, e))?;
                let t = v.get("NextToken").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::new(
                        "InternalServerError",
                        500,
                        format!("zone {name}: no NextToken for a partial page"),
                    )
                })?;
                next.zones.insert(name.clone(), t.to_string());
            }
        }
        let mut out = json!({ "FlowOperations": items });
        if !next.zones.is_empty() {
            out["NextToken"] = json!(next.encode().map_err(|e| ApiError::new(
                "InternalServerError",
                500,
                e.to_string()
            ))?);
        }
        Ok(out)
    }

    /// `DescribeFirewall`: the fleet's firewall with one sync state per zone.
    async fn describe_firewall(&self) -> Result<Value, ApiError> {
        let calls = self.zones.iter().map(|zone| {
            let req = json!({"FirewallArn": zone.firewall_arn});
            async move { zone.call("DescribeFirewall", &req, &self.metrics).await }
        });
        let answers = join_all(calls).await;
        let view = self.sync.view();
        let mut firewall = Map::new();
        let mut sync_states = Map::new();
        let mut all_in_sync = true;
        for (zone, answer) in self.zones.iter().zip(answers) {
            // The appliance's own view counts too: it may still be compiling or swapping in
            // a policy it accepted.
            let zone_says_in_sync = answer.as_ref().map_or(true, |v| {
                v.pointer("/FirewallStatus/ConfigurationSyncStateSummary")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s == "IN_SYNC")
            });
            let (reachable, message, zone_config) = match &answer {
                Ok(v) => {
                    if firewall.is_empty() {
                        if let Some(f) = v.get("Firewall").and_then(Value::as_object) {
                            firewall = f.clone();
                        }
                    }
                    if let Some(arn) = v
                        .pointer("/Firewall/FirewallPolicyArn")
                        .and_then(Value::as_str)
                    {
                        self.sync.learn_policy_arn(arn);
                    }
                    let cfg = v
                        .pointer("/FirewallStatus/SyncStates")
                        .and_then(Value::as_object)
                        .and_then(|s| s.get(&zone.name).or_else(|| s.values().next()))
                        .and_then(|s| s.get("Config"))
                        .and_then(Value::as_object)
                        .cloned();
                    (true, None, cfg)
                }
                // An appliance without DescribeFirewall still answered: it is reachable.
                Err(UpstreamError::Api { .. }) => (true, None, None),
                Err(e) => (false, Some(e.to_string()), None),
            };
            let zs = view.zones.get(&zone.name).cloned().unwrap_or_default();
            let in_sync = reachable && zone_says_in_sync && view.in_sync(&zone.name);
            self.metrics.set_zone_in_sync(&zone.name, in_sync);
            all_in_sync &= in_sync;
            let status = if in_sync { "IN_SYNC" } else { "PENDING" };
            let mut config = zone_config.unwrap_or_default();
            for v in config.values_mut() {
                if let Some(o) = v.as_object_mut() {
                    o.insert("SyncStatus".into(), json!(status));
                }
            }
            let policy_arn = view.firewall_policy_arn.clone().or_else(|| {
                firewall
                    .get("FirewallPolicyArn")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            if let Some(arn) = policy_arn {
                let token = policy_sync::resource_key(
                    "DescribeFirewallPolicy",
                    &json!({"FirewallPolicyArn": arn}),
                )
                .map(|k| self.sync.token(&k))
                .transpose()?;
                let mut entry = json!({"SyncStatus": status});
                if let Some(t) = token {
                    entry["UpdateToken"] = json!(t);
                }
                config.insert(arn, entry);
            }
            let mut attachment = json!({
                "SubnetId": zone.subnet_id,
                "EndpointId": zone.endpoint_id,
                "Status": if reachable { "READY" } else { "FAILED" },
            });
            let status_message = message.or_else(|| {
                zs.error
                    .as_ref()
                    .filter(|_| !in_sync)
                    .map(|e| format!("policy change pending: {e}"))
            });
            if let Some(m) = status_message {
                attachment["StatusMessage"] = json!(m);
            }
            sync_states.insert(
                zone.name.clone(),
                json!({"Attachment": attachment, "Config": config}),
            );
        }
        let f = &self.inv.fleet;
        firewall.insert("FirewallName".into(), json!(f.firewall_name));
        firewall.insert("FirewallArn".into(), json!(f.firewall_arn));
        firewall.insert(
            "SubnetMappings".into(),
            Value::Array(
                self.zones
                    .iter()
                    .map(|z| json!({"SubnetId": z.subnet_id}))
                    .collect(),
            ),
        );
        firewall
            .entry("FirewallId")
            .or_insert_with(|| json!(firewall_id(&f.firewall_arn)));
        firewall
            .entry("VpcId")
            .or_insert_with(|| json!("vpc-flowgate-fleet"));
        if let Some(arn) = &view.firewall_policy_arn {
            firewall.insert("FirewallPolicyArn".into(), json!(arn));
        }
        firewall
            .entry("FirewallPolicyArn")
            .or_insert_with(|| json!(""));
        for k in [
            "DeleteProtection",
            "SubnetChangeProtection",
            "FirewallPolicyChangeProtection",
        ] {
            firewall.entry(k).or_insert(json!(false));
        }
        Ok(json!({
            "UpdateToken": self.sync.token("firewall")?,
            "Firewall": firewall,
            "FirewallStatus": {
                "Status": "READY",
                "ConfigurationSyncStateSummary": if all_in_sync { "IN_SYNC" } else { "PENDING" },
                "SyncStates": sync_states,
            }
        }))
    }

    /// A policy read: from the first reachable zone that has every change, with the
    /// fleet's `UpdateToken`.
    async fn read(&self, action: &str, body: Value) -> Result<Value, ApiError> {
        let view = self.sync.view();
        let mut order: Vec<usize> = (0..self.zones.len()).collect();
        order.sort_by_key(|&i| !view.in_sync(&self.zones[i].name));
        let mut last = None;
        for z in order {
            let req = self.policy_scoped(z, &body);
            match self.zones[z].call(action, &req, &self.metrics).await {
                Ok(v) => return self.with_fleet_token(action, &body, v, None),
                Err(e @ UpstreamError::Unreachable { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(ApiError::from)
            .unwrap_or_else(|| ApiError::new("InternalServerError", 500, "no zone configured")))
    }

    /// `body` for a zone's appliance in a policy call: its own firewall ARN where the
    /// request names the fleet's.
    fn policy_scoped(&self, z: usize, body: &Value) -> Value {
        let mut b = body.clone();
        if let Some(o) = b.as_object_mut() {
            let fleet_arn = Some(self.inv.fleet.firewall_arn.as_str());
            if o.get("FirewallArn").and_then(Value::as_str) == fleet_arn {
                o.insert("FirewallArn".into(), json!(self.zones[z].firewall_arn));
            }
            if o.get("ResourceArn").and_then(Value::as_str) == fleet_arn {
                o.insert("ResourceArn".into(), json!(self.zones[z].firewall_arn));
            }
        }
        b
    }

    /// The zone's answer with the fleet's token for the resource (`token`: a fresh one).
    fn with_fleet_token(
        &self,
        action: &str,
        body: &Value,
        mut v: Value,
        token: Option<String>,
    ) -> Result<Value, ApiError> {
        if v.get("UpdateToken").is_some() {
            if let Some(key) = policy_sync::resource_key(action, body) {
                let t = match token {
                    Some(t) => t,
                    None => self.sync.token(&key)?,
                };
                v["UpdateToken"] = json!(t);
            }
        }
        Ok(self.unscoped(v))
    }

    /// A policy change: fleet token checked, validated on every reachable zone, journaled,
    /// applied on every reachable zone; the others catch up in the background.
    async fn change(&self, action: &str, mut body: Value) -> Result<Value, ApiError> {
        let _serial = self.sync.workflow.lock().await;
        let key = policy_sync::resource_key(action, &body);
        let given_token = str_member(&body, "UpdateToken")?.map(str::to_string);
        if let (Some(k), Some(t)) = (&key, &given_token) {
            self.sync.check_token(k, t)?;
        }
        let dry_run = body.get("DryRun").and_then(Value::as_bool).unwrap_or(false);
        if let Some(o) = body.as_object_mut() {
            o.remove("DryRun");
            o.remove("UpdateToken");
        }
        // Zones that are behind get their earlier changes first, so this change is
        // validated against the state it will be applied to.
        for z in 0..self.zones.len() {
            self.catch_up_locked(z).await;
        }
        let view = self.sync.view();
        let ready: Vec<usize> = (0..self.zones.len())
            .filter(|&z| view.in_sync(&self.zones[z].name))
            .collect();
        if ready.is_empty() {
            return Err(ApiError::new(
                "InternalServerError",
                500,
                format!(
                    "no zone can take the change now (unreachable or behind): {}",
                    self.zone_names()
                ),
            ));
        }
        let mut validated = None;
        if policy_sync::has_dry_run(action) {
            let calls = ready.iter().map(|&z| {
                let body = &body;
                async move { self.send_change(z, action, body, true).await }
            });
            for (&z, answer) in ready.iter().zip(join_all(calls).await) {
                match answer {
                    Ok(v) => validated = validated.or(Some(v)),
                    // A zone that just went away catches up later; a refusal stops here.
                    Err(UpstreamError::Unreachable { .. }) => {}
                    Err(e) => return Err(in_zone(&self.zones[z].name, e)),
                }
            }
            if dry_run {
                return match validated {
                    Some(v) => self.with_fleet_token(action, &body, v, None),
                    None => Err(ApiError::new(
                        "InternalServerError",
                        500,
                        "no zone answered the dry run",
                    )),
                };
            }
        } else if dry_run {
            return Err(ApiError::invalid(format!("{action} has no DryRun member")));
        }
        let (change, token) = self.sync.append(action, body, key.as_deref())?;
        let calls = ready.iter().map(|&z| {
            let change = &change;
            async move {
                self.send_change(z, &change.action, &change.body, false)
                    .await
            }
        });
        let mut answer = None;
        let mut refusal = None;
        for (&z, a) in ready.iter().zip(join_all(calls).await) {
            let name = &self.zones[z].name;
            match a {
                Ok(v) => {
                    self.sync.applied(name, change.gen)?;
                    answer = answer.or(Some(v));
                }
                Err(e) => {
                    self.sync.failed(name, e.to_string());
                    refusal = refusal.or_else(|| Some(in_zone(name, e)));
                }
            }
        }
        let v = match (answer, validated) {
            (Some(v), _) | (None, Some(v)) => v,
            // Journaled but taken by no zone yet (for example every zone went away between
            // validation and apply): the reconciler applies it, DescribeFirewall says PENDING.
            (None, None) => match refusal {
                Some(e) if e.status < 500 => return Err(e),
                _ => json!({}),
            },
        };
        self.with_fleet_token(action, &change.body, v, token)
    }

    /// Sends a journaled change (or its dry run) to zone `z`, with the zone's own current
    /// `UpdateToken` for the resource.
    async fn send_change(
        &self,
        z: usize,
        action: &str,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, UpstreamError> {
        let zone = &self.zones[z];
        let mut req = self.policy_scoped(z, body);
        if let Some((describe, describe_body)) = policy_sync::token_source(action, body) {
            let d = zone
                .call(
                    describe,
                    &self.policy_scoped(z, &describe_body),
                    &self.metrics,
                )
                .await?;
            if let Some(t) = d.get("UpdateToken") {
                req["UpdateToken"] = t.clone();
            }
        }
        if dry_run {
            req["DryRun"] = json!(true);
        }
        zone.call(action, &req, &self.metrics).await
    }

    /// Applies zone `z`'s pending changes in order; stops at the first failure. The caller
    /// holds the workflow lock.
    async fn catch_up_locked(&self, z: usize) {
        let name = &self.zones[z].name;
        for change in self.sync.pending(name) {
            match self
                .send_change(z, &change.action, &change.body, false)
                .await
            {
                Ok(_) => {
                    if self.sync.applied(name, change.gen).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    self.sync.failed(name, e.to_string());
                    return;
                }
            }
        }
    }

    /// One pass of the background reconciler: probe every zone (reachability metric),
    /// then bring the reachable ones that are behind up to date.
    pub async fn reconcile(&self) {
        let probes = self.zones.iter().map(|z| z.probe());
        let up: Vec<bool> = join_all(probes)
            .await
            .into_iter()
            .map(|r| r.is_ok())
            .collect();
        let view = self.sync.view();
        for (z, zone) in self.zones.iter().enumerate() {
            self.metrics.set_zone_up(&zone.name, up[z]);
            self.metrics
                .set_zone_in_sync(&zone.name, up[z] && view.in_sync(&zone.name));
        }
        let behind: Vec<usize> = (0..self.zones.len())
            .filter(|&z| up[z] && !view.in_sync(&self.zones[z].name))
            .collect();
        if behind.is_empty() {
            return;
        }
        let _serial = self.sync.workflow.lock().await;
        for z in behind {
            self.catch_up_locked(z).await;
        }
    }
}

/// A stable `FirewallId` (UUID-shaped) for the fleet's firewall, from its ARN.
fn firewall_id(arn: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(arn.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> (Router, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fleet-router-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("fleet.toml");
        let zone = |n: &str, id: &str, port: u16| {
            format!(
                "[[zone]]\nname = \"{n}\"\nid = \"{id}\"\napi = \"http://127.0.0.1:{port}\"\naccess_key_id = \"K\"\nsecret_access_key = \"S\"\n"
            )
        };
        std::fs::write(
            &p,
            format!(
                "[fleet]\nfirewall_name = \"fw\"\nfirewall_arn = \"arn:aws:network-firewall:us-east-1:0:firewall/fw\"\nlisten = \"127.0.0.1:1\"\nregion = \"us-east-1\"\nstate_dir = \"state\"\n[[fleet.keys]]\naccess_key_id = \"F\"\nsecret_access_key = \"F\"\n{}{}",
                zone("zone-a", "use1-az1", 1),
                zone("zone-b", "use1-az2", 2)
            ),
        )
        .unwrap();
        let inv = Inventory::load(&p).unwrap();
        let metrics = Arc::new(Metrics::new(&["zone-a".into(), "zone-b".into()]));
        (Router::new(inv, metrics).unwrap(), dir)
    }

    #[test]
    fn zones_resolve_by_name_or_id_and_unknown_or_conflicting_zones_are_refused() {
        let (r, dir) = router();
        assert_eq!(r.zone_of(&json!({})).unwrap(), None);
        assert_eq!(
            r.zone_of(&json!({"AvailabilityZone": "zone-b"})).unwrap(),
            Some(1)
        );
        assert_eq!(
            r.zone_of(&json!({"AvailabilityZoneId": "use1-az2"}))
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            r.zone_of(&json!({"AvailabilityZone": "zone-a", "AvailabilityZoneId": "use1-az1"}))
                .unwrap(),
            Some(0)
        );
        for bad in [
            json!({"AvailabilityZone": "zone-c"}),
            json!({"AvailabilityZoneId": "use1-az9"}),
            json!({"AvailabilityZone": "zone-a", "AvailabilityZoneId": "use1-az2"}),
        ] {
            let e = r.zone_of(&bad).unwrap_err();
            assert_eq!(e.kind, "InvalidRequestException", "{bad}");
        }
        assert_eq!(
            r.zone_of(&json!({"AvailabilityZone": 7})).unwrap_err().kind,
            "SerializationException"
        );
        let e = r.required_zone(&json!({})).unwrap_err();
        assert!(e.message.contains("zone-a (use1-az1)"), "{}", e.message);
        // The appliance gets its zone by name and its own ARN; the id is not forwarded.
        let b = r.scoped(
            1,
            &json!({"FirewallArn": "x", "AvailabilityZoneId": "use1-az2"}),
        );
        assert_eq!(b["AvailabilityZone"], "zone-b");
        assert!(b.get("AvailabilityZoneId").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn firewall_id_is_uuid_shaped_and_stable() {
        let a = firewall_id("arn:aws:network-firewall:us-east-1:0:firewall/x");
        assert_eq!(
            a,
            firewall_id("arn:aws:network-firewall:us-east-1:0:firewall/x")
        );
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
