//! Management side.

pub mod app;
pub mod audit;
pub mod aws_api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod debug_api;
pub mod http;
pub mod log_queue;
pub mod logs;
pub mod metrics;
pub mod native_api;
pub mod ops;
pub mod policy_mgr;
pub mod sigv4;
