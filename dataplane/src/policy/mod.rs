//! The firewall policy, modelled on AWS Network Firewall: files in, an immutable matcher out.
//!
//! * [`file`]: the policy TOML (schema, validation, `rules_file` loading) → [`Policy`].
//! * [`aws`]: AWS Network Firewall's `FirewallPolicy` / `RuleGroup` shapes → [`Policy`];
//!   [`aws_file`]: the same shapes as JSON/YAML files (CloudFormation templates included).
//! * [`suricata`]: Suricata rule lines (5-tuple subset) → stateful rules.
//! * [`sets`]: address/port expressions (CIDRs, ranges, lists, negation, variables).
//! * [`compiled`]: [`CompiledPolicy`], what workers read through an `Arc`, built on a
//!   bit-vector [`classifier`] so a new flow costs five lookups and a few word ANDs whatever
//!   the number of rules.
//! * [`reference`]: the naive oracle the compiled matcher is differentially tested against.
//! * [`error`]: [`PolicyError`], `<file>:<line>: sid <N>: <what>`.
//!
//! # Semantics
//! Stateless rules: lowest `priority` first, first match wins, else the default action.
//! Non-UDP fragments are dropped; UDP fragments that match no rule get
//! `fragment_default_action` (a later fragment, which has no ports, never matches a rule
//! with ports). TCP flags: among `masks` (empty = all eight), `flags` set and the rest clear;
//! several conditions are ORed.
//!
//! Stateful rules are judged per flow, on the opener's tuple:
//! * `default_action_order`: the first matching rule in the order pass, drop, reject, alert
//!   (inside an action: Suricata `priority`, default 3, then file order) decides; an `alert`
//!   decides `Pass` and is reported as the alert. No match: `Pass`, sid 0, `from_default`.
//! * `strict_order`: groups by priority, rules in file order; `alert` records the first
//!   alert and continues; the first pass/drop/reject decides. No decision: the default
//!   actions, with AWS system sids 2 = `drop_established` (→ [`Verdict::DropEstablished`];
//!   [`Verdict::Drop`] when judged midstream, where the connection counts as established),
//!   6 = `drop_strict` (→ [`Verdict::Drop`]), and alerts 4 = `alert_established`,
//!   8 = `alert_strict`, reported through `alert_rule_index` (a synthetic entry of
//!   [`CompiledPolicy::rules`]) when no alert rule matched. Without a drop default the flow
//!   passes with sid 0.
//! * `reject` rules give [`Verdict::Reject`] (the worker answers TCP with a RST, drops others).
//!
//! [`Verdict::DropEstablished`]: crate::packet::Verdict::DropEstablished
//! [`Verdict::Drop`]: crate::packet::Verdict::Drop
//! [`Verdict::Reject`]: crate::packet::Verdict::Reject

pub mod aws;
pub mod aws_file;
mod classifier;
mod compiled;
mod error;
mod file;
mod model;
pub mod reference;
mod sets;
mod suricata;

use std::path::Path;

pub use compiled::CompiledPolicy;
pub use error::{PolicyError, PolicyErrorKind};
pub use model::{
    DefaultAction, Origin, Policy, ProtoSet, RuleAction, RuleGroup, RuleOrder, StatefulDefaults,
    StatefulRule, StatelessAction, StatelessRule, StreamException, TcpFlagMatch,
    DEFAULT_RULE_PRIORITY,
};
pub use sets::SetExpr;

use crate::packet::Verdict;

/// `rule_index` of a decision that no rule made.
pub const NO_RULE: u32 = u32::MAX;

/// The stateful engine's decision for one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatefulDecision {
    pub verdict: Verdict,
    /// The deciding rule's sid; for default actions AWS's system sid; 0 for the implicit pass.
    pub sid: u32,
    /// Index into [`CompiledPolicy::rules`]; [`NO_RULE`] for default actions and the implicit pass.
    pub rule_index: u32,
    /// First alert rule that matched, or the alert default's synthetic entry; [`NO_RULE`] if none.
    pub alert_rule_index: u32,
    /// Decided by a stateful default action or the implicit pass.
    pub from_default: bool,
}

/// What the logs and metrics need to know about a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub sid: u32,
    pub rev: u32,
    pub action: RuleAction,
    pub msg: String,
    /// Rule group name (`aws:default` for default actions).
    pub group: String,
}

/// Reads a policy (TOML and the `.rules` files it references, or an AWS-shaped `.json` /
/// `.yaml` / `.yml` file) and validates it.
pub fn load_policy(path: &Path) -> Result<Policy, PolicyError> {
    load_policy_with(path, &mut |p: &Path| std::fs::read_to_string(p))
}

/// [`load_policy`] with every file (the TOML, then each `.rules` file) read through `read`:
/// the management side records what it read, to keep a copy of the last validated policy,
/// and loads that copy the same way.
pub fn load_policy_with(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> std::io::Result<String>,
) -> Result<Policy, PolicyError> {
    let text = read(path).map_err(|e| PolicyError::new(path, None, None, e.into()))?;
    if aws_file::is_aws_file(path) {
        return aws_file::policy_from_aws_text(&text, path);
    }
    file::policy_from_toml(&text, path, read)
}

impl Policy {
    /// Parses a policy from TOML text; `file` names it in errors and its directory is the base
    /// for `rules_file` paths.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Policy, PolicyError> {
        file::policy_from_toml(text, file, &mut |p: &Path| std::fs::read_to_string(p))
    }
}

#[cfg(test)]
mod aws_tests;
#[cfg(test)]
mod tests;
