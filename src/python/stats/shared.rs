//! `ringstat.SharedRegistry`: a [`SharedRegistry`] in a named shared-memory
//! region, with the methods of `ringstat.Registry` and the same handle
//! classes; pickles as its name, so a child process attaches to it.

use std::time::Duration;

use pyo3::exceptions::{PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::super::errors::int_arg;
use super::counter::{PyCounter, PyGauge};
use super::histogram::{digits_arg, histogram_config, PyHistogram};
use super::rate::{buckets_arg, window_arg, PyRate};
use super::registry::{borrow, name_arg, snapshot_dict};
use super::{labels_arg, percentiles_or_default, stats_err, str_arg};
use crate::stats::{GaugeMode, RateConfig, SharedError, SharedOptions, SharedRegistry, Snapshot};

/// `SharedError` as a Python exception: the registry's own errors as
/// `Registry` raises them; a full registry `MemoryError`; a bad region
/// `ValueError`; the system's refusals `OSError`.
fn shared_err(e: SharedError) -> PyErr {
    match e {
        SharedError::Stats(e) => stats_err(e),
        SharedError::Full { .. } => PyMemoryError::new_err(e.to_string()),
        SharedError::Io(_) | SharedError::Shm(_) => {
            let msg = e.to_string();
            if matches!(&e, SharedError::Shm(s) if !matches!(s, crate::shm::ShmError::Io { .. })) {
                PyValueError::new_err(msg)
            } else {
                PyOSError::new_err(msg)
            }
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Metrics in a named shared-memory region that any process can attach to:
/// every process adds to the same counters, histograms and rates; gauges
/// are per process and combined by their `mode`. `SharedRegistry(name)`
/// attaches if the region exists, else creates it with the given sizes.
#[pyclass(frozen, name = "SharedRegistry", module = "ringstat._ringstat")]
pub(crate) struct PySharedRegistry {
    inner: SharedRegistry,
}

impl PySharedRegistry {
    fn describe(&self, name: &str, help: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match help.filter(|h| !h.is_none()) {
            Some(h) => self
                .inner
                .describe(name, &str_arg(h, "help")?)
                .map_err(shared_err),
            None => Ok(()),
        }
    }

    fn take_snapshot(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Snapshot, Vec<f64>)> {
        let (ps, qs) = percentiles_or_default(percentiles)?;
        // The walk reads /proc for process liveness: without the GIL.
        let snap = py
            .detach(|| self.inner.snapshot_with_quantiles(&qs))
            .map_err(shared_err)?;
        Ok((snap, ps))
    }
}

#[pymethods]
impl PySharedRegistry {
    /// Attaches to the shared registry `name`, or creates it (mode 0600)
    /// with room for `max_processes` processes at once, `max_entries`
    /// directory entries and `data_bytes` of metric cells.
    #[new]
    #[pyo3(
        signature = (name, *, max_processes = None, max_entries = None, data_bytes = None, counter_shards = None),
        text_signature = "(name, *, max_processes=256, max_entries=1024, data_bytes=8388608, counter_shards=16)"
    )]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = name_arg)] name: String,
        max_processes: Option<&Bound<'_, PyAny>>,
        max_entries: Option<&Bound<'_, PyAny>>,
        data_bytes: Option<&Bound<'_, PyAny>>,
        counter_shards: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let d = SharedOptions::default();
        let arg = |v: Option<&Bound<'_, PyAny>>, name, min, default| match v {
            Some(v) if !v.is_none() => int_arg(v, name, min),
            _ => Ok(default),
        };
        let options = SharedOptions {
            max_processes: arg(max_processes, "max_processes", 1, d.max_processes)?,
            max_entries: arg(max_entries, "max_entries", 1, d.max_entries)?,
            data_bytes: arg(data_bytes, "data_bytes", 0, d.data_bytes)?,
            counter_shards: arg(counter_shards, "counter_shards", 1, d.counter_shards)?,
        };
        let (inner, _) = py
            .detach(|| SharedRegistry::create_or_attach(&name, options))
            .map_err(shared_err)?;
        Ok(Self { inner })
    }

    /// Attaches to the existing shared registry `name` (`ValueError` if
    /// there is none).
    #[staticmethod]
    fn attach(py: Python<'_>, #[pyo3(from_py_with = name_arg)] name: String) -> PyResult<Self> {
        let inner = py
            .detach(|| SharedRegistry::attach(&name))
            .map_err(shared_err)?;
        Ok(Self { inner })
    }

    /// The region's name.
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name().map(str::to_owned)
    }

    /// Removes the region's name: attached processes keep working; new
    /// ones create a fresh registry. False if it was already gone.
    fn unlink(&self) -> PyResult<bool> {
        self.inner.unlink().map_err(shared_err)
    }

    /// Sizes and use: a dict of `bytes`, `entries`, `entries_used`,
    /// `process_slots`, `process_slots_used`, `data_used`,
    /// `reclaimed_entries`, `reclaimed_slots`.
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let u = self.inner.usage();
        let d = PyDict::new(py);
        d.set_item("bytes", u.bytes)?;
        d.set_item("entries", u.entries)?;
        d.set_item("entries_used", u.entries_used)?;
        d.set_item("process_slots", u.process_slots)?;
        d.set_item("process_slots_used", u.process_slots_used)?;
        d.set_item("data_used", u.data_used)?;
        d.set_item("reclaimed_entries", u.reclaimed_entries)?;
        d.set_item("reclaimed_slots", u.reclaimed_slots)?;
        Ok(d)
    }

    /// The counter `name{labels}`, shared by every process.
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
            .map_err(shared_err)?;
        Ok(PyCounter { inner })
    }

    /// This process's gauge `name{labels}`; a snapshot combines every
    /// process's value by `mode` (`"livesum"` by default; also `"all"`,
    /// `"liveall"`, `"sum"`, `"max"`, `"livemax"`, `"min"`, `"livemin"`).
    #[pyo3(signature = (name, labels = None, *, mode = None, help = None))]
    fn gauge(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        mode: Option<&Bound<'_, PyAny>>,
        help: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyGauge> {
        let labels = labels_arg(labels)?;
        let mode = match mode.filter(|m| !m.is_none()) {
            None => GaugeMode::default(),
            Some(m) => {
                let s = str_arg(m, "mode")?;
                GaugeMode::from_name(&s).ok_or_else(|| {
                    let names: Vec<&str> = GaugeMode::ALL.iter().map(|m| m.name()).collect();
                    PyValueError::new_err(format!(
                        "mode must be one of {}, not {s:?}",
                        names.join(", ")
                    ))
                })?
            }
        };
        self.describe(&name, help)?;
        let inner = self
            .inner
            .gauge_with_mode(&name, &borrow(&labels), mode)
            .map_err(shared_err)?;
        Ok(PyGauge { inner })
    }

    /// The histogram `name{labels}`, shared by every process.
    #[pyo3(signature = (name, labels = None, *, max_value, significant_digits = 3, unit = None, help = None))]
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        labels: Option<&Bound<'_, PyAny>>,
        max_value: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = digits_arg)] significant_digits: u8,
        unit: Option<&Bound<'_, PyAny>>,
        help: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyHistogram> {
        let labels = labels_arg(labels)?;
        let (config, unit) = histogram_config(max_value, significant_digits, unit)?;
        self.describe(&name, help)?;
        let labels = borrow(&labels);
        let inner = match unit {
            None => self.inner.histogram(&name, &labels, config),
            Some(unit) => self.inner.histogram_with_unit(&name, &labels, config, unit),
        }
        .map_err(shared_err)?;
        Ok(PyHistogram { inner })
    }

    /// The rate `name{labels}`, shared by every process (on the machine's
    /// monotonic clock).
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
            .map_err(shared_err)?;
        Ok(PyRate { inner })
    }

    /// Sets the help text of the family `name`.
    #[pyo3(name = "describe")]
    fn py_describe(
        &self,
        #[pyo3(from_py_with = name_arg)] name: String,
        help: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.inner
            .describe(&name, &str_arg(help, "help")?)
            .map_err(shared_err)
    }

    /// Every process's metrics as the plain dict of `Registry.snapshot()`.
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
    #[pyo3(signature = (percentiles = None))]
    fn to_prometheus(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (snap, _) = self.take_snapshot(py, percentiles)?;
        Ok(py.detach(|| snap.to_prometheus()))
    }

    /// Every metric as OpenMetrics 1.0 text; snapshot and text are both
    /// made detached from the interpreter, as `Registry.to_openmetrics`.
    #[pyo3(signature = (percentiles = None))]
    fn to_openmetrics(
        &self,
        py: Python<'_>,
        percentiles: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (snap, _) = self.take_snapshot(py, percentiles)?;
        Ok(py.detach(|| snap.to_openmetrics()))
    }

    /// Serves every process's metrics over HTTP from a native thread, with
    /// the arguments and behaviour of `Registry.serve`.
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

    /// Pickles as a reference by name: unpickling attaches to the region.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let name = self
            .inner
            .name()
            .ok_or_else(|| PyValueError::new_err("this registry has no name to pickle"))?;
        let attach = py.get_type::<Self>().getattr("attach")?;
        (attach, (name,)).into_pyobject(py)
    }

    fn __repr__(&self) -> String {
        let u = self.inner.usage();
        format!(
            "<ringstat.SharedRegistry name={:?} entries={}/{} processes={}/{}>",
            self.inner.name().unwrap_or(""),
            u.entries_used,
            u.entries,
            u.process_slots_used,
            u.process_slots
        )
    }
}

assert_python_alignment!(PySharedRegistry);
