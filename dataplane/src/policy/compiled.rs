//! [`CompiledPolicy`]: the immutable, lock-free form of a [`Policy`] that workers read through
//! an `Arc`. Built on the management thread; every method a worker calls is allocation-free,
//! panic-free and bounded by the classifier's bitset width.

use super::classifier::{Classifier, EntrySets};
use super::model::{
    DefaultAction, Policy, RuleAction, RuleOrder, StatefulDefaults, StatelessAction,
    StreamException, TcpFlagMatch,
};
use super::sets::{RangeSet, SetExpr, ADDR_MAX, PORT_MAX};
use super::{RuleInfo, StatefulDecision, NO_RULE};
use crate::packet::{proto, Fragment, PacketMeta, Tuple, Verdict};

/// One directed stateful entry (a `<>` rule has two, adjacent).
#[derive(Clone, Copy, Debug)]
struct Entry {
    rule: u32,
    sid: u32,
    action: RuleAction,
}

/// One stateless rule in priority order.
#[derive(Clone, Copy, Debug)]
struct StatelessEntry {
    action: StatelessAction,
    has_ports: bool,
    /// Range into `CompiledPolicy::tcp_flags`; empty = no flag condition.
    flags_start: u32,
    flags_len: u32,
}

/// The compiled policy. `Send + Sync`, never mutated after [`CompiledPolicy::compile`].
#[derive(Debug)]
pub struct CompiledPolicy {
    epoch: u32,
    order: RuleOrder,
    stream_exception: StreamException,
    tcp_idle_timeout_secs: Option<u32>,
    stateless_default: StatelessAction,
    fragment_default: StatelessAction,
    stateless: Classifier,
    stateless_entries: Vec<StatelessEntry>,
    tcp_flags: Vec<TcpFlagMatch>,
    stateful: Classifier,
    entries: Vec<Entry>,
    defaults: StatefulDefaults,
    alert_default_index: u32,
    rules: Vec<RuleInfo>,
    real_rules: usize,
}

fn verdict_of(action: RuleAction) -> Verdict {
    match action {
        RuleAction::Pass | RuleAction::Alert => Verdict::Pass,
        RuleAction::Drop => Verdict::Drop,
        RuleAction::Reject => Verdict::Reject,
    }
}

/// Rank of an action under default_action_order.
fn action_rank(a: RuleAction) -> u8 {
    match a {
        RuleAction::Pass => 0,
        RuleAction::Drop => 1,
        RuleAction::Reject => 2,
        RuleAction::Alert => 3,
    }
}

fn addr(e: &SetExpr) -> RangeSet {
    e.to_ranges(ADDR_MAX)
}

fn port(e: &SetExpr) -> RangeSet {
    e.to_ranges(PORT_MAX)
}

fn protos(set: &super::model::ProtoSet) -> RangeSet {
    RangeSet::from_ranges(
        (0..=255u8)
            .filter(|&p| set.contains(p))
            .map(|p| (u128::from(p), u128::from(p)))
            .collect(),
    )
}

fn idx(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NO_RULE)
}

impl CompiledPolicy {
    /// Compiles `p`; `epoch` identifies it in flow entries and logs.
    pub fn compile(p: &Policy, epoch: u32) -> CompiledPolicy {
        // Stateless: by priority (unique), lowest first.
        let mut sl: Vec<&super::model::StatelessRule> = p.stateless_rules.iter().collect();
        sl.sort_by_key(|r| r.priority);
        let mut tcp_flags = Vec::new();
        let mut stateless_entries = Vec::with_capacity(sl.len());
        let mut stateless_sets = Vec::with_capacity(sl.len());
        for r in &sl {
            stateless_entries.push(StatelessEntry {
                action: r.action,
                has_ports: r.has_ports(),
                flags_start: idx(tcp_flags.len()),
                flags_len: idx(r.tcp_flags.len()),
            });
            tcp_flags.extend_from_slice(&r.tcp_flags);
            stateless_sets.push(EntrySets {
                protos: protos(&r.protocols),
                src: addr(&r.sources),
                dst: addr(&r.destinations),
                src_ports: port(&r.source_ports),
                dst_ports: port(&r.destination_ports),
            });
        }

        // Stateful: evaluation order, then one entry per direction.
        let mut order: Vec<usize> = (0..p.rules.len()).collect();
        match p.rule_order {
            RuleOrder::DefaultActionOrder => order.sort_by_key(|&i| {
                let r = &p.rules[i];
                (action_rank(r.action), r.priority, i)
            }),
            RuleOrder::StrictOrder => order
                .sort_by_key(|&i| (p.groups.get(p.rules[i].group).map_or(0, |g| g.priority), i)),
        }
        let mut entries = Vec::with_capacity(order.len());
        let mut sets = Vec::with_capacity(order.len());
        for &i in &order {
            let r = &p.rules[i];
            let (src, dst, sp, dp) = (
                addr(&r.src),
                addr(&r.dst),
                port(&r.src_ports),
                port(&r.dst_ports),
            );
            let entry = Entry {
                rule: idx(i),
                sid: r.sid,
                action: r.action,
            };
            if r.bidirectional {
                entries.push(entry);
                sets.push(EntrySets {
                    protos: protos(&r.protocols),
                    src: dst.clone(),
                    dst: src.clone(),
                    src_ports: dp.clone(),
                    dst_ports: sp.clone(),
                });
            }
            entries.push(entry);
            sets.push(EntrySets {
                protos: protos(&r.protocols),
                src,
                dst,
                src_ports: sp,
                dst_ports: dp,
            });
        }

        let mut rules: Vec<RuleInfo> = p
            .rules
            .iter()
            .map(|r| RuleInfo {
                sid: r.sid,
                rev: r.rev,
                action: r.action,
                msg: r.msg.clone(),
                group: p
                    .groups
                    .get(r.group)
                    .map(|g| g.name.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let synthetic = |d: DefaultAction, action| RuleInfo {
            sid: d.sid(),
            rev: 1,
            action,
            msg: format!("aws:{} action", d.as_str()),
            group: "aws:default".to_string(),
        };
        if let Some(d) = p.defaults.drop {
            rules.push(synthetic(d, RuleAction::Drop));
        }
        if let Some(d) = p.defaults.alert {
            rules.push(synthetic(d, RuleAction::Alert));
        }

        CompiledPolicy {
            epoch,
            order: p.rule_order,
            stream_exception: p.stream_exception,
            tcp_idle_timeout_secs: p.tcp_idle_timeout_secs,
            stateless_default: p.stateless_default,
            fragment_default: p.stateless_fragment_default,
            stateless: Classifier::new(&stateless_sets),
            stateless_entries,
            tcp_flags,
            stateful: Classifier::new(&sets),
            entries,
            defaults: p.defaults,
            alert_default_index: p.alert_default_index(),
            rules,
            real_rules: p.rules.len(),
        }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Sets the epoch before the policy is shared: the management side compiles first and
    /// numbers the policy when it goes into force.
    pub fn set_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
    }

    /// The stateless verdict for one packet. Non-UDP fragments are dropped (AWS); UDP
    /// fragments go through the rules (a later fragment never matches a rule with ports)
    /// and, unmatched, get the fragment default action.
    #[inline]
    pub fn stateless(&self, m: &PacketMeta) -> StatelessAction {
        let fragment = m.fragment != Fragment::None;
        if fragment && m.proto != proto::UDP {
            return StatelessAction::Drop;
        }
        if self.stateless_entries.is_empty() {
            return if fragment {
                self.fragment_default
            } else {
                self.stateless_default
            };
        }
        let later = m.fragment == Fragment::Later;
        let mut action = None;
        self.stateless
            .find(m.proto, m.src, m.dst, m.src_port, m.dst_port, |i| {
                let Some(e) = self.stateless_entries.get(i) else {
                    return false;
                };
                if later && e.has_ports {
                    return false;
                }
                if e.flags_len != 0 {
                    let start = e.flags_start as usize;
                    let conds = self
                        .tcp_flags
                        .get(start..start + e.flags_len as usize)
                        .unwrap_or(&[]);
                    if !conds.iter().any(|c| c.matches(m.tcp_flags)) {
                        return false;
                    }
                }
                action = Some(e.action);
                true
            });
        action.unwrap_or(if fragment {
            self.fragment_default
        } else {
            self.stateless_default
        })
    }

    /// The stateful verdict for a flow given its tuple in the opener direction. `midstream`:
    /// evaluated on a midstream packet under `continue` (no handshake context), where
    /// `drop_established` drops outright because the connection counts as established.
    #[inline]
    pub fn stateful(&self, t: &Tuple, midstream: bool) -> StatefulDecision {
        let strict = self.order == RuleOrder::StrictOrder;
        let mut alert = NO_RULE;
        let mut decided: Option<Entry> = None;
        self.stateful
            .find(t.proto, t.src, t.dst, t.src_port, t.dst_port, |i| {
                let Some(&e) = self.entries.get(i) else {
                    return false;
                };
                if strict && e.action == RuleAction::Alert {
                    if alert == NO_RULE {
                        alert = e.rule;
                    }
                    return false;
                }
                decided = Some(e);
                true
            });
        if let Some(e) = decided {
            if e.action == RuleAction::Alert {
                alert = e.rule;
            }
            return StatefulDecision {
                verdict: verdict_of(e.action),
                sid: e.sid,
                rule_index: e.rule,
                alert_rule_index: alert,
                from_default: false,
            };
        }
        if alert == NO_RULE {
            alert = self.alert_default_index;
        }
        let (verdict, sid) = match self.defaults.drop {
            Some(DefaultAction::DropEstablished) if !midstream => (Verdict::DropEstablished, 2),
            Some(d) => (Verdict::Drop, d.sid()),
            None => (Verdict::Pass, 0),
        };
        StatefulDecision {
            verdict,
            sid,
            rule_index: NO_RULE,
            alert_rule_index: alert,
            from_default: true,
        }
    }

    pub fn stream_exception(&self) -> StreamException {
        self.stream_exception
    }

    pub fn rule_order(&self) -> RuleOrder {
        self.order
    }

    /// Rule metadata indexed by `rule_index`: the policy's stateful rules in file order, then
    /// one synthetic entry per stateful default action (drop default first, then alert).
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    pub fn tcp_idle_timeout_secs(&self) -> Option<u32> {
        self.tcp_idle_timeout_secs
    }

    /// One line for logs: epoch, counts, order, stream exception policy.
    pub fn summary(&self) -> String {
        let real = self.rules.get(..self.real_rules).unwrap_or(&[]);
        let count = |a| real.iter().filter(|r| r.action == a).count();
        let mut defaults: Vec<&str> = Vec::new();
        defaults.extend(self.defaults.drop.map(DefaultAction::as_str));
        defaults.extend(self.defaults.alert.map(DefaultAction::as_str));
        format!(
            "policy epoch {}: {} stateful rules ({} pass, {} drop, {} reject, {} alert), {} stateless rules, \
             rule_order {}, stream_exception_policy {}, default_actions [{}], stateless default {:?}, \
             classes {:?}, classifier {} KiB",
            self.epoch,
            self.real_rules,
            count(RuleAction::Pass),
            count(RuleAction::Drop),
            count(RuleAction::Reject),
            count(RuleAction::Alert),
            self.stateless_entries.len(),
            self.order.as_str(),
            self.stream_exception.as_str(),
            defaults.join(", "),
            self.stateless_default,
            self.stateful.class_counts(),
            (self.stateful.stored_words() + self.stateless.stored_words()) * 8 / 1024,
        )
    }
}
