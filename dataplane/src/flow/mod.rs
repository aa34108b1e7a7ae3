//! The per-worker flow table: bidirectional flow keys, the preallocated flow shard with
//! its bucket index, TCP state tracking and incremental idle expiry.
//!
//! * [`key`]: [`FlowKey`], canonical for both directions, and its hash.
//! * [`state`]: [`FlowState`] and [`Dir`].
//! * [`entry`]: [`FlowEntry`], ≤ 128 bytes, cache-line aligned.
//! * [`timeouts`]: idle timeouts per protocol and state.
//! * [`shard`]: [`FlowShard`], one worker's table: lookup/insert/update/remove, emergency
//!   eviction, expiry slices and bounded capture/flush scans.
//! * [`tcp`]: the TCP state machine and sequence-window tracking ([`TcpWindow`],
//!   [`TcpInvalid`]).
//! * `index` (private): the 64-byte-bucket hash index; `prefetch`: the [`Prefetch`] type
//!   parameter (the binary supplies a real one; [`NoPrefetch`] by default) and why.
//!
//! The burst loop is expected to: compute keys and hashes for the burst and call
//! [`FlowShard::prefetch_bucket`] on each; then [`FlowShard::prefetch_flow`] on each
//! (the bucket has landed by then), keeping the candidate it returns; then
//! [`FlowShard::lookup_hinted`] with that candidate and [`FlowShard::update`] or
//! [`FlowShard::insert`].

pub mod entry;
mod index;
pub mod key;
mod prefetch;
pub mod shard;
pub mod state;
pub mod tcp;
pub mod timeouts;

pub use entry::FlowEntry;
pub use key::{FlowHasher, FlowKey};
pub use prefetch::{NoPrefetch, Prefetch};
pub use shard::{
    EndReason, FlowId, FlowShard, ShardConfig, ShardConfigError, TableFull, Tracked, EVICT_WINDOW,
    MAX_CAPACITY,
};
pub use state::{Dir, FlowState};
pub use tcp::{TcpInvalid, TcpWindow};
pub use timeouts::{Timeouts, TimeoutsSecs};
