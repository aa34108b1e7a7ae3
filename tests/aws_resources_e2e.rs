//! The AWS resource model through the real binary (SigV4, `policy.source = "api"`): the
//! stock AWS CLI creates seed 004's rule groups (and a stateless one) and a policy, associates
//! it, updates it with optimistic concurrency, and gets the service's error types for what it
//! must refuse; every resource survives a restart and a kill -9. boto3 (JSON 1.0) and the
//! AWS SDK for JavaScript (Smithy RPC v2 CBOR) drive the same actions.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const KEY_ID: &str = "AKIAFLOWGATETEST0003";
const SECRET: &str = "flowgate-test-secret-key-resources-42";
const REGION: &str = "us-east-1";
const ARN: &str = "arn:aws:network-firewall:us-east-1:000000000000:firewall/res-test";
const ZONE: &str = "test-zone-r";

fn venv() -> PathBuf {
    let v = std::env::var_os("FLOWGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        v.join("bin/aws").is_file(),
        "no AWS CLI venv at {}: run scripts/test.sh",
        v.display()
    );
    v
}

fn config(dir: &TempDir, api: &str) -> String {
    let a = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        dir.path("in_a.pcap").display(),
        dir.path("out_a.pcap").display()
    );
    let b = format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        dir.path("in_b.pcap").display(),
        dir.path("out_b.pcap").display()
    );
    format!(
        r#"
[appliance]
firewall_name = "res-test"
firewall_arn = "{ARN}"
zone = "{ZONE}"
zone_id = "use1-az9"
description = "resource model test"
state_dir = "state"
[eal]
args = {eal}
mbufs = 4095
[[port_pair]]
a = "net_pcap0"
b = "net_pcap1"
[workers]
lcores = [1]
[flow_table]
capacity_per_worker = 4096
[policy]
file = "policy.toml"
source = "api"
[mgmt]
listen = "{api}"
auth = "sigv4"
region = "{REGION}"
[[mgmt.keys]]
access_key_id = "{KEY_ID}"
secret_access_key = "{SECRET}"
[logging]
flow_log = "off"
alert_log = "off"
audit_log = "audit.log"
"#,
        eal = eal_args(1, &[a, b])
    )
}

const SEED_TOML: &str = r#"
[stateless]
default_action = "forward_to_sfe"
fragment_default_action = "forward_to_sfe"
[stateful]
rule_order = "default_action_order"
stream_exception_policy = "drop"
"#;

struct Env {
    dir: TempDir,
    api: String,
}

impl Env {
    fn endpoint(&self) -> String {
        format!("https://{}", self.api)
    }

    fn cmd(&self, program: PathBuf) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir.0)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "");
        c
    }

    /// `aws network-firewall ARGS`: (success, stdout JSON or Null, stderr).
    fn aws(&self, args: &[&str]) -> (bool, Value, String) {
        let out = self
            .cmd(venv().join("bin/aws"))
            .arg("network-firewall")
            .args(args)
            .args(["--endpoint-url", &self.endpoint(), "--output", "json"])
            .arg("--ca-bundle")
            .arg(&test_tls().ca_file)
            .output()
            .expect("run aws");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
        };
        (
            out.status.success(),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (ok, v, err) = self.aws(args);
        assert!(ok, "aws {args:?} failed:\n{err}");
        v
    }

    /// Asserts the call fails with `code` and a message containing `needle`.
    fn refused(&self, args: &[&str], code: &str, needle: &str) {
        let (ok, v, err) = self.aws(args);
        assert!(!ok, "aws {args:?} succeeded: {v}");
        assert!(
            err.contains(&format!("({code})")) && err.contains(needle),
            "aws {args:?}: wanted {code} with '{needle}', got:\n{err}"
        );
    }

    fn helper(&self, name: &str) -> String {
        format!(
            "file://{}",
            repo().join("tests/helpers/aws").join(name).display()
        )
    }

    fn policy_file(&self, web: &str, app: &str, sep: &str) -> String {
        let text =
            std::fs::read_to_string(repo().join("tests/helpers/aws/main-firewall-policy.json"))
                .unwrap()
                .replace("@WEB@", web)
                .replace("@APP@", app)
                .replace("@SEP@", sep);
        let path = self.dir.path(&format!("policy-{sep}.json"));
        std::fs::write(&path, text).unwrap();
        format!("file://{}", path.display())
    }

    /// Every resource as the API describes it (the comparison across restarts).
    fn everything(&self) -> Value {
        let mut out = json!({
            "firewall": self.ok(&["describe-firewall", "--firewall-arn", ARN]),
            "metadata": self.ok(&["describe-firewall-metadata", "--firewall-arn", ARN]),
            "logging": self.ok(&["describe-logging-configuration", "--firewall-arn", ARN]),
            "policies": self.ok(&["list-firewall-policies"]),
            "groups": self.ok(&["list-rule-groups"]),
            "firewall_tags": self.ok(&["list-tags-for-resource", "--resource-arn", ARN]),
        });
        for p in out["policies"]["FirewallPolicies"]
            .as_array()
            .unwrap()
            .clone()
        {
            let arn = p["Arn"].as_str().unwrap();
            out[arn] = self.ok(&["describe-firewall-policy", "--firewall-policy-arn", arn]);
        }
        for g in out["groups"]["RuleGroups"].as_array().unwrap().clone() {
            let arn = g["Arn"].as_str().unwrap();
            out[arn] = self.ok(&["describe-rule-group", "--rule-group-arn", arn]);
        }
        out
    }

    fn native_policy(&self) -> Value {
        // The native API is SigV4-protected too: ask through the CLI-independent helper.
        let api = ctl::Api::new(
            &self.endpoint(),
            Some(&test_tls().ca_file),
            Some(sigv4::Credentials {
                access_key_id: KEY_ID.into(),
                secret_access_key: SECRET.into(),
            }),
            REGION.into(),
        )
        .unwrap();
        api.call("GET", "/v1/policy", "", None).unwrap()
    }
}

/// The policy summary without "policy epoch N: " (epochs restart at 1 with the process).
fn summary_of(v: Value) -> String {
    let s = v["summary"].as_str().unwrap_or_default().to_string();
    s.split_once(": ")
        .map_or(s.clone(), |(_, rest)| rest.to_string())
}

#[test]
fn resources_through_the_aws_cli_persist_across_restart_and_kill_9() {
    require_root();
    let dir = TempDir::new("aws-resources");
    write_pcap(&dir.path("in_a.pcap"), &[]);
    write_pcap(&dir.path("in_b.pcap"), &[]);
    std::fs::write(dir.path("policy.toml"), SEED_TOML).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let cfg = config(&dir, &api);
    let mut fg = Appliance::start(&dir.0, &cfg, &api);
    let env = Env { dir, api };

    // The seed TOML runs; the firewall reports it.
    let fw = env.ok(&["describe-firewall", "--firewall-name", "res-test"]);
    assert_eq!(fw["Firewall"]["FirewallArn"], ARN);
    assert_eq!(
        fw["Firewall"]["FirewallPolicyArn"],
        "arn:aws:network-firewall:us-east-1:000000000000:firewall-policy/res-test-file"
    );
    assert_eq!(fw["Firewall"]["Description"], "resource model test");
    assert_eq!(fw["FirewallStatus"]["Status"], "READY");
    assert_eq!(
        fw["FirewallStatus"]["ConfigurationSyncStateSummary"],
        "IN_SYNC"
    );
    assert_eq!(
        fw["FirewallStatus"]["SyncStates"][ZONE]["Attachment"]["EndpointId"],
        "use1-az9"
    );
    assert_eq!(
        env.ok(&["list-firewalls"])["Firewalls"][0]["FirewallName"],
        "res-test"
    );
    env.refused(
        &["describe-firewall", "--firewall-name", "other"],
        "ResourceNotFoundException",
        "this appliance is 'res-test'",
    );

    // Seed 004's rule groups, a stateless one, and what must be refused.
    let web = env.ok(&[
        "create-rule-group",
        "--rule-group-name",
        "WebTrafficRules",
        "--type",
        "STATEFUL",
        "--capacity",
        "100",
        "--rule-group",
        &env.helper("web-traffic-rules.json"),
        "--tags",
        "Key=Name,Value=Web-Traffic-Rules",
    ]);
    let web_arn = web["RuleGroupResponse"]["RuleGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        web_arn,
        "arn:aws:network-firewall:us-east-1:000000000000:stateful-rulegroup/WebTrafficRules"
    );
    assert_eq!(web["RuleGroupResponse"]["ConsumedCapacity"], 3);
    let app = env.ok(&[
        "create-rule-group",
        "--rule-group-name",
        "AppTrafficRules",
        "--type",
        "STATEFUL",
        "--capacity",
        "100",
        "--rule-group",
        &env.helper("app-traffic-rules.json"),
    ]);
    let app_arn = app["RuleGroupResponse"]["RuleGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    let stateless = r#"{"RulesSource":{"StatelessRulesAndCustomActions":{"StatelessRules":[{"Priority":10,"RuleDefinition":{"Actions":["aws:drop"],"MatchAttributes":{"Protocols":[6],"DestinationPorts":[{"FromPort":23,"ToPort":23}],"TCPFlags":[{"Flags":["SYN"],"Masks":["SYN","ACK"]}]}}}]}}}"#;
    env.ok(&[
        "create-rule-group",
        "--rule-group-name",
        "NoTelnet",
        "--type",
        "STATELESS",
        "--capacity",
        "10",
        "--rule-group",
        stateless,
    ]);
    env.refused(
        &[
            "create-rule-group",
            "--rule-group-name",
            "WebTrafficRules",
            "--type",
            "STATEFUL",
            "--capacity",
            "100",
            "--rule-group",
            &env.helper("web-traffic-rules.json"),
        ],
        "InvalidRequestException",
        "already exists",
    );
    env.refused(
        &["create-rule-group", "--rule-group-name", "Domains", "--type", "STATEFUL", "--capacity", "10",
          "--rule-group", r#"{"RulesSource":{"RulesSourceList":{"Targets":[".example.com"],"TargetTypes":["TLS_SNI"],"GeneratedRulesType":"DENYLIST"}}}"#],
        "InvalidRequestException",
        "RuleGroup.RulesSource.RulesSourceList",
    );
    env.refused(
        &[
            "create-rule-group",
            "--rule-group-name",
            "Small",
            "--type",
            "STATEFUL",
            "--capacity",
            "2",
            "--rule-group",
            &env.helper("web-traffic-rules.json"),
        ],
        "InvalidRequestException",
        "consume capacity 3, more than its Capacity 2",
    );
    env.refused(
        &[
            "create-rule-group",
            "--rule-group-name",
            "Http",
            "--type",
            "STATEFUL",
            "--capacity",
            "10",
            "--rules",
            "drop http any any -> any any (msg:\"x\"; sid:9;)",
        ],
        "InvalidRequestException",
        "unsupported protocol 'http'",
    );

    // The policy: refused while it names a group that does not exist, then created.
    env.refused(
        &[
            "create-firewall-policy",
            "--firewall-policy-name",
            "Broken",
            "--firewall-policy",
            &env.policy_file(
                &web_arn,
                "arn:aws:network-firewall:us-east-1:000000000000:stateful-rulegroup/Nope",
                "DROP",
            ),
        ],
        "InvalidRequestException",
        "no STATEFUL rule group",
    );
    let created = env.ok(&[
        "create-firewall-policy",
        "--firewall-policy-name",
        "MainFirewallPolicy",
        "--firewall-policy",
        &env.policy_file(&web_arn, &app_arn, "DROP"),
        "--description",
        "seed 004",
    ]);
    let policy_arn = created["FirewallPolicyResponse"]["FirewallPolicyArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        created["FirewallPolicyResponse"]["ConsumedStatefulRuleCapacity"],
        5
    );
    let fw_token = env.ok(&["describe-firewall", "--firewall-arn", ARN])["UpdateToken"]
        .as_str()
        .unwrap()
        .to_string();
    env.refused(
        &[
            "associate-firewall-policy",
            "--firewall-arn",
            ARN,
            "--firewall-policy-arn",
            &policy_arn,
            "--update-token",
            "00000000-0000-4000-8000-000000000000",
        ],
        "InvalidTokenException",
        "UpdateToken",
    );
    env.ok(&[
        "associate-firewall-policy",
        "--firewall-arn",
        ARN,
        "--firewall-policy-arn",
        &policy_arn,
        "--update-token",
        &fw_token,
    ]);
    let running = env.native_policy();
    assert!(
        running["file"]
            .as_str()
            .unwrap()
            .ends_with("resources/effective-policy.json"),
        "{running}"
    );
    assert!(
        summary_of(running.clone()).contains(
            "rule_order strict_order, stream_exception_policy drop, default_actions [drop_strict]"
        ),
        "{running}"
    );

    // Optimistic concurrency, then DROP -> REJECT.
    let described = env.ok(&[
        "describe-firewall-policy",
        "--firewall-policy-arn",
        &policy_arn,
    ]);
    let token = described["UpdateToken"].as_str().unwrap().to_string();
    assert_eq!(
        described["FirewallPolicyResponse"]["NumberOfAssociations"],
        1
    );
    let updated = env.ok(&[
        "update-firewall-policy",
        "--firewall-policy-arn",
        &policy_arn,
        "--update-token",
        &token,
        "--firewall-policy",
        &env.policy_file(&web_arn, &app_arn, "REJECT"),
    ]);
    let new_token = updated["UpdateToken"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    env.refused(
        &[
            "update-firewall-policy",
            "--firewall-policy-arn",
            &policy_arn,
            "--update-token",
            &token,
            "--firewall-policy",
            &env.policy_file(&web_arn, &app_arn, "DROP"),
        ],
        "InvalidTokenException",
        "UpdateToken",
    );
    env.refused(
        &[
            "update-firewall-policy",
            "--firewall-policy-name",
            "MainFirewallPolicy",
            "--update-token",
            &new_token,
            "--firewall-policy",
            &env.policy_file(&web_arn, &app_arn, "RESET"),
        ],
        "InvalidRequestException",
        "StreamExceptionPolicy: 'RESET' is not one of DROP, CONTINUE, REJECT",
    );
    let fw = env.ok(&["describe-firewall", "--firewall-arn", ARN]);
    assert_eq!(
        fw["FirewallStatus"]["SyncStates"][ZONE]["Config"]["MainFirewallPolicy"],
        json!({"SyncStatus": "IN_SYNC", "UpdateToken": new_token})
    );
    assert!(summary_of(env.native_policy()).contains("stream_exception_policy reject"));

    // Rule groups in use cannot go; a stale group token is refused.
    env.refused(
        &["delete-rule-group", "--rule-group-arn", &web_arn],
        "InvalidOperationException",
        "in use by firewall policy 'MainFirewallPolicy'",
    );
    env.refused(
        &[
            "update-rule-group",
            "--rule-group-arn",
            &web_arn,
            "--update-token",
            &token,
            "--rule-group",
            &env.helper("web-traffic-rules.json"),
        ],
        "InvalidTokenException",
        "WebTrafficRules",
    );
    let deleted = env.ok(&[
        "delete-rule-group",
        "--rule-group-name",
        "NoTelnet",
        "--type",
        "STATELESS",
    ]);
    assert_eq!(deleted["RuleGroupResponse"]["RuleGroupStatus"], "DELETING");

    // Logging (one change per call) and tags.
    let flow = r#"{"LogDestinationConfigs":[{"LogType":"FLOW","LogDestinationType":"CloudWatchLogs","LogDestination":{"logGroup":"/aws/networkfirewall/logs"}}]}"#;
    let both = r#"{"LogDestinationConfigs":[{"LogType":"FLOW","LogDestinationType":"S3","LogDestination":{"bucketName":"b"}},{"LogType":"ALERT","LogDestinationType":"CloudWatchLogs","LogDestination":{"logGroup":"/aws/networkfirewall/logs"}}]}"#;
    env.ok(&[
        "update-logging-configuration",
        "--firewall-arn",
        ARN,
        "--logging-configuration",
        flow,
    ]);
    env.refused(
        &[
            "update-logging-configuration",
            "--firewall-arn",
            ARN,
            "--logging-configuration",
            both,
        ],
        "InvalidRequestException",
        "only one log destination configuration per call",
    );
    env.ok(&[
        "tag-resource",
        "--resource-arn",
        ARN,
        "--tags",
        "Key=env,Value=lab",
        "Key=team,Value=net",
    ]);
    env.ok(&[
        "untag-resource",
        "--resource-arn",
        ARN,
        "--tag-keys",
        "team",
    ]);
    assert_eq!(
        env.ok(&["list-tags-for-resource", "--resource-arn", ARN])["Tags"],
        json!([{"Key": "env", "Value": "lab"}])
    );

    // boto3 (JSON 1.0) and the JS SDK (CBOR) see and change the same resources.
    let boto = {
        let out = env
            .cmd(venv().join("bin/python"))
            .arg(repo().join("tests/helpers/boto3_resources.py"))
            .args([&env.endpoint(), ARN, &policy_arn])
            .env("FLOWGATE_CA_FILE", &test_tls().ca_file)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(boto["policy_sep"], "REJECT", "{boto}");
    assert_eq!(boto["stale"], "InvalidTokenException", "{boto}");
    assert_eq!(
        boto["rule_groups"],
        json!(["AppTrafficRules", "WebTrafficRules"]),
        "{boto}"
    );
    assert_eq!(boto["updated_sep"], "CONTINUE", "{boto}");
    let sdk = {
        let out = Command::new("node")
            .arg(repo().join("tests/helpers/sdk/resources_cbor.mjs"))
            .args([&env.endpoint(), ARN, KEY_ID, SECRET, REGION, &policy_arn])
            .arg(&test_tls().ca_file)
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "JS SDK: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(sdk["wire"], json!({"protocol": ["rpc-v2-cbor"]}), "{sdk}");
    assert_eq!(sdk["firewall_policy_arn"], policy_arn.as_str(), "{sdk}");
    assert_eq!(sdk["sep_before"], "CONTINUE", "{sdk}");
    assert_eq!(sdk["sep_after"], "REJECT", "{sdk}");
    assert_eq!(sdk["stale"], "InvalidTokenException", "{sdk}");
    assert_eq!(sdk["missing"], "ResourceNotFoundException", "{sdk}");
    assert_eq!(sdk["last_modified_is_date"], true, "{sdk}");

    // Every resource survives a clean restart and a kill -9, and the policy in force too.
    let before = env.everything();
    let summary = summary_of(env.native_policy());
    fg.stop();
    let mut fg = Appliance::start(&env.dir.0, &cfg, &env.api);
    assert_eq!(env.everything(), before, "after a restart");
    assert_eq!(summary_of(env.native_policy()), summary);
    let mut child = fg.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut fg = Appliance::start(&env.dir.0, &cfg, &env.api);
    assert_eq!(env.everything(), before, "after kill -9");
    assert_eq!(summary_of(env.native_policy()), summary);

    // Every change is in the audit log.
    let audit = std::fs::read_to_string(env.dir.path("audit.log")).unwrap();
    for action in [
        "CreateRuleGroup",
        "CreateFirewallPolicy",
        "AssociateFirewallPolicy",
        "UpdateFirewallPolicy",
        "DeleteRuleGroup",
        "TagResource",
    ] {
        assert!(
            audit.contains(&format!("\"{action}\"")),
            "{action} not audited"
        );
    }
    fg.stop();
}
