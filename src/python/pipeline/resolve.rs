//! Resolving names to typed ids (with the cache the string methods use),
//! the `backpressure` argument, and detached waits.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, MutexGuard, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::super::errors::type_name;
use super::args::{check_fork, pipeline_err};
use super::{PyPipeline, SIGNAL_SLICE};
use crate::pipeline::{
    Backpressure, CounterId, DistinctConfig, DistinctId, GaugeId, HistogramId, Pipeline, RateId,
    SessionsConfig, SessionsId,
};
use crate::stats::{Histogram, RateConfig};

/// The ids resolved for one name, by kind (the string methods' cache).
#[derive(Default, Clone)]
pub(super) struct Ids {
    pub(super) counter: Option<CounterId>,
    pub(super) gauge: Option<GaugeId>,
    pub(super) histogram: Option<(HistogramId, Arc<Histogram>)>,
    pub(super) rate: Option<RateId>,
    pub(super) sessions: Option<SessionsId>,
    pub(super) distinct: Option<DistinctId>,
}

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

/// Runs `work` on a helper thread and waits for it detached, waking every
/// [`SIGNAL_SLICE`] to check for signals (so Ctrl-C interrupts the wait;
/// the work itself then completes in the background).
pub(super) fn wait_detached(
    py: Python<'_>,
    p: &Arc<Pipeline>,
    what: &str,
    work: fn(&Pipeline),
) -> PyResult<()> {
    check_fork(p)?;
    let (tx, rx) = mpsc::channel::<()>();
    let p = Arc::clone(p);
    std::thread::Builder::new()
        .name(format!("ringstat-{what}"))
        .spawn(move || {
            work(&p);
            let _ = tx.send(());
        })
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("cannot {what}: {e}")))?;
    let mut rx = rx;
    loop {
        let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_SLICE), rx));
        rx = back;
        match got {
            Err(mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
            // Done (or the helper panicked, which Rust reported on stderr).
            _ => return Ok(()),
        }
    }
}

impl PyPipeline {
    fn names(&self) -> MutexGuard<'_, HashMap<String, Ids>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached<T>(&self, name: &str, pick: impl Fn(&Ids) -> Option<T>) -> Option<T> {
        self.names().get(name).and_then(pick)
    }

    pub(super) fn remember(&self, name: String, set: impl FnOnce(&mut Ids)) {
        set(self.names().entry(name).or_default());
    }

    pub(super) fn counter_id(&self, name: String) -> PyResult<CounterId> {
        if let Some(id) = self.cached(&name, |i| i.counter) {
            return Ok(id);
        }
        let id = self.inner.counter(&name).map_err(pipeline_err)?;
        self.remember(name, |i| i.counter = Some(id));
        Ok(id)
    }

    pub(super) fn gauge_id(&self, name: String) -> PyResult<GaugeId> {
        if let Some(id) = self.cached(&name, |i| i.gauge) {
            return Ok(id);
        }
        let id = self.inner.gauge(&name).map_err(pipeline_err)?;
        self.remember(name, |i| i.gauge = Some(id));
        Ok(id)
    }

    pub(super) fn rate_id(&self, name: String, config: Option<RateConfig>) -> PyResult<RateId> {
        if config.is_none() {
            if let Some(id) = self.cached(&name, |i| i.rate) {
                return Ok(id);
            }
        }
        let id = self
            .inner
            .rate_with(&name, config.unwrap_or_default())
            .map_err(pipeline_err)?;
        self.remember(name, |i| i.rate = Some(id));
        Ok(id)
    }

    pub(super) fn sessions_id(
        &self,
        name: String,
        config: Option<SessionsConfig>,
    ) -> PyResult<SessionsId> {
        if config.is_none() {
            if let Some(id) = self.cached(&name, |i| i.sessions) {
                return Ok(id);
            }
        }
        let id = self
            .inner
            .sessions_with(&name, config.unwrap_or_default())
            .map_err(pipeline_err)?;
        self.remember(name, |i| i.sessions = Some(id));
        Ok(id)
    }

    pub(super) fn distinct_id(
        &self,
        name: String,
        config: Option<DistinctConfig>,
    ) -> PyResult<DistinctId> {
        if config.is_none() {
            if let Some(id) = self.cached(&name, |i| i.distinct) {
                return Ok(id);
            }
        }
        let id = self
            .inner
            .distinct_with(&name, config.unwrap_or_default())
            .map_err(pipeline_err)?;
        self.remember(name, |i| i.distinct = Some(id));
        Ok(id)
    }

    pub(super) fn histogram_id(&self, name: &str) -> PyResult<(HistogramId, Arc<Histogram>)> {
        self.cached(name, |i| i.histogram.clone()).ok_or_else(|| {
            PyValueError::new_err(format!(
                "histogram {name:?} is not resolved in this pipeline: call \
                 pipeline.histogram({name:?}, max_value=...) first"
            ))
        })
    }
}
