//! `ringstat.Histogram`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};

use super::super::errors::{int_arg, type_name};
use super::{
    f64_arg, histogram_dict, percentile_to_quantile, percentiles_arg, percentiles_or_default,
    stats_err, u64_arg,
};
use crate::stats::Histogram;

/// A log-linear (HDR-style) histogram of ints in `0..=max_value`, recorded
/// lock-free from many threads, with count, sum, min, max, mean and
/// percentiles readable live.
///
/// Percentiles are within `relative_error` (at most
/// `10**-significant_digits / 2`) of the exact nearest-rank percentile.
/// Values are ints in your unit (microseconds, say); a float is rounded to
/// the nearest int (halves away from zero). Out-of-range values raise
/// `ValueError`, are not recorded, and are counted in `rejected`.
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
    /// `record` of anything but a `float` or an int in `0..2**64`.
    #[cold]
    fn record_other(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
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
            return self.inner.record_f64(v).map_err(stats_err);
        }
        match value.extract::<f64>() {
            Ok(v) => self.inner.record_f64(v).map_err(stats_err),
            Err(_) => Err(record_type_err(value)),
        }
    }
}

#[cold]
fn record_type_err(value: &Bound<'_, PyAny>) -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(format!(
        "value must be an int or float, not {}",
        type_name(value)
    ))
}

#[pymethods]
impl PyHistogram {
    /// An empty histogram for values `0..=max_value` (at least 1) with
    /// `significant_digits` (`0..=5`) decimal digits of precision.
    #[new]
    #[pyo3(signature = (max_value, significant_digits = 3))]
    fn new(
        #[pyo3(from_py_with = max_value_arg)] max_value: u64,
        #[pyo3(from_py_with = digits_arg)] significant_digits: u8,
    ) -> PyResult<Self> {
        let inner = Histogram::new(max_value, significant_digits).map_err(stats_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Records one value: an int in `0..=max_value`, or a float rounded to
    /// the nearest int.
    fn record(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(f) = value.cast::<PyFloat>() {
            return self.inner.record_f64(f.value()).map_err(stats_err);
        }
        if !value.is_instance_of::<PyBool>() {
            if let Ok(v) = value.extract::<u64>() {
                return self.inner.record(v).map_err(stats_err);
            }
        }
        self.record_other(value)
    }

    /// Records `count` occurrences of one int value.
    fn record_n(&self, value: &Bound<'_, PyAny>, count: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = u64_arg(count, "count")?;
        if value.is_instance_of::<PyFloat>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "value must be an int for record_n (round a float first, or record() it)",
            ));
        }
        let v = u64_arg(value, "value")?;
        self.inner.record_n(v, n).map_err(stats_err)
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
    fn min(&self) -> Option<u64> {
        self.inner.min()
    }

    /// Largest value recorded, `None` while empty.
    #[getter]
    fn max(&self) -> Option<u64> {
        self.inner.max()
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
    fn max_value(&self) -> u64 {
        self.inner.config().max
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
    fn percentile(&self, q: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let q = percentile_to_quantile(f64_arg(q, "q")?, "q")?;
        self.inner.quantile(q).map_err(stats_err)
    }

    /// Several percentiles (each in `[0, 100]`) from one snapshot, in order.
    fn percentiles(&self, qs: &Bound<'_, PyAny>) -> PyResult<Vec<Option<u64>>> {
        let (_, qs) = percentiles_arg(qs, "qs")?;
        self.inner.quantiles(&qs).map_err(stats_err)
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

    /// Non-empty buckets as `(lowest, highest, count)` tuples, in value order.
    fn buckets(&self) -> Vec<(u64, u64, u64)> {
        self.inner.snapshot().buckets().collect()
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
        histogram_dict(
            py,
            s.count(),
            s.sum(),
            s.min(),
            s.max(),
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
