//! Per-worker counters. Each worker owns its copy outright and updates plain integers;
//! the management thread aggregates published snapshots. No atomics on the packet path.

use super::MAX_PORTS;
use crate::flow::TcpInvalid;
use crate::fragments::FragCounters;
use crate::wire::ParseError;

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
    /// A later fragment with no first fragment to follow, or an overlapping / malformed
    /// fragment (see [`crate::fragments`]).
    Fragment = 8,
    /// An ICMP error quoting a flow that does not exist (or a malformed quote).
    IcmpUnrelated = 9,
}

impl DropReason {
    pub const COUNT: usize = 10;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Policy,
        DropReason::Stateless,
        DropReason::Midstream,
        DropReason::Malformed,
        DropReason::TableFull,
        DropReason::TxFull,
        DropReason::NonIp,
        DropReason::TcpInvalid,
        DropReason::Fragment,
        DropReason::IcmpUnrelated,
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
            DropReason::Fragment => "fragment",
            DropReason::IcmpUnrelated => "icmp_unrelated",
        }
    }
}

/// The EtherTypes non-IP frames are counted by (`flowgate_non_ip_packets_total{ethertype}`);
/// anything else is counted as `other`, IEEE 802.3 length-field frames (LLC, STP) as `llc`.
/// A fixed list keeps the metric's cardinality bounded whatever the wire carries.
pub const NON_IP_ETHERTYPES: [(u16, &str); 14] = [
    (0x0806, "arp"),
    (0x8035, "rarp"),
    (0x88cc, "lldp"),
    (0x8809, "slow_protocols"),
    (0x888e, "eapol"),
    (0x88e5, "macsec"),
    (0x88f7, "ptp"),
    (0x8847, "mpls"),
    (0x8848, "mpls_multicast"),
    (0x8863, "pppoe_discovery"),
    (0x8864, "pppoe_session"),
    (0x8906, "fcoe"),
    (0x22f0, "avtp"),
    (0x9000, "loopback"),
];
/// Slots of [`WorkerCounters::non_ip_by_ethertype`]: the list, then `llc`, then `other`.
pub const NON_IP_SLOTS: usize = NON_IP_ETHERTYPES.len() + 2;

/// The counter slot of a non-IP frame's EtherType, and its label.
#[inline]
pub fn non_ip_slot(ethertype: u16) -> usize {
    if ethertype < 0x0600 {
        return NON_IP_ETHERTYPES.len();
    }
    NON_IP_ETHERTYPES
        .iter()
        .position(|&(t, _)| t == ethertype)
        .unwrap_or(NON_IP_ETHERTYPES.len() + 1)
}

/// The label of a [`non_ip_slot`].
pub fn non_ip_label(slot: usize) -> &'static str {
    NON_IP_ETHERTYPES.get(slot).map_or(
        if slot == NON_IP_ETHERTYPES.len() {
            "llc"
        } else {
            "other"
        },
        |&(_, l)| l,
    )
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
    /// Malformed frames by [`ParseError::index`].
    pub malformed_by_reason: [u64; ParseError::COUNT],
    /// Non-IP frames by [`non_ip_slot`].
    pub non_ip_by_ethertype: [u64; NON_IP_SLOTS],
    pub fragments: FragCounters,
    /// ICMP errors forwarded because the flow they quote exists and is allowed.
    pub icmp_related_passed: u64,
    /// ICMP errors dropped because the flow they quote is denied.
    pub icmp_related_dropped: u64,
    /// ICMP errors dropped because the flow they quote does not exist or the quote is bad.
    pub icmp_unrelated: u64,
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
            malformed_by_reason: [0; ParseError::COUNT],
            non_ip_by_ethertype: [0; NON_IP_SLOTS],
            fragments: FragCounters::default(),
            icmp_related_passed: 0,
            icmp_related_dropped: 0,
            icmp_unrelated: 0,
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
