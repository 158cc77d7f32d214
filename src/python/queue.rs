//! `ringstat.Queue`: [`Queue`] of Python objects with the `queue.Queue`
//! interface.
//!
//! Thin by design: every queue operation forwards to the Rust [`Queue`]; this
//! file only converts arguments and errors, releases the GIL while waiting,
//! and keeps `queue.Queue`'s `task_done()`/`join()` counter, which is a
//! Python-protocol concern the Rust queue has no use for.
//!
//! Reference counting: items are `Py<PyAny>`. Dropping one while detached
//! from the interpreter only defers the decref, so every item that leaves the
//! queue (popped, handed back by a failed push, drained by `shutdown`) is
//! moved out of the `py.detach` closure and dropped while attached. A queue
//! dropped with items in it is dropped by `tp_dealloc`, attached, and
//! [`Queue`]'s `Drop` releases every item there.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::{
    block_arg, empty, full, immediate_arg, int_arg, shut_down, type_name, wait_arg, Wait,
};
use crate::queue::{Closed, PopError, PushError, Queue};
use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering};

/// The longest a blocked call stays detached before it re-attaches to run
/// `py.check_signals()` (so Ctrl-C interrupts it).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// A bounded multi-producer, multi-consumer FIFO queue of Python objects: a
/// lock-free ring buffer with the interface of `queue.Queue`.
///
/// Any thread may call any method. Blocking calls release the GIL and stay
/// interruptible by Ctrl-C. `put`/`get` raise the standard library's own
/// `queue.Full` and `queue.Empty`; after `shutdown()` they raise `ShutDown`
/// (`queue.ShutDown` on Python 3.13+).
///
/// Differences from `queue.Queue`:
///
/// - `maxsize` is required and must be at least 1: the ring buffer is
///   allocated up front (16 bytes per slot) and never grows, so there is no
///   unbounded queue; `maxsize <= 0` raises ValueError instead of meaning
///   "unbounded". Choose a bound that absorbs your bursts.
/// - `maxsize` is read-only.
/// - `block` must be a bool (TypeError otherwise).
/// - `qsize()`, `empty()` and `full()` are snapshots, as in `queue.Queue`.
/// - The `mutex`, `not_empty`, `not_full` and `all_tasks_done` attributes and
///   the `_put`/`_get`/`_qsize` hooks do not exist: subclassing to change the
///   ordering is not supported.
/// - Extras: `put_many(items)` and `get_many(max_items)` move a batch with
///   one atomic claim; `len(q)`; a `repr` with size and state.
#[pyclass(frozen, generic, name = "Queue", module = "ringstat._ringstat")]
pub(crate) struct PyQueue {
    /// The items. Holds at most `maxsize` of them.
    inner: Queue<Py<PyAny>>,
    /// `queue.Queue.unfinished_tasks`: items put and not yet marked done by
    /// `task_done()`. Incremented *before* an item is pushed (and decremented
    /// again if the push fails), so a consumer's `task_done()` never runs
    /// ahead of the count.
    unfinished: AtomicUsize,
    /// Held by `join()` while it checks `unfinished` and goes to sleep on
    /// `all_done`; taken by whoever drops `unfinished` to 0 before notifying.
    join_lock: Mutex<()>,
    /// Signalled when `unfinished` reaches 0 (and on `shutdown(immediate=True)`).
    all_done: Condvar,
}

/// Runs `attempt(until)` detached from the interpreter, in slices of at most
/// [`SIGNAL_SLICE`], until it returns `Some` or `deadline` (`None`: never)
/// passes; between slices it re-attaches and checks for signals.
fn blocking<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Instant) -> Option<R> + Send,
) -> PyResult<Option<R>> {
    loop {
        let slice_end = Instant::now() + SIGNAL_SLICE;
        let (until, last) = match deadline {
            Some(d) if d <= slice_end => (d, true),
            _ => (slice_end, false),
        };
        if let Some(done) = py.detach(|| attempt(until)) {
            return Ok(Some(done));
        }
        if last {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

impl PyQueue {
    /// Marks `n` items as done (they were counted by a put that failed, or
    /// drained by `shutdown`), saturating at 0, and wakes `join()` at 0.
    fn forget_tasks(&self, n: usize) {
        if n == 0 {
            return;
        }
        // AcqRel: as in `task_done`.
        let prev = self
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        if prev <= n {
            self.wake_joiners();
        }
    }

    fn wake_joiners(&self) {
        // Taking the lock orders this after a `join()` that saw a non-zero
        // count: it holds the lock until it sleeps on `all_done`.
        let _guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.all_done.notify_all();
    }

    /// `put`: counts the item as unfinished, then pushes it.
    fn put_one(&self, py: Python<'_>, item: Py<PyAny>, wait: Wait) -> PyResult<()> {
        // Relaxed: the push that follows publishes the increment to the
        // consumer (its Release stamp store pairs with the pop's Acquire), so
        // that consumer's `task_done` decrement is ordered after it.
        self.unfinished.fetch_add(1, Ordering::Relaxed);
        let result = self.put_counted(py, item, wait);
        if result.is_err() {
            self.forget_tasks(1);
        }
        result
    }

    fn put_counted(&self, py: Python<'_>, item: Py<PyAny>, wait: Wait) -> PyResult<()> {
        let item = match self.inner.try_push(item) {
            Ok(()) => return Ok(()),
            Err(PushError::Closed(_)) => return Err(shut_down(py)),
            Err(PushError::Full(item)) => item,
        };
        let Wait::Until(deadline) = wait else {
            return Err(full(py));
        };
        let mut item = Some(item);
        let outcome = blocking(py, deadline, |until| {
            let value = item.take()?;
            match self.inner.push_until(value, Some(until)) {
                Ok(()) => Some(Ok(())),
                Err(PushError::Full(value)) => {
                    item = Some(value);
                    None
                }
                Err(PushError::Closed(value)) => Some(Err(value)),
            }
        });
        // Whatever was not pushed (`item`, or the value a closed queue handed
        // back) is dropped here, attached.
        match outcome? {
            Some(Ok(())) => Ok(()),
            Some(Err(_value)) => Err(shut_down(py)),
            None => Err(full(py)),
        }
    }

    fn get_inner(&self, py: Python<'_>, wait: Wait) -> PyResult<Py<PyAny>> {
        match self.inner.try_pop() {
            Ok(item) => return Ok(item),
            Err(PopError::Closed) => return Err(shut_down(py)),
            Err(PopError::Empty) => {}
        }
        let Wait::Until(deadline) = wait else {
            return Err(empty(py));
        };
        let outcome = blocking(py, deadline, |until| {
            match self.inner.pop_until(Some(until)) {
                Err(PopError::Empty) => None,
                done => Some(done),
            }
        })?;
        match outcome {
            Some(Ok(item)) => Ok(item),
            Some(Err(_)) => Err(shut_down(py)),
            None => Err(empty(py)),
        }
    }

    fn put_many_counted(
        &self,
        py: Python<'_>,
        batch: &mut Vec<Py<PyAny>>,
        wait: Wait,
    ) -> PyResult<()> {
        if self.inner.try_push_batch(batch).is_err() {
            return Err(shut_down(py));
        }
        let Wait::Until(deadline) = wait else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        let outcome = blocking(py, deadline, |until| {
            match self.inner.push_batch_until(batch, Some(until)) {
                Ok(_) if batch.is_empty() => Some(Ok(())),
                Ok(_) => None,
                Err(Closed) => Some(Err(Closed)),
            }
        })?;
        match outcome {
            Some(Err(Closed)) => Err(shut_down(py)),
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl PyQueue {
    /// Creates a queue that holds at most `maxsize` items (`maxsize >= 1`).
    #[new]
    #[pyo3(signature = (maxsize))]
    fn new(maxsize: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(n) = maxsize.extract::<i128>() {
            if n <= 0 && !maxsize.is_instance_of::<pyo3::types::PyBool>() {
                return Err(PyValueError::new_err(format!(
                    "maxsize must be at least 1, got {n}: a ringstat.Queue is a bounded ring \
                     buffer, so queue.Queue's 'maxsize <= 0 means unbounded' has no equivalent"
                )));
            }
        }
        let capacity = int_arg(maxsize, "maxsize", 1)?;
        let inner =
            Queue::try_new(capacity).map_err(|e| PyValueError::new_err(format!("maxsize: {e}")))?;
        Ok(Self {
            inner,
            unfinished: AtomicUsize::new(0),
            join_lock: Mutex::new(()),
            all_done: Condvar::new(),
        })
    }

    /// The most items the queue holds (read-only).
    #[getter]
    fn maxsize(&self) -> usize {
        self.inner.capacity()
    }

    /// Items put and not yet marked done by `task_done()` (read-only).
    #[getter]
    fn unfinished_tasks(&self) -> usize {
        // Relaxed: an informational snapshot.
        self.unfinished.load(Ordering::Relaxed)
    }

    /// `True` once `shutdown()` has been called (read-only).
    #[getter]
    fn is_shutdown(&self) -> bool {
        self.inner.is_closed()
    }

    /// Puts `item`, waiting for room if `block` (at most `timeout` seconds).
    #[pyo3(signature = (item, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.put_one(py, item, wait_arg(block, timeout)?)
    }

    /// `put(item, block=False)`.
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        self.put_one(py, item, Wait::No)
    }

    /// Removes and returns the oldest item, waiting for one if `block` (at
    /// most `timeout` seconds).
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let wait = wait_arg(block, timeout)?;
        self.get_inner(py, wait)
    }

    /// `get(block=False)`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get_inner(py, Wait::No)
    }

    /// Puts every item of `items` in order; returns how many were put.
    #[pyo3(signature = (items, block = true, timeout = None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let wait = wait_arg(block, timeout)?;
        let iter = items.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "items must be an iterable, not {}",
                type_name(items)
            ))
        })?;
        let mut batch = iter
            .map(|item| item.map(Bound::unbind))
            .collect::<PyResult<Vec<Py<PyAny>>>>()?;
        let total = batch.len();
        if total == 0 {
            return if self.inner.is_closed() {
                Err(shut_down(py))
            } else {
                Ok(0)
            };
        }
        // Relaxed: as in `put`.
        self.unfinished.fetch_add(total, Ordering::Relaxed);
        let result = self.put_many_counted(py, &mut batch, wait);
        // Items left in `batch` were not put: uncount them; they are dropped
        // (attached) when `batch` goes out of scope.
        self.forget_tasks(batch.len());
        result.map(|()| total - batch.len())
    }

    /// Removes and returns up to `max_items` of the oldest items (at least
    /// one), waiting for the first if `block` (at most `timeout` seconds).
    #[pyo3(signature = (max_items, block = true, timeout = None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_items: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let max = int_arg(max_items, "max_items", 1)?;
        let wait = wait_arg(block, timeout)?;
        let mut out = Vec::new();
        match self.inner.try_pop_batch(&mut out, max) {
            Err(Closed) => return Err(shut_down(py)),
            Ok(0) => {}
            Ok(_) => return PyList::new(py, out),
        }
        let Wait::Until(deadline) = wait else {
            return Err(empty(py));
        };
        let outcome = blocking(py, deadline, |until| {
            match self.inner.pop_batch_until(&mut out, max, Some(until)) {
                Ok(0) => None,
                done => Some(done),
            }
        })?;
        match outcome {
            Some(Ok(_)) => PyList::new(py, out),
            Some(Err(Closed)) => Err(shut_down(py)),
            None => Err(empty(py)),
        }
    }

    /// The number of items in the queue (a snapshot).
    fn qsize(&self) -> usize {
        self.inner.len()
    }

    /// `True` if the queue holds no item (a snapshot).
    fn empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// `True` if the queue holds `maxsize` items (a snapshot).
    fn full(&self) -> bool {
        self.inner.is_full()
    }

    /// Marks one item got from the queue as processed.
    fn task_done(&self) -> PyResult<()> {
        // AcqRel: Release pairs with the Acquire load in `join`, so the work
        // done before `task_done()` is visible to whoever `join()` wakes;
        // Acquire orders us after the increment of the matching put.
        match self
            .unfinished
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1))
        {
            Err(_) => Err(PyValueError::new_err("task_done() called too many times")),
            Ok(1) => {
                self.wake_joiners();
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }

    /// Blocks until every item put has been marked done by `task_done()`.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            // Acquire: pairs with the Release decrement in `task_done`.
            if self.unfinished.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            py.detach(|| {
                let guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
                // Re-checked under the lock: a `task_done` that reaches 0
                // after this load must take the lock to notify, which it gets
                // only once we sleep.
                if self.unfinished.load(Ordering::Acquire) != 0 {
                    drop(
                        self.all_done
                            .wait_timeout(guard, SIGNAL_SLICE)
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                }
            });
            py.check_signals()?;
        }
    }

    /// Shuts the queue down: `put` raises `ShutDown`; `get` drains what is
    /// left, then raises `ShutDown`. With `immediate=True` the items left are
    /// discarded at once (and counted as done for `join()`).
    #[pyo3(signature = (immediate = false))]
    fn shutdown(&self, #[pyo3(from_py_with = immediate_arg)] immediate: bool) {
        self.inner.close();
        if immediate {
            // Closed: pops drain, then fail; nothing can be pushed any more.
            // Each item is released here, attached.
            let mut drained = 0;
            while let Ok(item) = self.inner.try_pop() {
                drop(item);
                drained += 1;
            }
            self.forget_tasks(drained);
            // Like the stdlib: release every `join()` to re-check.
            self.wake_joiners();
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<ringstat.Queue maxsize={} qsize={} unfinished_tasks={}{}>",
            self.inner.capacity(),
            self.inner.len(),
            self.unfinished_tasks(),
            if self.inner.is_closed() {
                " shutdown"
            } else {
                ""
            }
        )
    }
}
