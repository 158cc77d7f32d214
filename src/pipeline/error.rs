//! Errors of the pipeline.

use core::fmt;
use std::time::Duration;

use super::Event;
use crate::stats::StatsError;

/// Everything that can go wrong building a pipeline or resolving a metric.
/// Each variant names the bad argument.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PipelineError {
    /// The total capacity must be at least the number of workers (each
    /// worker's queue holds at least one event) and at most
    /// [`queue::MAX_CAPACITY`](crate::queue::MAX_CAPACITY).
    InvalidCapacity {
        /// The rejected capacity.
        capacity: usize,
    },
    /// The number of workers must be in `1..=256`.
    InvalidWorkers {
        /// The rejected number.
        workers: usize,
    },
    /// The batch size must be at least 1.
    InvalidBatchSize {
        /// The rejected size.
        batch_size: usize,
    },
    /// A HyperLogLog precision outside `4..=16` (or two sketches of
    /// different precisions merged).
    InvalidPrecision {
        /// The rejected precision.
        precision: u8,
    },
    /// A sliding window needs at least one bucket, each at least 1 ms long.
    InvalidWindow {
        /// The rejected window.
        window: Duration,
        /// The rejected bucket count.
        buckets: usize,
    },
    /// A pipeline resolves at most `u32::MAX - 1` metrics.
    TooManyMetrics,
    /// A keyed operator already resolved under this name with another
    /// configuration.
    ConfigMismatch {
        /// The metric name.
        name: String,
    },
    /// The registry refused a metric (bad name, kind or config clash).
    Stats(StatsError),
    /// A pipeline name containing a NUL character (it names the worker
    /// threads, which the system cannot name so).
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A session tracker's `max_open` of 0 (use `None` for no limit).
    InvalidMaxOpen,
    /// The memory for the queues or a keyed operator could not be had (or
    /// its size overflows `usize`): an error instead of an abort.
    OutOfMemory {
        /// What could not be allocated.
        what: String,
    },
    /// The operating system refused to start a worker thread.
    Spawn {
        /// The system's message.
        message: String,
    },
    /// A pipeline state cannot be exported or merged (a closed or forked
    /// pipeline, or a sketch of the wrong size).
    InvalidState {
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCapacity { capacity } if *capacity > crate::queue::MAX_CAPACITY => write!(
                f,
                "pipeline capacity must be at most {}, got {capacity}",
                crate::queue::MAX_CAPACITY
            ),
            Self::InvalidCapacity { capacity } => write!(
                f,
                "pipeline capacity must be at least the number of workers, got {capacity}"
            ),
            Self::InvalidWorkers { workers } => {
                write!(f, "pipeline workers must be in 1..=256, got {workers}")
            }
            Self::InvalidBatchSize { batch_size } => {
                write!(
                    f,
                    "pipeline batch size must be at least 1, got {batch_size}"
                )
            }
            Self::InvalidPrecision { precision } => {
                write!(
                    f,
                    "HyperLogLog precision must be in 4..=16, got {precision}"
                )
            }
            Self::InvalidWindow { window, buckets } => write!(
                f,
                "a window needs at least 1 bucket of at least 1 ms, got {window:?} in {buckets}"
            ),
            Self::TooManyMetrics => f.write_str("too many metrics in one pipeline"),
            Self::ConfigMismatch { name } => {
                write!(
                    f,
                    "metric {name:?} already exists with another configuration"
                )
            }
            Self::Stats(e) => write!(f, "{e}"),
            Self::InvalidName { name } => {
                write!(
                    f,
                    "pipeline name must not contain NUL characters, got {name:?}"
                )
            }
            Self::InvalidMaxOpen => {
                f.write_str("the most open sessions (max_open) must be at least 1 (None: no limit)")
            }
            Self::OutOfMemory { what } => write!(f, "cannot allocate {what}: out of memory"),
            Self::Spawn { message } => write!(f, "cannot start a pipeline worker: {message}"),
            Self::InvalidState { reason } => write!(f, "pipeline state: {reason}"),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stats(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StatsError> for PipelineError {
    fn from(e: StatsError) -> Self {
        Self::Stats(e)
    }
}

/// A [`send`](super::Pipeline::send) that did not queue its event; the event
/// is handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The pipeline is closed: the event was not sent and is not counted.
    Closed(Event),
    /// [`Backpressure::DropNewest`](super::Backpressure::DropNewest) and the
    /// worker's queue was full: the event was dropped and counted in
    /// `ringstat_pipeline_dropped_total`.
    Dropped(Event),
    /// [`Backpressure::Block`](super::Backpressure::Block) and the worker's
    /// queue was still full at the deadline of
    /// [`try_send`](super::Pipeline::try_send) or
    /// [`send_until`](super::Pipeline::send_until): nothing was sent or
    /// counted.
    Full(Event),
}

impl SendError {
    /// The event that was not queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline, SendError};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let ev = Event::count(p.counter("c")?);
    /// p.close();
    /// assert_eq!(p.send(ev).unwrap_err().into_inner(), ev);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn into_inner(self) -> Event {
        match self {
            Self::Closed(e) | Self::Dropped(e) | Self::Full(e) => e,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("sending on a closed pipeline"),
            Self::Dropped(_) => f.write_str("pipeline queue full: event dropped (and counted)"),
            Self::Full(_) => f.write_str("pipeline queue full: event not sent"),
        }
    }
}

impl std::error::Error for SendError {}
