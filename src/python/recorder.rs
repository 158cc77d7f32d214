//! `ringstat.Recorder`: the [`Recorder`](crate::stats::Recorder) for Python.
//!
//! The sampling thread is native and never runs Python code: it reads the
//! Rust registry and stores Rust [`Snapshot`](crate::stats::Snapshot)s.
//! They become Python dicts (the shape of `Registry.snapshot()`) only when
//! `samples()` or `drain()` is called. `start`, `stop` and the copy of the
//! samples run detached from the interpreter.

use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::{int_arg, type_name};
use super::stats::{percentiles_or_default, seconds_arg, snapshot_dict, PyRegistry};
use crate::stats::{Recorder, RecorderConfig, Snapshot};

/// Samples a `Registry` every `interval` seconds on a native background
/// thread into a bounded in-memory time series (the newest `capacity`
/// snapshots). `start()`/`stop()`, or use it as a context manager.
#[pyclass(frozen, name = "Recorder", module = "ringstat._ringstat")]
pub(crate) struct PyRecorder {
    inner: Recorder,
    /// The percentiles (0-100) reported for histograms, in order.
    percentiles: Vec<f64>,
}

impl PyRecorder {
    fn to_list<'py>(&self, py: Python<'py>, samples: &[Snapshot]) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for s in samples {
            out.append(snapshot_dict(py, s, &self.percentiles)?)?;
        }
        Ok(out)
    }
}

#[pymethods]
impl PyRecorder {
    /// A stopped recorder of `registry`, sampling every `interval` seconds
    /// and keeping the newest `capacity` samples, histograms with
    /// `percentiles` (default 50, 90, 99, 99.9).
    #[new]
    #[pyo3(
        signature = (registry, interval = None, capacity = None, *, percentiles = None),
        text_signature = "(registry, interval=1.0, capacity=3600, *, percentiles=None)"
    )]
    fn new(
        registry: &Bound<'_, PyAny>,
        interval: Option<&Bound<'_, PyAny>>,
        capacity: Option<&Bound<'_, PyAny>>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let registry = registry.cast::<PyRegistry>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "registry must be a Registry, not {}",
                type_name(registry)
            ))
        })?;
        let interval = match interval {
            Some(v) => seconds_arg(v, "interval")?,
            None => Duration::from_secs(1),
        };
        if interval.is_zero() {
            return Err(PyValueError::new_err(
                "interval must be more than 0 seconds",
            ));
        }
        let capacity = match capacity {
            Some(v) => int_arg(v, "capacity", 1)?,
            None => 3600,
        };
        let (ps, qs) = percentiles_or_default(percentiles)?;
        let config = RecorderConfig {
            interval,
            capacity,
            quantiles: qs,
        };
        let inner = Recorder::new(&registry.get().inner, config)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            inner,
            percentiles: ps,
        })
    }

    /// Starts the sampling thread (a sample at once, then one per
    /// interval); does nothing if it is running.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.start())
            .map(|_| ())
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the recorder: {e}")))
    }

    /// Stops the sampling thread and waits for it (promptly); the samples
    /// stay. Does nothing if it is not running.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.inner.stop());
    }

    /// `True` between `start()` and `stop()`.
    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    /// Takes one sample now, on the calling thread (running or not).
    fn sample_now(&self, py: Python<'_>) {
        py.detach(|| self.inner.sample_now());
    }

    /// The samples kept, oldest first, each a dict shaped like
    /// `Registry.snapshot()`.
    fn samples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let samples = py.detach(|| self.inner.samples());
        self.to_list(py, &samples)
    }

    /// Removes and returns the samples kept, oldest first.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let samples = py.detach(|| self.inner.drain());
        self.to_list(py, &samples)
    }

    /// Removes every sample.
    fn clear(&self) {
        self.inner.clear();
    }

    // ----- for `ringstat.aio` (private) --------------------------------------

    /// The sequence number of the newest sample (0: none yet).
    fn _taken(&self) -> u64 {
        self.inner.taken()
    }

    /// The samples kept that are newer than `seen`, and the newest sequence
    /// number.
    fn _samples_since<'py>(
        &self,
        py: Python<'py>,
        seen: u64,
    ) -> PyResult<(Bound<'py, PyList>, u64)> {
        let (samples, newest) = py.detach(|| self.inner.samples_since(seen));
        Ok((self.to_list(py, &samples)?, newest))
    }

    /// Registers a task of the loop behind `waker` to be woken by the next
    /// sample or a stop; returns its token, or 0 if a sample newer than
    /// `seen` is there.
    #[cfg(unix)]
    fn _wait_sample(&self, seen: u64, waker: &super::aio::PyLoopWaker) -> u64 {
        let token = super::aio::next_token();
        if self
            .inner
            .register_sample_waker(token, seen, &waker.waker(token))
        {
            token
        } else {
            0
        }
    }

    /// Removes the registration `token` of `_wait_sample`.
    fn _unwait_sample(&self, token: u64) -> bool {
        self.inner.deregister_sample_waker(token)
    }

    /// Seconds between samples.
    #[getter]
    fn interval(&self) -> f64 {
        self.inner.config().interval.as_secs_f64()
    }

    /// The most samples kept.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.config().capacity
    }

    /// The percentiles reported for histograms.
    #[getter]
    fn percentiles(&self) -> Vec<f64> {
        self.percentiles.clone()
    }

    /// Samples dropped, ever, because `capacity` was reached.
    #[getter]
    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf.clone())
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.stop(py);
    }

    fn __repr__(&self) -> String {
        format!(
            "<ringstat.Recorder interval={}s capacity={} samples={}{}>",
            self.interval(),
            self.capacity(),
            self.inner.len(),
            if self.inner.is_running() {
                " running"
            } else {
                ""
            }
        )
    }
}

assert_python_alignment!(PyRecorder);
