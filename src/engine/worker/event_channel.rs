//! The channel that carries a request's events from the worker to whoever drains it: a tokio
//! channel (so async callers can await it) plus a doorbell, so a blocking poll with a timeout
//! wakes the moment an event arrives instead of sleeping in slices.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::engine::data::event::Event;

#[derive(Debug, Default)]
struct Doorbell {
    rings: Mutex<u64>,
    rung: Condvar,
}

/// The worker's end. Sending never waits for the consumer.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: mpsc::UnboundedSender<Event>,
    bell: Arc<Doorbell>,
}

impl EventSender {
    pub fn send(&self, event: Event) {
        // A consumer that went away no longer cares; the request is cancelled by its drop.
        let _ = self.tx.send(event);
        let mut rings = self.bell.rings.lock().unwrap_or_else(|p| p.into_inner());
        *rings += 1;
        self.bell.rung.notify_all();
    }
}

/// The consumer's end.
#[derive(Debug)]
pub(crate) struct EventReceiver {
    rx: mpsc::UnboundedReceiver<Event>,
    bell: Arc<Doorbell>,
}

/// What a receive found.
pub(crate) enum Received {
    Event(Event),
    /// Nothing yet.
    Empty,
    /// The worker dropped its end without a final event.
    Closed,
}

pub(crate) fn channel() -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let bell = Arc::new(Doorbell::default());
    (
        EventSender {
            tx,
            bell: bell.clone(),
        },
        EventReceiver { rx, bell },
    )
}

impl EventReceiver {
    pub fn try_recv(&mut self) -> Received {
        match self.rx.try_recv() {
            Ok(event) => Received::Event(event),
            Err(mpsc::error::TryRecvError::Empty) => Received::Empty,
            Err(mpsc::error::TryRecvError::Disconnected) => Received::Closed,
        }
    }

    /// Waits up to `timeout` for an event.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = *self.bell.rings.lock().unwrap_or_else(|p| p.into_inner());
            match self.try_recv() {
                Received::Empty => {}
                other => return other,
            }
            let rings = self.bell.rings.lock().unwrap_or_else(|p| p.into_inner());
            if *rings != seen {
                continue; // rung between our look and the lock: look again
            }
            let now = Instant::now();
            if now >= deadline {
                return Received::Empty;
            }
            // A closed channel never rings again; the worker rings on its final send, and
            // dropping the sender without one only happens when the worker is gone.
            let _ = self
                .bell
                .rung
                .wait_timeout(rings, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits for an event; `None` when the worker dropped its end. Unlike tokio's own
    /// blocking receive this may be called from a thread that runs an async runtime.
    pub fn blocking_recv(&mut self) -> Option<Event> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600)) {
                Received::Event(event) => return Some(event),
                Received::Closed => return None,
                Received::Empty => continue,
            }
        }
    }

    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}
