//! Fuzzes the Suricata rule parser: the input is the text of a `.rules` file referenced by a
//! fixed policy (the parser's only public entry is the policy loader). A rules file that
//! loads compiles.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use dataplane::policy::{CompiledPolicy, Policy};
use libfuzzer_sys::fuzz_target;

const POLICY: &str = r#"
[variables]
HOME_NET = ["198.18.0.0/15", "2001:2::/48"]
[port_variables]
WEB = ["80", "443"]
[stateless]
default_action = "forward_to_sfe"
[stateful]
rule_order = "strict_order"
default_actions = ["aws:drop_established", "aws:alert_established"]
[[stateful.rule_groups]]
name = "fuzz"
rules_file = "fuzz.rules"
"#;

/// Scratch directory (tmpfs when available) holding the policy and the rules under test.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("fg-fuzz-rules-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(rules) = std::str::from_utf8(data) else {
        return;
    };
    let d = dir();
    std::fs::write(d.join("fuzz.rules"), rules).expect("write rules");
    let Ok(policy) = Policy::from_toml_str(POLICY, &d.join("policy.toml")) else {
        return;
    };
    let compiled = CompiledPolicy::compile(&policy, 1);
    assert!(compiled.rules().len() >= policy.rule_count());
});
