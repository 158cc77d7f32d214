//! `ringstat._ringstat._EventBuffer`: a shipper's local buffer
//! ([`EventBuffer`]) for `ringstat.broker`'s shippers, whose producer
//! calls are this class's methods, bound directly (no Python frame per
//! event). Converts and checks arguments with the messages the shippers
//! always gave, waits detached, forwards; the buffer lives in the core.
//!
//! An argument of the right type whose value the frame format cannot
//! carry (an int past 64 bits, a name over 1024 bytes, a str that is not
//! UTF-8) is not an error: the event is counted in `rejected`, as the
//! encoder always refused such events.

use std::time::Instant;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyInt, PyList, PyString};

use super::errors::{shut_down, type_name};
use super::pipeline::key_arg;
use super::stats::{u64_arg, PyCounter, PyGauge};
use super::wait::in_slices;
use super::wire::OP_NAMES;
use crate::pipeline::Op;
use crate::sync::StdArc;
use crate::wire::{BufferMetrics, EventBuffer, Pushed, Refused};

/// An optional argument that tells "not given" (the default) from an
/// explicit `None`, which is a bad value here as it always was.
struct Given<'py>(Option<Bound<'py, PyAny>>);

impl<'a, 'py> FromPyObject<'a, 'py> for Given<'py> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Self(Some(obj.to_owned())))
    }
}

/// A value the format cannot carry: the event is counted as rejected.
struct Unencodable;

/// An argument's outcome: a value, or an event to count as rejected.
type Arg<T> = PyResult<Result<T, Unencodable>>;

/// A shipper's bounded buffer of events, taken as frames by its
/// publishing thread.
#[pyclass(frozen, name = "_EventBuffer", module = "ringstat._ringstat")]
pub(crate) struct PyEventBuffer {
    inner: EventBuffer,
}

fn is_gauge(op: Op) -> bool {
    matches!(op, Op::Set | Op::GaugeAdd)
}

fn op_repr(op: Op) -> &'static str {
    OP_NAMES
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| *n)
}

/// `name`: a non-empty `str` (a subclass too).
fn name_arg(name: &Bound<'_, PyAny>) -> Arg<PyBackedStr> {
    match name.cast::<PyString>() {
        Ok(s) if s.len().is_ok_and(|n| n > 0) => {
            // Not UTF-8 (a lone surrogate): the encoder refuses it.
            Ok(PyBackedStr::try_from(s.clone()).map_err(|_| Unencodable))
        }
        _ => Err(PyTypeError::new_err(format!(
            "name must be a non-empty str, not {}",
            name.repr()
                .map_or_else(|_| type_name(name), |r| r.to_string())
        ))),
    }
}

/// An exact `int` (not a subclass, not `bool`), as `value` or `ts_ns`.
fn exact_int<'a, 'py>(v: &'a Bound<'py, PyAny>, arg: &str) -> PyResult<&'a Bound<'py, PyAny>> {
    if v.is_exact_instance_of::<PyInt>() {
        Ok(v)
    } else {
        Err(PyTypeError::new_err(format!(
            "{arg} must be an int, not {}",
            type_name(v)
        )))
    }
}

/// A checked `int` as a `u64` (`i64` bits if `signed`): a negative one
/// where `signed` is off is a `ValueError`; one out of range is rejected.
fn int_value(v: &Bound<'_, PyAny>, signed: bool, op: Op) -> Arg<u64> {
    if !signed {
        if let Ok(x) = v.extract::<u64>() {
            return Ok(Ok(x));
        }
    } else if let Ok(x) = v.extract::<i64>() {
        return Ok(Ok(x as u64));
    }
    int_cold(v, signed, op)
}

#[cold]
fn int_cold(v: &Bound<'_, PyAny>, signed: bool, op: Op) -> Arg<u64> {
    if !signed && v.lt(0)? {
        return Err(PyValueError::new_err(format!(
            "value and ts_ns must be >= 0 for '{}'",
            op_repr(op)
        )));
    }
    Ok(Err(Unencodable))
}

/// `key`: an `int` (not `bool`), `str` or `bytes`; an int out of
/// `-2**63..2**64` is rejected.
fn key_value(key: &Bound<'_, PyAny>) -> Arg<u64> {
    if key.is_exact_instance_of::<PyInt>() {
        if let Ok(k) = key.extract::<u64>() {
            return Ok(Ok(k));
        }
    }
    let ok_type = key.is_instance_of::<PyString>()
        || key.is_instance_of::<PyBytes>()
        || (key.is_instance_of::<PyInt>() && !key.is_instance_of::<pyo3::types::PyBool>());
    if !ok_type {
        return Err(PyTypeError::new_err(format!(
            "key must be an int, str or bytes, not {}",
            type_name(key)
        )));
    }
    Ok(key_arg(key).map_err(|_| Unencodable))
}

/// Nanoseconds since the Unix epoch (as `time.time_ns()`).
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl PyEventBuffer {
    /// One event, checked in the order the Python `send` always checked:
    /// name, value and ts_ns types, signs, key; `value` and `ts` default
    /// to `defaults` when absent.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        py: Python<'_>,
        op: Op,
        name: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        ts: Option<&Bound<'_, PyAny>>,
        defaults: (u64, u64),
    ) -> PyResult<bool> {
        let name = name_arg(name)?;
        let value = value.map(|v| exact_int(v, "value")).transpose()?;
        let ts = ts.map(|t| exact_int(t, "ts_ns")).transpose()?;
        let ts = match ts {
            Some(t) => int_value(t, false, op)?,
            None => Ok(defaults.1),
        };
        let value = match value {
            Some(v) => int_value(v, is_gauge(op), op)?,
            None => Ok(defaults.0),
        };
        let key = match key {
            Some(k) => key_value(k)?,
            None => Ok(0),
        };
        match (name, key, value, ts) {
            (Ok(name), Ok(key), Ok(value), Ok(ts)) => self.push(py, op, &name, key, value, ts),
            _ => self.pushed(py, self.inner.push_rejected()),
        }
    }

    /// Forwards one checked event; waits detached if the buffer is full
    /// and the policy is `block`.
    fn push(
        &self,
        py: Python<'_>,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> PyResult<bool> {
        let r = match self.inner.push(op, name, key, value, ts) {
            Err(Refused::Full(event)) => {
                let buf = &self.inner;
                let mut slot = Some(event);
                let waited = in_slices(
                    py,
                    None,
                    |until| {
                        let event = slot.take()?;
                        match buf.push_until(event, Some(until)) {
                            Err(Refused::Full(event)) => {
                                slot = Some(event);
                                None
                            }
                            r => Some(r),
                        }
                    },
                    || Ok(()),
                )?;
                waited.unwrap_or(Err(Refused::Closed))
            }
            r => r,
        };
        self.pushed(py, r)
    }

    fn pushed(&self, py: Python<'_>, r: Result<Pushed, Refused>) -> PyResult<bool> {
        match r {
            Ok(Pushed::Dropped) => Ok(false),
            Ok(_) => Ok(true),
            Err(_) => Err(shut_down(py)),
        }
    }
}

fn counter(c: &Bound<'_, PyAny>, arg: &str) -> PyResult<StdArc<crate::stats::Counter>> {
    c.cast::<PyCounter>()
        .map(|c| StdArc::clone(&c.get().inner))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be a ringstat.Counter, not {}",
                type_name(c)
            ))
        })
}

#[pymethods]
impl PyEventBuffer {
    /// A buffer of `capacity` events (>= 1) for the producer `producer_id`.
    #[new]
    #[pyo3(signature = (
        capacity, producer_id, *, drop_newest, max_frame_bytes,
        events, dropped, blocked, rejected, buffered
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        capacity: &Bound<'_, PyAny>,
        producer_id: &Bound<'_, PyAny>,
        drop_newest: bool,
        max_frame_bytes: Option<&Bound<'_, PyAny>>,
        events: &Bound<'_, PyAny>,
        dropped: &Bound<'_, PyAny>,
        blocked: &Bound<'_, PyAny>,
        rejected: &Bound<'_, PyAny>,
        buffered: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let cap = u64_arg(capacity, "capacity")
            .ok()
            .and_then(|c| usize::try_from(c).ok())
            .filter(|&c| c >= 1)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "capacity must be an int >= 1, got {}",
                    capacity
                        .repr()
                        .map_or_else(|_| type_name(capacity), |r| r.to_string())
                ))
            })?;
        let producer = u64_arg(producer_id, "producer_id")?;
        let max_frame = max_frame_bytes
            .map(|m| u64_arg(m, "max_frame_bytes"))
            .transpose()?
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let metrics = BufferMetrics {
            events: counter(events, "events")?,
            dropped: counter(dropped, "dropped")?,
            blocked: counter(blocked, "blocked")?,
            rejected: counter(rejected, "rejected")?,
            buffered: buffered
                .cast::<PyGauge>()
                .map(|g| StdArc::clone(&g.get().inner))
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "buffered must be a ringstat.Gauge, not {}",
                        type_name(buffered)
                    ))
                })?,
        };
        Ok(Self {
            inner: EventBuffer::new(cap, producer, drop_newest, max_frame, metrics),
        })
    }

    /// The producer id of the frames.
    #[getter]
    fn producer_id(&self) -> u64 {
        self.inner.producer()
    }

    /// Events in the buffer now.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// One event by op name (a `ringstat.Pipeline` method name).
    #[pyo3(
        signature = (op, name, key = Given(None), value = Given(None), ts_ns = Given(None)),
        text_signature = "($self, op, name, key=0, value=1, ts_ns=0)"
    )]
    fn send(
        &self,
        py: Python<'_>,
        op: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        key: Given<'_>,
        value: Given<'_>,
        ts_ns: Given<'_>,
    ) -> PyResult<bool> {
        let found = op
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_cow().ok().map(|s| s.into_owned()))
            .and_then(|s| OP_NAMES.iter().find(|(n, _)| *n == s))
            .map(|&(_, o)| o);
        let Some(op_v) = found else {
            let mut names: Vec<&str> = OP_NAMES.iter().map(|(n, _)| *n).collect();
            names.sort_unstable();
            return Err(PyValueError::new_err(format!(
                "unknown op {} (one of {})",
                op.repr().map_or_else(|_| type_name(op), |r| r.to_string()),
                names.join(", ")
            )));
        };
        self.event(
            py,
            op_v,
            name,
            key.0.as_ref(),
            value.0.as_ref(),
            ts_ns.0.as_ref(),
            (1, 0),
        )
    }

    /// Adds `n` to the counter `name`.
    #[pyo3(signature = (name, n = Given(None)), text_signature = "($self, name, n=1)")]
    fn count(&self, py: Python<'_>, name: &Bound<'_, PyAny>, n: Given<'_>) -> PyResult<bool> {
        self.event(py, Op::Count, name, None, n.0.as_ref(), None, (1, 0))
    }

    /// Sets the gauge `name`.
    fn set(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.event(py, Op::Set, name, None, Some(value), None, (0, 0))
    }

    /// Records an int `value` in the histogram `name`.
    fn observe(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.event(py, Op::Observe, name, None, Some(value), None, (0, 0))
    }

    /// Counts `n` events in the rate `name`.
    #[pyo3(signature = (name, n = Given(None)), text_signature = "($self, name, n=1)")]
    fn mark(&self, py: Python<'_>, name: &Bound<'_, PyAny>, n: Given<'_>) -> PyResult<bool> {
        self.event(py, Op::Mark, name, None, n.0.as_ref(), None, (1, 0))
    }

    /// Opens the session of `key`; `ts_ns` defaults to the wall clock.
    #[pyo3(signature = (name, key, ts_ns = None))]
    fn session_start(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        ts_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.session(py, Op::Start, name, key, ts_ns)
    }

    /// Closes the session of `key`; `ts_ns` defaults to the wall clock.
    #[pyo3(signature = (name, key, ts_ns = None))]
    fn session_end(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        ts_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.session(py, Op::End, name, key, ts_ns)
    }

    /// Counts `key` in the distinct counter `name`.
    fn seen(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.event(py, Op::Seen, name, Some(key), None, None, (0, 0))
    }

    /// Closes the buffer: sends raise `ShutDown`, `take` returns what is
    /// left, then raises `ShutDown`.
    fn close(&self) -> bool {
        self.inner.close()
    }

    /// Up to `max_events` events as frames `(body or None, events,
    /// settles)`, waiting at most `timeout` seconds for the first (detached);
    /// `[]` at the timeout; `ShutDown` once closed and empty.
    #[pyo3(signature = (max_events, timeout = None))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max_events: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let deadline = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => {
                Instant::now().checked_add(std::time::Duration::from_secs_f64(t.min(1e9)))
            }
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be >= 0 or None, got {t}"
                )))
            }
            _ => None,
        };
        let buf = &self.inner;
        let taken = in_slices(
            py,
            deadline,
            |until| match buf.take(max_events, Some(until)) {
                Ok(frames) if frames.is_empty() => None,
                r => Some(r),
            },
            || Ok(()),
        )?;
        let frames = match taken {
            None => Vec::new(),
            Some(Ok(frames)) => frames,
            Some(Err(_)) => return Err(shut_down(py)),
        };
        let out = PyList::empty(py);
        for f in frames {
            let body = f.body.map(|b| PyBytes::new(py, &b));
            out.append((body, f.events, f.settles))?;
        }
        Ok(out)
    }
}

impl PyEventBuffer {
    fn session(
        &self,
        py: Python<'_>,
        op: Op,
        name: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
        ts_ns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        // `None` (or absent): the wall clock, so durations survive the trip.
        let ts_ns = ts_ns.filter(|t| !t.is_none());
        let now = if ts_ns.is_none() { now_ns() } else { 0 };
        self.event(py, op, name, Some(key), None, ts_ns, (0, now))
    }
}
