//! [`Consumer`]: frames from RabbitMQ -> dedup -> a pipeline, acks after apply.

use core::fmt;
use core::future::poll_fn;
use core::pin::{pin, Pin};
use core::task::Poll;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_core::Stream;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::Notify;

use super::{open, parse_url, runtime, unless, Backoff, BrokerError, DEFAULT_QUEUE};
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
}

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    events: AtomicU64,
    duplicates: AtomicU64,
    bad_frames: AtomicU64,
    rejected_frames: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
}

struct Shared {
    counts: Counts,
    stop: AtomicBool,
    wake: Notify,
    /// Notified after each frame handled (for `wait_events`).
    progress: (Mutex<()>, Condvar),
    last_error: Mutex<Option<String>>,
    /// The dedup record, left by the thread when it ends.
    dedup_out: Mutex<Option<Dedup>>,
}

impl Shared {
    fn notify_progress(&self) {
        let _g = self.progress.0.lock().unwrap_or_else(|e| e.into_inner());
        self.progress.1.notify_all();
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

/// How a [`Consumer`] is made: [`Consumer::builder`].
#[must_use]
pub struct ConsumerBuilder {
    url: String,
    queue: String,
    pipeline: StdArc<Pipeline>,
    prefetch: u16,
    dedup: Dedup,
    backoff: (Duration, Duration),
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl ConsumerBuilder {
    /// The durable queue to consume (default `"ringstat.events"`).
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.to_owned();
        self
    }

    /// Most frames delivered and not acknowledged yet (default 8, at
    /// least 1): the consumer's memory bound.
    pub fn prefetch(mut self, n: u16) -> Self {
        self.prefetch = n.max(1);
        self
    }

    /// The dedup record to start from (default: an empty one; pass the
    /// one of a checkpoint, or one another consumer returned from
    /// [`Consumer::stop`]).
    pub fn dedup(mut self, dedup: Dedup) -> Self {
        self.dedup = dedup;
        self
    }

    /// Reconnection delays: from `min`, doubling up to `max` (default
    /// 50 ms to 2 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// Starts consuming in a background thread.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Url`], [`BrokerError::Spawn`].
    pub fn start(self) -> Result<Consumer, BrokerError> {
        parse_url(&self.url)?;
        let shared = StdArc::new(Shared {
            counts: Counts::default(),
            stop: AtomicBool::new(false),
            wake: Notify::new(),
            progress: (Mutex::new(()), Condvar::new()),
            last_error: Mutex::new(None),
            dedup_out: Mutex::new(None),
        });
        let sh = StdArc::clone(&shared);
        let mut cfg = self;
        let thread = spawn_named("ringstat-consumer".into(), move || {
            let mut dedup = core::mem::take(&mut cfg.dedup);
            match runtime() {
                Ok(rt) => rt.block_on(consume(&sh, &cfg, &mut dedup)),
                Err(e) => sh.set_error(format!("cannot start the tokio runtime: {e}")),
            }
            // Relaxed: a status; `stop`'s join orders it for callers.
            sh.counts.connected.store(false, Ordering::Relaxed);
            sh.notify_progress();
            *sh.last_dedup() = Some(dedup);
        })
        .map_err(BrokerError::Spawn)?;
        Ok(Consumer {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Consumes event frames from a RabbitMQ queue and applies them to a
/// [`Pipeline`] exactly once in effect (see the [module docs](super)).
///
/// Each frame is applied ([`wire::apply`](crate::wire::apply): its events
/// sent to the pipeline, metrics resolved by name) and then acknowledged:
/// a crash between the two redelivers it. A frame whose (producer,
/// sequence) was applied before is acknowledged without applying it. A
/// message that is not a frame, or a frame the pipeline refuses (one
/// observing an unresolved histogram), is acknowledged and counted: a
/// poison message must not loop. At most `prefetch` frames are
/// unacknowledged at once; a lost connection is made again with backoff.
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
    /// A builder for a consumer of the broker at `url` feeding `pipeline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let p = Arc::new(ringstat::Pipeline::new(&ringstat::Registry::new())?);
    /// assert!(ringstat::broker::Consumer::builder("nope", p).start().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(url: &str, pipeline: StdArc<Pipeline>) -> ConsumerBuilder {
        ConsumerBuilder {
            url: url.to_owned(),
            queue: DEFAULT_QUEUE.to_owned(),
            pipeline,
            prefetch: 8,
            dedup: Dedup::default(),
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
        }
    }

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

/// What woke the consuming loop.
// One lives briefly on the stack per wake-up: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Next {
    Delivery(Option<lapin::Result<Delivery>>),
    Stop,
}

/// Connects, consumes and reconnects until stopped or the pipeline closes.
async fn consume(sh: &Shared, cfg: &ConsumerBuilder, dedup: &mut Dedup) {
    let c = &sh.counts;
    let mut backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
    let mut ever = false;
    // Relaxed (all loads of `stop`): a request, re-read after every wake.
    while !sh.stop.load(Ordering::Relaxed) {
        let (conn, ch) = match unless(&sh.wake, &sh.stop, open(&cfg.url, &cfg.queue, false)).await {
            None => return,
            Some(Ok(cc)) => cc,
            Some(Err(e)) => {
                sh.set_error(e);
                let _ = tokio::time::timeout(backoff.step(), sh.wake.notified()).await;
                continue;
            }
        };
        let started = async {
            ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
                .await?;
            ch.basic_consume(
                cfg.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        };
        let mut deliveries = match started.await {
            Ok(d) => d,
            Err(e) => {
                sh.set_error(e.to_string());
                let _ = tokio::time::timeout(backoff.step(), sh.wake.notified()).await;
                continue;
            }
        };
        if ever {
            c.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        ever = true;
        c.connected.store(true, Ordering::Relaxed);
        backoff.reset();
        loop {
            let next = {
                let mut stop = pin!(sh.wake.notified());
                poll_fn(|cx| {
                    if stop.as_mut().poll(cx).is_ready() || sh.stop.load(Ordering::Relaxed) {
                        return Poll::Ready(Next::Stop);
                    }
                    Pin::new(&mut deliveries).poll_next(cx).map(Next::Delivery)
                })
                .await
            };
            match next {
                Next::Stop => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into()))
                            .await;
                    return;
                }
                Next::Delivery(Some(Ok(d))) => {
                    if !handle(sh, &cfg.pipeline, dedup, &d.data) {
                        // The pipeline closed: the frame stays unacknowledged.
                        sh.stop.store(true, Ordering::Relaxed);
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            conn.close(200, "bye".into()),
                        )
                        .await;
                        return;
                    }
                    if let Err(e) = d.ack(BasicAckOptions::default()).await {
                        sh.set_error(e.to_string());
                        break;
                    }
                    sh.notify_progress();
                }
                Next::Delivery(Some(Err(e))) => {
                    sh.set_error(e.to_string());
                    break;
                }
                Next::Delivery(None) => {
                    sh.set_error("the broker cancelled the consumer".into());
                    break;
                }
            }
        }
        c.connected.store(false, Ordering::Relaxed);
        drop(conn);
        let _ = tokio::time::timeout(backoff.step(), sh.wake.notified()).await;
    }
}

/// Applies one message unless it is a duplicate; `false` once the
/// pipeline is closed (nothing counted then).
fn handle(sh: &Shared, p: &Pipeline, dedup: &mut Dedup, body: &[u8]) -> bool {
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
