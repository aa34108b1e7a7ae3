//! The management side's async runtime: a few tokio threads (and the blocking pool the
//! handlers run on), every one pinned to a management core, never to a worker lcore.
//!
//! The management cores are the CPUs the main thread may run on once the EAL has placed it
//! on the main lcore ([`management_cores`]), so the HTTP threads share the main lcore's CPUs
//! and never compete with the workers' run-to-completion loops.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use core_affinity::CoreId;
use tokio::runtime::{Builder, Runtime};

/// Threads of the blocking pool (API handlers) at most.
const MAX_BLOCKING_THREADS: usize = 64;

/// The CPUs the calling thread may run on (call it on the main thread after EAL start).
pub fn management_cores() -> Vec<CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// A multi-threaded runtime of `threads` workers whose every thread is pinned, in turn, to
/// one of `cores` (no pinning when `cores` is empty: tests, tools).
pub fn pinned(threads: usize, cores: Vec<CoreId>) -> io::Result<Arc<Runtime>> {
    let next = AtomicUsize::new(0);
    let runtime = Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_name("fg-mgmt-http")
        .enable_all()
        .on_thread_start(move || {
            if !cores.is_empty() {
                let core = cores[next.fetch_add(1, Ordering::Relaxed) % cores.len()];
                if !core_affinity::set_for_current(core) {
                    eprintln!(
                        "flowgate: cannot pin a management thread to CPU {}",
                        core.id
                    );
                }
            }
        })
        .build()?;
    Ok(Arc::new(runtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_threads_run_only_on_the_given_core() {
        let cores = management_cores();
        let first = *cores
            .first()
            .expect("sched_getaffinity lists this thread's CPUs");
        let rt = pinned(2, vec![first]).unwrap();
        let seen = rt.block_on(async {
            tokio::spawn(async { core_affinity::get_core_ids().unwrap_or_default() })
                .await
                .unwrap()
        });
        assert_eq!(seen.iter().map(|c| c.id).collect::<Vec<_>>(), [first.id]);
    }
}
