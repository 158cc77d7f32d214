//! The RabbitMQ side (cargo feature `rabbitmq`): [`ShipperBuilder`] and
//! [`ConsumerBuilder`], and their I/O loops on lapin.

use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::task::Poll;
use std::collections::VecDeque;
use std::time::Duration;

use futures_core::Stream;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use tokio::sync::mpsc;

use super::checkpoint::{Position, Saver};
use super::consumer::{handle, Shared as ConsumerShared};
use super::shipper::{pause, Pending, Shared};
use super::{
    runtime, unless, Backoff, BrokerError, Consumer, Overflow, Shipper, CONNECT_TIMEOUT,
    DEFAULT_QUEUE,
};
use crate::pipeline::Pipeline;
use crate::sync::{Ordering, StdArc};
use crate::wire::Dedup;

/// Checks the URL the way lapin will read it.
fn parse_url(url: &str) -> Result<(), BrokerError> {
    url.parse::<lapin::uri::AMQPUri>().map(|_| ()).map_err(|e| {
        BrokerError::Url(format!(
            "{e} (an AMQP URL is amqp://user:pass@host:port/vhost)"
        ))
    })
}

/// How the durable queue is declared, as the Python side declares it: a
/// classic queue (with `max_length` frames, a full queue refuses publishes:
/// `reject-publish`), or a RabbitMQ stream (an append-only log read from
/// an offset). Shipper and consumer must agree: the broker refuses a
/// declaration that differs from the queue's.
#[derive(Debug, Clone, Copy, Default)]
struct Declare {
    stream: bool,
    max_length: Option<u64>,
}

impl Declare {
    fn check(self) -> Result<(), BrokerError> {
        match self.max_length {
            Some(_) if self.stream => Err(BrokerError::Config(
                "max_length is for classic queues; a stream keeps everything".into(),
            )),
            Some(0) => Err(BrokerError::Config("max_length must be >= 1".into())),
            _ => Ok(()),
        }
    }

    fn arguments(self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.stream {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("stream".into()),
            );
        } else if let Some(n) = self.max_length {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            args.insert("x-max-length".into(), AMQPValue::LongLongInt(n));
            args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
        }
        args
    }
}

/// A connection and a channel on which `queue` is declared (see
/// [`Declare`]), with publisher confirms if `confirms`. The error is a
/// message for `last_error`.
async fn open(
    url: &str,
    queue: &str,
    declare: Declare,
    confirms: bool,
) -> Result<(Connection, Channel), String> {
    let attempt = async {
        let conn = Connection::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            declare.arguments(),
        )
        .await?;
        if confirms {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        Ok::<_, lapin::Error>((conn, ch))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("connecting to the broker timed out".to_owned()),
    }
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
    max_frame_bytes: usize,
    max_in_flight: usize,
    overflow: Overflow,
    backoff: (Duration, Duration),
    confirm_timeout: Duration,
    declare: Declare,
}

impl ShipperBuilder {
    /// Publishes to a RabbitMQ stream (declared with `x-queue-type:
    /// stream`; read by a consumer with a
    /// [`stream_offset`](ConsumerBuilder::stream_offset)), not a classic
    /// queue.
    pub fn stream(mut self) -> Self {
        self.declare.stream = true;
        self
    }

    /// A classic queue of at most `n` frames that refuses publishes when
    /// full (`reject-publish`): a slow consumer pushes back, the frames
    /// wait and are published again after the backoff, the local buffer
    /// fills and sends follow the [`Overflow`] policy. Frames go one at a
    /// time (a refused frame must not be overtaken by the next). The
    /// consumer must declare the same.
    pub fn max_length(mut self, n: u64) -> Self {
        self.declare.max_length = Some(n);
        self
    }

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

    /// Most bytes per frame (default: no limit but the format's); a batch
    /// that would be larger is split into several frames. At least
    /// [`MIN_FRAME_BYTES`](super::MIN_FRAME_BYTES).
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
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
        self.declare.check()?;
        let cfg = self.clone();
        Shipper::start(
            self.capacity,
            self.batch_size,
            self.max_frame_bytes,
            self.max_in_flight,
            self.producer,
            self.overflow,
            move |sh, _, rx| match runtime() {
                Ok(rt) => rt.block_on(publish(sh, &cfg, rx)),
                Err(e) => sh.set_error(format!("cannot start the tokio runtime: {e}")),
            },
        )
    }
}

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
            max_frame_bytes: usize::MAX,
            max_in_flight: 8,
            overflow: Overflow::default(),
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
            confirm_timeout: Duration::from_secs(30),
            declare: Declare::default(),
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
            match unless(
                &sh.wake,
                &sh.abort,
                open(&cfg.url, &cfg.queue, cfg.declare, true),
            )
            .await
            {
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
        // One frame at a time until the first is confirmed, and always with
        // `max_length`: a full queue refuses a frame and may take the next,
        // which would then overtake it.
        let window = if first_confirmed && cfg.declare.max_length.is_none() {
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

/// How a [`Consumer`] is made: [`Consumer::builder`].
#[must_use]
pub struct ConsumerBuilder {
    url: String,
    queue: String,
    pipeline: StdArc<Pipeline>,
    prefetch: u16,
    dedup: Dedup,
    backoff: (Duration, Duration),
    max_length: Option<u64>,
    stream_offset: Option<StreamOffset>,
    checkpoint: Option<Saver>,
    /// The offset of the last frame applied, from the checkpoint restored
    /// by `start`.
    restored: Option<i64>,
}

/// Where a consumer of a RabbitMQ stream starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOffset {
    /// The stream's first message still kept.
    First,
    /// Messages published after the consumer attached.
    Next,
    /// The last chunk of messages.
    Last,
    /// This offset.
    Offset(u64),
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

    /// The classic queue's `max_length`, as the shipper declares it (see
    /// [`ShipperBuilder::max_length`]).
    pub fn max_length(mut self, n: u64) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Reads a RabbitMQ stream (a shipper made with
    /// [`stream`](ShipperBuilder::stream)) from `offset`; after a
    /// reconnect, from the frame after the last one applied. A stream keeps
    /// its messages whether or not they are acknowledged: a consumer with a
    /// fresh pipeline and dedup reading from [`StreamOffset::First`]
    /// replays the stream and ends with the statistics of a run never
    /// stopped.
    pub fn stream_offset(mut self, offset: StreamOffset) -> Self {
        self.stream_offset = Some(offset);
        self
    }

    /// Checkpoints to the file `path` every `every_frames` frames or
    /// `interval`, whichever comes first, and when the consumer stops
    /// (streams only: a classic queue cannot be read again): the pipeline's
    /// state, the stream offset of the last frame applied and the dedup
    /// record, written atomically in the format of the Python `Consumer`'s
    /// checkpoints (either resumes from the other's). If the file exists,
    /// [`start`](Self::start) restores it into the pipeline (which should
    /// be fresh) and reads on after its offset: killed at any moment and
    /// started again, the consumer ends with the statistics of a run never
    /// killed. Consistent when only this consumer sends to the pipeline.
    pub fn checkpoint(
        mut self,
        path: impl AsRef<std::path::Path>,
        every_frames: u64,
        interval: Duration,
    ) -> Self {
        self.checkpoint = Some(Saver::new(
            path.as_ref().to_path_buf(),
            every_frames,
            interval,
        ));
        self
    }

    /// Starts consuming in a background thread.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Url`], [`BrokerError::Config`] (`max_length` with a
    /// stream or of 0, a checkpoint without a stream or every 0 frames or
    /// 0 s), [`BrokerError::Checkpoint`] (a file that is not a stream
    /// consumer's or does not fit the pipeline; nothing is changed then),
    /// [`BrokerError::Spawn`].
    pub fn start(mut self) -> Result<Consumer, BrokerError> {
        parse_url(&self.url)?;
        self.declare().check()?;
        let mut restored = false;
        if let Some(ck) = &self.checkpoint {
            ck.check()?;
            if self.stream_offset.is_none() {
                return Err(BrokerError::Config(
                    "a checkpoint needs a stream (stream_offset): a classic queue cannot be read again"
                        .into(),
                ));
            }
            let stream = |p: &Position| matches!(p, Position::Stream(_));
            let max = self.dedup.max_pending();
            let restored_from = ck.restore(
                &self.pipeline,
                max,
                "RabbitMQ stream checkpoint (a Kafka one)",
                stream,
            )?;
            if let Some((position, dedup)) = restored_from {
                if let Position::Stream(offset) = position {
                    self.restored = offset;
                }
                self.dedup = dedup;
                restored = true;
            }
        }
        let mut cfg = self;
        let dedup = core::mem::take(&mut cfg.dedup);
        Consumer::spawn(dedup, restored, move |sh, dedup| match runtime() {
            Ok(rt) => rt.block_on(consume(sh, &cfg, dedup)),
            Err(e) => sh.set_error(format!("cannot start the tokio runtime: {e}")),
        })
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
            max_length: None,
            stream_offset: None,
            checkpoint: None,
            restored: None,
        }
    }
}

impl ConsumerBuilder {
    fn declare(&self) -> Declare {
        Declare {
            stream: self.stream_offset.is_some(),
            max_length: self.max_length,
        }
    }

    /// The `x-stream-offset` to consume from: after `last` (the last frame
    /// applied), or the setting.
    fn consume_arguments(&self, last: Option<i64>) -> FieldTable {
        let mut args = FieldTable::default();
        let Some(offset) = self.stream_offset else {
            return args;
        };
        let value = match (last, offset) {
            (Some(o), _) => AMQPValue::LongLongInt(o.saturating_add(1)),
            (None, StreamOffset::Offset(o)) => {
                AMQPValue::LongLongInt(i64::try_from(o).unwrap_or(i64::MAX))
            }
            (None, StreamOffset::First) => AMQPValue::LongString("first".into()),
            (None, StreamOffset::Next) => AMQPValue::LongString("next".into()),
            (None, StreamOffset::Last) => AMQPValue::LongString("last".into()),
        };
        args.insert("x-stream-offset".into(), value);
        args
    }
}

/// The stream offset of a delivery (`x-stream-offset` header).
fn stream_offset_of(d: &Delivery) -> Option<i64> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(o) => Some(*o),
        AMQPValue::LongInt(o) => Some(i64::from(*o)),
        AMQPValue::LongUInt(o) => Some(i64::from(*o)),
        _ => None,
    }
}

/// What woke the consuming loop.
// One lives briefly on the stack per wake-up: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Delivery(Option<lapin::Result<Delivery>>),
    Stop,
}

/// Connects, consumes and reconnects until stopped or the pipeline closes.
async fn consume(sh: &ConsumerShared, cfg: &ConsumerBuilder, dedup: &mut Dedup) {
    let mut saver = cfg.checkpoint.clone();
    // The stream offset of the last frame applied (from the checkpoint).
    let mut last = cfg.restored;
    consume_loop(sh, cfg, dedup, &mut saver, &mut last).await;
    if let Some(s) = &mut saver {
        s.save_if_due(sh, &cfg.pipeline, &Position::Stream(last), dedup, true);
    }
}

async fn consume_loop(
    sh: &ConsumerShared,
    cfg: &ConsumerBuilder,
    dedup: &mut Dedup,
    saver: &mut Option<Saver>,
    last: &mut Option<i64>,
) {
    let c = &sh.counts;
    let mut backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
    let mut ever = false;
    // Relaxed (all loads of `stop`): a request, re-read after every wake.
    while !sh.stop.load(Ordering::Relaxed) {
        let opened = open(&cfg.url, &cfg.queue, cfg.declare(), false);
        let (conn, ch) = match unless(&sh.wake, &sh.stop, opened).await {
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
                cfg.consume_arguments(*last),
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
                        return Poll::Ready(Wake::Stop);
                    }
                    Pin::new(&mut deliveries).poll_next(cx).map(Wake::Delivery)
                })
                .await
            };
            match next {
                Wake::Stop => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into()))
                            .await;
                    return;
                }
                Wake::Delivery(Some(Ok(d))) => {
                    // No checkpoint to resume from: pin where this run
                    // starts before applying anything ("next" and "last"
                    // move), so a consumer killed before its first regular
                    // checkpoint resumes here.
                    if let (Some(s), None, Some(first)) =
                        (saver.as_mut(), *last, stream_offset_of(&d))
                    {
                        *last = Some(first.saturating_sub(1));
                        s.save(sh, &cfg.pipeline, &Position::Stream(*last), dedup);
                    }
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
                    if cfg.stream_offset.is_some() {
                        *last = stream_offset_of(&d).or(*last);
                    }
                    if let Err(e) = d.ack(BasicAckOptions::default()).await {
                        sh.set_error(e.to_string());
                        break;
                    }
                    if let Some(s) = saver {
                        s.applied();
                        s.save_if_due(sh, &cfg.pipeline, &Position::Stream(*last), dedup, false);
                    }
                    sh.notify_progress();
                }
                Wake::Delivery(Some(Err(e))) => {
                    sh.set_error(e.to_string());
                    break;
                }
                Wake::Delivery(None) => {
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
