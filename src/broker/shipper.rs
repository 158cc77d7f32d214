//! [`Shipper`]: events -> bounded queue -> frames -> RabbitMQ with confirms.

use core::fmt;
use core::future::poll_fn;
use core::pin::{pin, Pin};
use core::task::Poll;
use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use tokio::sync::{mpsc, Notify};

use super::{
    open, parse_url, runtime, unless, Backoff, BrokerError, Event, SendError, DEFAULT_QUEUE,
};
use crate::queue::{Closed, PushError, Queue};
use crate::sync::{spawn_named, thread, AtomicBool, AtomicU64, Condvar, Mutex, Ordering, StdArc};
use crate::wire::{FrameBatcher, FrameBuilder, MAX_EVENTS, MAX_NAMES};

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
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    rejected: AtomicU64,
    blocked: AtomicU64,
    published: AtomicU64,
    confirmed: AtomicU64,
    confirmed_events: AtomicU64,
    nacked: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    abandoned: AtomicU64,
    connected: AtomicBool,
}

/// What the threads share.
struct Shared {
    queue: Queue<Event>,
    counts: Counts,
    /// Set by `close` at its deadline: the I/O thread gives up.
    abort: AtomicBool,
    /// Wakes the I/O thread out of a wait when `abort` is set.
    wake: Notify,
    /// Notified when events are confirmed or abandoned (for `flush`).
    progress: (Mutex<()>, Condvar),
    last_error: Mutex<Option<String>>,
}

impl Shared {
    /// Events confirmed or given up.
    fn settled(&self) -> u64 {
        // Relaxed: counts; `flush` re-reads them under the progress lock.
        self.counts.confirmed_events.load(Ordering::Relaxed)
            + self.counts.abandoned.load(Ordering::Relaxed)
    }

    fn notify_progress(&self) {
        let _g = self.progress.0.lock().unwrap_or_else(|e| e.into_inner());
        self.progress.1.notify_all();
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

/// An encoded frame on its way to the broker.
struct Pending {
    body: Vec<u8>,
    events: u64,
}

/// How a [`Shipper`] is made: [`Shipper::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ShipperBuilder {
    url: String,
    queue: String,
    producer: Option<u64>,
    capacity: usize,
    batch_size: usize,
    max_in_flight: usize,
    overflow: Overflow,
    backoff: (Duration, Duration),
    confirm_timeout: Duration,
}

impl ShipperBuilder {
    /// The durable queue to publish to (default `"ringstat.events"`).
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.to_owned();
        self
    }

    /// The producer id of the frames (default: a random one).
    pub fn producer(mut self, id: u64) -> Self {
        self.producer = Some(id);
        self
    }

    /// Events the local buffer holds (default 65 536).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Most events per frame (default 4096).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Most frames published and not confirmed yet (default 8). The
    /// memory is at most `capacity` events plus `2 * max_in_flight`
    /// frames.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// What a send does when the buffer is full (default: wait).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// Reconnection delays: from `min`, doubling up to `max` (default
    /// 50 ms to 2 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// How long the oldest frame in flight may wait for its confirm before
    /// the connection is taken as lost (default 30 s).
    pub fn confirm_timeout(mut self, d: Duration) -> Self {
        self.confirm_timeout = d;
        self
    }

    /// Starts the shipper's threads; the connection is made in the
    /// background (events are buffered meanwhile).
    ///
    /// # Errors
    ///
    /// [`BrokerError::Url`] for a URL lapin cannot read,
    /// [`BrokerError::Config`] for a zero capacity, batch size or window,
    /// [`BrokerError::Spawn`].
    pub fn build(self) -> Result<Shipper, BrokerError> {
        parse_url(&self.url)?;
        if self.capacity == 0 || self.batch_size == 0 || self.max_in_flight == 0 {
            return Err(BrokerError::Config(format!(
                "capacity, batch_size and max_in_flight must be >= 1, got {}, {} and {}",
                self.capacity, self.batch_size, self.max_in_flight
            )));
        }
        let queue = Queue::try_new(self.capacity)
            .map_err(|e| BrokerError::Config(format!("capacity {}: {e}", self.capacity)))?;
        let producer = self.producer.unwrap_or_else(FrameBatcher::random_producer);
        let shared = StdArc::new(Shared {
            queue,
            counts: Counts::default(),
            abort: AtomicBool::new(false),
            wake: Notify::new(),
            progress: (Mutex::new(()), Condvar::new()),
            last_error: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(self.max_in_flight);
        // A frame holds at most MAX_NAMES names: one per event at worst.
        let batch = self.batch_size.min(MAX_EVENTS).min(MAX_NAMES);
        let sh = StdArc::clone(&shared);
        let encoder = spawn_named("ringstat-shipper-encode".into(), move || {
            encode(&sh, batch, producer, &tx);
        })
        .map_err(BrokerError::Spawn)?;
        let sh = StdArc::clone(&shared);
        let cfg = self.clone();
        let io = spawn_named("ringstat-shipper-io".into(), move || {
            match runtime() {
                Ok(rt) => rt.block_on(publish(&sh, &cfg, rx)),
                Err(e) => {
                    sh.set_error(format!("cannot start the tokio runtime: {e}"));
                    drop(rx);
                }
            }
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
        Ok(Shipper {
            shared,
            producer,
            overflow: self.overflow,
            threads: Mutex::new(Some((encoder, io))),
        })
    }
}

/// Ships events to a RabbitMQ queue in frames, with publisher confirms
/// (see the [module docs](super)).
///
/// [`send`](Self::send) puts the event into a bounded local queue and
/// returns; an encoder thread takes up to `batch_size` events at a time
/// and encodes them as one frame (the producer id, the next sequence); an
/// I/O thread publishes the frames persistent to the durable queue, at
/// most `max_in_flight` unconfirmed, and counts each confirm. A lost
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
    /// A builder for a shipper to the broker at `url`
    /// (`amqp://user:pass@host:port/vhost`, the vhost `/` written `%2F`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::broker::{Overflow, Shipper};
    /// // The connection is made in the background; a bad URL fails here.
    /// assert!(Shipper::builder("http://nope").build().is_err());
    /// let b = Shipper::builder("amqp://127.0.0.1:5672/%2F")
    ///     .overflow(Overflow::Reject)
    ///     .capacity(1024);
    /// # let _ = b;
    /// ```
    pub fn builder(url: &str) -> ShipperBuilder {
        ShipperBuilder {
            url: url.to_owned(),
            queue: DEFAULT_QUEUE.to_owned(),
            producer: None,
            capacity: 65_536,
            batch_size: 4096,
            max_in_flight: 8,
            overflow: Overflow::default(),
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
            confirm_timeout: Duration::from_secs(30),
        }
    }

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

/// The encoder thread: batches from the queue into frames, until the
/// queue is closed and empty. Frames the I/O thread will not take any more
/// (it gave up) are counted as abandoned.
fn encode(sh: &Shared, batch: usize, producer: u64, tx: &mpsc::Sender<Pending>) {
    let mut events = Vec::with_capacity(batch);
    let mut b = FrameBuilder::new();
    let mut sequence = 0u64;
    let mut io_gone = false;
    loop {
        events.clear();
        let n = match sh.queue.pop_batch(&mut events, batch) {
            Ok(n) => n as u64,
            Err(Closed) => break,
        };
        if io_gone {
            // Relaxed: statistics.
            sh.counts.abandoned.fetch_add(n, Ordering::Relaxed);
            sh.notify_progress();
            continue;
        }
        for e in &events {
            // Every event was checked by `send`, a batch is at most
            // MAX_EVENTS events and MAX_NAMES names: this cannot fail.
            let pushed = b.push(e.op, &e.name, e.key, e.value, e.ts);
            debug_assert!(pushed.is_ok());
        }
        sequence += 1;
        let frame = b.finish(producer, sequence);
        let Ok(body) = frame.encode() else {
            unreachable!("checked events always encode");
        };
        if tx.blocking_send(Pending { body, events: n }).is_err() {
            io_gone = true;
            sh.counts.abandoned.fetch_add(n, Ordering::Relaxed);
            sh.notify_progress();
        }
    }
}

/// What woke the I/O loop.
// One lives briefly on the stack per wake-up: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Next {
    Frame(Option<Pending>),
    Confirm(lapin::Result<Confirmation>),
    ConfirmTimeout,
    Abort,
}

/// The I/O thread's loop: publishes frames in order, several in flight,
/// until the encoder is done and every frame is confirmed, or `abort`.
async fn publish(sh: &Shared, cfg: &ShipperBuilder, mut rx: mpsc::Receiver<Pending>) {
    let c = &sh.counts;
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut conn: Option<(Connection, Channel)> = None;
    let mut ever = false;
    // Frames to publish, oldest first (those to publish again in front).
    let mut todo: VecDeque<Pending> = VecDeque::new();
    let mut inflight: VecDeque<(Pending, PublisherConfirm)> = VecDeque::new();
    let mut oldest_since = tokio::time::Instant::now();
    let mut rx_open = true;
    let mut backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
    // Until the producer's first frame is confirmed it is alone in flight.
    let mut first_confirmed = false;
    // Relaxed (all loads of `abort`): a request, re-read after every wake.
    while !sh.abort.load(Ordering::Relaxed) {
        if !rx_open && todo.is_empty() && inflight.is_empty() {
            break;
        }
        let Some((_, ch)) = &conn else {
            match unless(&sh.wake, &sh.abort, open(&cfg.url, &cfg.queue, true)).await {
                None => break,
                Some(Ok(cc)) => {
                    if ever {
                        c.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    ever = true;
                    c.connected.store(true, Ordering::Relaxed);
                    conn = Some(cc);
                }
                Some(Err(e)) => {
                    c.connect_failures.fetch_add(1, Ordering::Relaxed);
                    sh.set_error(e);
                    pause(sh, backoff.step()).await;
                }
            }
            continue;
        };
        let window = if first_confirmed {
            cfg.max_in_flight
        } else {
            1
        };
        if inflight.len() < window {
            if let Some(p) = todo.pop_front() {
                let publish = ch.basic_publish(
                    "".into(),
                    cfg.queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &p.body,
                    props.clone(),
                );
                let Some(sent) = unless(&sh.wake, &sh.abort, publish).await else {
                    todo.push_front(p);
                    break;
                };
                match sent {
                    Ok(confirm) => {
                        c.published.fetch_add(1, Ordering::Relaxed);
                        if inflight.is_empty() {
                            oldest_since = tokio::time::Instant::now();
                        }
                        inflight.push_back((p, confirm));
                    }
                    Err(e) => {
                        todo.push_front(p);
                        sh.set_error(e.to_string());
                        lost(sh, &mut conn, &mut inflight, &mut todo);
                        pause(sh, backoff.step()).await;
                    }
                }
                continue;
            }
        }
        let take = rx_open && inflight.len() < window;
        let next = {
            let mut abort = pin!(sh.wake.notified());
            let mut timer = pin!(tokio::time::sleep_until(oldest_since + cfg.confirm_timeout));
            poll_fn(|cx| {
                if abort.as_mut().poll(cx).is_ready() || sh.abort.load(Ordering::Relaxed) {
                    return Poll::Ready(Next::Abort);
                }
                if let Some((_, confirm)) = inflight.front_mut() {
                    if let Poll::Ready(r) = Pin::new(confirm).poll(cx) {
                        return Poll::Ready(Next::Confirm(r));
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Next::ConfirmTimeout);
                    }
                }
                if take {
                    if let Poll::Ready(f) = rx.poll_recv(cx) {
                        return Poll::Ready(Next::Frame(f));
                    }
                }
                Poll::Pending
            })
            .await
        };
        match next {
            Next::Abort => break,
            Next::Frame(Some(p)) => todo.push_back(p),
            Next::Frame(None) => rx_open = false,
            Next::Confirm(Ok(Confirmation::Ack(None))) => {
                let Some((p, _)) = inflight.pop_front() else {
                    continue;
                };
                oldest_since = tokio::time::Instant::now();
                first_confirmed = true;
                backoff.reset();
                c.confirmed.fetch_add(1, Ordering::Relaxed);
                c.confirmed_events.fetch_add(p.events, Ordering::Relaxed);
                sh.notify_progress();
            }
            Next::Confirm(Ok(refused)) => {
                // Nacked, or returned unroutable (the queue was deleted):
                // publish it again after the backoff, on a new connection
                // (which declares the queue again).
                c.nacked.fetch_add(1, Ordering::Relaxed);
                sh.set_error(format!("the broker refused a frame: {refused:?}"));
                lost(sh, &mut conn, &mut inflight, &mut todo);
                pause(sh, backoff.step()).await;
            }
            Next::Confirm(Err(e)) => {
                sh.set_error(e.to_string());
                lost(sh, &mut conn, &mut inflight, &mut todo);
                pause(sh, backoff.step()).await;
            }
            Next::ConfirmTimeout => {
                sh.set_error("no publisher confirm in time: reconnecting".into());
                lost(sh, &mut conn, &mut inflight, &mut todo);
            }
        }
    }
    // Given up (abort) or done: whatever is left is abandoned.
    rx.close();
    let mut left: u64 = todo
        .iter()
        .chain(inflight.iter().map(|(p, _)| p))
        .map(|p| p.events)
        .sum();
    while let Ok(p) = rx.try_recv() {
        left += p.events;
    }
    c.abandoned.fetch_add(left, Ordering::Relaxed);
    c.connected.store(false, Ordering::Relaxed);
    if let Some((conn, _)) = conn {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into())).await;
    }
    sh.notify_progress();
}

/// The connection is lost (or unusable): drop it and put the frames in
/// flight back in front of the others, in order.
fn lost(
    sh: &Shared,
    conn: &mut Option<(Connection, Channel)>,
    inflight: &mut VecDeque<(Pending, PublisherConfirm)>,
    todo: &mut VecDeque<Pending>,
) {
    *conn = None;
    // Relaxed: a status for display.
    sh.counts.connected.store(false, Ordering::Relaxed);
    while let Some((p, _)) = inflight.pop_back() {
        todo.push_front(p);
    }
}

/// Sleeps `d`, or less if the shipper is aborted.
async fn pause(sh: &Shared, d: Duration) {
    let _ = tokio::time::timeout(d, sh.wake.notified()).await;
}
