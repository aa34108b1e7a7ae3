//! Scheduling of the calling (non-worker) thread. Not DPDK, but FFI, so it lives here.

use std::io;

use crate::error::os_result;

/// Sets the calling thread's nice value (Linux schedules threads individually). Background
/// management threads (log writing) use it so that, on the one core they share with the
/// collector, draining the workers' rings comes first.
pub fn set_current_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: PRIO_PROCESS with our own thread id changes only this thread's niceness;
    // no memory is passed.
    os_result(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let before = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let nice_of = |stat: &str| -> i64 {
            // Field 19 is nice; fields after the parenthesised command name.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse().unwrap()
        };
        let main_nice = nice_of(&before);
        let t = std::thread::spawn(move || {
            set_current_thread_nice(15).unwrap();
            nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
        });
        assert_eq!(t.join().unwrap(), 15);
        let after = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_eq!(nice_of(&after), main_nice);
    }
}
