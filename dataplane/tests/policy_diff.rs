//! Differential test: the compiled policy (bit-vector classifier) must agree with the naive
//! reference evaluator on every stateless action and every stateful decision, for random
//! policies over small address/port universes (so rules overlap and match often) with
//! lists, negations, ranges, variables, `<>`, every action, both rule orders and every
//! default-action combination.

use std::path::Path;

use dataplane::packet::{ip_to_addr, Fragment, PacketMeta, Tuple};
use dataplane::policy::{reference, CompiledPolicy, Policy, StatefulDecision, NO_RULE};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const PORTS: &[u16] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 80, 443, 65535];
const PROTOS: &[u8] = &[1, 6, 17, 47, 58, 132];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

fn negated_list(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        inner.clone().prop_map(|e| format!("!{e}")),
        prop::collection::vec((prop::bool::weighted(0.3), inner), 1..4).prop_map(|items| {
            let items: Vec<String> = items
                .into_iter()
                .map(|(neg, e)| if neg { format!("!{e}") } else { e })
                .collect();
            format!("[{}]", items.join(", "))
        }),
    ]
    .boxed()
}

fn addr_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just("any".to_string()),
        3 => (0u8..16).prop_map(|k| format!("10.0.0.{k}")),
        3 => (0u8..16, 28u8..=32).prop_map(|(k, n)| format!("10.0.0.{k}/{n}")),
        3 => (0u8..16, 124u8..=128).prop_map(|(k, n)| format!("2001:2::{k:x}/{n}")),
        1 => Just("::/0".to_string()),
        1 => Just("0.0.0.0/0".to_string()),
        1 => Just("$HOME_NET".to_string()),
        1 => Just("$EXTERNAL_NET".to_string()),
    ]
}

fn addr_expr() -> impl Strategy<Value = String> {
    addr_leaf().prop_recursive(2, 8, 3, |inner| negated_list(inner.boxed()))
}

fn port_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("any".to_string()),
        3 => pick(PORTS).prop_map(|p| p.to_string()),
        3 => (pick(PORTS), pick(PORTS)).prop_map(|(a, b)| format!("{}:{}", a.min(b), a.max(b))),
        1 => pick(PORTS).prop_map(|p| format!("{p}:")),
        1 => pick(PORTS).prop_map(|p| format!(":{p}")),
        1 => Just("$P".to_string()),
    ]
}

fn port_expr() -> impl Strategy<Value = String> {
    port_leaf().prop_recursive(2, 8, 3, |inner| negated_list(inner.boxed()))
}

#[derive(Clone, Debug)]
struct RuleSpec {
    action: &'static str,
    protocol: &'static str,
    src: String,
    sport: String,
    bidirectional: bool,
    dst: String,
    dport: String,
    priority: Option<u8>,
    group: usize,
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    (
        pick(&["pass", "drop", "reject", "alert"]),
        pick(&["tcp", "udp", "sctp", "icmp", "icmpv6", "ip"]),
        (
            addr_expr(),
            port_expr(),
            any::<bool>(),
            addr_expr(),
            port_expr(),
        ),
        prop::option::weighted(0.5, 1u8..5),
        0usize..3,
    )
        .prop_map(
            |(action, protocol, (src, sport, bidirectional, dst, dport), priority, group)| {
                let ported = matches!(protocol, "tcp" | "udp" | "sctp");
                RuleSpec {
                    action,
                    protocol,
                    src,
                    sport: if ported { sport } else { "any".into() },
                    bidirectional,
                    dst,
                    dport: if ported { dport } else { "any".into() },
                    priority,
                    group,
                }
            },
        )
}

#[derive(Clone, Debug)]
struct StatelessSpec {
    action: &'static str,
    sources: Vec<String>,
    destinations: Vec<String>,
    source_ports: Vec<String>,
    destination_ports: Vec<String>,
    protocols: Vec<u8>,
    tcp_flags: Vec<(u8, u8)>,
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..16, 28u8..=32).prop_map(|(k, n)| format!("10.0.0.{k}/{n}")),
        (0u8..16, 124u8..=128).prop_map(|(k, n)| format!("2001:2::{k:x}/{n}")),
    ]
}

fn port_range() -> impl Strategy<Value = String> {
    (pick(PORTS), pick(PORTS)).prop_map(|(a, b)| format!("{}:{}", a.min(b), a.max(b)))
}

fn stateless_rule() -> impl Strategy<Value = StatelessSpec> {
    let cidrs = || prop::collection::vec(cidr(), 0..3);
    let ports = || prop::collection::vec(port_range(), 0..3);
    let flags = prop::collection::vec(
        (any::<u8>(), any::<u8>()).prop_map(|(f, m)| (f & m, m)),
        0..3,
    );
    (
        pick(&["pass", "drop", "forward_to_sfe"]),
        (cidrs(), cidrs()),
        (ports(), ports()),
        prop::collection::vec(pick(PROTOS), 0..3),
        flags,
        0u8..3,
    )
        .prop_map(
            |(action, (sources, destinations), (sp, dp), protocols, flags, kind)| {
                // kind 0: no ports/flags, any protocols; 1: ports over TCP/UDP; 2: TCP flags (+ports).
                let (source_ports, destination_ports, protocols, tcp_flags) = match kind {
                    0 => (vec![], vec![], protocols, vec![]),
                    1 => (
                        sp,
                        dp,
                        if protocols.contains(&17) {
                            vec![6, 17]
                        } else {
                            vec![17]
                        },
                        vec![],
                    ),
                    _ => (sp, dp, vec![6], flags),
                };
                StatelessSpec {
                    action,
                    sources,
                    destinations,
                    source_ports,
                    destination_ports,
                    protocols,
                    tcp_flags,
                }
            },
        )
}

#[derive(Clone, Debug)]
struct PolicySpec {
    strict: bool,
    drop_default: Option<&'static str>,
    alert_default: Option<&'static str>,
    home_net: Vec<String>,
    port_var: String,
    group_priorities: Vec<u32>,
    rules: Vec<RuleSpec>,
    stateless_default: &'static str,
    fragment_default: &'static str,
    stateless: Vec<StatelessSpec>,
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    (
        any::<bool>(),
        prop::option::of(pick(&["drop_strict", "drop_established"])),
        prop::option::of(pick(&["alert_strict", "alert_established"])),
        prop::collection::vec(cidr(), 1..3),
        port_range(),
        Just(vec![30u32, 10, 20]).prop_shuffle(),
        prop::collection::vec(rule(), 0..100),
        (
            pick(&["pass", "drop", "forward_to_sfe"]),
            pick(&["pass", "drop", "forward_to_sfe"]),
        ),
        prop::collection::vec(stateless_rule(), 0..12),
    )
        .prop_map(
            |(
                strict,
                drop_default,
                alert_default,
                home_net,
                port_var,
                group_priorities,
                rules,
                defaults,
                stateless,
            )| {
                PolicySpec {
                    strict,
                    drop_default,
                    alert_default,
                    home_net,
                    port_var,
                    group_priorities,
                    rules,
                    stateless_default: defaults.0,
                    fragment_default: defaults.1,
                    stateless,
                }
            },
        )
}

fn quoted(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn flag_names(bits: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let names: Vec<String> = (0..8)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| NAMES[b].to_string())
        .collect();
    quoted(&names)
}

fn header(spec: &PolicySpec) -> String {
    let mut t = format!(
        "[variables]\nHOME_NET = {}\n[port_variables]\nP = \"{}\"\n[stateless]\ndefault_action = \"{}\"\n\
         fragment_default_action = \"{}\"\n",
        quoted(&spec.home_net),
        spec.port_var,
        spec.stateless_default,
        spec.fragment_default
    );
    for (i, r) in spec.stateless.iter().enumerate() {
        let flags: Vec<String> = r
            .tcp_flags
            .iter()
            .map(|(f, m)| {
                format!(
                    "{{ flags = {}, masks = {} }}",
                    flag_names(*f),
                    flag_names(*m)
                )
            })
            .collect();
        t += &format!(
            "[[stateless.rules]]\npriority = {}\naction = \"{}\"\nsources = {}\ndestinations = {}\n\
             source_ports = {}\ndestination_ports = {}\nprotocols = {:?}\ntcp_flags = [{}]\n",
            // Distinct priorities whose order differs from file order.
            (i * 7919) % 1000 + 1,
            r.action,
            quoted(&r.sources),
            quoted(&r.destinations),
            quoted(&r.source_ports),
            quoted(&r.destination_ports),
            r.protocols,
            flags.join(", ")
        );
    }
    let order = if spec.strict {
        "strict_order"
    } else {
        "default_action_order"
    };
    let defaults: Vec<String> = if spec.strict {
        spec.drop_default
            .iter()
            .chain(spec.alert_default.iter())
            .map(|s| s.to_string())
            .collect()
    } else {
        vec![]
    };
    t += &format!(
        "[stateful]\nrule_order = \"{order}\"\ndefault_actions = {}\n",
        quoted(&defaults)
    );
    t
}

fn rule_table(r: &RuleSpec, sid: usize, strict: bool) -> String {
    let prio = match r.priority {
        Some(p) if !strict => format!(", priority = {p}"),
        _ => String::new(),
    };
    format!(
        "  {{ action = \"{}\", protocol = \"{}\", source = \"{}\", source_port = \"{}\", direction = \"{}\", \
         destination = \"{}\", destination_port = \"{}\", sid = {sid}{prio} }},\n",
        r.action,
        r.protocol,
        r.src,
        r.sport,
        if r.bidirectional { "any" } else { "forward" },
        r.dst,
        r.dport
    )
}

fn groups(spec: &PolicySpec, rules: &[(usize, &RuleSpec)]) -> String {
    let mut t = String::new();
    for (g, prio) in spec.group_priorities.iter().enumerate() {
        t += &format!("[[stateful.rule_groups]]\nname = \"g{g}\"\npriority = {prio}\nrules = [\n");
        for (sid, r) in rules.iter().filter(|(_, r)| r.group == g) {
            t += &rule_table(r, *sid, spec.strict);
        }
        t += "]\n";
    }
    t
}

/// Builds the policy, keeping only rules that are valid on their own (a random expression can
/// legitimately match nothing, which the loader rejects).
fn build(spec: &PolicySpec) -> Policy {
    let file = Path::new("diff.toml");
    let head = header(spec);
    let valid: Vec<(usize, &RuleSpec)> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (i + 1, r))
        .filter(|(sid, r)| {
            let one = format!("{head}{}", groups(spec, &[(*sid, *r)]));
            Policy::from_toml_str(&one, file).is_ok()
        })
        .collect();
    let text = format!("{head}{}", groups(spec, &valid));
    Policy::from_toml_str(&text, file).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn addr() -> impl Strategy<Value = u128> {
    prop_oneof![
        (0u8..18).prop_map(|k| ip_to_addr(format!("10.0.0.{k}").parse().unwrap())),
        (0u8..18).prop_map(|k| ip_to_addr(format!("2001:2::{k:x}").parse().unwrap())),
        Just(ip_to_addr("192.0.2.1".parse().unwrap())),
        Just(ip_to_addr("2001:db8::1".parse().unwrap())),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![pick(PORTS), any::<u16>()]
}

fn tuple() -> impl Strategy<Value = (Tuple, bool)> {
    (pick(PROTOS), addr(), addr(), port(), port(), any::<bool>()).prop_map(
        |(proto, src, dst, sp, dp, mid)| {
            (
                Tuple {
                    proto,
                    src,
                    dst,
                    src_port: sp,
                    dst_port: dp,
                },
                mid,
            )
        },
    )
}

fn packet() -> impl Strategy<Value = PacketMeta> {
    (
        tuple(),
        any::<u8>(),
        pick(&[
            Fragment::None,
            Fragment::None,
            Fragment::First,
            Fragment::Later,
        ]),
    )
        .prop_map(|((t, _), tcp_flags, fragment)| {
            let (src_port, dst_port) = if fragment == Fragment::Later {
                (0, 0)
            } else {
                (t.src_port, t.dst_port)
            };
            PacketMeta {
                proto: t.proto,
                src: t.src,
                dst: t.dst,
                src_port,
                dst_port,
                tcp_flags,
                fragment,
                ..PacketMeta::default()
            }
        })
}

fn check(
    spec: &PolicySpec,
    tuples: &[(Tuple, bool)],
    packets: &[PacketMeta],
) -> Result<usize, TestCaseError> {
    let p = build(spec);
    let c = CompiledPolicy::compile(&p, 1);
    let mut by_rule = 0;
    for (t, mid) in tuples {
        let got: StatefulDecision = c.stateful(t, *mid);
        prop_assert_eq!(
            got,
            reference::stateful(&p, t, *mid),
            "tuple {:?} midstream {}",
            t,
            mid
        );
        if got.rule_index != NO_RULE {
            prop_assert!(c
                .rules()
                .get(got.rule_index as usize)
                .is_some_and(|r| r.sid == got.sid));
            by_rule += 1;
        }
    }
    for m in packets {
        prop_assert_eq!(
            c.stateless(m),
            reference::stateless(&p, m),
            "packet {:?}",
            m
        );
    }
    Ok(by_rule)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn compiled_agrees_with_reference(
        spec in policy_spec(),
        tuples in prop::collection::vec(tuple(), 64),
        packets in prop::collection::vec(packet(), 64),
    ) {
        check(&spec, &tuples, &packets)?;
    }
}

/// Guards the generator itself: the universes must be small enough that rules really match,
/// or the differential test above would only ever compare two "no match" answers.
#[test]
fn generated_policies_match_often() {
    let mut runner = TestRunner::deterministic();
    let strategy = (policy_spec(), prop::collection::vec(tuple(), 64));
    let (mut decided, mut total) = (0, 0);
    for _ in 0..40 {
        let (spec, tuples) = strategy.new_tree(&mut runner).unwrap().current();
        decided += check(&spec, &tuples, &[]).unwrap();
        total += tuples.len();
    }
    assert!(
        decided * 4 > total,
        "only {decided} of {total} tuples were decided by a rule"
    );
}
