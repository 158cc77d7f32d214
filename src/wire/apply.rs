//! Applying a decoded [`Frame`] to a [`Pipeline`], metrics resolved by name.

use core::fmt;
use std::collections::HashMap;

use super::Frame;
use crate::pipeline::{
    CounterId, DistinctId, Event, GaugeId, Kind, Op, Pipeline, PipelineError, RateId, SessionsId,
};
use crate::queue::Closed;

/// Why a frame was not applied. Every name is resolved before the first
/// event goes out, so on any error but [`Closed`](ApplyError::Closed)
/// nothing of the frame was sent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ApplyError {
    /// The pipeline refused to resolve a metric of the frame.
    Resolve {
        /// The metric's name.
        name: String,
        /// Why.
        source: PipelineError,
    },
    /// An `observe` on a histogram the pipeline has not resolved: a
    /// histogram needs its configuration
    /// ([`Pipeline::histogram`]) before frames can record into it.
    UnknownHistogram {
        /// The histogram's name.
        name: String,
    },
    /// A record names an index past the frame's names (a hand-built frame;
    /// decoded frames are checked).
    BadNameIndex {
        /// The index.
        index: u32,
    },
    /// The pipeline is closed: the events not sent before it closed are
    /// not sent.
    Closed,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { name, source } => write!(f, "cannot resolve metric {name:?}: {source}"),
            Self::UnknownHistogram { name } => write!(
                f,
                "histogram {name:?} is not resolved in this pipeline: resolve it with its \
                 configuration before applying frames"
            ),
            Self::BadNameIndex { index } => write!(f, "record names index {index} past the names"),
            Self::Closed => f.write_str("the pipeline is closed"),
        }
    }
}

impl std::error::Error for ApplyError {}

fn kind_of(op: Op) -> Kind {
    match op {
        Op::Count => Kind::Counter,
        Op::Set | Op::GaugeAdd => Kind::Gauge,
        Op::Observe => Kind::Histogram,
        Op::Mark => Kind::Rate,
        Op::Start | Op::End => Kind::Sessions,
        // A decoded frame never holds a flush marker; Seen is the last kind.
        Op::Seen | Op::Flush => Kind::Distinct,
    }
}

fn resolve(p: &Pipeline, kind: Kind, name: &str) -> Result<u32, ApplyError> {
    let err = |source| ApplyError::Resolve {
        name: name.to_owned(),
        source,
    };
    if let Some(i) = p.resolved(kind, name) {
        return Ok(i);
    }
    match kind {
        Kind::Counter => p.counter(name).map(|c| c.0).map_err(err),
        Kind::Gauge => p.gauge(name).map(|g| g.0).map_err(err),
        Kind::Histogram => Err(ApplyError::UnknownHistogram {
            name: name.to_owned(),
        }),
        Kind::Rate => p.rate(name).map(|r| r.0).map_err(err),
        Kind::Sessions => p.sessions(name).map(|s| s.0).map_err(err),
        Kind::Distinct => p.distinct(name).map(|d| d.0).map_err(err),
    }
}

/// Sends every event of `frame` to `pipeline`, resolving its metrics by
/// name: counters, gauges, rates, session trackers and distinct counters
/// are created with their defaults if new (or used with the configuration
/// they were resolved with); histograms must be resolved beforehand.
/// Returns how many events the pipeline's backpressure policy dropped
/// (0 under [`Backpressure::Block`](crate::Backpressure::Block)).
///
/// Like any send, the events are applied by the workers afterwards:
/// [`Pipeline::flush`] waits for them.
///
/// # Errors
///
/// [`ApplyError`]: nothing is sent, except with [`ApplyError::Closed`]
/// (the pipeline closed while sending).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Op, Pipeline};
/// use ringstat::wire::{apply, Frame, FrameBuilder};
///
/// let mut b = FrameBuilder::new();
/// b.push(Op::Count, "logins", 0, 3, 0)?;
/// let bytes = b.finish(1, 0).encode()?;
///
/// let reg = ringstat::Registry::new();
/// let p = Pipeline::new(&reg)?;
/// apply(&p, &Frame::decode(&bytes)?)?;
/// p.flush();
/// assert_eq!(reg.counter("logins", &[])?.get(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn apply(pipeline: &Pipeline, frame: &Frame) -> Result<u64, ApplyError> {
    let mut ids: HashMap<(u32, Kind), u32> = HashMap::new();
    for r in &frame.records {
        let kind = kind_of(r.op);
        if let std::collections::hash_map::Entry::Vacant(e) = ids.entry((r.name, kind)) {
            let name = frame
                .names
                .get(r.name as usize)
                .ok_or(ApplyError::BadNameIndex { index: r.name })?;
            e.insert(resolve(pipeline, kind, name)?);
        }
    }
    let mut events: Vec<Event> = frame
        .records
        .iter()
        .map(|r| {
            let id = ids[&(r.name, kind_of(r.op))];
            let ev = match r.op {
                Op::Count => Event::add(CounterId(id), r.value),
                Op::Set => Event::set(GaugeId(id), r.value as i64),
                Op::GaugeAdd => Event::gauge_add(GaugeId(id), r.value as i64),
                Op::Observe => Event::observe(crate::pipeline::HistogramId(id), r.value),
                Op::Mark => Event::mark(RateId(id), r.value),
                Op::Start => Event::start(SessionsId(id), r.key),
                Op::End => Event::end(SessionsId(id), r.key),
                Op::Seen | Op::Flush => Event::seen(DistinctId(id), r.key),
            };
            ev.with_key(r.key).at(r.ts)
        })
        .collect();
    pipeline
        .send_batch(&mut events)
        .map_err(|Closed| ApplyError::Closed)
}
