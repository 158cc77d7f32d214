//! Event frames for Python (`src/wire/`): encode, decode, read the header,
//! apply to a pipeline. Converts and forwards; the format lives in the core.
//!
//! An event is a tuple `(op, name, key, value, ts_ns)`: `op` one of the
//! pipeline's by-name methods (`"count"`, `"set"`, `"gauge_add"`,
//! `"observe"`, `"mark"`, `"session_start"`, `"session_end"`, `"seen"`),
//! `key` an int (or a str/bytes, hashed as the pipeline hashes keys),
//! `value` an int (signed for gauges), `ts_ns` nanoseconds (0: when applied).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::errors::type_name;
use super::pipeline::{check_fork, key_arg, PipelineClosed, PyPipeline};
use super::stats::{i64_arg, u64_arg};
use crate::pipeline::Op;
use crate::wire::{self, ApplyError, Frame, FrameBuilder, FrameError as CoreFrameError};

pyo3::create_exception!(
    ringstat,
    FrameError,
    PyValueError,
    "Bytes that are not a valid ringstat event frame (truncated, foreign, another version), \
     or events that cannot be encoded."
);

pyo3::create_exception!(
    ringstat,
    StateError,
    PyValueError,
    "Bytes that are not a valid ringstat registry state (truncated, foreign, another \
     version, a field out of range)."
);

/// A registry state's decoding error as `StateError`.
pub(crate) fn state_err(e: &wire::StateError) -> PyErr {
    StateError::new_err(e.to_string())
}

/// Adds the frame functions, `FrameError` and `StateError` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FrameError", m.py().get_type::<FrameError>())?;
    m.add("StateError", m.py().get_type::<StateError>())?;
    m.add("STATE_VERSION", wire::STATE_VERSION)?;
    m.add("FRAME_VERSION", wire::FRAME_VERSION)?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(decode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(frame_header, m)?)?;
    m.add_function(wrap_pyfunction!(apply_frame, m)?)?;
    Ok(())
}

fn frame_err(e: &CoreFrameError) -> PyErr {
    FrameError::new_err(e.to_string())
}

pub(crate) const OP_NAMES: [(&str, Op); 8] = [
    ("count", Op::Count),
    ("set", Op::Set),
    ("gauge_add", Op::GaugeAdd),
    ("observe", Op::Observe),
    ("mark", Op::Mark),
    ("session_start", Op::Start),
    ("session_end", Op::End),
    ("seen", Op::Seen),
];

fn op_arg(v: &Bound<'_, PyAny>, i: usize) -> PyResult<Op> {
    let s = v.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("event {i}: op must be a str, not {}", type_name(v)))
    })?;
    let s = s.to_cow()?;
    OP_NAMES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|&(_, op)| op)
        .ok_or_else(|| {
            let names: Vec<&str> = OP_NAMES.iter().map(|(n, _)| *n).collect();
            PyValueError::new_err(format!(
                "event {i}: unknown op {s:?} (one of {})",
                names.join(", ")
            ))
        })
}

fn op_name(op: Op) -> &'static str {
    OP_NAMES
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(n, _)| *n)
}

fn event_err(i: usize, e: PyErr, py: Python<'_>) -> PyErr {
    let new = if e.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(format!("event {i}: {}", e.value(py)))
    } else {
        PyValueError::new_err(format!("event {i}: {}", e.value(py)))
    };
    new.set_cause(py, Some(e));
    new
}

/// `encode_frame(producer, sequence, events) -> bytes`.
#[pyfunction]
fn encode_frame<'py>(
    py: Python<'py>,
    producer: &Bound<'py, PyAny>,
    sequence: &Bound<'py, PyAny>,
    events: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let producer = u64_arg(producer, "producer")?;
    let sequence = u64_arg(sequence, "sequence")?;
    let mut b = FrameBuilder::new();
    for (i, item) in events.try_iter()?.enumerate() {
        let item = item?;
        let t = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!(
                "event {i}: expected a tuple (op, name, key, value, ts_ns), not {}",
                type_name(&item)
            ))
        })?;
        if t.len() != 5 {
            return Err(PyValueError::new_err(format!(
                "event {i}: expected 5 items (op, name, key, value, ts_ns), got {}",
                t.len()
            )));
        }
        let op = op_arg(&t.get_item(0)?, i)?;
        let name_obj = t.get_item(1)?;
        let name = name_obj.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "event {i}: name must be a str, not {}",
                type_name(&name_obj)
            ))
        })?;
        let key = key_arg(&t.get_item(2)?).map_err(|e| event_err(i, e, py))?;
        let v = t.get_item(3)?;
        let value = if matches!(op, Op::Set | Op::GaugeAdd) {
            i64_arg(&v, "value").map(|x| x as u64)
        } else {
            u64_arg(&v, "value")
        }
        .map_err(|e| event_err(i, e, py))?;
        let ts = u64_arg(&t.get_item(4)?, "ts_ns").map_err(|e| event_err(i, e, py))?;
        b.push(op, &name.to_cow()?, key, value, ts)
            .map_err(|e| FrameError::new_err(format!("event {i}: {e}")))?;
    }
    let bytes = b
        .finish(producer, sequence)
        .encode()
        .map_err(|e| frame_err(&e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// `decode_frame(data) -> (producer, sequence, events)`.
#[pyfunction]
fn decode_frame<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let f = Frame::decode(data).map_err(|e| frame_err(&e))?;
    let events = PyList::empty(py);
    for r in &f.records {
        let name = &f.names[r.name as usize];
        let value = if matches!(r.op, Op::Set | Op::GaugeAdd) {
            (r.value as i64).into_pyobject(py)?.into_any()
        } else {
            r.value.into_pyobject(py)?.into_any()
        };
        events.append((op_name(r.op), name, r.key, value, r.ts))?;
    }
    (f.producer, f.sequence, events).into_pyobject(py)
}

/// `frame_header(data) -> (producer, sequence)`.
#[pyfunction]
fn frame_header(data: &[u8]) -> PyResult<(u64, u64)> {
    let h = wire::peek_header(data).map_err(|e| frame_err(&e))?;
    Ok((h.producer, h.sequence))
}

/// `apply_frame(pipeline, data) -> (producer, sequence, events)`: decodes
/// and sends every event, detached (a full queue may block).
#[pyfunction]
fn apply_frame(
    py: Python<'_>,
    pipeline: &Bound<'_, PyPipeline>,
    data: &[u8],
) -> PyResult<(u64, u64, usize)> {
    let p = pipeline.get().core();
    check_fork(p)?;
    let f = Frame::decode(data).map_err(|e| frame_err(&e))?;
    py.detach(|| wire::apply(p, &f)).map_err(|e| match e {
        ApplyError::Closed => {
            PipelineClosed::new_err("the pipeline is closed: the frame was not (fully) applied")
        }
        e => PyValueError::new_err(e.to_string()),
    })?;
    Ok((f.producer, f.sequence, f.records.len()))
}
