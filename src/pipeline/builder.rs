//! [`PipelineBuilder`]: configuration and start-up of a [`Pipeline`].

use std::time::Duration;

use super::shared::{lock, Own, Shared, Table};
use super::*;
use crate::queue::Queue;
use crate::stats::{Clock, SystemClock};
use crate::sync::{Condvar, StdArc};

/// Configures and starts a [`Pipeline`]; from [`Pipeline::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PipelineBuilder {
    registry: Registry,
    capacity: usize,
    workers: usize,
    batch_size: usize,
    policy: Backpressure,
    clock: Option<StdArc<dyn Clock>>,
    name: String,
    refresh: Duration,
}

impl PipelineBuilder {
    /// The defaults (see [`Pipeline::builder`]).
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            registry: registry.clone(),
            capacity: DEFAULT_CAPACITY,
            workers: 2,
            batch_size: DEFAULT_BATCH_SIZE,
            policy: Backpressure::Block,
            clock: None,
            name: "default".to_owned(),
            refresh: Duration::from_secs(1),
        }
    }

    /// Total events the queues hold (split evenly over the workers, rounded
    /// up). Default [`DEFAULT_CAPACITY`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::builder(&ringstat::Registry::new())
    ///     .capacity(8)
    ///     .workers(2)
    ///     .build()?;
    /// assert_eq!(p.capacity(), 8);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Number of worker threads (`1..=256`). Default: 2.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::builder(&ringstat::Registry::new())
    ///     .workers(3)
    ///     .build()?;
    /// assert_eq!(p.workers(), 3);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Most events a worker drains and applies at once. Default
    /// [`DEFAULT_BATCH_SIZE`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::builder(&ringstat::Registry::new())
    ///     .batch_size(64)
    ///     .build()?;
    /// # drop(p);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// What a send does when the queue is full. Default
    /// [`Backpressure::Block`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Backpressure, Pipeline};
    /// let p = Pipeline::builder(&ringstat::Registry::new())
    ///     .backpressure(Backpressure::DropNewest)
    ///     .build()?;
    /// assert_eq!(p.backpressure(), Backpressure::DropNewest);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn backpressure(mut self, policy: Backpressure) -> Self {
        self.policy = policy;
        self
    }

    /// The clock for events without a timestamp and for sliding windows.
    /// Default: a [`SystemClock`] started at build. Give the registry the
    /// same clock ([`Registry::with_clock`]) to make rates agree.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ringstat::stats::{ManualClock, Registry};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let reg = Registry::with_clock(clock.clone());
    /// let p = ringstat::pipeline::Pipeline::builder(&reg).clock(clock).build()?;
    /// assert_eq!(p.now(), 0);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn clock(mut self, clock: StdArc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The value of the `pipeline` label on the pipeline's own metrics (and
    /// the worker threads' name prefix). Default `"default"`.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::Registry::new();
    /// let p = ringstat::pipeline::Pipeline::builder(&reg).name("ingest").build()?;
    /// # drop(p);
    /// assert!(reg.counter("ringstat_pipeline_applied_total", &[("pipeline", "ingest")]).is_ok());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// How often worker 0 refreshes the `{name}_distinct*` gauges (and the
    /// longest an idle worker waits before refreshing the depth gauge).
    /// Default 1 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = ringstat::pipeline::Pipeline::builder(&ringstat::Registry::new())
    ///     .refresh_interval(Duration::from_millis(100))
    ///     .build()?;
    /// # drop(p);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// Registers the pipeline's own metrics and starts the workers.
    ///
    /// # Errors
    ///
    /// [`PipelineError::InvalidWorkers`], [`PipelineError::InvalidCapacity`],
    /// [`PipelineError::InvalidBatchSize`], [`PipelineError::InvalidName`],
    /// [`PipelineError::OutOfMemory`], [`PipelineError::Stats`] if the
    /// registry refuses the pipeline's metric names, [`PipelineError::Spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Pipeline, PipelineError};
    /// let reg = ringstat::Registry::new();
    /// assert!(matches!(
    ///     Pipeline::builder(&reg).workers(0).build(),
    ///     Err(PipelineError::InvalidWorkers { workers: 0 })
    /// ));
    /// ```
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        let workers = self.workers;
        if !(1..=256).contains(&workers) {
            return Err(PipelineError::InvalidWorkers { workers });
        }
        if self.capacity < workers || self.capacity > crate::queue::MAX_CAPACITY {
            return Err(PipelineError::InvalidCapacity {
                capacity: self.capacity,
            });
        }
        if self.batch_size == 0 {
            return Err(PipelineError::InvalidBatchSize {
                batch_size: self.batch_size,
            });
        }
        if self.name.contains('\0') {
            return Err(PipelineError::InvalidName { name: self.name });
        }
        let per_worker = self.capacity.div_ceil(workers);
        let mut queues = Vec::new();
        queues
            .try_reserve_exact(workers)
            .map_err(|_| out_of_memory(self.capacity))?;
        for _ in 0..workers {
            // Fallible: a capacity too large for memory is an error, not an
            // abort.
            queues.push(Queue::try_new(per_worker).map_err(|_| out_of_memory(self.capacity))?);
        }
        let reg = &self.registry;
        let labels = [("pipeline", self.name.as_str())];
        let own = Own {
            received: reg.counter("ringstat_pipeline_received_total", &labels)?,
            applied: reg.counter("ringstat_pipeline_applied_total", &labels)?,
            applied_rate: reg.rate("ringstat_pipeline_applied", &labels, RateConfig::default())?,
            dropped: reg.counter("ringstat_pipeline_dropped_total", &labels)?,
            rejected: reg.counter("ringstat_pipeline_rejected_total", &labels)?,
            depth: reg.gauge("ringstat_pipeline_queue_depth", &labels)?,
        };
        let shared = Arc::new(Shared {
            queues: queues.into_boxed_slice(),
            policy: self.policy,
            batch_size: self.batch_size,
            refresh: self.refresh,
            registry: self.registry.clone(),
            clock: self
                .clock
                .unwrap_or_else(|| StdArc::new(SystemClock::new())),
            own,
            table: Mutex::new(Table::default()),
            flush_serial: Mutex::new(0),
            flush_progress: Mutex::new(vec![0; workers]),
            flush_cv: Condvar::new(),
            progress_wakers: Mutex::new(Vec::new()),
            pid: std::process::id(),
        });
        let pipeline = Pipeline {
            shared: Arc::clone(&shared),
            handles: Mutex::new(Vec::with_capacity(workers)),
            capacity: self.capacity,
        };
        for i in 0..workers {
            let s = Arc::clone(&shared);
            let name = format!("ringstat-{}-{i}", self.name);
            match crate::sync::spawn_named(name, move || worker::run(&s, i)) {
                Ok(h) => lock(&pipeline.handles).push(h),
                Err(e) => {
                    // The workers never started count as exited, so closing
                    // waits only for those started; dropping the pipeline
                    // closes and joins them.
                    for j in i..workers {
                        shared.flush_done(j, u64::MAX);
                    }
                    return Err(PipelineError::Spawn {
                        message: e.to_string(),
                    });
                }
            }
        }
        Ok(pipeline)
    }
}

#[cold]
fn out_of_memory(capacity: usize) -> PipelineError {
    PipelineError::OutOfMemory {
        what: format!("pipeline queues of total capacity {capacity}"),
    }
}
