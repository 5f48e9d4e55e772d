//! Jobs: callback-free streaming for frame loops. A job is polled, never calls back.

use std::ffi::CString;
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use super::boundary::{boundary, boundary_void, handle, out_ptr, Failure};
use super::engine::rigllama_engine;
use super::enums::rigllama_event_kind;
use super::event::rigllama_event;
use super::request::{read_request, rigllama_request};
use super::status::rigllama_status;
use super::usage::{rigllama_usage, write_usage};
use super::versioned::{check_output, Versioned};
use crate::engine::{Error, Event, Job, JobCanceller, Usage};

/// A submitted request, polled for its events. Create with `rigllama_engine_submit`, free with
/// `rigllama_job_free`. A job outlives its engine: after the engine is destroyed it ends with
/// ERROR/CANCELLED and must still be freed.
pub struct rigllama_job {
    canceller: JobCanceller,
    /// One poll at a time: an overlapping poll gets BUSY instead of waiting.
    state: Mutex<JobState>,
}

struct JobState {
    job: Job,
    /// The text and message the last event points to; valid until the next poll.
    text: CString,
    message: CString,
    usage: Option<Usage>,
}

impl JobState {
    fn set_text(&mut self, text: String) {
        // Engine text never holds NUL (it is dropped on the way out of the model; JSON escapes it).
        self.text = CString::new(text).unwrap_or_default();
    }
}

/// Queues `request` and returns at once; `*out_job` receives the job (NULL on failure).
/// Fails with BUSY when the engine's queue is full.
#[no_mangle]
pub unsafe extern "C" fn rigllama_engine_submit(
    engine: *mut rigllama_engine,
    request: *const rigllama_request,
    out_job: *mut *mut rigllama_job,
) -> rigllama_status {
    boundary(|| unsafe {
        let out_job = out_ptr(out_job, "out_job")?;
        out_job.write(std::ptr::null_mut());
        let engine = handle(engine, "engine")?.engine();
        let request = read_request(request)?;
        let job = engine.submit(request)?;
        out_job.write(Box::into_raw(Box::new(rigllama_job {
            canceller: job.canceller(),
            state: Mutex::new(JobState {
                job,
                text: CString::default(),
                message: CString::default(),
                usage: None,
            }),
        })));
        Ok(())
    })
}

/// Returns the job's next event in `*out_event`. With `timeout_ms` 0 it never blocks (NONE
/// when nothing is new); otherwise it waits up to that long. Any thread may poll, one poll at
/// a time: a poll overlapping another on the same job returns BUSY. Inside a stream callback
/// of the job's engine it acts as timeout 0.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_poll(
    job: *mut rigllama_job,
    timeout_ms: u32,
    out_event: *mut rigllama_event,
) -> rigllama_status {
    boundary(|| unsafe {
        let job = handle(job, "job")?;
        let out_event = out_ptr(out_event, "out_event")?.as_ptr();
        let struct_size = check_output(out_event, rigllama_event::V0_1_SIZE, "out_event")?;
        let mut state = match job.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy(
                    "another thread is polling this job; poll a job from one thread at a time"
                        .into(),
                )
                .into())
            }
        };
        let state = &mut *state;
        let event = state
            .job
            .next_timeout(Duration::from_millis(timeout_ms.into()));
        let mut out = rigllama_event::defaults();
        let mut text_event = |kind: rigllama_event_kind, text: String| {
            state.set_text(text);
            out.kind = kind;
            out.text = state.text.as_ptr();
            out.text_len = state.text.as_bytes().len();
        };
        match event {
            None => {}
            Some(Event::Text { text, .. }) => text_event(rigllama_event_kind::Text, text),
            Some(Event::Reasoning { text, .. }) => text_event(rigllama_event_kind::Reasoning, text),
            Some(Event::ToolCall(call)) => text_event(
                rigllama_event_kind::ToolCall,
                call.to_event_json().to_string(),
            ),
            Some(Event::Logprobs(logprobs)) => {
                let entries: Vec<_> = logprobs.iter().map(|l| l.to_openai_json()).collect();
                text_event(
                    rigllama_event_kind::Logprobs,
                    serde_json::Value::Array(entries).to_string(),
                )
            }
            Some(Event::Done(usage)) => {
                state.usage = Some(usage);
                out.kind = rigllama_event_kind::Done;
            }
            Some(Event::Failed { error, usage }) => {
                state.usage = Some(usage);
                state.message =
                    CString::new(error.to_string().replace('\0', " ")).unwrap_or_default();
                out.kind = rigllama_event_kind::Error;
                out.status = (&error).into();
                out.message = state.message.as_ptr();
            }
        }
        out.write_fields(out_event.cast(), struct_size);
        Ok(())
    })
}

/// Writes the job's usage once it has ended (after DONE, or ERROR: what was spent before the
/// failure). Before that, INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_usage(
    job: *mut rigllama_job,
    out_usage: *mut rigllama_usage,
) -> rigllama_status {
    boundary(|| unsafe {
        let job = handle(job, "job")?;
        let out_usage = out_ptr(out_usage, "out_usage")?.as_ptr();
        let state = match job.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy("another thread is polling this job".into()).into())
            }
        };
        let usage = state.usage.as_ref().ok_or_else(|| {
            Failure::from(Error::invalid(
                "the job has not ended yet; poll it until DONE or ERROR first",
            ))
        })?;
        write_usage(out_usage, usage)
    })
}

/// Cancels this job only: its next events end with ERROR/CANCELLED. Returns at once; any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_cancel(job: *mut rigllama_job) -> rigllama_status {
    boundary(|| unsafe {
        handle(job, "job")?.canceller.cancel();
        Ok(())
    })
}

/// Frees the job, cancelling it if it is still running. NULL is a no-op. Must not overlap a
/// poll of the same job.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_free(job: *mut rigllama_job) {
    boundary_void(|| unsafe {
        if !job.is_null() {
            drop(Box::from_raw(job));
        }
    })
}
