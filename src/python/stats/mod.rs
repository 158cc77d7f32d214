//! `ringstat.Counter`, `Gauge`, `Histogram`, `Rate`, `ManualClock` and
//! `Registry`: the [`stats`](crate::stats) types for Python.
//!
//! Thin by design: every method forwards to the Rust type; this module only
//! converts arguments (naming them in errors: `TypeError` for a wrong type,
//! `ValueError` for a bad value) and turns [`StatsError`] into `ValueError`
//! with the Rust message. Handles hold an `Arc` of the Rust metric, so a
//! handle returned by a `Registry` shares the registered metric, and two
//! handles of one metric compare equal.
//!
//! Conventions shared by every class:
//!
//! - values read live are properties (`counter.value`, `histogram.count`);
//!   actions are methods (`inc()`, `record(v)`, `take()`);
//! - percentiles are on numpy's `0..=100` scale (`percentile(99)`), never
//!   `0..=1`;
//! - times are seconds as `float` (`window=60.0`, `clock.advance(1.5)`).

/// `==` and `hash()` by identity of the shared Rust metric (`self.inner`),
/// so two handles of one registered metric compare equal.
macro_rules! same_metric_eq {
    ($ty:ident) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                crate::sync::StdArc::ptr_eq(&self.inner, &other.inner)
            }
        }

        impl std::hash::Hash for $ty {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                crate::sync::StdArc::as_ptr(&self.inner).hash(state);
            }
        }
    };
}

mod counter;
mod histogram;
mod rate;
mod registry;
#[cfg(feature = "serve")]
mod serve;
#[cfg(target_os = "linux")]
mod shared;

use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyUnicodeEncodeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyMapping, PyString};

use super::errors::{shown, type_name};
use crate::stats::{StatsError, DEFAULT_QUANTILES};

pub(super) use counter::{PyCounter, PyGauge};
pub(super) use rate::clock_of;
pub(super) use registry::{snapshot_dict, PyRegistry};

pyo3::create_exception!(
    ringstat,
    SeriesLimitError,
    PyValueError,
    "Raised when a Registry created with max_series already holds that many series \
     and a new name or label set is asked for; existing series keep working."
);

/// Adds the statistics classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SeriesLimitError", m.py().get_type::<SeriesLimitError>())?;
    m.add_class::<counter::PyCounter>()?;
    m.add_class::<counter::PyGauge>()?;
    m.add_class::<histogram::PyHistogram>()?;
    m.add_class::<rate::PyRate>()?;
    m.add_class::<rate::PyManualClock>()?;
    m.add_class::<registry::PyRegistry>()?;
    #[cfg(feature = "serve")]
    m.add_class::<serve::PyMetricsServer>()?;
    #[cfg(target_os = "linux")]
    m.add_class::<shared::PySharedRegistry>()?;
    counter::add_amount_methods(m.py())
}

/// A [`StatsError`] as `ValueError` (`SeriesLimitError`, a subclass, for a
/// full registry), with the Rust message.
#[cold]
pub(super) fn stats_err(e: StatsError) -> PyErr {
    match e {
        StatsError::TooManySeries { .. } => SeriesLimitError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// Extracts an int in `0..2**64` (`int` or any object with `__index__`, not
/// `bool`), naming the argument on error.
#[inline]
pub(crate) fn u64_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    if !value.is_instance_of::<PyBool>() {
        if let Ok(v) = value.extract::<u64>() {
            return Ok(v);
        }
    }
    Err(int_err(value, name, "0 <= {name} < 2**64"))
}

/// Extracts an int in `-2**63..2**63` (not `bool`), naming the argument.
#[inline]
pub(crate) fn i64_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    if !value.is_instance_of::<PyBool>() {
        if let Ok(v) = value.extract::<i64>() {
            return Ok(v);
        }
    }
    Err(int_err(value, name, "-2**63 <= {name} < 2**63"))
}

/// An `amount` of `Counter.inc` (not negative, below `2**64`) or of
/// `Gauge.inc`/`dec` (`-2**63..2**63`): an int (not `bool`), or a float that
/// is a whole number. A fractional float is refused, never rounded.
#[inline]
pub(super) fn amount_arg<T>(value: &Bound<'_, PyAny>, counter: bool) -> PyResult<T>
where
    T: for<'a, 'py> FromPyObject<'a, 'py> + TryFrom<i128>,
{
    if !value.is_instance_of::<PyBool>() && !value.is_instance_of::<PyFloat>() {
        if let Ok(v) = value.extract::<T>() {
            return Ok(v);
        }
    }
    amount_err(value, counter).and_then(|n| {
        T::try_from(n).map_err(|_| {
            PyValueError::new_err(format!(
                "amount out of range: need {}, got {}",
                if counter {
                    "0 <= amount < 2**64"
                } else {
                    "-2**63 <= amount < 2**63"
                },
                shown(value)
            ))
        })
    })
}

/// `amount_arg` past its fast path: a whole float as an `i128` (for the
/// caller's range check), or the error.
#[cold]
fn amount_err(value: &Bound<'_, PyAny>, counter: bool) -> PyResult<i128> {
    const NEGATIVE: &str = "Counters can only be incremented by non-negative amounts.";
    if value.is_instance_of::<PyBool>() {
        return Err(amount_type_err(value));
    }
    let is_int = value.is_instance_of::<PyInt>() || value.hasattr("__index__").unwrap_or(false);
    if is_int {
        // An int the fast path could not convert: out of range.
        if counter && value.lt(0)? {
            return Err(PyValueError::new_err(NEGATIVE));
        }
        return Ok(if value.lt(0)? { i128::MIN } else { i128::MAX });
    }
    let Ok(f) = value.extract::<f64>() else {
        return Err(amount_type_err(value));
    };
    if f.is_nan() {
        return Err(PyValueError::new_err("amount must be a number, got nan"));
    }
    if counter && f < 0.0 {
        return Err(PyValueError::new_err(NEGATIVE));
    }
    if f.is_finite() && f.fract() != 0.0 {
        return Err(PyValueError::new_err(format!(
            "amount must be a whole number (ringstat counters and gauges hold ints; \
             record fractions in a Histogram), got {f}"
        )));
    }
    // Whole floats beyond `i128` and infinities saturate: out of range.
    #[allow(clippy::cast_possible_truncation)]
    Ok(f as i128)
}

#[cold]
fn amount_type_err(value: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "amount must be an int or float, not {}",
        type_name(value)
    ))
}

/// The error for an argument that is not an int (`TypeError`) or an int
/// out of `range` (`ValueError`; `{name}` in `range` is replaced).
#[cold]
fn int_err(value: &Bound<'_, PyAny>, name: &str, range: &str) -> PyErr {
    // An int (or an object with `__index__`, as numpy ints have) whose
    // extraction failed is out of range; anything else is the wrong type.
    let is_int = !value.is_instance_of::<PyBool>()
        && (value.is_instance_of::<PyInt>() || value.hasattr("__index__").unwrap_or(false));
    if is_int {
        PyValueError::new_err(format!(
            "{name} out of range: need {}, got {}",
            range.replace("{name}", name),
            shown(value)
        ))
    } else {
        PyTypeError::new_err(format!("{name} must be an int, not {}", type_name(value)))
    }
}

/// Extracts a real number (`int`, `float` or anything with `__float__`).
pub(super) fn f64_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>() {
        return Err(number_type_err(value, name));
    }
    match value.extract::<f64>() {
        Ok(v) => Ok(v),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(PyValueError::new_err(
            format!("{name} is too large for a float, got {}", shown(value)),
        )),
        Err(_) => Err(number_type_err(value, name)),
    }
}

#[cold]
fn number_type_err(value: &Bound<'_, PyAny>, name: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{name} must be an int or float, not {}",
        type_name(value)
    ))
}

/// Extracts a non-negative duration in seconds (`int` or `float`).
pub(super) fn seconds_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    let secs = f64_arg(value, name)?;
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite, non-negative number of seconds, got {secs}"
        ))
    })
}

/// A percentile `p` in `[0, 100]` converted to the Rust quantile `p / 100`.
///
/// The division is done in decimal (the shortest decimal form of `p`,
/// shifted two places, parsed with correct rounding), so that `99.9` gives
/// the same `f64` as the literal `0.999` and is exposed as
/// `quantile="0.999"`, not `0.9990000000000001`.
pub(super) fn percentile_to_quantile(p: f64, name: &str) -> PyResult<f64> {
    if (0.0..=100.0).contains(&p) {
        // `+ 0.0`: -0.0 becomes 0.0 (and is exposed as "0", not "-0").
        let p = p + 0.0;
        Ok(format!("{p}e-2").parse().unwrap_or(p / 100.0))
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be in [0, 100] (a percentile, as in numpy.percentile), got {p}"
        )))
    }
}

/// Extracts an iterable of percentiles: `(percentiles, quantiles)`.
pub(super) fn percentiles_arg(
    value: &Bound<'_, PyAny>,
    name: &str,
) -> PyResult<(Vec<f64>, Vec<f64>)> {
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an iterable of numbers, not str"
        )));
    }
    let iter = value.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be an iterable of numbers, not {}",
            type_name(value)
        ))
    })?;
    let mut ps = Vec::new();
    let mut qs = Vec::new();
    for item in iter {
        let p = f64_arg(&item?, name)?;
        qs.push(percentile_to_quantile(p, name)?);
        ps.push(p);
    }
    Ok((ps, qs))
}

/// The percentiles a snapshot reports by default: [`DEFAULT_QUANTILES`] on
/// the 0-100 scale.
const DEFAULT_PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

/// `percentiles` (an iterable, or `None` for the defaults) as
/// `(percentiles, quantiles)`, each percentile once (the first of equal
/// ones kept, in order): a snapshot has one `pNN` key and one exposition
/// line per percentile.
pub(super) fn percentiles_or_default(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<f64>, Vec<f64>)> {
    match value.filter(|v| !v.is_none()) {
        Some(v) => {
            let (ps, qs) = percentiles_arg(v, "percentiles")?;
            let mut out = (Vec::with_capacity(ps.len()), Vec::with_capacity(qs.len()));
            for (p, q) in ps.into_iter().zip(qs) {
                if !out.1.contains(&q) {
                    out.0.push(p + 0.0);
                    out.1.push(q);
                }
            }
            Ok(out)
        }
        None => Ok((DEFAULT_PERCENTILES.to_vec(), DEFAULT_QUANTILES.to_vec())),
    }
}

/// The key of percentile `p` in a snapshot dict: `"p50"`, `"p99.9"`.
pub(super) fn percentile_key(p: f64) -> String {
    format!("p{p}")
}

/// The values of a histogram as a dict: `count`, `sum`, `min`, `max`,
/// `rejected` and `percentiles` (`{"p50": v, ...}`, `None` when empty).
pub(super) fn histogram_dict<'py, V: IntoPyObject<'py>>(
    py: Python<'py>,
    count: u64,
    sum: f64,
    min: Option<V>,
    max: Option<V>,
    rejected: u64,
    percentiles: impl Iterator<Item = (f64, Option<V>)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("count", count)?;
    d.set_item("sum", sum)?;
    d.set_item("min", min)?;
    d.set_item("max", max)?;
    d.set_item("rejected", rejected)?;
    let ps = PyDict::new(py);
    for (p, v) in percentiles {
        ps.set_item(percentile_key(p), v)?;
    }
    d.set_item("percentiles", ps)?;
    Ok(d)
}

/// Extracts a `str` argument, naming it on error: `TypeError` for another
/// type, `ValueError` for a str that is not valid Unicode (a lone surrogate).
pub(super) fn str_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => match s.to_cow() {
            Ok(s) => Ok(s.into_owned()),
            Err(e) if e.is_instance_of::<PyUnicodeEncodeError>(value.py()) => {
                Err(PyValueError::new_err(format!(
                    "{name} must be valid Unicode (no lone surrogates), got {}",
                    value
                        .repr()
                        .map_or_else(|_| "?".to_owned(), |r| r.to_string())
                )))
            }
            Err(e) => Err(e),
        },
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be a str, not {}",
            type_name(value)
        ))),
    }
}

/// Extracts `labels`: `None` or a mapping of `str` to `str`.
pub(super) fn labels_arg(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let mapping = value.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "labels must be a dict of str to str, not {}",
            type_name(value)
        ))
    })?;
    let mut out = Vec::new();
    for item in mapping.items()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        if !k.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "labels keys must be str, not {}",
                type_name(&k)
            )));
        }
        let key = str_arg(&k, "labels keys")?;
        if !v.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "labels values must be str, not {} (for label {key:?})",
                type_name(&v)
            )));
        }
        let val = str_arg(&v, "labels values")?;
        out.push((key, val));
    }
    Ok(out)
}
