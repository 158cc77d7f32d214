//! `ringstat.Counter` and `ringstat.Gauge`.

use crate::sync::StdArc as Arc;

use core::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyClass;

use super::super::fastcall::{self, add_raw_method, exact_int, none, receiver};
use super::{amount_arg, i64_arg, stats_err, u64_arg};
use crate::stats::{Counter, Gauge};
use crate::sync::stack_shard_hint;

/// A monotonic count (total logins) that many threads add to without
/// contention: sharded over cache-padded cells, summed when read.
///
/// `inc()` and `add(n)` never block and never lose an add; `value` is
/// exact once writers are quiescent; `take()` returns the total and
/// resets it atomically (each add is returned by exactly one `take`).
/// Counts saturate near `2**64` (never wrap to a small number).
#[pyclass(frozen, eq, hash, name = "Counter", module = "ringstat._ringstat")]
pub(crate) struct PyCounter {
    pub(crate) inner: Arc<Counter>,
}

same_metric_eq!(PyCounter);

#[pymethods]
impl PyCounter {
    /// A counter at 0. `shards` (1 to 65536, rounded up to a power of two)
    /// defaults to twice the CPU count.
    #[new]
    #[pyo3(signature = (*, shards = None))]
    fn new(shards: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let inner = match shards.filter(|s| !s.is_none()) {
            None => Counter::new(),
            Some(s) => {
                let n = super::super::errors::int_arg(s, "shards", 1)?;
                Counter::with_shards(n).map_err(stats_err)?
            }
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    // `inc(amount=1)` is hand-written below (`add_amount_methods`).

    /// Adds `n` (an int in `0..2**64`).
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .add_to_shard(u64_arg(n, "n")?, stack_shard_hint());
        Ok(())
    }

    /// The current total.
    #[getter]
    fn value(&self) -> u64 {
        self.inner.get()
    }

    /// Returns the total and resets the counter to 0.
    fn take(&self) -> u64 {
        self.inner.take()
    }

    /// Resets the counter to 0.
    fn reset(&self) {
        self.inner.reset();
    }

    /// The number of shards.
    #[getter]
    fn shards(&self) -> usize {
        self.inner.shards()
    }

    fn __int__(&self) -> u64 {
        self.inner.get()
    }

    fn __repr__(&self) -> String {
        format!("<ringstat.Counter value={}>", self.inner.get())
    }
}

// ----- `inc(amount=1)` and `dec(amount=1)` as hand-written methods ----------
//
// PyO3 parses arguments of a method with a signature in generic code and
// wraps each call in its trampoline; for `inc()` that was half the cost of
// the call. These are plain `METH_FASTCALL | METH_KEYWORDS` methods (which
// CPython's interpreter calls without a tuple): without an argument (the hot
// path) they go straight to the metric; with one they go through
// `Python::attach` (PyO3's bookkeeping of the attached thread).

/// Sets the methods `Counter.inc`, `Gauge.inc` and `Gauge.dec`, and
/// `Histogram.record`.
pub(super) fn add_amount_methods(py: Python<'_>) -> PyResult<()> {
    super::histogram::add_record_method(py)?;
    let counter = py.get_type::<PyCounter>();
    add_raw_method(&counter, c"inc", counter_inc, COUNTER_INC_DOC)?;
    let gauge = py.get_type::<PyGauge>();
    add_raw_method(&gauge, c"inc", gauge_inc, GAUGE_INC_DOC)?;
    add_raw_method(&gauge, c"dec", gauge_dec, GAUGE_DEC_DOC)
}

// The docstrings, each with the signature line `inspect` reads.
const COUNTER_INC_DOC: &CStr = c"inc($self, /, amount=1)
--

Adds `amount` (default 1): an int in `0..2**64`, or a float that is a
whole number (`2.0`); as prometheus_client's `inc(amount=1)`.";
const GAUGE_INC_DOC: &CStr = c"inc($self, /, amount=1)
--

Adds `amount` (default 1: an int, or a float that is a whole number)
and returns the new value.";
const GAUGE_DEC_DOC: &CStr = c"dec($self, /, amount=1)
--

Subtracts `amount` (default 1, as `inc`) and returns the new value.";

/// The body of a hand-written `name(amount=1)` method of `T`: `call(this,
/// None)` without arguments, `call(this, Some(amount))` with one, and `ret`
/// makes its result a Python object. One positional `int` in `-2**63..2**63`
/// goes to `call_int` first (no attach); `None` from it means: take the
/// general path.
///
/// # Safety
///
/// As CPython calls a `METH_FASTCALL | METH_KEYWORDS` method of a `T`: the
/// thread attached, `slf` a live `T` (the descriptor checked its type),
/// `args` pointing to `nargs` positional arguments followed by one value per
/// name of the tuple `kwnames` (null when there is none).
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the C call's four, then the method's parts
unsafe fn amount_method<T, R>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    name: &'static str,
    call: impl Fn(&T, Option<&Bound<'_, PyAny>>) -> PyResult<R>,
    call_int: impl Fn(&T, i64) -> Option<R>,
    ret: impl Fn(Python<'_>, R) -> *mut ffi::PyObject,
) -> *mut ffi::PyObject
where
    T: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    if nargs == 0 && kwnames.is_null() {
        // SAFETY: the thread is attached and `slf` a live `T` (the contract).
        let (py, this) = unsafe { receiver::<T>(slf) };
        if let Ok(r) = call(this, None) {
            return ret(py, r);
        }
    } else if nargs == 1 && kwnames.is_null() {
        // SAFETY: the contract: `args[0]` is a live object.
        if let Some(v) = unsafe { exact_int(*args) } {
            // SAFETY: as for the call without arguments.
            let (py, this) = unsafe { receiver::<T>(slf) };
            if let Some(r) = call_int(this, v) {
                return ret(py, r);
            }
        }
    }
    Python::attach(|py| {
        // SAFETY: the contract.
        let result = unsafe {
            let this = Borrowed::from_ptr(py, slf).cast_unchecked::<T>();
            fastcall::args(py, name, ["amount"], 0, args, nargs, kwnames)
                .and_then(|[a]| call(this.get(), a.filter(|a| !a.is_none()).as_ref()))
        };
        match result {
            Ok(r) => ret(py, r),
            Err(e) => {
                e.restore(py);
                core::ptr::null_mut()
            }
        }
    })
}

fn int(_: Python<'_>, v: i64) -> *mut ffi::PyObject {
    // SAFETY: the thread is attached (a token is held). Null with a
    // `MemoryError` set on failure is what a method returns then (PyO3's
    // conversion would panic, and a panic here aborts).
    unsafe { ffi::PyLong_FromLongLong(v) }
}

/// `Counter.inc(amount=1)`.
unsafe extern "C" fn counter_inc(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = |c: &PyCounter, amount: Option<&Bound<'_, PyAny>>| {
        let n = match amount {
            None => 1,
            Some(a) => amount_arg(a, true)?,
        };
        c.inner.add_to_shard(n, stack_shard_hint());
        Ok(())
    };
    let call_int = |c: &PyCounter, n: i64| {
        // A negative amount takes the general path (and its error).
        let n = u64::try_from(n).ok()?;
        c.inner.add_to_shard(n, stack_shard_hint());
        Some(())
    };
    // SAFETY: CPython calls it as a method of `Counter` (`add_raw_method`).
    unsafe { amount_method(slf, args, nargs, kwnames, "inc", call, call_int, none) }
}

/// `Gauge.inc(amount=1)`.
unsafe extern "C" fn gauge_inc(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = |g: &PyGauge, amount: Option<&Bound<'_, PyAny>>| {
        Ok(g.inner.add(match amount {
            None => 1,
            Some(a) => amount_arg(a, false)?,
        }))
    };
    let call_int = |g: &PyGauge, n: i64| Some(g.inner.add(n));
    // SAFETY: CPython calls it as a method of `Gauge` (`add_raw_method`).
    unsafe { amount_method(slf, args, nargs, kwnames, "inc", call, call_int, int) }
}

/// `Gauge.dec(amount=1)`.
unsafe extern "C" fn gauge_dec(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = |g: &PyGauge, amount: Option<&Bound<'_, PyAny>>| {
        Ok(g.inner.sub(match amount {
            None => 1,
            Some(a) => amount_arg(a, false)?,
        }))
    };
    let call_int = |g: &PyGauge, n: i64| Some(g.inner.sub(n));
    // SAFETY: CPython calls it as a method of `Gauge` (`add_raw_method`).
    unsafe { amount_method(slf, args, nargs, kwnames, "dec", call, call_int, int) }
}

/// A value that goes up and down (users online), with the smallest and
/// largest values it held since creation or the last `reset_min_max()`.
///
/// Values are ints in `-2**63..2**63`; arithmetic wraps at that range.
#[pyclass(frozen, eq, hash, name = "Gauge", module = "ringstat._ringstat")]
pub(crate) struct PyGauge {
    pub(crate) inner: Arc<Gauge>,
}

same_metric_eq!(PyGauge);

#[pymethods]
impl PyGauge {
    /// A gauge at `value` (min and max `value`).
    #[new]
    #[pyo3(signature = (value = None))]
    fn new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let v = match value {
            Some(v) => i64_arg(v, "value")?,
            None => 0,
        };
        Ok(Self {
            inner: Arc::new(Gauge::with_value(v)),
        })
    }

    /// Sets the value.
    fn set(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(i64_arg(value, "value")?);
        Ok(())
    }

    // `inc(amount=1)` and `dec(amount=1)` are hand-written below
    // (`add_amount_methods`).

    /// Adds `n` and returns the new value.
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<i64> {
        Ok(self.inner.add(i64_arg(n, "n")?))
    }

    /// Subtracts `n` and returns the new value.
    fn sub(&self, n: &Bound<'_, PyAny>) -> PyResult<i64> {
        Ok(self.inner.sub(i64_arg(n, "n")?))
    }

    /// The current value.
    #[getter]
    fn value(&self) -> i64 {
        self.inner.get()
    }

    /// The smallest value since creation or the last `reset_min_max()`.
    #[getter]
    fn min(&self) -> i64 {
        self.inner.min()
    }

    /// The largest value since creation or the last `reset_min_max()`.
    #[getter]
    fn max(&self) -> i64 {
        self.inner.max()
    }

    /// Restarts min/max tracking from the current value; returns the
    /// previous `(min, max)`.
    fn reset_min_max(&self) -> (i64, i64) {
        self.inner.reset_min_max()
    }

    fn __int__(&self) -> i64 {
        self.inner.get()
    }

    fn __repr__(&self) -> String {
        format!(
            "<ringstat.Gauge value={} min={} max={}>",
            self.inner.get(),
            self.inner.min(),
            self.inner.max()
        )
    }
}

assert_python_alignment!(PyCounter, PyGauge);
