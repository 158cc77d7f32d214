//! Resolving names to typed ids for the by-name methods (through the
//! core's allocation-free lookup), the `backpressure` argument, and the
//! detached waits of `flush()` and `close()`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::super::errors::type_name;
use super::super::wait::in_slices;
use super::args::{check_fork, pipeline_err};
use super::PyPipeline;
use crate::pipeline::{
    Backpressure, CounterId, DistinctConfig, DistinctId, GaugeId, HistogramId, Kind, Pipeline,
    PipelineError, RateId, SessionsConfig, SessionsId,
};
use crate::stats::{Histogram, RateConfig};
use crate::sync::StdArc;

pub(super) fn backpressure_arg(value: &Bound<'_, PyAny>) -> PyResult<Backpressure> {
    let s = value.cast::<PyString>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "backpressure must be a str, not {}",
            type_name(value)
        ))
    })?;
    match &*s.to_cow()? {
        "block" => Ok(Backpressure::Block),
        "drop_newest" => Ok(Backpressure::DropNewest),
        "overwrite_oldest" => Ok(Backpressure::OverwriteOldest),
        other => Err(PyValueError::new_err(format!(
            "backpressure must be 'block', 'drop_newest' or 'overwrite_oldest', got {other:?}"
        ))),
    }
}

pub(super) fn backpressure_name(b: Backpressure) -> &'static str {
    match b {
        Backpressure::Block => "block",
        Backpressure::DropNewest => "drop_newest",
        Backpressure::OverwriteOldest => "overwrite_oldest",
    }
}

impl PyPipeline {
    /// `flush()`: waits detached in signal slices for a flush begun now (a
    /// Ctrl-C abandons the wait; the markers are answered anyway).
    pub(super) fn flush_detached(&self, py: Python<'_>) -> PyResult<()> {
        #[cfg(unix)]
        super::aio::refuse_wait("flush()", "await AsyncPipeline.flush()")?;
        check_fork(&self.inner)?;
        let mut flush = self.inner.start_flush();
        let step = |until| flush.wait_until(Some(until)).then_some(());
        in_slices(py, None, step, || check_fork(&self.inner)).map(drop)
    }

    /// `close()`: closes, then waits detached in signal slices for the
    /// workers to drain and exit (after a Ctrl-C they go on draining).
    pub(super) fn close_detached(&self, py: Python<'_>) -> PyResult<()> {
        #[cfg(unix)]
        super::aio::refuse_wait("close()", "await AsyncPipeline.close()")?;
        check_fork(&self.inner)?;
        let step = |until| self.inner.close_until(Some(until)).then_some(());
        in_slices(py, None, step, || check_fork(&self.inner)).map(drop)
    }

    /// The id of `name`: with `config`, resolved with it (an error if
    /// `name` has another); without, as resolved before whatever its
    /// configuration, else resolved with the default one.
    fn id_of<C: Default, T>(
        &self,
        kind: Kind,
        name: &str,
        config: Option<C>,
        wrap: fn(u32) -> T,
        resolve: fn(&Pipeline, &str, C) -> Result<T, PipelineError>,
    ) -> PyResult<T> {
        if config.is_none() {
            if let Some(index) = self.inner.resolved(kind, name) {
                return Ok(wrap(index));
            }
        }
        resolve(&self.inner, name, config.unwrap_or_default()).map_err(pipeline_err)
    }

    pub(super) fn counter_id(&self, name: &str) -> PyResult<CounterId> {
        self.inner.counter(name).map_err(pipeline_err)
    }

    pub(super) fn gauge_id(&self, name: &str) -> PyResult<GaugeId> {
        self.inner.gauge(name).map_err(pipeline_err)
    }

    pub(super) fn rate_id(&self, name: &str, config: Option<RateConfig>) -> PyResult<RateId> {
        self.id_of(Kind::Rate, name, config, RateId, Pipeline::rate_with)
    }

    pub(super) fn sessions_id(
        &self,
        name: &str,
        config: Option<SessionsConfig>,
    ) -> PyResult<SessionsId> {
        self.id_of(
            Kind::Sessions,
            name,
            config,
            SessionsId,
            Pipeline::sessions_with,
        )
    }

    pub(super) fn distinct_id(
        &self,
        name: &str,
        config: Option<DistinctConfig>,
    ) -> PyResult<DistinctId> {
        self.id_of(
            Kind::Distinct,
            name,
            config,
            DistinctId,
            Pipeline::distinct_with,
        )
    }

    pub(super) fn histogram_id(&self, name: &str) -> PyResult<(HistogramId, StdArc<Histogram>)> {
        self.inner.resolved_histogram(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "histogram {name:?} is not resolved in this pipeline: call \
                 pipeline.histogram({name:?}, max_value=...) first"
            ))
        })
    }
}
