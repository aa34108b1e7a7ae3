//! Bad policy files are refused at start with a precise message (file, line, sid) and the
//! appliance does not start; the lab policy and its variants pass `flowgate --check`.

mod common;

use std::process::Command;

fn check(policy: &std::path::Path) -> (bool, String) {
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
[mgmt]
auth = "none"
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
    ] {
        let (ok, text) = check(&c.join(p));
        assert!(ok, "{p}: {text}");
        assert!(text.contains("policy OK"), "{p}: {text}");
    }
}
