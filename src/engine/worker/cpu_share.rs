//! The process's CPU budget, shared by every engine in it. ggml's compute threads spin at
//! their barriers: when more of them run at once than the process has cores, a descheduled
//! thread stalls all the others (two engines of 2 threads each on 2 cores made 0.3-0.5x the
//! tokens of one alone). So every graph an engine computes (a decode step, an embedding
//! batch, an image's encoding) first takes a turn here for its thread count, and the turns
//! held at any moment never add up to more threads than the process may use.
//!
//! Turns are granted strictly in the order they were asked for (a ticket queue): an engine
//! that gives back its turn and asks again goes behind every engine already waiting, so
//! engines generating at once take turns step by step and none starves. An engine computing
//! with fewer threads than the cores leaves the rest to the next in line (two engines of
//! `n_threads = 1` on 2 cores run side by side).
//!
//! A waiting engine is asleep (a condition variable), and it stops waiting as soon as its own
//! `give_up` says so (a cancel, a pause, destroy), so those keep their promises while another
//! engine computes.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::engine::llama::backend::available_cpus;

/// How often a waiting engine looks at its `give_up` (between wake-ups by a returned turn).
const GIVE_UP_CHECK: Duration = Duration::from_millis(2);

struct Queue {
    /// Threads in the turns being held.
    busy: u32,
    /// Tickets of the engines waiting, first come first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// The process's turns (one per process; see [`cpu_share`]).
pub(crate) struct CpuShare {
    cores: u32,
    queue: Mutex<Queue>,
    turn_returned: Condvar,
}

/// A held turn: `threads` of the process's cores, until dropped.
pub(crate) struct Turn<'a> {
    share: &'a CpuShare,
    threads: u32,
}

/// The process's CPU share.
pub(crate) fn cpu_share() -> &'static CpuShare {
    static SHARE: std::sync::OnceLock<CpuShare> = std::sync::OnceLock::new();
    SHARE.get_or_init(|| CpuShare::new(available_cpus()))
}

impl CpuShare {
    fn new(cores: u32) -> Self {
        CpuShare {
            cores: cores.max(1),
            queue: Mutex::new(Queue {
                busy: 0,
                waiting: VecDeque::new(),
                next_ticket: 0,
            }),
            turn_returned: Condvar::new(),
        }
    }

    /// The cores this process may use: no engine computes with more threads.
    pub fn cores(&self) -> u32 {
        self.cores
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a turn of `threads` threads (at most the cores), in order of asking; `None`
    /// when `give_up` said to stop waiting first.
    pub fn take_turn(&self, threads: u32, give_up: &dyn Fn() -> bool) -> Option<Turn<'_>> {
        let threads = threads.clamp(1, self.cores);
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push_back(ticket);
        loop {
            if queue.waiting.front() == Some(&ticket) && queue.busy + threads <= self.cores {
                queue.waiting.pop_front();
                queue.busy += threads;
                // The next in line may fit beside this turn.
                self.turn_returned.notify_all();
                return Some(Turn {
                    share: self,
                    threads,
                });
            }
            if give_up() {
                queue.waiting.retain(|&t| t != ticket);
                // This one was maybe first in line: the next one may go now.
                self.turn_returned.notify_all();
                return None;
            }
            queue = self
                .turn_returned
                .wait_timeout(queue, GIVE_UP_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut queue = self.share.lock();
        queue.busy -= self.threads;
        drop(queue);
        self.share.turn_returned.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn turns_never_hold_more_threads_than_the_cores() {
        let share = Arc::new(CpuShare::new(2));
        let in_use = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let workers: Vec<_> = [2u32, 1, 1, 2, 1]
            .into_iter()
            .map(|threads| {
                let (share, in_use, most) = (share.clone(), in_use.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let turn = share.take_turn(threads, &|| false).unwrap();
                        let now = in_use.fetch_add(turn.threads, Ordering::SeqCst) + turn.threads;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        in_use.fetch_sub(turn.threads, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn turns_go_in_order_of_asking() {
        let share = Arc::new(CpuShare::new(1));
        let held = share.take_turn(1, &|| false).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for id in 0..4 {
            let (waiter_share, order) = (share.clone(), order.clone());
            waiters.push(std::thread::spawn(move || {
                let _turn = waiter_share.take_turn(1, &|| false).unwrap();
                order.lock().unwrap().push(id);
            }));
            // Each asks after the one before is queued.
            while share.lock().waiting.len() < id + 1 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_line_and_the_next_goes() {
        let share = Arc::new(CpuShare::new(1));
        let held = share.take_turn(1, &|| false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let quitter = {
            let (share, stop) = (share.clone(), stop.clone());
            std::thread::spawn(move || {
                share
                    .take_turn(1, &|| stop.load(Ordering::SeqCst))
                    .is_none()
            })
        };
        while share.lock().waiting.is_empty() {
            std::thread::yield_now();
        }
        let next = {
            let share = share.clone();
            std::thread::spawn(move || share.take_turn(1, &|| false).is_some())
        };
        while share.lock().waiting.len() < 2 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        assert!(
            quitter.join().unwrap(),
            "gave up while another held the turn"
        );
        drop(held);
        assert!(next.join().unwrap());
        assert_eq!(share.lock().busy, 0);
    }

    #[test]
    fn a_turn_asks_for_at_most_the_cores() {
        let share = CpuShare::new(2);
        let turn = share.take_turn(64, &|| false).unwrap();
        assert_eq!(turn.threads, 2);
    }
}
