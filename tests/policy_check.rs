//! Bad policy files are refused at start with a precise message (file, line, sid) and the
//! appliance does not start; the lab policy and its variants pass `flowgate --check`.

mod common;

use std::process::Command;

fn check(policy: &std::path::Path) -> (bool, String) {
    check_with(policy, "", "")
}

/// `flowgate --check` on a minimal config with `in_policy` added to its `[policy]` table
/// and `extra` appended (after `[mgmt]`); (passed, output).
fn check_with(policy: &std::path::Path, in_policy: &str, extra: &str) -> (bool, String) {
    let dir = common::TempDir::new("check");
    let cfg = format!(
        r#"
[appliance]
firewall_name = "check"
firewall_arn = "arn:aws:network-firewall:us-east-1:000000000000:firewall/check"
zone = "z"
state_dir = "state"
[eal]
args = ["--no-huge"]
[[port_pair]]
a = "net_null0"
b = "net_null1"
[workers]
lcores = [1]
[policy]
file = "{}"
{in_policy}
[mgmt]
auth = "none"
{extra}
"#,
        policy.display()
    );
    std::fs::write(dir.path("fg.toml"), cfg).unwrap();
    let out = Command::new(common::flowgate_bin())
        .arg("--config")
        .arg(dir.path("fg.toml"))
        .arg("--check")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn bad_policies_are_refused_at_start_with_a_precise_message() {
    let bad = common::repo().join("configs/policies/bad");
    let cases = [
        ("syntax.toml", "syntax.rules:"),
        ("duplicate-sid.toml", "duplicate sid"),
        ("unknown-option.toml", "unsupported rule option"),
        ("priority-strict.toml", "priority"),
        ("unknown-key.toml", "unknown field"),
        ("missing-rules-file.toml", "missing"),
    ];
    for (file, needle) in cases {
        let (ok, text) = check(&bad.join(file));
        assert!(!ok, "{file} was accepted:\n{text}");
        assert!(text.contains("policy refused:"), "{file}: {text}");
        assert!(
            text.contains(needle),
            "{file}: expected '{needle}' in:\n{text}"
        );
    }
}

#[test]
fn shipped_policies_pass_the_check() {
    let c = common::repo().join("configs");
    for p in [
        "lab-policy.toml",
        "policies/lab-deny-7001.toml",
        "policies/lab-strict.toml",
        // Seed 004 as published (addresses mapped): read in strict order.
        "aws/seed-004.yaml",
    ] {
        let (ok, text) = check(&c.join(p));
        assert!(ok, "{p}: {text}");
        assert!(text.contains("policy OK"), "{p}: {text}");
    }
}

/// `--check` refuses what would leave the appliance unmanageable or unable to start, with
/// the key named; each of these passed before.
#[test]
fn check_refuses_configs_start_up_or_the_api_cannot_live_with() {
    let policy = common::repo().join("configs/lab-policy.toml");
    let cases = [
        (
            "header_timeout_ms = 0",
            "header_timeout_ms and unauthenticated_timeout_ms must be >= 100",
        ),
        ("metrics_listen = \"127.0.0.1:8480\"", "mgmt.metrics_listen"),
        (
            "[flow_table.timeouts]\ntcp_new = 0",
            "flow_table.timeouts.tcp_new",
        ),
        (
            "[flow_table.emergency_timeouts]\nother_established = 0",
            "emergency_timeouts.other_established",
        ),
        ("[operations]\nworker_timeout_ms = 0", "worker_timeout_ms"),
        (
            "[operations]\nhistory_retention_seconds = 0",
            "history_retention_seconds",
        ),
        ("[logging]\nqueue_records = 0", "queue_records"),
        (
            "[logging]\naudit_log = \"/proc/version/audit.log\"",
            "logging.audit_log",
        ),
    ];
    for (extra, key) in cases {
        let (ok, text) = check_with(&policy, "", extra);
        assert!(!ok, "accepted with {extra}:\n{text}");
        assert!(text.contains(key), "{extra}: expected '{key}' in:\n{text}");
    }
    let (ok, text) = check_with(&policy, "", "");
    assert!(ok, "{text}");
}

/// A policy over `policy.max_rules` is refused by `--check` with the count and the limit.
#[test]
fn check_refuses_a_policy_over_max_rules() {
    let dir = common::TempDir::new("maxrules");
    let rules: String = (1..=41)
        .map(|i| format!("drop tcp any any -> 198.18.0.{i} 443 (msg:\"r\"; sid:{i};)\n"))
        .collect();
    std::fs::write(dir.path("g.rules"), rules).unwrap();
    std::fs::write(
        dir.path("p.toml"),
        "[stateful]\nrule_order = \"default_action_order\"\n[[stateful.rule_groups]]\nname = \"g\"\nrules_file = \"g.rules\"\n",
    )
    .unwrap();
    let (ok, text) = check_with(&dir.path("p.toml"), "max_rules = 40", "");
    assert!(
        !ok && text.contains("41 rules") && text.contains("policy.max_rules = 40"),
        "{text}"
    );
    let (ok, text) = check_with(&dir.path("p.toml"), "max_rules = 41", "");
    assert!(ok, "{text}");
}
