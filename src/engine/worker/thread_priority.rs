//! The engine's thread priority, applied to the worker thread. On Linux a thread starts with
//! the nice value of the thread that creates it, so ggml's pool threads, the per-graph
//! threads of the embedding context and mtmd's encoder threads (all started by the worker)
//! inherit it; ggml's own priority stays NORMAL, which keeps what they inherited.

use crate::engine::data::options::ThreadPriority;

/// The nice value of [`ThreadPriority::Low`]: the lowest weight Linux's scheduler has, so a
/// host thread that wants a core gets it (about 1.5% of the core left to a nice-19 thread
/// that competes for it), while cores the host leaves idle go to the engine.
#[cfg(target_os = "linux")]
const LOW_NICE: i32 = 19;

/// Sets `priority` on the calling thread: LOW lowers it; NORMAL leaves the priority the
/// thread started with (the host's, inherited by the worker from the thread that created
/// the engine), or restores it after a LOW one. `Err` with the reason when the system
/// refused (raising a thread back needs CAP_SYS_NICE or a RLIMIT_NICE that allows it) or the
/// platform has no implementation yet.
pub(crate) fn apply_to_current_thread(priority: ThreadPriority) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        thread_local! {
            /// The nice value this thread had before the engine changed it.
            static STARTED_WITH: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
        }
        // SAFETY: plain system calls on the calling thread's own id.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
        // SAFETY: as above.
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        let started_with = STARTED_WITH.with(|s| {
            let started_with = s.get().unwrap_or(current);
            s.set(Some(started_with));
            started_with
        });
        let nice = match priority {
            ThreadPriority::Normal => started_with,
            ThreadPriority::Low => LOW_NICE.max(started_with),
        };
        if current == nice {
            return Ok(());
        }
        // SAFETY: as above.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
            return Err(format!(
                "setpriority(nice {nice}) was refused: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        match priority {
            ThreadPriority::Normal => Ok(()),
            ThreadPriority::Low => Err("thread_priority LOW is applied on Linux only".into()),
        }
    }
}
