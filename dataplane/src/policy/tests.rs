//! Policy-level tests: the TOML file, validation errors with their exact text, and the
//! evaluation semantics, each checked on the compiled matcher and on the reference.

use std::path::{Path, PathBuf};

use super::*;
use crate::packet::{proto, tcp_flags, v4_to_addr, Fragment, PacketMeta, Tuple, Verdict};

fn policy(text: &str) -> Policy {
    Policy::from_toml_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> PolicyError {
    Policy::from_toml_str(text, Path::new("test.toml")).unwrap_err()
}

fn ip(s: &str) -> u128 {
    crate::packet::ip_to_addr(s.parse().unwrap())
}

fn tuple(p: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    Tuple {
        proto: p,
        src: ip(src),
        dst: ip(dst),
        src_port: sport,
        dst_port: dport,
    }
}

/// Evaluates on both the compiled policy and the reference, asserts they agree.
fn decide(p: &Policy, t: Tuple, midstream: bool) -> StatefulDecision {
    let compiled = CompiledPolicy::compile(p, 1).stateful(&t, midstream);
    assert_eq!(compiled, reference::stateful(p, &t, midstream), "{t:?}");
    compiled
}

fn packet(
    p: u8,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    flags: u8,
    fragment: Fragment,
) -> PacketMeta {
    PacketMeta {
        proto: p,
        src: ip(src),
        dst: ip(dst),
        src_port: sport,
        dst_port: dport,
        tcp_flags: flags,
        fragment,
        ..PacketMeta::default()
    }
}

fn stateless(p: &Policy, m: PacketMeta) -> StatelessAction {
    let compiled = CompiledPolicy::compile(p, 1).stateless(&m);
    assert_eq!(compiled, reference::stateless(p, &m), "{m:?}");
    compiled
}

/// A default_action_order policy with inline rules given as Suricata-style TOML tables.
fn stateful_policy(order: &str, extra: &str, groups: &[(&str, u32, &[Rule])]) -> Policy {
    let mut text = format!("[variables]\nHOME_NET = [\"198.18.0.0/15\", \"2001:2::/48\"]\n[stateful]\nrule_order = \"{order}\"\n{extra}\n");
    for (name, prio, rules) in groups {
        text.push_str(&format!(
            "[[stateful.rule_groups]]\nname = \"{name}\"\npriority = {prio}\nrules = [\n"
        ));
        for (action, protocol, src, sport, dir, dst, dport, sid) in rules.iter() {
            text.push_str(&format!(
                "  {{ action = \"{action}\", protocol = \"{protocol}\", source = \"{src}\", source_port = \"{sport}\", \
                 direction = \"{dir}\", destination = \"{dst}\", destination_port = \"{dport}\", sid = {sid} }},\n"
            ));
        }
        text.push_str("]\n");
    }
    policy(&text)
}

/// One inline rule: action, protocol, source, source port, direction, destination,
/// destination port, sid.
type Rule = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
);

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

// ---------------------------------------------------------------- file and validation

#[test]
fn full_policy_file_parses() {
    let p = policy(
        r#"
[variables]
HOME_NET = ["198.18.0.0/15", "2001:2::/48"]
[port_variables]
WEB = [80, "8080"]
[stateless]
default_action = "aws:forward_to_sfe"
fragment_default_action = "drop"
[[stateless.rules]]
priority = 10
action = "drop"
sources = ["198.19.0.0/16"]
source_ports = ["0:1023"]
destination_ports = ["22"]
protocols = [6]
tcp_flags = [{ flags = ["SYN"], masks = ["SYN", "ACK"] }]
[stateful]
rule_order = "strict_order"
stream_exception_policy = "reject"
default_actions = ["drop_established", "aws:alert_strict"]
tcp_idle_timeout_seconds = 350
[[stateful.rule_groups]]
name = "web"
priority = 100
rules = [
  { action = "pass", protocol = "tcp", source = "any", source_port = "any", direction = "forward", destination = "$HOME_NET", destination_port = "$WEB", sid = 100, msg = "web", rev = 2 },
]
"#,
    );
    assert_eq!(p.stateless_fragment_default, StatelessAction::Drop);
    assert_eq!(p.stateless_rules.len(), 1);
    assert_eq!(
        p.stateless_rules[0].tcp_flags,
        vec![TcpFlagMatch {
            flags: tcp_flags::SYN,
            masks: tcp_flags::SYN | tcp_flags::ACK
        }]
    );
    assert_eq!(p.rule_order, RuleOrder::StrictOrder);
    assert_eq!(p.stream_exception, StreamException::Reject);
    assert_eq!(
        p.defaults,
        StatefulDefaults {
            drop: Some(DefaultAction::DropEstablished),
            alert: Some(DefaultAction::AlertStrict)
        }
    );
    assert_eq!(p.rule_count(), 1);
    assert_eq!(
        (p.rules[0].sid, p.rules[0].rev, p.rules[0].msg.as_str()),
        (100, 2, "web")
    );
    let c = CompiledPolicy::compile(&p, 7);
    assert_eq!(c.epoch(), 7);
    assert_eq!(c.stream_exception(), StreamException::Reject);
    assert_eq!(c.tcp_idle_timeout_secs(), Some(350));
    // Rule 0, then the synthetic drop default and alert default.
    let sids: Vec<u32> = c.rules().iter().map(|r| r.sid).collect();
    assert_eq!(sids, [100, 2, 8]);
    assert_eq!(c.rules()[2].msg, "aws:alert_strict action");
    assert_eq!(c.rules()[0].group, "web");
    let s = c.summary();
    assert!(s.starts_with("policy epoch 7: 1 stateful rules (1 pass, 0 drop, 0 reject, 0 alert), 1 stateless rules"), "{s}");
    assert!(s.contains("rule_order strict_order, stream_exception_policy reject, default_actions [drop_established, alert_strict]"), "{s}");
}

#[test]
fn omitted_sections_take_documented_defaults() {
    let p = policy("");
    assert_eq!(p.stateless_default, StatelessAction::ForwardToSfe);
    assert_eq!(p.stateless_fragment_default, StatelessAction::ForwardToSfe);
    assert_eq!(p.rule_order, RuleOrder::DefaultActionOrder);
    assert_eq!(p.stream_exception, StreamException::Drop);
    assert_eq!(p.rule_count(), 0);
    let d = decide(
        &p,
        tuple(proto::TCP, "198.18.0.1", 1000, "198.19.0.1", 80),
        false,
    );
    assert_eq!(
        d,
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 0,
            rule_index: NO_RULE,
            alert_rule_index: NO_RULE,
            from_default: true
        }
    );
}

#[test]
fn validation_errors_are_precise() {
    let cases: &[(&str, &str)] = &[
        ("[stateful]\nbogus = 1\n", "test.toml:2: TOML: unknown field `bogus`, expected one of `rule_order`, `stream_exception_policy`, `default_actions`, `tcp_idle_timeout_seconds`, `rule_groups`"),
        ("[stateful\n", "test.toml:1: TOML: invalid table header; expected `.`, `]`"),
        ("[stateful]\ndefault_actions = [\"drop_strict\"]\n", "test.toml: stateful default_actions require rule_order = \"strict_order\""),
        ("[stateful]\nrule_order = \"strict_order\"\ndefault_actions = [\"drop_strict\", \"drop_established\"]\n", "test.toml: more than one drop default action (drop_strict and drop_established)"),
        ("[stateful]\nrule_order = \"strict_order\"\ndefault_actions = [\"alert_strict\", \"alert_strict\"]\n", "test.toml: default action 'alert_strict' listed twice"),
        ("[stateful]\ntcp_idle_timeout_seconds = 30\n", "test.toml: tcp_idle_timeout_seconds 30 is outside 60..=6000"),
        ("[stateful]\nstream_exception_policy = \"pass\"\n", "test.toml:2: TOML: unknown variant `pass`, expected one of `drop`, `continue`, `reject`"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules_file = \"does-not-exist.rules\"\n", "test.toml:1: cannot read rules_file 'does-not-exist.rules': No such file or directory (os error 2)"),
        ("[[stateful.rule_groups]]\nname = \"g\"\n", "test.toml:1: rule group 'g' needs exactly one of rules_file or rules"),
        ("[stateful]\nrule_order = \"strict_order\"\n[[stateful.rule_groups]]\nname = \"g\"\nrules = []\n", "test.toml:3: rule group 'g' needs a priority under strict_order"),
        ("[stateful]\nrule_order = \"strict_order\"\n[[stateful.rule_groups]]\nname = \"g\"\npriority = 1\nrules = []\n[[stateful.rule_groups]]\nname = \"h\"\npriority = 1\nrules = []\n", "test.toml:7: duplicate rule group priority 1"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules = []\n[[stateful.rule_groups]]\nname = \"g\"\nrules = []\n", "test.toml:4: duplicate rule group name g"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules = [\n { action = \"pass\", protocol = \"tcp\", source = \"any\", source_port = \"any\", direction = \"forward\", destination = \"$HOME_NET\", destination_port = 80, sid = 5 },\n]\n", "test.toml:4: sid 5: unknown variable '$HOME_NET'"),
        ("[stateful]\nrule_order = \"strict_order\"\n[[stateful.rule_groups]]\nname = \"g\"\npriority = 1\nrules = [\n { action = \"pass\", protocol = \"tcp\", source = \"any\", source_port = \"any\", direction = \"forward\", destination = \"any\", destination_port = 80, sid = 5, priority = 1 },\n]\n", "test.toml:7: sid 5: rule option 'priority' is not allowed under strict_order"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules = [\n { action = \"pass\", protocol = \"tcp\", source = \"any\", source_port = \"any\", direction = \"backward\", destination = \"any\", destination_port = 80, sid = 5 },\n]\n", "test.toml:4: sid 5: bad direction 'backward' (expected '->' or '<>')"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules = [\n { action = \"pass\", protocol = \"tcp\", source = \"any\", source_port = \"any\", direction = \"any\", destination = \"any\", destination_port = 80 },\n]\n", "test.toml:4: missing sid"),
        ("[[stateful.rule_groups]]\nname = \"g\"\nrules = [\n { action = \"pass\", protocol = \"tcp\", source = \"any\", source_port = \"any\", direction = \"any\", destination = \"any\", destination_port = 80, sid = 1 },\n { action = \"drop\", protocol = \"udp\", source = \"any\", source_port = \"any\", direction = \"any\", destination = \"any\", destination_port = 80, sid = 1 },\n]\n", "test.toml:5: sid 1: duplicate sid (first defined at test.toml:4)"),
        ("[variables]\nHOME_NET = \"10.0.0.0/33\"\n", "test.toml: in variable '$HOME_NET': bad address '10.0.0.0/33': prefix length > 32"),
        ("[[stateless.rules]]\npriority = 0\naction = \"drop\"\n", "test.toml:1: priority 0 is outside 1..=65535"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\n[[stateless.rules]]\npriority = 1\naction = \"pass\"\n", "test.toml:4: duplicate stateless rule priority 1"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\ndestination_ports = [\"22\"]\n", "test.toml:1: destination_ports require protocols limited to 6 (TCP) and/or 17 (UDP)"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\nsource_ports = [\"22\"]\nprotocols = [6, 1]\n", "test.toml:1: source_ports require protocols limited to 6 (TCP) and/or 17 (UDP)"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\ntcp_flags = [{ flags = [\"SYN\"] }]\n", "test.toml:1: tcp_flags require protocols = [6]"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\nprotocols = [6]\ntcp_flags = [{ flags = [\"SYN\"], masks = [\"ACK\"] }]\n", "test.toml:1: tcp_flags: flags [\"SYN\"] are not all in masks"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\nprotocols = [6]\ntcp_flags = [{ flags = [\"SYNACK\"] }]\n", "test.toml:1: unknown TCP flag 'SYNACK' (expected FIN, SYN, RST, PSH, ACK, URG, ECE or CWR)"),
        ("[[stateless.rules]]\npriority = 1\naction = \"drop\"\nsources = [\"300.1.1.1\"]\n", "test.toml:1: bad address '300.1.1.1': not an IPv4 or IPv6 address or CIDR"),
    ];
    for (text, want) in cases {
        assert_eq!(error(text).to_string(), *want, "for:\n{text}");
    }
}

#[test]
fn error_accessors_point_at_the_rule() {
    let e = error("[[stateful.rule_groups]]\nname = \"g\"\nrules = [\n { action = \"pass\", protocol = \"tls\", source = \"any\", source_port = \"any\", direction = \"any\", destination = \"any\", destination_port = 443, sid = 42 },\n]\n");
    assert_eq!(e.file(), Path::new("test.toml"));
    assert_eq!(e.line(), Some(4));
    assert_eq!(e.sid(), Some(42));
    assert!(matches!(e.kind(), PolicyErrorKind::UnsupportedProtocol(p) if p == "tls"));
}

#[test]
fn example_lab_policy_loads_and_behaves() {
    let p = load_policy(&configs().join("lab-policy.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.stream_exception, StreamException::Reject);
    assert_eq!(p.rule_order, RuleOrder::DefaultActionOrder);
    let c = CompiledPolicy::compile(&p, 1);
    let (client, server, c6, s6) = ("198.18.0.2", "198.19.0.2", "2001:2::2", "2001:2:0:1::2");
    for port in [80, 8080, 5201, 7000, 7001, 7999] {
        assert_eq!(
            c.stateful(&tuple(proto::TCP, client, 40000, server, port), false)
                .verdict,
            Verdict::Pass,
            "port {port}"
        );
        assert_eq!(
            c.stateful(&tuple(proto::TCP, c6, 40000, s6, port), false)
                .verdict,
            Verdict::Pass,
            "v6 port {port}"
        );
    }
    assert_eq!(
        c.stateful(&tuple(proto::ICMP, client, 1, server, 8 << 8), false)
            .verdict,
        Verdict::Pass
    );
    assert_eq!(
        c.stateful(&tuple(proto::ICMPV6, c6, 1, s6, 128 << 8), false)
            .verdict,
        Verdict::Pass
    );
    let telnet = c.stateful(&tuple(proto::TCP, client, 40000, server, 23), false);
    assert_eq!(telnet.verdict, Verdict::Drop);
    assert_eq!(
        c.rules()[telnet.rule_index as usize].action,
        RuleAction::Drop
    );
    let m = packet(
        proto::TCP,
        client,
        40000,
        server,
        80,
        tcp_flags::SYN,
        Fragment::None,
    );
    assert_eq!(c.stateless(&m), StatelessAction::ForwardToSfe);
}

#[test]
fn example_variants_and_bad_fixtures() {
    let deny = load_policy(&configs().join("policies/lab-deny-7001.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let c = CompiledPolicy::compile(&deny, 2);
    let t = |port| tuple(proto::TCP, "198.18.0.2", 40000, "198.19.0.2", port);
    assert_eq!(c.stateful(&t(7001), false).verdict, Verdict::Drop);
    assert_eq!(c.stateful(&t(7000), false).verdict, Verdict::Pass);
    assert_eq!(c.stateful(&t(80), false).verdict, Verdict::Pass);

    let strict =
        load_policy(&configs().join("policies/lab-strict.toml")).unwrap_or_else(|e| panic!("{e}"));
    let c = CompiledPolicy::compile(&strict, 3);
    assert_eq!(c.stateful(&t(80), false).verdict, Verdict::Pass);
    assert_eq!(c.stateful(&t(9999), false).verdict, Verdict::Drop);

    let bad = configs().join("policies/bad");
    let cases = [
        ("syntax.toml", "syntax.rules:4: sid 3: syntax error: expected 'action proto src sport dir dst dport (options)', found 6 header fields"),
        ("duplicate-sid.toml", "duplicate-sid.rules:3: sid 100: duplicate sid (first defined at "),
        ("unknown-option.toml", "unknown-option.rules:2: sid 7: unsupported rule option 'content'"),
        ("priority-strict.toml", "priority-strict.rules:2: sid 5: rule option 'priority' is not allowed under strict_order"),
        ("unknown-key.toml", "unknown-key.toml:3: TOML: unknown field `stream_exception`"),
        ("missing-rules-file.toml", "missing-rules-file.toml:4: cannot read rules_file 'no-such-file.rules': No such file"),
    ];
    for (file, want) in cases {
        let e = load_policy(&bad.join(file)).unwrap_err().to_string();
        let shown = e.replace(&format!("{}/", bad.display()), "");
        assert!(shown.starts_with(want), "{file}: {shown}");
    }
}

// ---------------------------------------------------------------- stateful semantics

const H: &str = "$HOME_NET";

#[test]
fn default_order_pass_beats_drop_beats_reject_beats_alert() {
    let rules: &[Rule] = &[
        ("alert", "tcp", "any", "any", "forward", H, "any", 1),
        (
            "reject",
            "tcp",
            "any",
            "any",
            "forward",
            H,
            "[22, 80, 443]",
            2,
        ),
        ("drop", "tcp", "any", "any", "forward", H, "[22, 80]", 3),
        ("pass", "tcp", "any", "any", "forward", H, "80", 4),
    ];
    let p = stateful_policy("default_action_order", "", &[("g", 1, rules)]);
    let at = |port| {
        decide(
            &p,
            tuple(proto::TCP, "10.0.0.1", 1000, "198.18.0.9", port),
            false,
        )
    };
    assert_eq!(
        at(80),
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 4,
            rule_index: 3,
            alert_rule_index: NO_RULE,
            from_default: false
        }
    );
    assert_eq!(
        at(22),
        StatefulDecision {
            verdict: Verdict::Drop,
            sid: 3,
            rule_index: 2,
            alert_rule_index: NO_RULE,
            from_default: false
        }
    );
    assert_eq!(
        at(443),
        StatefulDecision {
            verdict: Verdict::Reject,
            sid: 2,
            rule_index: 1,
            alert_rule_index: NO_RULE,
            from_default: false
        }
    );
    assert_eq!(
        at(25),
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 1,
            rule_index: 0,
            alert_rule_index: 0,
            from_default: false
        }
    );
    // Outside HOME_NET nothing matches: implicit pass.
    let outside = decide(
        &p,
        tuple(proto::TCP, "10.0.0.1", 1000, "10.0.0.2", 80),
        false,
    );
    assert_eq!(
        (outside.verdict, outside.sid, outside.from_default),
        (Verdict::Pass, 0, true)
    );
}

#[test]
fn default_order_priority_keyword_orders_within_an_action() {
    let dir = std::env::temp_dir().join(format!("flowgate-policy-prio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("r.rules"),
        "drop tcp any any -> any 80 (sid:1;)\n\
         drop tcp any any -> any 80 (sid:2; priority:1;)\n\
         drop tcp any any -> any [80,81] (sid:3; priority:2;)\n\
         drop tcp any any -> any 81 (sid:4;)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("p.toml"),
        "[[stateful.rule_groups]]\nname = \"g\"\nrules_file = \"r.rules\"\n",
    )
    .unwrap();
    let p = load_policy(&dir.join("p.toml")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    // priority 1 beats file order; no keyword means priority 3.
    assert_eq!(
        decide(&p, tuple(proto::TCP, "1.1.1.1", 1, "2.2.2.2", 80), false).sid,
        2
    );
    assert_eq!(
        decide(&p, tuple(proto::TCP, "1.1.1.1", 1, "2.2.2.2", 81), false).sid,
        3
    );
    assert_eq!(p.rules[0].origin.file, dir.join("r.rules"));
}

#[test]
fn strict_order_alert_continues_and_groups_go_by_priority() {
    let late: &[Rule] = &[("drop", "tcp", "any", "any", "forward", "any", "80", 10)];
    let early: &[Rule] = &[
        (
            "alert", "tcp", "any", "any", "forward", "any", "[80, 81]", 20,
        ),
        ("alert", "tcp", "any", "any", "forward", "any", "80", 21),
        ("pass", "tcp", "any", "any", "forward", "any", "81", 22),
    ];
    // "late" is written first but has the higher priority number.
    let p = stateful_policy(
        "strict_order",
        "",
        &[("late", 200, late), ("early", 100, early)],
    );
    let at = |port| {
        decide(
            &p,
            tuple(proto::TCP, "10.0.0.1", 1000, "10.0.0.2", port),
            false,
        )
    };
    // Port 80: alert 20 recorded, alert 21 ignored (first alert), drop 10 decides.
    assert_eq!(
        at(80),
        StatefulDecision {
            verdict: Verdict::Drop,
            sid: 10,
            rule_index: 0,
            alert_rule_index: 1,
            from_default: false
        }
    );
    assert_eq!(
        at(81),
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 22,
            rule_index: 3,
            alert_rule_index: 1,
            from_default: false
        }
    );
    assert_eq!(
        at(82),
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 0,
            rule_index: NO_RULE,
            alert_rule_index: NO_RULE,
            from_default: true
        }
    );
}

#[test]
fn strict_order_default_actions() {
    let rules: &[Rule] = &[
        ("pass", "tcp", "any", "any", "forward", H, "80", 1),
        ("alert", "udp", "any", "any", "forward", H, "53", 2),
    ];
    let with = |defaults: &str| {
        stateful_policy(
            "strict_order",
            &format!("default_actions = [{defaults}]"),
            &[("g", 1, rules)],
        )
    };
    let web = tuple(proto::TCP, "10.0.0.1", 1000, "198.18.0.9", 80);
    let ssh = tuple(proto::TCP, "10.0.0.1", 1000, "198.18.0.9", 22);
    let dns = tuple(proto::UDP, "10.0.0.1", 1000, "198.18.0.9", 53);

    let p = with("\"drop_strict\"");
    assert_eq!(decide(&p, web, false).verdict, Verdict::Pass);
    assert_eq!(
        decide(&p, ssh, false),
        StatefulDecision {
            verdict: Verdict::Drop,
            sid: 6,
            rule_index: NO_RULE,
            alert_rule_index: NO_RULE,
            from_default: true
        }
    );
    assert_eq!(decide(&p, ssh, true).verdict, Verdict::Drop);
    assert_eq!(decide(&p, dns, false).alert_rule_index, 1);

    let p = with("\"drop_established\", \"alert_established\"");
    // Synthetic entries: index 2 = drop default, 3 = alert default.
    assert_eq!(
        decide(&p, ssh, false),
        StatefulDecision {
            verdict: Verdict::DropEstablished,
            sid: 2,
            rule_index: NO_RULE,
            alert_rule_index: 3,
            from_default: true
        }
    );
    assert_eq!(
        decide(&p, ssh, true).verdict,
        Verdict::Drop,
        "midstream counts as established"
    );
    // A matching alert rule takes precedence over the alert default in alert_rule_index.
    assert_eq!(decide(&p, dns, false).alert_rule_index, 1);
    assert_eq!(decide(&p, web, false).alert_rule_index, NO_RULE);

    let p = with("\"alert_strict\"");
    assert_eq!(
        decide(&p, ssh, false),
        StatefulDecision {
            verdict: Verdict::Pass,
            sid: 0,
            rule_index: NO_RULE,
            alert_rule_index: 2,
            from_default: true
        }
    );
    let c = CompiledPolicy::compile(&p, 1);
    assert_eq!(
        (c.rules()[2].sid, c.rules()[2].action),
        (8, RuleAction::Alert)
    );
}

#[test]
fn bidirectional_rules_match_both_ways_and_forward_only_one() {
    let rules: &[Rule] = &[
        (
            "drop",
            "udp",
            "198.18.0.1",
            "any",
            "any",
            "198.19.0.1",
            "53",
            1,
        ),
        (
            "drop",
            "udp",
            "198.18.0.2",
            "any",
            "forward",
            "198.19.0.2",
            "53",
            2,
        ),
    ];
    let p = stateful_policy("default_action_order", "", &[("g", 1, rules)]);
    assert_eq!(
        decide(
            &p,
            tuple(proto::UDP, "198.18.0.1", 999, "198.19.0.1", 53),
            false
        )
        .sid,
        1
    );
    assert_eq!(
        decide(
            &p,
            tuple(proto::UDP, "198.19.0.1", 53, "198.18.0.1", 999),
            false
        )
        .sid,
        1
    );
    assert_eq!(
        decide(
            &p,
            tuple(proto::UDP, "198.18.0.2", 999, "198.19.0.2", 53),
            false
        )
        .sid,
        2
    );
    assert_eq!(
        decide(
            &p,
            tuple(proto::UDP, "198.19.0.2", 53, "198.18.0.2", 999),
            false
        )
        .sid,
        0
    );
}

#[test]
fn protocols_ip_icmp_and_ipv6_separation() {
    let rules: &[Rule] = &[
        ("drop", "icmp", "any", "any", "forward", "any", "any", 1),
        ("reject", "ip", "::/0", "any", "forward", "any", "any", 2),
    ];
    let p = stateful_policy("default_action_order", "", &[("g", 1, rules)]);
    assert_eq!(
        decide(
            &p,
            tuple(proto::ICMP, "1.1.1.1", 0, "2.2.2.2", 8 << 8),
            false
        )
        .sid,
        1
    );
    assert_eq!(
        decide(
            &p,
            tuple(proto::ICMPV6, "2001:2::1", 0, "2001:2::2", 128 << 8),
            false
        )
        .sid,
        1
    );
    // `ip` matches any protocol, `::/0` only IPv6 sources.
    assert_eq!(
        decide(&p, tuple(47, "2001:2::1", 0, "2001:2::2", 0), false).sid,
        2
    );
    assert_eq!(
        decide(&p, tuple(47, "1.1.1.1", 0, "2.2.2.2", 0), false).sid,
        0
    );
}

// ---------------------------------------------------------------- stateless semantics

fn stateless_policy(rules: &str) -> Policy {
    policy(&format!(
        "[stateless]\ndefault_action = \"forward_to_sfe\"\nfragment_default_action = \"pass\"\n{rules}"
    ))
}

#[test]
fn stateless_priority_and_tcp_flags() {
    let p = stateless_policy(
        r#"
[[stateless.rules]]
priority = 20
action = "pass"
protocols = [6]
[[stateless.rules]]
priority = 10
action = "drop"
protocols = [6]
destination_ports = ["22"]
tcp_flags = [{ flags = ["SYN"], masks = ["SYN", "ACK"] }, { flags = ["FIN", "PSH", "URG"] }]
"#,
    );
    let at = |dport, flags| {
        stateless(
            &p,
            packet(
                proto::TCP,
                "10.0.0.1",
                1000,
                "10.0.0.2",
                dport,
                flags,
                Fragment::None,
            ),
        )
    };
    use tcp_flags::*;
    assert_eq!(at(22, SYN), StatelessAction::Drop);
    assert_eq!(
        at(22, SYN | ECE | CWR),
        StatelessAction::Drop,
        "unmasked flags are ignored"
    );
    assert_eq!(
        at(22, SYN | ACK),
        StatelessAction::Pass,
        "ACK is masked and must be clear"
    );
    assert_eq!(
        at(22, FIN | PSH | URG),
        StatelessAction::Drop,
        "second condition (Xmas), all flags masked"
    );
    assert_eq!(at(22, FIN | PSH | URG | ACK), StatelessAction::Pass);
    assert_eq!(at(23, SYN), StatelessAction::Pass);
    let udp = packet(
        proto::UDP,
        "10.0.0.1",
        1000,
        "10.0.0.2",
        22,
        0,
        Fragment::None,
    );
    assert_eq!(stateless(&p, udp), StatelessAction::ForwardToSfe);
}

#[test]
fn stateless_addresses_ports_and_protocol_lists() {
    let p = stateless_policy(
        r#"
[[stateless.rules]]
priority = 1
action = "drop"
sources = ["198.19.0.0/16", "2001:2::/48"]
destinations = ["198.18.0.0/24"]
source_ports = ["0:1023", "5000"]
protocols = [6, 17]
"#,
    );
    let at = |src, sport, dst| {
        stateless(
            &p,
            packet(proto::UDP, src, sport, dst, 9, 0, Fragment::None),
        )
    };
    assert_eq!(at("198.19.3.4", 1023, "198.18.0.9"), StatelessAction::Drop);
    assert_eq!(at("198.19.3.4", 5000, "198.18.0.9"), StatelessAction::Drop);
    assert_eq!(
        at("198.19.3.4", 1024, "198.18.0.9"),
        StatelessAction::ForwardToSfe
    );
    assert_eq!(
        at("198.20.3.4", 80, "198.18.0.9"),
        StatelessAction::ForwardToSfe
    );
    assert_eq!(
        at("198.19.3.4", 80, "198.18.1.9"),
        StatelessAction::ForwardToSfe
    );
    assert_eq!(at("2001:2::5", 80, "198.18.0.9"), StatelessAction::Drop);
}

#[test]
fn fragments() {
    let p = stateless_policy(
        r#"
[[stateless.rules]]
priority = 1
action = "drop"
protocols = [17]
destination_ports = ["53"]
[[stateless.rules]]
priority = 2
action = "forward_to_sfe"
sources = ["198.18.0.66"]
"#,
    );
    let frag = |pr, src, dport, f| stateless(&p, packet(pr, src, 1, "198.19.0.1", dport, 0, f));
    // Non-UDP fragments are dropped whatever the rules say.
    assert_eq!(
        frag(proto::TCP, "198.18.0.66", 80, Fragment::First),
        StatelessAction::Drop
    );
    assert_eq!(
        frag(proto::ICMP, "198.18.0.1", 0, Fragment::Later),
        StatelessAction::Drop
    );
    // A first UDP fragment carries ports: the port rule applies.
    assert_eq!(
        frag(proto::UDP, "198.18.0.1", 53, Fragment::First),
        StatelessAction::Drop
    );
    // A later fragment has no ports: port rules never match, the others do.
    assert_eq!(
        frag(proto::UDP, "198.18.0.66", 0, Fragment::Later),
        StatelessAction::ForwardToSfe
    );
    // Unmatched UDP fragments get the fragment default, whole packets the default.
    assert_eq!(
        frag(proto::UDP, "198.18.0.1", 0, Fragment::Later),
        StatelessAction::Pass
    );
    assert_eq!(
        frag(proto::UDP, "198.18.0.1", 54, Fragment::None),
        StatelessAction::ForwardToSfe
    );
}

#[test]
fn compiled_policy_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CompiledPolicy>();
    let p = policy("");
    let _ = v4_to_addr(0);
    let c = std::sync::Arc::new(CompiledPolicy::compile(&p, 0));
    let c2 = std::sync::Arc::clone(&c);
    std::thread::spawn(move || c2.epoch()).join().unwrap();
}
