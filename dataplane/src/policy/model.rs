//! The parsed, validated policy ([`Policy`]): stateless rules, stateful rules in file order
//! with their resolved match expressions, and the engine options. Both the compiled matcher
//! and the reference evaluator read this model.

use std::path::PathBuf;

use serde::Deserialize;

use super::sets::SetExpr;
use crate::packet::tcp_flags;

/// What a stateless rule or default does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatelessAction {
    #[serde(alias = "aws:pass")]
    Pass,
    #[serde(alias = "aws:drop")]
    Drop,
    /// Hand the packet to the stateful engine.
    #[serde(alias = "aws:forward_to_sfe")]
    ForwardToSfe,
}

/// What happens to a midstream packet (no flow state for it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamException {
    #[default]
    Drop,
    Continue,
    Reject,
}

impl StreamException {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamException::Drop => "drop",
            StreamException::Continue => "continue",
            StreamException::Reject => "reject",
        }
    }
}

/// How stateful rules are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOrder {
    /// Suricata action order: pass, drop, reject, alert; `priority` then file order inside.
    #[default]
    DefaultActionOrder,
    /// Groups by priority, rules in file order; stateful default actions apply.
    StrictOrder,
}

impl RuleOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOrder::DefaultActionOrder => "default_action_order",
            RuleOrder::StrictOrder => "strict_order",
        }
    }
}

/// A stateful rule's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleAction {
    Pass,
    Drop,
    Reject,
    Alert,
}

impl RuleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Pass => "pass",
            RuleAction::Drop => "drop",
            RuleAction::Reject => "reject",
            RuleAction::Alert => "alert",
        }
    }
}

/// A stateful default action (strict_order only), with AWS's system signature ids.
///
/// AWS documents sids 2, 4, 6 and 8 for its default actions and confirms only
/// 4 = `aws:alert_established`; Flowgate uses 2 = `aws:drop_established`,
/// 4 = `aws:alert_established`, 6 = `aws:drop_strict`, 8 = `aws:alert_strict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    #[serde(alias = "aws:drop_strict")]
    DropStrict,
    #[serde(alias = "aws:drop_established")]
    DropEstablished,
    #[serde(alias = "aws:alert_strict")]
    AlertStrict,
    #[serde(alias = "aws:alert_established")]
    AlertEstablished,
}

impl DefaultAction {
    pub fn sid(self) -> u32 {
        match self {
            DefaultAction::DropEstablished => 2,
            DefaultAction::AlertEstablished => 4,
            DefaultAction::DropStrict => 6,
            DefaultAction::AlertStrict => 8,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultAction::DropStrict => "drop_strict",
            DefaultAction::DropEstablished => "drop_established",
            DefaultAction::AlertStrict => "alert_strict",
            DefaultAction::AlertEstablished => "alert_established",
        }
    }
    pub fn is_drop(self) -> bool {
        matches!(
            self,
            DefaultAction::DropStrict | DefaultAction::DropEstablished
        )
    }
}

/// The stateful default actions in force (validated: at most one drop, strict_order only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatefulDefaults {
    pub drop: Option<DefaultAction>,
    pub alert: Option<DefaultAction>,
}

/// A set of IANA protocol numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtoSet([u64; 4]);

impl ProtoSet {
    pub const ANY: ProtoSet = ProtoSet([u64::MAX; 4]);
    pub const NONE: ProtoSet = ProtoSet([0; 4]);

    pub fn of(protos: &[u8]) -> ProtoSet {
        let mut s = ProtoSet::NONE;
        for &p in protos {
            s.insert(p);
        }
        s
    }
    pub fn insert(&mut self, p: u8) {
        if let Some(w) = self.0.get_mut(usize::from(p >> 6)) {
            *w |= 1 << (p & 63);
        }
    }
    pub fn contains(&self, p: u8) -> bool {
        self.0
            .get(usize::from(p >> 6))
            .is_some_and(|w| w & (1 << (p & 63)) != 0)
    }
    pub fn is_any(&self) -> bool {
        *self == ProtoSet::ANY
    }
    /// True when every member is in `allowed`.
    pub fn subset_of(&self, allowed: &ProtoSet) -> bool {
        self.0
            .iter()
            .zip(allowed.0.iter())
            .all(|(a, b)| a & !b == 0)
    }
}

/// One `{ flags, masks }` TCP flag condition (AWS `TCPFlagField`): among the masked flags,
/// those in `flags` must be set and the others clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlagMatch {
    pub flags: u8,
    pub masks: u8,
}

impl TcpFlagMatch {
    #[inline]
    pub fn matches(&self, packet_flags: u8) -> bool {
        packet_flags & self.masks == self.flags
    }
}

/// Names of the TCP flags as AWS spells them.
pub const TCP_FLAG_NAMES: [(&str, u8); 8] = [
    ("FIN", tcp_flags::FIN),
    ("SYN", tcp_flags::SYN),
    ("RST", tcp_flags::RST),
    ("PSH", tcp_flags::PSH),
    ("ACK", tcp_flags::ACK),
    ("URG", tcp_flags::URG),
    ("ECE", tcp_flags::ECE),
    ("CWR", tcp_flags::CWR),
];

/// A stateless rule. Empty lists in the file mean "any"; here they are already [`SetExpr::Any`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatelessRule {
    pub priority: u32,
    pub action: StatelessAction,
    pub protocols: ProtoSet,
    pub sources: SetExpr,
    pub destinations: SetExpr,
    pub source_ports: SetExpr,
    pub destination_ports: SetExpr,
    /// OR of the conditions; empty = no flag condition (else the rule is TCP-only).
    pub tcp_flags: Vec<TcpFlagMatch>,
}

impl StatelessRule {
    /// Whether the rule constrains ports (such rules never match a later fragment).
    pub fn has_ports(&self) -> bool {
        !self.source_ports.is_any() || !self.destination_ports.is_any()
    }
}

/// Where a rule was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: u32,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Suricata's priority for rules without a `priority` keyword (`DETECT_DEFAULT_PRIO`).
pub const DEFAULT_RULE_PRIORITY: u8 = 3;

/// A stateful 5-tuple rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulRule {
    pub action: RuleAction,
    pub protocols: ProtoSet,
    /// The protocol as written (`tcp`, `ip`, …), for logs.
    pub protocol_name: String,
    pub src: SetExpr,
    pub src_ports: SetExpr,
    pub dst: SetExpr,
    pub dst_ports: SetExpr,
    /// `<>`: also matches with source and destination swapped.
    pub bidirectional: bool,
    pub sid: u32,
    pub rev: u32,
    /// The `priority` keyword (1–255), [`DEFAULT_RULE_PRIORITY`] when absent.
    pub priority: u8,
    pub msg: String,
    /// Index into [`Policy::groups`].
    pub group: usize,
    pub origin: Origin,
}

/// A stateful rule group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleGroup {
    pub name: String,
    /// Order among groups under strict_order (unique there); 0 when not given.
    pub priority: u32,
}

/// A validated policy, before compilation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub stateless_default: StatelessAction,
    /// For UDP fragments; non-UDP fragments are always dropped (AWS behaviour).
    pub stateless_fragment_default: StatelessAction,
    /// In file order (evaluation goes by `priority`, lowest first).
    pub stateless_rules: Vec<StatelessRule>,
    pub rule_order: RuleOrder,
    pub stream_exception: StreamException,
    pub defaults: StatefulDefaults,
    pub tcp_idle_timeout_secs: Option<u32>,
    /// In file order.
    pub groups: Vec<RuleGroup>,
    /// In file order: groups as listed, rules as written. A rule's index here is its
    /// `rule_index` everywhere.
    pub rules: Vec<StatefulRule>,
}

impl Policy {
    /// Number of stateful rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

impl Policy {
    /// `rule_index` of the synthetic entry for the alert default action (after the real rules
    /// and the drop default), or `NO_RULE` when there is none.
    pub fn alert_default_index(&self) -> u32 {
        match self.defaults.alert {
            Some(_) => u32::try_from(self.rules.len() + usize::from(self.defaults.drop.is_some()))
                .unwrap_or(u32::MAX),
            None => u32::MAX,
        }
    }
}
