//! Fuzzes AWS-shaped policy files (`policy::aws_file`): the first byte picks YAML or JSON,
//! the rest is the file. Reading, CloudFormation intrinsics and translation into a policy
//! must never panic; whatever translates must compile.
#![no_main]

use std::path::Path;

use dataplane::policy::{aws_file, CompiledPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let file = if pick & 1 == 0 { Path::new("p.yaml") } else { Path::new("p.json") };
    if let Ok(p) = aws_file::policy_from_aws_text(text, file) {
        let _ = CompiledPolicy::compile(&p, 1);
    }
});
