//! The PyO3 binding layer (cargo feature `python`), built by maturin into the
//! extension module `ringstat._ringstat`.
//!
//! Thin by design: it converts types and errors and releases the GIL while
//! waiting; every algorithm lives in the core crate. The Python package
//! `python/ringstat/` re-exports what this module defines; the hand-written
//! stubs in `python/ringstat/_ringstat.pyi` describe it and are checked by
//! `mypy.stubtest`.

/// Python allocates objects 16-byte aligned, so a pyclass whose fields need
/// more (a cache-padded cell) must keep them behind a pointer: checked at
/// compile time for every pyclass.
macro_rules! assert_python_alignment {
    ($($ty:ty),+) => {
        $(const _: () = assert!(core::mem::align_of::<$ty>() <= 16, "pyclass over-aligned");)+
    };
}

#[cfg(unix)]
mod aio;
mod errors;
mod fastcall;
#[cfg(target_os = "linux")]
mod feed;
mod pipeline;
mod queue;
mod recorder;
mod ship;
#[cfg(target_os = "linux")]
mod shm;
mod stats;
mod wait;
mod wire;

use pyo3::prelude::*;

/// Native core of the `ringstat` package: lock-free queues and live
/// statistics.
#[pymodule(gil_used = false)]
fn _ringstat(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ShutDown", errors::init(py)?)?;
    m.add_class::<queue::PyQueue>()?;
    queue::add_methods(m.py())?;
    #[cfg(unix)]
    m.add_class::<aio::PyLoopWaker>()?;
    stats::register(m)?;
    pipeline::register(m)?;
    m.add_class::<recorder::PyRecorder>()?;
    #[cfg(target_os = "linux")]
    m.add_class::<shm::PySharedQueue>()?;
    wire::register(m)?;
    m.add_class::<ship::PyEventBuffer>()?;
    #[cfg(target_os = "linux")]
    feed::register(m)?;
    Ok(())
}
