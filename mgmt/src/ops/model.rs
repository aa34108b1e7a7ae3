//! The records a flow operation is made of — its request, its lifecycle state, per-worker
//! progress and one result per matched flow — and the errors the operation manager returns.
//! These are what the history persists and what both APIs render.

use std::net::IpAddr;

use dataplane::flow::FlowState;
use dataplane::ops::visible_ports;
use dataplane::packet::{addr_to_ip, Addr, Verdict};
use dataplane::worker::FlowRecord;
use serde::{Deserialize, Serialize};

use crate::clock::{unix_secs, Clock};

/// `FlowOperationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    #[serde(rename = "FLOW_CAPTURE")]
    Capture,
    #[serde(rename = "FLOW_FLUSH")]
    Flush,
}

impl OpKind {
    pub const ALL: [OpKind; 2] = [OpKind::Capture, OpKind::Flush];

    /// The AWS enum value.
    pub fn aws_name(self) -> &'static str {
        match self {
            OpKind::Capture => "FLOW_CAPTURE",
            OpKind::Flush => "FLOW_FLUSH",
        }
    }

    /// The native API / CLI / metrics label.
    pub fn short_name(self) -> &'static str {
        match self {
            OpKind::Capture => "capture",
            OpKind::Flush => "flush",
        }
    }

    /// Accepts the AWS enum value or the short name, case-insensitively.
    pub fn parse(s: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| {
            k.aws_name().eq_ignore_ascii_case(s) || k.short_name().eq_ignore_ascii_case(s)
        })
    }
}

/// `FlowOperationStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpStatus {
    InProgress,
    Completed,
    CompletedWithErrors,
    Failed,
}

impl OpStatus {
    pub const ALL: [OpStatus; 4] = [
        OpStatus::InProgress,
        OpStatus::Completed,
        OpStatus::CompletedWithErrors,
        OpStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::InProgress => "IN_PROGRESS",
            OpStatus::Completed => "COMPLETED",
            OpStatus::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            OpStatus::Failed => "FAILED",
        }
    }
}

/// Which API's field names validation errors use, so each caller reads its own vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    #[default]
    Aws,
    Native,
}

/// One filter exactly as the caller gave it (kept verbatim so Describe echoes it back).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub source_port: Option<String>,
    pub destination_port: Option<String>,
    /// IANA numbers as strings (names such as `tcp` are accepted too); empty = any.
    pub protocols: Vec<String>,
}

/// What the caller asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    pub kind: OpKind,
    pub filters: Vec<FilterSpec>,
    pub min_age_seconds: i64,
    #[serde(default)]
    pub either_direction: bool,
    /// Flow state names (`ESTABLISHED`, …); empty = every active state.
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default)]
    pub verdict_changed: bool,
    /// Vocabulary of validation errors; not persisted.
    #[serde(skip)]
    pub naming: Naming,
}

impl StartRequest {
    /// An AWS-style request: filters and minimum age only.
    pub fn new(kind: OpKind, filters: Vec<FilterSpec>, min_age_seconds: i64) -> StartRequest {
        StartRequest {
            kind,
            filters,
            min_age_seconds,
            either_direction: false,
            states: Vec::new(),
            verdict_changed: false,
            naming: Naming::Aws,
        }
    }
}

/// How far one worker got with its share of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerScan {
    /// Scan requested, no `ScanDone` yet.
    Running,
    /// Scanned its whole shard.
    Done,
    /// Stopped early on our request (result cap, timeout).
    Cancelled,
    /// Stopped early on its own (e.g. shutdown).
    Aborted,
    /// Did not finish within the worker timeout.
    TimedOut,
    /// The command could not be delivered (ring full).
    Unreachable,
}

impl WorkerScan {
    pub fn is_finished(self) -> bool {
        self != WorkerScan::Running
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerProgress {
    pub worker: u16,
    pub scan: WorkerScan,
    pub scanned: u64,
    pub matched: u64,
}

/// One flow operation: request, lifecycle and counts. Results are kept apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: OpKind,
    pub status: OpStatus,
    /// AWS-visible `StatusMessage` (always within `^[a-zA-Z0-9- ]+$`).
    pub message: Option<String>,
    /// The operator-facing explanation (native API and CLI).
    pub detail: Option<String>,
    pub zone: String,
    /// Access key id of the caller (`anonymous` without auth).
    pub caller: String,
    /// Request time, microseconds since the Unix epoch.
    pub requested_at_us: u64,
    pub completed_at_us: Option<u64>,
    pub request: StartRequest,
    pub workers: Vec<WorkerProgress>,
    /// Flows matched (for a flush: removed), including any beyond the result cap.
    pub flows_matched: u64,
    /// Result records kept (at most the result cap).
    pub results_kept: u64,
}

impl Operation {
    pub fn summary(&self) -> OperationSummary {
        OperationSummary {
            id: self.id.clone(),
            kind: self.kind,
            status: self.status,
            requested_at_us: self.requested_at_us,
        }
    }

    /// `FlowRequestTimestamp` as epoch seconds.
    pub fn requested_at_secs(&self) -> f64 {
        self.requested_at_us as f64 / 1e6
    }
}

/// `FlowOperationMetadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationSummary {
    pub id: String,
    pub kind: OpKind,
    pub status: OpStatus,
    pub requested_at_us: u64,
}

impl OperationSummary {
    pub fn requested_at_secs(&self) -> f64 {
        self.requested_at_us as f64 / 1e6
    }
}

/// One matched flow, in the opener's direction, as seen when its worker scanned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowResult {
    pub src: Addr,
    pub dst: Addr,
    /// 0 for protocols without ports.
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub vlan: u16,
    pub state: FlowState,
    pub verdict: Verdict,
    pub sid: u32,
    pub epoch: u32,
    pub worker: u16,
    pub flow_id: u64,
    /// Whole seconds between the flow's first packet and the scan.
    pub age_secs: u64,
    /// Wall time of the flow's first packet, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// `[from opener, from responder]`.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
}

impl FlowResult {
    pub fn from_record(r: &FlowRecord, clock: &Clock) -> FlowResult {
        let (src_port, dst_port) = visible_ports(&r.tuple);
        let age_ticks = r.observed_at.saturating_sub(r.first_seen);
        FlowResult {
            src: r.tuple.src,
            dst: r.tuple.dst,
            src_port,
            dst_port,
            protocol: r.tuple.proto,
            vlan: r.vlan,
            state: r.state,
            verdict: r.verdict,
            sid: r.sid,
            epoch: r.epoch,
            worker: r.worker,
            flow_id: r.flow_id,
            age_secs: age_ticks / clock.ticks_per_sec.max(1),
            first_seen_ms: (unix_secs(clock.wall(r.first_seen)) * 1000.0) as u64,
            pkts: r.pkts,
            bytes: r.bytes,
        }
    }

    pub fn src_ip(&self) -> IpAddr {
        addr_to_ip(self.src)
    }

    pub fn dst_ip(&self) -> IpAddr {
        addr_to_ip(self.dst)
    }

    /// AWS `Address.AddressDefinition` of a host: `/32` or `/128`.
    pub fn host_cidr(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(_) => format!("{ip}/32"),
            IpAddr::V6(_) => format!("{ip}/128"),
        }
    }

    /// AWS `PacketCount` (int32): both directions, saturating.
    pub fn packet_count(&self) -> i32 {
        i32::try_from(self.pkts[0].saturating_add(self.pkts[1])).unwrap_or(i32::MAX)
    }

    /// AWS `ByteCount` (int64): both directions, saturating.
    pub fn byte_count(&self) -> i64 {
        i64::try_from(self.bytes[0].saturating_add(self.bytes[1])).unwrap_or(i64::MAX)
    }

    /// AWS `Age` (int32).
    pub fn age_i32(&self) -> i32 {
        i32::try_from(self.age_secs).unwrap_or(i32::MAX)
    }
}

/// Why the operation manager refused or could not serve a call. Each maps onto one AWS
/// error type; messages name the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Another operation is in progress in this zone.
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Internal(String),
}

impl OpsError {
    /// The AWS `__type`.
    pub fn aws_type(&self) -> &'static str {
        match self {
            OpsError::InvalidRequest(_) => "InvalidRequestException",
            OpsError::NotFound(_) => "ResourceNotFoundException",
            OpsError::Throttled(_) => "ThrottlingException",
            OpsError::Internal(_) => "InternalServerError",
        }
    }

    /// HTTP status on the AWS API (SPEC §6: not-found is 400 like the service, throttling 429).
    pub fn aws_status(&self) -> u16 {
        match self {
            OpsError::InvalidRequest(_) | OpsError::NotFound(_) => 400,
            OpsError::Throttled(_) => 429,
            OpsError::Internal(_) => 500,
        }
    }

    /// HTTP status on the native API (REST conventions).
    pub fn native_status(&self) -> u16 {
        match self {
            OpsError::InvalidRequest(_) => 400,
            OpsError::NotFound(_) => 404,
            OpsError::Throttled(_) => 429,
            OpsError::Internal(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            OpsError::InvalidRequest(m)
            | OpsError::NotFound(m)
            | OpsError::Throttled(m)
            | OpsError::Internal(m) => m,
        }
    }
}
