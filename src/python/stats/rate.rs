//! `ringstat.Rate` and `ringstat.ManualClock`.

use crate::sync::StdArc as Arc;
use std::time::Duration;

use pyo3::prelude::*;

use pyo3::exceptions::PyTypeError;

use super::super::errors::{int_arg, type_name};
use super::{seconds_arg, stats_err, u64_arg};
use crate::stats::{Clock, ManualClock, Rate, SystemClock};

/// Extracts `window` (`#[pyo3(from_py_with)]`): seconds, an int or float.
pub(super) fn window_arg(value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    seconds_arg(value, "window")
}

/// Extracts `buckets` (`#[pyo3(from_py_with)]`): an int >= 1.
pub(super) fn buckets_arg(value: &Bound<'_, PyAny>) -> PyResult<usize> {
    int_arg(value, "buckets", 1)
}

/// A clock for tests that moves only when told to; starts at 0. Pass it as
/// `clock=` to `Rate` or `Registry` to make rates deterministic.
#[pyclass(frozen, name = "ManualClock", module = "ringstat._ringstat")]
pub(crate) struct PyManualClock {
    pub(super) inner: Arc<ManualClock>,
}

#[pymethods]
impl PyManualClock {
    /// A clock at 0 seconds.
    #[new]
    fn new() -> Self {
        Self {
            inner: Arc::new(ManualClock::new()),
        }
    }

    /// Moves the clock forward by `seconds` (>= 0).
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.advance(seconds_arg(seconds, "seconds")?);
        Ok(())
    }

    /// Sets the clock to `seconds` (>= 0) after its origin.
    fn set(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(seconds_arg(seconds, "seconds")?);
        Ok(())
    }

    /// The current reading, in seconds since the origin.
    fn now(&self) -> f64 {
        self.inner.now_nanos() as f64 / 1e9
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.ManualClock now={}s>", self.now())
    }
}

/// Extracts `clock` (a `ManualClock` or None) into the clock to use: the
/// manual one given, or a new system clock. A wrong type is a TypeError that
/// names the argument (pyo3's own message omits it on the 3.9 limited API).
pub(crate) fn clock_of(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<dyn Clock>> {
    let Some(clock) = clock.filter(|c| !c.is_none()) else {
        return Ok(Arc::new(SystemClock::new()));
    };
    let manual = clock.cast::<PyManualClock>().map_err(|_| {
        PyTypeError::new_err(format!(
            "clock must be a ManualClock or None, not {}",
            type_name(clock)
        ))
    })?;
    Ok(Arc::clone(&manual.get().inner) as Arc<dyn Clock>)
}

/// Events per second over a sliding window (default: 60 buckets of 1 s),
/// plus the total ever counted. The window rotates lazily: no timer thread.
#[pyclass(frozen, eq, hash, name = "Rate", module = "ringstat._ringstat")]
pub(crate) struct PyRate {
    pub(super) inner: Arc<Rate>,
}

same_metric_eq!(PyRate);

#[pymethods]
impl PyRate {
    /// A rate over `window` seconds cut into `buckets` buckets (each at
    /// least 1 ms), reading `clock` (default: the system's monotonic clock).
    #[new]
    #[pyo3(
        signature = (window = Duration::from_secs(60), buckets = 60, *, clock = None),
        text_signature = "(window=60.0, buckets=60, *, clock=None)"
    )]
    fn new(
        #[pyo3(from_py_with = window_arg)] window: Duration,
        #[pyo3(from_py_with = buckets_arg)] buckets: usize,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let inner = Rate::with_clock(window, buckets, clock_of(clock)?).map_err(stats_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Counts one event now.
    fn inc(&self) {
        self.inner.inc();
    }

    /// Counts `n` events now (an int in `0..2**64`).
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.add(u64_arg(n, "n")?);
        Ok(())
    }

    /// Every event ever counted.
    #[getter]
    fn total(&self) -> u64 {
        self.inner.total()
    }

    /// Events in the current window.
    #[getter]
    fn count_in_window(&self) -> u64 {
        self.inner.count_in_window()
    }

    /// Events per second over the window.
    #[getter]
    fn per_second(&self) -> f64 {
        self.inner.per_second()
    }

    /// The window length in seconds.
    #[getter]
    fn window(&self) -> f64 {
        self.inner.config().window.as_secs_f64()
    }

    /// The number of buckets the window is cut into.
    #[getter]
    fn buckets(&self) -> usize {
        self.inner.config().buckets
    }

    fn __repr__(&self) -> String {
        format!(
            "<ringstat.Rate window={}s buckets={} total={} per_second={}>",
            self.window(),
            self.buckets(),
            self.inner.total(),
            self.inner.per_second()
        )
    }
}

assert_python_alignment!(PyManualClock, PyRate);
