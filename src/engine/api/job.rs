//! [`Job`]: one submitted request's events, polled, awaited or drained; dropping it cancels
//! the request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::api::callback_gate::CallbackGate;
use crate::engine::cancel::RequestCancel;
use crate::engine::data::event::Event;
use crate::engine::data::usage::Usage;
use crate::engine::error::Error;
use crate::engine::worker::event_channel::{EventReceiver, Received};
use crate::engine::worker::protocol::WorkerShared;

/// A running request's events. Dropping it cancels the request.
#[derive(Debug)]
pub struct Job {
    events: EventReceiver,
    cancel: RequestCancel,
    shared: Arc<WorkerShared>,
    /// The engine's callback-gate id: polling inside its own callback never waits.
    engine_id: usize,
    /// The final event, kept so it can be returned again.
    last: Option<Event>,
}

/// Cancels one job from any thread without access to the job itself.
#[derive(Debug, Clone)]
pub struct JobCanceller(RequestCancel);

impl JobCanceller {
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

impl Job {
    pub(crate) fn new(
        events: EventReceiver,
        cancel: RequestCancel,
        shared: Arc<WorkerShared>,
        engine_id: usize,
    ) -> Self {
        Job {
            events,
            cancel,
            shared,
            engine_id,
            last: None,
        }
    }

    /// Cancels this request only. Returns at once.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this job from any thread.
    pub fn canceller(&self) -> JobCanceller {
        JobCanceller(self.cancel.clone())
    }

    /// The next event if one is ready, without blocking. After the final event, returns it
    /// again.
    pub fn try_next(&mut self) -> Option<Event> {
        self.next_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the next event (`None`: nothing yet). Inside a callback of
    /// this job's own engine it never waits. After the final event, returns it again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(last) = &self.last {
            return Some(last.clone());
        }
        let timeout = if CallbackGate::inside(self.engine_id) > 0 {
            Duration::ZERO
        } else {
            timeout
        };
        let received = if timeout.is_zero() {
            self.events.try_recv()
        } else {
            self.events.recv_timeout(timeout)
        };
        match received {
            Received::Event(event) => Some(self.remember(event)),
            Received::Empty => None,
            Received::Closed => Some(self.remember(self.lost())),
        }
    }

    /// Waits for the next event, blocking this thread (in async code, prefer [`Job::next`]).
    pub fn blocking_next(&mut self) -> Event {
        if let Some(last) = &self.last {
            return last.clone();
        }
        let event = self.events.blocking_recv().unwrap_or_else(|| self.lost());
        self.remember(event)
    }

    /// Waits for the next event, asynchronously.
    pub async fn next(&mut self) -> Event {
        if let Some(last) = &self.last {
            return last.clone();
        }
        let event = self.events.recv().await.unwrap_or_else(|| self.lost());
        self.remember(event)
    }

    /// Whether the final event has been received.
    pub fn is_finished(&self) -> bool {
        self.last.is_some()
    }

    pub(crate) fn wait_for_end_usage(&mut self) -> Usage {
        loop {
            match self.blocking_next() {
                Event::Text { .. }
                | Event::Reasoning { .. }
                | Event::ToolCall(_)
                | Event::Logprobs(_) => continue,
                Event::Done(usage) | Event::Failed { usage, .. } => return usage,
            }
        }
    }

    fn remember(&mut self, event: Event) -> Event {
        if matches!(event, Event::Done(_) | Event::Failed { .. }) {
            self.last = Some(event.clone());
        }
        event
    }

    /// The worker dropped the request without a final event: it is gone.
    fn lost(&self) -> Event {
        let error = if self.shared.shutting_down.load(Ordering::SeqCst) {
            Error::Cancelled("the engine was destroyed".into())
        } else {
            Error::ShutDown
        };
        Event::Failed {
            error,
            usage: Usage::none(0),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.last.is_none() {
            self.cancel.cancel();
        }
    }
}
