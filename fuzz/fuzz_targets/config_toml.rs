//! Fuzzes the appliance config loader (`Config::from_str`): TOML parsing and validation
//! must refuse bad input with a `ConfigError`, never panic. A config that loads renders
//! its error type's message path for a known key without panicking either.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mgmt::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str(text, Path::new("/nonexistent/fuzz/flowgate.toml")) {
        Ok(cfg) => {
            assert!(!cfg.port_pairs.is_empty(), "a valid config has a port pair");
            assert!(!cfg.workers.lcores.is_empty(), "a valid config has workers");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
