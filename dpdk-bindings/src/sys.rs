//! Raw bindgen output for the DPDK 22.11 API subset we use, plus the `fg_*` shim functions from
//! `csrc/shim.c`. Nothing here is safe to call without reading the DPDK documentation; the safe
//! layer in the sibling modules is the only intended user.
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    missing_docs,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
