//! `ringstat.Counter` and `ringstat.Gauge`.

use std::sync::Arc;

use core::ffi::CStr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use super::{amount_arg, i64_arg, stats_err, u64_arg};
use crate::stats::{Counter, Gauge};

/// A monotonic count (total logins) that many threads add to without
/// contention: sharded over cache-padded cells, summed when read.
///
/// `inc()` and `add(n)` never block and never lose an add; `value` is
/// exact once writers are quiescent; `take()` returns the total and
/// resets it atomically (each add is returned by exactly one `take`).
/// Counts saturate near `2**64` (never wrap to a small number).
#[pyclass(frozen, eq, hash, name = "Counter", module = "ringstat._ringstat")]
pub(crate) struct PyCounter {
    pub(super) inner: Arc<Counter>,
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

/// The docstring (with the signature line `inspect` reads) of `Counter.inc`.
const INC_DOC: &CStr = c"inc($self, /, amount=1)
--

Adds `amount` (default 1): an int in `0..2**64`, or a float that is a
whole number (`2.0`); as prometheus_client's `inc(amount=1)`.";

/// Replaces the `inc` PyO3 would generate with [`counter_inc`]: a plain
/// `METH_VARARGS | METH_KEYWORDS` method, so `inc()` without an argument
/// skips PyO3's argument parsing and trampoline (its hot path).
pub(super) fn add_raw_inc(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"inc".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: counter_inc,
        },
        ml_flags: ffi::METH_VARARGS | ffi::METH_KEYWORDS,
        ml_doc: INC_DOC.as_ptr(),
    }));
    // SAFETY: `ty` is a live type object and `def` lives for the rest of the
    // process (leaked), as the descriptor keeps a pointer to it.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            ty.py(),
            ffi::PyDescr_NewMethod(ty.as_type_ptr(), core::ptr::from_mut(def)),
        )?
    };
    ty.setattr("inc", descr)
}

/// `Counter.inc(amount=1)`. The method descriptor calling it has checked that
/// `slf` is a `Counter` (a `TypeError` otherwise); `args` is a tuple and
/// `kwargs` a dict or null.
unsafe extern "C" fn counter_inc(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: `args` is the call's argument tuple (never null).
    if kwargs.is_null() && unsafe { ffi::PyTuple_Size(args) } == 0 {
        // SAFETY: CPython calls a method with the thread attached.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `slf` is a live `Counter` (checked by the descriptor, see
        // above), borrowed for this call.
        let counter = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<PyCounter>() };
        counter.get().inner.add_to_shard(1, stack_shard_hint());
        return py.None().into_ptr();
    }
    // With arguments, through `attach` (PyO3's bookkeeping of the attached
    // thread, so the references an error holds are released at once).
    Python::attach(|py| {
        // SAFETY: as above; `kwargs`, if not null, is the call's keyword dict.
        let result = unsafe {
            let counter = Borrowed::from_ptr(py, slf).cast_unchecked::<PyCounter>();
            counter_inc_amount(py, counter.get(), args, kwargs)
        };
        match result {
            Ok(()) => py.None().into_ptr(),
            Err(e) => {
                e.restore(py);
                core::ptr::null_mut()
            }
        }
    })
}

/// `inc` with arguments: at most one, `amount`, by position or keyword.
///
/// # Safety
///
/// `args` is a tuple and `kwargs` null or a dict, both live for the call.
#[cold]
unsafe fn counter_inc_amount(
    py: Python<'_>,
    counter: &PyCounter,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> PyResult<()> {
    // SAFETY: see the function's contract.
    let args = unsafe { Borrowed::from_ptr(py, args).cast_unchecked::<PyTuple>() };
    let mut amount = match args.len() {
        0 => None,
        1 => Some(args.get_item(0)?),
        n => {
            return Err(PyTypeError::new_err(format!(
                "inc() takes at most 1 argument ({n} given)"
            )))
        }
    };
    if !kwargs.is_null() {
        // SAFETY: see the function's contract.
        let kwargs = unsafe { Borrowed::from_ptr(py, kwargs).cast_unchecked::<PyDict>() };
        for (key, value) in kwargs.iter() {
            if key.cast::<PyString>().is_ok_and(|k| k == "amount") && amount.is_none() {
                amount = Some(value);
            } else if key.cast::<PyString>().is_ok_and(|k| k == "amount") {
                return Err(PyTypeError::new_err(
                    "inc() got multiple values for argument 'amount'",
                ));
            } else {
                return Err(PyTypeError::new_err(format!(
                    "inc() got an unexpected keyword argument {}",
                    key.repr()?
                )));
            }
        }
    }
    let n = match amount.filter(|a| !a.is_none()) {
        None => 1,
        Some(a) => amount_arg(&a, true)?,
    };
    counter.inner.add_to_shard(n, stack_shard_hint());
    Ok(())
}

/// A value that goes up and down (users online), with the smallest and
/// largest values it held since creation or the last `reset_min_max()`.
///
/// Values are ints in `-2**63..2**63`; arithmetic wraps at that range.
#[pyclass(frozen, eq, hash, name = "Gauge", module = "ringstat._ringstat")]
pub(crate) struct PyGauge {
    pub(super) inner: Arc<Gauge>,
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

    /// Adds `n` and returns the new value.
    fn add(&self, n: &Bound<'_, PyAny>) -> PyResult<i64> {
        Ok(self.inner.add(i64_arg(n, "n")?))
    }

    /// Subtracts `n` and returns the new value.
    fn sub(&self, n: &Bound<'_, PyAny>) -> PyResult<i64> {
        Ok(self.inner.sub(i64_arg(n, "n")?))
    }

    /// Adds `amount` (default 1: an int, or a float that is a whole number)
    /// and returns the new value.
    #[pyo3(signature = (amount = None), text_signature = "($self, amount=1)")]
    fn inc(&self, amount: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
        let n = match amount {
            None => 1,
            Some(a) => amount_arg(a, false)?,
        };
        Ok(self.inner.add(n))
    }

    /// Subtracts `amount` (default 1, as `inc`) and returns the new value.
    #[pyo3(signature = (amount = None), text_signature = "($self, amount=1)")]
    fn dec(&self, amount: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
        let n = match amount {
            None => 1,
            Some(a) => amount_arg(a, false)?,
        };
        Ok(self.inner.sub(n))
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

/// A shard hint for the calling thread without a thread-local lookup: a hash
/// of the 64 KiB block its stack is in. Threads have disjoint stacks (at least
/// one block apart), so concurrent threads mostly pick different shards, and
/// one thread keeps picking the same one; a collision only shares a cache
/// line, it never loses a count.
#[inline(always)]
fn stack_shard_hint() -> usize {
    let marker = 0u8;
    let block = (core::ptr::addr_of!(marker) as usize) >> 16;
    // Fibonacci hashing: spreads neighbouring blocks over the low bits.
    (block.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)) >> (usize::BITS - 16)
}

assert_python_alignment!(PyCounter, PyGauge);
