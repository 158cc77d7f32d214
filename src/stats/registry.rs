//! [`Registry`]: get-or-create metrics by name and labels; [`Snapshot`]s of
//! all of them as plain data.

use std::collections::{BTreeMap, HashMap};
// `std::sync::Arc` for handles: reference counting only, never modeled by
// loom, and the same public type in every build.
use crate::sync::StdArc as Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::exposition::{
    exposed_names, validate_help, validate_label_name, validate_label_value, validate_metric_name,
};
use super::{
    Clock, Counter, Gauge, Histogram, HistogramConfig, MetricKind, Rate, RateConfig, StatsError,
    SystemClock,
};
use crate::sync::Mutex;

/// Quantiles reported by [`Registry::snapshot`] for every histogram.
pub const DEFAULT_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A registered metric: a cheap handle to the live aggregator.
#[derive(Clone)]
pub(super) enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
    Rate(Arc<Rate>),
}

/// `(name, labels sorted by label name)`.
pub(super) type Key = (String, Vec<(String, String)>);

#[derive(Default)]
struct Inner {
    /// Kind of every family (all label sets of one name share it).
    families: HashMap<String, MetricKind>,
    /// Exposed Prometheus name -> the family that owns it.
    exposed: HashMap<String, String>,
    series: BTreeMap<Key, Metric>,
    /// Help text of a family (by name), set by [`Registry::describe`].
    help: HashMap<String, Arc<str>>,
    /// Classic bucket bounds of a histogram family, set by
    /// [`Registry::set_buckets`]: exposed as `_bucket{le=...}`.
    buckets: HashMap<String, Arc<[f64]>>,
}

struct Shared {
    /// Held only to create metrics and to list them for a snapshot; never
    /// while a metric is updated or read.
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    /// Most series (name and label set) the registry creates; `None`: no limit.
    limit: Option<usize>,
}

/// Named metrics with optional labels, created on first use and shared by
/// cheap handles (`Arc<Counter>`, ...) that update lock-free.
///
/// `Registry` itself is a cheap `Clone` (an `Arc` inside): clones share the
/// same metrics. The lock inside is taken only to create a metric and to
/// list metrics for a [`snapshot`](Registry::snapshot).
///
/// # Examples
///
/// ```
/// use ringstat::stats::{MetricValue, Registry};
///
/// let reg = Registry::new();
/// let logins = reg.counter("logins", &[("region", "eu")])?;
/// logins.inc();
/// assert!(reg.gauge("logins", &[]).is_err()); // a counter already
/// let snap = reg.snapshot();
/// assert_eq!(snap.metrics[0].value, MetricValue::Counter(1));
/// assert!(snap.to_prometheus().contains("logins_total{region=\"eu\"} 1\n"));
/// # Ok::<(), ringstat::stats::StatsError>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

impl Registry {
    /// An empty registry whose rates use the [`SystemClock`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::stats::Registry::new().snapshot().metrics.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock::new()))
    }

    /// An empty registry whose rates read `clock`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ringstat::stats::{ManualClock, Registry};
    ///
    /// let reg = Registry::with_clock(Arc::new(ManualClock::new()));
    /// # let _ = reg;
    /// ```
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_clock_and_limit(clock, None)
    }

    /// An empty registry on the [`SystemClock`] that holds at most
    /// `max_series` series (distinct name and label sets): creating one
    /// more fails with [`StatsError::TooManySeries`], while every existing
    /// series keeps working and can still be looked up. A guard against
    /// unbounded label cardinality (a user id as a label value).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Registry, StatsError};
    ///
    /// let reg = Registry::with_limit(1);
    /// reg.counter("logins", &[("region", "eu")])?.inc();
    /// let err = reg.counter("logins", &[("region", "us")]).unwrap_err();
    /// assert!(matches!(err, StatsError::TooManySeries { limit: 1, .. }));
    /// reg.counter("logins", &[("region", "eu")])?.inc();
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn with_limit(max_series: usize) -> Self {
        Self::with_clock_and_limit(Arc::new(SystemClock::new()), Some(max_series))
    }

    /// An empty registry whose rates read `clock`, holding at most
    /// `max_series` series if given (see [`with_limit`](Registry::with_limit)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ringstat::stats::{ManualClock, Registry};
    ///
    /// let reg = Registry::with_clock_and_limit(Arc::new(ManualClock::new()), Some(10));
    /// assert_eq!(reg.limit(), Some(10));
    /// ```
    #[must_use]
    pub fn with_clock_and_limit(clock: Arc<dyn Clock>, max_series: Option<usize>) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                clock,
                limit: max_series,
            }),
        }
    }

    /// The most series this registry creates, `None` when unlimited.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringstat::stats::Registry::new().limit(), None);
    /// ```
    #[must_use]
    pub fn limit(&self) -> Option<usize> {
        self.shared.limit
    }

    /// The number of series (name and label sets) registered.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.counter("a", &[("k", "1")])?;
    /// reg.counter("a", &[("k", "2")])?;
    /// assert_eq!(reg.len(), 2);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .series
            .len()
    }

    /// `true` when no series is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::stats::Registry::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counter `name{labels}`, created at 0 on first use.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidMetricName`], [`StatsError::InvalidLabelName`],
    /// [`StatsError::InvalidLabelValue`], [`StatsError::DuplicateLabel`],
    /// [`StatsError::KindMismatch`] if `name` is another kind,
    /// [`StatsError::NameCollision`], [`StatsError::TooManySeries`] if a
    /// limited registry is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.counter("logins", &[])?.inc();
    /// assert_eq!(reg.counter("logins", &[])?.get(), 1);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Result<Arc<Counter>, StatsError> {
        let m = self.get_or_create(name, labels, MetricKind::Counter, None, || {
            Ok(Metric::Counter(Arc::new(Counter::new())))
        })?;
        match m {
            Metric::Counter(c) => Ok(c),
            _ => unreachable!("kind checked in get_or_create"),
        }
    }

    /// The gauge `name{labels}`, created at 0 on first use.
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`].
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.gauge("online", &[])?.add(2);
    /// assert_eq!(reg.gauge("online", &[])?.get(), 2);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Arc<Gauge>, StatsError> {
        let m = self.get_or_create(name, labels, MetricKind::Gauge, None, || {
            Ok(Metric::Gauge(Arc::new(Gauge::new())))
        })?;
        match m {
            Metric::Gauge(g) => Ok(g),
            _ => unreachable!("kind checked in get_or_create"),
        }
    }

    /// The histogram `name{labels}`, created empty with `config` on first use.
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`]; also the errors of [`Histogram::with_config`]
    /// and [`StatsError::ConfigMismatch`] if it exists with another config.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{HistogramConfig, Registry};
    ///
    /// let reg = Registry::new();
    /// let cfg = HistogramConfig { max: 86_400, significant_digits: 2 };
    /// reg.histogram("online_seconds", &[], cfg)?.record(30)?;
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn histogram(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
    ) -> Result<Arc<Histogram>, StatsError> {
        self.histogram_in(name, labels, config, None)
    }

    /// The histogram `name{labels}` of floats kept to `unit` (see
    /// [`Histogram::with_unit`]; `config.max` counts ticks of `unit`),
    /// created empty on first use.
    ///
    /// # Errors
    ///
    /// As [`Registry::histogram`], with the errors of [`Histogram::with_unit`];
    /// [`StatsError::ConfigMismatch`] if it exists with another unit.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{HistogramConfig, Registry};
    ///
    /// let reg = Registry::new();
    /// let cfg = HistogramConfig { max: 60_000_000, significant_digits: 3 };
    /// let h = reg.histogram_with_unit("latency_seconds", &[], cfg, 1e-6)?;
    /// h.record_value(0.0125)?;
    /// assert_eq!(h.value_quantile(0.5)?, Some(0.0125));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn histogram_with_unit(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
        unit: f64,
    ) -> Result<Arc<Histogram>, StatsError> {
        self.histogram_in(name, labels, config, Some(unit))
    }

    pub(super) fn histogram_in(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
        unit: Option<f64>,
    ) -> Result<Arc<Histogram>, StatsError> {
        let wanted = histogram_config_text(config, unit);
        let m = self.get_or_create(name, labels, MetricKind::Histogram, Some(&wanted), || {
            let h = match unit {
                None => Histogram::with_config(config)?,
                Some(unit) => Histogram::with_unit(config, unit)?,
            };
            Ok(Metric::Histogram(Arc::new(h)))
        })?;
        match m {
            Metric::Histogram(h) => Ok(h),
            _ => unreachable!("kind checked in get_or_create"),
        }
    }

    /// The rate `name{labels}`, created with `config` on the registry's clock
    /// on first use.
    ///
    /// # Errors
    ///
    /// As [`Registry::histogram`], with the errors of [`Rate::with_clock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{RateConfig, Registry};
    ///
    /// let reg = Registry::new();
    /// reg.rate("logins_rate", &[], RateConfig::default())?.inc();
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn rate(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: RateConfig,
    ) -> Result<Arc<Rate>, StatsError> {
        self.rate_in(name, labels, config, None)
    }

    /// As [`rate`](Registry::rate); a rate created here is `created_age`
    /// nanoseconds old (restored state) if given.
    pub(super) fn rate_in(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: RateConfig,
        created_age: Option<u64>,
    ) -> Result<Arc<Rate>, StatsError> {
        let wanted = format!("{config:?}");
        let clock = Arc::clone(&self.shared.clock);
        let m = self.get_or_create(name, labels, MetricKind::Rate, Some(&wanted), || {
            let r = Rate::with_clock(config.window, config.buckets, clock)?;
            let r = match created_age {
                Some(age) => r.with_created_age(age),
                None => r,
            };
            Ok(Metric::Rate(Arc::new(r)))
        })?;
        match m {
            Metric::Rate(r) => Ok(r),
            _ => unreachable!("kind checked in get_or_create"),
        }
    }

    fn get_or_create(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
        config: Option<&str>,
        make: impl FnOnce() -> Result<Metric, StatsError>,
    ) -> Result<Metric, StatsError> {
        validate_metric_name(name)?;
        let mut sorted: Vec<(String, String)> = Vec::with_capacity(labels.len());
        for &(k, v) in labels {
            validate_label_name(name, k)?;
            validate_label_value(name, k, v)?;
            sorted.push((k.to_owned(), v.to_owned()));
        }
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StatsError::DuplicateLabel {
                metric: name.to_owned(),
                label: w[0].0.clone(),
            });
        }
        // A poisoned lock means a panic inside this function, where the
        // maps are only changed by single inserts: they are consistent.
        let mut inner = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kind != MetricKind::Histogram && inner.buckets.contains_key(name) {
            return Err(StatsError::KindMismatch {
                name: name.to_owned(),
                existing: MetricKind::Histogram,
                requested: kind,
            });
        }
        match inner.families.get(name) {
            Some(&existing) if existing != kind => {
                return Err(StatsError::KindMismatch {
                    name: name.to_owned(),
                    existing,
                    requested: kind,
                })
            }
            Some(_) => {}
            None => {
                let names = exposed_names(name, kind);
                if let Some(owner) = names.iter().find_map(|n| inner.exposed.get(n)) {
                    return Err(StatsError::NameCollision {
                        name: name.to_owned(),
                        existing: owner.clone(),
                    });
                }
            }
        }
        let key = (name.to_owned(), sorted);
        if let Some(m) = inner.series.get(&key) {
            if let Some(wanted) = config {
                let existing = config_text(m);
                if existing != wanted {
                    return Err(StatsError::ConfigMismatch {
                        name: name.to_owned(),
                        existing,
                        requested: wanted.to_owned(),
                    });
                }
            }
            return Ok(m.clone());
        }
        if let Some(limit) = self.shared.limit {
            if inner.series.len() >= limit {
                return Err(StatsError::TooManySeries {
                    name: name.to_owned(),
                    limit,
                });
            }
        }
        let m = make()?;
        if !inner.families.contains_key(name) {
            inner.families.insert(name.to_owned(), kind);
            for n in exposed_names(name, kind) {
                inner.exposed.insert(n, name.to_owned());
            }
        }
        inner.series.insert(key, m.clone());
        Ok(m)
    }

    /// Sets the help text of the family `name` (all its label sets), written
    /// as its `# HELP` line by [`Snapshot::to_prometheus`]. The family need
    /// not exist yet; describing it again with the same text does nothing.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidMetricName`], [`StatsError::InvalidHelp`] for a
    /// text holding NUL, `\r` or a Unicode line break other than `\n`,
    /// [`StatsError::ConfigMismatch`] if `name` already has another help.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.describe("logins", "Successful logins.")?;
    /// reg.counter("logins", &[])?.inc();
    /// assert!(reg.snapshot().to_prometheus().starts_with("# HELP logins_total Successful logins.\n"));
    /// assert!(reg.describe("logins", "Something else.").is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn describe(&self, name: &str, help: &str) -> Result<(), StatsError> {
        validate_metric_name(name)?;
        validate_help(name, help)?;
        let mut inner = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inner.help.get(name) {
            Some(existing) if &**existing == help => Ok(()),
            Some(existing) => Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: format!("help {existing:?}"),
                requested: format!("help {help:?}"),
            }),
            None => {
                inner.help.insert(name.to_owned(), Arc::from(help));
                Ok(())
            }
        }
    }

    /// Exposes the histogram family `name` (all its label sets) with classic
    /// buckets: cumulative `name_bucket{le="b"}` samples at each bound `b`
    /// (value units, as the histogram records them) and `le="+Inf"`, type
    /// `histogram`, which Prometheus can sum across instances and feed to
    /// `histogram_quantile`. Without it a histogram is exposed as a summary
    /// (type `summary`, `quantile` samples): the default. The counts are
    /// derived from the log-linear buckets at each snapshot (see
    /// [`HistogramSnapshot::cumulative_counts`](super::HistogramSnapshot::cumulative_counts)),
    /// so recording costs the same either way.
    ///
    /// The family need not exist yet; setting the same bounds again does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidMetricName`], [`StatsError::InvalidBuckets`]
    /// unless `bounds` is a non-empty, strictly increasing list of finite
    /// numbers (a last `+Inf` is dropped), [`StatsError::KindMismatch`] if
    /// `name` is another kind, [`StatsError::ConfigMismatch`] if it already
    /// has other bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{HistogramConfig, Registry};
    ///
    /// let reg = Registry::new();
    /// reg.set_buckets("latency_seconds", &[0.01, 0.1, 1.0])?;
    /// let cfg = HistogramConfig { max: 60_000_000, significant_digits: 3 };
    /// reg.histogram_with_unit("latency_seconds", &[], cfg, 1e-6)?.record_f64(0.05)?;
    /// let text = reg.snapshot().to_prometheus();
    /// assert!(text.contains("latency_seconds_bucket{le=\"0.1\"} 1\n"));
    /// assert!(text.contains("latency_seconds_bucket{le=\"+Inf\"} 1\n"));
    /// assert!(reg.set_buckets("latency_seconds", &[0.5]).is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn set_buckets(&self, name: &str, bounds: &[f64]) -> Result<(), StatsError> {
        validate_metric_name(name)?;
        let mut b = bounds;
        if let [rest @ .., last] = b {
            if *last == f64::INFINITY {
                b = rest;
            }
        }
        let increasing = b.windows(2).all(|w| w[0] < w[1]);
        if b.is_empty() || !increasing || b.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::InvalidBuckets {
                metric: name.to_owned(),
                buckets: bounds.to_vec(),
            });
        }
        // `-0.0` and `0.0` are one bound: keep `0.0` so it prints as "0".
        let b: Vec<f64> = b.iter().map(|v| v + 0.0).collect();
        let mut inner = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&existing) = inner.families.get(name) {
            if existing != MetricKind::Histogram {
                return Err(StatsError::KindMismatch {
                    name: name.to_owned(),
                    existing,
                    requested: MetricKind::Histogram,
                });
            }
        }
        match inner.buckets.get(name) {
            Some(existing) if **existing == *b => Ok(()),
            Some(existing) => Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: format!("buckets {existing:?}"),
                requested: format!("buckets {b:?}"),
            }),
            None => {
                inner.buckets.insert(name.to_owned(), Arc::from(b));
                Ok(())
            }
        }
    }

    /// Every metric's current values, sorted by name then labels, with
    /// [`DEFAULT_QUANTILES`] for histograms. Each metric is read lock-free
    /// while writers run (see each type for what one read guarantees); the
    /// metrics are not read at one single instant.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.gauge("online", &[])?.set(3);
    /// assert_eq!(reg.snapshot().metrics.len(), 1);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with_quantiles(&DEFAULT_QUANTILES)
            .expect("the default quantiles are valid")
    }

    /// As [`snapshot`](Registry::snapshot), reporting `quantiles` for
    /// histograms.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] for a quantile outside `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// assert!(reg.snapshot_with_quantiles(&[0.5]).is_ok());
    /// assert!(reg.snapshot_with_quantiles(&[50.0]).is_err());
    /// ```
    pub fn snapshot_with_quantiles(&self, quantiles: &[f64]) -> Result<Snapshot, StatsError> {
        if let Some(&q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(StatsError::InvalidQuantile { q });
        }
        type Listed = (Key, Metric, Option<Arc<str>>, Option<Arc<[f64]>>);
        let series: Vec<Listed> = {
            let inner = self
                .shared
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner
                .series
                .iter()
                .map(|(k, m)| {
                    let help = inner.help.get(&k.0).cloned();
                    (k.clone(), m.clone(), help, inner.buckets.get(&k.0).cloned())
                })
                .collect()
        };
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let metrics = series
            .into_iter()
            .map(|((name, labels), m, help, buckets)| MetricSnapshot {
                name,
                labels,
                help,
                value: read(&m, quantiles, buckets.as_deref()),
            })
            .collect();
        Ok(Snapshot {
            timestamp_ms,
            metrics,
        })
    }
}

impl Registry {
    /// Every series with its handle, and the help texts and classic bucket
    /// bounds of the families (for [`export_state`](Registry::export_state)).
    #[allow(clippy::type_complexity)]
    pub(super) fn list_all(
        &self,
    ) -> (
        Vec<(Key, Metric)>,
        Vec<(String, String)>,
        Vec<(String, Vec<f64>)>,
    ) {
        let inner = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let series = inner
            .series
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        let mut help: Vec<(String, String)> = inner
            .help
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        help.sort();
        let mut buckets: Vec<(String, Vec<f64>)> = inner
            .buckets
            .iter()
            .map(|(k, v)| (k.clone(), v.to_vec()))
            .collect();
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        (series, help, buckets)
    }

    /// `true` if the series `name{labels}` (labels sorted) exists.
    pub(super) fn contains_series(&self, name: &str, labels: &[(String, String)]) -> bool {
        let key = (name.to_owned(), labels.to_vec());
        self.shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .series
            .contains_key(&key)
    }

    /// Checks, without changing anything, that a series `name{labels}` of
    /// `kind` with `config` (as `config_text` writes it; `None` for
    /// counters and gauges) could be merged here: names valid, no other
    /// kind under the name, no other config for the series.
    pub(super) fn precheck(
        &self,
        name: &str,
        labels: &[(String, String)],
        kind: MetricKind,
        config: Option<&str>,
    ) -> Result<(), StatsError> {
        validate_metric_name(name)?;
        for (k, v) in labels {
            validate_label_name(name, k)?;
            validate_label_value(name, k, v)?;
        }
        let inner = self
            .shared
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&existing) = inner.families.get(name) {
            if existing != kind {
                return Err(StatsError::KindMismatch {
                    name: name.to_owned(),
                    existing,
                    requested: kind,
                });
            }
        }
        let key = (name.to_owned(), labels.to_vec());
        if let (Some(m), Some(wanted)) = (inner.series.get(&key), config) {
            let existing = config_text(m);
            if existing != wanted {
                return Err(StatsError::ConfigMismatch {
                    name: name.to_owned(),
                    existing,
                    requested: wanted.to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Registry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

pub(super) fn config_text(m: &Metric) -> String {
    match m {
        Metric::Histogram(h) => histogram_config_text(h.config(), h.unit()),
        Metric::Rate(r) => format!("{:?}", r.config()),
        Metric::Counter(_) | Metric::Gauge(_) => String::new(),
    }
}

/// A histogram's configuration as compared on lookup: the unit is part of it.
pub(super) fn histogram_config_text(config: HistogramConfig, unit: Option<f64>) -> String {
    match unit {
        None => format!("{config:?}"),
        Some(unit) => format!("{config:?} in units of {unit:?}"),
    }
}

fn read(m: &Metric, quantiles: &[f64], buckets: Option<&[f64]>) -> MetricValue {
    match m {
        Metric::Counter(c) => MetricValue::Counter(c.get()),
        Metric::Gauge(g) => MetricValue::Gauge {
            value: g.get(),
            min: g.min(),
            max: g.max(),
        },
        Metric::Histogram(h) => {
            let s = h.snapshot();
            let values = s.quantiles(quantiles).expect("quantiles validated");
            MetricValue::Histogram {
                count: s.count(),
                sum: s.sum(),
                min: s.min(),
                max: s.max(),
                rejected: s.rejected(),
                quantiles: quantiles.iter().copied().zip(values).collect(),
                unit: s.unit(),
                buckets: buckets.map(|b| {
                    let counts = s.cumulative_counts(b);
                    b.iter().copied().zip(counts).collect()
                }),
            }
        }
        Metric::Rate(r) => MetricValue::Rate {
            total: r.total(),
            in_window: r.count_in_window(),
            per_second: r.per_second(),
            window: r.config().window,
        },
    }
}

/// Every metric of a [`Registry`] at one moment, as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Wall-clock time of the snapshot, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The metrics, sorted by name then labels.
    pub metrics: Vec<MetricSnapshot>,
}

/// One metric series in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSnapshot {
    /// The registered name.
    pub name: String,
    /// Labels, sorted by label name.
    pub labels: Vec<(String, String)>,
    /// The family's help text, if [`Registry::describe`] gave one.
    pub help: Option<Arc<str>>,
    /// The values, one variant per kind.
    pub value: MetricValue,
}

impl MetricSnapshot {
    /// The metric's kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{MetricKind, Registry};
    ///
    /// let reg = Registry::new();
    /// reg.counter("c", &[])?;
    /// assert_eq!(reg.snapshot().metrics[0].kind(), MetricKind::Counter);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn kind(&self) -> MetricKind {
        match self.value {
            MetricValue::Counter(_) => MetricKind::Counter,
            MetricValue::Gauge { .. } => MetricKind::Gauge,
            MetricValue::Histogram { .. } => MetricKind::Histogram,
            MetricValue::Rate { .. } => MetricKind::Rate,
        }
    }
}

/// The values of one metric, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A [`Counter`]'s total.
    Counter(u64),
    /// A [`Gauge`].
    Gauge {
        /// Current value.
        value: i64,
        /// Smallest value since the last min/max reset.
        min: i64,
        /// Largest value since the last min/max reset.
        max: i64,
    },
    /// A [`Histogram`], from one internally consistent snapshot.
    Histogram {
        /// Values counted.
        count: u64,
        /// Sum from bucket midpoints (within the relative error bound).
        sum: f64,
        /// Smallest value, `None` when empty.
        min: Option<u64>,
        /// Largest value, `None` when empty.
        max: Option<u64>,
        /// Values refused as out of range, negative or NaN.
        rejected: u64,
        /// `(q, value)` for each requested quantile; `None` when empty.
        quantiles: Vec<(f64, Option<u64>)>,
        /// The declared unit: `min`, `max` and the quantiles count ticks of
        /// it ([`Histogram::tick_value`]), `sum` is in the unit's values.
        unit: Option<f64>,
        /// `(bound, values <= bound)` for each classic bucket bound the
        /// family was given ([`Registry::set_buckets`]), ascending, without
        /// `+Inf` (that count is `count`); `None`: exposed as a summary.
        buckets: Option<Vec<(f64, u64)>>,
    },
    /// A [`Rate`].
    Rate {
        /// Events ever counted.
        total: u64,
        /// Events in the current window.
        in_window: u64,
        /// Events per second over the window.
        per_second: f64,
        /// The window length.
        window: Duration,
    },
}
