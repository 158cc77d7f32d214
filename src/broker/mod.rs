//! Events through RabbitMQ or Kafka, applied exactly once in effect (cargo
//! feature `rabbitmq`: [lapin](https://docs.rs/lapin) without TLS, on a
//! tokio runtime of its own per background thread; cargo feature `kafka`:
//! the same [`Shipper`] and [`Consumer`] over a topic, see `broker::kafka`). The
//! rest of this page describes RabbitMQ.
//!
//! - [`Shipper`]: producer threads [`send`](Shipper::send) [`Event`]s into
//!   a bounded ringstat [`Queue`](crate::Queue); a background thread takes
//!   them in batches, encodes each batch as one versioned event frame
//!   (producer id, sequence; format in [`wire`](crate::wire)) and publishes
//!   it persistent to a durable queue with publisher confirms, several
//!   frames in flight. A broker that is down is reconnected with
//!   exponential backoff and the unconfirmed frames are published again
//!   (same sequence numbers).
//! - [`Consumer`]: a background thread consumes frames (at most
//!   `prefetch` unacknowledged), drops the ones it applied already
//!   ([`Dedup`](crate::wire::Dedup), by producer id and sequence), applies
//!   the others to a [`Pipeline`](crate::Pipeline) by metric name
//!   ([`wire::apply`](crate::wire::apply)) and acknowledges each after
//!   applying it.
//!
//! Frames are the same bytes as the Python `ringstat.broker` writes and
//! reads (the same encoder, the same durable classic queue, persistent
//! messages): a Python shipper can feed a Rust consumer and the reverse.
//!
//! # Guarantees
//!
//! - **Nothing silently dropped.** An event a [`Shipper`] accepted is
//!   confirmed by the broker, or, if [`close`](Shipper::close) gives up at
//!   its deadline, counted in [`ShipperStats::abandoned`]. An event it did
//!   not accept comes back to the caller in the [`SendError`], counted in
//!   [`ShipperStats::rejected`].
//! - **Overflow** (the local buffer is full because the broker is slow or
//!   down) follows the [`Overflow`] policy: wait for room (at most a
//!   timeout), or refuse at once.
//! - **Exactly once in effect.** Publishing again after a lost connection
//!   or a refusal, and redelivery after a consumer's reconnect, make
//!   duplicates; the consumer's [`Dedup`](crate::wire::Dedup) drops them.
//!   A new producer's first frame is published alone (no second frame in
//!   flight until it is confirmed), so no later frame of it can reach the
//!   queue before it: a fresh consumer's dedup starts each producer at its
//!   oldest frame.
//!
//! RabbitMQ streams ([`ShipperBuilder::stream`],
//! [`ConsumerBuilder::stream_offset`]) are read from an offset and, with
//! [`ConsumerBuilder::checkpoint`], resumed after a crash with exact
//! statistics; [`ShipperBuilder::max_length`] makes a classic queue that
//! refuses publishes when full (a slow consumer pushes back).
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(feature = "rabbitmq")] {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ringstat::broker::{Consumer, Event, Shipper};
//! use ringstat::{Pipeline, Registry};
//!
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2F";
//! let shipper = Shipper::builder(url).queue("ringstat.events").build()?;
//! for user in 0..1000u64 {
//!     shipper.send(Event::count("logins", 1))?;
//!     shipper.send(Event::seen("users", user))?;
//! }
//! assert!(shipper.close(Some(Duration::from_secs(10))));
//!
//! let registry = Registry::new();
//! let pipeline = Arc::new(Pipeline::new(&registry)?);
//! let consumer = Consumer::builder(url, pipeline.clone()).queue("ringstat.events").start()?;
//! assert!(consumer.wait_events(2000, Duration::from_secs(10)));
//! consumer.stop();
//! pipeline.flush();
//! assert_eq!(registry.counter("logins", &[])?.get(), 1000);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;
use std::borrow::Cow;
use std::time::Duration;

use tokio::sync::Notify;

use crate::pipeline::Op;
use crate::sync::{AtomicBool, Ordering};
use crate::wire::{FrameError, MAX_NAME_LEN};

mod checkpoint;
mod consumer;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
mod shipper;

pub use consumer::{Consumer, ConsumerStats};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{ConsumerBuilder, ShipperBuilder, StreamOffset};
pub use shipper::{Overflow, Shipper, ShipperStats, MIN_FRAME_BYTES};

/// The queue both sides use unless told otherwise (as in Python).
pub const DEFAULT_QUEUE: &str = "ringstat.events";

/// How long one connection attempt may take before it counts as failed.
#[cfg(feature = "rabbitmq")]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One event to ship: what [`FrameBuilder::push`](crate::wire::FrameBuilder::push)
/// takes, with the metric's name owned (or `'static`).
///
/// # Examples
///
/// ```
/// use ringstat::broker::Event;
/// let e = Event::start("online", 42).at(1_000);
/// assert_eq!((e.key, e.ts), (42, 1_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// The operation.
    pub op: Op,
    /// The metric's name (1 to [`MAX_NAME_LEN`] bytes).
    pub name: Cow<'static, str>,
    /// The entity (0 if none).
    pub key: u64,
    /// The value: a `u64`, or an `i64`'s bits for gauges.
    pub value: u64,
    /// Nanoseconds (0: when applied).
    pub ts: u64,
}

impl Event {
    /// An event of any op.
    #[must_use]
    pub fn new(op: Op, name: impl Into<Cow<'static, str>>, key: u64, value: u64) -> Self {
        Self {
            op,
            name: name.into(),
            key,
            value,
            ts: 0,
        }
    }

    /// Adds `n` to the counter `name`.
    #[must_use]
    pub fn count(name: impl Into<Cow<'static, str>>, n: u64) -> Self {
        Self::new(Op::Count, name, 0, n)
    }

    /// Sets the gauge `name`.
    #[must_use]
    pub fn set(name: impl Into<Cow<'static, str>>, v: i64) -> Self {
        Self::new(Op::Set, name, 0, v as u64)
    }

    /// Adds `d` to the gauge `name`.
    #[must_use]
    pub fn gauge_add(name: impl Into<Cow<'static, str>>, d: i64) -> Self {
        Self::new(Op::GaugeAdd, name, 0, d as u64)
    }

    /// Records `v` in the histogram `name` (resolved in the consumer's
    /// pipeline beforehand).
    #[must_use]
    pub fn observe(name: impl Into<Cow<'static, str>>, v: u64) -> Self {
        Self::new(Op::Observe, name, 0, v)
    }

    /// Counts `n` events in the rate `name`.
    #[must_use]
    pub fn mark(name: impl Into<Cow<'static, str>>, n: u64) -> Self {
        Self::new(Op::Mark, name, 0, n)
    }

    /// Starts the session of `key` in the tracker `name`.
    #[must_use]
    pub fn start(name: impl Into<Cow<'static, str>>, key: u64) -> Self {
        Self::new(Op::Start, name, key, 0)
    }

    /// Ends the session of `key` in the tracker `name`.
    #[must_use]
    pub fn end(name: impl Into<Cow<'static, str>>, key: u64) -> Self {
        Self::new(Op::End, name, key, 0)
    }

    /// Counts `key` as seen by the distinct counter `name`.
    #[must_use]
    pub fn seen(name: impl Into<Cow<'static, str>>, key: u64) -> Self {
        Self::new(Op::Seen, name, key, 0)
    }

    /// The same event with the timestamp `ts` (nanoseconds).
    #[must_use]
    pub fn at(mut self, ts: u64) -> Self {
        self.ts = ts;
        self
    }

    /// The same event with the key `key`.
    #[must_use]
    pub fn with_key(mut self, key: u64) -> Self {
        self.key = key;
        self
    }

    /// Whether the frame encoder takes it (checked at send, so a batch
    /// never fails to encode).
    fn check(&self) -> Result<(), FrameError> {
        if matches!(self.op, Op::Flush) {
            return Err(FrameError::UnencodableOp);
        }
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(FrameError::TooLarge {
                field: "name length",
            });
        }
        Ok(())
    }
}

/// A [`Shipper`] or [`Consumer`] that could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum BrokerError {
    /// The connection URL does not parse (`amqp://user:pass@host:port/vhost`,
    /// `kafka://host:port[,host:port...]`).
    Url(String),
    /// A setting out of range.
    Config(String),
    /// The background thread could not be spawned.
    Spawn(std::io::Error),
    /// A consumer's checkpoint file could not be read or restored.
    Checkpoint(String),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(e) => write!(f, "bad broker URL: {e}"),
            Self::Config(e) => f.write_str(e),
            Self::Spawn(e) => write!(f, "cannot spawn the broker thread: {e}"),
            Self::Checkpoint(e) => write!(f, "cannot resume from the checkpoint: {e}"),
        }
    }
}

impl std::error::Error for BrokerError {}

/// An event [`Shipper::send`] did not accept; it comes back to the caller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SendError {
    /// The local buffer stayed full (the [`Overflow`] policy gave up).
    Full(Event),
    /// The shipper is closing or closed.
    Closed(Event),
    /// The event cannot be encoded (an empty or too long name).
    Invalid(Event, FrameError),
}

impl SendError {
    /// The event back.
    #[must_use]
    pub fn into_inner(self) -> Event {
        match self {
            Self::Full(e) | Self::Closed(e) | Self::Invalid(e, _) => e,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => {
                f.write_str("the shipper's buffer is full (the broker is slow or down)")
            }
            Self::Closed(_) => f.write_str("the shipper is closed"),
            Self::Invalid(_, e) => write!(f, "the event cannot be shipped: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Runs `fut` unless `wake` is notified or `flag` is set first (`None`
/// then): a stop or an abort interrupts a connection attempt or a publish.
async fn unless<T>(wake: &Notify, flag: &AtomicBool, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = pin!(fut);
    let mut woken = pin!(wake.notified());
    poll_fn(|cx| {
        // Relaxed: a request flag, re-read at every wake-up.
        if woken.as_mut().poll(cx).is_ready() || flag.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// A current-thread tokio runtime for one background thread.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; doubles the next one.
    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}
