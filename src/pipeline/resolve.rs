//! Resolving metric names to the small typed handles events carry.

use super::*;
use crate::stats::Histogram;

impl Pipeline {
    /// Resolves the registry counter `name` (created on first use).
    /// Resolving the same name again returns the same handle.
    ///
    /// # Errors
    ///
    /// [`PipelineError::Stats`] if the registry refuses the name (invalid,
    /// or another kind), [`PipelineError::TooManyMetrics`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// assert_eq!(p.counter("logins")?, p.counter("logins")?);
    /// assert!(p.counter("not a name").is_err());
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn counter(&self, name: &str) -> Result<CounterId, PipelineError> {
        let reg = &self.shared.registry;
        self.shared
            .resolve(
                Kind::Counter,
                name,
                || Ok(Target::Counter(reg.counter(name, &[])?)),
                |_| true,
            )
            .map(CounterId)
    }

    /// Resolves the registry gauge `name`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Pipeline::counter).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let _ = p.gauge("queue_size")?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn gauge(&self, name: &str) -> Result<GaugeId, PipelineError> {
        let reg = &self.shared.registry;
        self.shared
            .resolve(
                Kind::Gauge,
                name,
                || Ok(Target::Gauge(reg.gauge(name, &[])?)),
                |_| true,
            )
            .map(GaugeId)
    }

    /// Resolves the registry histogram `name` with `config`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Pipeline::counter), plus the registry's config errors
    /// and [`PipelineError::ConfigMismatch`] if resolved before with another
    /// config.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::HistogramConfig;
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let cfg = HistogramConfig { max: 60_000, significant_digits: 2 };
    /// let _ = p.histogram("latency_ms", cfg)?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn histogram(
        &self,
        name: &str,
        config: HistogramConfig,
    ) -> Result<HistogramId, PipelineError> {
        let reg = &self.shared.registry;
        self.shared
            .resolve(
                Kind::Histogram,
                name,
                || Ok(Target::Histogram(reg.histogram(name, &[], config)?)),
                |t| matches!(t, Target::Histogram(h) if h.config() == config),
            )
            .map(HistogramId)
    }

    /// Resolves the registry rate `name` (60 buckets of 1 s, on the
    /// registry's clock).
    ///
    /// # Errors
    ///
    /// As [`counter`](Pipeline::counter).
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let _ = p.rate("logins_per_second")?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn rate(&self, name: &str) -> Result<RateId, PipelineError> {
        self.rate_with(name, RateConfig::default())
    }

    /// Resolves the registry rate `name` with `config`.
    ///
    /// # Errors
    ///
    /// As [`histogram`](Pipeline::histogram).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::stats::RateConfig;
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// let cfg = RateConfig { window: Duration::from_secs(10), buckets: 10 };
    /// let _ = p.rate_with("logins_per_second", cfg)?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn rate_with(&self, name: &str, config: RateConfig) -> Result<RateId, PipelineError> {
        let reg = &self.shared.registry;
        self.shared
            .resolve(
                Kind::Rate,
                name,
                || {
                    // A rate keeps a word per bucket; its constructor
                    // allocates infallibly, so a window of too many buckets
                    // is refused here (asking for the words once) rather
                    // than aborting there.
                    let words = config.buckets.saturating_add(1);
                    let tick = u64::try_from(config.window.as_nanos())
                        .unwrap_or(u64::MAX)
                        .checked_div(config.buckets as u64)
                        .unwrap_or(0);
                    // (An invalid window is left to the registry's error.)
                    if tick >= 1_000_000 && Vec::<u64>::new().try_reserve_exact(words).is_err() {
                        return Err(PipelineError::OutOfMemory {
                            what: format!("a rate of {} buckets", config.buckets),
                        });
                    }
                    Ok(Target::Rate(reg.rate(name, &[], config)?))
                },
                |t| matches!(t, Target::Rate(r) if r.config() == config),
            )
            .map(RateId)
    }

    /// Resolves the session tracker `name` with the default
    /// [`SessionsConfig`] (durations up to 30 days, 2 significant digits).
    ///
    /// It registers, with `{name}` the given name:
    ///
    /// | metric | kind | meaning |
    /// |---|---|---|
    /// | `{name}_open` | gauge | keys with a session open now |
    /// | `{name}_started_total` | counter | starts that opened a session |
    /// | `{name}_completed_total` | counter | ends that closed an open session |
    /// | `{name}_duration_ms` | histogram | durations `end.ts - start.ts` of completed sessions in whole milliseconds (rounded down); longer than `max_ms`: counted as rejected |
    /// | `{name}_anomalies_total{kind="end_without_start"}` | counter | ends for a key with no open session (otherwise ignored) |
    /// | `{name}_anomalies_total{kind="double_start"}` | counter | starts for a key already open: the session restarts at the new time, the open count is unchanged |
    /// | `{name}_anomalies_total{kind="negative_duration"}` | counter | ends earlier than their start: the session closes, no duration is recorded |
    /// | `{name}_evicted_total` | counter | open sessions evicted by [`SessionsConfig::max_open`] (never, by default) |
    ///
    /// Open sessions live in the worker that owns the key until they end
    /// (or are evicted under a `max_open` limit).
    ///
    /// # Errors
    ///
    /// As [`histogram`](Pipeline::histogram).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// let online = p.sessions("online")?;
    /// p.send(Event::start(online, 1).at(0))?;
    /// p.send(Event::end(online, 1).at(2_500_000_000))?;
    /// p.flush();
    /// assert_eq!(reg.counter("online_completed_total", &[])?.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sessions(&self, name: &str) -> Result<SessionsId, PipelineError> {
        self.sessions_with(name, SessionsConfig::default())
    }

    /// Resolves the session tracker `name` with `config`.
    ///
    /// # Errors
    ///
    /// As [`histogram`](Pipeline::histogram).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Pipeline, SessionsConfig};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let cfg = SessionsConfig { max_ms: 3_600_000, significant_digits: 3, max_open: Some(100_000) };
    /// let _ = p.sessions_with("calls", cfg)?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn sessions_with(
        &self,
        name: &str,
        config: SessionsConfig,
    ) -> Result<SessionsId, PipelineError> {
        let reg = &self.shared.registry;
        let workers = self.shared.queues.len();
        self.shared
            .resolve(
                Kind::Sessions,
                name,
                || {
                    Ok(Target::Sessions(StdArc::new(SessionsShared::register(
                        reg, name, config, workers,
                    )?)))
                },
                |t| matches!(t, Target::Sessions(s) if s.config == config),
            )
            .map(SessionsId)
    }

    /// Resolves the distinct counter `name` with the default
    /// [`DistinctConfig`] (precision 12: 1.63 % standard error; window
    /// 60 s in 12 buckets).
    ///
    /// Read it with [`distinct_count`](Pipeline::distinct_count) and
    /// [`distinct_in_window`](Pipeline::distinct_in_window) (exact merges of
    /// the workers' sketches at the time of the call), or through the
    /// gauges `{name}_distinct` and `{name}_distinct_window` that worker 0
    /// refreshes every [`refresh_interval`](PipelineBuilder::refresh_interval),
    /// and that [`flush`](Pipeline::flush) and [`close`](Pipeline::close)
    /// refresh before they return.
    ///
    /// # Errors
    ///
    /// As [`histogram`](Pipeline::histogram).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// let users = p.distinct("users")?;
    /// for id in [1, 2, 2, 3] {
    ///     p.send(Event::seen(users, id))?;
    /// }
    /// p.flush();
    /// assert_eq!(p.distinct_count(users).round(), 3.0);
    /// assert_eq!(reg.gauge("users_distinct", &[])?.get(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn distinct(&self, name: &str) -> Result<DistinctId, PipelineError> {
        self.distinct_with(name, DistinctConfig::default())
    }

    /// Resolves the distinct counter `name` with `config`.
    ///
    /// # Errors
    ///
    /// As [`histogram`](Pipeline::histogram), plus
    /// [`PipelineError::InvalidPrecision`] and
    /// [`PipelineError::InvalidWindow`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::pipeline::{DistinctConfig, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let cfg = DistinctConfig { precision: 14, window: Duration::from_secs(300), buckets: 30 };
    /// let _ = p.distinct_with("visitors", cfg)?;
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn distinct_with(
        &self,
        name: &str,
        config: DistinctConfig,
    ) -> Result<DistinctId, PipelineError> {
        let reg = &self.shared.registry;
        let workers = self.shared.queues.len();
        self.shared
            .resolve(
                Kind::Distinct,
                name,
                || {
                    let d = DistinctShared::new(config, workers)?;
                    let all = reg.gauge(&format!("{name}_distinct"), &[])?;
                    let win = reg.gauge(&format!("{name}_distinct_window"), &[])?;
                    Ok(Target::Distinct(StdArc::new(d), all, win))
                },
                |t| matches!(t, Target::Distinct(d, ..) if d.config == config),
            )
            .map(DistinctId)
    }

    /// The index `name` of `kind` was resolved to, if it was: one brief
    /// lock and no allocation (the Python binding's by-name methods look
    /// their metric up here on every call).
    #[cfg_attr(not(any(feature = "python", feature = "wire")), allow(dead_code))]
    pub(crate) fn resolved(&self, kind: Kind, name: &str) -> Option<u32> {
        self.shared.lock_table().find(kind, name)
    }

    /// The histogram `name` resolved before, with the registry histogram
    /// it records into (its configuration bounds the values).
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn resolved_histogram(
        &self,
        name: &str,
    ) -> Option<(HistogramId, StdArc<Histogram>)> {
        let table = self.shared.lock_table();
        let id = table.find(Kind::Histogram, name)?;
        match &table.targets[id as usize] {
            Target::Histogram(h) => Some((HistogramId(id), StdArc::clone(h))),
            _ => None,
        }
    }
}
