//! Many processes into one pipeline: producers batch events into frames and
//! put each frame as one message into a [`SharedQueue`]; one [`Feed`]
//! thread in the aggregating process pops the frames and applies them to
//! its [`Pipeline`].
//!
//! What a killed producer can lose: the events it had batched but not put
//! yet, and the one frame it was copying into the queue (counted in the
//! queue's [`lost`](SharedQueue::lost)). A killed aggregator loses the
//! frame it was reading (counted too) and whatever its pipeline held.

use core::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::{apply, ApplyError, Frame, FrameBuilder, FrameError};
use crate::pipeline::{Op, Pipeline};
use crate::queue::{SharedPopError, SharedPushError, SharedQueue};
use crate::sync::{spawn_named, thread, AtomicU32, AtomicU64, Ordering, StdArc};

/// How long the feed thread sleeps in one pop before it re-checks whether
/// it should stop (a message or a close of the queue wakes it sooner).
const STOP_CHECK: Duration = Duration::from_millis(20);

/// A random producer id (std's per-process random hasher keys), so frames
/// of different senders never share one.
fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Batches events into frames of at most a byte limit: the frame-building
/// half of a [`FeedSender`], without a queue (the Python binding pushes
/// the frames itself, waiting in slices).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::Op;
/// use ringstat::wire::{Frame, FrameBatcher};
///
/// let mut b = FrameBatcher::new(64, 7);
/// let mut frames = Vec::new();
/// for _ in 0..20 {
///     frames.extend(b.add(Op::Count, "logins", 0, 1, 0)?);
/// }
/// frames.extend(b.take());
/// assert!(frames.len() > 1 && frames.iter().all(|f| f.len() <= 64));
/// let n: usize = frames.iter().map(|f| Frame::decode(f).unwrap().records.len()).sum();
/// assert_eq!(n, 20);
/// # Ok::<(), ringstat::wire::FrameError>(())
/// ```
#[derive(Debug)]
pub struct FrameBatcher {
    builder: FrameBuilder,
    limit: usize,
    producer: u64,
    sequence: u64,
    generation: u64,
}

impl FrameBatcher {
    /// A batcher of frames of at most `limit` bytes, numbered from 1 under
    /// the id `producer`.
    #[must_use]
    pub fn new(limit: usize, producer: u64) -> Self {
        Self {
            builder: FrameBuilder::new(),
            limit,
            producer,
            sequence: 0,
            generation: crate::shm::fork_generation(),
        }
    }

    /// A random producer id (a new one at each call).
    #[must_use]
    pub fn random_producer() -> u64 {
        random_id()
    }

    /// The producer id of the frames.
    #[must_use]
    pub fn producer(&self) -> u64 {
        self.producer
    }

    /// The byte limit of a frame.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Events batched and not taken yet.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.builder.len()
    }

    /// In a forked child, the events batched before the fork belong to the
    /// parent (which sends them): drop them, and take a new producer id.
    fn check_fork(&mut self) {
        let g = crate::shm::fork_generation();
        if g != self.generation {
            self.generation = g;
            self.builder.finish(0, 0);
            self.producer = random_id();
            self.sequence = 0;
        }
    }

    /// Adds one event; if the current frame has no room for it, returns
    /// that frame, encoded (the event starts the next one).
    ///
    /// # Errors
    ///
    /// [`FrameError`] for an event that cannot be encoded, or that does not
    /// fit in an empty frame of `limit` bytes; nothing is added then.
    pub fn add(
        &mut self,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        self.check_fork();
        if self
            .builder
            .push_within(self.limit, op, name, key, value, ts)?
        {
            return Ok(None);
        }
        let too_large = FrameError::TooLarge {
            field: "event (larger than a frame may be)",
        };
        if self.builder.is_empty() {
            return Err(too_large);
        }
        // Whether it fits a frame of its own, before the batch is taken
        // (once per full frame).
        if !FrameBuilder::new().push_within(self.limit, op, name, key, value, ts)? {
            return Err(too_large);
        }
        let full = self.take();
        let fits = self
            .builder
            .push_within(self.limit, op, name, key, value, ts)?;
        debug_assert!(fits, "checked on an empty builder");
        Ok(full)
    }

    /// The batched events as one encoded frame (`None` if there are none).
    pub fn take(&mut self) -> Option<Vec<u8>> {
        self.check_fork();
        if self.builder.is_empty() {
            return None;
        }
        self.sequence += 1;
        let frame = self.builder.finish(self.producer, self.sequence);
        // Every record was checked by `push_within`.
        frame.encode().ok()
    }
}

/// Why a [`FeedSender`] call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum FeedError {
    /// The event cannot be encoded (see [`FrameBatcher::add`]).
    Frame(FrameError),
    /// The queue refused a frame (closed, or too many processes).
    Push(SharedPushError),
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => fmt::Display::fmt(e, f),
            Self::Push(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for FeedError {}

/// The producer side: batches events into frames of at most the queue's
/// slot size and puts each full frame into the queue, waiting for room
/// (back-pressure from the aggregator). Call [`flush`](Self::flush) to put
/// the last partial frame; dropping the sender flushes too (waiting at most
/// 5 s for room).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Op, Pipeline};
/// use ringstat::queue::{SharedQueue, SharedQueueOptions};
/// use ringstat::wire::{Feed, FeedSender};
///
/// let name = format!("ringstat-doc-feed-{}", std::process::id());
/// let q = SharedQueue::create(&name, 64, 256, &SharedQueueOptions::default())?;
/// // In each producer process (here: the same one).
/// let mut tx = FeedSender::new(q.clone());
/// for user in 0..10 {
///     tx.send(Op::Count, "logins", 0, 1, 0)?;
///     tx.send(Op::Seen, "users", user, 0, 0)?;
/// }
/// tx.flush()?;
///
/// // In the aggregating process.
/// let reg = ringstat::Registry::new();
/// let p = std::sync::Arc::new(Pipeline::new(&reg)?);
/// let mut feed = Feed::start(p.clone(), q.clone())?;
/// feed.stop_after_drain();
/// p.flush();
/// assert_eq!(reg.counter("logins", &[])?.get(), 10);
/// q.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FeedSender {
    queue: SharedQueue,
    batcher: FrameBatcher,
}

impl FeedSender {
    /// A sender into `queue`, with a random producer id.
    #[must_use]
    pub fn new(queue: SharedQueue) -> Self {
        let limit = queue.slot_size();
        Self {
            queue,
            batcher: FrameBatcher::new(limit, random_id()),
        }
    }

    /// Batches one event (`op`, metric `name`, `key`, `value`, `ts`
    /// nanoseconds as in [`Record`](super::Record)); puts the frame before
    /// it if that one is full, waiting for room.
    ///
    /// # Errors
    ///
    /// [`FeedError`]; an event that cannot be encoded is not batched.
    pub fn send(
        &mut self,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> Result<(), FeedError> {
        match self.batcher.add(op, name, key, value, ts) {
            Ok(Some(frame)) => self.put(&frame),
            Ok(None) => Ok(()),
            Err(e) => Err(FeedError::Frame(e)),
        }
    }

    /// Puts the batched events (if any) as one frame, waiting for room.
    ///
    /// # Errors
    ///
    /// [`FeedError::Push`] if the queue is closed.
    pub fn flush(&mut self) -> Result<(), FeedError> {
        match self.batcher.take() {
            Some(frame) => self.put(&frame),
            None => Ok(()),
        }
    }

    fn put(&self, frame: &[u8]) -> Result<(), FeedError> {
        self.queue.push(frame, None).map_err(FeedError::Push)
    }

    /// Events batched and not put yet.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.batcher.pending()
    }
}

/// How long a dropped [`FeedSender`] waits for room for its last frame.
const DROP_WAIT: Duration = Duration::from_secs(5);

impl Drop for FeedSender {
    /// Puts the last frame, waiting at most 5 s for room (an aggregator
    /// that is gone must not hang the producer's exit).
    fn drop(&mut self) {
        if let Some(frame) = self.batcher.take() {
            let _ = self.queue.push(&frame, Some(DROP_WAIT));
        }
    }
}

/// Counts of a [`Feed`] (each read separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FeedStats {
    /// Frames popped and applied.
    pub frames: u64,
    /// Events of those frames, sent to the pipeline.
    pub events: u64,
    /// Messages that are not valid frames: counted, not applied.
    pub bad_frames: u64,
    /// Valid frames the pipeline refused (an unresolved histogram, a name
    /// of another kind): none of their events was applied.
    pub rejected_frames: u64,
    /// The events of the rejected frames.
    pub rejected_events: u64,
    /// Frames popped after the pipeline closed: not (fully) applied.
    pub unapplied_frames: u64,
}

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    events: AtomicU64,
    bad_frames: AtomicU64,
    rejected_frames: AtomicU64,
    rejected_events: AtomicU64,
    unapplied_frames: AtomicU64,
    /// `RUN`, `STOP` or `DRAIN`.
    stop: AtomicU32,
    /// Why the thread ended early, if it did (a queue error), for `error`.
    ended: AtomicU32,
}

const RUN: u32 = 0;
const STOP: u32 = 1;
const DRAIN: u32 = 2;

const ENDED_NO: u32 = 0;
const ENDED_CLOSED_QUEUE: u32 = 1;
const ENDED_CLOSED_PIPELINE: u32 = 2;
const ENDED_STOPPED: u32 = 3;
const ENDED_TOO_MANY: u32 = 4;

/// Why a [`Feed`]'s thread is no longer running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedEnd {
    /// Still running.
    Running,
    /// Stopped by [`Feed::stop`] or [`Feed::stop_after_drain`].
    Stopped,
    /// The queue was closed and emptied.
    QueueClosed,
    /// The pipeline was closed.
    PipelineClosed,
    /// The queue's participant table was full: this process could not pop.
    TooManyProcesses,
}

/// The aggregating side: a native thread that pops frames from a
/// [`SharedQueue`] (sleeping on the queue's futex while it is empty) and
/// applies them to a [`Pipeline`] with [`apply`], by metric name.
///
/// Stop it with [`stop`](Self::stop) (leaves the queued frames for another
/// consumer) or [`stop_after_drain`](Self::stop_after_drain) (applies
/// every frame queued first); dropping it stops it. It also ends when the
/// queue is closed and empty, and when the pipeline closes (noticed within
/// 20 ms). A message that is not a valid frame is counted in
/// [`FeedStats::bad_frames`] and skipped.
///
/// Histograms must be resolved in the pipeline before frames observe into
/// them (see [`apply`]); a frame that names an unknown one is rejected
/// whole and counted.
pub struct Feed {
    counts: StdArc<Counts>,
    thread: Option<thread::JoinHandle<()>>,
    /// The fork generation that started the thread: a forked child's copy
    /// has no thread to stop or join.
    generation: u64,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("end", &self.end())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Feed {
    /// Starts the thread feeding `pipeline` from `queue` (a handle of its
    /// own: clone one to keep using the queue).
    ///
    /// # Errors
    ///
    /// The thread could not be spawned.
    pub fn start(pipeline: StdArc<Pipeline>, queue: SharedQueue) -> std::io::Result<Self> {
        let counts = StdArc::new(Counts::default());
        let c = StdArc::clone(&counts);
        let name = format!("ringstat-feed-{}", queue.name().unwrap_or("heap"));
        let thread = spawn_named(name, move || run(&pipeline, &queue, &c))?;
        Ok(Self {
            counts,
            thread: Some(thread),
            generation: crate::shm::fork_generation(),
        })
    }

    /// The counts so far.
    #[must_use]
    pub fn stats(&self) -> FeedStats {
        let c = &self.counts;
        // Relaxed: statistics.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FeedStats {
            frames: get(&c.frames),
            events: get(&c.events),
            bad_frames: get(&c.bad_frames),
            rejected_frames: get(&c.rejected_frames),
            rejected_events: get(&c.rejected_events),
            unapplied_frames: get(&c.unapplied_frames),
        }
    }

    /// Whether the thread still runs, or why it ended.
    #[must_use]
    pub fn end(&self) -> FeedEnd {
        // Relaxed: a status for display; `stop` joins for the real answer.
        match self.counts.ended.load(Ordering::Relaxed) {
            ENDED_NO => FeedEnd::Running,
            ENDED_CLOSED_QUEUE => FeedEnd::QueueClosed,
            ENDED_CLOSED_PIPELINE => FeedEnd::PipelineClosed,
            ENDED_TOO_MANY => FeedEnd::TooManyProcesses,
            _ => FeedEnd::Stopped,
        }
    }

    /// Stops the thread after the frame it is applying (frames still
    /// queued stay for another consumer) and joins it.
    pub fn stop(&mut self) {
        self.stop_with(STOP);
    }

    /// Applies every frame queued now, then stops and joins the thread.
    /// Call it once the producers have flushed; then [`Pipeline::flush`]
    /// waits for the events to be applied.
    pub fn stop_after_drain(&mut self) {
        self.stop_with(DRAIN);
    }

    fn stop_with(&mut self, how: u32) {
        if crate::shm::fork_generation() != self.generation {
            // A forked child's copy: the thread runs in the parent only.
            if let Some(t) = self.thread.take() {
                core::mem::forget(t);
            }
            return;
        }
        // Relaxed: the join below orders everything the thread did.
        let _ = self
            .counts
            .stop
            .compare_exchange(RUN, how, Ordering::Relaxed, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(p: &Pipeline, q: &SharedQueue, c: &Counts) {
    let ended = loop {
        // Relaxed: a request flag, re-read every STOP_CHECK at most.
        match c.stop.load(Ordering::Relaxed) {
            RUN => {}
            DRAIN => break drain(p, q, c),
            _ => break ENDED_STOPPED,
        }
        if p.is_closed() {
            break ENDED_CLOSED_PIPELINE;
        }
        match q.pop_with(Some(STOP_CHECK), Frame::decode) {
            Ok(frame) => {
                if !handle(p, c, frame) {
                    break ENDED_CLOSED_PIPELINE;
                }
            }
            Err(SharedPopError::Empty) => {}
            Err(SharedPopError::Closed) => break ENDED_CLOSED_QUEUE,
            Err(SharedPopError::TooManyProcesses { .. }) => break ENDED_TOO_MANY,
        }
    };
    // Relaxed: read for display; `stop`'s join orders it for callers.
    c.ended.store(ended, Ordering::Relaxed);
}

/// Pops without waiting until the queue is empty, applying each frame.
fn drain(p: &Pipeline, q: &SharedQueue, c: &Counts) -> u32 {
    loop {
        match q.try_pop_with(Frame::decode) {
            Ok(frame) => {
                if !handle(p, c, frame) {
                    return ENDED_CLOSED_PIPELINE;
                }
            }
            Err(SharedPopError::Empty) => return ENDED_STOPPED,
            Err(SharedPopError::Closed) => return ENDED_CLOSED_QUEUE,
            Err(SharedPopError::TooManyProcesses { .. }) => return ENDED_TOO_MANY,
        }
    }
}

/// Applies one popped message; `false` once the pipeline is closed.
fn handle(p: &Pipeline, c: &Counts, frame: Result<Frame, FrameError>) -> bool {
    // Relaxed (all counts here): statistics.
    let Ok(frame) = frame else {
        c.bad_frames.fetch_add(1, Ordering::Relaxed);
        return true;
    };
    let n = frame.records.len() as u64;
    match apply(p, &frame) {
        Ok(_) => {
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.events.fetch_add(n, Ordering::Relaxed);
            true
        }
        Err(ApplyError::Closed) => {
            c.unapplied_frames.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(_) => {
            c.rejected_frames.fetch_add(1, Ordering::Relaxed);
            c.rejected_events.fetch_add(n, Ordering::Relaxed);
            true
        }
    }
}
