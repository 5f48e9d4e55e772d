//! Jobs: callback-free streaming for frame loops. A job is polled, never calls back.

use std::ffi::{c_char, CString};
use std::mem::{offset_of, size_of};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use super::boundary::{
    boundary, boundary_void, non_null, rigllama_status, Failure, RIGLLAMA_STATUS_OK,
};
use super::convert;
use super::engine::rigllama_engine;
use super::structs::{
    init_struct, rigllama_request, rigllama_usage, write_fields, write_usage, Versioned,
};
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

/// What a poll returned: one of the `RIGLLAMA_EVENT_KIND_*` values.
pub type rigllama_event_kind = i32;
/// Nothing new yet.
pub const RIGLLAMA_EVENT_KIND_NONE: rigllama_event_kind = 0;
/// A piece of text.
pub const RIGLLAMA_EVENT_KIND_TEXT: rigllama_event_kind = 1;
/// Finished; `rigllama_job_usage` has the usage.
pub const RIGLLAMA_EVENT_KIND_DONE: rigllama_event_kind = 2;
/// Failed or cancelled; `status` and `message` say why.
pub const RIGLLAMA_EVENT_KIND_ERROR: rigllama_event_kind = 3;

/// One event of a job. `text` and `message` are borrowed until the next poll or free of the
/// job. Events come in order: TEXT*, then exactly one DONE or ERROR, which later polls
/// return again.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rigllama_event {
    /// Set by `rigllama_event_init`.
    pub struct_size: u32,
    /// What happened.
    pub kind: rigllama_event_kind,
    /// ERROR: the reason (e.g. `RIGLLAMA_STATUS_CANCELLED`); otherwise `RIGLLAMA_STATUS_OK`.
    pub status: rigllama_status,
    /// TEXT: whole UTF-8 characters, NUL-terminated; otherwise "".
    pub text: *const c_char,
    /// Bytes in `text`.
    pub text_len: usize,
    /// ERROR: what went wrong; otherwise "".
    pub message: *const c_char,
}

impl Versioned for rigllama_event {
    const NAME: &'static str = "rigllama_event";
    const V0_1_SIZE: usize = size_of::<Self>();
    fn defaults() -> Self {
        rigllama_event {
            struct_size: size_of::<Self>() as u32,
            kind: RIGLLAMA_EVENT_KIND_NONE,
            status: RIGLLAMA_STATUS_OK,
            text: c"".as_ptr(),
            text_len: 0,
            message: c"".as_ptr(),
        }
    }
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
        write_fields!(
            Self,
            self,
            dest,
            limit,
            [kind, status, text, text_len, message]
        );
    }
}

/// Prepares `event` to receive poll results (pass `sizeof *event`).
#[no_mangle]
pub unsafe extern "C" fn rigllama_event_init(
    event: *mut rigllama_event,
    struct_size: usize,
) -> rigllama_status {
    boundary(|| unsafe { init_struct(event, struct_size) })
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
        let out_job = out_job.as_mut().ok_or_else(|| Failure::null("out_job"))?;
        *out_job = std::ptr::null_mut();
        let engine = non_null(engine.cast_const(), "engine")?.engine();
        let request = convert::request(request)?;
        let job = engine.submit(request)?;
        *out_job = Box::into_raw(Box::new(rigllama_job {
            canceller: job.canceller(),
            state: Mutex::new(JobState {
                job,
                text: CString::default(),
                message: CString::default(),
                usage: None,
            }),
        }));
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
        let job = non_null(job.cast_const(), "job")?;
        let out_event = non_null(out_event.cast_const(), "out_event")?;
        let struct_size = check_event_size(out_event)?;
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
        match event {
            None => {}
            Some(Event::Text { text, .. }) => {
                // Engine text never holds NUL (it is dropped on the way out of the model).
                state.text = CString::new(text).unwrap_or_default();
                out.kind = RIGLLAMA_EVENT_KIND_TEXT;
                out.text = state.text.as_ptr();
                out.text_len = state.text.as_bytes().len();
            }
            Some(Event::Done(usage)) => {
                state.usage = Some(usage);
                out.kind = RIGLLAMA_EVENT_KIND_DONE;
            }
            Some(Event::Failed { error, usage }) => {
                state.usage = Some(usage);
                state.message =
                    CString::new(error.to_string().replace('\0', " ")).unwrap_or_default();
                out.kind = RIGLLAMA_EVENT_KIND_ERROR;
                out.status = (&error).into();
                out.message = state.message.as_ptr();
            }
        }
        out.write_fields(
            (out_event as *const rigllama_event).cast_mut().cast(),
            struct_size,
        );
        Ok(())
    })
}

unsafe fn check_event_size(event: &rigllama_event) -> Result<usize, Failure> {
    let size = unsafe {
        (event as *const rigllama_event)
            .cast::<u32>()
            .read_unaligned()
    } as usize;
    if size < offset_of!(rigllama_event, message) + size_of::<*const c_char>() {
        return Err(Error::invalid(format!(
            "out_event->struct_size is {size}; call rigllama_event_init first"
        ))
        .into());
    }
    Ok(size)
}

/// Writes the job's usage once it has ended (after DONE, or ERROR: what was spent before the
/// failure). Before that, INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_usage(
    job: *mut rigllama_job,
    out_usage: *mut rigllama_usage,
) -> rigllama_status {
    boundary(|| unsafe {
        let job = non_null(job.cast_const(), "job")?;
        let out_usage = non_null(out_usage.cast_const(), "out_usage")?;
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
        write_usage((out_usage as *const rigllama_usage).cast_mut(), usage)
    })
}

/// Cancels this job only: its next events end with ERROR/CANCELLED. Returns at once; any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn rigllama_job_cancel(job: *mut rigllama_job) -> rigllama_status {
    boundary(|| unsafe {
        non_null(job.cast_const(), "job")?.canceller.cancel();
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
