//! [`PolicyError`]: what is wrong with a policy and exactly where (file, line, sid), so an
//! operator can fix a rejected reload without guessing.

use std::fmt;
use std::path::{Path, PathBuf};

/// A policy that cannot be loaded. Displays as `<file>:<line>: sid <N>: <what>`, leaving out
/// the line and the sid when they are not known.
#[derive(Debug, thiserror::Error)]
#[error("{place}{kind}")]
pub struct PolicyError {
    place: Place,
    kind: PolicyErrorKind,
}

#[derive(Debug)]
struct Place {
    file: PathBuf,
    line: Option<u32>,
    sid: Option<u32>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(sid) = self.sid {
            write!(f, ": sid {sid}")?;
        }
        f.write_str(": ")
    }
}

impl PolicyError {
    pub(crate) fn new(
        file: &Path,
        line: Option<u32>,
        sid: Option<u32>,
        kind: PolicyErrorKind,
    ) -> Self {
        PolicyError {
            place: Place {
                file: file.to_path_buf(),
                line,
                sid,
            },
            kind,
        }
    }
    /// The file the problem is in (the policy TOML or a `.rules` file).
    pub fn file(&self) -> &Path {
        &self.place.file
    }
    /// 1-based line, when known.
    pub fn line(&self) -> Option<u32> {
        self.place.line
    }
    /// The sid of the offending rule, when known.
    pub fn sid(&self) -> Option<u32> {
        self.place.sid
    }
    /// What is wrong, without the place.
    pub fn kind(&self) -> &PolicyErrorKind {
        &self.kind
    }
}

/// What is wrong with a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyErrorKind {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("TOML: {0}")]
    Toml(String),
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("duplicate sid (first defined at {first})")]
    DuplicateSid { first: String },
    #[error("missing sid")]
    MissingSid,
    #[error("unsupported rule option '{0}'")]
    UnsupportedOption(String),
    #[error("unsupported protocol '{0}' (L3/L4 engine)")]
    UnsupportedProtocol(String),
    #[error("unknown protocol '{0}'")]
    UnknownProtocol(String),
    #[error("unknown action '{0}' (expected pass, drop, reject or alert)")]
    UnknownAction(String),
    #[error("bad direction '{0}' (expected '->' or '<>')")]
    BadDirection(String),
    #[error("bad value '{value}' for option '{option}': {why}")]
    BadOptionValue {
        option: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("unsupported flow option '{0}' (rules are judged once per flow, on its first packet)")]
    UnsupportedFlowOption(String),
    #[error("rule option 'priority' is not allowed under strict_order")]
    PriorityInStrictOrder,
    #[error("unknown variable '${0}'")]
    UnknownVariable(String),
    #[error("variable '${0}' refers to itself")]
    VariableCycle(String),
    #[error("in variable '${name}': {inner}")]
    InVariable {
        name: String,
        inner: Box<PolicyErrorKind>,
    },
    #[error("bad address '{text}': {why}")]
    BadAddress { text: String, why: &'static str },
    #[error("bad port '{text}': {why}")]
    BadPort { text: String, why: &'static str },
    #[error("{field} '{text}' matches nothing")]
    MatchesNothing { field: &'static str, text: String },
    #[error("ports must be 'any' for protocol '{0}'")]
    PortsNeedPortProtocol(String),
    #[error("stateful default_actions require rule_order = \"strict_order\"")]
    DefaultActionsNeedStrictOrder,
    #[error("more than one {kind} default action ({first} and {second})")]
    MultipleDefaults {
        kind: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("cannot read rules_file '{path}': {source}")]
    RulesFile {
        path: String,
        source: std::io::Error,
    },
    #[error("default action '{0}' listed twice")]
    DuplicateDefaultAction(&'static str),
    #[error("tcp_idle_timeout_seconds {0} is outside 60..=6000")]
    TcpIdleTimeout(u32),
    #[error("priority {0} is outside 1..=65535")]
    PriorityRange(u32),
    #[error("duplicate stateless rule priority {0}")]
    DuplicateStatelessPriority(u32),
    #[error("duplicate rule group {what} {value}")]
    DuplicateGroup { what: &'static str, value: String },
    #[error("rule group '{0}' needs a priority under strict_order")]
    GroupPriorityMissing(String),
    #[error("rule group '{0}' needs exactly one of rules_file or rules")]
    RulesSource(String),
    #[error("{0} require protocols limited to 6 (TCP) and/or 17 (UDP)")]
    PortsNeedTcpUdp(&'static str),
    #[error("unknown TCP flag '{0}' (expected FIN, SYN, RST, PSH, ACK, URG, ECE or CWR)")]
    UnknownTcpFlag(String),
    #[error("tcp_flags require protocols = [6]")]
    TcpFlagsNeedTcp,
    #[error("tcp_flags: flags {0:?} are not all in masks")]
    FlagsNotInMasks(Vec<String>),
    /// A problem in an AWS-shaped policy or rule group; the place names the member.
    #[error("{0}")]
    Aws(String),
}
