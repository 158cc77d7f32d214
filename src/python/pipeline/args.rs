//! Argument conversions of the pipeline binding: keys, timestamps, names,
//! and the error raised on a closed pipeline.

use std::time::Duration;

use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString};

use super::super::errors::{shown, type_name};
use super::super::stats::f64_arg;
use super::super::wait::in_slices;
use crate::pipeline::{hash_key, Event, Pipeline, PipelineError, SendError};
use crate::sync::{AtomicU64, Ordering, StdArc};

pyo3::create_exception!(
    ringstat,
    PipelineClosed,
    PyRuntimeError,
    "Raised when sending to (or resolving a metric of) a Pipeline that was closed."
);

/// A [`PipelineError`] as `ValueError` (`MemoryError` for a size that
/// cannot be allocated), with the Rust message.
#[cold]
pub(super) fn pipeline_err(e: PipelineError) -> PyErr {
    match e {
        PipelineError::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// `RuntimeError` if `p` was built by another process (this one is a
/// forked child of it): its worker threads do not exist here, so a flush
/// would never return and events sent would never be applied. A `getpid`
/// call: used at flush, close and while a send waits for room, not per
/// event.
#[cold]
pub(crate) fn check_fork(p: &Pipeline) -> PyResult<()> {
    if p.is_forked_copy() {
        return Err(PyRuntimeError::new_err(
            "this Pipeline was created in the parent of this forked process: its worker \
             threads run only there, so it cannot flush or apply events here; create a new \
             Pipeline in the child (the parent's pipeline is unaffected)",
        ));
    }
    Ok(())
}

/// The `PipelineClosed` error.
#[cold]
pub(super) fn closed_err() -> PyErr {
    PipelineClosed::new_err("the pipeline is closed: the event was not sent")
}

/// This process's id as last known: set at import and refreshed in a child
/// by `os.register_at_fork`, so a send spots a pipeline of the parent with
/// one relaxed load (a fork outside `os.fork` is caught at the slow points).
static PID: AtomicU64 = AtomicU64::new(0);

/// Records this process's id (`os.register_at_fork(after_in_child=...)`).
#[pyfunction]
fn _ringstat_after_fork_in_child() {
    PID.store(u64::from(std::process::id()), Ordering::Relaxed);
}

/// Records the pid and registers the at-fork hook (module init).
pub(super) fn init_fork_hook(m: &Bound<'_, PyModule>) -> PyResult<()> {
    _ringstat_after_fork_in_child();
    let hook = wrap_pyfunction!(_ringstat_after_fork_in_child, m)?;
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", hook)?;
    m.py()
        .import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// [`check_fork`] when the cached pid disagrees with the pipeline's owner
/// (one relaxed load otherwise).
#[inline]
pub(super) fn check_fork_cached(p: &Pipeline) -> PyResult<()> {
    if PID.load(Ordering::Relaxed) == u64::from(p.owner_pid()) {
        return Ok(());
    }
    check_fork(p)?;
    // Not a copy after all (forked without `os.fork`, then built here).
    _ringstat_after_fork_in_child();
    Ok(())
}

/// Sends one event. A drop under a dropping policy is not an error (the
/// pipeline counts it); a closed pipeline raises `PipelineClosed`. A full
/// queue under `Block` is waited for detached from the interpreter. A
/// pipeline of the parent process raises `RuntimeError` in a forked child.
#[inline]
pub(super) fn send(p: &StdArc<Pipeline>, ev: Event) -> PyResult<()> {
    check_fork_cached(p)?;
    match p.try_send(ev) {
        Ok(()) | Err(SendError::Dropped(_)) => Ok(()),
        Err(SendError::Closed(_)) => Err(closed_err()),
        Err(SendError::Full(ev)) => send_waiting(p, ev),
    }
}

/// The slow path of [`send`]: wait for room detached, in signal slices (so
/// Ctrl-C interrupts it).
#[cold]
fn send_waiting(p: &StdArc<Pipeline>, ev: Event) -> PyResult<()> {
    // From `AsyncPipeline.send`: hand the event back instead of waiting.
    #[cfg(unix)]
    if let Some(e) = super::aio::defer(p, ev) {
        return Err(e);
    }
    // Already attached (we are inside a method call): this only fetches the
    // token.
    Python::attach(|py| {
        let step = |until| match p.send_until(ev, Some(until)) {
            Err(SendError::Full(_)) => None,
            done => Some(done),
        };
        match in_slices(py, None, step, || check_fork(p))? {
            Some(Ok(()) | Err(SendError::Dropped(_))) => Ok(()),
            _ => Err(closed_err()),
        }
    })
}

/// Extracts a metric name (`str`), naming the argument `name`; borrows
/// the string's UTF-8 (no copy on Python 3.10+), so a by-name call
/// allocates nothing to look its metric up.
pub(crate) fn name_arg(value: &Bound<'_, PyAny>) -> PyResult<PyBackedStr> {
    match value.cast::<PyString>() {
        Ok(s) => PyBackedStr::try_from(s.clone()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "name must be a str, not {}",
            type_name(value)
        ))),
    }
}

/// Extracts a key: an int in `-2**63..2**64` (negative ints are taken as
/// their 64-bit two's complement), or a `str`/`bytes` (hashed to 64 bits).
#[inline]
pub(crate) fn key_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(k) = value.extract::<u64>() {
            return Ok(k);
        }
    }
    key_other(value)
}

#[cold]
fn key_other(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(hash_key(s.to_cow()?.as_bytes()));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(hash_key(b.as_bytes()));
    }
    if !value.is_instance_of::<PyBool>() {
        if let Ok(k) = value.extract::<u64>() {
            return Ok(k);
        }
        if let Ok(k) = value.extract::<i64>() {
            return Ok(k as u64);
        }
        if value.is_instance_of::<PyInt>() || value.hasattr("__index__").unwrap_or(false) {
            return Err(PyValueError::new_err(format!(
                "key out of range: need -2**63 <= key < 2**64, got {}",
                shown(value)
            )));
        }
    }
    Err(PyTypeError::new_err(format!(
        "key must be an int, str or bytes, not {}",
        type_name(value)
    )))
}

/// Seconds on the pipeline clock to the nanoseconds an [`Event`] carries.
/// 0 s becomes 1 ns, because a timestamp of 0 means "when applied".
pub(super) fn seconds_to_nanos(secs: f64) -> Option<u64> {
    if (0.0..1.8e10).contains(&secs) {
        Some(((secs * 1e9).round() as u64).max(1))
    } else {
        None
    }
}

/// Extracts `ts`: `None` (the event is stamped when a worker applies it)
/// or seconds on the pipeline clock (`>= 0`).
#[inline]
pub(crate) fn ts_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match value {
        None => Ok(0),
        Some(v) if v.is_none() => Ok(0),
        Some(v) => {
            let secs = f64_arg(v, "ts")?;
            seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))
        }
    }
}

#[cold]
pub(super) fn ts_range_err(secs: f64) -> PyErr {
    PyValueError::new_err(format!(
        "ts must be a finite number of seconds >= 0 on the pipeline clock (pipeline.now()), \
         got {secs}"
    ))
}

/// Extracts a positive count argument (`workers`, `capacity`, ...).
pub(super) fn count_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    super::super::errors::int_arg(value, name, 1)
}

/// Extracts an int in `range` (a precision, a number of digits), naming
/// it: `TypeError` for a non-int, `ValueError` with the value given.
pub(super) fn small_int(
    value: &Bound<'_, PyAny>,
    name: &str,
    range: std::ops::RangeInclusive<u8>,
) -> PyResult<u8> {
    let n = super::super::errors::int_arg(value, name, 0).map_err(|e| {
        if e.is_instance_of::<PyValueError>(value.py()) {
            small_int_err(name, &range, value)
        } else {
            e
        }
    })?;
    u8::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| small_int_err(name, &range, value))
}

#[cold]
fn small_int_err(
    name: &str,
    range: &std::ops::RangeInclusive<u8>,
    value: &Bound<'_, PyAny>,
) -> PyErr {
    PyValueError::new_err(format!(
        "{name} must be in {}..={}, got {}",
        range.start(),
        range.end(),
        shown(value)
    ))
}

/// Extracts a window length in seconds (> 0).
pub(super) fn window_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    let secs = f64_arg(value, name)?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name} must be a finite number of seconds > 0, got {secs}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(seconds_to_nanos(0.0), Some(1));
        assert_eq!(seconds_to_nanos(1.5), Some(1_500_000_000));
        assert_eq!(seconds_to_nanos(-1.0), None);
        assert_eq!(seconds_to_nanos(f64::NAN), None);
    }
}
