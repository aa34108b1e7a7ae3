//! Fuzzes the policy loader (`Policy::from_toml_str`): TOML, variables, stateless rules,
//! inline stateful rule tables. Beyond "does not panic": a policy that loads compiles, and
//! its rule count survives compilation.
#![no_main]

use std::path::Path;

use dataplane::policy::{CompiledPolicy, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory with no rules files: `rules_file` references fail cleanly.
    let Ok(policy) = Policy::from_toml_str(text, Path::new("/nonexistent/fuzz/policy.toml")) else {
        return;
    };
    let compiled = CompiledPolicy::compile(&policy, 1);
    assert!(compiled.rules().len() >= policy.rule_count());
});
