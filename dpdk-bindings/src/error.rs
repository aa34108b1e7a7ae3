//! `DpdkError`: every way the safe layer can fail, converted once at the FFI boundary.
//!
//! DPDK reports failure either as a negative errno return value or as `-1`/`NULL` plus the
//! per-lcore `rte_errno`. Both are turned into [`DpdkError::Call`] carrying the call that failed
//! and `rte_strerror`'s text. Only setup paths produce errors; the packet path never allocates one.

use std::ffi::CStr;
use std::os::raw::c_int;

use crate::sys;

/// Errors from the DPDK safe layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK call returned an error code.
    #[error("{call} failed: {reason} (errno {errno})")]
    Call {
        /// The DPDK function and the arguments that identify the object, e.g. `rte_eth_dev_start(port 1)`.
        call: String,
        /// Positive errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        reason: String,
    },
    /// `rte_eal_init` can run once per process, even after `rte_eal_cleanup`.
    #[error("the EAL was already initialised in this process (rte_eal_init works only once per process)")]
    EalAlreadyInitialized,
    /// An EAL argument or object name cannot be passed to C.
    #[error("{what} {value:?} contains a NUL byte")]
    InteriorNul {
        /// What the string was (e.g. "EAL argument", "mempool name").
        what: &'static str,
        /// The offending string.
        value: String,
    },
    /// No ethdev port has this name.
    #[error("no DPDK port named {0:?} (check the --vdev/PCI arguments given to the EAL)")]
    NoSuchPortName(String),
    /// The port id does not refer to an attached ethdev.
    #[error("port {0} is not a valid DPDK port")]
    InvalidPort(u16),
    /// A port needs at least one queue in each direction.
    #[error("port {port}: at least one {direction} queue is required")]
    NoQueues {
        /// Port id.
        port: u16,
        /// "rx" or "tx".
        direction: &'static str,
    },
    /// More queues were requested than the device supports.
    #[error("port {port}: {requested} {direction} queues requested but the device ({driver}) supports at most {max}")]
    TooManyQueues {
        /// Port id.
        port: u16,
        /// "rx" or "tx".
        direction: &'static str,
        /// Requested queue count.
        requested: u16,
        /// Device maximum.
        max: u16,
        /// Driver name, to tell the operator which device this is.
        driver: String,
    },
    /// A queue handle was requested for a queue that was not configured or is already handed out.
    #[error("port {port}: {direction} queue {queue} is not configured or is already in use")]
    QueueUnavailable {
        /// Port id.
        port: u16,
        /// "rx" or "tx".
        direction: &'static str,
        /// Queue index.
        queue: u16,
    },
    /// The mbuf data room must hold the headroom plus at least one byte.
    #[error(
        "mempool {name:?}: data room {data_room} must exceed the {headroom}-byte mbuf headroom"
    )]
    DataRoomTooSmall {
        /// Pool name.
        name: String,
        /// Requested data room.
        data_room: u16,
        /// `RTE_PKTMBUF_HEADROOM`.
        headroom: u16,
    },
    /// Functions can only be launched on enabled worker lcores.
    #[error("lcore {0} is not an enabled worker lcore (the main lcore cannot be launched on)")]
    NotAWorkerLcore(u32),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, DpdkError>;

/// `rte_strerror(errno)` as an owned string.
pub(crate) fn strerror(errno: c_int) -> String {
    // SAFETY: rte_strerror returns a pointer to a static string or to a per-thread buffer that stays
    // valid until the next rte_strerror call on this thread; we copy it out immediately.
    let text = unsafe { CStr::from_ptr(sys::rte_strerror(errno)) };
    text.to_string_lossy().into_owned()
}

impl DpdkError {
    /// Error for `call` with a positive errno.
    #[cold]
    pub(crate) fn call(call: impl Into<String>, errno: c_int) -> Self {
        let errno = errno.abs();
        DpdkError::Call {
            call: call.into(),
            errno,
            reason: strerror(errno),
        }
    }

    /// Error for `call` taken from the calling thread's `rte_errno`.
    #[cold]
    pub(crate) fn from_rte_errno(call: impl Into<String>) -> Self {
        Self::call(call, rte_errno())
    }
}

/// The calling thread's `rte_errno`.
pub(crate) fn rte_errno() -> c_int {
    // SAFETY: fg_errno only reads DPDK's thread-local errno variable.
    unsafe { sys::fg_errno() }
}

/// Maps DPDK's "negative errno on failure" convention to a `Result`.
pub(crate) fn check(ret: c_int, call: impl FnOnce() -> String) -> Result<c_int> {
    if ret < 0 {
        Err(DpdkError::call(call(), ret))
    } else {
        Ok(ret)
    }
}

/// A libc call's `0`/`-1`-and-errno result as `io::Result` (the OS calls outside DPDK:
/// `madvise`, `setpriority`).
pub(crate) fn os_result(rc: c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_name_the_call_and_carry_strerror_text() {
        let e = DpdkError::call("rte_eth_dev_start(port 3)", -libc::EINVAL);
        assert_eq!(
            e,
            DpdkError::Call {
                call: "rte_eth_dev_start(port 3)".into(),
                errno: libc::EINVAL,
                reason: "Invalid argument".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "rte_eth_dev_start(port 3) failed: Invalid argument (errno 22)"
        );
    }

    #[test]
    fn check_maps_negative_returns_only() {
        assert_eq!(check(5, || unreachable!()), Ok(5));
        let e = check(-libc::ENOTSUP, || {
            "rte_eth_promiscuous_enable(port 0)".into()
        })
        .unwrap_err();
        assert!(matches!(e, DpdkError::Call { errno, .. } if errno == libc::ENOTSUP));
    }

    #[test]
    fn dpdk_specific_errno_text_comes_from_rte_strerror() {
        // E_RTE_SECONDARY (1001) is a DPDK-only errno that plain strerror would call unknown.
        let text = strerror(1001);
        assert!(text.contains("secondary"), "{text}");
    }
}
