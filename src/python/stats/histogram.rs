//! `ringstat.Histogram`.

use crate::sync::StdArc as Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};
use pyo3::IntoPyObjectExt;

use super::super::errors::{int_arg, type_name};
use super::super::fastcall;
use super::{
    f64_arg, histogram_dict, percentile_to_quantile, percentiles_arg, percentiles_or_default,
    stats_err, u64_arg,
};
use crate::stats::{Histogram, HistogramConfig, StatsError, Via};

/// A log-linear (HDR-style) histogram of ints in `0..=max_value`, recorded
/// lock-free from many threads, with count, sum, min, max, mean and
/// percentiles readable live.
///
/// Percentiles are within `relative_error` (at most
/// `10**-significant_digits / 2`) of the exact nearest-rank percentile.
/// Without a `unit` values are ints (a float with a fraction raises
/// `ValueError`); with one (`unit=1e-6` for seconds kept to the microsecond)
/// they are floats, kept within `max(relative_error * value, unit / 2)`.
/// Out-of-range values raise `ValueError`, are not recorded, and are counted
/// in `rejected`.
#[pyclass(frozen, eq, hash, name = "Histogram", module = "ringstat._ringstat")]
pub(crate) struct PyHistogram {
    pub(super) inner: Arc<Histogram>,
}

same_metric_eq!(PyHistogram);

/// Extracts `max_value` (`#[pyo3(from_py_with)]`): an int in `0..2**64`
/// (0 is refused by the Rust constructor).
pub(super) fn max_value_arg(value: &Bound<'_, PyAny>) -> PyResult<u64> {
    u64_arg(value, "max_value")
}

/// Extracts `significant_digits` (`#[pyo3(from_py_with)]`): an int
/// (values above 5 are refused by the Rust constructor).
pub(super) fn digits_arg(value: &Bound<'_, PyAny>) -> PyResult<u8> {
    if !value.is_instance_of::<PyBool>() {
        if let Ok(digits) = value.extract::<i128>() {
            return u8::try_from(digits).map_err(|_| {
                PyValueError::new_err(format!("significant_digits must be in 0..=5, got {digits}"))
            });
        }
    }
    // Not an int (or one beyond 128 bits): the shared checks name the error.
    int_arg(value, "significant_digits", 0).and_then(|d| {
        Err(PyValueError::new_err(format!(
            "significant_digits must be in 0..=5, got {d}"
        )))
    })
}

impl PyHistogram {
    /// Records one value: an int in `0..=max_value`, or a float (a whole
    /// number unless the histogram has a unit).
    fn record_any(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        // `Via::Shared`: calls from Python are serialized by the interpreter
        // lock, so a per-thread front saves nothing and its lookup costs.
        if let Ok(f) = value.cast::<PyFloat>() {
            return self
                .inner
                .record_value_via(f.value(), Via::Shared)
                .map_err(stats_err);
        }
        if !value.is_instance_of::<PyBool>() {
            if let Ok(v) = value.extract::<u64>() {
                return match self.inner.unit() {
                    None => self.inner.record_n_via(v, 1, Via::Shared),
                    Some(_) => self.inner.record_f64_n_via(v as f64, 1, Via::Shared),
                }
                .map_err(stats_err);
            }
        }
        self.record_other(value, 1)
    }

    /// `record` of anything but a `float` or an int in `0..2**64`.
    #[cold]
    fn record_other(&self, value: &Bound<'_, PyAny>, n: u64) -> PyResult<()> {
        if value.is_instance_of::<PyBool>() {
            return Err(record_type_err(value));
        }
        if value.is_instance_of::<PyInt>() || value.hasattr("__index__").unwrap_or(false) {
            // An int out of `0..2**64`: the float path rejects it (and counts
            // it in `rejected`) with a message naming the value.
            let v = match value.extract::<f64>() {
                Ok(v) => v,
                Err(_) if value.lt(0)? => f64::NEG_INFINITY,
                Err(_) => f64::INFINITY,
            };
            return self.record_float(v, n);
        }
        match value.extract::<f64>() {
            Ok(v) => self.record_float(v, n),
            Err(_) => Err(record_type_err(value)),
        }
    }

    /// Records `n` floats: within the unit if there is one, else (only from
    /// `record`, `n = 1`) a whole number (a fraction raises, not rounds).
    fn record_float(&self, v: f64, n: u64) -> PyResult<()> {
        match self.inner.unit() {
            Some(_) => self.inner.record_f64_n_via(v, n, Via::Shared),
            None => self.inner.record_value_via(v, Via::Shared),
        }
        .map_err(stats_err)
    }

    /// A tick count as a Python number in value units: an int without a
    /// unit, a float with one.
    fn value<'py>(&self, py: Python<'py>, ticks: u64) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.unit() {
            None => ticks.into_bound_py_any(py),
            Some(_) => self.inner.tick_value(ticks).into_bound_py_any(py),
        }
    }

    fn opt_value<'py>(
        &self,
        py: Python<'py>,
        ticks: Option<u64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        ticks.map(|t| self.value(py, t)).transpose()
    }
}

/// `(lowest, highest, count)` of one bucket, as `buckets()` returns it.
type Bucket<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, u64);

#[cold]
fn record_type_err(value: &Bound<'_, PyAny>) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!(
        "value must be an int or float, not {}",
        type_name(value)
    ))
}

/// The configuration and unit from `max_value`, `significant_digits` and
/// `unit` as Python passes them: with a unit, `max_value` is in its values.
pub(super) fn histogram_config(
    max_value: &Bound<'_, PyAny>,
    significant_digits: u8,
    unit: Option<&Bound<'_, PyAny>>,
) -> PyResult<(HistogramConfig, Option<f64>)> {
    let Some(unit) = unit else {
        let config = HistogramConfig {
            max: max_value_arg(max_value)?,
            significant_digits,
        };
        return Ok((config, None));
    };
    let unit = f64_arg(unit, "unit")?;
    if !(unit.is_finite() && unit > 0.0) {
        return Err(stats_err(StatsError::InvalidUnit { unit }));
    }
    let max = f64_arg(max_value, "max_value")?;
    // 2^64 as f64: the tick count must fit a u64.
    let ticks = (max / unit).round();
    if !(1.0..18_446_744_073_709_551_616.0).contains(&ticks) {
        return Err(PyValueError::new_err(format!(
            "max_value / unit must be in 1..2**64 ticks, got {max} / {unit}"
        )));
    }
    let config = HistogramConfig {
        max: ticks as u64,
        significant_digits,
    };
    Ok((config, Some(unit)))
}

#[pymethods]
impl PyHistogram {
    /// An empty histogram for values `0..=max_value` (at least 1) with
    /// `significant_digits` (`0..=5`) decimal digits of precision; with a
    /// `unit`, of floats kept to that unit (`max_value / unit` ticks).
    #[new]
    #[pyo3(signature = (max_value, significant_digits = 3, *, unit = None))]
    fn new(
        max_value: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = digits_arg)] significant_digits: u8,
        unit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let inner = match histogram_config(max_value, significant_digits, unit)? {
            (config, None) => Histogram::with_config(config),
            (config, Some(unit)) => Histogram::with_unit(config, unit),
        }
        .map_err(stats_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    // `record(value)` is hand-written (`add_record_method`).

    /// Records `count` occurrences of one value: an int, or with a unit
    /// any real number (as `record`).
    fn record_n(&self, value: &Bound<'_, PyAny>, count: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = u64_arg(count, "count")?;
        if self.inner.unit().is_some() {
            return self.record_other(value, n);
        }
        if value.is_instance_of::<PyFloat>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "value must be an int for record_n on a histogram without a unit",
            ));
        }
        let v = u64_arg(value, "value")?;
        self.inner
            .record_n_via(v, n, Via::Shared)
            .map_err(stats_err)
    }

    /// The value of one tick, `None` for a histogram of ints.
    #[getter]
    fn unit(&self) -> Option<f64> {
        self.inner.unit()
    }

    /// Number of values recorded.
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    /// Sum of the values recorded (within `relative_error`).
    #[getter]
    fn sum(&self) -> f64 {
        self.inner.sum()
    }

    /// Smallest value recorded, `None` while empty.
    #[getter]
    fn min<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.opt_value(py, self.inner.min())
    }

    /// Largest value recorded, `None` while empty.
    #[getter]
    fn max<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.opt_value(py, self.inner.max())
    }

    /// Mean of the values recorded, `None` while empty.
    #[getter]
    fn mean(&self) -> Option<f64> {
        self.inner.mean()
    }

    /// Values refused by `record` (out of range, negative, NaN).
    #[getter]
    fn rejected(&self) -> u64 {
        self.inner.rejected()
    }

    /// The highest value that can be recorded.
    #[getter]
    fn max_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.value(py, self.inner.config().max)
    }

    /// Decimal significant digits kept.
    #[getter]
    fn significant_digits(&self) -> u8 {
        self.inner.config().significant_digits
    }

    /// The documented relative error bound of percentiles, sum and mean.
    #[getter]
    fn relative_error(&self) -> f64 {
        self.inner.relative_error()
    }

    /// The `q`-th percentile, `q` in `[0, 100]`; `None` while empty.
    fn percentile<'py>(
        &self,
        py: Python<'py>,
        q: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let q = percentile_to_quantile(f64_arg(q, "q")?, "q")?;
        let t = self.inner.quantile(q).map_err(stats_err)?;
        self.opt_value(py, t)
    }

    /// Several percentiles (each in `[0, 100]`) from one snapshot, in order.
    fn percentiles<'py>(
        &self,
        py: Python<'py>,
        qs: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
        let (_, qs) = percentiles_arg(qs, "qs")?;
        let ts = self.inner.quantiles(&qs).map_err(stats_err)?;
        ts.into_iter().map(|t| self.opt_value(py, t)).collect()
    }

    /// Adds every value recorded in `other` (same `max_value` and
    /// `significant_digits`) to this histogram.
    fn merge(&self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let other = other.cast::<PyHistogram>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "other must be a Histogram, not {}",
                type_name(other)
            ))
        })?;
        self.inner.merge(&other.get().inner).map_err(stats_err)
    }

    /// Non-empty buckets as `(lowest, highest, count)` tuples, in value
    /// order (with a unit: the values of the lowest and highest tick).
    fn buckets<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bucket<'py>>> {
        self.inner
            .snapshot()
            .buckets()
            .map(|(lo, hi, c)| Ok((self.value(py, lo)?, self.value(py, hi)?, c)))
            .collect()
    }

    /// count, sum, min, max, rejected and the `percentiles` (each in
    /// `[0, 100]`) as a dict, all from one consistent snapshot.
    #[pyo3(signature = (percentiles = None))]
    fn snapshot<'py>(
        &self,
        py: Python<'py>,
        percentiles: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ps, qs) = percentiles_or_default(percentiles)?;
        let s = self.inner.snapshot();
        let values = s.quantiles(&qs).map_err(stats_err)?;
        let values = values
            .into_iter()
            .map(|t| self.opt_value(py, t))
            .collect::<PyResult<Vec<_>>>()?;
        histogram_dict(
            py,
            s.count(),
            s.sum(),
            self.opt_value(py, s.min())?,
            self.opt_value(py, s.max())?,
            s.rejected(),
            ps.into_iter().zip(values),
        )
    }

    fn __repr__(&self) -> String {
        let s = self.inner.snapshot();
        let c = s.config();
        format!(
            "<ringstat.Histogram max_value={} significant_digits={} count={} min={:?} max={:?}>",
            c.max,
            c.significant_digits,
            s.count(),
            s.min(),
            s.max()
        )
    }
}

assert_python_alignment!(PyHistogram);

// ----- `record(value)` as a hand-written method (see counter.rs) -----------

/// Sets `Histogram.record`.
pub(super) fn add_record_method(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyHistogram>();
    fastcall::add_raw_method(&ty, c"record", histogram_record, RECORD_DOC)
}

const RECORD_DOC: &core::ffi::CStr = c"record($self, /, value)
--

Records one value: an int in `0..=max_value`, or a float (a whole number
unless the histogram has a unit, then within its unit). A bad value
raises `ValueError` or `TypeError` and is counted in `rejected`.";

/// `Histogram.record(value)`: one exact `int` in range on a histogram
/// without a unit, or one exact `float` in range on a histogram with a
/// unit, goes straight to the cells; anything else through
/// [`PyHistogram::record_any`].
unsafe extern "C" fn histogram_record(
    slf: *mut pyo3::ffi::PyObject,
    args: *const *mut pyo3::ffi::PyObject,
    nargs: pyo3::ffi::Py_ssize_t,
    kwnames: *mut pyo3::ffi::PyObject,
) -> *mut pyo3::ffi::PyObject {
    if nargs == 1 && kwnames.is_null() {
        // SAFETY: CPython calls it as a method of `Histogram` (the
        // descriptor checked `slf`'s type) with `nargs` live arguments, the
        // thread attached.
        unsafe {
            let arg = *args;
            let (py, this) = fastcall::receiver::<PyHistogram>(slf);
            let h = &this.inner;
            // Only a value that will be recorded: a rejection takes the
            // general path, which counts it once and raises.
            if let Some(v) = fastcall::exact_int(arg) {
                if let Ok(v) = u64::try_from(v) {
                    if v <= h.config().max && h.unit().is_none() {
                        let _ = h.record_n_via(v, 1, Via::Shared);
                        return fastcall::none(py, ());
                    }
                }
            } else if h.unit().is_some()
                && pyo3::ffi::Py_TYPE(arg) == core::ptr::addr_of_mut!(pyo3::ffi::PyFloat_Type)
            {
                // An exact float cannot fail to convert.
                let v = pyo3::ffi::PyFloat_AsDouble(arg);
                if h.record_f64_in_range(v, Via::Shared) {
                    return fastcall::none(py, ());
                }
            }
        }
    }
    Python::attach(|py| {
        // SAFETY: as above; `args` holds `nargs` positionals and then one
        // value per name of `kwnames`.
        let result = unsafe {
            let this = Borrowed::from_ptr(py, slf).cast_unchecked::<PyHistogram>();
            fastcall::args(py, "record", ["value"], 1, args, nargs, kwnames)
                // `value` is required: `args` returned it or an error.
                .and_then(|[v]| v.map_or(Ok(()), |v| this.get().record_any(&v)))
        };
        match result {
            Ok(()) => fastcall::none(py, ()),
            Err(e) => {
                e.restore(py);
                core::ptr::null_mut()
            }
        }
    })
}
