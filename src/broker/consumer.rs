//! [`Consumer`]: frames from a broker (a thread per consumer, one loop per
//! broker: `rabbitmq.rs`, `kafka.rs`) -> dedup -> a pipeline, acknowledged
//! after apply.

use core::fmt;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::BrokerError;
use crate::pipeline::Pipeline;
use crate::sync::{
    spawn_named, thread, AtomicBool, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, StdArc,
};
use crate::wire::{apply, peek_header, ApplyError, Dedup, Frame};

/// Counts of a [`Consumer`] (each read separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Frames applied.
    pub frames: u64,
    /// Events of those frames, sent to the pipeline.
    pub events: u64,
    /// Frames dropped as already applied (same producer and sequence).
    pub duplicates: u64,
    /// Messages that are not valid frames: acknowledged, not applied.
    pub bad_frames: u64,
    /// Valid frames the pipeline refused (an unresolved histogram, a name
    /// of another kind): acknowledged, none of their events applied.
    pub rejected_frames: u64,
    /// Sequences skipped for good by the dedup ([`Dedup::gaps`]).
    pub gaps: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Whether a connection is open now.
    pub connected: bool,
    /// Kafka: messages in the topic after the last one read, summed over
    /// the partitions read so far (from the high watermarks the fetches
    /// bring back; no extra request). `None` for RabbitMQ and before the
    /// first message.
    pub lag: Option<u64>,
    /// Checkpoints written (Kafka, with a checkpoint file).
    pub checkpoints: u64,
    /// Whether the consumer resumed from its checkpoint file.
    pub restored: bool,
}

pub(super) struct Counts {
    pub(super) frames: AtomicU64,
    pub(super) events: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) bad_frames: AtomicU64,
    pub(super) rejected_frames: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) connected: AtomicBool,
    /// [`ConsumerStats::lag`], `u64::MAX` for `None`.
    pub(super) lag: AtomicU64,
    pub(super) checkpoints: AtomicU64,
    pub(super) restored: AtomicBool,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            frames: AtomicU64::new(0),
            events: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            rejected_frames: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            lag: AtomicU64::new(u64::MAX),
            checkpoints: AtomicU64::new(0),
            restored: AtomicBool::new(false),
        }
    }
}

pub(super) struct Shared {
    pub(super) counts: Counts,
    pub(super) stop: AtomicBool,
    pub(super) wake: Notify,
    /// Notified after each frame handled (for `wait_events`).
    pub(super) progress: (Mutex<()>, Condvar),
    pub(super) last_error: Mutex<Option<String>>,
    /// The dedup record, left by the thread when it ends.
    pub(super) dedup_out: Mutex<Option<Dedup>>,
}

impl Shared {
    pub(super) fn notify_progress(&self) {
        let _g = self.progress.0.lock().unwrap_or_else(|e| e.into_inner());
        self.progress.1.notify_all();
    }

    pub(super) fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

impl Consumer {
    /// Starts the consuming thread: `run` with the shared state and the
    /// dedup record, which it leaves for [`stop`](Self::stop) when it ends.
    pub(super) fn spawn<F>(dedup: Dedup, restored: bool, run: F) -> Result<Self, BrokerError>
    where
        F: FnOnce(&Shared, &mut Dedup) + Send + 'static,
    {
        let counts = Counts::default();
        // Relaxed: a status, set before the thread exists.
        counts.restored.store(restored, Ordering::Relaxed);
        let shared = StdArc::new(Shared {
            counts,
            stop: AtomicBool::new(false),
            wake: Notify::new(),
            progress: (Mutex::new(()), Condvar::new()),
            last_error: Mutex::new(None),
            dedup_out: Mutex::new(None),
        });
        let sh = StdArc::clone(&shared);
        let thread = spawn_named("ringstat-consumer".into(), move || {
            let mut dedup = dedup;
            run(&sh, &mut dedup);
            // Relaxed: a status; `stop`'s join orders it for callers.
            sh.counts.connected.store(false, Ordering::Relaxed);
            sh.notify_progress();
            *sh.last_dedup() = Some(dedup);
        })
        .map_err(BrokerError::Spawn)?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Consumes event frames from a broker and applies them to a [`Pipeline`]
/// exactly once in effect (see the [module docs](super); made by
/// `Consumer::builder` for RabbitMQ,
/// `kafka::ConsumerBuilder` for Kafka).
///
/// Each frame is applied ([`wire::apply`](crate::wire::apply): its events
/// sent to the pipeline, metrics resolved by name) and then acknowledged
/// (Kafka: its offset committed): a crash between the two redelivers it. A frame whose (producer,
/// sequence) was applied before is acknowledged without applying it. A
/// message that is not a frame, or a frame the pipeline refuses (one
/// observing an unresolved histogram), is acknowledged and counted: a
/// poison message must not loop. At most `prefetch` frames (Kafka:
/// `prefetch_bytes`) are unacknowledged at once; a lost connection is made
/// again with backoff.
/// The consumer stops by itself at the first frame it gets after its
/// pipeline closed (that frame is not acknowledged, so the broker keeps
/// it). Applying waits while
/// the pipeline's queues are full
/// ([`Backpressure::Block`](crate::Backpressure::Block)), and so does the
/// consumer's connection meanwhile: the broker holds the rest.
pub struct Consumer {
    shared: StdArc<Shared>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// The counts so far.
    #[must_use]
    pub fn stats(&self) -> ConsumerStats {
        let c = &self.shared.counts;
        // Relaxed: statistics, each read on its own.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConsumerStats {
            frames: get(&c.frames),
            events: get(&c.events),
            duplicates: get(&c.duplicates),
            bad_frames: get(&c.bad_frames),
            rejected_frames: get(&c.rejected_frames),
            gaps: get(&c.gaps),
            reconnects: get(&c.reconnects),
            connected: c.connected.load(Ordering::Relaxed),
            lag: Some(get(&c.lag)).filter(|&l| l != u64::MAX),
            checkpoints: get(&c.checkpoints),
            restored: c.restored.load(Ordering::Relaxed),
        }
    }

    /// The last connection or consuming error, if any (for display: the
    /// consumer retries by itself).
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `n` events were applied, at most `timeout`;
    /// `false` at the timeout (or if the consumer stopped before).
    pub fn wait_events(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let (lock, cv) = &self.shared.progress;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Relaxed: a count, re-read after each notification.
            if self.shared.counts.events.load(Ordering::Relaxed) >= n {
                return true;
            }
            if self.is_finished() {
                return false;
            }
            let mut wait = Duration::from_millis(100);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return false;
                }
                wait = wait.min(d - now);
            }
            g = cv
                .wait_timeout(g, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the consuming thread ended (stopped, or its pipeline closed).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(thread::JoinHandle::is_finished)
    }

    /// Stops consuming (frames delivered and not acknowledged go back to
    /// the queue) and joins the thread; returns the dedup record (for a
    /// checkpoint, or to start another consumer with). Later calls return
    /// an empty record.
    pub fn stop(&self) -> Dedup {
        // Relaxed: a request, re-read after every wake.
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
        self.shared.last_dedup().take().unwrap_or_default()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Where the thread leaves its dedup record when it ends.
    fn last_dedup(&self) -> MutexGuard<'_, Option<Dedup>> {
        self.dedup_out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies one message unless it is a duplicate; `false` once the
/// pipeline is closed (nothing counted then).
pub(super) fn handle(sh: &Shared, p: &Pipeline, dedup: &mut Dedup, body: &[u8]) -> bool {
    let c = &sh.counts;
    // Relaxed (all counts): statistics.
    let Ok(h) = peek_header(body) else {
        c.bad_frames.fetch_add(1, Ordering::Relaxed);
        return true;
    };
    if dedup.seen(h.producer, h.sequence) {
        c.duplicates.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    let Ok(frame) = Frame::decode(body) else {
        c.bad_frames.fetch_add(1, Ordering::Relaxed);
        return true;
    };
    match apply(p, &frame) {
        Ok(_) => {
            dedup.add(h.producer, h.sequence);
            c.gaps.store(dedup.gaps(), Ordering::Relaxed);
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.events
                .fetch_add(frame.records.len() as u64, Ordering::Relaxed);
            true
        }
        Err(ApplyError::Closed) => false,
        Err(_) => {
            c.rejected_frames.fetch_add(1, Ordering::Relaxed);
            dedup.add(h.producer, h.sequence);
            true
        }
    }
}
