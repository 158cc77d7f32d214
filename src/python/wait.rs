//! Waiting from Python: detached from the interpreter in slices, with
//! signals checked between slices, so Ctrl-C interrupts any blocking call.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::sync::{AtomicUsize, Ordering};

/// The longest a blocked call stays detached before it re-attaches to run
/// `py.check_signals()`.
pub(crate) const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// Runs `attempt(until)` detached, in slices ending at most
/// [`SIGNAL_SLICE`] later, until it returns `Some` or `deadline` (`None`:
/// never) passes (`Ok(None)`); between slices, re-attached, runs `between`
/// (e.g. a fork check) and checks for signals, returning their error.
pub(crate) fn in_slices<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    attempt: impl FnMut(Instant) -> Option<R> + Send,
    between: impl FnMut() -> PyResult<()>,
) -> PyResult<Option<R>> {
    slices(py, deadline, None, attempt, between)
}

/// As [`in_slices`], counting the call in `detached` while it is detached
/// (changed only while attached), for a `__traverse__` that must know
/// whether any call is inside a detached section.
pub(crate) fn in_counted_slices<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    detached: &AtomicUsize,
    attempt: impl FnMut(Instant) -> Option<R> + Send,
) -> PyResult<Option<R>> {
    slices(py, deadline, Some(detached), attempt, || Ok(()))
}

fn slices<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    detached: Option<&AtomicUsize>,
    mut attempt: impl FnMut(Instant) -> Option<R> + Send,
    mut between: impl FnMut() -> PyResult<()>,
) -> PyResult<Option<R>> {
    loop {
        let slice_end = Instant::now() + SIGNAL_SLICE;
        let (until, last) = match deadline {
            Some(d) if d <= slice_end => (d, true),
            _ => (slice_end, false),
        };
        if let Some(n) = detached {
            // Relaxed: only ever read while attached (the GIL orders it).
            n.fetch_add(1, Ordering::Relaxed);
        }
        let done = py.detach(|| attempt(until));
        if let Some(n) = detached {
            n.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(done) = done {
            return Ok(Some(done));
        }
        if last {
            return Ok(None);
        }
        between()?;
        py.check_signals()?;
    }
}
