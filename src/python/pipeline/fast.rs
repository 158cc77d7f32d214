//! The handles' one-event calls `CounterHandle.inc()`,
//! `SessionsHandle.start`/`end` and `DistinctHandle.seen` as hand-written
//! `METH_FASTCALL` methods ([`fastcall`]): an exact int key with no `ts`,
//! `None` or an exact float goes straight to [`send`]; anything else through
//! the conversions of every other method (`key_arg`, `ts_arg`), with the
//! same errors.

use core::ffi::CStr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyClass;

use super::super::fastcall::{self, add_raw_method, exact_float, exact_int, none, receiver};
use super::args::{key_arg, seconds_to_nanos, send, ts_arg};
use super::handles::{PyCounterHandle, PyDistinctHandle, PySessionsHandle};
use crate::pipeline::{Event, Pipeline};
use crate::sync::StdArc;

/// Sets the raw methods on the handle types (module init).
pub(super) fn add_methods(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyCounterHandle>();
    add_raw_method(&ty, c"inc", counter_inc, INC_DOC)?;
    let ty = py.get_type::<PySessionsHandle>();
    add_raw_method(&ty, c"start", sessions_start, START_DOC)?;
    add_raw_method(&ty, c"end", sessions_end, END_DOC)?;
    let ty = py.get_type::<PyDistinctHandle>();
    add_raw_method(&ty, c"seen", distinct_seen, SEEN_DOC)
}

// The docstrings, each with the signature line `inspect` reads.
const INC_DOC: &CStr = c"inc($self, /)
--

Adds one.";
const START_DOC: &CStr = c"start($self, /, key, ts=None)
--

Opens a session for `key` at `ts` (seconds on the pipeline clock;
`None`: when applied).";
const END_DOC: &CStr = c"end($self, /, key, ts=None)
--

Closes the session of `key` at `ts`, recording its duration.";
const SEEN_DOC: &CStr = c"seen($self, /, key, ts=None)
--

Records that `key` was seen at `ts` (seconds; `None`: when applied).";

/// Sends `sent`'s outcome back to CPython: `None`, or null with the error
/// set.
fn sent(py: Python<'_>, sent: PyResult<()>) -> *mut ffi::PyObject {
    match sent {
        Ok(()) => none(py, ()),
        Err(e) => Python::attach(|py| fastcall::finish(py, Err(e))),
    }
}

/// `ts` as `ts_arg` converts it, for `None` and an exact float in range;
/// `None` sends the call to the general path.
///
/// # Safety
///
/// `arg` is a live object and the thread is attached.
#[inline(always)]
unsafe fn quick_ts(arg: *mut ffi::PyObject) -> Option<u64> {
    // SAFETY: the contract.
    unsafe {
        if arg == ffi::Py_None() {
            return Some(0);
        }
        exact_float(arg).and_then(seconds_to_nanos)
    }
}

/// The body of a raw `name(key, ts=None)` method of `T`: `event(this, key,
/// ts)` gives the pipeline and the event to send.
///
/// # Safety
///
/// As CPython calls a `METH_FASTCALL | METH_KEYWORDS` method of a `T`: the
/// thread attached, `slf` a live `T` (the descriptor checked its type),
/// `args` pointing to `nargs` positional arguments followed by one value per
/// name of the tuple `kwnames` (null when there is none).
#[inline(always)]
unsafe fn key_ts_method<T>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    name: &'static str,
    event: impl Fn(&T, u64, u64) -> (&StdArc<Pipeline>, Event),
) -> *mut ffi::PyObject
where
    T: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    // SAFETY: the contract.
    let (py, this) = unsafe { receiver::<T>(slf) };
    if kwnames.is_null() && (nargs == 1 || nargs == 2) {
        // SAFETY: the contract: `args[..nargs]` are live objects. A key
        // converts as `key_arg` converts it (`-2**63..0` wraps to u64).
        let (key, ts) = unsafe {
            let ts = if nargs == 1 {
                Some(0)
            } else {
                quick_ts(*args.add(1))
            };
            (exact_int(*args), ts)
        };
        if let (Some(key), Some(ts)) = (key, ts) {
            let (p, ev) = event(this, key as u64, ts);
            return sent(py, send(p, ev));
        }
    }
    Python::attach(|py| {
        // SAFETY: the contract.
        let parsed = unsafe { fastcall::args(py, name, ["key", "ts"], 1, args, nargs, kwnames) };
        let result = parsed.and_then(|[key, ts]| {
            // `key` is required: `args` returned it or an error.
            let Some(key) = key else { return Ok(()) };
            let (key, ts) = (key_arg(&key)?, ts_arg(ts.as_ref())?);
            let (p, ev) = event(this, key, ts);
            send(p, ev)
        });
        sent(py, result)
    })
}

/// `CounterHandle.inc()`.
unsafe extern "C" fn counter_inc(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls it as a method of `CounterHandle`
    // (`add_raw_method`), the thread attached.
    let (py, h) = unsafe { receiver::<PyCounterHandle>(slf) };
    if nargs == 0 && kwnames.is_null() {
        return sent(py, send(&h.pipeline, Event::count(h.id)));
    }
    Python::attach(|py| {
        // SAFETY: as above; `args` holds what CPython passed.
        let parsed = unsafe { fastcall::args(py, "inc", [], 0, args, nargs, kwnames) };
        sent(
            py,
            parsed.and_then(|[]| send(&h.pipeline, Event::count(h.id))),
        )
    })
}

/// Defines `$func`, the raw method `$name(key, ts=None)` of `$ty` sending
/// `Event::$make(id, key).at(ts)`.
macro_rules! key_ts_methods {
    ($($func:ident: $ty:ident.$name:literal => $make:ident;)*) => {$(
        #[doc = concat!("`", stringify!($ty), ".", $name, "(key, ts=None)`.")]
        unsafe extern "C" fn $func(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            fn event(h: &$ty, k: u64, ts: u64) -> (&StdArc<Pipeline>, Event) {
                (&h.pipeline, Event::$make(h.id, k).at(ts))
            }
            // SAFETY: CPython calls it as a method of `$ty` (`add_raw_method`).
            unsafe { key_ts_method(slf, args, nargs, kwnames, $name, event) }
        }
    )*};
}

key_ts_methods! {
    sessions_start: PySessionsHandle."start" => start;
    sessions_end: PySessionsHandle."end" => end;
    distinct_seen: PyDistinctHandle."seen" => seen;
}
