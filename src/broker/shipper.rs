//! [`Shipper`]: events -> bounded queue -> frames -> a broker thread (one
//! per broker: `rabbitmq.rs`, `kafka.rs`) that publishes them with
//! confirms.

use core::fmt;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::{BrokerError, Event, SendError};
use crate::queue::{PushError, Queue};
use crate::sync::{spawn_named, thread, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, StdArc};
use crate::wire::{FrameBatcher, FrameBuilder, HEADER_LEN, MAX_EVENTS, MAX_NAMES, MAX_NAME_LEN};

/// The smallest frame-size limit a shipper takes: a frame of any one valid
/// event (the longest name, the widest numbers) fits in it.
pub const MIN_FRAME_BYTES: usize = HEADER_LEN + MAX_NAME_LEN + 64;

/// What [`Shipper::send`] does when the local buffer is full (the broker
/// is slow or down and the buffer filled up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room, at most `timeout` (`None`: as long as it takes);
    /// each send that waits is counted in [`ShipperStats::blocked`], and
    /// one still without room at the timeout fails with
    /// [`SendError::Full`], counted in [`ShipperStats::rejected`].
    Block {
        /// The longest wait.
        timeout: Option<Duration>,
    },
    /// Fail at once with [`SendError::Full`], counted in
    /// [`ShipperStats::rejected`].
    Reject,
}

impl Default for Overflow {
    /// Wait as long as it takes (nothing is refused).
    fn default() -> Self {
        Self::Block { timeout: None }
    }
}

/// Counts of a [`Shipper`] (each read separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShipperStats {
    /// Events accepted by [`Shipper::send`].
    pub accepted: u64,
    /// Events refused by the [`Overflow`] policy (handed back).
    pub rejected: u64,
    /// Sends that waited for room.
    pub blocked: u64,
    /// Events accepted and not confirmed yet (in the buffer, in frames
    /// waiting or in flight), abandoned ones excluded.
    pub buffered: u64,
    /// Frames published (each attempt: a frame published again after a
    /// lost connection or a refusal counts again).
    pub published: u64,
    /// Frames the broker confirmed.
    pub confirmed: u64,
    /// Events in the confirmed frames.
    pub confirmed_events: u64,
    /// Publishes the broker refused (nack) or returned (no route).
    pub nacked: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Events accepted but given up by [`Shipper::close`] at its deadline.
    pub abandoned: u64,
    /// Whether a connection is open now.
    pub connected: bool,
    /// Kafka with a lag limit: times the shipper held back because the
    /// consumer group was too far behind.
    pub throttled: u64,
}

#[derive(Default)]
pub(super) struct Counts {
    pub(super) accepted: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) blocked: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) confirmed: AtomicU64,
    pub(super) confirmed_events: AtomicU64,
    pub(super) nacked: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) abandoned: AtomicU64,
    pub(super) connected: AtomicBool,
    pub(super) throttled: AtomicU64,
}

/// What the threads share.
pub(super) struct Shared {
    pub(super) queue: Queue<Event>,
    pub(super) counts: Counts,
    /// Set by `close` at its deadline: the I/O thread gives up.
    pub(super) abort: AtomicBool,
    /// Wakes the I/O thread out of a wait when `abort` is set.
    pub(super) wake: Notify,
    /// Notified when events are confirmed or abandoned (for `flush`).
    pub(super) progress: (Mutex<()>, Condvar),
    pub(super) last_error: Mutex<Option<String>>,
}

impl Shared {
    /// Events confirmed or given up.
    pub(super) fn settled(&self) -> u64 {
        // Relaxed: counts; `flush` re-reads them under the progress lock.
        self.counts.confirmed_events.load(Ordering::Relaxed)
            + self.counts.abandoned.load(Ordering::Relaxed)
    }

    pub(super) fn notify_progress(&self) {
        let _g = self.progress.0.lock().unwrap_or_else(|e| e.into_inner());
        self.progress.1.notify_all();
    }

    pub(super) fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

/// An encoded frame on its way to the broker.
pub(super) struct Pending {
    pub(super) body: Vec<u8>,
    pub(super) events: u64,
}

impl Shipper {
    /// Starts a shipper: the encoder thread, and an I/O thread that runs
    /// `io` with the shared state, the producer id and the encoded frames
    /// (at most `max_in_flight` waiting in the channel).
    pub(super) fn start<F>(
        capacity: usize,
        batch_size: usize,
        max_frame: usize,
        max_in_flight: usize,
        producer: Option<u64>,
        overflow: Overflow,
        io: F,
    ) -> Result<Self, BrokerError>
    where
        F: FnOnce(&Shared, u64, mpsc::Receiver<Pending>) + Send + 'static,
    {
        if capacity == 0 || batch_size == 0 || max_in_flight == 0 {
            return Err(BrokerError::Config(format!(
                "capacity, batch_size and max_in_flight must be >= 1, got {capacity}, {batch_size} and {max_in_flight}"
            )));
        }
        if max_frame < MIN_FRAME_BYTES {
            return Err(BrokerError::Config(format!(
                "max_frame_bytes must be >= {MIN_FRAME_BYTES} (a frame of one event with the longest name), got {max_frame}"
            )));
        }
        let queue = Queue::try_new(capacity)
            .map_err(|e| BrokerError::Config(format!("capacity {capacity}: {e}")))?;
        let producer = producer.unwrap_or_else(FrameBatcher::random_producer);
        let shared = StdArc::new(Shared {
            queue,
            counts: Counts::default(),
            abort: AtomicBool::new(false),
            wake: Notify::new(),
            progress: (Mutex::new(()), Condvar::new()),
            last_error: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(max_in_flight);
        // A frame holds at most MAX_NAMES names: one per event at worst.
        let batch = batch_size.min(MAX_EVENTS).min(MAX_NAMES);
        let sh = StdArc::clone(&shared);
        let encoder = spawn_named("ringstat-shipper-encode".into(), move || {
            encode(&sh, batch, max_frame, producer, &tx);
        })
        .map_err(BrokerError::Spawn)?;
        let sh = StdArc::clone(&shared);
        let io = spawn_named("ringstat-shipper-io".into(), move || {
            io(&sh, producer, rx);
            sh.notify_progress();
        });
        let io = match io {
            Ok(t) => t,
            Err(e) => {
                shared.queue.close();
                let _ = encoder.join();
                return Err(BrokerError::Spawn(e));
            }
        };
        Ok(Self {
            shared,
            producer,
            overflow,
            threads: Mutex::new(Some((encoder, io))),
        })
    }
}

/// Ships events to a broker in frames, each confirmed by the broker (see
/// the [module docs](super); made by `Shipper::builder` for RabbitMQ,
/// `kafka::ShipperBuilder` for Kafka).
///
/// [`send`](Self::send) puts the event into a bounded local queue and
/// returns; an encoder thread takes up to `batch_size` events at a time
/// and encodes them as one frame (the producer id, the next sequence); an
/// I/O thread publishes the frames (persistent to a durable queue, or to a
/// topic with `acks=all`), at most `max_in_flight` unconfirmed, and counts
/// each confirm. A lost
/// connection is made again with backoff and the unconfirmed frames are
/// published again, oldest first. While the broker is slow or down the
/// frames wait, then the local queue fills, and sends follow the
/// [`Overflow`] policy.
///
/// Call [`close`](Self::close) before exiting; dropping the shipper closes
/// it, waiting at most 5 s.
pub struct Shipper {
    shared: StdArc<Shared>,
    producer: u64,
    overflow: Overflow,
    threads: Mutex<Option<(thread::JoinHandle<()>, thread::JoinHandle<()>)>>,
}

impl fmt::Debug for Shipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shipper")
            .field("producer", &self.producer)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How long a dropped [`Shipper`] waits for its last confirms.
const DROP_WAIT: Duration = Duration::from_secs(5);

impl Shipper {
    /// The producer id of this shipper's frames.
    #[must_use]
    pub fn producer(&self) -> u64 {
        self.producer
    }

    /// Buffers one event for shipping.
    ///
    /// # Errors
    ///
    /// [`SendError::Invalid`] for an event the frame format cannot carry,
    /// [`SendError::Full`] when the [`Overflow`] policy gives up,
    /// [`SendError::Closed`] after [`close`](Self::close); the event comes
    /// back in each.
    pub fn send(&self, event: Event) -> Result<(), SendError> {
        if let Err(e) = event.check() {
            return Err(SendError::Invalid(event, e));
        }
        let c = &self.shared.counts;
        let q = &self.shared.queue;
        let r = match q.try_push(event) {
            Err(PushError::Full(event)) => match self.overflow {
                Overflow::Reject => Err(PushError::Full(event)),
                Overflow::Block { timeout } => {
                    // Relaxed (all counts): statistics.
                    c.blocked.fetch_add(1, Ordering::Relaxed);
                    q.push_until(event, timeout.and_then(|t| Instant::now().checked_add(t)))
                }
            },
            r => r,
        };
        match r {
            Ok(()) => {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(PushError::Full(e)) => {
                c.rejected.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Full(e))
            }
            Err(PushError::Closed(e)) => Err(SendError::Closed(e)),
        }
    }

    /// The counts so far.
    #[must_use]
    pub fn stats(&self) -> ShipperStats {
        let c = &self.shared.counts;
        // Relaxed: statistics, each read on its own.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let abandoned = get(&c.abandoned);
        let confirmed_events = get(&c.confirmed_events);
        ShipperStats {
            accepted: get(&c.accepted),
            rejected: get(&c.rejected),
            blocked: get(&c.blocked),
            buffered: get(&c.accepted).saturating_sub(confirmed_events + abandoned),
            published: get(&c.published),
            confirmed: get(&c.confirmed),
            confirmed_events,
            nacked: get(&c.nacked),
            reconnects: get(&c.reconnects),
            connect_failures: get(&c.connect_failures),
            abandoned,
            connected: c.connected.load(Ordering::Relaxed),
            throttled: get(&c.throttled),
        }
    }

    /// The last connection or publishing error, if any (for display: the
    /// shipper retries by itself).
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until every event accepted before the call is confirmed by
    /// the broker (or abandoned by a close), at most `timeout` (`None`:
    /// as long as it takes); `true` if they are.
    pub fn flush(&self, timeout: Option<Duration>) -> bool {
        // Relaxed: every send counted here returned before this call.
        let target = self.shared.counts.accepted.load(Ordering::Relaxed);
        self.wait_settled(target, timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    fn wait_settled(&self, target: u64, deadline: Option<Instant>) -> bool {
        let (lock, cv) = &self.shared.progress;
        let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.shared.settled() >= target {
                return true;
            }
            // A bounded wait re-checks even if a notification raced ahead
            // of the lock.
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

    /// Stops accepting events, ships every event buffered and waits for
    /// the confirms, at most `timeout` (`None`: as long as it takes); then
    /// stops the threads. At the deadline the events not confirmed are
    /// given up and counted in [`ShipperStats::abandoned`]. `true` if
    /// everything accepted was confirmed. Later calls return at once.
    pub fn close(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.shared.queue.close();
        // Relaxed: no send is accepted after the close above.
        let target = self.shared.counts.accepted.load(Ordering::Relaxed);
        let Some((encoder, io)) = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return self.shared.counts.abandoned.load(Ordering::Relaxed) == 0;
        };
        if !self.wait_settled(target, deadline) {
            // Relaxed: a request; the I/O thread re-reads it after each wake.
            self.shared.abort.store(true, Ordering::Relaxed);
            self.shared.wake.notify_one();
        }
        let _ = io.join();
        let _ = encoder.join();
        self.shared.counts.abandoned.load(Ordering::Relaxed) == 0
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.close(Some(DROP_WAIT));
    }
}

/// The encoder thread: batches from the queue into frames of at most
/// `max_frame` bytes (a batch that would be larger is split), until the
/// queue is closed and empty. Frames the I/O thread will not take any more
/// (it gave up) are counted as abandoned.
fn encode(sh: &Shared, batch: usize, max_frame: usize, producer: u64, tx: &mpsc::Sender<Pending>) {
    let mut events = Vec::with_capacity(batch);
    let mut b = FrameBuilder::new();
    let mut sequence = 0u64;
    let mut io_gone = false;
    let mut ship = |b: &mut FrameBuilder, io_gone: &mut bool| {
        let n = b.len() as u64;
        if *io_gone {
            // Relaxed: statistics.
            sh.counts.abandoned.fetch_add(n, Ordering::Relaxed);
            sh.notify_progress();
            let _ = b.finish(producer, 0);
            return;
        }
        sequence += 1;
        let frame = b.finish(producer, sequence);
        let Ok(body) = frame.encode() else {
            unreachable!("checked events always encode");
        };
        if tx.blocking_send(Pending { body, events: n }).is_err() {
            *io_gone = true;
            sh.counts.abandoned.fetch_add(n, Ordering::Relaxed);
            sh.notify_progress();
        }
    };
    loop {
        events.clear();
        if sh.queue.pop_batch(&mut events, batch).is_err() {
            break; // closed and drained
        }
        for e in &events {
            // Every event was checked by `send`, a batch is at most
            // MAX_EVENTS events and MAX_NAMES names, and a frame of one
            // event fits in MIN_FRAME_BYTES: only the size can stop it.
            if b.push_within(max_frame, e.op, &e.name, e.key, e.value, e.ts) != Ok(true) {
                debug_assert!(!b.is_empty(), "one event always fits");
                ship(&mut b, &mut io_gone);
                let pushed = b.push(e.op, &e.name, e.key, e.value, e.ts);
                debug_assert!(pushed.is_ok());
            }
        }
        if !b.is_empty() {
            ship(&mut b, &mut io_gone);
        }
    }
}

/// Sleeps `d`, or less if the shipper is aborted.
pub(super) async fn pause(sh: &Shared, d: Duration) {
    let _ = tokio::time::timeout(d, sh.wake.notified()).await;
}
