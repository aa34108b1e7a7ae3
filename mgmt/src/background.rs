//! How the management side's background threads (flow-log writer, operation-history
//! writer) start. On the management core these share one CPU with the collector, which
//! drains the workers' rings and so paces every capture and flush: the binary installs a
//! hook here that lowers their priority (the mgmt crate makes no such system calls
//! itself), once, before any of them starts. Without a hook they run as they are.

use std::sync::OnceLock;

static SETUP: OnceLock<fn()> = OnceLock::new();

/// Installs the hook every background thread runs first. Later calls are ignored.
pub fn set_thread_setup(setup: fn()) {
    let _ = SETUP.set(setup);
}

/// Called first thing on each background thread.
pub fn enter() {
    if let Some(setup) = SETUP.get() {
        setup();
    }
}
