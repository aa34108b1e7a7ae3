//! The per-worker engine and its protocol with the management thread.
//!
//! * [`counters`]: plain per-worker counters, flushed from locals once per burst and
//!   published to the management thread as snapshots (never shared atomics).
//! * [`cmd`]: the command/reply/event messages carried by the SPSC rings.
//! * [`engine`]: the burst engine: parse → stateless → key/hash/prefetch → lookup/create →
//!   stateful verdict → action per packet; plus command handling, incremental expiry and
//!   sliced capture/flush scans between bursts.
//! * [`reject`]: the per-worker RST token bucket and where reject RSTs go.

pub mod cmd;
pub mod counters;
pub mod engine;
pub mod reject;

/// Ports a worker can address (port pairs × 2).
pub const MAX_PORTS: usize = 16;
/// Largest burst the engine processes at once.
pub const MAX_BURST: usize = 64;
/// Room for one generated RST frame (Ethernet + 2 VLAN tags + IPv6 + TCP, padded).
pub const RST_FRAME_MAX: usize = 128;

pub use cmd::{Command, Event, FlowRecord, Reply};
pub use counters::{DropReason, WorkerCounters};
pub use engine::{Action, Engine, EngineConfig, Rst};
pub use reject::{RejectRst, RstBudget};
