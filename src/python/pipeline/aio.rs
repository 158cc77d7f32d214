//! The pipeline from coroutines (`ringstat.aio.AsyncPipeline`): sends that
//! never block the loop, and a flush and close that are awaited.
//!
//! - `_pipeline_nowait(method, *args, **kwargs)` calls one of the
//!   pipeline's (or a handle's) single-event send methods in "no wait"
//!   mode: where the send would wait for room (backpressure `"block"`, its
//!   worker's queue full), nothing is sent and the event is handed back as
//!   a `_PendingSend`; the call returns `None` if the event was sent (or
//!   dropped by a dropping policy).
//! - `_PendingSend` registers a native waker (`src/python/aio.rs`) with the
//!   event's queue and retries the send once woken; it sends its event at
//!   most once, and only inside `_try_send`.
//! - `_PipelineTask` is a flush (markers pushed as room allows, answers
//!   awaited) or a close (workers awaited), advanced without blocking.

use std::cell::RefCell;
use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::super::aio::{next_token, PyLoopWaker};
use super::args::{check_fork, closed_err};
use super::PyPipeline;
use crate::pipeline::{Event, FlushTask, Pipeline, SendError};
use crate::sync::StdArc;

pyo3::create_exception!(
    ringstat,
    _WouldBlock,
    PyRuntimeError,
    "Internal: a send in no-wait mode found its queue full (never seen outside ringstat.aio)."
);

/// The no-wait mode of this thread: `None` when off; `Some(None)` while
/// `_pipeline_nowait` runs a method; `Some(Some(..))` once a send of that
/// method found its queue full (the event, not sent).
type Deferred = Option<Option<(StdArc<Pipeline>, Event)>>;

thread_local! {
    static NOWAIT: RefCell<Deferred> = const { RefCell::new(None) };
}

/// Called by a single-event send that found its queue full under `Block`:
/// in no-wait mode, keeps the event (not sent) and returns the error that
/// ends the method; otherwise `None` (the send waits, detached).
pub(super) fn defer(p: &StdArc<Pipeline>, ev: Event) -> Option<PyErr> {
    NOWAIT.with(|n| {
        let mut n = n.borrow_mut();
        let slot = n.as_mut()?;
        if slot.is_some() {
            // A method that sends twice: its first event is kept, this one
            // is refused (never reached by the single-event methods).
            return Some(PyTypeError::new_err(
                "only single-event send methods can be awaited",
            ));
        }
        *slot = Some((StdArc::clone(p), ev));
        Some(_WouldBlock::new_err("queue full"))
    })
}

/// `TypeError` in no-wait mode, for a call that could only wait by
/// blocking the loop (a batch send, `flush`, `close`): raised before it does
/// anything.
pub(super) fn refuse_wait(what: &str, instead: &str) -> PyResult<()> {
    if NOWAIT.with(|n| n.borrow().is_some()) {
        return Err(PyTypeError::new_err(format!(
            "AsyncPipeline.send() takes single-event send methods; {what} may wait: {instead}"
        )));
    }
    Ok(())
}

/// Restores the previous mode when the call ends, however it ends.
struct Mode(Deferred);

impl Drop for Mode {
    fn drop(&mut self) {
        NOWAIT.with(|n| *n.borrow_mut() = self.0.take());
    }
}

/// Calls `method(*args, **kwargs)` in no-wait mode: `None` if it sent its
/// event (or the policy dropped it), a `_PendingSend` holding the event if
/// its queue was full. Other errors propagate.
#[pyfunction]
#[pyo3(signature = (method, /, *args, **kwargs))]
fn _pipeline_nowait(
    py: Python<'_>,
    method: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<PendingSend>> {
    let outer = NOWAIT.with(|n| n.borrow_mut().replace(None));
    let mode = Mode(outer);
    let result = method.call(args, kwargs);
    let deferred = NOWAIT.with(|n| n.borrow_mut().as_mut().and_then(Option::take));
    drop(mode);
    match (result, deferred) {
        (Ok(_), None) => Ok(None),
        (Err(e), Some((pipeline, event))) if e.is_instance_of::<_WouldBlock>(py) => {
            Ok(Some(PendingSend { pipeline, event }))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Some(_)) => Err(PyRuntimeError::new_err(
            "the send method swallowed its no-wait error: the event was not sent",
        )),
    }
}

/// An event whose send found its queue full: sent by `_try_send` once
/// there is room, at most once.
#[pyclass(frozen, name = "_PendingSend", module = "ringstat._ringstat")]
pub(crate) struct PendingSend {
    pipeline: StdArc<Pipeline>,
    event: Event,
}

#[pymethods]
impl PendingSend {
    /// Registers a task of the loop behind `waker` to be woken once the
    /// send may find room; its token, or 0 (nothing registered) if it may
    /// now.
    fn _wait(&self, waker: &PyLoopWaker) -> u64 {
        let token = next_token();
        if self
            .pipeline
            .register_send_waker(&self.event, token, &waker.waker(token))
        {
            token
        } else {
            0
        }
    }

    /// Removes the registration `token`; `False` if it fired.
    fn _unwait(&self, token: u64) -> bool {
        self.pipeline.deregister_waker(token)
    }

    /// Sends the event if there is room: `True` if sent (or dropped by a
    /// dropping policy), `False` if the queue is still full (nothing sent);
    /// `PipelineClosed` once closed.
    fn _try_send(&self) -> PyResult<bool> {
        check_fork(&self.pipeline)?;
        match self.pipeline.try_send(self.event) {
            Ok(()) | Err(SendError::Dropped(_)) => Ok(true),
            Err(SendError::Full(_)) => Ok(false),
            Err(SendError::Closed(_)) => Err(closed_err()),
        }
    }
}

/// What a `_PipelineTask` waits for.
enum Job {
    Flush(FlushTask),
    Close,
}

/// A flush or a close of a pipeline, advanced without blocking.
#[pyclass(name = "_PipelineTask", module = "ringstat._ringstat")]
pub(crate) struct PipelineTask {
    pipeline: StdArc<Pipeline>,
    job: Job,
}

/// Starts a flush of `pipeline` (covering the sends that returned before
/// this call), or, with `close=True`, closes it (later sends raise
/// `PipelineClosed`) and returns the wait for its workers' exit.
#[pyfunction]
#[pyo3(signature = (pipeline, close = false))]
fn _pipeline_task(pipeline: &PyPipeline, close: bool) -> PyResult<PipelineTask> {
    let p = &pipeline.inner;
    check_fork(p)?;
    let job = if close {
        // Closes the queues at once; the workers drain them meanwhile.
        let _ = p.close_until(Some(Instant::now()));
        Job::Close
    } else {
        Job::Flush(p.flush_task())
    };
    Ok(PipelineTask {
        pipeline: StdArc::clone(p),
        job,
    })
}

#[pymethods]
impl PipelineTask {
    /// Advances without waiting: `True` once done.
    fn _try_complete(&mut self, py: Python<'_>) -> bool {
        match &mut self.job {
            Job::Flush(f) => f.try_complete(),
            // Once every worker has marked its exit, the joins are of
            // threads that are ending: detached, as they take a moment.
            Job::Close => {
                let p = &self.pipeline;
                py.detach(|| p.close_until(Some(Instant::now())))
            }
        }
    }

    /// Registers a task of the loop behind `waker` to be woken once
    /// `_try_complete` may progress; its token, or 0 if it may now.
    fn _wait(&self, waker: &PyLoopWaker) -> u64 {
        let token = next_token();
        let w = waker.waker(token);
        let registered = match &self.job {
            Job::Flush(f) => f.register_waker(token, &w),
            Job::Close => self.pipeline.register_close_waker(token, &w),
        };
        if registered {
            token
        } else {
            0
        }
    }

    /// Removes the registration `token`; `False` if it fired.
    fn _unwait(&self, token: u64) -> bool {
        self.pipeline.deregister_waker(token)
    }
}

/// Adds the no-wait function and classes to the module.
pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PendingSend>()?;
    m.add_class::<PipelineTask>()?;
    m.add_function(wrap_pyfunction!(_pipeline_nowait, m)?)?;
    m.add_function(wrap_pyfunction!(_pipeline_task, m)?)?;
    Ok(())
}
