//! AWS-shaped policies: seed 004's CloudFormation template, API-shape JSON, every rule
//! source, variables, and the refusals that name their member; verdicts checked on the
//! compiled matcher and the reference evaluator.

use std::path::Path;

use serde_json::json;

use super::aws::{self, GroupType, NamedGroup, RuleGroupShape};
use super::aws_file::{self, AwsDocument};
use super::*;
use crate::packet::{proto, tcp_flags, Fragment, PacketMeta, Tuple, Verdict};

const SEED_004: &str = include_str!("../../../configs/aws/seed-004.yaml");

fn ip(s: &str) -> u128 {
    crate::packet::ip_to_addr(s.parse().unwrap())
}

fn tcp(src: &str, dst: &str, dport: u16) -> Tuple {
    Tuple {
        proto: proto::TCP,
        src: ip(src),
        dst: ip(dst),
        src_port: 40000,
        dst_port: dport,
    }
}

fn decide(p: &Policy, t: Tuple) -> StatefulDecision {
    let compiled = CompiledPolicy::compile(p, 1).stateful(&t, false);
    assert_eq!(compiled, reference::stateful(p, &t, false), "{t:?}");
    compiled
}

fn seed() -> Policy {
    aws_file::policy_from_aws_text(SEED_004, Path::new("seed-004.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_004_template_loads_with_its_references_resolved() {
    let doc = aws_file::read_document(SEED_004, Path::new("seed-004.yaml")).unwrap();
    assert_eq!(doc.policy.name, "MainFirewallPolicy");
    let names: Vec<&str> = doc.rule_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["AppTrafficRules", "WebTrafficRules"]);
    assert_eq!(
        doc.policy.body["StatefulRuleGroupReferences"][0]["ResourceArn"],
        "arn:aws:network-firewall:us-east-1:000000000000:stateful-rulegroup/WebTrafficRules"
    );
    assert_eq!(
        doc.rule_groups[1].tags,
        vec![("Name".into(), "Web-Traffic-Rules".into())]
    );
    let p = seed();
    assert_eq!(p.rule_order, RuleOrder::StrictOrder);
    assert_eq!(p.defaults.drop, Some(DefaultAction::DropStrict));
    assert_eq!(
        p.rules.iter().map(|r| r.sid).collect::<Vec<_>>(),
        [1, 2, 3, 10, 11]
    );
    assert_eq!(
        p.groups.iter().map(|g| g.priority).collect::<Vec<_>>(),
        [100, 200]
    );
}

#[test]
fn seed_004_verdicts() {
    let p = seed();
    let client = "198.18.0.1";
    for (dst, port, verdict, sid) in [
        ("198.18.0.2", 443, Verdict::Pass, 1),
        ("198.18.0.2", 80, Verdict::Pass, 2),
        ("198.18.0.2", 22, Verdict::Drop, 3),
        ("198.18.0.130", 8080, Verdict::Pass, 10),
        ("198.18.0.130", 8081, Verdict::Drop, 11),
        ("198.18.1.1", 80, Verdict::Drop, 6), // aws:drop_strict
    ] {
        let d = decide(&p, tcp(client, dst, port));
        assert_eq!((d.verdict, d.sid), (verdict, sid), "{dst}:{port}");
    }
    // The app tier only takes 8080 from the web tier.
    let d = decide(&p, tcp("198.18.1.9", "198.18.0.130", 8080));
    assert_eq!((d.verdict, d.sid), (Verdict::Drop, 11));
}

#[test]
fn the_published_template_is_read_in_strict_order_and_says_so() {
    // As published (only addresses mapped): aws:drop_strict and no rule order anywhere.
    assert!(!SEED_004.contains("RuleOrder"));
    let doc = aws_file::read_document(SEED_004, Path::new("seed-004.yaml")).unwrap();
    assert_eq!(
        doc.policy.body["StatefulEngineOptions"]["RuleOrder"],
        "STRICT_ORDER"
    );
    for g in &doc.rule_groups {
        assert_eq!(
            g.body["StatefulRuleOptions"]["RuleOrder"], "STRICT_ORDER",
            "{}",
            g.name
        );
    }
    assert_eq!(
        doc.inferred.as_deref(),
        Some(
            "policy 'MainFirewallPolicy' gives StatefulDefaultActions without StatefulEngineOptions.RuleOrder: \
             read in STRICT_ORDER (default actions exist only in strict order), as are its rule groups \
             'AppTrafficRules', 'WebTrafficRules'"
        )
    );
}

#[test]
fn an_order_the_file_states_is_never_changed() {
    // A policy that says DEFAULT_ACTION_ORDER with default actions is refused as the service does.
    let default_order = SEED_004.replace(
        "        StatefulDefaultActions:\n",
        "        StatefulEngineOptions:\n          RuleOrder: DEFAULT_ACTION_ORDER\n        StatefulDefaultActions:\n",
    );
    assert_ne!(default_order, SEED_004);
    let e = aws_file::policy_from_aws_text(&default_order, Path::new("t.yaml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "FirewallPolicy.StatefulDefaultActions: StatefulDefaultActions need StatefulEngineOptions.RuleOrder = STRICT_ORDER"
    );
    // A group that says DEFAULT_ACTION_ORDER under the inferred strict policy: orders must match.
    let mixed = SEED_004.replacen(
        "      RuleGroup:\n",
        "      RuleGroup:\n        StatefulRuleOptions:\n          RuleOrder: DEFAULT_ACTION_ORDER\n",
        1,
    );
    assert_ne!(mixed, SEED_004);
    let e = aws_file::policy_from_aws_text(&mixed, Path::new("t.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("RuleGroup 'WebTrafficRules'.StatefulRuleOptions.RuleOrder: "),
        "{e}"
    );
    // Without default actions nothing is inferred.
    let no_defaults = SEED_004.replace(
        "        StatefulDefaultActions:\n          - aws:drop_strict\n",
        "",
    );
    assert_ne!(no_defaults, SEED_004);
    let doc = aws_file::read_document(&no_defaults, Path::new("t.yaml")).unwrap();
    assert_eq!(doc.inferred, None);
    assert_eq!(
        aws_file::policy_from_aws_text(&no_defaults, Path::new("t.yaml"))
            .unwrap()
            .rule_order,
        RuleOrder::DefaultActionOrder
    );
}

fn group(name: &str, kind: GroupType, body: serde_json::Value) -> NamedGroup {
    NamedGroup {
        arn: format!(
            "arn:aws:network-firewall:us-east-1:1:{}/{name}",
            kind.arn_resource()
        ),
        name: name.into(),
        kind,
        group: serde_json::from_value::<RuleGroupShape>(body).unwrap(),
    }
}

fn policy_json(v: serde_json::Value, groups: &[NamedGroup]) -> Result<Policy, PolicyError> {
    aws::policy_from_aws(&serde_json::from_value(v).unwrap(), groups)
}

fn base_policy() -> serde_json::Value {
    json!({"StatelessDefaultActions": ["aws:forward_to_sfe"],
           "StatelessFragmentDefaultActions": ["aws:drop"]})
}

#[test]
fn engine_options_and_variables_translate() {
    let g = group(
        "G",
        GroupType::Stateful,
        json!({
            "RuleVariables": {"IPSets": {"SERVERS": {"Definition": ["198.18.0.2/32"]}},
                              "PortSets": {"WEB": {"Definition": ["80", "8000:8100"]}}},
            "RulesSource": {"RulesString": "pass tcp $HOME_NET any -> $SERVERS $WEB (msg:\"web\"; sid:5;)\n"}
        }),
    );
    let mut v = base_policy();
    v["StatefulRuleGroupReferences"] = json!([{"ResourceArn": g.arn}]);
    v["StatefulEngineOptions"] =
        json!({"StreamExceptionPolicy": "REJECT", "FlowTimeouts": {"TcpIdleTimeoutSeconds": 120}});
    v["PolicyVariables"] =
        json!({"RuleVariables": {"HOME_NET": {"Definition": ["198.18.0.0/24"]}}});
    let p = policy_json(v.clone(), std::slice::from_ref(&g)).unwrap();
    assert_eq!(p.stream_exception, StreamException::Reject);
    assert_eq!(p.tcp_idle_timeout_secs, Some(120));
    assert_eq!(p.stateless_fragment_default, StatelessAction::Drop);
    assert_eq!(decide(&p, tcp("198.18.0.1", "198.18.0.2", 8050)).sid, 5);
    assert_eq!(
        decide(&p, tcp("198.18.3.1", "198.18.0.2", 8050)).sid,
        0,
        "HOME_NET from the policy"
    );

    // Without HOME_NET anywhere, the rule's variable is unknown, named with its group.
    v["PolicyVariables"] = json!(null);
    let e = policy_json(v.clone(), std::slice::from_ref(&g))
        .unwrap_err()
        .to_string();
    assert!(e.contains("RuleGroup 'G'") && e.contains("HOME_NET"), "{e}");
    v["PolicyVariables"] = json!({"RuleVariables": {"OTHER": {"Definition": ["1.1.1.1/32"]}}});
    let e = policy_json(v, &[g]).unwrap_err().to_string();
    assert_eq!(e, "FirewallPolicy.PolicyVariables.RuleVariables.OTHER: only HOME_NET can be set as a policy variable");
}

#[test]
fn stateless_rules_run_by_group_then_rule_priority() {
    let a = group(
        "A",
        GroupType::Stateless,
        json!({"RulesSource": {"StatelessRulesAndCustomActions": {"StatelessRules": [
            {"Priority": 10, "RuleDefinition": {"Actions": ["aws:drop"], "MatchAttributes": {
                "Sources": [{"AddressDefinition": "198.18.0.1/32"}], "Protocols": [6],
                "DestinationPorts": [{"FromPort": 22, "ToPort": 23}],
                "TCPFlags": [{"Flags": ["SYN"], "Masks": ["SYN", "ACK"]}]}}},
            {"Priority": 20, "RuleDefinition": {"Actions": ["aws:forward_to_sfe"], "MatchAttributes": {"Protocols": [6, 17]}}}
        ]}}}),
    );
    let b = group(
        "B",
        GroupType::Stateless,
        json!({"RulesSource": {"StatelessRulesAndCustomActions": {"StatelessRules": [
            {"Priority": 1, "RuleDefinition": {"Actions": ["aws:pass"], "MatchAttributes": {}}}
        ]}}}),
    );
    let mut v = base_policy();
    v["StatelessRuleGroupReferences"] =
        json!([{"ResourceArn": b.arn, "Priority": 2}, {"ResourceArn": a.arn, "Priority": 1}]);
    let p = policy_json(v.clone(), &[a.clone(), b.clone()]).unwrap();
    let m = |dport, flags| PacketMeta {
        proto: proto::TCP,
        src: ip("198.18.0.1"),
        dst: ip("198.18.0.2"),
        src_port: 1000,
        dst_port: dport,
        tcp_flags: flags,
        fragment: Fragment::None,
        ..PacketMeta::default()
    };
    let compiled = CompiledPolicy::compile(&p, 1);
    for (meta, want) in [
        (m(22, tcp_flags::SYN), StatelessAction::Drop),
        (
            m(22, tcp_flags::SYN | tcp_flags::ACK),
            StatelessAction::ForwardToSfe,
        ),
        (m(80, tcp_flags::SYN), StatelessAction::ForwardToSfe),
    ] {
        assert_eq!(compiled.stateless(&meta), want);
        assert_eq!(reference::stateless(&p, &meta), want);
    }
    let icmp = PacketMeta {
        proto: proto::ICMP,
        ..m(0, 0)
    };
    assert_eq!(
        compiled.stateless(&icmp),
        StatelessAction::Pass,
        "group B (priority 2)"
    );

    assert_eq!(aws::consumed_capacity(&a.group), 1 + 2);
    v["StatelessRuleGroupReferences"][0]["Priority"] = json!(1);
    let e = policy_json(v, &[a, b]).unwrap_err().to_string();
    assert_eq!(
        e,
        "FirewallPolicy.StatelessRuleGroupReferences[1].Priority: priority 1 is used twice"
    );
}

#[test]
fn what_l3_l4_cannot_do_is_refused_by_member() {
    let cases = [
        (json!({"RulesSource": {"RulesSourceList": {"Targets": [".example.com"], "TargetTypes": ["TLS_SNI"], "GeneratedRulesType": "DENYLIST"}}}),
         "RuleGroup.RulesSource.RulesSourceList: domain list rule groups"),
        (json!({"RulesSource": {"StatefulRules": [{"Action": "DROP", "Header": {"Protocol": "HTTP", "Source": "ANY", "SourcePort": "ANY", "Direction": "FORWARD", "Destination": "ANY", "DestinationPort": "ANY"}, "RuleOptions": [{"Keyword": "sid", "Settings": ["1"]}]}]}}),
         "RuleGroup.RulesSource.StatefulRules[0].Header.Protocol: 'HTTP' is an application-layer protocol"),
        (json!({"RulesSource": {"StatefulRules": [{"Action": "DROP", "Header": {"Protocol": "TCP", "Source": "ANY", "SourcePort": "ANY", "Direction": "FORWARD", "Destination": "ANY", "DestinationPort": "ANY"}, "RuleOptions": [{"Keyword": "sid", "Settings": ["1"]}, {"Keyword": "content", "Settings": ["\"x\""]}]}]}}),
         "RuleGroup.RulesSource.StatefulRules:1: sid 1: unsupported rule option 'content'"),
        (json!({"RulesSource": {"RulesString": "drop http any any -> any any (sid:1;)"}}),
         "RuleGroup.RulesSource.RulesString:1: sid 1: unsupported protocol 'http'"),
        (json!({"ReferenceSets": {"IPSetReferences": {"X": {"ReferenceArn": "arn:aws:ec2:x"}}}, "RulesSource": {"RulesString": ""}}),
         "RuleGroup.ReferenceSets.IPSetReferences: "),
    ];
    for (body, want) in cases {
        let g: RuleGroupShape = serde_json::from_value(body).unwrap();
        let e = aws::validate_rule_group("RuleGroup", GroupType::Stateful, &g)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{e}\n  wanted {want}");
    }
    let mut v = base_policy();
    v["TLSInspectionConfigurationArn"] = json!("arn:aws:network-firewall:x:tls-configuration/t");
    let e = policy_json(v, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "FirewallPolicy.TLSInspectionConfigurationArn: TLS inspection is not supported"
        ),
        "{e}"
    );
    let mut v = base_policy();
    v["StatelessDefaultActions"] = json!(["aws:pass", "MyMetric"]);
    let e = policy_json(v, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("FirewallPolicy.StatelessDefaultActions: custom action 'MyMetric'"),
        "{e}"
    );
}

#[test]
fn api_shape_json_files_load_too() {
    let text = json!({
        "FirewallPolicyName": "p",
        "FirewallPolicy": {"StatelessDefaultActions": ["aws:forward_to_sfe"],
            "StatelessFragmentDefaultActions": ["aws:forward_to_sfe"],
            "StatefulRuleGroupReferences": [{"ResourceArn": "arn:aws:network-firewall:eu-west-1:123456789012:stateful-rulegroup/g"}]},
        "RuleGroups": [{"RuleGroupResponse": {"RuleGroupName": "g", "Type": "STATEFUL", "Capacity": 10},
                        "RuleGroup": {"RulesSource": {"RulesString": "drop tcp any any -> any 23 (sid:23;)"}}}]
    })
    .to_string();
    let p = aws_file::policy_from_aws_text(&text, Path::new("p.json")).unwrap();
    assert_eq!(decide(&p, tcp("198.18.0.1", "198.18.0.2", 23)).sid, 23);
    // Capacity is checked.
    let small = text.replace("\"Capacity\":10", "\"Capacity\":0");
    let e = aws_file::policy_from_aws_text(&small, Path::new("p.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("consume capacity 1, more than its Capacity 0"),
        "{e}"
    );
    let e =
        aws_file::policy_from_aws_text("{\"FirewallPolicy\": ", Path::new("p.json")).unwrap_err();
    assert!(e.to_string().starts_with("p.json:1: JSON: "), "{e}");
}

#[test]
fn template_intrinsics_resolve_and_unknown_ones_are_refused() {
    let t = r#"
Parameters:
  Env: {Type: String, Default: lab}
Resources:
  G:
    Type: AWS::NetworkFirewall::RuleGroup
    Properties:
      RuleGroupName: !Sub '${Env}-rules'
      Type: STATEFUL
      Capacity: 10
      RuleGroup:
        RulesSource:
          RulesString: !Join ["", ["pass tcp any any -> any 80 (sid:1;)"]]
  P:
    Type: AWS::NetworkFirewall::FirewallPolicy
    Properties:
      FirewallPolicyName: !Sub '${AWS::StackName}-policy'
      FirewallPolicy:
        StatelessDefaultActions: [aws:forward_to_sfe]
        StatelessFragmentDefaultActions: [aws:forward_to_sfe]
        StatefulRuleGroupReferences:
          - ResourceArn: !GetAtt G.RuleGroupArn
"#;
    let doc: AwsDocument = aws_file::read_document(t, Path::new("t.yaml")).unwrap();
    assert_eq!(doc.policy.name, "flowgate-policy");
    assert_eq!(doc.rule_groups[0].name, "lab-rules");
    assert_eq!(doc.to_policy(Path::new("t.yaml")).unwrap().rules.len(), 1);
    let bad = t.replace("!GetAtt G.RuleGroupArn", "!Ref MissingGroup");
    let e = aws_file::read_document(&bad, Path::new("t.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Ref 'MissingGroup': not a rule group, firewall policy or parameter"),
        "{e}"
    );
}
