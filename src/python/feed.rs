//! Many processes into one pipeline, for Python (`src/wire/feed.rs`):
//! `FeedSender` (producer processes batch events into frames put into a
//! `SharedQueue`) and `Feed` (`Pipeline.feed_from(queue)`: a native thread
//! applying them). Converts and forwards; blocking puts wait detached, in
//! signal slices.

use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::errors::{full, shut_down, type_name, wait_arg, Wait};
use super::pipeline::{key_arg, name_arg, ts_arg};
use super::shm::{push_err, PySharedQueue};
use super::stats::{i64_arg, u64_arg};
use super::wait::in_slices;
use super::wire::{FrameError as PyFrameError, OP_NAMES};
use crate::pipeline::{Op, Pipeline};
use crate::queue::{SharedPushError, SharedQueue};
use crate::sync::{AtomicBool, Mutex, Ordering, StdArc};
use crate::wire::{Feed, FeedEnd, FrameBatcher};

/// Adds `Feed` and `FeedSender` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFeed>()?;
    m.add_class::<PyFeedSender>()?;
    Ok(())
}

/// Starts a feed of `pipeline` from `queue` (`Pipeline.feed_from`).
pub(crate) fn start(pipeline: StdArc<Pipeline>, queue: &Bound<'_, PyAny>) -> PyResult<PyFeed> {
    let q = queue.cast::<PySharedQueue>().map_err(|_| {
        PyTypeError::new_err(format!(
            "feed_from() takes a ringstat.SharedQueue, not {}",
            type_name(queue)
        ))
    })?;
    let q = q.get().core();
    let name = q
        .name()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    let feed = Feed::start(pipeline, q.clone())
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the feed thread: {e}")))?;
    Ok(PyFeed {
        inner: Mutex::new(feed),
        queue: name,
    })
}

/// A native thread applying frames from a `SharedQueue` to a pipeline.
#[pyclass(frozen, name = "Feed", module = "ringstat._ringstat")]
pub(crate) struct PyFeed {
    inner: Mutex<Feed>,
    queue: String,
}

impl PyFeed {
    fn with<R>(&self, f: impl FnOnce(&mut Feed) -> R) -> R {
        // A panic cannot happen while the lock is held (stop joins a
        // thread whose panics it ignores): a poisoned lock is still usable.
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

fn end_name(e: FeedEnd) -> &'static str {
    match e {
        FeedEnd::Running => "running",
        FeedEnd::Stopped => "stopped",
        FeedEnd::QueueClosed => "queue_closed",
        FeedEnd::PipelineClosed => "pipeline_closed",
        FeedEnd::TooManyProcesses => "too_many_processes",
    }
}

#[pymethods]
impl PyFeed {
    /// Stops the thread and joins it; with `drain=True` after applying every
    /// frame queued now. Idempotent.
    #[pyo3(signature = (drain = false))]
    fn stop(&self, py: Python<'_>, drain: bool) {
        py.detach(|| {
            self.with(|f| {
                if drain {
                    f.stop_after_drain();
                } else {
                    f.stop();
                }
            });
        });
    }

    /// `True` while the thread runs.
    #[getter]
    fn running(&self) -> bool {
        self.with(|f| f.end() == FeedEnd::Running)
    }

    /// Why the thread ended (`"running"` while it runs).
    #[getter]
    fn end(&self) -> &'static str {
        self.with(|f| end_name(f.end()))
    }

    /// The counts: frames, events, bad_frames, rejected_frames,
    /// rejected_events, unapplied_frames.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with(|f| f.stats());
        let d = PyDict::new(py);
        d.set_item("frames", s.frames)?;
        d.set_item("events", s.events)?;
        d.set_item("bad_frames", s.bad_frames)?;
        d.set_item("rejected_frames", s.rejected_frames)?;
        d.set_item("rejected_events", s.rejected_events)?;
        d.set_item("unapplied_frames", s.unapplied_frames)?;
        Ok(d)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.stop(py, false);
        false
    }

    fn __repr__(&self) -> String {
        self.with(|f| {
            let s = f.stats();
            format!(
                "<ringstat.Feed from {:?}: {}, {} frames, {} events, {} bad>",
                self.queue,
                end_name(f.end()),
                s.frames,
                s.events,
                s.bad_frames
            )
        })
    }
}

/// The producer side: batches events into frames of at most the queue's
/// slot size and puts each full frame into the queue.
#[pyclass(frozen, subclass, name = "FeedSender", module = "ringstat._ringstat")]
pub(crate) struct PyFeedSender {
    queue: SharedQueue,
    /// Locked only while attached and never across a wait, so two threads
    /// of one interpreter cannot deadlock on it.
    batcher: Mutex<FrameBatcher>,
    /// Frames a flush could not put (timeout, interrupt), oldest first.
    unsent: Mutex<Vec<Vec<u8>>>,
    closed: AtomicBool,
}

impl PyFeedSender {
    fn batcher(&self) -> std::sync::MutexGuard<'_, FrameBatcher> {
        self.batcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(
        &self,
        py: Python<'_>,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> PyResult<()> {
        // Relaxed: a flag set by close; a send racing with it may go out.
        if self.closed.load(Ordering::Relaxed) {
            return Err(shut_down(py));
        }
        let full = self
            .batcher()
            .add(op, name, key, value, ts)
            .map_err(|e| PyFrameError::new_err(e.to_string()))?;
        match full {
            Some(frame) => self.put(py, frame, None),
            None => Ok(()),
        }
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.unsent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts one frame, waiting for room until `deadline` (detached, in
    /// signal slices). A frame not put by the deadline or when a signal
    /// handler raises is kept for the next flush; a shut-down queue drops it.
    fn put(&self, py: Python<'_>, frame: Vec<u8>, deadline: Option<Instant>) -> PyResult<()> {
        match self.queue.try_push(&frame) {
            Ok(()) => return Ok(()),
            Err(SharedPushError::Full) => {}
            Err(e) => return Err(push_err(py, e)),
        }
        let q = &self.queue;
        let f = &frame;
        let r = in_slices(
            py,
            deadline,
            |until| match q.push(f, Some(until.saturating_duration_since(Instant::now()))) {
                Err(SharedPushError::Full) => None,
                r => Some(r),
            },
            || Ok(()),
        );
        match r {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(push_err(py, e)),
            Ok(None) => {
                self.unsent().push(frame);
                Err(full(py))
            }
            Err(e) => {
                self.unsent().push(frame);
                Err(e)
            }
        }
    }

    fn flush_inner(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<()> {
        let mut frames = core::mem::take(&mut *self.unsent());
        frames.extend(self.batcher().take());
        let mut frames = frames.into_iter();
        while let Some(f) = frames.next() {
            if let Err(e) = self.put(py, f, deadline) {
                // Keep the rest too (the failed one is kept by `put`,
                // unless the queue is shut down).
                self.unsent().extend(frames);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// How long a sender dropped with events batched waits for room for them
/// (attached: a collected sender must not stall the interpreter long).
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Drop for PyFeedSender {
    fn drop(&mut self) {
        let mut frames = core::mem::take(&mut *self.unsent());
        frames.extend(self.batcher().take());
        let deadline = Instant::now() + DROP_WAIT;
        for f in frames {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.queue.push(&f, Some(left));
        }
    }
}

fn n_arg(n: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    n.map_or(Ok(1), |n| u64_arg(n, "n"))
}

#[pymethods]
impl PyFeedSender {
    /// A sender into `queue` (a `SharedQueue`).
    #[new]
    fn new(queue: &Bound<'_, PyAny>) -> PyResult<Self> {
        let q = queue.cast::<PySharedQueue>().map_err(|_| {
            PyTypeError::new_err(format!(
                "FeedSender() takes a ringstat.SharedQueue, not {}",
                type_name(queue)
            ))
        })?;
        let q = q.get().core().clone();
        let producer = FrameBatcher::random_producer();
        let batcher = FrameBatcher::new(q.slot_size(), producer);
        Ok(Self {
            queue: q,
            batcher: Mutex::new(batcher),
            unsent: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The producer id written in this sender's frames.
    #[getter]
    fn producer_id(&self) -> u64 {
        self.batcher().producer()
    }

    /// The byte limit of a frame: the queue's slot size.
    #[getter]
    fn frame_size(&self) -> usize {
        self.batcher().limit()
    }

    /// Events batched and not put into the queue yet.
    #[getter]
    fn pending(&self) -> usize {
        self.batcher().pending()
    }

    /// Frames a flush could not put yet (timeout or interrupt).
    #[getter]
    fn unsent_frames(&self) -> usize {
        self.unsent().len()
    }

    /// `True` after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        // Relaxed: a flag.
        self.closed.load(Ordering::Relaxed)
    }

    /// One event by op name (as `encode_frame`'s tuples).
    #[pyo3(signature = (op, name, key = None, value = None, ts = None))]
    fn send(
        &self,
        py: Python<'_>,
        op: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let op_s = op.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("op must be a str, not {}", type_name(op)))
        })?;
        let op_s = op_s.to_cow()?;
        let op = OP_NAMES
            .iter()
            .find(|(n, _)| *n == op_s)
            .map(|&(_, o)| o)
            .ok_or_else(|| {
                let names: Vec<&str> = OP_NAMES.iter().map(|(n, _)| *n).collect();
                PyValueError::new_err(format!("unknown op {op_s:?} (one of {})", names.join(", ")))
            })?;
        let key = key.map_or(Ok(0), key_arg)?;
        let value = match value {
            None => 1,
            Some(v) if matches!(op, Op::Set | Op::GaugeAdd) => i64_arg(v, "value")? as u64,
            Some(v) => u64_arg(v, "value")?,
        };
        self.add(py, op, &name, key, value, ts_arg(ts)?)
    }

    /// Adds `n` (default 1) to the counter `name`.
    #[pyo3(signature = (name, n = None), text_signature = "($self, name, n=1)")]
    fn count(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.add(py, Op::Count, &name, 0, n_arg(n)?, 0)
    }

    /// Sets the gauge `name` to `value`.
    fn set(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let v = i64_arg(value, "value")?;
        self.add(py, Op::Set, &name, 0, v as u64, 0)
    }

    /// Adds `n` (may be negative) to the gauge `name`.
    fn gauge_add(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = i64_arg(n, "n")?;
        self.add(py, Op::GaugeAdd, &name, 0, n as u64, 0)
    }

    /// Records the int `value` in the histogram `name` (resolved in the
    /// aggregator's pipeline).
    fn observe(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let v = u64_arg(value, "value")?;
        self.add(py, Op::Observe, &name, 0, v, 0)
    }

    /// Counts `n` (default 1) events in the rate `name`.
    #[pyo3(signature = (name, n = None), text_signature = "($self, name, n=1)")]
    fn mark(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.add(py, Op::Mark, &name, 0, n_arg(n)?, 0)
    }

    /// Opens a session of the tracker `name` for `key` at `ts` (seconds on
    /// the aggregator's pipeline clock; `None`: when applied).
    #[pyo3(signature = (name, key, ts = None))]
    fn session_start(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        self.add(py, Op::Start, &name, key, 0, ts)
    }

    /// Closes the session of `key` in the tracker `name` at `ts`.
    #[pyo3(signature = (name, key, ts = None))]
    fn session_end(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        self.add(py, Op::End, &name, key, 0, ts)
    }

    /// Records `key` in the distinct counter `name` at `ts`.
    #[pyo3(signature = (name, key, ts = None))]
    fn seen(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        self.add(py, Op::Seen, &name, key, 0, ts)
    }

    /// Puts the batched events as one frame, waiting for room at most
    /// `timeout` seconds (`None`: forever); `queue.Full` at the timeout
    /// (the frame is kept for the next flush).
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let deadline = match wait_arg(true, timeout)? {
            Wait::Until(d) => d,
            Wait::No => Some(Instant::now()),
        };
        self.flush_inner(py, deadline)
    }

    /// Flushes, then refuses further events (`ShutDown`). Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        // Relaxed: a flag.
        if self.closed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        self.flush_inner(py, None)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let b = self.batcher();
        format!(
            "<ringstat.FeedSender into {:?}: producer {}, {} pending>",
            self.queue
                .name()
                .unwrap_or_default()
                .trim_start_matches('/'),
            b.producer(),
            b.pending()
        )
    }
}
