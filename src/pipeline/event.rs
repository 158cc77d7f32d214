//! [`Event`]: the compact, `Copy` unit a producer sends, and the typed metric
//! handles that build it.

use core::fmt;

/// The kind of a metric a pipeline resolved: decides which [`Op`]s apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
    Rate,
    Sessions,
    Distinct,
}

impl Kind {
    /// The number of kinds (`kind as usize` is below it).
    pub(crate) const COUNT: usize = 6;
}

/// What an [`Event`] does to its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Op {
    /// Adds `value` to a counter.
    Count,
    /// Sets a gauge to `value` (an `i64`).
    Set,
    /// Adds `value` (an `i64`, may be negative) to a gauge.
    GaugeAdd,
    /// Records `value` in a histogram.
    Observe,
    /// Counts `value` events in a rate.
    Mark,
    /// Starts the session of `key` at `ts`.
    Start,
    /// Ends the session of `key` at `ts`.
    End,
    /// Counts `key` as seen by a distinct counter at `ts`.
    Seen,
    /// Internal: a flush marker carrying a ticket in `value`.
    #[doc(hidden)]
    Flush,
}

impl Op {
    /// The metric kind this operation applies to (`None` for markers).
    #[cfg(test)]
    pub(crate) fn kind(self) -> Option<Kind> {
        Some(match self {
            Self::Count => Kind::Counter,
            Self::Set | Self::GaugeAdd => Kind::Gauge,
            Self::Observe => Kind::Histogram,
            Self::Mark => Kind::Rate,
            Self::Start | Self::End => Kind::Sessions,
            Self::Seen => Kind::Distinct,
            Self::Flush => return None,
        })
    }

    /// `true` for the keyed operators, which are routed by key.
    pub(crate) fn is_keyed(self) -> bool {
        matches!(self, Self::Start | Self::End | Self::Seen)
    }
}

macro_rules! metric_ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// A small `Copy` handle resolved once by name (no string lookup on
        /// the hot path). It is only meaningful for the [`Pipeline`](super::Pipeline)
        /// that returned it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub(crate) u32);

        impl $name {
            /// The metric's index in its pipeline's table.
            ///
            /// # Examples
            ///
            /// ```
            /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
            #[doc = concat!("let _: u32 = p.", metric_ids!(@method $name), "?.index();")]
            /// # Ok::<(), ringstat::pipeline::PipelineError>(())
            /// ```
            #[must_use]
            pub fn index(self) -> u32 {
                self.0
            }
        }
    )*};
    (@method CounterId) => { "counter(\"m\")" };
    (@method GaugeId) => { "gauge(\"m\")" };
    (@method HistogramId) => {
        "histogram(\"m\", ringstat::stats::HistogramConfig { max: 10, significant_digits: 1 })"
    };
    (@method RateId) => { "rate(\"m\")" };
    (@method SessionsId) => { "sessions(\"m\")" };
    (@method DistinctId) => { "distinct(\"m\")" };
}

metric_ids! {
    /// A counter of a pipeline (see [`Pipeline::counter`](super::Pipeline::counter)).
    CounterId;
    /// A gauge of a pipeline (see [`Pipeline::gauge`](super::Pipeline::gauge)).
    GaugeId;
    /// A histogram of a pipeline (see [`Pipeline::histogram`](super::Pipeline::histogram)).
    HistogramId;
    /// A rate of a pipeline (see [`Pipeline::rate`](super::Pipeline::rate)).
    RateId;
    /// A session tracker of a pipeline (see [`Pipeline::sessions`](super::Pipeline::sessions)).
    SessionsId;
    /// A distinct counter of a pipeline (see [`Pipeline::distinct`](super::Pipeline::distinct)).
    DistinctId;
}

/// One event: an operation on a metric, with a value, a key and a timestamp.
///
/// 32 bytes, `Copy`; built only through the constructors below, which take
/// the typed handle of the right kind of metric, so an event can never name
/// the wrong kind. Fields a constructor does not set are 0.
///
/// - `key`: the entity the event is about (a user id); used by the keyed
///   operators ([`start`](Event::start), [`end`](Event::end),
///   [`seen`](Event::seen)) and for routing them to their worker.
/// - `ts`: nanoseconds since an origin the caller chooses, or 0 for "when
///   applied" (the pipeline clock as the worker applies it). Sessions take
///   durations as differences of timestamps, so one origin per session
///   tracker suffices; distinct counters' sliding windows compare
///   timestamps with the pipeline clock ([`Pipeline::now`](super::Pipeline::now)),
///   so give them timestamps in that clock's time base (or 0).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Event, Pipeline};
///
/// let p = Pipeline::new(&ringstat::Registry::new())?;
/// let logins = p.counter("logins")?;
/// let online = p.sessions("online")?;
/// p.send(Event::count(logins))?;
/// p.send(Event::start(online, 42).at(1_000))?;
/// assert_eq!(core::mem::size_of::<Event>(), 32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    pub(crate) key: u64,
    /// `u64` for counts, histogram values and rate marks; an `i64` (two's
    /// complement bits) for gauges; the ticket for flush markers.
    pub(crate) value: u64,
    pub(crate) ts: u64,
    pub(crate) metric: u32,
    pub(crate) op: Op,
}

impl Event {
    #[inline]
    const fn new(op: Op, metric: u32, key: u64, value: u64) -> Self {
        Self {
            key,
            value,
            ts: 0,
            metric,
            op,
        }
    }

    /// Adds 1 to a counter.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::count(p.counter("logins")?))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn count(counter: CounterId) -> Self {
        Self::new(Op::Count, counter.0, 0, 1)
    }

    /// Adds `n` to a counter.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::add(p.counter("bytes")?, 512))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn add(counter: CounterId, n: u64) -> Self {
        Self::new(Op::Count, counter.0, 0, n)
    }

    /// Sets a gauge to `v`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::set(p.gauge("temperature")?, -3))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn set(gauge: GaugeId, v: i64) -> Self {
        Self::new(Op::Set, gauge.0, 0, v as u64)
    }

    /// Adds `d` (may be negative) to a gauge.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::gauge_add(p.gauge("in_flight")?, -1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn gauge_add(gauge: GaugeId, d: i64) -> Self {
        Self::new(Op::GaugeAdd, gauge.0, 0, d as u64)
    }

    /// Records `v` in a histogram. A value above the histogram's maximum is
    /// counted in its [`rejected`](crate::Histogram::rejected) total.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::HistogramConfig;
    ///
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let h = p.histogram("latency_us", HistogramConfig { max: 1_000_000, significant_digits: 2 })?;
    /// p.send(ringstat::pipeline::Event::observe(h, 250))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn observe(histogram: HistogramId, v: u64) -> Self {
        Self::new(Op::Observe, histogram.0, 0, v)
    }

    /// Counts `n` events in a rate (at the time the worker applies it; the
    /// event's `ts` is not used by rates).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::mark(p.rate("logins_rate")?, 1))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn mark(rate: RateId, n: u64) -> Self {
        Self::new(Op::Mark, rate.0, 0, n)
    }

    /// Starts the session of `key` (at `ts` set with [`at`](Event::at), or
    /// when applied).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::start(p.sessions("online")?, 7).at(5_000_000))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn start(sessions: SessionsId, key: u64) -> Self {
        Self::new(Op::Start, sessions.0, key, 0)
    }

    /// Ends the session of `key` (at `ts` set with [`at`](Event::at), or
    /// when applied).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::end(p.sessions("online")?, 7))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn end(sessions: SessionsId, key: u64) -> Self {
        Self::new(Op::End, sessions.0, key, 0)
    }

    /// Counts `key` as seen by a distinct counter.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.send(ringstat::pipeline::Event::seen(p.distinct("users")?, 7))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn seen(distinct: DistinctId, key: u64) -> Self {
        Self::new(Op::Seen, distinct.0, key, 0)
    }

    /// Internal: a flush marker.
    pub(crate) const fn flush_marker(ticket: u64) -> Self {
        Self::new(Op::Flush, u32::MAX, 0, ticket)
    }

    /// This event with timestamp `ts_nanos` (0: when applied).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let ev = ringstat::pipeline::Event::end(p.sessions("online")?, 7).at(9);
    /// assert_eq!(ev.ts(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn at(mut self, ts_nanos: u64) -> Self {
        self.ts = ts_nanos;
        self
    }

    /// This event with key `key` (for plain operations the key is carried
    /// but only used to pick a worker).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let ev = ringstat::pipeline::Event::count(p.counter("c")?).with_key(3);
    /// assert_eq!(ev.key(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    #[must_use]
    pub const fn with_key(mut self, key: u64) -> Self {
        self.key = key;
        self
    }

    /// The operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Op, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(Event::count(p.counter("c")?).op(), Op::Count);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn op(&self) -> Op {
        self.op
    }

    /// The metric's index in its pipeline.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// assert_eq!(Event::count(c).metric(), c.index());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn metric(&self) -> u32 {
        self.metric
    }

    /// The key (0 unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(Event::seen(p.distinct("u")?, 5).key(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn key(&self) -> u64 {
        self.key
    }

    /// The raw value: a count, histogram value or rate mark as `u64`; for
    /// gauges the `i64` as its two's complement bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(Event::add(p.counter("c")?, 4).value(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn value(&self) -> u64 {
        self.value
    }

    /// The timestamp in nanoseconds (0: when applied).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(Event::count(p.counter("c")?).ts(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn ts(&self) -> u64 {
        self.ts
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("op", &self.op)
            .field("metric", &self.metric)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("ts", &self.ts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_kinds() {
        assert!(core::mem::size_of::<Event>() <= 32);
        assert_eq!(Event::count(CounterId(0)).op.kind(), Some(Kind::Counter));
        assert_eq!(Event::set(GaugeId(0), -2).value as i64, -2);
        assert!(Event::start(SessionsId(1), 3).op.is_keyed());
        assert!(!Event::mark(RateId(1), 3).op.is_keyed());
        assert_eq!(Event::flush_marker(9).op.kind(), None);
    }
}
