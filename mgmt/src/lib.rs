//! Management side.
pub mod http;
pub mod sigv4;
