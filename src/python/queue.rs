//! `ringstat.Queue`: a [`Queue`] (bounded) or an [`UnboundedQueue`] of Python
//! objects with the `queue.Queue` interface.
//!
//! Thin by design: every queue operation forwards to the Rust queue; this
//! file only converts arguments and errors, releases the GIL while waiting,
//! and keeps `queue.Queue`'s `task_done()`/`join()` counter, which is a
//! Python-protocol concern the Rust queues have no use for.
//!
//! Reference counting: items are `Py<PyAny>`. Dropping one while detached
//! from the interpreter only defers the decref, so every item that leaves the
//! queue (popped, handed back by a failed push, drained by `shutdown`) is
//! moved out of the `py.detach` closure and dropped while attached. A queue
//! dropped with items in it is dropped by `tp_dealloc`, attached, and the
//! Rust queue's `Drop` releases every item there.
//!
//! Garbage collection: the queue visits its items in `__traverse__` (so a
//! cycle through a queue is collected) and drops them in `__clear__`. Other
//! threads may push and pop while detached from the interpreter, so the
//! visit happens only when no call is inside a detached section (`detached`
//! is 0; it changes only while attached, so it cannot change during the
//! visit). Skipping the visit is safe: the collector then only sees fewer
//! references and collects nothing it should not.

use std::task::Waker;
use std::time::Instant;

use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PySequence};
use pyo3::{PyTraverseError, PyVisit};

use super::errors::{
    block_arg, empty, full, immediate_arg, int_arg, is_shut_down, shut_down, type_name, wait_arg,
    Wait,
};
use super::fastcall::{self, add_raw_method, none, receiver};
use crate::queue::{Closed, PopError, PushError, Queue, UnboundedQueue};
use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering};

/// Items `put_many` takes from its iterable at a time: the memory it holds
/// stays bounded whatever the iterable (even an endless one).
const PUT_CHUNK: usize = 1024;

type Item = Py<PyAny>;

/// Where the items live: a ring allocated up front (`maxsize > 0`) or an
/// unbounded list (`maxsize <= 0`, as in `queue.Queue`). Both are a few
/// cache-padded words; boxing either would cost an indirection per call.
#[allow(clippy::large_enum_variant)]
enum Store {
    Ring(Queue<Item>),
    List(UnboundedQueue<Item>),
}

impl Store {
    #[inline(always)]
    fn try_push(&self, item: Item) -> Result<(), PushError<Item>> {
        match self {
            Self::Ring(q) => q.try_push(item),
            Self::List(q) => q.try_push(item),
        }
    }

    fn push_until(&self, item: Item, until: Option<Instant>) -> Result<(), PushError<Item>> {
        match self {
            Self::Ring(q) => q.push_until(item, until),
            Self::List(q) => q.try_push(item),
        }
    }

    #[inline(always)]
    fn try_pop(&self) -> Result<Item, PopError> {
        match self {
            Self::Ring(q) => q.try_pop(),
            Self::List(q) => q.try_pop(),
        }
    }

    fn pop_until(&self, until: Option<Instant>) -> Result<Item, PopError> {
        match self {
            Self::Ring(q) => q.pop_until(until),
            Self::List(q) => q.pop_until(until),
        }
    }

    /// Pushes what fits of `batch` (all of it for the list).
    fn try_push_batch(&self, batch: &mut Vec<Item>) -> Result<usize, Closed> {
        match self {
            Self::Ring(q) => q.try_push_batch(batch),
            Self::List(q) => q.try_push_batch(batch),
        }
    }

    fn push_batch_until(
        &self,
        batch: &mut Vec<Item>,
        until: Option<Instant>,
    ) -> Result<usize, Closed> {
        match self {
            Self::Ring(q) => q.push_batch_until(batch, until),
            Self::List(q) => q.try_push_batch(batch),
        }
    }

    fn try_pop_batch(&self, out: &mut Vec<Item>, max: usize) -> Result<usize, Closed> {
        match self {
            Self::Ring(q) => q.try_pop_batch(out, max),
            Self::List(q) => q.try_pop_batch(out, max),
        }
    }

    fn pop_batch_until(
        &self,
        out: &mut Vec<Item>,
        max: usize,
        until: Option<Instant>,
    ) -> Result<usize, Closed> {
        match self {
            Self::Ring(q) => q.pop_batch_until(out, max, until),
            Self::List(q) => q.pop_batch_until(out, max, until),
        }
    }

    fn close(&self) {
        match self {
            Self::Ring(q) => {
                q.close();
            }
            Self::List(q) => {
                q.close();
            }
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Self::Ring(q) => q.is_closed(),
            Self::List(q) => q.is_closed(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Ring(q) => q.len(),
            Self::List(q) => q.len(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::Ring(q) => q.is_empty(),
            Self::List(q) => q.is_empty(),
        }
    }

    fn is_full(&self) -> bool {
        match self {
            Self::Ring(q) => q.is_full(),
            Self::List(_) => false,
        }
    }

    /// Registers `waker` to be woken once a pop may succeed; `false` if one
    /// may now (see `crate::queue`'s task waits).
    fn register_pop_waker(&self, key: u64, waker: &Waker) -> bool {
        match self {
            Self::Ring(q) => q.register_pop_waker(key, waker),
            Self::List(q) => q.register_pop_waker(key, waker),
        }
    }

    /// As `register_pop_waker`, for room; the list always has room.
    fn register_push_waker(&self, key: u64, waker: &Waker) -> bool {
        match self {
            Self::Ring(q) => q.register_push_waker(key, waker),
            Self::List(_) => false,
        }
    }

    fn deregister_waker(&self, put: bool, key: u64) -> bool {
        match (self, put) {
            (Self::Ring(q), false) => q.deregister_pop_waker(key),
            (Self::Ring(q), true) => q.deregister_push_waker(key),
            (Self::List(q), false) => q.deregister_pop_waker(key),
            (Self::List(_), true) => false,
        }
    }

    /// Free slots right now (a snapshot); `usize::MAX` for the list.
    fn room(&self) -> usize {
        match self {
            Self::Ring(q) => q.capacity().saturating_sub(q.len()),
            Self::List(_) => usize::MAX,
        }
    }
}

/// A multi-producer, multi-consumer FIFO queue of Python objects with the
/// interface of `queue.Queue`: a lock-free ring buffer when `maxsize > 0`,
/// a lock-free unbounded list otherwise.
///
/// Any thread may call any method. Blocking calls release the GIL and stay
/// interruptible by Ctrl-C. `put`/`get` raise the standard library's own
/// `queue.Full` and `queue.Empty`; after `shutdown()` they raise `ShutDown`
/// (`queue.ShutDown` on Python 3.13+).
#[pyclass(
    frozen,
    generic,
    weakref,
    name = "Queue",
    module = "ringstat._ringstat"
)]
pub(crate) struct PyQueue {
    /// The items. Boxed: the queues' cache-padded fields are 128-byte aligned,
    /// and Python allocates objects with less alignment than that.
    inner: Box<Store>,
    /// `maxsize` as given (`<= 0`: unbounded).
    maxsize: i64,
    /// `queue.Queue.unfinished_tasks`: items put and not yet marked done by
    /// `task_done()`. Incremented *before* an item is pushed (and decremented
    /// again if the push fails), so a consumer's `task_done()` never runs
    /// ahead of the count.
    unfinished: AtomicUsize,
    /// Calls of this queue inside a detached section (see the module docs).
    /// Changed only while attached.
    detached: AtomicUsize,
    /// Held by `join()` while it checks `unfinished` and goes to sleep on
    /// `all_done`; taken by whoever drops `unfinished` to 0 before notifying.
    /// Holds the wakers of async `join()`s (token, waker), woken and removed
    /// at the same time.
    join_lock: Mutex<Vec<(u64, Waker)>>,
    /// Signalled when `unfinished` reaches 0 (and on `shutdown(immediate=True)`).
    all_done: Condvar,
}

impl PyQueue {
    /// Runs `attempt(until)` detached from the interpreter in signal slices
    /// ([`in_counted_slices`](super::wait::in_counted_slices), counted in
    /// `detached`), until it returns `Some` or `deadline` (`None`: never)
    /// passes.
    fn blocking<R: Send>(
        &self,
        py: Python<'_>,
        deadline: Option<Instant>,
        attempt: impl FnMut(Instant) -> Option<R> + Send,
    ) -> PyResult<Option<R>> {
        super::wait::in_counted_slices(py, deadline, &self.detached, attempt)
    }

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
        // count: it holds the lock until it sleeps on `all_done` (an async
        // one: until its waker is in the list).
        let mut guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
        let wakers = std::mem::take(&mut *guard);
        self.all_done.notify_all();
        drop(guard);
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// `put`: counts the item as unfinished, then pushes it.
    fn put_one(&self, py: Python<'_>, item: Item, wait: Wait) -> PyResult<()> {
        // Relaxed: the push that follows publishes the increment to the
        // consumer (its Release publication pairs with the pop's Acquire), so
        // that consumer's `task_done` decrement is ordered after it.
        self.unfinished.fetch_add(1, Ordering::Relaxed);
        let result = self.put_counted(py, item, wait);
        if result.is_err() {
            self.forget_tasks(1);
        }
        result
    }

    fn put_counted(&self, py: Python<'_>, item: Item, wait: Wait) -> PyResult<()> {
        match self.inner.try_push(item) {
            Ok(()) => Ok(()),
            Err(e) => self.put_refused(py, e, wait),
        }
    }

    /// `put_counted` after its first push was refused with `refused`.
    fn put_refused(&self, py: Python<'_>, refused: PushError<Item>, wait: Wait) -> PyResult<()> {
        let item = match refused {
            PushError::Closed(_) => return Err(shut_down(py)),
            PushError::Full(item) => item,
        };
        let Wait::Until(deadline) = wait else {
            return Err(full(py));
        };
        let mut item = Some(item);
        let outcome = self.blocking(py, deadline, |until| {
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

    #[inline]
    fn get_inner(&self, py: Python<'_>, wait: Wait) -> PyResult<Item> {
        match self.inner.try_pop() {
            Ok(item) => return Ok(item),
            Err(PopError::Closed) => return Err(shut_down(py)),
            Err(PopError::Empty) => {}
        }
        let Wait::Until(deadline) = wait else {
            return Err(empty(py));
        };
        let outcome = self.blocking(py, deadline, |until| {
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

    /// Pushes `batch` (already counted as unfinished), waiting as `wait`
    /// says; what is left in `batch` afterwards was not put.
    fn push_chunk(&self, py: Python<'_>, batch: &mut Vec<Item>, wait: Wait) -> PyResult<()> {
        if self.inner.try_push_batch(batch).is_err() {
            return Err(shut_down(py));
        }
        let Wait::Until(deadline) = wait else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        let outcome = self.blocking(py, deadline, |until| {
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

    /// Pushes one chunk taken from the iterable, keeping the task count
    /// right; returns how many of it went in, or the error with that count.
    fn put_chunk(
        &self,
        py: Python<'_>,
        chunk: &mut Vec<Item>,
        wait: Wait,
    ) -> (usize, PyResult<()>) {
        let n = chunk.len();
        // Relaxed: as in `put_one`.
        self.unfinished.fetch_add(n, Ordering::Relaxed);
        let result = self.push_chunk(py, chunk, wait);
        self.forget_tasks(chunk.len());
        (n - chunk.len(), result)
    }
}

/// Attaches `items_put` (and, when some items were taken from the iterable
/// but not put, `items_left`) to `err`, so a caller of `put_many` knows
/// exactly what went in.
fn with_progress(py: Python<'_>, err: PyErr, put: usize, left: Vec<Item>) -> PyErr {
    let value = err.value(py);
    // A failure to set the attributes (an exception type with __slots__)
    // leaves the original error as it is.
    let _ = value.setattr("items_put", put);
    if let Ok(list) = PyList::new(py, left) {
        let _ = value.setattr("items_left", list);
    }
    err
}

#[pymethods]
impl PyQueue {
    /// Creates a queue that holds at most `maxsize` items; `maxsize <= 0`
    /// (the default) makes it unbounded.
    #[new]
    #[pyo3(signature = (maxsize = None), text_signature = "(maxsize=0)")]
    fn new(maxsize: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let (inner, maxsize) = match maxsize {
            None => (Store::List(UnboundedQueue::new()), 0),
            Some(m) => {
                // `int_arg` rejects non-ints and bools with a TypeError.
                let n = match m.extract::<i128>() {
                    Ok(n) if n <= 0 && !m.is_instance_of::<pyo3::types::PyBool>() => n,
                    _ => 1,
                };
                if n <= 0 {
                    let n = i64::try_from(n).unwrap_or(i64::MIN);
                    (Store::List(UnboundedQueue::new()), n)
                } else {
                    let capacity = int_arg(m, "maxsize", 1)?;
                    let ring = Queue::try_new(capacity).map_err(|e| {
                        if e.is_alloc_failure() {
                            PyMemoryError::new_err(format!("maxsize: {e}"))
                        } else {
                            PyValueError::new_err(format!("maxsize: {e}"))
                        }
                    })?;
                    (
                        Store::Ring(ring),
                        i64::try_from(capacity).unwrap_or(i64::MAX),
                    )
                }
            }
        };
        Ok(Self {
            inner: Box::new(inner),
            maxsize,
            unfinished: AtomicUsize::new(0),
            detached: AtomicUsize::new(0),
            join_lock: Mutex::new(Vec::new()),
            all_done: Condvar::new(),
        })
    }

    /// The most items the queue holds; `<= 0` for an unbounded queue
    /// (read-only).
    #[getter]
    fn maxsize(&self) -> i64 {
        self.maxsize
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

    // `put`, `put_nowait`, `get` and `get_nowait` are hand-written below
    // (`add_methods`).

    /// Puts the items of `items` in order, taking them from the iterable in
    /// chunks; returns how many were put. See the stub for the partial cases.
    #[pyo3(signature = (items, block = true, timeout = None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let wait = wait_arg(block, timeout)?;
        // A sequence keeps its items: the caller can take `items[n:]`.
        let sequence = items.cast::<PySequence>().is_ok();
        let mut iter = items.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "items must be an iterable, not {}",
                type_name(items)
            ))
        })?;
        let waits_for_room = matches!(wait, Wait::Until(None));
        let mut put = 0usize;
        let mut chunk: Vec<Item> = Vec::new();
        loop {
            // From an iterator, take no more than there is room for unless
            // waiting for room as long as it takes: what is taken and cannot
            // be put is handed back on the exception, but better not taken.
            let limit = if sequence || waits_for_room {
                PUT_CHUNK
            } else {
                match (self.inner.room(), wait) {
                    (0, Wait::No) => return Ok(put),
                    (room, _) => room.clamp(1, PUT_CHUNK),
                }
            };
            let mut failed = None;
            while chunk.len() < limit {
                match iter.next() {
                    Some(Ok(item)) => chunk.push(item.unbind()),
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            if chunk.is_empty() {
                return match failed {
                    Some(e) => Err(with_progress(py, e, put, Vec::new())),
                    None if put == 0 && self.inner.is_closed() => Err(shut_down(py)),
                    None => Ok(put),
                };
            }
            let taken = chunk.len();
            let (n, result) = self.put_chunk(py, &mut chunk, wait);
            put += n;
            let left = std::mem::take(&mut chunk);
            if let Err(e) = result {
                return Err(with_progress(py, e, put, left));
            }
            if let Some(e) = failed {
                // Items taken before the iterable raised were put (or are
                // handed back): nothing taken is lost.
                return Err(with_progress(py, e, put, left));
            }
            if n < taken {
                // Not everything fit (block=False, or the timeout passed).
                if sequence {
                    return Ok(put);
                }
                return Err(with_progress(py, full(py), put, left));
            }
            // Per chunk: Ctrl-C interrupts a long (or endless) put_many even
            // when it never waits. The whole chunk went in.
            if let Err(e) = py.check_signals() {
                return Err(with_progress(py, e, put, Vec::new()));
            }
        }
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
        let outcome = self.blocking(py, deadline, |until| {
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

    // ----- for `ringstat.aio` (private): never wait, never raise Empty/Full --

    /// `get_nowait()`, returning `default` instead of raising `Empty`.
    fn _try_get(&self, py: Python<'_>, default: Item) -> PyResult<Item> {
        match self.inner.try_pop() {
            Ok(item) => Ok(item),
            Err(PopError::Closed) => Err(shut_down(py)),
            Err(PopError::Empty) => Ok(default),
        }
    }

    /// `put_nowait(item)`, returning `False` instead of raising `Full`.
    fn _try_put(&self, py: Python<'_>, item: Item) -> PyResult<bool> {
        // Relaxed: as in `put_one`.
        self.unfinished.fetch_add(1, Ordering::Relaxed);
        match self.inner.try_push(item) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.forget_tasks(1);
                match e {
                    PushError::Full(_item) => Ok(false),
                    PushError::Closed(_item) => Err(shut_down(py)),
                }
            }
        }
    }

    /// `get_many(max_items, block=False)`, returning `[]` instead of raising
    /// `Empty`.
    fn _try_get_many<'py>(
        &self,
        py: Python<'py>,
        max_items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let max = int_arg(max_items, "max_items", 1)?;
        let mut out = Vec::new();
        match self.inner.try_pop_batch(&mut out, max) {
            Err(Closed) => Err(shut_down(py)),
            Ok(_) => PyList::new(py, out),
        }
    }

    /// Registers a task of the loop behind `waker` to be woken once a `get`
    /// (`put=False`) or a `put` (`put=True`) may succeed; returns its token,
    /// or 0 (nothing registered) if one may now.
    #[cfg(unix)]
    fn _wait(&self, put: bool, waker: &super::aio::PyLoopWaker) -> u64 {
        let token = super::aio::next_token();
        let w = waker.waker(token);
        let registered = if put {
            self.inner.register_push_waker(token, &w)
        } else {
            self.inner.register_pop_waker(token, &w)
        };
        if registered {
            token
        } else {
            0
        }
    }

    /// Removes the registration `token` of a waiting get; `False` if it
    /// fired.
    fn _unwait_get(&self, token: u64) -> bool {
        self.inner.deregister_waker(false, token)
    }

    /// Removes the registration `token` of a waiting put; `False` if it
    /// fired.
    fn _unwait_put(&self, token: u64) -> bool {
        self.inner.deregister_waker(true, token)
    }

    /// Registers a task to be woken once every task is done (`join()`);
    /// returns its token, or 0 if that is already the case.
    #[cfg(unix)]
    fn _wait_join(&self, waker: &super::aio::PyLoopWaker) -> u64 {
        let mut guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Acquire: as in `join`; under the lock, as `wake_joiners` takes it.
        if self.unfinished.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let token = super::aio::next_token();
        guard.push((token, waker.waker(token)));
        token
    }

    /// Removes the registration `token` of `_wait_join`.
    fn _unwait_join(&self, token: u64) {
        let mut guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
        guard.retain(|(t, _)| *t != token);
    }

    /// The number of items in the queue (a snapshot).
    fn qsize(&self) -> usize {
        self.inner.len()
    }

    /// `True` if the queue holds no item (a snapshot).
    fn empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// `True` if the queue holds `maxsize` items (a snapshot; never for an
    /// unbounded queue).
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
        // Acquire: pairs with the Release decrement in `task_done`.
        if self.unfinished.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let step = |until: Instant| {
            let guard = self.join_lock.lock().unwrap_or_else(|e| e.into_inner());
            // Re-checked under the lock: a `task_done` that reaches 0 after
            // the last load must take the lock to notify, which it gets only
            // once we sleep.
            if self.unfinished.load(Ordering::Acquire) != 0 {
                let left = until.saturating_duration_since(Instant::now());
                drop(
                    self.all_done
                        .wait_timeout(guard, left)
                        .unwrap_or_else(|e| e.into_inner()),
                );
            }
            // Acquire: as above.
            (self.unfinished.load(Ordering::Acquire) == 0).then_some(())
        };
        super::wait::in_slices(py, None, step, || Ok(())).map(drop)
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

    /// `iter(q)`: the queue itself; iterating gets items until the queue is
    /// shut down and drained (as Rust's `Queue::iter`).
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// `get()`, ending the iteration (instead of raising `ShutDown`) once the
    /// queue is shut down and drained.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Item>> {
        match self.get_inner(py, Wait::Until(None)) {
            Ok(item) => Ok(Some(item)),
            Err(e) if is_shut_down(py, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<ringstat.Queue maxsize={} qsize={} unfinished_tasks={}{}>",
            self.maxsize,
            self.inner.len(),
            self.unfinished_tasks(),
            if self.inner.is_closed() {
                " shutdown"
            } else {
                ""
            }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Relaxed: changed only while attached, and the collector runs
        // attached, so no call enters or leaves a detached section meanwhile.
        if self.detached.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        let mut result = Ok(());
        let mut each = |item: &Item| {
            if result.is_ok() {
                result = visit.call(item);
            }
        };
        match &*self.inner {
            // SAFETY: every call of this queue runs attached except inside
            // `blocking`/`join`'s detached sections (`join` does not touch
            // the items); `detached == 0` means none is in one, and none can
            // start while the collector holds the interpreter. Every earlier
            // operation happened before this, ordered by the GIL hand-over.
            Store::Ring(q) => unsafe { q.for_each_quiescent(&mut each) },
            // SAFETY: as above.
            Store::List(q) => unsafe { q.for_each_quiescent(&mut each) },
        }
        result
    }

    fn __clear__(&self) {
        // Drops every item (attached): breaks cycles through the queue. The
        // queue stays usable.
        while self.inner.try_pop().is_ok() {}
    }
}

assert_python_alignment!(PyQueue);

// ----- `put`/`get` and their `_nowait` forms, hand-written (`fastcall`) ------
//
// `q.put(item)`, `q.get()` and the `_nowait` forms with no other argument
// take the fast path: one try of the ring, no PyO3 argument parsing or
// trampoline. Anything else (a full or empty queue, other arguments) goes
// through `put_one`/`get_inner` attached as usual, with the same errors.

/// Sets `Queue.put`, `put_nowait`, `get` and `get_nowait` (module init).
pub(crate) fn add_methods(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyQueue>();
    add_raw_method(&ty, c"put", queue_put, PUT_DOC)?;
    add_raw_method(&ty, c"put_nowait", queue_put_nowait, PUT_NOWAIT_DOC)?;
    add_raw_method(&ty, c"get", queue_get, GET_DOC)?;
    add_raw_method(&ty, c"get_nowait", queue_get_nowait, GET_NOWAIT_DOC)
}

const PUT_DOC: &core::ffi::CStr = c"put($self, /, item, block=True, timeout=None)
--

Puts `item`, waiting for room if `block` (at most `timeout` seconds).";
const GET_DOC: &core::ffi::CStr = c"get($self, /, block=True, timeout=None)
--

Removes and returns the oldest item, waiting for one if `block` (at
most `timeout` seconds).";
const PUT_NOWAIT_DOC: &core::ffi::CStr = c"put_nowait($self, /, item)
--

`put(item, block=False)`.";
const GET_NOWAIT_DOC: &core::ffi::CStr = c"get_nowait($self, /)
--

`get(block=False)`.";

/// The body of `put` (`nowait`: of `put_nowait`).
///
/// # Safety
///
/// As CPython calls a `METH_FASTCALL | METH_KEYWORDS` method of `Queue`: the
/// thread attached, `slf` a live `Queue`, `args` holding `nargs` live
/// positionals then one value per name of `kwnames` (null when none).
#[inline(always)]
unsafe fn put_method(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    nowait: bool,
) -> *mut ffi::PyObject {
    // SAFETY: the contract.
    let (py, q) = unsafe { receiver::<PyQueue>(slf) };
    let refused = if nargs == 1 && kwnames.is_null() {
        // SAFETY: `args[0]` is a live object; the queue keeps a reference.
        let item = unsafe { Bound::from_borrowed_ptr(py, *args) }.unbind();
        // Relaxed: as in `put_one`.
        q.unfinished.fetch_add(1, Ordering::Relaxed);
        match q.inner.try_push(item) {
            Ok(()) => return none(py, ()),
            Err(e) => Some(e),
        }
    } else {
        None
    };
    Python::attach(|py| {
        let result = match refused {
            // Counted already: go on as `put_one` would.
            Some(e) => {
                let wait = if nowait { Wait::No } else { Wait::Until(None) };
                let r = q.put_refused(py, e, wait);
                if r.is_err() {
                    q.forget_tasks(1);
                }
                r
            }
            None if nowait => {
                // SAFETY: the contract.
                let parsed =
                    unsafe { fastcall::args(py, "put_nowait", ["item"], 1, args, nargs, kwnames) };
                // `item` is required: `args` returned it or an error.
                parsed
                    .and_then(|[item]| item.map_or(Ok(()), |i| q.put_one(py, i.unbind(), Wait::No)))
            }
            None => {
                // SAFETY: the contract.
                let parsed = unsafe {
                    fastcall::args(
                        py,
                        "put",
                        ["item", "block", "timeout"],
                        1,
                        args,
                        nargs,
                        kwnames,
                    )
                };
                parsed.and_then(|[item, block, timeout]| {
                    let Some(item) = item else { return Ok(()) };
                    let block = block.map_or(Ok(true), |b| block_arg(&b))?;
                    q.put_one(py, item.unbind(), wait_arg(block, timeout.as_ref())?)
                })
            }
        };
        fastcall::finish(py, result.map(|()| none(py, ())))
    })
}

/// The body of `get` (`nowait`: of `get_nowait`).
///
/// # Safety
///
/// As [`put_method`].
#[inline(always)]
unsafe fn get_method(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    nowait: bool,
) -> *mut ffi::PyObject {
    // SAFETY: the contract.
    let (_, q) = unsafe { receiver::<PyQueue>(slf) };
    if nargs == 0 && kwnames.is_null() {
        if let Ok(item) = q.inner.try_pop() {
            return item.into_ptr();
        }
    }
    Python::attach(|py| {
        let result = if nowait {
            // SAFETY: the contract.
            let parsed = unsafe { fastcall::args(py, "get_nowait", [], 0, args, nargs, kwnames) };
            parsed.and_then(|[]| q.get_inner(py, Wait::No))
        } else {
            // SAFETY: the contract.
            let parsed =
                unsafe { fastcall::args(py, "get", ["block", "timeout"], 0, args, nargs, kwnames) };
            parsed.and_then(|[block, timeout]| {
                let block = block.map_or(Ok(true), |b| block_arg(&b))?;
                q.get_inner(py, wait_arg(block, timeout.as_ref())?)
            })
        };
        fastcall::finish(py, result.map(Py::into_ptr))
    })
}

/// Defines the raw methods of `Queue` as calls of `put_method`/`get_method`.
macro_rules! queue_methods {
    ($($func:ident => $body:ident($nowait:literal);)*) => {$(
        unsafe extern "C" fn $func(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls it as a method of `Queue` (`add_raw_method`).
            unsafe { $body(slf, args, nargs, kwnames, $nowait) }
        }
    )*};
}

queue_methods! {
    queue_put => put_method(false);
    queue_put_nowait => put_method(true);
    queue_get => get_method(false);
    queue_get_nowait => get_method(true);
}
