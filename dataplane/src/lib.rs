//! Flowgate's data plane as plain, safe Rust over byte slices.
//!
//! Nothing in this crate knows about DPDK: a worker lcore hands the engine the bytes of
//! each received frame and gets back what to do with it. That keeps the whole packet
//! path testable, fuzzable and benchmarkable without an EAL.
//!
//! * [`wire`]: zero-copy, panic-free views of Ethernet/VLAN/IPv4/IPv6/TCP/UDP/ICMP/SCTP
//!   and the one-shot [`wire::parse_frame`] that fills a [`packet::PacketMeta`].
//! * [`flow`]: the bidirectional flow key, the per-worker flow shard, TCP state tracking
//!   and idle expiry.
//! * [`policy`]: policy files (TOML and Suricata rules), the compiled matcher the workers
//!   read, and a naive reference evaluator for differential tests.
//! * [`worker`]: the burst engine (parse → hash → prefetch → lookup/create → verdict),
//!   per-worker counters and the command/reply protocol with the management thread.
//! * [`ops`]: flow-operation filters (capture / flush) matched against flow entries.
//! * [`gen`]: deterministic benchmark / flood traffic (off the packet path).
//!
//! Panic contract: no function reachable from the packet path panics on any input.
#![deny(unsafe_code)]

pub mod flow;
pub mod gen;
pub mod ops;
pub mod packet;
pub mod policy;
pub mod wire;
pub mod worker;
