//! Running Rust closures on EAL worker lcores (`rte_eal_remote_launch`), with panics contained.
//!
//! The closure travels to the lcore in a heap [`LaunchSlot`] that the worker fills with the
//! outcome. `rte_eal_wait_lcore` (acquire on the lcore state that the worker releases after the
//! function returns) orders that write before [`LcoreHandle::join`] reads it.

use std::any::Any;
use std::marker::PhantomData;
use std::os::raw::{c_int, c_void};
use std::panic::{self, AssertUnwindSafe};

use crate::eal::{Eal, LiveObject};
use crate::error::{DpdkError, Result};
use crate::sys;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct LaunchSlot {
    job: Option<Job>,
    outcome: Option<std::result::Result<(), String>>,
}

/// Handle on a closure running on a worker lcore. Dropping it without [`LcoreHandle::join`] still
/// waits for the closure to finish (the lcore owns memory the handle frees).
///
/// Neither `Send` nor `Sync`: DPDK requires `rte_eal_wait_lcore` on the main lcore.
pub struct LcoreHandle {
    lcore: u32,
    slot: *mut LaunchSlot,
    _live: LiveObject,
    _main_thread_only: PhantomData<*const ()>,
}

impl std::fmt::Debug for LcoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreHandle")
            .field("lcore", &self.lcore)
            .finish()
    }
}

/// Launches `f` on worker lcore `lcore`. A panic inside `f` is caught on the lcore and returned by
/// [`LcoreHandle::join`]; it never unwinds across the FFI boundary. (Under `panic = "abort"` the
/// process aborts instead, as for any panic.)
///
/// # Errors
/// [`DpdkError::NotAWorkerLcore`] if `lcore` is the main lcore or not enabled;
/// [`DpdkError::Call`] with `EBUSY` if the lcore is still running a previous function.
pub fn launch_on_lcore<F: FnOnce() + Send + 'static>(
    eal: &Eal,
    lcore: u32,
    f: F,
) -> Result<LcoreHandle> {
    if !eal.is_worker_lcore(lcore) {
        return Err(DpdkError::NotAWorkerLcore(lcore));
    }
    let slot = Box::into_raw(Box::new(LaunchSlot {
        job: Some(Box::new(f)),
        outcome: None,
    }));
    // SAFETY: run_slot matches lcore_function_t and never unwinds; slot stays allocated until the
    // handle has waited for the lcore (join/drop), or is reclaimed below if the launch failed.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(run_slot), slot.cast::<c_void>(), lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the lcore never saw the pointer; we still own the box.
        drop(unsafe { Box::from_raw(slot) });
        return Err(DpdkError::call(
            format!("rte_eal_remote_launch(lcore {lcore})"),
            ret,
        ));
    }
    Ok(LcoreHandle {
        lcore,
        slot,
        _live: LiveObject::new(),
        _main_thread_only: PhantomData,
    })
}

/// The `lcore_function_t` DPDK calls on the worker.
unsafe extern "C" fn run_slot(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the LaunchSlot pointer from launch_on_lcore; the main lcore does not touch it
    // until rte_eal_wait_lcore reports this function returned, so access is exclusive.
    let slot = unsafe { &mut *arg.cast::<LaunchSlot>() };
    let outcome = match slot.job.take() {
        Some(job) => {
            panic::catch_unwind(AssertUnwindSafe(job)).map_err(|payload| panic_message(&*payload))
        }
        None => Err("lcore job already consumed".to_owned()),
    };
    let failed = outcome.is_err();
    slot.outcome = Some(outcome);
    c_int::from(failed)
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked with a non-string payload".to_owned()
    }
}

impl LcoreHandle {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure to finish. `Err` carries the panic message if it panicked.
    pub fn join(mut self) -> std::result::Result<(), String> {
        self.wait()
    }

    fn wait(&mut self) -> std::result::Result<(), String> {
        if self.slot.is_null() {
            return Err("lcore already joined".to_owned());
        }
        // SAFETY: called on the main lcore (LcoreHandle is !Send and only created there); blocks until
        // the worker returned from run_slot.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        // SAFETY: the worker is done with the slot (see above), and we created it with Box::into_raw.
        let slot = unsafe { Box::from_raw(self.slot) };
        self.slot = std::ptr::null_mut();
        slot.outcome
            .unwrap_or_else(|| Err(format!("lcore {} returned without reporting", self.lcore)))
    }
}

impl Drop for LcoreHandle {
    fn drop(&mut self) {
        if !self.slot.is_null() {
            // The outcome has no one to go to; waiting is what matters (the slot must outlive the lcore).
            let _ = self.wait();
        }
    }
}
