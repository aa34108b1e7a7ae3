//! The naive reference evaluator: the policy semantics written as directly as possible, with
//! no compilation and no shared ordering code, as the oracle for the differential tests of
//! [`super::CompiledPolicy`]. Linear in the number of rules; never use it on the packet path.

use super::model::{
    DefaultAction, Policy, RuleAction, RuleOrder, StatefulRule, StatelessAction, StatelessRule,
};
use super::{StatefulDecision, NO_RULE};
use crate::packet::{proto, Fragment, PacketMeta, Tuple, Verdict};

fn stateless_matches(r: &StatelessRule, m: &PacketMeta) -> bool {
    let ports = if m.fragment == Fragment::Later {
        !r.has_ports()
    } else {
        r.source_ports.contains(m.src_port.into())
            && r.destination_ports.contains(m.dst_port.into())
    };
    r.protocols.contains(m.proto)
        && r.sources.contains(m.src)
        && r.destinations.contains(m.dst)
        && ports
        && (r.tcp_flags.is_empty() || r.tcp_flags.iter().any(|f| m.tcp_flags & f.masks == f.flags))
}

/// Stateless action: lowest-priority matching rule, else the (fragment) default.
pub fn stateless(p: &Policy, m: &PacketMeta) -> StatelessAction {
    let fragment = m.fragment != Fragment::None;
    if fragment && m.proto != proto::UDP {
        return StatelessAction::Drop;
    }
    match p
        .stateless_rules
        .iter()
        .filter(|r| stateless_matches(r, m))
        .min_by_key(|r| r.priority)
    {
        Some(r) => r.action,
        None if fragment => p.stateless_fragment_default,
        None => p.stateless_default,
    }
}

fn one_way(r: &StatefulRule, t: &Tuple) -> bool {
    r.src.contains(t.src)
        && r.src_ports.contains(t.src_port.into())
        && r.dst.contains(t.dst)
        && r.dst_ports.contains(t.dst_port.into())
}

fn rule_matches(r: &StatefulRule, t: &Tuple) -> bool {
    r.protocols.contains(t.proto)
        && (one_way(r, t) || (r.bidirectional && one_way(r, &t.reversed())))
}

fn decided(p: &Policy, i: usize, alert: u32) -> StatefulDecision {
    let r = &p.rules[i];
    let verdict = match r.action {
        RuleAction::Pass | RuleAction::Alert => Verdict::Pass,
        RuleAction::Drop => Verdict::Drop,
        RuleAction::Reject => Verdict::Reject,
    };
    let index = i as u32;
    let alert = if r.action == RuleAction::Alert {
        index
    } else {
        alert
    };
    StatefulDecision {
        verdict,
        sid: r.sid,
        rule_index: index,
        alert_rule_index: alert,
        from_default: false,
    }
}

/// Stateful decision for a flow (tuple in the opener direction).
pub fn stateful(p: &Policy, t: &Tuple, midstream: bool) -> StatefulDecision {
    let matching = || {
        p.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| rule_matches(r, t))
    };
    let mut alert = NO_RULE;
    match p.rule_order {
        RuleOrder::DefaultActionOrder => {
            for class in [
                RuleAction::Pass,
                RuleAction::Drop,
                RuleAction::Reject,
                RuleAction::Alert,
            ] {
                let best = matching()
                    .filter(|(_, r)| r.action == class)
                    .min_by_key(|(i, r)| (r.priority, *i));
                if let Some((i, _)) = best {
                    return decided(p, i, NO_RULE);
                }
            }
        }
        RuleOrder::StrictOrder => {
            let mut hits: Vec<usize> = matching().map(|(i, _)| i).collect();
            hits.sort_by_key(|&i| (p.groups[p.rules[i].group].priority, i));
            for i in hits {
                if p.rules[i].action == RuleAction::Alert {
                    if alert == NO_RULE {
                        alert = i as u32;
                    }
                } else {
                    return decided(p, i, alert);
                }
            }
        }
    }
    let (verdict, sid) = match p.defaults.drop {
        Some(DefaultAction::DropStrict) => (Verdict::Drop, 6),
        Some(_) if midstream => (Verdict::Drop, 2),
        Some(_) => (Verdict::DropEstablished, 2),
        None => (Verdict::Pass, 0),
    };
    if alert == NO_RULE {
        alert = p.alert_default_index();
    }
    StatefulDecision {
        verdict,
        sid,
        rule_index: NO_RULE,
        alert_rule_index: alert,
        from_default: true,
    }
}
