//! AWS Network Firewall's resource shapes (`FirewallPolicy`, `RuleGroup`) → [`Policy`].
//!
//! The API and AWS-shaped policy files both land here: a firewall policy and the rule groups
//! it references, in the service's member names (PascalCase, as botocore's model and
//! CloudFormation spell them), are translated into the same validated [`Policy`] the TOML
//! file gives, reusing the Suricata rule parser for `RulesString` and `StatefulRules`.
//!
//! * Stateful sources: `RulesString` (Suricata lines), `StatefulRules` (Header + RuleOptions,
//!   rendered as a Suricata line and parsed, so both accept exactly the same options).
//! * Stateless source: `StatelessRulesAndCustomActions` (MatchAttributes, priorities,
//!   `aws:pass` / `aws:drop` / `aws:forward_to_sfe`). Stateless groups run by the policy's
//!   group priority, then rule priority (flattened as `group << 16 | rule`).
//! * Variables: a group's `RuleVariables` (`IPSets`, `PortSets`); the policy's
//!   `PolicyVariables.RuleVariables.HOME_NET` overrides the groups' `HOME_NET`.
//! * What an L3/L4 engine cannot honour is refused with an error naming the member:
//!   `RulesSourceList` (domain lists), app-layer protocols and keywords, TLS inspection,
//!   custom actions, reference sets, context sets.
//!
//! Errors are [`PolicyError`]s whose "file" is the member path (`RuleGroup 'Web'
//! StatefulRules`) and whose line is the 1-based rule number inside that list.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::error::{PolicyError, PolicyErrorKind};
use super::file::{check_unique_sids, stateful_defaults};
use super::model::{
    DefaultAction, Policy, ProtoSet, RuleAction, RuleGroup as ModelGroup, RuleOrder, StatefulRule,
    StatelessAction, StatelessRule, StreamException, TcpFlagMatch, TCP_FLAG_NAMES,
};
use super::sets::{self, SetExpr, Variables};
use super::suricata::{self, RuleContext, APP_LAYER};
use crate::packet::proto;

/// Stateful rule capacity a policy may consume (the service's per-policy limit).
pub const MAX_STATEFUL_CAPACITY: u64 = 30_000;
/// Stateless rule capacity a policy may consume (the service's per-policy limit).
pub const MAX_STATELESS_CAPACITY: u64 = 10_000;

/// A string or a number (CloudFormation YAML writes ports and sids as numbers).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Str(String),
    Int(i64),
}

impl Text {
    pub fn as_string(&self) -> String {
        match self {
            Text::Str(s) => s.clone(),
            Text::Int(i) => i.to_string(),
        }
    }
}

/// `FirewallPolicy`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirewallPolicyShape {
    pub stateless_default_actions: Vec<String>,
    pub stateless_fragment_default_actions: Vec<String>,
    #[serde(default)]
    pub stateless_custom_actions: Vec<IgnoredAny>,
    #[serde(default)]
    pub stateless_rule_group_references: Vec<StatelessReference>,
    #[serde(default)]
    pub stateful_rule_group_references: Vec<StatefulReference>,
    #[serde(default)]
    pub stateful_default_actions: Vec<String>,
    pub stateful_engine_options: Option<EngineOptions>,
    #[serde(rename = "TLSInspectionConfigurationArn")]
    pub tls_inspection_configuration_arn: Option<String>,
    pub policy_variables: Option<PolicyVariables>,
    #[serde(rename = "EnableTLSSessionHolding")]
    pub enable_tls_session_holding: Option<bool>,
    #[serde(rename = "Route53ResolvedIPValidation")]
    pub route53_resolved_ip_validation: Option<IgnoredAny>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatelessReference {
    pub resource_arn: String,
    pub priority: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatefulReference {
    pub resource_arn: String,
    pub priority: Option<u32>,
    #[serde(rename = "Override")]
    pub override_: Option<OverrideShape>,
    pub deep_threat_inspection: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OverrideShape {
    pub action: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineOptions {
    pub rule_order: Option<AwsRuleOrder>,
    pub stream_exception_policy: Option<AwsStreamException>,
    pub flow_timeouts: Option<FlowTimeouts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AwsRuleOrder {
    DefaultActionOrder,
    StrictOrder,
}

impl From<AwsRuleOrder> for RuleOrder {
    fn from(o: AwsRuleOrder) -> RuleOrder {
        match o {
            AwsRuleOrder::DefaultActionOrder => RuleOrder::DefaultActionOrder,
            AwsRuleOrder::StrictOrder => RuleOrder::StrictOrder,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AwsStreamException {
    Drop,
    Continue,
    Reject,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowTimeouts {
    pub tcp_idle_timeout_seconds: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVariables {
    #[serde(default)]
    pub rule_variables: BTreeMap<String, VariableSet>,
}

/// `IPSet` / `PortSet`: `{ Definition: [..] }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VariableSet {
    #[serde(default)]
    pub definition: Vec<Text>,
}

/// `RuleGroup` (the rules, not the response metadata).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleGroupShape {
    pub rule_variables: Option<RuleVariables>,
    pub reference_sets: Option<ReferenceSets>,
    pub rules_source: RulesSource,
    pub stateful_rule_options: Option<StatefulRuleOptions>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleVariables {
    #[serde(default, rename = "IPSets")]
    pub ip_sets: BTreeMap<String, VariableSet>,
    #[serde(default)]
    pub port_sets: BTreeMap<String, VariableSet>,
    #[serde(default)]
    pub context_sets: BTreeMap<String, IgnoredAny>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReferenceSets {
    #[serde(default, rename = "IPSetReferences")]
    pub ip_set_references: BTreeMap<String, IgnoredAny>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatefulRuleOptions {
    pub rule_order: Option<AwsRuleOrder>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RulesSource {
    pub rules_string: Option<String>,
    pub rules_source_list: Option<IgnoredAny>,
    pub stateful_rules: Option<Vec<StatefulRuleShape>>,
    pub stateless_rules_and_custom_actions: Option<StatelessRulesShape>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatefulRuleShape {
    pub action: String,
    pub header: HeaderShape,
    #[serde(default)]
    pub rule_options: Vec<RuleOptionShape>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HeaderShape {
    pub protocol: String,
    pub source: Text,
    pub source_port: Text,
    pub direction: String,
    pub destination: Text,
    pub destination_port: Text,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleOptionShape {
    pub keyword: String,
    #[serde(default)]
    pub settings: Vec<Text>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatelessRulesShape {
    pub stateless_rules: Vec<StatelessRuleShape>,
    #[serde(default)]
    pub custom_actions: Vec<IgnoredAny>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatelessRuleShape {
    pub rule_definition: RuleDefinitionShape,
    pub priority: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleDefinitionShape {
    pub match_attributes: MatchAttributesShape,
    pub actions: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MatchAttributesShape {
    #[serde(default)]
    pub sources: Vec<AddressShape>,
    #[serde(default)]
    pub destinations: Vec<AddressShape>,
    #[serde(default)]
    pub source_ports: Vec<PortRangeShape>,
    #[serde(default)]
    pub destination_ports: Vec<PortRangeShape>,
    #[serde(default)]
    pub protocols: Vec<u32>,
    #[serde(default, rename = "TCPFlags")]
    pub tcp_flags: Vec<TcpFlagShape>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressShape {
    pub address_definition: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortRangeShape {
    pub from_port: u32,
    pub to_port: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TcpFlagShape {
    pub flags: Vec<String>,
    #[serde(default)]
    pub masks: Vec<String>,
}

/// `RuleGroupType` values this engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GroupType {
    Stateless,
    Stateful,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Stateless => "STATELESS",
            GroupType::Stateful => "STATEFUL",
        }
    }
    /// The resource type in an ARN (`…:stateful-rulegroup/<name>`).
    pub fn arn_resource(self) -> &'static str {
        match self {
            GroupType::Stateless => "stateless-rulegroup",
            GroupType::Stateful => "stateful-rulegroup",
        }
    }
}

/// A rule group the policy may reference.
#[derive(Clone, Debug)]
pub struct NamedGroup {
    pub arn: String,
    pub name: String,
    pub kind: GroupType,
    pub group: RuleGroupShape,
}

/// Where an AWS-shaped problem is: a member path such as `RuleGroup.RulesSource.RulesSourceList`.
fn at(path: impl Into<PathBuf>, line: Option<u32>, what: impl Into<String>) -> PolicyError {
    PolicyError::new(&path.into(), line, None, PolicyErrorKind::Aws(what.into()))
}

fn named(path: &str, kind: PolicyErrorKind) -> PolicyError {
    PolicyError::new(Path::new(path), None, None, kind)
}

/// The single standard stateless action among `actions`; custom actions are refused.
fn standard_action(member: &str, actions: &[String]) -> Result<StatelessAction, PolicyError> {
    let mut found = None;
    for a in actions {
        let action = match a.as_str() {
            "aws:pass" => StatelessAction::Pass,
            "aws:drop" => StatelessAction::Drop,
            "aws:forward_to_sfe" => StatelessAction::ForwardToSfe,
            other => {
                return Err(at(
                    member,
                    None,
                    format!(
                        "custom action '{other}' is not supported (publishing CloudWatch metrics); use exactly one of aws:pass, aws:drop, aws:forward_to_sfe"
                    ),
                ))
            }
        };
        if found.replace(action).is_some() {
            return Err(at(
                member,
                None,
                "exactly one of aws:pass, aws:drop, aws:forward_to_sfe is allowed",
            ));
        }
    }
    found.ok_or_else(|| {
        at(
            member,
            None,
            "needs exactly one of aws:pass, aws:drop, aws:forward_to_sfe",
        )
    })
}

fn default_action(member: &str, s: &str) -> Result<DefaultAction, PolicyError> {
    Ok(match s {
        "aws:drop_strict" => DefaultAction::DropStrict,
        "aws:drop_established" => DefaultAction::DropEstablished,
        "aws:alert_strict" => DefaultAction::AlertStrict,
        "aws:alert_established" => DefaultAction::AlertEstablished,
        other => {
            return Err(at(
                member,
                None,
                format!(
                    "'{other}' is not one of aws:drop_strict, aws:drop_established, aws:alert_strict, aws:alert_established"
                ),
            ))
        }
    })
}

/// Refusals common to every rule group, whatever it is used for.
fn refuse_unsupported(path: &str, g: &RuleGroupShape) -> Result<(), PolicyError> {
    let src = &g.rules_source;
    if src.rules_source_list.is_some() {
        return Err(at(
            format!("{path}.RulesSource.RulesSourceList"),
            None,
            "domain list rule groups (TLS_SNI / HTTP_HOST targets) are not supported: this engine inspects L3/L4 headers only",
        ));
    }
    if g.reference_sets
        .as_ref()
        .is_some_and(|r| !r.ip_set_references.is_empty())
    {
        return Err(at(
            format!("{path}.ReferenceSets.IPSetReferences"),
            None,
            "IP set references (managed prefix lists, resource groups) are not supported; define the addresses in RuleVariables.IPSets",
        ));
    }
    if g.rule_variables
        .as_ref()
        .is_some_and(|v| !v.context_sets.is_empty())
    {
        return Err(at(
            format!("{path}.RuleVariables.ContextSets"),
            None,
            "context sets are not supported",
        ));
    }
    let sources = [
        src.rules_string.is_some(),
        src.stateful_rules.is_some(),
        src.stateless_rules_and_custom_actions.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(at(
            format!("{path}.RulesSource"),
            None,
            "exactly one of RulesString, StatefulRules, StatelessRulesAndCustomActions (or RulesSourceList) is required",
        ));
    }
    Ok(())
}

/// The group's variables, with the policy's overrides (`HOME_NET`) applied.
fn group_variables(
    path: &str,
    g: &RuleGroupShape,
    policy_vars: &BTreeMap<String, Vec<String>>,
) -> Result<Variables, PolicyError> {
    let (mut addrs, ports) = match &g.rule_variables {
        None => (BTreeMap::new(), BTreeMap::new()),
        Some(v) => (strings(&v.ip_sets), strings(&v.port_sets)),
    };
    for (k, v) in policy_vars {
        addrs.insert(k.clone(), v.clone());
    }
    Variables::resolve(&addrs, &ports).map_err(|k| named(&format!("{path}.RuleVariables"), k))
}

fn strings(sets: &BTreeMap<String, VariableSet>) -> BTreeMap<String, Vec<String>> {
    sets.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.definition.iter().map(Text::as_string).collect(),
            )
        })
        .collect()
}

/// Renders one `StatefulRule` as a Suricata rule line, refusing app-layer protocols by member.
fn render_stateful(path: &str, i: usize, r: &StatefulRuleShape) -> Result<String, PolicyError> {
    let line = None;
    let h = &r.header;
    let action = match r.action.as_str() {
        "PASS" | "DROP" | "ALERT" | "REJECT" => r.action.to_ascii_lowercase(),
        other => {
            return Err(at(
                format!("{path}[{i}].Action"),
                line,
                format!("'{other}' is not one of PASS, DROP, ALERT, REJECT"),
            ))
        }
    };
    let protocol = h.protocol.to_ascii_lowercase();
    if APP_LAYER.contains(&protocol.as_str()) {
        return Err(at(
            format!("{path}[{i}].Header.Protocol"),
            line,
            format!(
                "'{}' is an application-layer protocol; this L3/L4 engine supports IP, TCP, UDP, ICMP",
                h.protocol
            ),
        ));
    }
    let direction = match h.direction.as_str() {
        "FORWARD" => "->",
        "ANY" => "<>",
        other => {
            return Err(at(
                format!("{path}[{i}].Header.Direction"),
                line,
                format!("'{other}' is not one of FORWARD, ANY"),
            ))
        }
    };
    let field = |t: &Text| {
        let s = t.as_string();
        if s.eq_ignore_ascii_case("any") {
            "any".to_string()
        } else {
            s
        }
    };
    let mut options = String::new();
    for o in &r.rule_options {
        if o.keyword.contains([';', '(', ')']) {
            return Err(at(
                format!("{path}[{i}].RuleOptions"),
                line,
                format!("bad keyword '{}'", o.keyword),
            ));
        }
        options.push_str(&o.keyword);
        if !o.settings.is_empty() {
            options.push(':');
            let settings: Vec<String> = o.settings.iter().map(Text::as_string).collect();
            options.push_str(&settings.join(","));
        }
        options.push_str("; ");
    }
    Ok(format!(
        "{action} {protocol} {} {} {direction} {} {} ({options})",
        field(&h.source),
        field(&h.source_port),
        field(&h.destination),
        field(&h.destination_port),
    ))
}

/// The stateful rules of one group (group index `index` in the policy).
fn stateful_rules(
    path: &str,
    g: &RuleGroupShape,
    vars: &Variables,
    order: RuleOrder,
    index: usize,
) -> Result<Vec<StatefulRule>, PolicyError> {
    let src = &g.rules_source;
    if src.stateless_rules_and_custom_actions.is_some() {
        return Err(at(
            format!("{path}.RulesSource.StatelessRulesAndCustomActions"),
            None,
            "a STATEFUL rule group needs RulesString or StatefulRules",
        ));
    }
    if let Some(text) = &src.rules_string {
        let file = PathBuf::from(format!("{path}.RulesSource.RulesString"));
        let ctx = RuleContext {
            vars,
            order,
            group: index,
            file: &file,
        };
        return suricata::parse_rules(text, &ctx);
    }
    let rules = src.stateful_rules.as_deref().unwrap_or_default();
    let list_path = format!("{path}.RulesSource.StatefulRules");
    let file = PathBuf::from(&list_path);
    let ctx = RuleContext {
        vars,
        order,
        group: index,
        file: &file,
    };
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let line = render_stateful(&list_path, i, r)?;
            suricata::parse_rule_line(&line, &ctx, u32::try_from(i + 1).unwrap_or(u32::MAX))
        })
        .collect()
}

fn flag_bits(member: &str, names: &[String]) -> Result<u8, PolicyError> {
    names.iter().try_fold(0u8, |acc, name| {
        TCP_FLAG_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bit)| acc | bit)
            .ok_or_else(|| {
                at(
                    member,
                    None,
                    format!("'{name}' is not one of FIN, SYN, RST, PSH, ACK, URG, ECE, CWR"),
                )
            })
    })
}

/// The stateless rules of one group, priorities flattened under the group's priority.
fn stateless_rules(
    path: &str,
    g: &RuleGroupShape,
    vars: &Variables,
    group_priority: u32,
) -> Result<Vec<StatelessRule>, PolicyError> {
    let Some(src) = &g.rules_source.stateless_rules_and_custom_actions else {
        return Err(at(
            format!("{path}.RulesSource"),
            None,
            "a STATELESS rule group needs StatelessRulesAndCustomActions",
        ));
    };
    if !src.custom_actions.is_empty() {
        return Err(at(
            format!("{path}.RulesSource.StatelessRulesAndCustomActions.CustomActions"),
            None,
            "custom actions (CloudWatch metric publishing) are not supported",
        ));
    }
    let mut seen = HashMap::new();
    let mut out = Vec::with_capacity(src.stateless_rules.len());
    for (i, r) in src.stateless_rules.iter().enumerate() {
        let rp = format!("{path}.RulesSource.StatelessRulesAndCustomActions.StatelessRules[{i}]");
        if !(1..=65535).contains(&r.priority) {
            return Err(at(
                format!("{rp}.Priority"),
                None,
                format!("{} is outside 1..=65535", r.priority),
            ));
        }
        if seen.insert(r.priority, i).is_some() {
            return Err(at(
                format!("{rp}.Priority"),
                None,
                format!("priority {} is used twice in this rule group", r.priority),
            ));
        }
        let action = standard_action(
            &format!("{rp}.RuleDefinition.Actions"),
            &r.rule_definition.actions,
        )?;
        let m = &r.rule_definition.match_attributes;
        let mp = format!("{rp}.RuleDefinition.MatchAttributes");
        let addrs = |member: &str, list: &[AddressShape]| -> Result<SetExpr, PolicyError> {
            if list.is_empty() {
                return Ok(SetExpr::Any);
            }
            list.iter()
                .map(|a| sets::parse_cidr(&a.address_definition))
                .collect::<Result<Vec<_>, _>>()
                .map(SetExpr::List)
                .map_err(|k| named(&format!("{mp}.{member}"), k))
        };
        let ports = |member: &str, list: &[PortRangeShape]| -> Result<SetExpr, PolicyError> {
            if list.is_empty() {
                return Ok(SetExpr::Any);
            }
            list.iter()
                .map(|p| {
                    if p.from_port > p.to_port || p.to_port > 65535 {
                        return Err(at(
                            format!("{mp}.{member}"),
                            None,
                            format!(
                                "{}:{} is not a port range (FromPort <= ToPort <= 65535)",
                                p.from_port, p.to_port
                            ),
                        ));
                    }
                    sets::parse_ports(&format!("{}:{}", p.from_port, p.to_port), vars)
                        .map_err(|k| named(&format!("{mp}.{member}"), k))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(SetExpr::List)
        };
        let mut protos = Vec::with_capacity(m.protocols.len());
        for p in &m.protocols {
            protos.push(u8::try_from(*p).map_err(|_| {
                at(
                    format!("{mp}.Protocols"),
                    None,
                    format!("{p} is outside 0..=255"),
                )
            })?);
        }
        let protocols = if protos.is_empty() {
            ProtoSet::ANY
        } else {
            ProtoSet::of(&protos)
        };
        let mut tcp_flags = Vec::with_capacity(m.tcp_flags.len());
        for f in &m.tcp_flags {
            let flags = flag_bits(&format!("{mp}.TCPFlags.Flags"), &f.flags)?;
            let masks = if f.masks.is_empty() {
                0xff
            } else {
                flag_bits(&format!("{mp}.TCPFlags.Masks"), &f.masks)?
            };
            if flags & !masks != 0 {
                return Err(at(
                    format!("{mp}.TCPFlags"),
                    None,
                    "Flags must be a subset of Masks",
                ));
            }
            tcp_flags.push(TcpFlagMatch { flags, masks });
        }
        let rule = StatelessRule {
            priority: (group_priority << 16) | r.priority,
            action,
            protocols,
            sources: addrs("Sources", &m.sources)?,
            destinations: addrs("Destinations", &m.destinations)?,
            source_ports: ports("SourcePorts", &m.source_ports)?,
            destination_ports: ports("DestinationPorts", &m.destination_ports)?,
            tcp_flags,
        };
        let tcp_udp = ProtoSet::of(&[proto::TCP, proto::UDP]);
        if rule.has_ports() && (protos.is_empty() || !protocols.subset_of(&tcp_udp)) {
            return Err(at(
                mp.clone(),
                None,
                "SourcePorts/DestinationPorts need Protocols limited to 6 (TCP) and/or 17 (UDP)",
            ));
        }
        if !rule.tcp_flags.is_empty() && protocols != ProtoSet::of(&[proto::TCP]) {
            return Err(at(mp.clone(), None, "TCPFlags need Protocols = [6]"));
        }
        out.push(rule);
    }
    Ok(out)
}

/// The capacity a rule group consumes, as the service counts it: one per stateful rule; per
/// stateless rule the product of its match settings' counts (each at least one).
pub fn consumed_capacity(g: &RuleGroupShape) -> u64 {
    let src = &g.rules_source;
    if let Some(s) = &src.stateless_rules_and_custom_actions {
        return s
            .stateless_rules
            .iter()
            .map(|r| {
                let m = &r.rule_definition.match_attributes;
                [
                    m.sources.len(),
                    m.destinations.len(),
                    m.source_ports.len(),
                    m.destination_ports.len(),
                    m.protocols.len(),
                    m.tcp_flags.len(),
                ]
                .iter()
                .map(|n| (*n).max(1) as u64)
                .product::<u64>()
            })
            .sum();
    }
    if let Some(rules) = &src.stateful_rules {
        return rules.len() as u64;
    }
    if let Some(text) = &src.rules_string {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.ends_with('\\'))
            .count() as u64;
    }
    0
}

/// Validates one rule group on its own (as CreateRuleGroup / UpdateRuleGroup do): its source,
/// its variables and every rule. `HOME_NET` undefined in the group stands for any address
/// here (a policy supplies it); returns the consumed capacity.
pub fn validate_rule_group(
    path: &str,
    kind: GroupType,
    g: &RuleGroupShape,
) -> Result<u64, PolicyError> {
    refuse_unsupported(path, g)?;
    let mut placeholder = BTreeMap::new();
    let defines_home = g
        .rule_variables
        .as_ref()
        .is_some_and(|v| v.ip_sets.contains_key("HOME_NET"));
    if !defines_home {
        placeholder.insert("HOME_NET".to_string(), vec!["any".to_string()]);
    }
    let vars = group_variables(path, g, &placeholder)?;
    match kind {
        GroupType::Stateful => {
            let order = g
                .stateful_rule_options
                .as_ref()
                .and_then(|o| o.rule_order)
                .map_or(RuleOrder::DefaultActionOrder, RuleOrder::from);
            let rules = stateful_rules(path, g, &vars, order, 0)?;
            check_unique_sids(&rules)?;
        }
        GroupType::Stateless => {
            if g.stateful_rule_options.is_some() {
                return Err(at(
                    format!("{path}.StatefulRuleOptions"),
                    None,
                    "only STATEFUL rule groups take StatefulRuleOptions",
                ));
            }
            stateless_rules(path, g, &vars, 0)?;
        }
    }
    Ok(consumed_capacity(g))
}

/// Finds a referenced group: by exact ARN, else by resource type and name (the ARN's tail),
/// so a file's references resolve whatever account and region its ARNs were written with.
fn find<'a>(groups: &'a [NamedGroup], arn: &str, kind: GroupType) -> Option<&'a NamedGroup> {
    groups
        .iter()
        .find(|g| g.arn == arn && g.kind == kind)
        .or_else(|| {
            let tail = arn.rsplit(':').next()?;
            let (res, name) = tail.split_once('/')?;
            groups
                .iter()
                .find(|g| g.kind == kind && g.kind.arn_resource() == res && g.name == name)
        })
}

/// Translates a firewall policy and the groups it may reference into a validated [`Policy`].
pub fn policy_from_aws(
    p: &FirewallPolicyShape,
    groups: &[NamedGroup],
) -> Result<Policy, PolicyError> {
    let fp = "FirewallPolicy";
    if p.tls_inspection_configuration_arn.is_some() {
        return Err(at(
            format!("{fp}.TLSInspectionConfigurationArn"),
            None,
            "TLS inspection is not supported: this engine inspects L3/L4 headers only",
        ));
    }
    if p.enable_tls_session_holding == Some(true) {
        return Err(at(
            format!("{fp}.EnableTLSSessionHolding"),
            None,
            "TLS session holding is not supported",
        ));
    }
    if p.route53_resolved_ip_validation.is_some() {
        return Err(at(
            format!("{fp}.Route53ResolvedIPValidation"),
            None,
            "Route 53 resolved IP validation is not supported",
        ));
    }
    if !p.stateless_custom_actions.is_empty() {
        return Err(at(
            format!("{fp}.StatelessCustomActions"),
            None,
            "custom actions (CloudWatch metric publishing) are not supported",
        ));
    }
    let stateless_default = standard_action(
        &format!("{fp}.StatelessDefaultActions"),
        &p.stateless_default_actions,
    )?;
    let stateless_fragment_default = standard_action(
        &format!("{fp}.StatelessFragmentDefaultActions"),
        &p.stateless_fragment_default_actions,
    )?;
    let opts = p.stateful_engine_options.clone().unwrap_or_default();
    let order: RuleOrder = opts
        .rule_order
        .map_or(RuleOrder::DefaultActionOrder, RuleOrder::from);
    let stream_exception = match opts.stream_exception_policy {
        None | Some(AwsStreamException::Drop) => StreamException::Drop,
        Some(AwsStreamException::Continue) => StreamException::Continue,
        Some(AwsStreamException::Reject) => StreamException::Reject,
    };
    let tcp_idle = opts.flow_timeouts.and_then(|t| t.tcp_idle_timeout_seconds);
    if let Some(t) = tcp_idle {
        if !(60..=6000).contains(&t) {
            return Err(at(
                format!("{fp}.StatefulEngineOptions.FlowTimeouts.TcpIdleTimeoutSeconds"),
                None,
                format!("{t} is outside 60..=6000"),
            ));
        }
    }
    let defaults = {
        let member = format!("{fp}.StatefulDefaultActions");
        let actions = p
            .stateful_default_actions
            .iter()
            .map(|s| default_action(&member, s))
            .collect::<Result<Vec<_>, _>>()?;
        stateful_defaults(&actions, order).map_err(|k| match k {
            PolicyErrorKind::DefaultActionsNeedStrictOrder => at(
                member.clone(),
                None,
                "StatefulDefaultActions need StatefulEngineOptions.RuleOrder = STRICT_ORDER",
            ),
            k => named(&member, k),
        })?
    };
    let mut policy_vars = BTreeMap::new();
    if let Some(v) = &p.policy_variables {
        for (name, set) in &v.rule_variables {
            if name != "HOME_NET" {
                return Err(at(
                    format!("{fp}.PolicyVariables.RuleVariables.{name}"),
                    None,
                    "only HOME_NET can be set as a policy variable",
                ));
            }
            policy_vars.insert(
                name.clone(),
                set.definition.iter().map(Text::as_string).collect(),
            );
        }
    }

    // Stateless groups: unique priorities, flattened under them.
    let mut stateless = Vec::new();
    let mut capacity_stateless = 0u64;
    let mut seen = HashMap::new();
    for (i, r) in p.stateless_rule_group_references.iter().enumerate() {
        let member = format!("{fp}.StatelessRuleGroupReferences[{i}]");
        if !(1..=65535).contains(&r.priority) {
            return Err(at(
                format!("{member}.Priority"),
                None,
                format!("{} is outside 1..=65535", r.priority),
            ));
        }
        if seen.insert(r.priority, ()).is_some() {
            return Err(at(
                format!("{member}.Priority"),
                None,
                format!("priority {} is used twice", r.priority),
            ));
        }
        let g = find(groups, &r.resource_arn, GroupType::Stateless).ok_or_else(|| {
            at(
                format!("{member}.ResourceArn"),
                None,
                format!("no STATELESS rule group '{}'", r.resource_arn),
            )
        })?;
        let path = format!("RuleGroup '{}'", g.name);
        refuse_unsupported(&path, &g.group)?;
        let vars = group_variables(&path, &g.group, &policy_vars)?;
        stateless.extend(stateless_rules(&path, &g.group, &vars, r.priority)?);
        capacity_stateless += consumed_capacity(&g.group);
    }
    if capacity_stateless > MAX_STATELESS_CAPACITY {
        return Err(at(
            format!("{fp}.StatelessRuleGroupReferences"),
            None,
            format!("the rule groups consume {capacity_stateless} stateless capacity; a policy allows {MAX_STATELESS_CAPACITY}"),
        ));
    }

    let mut model_groups: Vec<ModelGroup> = Vec::new();
    let mut rules = Vec::new();
    let mut capacity_stateful = 0u64;
    for (i, r) in p.stateful_rule_group_references.iter().enumerate() {
        let member = format!("{fp}.StatefulRuleGroupReferences[{i}]");
        let g = find(groups, &r.resource_arn, GroupType::Stateful).ok_or_else(|| {
            at(
                format!("{member}.ResourceArn"),
                None,
                format!("no STATEFUL rule group '{}'", r.resource_arn),
            )
        })?;
        let priority = match (r.priority, order) {
            (Some(p), _) if !(1..=65535).contains(&p) => {
                return Err(at(
                    format!("{member}.Priority"),
                    None,
                    format!("{p} is outside 1..=65535"),
                ))
            }
            (Some(p), RuleOrder::StrictOrder) if model_groups.iter().any(|e| e.priority == p) => {
                return Err(at(
                    format!("{member}.Priority"),
                    None,
                    format!("priority {p} is used twice"),
                ))
            }
            (Some(p), _) => p,
            (None, RuleOrder::StrictOrder) => {
                return Err(at(
                    format!("{member}.Priority"),
                    None,
                    "required under STRICT_ORDER",
                ))
            }
            (None, RuleOrder::DefaultActionOrder) => 0,
        };
        if model_groups.iter().any(|e| e.name == g.name) {
            return Err(at(
                format!("{member}.ResourceArn"),
                None,
                format!("rule group '{}' is referenced twice", g.name),
            ));
        }
        let path = format!("RuleGroup '{}'", g.name);
        refuse_unsupported(&path, &g.group)?;
        let group_order = g
            .group
            .stateful_rule_options
            .as_ref()
            .and_then(|o| o.rule_order)
            .map_or(RuleOrder::DefaultActionOrder, RuleOrder::from);
        if group_order != order {
            return Err(at(
                format!("{path}.StatefulRuleOptions.RuleOrder"),
                None,
                format!(
                    "the rule group's rule order ({}) differs from the policy's StatefulEngineOptions.RuleOrder ({})",
                    group_order.as_str(),
                    order.as_str()
                ),
            ));
        }
        let vars = group_variables(&path, &g.group, &policy_vars)?;
        let mut group_rules = stateful_rules(&path, &g.group, &vars, order, model_groups.len())?;
        match r.override_.as_ref().and_then(|o| o.action.as_deref()) {
            None => {}
            Some("DROP_TO_ALERT") => {
                for rule in &mut group_rules {
                    if rule.action == RuleAction::Drop {
                        rule.action = RuleAction::Alert;
                    }
                }
            }
            Some(other) => {
                return Err(at(
                    format!("{member}.Override.Action"),
                    None,
                    format!("'{other}' is not DROP_TO_ALERT"),
                ))
            }
        }
        capacity_stateful += consumed_capacity(&g.group);
        rules.extend(group_rules);
        model_groups.push(ModelGroup {
            name: g.name.clone(),
            priority,
        });
    }
    if capacity_stateful > MAX_STATEFUL_CAPACITY {
        return Err(at(
            format!("{fp}.StatefulRuleGroupReferences"),
            None,
            format!("the rule groups consume {capacity_stateful} stateful capacity; a policy allows {MAX_STATEFUL_CAPACITY}"),
        ));
    }
    check_unique_sids(&rules)?;
    Ok(Policy {
        stateless_default,
        stateless_fragment_default,
        stateless_rules: stateless,
        rule_order: order,
        stream_exception,
        defaults,
        tcp_idle_timeout_secs: tcp_idle,
        groups: model_groups,
        rules,
    })
}
