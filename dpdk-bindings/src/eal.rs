//! The EAL lifetime token ([`Eal`]), the clock and spin helpers, and the count of live DPDK objects
//! that must be released before `rte_eal_cleanup` may run.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{DpdkError, Result};
use crate::sys;

/// Set by the first `Eal::init`; DPDK cannot be initialised twice in one process.
static EAL_INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Mempools, ports and launched lcores that still exist. `Eal::drop` skips `rte_eal_cleanup` while
/// any remain, because their own `Drop` would then call into a torn-down EAL.
static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// DPDK objects (mempools, leaked ones included, ports, launched lcores) that keep the EAL
/// from being cleaned up: while this is non-zero, dropping the [`Eal`] leaves it running.
pub fn live_dpdk_objects() -> usize {
    LIVE_OBJECTS.load(Ordering::Acquire)
}

/// Held by every object whose `Drop` calls DPDK; keeps `LIVE_OBJECTS` accurate.
#[derive(Debug)]
pub(crate) struct LiveObject(());

impl LiveObject {
    pub(crate) fn new() -> Self {
        LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
        LiveObject(())
    }
}

impl Drop for LiveObject {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Proof that the EAL is initialised. Exists only between `rte_eal_init` and `rte_eal_cleanup`;
/// every constructor of a DPDK object takes `&Eal`.
///
/// Neither `Send` nor `Sync`: `rte_eal_cleanup` and `rte_eal_wait_lcore` belong on the main lcore,
/// i.e. the thread that called [`Eal::init`].
#[derive(Debug)]
pub struct Eal {
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises the EAL with `args` (`args[0]` is the program name, as in `argv`).
    ///
    /// The argument strings are leaked on purpose: EAL may keep pointers into `argv` for the life
    /// of the process.
    ///
    /// # Errors
    /// [`DpdkError::EalAlreadyInitialized`] on a second call in this process,
    /// [`DpdkError::InteriorNul`] for an argument with a NUL byte, [`DpdkError::Call`] if
    /// `rte_eal_init` fails (bad arguments, `-m` too small, missing privileges, ...).
    pub fn init(args: &[String]) -> Result<Eal> {
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for arg in args {
            let c = CString::new(arg.as_str()).map_err(|_| DpdkError::InteriorNul {
                what: "EAL argument",
                value: arg.clone(),
            })?;
            argv.push(c.into_raw());
        }
        let argc = c_int::try_from(argv.len())
            .map_err(|_| DpdkError::call("rte_eal_init", libc::E2BIG))?;
        argv.push(std::ptr::null_mut());
        if EAL_INIT_CALLED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::EalAlreadyInitialized);
        }
        // The vector itself is leaked too: getopt permutes it in place and EAL may keep it.
        let argv = argv.leak();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked so they
        // outlive the EAL; the swap above guarantees this is the only rte_eal_init call.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal {
            _main_thread_only: PhantomData,
        })
    }

    /// The main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain query of EAL configuration, valid after rte_eal_init.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Enabled lcores other than the main one, in increasing order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut lcores = Vec::new();
        // rte_get_next_lcore(-1, ..) starts the search at lcore 0.
        let mut lcore = u32::MAX;
        loop {
            // SAFETY: plain query of EAL configuration; any input value is accepted.
            lcore = unsafe { sys::rte_get_next_lcore(lcore, 1, 0) };
            if lcore >= sys::RTE_MAX_LCORE {
                return lcores;
            }
            lcores.push(lcore);
        }
    }

    /// TSC frequency in Hz, for converting [`tsc`] deltas to time.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: plain query, valid after rte_eal_init.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// NUMA socket of the main lcore (`-1` = `SOCKET_ID_ANY` when unknown).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: plain query; an invalid lcore would yield SOCKET_ID_ANY, the main lcore is valid.
        let socket = unsafe { sys::rte_lcore_to_socket_id(self.main_lcore()) };
        // SOCKET_ID_ANY is -1 stored in an unsigned int: reinterpret, do not range-check.
        socket as i32
    }

    /// Whether `lcore` is an enabled lcore other than the main one.
    pub(crate) fn is_worker_lcore(&self, lcore: u32) -> bool {
        // SAFETY: plain query; out-of-range ids return false.
        lcore != self.main_lcore() && unsafe { sys::rte_lcore_is_enabled(lcore) } != 0
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let live = LIVE_OBJECTS.load(Ordering::Acquire);
        if live != 0 {
            // Cleaning up now would turn those objects' Drop into use-after-free; leaving the EAL up
            // until process exit is harmless.
            eprintln!("dpdk-bindings: {live} DPDK objects still alive, skipping rte_eal_cleanup");
            return;
        }
        // SAFETY: no DPDK object created through this crate is alive (checked above) and this token
        // is !Send, so we are on the thread that ran rte_eal_init.
        unsafe { sys::rte_eal_cleanup() };
    }
}

/// Current TSC value (`rte_rdtsc`). On x86_64 this is the `rdtsc` intrinsic so it inlines; elsewhere
/// it calls the shim.
#[inline(always)]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: fg_rdtsc only reads the CPU cycle counter.
        unsafe { sys::fg_rdtsc() }
    }
}

/// CPU spin-wait hint (`rte_pause`: the `pause` instruction on x86).
#[inline(always)]
pub fn pause() {
    core::hint::spin_loop();
}

/// DPDK version string, e.g. `"DPDK 22.11.11"`.
pub fn dpdk_version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string; it needs no EAL.
    unsafe { CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
