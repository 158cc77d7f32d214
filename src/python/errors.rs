//! Python exceptions raised by the bindings, and argument conversions shared
//! by every bound type.
//!
//! `queue.Full` and `queue.Empty` are the standard library's own classes, so
//! `except queue.Empty:` keeps working when a `queue.Queue` is swapped for a
//! `ringstat.Queue`. `ShutDown` is `queue.ShutDown` on Python 3.13+ and our
//! own `ringstat.ShutDown` (a subclass of `Exception`, like the stdlib's)
//! before that; [`init`] picks one when the module is imported.

use std::time::{Duration, Instant};

use pyo3::exceptions::{PyException, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyInt, PyType};

pyo3::create_exception!(
    ringstat,
    ShutDown,
    PyException,
    "Raised by put() on a queue that was shut down, and by get() once it is also drained \
     (Python < 3.13; on 3.13+ ringstat.ShutDown is queue.ShutDown)."
);

static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHUTDOWN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Resolves the exception classes (called once, from the module init) and
/// returns the `ShutDown` class the module exports.
pub(crate) fn init(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    FULL.import(py, "queue", "Full")?;
    EMPTY.import(py, "queue", "Empty")?;
    let shutdown = SHUTDOWN.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let queue = py.import("queue")?;
        match queue.getattr("ShutDown") {
            Ok(ty) => Ok(ty.cast_into::<PyType>()?.unbind()),
            Err(_) => Ok(py.get_type::<ShutDown>().unbind()),
        }
    })?;
    Ok(shutdown.bind(py).clone())
}

fn raise(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>, module: &str, name: &str) -> PyErr {
    match cell.import(py, module, name) {
        // No arguments, exactly as the standard library raises them.
        Ok(ty) => PyErr::from_type(ty.clone(), ()),
        Err(e) => e,
    }
}

/// `queue.Full()`.
pub(crate) fn full(py: Python<'_>) -> PyErr {
    raise(py, &FULL, "queue", "Full")
}

/// `queue.Empty()`.
pub(crate) fn empty(py: Python<'_>) -> PyErr {
    raise(py, &EMPTY, "queue", "Empty")
}

/// `ShutDown()` (the class chosen by [`init`]).
pub(crate) fn shut_down(py: Python<'_>) -> PyErr {
    match SHUTDOWN.get(py) {
        Some(ty) => PyErr::from_type(ty.bind(py).clone(), ()),
        None => PyErr::from_type(py.get_type::<ShutDown>(), ()),
    }
}

/// `true` if `err` is a `ShutDown` (the class chosen by [`init`]).
pub(crate) fn is_shut_down(py: Python<'_>, err: &PyErr) -> bool {
    match SHUTDOWN.get(py) {
        Some(ty) => err.is_instance(py, ty.bind(py)),
        None => err.is_instance_of::<ShutDown>(py),
    }
}

/// Extracts `block` (`#[pyo3(from_py_with)]`) as `queue.Queue` reads it: any
/// object, by its truth value (`block=0` does not block).
pub(crate) fn block_arg(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    value.is_truthy()
}

/// Extracts `shutdown(immediate=...)` (`#[pyo3(from_py_with)]`): a truth
/// value, as in `queue.Queue.shutdown`.
pub(crate) fn immediate_arg(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    value.is_truthy()
}

/// Extracts an `int` argument that must be at least `min`, naming it on
/// error: `TypeError` for a non-int (including `bool`), `ValueError` for an
/// int out of range.
pub(crate) fn int_arg(value: &Bound<'_, PyAny>, name: &str, min: usize) -> PyResult<usize> {
    if !value.is_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(value)
        )));
    }
    match value.extract::<i128>() {
        Ok(v) if v >= min as i128 => usize::try_from(v).map_err(|_| {
            PyValueError::new_err(format!("{name} must be at most {}, got {v}", usize::MAX))
        }),
        Ok(v) => Err(PyValueError::new_err(format!(
            "{name} must be at least {min}, got {v}"
        ))),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(PyValueError::new_err(
            format!("{name} is out of range, got {}", shown(value)),
        )),
        Err(e) => Err(e),
    }
}

/// What a `block`/`timeout` pair asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// `block=False`: do not wait at all.
    No,
    /// Wait until the deadline (`None`: forever).
    Until(Option<Instant>),
}

/// Converts `block` and `timeout` as `queue.Queue` does: `block=False` ignores `timeout`; a negative or
/// NaN timeout is a `ValueError`; `None` (or a timeout too large to
/// represent, such as `inf`) waits forever.
pub(crate) fn wait_arg(block: bool, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Wait> {
    if !block {
        return Ok(Wait::No);
    }
    let Some(timeout) = timeout.filter(|t| !t.is_none()) else {
        return Ok(Wait::Until(None));
    };
    let secs = timeout.extract::<f64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "timeout must be a number or None, not {}",
            type_name(timeout)
        ))
    })?;
    if secs.is_nan() || secs < 0.0 {
        return Err(PyValueError::new_err(format!(
            "'timeout' must be a non-negative number, got {secs}"
        )));
    }
    let deadline = Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| Instant::now().checked_add(d));
    Ok(Wait::Until(deadline))
}

/// `value` for an error message: its `str()`, else its `repr()`, else its
/// type (an object whose `__str__` raises must not turn a clear error into an
/// unraisable one; `str()` of a huge int raises too).
pub(crate) fn shown(value: &Bound<'_, PyAny>) -> String {
    value.str().or_else(|_| value.repr()).map_or_else(
        |_| format!("a {} object", type_name(value)),
        |s| s.to_string(),
    )
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}
