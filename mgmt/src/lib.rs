//! Management side.
