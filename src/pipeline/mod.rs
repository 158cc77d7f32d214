//! The event pipeline: typed events -> per-worker [`Queue`](crate::queue::Queue)s -> native
//! worker threads -> the [`Registry`]'s live statistics.
//!
//! A producer resolves each metric once to a small `Copy` handle
//! ([`CounterId`], [`SessionsId`], ...), then sends 32-byte [`Event`]s:
//! no string lookup and no lock on the hot path. Worker threads drain their
//! queue in batches and fold the events into the registry's lock-free
//! counters, gauges, histograms and rates; anyone reads the numbers live
//! through the registry.
//!
//! # Routing and keyed state
//!
//! Each worker owns one bounded queue. Keyed events ([`Event::start`],
//! [`Event::end`], [`Event::seen`], or any event given a key with
//! [`Event::with_key`]) go to worker `hash(key) % workers`, so the per-key
//! state (open sessions, HyperLogLog partials) lives in exactly one worker
//! and is never locked. Other events go to the worker picked by the sending
//! thread. Hence the order of one producer's events is kept per key and,
//! for unkeyed events, per producer; events of different producers are not
//! ordered.
//!
//! # Guarantees
//!
//! - **flush**: [`Pipeline::flush`] returns once every event whose `send`
//!   returned before `flush` was called is applied (or counted as dropped
//!   by the overwrite policy). It does not wait for sends that are still in
//!   progress. Concurrent flushes each wait for their own marker.
//!   [`Pipeline::flush_until`] and [`Flush::wait_until`] give up at a
//!   deadline; a flush resumed with `wait_until` keeps its guarantee.
//! - **close**: [`Pipeline::close`] (and dropping the pipeline) stops
//!   accepting events, lets the workers drain everything already queued,
//!   and joins them. A send that races with close either is applied or fails
//!   with [`SendError::Closed`] handing the event back: nothing is lost.
//! - **drops**: only the [`Backpressure::DropNewest`] and
//!   [`Backpressure::OverwriteOldest`] policies drop, and every drop is
//!   counted. After close: `received == applied + dropped + rejected`
//!   (see [`PipelineStats`]).
//! - **batches**: [`Pipeline::send_batch`] and
//!   [`send_batch_until`](Pipeline::send_batch_until) leave exactly the
//!   events they did not send in the vector: the others are applied once.
//! - **fork**: a pipeline belongs to the process that built it. In a forked
//!   child ([`Pipeline::is_forked_copy`]) flush returns at once, events sent
//!   are never applied and close only closes the copy; the parent is not
//!   affected. Build a new pipeline in the child.
//! - **units**: timestamps are nanoseconds; session durations are recorded
//!   in whole milliseconds; distinct counts have relative standard error
//!   `1.04 / sqrt(2^precision)` (1.63 % by default, see [`HyperLogLog`]).
//!
//! # The pipeline's own metrics
//!
//! Registered in the registry with the label `pipeline="<name>"` (see
//! [`PipelineBuilder::name`], default `"default"`):
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `ringstat_pipeline_received_total` | counter | events accepted by a send (queued, or dropped by `DropNewest`) |
//! | `ringstat_pipeline_applied_total` | counter | events applied by the workers |
//! | `ringstat_pipeline_dropped_total` | counter | events dropped by a full queue (`DropNewest`) or displaced (`OverwriteOldest`) |
//! | `ringstat_pipeline_rejected_total` | counter | events naming a metric this pipeline does not have (a handle of another pipeline) |
//! | `ringstat_pipeline_queue_depth` | gauge | events waiting in the queues, refreshed by the workers after each batch |
//! | `ringstat_pipeline_applied` | rate | applied events per second over the last minute |
//!
//! Each session tracker and distinct counter registers its own metrics too
//! (see [`Pipeline::sessions`] and [`Pipeline::distinct`]).
//!
//! # Examples
//!
//! ```
//! use ringstat::pipeline::{Event, Pipeline};
//! use ringstat::Registry;
//!
//! let registry = Registry::new();
//! let pipeline = Pipeline::builder(&registry).workers(2).capacity(1024).build()?;
//! let logins = pipeline.counter("logins")?;
//! let online = pipeline.sessions("online")?;
//! let users = pipeline.distinct("users")?;
//!
//! for user in 0..100u64 {
//!     pipeline.send(Event::count(logins))?;
//!     pipeline.send(Event::start(online, user).at(1_000_000_000))?;
//!     pipeline.send(Event::seen(users, user))?;
//! }
//! pipeline.send(Event::end(online, 7).at(61_000_000_000))?;
//! pipeline.flush();
//!
//! assert_eq!(registry.counter("logins", &[])?.get(), 100);
//! assert_eq!(registry.gauge("online_open", &[])?.get(), 99);
//! assert!((pipeline.distinct_count(users) - 100.0).abs() < 3.0);
//! pipeline.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod error;
mod event;
mod hash;
mod hll;
mod keyed;
mod resolve;
mod sender;
mod shared;
mod state;
mod task;
mod worker;

use std::time::Instant;

pub use builder::PipelineBuilder;
pub use error::{PipelineError, SendError};
pub use event::{CounterId, DistinctId, Event, GaugeId, HistogramId, Op, RateId, SessionsId};
pub use hash::hash_key;
pub use hll::{HyperLogLog, MAX_PRECISION, MIN_PRECISION};
pub use keyed::{DistinctConfig, SessionsConfig};
pub use sender::Sender;
pub use state::{DistinctState, PipelineState, SessionsState};
pub use task::FlushTask;

use crate::queue::Closed;
use crate::stats::{HistogramConfig, RateConfig, Registry};
use crate::sync::{thread, Arc, Mutex, StdArc};
pub(crate) use event::Kind;
use keyed::{DistinctShared, SessionsShared};
use shared::{lock, Shared, Target};

/// What a send does when its worker's queue is full. Chosen at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backpressure {
    /// Wait for room (the default): nothing is ever dropped.
    #[default]
    Block,
    /// Drop the event being sent, count it, and return
    /// [`SendError::Dropped`].
    DropNewest,
    /// Make room by discarding the oldest queued event of that worker,
    /// count it, and queue the new one (lossy telemetry mode).
    OverwriteOldest,
}

/// The default total queue capacity.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// The default batch a worker drains at once.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// Counts of a pipeline's own metrics at one moment (each read separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipelineStats {
    /// Events accepted by a send (queued, or dropped by `DropNewest`).
    pub received: u64,
    /// Events applied by the workers.
    pub applied: u64,
    /// Events dropped by a full queue or displaced by an overwrite.
    pub dropped: u64,
    /// Events naming a metric this pipeline does not have.
    pub rejected: u64,
    /// Events waiting in the queues now.
    pub queue_depth: u64,
}

/// A flush in progress ([`Pipeline::start_flush`]): waited for in steps
/// with [`wait_until`](Flush::wait_until), so a caller can check for
/// cancellation between steps without losing the flush's guarantee.
#[must_use = "a flush is only waited for by `wait_until`"]
pub struct Flush<'a> {
    shared: &'a Shared,
    ticket: u64,
    /// Queues `..pushed` hold this flush's marker.
    pushed: usize,
}

impl core::fmt::Debug for Flush<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Flush")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl Flush<'_> {
    /// Waits for the flush at most until `deadline` (`None`: as long as it
    /// takes); `true` once every event whose send returned before
    /// [`start_flush`](Pipeline::start_flush) is applied (or counted as
    /// displaced), the gauges refreshed. After `true`, later calls return
    /// `true` at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let mut flush = p.start_flush();
    /// assert!(flush.wait_until(None));
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        self.shared
            .flush_until(self.ticket, &mut self.pushed, deadline)
    }
}

/// The event pipeline: bounded per-worker queues drained by worker threads
/// into a [`Registry`]. See the [module docs](self) for routing, guarantees
/// and the metrics it registers.
///
/// `Pipeline` is `Send + Sync`: share it by reference (or in an `Arc`), or
/// hand producers a [`Sender`] each. Dropping it closes it
/// ([`close`](Pipeline::close)).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Event, Pipeline};
///
/// let reg = ringstat::Registry::new();
/// let p = Pipeline::new(&reg)?;
/// let logins = p.counter("logins")?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..1000 {
///                 p.send(Event::count(logins)).unwrap();
///             }
///         });
///     }
/// });
/// p.close();
/// assert_eq!(reg.counter("logins", &[])?.get(), 4000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pipeline {
    shared: Arc<Shared>,
    /// The workers not yet joined; emptied (under this lock) by `close`.
    handles: Mutex<Vec<thread::JoinHandle<()>>>,
    capacity: usize,
}

impl Pipeline {
    /// A builder with the defaults: 2 workers, capacity
    /// [`DEFAULT_CAPACITY`], batches of [`DEFAULT_BATCH_SIZE`],
    /// [`Backpressure::Block`], the system clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::builder(&ringstat::Registry::new()).build()?;
    /// assert_eq!(p.workers(), 2);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn builder(registry: &Registry) -> PipelineBuilder {
        PipelineBuilder::new(registry)
    }

    /// A pipeline with the defaults of [`builder`](Pipeline::builder).
    ///
    /// # Errors
    ///
    /// As [`PipelineBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert!(!p.is_closed());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn new(registry: &Registry) -> Result<Self, PipelineError> {
        Self::builder(registry).build()
    }

    // Resolving metrics: `resolve.rs`.

    // ----- sending -----------------------------------------------------------

    /// Sends one event, following the [`Backpressure`] policy when its
    /// worker's queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] after [`close`](Pipeline::close);
    /// [`SendError::Dropped`] under [`Backpressure::DropNewest`] when the
    /// queue is full (the drop is counted). Both hand the event back.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// assert!(p.send(Event::count(c)).is_ok());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[inline]
    pub fn send(&self, event: Event) -> Result<(), SendError> {
        self.shared.send_until(event, None)
    }

    /// Sends `event` without waiting: like [`send`](Pipeline::send), except
    /// that under [`Backpressure::Block`] a full queue fails at once with
    /// [`SendError::Full`] (nothing sent, nothing counted) instead of
    /// waiting. Under the dropping policies it is the same as `send`.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`], [`SendError::Dropped`] or [`SendError::Closed`];
    /// each hands the event back.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// assert!(p.try_send(Event::count(c)).is_ok());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[inline]
    pub fn try_send(&self, event: Event) -> Result<(), SendError> {
        self.shared.try_send(event)
    }

    /// Sends `event`, waiting for room (under [`Backpressure::Block`]) at
    /// most until `deadline` (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// As [`try_send`](Pipeline::try_send): [`SendError::Full`] once the
    /// deadline has passed with the queue still full.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// assert!(p.send_until(Event::count(c), Some(deadline)).is_ok());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn send_until(&self, event: Event, deadline: Option<Instant>) -> Result<(), SendError> {
        self.shared.send_until(event, deadline)
    }

    /// Sends every event of `events`, each queue's share claimed in runs with
    /// one atomic operation; `events` is empty on success. Returns how many
    /// events were dropped (`DropNewest`: events of this batch that did not
    /// fit; `OverwriteOldest`: older events displaced), all counted.
    ///
    /// Allocates a little scratch per call when there are several workers;
    /// a [`Sender`] reuses its own.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the pipeline is closed; the events not sent stay in
    /// `events` (possibly reordered between workers).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// let c = p.counter("c")?;
    /// let mut batch = vec![Event::count(c); 100];
    /// assert_eq!(p.send_batch(&mut batch), Ok(0));
    /// assert!(batch.is_empty());
    /// p.flush();
    /// assert_eq!(reg.counter("c", &[])?.get(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch(&self, events: &mut Vec<Event>) -> Result<u64, Closed> {
        self.shared.send_batch(events, &mut Vec::new(), None)
    }

    /// As [`send_batch`](Pipeline::send_batch), except that under
    /// [`Backpressure::Block`] it waits for room at most until `deadline`
    /// (`None`: as long as it takes): the events not sent by then stay in
    /// `events` (in order per worker), neither sent nor counted. Exactly
    /// the events removed from `events` were sent.
    ///
    /// # Errors
    ///
    /// As [`send_batch`](Pipeline::send_batch).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::builder(&ringstat::Registry::new()).workers(1).capacity(4).build()?;
    /// let c = p.counter("c")?;
    /// let mut batch = vec![Event::count(c); 10];
    /// // The worker may drain some meanwhile: at least 4 fit.
    /// p.send_batch_until(&mut batch, Some(Instant::now()))?;
    /// assert!(batch.len() <= 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch_until(
        &self,
        events: &mut Vec<Event>,
        deadline: Option<Instant>,
    ) -> Result<u64, Closed> {
        self.shared.send_batch(events, &mut Vec::new(), deadline)
    }

    /// A sending handle for one producer thread (cheap; clone it for more).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// let mut tx = p.sender();
    /// std::thread::spawn(move || tx.send(Event::count(c)).unwrap()).join().unwrap();
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn sender(&self) -> Sender {
        Sender::new(Arc::clone(&self.shared))
    }

    // ----- flush, close, observers -------------------------------------------

    /// Waits until every event whose send returned before this call is
    /// applied (or, under `OverwriteOldest`, counted as displaced); then
    /// refreshes the depth and distinct gauges. Sends still in progress are
    /// not waited for. After [`close`](Pipeline::close), returns at once.
    ///
    /// Concurrent flushes proceed side by side. A flush enqueues a marker
    /// in every worker's queue, waiting for room if needed (never dropping
    /// it).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// p.send(Event::add(p.counter("bytes")?, 10))?;
    /// p.flush();
    /// assert_eq!(reg.counter("bytes", &[])?.get(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) {
        self.start_flush().wait_until(None);
    }

    /// As [`flush`](Pipeline::flush), giving up at `deadline` (`None`:
    /// never): `true` if the flush completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// p.send(Event::count(p.counter("c")?))?;
    /// if p.flush_until(Some(Instant::now() + Duration::from_secs(10))) {
    ///     assert_eq!(reg.counter("c", &[])?.get(), 1);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn flush_until(&self, deadline: Option<Instant>) -> bool {
        self.start_flush().wait_until(deadline)
    }

    /// Starts a flush that can be waited for in steps
    /// ([`Flush::wait_until`]), each with its own deadline: it covers the
    /// events whose send returned before this call, however late it is
    /// waited for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// p.send(Event::count(p.counter("c")?))?;
    /// let mut flush = p.start_flush();
    /// while !flush.wait_until(Some(Instant::now() + Duration::from_millis(50))) {
    ///     // check for cancellation here
    /// }
    /// assert_eq!(reg.counter("c", &[])?.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_flush(&self) -> Flush<'_> {
        Flush {
            shared: &self.shared,
            ticket: self.shared.flush_ticket(),
            pushed: 0,
        }
    }

    /// Closes the pipeline: later sends fail with [`SendError::Closed`], the
    /// workers drain every event already queued, and this call returns once
    /// they have exited (a concurrent `close` also waits for that).
    /// Idempotent; dropping the pipeline does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// let c = p.counter("c")?;
    /// for _ in 0..1000 {
    ///     p.send(Event::count(c))?;
    /// }
    /// p.close();
    /// assert_eq!(reg.counter("c", &[])?.get(), 1000);
    /// assert!(p.send(Event::count(c)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        let _ = self.close_until(None);
    }

    /// As [`close`](Pipeline::close), giving up at `deadline` (`None`:
    /// never): `true` once every worker has exited. The pipeline is closed
    /// either way (the workers go on draining); call again to wait more.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// p.send(Event::count(p.counter("c")?))?;
    /// while !p.close_until(Some(Instant::now() + Duration::from_millis(50))) {}
    /// assert_eq!(reg.counter("c", &[])?.get(), 1);
    /// assert!(p.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn close_until(&self, deadline: Option<Instant>) -> bool {
        for q in self.shared.queues.iter() {
            q.close();
        }
        if self.shared.forked() {
            // A forked child has copies of the join handles of threads that
            // run only in the parent: joining one would never return.
            if let Ok(mut handles) = self.handles.try_lock() {
                handles.drain(..).for_each(core::mem::forget);
            }
            return true;
        }
        // Every worker marks its exit (even by a panic) before it ends, so
        // the joins below do not wait beyond the deadline.
        if !self.shared.wait_answered(u64::MAX, deadline) {
            return false;
        }
        let mut handles = lock(&self.handles);
        for h in handles.drain(..) {
            // A worker that panicked has still released its flushers; its
            // panic was reported on stderr.
            let _ = h.join();
        }
        drop(handles);
        self.shared.refresh_depth();
        self.shared.refresh_distinct_gauges();
        true
    }

    /// `true` in a child process forked (`fork(2)`) after this pipeline was
    /// built. The child has a copy of the pipeline but none of its worker
    /// threads: there, [`flush`](Pipeline::flush) returns at once, events
    /// sent are never applied, and [`close`](Pipeline::close) (or a drop)
    /// only closes the copy. The parent's pipeline is not affected. Costs a
    /// `getpid` system call: check it at slow points, not per event.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert!(!p.is_forked_copy());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn is_forked_copy(&self) -> bool {
        self.shared.forked()
    }

    /// The id of the process that built this pipeline and runs its
    /// workers (compare with a cached pid to spot a forked child cheaply).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(p.owner_pid(), std::process::id());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn owner_pid(&self) -> u32 {
        self.shared.pid
    }

    /// `true` once [`close`](Pipeline::close) has begun.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.close();
    /// assert!(p.is_closed());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.queues[0].is_closed()
    }

    /// The estimated number of distinct keys `distinct` has seen, merged
    /// from every worker's sketch now (lock-free reads of the registers;
    /// a brief lock to find the metric). Relative standard error
    /// `1.04 / sqrt(2^precision)`. 0 for a handle of another pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let u = p.distinct("u")?;
    /// p.send(Event::seen(u, 10))?;
    /// p.flush();
    /// assert_eq!(p.distinct_count(u).round(), 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn distinct_count(&self, distinct: DistinctId) -> f64 {
        self.distinct_target(distinct).map_or(0.0, |d| d.count())
    }

    /// As [`distinct_count`](Pipeline::distinct_count), over the keys seen
    /// in the sliding window ending now on the pipeline clock (the current
    /// bucket and the `buckets - 1` before it), by event timestamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let u = p.distinct("u")?;
    /// p.send(Event::seen(u, 10))?; // ts 0: now
    /// p.flush();
    /// assert_eq!(p.distinct_in_window(u).round(), 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn distinct_in_window(&self, distinct: DistinctId) -> f64 {
        let now = self.shared.clock.now_nanos();
        self.distinct_target(distinct)
            .map_or(0.0, |d| d.count_in_window(now))
    }

    fn distinct_target(&self, id: DistinctId) -> Option<StdArc<DistinctShared>> {
        match self.shared.lock_table().targets.get(id.0 as usize) {
            Some(Target::Distinct(d, ..)) => Some(StdArc::clone(d)),
            _ => None,
        }
    }

    /// The pipeline's own counts (see [`PipelineStats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(Event::count(p.counter("c")?))?;
    /// p.close();
    /// let s = p.stats();
    /// assert_eq!((s.received, s.applied, s.dropped), (1, 1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> PipelineStats {
        let own = &self.shared.own;
        PipelineStats {
            received: own.received.get(),
            applied: own.applied.get(),
            dropped: own.dropped.get(),
            rejected: own.rejected.get(),
            queue_depth: self.shared.depth() as u64,
        }
    }

    /// The pipeline clock now, in nanoseconds: the time base for event
    /// timestamps that windows compare with.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert!(p.now() <= p.now());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn now(&self) -> u64 {
        self.shared.clock.now_nanos()
    }

    /// The registry the pipeline writes to.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert!(!p.registry().snapshot().metrics.is_empty()); // its own metrics
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Number of worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(p.workers(), 2);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn workers(&self) -> usize {
        self.shared.queues.len()
    }

    /// The total capacity asked for (each worker's queue holds
    /// `ceil(capacity / workers)`).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(p.capacity(), ringstat::pipeline::DEFAULT_CAPACITY);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The back-pressure policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Backpressure, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(p.backpressure(), Backpressure::Block);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn backpressure(&self) -> Backpressure {
        self.shared.policy
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.close();
    }
}

impl core::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline")
            .field("workers", &self.workers())
            .field("capacity", &self.capacity)
            .field("backpressure", &self.shared.policy)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
