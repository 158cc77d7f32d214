//! `ringstat.SharedQueue`: a [`SharedQueue`] of byte messages shared by
//! processes, with the `queue.Queue` calling conventions.
//!
//! Thin: converts messages (bytes as they are; other buffers through
//! `memoryview(obj).tobytes()`, as the wheel is `abi3` for 3.9 where
//! `pyo3::buffer` is unavailable), maps errors, and waits detached from the
//! interpreter in signal slices. Pickling (`put_obj`/`get_obj`) is Python
//! and lives in `ringstat._methods`.

use std::time::Instant;

use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyMemoryView, PyTuple, PyType};

use super::errors::{
    block_arg, empty, full, immediate_arg, int_arg, shut_down, type_name, wait_arg, Wait,
};
use super::wait::in_slices;
use crate::queue::{
    SharedPopError, SharedPushError, SharedQueue, SharedQueueError, SharedQueueOptions, SharedSide,
    SharedWaitError,
};
use crate::shm::ShmError;

/// A bounded multi-producer multi-consumer queue of byte messages in named
/// shared memory, for processes (see the stub for the full story).
#[pyclass(frozen, weakref, name = "SharedQueue", module = "ringstat._ringstat")]
pub(crate) struct PySharedQueue {
    q: SharedQueue,
}

fn open_err(e: SharedQueueError) -> PyErr {
    let msg = e.to_string();
    match e {
        SharedQueueError::Shm(ShmError::NotFound { .. }) => PyFileNotFoundError::new_err(msg),
        SharedQueueError::Shm(ShmError::AlreadyExists { .. }) => PyFileExistsError::new_err(msg),
        SharedQueueError::Shm(ShmError::Io { .. }) => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

pub(crate) fn push_err(py: Python<'_>, e: SharedPushError) -> PyErr {
    match e {
        SharedPushError::Full => full(py),
        SharedPushError::Closed => shut_down(py),
        SharedPushError::TooLarge { .. } => PyValueError::new_err(e.to_string()),
        SharedPushError::TooManyProcesses { .. } => PyRuntimeError::new_err(e.to_string()),
    }
}

fn pop_err(py: Python<'_>, e: SharedPopError) -> PyErr {
    match e {
        SharedPopError::Empty => empty(py),
        SharedPopError::Closed => shut_down(py),
        SharedPopError::TooManyProcesses { .. } => PyRuntimeError::new_err(e.to_string()),
    }
}

fn options(max_processes: usize, mode: u32) -> SharedQueueOptions {
    let mut o = SharedQueueOptions {
        max_processes,
        ..SharedQueueOptions::default()
    };
    o.region.mode = mode;
    o
}

fn maxsize_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    int_arg(value, "maxsize", 1)
}

fn slot_size_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    int_arg(value, "slot_size", 1)
}

fn processes_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    int_arg(value, "max_processes", 1)
}

fn mode_arg(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    let m = int_arg(value, "mode", 0)?;
    if m > 0o777 {
        return Err(PyValueError::new_err(format!(
            "mode must be permission bits (at most 0o777), got {m:#o}"
        )));
    }
    Ok(m as u32)
}

fn side(put: bool) -> SharedSide {
    if put {
        SharedSide::Push
    } else {
        SharedSide::Pop
    }
}

impl PySharedQueue {
    /// The core queue (for `Pipeline.feed_from` and `FeedSender`).
    pub(crate) fn core(&self) -> &SharedQueue {
        &self.q
    }

    /// The message bytes of `item`: a `bytes` object as it is, any other
    /// C-contiguous buffer copied once. Checks the size before copying.
    fn message<'py>(&self, item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let py = item.py();
        let bytes = if let Ok(b) = item.cast::<PyBytes>() {
            b.clone()
        } else {
            let mv = PyMemoryView::from(item).map_err(|_| {
                PyTypeError::new_err(format!(
                    "a message must be bytes-like (bytes, bytearray, memoryview, a contiguous \
                     array), not {}",
                    type_name(item)
                ))
            })?;
            if !mv.getattr("c_contiguous")?.is_truthy()? {
                return Err(PyValueError::new_err(
                    "a message buffer must be C-contiguous",
                ));
            }
            let nbytes: usize = mv.getattr("nbytes")?.extract()?;
            if nbytes > self.q.slot_size() {
                return Err(push_err(
                    py,
                    SharedPushError::TooLarge {
                        len: nbytes,
                        max: self.q.slot_size(),
                    },
                ));
            }
            mv.call_method0("tobytes")?.cast_into::<PyBytes>()?
        };
        if bytes.as_bytes().len() > self.q.slot_size() {
            return Err(push_err(
                py,
                SharedPushError::TooLarge {
                    len: bytes.as_bytes().len(),
                    max: self.q.slot_size(),
                },
            ));
        }
        Ok(bytes)
    }

    fn put_bytes(&self, py: Python<'_>, data: &[u8], wait: Wait) -> PyResult<()> {
        if self.put_bytes_or_full(py, data, wait)? {
            Ok(())
        } else {
            Err(full(py))
        }
    }

    /// Puts `data`; `Ok(false)` if the queue stayed full (no wait, or the
    /// deadline passed).
    fn put_bytes_or_full(&self, py: Python<'_>, data: &[u8], wait: Wait) -> PyResult<bool> {
        match self.q.try_push(data) {
            Ok(()) => return Ok(true),
            Err(SharedPushError::Full) => {}
            Err(e) => return Err(push_err(py, e)),
        }
        let Wait::Until(deadline) = wait else {
            return Ok(false);
        };
        let q = &self.q;
        let r = in_slices(
            py,
            deadline,
            |until| match q.push(data, Some(until.saturating_duration_since(Instant::now()))) {
                Err(SharedPushError::Full) => None,
                r => Some(r),
            },
            || Ok(()),
        )?;
        match r {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(push_err(py, e)),
            None => Ok(false),
        }
    }

    fn get_inner<'py>(&self, py: Python<'py>, wait: Wait) -> PyResult<Bound<'py, PyBytes>> {
        // Attached first: the bytes object is made straight from the slot.
        match self.q.try_pop_with(|b| PyBytes::new(py, b)) {
            Ok(b) => return Ok(b),
            Err(SharedPopError::Empty) => {}
            Err(e) => return Err(pop_err(py, e)),
        }
        let Wait::Until(deadline) = wait else {
            return Err(empty(py));
        };
        let q = &self.q;
        let r = in_slices(
            py,
            deadline,
            |until| match q.pop(Some(until.saturating_duration_since(Instant::now()))) {
                Err(SharedPopError::Empty) => None,
                r => Some(r),
            },
            || Ok(()),
        )?;
        match r {
            Some(Ok(v)) => Ok(PyBytes::new(py, &v)),
            Some(Err(e)) => Err(pop_err(py, e)),
            None => Err(empty(py)),
        }
    }
}

#[pymethods]
impl PySharedQueue {
    /// Attaches the queue `name`, or creates it with `maxsize` slots of
    /// `slot_size` bytes if it does not exist.
    #[new]
    #[pyo3(signature = (name, maxsize = 1024, slot_size = 1024, *, max_processes = 128, mode = 0o600))]
    fn new(
        py: Python<'_>,
        name: &str,
        #[pyo3(from_py_with = maxsize_arg)] maxsize: usize,
        #[pyo3(from_py_with = slot_size_arg)] slot_size: usize,
        #[pyo3(from_py_with = processes_arg)] max_processes: usize,
        #[pyo3(from_py_with = mode_arg)] mode: u32,
    ) -> PyResult<Self> {
        let (cap, slot) = (maxsize, slot_size);
        let opts = options(max_processes, mode);
        py.detach(|| SharedQueue::create_or_attach(name, cap, slot, &opts))
            .map(|q| Self { q })
            .map_err(open_err)
    }

    /// Creates the queue `name`; `FileExistsError` if it exists.
    #[classmethod]
    #[pyo3(signature = (name, maxsize = 1024, slot_size = 1024, *, max_processes = 128, mode = 0o600))]
    fn create(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: &str,
        #[pyo3(from_py_with = maxsize_arg)] maxsize: usize,
        #[pyo3(from_py_with = slot_size_arg)] slot_size: usize,
        #[pyo3(from_py_with = processes_arg)] max_processes: usize,
        #[pyo3(from_py_with = mode_arg)] mode: u32,
    ) -> PyResult<Self> {
        let (cap, slot) = (maxsize, slot_size);
        let opts = options(max_processes, mode);
        py.detach(|| SharedQueue::create(name, cap, slot, &opts))
            .map(|q| Self { q })
            .map_err(open_err)
    }

    /// Attaches the existing queue `name`; `FileNotFoundError` if there is
    /// none.
    #[classmethod]
    fn attach(_cls: &Bound<'_, PyType>, py: Python<'_>, name: &str) -> PyResult<Self> {
        py.detach(|| SharedQueue::attach(name, &SharedQueueOptions::default()))
            .map(|q| Self { q })
            .map_err(open_err)
    }

    /// Removes the name `name` (attached handles keep working); `False` if
    /// there was none.
    #[staticmethod]
    fn cleanup(name: &str) -> PyResult<bool> {
        crate::shm::cleanup(name).map_err(|e| open_err(SharedQueueError::Shm(e)))
    }

    /// Removes this queue's name (see `cleanup`).
    fn unlink(&self) -> PyResult<bool> {
        self.q
            .unlink()
            .map_err(|e| open_err(SharedQueueError::Shm(e)))
    }

    /// Pickles as a reference: unpickling attaches by name.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let attach = slf.get_type().getattr("attach")?;
        let args = PyTuple::new(py, [slf.get().name()])?;
        PyTuple::new(py, [attach, args.into_any()])
    }

    /// The queue's name (without the leading `/`).
    #[getter]
    fn name(&self) -> String {
        let n = self.q.name().unwrap_or("");
        n.strip_prefix('/').unwrap_or(n).to_owned()
    }

    /// The number of slots.
    #[getter]
    fn maxsize(&self) -> usize {
        self.q.capacity()
    }

    /// The largest message in bytes.
    #[getter]
    fn slot_size(&self) -> usize {
        self.q.slot_size()
    }

    /// Messages lost to killed processes.
    #[getter]
    fn lost(&self) -> u64 {
        self.q.lost()
    }

    /// `True` once any process has shut the queue down.
    #[getter]
    fn is_shutdown(&self) -> bool {
        self.q.is_closed()
    }

    /// Puts one message (bytes-like), waiting for room if `block`.
    #[pyo3(signature = (item, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        item: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let wait = wait_arg(block, timeout)?;
        let msg = self.message(item)?;
        self.put_bytes(py, msg.as_bytes(), wait)
    }

    /// `put(item, block=False)`.
    fn put_nowait(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let msg = self.message(item)?;
        self.put_bytes(py, msg.as_bytes(), Wait::No)
    }

    /// Removes and returns the oldest message as `bytes`, waiting if `block`.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = block_arg)] block: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let wait = wait_arg(block, timeout)?;
        self.get_inner(py, wait)
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.get_inner(py, Wait::No)
    }

    /// Puts the messages of `items` in order; returns how many were put
    /// (fewer than given only with `block=False` or a `timeout`, when the
    /// queue stayed full).
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
        let mut put = 0usize;
        for item in iter {
            let msg = self.message(&item?)?;
            if !self.put_bytes_or_full(py, msg.as_bytes(), wait)? {
                break;
            }
            put += 1;
        }
        Ok(put)
    }

    /// Removes and returns up to `max_items` messages (at least one),
    /// waiting for the first if `block`.
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
        let out = PyList::empty(py);
        out.append(self.get_inner(py, wait)?)?;
        while out.len() < max {
            match self.q.try_pop_with(|b| PyBytes::new(py, b)) {
                Ok(b) => out.append(b)?,
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Shuts the queue down for every process: `put` raises `ShutDown`;
    /// `get` drains what is left (unless `immediate`, which discards it)
    /// and then raises `ShutDown`; blocked calls wake up.
    #[pyo3(signature = (immediate = false))]
    fn shutdown(&self, #[pyo3(from_py_with = immediate_arg)] immediate: bool) {
        self.q.close();
        if immediate {
            while self.q.try_pop_with(|_| ()).is_ok() {}
        }
    }

    /// Frees the entries of dead processes (their claimed slots are counted
    /// in `lost`); returns how many.
    fn sweep(&self, py: Python<'_>) -> usize {
        py.detach(|| self.q.sweep())
    }

    /// The number of messages (a snapshot).
    fn qsize(&self) -> usize {
        self.q.len()
    }

    /// `True` if the queue holds no message (a snapshot).
    fn empty(&self) -> bool {
        self.q.is_empty()
    }

    /// `True` if every slot is taken (a snapshot).
    fn full(&self) -> bool {
        self.q.len() >= self.q.capacity()
    }

    fn __len__(&self) -> usize {
        self.q.len()
    }

    // ----- for `ringstat.aio` (private): never wait, never raise Empty/Full --

    /// `get_nowait()`, returning `None` instead of raising `Empty`.
    fn _try_get<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.q.try_pop_with(|b| PyBytes::new(py, b)) {
            Ok(b) => Ok(Some(b)),
            Err(SharedPopError::Empty) => Ok(None),
            Err(e) => Err(pop_err(py, e)),
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
        let out = PyList::empty(py);
        while out.len() < max {
            match self.q.try_pop_with(|b| PyBytes::new(py, b)) {
                Ok(b) => out.append(b)?,
                Err(SharedPopError::Empty) => break,
                Err(e) if out.is_empty() => return Err(pop_err(py, e)),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// `put_nowait(item)`, returning `False` instead of raising `Full`.
    fn _try_put(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        let msg = self.message(item)?;
        self.put_bytes_or_full(py, msg.as_bytes(), Wait::No)
    }

    /// Registers a task of the loop behind `waker` to be woken once a `get`
    /// (`put=False`) or a `put` (`put=True`) may succeed, after a push, pop
    /// or shutdown in any process; returns its token, or 0 (nothing
    /// registered) if one may now.
    fn _wait(&self, put: bool, waker: &super::aio::PyLoopWaker) -> PyResult<u64> {
        let token = super::aio::next_token();
        match self.q.register_waker(side(put), token, &waker.waker(token)) {
            Ok(true) => Ok(token),
            Ok(false) => Ok(0),
            Err(e @ SharedWaitError::Thread(_)) => Err(PyOSError::new_err(e.to_string())),
            Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
        }
    }

    /// Removes the registration `token` of a waiting get; `False` if it
    /// fired.
    fn _unwait_get(&self, token: u64) -> bool {
        self.q.deregister_waker(SharedSide::Pop, token)
    }

    /// Removes the registration `token` of a waiting put; `False` if it
    /// fired.
    fn _unwait_put(&self, token: u64) -> bool {
        self.q.deregister_waker(SharedSide::Push, token)
    }

    /// Passes on a wake-up a task got and will not use (it was cancelled).
    fn _pass_wake(&self, put: bool) {
        self.q.pass_wake(side(put));
    }

    fn __repr__(&self) -> String {
        format!(
            "SharedQueue(name={:?}, maxsize={}, slot_size={}, qsize={}, lost={})",
            self.name(),
            self.q.capacity(),
            self.q.slot_size(),
            self.q.len(),
            self.q.lost()
        )
    }
}
