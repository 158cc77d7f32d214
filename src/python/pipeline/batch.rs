//! Batch arguments (`*_many`): a numpy array, an exact `list`/`tuple`, or
//! any other iterable, turned into [`Event`]s and sent in chunks of
//! [`CHUNK`], each chunk queued with the interpreter released.
//!
//! # Reading numpy arrays soundly
//!
//! An array's memory is read only through the buffer protocol, by CPython:
//! for each chunk, `memoryview(array)` is taken afresh, its `ndim`,
//! `shape`, `itemsize`, `format` and `c_contiguous` (CPython's own record
//! of the exported buffer, which no Python attribute of the array can
//! change) are checked, and `memoryview[start:end].tobytes()` copies the
//! chunk's bytes into a `bytes` object that this code reads as a safe
//! slice. No raw pointer is ever formed here, so nothing the object
//! controls (`__array_interface__`, `shape`, `data`, `__len__`) can make us
//! read out of bounds, and there is no `unsafe` in this module. The
//! memoryview lives only while the interpreter is held, so another thread
//! that resizes or frees the array between chunks (the interpreter is
//! released while a chunk is queued) only changes what the next
//! `memoryview` reports: a shorter or changed array raises `ValueError`
//! with `.sent`. `PyBuffer` would save the copy, but the wheel is `abi3` for
//! CPython 3.9, whose limited API lacks the buffer protocol (pyo3 0.30
//! compiles `pyo3::buffer` only for 3.11+); `memoryview` is a plain Python
//! call on every version, and the copy is one `memcpy` of 64 KiB per chunk.
//!
//! # What a batch sends
//!
//! Arrays and exact lists/tuples are finite: every element is checked
//! first, and one bad element raises before anything is sent. Any other
//! iterable (a generator, `range`, `itertools.count()`) is consumed a chunk
//! at a time, so memory stays bounded whatever its length. Every batch
//! method returns how many events it sent; an exception raised after some
//! were sent (a bad element of an iterator, a `close()` racing the batch,
//! Ctrl-C while waiting for room) carries that number as `exc.sent`. Those
//! events are applied exactly once; the others were not sent and are not
//! counted, so a caller never double counts. For iterators the sent events
//! are the first `exc.sent` elements; a close racing a batch may leave,
//! with several workers, any `exc.sent` of the last chunk's events sent.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyIterator, PyList, PyTuple, PyType};

use super::super::errors::{shown, type_name};
use super::super::wait::in_slices;
use super::args::{
    check_fork, check_fork_cached, closed_err, key_arg, seconds_to_nanos, ts_range_err,
};
use crate::pipeline::{Event, Pipeline};

/// Elements converted, and events built and sent, at a time (256 KiB of
/// events, 64 KiB of array bytes).
pub(super) const CHUNK: usize = 8192;

/// What the elements of a batch argument must be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Keys: ints in `-2**63..2**64` (negatives as two's complement), or
    /// `str`/`bytes` (hashed) in sequences.
    Key,
    /// Counts: ints in `0..2**64`.
    Count,
    /// Gauge values: ints in `-2**63..2**63` (stored as their bits).
    Signed,
    /// Histogram values: ints in `0..=max`, or floats rounded to the
    /// nearest int.
    Value(u64),
    /// Timestamps: seconds `>= 0` (ints or floats) as nanoseconds.
    Seconds,
}

/// The element type of a numpy array.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U64,
    I64,
    F64,
}

/// Where a batch argument's elements come from.
enum Src<'py> {
    /// A numpy array (an instance of `numpy.ndarray` or a subclass, by its
    /// real type), read a chunk at a time through `memoryview`.
    Array {
        obj: Bound<'py, PyAny>,
        len: usize,
        dtype: Dtype,
    },
    /// An exact `list` or `tuple` of `len` elements when the call began.
    Seq { obj: Bound<'py, PyAny>, len: usize },
    /// Any other iterable, consumed once, a chunk at a time.
    Iter(Bound<'py, PyIterator>),
    /// One value for every event (a scalar `ts`).
    Repeat(u64),
}

/// A batch argument: its source, what its elements must be, and how far
/// it has been read.
pub(super) struct Column<'py> {
    src: Src<'py>,
    want: Want,
    name: &'static str,
    /// Elements read so far.
    pos: usize,
}

/// `numpy.ndarray` if numpy is imported (an ndarray cannot exist before).
fn ndarray_type<'py>(py: Python<'py>) -> PyResult<Option<Bound<'py, PyType>>> {
    let modules = py.import("sys")?.getattr("modules")?;
    let Ok(numpy) = modules.get_item("numpy") else {
        return Ok(None);
    };
    Ok(numpy
        .getattr("ndarray")
        .ok()
        .and_then(|t| t.cast_into::<PyType>().ok()))
}

/// `true` if `obj`'s real type derives from `numpy.ndarray` (a lying
/// `__class__` does not count: such an object is just an iterable).
fn is_ndarray(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    match ndarray_type(obj.py())? {
        None => Ok(false),
        Some(nd) => obj.get_type().is_subclass(&nd),
    }
}

#[cold]
fn elem_err(name: &str, index: usize, detail: &str) -> PyErr {
    PyValueError::new_err(format!("{name}[{index}]: {detail}"))
}

/// Converts one element of a sequence.
fn convert(item: &Bound<'_, PyAny>, want: Want, name: &str, index: usize) -> PyResult<u64> {
    let type_err = || {
        PyTypeError::new_err(format!(
            "{name}[{index}] must be {}, not {}",
            match want {
                Want::Key => "an int, str or bytes",
                Want::Value(_) | Want::Seconds => "an int or float",
                Want::Count | Want::Signed => "an int",
            },
            type_name(item)
        ))
    };
    if item.is_instance_of::<pyo3::types::PyBool>() {
        return Err(type_err());
    }
    match want {
        Want::Key => key_arg(item).map_err(|e| {
            if e.is_instance_of::<PyTypeError>(item.py()) {
                type_err()
            } else {
                elem_err(name, index, "out of range (need -2**63 <= key < 2**64)")
            }
        }),
        Want::Count => item.extract::<u64>().map_err(|_| {
            if item.extract::<i128>().is_ok() {
                elem_err(
                    name,
                    index,
                    &format!("need 0 <= n < 2**64, got {}", shown(item)),
                )
            } else {
                type_err()
            }
        }),
        Want::Signed => item.extract::<i64>().map(|v| v as u64).map_err(|_| {
            if item.extract::<i128>().is_ok() {
                elem_err(
                    name,
                    index,
                    &format!("need -2**63 <= v < 2**63, got {}", shown(item)),
                )
            } else {
                type_err()
            }
        }),
        Want::Value(max) => {
            let v = if item.is_instance_of::<PyFloat>() {
                item.extract::<f64>()?
            } else if let Ok(v) = item.extract::<u64>() {
                return check_value(v as f64, Some(v), max, name, index);
            } else {
                item.extract::<f64>().map_err(|_| type_err())?
            };
            check_value(v, None, max, name, index)
        }
        Want::Seconds => {
            let secs = item.extract::<f64>().map_err(|_| type_err())?;
            seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))
        }
    }
}

/// A histogram value: an exact int, or a float rounded half away from zero.
fn check_value(v: f64, exact: Option<u64>, max: u64, name: &str, index: usize) -> PyResult<u64> {
    let rounded = match exact {
        Some(x) => x,
        None if v.is_finite() && v >= -0.5 && v.round() <= u64::MAX as f64 => v.round() as u64,
        None => {
            return Err(elem_err(
                name,
                index,
                &format!("{v} is out of the histogram's range 0..={max}"),
            ))
        }
    };
    if rounded > max {
        return Err(elem_err(
            name,
            index,
            &format!("{v} is out of the histogram's range 0..={max}"),
        ));
    }
    Ok(rounded)
}

/// The dtype a memoryview's `format` (native or `<` byte order) and
/// `itemsize` denote, if it is one we read.
fn dtype_of(format: &str, itemsize: usize) -> Option<Dtype> {
    let code = match format.as_bytes() {
        [c] | [b'@' | b'=', c] => *c,
        [b'<', c] if cfg!(target_endian = "little") => *c,
        _ => return None,
    };
    if itemsize != 8 {
        return None;
    }
    match code {
        b'Q' | b'L' => Some(Dtype::U64),
        b'q' | b'l' => Some(Dtype::I64),
        b'd' => Some(Dtype::F64),
        _ => None,
    }
}

/// The checked element `bits` of an array of `dtype`, as `want` needs it.
fn convert_raw(bits: u64, dtype: Dtype, want: Want, name: &str, i: usize) -> PyResult<u64> {
    match (dtype, want) {
        (Dtype::I64, Want::Count) if (bits as i64) < 0 => Err(elem_err(
            name,
            i,
            &format!("need 0 <= n < 2**64, got {}", bits as i64),
        )),
        (Dtype::U64, Want::Signed) if bits > i64::MAX as u64 => Err(elem_err(
            name,
            i,
            &format!("need -2**63 <= v < 2**63, got {bits}"),
        )),
        (Dtype::I64, Want::Value(max)) => match u64::try_from(bits as i64) {
            Ok(v) if v <= max => Ok(v),
            _ => Err(elem_err(
                name,
                i,
                &format!("{} is out of the histogram's range 0..={max}", bits as i64),
            )),
        },
        (Dtype::U64, Want::Value(max)) => check_value(bits as f64, Some(bits), max, name, i),
        (Dtype::F64, Want::Value(max)) => check_value(f64::from_bits(bits), None, max, name, i),
        (Dtype::F64, Want::Seconds) => {
            let secs = f64::from_bits(bits);
            seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))
        }
        (Dtype::I64, Want::Seconds) if (bits as i64) < 0 => Err(ts_range_err(bits as i64 as f64)),
        (_, Want::Seconds) => {
            seconds_to_nanos(bits as f64).ok_or_else(|| ts_range_err(bits as f64))
        }
        (Dtype::F64, _) => Err(PyTypeError::new_err(format!(
            "{name} must be a numpy array of uint64 or int64, not float64"
        ))),
        _ => Ok(bits),
    }
}

/// The `(len, dtype)` of the 1-D contiguous array `obj` as its buffer
/// reports it now, with errors naming the argument.
fn array_layout(
    mv: &Bound<'_, PyAny>,
    obj: &Bound<'_, PyAny>,
    want: Want,
    name: &str,
) -> PyResult<(usize, Dtype)> {
    let format: String = mv.getattr("format")?.extract()?;
    let itemsize: usize = mv.getattr("itemsize")?.extract()?;
    let dtype = dtype_of(&format, itemsize)
        .filter(|d| *d != Dtype::F64 || matches!(want, Want::Value(_) | Want::Seconds))
        .ok_or_else(|| {
            let accepted = match want {
                Want::Value(_) | Want::Seconds => "uint64, int64 or float64",
                _ => "uint64 or int64",
            };
            // The dtype only names the culprit in the message.
            let dtype = obj
                .getattr("dtype")
                .map_or_else(|_| format.clone(), |d| d.to_string());
            PyTypeError::new_err(format!(
                "{name} must be a numpy array of {accepted} (native byte order), got dtype {dtype}"
            ))
        })?;
    let ndim: usize = mv.getattr("ndim")?.extract()?;
    if ndim != 1 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a 1-D array, got {ndim} dimensions"
        )));
    }
    if !mv.getattr("c_contiguous")?.is_truthy()? {
        return Err(PyValueError::new_err(format!(
            "{name} must be a contiguous array: pass numpy.ascontiguousarray({name})"
        )));
    }
    let len: usize = mv.getattr("shape")?.get_item(0)?.extract()?;
    Ok((len, dtype))
}

impl<'py> Column<'py> {
    /// Reads `obj` as a batch of `want` (nothing is converted yet).
    pub(super) fn new(obj: &Bound<'py, PyAny>, want: Want, name: &'static str) -> PyResult<Self> {
        let src = if is_ndarray(obj)? {
            let py = obj.py();
            // numpy refuses a buffer for some dtypes (datetime64, ...).
            let mv = py
                .get_type::<pyo3::types::PyMemoryView>()
                .call1((obj,))
                .map_err(|e| {
                    let dtype = obj
                        .getattr("dtype")
                        .map_or_else(|_| e.to_string(), |d| d.to_string());
                    PyTypeError::new_err(format!(
                        "{name} must be a numpy array of numbers, got dtype {dtype}"
                    ))
                })?;
            let (len, dtype) = array_layout(&mv, obj, want, name)?;
            Src::Array {
                obj: obj.clone(),
                len,
                dtype,
            }
        } else if obj.is_exact_instance_of::<PyList>() || obj.is_exact_instance_of::<PyTuple>() {
            Src::Seq {
                obj: obj.clone(),
                len: obj.len()?,
            }
        } else if obj.is_instance_of::<pyo3::types::PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{name} must be a sequence or numpy array, not str"
            )));
        } else {
            Src::Iter(obj.try_iter().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{name} must be a sequence or numpy array, not {}",
                    type_name(obj)
                ))
            })?)
        };
        Ok(Self {
            src,
            want,
            name,
            pos: 0,
        })
    }

    /// `ts`: `None` (stamped when applied), a number for every event, or a
    /// batch of seconds as long as `keys`.
    pub(super) fn timestamps(
        ts: Option<&Bound<'py, PyAny>>,
        keys: &Self,
    ) -> PyResult<Option<Self>> {
        let Some(ts) = ts.filter(|t| !t.is_none()) else {
            return Ok(None);
        };
        // An array is never a scalar (numpy warns when a 1-element array is
        // converted to a float).
        let scalar = !is_ndarray(ts)? && !ts.is_instance_of::<pyo3::types::PyBool>();
        if let Some(secs) = scalar.then(|| ts.extract::<f64>().ok()).flatten() {
            let nanos = seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))?;
            return Ok(Some(Self {
                src: Src::Repeat(nanos),
                want: Want::Seconds,
                name: "ts",
                pos: 0,
            }));
        }
        let col = Self::new(ts, Want::Seconds, "ts")?;
        if let (Some(n), Some(k)) = (col.known_len(), keys.known_len()) {
            if n != k {
                return Err(len_mismatch(k, Some(n)));
            }
        }
        Ok(Some(col))
    }

    /// The number of elements, if known before reading them.
    fn known_len(&self) -> Option<usize> {
        match self.src {
            Src::Array { len, .. } | Src::Seq { len, .. } => Some(len),
            Src::Iter(_) | Src::Repeat(_) => None,
        }
    }

    /// Checks every element of a finite source (arrays, lists, tuples)
    /// without sending anything; iterators are checked as they are read.
    pub(super) fn validate(&mut self) -> PyResult<()> {
        if self.known_len().is_some() {
            let mut sink = Vec::with_capacity(CHUNK);
            while {
                sink.clear();
                self.next_chunk(CHUNK, &mut sink)?;
                sink.len() == CHUNK
            } {}
            self.pos = 0;
        }
        Ok(())
    }

    /// Appends the next at most `n` elements, converted, to `out` (fewer
    /// only at the end).
    fn next_chunk(&mut self, n: usize, out: &mut Vec<u64>) -> PyResult<()> {
        let (want, name, start) = (self.want, self.name, self.pos);
        match &self.src {
            Src::Repeat(v) => out.extend(std::iter::repeat_n(*v, n)),
            Src::Array { obj, len, dtype } => {
                let end = (start + n).min(*len);
                if start < end {
                    // A fresh buffer each chunk, checked against the first:
                    // the array may have been resized meanwhile.
                    let mv = obj
                        .py()
                        .get_type::<pyo3::types::PyMemoryView>()
                        .call1((obj,))?;
                    if array_layout(&mv, obj, want, name)? != (*len, *dtype) {
                        return Err(PyValueError::new_err(format!(
                            "{name} was resized or retyped during the call"
                        )));
                    }
                    let bytes = mv.get_item(pyo3::types::PySlice::new(
                        obj.py(),
                        start as isize,
                        end as isize,
                        1,
                    ))?;
                    let bytes = bytes.call_method0("tobytes")?;
                    let bytes = bytes.cast::<PyBytes>()?.as_bytes();
                    if bytes.len() != (end - start) * 8 {
                        return Err(PyValueError::new_err(format!(
                            "{name} changed size during the call"
                        )));
                    }
                    for (k, b) in bytes.chunks_exact(8).enumerate() {
                        let mut word = [0u8; 8];
                        word.copy_from_slice(b);
                        let bits = u64::from_ne_bytes(word);
                        out.push(convert_raw(bits, *dtype, want, name, start + k)?);
                    }
                }
                self.pos = end;
                return Ok(());
            }
            Src::Seq { obj, len } => {
                let end = (start + n).min(*len);
                // Indexed (bounds-checked) reads: the list may shrink while
                // a chunk is queued, which then raises `IndexError`.
                if let Ok(list) = obj.cast::<PyList>() {
                    for i in start..end {
                        out.push(convert(&list.get_item(i)?, want, name, i)?);
                    }
                } else {
                    for i in start..end {
                        out.push(convert(&obj.get_item(i)?, want, name, i)?);
                    }
                }
                self.pos = end;
                return Ok(());
            }
            Src::Iter(it) => {
                let mut it = it.clone();
                for k in 0..n {
                    match it.next() {
                        Some(item) => out.push(convert(&item?, want, name, start + k)?),
                        None => break,
                    }
                }
            }
        }
        self.pos = start + out.len();
        Ok(())
    }
}

#[cold]
fn len_mismatch(keys: usize, ts: Option<usize>) -> PyErr {
    PyValueError::new_err(match ts {
        Some(n) => format!(
            "ts must be None, a number, or as long as the keys ({keys}), got {n} timestamps"
        ),
        None => format!("ts must be None, a number, or as long as the keys ({keys} so far)"),
    })
}

/// Sets `exc.sent` (how many events of the batch were sent) on `e`.
#[cold]
pub(super) fn with_sent(py: Python<'_>, e: PyErr, sent: u64) -> PyErr {
    // Best effort: an exception type without a `__dict__` keeps its message.
    let _ = e.value(py).setattr("sent", sent);
    e
}

/// Sends `events` (emptying it), waiting for room detached from the
/// interpreter in slices, so Ctrl-C and a fork are noticed; adds what was
/// sent to `sent`.
fn send_events(
    py: Python<'_>,
    p: &Pipeline,
    events: &mut Vec<Event>,
    sent: &mut u64,
) -> PyResult<()> {
    let step = |until| {
        let before = events.len();
        let r = p.send_batch_until(events, Some(until));
        *sent += (before - events.len()) as u64;
        (r.is_err() || events.is_empty()).then_some(r)
    };
    match in_slices(py, None, step, || check_fork(p))? {
        Some(Err(_)) => Err(closed_err()),
        _ => Ok(()),
    }
}

/// A batch send cannot be awaited by `AsyncPipeline.send` (`aio.rs`).
fn refuse_batch() -> PyResult<()> {
    #[cfg(unix)]
    return super::aio::refuse_wait(
        "a batch method (add_many, observe_many, ...)",
        "call it through asyncio.to_thread, or use a dropping backpressure policy",
    );
    #[cfg(not(unix))]
    Ok(())
}

/// Builds an event per element of `col` (with its timestamp from `ts`) and
/// sends them a chunk at a time; returns how many were sent. An error after
/// some were sent carries their number as `exc.sent`.
pub(super) fn send_column(
    py: Python<'_>,
    p: &Pipeline,
    col: &mut Column<'_>,
    mut ts: Option<&mut Column<'_>>,
    make: impl Fn(u64) -> Event,
) -> PyResult<u64> {
    let checked = check_fork_cached(p)
        .and_then(|()| refuse_batch())
        .and_then(|()| col.validate())
        .and_then(|()| ts.as_deref_mut().map_or(Ok(()), Column::validate));
    checked.map_err(|e| with_sent(py, e, 0))?;
    let mut sent = 0u64;
    let mut vals = Vec::with_capacity(CHUNK);
    let mut stamps = Vec::with_capacity(CHUNK);
    let mut events = Vec::with_capacity(CHUNK);
    let mut run = || -> PyResult<()> {
        loop {
            vals.clear();
            col.next_chunk(CHUNK, &mut vals)?;
            if let Some(t) = ts.as_deref_mut() {
                stamps.clear();
                t.next_chunk(vals.len(), &mut stamps)?;
                if stamps.len() != vals.len() {
                    return Err(len_mismatch(col.pos, Some(t.pos)));
                }
            }
            events.extend(vals.iter().enumerate().map(|(k, &v)| match ts {
                Some(_) => make(v).at(stamps[k]),
                None => make(v),
            }));
            send_events(py, p, &mut events, &mut sent)?;
            // An endless iterable must stay interruptible.
            py.check_signals()?;
            if vals.len() < CHUNK {
                // The keys are exhausted: so must an iterator of timestamps be.
                if let Some(t) = ts.as_deref_mut() {
                    if !matches!(t.src, Src::Repeat(_)) {
                        stamps.clear();
                        t.next_chunk(1, &mut stamps)?;
                        if !stamps.is_empty() {
                            return Err(len_mismatch(col.pos, None));
                        }
                    }
                }
                return Ok(());
            }
        }
    };
    run().map(|()| sent).map_err(|e| with_sent(py, e, sent))
}
