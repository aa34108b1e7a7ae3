//! Messages between the management thread and a worker. Each worker has its own rings
//! (command in; reply, stats and events out), so every ring has exactly one producer and
//! one consumer. Workers never allocate: anything boxed travels from and back to the
//! management thread, which also frees it.

use std::sync::Arc;

use crate::flow::{EndReason, FlowEntry, FlowState};
use crate::ops::FlowMatch;
use crate::packet::{Tuple, Verdict};
use crate::policy::CompiledPolicy;

/// Management → worker.
pub enum Command {
    /// Publish a counters snapshot now (besides the periodic ones).
    Stats,
    /// Judge new flows by `policy` from now on; the old policy and its rule-hit counters
    /// come back in [`Reply::PolicySwapped`] so they are freed on the management thread.
    SwapPolicy {
        policy: Arc<CompiledPolicy>,
        rule_hits: Box<[u64]>,
    },
    /// Copy the current policy's rule-hit counters into `buf` (sized by the sender).
    RuleHits { buf: Box<[u64]> },
    /// Start a capture or flush scan of the whole shard, in slices between bursts.
    StartScan(Box<ScanRequest>),
    /// Stop a running scan early (result cap reached, timeout, shutdown).
    CancelScan { op: u64 },
    /// Fault injection (tests only; enabled by config): stop polling for this long.
    Stall { millis: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKind {
    Capture,
    Flush,
}

pub struct ScanRequest {
    pub op: u64,
    pub kind: ScanKind,
    pub filter: FlowMatch,
}

/// Worker → management.
pub enum Reply {
    PolicySwapped {
        epoch: u32,
        old: Arc<CompiledPolicy>,
        old_hits: Box<[u64]>,
    },
    RuleHits {
        epoch: u32,
        hits: Box<[u64]>,
    },
    /// One matched flow of a running scan. For a flush the flow is already removed and
    /// this reply is also its end-of-flow record (`flushed`): the reply ring is lossless
    /// (the scan waits for room), so a flushed flow's log record is never dropped, and the
    /// management side writes it without holding the operation up.
    ScanFlow {
        op: u64,
        record: FlowRecord,
        flushed: bool,
    },
    /// The worker finished (or cancelled) its scan.
    ScanDone {
        op: u64,
        scanned: u64,
        matched: u64,
        cancelled: bool,
    },
}

/// Worker → management, for the flow and alert logs.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    FlowEnd {
        record: FlowRecord,
        reason: EndReason,
    },
    Alert(AlertRecord),
}

/// A point-in-time copy of one flow entry, as results and logs need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow as opened: `src` is the opener.
    pub tuple: Tuple,
    pub vlan: u16,
    pub state: FlowState,
    pub verdict: Verdict,
    pub sid: u32,
    pub epoch: u32,
    /// `[from opener, from responder]`.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub tcp_flags: [u8; 2],
    pub ttl_min: [u8; 2],
    pub ttl_max: [u8; 2],
    pub first_seen: u64,
    pub last_seen: u64,
    /// When the worker took this copy (ticks): the reference for `Age`.
    pub observed_at: u64,
    pub worker: u16,
    /// Stable id for log correlation (both netflow records of a flow share it).
    pub flow_id: u64,
}

impl FlowRecord {
    pub fn of(e: &FlowEntry, worker: u16, now: u64) -> FlowRecord {
        use crate::flow::Dir;
        let (omin, omax) = e.ttl_range(Dir::Orig);
        let (rmin, rmax) = e.ttl_range(Dir::Reply);
        let tuple = e.opener_tuple();
        FlowRecord {
            tuple,
            vlan: e.key().vlan(),
            state: e.state(),
            verdict: e.verdict(),
            sid: e.sid(),
            epoch: e.epoch(),
            pkts: [e.pkts(Dir::Orig), e.pkts(Dir::Reply)],
            bytes: [e.bytes(Dir::Orig), e.bytes(Dir::Reply)],
            tcp_flags: [e.tcp_flags_seen(Dir::Orig), e.tcp_flags_seen(Dir::Reply)],
            ttl_min: [omin, rmin],
            ttl_max: [omax, rmax],
            first_seen: e.first_seen(),
            last_seen: e.last_seen(),
            observed_at: now,
            worker,
            flow_id: flow_id(e.key().fingerprint(), e.first_seen(), worker),
        }
    }
}

/// Suricata-style 64-bit flow id: unique enough per appliance run, stable for a flow.
fn flow_id(hash: u64, first_seen: u64, worker: u16) -> u64 {
    let x = hash ^ first_seen.rotate_left(29) ^ ((worker as u64) << 48);
    // splitmix64 finaliser: spreads the bits; mask to 52 bits so JSON numbers stay exact.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & ((1 << 52) - 1)
}

/// A rule hit worth an alert-log line (`alert`, `drop`, `reject` rules and drop defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertRecord {
    /// The packet's tuple in its own direction.
    pub tuple: Tuple,
    pub vlan: u16,
    /// Index into the policy's rules (`policy::NO_RULE` for default actions).
    pub rule_index: u32,
    pub sid: u32,
    pub epoch: u32,
    /// The flow's final verdict.
    pub verdict: Verdict,
    /// True when the alert came from an `alert` rule/default (traffic allowed by it).
    pub alert_only: bool,
    /// The packet travelled from the flow's opener.
    pub to_server: bool,
    pub at: u64,
    pub worker: u16,
    pub flow_id: u64,
}
