//! How the management side's background threads (flow-log writer, operation-history
//! writer) start. On the management core these share one CPU with the collector, which
//! drains the workers' rings and so paces every capture and flush: the binary installs a
//! hook here that lowers their priority (the mgmt crate makes no such system calls
//! itself), once, before any of them starts. Without a hook they run as they are.
//!
//! The same goes for faulting in, at start, the buffer the collector fills with an
//! operation's results (a capture of a million flows appends ~140 MB while the scan runs;
//! page faults on fresh memory were most of the collector's time).

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use dataplane::worker::FlowRecord;

static SETUP: OnceLock<fn()> = OnceLock::new();
static RESULTS_PREFAULT: OnceLock<fn(&[MaybeUninit<FlowRecord>])> = OnceLock::new();

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

/// Installs what faults in the result buffer reserved at start (its unused capacity).
/// Later calls are ignored.
pub fn set_results_prefault(prefault: fn(&[MaybeUninit<FlowRecord>])) {
    let _ = RESULTS_PREFAULT.set(prefault);
}

/// Called on the result buffer reserved at start.
pub fn prefault_results(spare: &[MaybeUninit<FlowRecord>]) {
    if let Some(prefault) = RESULTS_PREFAULT.get() {
        prefault(spare);
    }
}
