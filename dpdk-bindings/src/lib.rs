//! All of Flowgate's FFI: bindgen bindings to the system DPDK 22.11 ([`sys`]), a C shim for its
//! static-inline functions (`csrc/shim.c`), and a thin safe layer over them.
//!
//! Layers, bottom up:
//! * [`sys`]: raw bindings plus `fg_*` shim functions. Only this crate should use it.
//! * [`Eal`]: the EAL lifetime token; every DPDK object is created with `&Eal`, and
//!   `rte_eal_cleanup` is skipped while any of them is alive.
//! * [`Mempool`] and [`Mbuf`]: packet buffers, owned and freed on drop.
//! * [`Burst`]: a reusable fixed array of mbufs, the unit of rx and tx.
//! * [`Port`], [`RxQueue`], [`TxQueue`]: configured ports and exclusive per-queue handles.
//! * [`launch_on_lcore`]: run a closure on a worker lcore with panics contained.
//!
//! Nothing on the packet path (`rx_burst`, `tx_burst`, `Burst`, `Mbuf` accessors, `tsc`) allocates,
//! locks, panics or makes syscalls.

// This crate is the one place where Flowgate talks to C: `unsafe` is confined here (the workspace
// denies it elsewhere), and every block carries a `// SAFETY:` justification.
#![allow(unsafe_code)]
#![warn(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod sys;

mod burst;
mod eal;
mod error;
mod hugepage;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod prefetch;
mod thread;

pub use burst::Burst;
pub use eal::{dpdk_version, live_dpdk_objects, pause, tsc, Eal};
pub use error::{DpdkError, Result};
pub use hugepage::{collapse_to_huge_pages, prefault};
pub use lcore::{launch_on_lcore, LcoreHandle};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, MBUF_HEADROOM};
pub use port::{port_stats, Port, PortConfig, PortId, PortInfo, PortStats, RxQueue, TxQueue};
pub use prefetch::prefetch_read;
pub use thread::set_current_thread_nice;
