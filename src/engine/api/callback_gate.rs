//! Callbacks and destroy: lets `shutdown` wait until no callback of the engine is running on
//! another thread, so no callback runs after it returns, while a shutdown from inside a
//! callback still works; and tells blocking calls made inside their own engine's callback to
//! refuse rather than deadlock.

use std::cell::RefCell;
use std::sync::{Condvar, Mutex};

thread_local! {
    /// The engines whose callbacks are running on this thread, innermost last.
    static IN_CALLBACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Counts the engine's running callbacks; closed by shutdown.
#[derive(Default)]
pub(crate) struct CallbackGate {
    state: Mutex<GateState>,
    idle: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    running: usize,
}

impl CallbackGate {
    /// Runs `callback` unless the engine is shut down (then `None`).
    pub fn call<T>(&self, id: usize, callback: impl FnOnce() -> T) -> Option<T> {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.closed {
                return None;
            }
            state.running += 1;
        }
        IN_CALLBACK.with(|ids| ids.borrow_mut().push(id));
        struct Leave<'a>(&'a CallbackGate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                IN_CALLBACK.with(|ids| {
                    ids.borrow_mut().pop();
                });
                let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
                state.running -= 1;
                self.0.idle.notify_all();
            }
        }
        let _leave = Leave(self);
        Some(callback())
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    /// How many callbacks of engine `id` this thread is inside.
    pub fn inside(id: usize) -> usize {
        IN_CALLBACK.with(|ids| ids.borrow().iter().filter(|&&x| x == id).count())
    }

    pub fn close(&self, id: usize) {
        let own = Self::inside(id);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        while state.running > own {
            state = self.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}
