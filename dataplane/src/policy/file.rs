//! The policy TOML file: its schema (unknown keys are errors), validation, and loading of the
//! referenced `.rules` files (paths relative to the policy file's directory) into a [`Policy`].
//!
//! Variables: `[variables]` maps a name to one expression or a list of expressions over
//! addresses (`HOME_NET = ["198.18.0.0/15", "2001:2::/48"]`, `EXTERNAL_NET = ["!$HOME_NET"]`);
//! `[port_variables]` the same over ports. A rule naming an undefined variable is an error,
//! with one default: when `HOME_NET` is defined and `EXTERNAL_NET` is not, `EXTERNAL_NET`
//! is `!$HOME_NET` (Suricata's stock value). There is no implicit `HOME_NET`.
//!
//! Defaults for omitted keys: stateless `default_action` and `fragment_default_action` =
//! `forward_to_sfe`, `rule_order` = `default_action_order`, `stream_exception_policy` =
//! `drop`, no stateful default actions. Action names also accept AWS's `aws:` prefix.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{PolicyError, PolicyErrorKind};
use super::model::{
    DefaultAction, Policy, ProtoSet, RuleGroup, RuleOrder, StatefulDefaults, StatefulRule,
    StatelessAction, StatelessRule, StreamException, TcpFlagMatch, TCP_FLAG_NAMES,
};
use super::sets::{self, SetExpr, Variables};
use super::suricata::{self, RuleContext, RuleFields};
use crate::packet::proto;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    variables: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    port_variables: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    stateless: StatelessDoc,
    #[serde(default)]
    stateful: StatefulDoc,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(StrOrInt),
    Many(Vec<StrOrInt>),
}

impl OneOrMany {
    fn into_strings(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.into_string()],
            OneOrMany::Many(v) => v.into_iter().map(StrOrInt::into_string).collect(),
        }
    }
}

/// Ports may be written as numbers or strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Str(String),
    Int(i64),
}

impl StrOrInt {
    fn into_string(self) -> String {
        match self {
            StrOrInt::Str(s) => s,
            StrOrInt::Int(i) => i.to_string(),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatelessDoc {
    default_action: Option<StatelessAction>,
    fragment_default_action: Option<StatelessAction>,
    #[serde(default)]
    rules: Vec<Spanned<StatelessRuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatelessRuleDoc {
    priority: u32,
    action: StatelessAction,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    destinations: Vec<String>,
    #[serde(default)]
    source_ports: Vec<StrOrInt>,
    #[serde(default)]
    destination_ports: Vec<StrOrInt>,
    #[serde(default)]
    protocols: Vec<u8>,
    #[serde(default)]
    tcp_flags: Vec<TcpFlagDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpFlagDoc {
    flags: Vec<String>,
    #[serde(default)]
    masks: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatefulDoc {
    #[serde(default)]
    rule_order: RuleOrder,
    #[serde(default)]
    stream_exception_policy: StreamException,
    #[serde(default)]
    default_actions: Vec<DefaultAction>,
    tcp_idle_timeout_seconds: Option<u32>,
    #[serde(default)]
    rule_groups: Vec<Spanned<RuleGroupDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroupDoc {
    name: String,
    priority: Option<u32>,
    rules_file: Option<String>,
    rules: Option<Vec<Spanned<TomlRuleDoc>>>,
}

/// A stateful rule as a TOML table (AWS `StatefulRule` header + options).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlRuleDoc {
    action: String,
    protocol: String,
    source: String,
    source_port: StrOrInt,
    /// `forward` (`->`) or `any` (`<>`).
    direction: String,
    destination: String,
    destination_port: StrOrInt,
    sid: Option<u32>,
    #[serde(default)]
    msg: String,
    rev: Option<u32>,
    priority: Option<u32>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let before = text.get(..offset).unwrap_or(text);
    u32::try_from(before.bytes().filter(|&b| b == b'\n').count() + 1).unwrap_or(u32::MAX)
}

/// Parses and validates a policy. `file` names the policy in errors and its directory is the
/// base for `rules_file` paths.
pub(crate) fn policy_from_toml(
    text: &str,
    file: &Path,
    read: &mut dyn FnMut(&Path) -> std::io::Result<String>,
) -> Result<Policy, PolicyError> {
    let at = |line: Option<u32>, kind| PolicyError::new(file, line, None, kind);
    let doc: PolicyDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        let message = e.message().trim().lines().collect::<Vec<_>>().join("; ");
        at(line, PolicyErrorKind::Toml(message))
    })?;

    let addr_vars = doc
        .variables
        .into_iter()
        .map(|(k, v)| (k, v.into_strings()))
        .collect();
    let port_vars = doc
        .port_variables
        .into_iter()
        .map(|(k, v)| (k, v.into_strings()))
        .collect();
    let vars = Variables::resolve(&addr_vars, &port_vars).map_err(|k| at(None, k))?;

    let mut stateless_rules = Vec::with_capacity(doc.stateless.rules.len());
    let mut priorities = HashMap::new();
    for spanned in doc.stateless.rules {
        let line = Some(line_of(text, spanned.span().start));
        let rule = stateless_rule(spanned.into_inner(), &vars).map_err(|k| at(line, k))?;
        if priorities.insert(rule.priority, ()).is_some() {
            return Err(at(
                line,
                PolicyErrorKind::DuplicateStatelessPriority(rule.priority),
            ));
        }
        stateless_rules.push(rule);
    }

    let sf = doc.stateful;
    let defaults =
        stateful_defaults(&sf.default_actions, sf.rule_order).map_err(|k| at(None, k))?;
    if let Some(t) = sf.tcp_idle_timeout_seconds {
        if !(60..=6000).contains(&t) {
            return Err(at(None, PolicyErrorKind::TcpIdleTimeout(t)));
        }
    }

    let base = file.parent().unwrap_or(Path::new("."));
    let mut groups: Vec<RuleGroup> = Vec::with_capacity(sf.rule_groups.len());
    let mut rules: Vec<StatefulRule> = Vec::new();
    for (index, spanned) in sf.rule_groups.into_iter().enumerate() {
        let line = Some(line_of(text, spanned.span().start));
        let g = spanned.into_inner();
        let group = rule_group(&g, sf.rule_order, &groups).map_err(|k| at(line, k))?;
        groups.push(group);
        match (g.rules_file, g.rules) {
            (Some(rules_file), None) => {
                let path: PathBuf = base.join(&rules_file);
                let rules_text = read(&path).map_err(|source| {
                    at(
                        line,
                        PolicyErrorKind::RulesFile {
                            path: path.display().to_string(),
                            source,
                        },
                    )
                })?;
                let ctx = RuleContext {
                    vars: &vars,
                    order: sf.rule_order,
                    group: index,
                    file: &path,
                };
                rules.extend(suricata::parse_rules(&rules_text, &ctx)?);
            }
            (None, Some(table_rules)) => {
                let ctx = RuleContext {
                    vars: &vars,
                    order: sf.rule_order,
                    group: index,
                    file,
                };
                for spanned in table_rules {
                    let line = line_of(text, spanned.span().start);
                    let r = spanned.into_inner();
                    let sid = r.sid;
                    rules.push(
                        toml_rule(r, &ctx, line)
                            .map_err(|k| PolicyError::new(file, Some(line), sid, k))?,
                    );
                }
            }
            _ => return Err(at(line, PolicyErrorKind::RulesSource(g.name))),
        }
    }
    check_unique_sids(&rules)?;

    Ok(Policy {
        stateless_default: doc
            .stateless
            .default_action
            .unwrap_or(StatelessAction::ForwardToSfe),
        stateless_fragment_default: doc
            .stateless
            .fragment_default_action
            .unwrap_or(StatelessAction::ForwardToSfe),
        stateless_rules,
        rule_order: sf.rule_order,
        stream_exception: sf.stream_exception_policy,
        defaults,
        tcp_idle_timeout_secs: sf.tcp_idle_timeout_seconds,
        groups,
        rules,
    })
}

fn stateless_rule(
    doc: StatelessRuleDoc,
    vars: &Variables,
) -> Result<StatelessRule, PolicyErrorKind> {
    if !(1..=65535).contains(&doc.priority) {
        return Err(PolicyErrorKind::PriorityRange(doc.priority));
    }
    let list = |items: Vec<String>,
                parse: fn(&str, &Variables) -> Result<SetExpr, PolicyErrorKind>| {
        if items.is_empty() {
            return Ok(SetExpr::Any);
        }
        items
            .iter()
            .map(|s| parse(s, vars))
            .collect::<Result<Vec<_>, _>>()
            .map(SetExpr::List)
    };
    let ports = |items: Vec<StrOrInt>| {
        list(
            items.into_iter().map(StrOrInt::into_string).collect(),
            sets::parse_ports,
        )
    };
    let protocols = if doc.protocols.is_empty() {
        ProtoSet::ANY
    } else {
        ProtoSet::of(&doc.protocols)
    };
    let rule = StatelessRule {
        priority: doc.priority,
        action: doc.action,
        protocols,
        sources: list(doc.sources, sets::parse_addr)?,
        destinations: list(doc.destinations, sets::parse_addr)?,
        source_ports: ports(doc.source_ports)?,
        destination_ports: ports(doc.destination_ports)?,
        tcp_flags: doc
            .tcp_flags
            .iter()
            .map(tcp_flag_match)
            .collect::<Result<_, _>>()?,
    };
    // AWS: ports only for TCP/UDP, flags only for TCP. Requiring the protocol list to say so
    // keeps the rule's meaning unambiguous.
    let tcp_udp = ProtoSet::of(&[proto::TCP, proto::UDP]);
    if !rule.source_ports.is_any() && (doc.protocols.is_empty() || !protocols.subset_of(&tcp_udp)) {
        return Err(PolicyErrorKind::PortsNeedTcpUdp("source_ports"));
    }
    if !rule.destination_ports.is_any()
        && (doc.protocols.is_empty() || !protocols.subset_of(&tcp_udp))
    {
        return Err(PolicyErrorKind::PortsNeedTcpUdp("destination_ports"));
    }
    if !rule.tcp_flags.is_empty() && protocols != ProtoSet::of(&[proto::TCP]) {
        return Err(PolicyErrorKind::TcpFlagsNeedTcp);
    }
    Ok(rule)
}

fn flag_bits(names: &[String]) -> Result<u8, PolicyErrorKind> {
    names.iter().try_fold(0u8, |acc, name| {
        TCP_FLAG_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, bit)| acc | bit)
            .ok_or_else(|| PolicyErrorKind::UnknownTcpFlag(name.clone()))
    })
}

fn tcp_flag_match(doc: &TcpFlagDoc) -> Result<TcpFlagMatch, PolicyErrorKind> {
    let flags = flag_bits(&doc.flags)?;
    let masks = if doc.masks.is_empty() {
        0xff
    } else {
        flag_bits(&doc.masks)?
    };
    if flags & !masks != 0 {
        return Err(PolicyErrorKind::FlagsNotInMasks(doc.flags.clone()));
    }
    Ok(TcpFlagMatch { flags, masks })
}

pub(super) fn stateful_defaults(
    actions: &[DefaultAction],
    order: RuleOrder,
) -> Result<StatefulDefaults, PolicyErrorKind> {
    if !actions.is_empty() && order != RuleOrder::StrictOrder {
        return Err(PolicyErrorKind::DefaultActionsNeedStrictOrder);
    }
    let mut d = StatefulDefaults::default();
    for &a in actions {
        let (slot, kind) = if a.is_drop() {
            (&mut d.drop, "drop")
        } else {
            (&mut d.alert, "alert")
        };
        match *slot {
            Some(prev) if prev == a => {
                return Err(PolicyErrorKind::DuplicateDefaultAction(a.as_str()))
            }
            Some(prev) => {
                return Err(PolicyErrorKind::MultipleDefaults {
                    kind,
                    first: prev.as_str(),
                    second: a.as_str(),
                })
            }
            None => *slot = Some(a),
        }
    }
    Ok(d)
}

fn rule_group(
    g: &RuleGroupDoc,
    order: RuleOrder,
    earlier: &[RuleGroup],
) -> Result<RuleGroup, PolicyErrorKind> {
    if earlier.iter().any(|e| e.name == g.name) {
        return Err(PolicyErrorKind::DuplicateGroup {
            what: "name",
            value: g.name.clone(),
        });
    }
    let priority = match (g.priority, order) {
        (Some(p), _) if !(1..=65535).contains(&p) => return Err(PolicyErrorKind::PriorityRange(p)),
        (Some(p), RuleOrder::StrictOrder) if earlier.iter().any(|e| e.priority == p) => {
            return Err(PolicyErrorKind::DuplicateGroup {
                what: "priority",
                value: p.to_string(),
            })
        }
        (Some(p), _) => p,
        (None, RuleOrder::StrictOrder) => {
            return Err(PolicyErrorKind::GroupPriorityMissing(g.name.clone()))
        }
        (None, RuleOrder::DefaultActionOrder) => 0,
    };
    Ok(RuleGroup {
        name: g.name.clone(),
        priority,
    })
}

fn toml_rule(
    r: TomlRuleDoc,
    ctx: &RuleContext<'_>,
    line: u32,
) -> Result<StatefulRule, PolicyErrorKind> {
    let direction = match r.direction.to_ascii_lowercase().as_str() {
        "forward" | "->" => "->",
        "any" | "<>" => "<>",
        _ => return Err(PolicyErrorKind::BadDirection(r.direction)),
    };
    let (sport, dport) = (
        r.source_port.into_string(),
        r.destination_port.into_string(),
    );
    let fields = RuleFields {
        action: &r.action.to_ascii_lowercase(),
        protocol: &r.protocol,
        source: &r.source,
        source_port: &sport,
        direction,
        destination: &r.destination,
        destination_port: &dport,
        sid: r.sid,
        rev: r.rev,
        priority: r.priority,
        msg: r.msg,
    };
    suricata::build_rule(fields, ctx, line)
}

pub(super) fn check_unique_sids(rules: &[StatefulRule]) -> Result<(), PolicyError> {
    let mut seen: HashMap<u32, usize> = HashMap::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        if let Some(&first) = seen.get(&r.sid) {
            let first = rules
                .get(first)
                .map(|f| f.origin.to_string())
                .unwrap_or_default();
            return Err(PolicyError::new(
                &r.origin.file,
                Some(r.origin.line),
                Some(r.sid),
                PolicyErrorKind::DuplicateSid { first },
            ));
        }
        seen.insert(r.sid, i);
    }
    Ok(())
}
