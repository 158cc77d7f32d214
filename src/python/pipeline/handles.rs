//! Resolved metric handles for the hot path: `pipeline.counter("logins")`
//! returns a [`PyCounterHandle`] holding the pipeline and the typed id, so
//! `handle.inc()` builds one [`Event`] and sends it, with no name lookup.
//!
//! Handles keep the pipeline alive (an `Arc`); after `pipeline.close()`
//! their sends raise `PipelineClosed`.

use crate::sync::StdArc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

use super::super::errors::type_name;
use super::super::stats::{f64_arg, i64_arg, stats_err, u64_arg};
use super::args::send;
use super::batch::{send_column, with_sent, Column, Want};
use crate::pipeline::{
    CounterId, DistinctId, Event, GaugeId, HistogramId, Pipeline, RateId, SessionsId,
};
use crate::stats::Histogram;

/// Converts a histogram value as `Histogram.record` does: an int, or a float
/// rounded to the nearest int (halves away from zero). A bad value (out of
/// `0..=max`, NaN, infinite) is counted in the histogram's `rejected` and
/// raises `ValueError`; it is not sent.
pub(super) fn observe_value(h: &Histogram, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    let max = h.config().max;
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(v) = value.extract::<u64>() {
            if v <= max {
                return Ok(v);
            }
        }
    }
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyFloat>()
            || value.is_instance_of::<PyInt>()
            || value.hasattr("__index__").unwrap_or(false)
            || value.hasattr("__float__").unwrap_or(false))
    {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "value must be an int or float, not {}",
            type_name(value)
        )));
    }
    let v = match value.extract::<u64>() {
        Ok(v) => v as f64,
        Err(_) => match f64_arg(value, "value") {
            Ok(v) => v,
            Err(_) if value.lt(0)? => f64::NEG_INFINITY,
            Err(_) => f64::INFINITY,
        },
    };
    if v.is_finite() && v >= -0.5 && v.round() <= max as f64 {
        return Ok(v.round() as u64);
    }
    // Out of range: the histogram counts the rejection and explains it.
    match h.record_f64(v) {
        Err(e) => Err(stats_err(e)),
        Ok(()) => Err(PyValueError::new_err(format!(
            "value out of the histogram's range 0..={max}, got {v}"
        ))),
    }
}

/// Equality and hashing by pipeline and metric index.
/// Sends `make(key)` for every key of `keys` (a sequence, or a numpy
/// uint64/int64 array read without copying), at `ts` (`None`, one number, or
/// one per key).
fn send_keys(
    py: Python<'_>,
    pipeline: &Pipeline,
    keys: &Bound<'_, PyAny>,
    ts: Option<&Bound<'_, PyAny>>,
    make: impl Fn(u64) -> Event,
) -> PyResult<u64> {
    let (mut col, mut ts) = Column::new(keys, Want::Key, "keys")
        .and_then(|col| Ok((Column::timestamps(ts, &col)?, col)))
        .map(|(ts, col)| (col, ts))
        .map_err(|e| with_sent(py, e, 0))?;
    send_column(py, pipeline, &mut col, ts.as_mut(), make)
}

macro_rules! handle_eq {
    ($ty:ident) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                StdArc::ptr_eq(&self.pipeline, &other.pipeline) && self.id == other.id
            }
        }
        impl std::hash::Hash for $ty {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                StdArc::as_ptr(&self.pipeline).hash(state);
                self.id.index().hash(state);
            }
        }
    };
}

/// A pipeline counter resolved once: `inc()`, `add(n)`, `add_many(ns)`.
#[pyclass(
    frozen,
    eq,
    hash,
    name = "CounterHandle",
    module = "ringstat._ringstat"
)]
pub(crate) struct PyCounterHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: CounterId,
    pub(super) name: String,
}
handle_eq!(PyCounterHandle);

#[pymethods]
impl PyCounterHandle {
    // `inc()` is hand-written (`fast.rs`).

    /// Adds `n` (an int in `0..2**64`).
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        send(&self.pipeline, Event::add(self.id, u64_arg(n, "n")?))
    }

    /// Adds every count of `ns` (a sequence of ints, or a numpy array of
    /// uint64/int64 read without copying), one event each.
    /// Returns how many events were sent; an exception carries `exc.sent`.
    fn add_many(&self, py: Python<'_>, ns: &Bound<'_, PyAny>) -> PyResult<u64> {
        let mut col = Column::new(ns, Want::Count, "ns").map_err(|e| with_sent(py, e, 0))?;
        let id = self.id;
        send_column(py, &self.pipeline, &mut col, None, |n| Event::add(id, n))
    }

    /// The metric name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.CounterHandle {:?}>", self.name)
    }
}

/// A pipeline gauge resolved once: `set(v)`, `add(n)`.
#[pyclass(frozen, eq, hash, name = "GaugeHandle", module = "ringstat._ringstat")]
pub(crate) struct PyGaugeHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: GaugeId,
    pub(super) name: String,
}
handle_eq!(PyGaugeHandle);

#[pymethods]
impl PyGaugeHandle {
    /// Sets the gauge to `value` (an int in `-2**63..2**63`).
    fn set(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        send(
            &self.pipeline,
            Event::set(self.id, i64_arg(value, "value")?),
        )
    }

    /// Adds `n` (an int, may be negative).
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        send(&self.pipeline, Event::gauge_add(self.id, i64_arg(n, "n")?))
    }

    /// Adds every delta of `ns` (ints, or a numpy int64 array), in order.
    /// Returns how many events were sent; an exception carries `exc.sent`.
    fn add_many(&self, py: Python<'_>, ns: &Bound<'_, PyAny>) -> PyResult<u64> {
        let mut col = Column::new(ns, Want::Signed, "ns").map_err(|e| with_sent(py, e, 0))?;
        let id = self.id;
        send_column(py, &self.pipeline, &mut col, None, |n| {
            Event::gauge_add(id, n as i64)
        })
    }

    /// The metric name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.GaugeHandle {:?}>", self.name)
    }
}

/// A pipeline histogram resolved once: `observe(v)`, `observe_many(vs)`.
#[pyclass(
    frozen,
    eq,
    hash,
    name = "HistogramHandle",
    module = "ringstat._ringstat"
)]
pub(crate) struct PyHistogramHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: HistogramId,
    pub(super) name: String,
    /// The registry histogram, to count values refused before sending.
    pub(super) histogram: StdArc<Histogram>,
}
handle_eq!(PyHistogramHandle);

#[pymethods]
impl PyHistogramHandle {
    /// Records `value`: an int in `0..=max_value`, or a float rounded to the
    /// nearest int. A bad value raises `ValueError` (counted in the
    /// histogram's `rejected`, not sent).
    fn observe(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = observe_value(&self.histogram, value)?;
        send(&self.pipeline, Event::observe(self.id, v))
    }

    /// Records every value of `values` (ints or floats, or a numpy array of
    /// uint64/int64/float64). All are checked first: if one is bad,
    /// `ValueError` names its index and nothing is sent.
    /// Returns how many events were sent; an exception carries `exc.sent`.
    fn observe_many(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<u64> {
        let max = self.histogram.config().max;
        let mut col =
            Column::new(values, Want::Value(max), "values").map_err(|e| with_sent(py, e, 0))?;
        let id = self.id;
        send_column(py, &self.pipeline, &mut col, None, |v| {
            Event::observe(id, v)
        })
    }

    /// The metric name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.HistogramHandle {:?}>", self.name)
    }
}

/// A pipeline rate resolved once: `mark(n=1)`.
#[pyclass(frozen, eq, hash, name = "RateHandle", module = "ringstat._ringstat")]
pub(crate) struct PyRateHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: RateId,
    pub(super) name: String,
}
handle_eq!(PyRateHandle);

#[pymethods]
impl PyRateHandle {
    /// Counts `n` events (default 1) now.
    #[pyo3(signature = (n = None), text_signature = "($self, n=None)")]
    fn mark(&self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = match n {
            None => 1,
            Some(n) => u64_arg(n, "n")?,
        };
        send(&self.pipeline, Event::mark(self.id, n))
    }

    /// The metric name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.RateHandle {:?}>", self.name)
    }
}

/// A session tracker resolved once: `start(key, ts=None)`,
/// `end(key, ts=None)` and their batch forms.
#[pyclass(
    frozen,
    eq,
    hash,
    name = "SessionsHandle",
    module = "ringstat._ringstat"
)]
pub(crate) struct PySessionsHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: SessionsId,
    pub(super) name: String,
}
handle_eq!(PySessionsHandle);

#[pymethods]
impl PySessionsHandle {
    // `start(key, ts=None)` and `end(key, ts=None)` are hand-written
    // (`fast.rs`).

    /// `start` for every key of `keys` (ints/str, or a numpy uint64/int64
    /// array read without copying); `ts` is `None`, one number for all, or
    /// a sequence/array of seconds as long as `keys`.
    /// Returns how many events were sent; an exception carries `exc.sent`.
    #[pyo3(signature = (keys, ts = None))]
    fn start_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let id = self.id;
        send_keys(py, &self.pipeline, keys, ts, |k| Event::start(id, k))
    }

    /// `end` for every key of `keys` (as `start_many`).
    /// Returns how many events were sent; an exception carries `exc.sent`.
    #[pyo3(signature = (keys, ts = None))]
    fn end_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let id = self.id;
        send_keys(py, &self.pipeline, keys, ts, |k| Event::end(id, k))
    }

    /// The tracker name (its metrics are `{name}_open`, ...).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.SessionsHandle {:?}>", self.name)
    }
}

/// A distinct counter resolved once: `seen(key, ts=None)`, `seen_many`,
/// and the live estimates `count` and `count_in_window`.
#[pyclass(
    frozen,
    eq,
    hash,
    name = "DistinctHandle",
    module = "ringstat._ringstat"
)]
pub(crate) struct PyDistinctHandle {
    pub(super) pipeline: StdArc<Pipeline>,
    pub(super) id: DistinctId,
    pub(super) name: String,
}
handle_eq!(PyDistinctHandle);

#[pymethods]
impl PyDistinctHandle {
    // `seen(key, ts=None)` is hand-written (`fast.rs`).

    /// `seen` for every key of `keys` (as `SessionsHandle.start_many`).
    /// Returns how many events were sent; an exception carries `exc.sent`.
    #[pyo3(signature = (keys, ts = None))]
    fn seen_many(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let id = self.id;
        send_keys(py, &self.pipeline, keys, ts, |k| Event::seen(id, k))
    }

    /// The estimated number of distinct keys seen (merged now).
    #[getter]
    fn count(&self) -> f64 {
        self.pipeline.distinct_count(self.id)
    }

    /// The estimated number of distinct keys seen in the sliding window.
    #[getter]
    fn count_in_window(&self) -> f64 {
        self.pipeline.distinct_in_window(self.id)
    }

    /// The counter name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.DistinctHandle {:?}>", self.name)
    }
}

assert_python_alignment!(
    PyCounterHandle,
    PyGaugeHandle,
    PyHistogramHandle,
    PyRateHandle,
    PySessionsHandle,
    PyDistinctHandle
);
