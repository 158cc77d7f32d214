//! `ringstat.Pipeline`: the [event pipeline](crate::pipeline) for Python.
//!
//! Thin by design: it resolves metric names to the Rust typed ids, converts
//! arguments (keys, timestamps in seconds, counts) and errors, and releases
//! the interpreter while it waits (`flush`, `close`, batch sends). Resolved
//! handles (`handles.rs`) are the hot path; batch arguments, numpy arrays
//! included, are read by `batch.rs`.
//!
//! Errors: a closed pipeline raises `PipelineClosed` (a `RuntimeError`); a
//! drop under `drop_newest`/`overwrite_oldest` is not an error (the
//! pipeline counts it in `stats()["dropped"]`); bad arguments raise
//! `TypeError`/`ValueError` naming them (`MemoryError` for sizes that cannot
//! be allocated); batch methods return how many events they sent and their
//! exceptions carry `exc.sent` (`batch.rs`); a pipeline used in a forked
//! child raises `RuntimeError` at flush, close and blocked sends.

#[cfg(unix)]
mod aio;
mod args;
mod batch;
mod fast;
mod handles;
mod resolve;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyTuple};

use self::args::{count_arg, pipeline_err, send, small_int, window_arg};
use self::handles::{
    observe_value, PyCounterHandle, PyDistinctHandle, PyGaugeHandle, PyHistogramHandle,
    PyRateHandle, PySessionsHandle,
};
use self::resolve::{backpressure_arg, backpressure_name};
use super::errors::type_name;
use super::stats::{clock_of, i64_arg, u64_arg, PyRegistry};
use crate::pipeline::{DistinctConfig, Event, Pipeline, SessionsConfig};
use crate::stats::{HistogramConfig, RateConfig};
use crate::sync::StdArc;

pub(crate) use args::{check_fork, key_arg, name_arg, ts_arg, PipelineClosed};

/// Adds the pipeline classes and `PipelineClosed` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyCounterHandle>()?;
    m.add_class::<PyGaugeHandle>()?;
    m.add_class::<PyHistogramHandle>()?;
    m.add_class::<PyRateHandle>()?;
    m.add_class::<PySessionsHandle>()?;
    m.add_class::<PyDistinctHandle>()?;
    fast::add_methods(m.py())?;
    m.add("PipelineClosed", m.py().get_type::<PipelineClosed>())?;
    #[cfg(unix)]
    aio::register(m)?;
    args::init_fork_hook(m)
}

/// The event pipeline: bounded per-worker queues drained by native worker
/// threads into a `Registry`.
#[pyclass(frozen, name = "Pipeline", module = "ringstat._ringstat")]
pub(crate) struct PyPipeline {
    inner: StdArc<Pipeline>,
    registry: Py<PyRegistry>,
}

impl PyPipeline {
    /// The core pipeline (for the wire functions, `src/python/wire.rs`).
    pub(crate) fn core(&self) -> &Pipeline {
        &self.inner
    }
}

#[pymethods]
impl PyPipeline {
    /// Starts a pipeline writing into `registry` (a new one if `None`).
    #[new]
    #[pyo3(signature = (
        registry = None, *, capacity = None, workers = None, batch_size = None,
        backpressure = None, name = None, clock = None
    ), text_signature = "(registry=None, *, capacity=65536, workers=2, batch_size=256, \
                          backpressure='block', name='default', clock=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        registry: Option<&Bound<'_, PyAny>>,
        capacity: Option<&Bound<'_, PyAny>>,
        workers: Option<&Bound<'_, PyAny>>,
        batch_size: Option<&Bound<'_, PyAny>>,
        backpressure: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock_arc = clock_of(clock)?;
        let registry: Py<PyRegistry> = match registry.filter(|r| !r.is_none()) {
            Some(r) => r
                .cast::<PyRegistry>()
                .map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(format!(
                        "registry must be a ringstat.Registry or None, not {}",
                        type_name(r)
                    ))
                })?
                .clone()
                .unbind(),
            None => {
                let kwargs = PyDict::new(py);
                if let Some(c) = clock.filter(|c| !c.is_none()) {
                    kwargs.set_item("clock", c)?;
                }
                py.get_type::<PyRegistry>()
                    .call((), Some(&kwargs))?
                    .cast_into::<PyRegistry>()?
                    .unbind()
            }
        };
        let mut b = Pipeline::builder(&registry.get().inner).clock(clock_arc);
        fn some<'a, 'py>(v: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
            v.filter(|v| !v.is_none())
        }
        if let Some(v) = some(capacity) {
            b = b.capacity(count_arg(v, "capacity")?);
        }
        if let Some(v) = some(workers) {
            b = b.workers(count_arg(v, "workers")?);
        }
        if let Some(v) = some(batch_size) {
            b = b.batch_size(count_arg(v, "batch_size")?);
        }
        if let Some(v) = some(backpressure) {
            b = b.backpressure(backpressure_arg(v)?);
        }
        if let Some(v) = some(name) {
            b = b.name(&args::name_arg(v).map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "name must be a str, not {}",
                    type_name(v)
                ))
            })?);
        }
        let inner = b.build().map_err(pipeline_err)?;
        Ok(Self {
            inner: StdArc::new(inner),
            registry,
        })
    }

    /// The registry the pipeline writes to.
    #[getter]
    fn registry(&self, py: Python<'_>) -> Py<PyRegistry> {
        self.registry.clone_ref(py)
    }

    /// Number of worker threads.
    #[getter]
    fn workers(&self) -> usize {
        self.inner.workers()
    }

    /// Total queue capacity.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The back-pressure policy name.
    #[getter]
    fn backpressure(&self) -> &'static str {
        backpressure_name(self.inner.backpressure())
    }

    /// `True` once `close()` has begun.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The pipeline clock now, in seconds (the time base of `ts`).
    fn now(&self) -> f64 {
        self.inner.now() as f64 / 1e9
    }

    // ----- resolving -------------------------------------------------------

    /// The counter `name`, resolved once for the hot path.
    fn counter(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
    ) -> PyResult<PyCounterHandle> {
        let id = self.counter_id(&name)?;
        Ok(PyCounterHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
        })
    }

    /// The gauge `name`, resolved once.
    fn gauge(&self, #[pyo3(from_py_with = name_arg)] name: PyBackedStr) -> PyResult<PyGaugeHandle> {
        let id = self.gauge_id(&name)?;
        Ok(PyGaugeHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
        })
    }

    /// The histogram `name` for ints in `0..=max_value`, resolved once.
    #[pyo3(
        signature = (name, *, max_value, significant_digits = None),
        text_signature = "($self, name, *, max_value, significant_digits=3)"
    )]
    fn histogram(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        max_value: &Bound<'_, PyAny>,
        significant_digits: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyHistogramHandle> {
        let max = u64_arg(max_value, "max_value")?;
        let digits = match significant_digits {
            None => 3,
            Some(d) => small_int(d, "significant_digits", 0..=5)?,
        };
        let config = HistogramConfig {
            max,
            significant_digits: digits,
        };
        let id = self.inner.histogram(&name, config).map_err(pipeline_err)?;
        let histogram = self
            .inner
            .registry()
            .histogram(&name, &[], config)
            .map_err(super::stats::stats_err)?;
        Ok(PyHistogramHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
            histogram,
        })
    }

    /// The rate `name` (events per second over `window` seconds cut into
    /// `buckets`), resolved once.
    #[pyo3(
        signature = (name, *, window = None, buckets = None),
        text_signature = "($self, name, *, window=60.0, buckets=60)"
    )]
    fn rate(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        window: Option<&Bound<'_, PyAny>>,
        buckets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyRateHandle> {
        let config = if window.is_some() || buckets.is_some() {
            let d = RateConfig::default();
            Some(RateConfig {
                window: window.map_or(Ok(d.window), |w| window_arg(w, "window"))?,
                buckets: buckets.map_or(Ok(d.buckets), |b| count_arg(b, "buckets"))?,
            })
        } else {
            None
        };
        let id = self.rate_id(&name, config)?;
        Ok(PyRateHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
        })
    }

    /// The session tracker `name`, resolved once.
    #[pyo3(
        signature = (name, *, max_duration = None, significant_digits = None, max_sessions = None),
        text_signature = "($self, name, *, max_duration=2592000.0, significant_digits=2, \
                          max_sessions=None)"
    )]
    fn sessions(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        max_duration: Option<&Bound<'_, PyAny>>,
        significant_digits: Option<&Bound<'_, PyAny>>,
        max_sessions: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PySessionsHandle> {
        let config =
            if max_duration.is_some() || significant_digits.is_some() || max_sessions.is_some() {
                let d = SessionsConfig::default();
                let max_ms = match max_duration {
                    None => d.max_ms,
                    Some(m) => {
                        let w = window_arg(m, "max_duration")?;
                        u64::try_from(w.as_millis()).unwrap_or(u64::MAX).max(1)
                    }
                };
                let digits = match significant_digits {
                    None => d.significant_digits,
                    Some(s) => small_int(s, "significant_digits", 0..=5)?,
                };
                let max_open = max_sessions
                    .map(|m| count_arg(m, "max_sessions"))
                    .transpose()?;
                Some(SessionsConfig {
                    max_ms,
                    significant_digits: digits,
                    max_open,
                })
            } else {
                None
            };
        let id = self.sessions_id(&name, config)?;
        Ok(PySessionsHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
        })
    }

    /// The distinct counter `name`, resolved once.
    #[pyo3(
        signature = (name, *, precision = None, window = None, buckets = None),
        text_signature = "($self, name, *, precision=12, window=60.0, buckets=12)"
    )]
    fn distinct(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        precision: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        buckets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDistinctHandle> {
        let config = if precision.is_some() || window.is_some() || buckets.is_some() {
            let d = DistinctConfig::default();
            Some(DistinctConfig {
                precision: match precision {
                    None => d.precision,
                    Some(p) => small_int(p, "precision", 4..=16)?,
                },
                window: window.map_or(Ok(d.window), |w| window_arg(w, "window"))?,
                buckets: buckets.map_or(Ok(d.buckets), |b| count_arg(b, "buckets"))?,
            })
        } else {
            None
        };
        let id = self.distinct_id(&name, config)?;
        Ok(PyDistinctHandle {
            pipeline: StdArc::clone(&self.inner),
            id,
            name: name.to_string(),
        })
    }

    // ----- one event by name -------------------------------------------------

    /// Adds `n` (default 1) to the counter `name`.
    #[pyo3(signature = (name, n = None), text_signature = "($self, name, n=1)")]
    fn count(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = n.map_or(Ok(1), |n| u64_arg(n, "n"))?;
        send(&self.inner, Event::add(self.counter_id(&name)?, n))
    }

    /// Sets the gauge `name` to `value`.
    fn set(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let v = i64_arg(value, "value")?;
        send(&self.inner, Event::set(self.gauge_id(&name)?, v))
    }

    /// Adds `n` (may be negative) to the gauge `name`.
    fn gauge_add(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = i64_arg(n, "n")?;
        send(&self.inner, Event::gauge_add(self.gauge_id(&name)?, n))
    }

    /// Records `value` in the histogram `name` (resolved before with
    /// `histogram(name, max_value=...)`).
    fn observe(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (id, h) = self.histogram_id(&name)?;
        let v = observe_value(&h, value)?;
        send(&self.inner, Event::observe(id, v))
    }

    /// Counts `n` (default 1) events in the rate `name`.
    #[pyo3(signature = (name, n = None), text_signature = "($self, name, n=1)")]
    fn mark(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = n.map_or(Ok(1), |n| u64_arg(n, "n"))?;
        send(&self.inner, Event::mark(self.rate_id(&name, None)?, n))
    }

    /// Opens a session of the tracker `name` for `key` at `ts`.
    #[pyo3(signature = (name, key, ts = None))]
    fn session_start(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        let id = self.sessions_id(&name, None)?;
        send(&self.inner, Event::start(id, key).at(ts))
    }

    /// Closes the session of `key` in the tracker `name` at `ts`.
    #[pyo3(signature = (name, key, ts = None))]
    fn session_end(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        let id = self.sessions_id(&name, None)?;
        send(&self.inner, Event::end(id, key).at(ts))
    }

    /// Records `key` in the distinct counter `name` at `ts`.
    #[pyo3(signature = (name, key, ts = None))]
    fn seen(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
        key: &Bound<'_, PyAny>,
        ts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (key, ts) = (key_arg(key)?, ts_arg(ts)?);
        let id = self.distinct_id(&name, None)?;
        send(&self.inner, Event::seen(id, key).at(ts))
    }

    /// Starts a native thread applying the event frames of a `SharedQueue`
    /// (put by `FeedSender`s in other processes) to this pipeline.
    #[cfg(target_os = "linux")]
    fn feed_from(&self, queue: &Bound<'_, PyAny>) -> PyResult<super::feed::PyFeed> {
        check_fork(&self.inner)?;
        super::feed::start(StdArc::clone(&self.inner), queue)
    }

    // ----- flush, close, observers -------------------------------------------

    /// Waits until every event sent before this call is applied.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.is_closed() {
            return Ok(());
        }
        self.flush_detached(py)
    }

    /// The full state of the pipeline's statistics as bytes (registry,
    /// distinct sketches, open sessions; the `wire` pipeline state format),
    /// flushed, read and encoded detached.
    fn export_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        self.state_check()?;
        let bytes = py
            .detach(|| {
                self.inner
                    .export_state()
                    .map(|s| crate::wire::encode_pipeline_state(&s))
            })
            .map_err(pipeline_err)?;
        Ok(pyo3::types::PyBytes::new(py, &bytes))
    }

    /// Merges a state from `export_state` (decoded and merged detached;
    /// `retired`: as the state of a pipeline that is gone,
    /// `PipelineState::retire`): `StateError` for bytes that are not one,
    /// `ValueError` for a mismatch.
    #[pyo3(signature = (data, *, retired = false))]
    fn merge_state(&self, py: Python<'_>, data: &[u8], retired: bool) -> PyResult<()> {
        self.state_check()?;
        py.detach(|| {
            let mut state =
                crate::wire::decode_pipeline_state(data).map_err(|e| super::wire::state_err(&e))?;
            if retired {
                state.retire();
            }
            self.inner.merge_state(&state).map_err(pipeline_err)
        })
    }

    /// Stops accepting events, applies every event already queued, and
    /// stops the workers. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.close_detached(py)
    }

    /// The pipeline's own counts.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("received", s.received)?;
        d.set_item("applied", s.applied)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("rejected", s.rejected)?;
        d.set_item("queue_depth", s.queue_depth)?;
        Ok(d)
    }

    /// Estimated distinct keys the counter `name` has seen.
    fn distinct_count(&self, #[pyo3(from_py_with = name_arg)] name: PyBackedStr) -> PyResult<f64> {
        Ok(self.inner.distinct_count(self.distinct_id(&name, None)?))
    }

    /// Estimated distinct keys seen in the counter's sliding window.
    fn distinct_in_window(
        &self,
        #[pyo3(from_py_with = name_arg)] name: PyBackedStr,
    ) -> PyResult<f64> {
        Ok(self
            .inner
            .distinct_in_window(self.distinct_id(&name, None)?))
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
        format!(
            "<ringstat.Pipeline workers={} capacity={} backpressure={} {}>",
            self.inner.workers(),
            self.inner.capacity(),
            backpressure_name(self.inner.backpressure()),
            if self.inner.is_closed() {
                "closed"
            } else {
                "open"
            },
        )
    }
}

assert_python_alignment!(PyPipeline);

impl PyPipeline {
    /// A state needs live workers: `PipelineClosed` otherwise.
    fn state_check(&self) -> PyResult<()> {
        check_fork(&self.inner)?;
        if self.inner.is_closed() {
            return Err(PipelineClosed::new_err(
                "the pipeline is closed: its open sessions are gone with its workers",
            ));
        }
        Ok(())
    }
}
