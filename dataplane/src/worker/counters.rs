//! Per-worker counters. Each worker owns its copy outright and updates plain integers;
//! the management thread aggregates published snapshots. No atomics on the packet path.

use super::MAX_PORTS;
use crate::flow::TcpInvalid;

/// Why the data plane dropped a packet (the `reason` label of the drop metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    /// A stateful rule or default action.
    Policy = 0,
    /// A stateless rule or default action.
    Stateless = 1,
    /// Midstream traffic under the stream exception policy.
    Midstream = 2,
    /// Malformed or truncated frame.
    Malformed = 3,
    /// New flow refused because the shard is full.
    TableFull = 4,
    /// TX queue full: the unsent tail of a burst.
    TxFull = 5,
    /// Non-IP frame with `non_ip_action = "drop"`.
    NonIp = 6,
    /// A TCP segment outside its flow's window (see `flow::tcp`), not in liberal mode.
    TcpInvalid = 7,
}

impl DropReason {
    pub const COUNT: usize = 8;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Policy,
        DropReason::Stateless,
        DropReason::Midstream,
        DropReason::Malformed,
        DropReason::TableFull,
        DropReason::TxFull,
        DropReason::NonIp,
        DropReason::TcpInvalid,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Policy => "policy",
            DropReason::Stateless => "stateless",
            DropReason::Midstream => "midstream",
            DropReason::Malformed => "malformed",
            DropReason::TableFull => "table_full",
            DropReason::TxFull => "tx_full",
            DropReason::NonIp => "non_ip",
            DropReason::TcpInvalid => "tcp_invalid",
        }
    }
}

/// Per-port traffic as one worker saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Indexed by `DropReason as usize`; a drop is counted on the port it arrived on.
    pub dropped: [u64; DropReason::COUNT],
}

/// Everything one worker counts. `Copy`, so a snapshot travels in a ring slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerCounters {
    pub ports: [PortCounters; MAX_PORTS],
    pub flows_created: u64,
    pub flows_closed: u64,
    pub flows_expired: u64,
    pub flows_flushed: u64,
    pub flows_evicted: u64,
    pub flows_active: u64,
    pub table_capacity: u64,
    pub table_full_events: u64,
    pub emergency_mode: bool,
    /// Midstream packets by outcome.
    pub midstream_dropped: u64,
    pub midstream_continued: u64,
    pub midstream_rejected: u64,
    pub rsts_sent: u64,
    pub rst_alloc_failed: u64,
    /// RSTs not generated because the worker's RST token bucket was empty.
    pub rsts_rate_limited: u64,
    /// Packets of rejected flows dropped without another RST (tombstones, RST sent).
    pub reject_silenced: u64,
    /// TCP segments that did not count, by [`TcpInvalid`] reason (dropped unless
    /// liberal, or forwarded and ignored — see `TcpInvalid::drops`).
    pub tcp_invalid: [u64; TcpInvalid::COUNT],
    /// Flow index placements that probed far (see `FlowShard::long_probes`).
    pub hash_long_probes: u64,
    /// Packets by engine and action: `[engine][action]`, engine 0 stateless / 1 stateful,
    /// action 0 pass / 1 drop / 2 reject / 3 alert.
    pub by_engine_action: [[u64; 4]; 2],
    pub malformed: u64,
    pub non_ip: u64,
    /// Events (flow ends, alerts) the worker could not hand to the management thread.
    pub events_dropped: u64,
    pub policy_epoch: u32,
    /// Poll-loop iterations: the heartbeat the management thread watches.
    pub loops: u64,
    /// Capture/flush results not yet sent because the reply ring was full (backpressure).
    pub scan_stalls: u64,
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            ports: [PortCounters::default(); MAX_PORTS],
            flows_created: 0,
            flows_closed: 0,
            flows_expired: 0,
            flows_flushed: 0,
            flows_evicted: 0,
            flows_active: 0,
            table_capacity: 0,
            table_full_events: 0,
            emergency_mode: false,
            midstream_dropped: 0,
            midstream_continued: 0,
            midstream_rejected: 0,
            rsts_sent: 0,
            rst_alloc_failed: 0,
            rsts_rate_limited: 0,
            reject_silenced: 0,
            tcp_invalid: [0; TcpInvalid::COUNT],
            hash_long_probes: 0,
            by_engine_action: [[0; 4]; 2],
            malformed: 0,
            non_ip: 0,
            events_dropped: 0,
            policy_epoch: 0,
            loops: 0,
            scan_stalls: 0,
        }
    }
}

impl WorkerCounters {
    #[inline]
    pub fn drop(&mut self, port: usize, reason: DropReason, n: u64) {
        if let Some(p) = self.ports.get_mut(port) {
            p.dropped[reason as usize] += n;
        }
    }
}
