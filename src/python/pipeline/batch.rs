//! Batch arguments: a numpy array read in place, or any iterable converted
//! element by element, turned into [`Event`]s in fixed-size chunks and sent
//! with one `send_batch` per chunk while detached from the interpreter.
//!
//! # Why `__array_interface__` and not `PyBuffer`
//!
//! The wheel is built for the stable ABI of the interpreter that builds it
//! (`abi3`, see `Cargo.toml`): with CPython 3.9 (`make test-py-versions`)
//! the buffer protocol is not part of the limited API, so pyo3 0.30 compiles
//! `pyo3::buffer` only for 3.11+, and this crate has no build script to tell
//! the two builds apart. numpy's array interface (`arr.__array_interface__`:
//! data pointer, dtype string, shape, strides) is plain Python data on every
//! version, so one code path reads numpy arrays without copying them for
//! every wheel. It is used for `numpy.ndarray` instances only; anything else
//! (lists, tuples, `array.array`, ranges, generators) goes through the
//! element-by-element path.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyTuple};

use super::super::errors::type_name;
use super::args::{closed_err, key_arg, seconds_to_nanos, ts_range_err};
use crate::pipeline::{Event, Pipeline};

/// Events built and sent at a time (256 KiB of events).
const CHUNK: usize = 8192;

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

/// The element type of a numpy array read in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dtype {
    U64,
    I64,
    F64,
}

/// A batch argument, validated: every element converts under its [`Want`].
pub(super) enum Column<'py> {
    /// A contiguous 1-D numpy array, read in place.
    Array {
        ptr: *const u8,
        len: usize,
        dtype: Dtype,
        want: Want,
        /// Keeps the array alive (and so its memory valid) while we read it.
        _owner: Bound<'py, PyAny>,
    },
    /// The converted elements of any other iterable.
    Values(Vec<u64>),
    /// One value for every event (a scalar `ts`).
    Repeat(u64),
}

fn numpy_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    let Some(numpy) = py
        .import("sys")?
        .getattr("modules")?
        .cast_into::<PyDict>()?
        .get_item("numpy")?
    else {
        return Ok(false); // numpy never imported: this cannot be an ndarray
    };
    obj.is_instance(&numpy.getattr("ndarray")?)
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
                elem_err(name, index, &format!("need 0 <= n < 2**64, got {item}"))
            } else {
                type_err()
            }
        }),
        Want::Signed => item.extract::<i64>().map(|v| v as u64).map_err(|_| {
            if item.extract::<i128>().is_ok() {
                elem_err(
                    name,
                    index,
                    &format!("need -2**63 <= v < 2**63, got {item}"),
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

impl<'py> Column<'py> {
    /// Reads `obj` as a batch of `want`, validating every element (nothing
    /// is sent if one is bad).
    pub(super) fn new(obj: &Bound<'py, PyAny>, want: Want, name: &str) -> PyResult<Self> {
        if numpy_array(obj)? {
            return Self::array(obj, want, name);
        }
        if obj.is_instance_of::<pyo3::types::PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{name} must be a sequence or numpy array, not str"
            )));
        }
        let iter = obj.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a sequence or numpy array, not {}",
                type_name(obj)
            ))
        })?;
        let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
        for (i, item) in iter.enumerate() {
            out.push(convert(&item?, want, name, i)?);
        }
        Ok(Self::Values(out))
    }

    /// `ts`: `None` (stamped when applied), a number for every event, or a
    /// batch of seconds as long as the keys.
    pub(super) fn timestamps(ts: Option<&Bound<'py, PyAny>>, len: usize) -> PyResult<Option<Self>> {
        let Some(ts) = ts.filter(|t| !t.is_none()) else {
            return Ok(None);
        };
        if let Ok(secs) = ts.extract::<f64>() {
            if !ts.is_instance_of::<pyo3::types::PyBool>() && !numpy_array(ts)? {
                let nanos = seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))?;
                return Ok(Some(Self::Repeat(nanos)));
            }
        }
        let col = Self::new(ts, Want::Seconds, "ts")?;
        if col.len() != len {
            return Err(PyValueError::new_err(format!(
                "ts must be None, a number, or as long as the keys ({len}), got {} timestamps",
                col.len()
            )));
        }
        Ok(Some(col))
    }

    fn array(obj: &Bound<'py, PyAny>, want: Want, name: &str) -> PyResult<Self> {
        let iface = obj.getattr("__array_interface__")?;
        let typestr: String = iface.get_item("typestr")?.extract()?;
        let dtype = match typestr.as_str() {
            "<u8" => Dtype::U64,
            "<i8" => Dtype::I64,
            "<f8" if matches!(want, Want::Value(_) | Want::Seconds) => Dtype::F64,
            _ => {
                let accepted = match want {
                    Want::Value(_) | Want::Seconds => "uint64, int64 or float64",
                    _ => "uint64 or int64",
                };
                return Err(PyTypeError::new_err(format!(
                    "{name} must be a numpy array of {accepted} (native byte order), \
                     got dtype {}",
                    obj.getattr("dtype")?
                )));
            }
        };
        let shape = iface.get_item("shape")?.cast_into::<PyTuple>()?;
        if shape.len() != 1 {
            return Err(PyValueError::new_err(format!(
                "{name} must be a 1-D array, got {} dimensions",
                shape.len()
            )));
        }
        let len: usize = shape.get_item(0)?.extract()?;
        let strides = iface.get_item("strides")?;
        if !strides.is_none() {
            let s: Vec<isize> = strides.extract()?;
            if s != [8] && len > 1 {
                return Err(PyValueError::new_err(format!(
                    "{name} must be a contiguous array (strides {s:?}): \
                     pass numpy.ascontiguousarray({name})"
                )));
            }
        }
        let (addr, _readonly): (usize, bool) = iface.get_item("data")?.extract()?;
        let col = Self::Array {
            ptr: addr as *const u8,
            len,
            dtype,
            want,
            _owner: obj.clone(),
        };
        col.validate(name)?;
        Ok(col)
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Array { len, .. } => *len,
            Self::Values(v) => v.len(),
            Self::Repeat(_) => usize::MAX,
        }
    }

    /// The raw 8 bytes of element `i` of an array, as `u64`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the data pointer of a `Column::Array` of `len` elements
    /// that is still alive, and `i < len`.
    #[inline]
    unsafe fn raw(ptr: *const u8, i: usize) -> u64 {
        // SAFETY: per the contract, `ptr` is the data pointer numpy reported
        // for a contiguous 1-D array of `len` 8-byte elements and `i < len`;
        // the column's `_owner` holds a reference to the array, so its memory
        // stays allocated (numpy refuses to resize an array others
        // reference). `read_unaligned`: numpy arrays may be unaligned.
        unsafe { ptr.add(i * 8).cast::<u64>().read_unaligned() }
    }

    fn validate(&self, name: &str) -> PyResult<()> {
        let Self::Array {
            ptr,
            len,
            dtype,
            want,
            ..
        } = *self
        else {
            return Ok(());
        };
        for i in 0..len {
            // SAFETY: `ptr`/`len` come from this live array column; `i < len`.
            let bits = unsafe { Self::raw(ptr, i) };
            match (dtype, want) {
                (Dtype::I64, Want::Count) if (bits as i64) < 0 => {
                    return Err(elem_err(
                        name,
                        i,
                        &format!("need 0 <= n < 2**64, got {}", bits as i64),
                    ));
                }
                (Dtype::U64, Want::Signed) if bits > i64::MAX as u64 => {
                    return Err(elem_err(
                        name,
                        i,
                        &format!("need -2**63 <= v < 2**63, got {bits}"),
                    ));
                }
                (Dtype::I64, Want::Value(max)) => {
                    check_value(
                        bits as i64 as f64,
                        u64::try_from(bits as i64).ok(),
                        max,
                        name,
                        i,
                    )
                    .map_err(|_| {
                        elem_err(
                            name,
                            i,
                            &format!("{} is out of the histogram's range 0..={max}", bits as i64),
                        )
                    })?;
                }
                (Dtype::U64, Want::Value(max)) => {
                    check_value(bits as f64, Some(bits), max, name, i)?;
                }
                (Dtype::F64, Want::Value(max)) => {
                    check_value(f64::from_bits(bits), None, max, name, i)?;
                }
                (Dtype::F64, Want::Seconds) => {
                    let secs = f64::from_bits(bits);
                    seconds_to_nanos(secs).ok_or_else(|| ts_range_err(secs))?;
                }
                (Dtype::I64, Want::Seconds) if (bits as i64) < 0 => {
                    return Err(ts_range_err(bits as i64 as f64));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Element `i`, converted (the column was validated).
    #[inline]
    pub(super) fn get(&self, i: usize) -> u64 {
        match self {
            Self::Values(v) => v[i],
            Self::Repeat(v) => *v,
            Self::Array {
                ptr,
                len,
                dtype,
                want,
                ..
            } => {
                assert!(i < *len, "index {i} out of bounds of a column of {len}");
                // SAFETY: `ptr`/`len` come from this live array column, and
                // the assert above checked `i < len`.
                let bits = unsafe { Self::raw(*ptr, i) };
                match (dtype, want) {
                    (Dtype::F64, Want::Seconds) => {
                        seconds_to_nanos(f64::from_bits(bits)).unwrap_or(1)
                    }
                    (Dtype::F64, _) => f64::from_bits(bits).round() as u64,
                    (_, Want::Seconds) => bits.saturating_mul(1_000_000_000).max(1),
                    _ => bits,
                }
            }
        }
    }
}

/// Builds an event per element of `col` (with its timestamp from `ts`) and
/// sends them in chunks, detached while each chunk is queued.
pub(super) fn send_column(
    py: Python<'_>,
    p: &Pipeline,
    col: &Column<'_>,
    ts: Option<&Column<'_>>,
    make: impl Fn(u64) -> Event,
) -> PyResult<()> {
    let len = col.len();
    let mut events = Vec::with_capacity(len.min(CHUNK));
    let mut start = 0;
    while start < len {
        let end = (start + CHUNK).min(len);
        events.extend((start..end).map(|i| {
            let ev = make(col.get(i));
            match ts {
                Some(t) => ev.at(t.get(i)),
                None => ev,
            }
        }));
        let sent = py.detach(|| p.send_batch(&mut events));
        if sent.is_err() {
            return Err(closed_err());
        }
        events.clear();
        start = end;
    }
    Ok(())
}
