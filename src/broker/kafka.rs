//! The Kafka side (cargo feature `kafka`): the same [`Shipper`] and
//! [`Consumer`] as for RabbitMQ, made by [`ShipperBuilder`] and
//! [`ConsumerBuilder`] ([rdkafka](https://docs.rs/rdkafka) on the system's
//! librdkafka).
//!
//! Frames are the bytes the Python `ringstat.broker.KafkaShipper` writes and
//! `KafkaConsumer` reads: one Kafka message per frame, keyed by the producer
//! id (8 bytes, big-endian), so one producer's frames stay in one partition,
//! in order.
//!
//! - The shipper produces with `acks=all` and the idempotent producer
//!   (`enable.idempotence`: a retry inside the client writes no duplicate),
//!   at most `max_in_flight` frames unacknowledged (the producer's first
//!   frame alone), and never gives a frame up (`message.timeout.ms=0`):
//!   while the brokers are down the client reconnects with backoff, frames
//!   stay in flight, the local buffer fills and sends follow the
//!   [`Overflow`] policy. A frame whose delivery failed for
//!   good (a fatal client error) is produced again, with its sequence
//!   number, by a new client.
//! - The consumer is assigned every partition of the topic (no group
//!   rebalance: one aggregator per topic and group), starts at the group's
//!   committed offsets (or the first ones, [`StartAt`]), applies each frame
//!   then commits its offset (asynchronously, at most every 100 ms: frames
//!   applied meanwhile go with the next; synchronously when it stops), and
//!   drops duplicates by (producer, sequence) with its [`Dedup`].
//!
//! - A batch whose frame would pass
//!   [`max_frame_bytes`](ShipperBuilder::max_frame_bytes) goes as several
//!   frames.
//!
//! - [`ConsumerStats::lag`](super::ConsumerStats::lag): the messages not
//!   read yet.
//! - [`ConsumerBuilder::checkpoint`]: durable, restartable statistics (the
//!   pipeline state, the offsets and the dedup record in one file, the
//!   Python consumers' format); killed at any moment and restarted, the
//!   consumer ends with the statistics of a run never killed.
//! - [`ShipperBuilder::max_lag`]: the shipper holds back while a consumer
//!   group is too far behind.
//!
//! # Examples
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ringstat::broker::kafka::{ConsumerBuilder, ShipperBuilder, StartAt};
//! use ringstat::broker::Event;
//! use ringstat::{Pipeline, Registry};
//!
//! let url = "kafka://127.0.0.1:9092";
//! let shipper = ShipperBuilder::new(url).topic("ringstat.events").build()?;
//! for user in 0..1000u64 {
//!     shipper.send(Event::count("logins", 1))?;
//!     shipper.send(Event::seen("users", user))?;
//! }
//! assert!(shipper.close(Some(Duration::from_secs(10))));
//!
//! let registry = Registry::new();
//! let pipeline = Arc::new(Pipeline::new(&registry)?);
//! let consumer = ConsumerBuilder::new(url, pipeline.clone())
//!     .start_at(StartAt::First)
//!     .start()?;
//! assert!(consumer.wait_events(2000, Duration::from_secs(10)));
//! consumer.stop();
//! pipeline.flush();
//! assert_eq!(registry.counter("logins", &[])?.get(), 1000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::future::{poll_fn, Future};
use core::pin::{pin, Pin};
use core::task::Poll;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::CStr;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::checkpoint::{Position, Saver};
use super::consumer::{handle, Shared as ConsumerShared};
use super::shipper::{pause, Pending, Shared};
use super::{runtime, unless, Backoff, BrokerError, Overflow, DEFAULT_QUEUE};
use crate::pipeline::Pipeline;
use crate::sync::{AtomicBool, Ordering, StdArc};
use crate::wire::Dedup;

pub use super::{Consumer, Shipper};

/// How long a metadata, topic or offset request may take before the caller
/// backs off and tries again (as in Python).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The least time between two asynchronous offset commits of a consumer.
const COMMIT_EVERY: Duration = Duration::from_millis(100);

/// The bootstrap servers of `kafka://host:port[,host:port...]`.
fn servers(url: &str) -> Result<String, BrokerError> {
    let bad = || {
        BrokerError::Url(format!(
            "a Kafka URL is kafka://host:port[,host:port...], got {url:?}"
        ))
    };
    let rest = url.strip_prefix("kafka://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad());
    }
    for server in rest.split(',') {
        let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
            return Err(bad());
        }
    }
    Ok(rest.to_owned())
}

/// The settings both sides share: servers and reconnection backoff.
fn common(servers: &str, backoff: (Duration, Duration)) -> ClientConfig {
    let min = backoff.0.as_millis().max(1);
    let max = backoff.1.as_millis().max(min);
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers)
        .set("reconnect.backoff.ms", min.to_string())
        .set("reconnect.backoff.max.ms", max.to_string());
    c
}

/// Creates `topic` with `partitions` unless it exists (as a RabbitMQ queue
/// is declared). The error is a message for `last_error`.
async fn ensure_topic(servers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        common(servers, (REQUEST_TIMEOUT, REQUEST_TIMEOUT))
            .create()
            .map_err(|e| e.to_string())?;
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot reach the Kafka brokers: {e}"))?;
    let exists = md
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(());
    }
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new()
        .operation_timeout(Some(REQUEST_TIMEOUT))
        .request_timeout(Some(REQUEST_TIMEOUT));
    let created = tokio::time::timeout(REQUEST_TIMEOUT * 2, admin.create_topics([&new], &opts))
        .await
        .map_err(|_| "creating the topic timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    for r in created {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("cannot create the topic {t}: {e}")),
        }
    }
    Ok(())
}

/// Whether `e` says the connection to the brokers is gone.
fn is_down(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// The client's callbacks: notes when the brokers went down (served by the
/// client's own threads; read by the I/O loop).
#[derive(Default)]
struct Link {
    /// Set when the connection is lost; cleared by the next delivery or
    /// message, which counts a reconnect.
    down: AtomicBool,
}

/// The context given to the clients (an `Arc`: the loop reads the flags).
#[derive(Clone, Default)]
struct Ctx(StdArc<Link>);

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, _reason: &str) {
        if is_down(&error) {
            // Relaxed (all the flags of `Link`): a status, re-read by the loop.
            self.0.down.store(true, Ordering::Relaxed);
        }
    }

    // librdkafka's log lines (connection refused, ...) stay quiet: the
    // counts and `last_error` say what matters.
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
}

impl ConsumerContext for Ctx {}

// ----------------------------------------------------------------- shipper

/// How a Kafka [`Shipper`] is made: [`ShipperBuilder::new`] (or
/// [`Shipper::kafka`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct ShipperBuilder {
    url: String,
    topic: String,
    producer: Option<u64>,
    capacity: usize,
    batch_size: usize,
    max_frame_bytes: usize,
    max_in_flight: usize,
    overflow: Overflow,
    partitions: i32,
    backoff: (Duration, Duration),
    config: BTreeMap<String, String>,
    /// The consumer group whose lag holds the shipper back, and the limit.
    max_lag: Option<(String, u64)>,
}

impl ShipperBuilder {
    /// A builder for a shipper to the brokers at `url`
    /// (`kafka://host:port[,host:port...]`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::broker::kafka::ShipperBuilder;
    /// use ringstat::broker::Overflow;
    /// // The connection is made in the background; a bad URL fails here.
    /// assert!(ShipperBuilder::new("amqp://nope").build().is_err());
    /// let b = ShipperBuilder::new("kafka://127.0.0.1:9092")
    ///     .overflow(Overflow::Reject)
    ///     .capacity(1024);
    /// # let _ = b;
    /// ```
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            topic: DEFAULT_QUEUE.to_owned(),
            producer: None,
            capacity: 65_536,
            batch_size: 4096,
            max_frame_bytes: 900_000,
            max_in_flight: 4,
            overflow: Overflow::default(),
            partitions: 1,
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
            config: BTreeMap::new(),
            max_lag: None,
        }
    }

    /// Holds the shipper back while the consumer group `group` (a
    /// [`ConsumerBuilder::group`]) has `max_lag` messages or more to read in
    /// this producer's partition (default: no limit; Kafka keeps every
    /// message whether or not anyone reads it, so a slow consumer does not
    /// slow the producer by itself). Each hold is counted in
    /// [`ShipperStats::throttled`](super::ShipperStats::throttled); frames
    /// wait, the local buffer fills, and sends follow the
    /// [`Overflow`] policy. The group's committed offset is read again only
    /// while it looks behind.
    pub fn max_lag(mut self, group: &str, max_lag: u64) -> Self {
        self.max_lag = Some((group.to_owned(), max_lag));
        self
    }

    /// The topic to produce to (default `"ringstat.events"`), created if
    /// missing.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = topic.to_owned();
        self
    }

    /// Partitions of the topic if the shipper creates it (default 1).
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
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

    /// Most bytes per frame (default 900,000: under the brokers' default
    /// `message.max.bytes` of about 1 MB); a batch that would be larger is
    /// split into several frames. At least [`MIN_FRAME_BYTES`]; the
    /// producer's own `message.max.bytes` is raised to fit it.
    ///
    /// [`MIN_FRAME_BYTES`]: super::MIN_FRAME_BYTES
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Most frames produced and not acknowledged yet (default 4).
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

    /// Adds or overrides one librdkafka producer setting.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    fn client_config(&self, servers: &str) -> ClientConfig {
        let retry = self.backoff.0.as_millis().max(1).to_string();
        let mut c = common(servers, self.backoff);
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "0")
            // Never give a frame up: retry until close.
            .set("message.timeout.ms", "0")
            .set("retry.backoff.ms", retry)
            // The client's own limit, with room for the record's overhead.
            .set(
                "message.max.bytes",
                self.max_frame_bytes
                    .saturating_add(4096)
                    .clamp(1_000_000, 1_000_000_000)
                    .to_string(),
            );
        for (k, v) in &self.config {
            c.set(k, v);
        }
        c
    }

    /// Starts the shipper's threads; the topic is made and the connection
    /// opened in the background (events are buffered meanwhile).
    ///
    /// # Errors
    ///
    /// [`BrokerError::Url`] for a URL that is not
    /// `kafka://host:port[,host:port...]`, [`BrokerError::Config`] for a
    /// zero capacity, batch size, window or partition count, or a setting
    /// librdkafka refuses, [`BrokerError::Spawn`].
    pub fn build(self) -> Result<Shipper, BrokerError> {
        let servers = servers(&self.url)?;
        if self.partitions < 1 {
            return Err(BrokerError::Config(format!(
                "partitions must be >= 1, got {}",
                self.partitions
            )));
        }
        if let Some((group, n)) = &self.max_lag {
            if *n == 0 || group.is_empty() {
                return Err(BrokerError::Config(format!(
                    "max_lag must be >= 1 with a group name, got {n} and {group:?}"
                )));
            }
        }
        // Made now: a setting librdkafka refuses fails here, and the
        // idempotent producer gets its id (about 0.5 s) while the
        // application starts.
        let producer = self.make_producer(&servers)?;
        let cfg = self.clone();
        Shipper::start(
            self.capacity,
            self.batch_size,
            self.max_frame_bytes,
            self.max_in_flight,
            self.producer,
            self.overflow,
            move |sh, id, rx| match runtime() {
                Ok(rt) => rt.block_on(publish(sh, &cfg, &servers, producer, id, rx)),
                Err(e) => sh.set_error(format!("cannot start the tokio runtime: {e}")),
            },
        )
    }

    fn make_producer(&self, servers: &str) -> Result<(FutureProducer<Ctx>, Ctx), BrokerError> {
        let ctx = Ctx::default();
        let p = self
            .client_config(servers)
            .create_with_context(ctx.clone())
            .map_err(|e| BrokerError::Config(format!("Kafka producer settings: {e}")))?;
        Ok((p, ctx))
    }
}

impl Shipper {
    /// A builder for a shipper to the Kafka brokers at `url`
    /// (`kafka://host:port[,host:port...]`): [`ShipperBuilder::new`].
    pub fn kafka(url: &str) -> ShipperBuilder {
        ShipperBuilder::new(url)
    }
}

/// What woke the I/O loop.
enum Next {
    Frame(Option<Pending>),
    /// A delivery: its partition and offset, or the error.
    Delivered(Result<(i32, i64), String>),
    /// Time to look at the consumer group's lag again.
    Recheck,
    Abort,
}

/// The `max_lag` hold: how far the consumer group is behind in this
/// producer's partition, from the offsets of the frames delivered and the
/// group's committed offset (read again only while it looks behind).
struct Throttle {
    group: String,
    max_lag: u64,
    /// The producer's partition and the offset after its last frame.
    end: Option<(i32, i64)>,
    committed: i64,
    client: Option<BaseConsumer>,
    /// Holding now (counted once per hold), and the next look's delay.
    holding: bool,
    delay: Duration,
}

impl Throttle {
    fn behind(&self) -> bool {
        self.end
            .is_some_and(|(_, end)| end.saturating_sub(self.committed) >= self.max_lag as i64)
    }

    /// Whether the shipper may produce now; reads the group's committed
    /// offset if it looks behind.
    fn allows(&mut self, cfg: &ShipperBuilder, servers: &str, sh: &Shared) -> bool {
        if self.behind() {
            self.refresh(cfg, servers, sh);
        }
        let ok = !self.behind();
        if ok {
            self.holding = false;
            self.delay = cfg.backoff.0;
        } else if !self.holding {
            self.holding = true;
            // Relaxed: a statistic.
            sh.counts.throttled.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn refresh(&mut self, cfg: &ShipperBuilder, servers: &str, sh: &Shared) {
        let Some((part, _)) = self.end else { return };
        if self.client.is_none() {
            let made = common(servers, cfg.backoff)
                .set("group.id", &self.group)
                .set("enable.auto.commit", "false")
                .create();
            match made {
                Ok(c) => self.client = Some(c),
                Err(e) => return sh.set_error(format!("the lag client: {e}")),
            }
        }
        let Some(c) = &self.client else { return };
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&cfg.topic, part, Offset::Invalid)
            .is_err()
        {
            return;
        }
        match c.committed_offsets(tpl, REQUEST_TIMEOUT) {
            Ok(got) => {
                if let Some(Offset::Offset(o)) =
                    got.find_partition(&cfg.topic, part).map(|e| e.offset())
                {
                    self.committed = self.committed.max(o);
                }
            }
            Err(e) => sh.set_error(format!("cannot read the group's committed offset: {e}")),
        }
    }
}

/// The I/O thread's loop: produces frames in order, several in flight,
/// until the encoder is done and every frame is acknowledged, or `abort`.
async fn publish(
    sh: &Shared,
    cfg: &ShipperBuilder,
    servers: &str,
    first: (FutureProducer<Ctx>, Ctx),
    id: u64,
    mut rx: mpsc::Receiver<Pending>,
) {
    let c = &sh.counts;
    let key = id.to_be_bytes();
    // The producer made by `build`, used once the topic exists.
    let mut spare = Some(first);
    let mut client: Option<(FutureProducer<Ctx>, Ctx)> = None;
    let mut ever = false;
    // Frames to produce, oldest first (those to produce again in front).
    let mut todo: VecDeque<Pending> = VecDeque::new();
    let mut inflight: VecDeque<(Pending, DeliveryFuture)> = VecDeque::new();
    let mut rx_open = true;
    let mut backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
    // Until the producer's first frame is acknowledged it is alone in flight.
    let mut first_acked = false;
    let mut throttle = cfg.max_lag.as_ref().map(|(group, n)| Throttle {
        group: group.clone(),
        max_lag: *n,
        end: None,
        committed: 0,
        client: None,
        holding: false,
        delay: cfg.backoff.0,
    });
    // Relaxed (all loads of `abort` and the counts): a request, re-read
    // after every wake; statistics.
    while !sh.abort.load(Ordering::Relaxed) {
        if !rx_open && todo.is_empty() && inflight.is_empty() {
            break;
        }
        let Some((producer, ctx)) = &client else {
            let made = unless(
                &sh.wake,
                &sh.abort,
                ensure_topic(servers, &cfg.topic, cfg.partitions),
            )
            .await;
            let made = match made {
                None => break,
                Some(r) => r.and_then(|()| match spare.take() {
                    Some(p) => Ok(p),
                    None => cfg.make_producer(servers).map_err(|e| e.to_string()),
                }),
            };
            match made {
                Ok(p) => {
                    if ever {
                        c.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    ever = true;
                    c.connected.store(true, Ordering::Relaxed);
                    client = Some(p);
                }
                Err(e) => {
                    c.connect_failures.fetch_add(1, Ordering::Relaxed);
                    sh.set_error(e);
                    pause(sh, backoff.step()).await;
                }
            }
            continue;
        };
        let link = StdArc::clone(&ctx.0);
        let window = if first_acked { cfg.max_in_flight } else { 1 };
        // Held back while the consumer group is too far behind: frames wait
        // in the channel, the encoder and then the senders block.
        let held = inflight.len() < window
            && (!todo.is_empty() || rx_open)
            && throttle
                .as_mut()
                .is_some_and(|t| !t.allows(cfg, servers, sh));
        if inflight.len() < window && !held {
            if let Some(p) = todo.pop_front() {
                let record = FutureRecord::to(&cfg.topic).payload(&p.body).key(&key[..]);
                match producer.send_result(record) {
                    Ok(delivery) => {
                        c.published.fetch_add(1, Ordering::Relaxed);
                        inflight.push_back((p, delivery));
                    }
                    Err((e, _))
                        if e.rdkafka_error_code()
                            == Some(RDKafkaErrorCode::MessageSizeTooLarge) =>
                    {
                        // The brokers would never take it: its events are
                        // given up (its sequence stays a gap Dedup skips).
                        c.nacked.fetch_add(1, Ordering::Relaxed);
                        c.abandoned.fetch_add(p.events, Ordering::Relaxed);
                        sh.set_error(format!(
                            "a frame of {} bytes is too large for Kafka: {e}",
                            p.body.len()
                        ));
                        sh.notify_progress();
                    }
                    Err((e, _)) => {
                        // The client's own queue is full, or it failed: wait.
                        todo.push_front(p);
                        sh.set_error(e.to_string());
                        pause(sh, backoff.step()).await;
                    }
                }
                continue;
            }
        }
        let take = rx_open && inflight.len() < window && !held;
        let recheck_in = match &mut throttle {
            Some(t) if held => {
                let d = t.delay;
                t.delay = (d * 2).min(cfg.backoff.1);
                d
            }
            _ => Duration::from_secs(3600),
        };
        let next = {
            let mut abort = pin!(sh.wake.notified());
            let mut recheck = pin!(tokio::time::sleep(recheck_in));
            poll_fn(|cx| {
                if abort.as_mut().poll(cx).is_ready() || sh.abort.load(Ordering::Relaxed) {
                    return Poll::Ready(Next::Abort);
                }
                if let Some((_, delivery)) = inflight.front_mut() {
                    if let Poll::Ready(r) = Pin::new(delivery).poll(cx) {
                        return Poll::Ready(Next::Delivered(match r {
                            Ok(Ok(d)) => Ok((d.partition, d.offset)),
                            Ok(Err((e, _))) => Err(e.to_string()),
                            Err(_) => Err("the producer was dropped".into()),
                        }));
                    }
                }
                if held && recheck.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Next::Recheck);
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
            Next::Recheck => {}
            Next::Frame(Some(p)) => todo.push_back(p),
            Next::Frame(None) => rx_open = false,
            Next::Delivered(Ok((part, offset))) => {
                let Some((p, _)) = inflight.pop_front() else {
                    continue;
                };
                if let Some(t) = &mut throttle {
                    let end = t.end.map_or(0, |(_, e)| e).max(offset + 1);
                    t.end = Some((part, end));
                }
                first_acked = true;
                backoff.reset();
                if link.down.swap(false, Ordering::Relaxed) {
                    c.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                c.connected.store(true, Ordering::Relaxed);
                c.confirmed.fetch_add(1, Ordering::Relaxed);
                c.confirmed_events.fetch_add(p.events, Ordering::Relaxed);
                sh.notify_progress();
            }
            Next::Delivered(Err(e)) => {
                // Failed for good (a fatal client error): every frame in
                // flight goes again, in order, from a new client.
                c.nacked.fetch_add(1, Ordering::Relaxed);
                sh.set_error(format!("a frame was not delivered: {e}"));
                client = None;
                c.connected.store(false, Ordering::Relaxed);
                while let Some((p, _)) = inflight.pop_back() {
                    todo.push_front(p);
                }
                pause(sh, backoff.step()).await;
            }
        }
        if link.down.load(Ordering::Relaxed) {
            c.connected.store(false, Ordering::Relaxed);
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
    // Dropping the client purges what it still holds.
    drop(inflight);
    drop(client);
    drop(spare);
    sh.notify_progress();
}

// ---------------------------------------------------------------- consumer

/// Where a Kafka [`Consumer`] starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// The group's committed offset, or the first offset if none.
    #[default]
    Committed,
    /// The first offset: an aggregator with a fresh pipeline and dedup
    /// replays the topic.
    First,
}

/// How a Kafka [`Consumer`] is made: [`ConsumerBuilder::new`] (or
/// [`Consumer::kafka`]).
#[must_use]
pub struct ConsumerBuilder {
    url: String,
    topic: String,
    group: String,
    start_at: StartAt,
    partitions: i32,
    prefetch_bytes: usize,
    pipeline: StdArc<Pipeline>,
    dedup: Dedup,
    backoff: (Duration, Duration),
    config: BTreeMap<String, String>,
    checkpoint: Option<Saver>,
    /// The offsets to start at, from the checkpoint restored by `start`.
    restored: BTreeMap<i32, i64>,
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("start_at", &self.start_at)
            .finish_non_exhaustive()
    }
}

impl ConsumerBuilder {
    /// A builder for a consumer of the Kafka brokers at `url`
    /// (`kafka://host:port[,host:port...]`) feeding `pipeline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ringstat::broker::kafka::ConsumerBuilder;
    /// let p = Arc::new(ringstat::Pipeline::new(&ringstat::Registry::new())?);
    /// assert!(ConsumerBuilder::new("kafka://", p).start().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(url: &str, pipeline: StdArc<Pipeline>) -> Self {
        Self {
            url: url.to_owned(),
            topic: DEFAULT_QUEUE.to_owned(),
            group: "ringstat".to_owned(),
            start_at: StartAt::Committed,
            partitions: 1,
            prefetch_bytes: 8 << 20,
            pipeline,
            dedup: Dedup::default(),
            backoff: (Duration::from_millis(50), Duration::from_secs(2)),
            config: BTreeMap::new(),
            checkpoint: None,
            restored: BTreeMap::new(),
        }
    }

    /// Checkpoints to the file `path` every `every_frames` frames or
    /// `interval`, whichever comes first, and when the consumer stops: the
    /// pipeline's state ([`Pipeline::export_state`]), the offset to read
    /// next in each partition and the dedup record, written atomically
    /// (temporary file, fsync, rename) in the format of the Python
    /// `KafkaConsumer`'s checkpoints (either resumes from the other's).
    ///
    /// If the file exists, [`start`](Self::start) restores it into the
    /// pipeline (which should be fresh: the state is merged in) and reads
    /// each partition from the checkpoint's offset, not the group's
    /// committed one (which may be ahead of the state the file holds):
    /// killed at any moment and started again, the consumer ends with the
    /// statistics of a run never killed. Until the file exists the consumer
    /// reads from the first offsets, whatever [`start_at`](Self::start_at)
    /// says (its state starts empty: only a replay is exact). Consistent
    /// when only this consumer sends to the pipeline.
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

    /// The topic to read (default `"ringstat.events"`), created if missing.
    pub fn topic(mut self, topic: &str) -> Self {
        self.topic = topic.to_owned();
        self
    }

    /// The consumer group the offsets are committed to (default
    /// `"ringstat"`).
    pub fn group(mut self, group: &str) -> Self {
        self.group = group.to_owned();
        self
    }

    /// Where to start in each partition (default: the committed offset).
    pub fn start_at(mut self, start: StartAt) -> Self {
        self.start_at = start;
        self
    }

    /// Partitions of the topic if the consumer creates it (default 1).
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
        self
    }

    /// About how many bytes the client fetches ahead (default 8 MiB, at
    /// least 1024): the consumer's memory bound.
    pub fn prefetch_bytes(mut self, n: usize) -> Self {
        self.prefetch_bytes = n;
        self
    }

    /// The dedup record to start from (default: an empty one).
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

    /// Adds or overrides one librdkafka consumer setting.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    fn client_config(&self, servers: &str) -> ClientConfig {
        let mut c = common(servers, self.backoff);
        c.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "queued.max.messages.kbytes",
                (self.prefetch_bytes >> 10).max(1).to_string(),
            )
            .set(
                "fetch.max.bytes",
                self.prefetch_bytes.max(1_100_000).to_string(),
            )
            // A fetch waits at most this long for data (tansu answers a
            // fetch only then): the latency of live statistics on a quiet
            // topic, at up to 100 idle fetches a second (raise it with
            // `config` to poll less).
            .set("fetch.wait.max.ms", "10");
        for (k, v) in &self.config {
            c.set(k, v);
        }
        c
    }

    /// Starts consuming in a background thread.
    ///
    /// # Errors
    ///
    /// [`BrokerError::Url`], [`BrokerError::Config`] (a partition count
    /// below 1, a prefetch below 1024 bytes, checkpoints every 0 frames or
    /// 0 s, a setting librdkafka refuses), [`BrokerError::Checkpoint`] (a
    /// checkpoint file that is not a Kafka consumer's or does not fit the
    /// pipeline; nothing is changed then), [`BrokerError::Spawn`].
    pub fn start(mut self) -> Result<Consumer, BrokerError> {
        let servers = servers(&self.url)?;
        if self.partitions < 1 || self.prefetch_bytes < 1024 {
            return Err(BrokerError::Config(format!(
                "partitions must be >= 1 and prefetch_bytes >= 1024, got {} and {}",
                self.partitions, self.prefetch_bytes
            )));
        }
        if let Some(ck) = &self.checkpoint {
            ck.check()?;
        }
        // Checks the settings now; the client is made again in the thread.
        let _: BaseConsumer<Ctx> = self
            .client_config(&servers)
            .create_with_context(Ctx::default())
            .map_err(|e| BrokerError::Config(format!("Kafka consumer settings: {e}")))?;
        let mut restored = false;
        if let Some(ck) = &self.checkpoint {
            let kafka = |p: &Position| matches!(p, Position::Partitions(_));
            let max = self.dedup.max_pending();
            if let Some((position, dedup)) = ck.restore(
                &self.pipeline,
                max,
                "Kafka checkpoint (a RabbitMQ stream's)",
                kafka,
            )? {
                if let Position::Partitions(parts) = position {
                    self.restored = parts;
                }
                self.dedup = dedup;
                restored = true;
            } else {
                // No checkpoint yet: the state starts empty, so only a
                // replay is exact (the group's committed offsets may cover
                // frames whose state died with a killed consumer).
                self.start_at = StartAt::First;
            }
        }
        let mut cfg = self;
        let dedup = core::mem::take(&mut cfg.dedup);
        Consumer::spawn(dedup, restored, move |sh, dedup| {
            consume(sh, &cfg, &servers, dedup);
        })
    }
}

impl Consumer {
    /// A builder for a consumer of the Kafka brokers at `url` feeding
    /// `pipeline`: [`ConsumerBuilder::new`].
    pub fn kafka(url: &str, pipeline: StdArc<Pipeline>) -> ConsumerBuilder {
        ConsumerBuilder::new(url, pipeline)
    }
}

/// Sleeps `d` in short steps, less if the consumer is stopped.
fn nap(sh: &ConsumerShared, d: Duration) {
    let until = Instant::now() + d;
    // Relaxed: a request flag.
    while !sh.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

/// Messages of partition `part` after `offset`, from the high watermark
/// librdkafka keeps from its fetches (no broker round trip); `None` if it
/// has none yet.
fn lag_after(client: &BaseConsumer<Ctx>, topic: &CStr, part: i32, offset: i64) -> Option<u64> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `client` is borrowed;
    // `topic` is NUL-terminated and outlives the call; `low` and `high` are
    // valid for writes. The function only reads librdkafka's cached state.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            client.client().native_ptr(),
            topic.as_ptr(),
            part,
            &mut low,
            &mut high,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 {
        return None;
    }
    Some(u64::try_from(high - offset - 1).unwrap_or(0))
}

/// A client assigned every partition of the topic at the offsets to read.
fn open(
    cfg: &ConsumerBuilder,
    servers: &str,
    rt: &tokio::runtime::Runtime,
    positions: &BTreeMap<i32, i64>,
    ctx: &Ctx,
) -> Result<BaseConsumer<Ctx>, String> {
    rt.block_on(ensure_topic(servers, &cfg.topic, cfg.partitions))?;
    let c: BaseConsumer<Ctx> = cfg
        .client_config(servers)
        .create_with_context(ctx.clone())
        .map_err(|e| e.to_string())?;
    let md = c
        .fetch_metadata(Some(&cfg.topic), REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot reach the Kafka brokers: {e}"))?;
    let mut parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == cfg.topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    parts.sort_unstable();
    if parts.is_empty() {
        return Err(format!("the topic {} has no partitions yet", cfg.topic));
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        tpl.add_partition(&cfg.topic, p);
    }
    let committed = if cfg.start_at == StartAt::Committed {
        c.committed_offsets(tpl.clone(), REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot read the committed offsets: {e}"))?
    } else {
        TopicPartitionList::new()
    };
    let mut assign = TopicPartitionList::new();
    for &p in &parts {
        let at = match (positions.get(&p), committed.find_partition(&cfg.topic, p)) {
            (Some(&o), _) => Offset::Offset(o),
            (None, Some(e)) if matches!(e.offset(), Offset::Offset(o) if o >= 0) => e.offset(),
            _ => Offset::Beginning,
        };
        assign
            .add_partition_offset(&cfg.topic, p, at)
            .map_err(|e| e.to_string())?;
    }
    c.assign(&assign).map_err(|e| e.to_string())?;
    Ok(c)
}

/// Commits the applied positions, asynchronously and at most once per
/// [`COMMIT_EVERY`] (positions applied meanwhile go with the next call), or
/// synchronously (`sync`: the client is closing). librdkafka reports no
/// result of an asynchronous commit through rdkafka's events (it has no
/// reply queue), so the throttle, not a reply, bounds the requests in
/// flight; a commit lost with the connection is covered by a later one or,
/// at worst, by redelivery and dedup.
fn commit(
    c: &BaseConsumer<Ctx>,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    last: &mut (BTreeMap<i32, i64>, Option<Instant>),
    sync: bool,
) {
    let (committed, sent) = last;
    if positions.is_empty() || positions == committed {
        return;
    }
    if !sync && sent.is_some_and(|t| t.elapsed() < COMMIT_EVERY) {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in positions {
        if tpl
            .add_partition_offset(topic, p, Offset::Offset(o))
            .is_err()
        {
            return;
        }
    }
    let mode = if sync {
        CommitMode::Sync
    } else {
        CommitMode::Async
    };
    if c.commit(&tpl, mode).is_ok() {
        committed.clone_from(positions);
        *sent = Some(Instant::now());
    }
}

/// Connects, consumes and reconnects until stopped or the pipeline closes.
fn consume(sh: &ConsumerShared, cfg: &ConsumerBuilder, servers: &str, dedup: &mut Dedup) {
    let c = &sh.counts;
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return sh.set_error(format!("cannot start the tokio runtime: {e}")),
    };
    let mut backoff = Backoff::new(cfg.backoff.0, cfg.backoff.1);
    let mut ever = false;
    // Offset to read next, by partition (applied frames only); from the
    // checkpoint restored, if any.
    let mut positions: BTreeMap<i32, i64> = cfg.restored.clone();
    let mut saver = cfg.checkpoint.clone();
    // Messages after the last one read, by partition.
    let mut lags: BTreeMap<i32, u64> = BTreeMap::new();
    let Ok(topic) = std::ffi::CString::new(cfg.topic.as_str()) else {
        return sh.set_error("the topic name holds a NUL byte".into());
    };
    // Relaxed (all loads of `stop`, the counts and the `Link` flags): a
    // request, re-read after every poll; statistics.
    while !sh.stop.load(Ordering::Relaxed) {
        let ctx = Ctx::default();
        let client = match open(cfg, servers, &rt, &positions, &ctx) {
            Ok(client) => client,
            Err(e) => {
                sh.set_error(e);
                nap(sh, backoff.step());
                continue;
            }
        };
        if ever {
            c.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        ever = true;
        c.connected.store(true, Ordering::Relaxed);
        backoff.reset();
        // The positions last committed, and when.
        let mut last = (BTreeMap::new(), None);
        while !sh.stop.load(Ordering::Relaxed) {
            let Some(got) = client.poll(Duration::from_millis(100)) else {
                save(sh, cfg, saver.as_mut(), &positions, dedup, false);
                // Positions left waiting by the throttle.
                commit(&client, &cfg.topic, &positions, &mut last, false);
                if ctx.0.down.load(Ordering::Relaxed) {
                    c.connected.store(false, Ordering::Relaxed);
                }
                continue;
            };
            let m = match got {
                Ok(m) => m,
                Err(e) => {
                    if is_down(&e) {
                        ctx.0.down.store(true, Ordering::Relaxed);
                        c.connected.store(false, Ordering::Relaxed);
                    }
                    sh.set_error(e.to_string());
                    if client.client().fatal_error().is_some() {
                        break;
                    }
                    continue;
                }
            };
            if ctx.0.down.swap(false, Ordering::Relaxed) {
                c.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            c.connected.store(true, Ordering::Relaxed);
            let (part, offset) = (m.partition(), m.offset());
            if !handle(sh, &cfg.pipeline, dedup, m.payload().unwrap_or(&[])) {
                // The pipeline closed: the frame stays uncommitted.
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
            drop(m);
            if let Some(l) = lag_after(&client, &topic, part, offset) {
                lags.insert(part, l);
                // Relaxed: a statistic.
                c.lag.store(lags.values().sum(), Ordering::Relaxed);
            }
            positions.insert(part, offset + 1);
            if let Some(s) = &mut saver {
                s.applied();
            }
            save(sh, cfg, saver.as_mut(), &positions, dedup, false);
            commit(&client, &cfg.topic, &positions, &mut last, false);
            sh.notify_progress();
        }
        // Synchronous, unless the brokers are known to be down (it would
        // wait for them): then the next client starts at these positions
        // anyway, and another consumer of the group re-reads a few frames.
        if !ctx.0.down.load(Ordering::Relaxed) {
            commit(&client, &cfg.topic, &positions, &mut last, true);
        }
        c.connected.store(false, Ordering::Relaxed);
        drop(client);
        if !sh.stop.load(Ordering::Relaxed) {
            nap(sh, backoff.step());
        }
    }
    save(sh, cfg, saver.as_mut(), &positions, dedup, true);
}

/// Writes the checkpoint if one is due (see [`Saver::save_if_due`]).
fn save(
    sh: &ConsumerShared,
    cfg: &ConsumerBuilder,
    saver: Option<&mut Saver>,
    positions: &BTreeMap<i32, i64>,
    dedup: &Dedup,
    last: bool,
) {
    if let Some(s) = saver {
        let at = Position::Partitions(positions.clone());
        s.save_if_due(sh, &cfg.pipeline, &at, dedup, last);
    }
}
