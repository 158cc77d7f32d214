//! `ringstat.Registry`: get-or-create by name and labels; snapshots as plain
//! dicts and the Prometheus text format.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::super::errors::int_arg;
use super::counter::{PyCounter, PyGauge};
use super::histogram::{digits_arg, histogram_config, PyHistogram};
use super::rate::{buckets_arg, clock_of, window_arg, PyRate};
use super::{histogram_dict, labels_arg, percentiles_or_default, stats_err, str_arg};
use crate::stats::{tick_value, MetricValue, RateConfig, Registry, Snapshot};
use crate::wire;

/// Named metrics with optional labels, created on first use. Every call
/// with the same name and labels returns a handle to the same metric
/// (handles compare equal); a name registered as another kind, or with
/// another configuration, raises `ValueError`. With `max_series`, a new
/// series past that many raises `SeriesLimitError` (a `ValueError`).
#[pyclass(frozen, name = "Registry", module = "ringstat._ringstat")]
pub(crate) struct PyRegistry {
    pub(crate) inner: Registry,
}

pub(super) fn name_arg(value: &Bound<'_, PyAny>) -> PyResult<String> {
    str_arg(value, "name")
}

/// Extracts classic bucket bounds: an iterable of real numbers (not str).
fn bounds_arg(value: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let err = || {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "buckets must be an iterable of numbers, not {}",
            super::super::errors::type_name(value)
        ))
    };
    if value.is_instance_of::<pyo3::types::PyString>() {
        return Err(err());
    }
    let iter = value.try_iter().map_err(|_| err())?;
    iter.map(|v| super::f64_arg(&v?, "buckets"))
        .collect::<PyResult<Vec<f64>>>()
}

/// `(name, value)` label pairs borrowed as the Rust API takes them.
pub(super) fn borrow(labels: &[(String, String)]) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl PyRegistry {
    /// A snapshot at `percentiles` (default: 50, 90, 99, 99.9), with the
    /// percentiles asked for.
    /// Sets the help text of `name` if one is given (before the series is
    /// created, so a bad text creates nothing).
    fn describe(&self, name: &str, help: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match help.filter(|h| !h.is_none()) {
            Some(h) => self
                .inner
                .describe(name, &str_arg(h, "help")?)
                .map_err(stats_err),
            None => Ok(()),
        }
    }

    /// Reads the metrics detached from the interpreter: a registry of many
    /// histograms takes milliseconds, which other threads (an event loop
    /// awaiting a scrape rendered in a worker) should not wait out.
    fn take_snapshot(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Snapshot, Vec<f64>)> {
        let (ps, qs) = percentiles_or_default(percentiles)?;
        let snap = py
            .detach(|| self.inner.snapshot_with_quantiles(&qs))
            .map_err(stats_err)?;
        Ok((snap, ps))
    }
}

#[pymethods]
impl PyRegistry {
    /// An empty registry; its rates read `clock` (default: the system's
    /// monotonic clock). `max_series` (an int >= 0, default unlimited) caps
    /// the number of distinct name and label sets.
    #[new]
    #[pyo3(signature = (*, clock = None, max_series = None))]
    fn new(
        clock: Option<&Bound<'_, PyAny>>,
        max_series: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let limit = match max_series.filter(|m| !m.is_none()) {
            Some(m) => Some(int_arg(m, "max_series", 0)?),
            None => None,
        };
        Ok(Self {
            inner: Registry::with_clock_and_limit(clock_of(clock)?, limit),
        })
    }

    /// The most series the registry creates, `None` when unlimited.
    #[getter]
    fn max_series(&self) -> Option<usize> {
        self.inner.limit()
    }

    /// The number of series (name and label sets) registered.
    #[getter]
    fn series(&self) -> usize {
        self.inner.len()
    }

    /// The counter `name{labels}`, created at 0 on first use.
    #[pyo3(signature = (name, labels = None, *, help = None))]
    fn counter(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        help: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyCounter> {
        let labels = labels_arg(labels)?;
        self.describe(&name, help)?;
        let inner = self
            .inner
            .counter(&name, &borrow(&labels))
            .map_err(stats_err)?;
        Ok(PyCounter { inner })
    }

    /// The gauge `name{labels}`, created at 0 on first use.
    #[pyo3(signature = (name, labels = None, *, help = None))]
    fn gauge(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        help: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyGauge> {
        let labels = labels_arg(labels)?;
        self.describe(&name, help)?;
        let inner = self
            .inner
            .gauge(&name, &borrow(&labels))
            .map_err(stats_err)?;
        Ok(PyGauge { inner })
    }

    /// The histogram `name{labels}`, created empty on first use; with a
    /// `unit`, of floats kept to that unit (as `Histogram(..., unit=)`);
    /// with `buckets`, exposed with those classic bucket bounds.
    #[pyo3(signature = (name, labels = None, *, max_value, significant_digits = 3, unit = None, help = None, buckets = None))]
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        max_value: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = digits_arg)] significant_digits: u8,
        unit: Option<&Bound<'_, PyAny>>,
        help: Option<&Bound<'_, PyAny>>,
        buckets: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyHistogram> {
        let labels = labels_arg(labels)?;
        let (config, unit) = histogram_config(max_value, significant_digits, unit)?;
        let bounds = match buckets.filter(|b| !b.is_none()) {
            Some(b) => Some(bounds_arg(b)?),
            None => None,
        };
        self.describe(&name, help)?;
        if let Some(b) = bounds {
            self.inner.set_buckets(&name, &b).map_err(stats_err)?;
        }
        let labels = borrow(&labels);
        let inner = match unit {
            None => self.inner.histogram(&name, &labels, config),
            Some(unit) => self.inner.histogram_with_unit(&name, &labels, config, unit),
        }
        .map_err(stats_err)?;
        Ok(PyHistogram { inner })
    }

    /// The rate `name{labels}`, created on the registry's clock on first use.
    #[pyo3(
        signature = (name, labels = None, *, window = Duration::from_secs(60), buckets = 60, help = None),
        text_signature = "($self, name, labels=None, *, window=60.0, buckets=60, help=None)"
    )]
    fn rate(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = window_arg)] window: Duration,
        #[pyo3(from_py_with = buckets_arg)] buckets: usize,
        help: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyRate> {
        let labels = labels_arg(labels)?;
        self.describe(&name, help)?;
        let inner = self
            .inner
            .rate(&name, &borrow(&labels), RateConfig { window, buckets })
            .map_err(stats_err)?;
        Ok(PyRate { inner })
    }

    /// Sets the help text of the family `name` (its `# HELP` line).
    #[pyo3(name = "describe")]
    fn py_describe(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        help: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.inner
            .describe(&name, &str_arg(help, "help")?)
            .map_err(stats_err)
    }

    /// Exposes the histogram family `name` with classic bucket bounds
    /// (`_bucket{le=...}`) instead of quantiles.
    fn set_buckets(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        buckets: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let b = bounds_arg(buckets)?;
        self.inner.set_buckets(&name, &b).map_err(stats_err)
    }

    /// Every metric's current values as plain dicts and lists (see the
    /// stubs for the layout); the package wraps the dict in its `Snapshot`.
    #[pyo3(signature = (percentiles = None))]
    fn snapshot<'py>(
        &self,
        py: Python<'py>,
        percentiles: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (snap, ps) = self.take_snapshot(py, percentiles)?;
        snapshot_dict(py, &snap, &ps)
    }

    /// Every metric in the Prometheus text exposition format 0.0.4.
    /// Snapshot and text are both made detached from the interpreter.
    #[pyo3(signature = (percentiles = None))]
    fn to_prometheus(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (snap, _) = self.take_snapshot(py, percentiles)?;
        Ok(py.detach(|| snap.to_prometheus()))
    }

    /// Every metric as OpenMetrics 1.0 text, made detached like
    /// `to_prometheus`.
    #[pyo3(signature = (percentiles = None))]
    fn to_openmetrics(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (snap, _) = self.take_snapshot(py, percentiles)?;
        Ok(py.detach(|| snap.to_openmetrics()))
    }

    /// Serves the registry's exposition over HTTP from a native thread.
    #[cfg(feature = "serve")]
    #[pyo3(signature = (
        port = None, host = None, *, path = None, percentiles = None, basic_auth = None,
        basic_auth_sha256 = None, read_timeout = None, max_connections = None, gzip = true
    ), text_signature = "($self, port=0, host='127.0.0.1', *, path='/metrics', percentiles=None, \
        basic_auth=None, basic_auth_sha256=None, read_timeout=5.0, max_connections=64, gzip=True)")]
    #[allow(clippy::too_many_arguments)]
    fn serve<'py>(
        &self,
        py: Python<'py>,
        port: Option<&Bound<'py, PyAny>>,
        host: Option<&Bound<'py, PyAny>>,
        path: Option<&Bound<'py, PyAny>>,
        percentiles: Option<&Bound<'py, PyAny>>,
        basic_auth: Option<&Bound<'py, PyAny>>,
        basic_auth_sha256: Option<&Bound<'py, PyAny>>,
        read_timeout: Option<&Bound<'py, PyAny>>,
        max_connections: Option<&Bound<'py, PyAny>>,
        gzip: bool,
    ) -> PyResult<Py<super::serve::PyMetricsServer>> {
        let reg = self.inner.clone();
        super::serve::start(
            py,
            // The quantiles were validated by `start`.
            move |qs| {
                move || {
                    reg.snapshot_with_quantiles(&qs)
                        .unwrap_or_else(|_| reg.snapshot())
                }
            },
            port,
            host,
            path,
            percentiles,
            basic_auth,
            basic_auth_sha256,
            read_timeout,
            max_connections,
            gzip,
        )
    }

    /// The full state of every metric as bytes (the `wire` registry state
    /// format), read and encoded detached from the interpreter.
    fn export_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| wire::encode_state(&self.inner.export_state()));
        PyBytes::new(py, &bytes)
    }

    /// Merges a state from `export_state` into this registry (counters add,
    /// histograms add bucket-wise, rates add by window bucket, gauges add),
    /// decoded and merged detached; `retired`: as the state of a source that
    /// is gone (`RegistryState::retire`). `StateError` for bytes that are not
    /// a state, `ValueError` for a mismatch (checked before anything changes).
    #[pyo3(signature = (data, *, retired = false))]
    fn merge_state(&self, py: Python<'_>, data: &[u8], retired: bool) -> PyResult<()> {
        py.detach(|| merge_bytes(&self.inner, data, retired))
    }

    /// A new registry holding a state from `export_state`.
    #[classmethod]
    #[pyo3(signature = (data, *, clock = None, max_series = None))]
    fn from_state(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        data: &[u8],
        clock: Option<&Bound<'_, PyAny>>,
        max_series: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let reg = Self::new(clock, max_series)?;
        py.detach(|| merge_bytes(&reg.inner, data, false))?;
        Ok(reg)
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.Registry metrics={}>", self.inner.len())
    }
}

/// Decodes `data` and merges it into `reg`, errors as Python exceptions.
fn merge_bytes(reg: &Registry, data: &[u8], retired: bool) -> PyResult<()> {
    let mut state = wire::decode_state(data).map_err(|e| super::super::wire::state_err(&e))?;
    if retired {
        state.retire();
    }
    reg.merge_state(&state).map_err(stats_err)
}

/// `snap` as the plain dict of `Registry.snapshot()` (the package wraps it
/// in `ringstat.snapshot.Snapshot`), histograms with the percentiles `ps`
/// (the quantiles of `snap`, on the 0-100 scale).
pub(crate) fn snapshot_dict<'py>(
    py: Python<'py>,
    snap: &Snapshot,
    ps: &[f64],
) -> PyResult<Bound<'py, PyDict>> {
    let metrics = PyList::empty(py);
    for m in &snap.metrics {
        let d = PyDict::new(py);
        d.set_item("name", &m.name)?;
        let labels = PyDict::new(py);
        for (k, v) in &m.labels {
            labels.set_item(k, v)?;
        }
        d.set_item("labels", labels)?;
        d.set_item("kind", m.kind().to_string())?;
        let values = PyDict::new(py);
        match &m.value {
            MetricValue::Counter(v) => values.set_item("value", v)?,
            MetricValue::Gauge { value, min, max } => {
                values.set_item("value", value)?;
                values.set_item("min", min)?;
                values.set_item("max", max)?;
            }
            MetricValue::Histogram {
                count,
                sum,
                min,
                max,
                rejected,
                quantiles,
                unit,
                ..
            } => {
                let ticks = quantiles.iter().map(|&(_, v)| v);
                let h = match unit {
                    None => histogram_dict(
                        py,
                        *count,
                        *sum,
                        *min,
                        *max,
                        *rejected,
                        ps.iter().copied().zip(ticks),
                    )?,
                    // A unit's histogram reads back in its values, as `Histogram`'s getters do.
                    Some(_) => {
                        let value = |t: Option<u64>| t.map(|t| tick_value(*unit, t));
                        histogram_dict(
                            py,
                            *count,
                            *sum,
                            value(*min),
                            value(*max),
                            *rejected,
                            ps.iter().copied().zip(ticks.map(value)),
                        )?
                    }
                };
                values.update(h.as_mapping())?;
            }
            MetricValue::Rate {
                total,
                in_window,
                per_second,
                window,
            } => {
                values.set_item("total", total)?;
                values.set_item("in_window", in_window)?;
                values.set_item("per_second", per_second)?;
                values.set_item("window", window.as_secs_f64())?;
            }
        }
        d.set_item("values", values)?;
        metrics.append(d)?;
    }
    let out = PyDict::new(py);
    out.set_item("timestamp", snap.timestamp_ms as f64 / 1000.0)?;
    out.set_item("metrics", metrics)?;
    Ok(out)
}

assert_python_alignment!(PyRegistry);
