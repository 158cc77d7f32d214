//! [`RegistryState`]: the full state of a [`Registry`] as plain data, to
//! restore it elsewhere ([`Registry::from_state`]) or merge it into another
//! registry ([`Registry::merge_state`]). The byte encoding lives in
//! `wire` (`ringstat::wire::encode_state`).

use super::registry::{histogram_config_text, Metric};
use super::{HistogramConfig, MetricKind, RateConfig, Registry, StatsError};

/// The full state of a registry: every series, and the help texts and
/// classic bucket bounds of its families.
///
/// # Merge rules
///
/// A series the target does not have is created and loaded exactly, so
/// merging into an empty registry restores. Otherwise, by kind:
///
/// | kind | merge |
/// |---|---|
/// | counter | values add |
/// | gauge | values add (users online on two machines sum); min and max become the extremes of both sides and of the new value |
/// | histogram | bucket counts, `rejected` add; min and max widen. Both sides must have the same config and unit |
/// | rate | totals add; window buckets add by age (the bucket `k` ticks before now on each side); both sides must have the same window and bucket count |
///
/// Counters, histograms and rates merge associatively and commutatively;
/// gauge values too, but min and max fold in intermediate sums, so they
/// depend on the order of merges. Rate ages are taken at export and applied
/// at merge: time between the two shifts nothing.
///
/// A mismatch (another kind under a name, another histogram config or
/// unit, another rate window, other help text or classic buckets) is an
/// error found before anything is changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegistryState {
    /// `(family name, help text)`, sorted by name.
    pub help: Vec<(String, String)>,
    /// `(histogram family name, classic bucket bounds)`, sorted by name.
    pub buckets: Vec<(String, Vec<f64>)>,
    /// The series, sorted by name then labels.
    pub series: Vec<SeriesState>,
}

/// One series of a [`RegistryState`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesState {
    /// The metric name.
    pub name: String,
    /// Labels, sorted by label name.
    pub labels: Vec<(String, String)>,
    /// The values.
    pub value: ValueState,
}

/// The state of one metric, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueState {
    /// A counter's value.
    Counter(u64),
    /// A gauge.
    Gauge {
        /// Current value.
        value: i64,
        /// Smallest value since the last min/max reset.
        min: i64,
        /// Largest value since the last min/max reset.
        max: i64,
    },
    /// A histogram.
    Histogram {
        /// Its layout.
        config: HistogramConfig,
        /// Its declared unit, if any.
        unit: Option<f64>,
        /// `(bucket index, count)` of every non-empty bucket, ascending.
        counts: Vec<(u64, u64)>,
        /// Smallest value recorded, `None` when empty.
        min: Option<u64>,
        /// Largest value recorded, `None` when empty.
        max: Option<u64>,
        /// Values refused as out of range.
        rejected: u64,
    },
    /// A rate.
    Rate {
        /// Its window.
        config: RateConfig,
        /// Events ever counted.
        total: u64,
        /// Nanoseconds between the rate's creation and the export.
        age: u64,
        /// `(age in ticks, count)` of every non-empty bucket of the window
        /// at export, age 0 the current tick; ages below `config.buckets`.
        window: Vec<(u64, u64)>,
    },
}

impl RegistryState {
    /// Makes this the state of a source that is gone (stopped, or silent for
    /// too long): what it counted stays (counters, histograms, rate totals),
    /// what it said about "now" goes (gauge values become 0, rate windows
    /// empty), so a merged view stops showing a dead instance's users online
    /// or requests per second. Gauge min and max stay.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Registry;
    ///
    /// let a = Registry::new();
    /// a.counter("logins", &[])?.add(3);
    /// a.gauge("online", &[])?.set(2);
    /// let mut state = a.export_state();
    /// state.retire();
    /// let view = Registry::from_state(&state)?;
    /// assert_eq!(view.counter("logins", &[])?.get(), 3);
    /// assert_eq!(view.gauge("online", &[])?.get(), 0);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn retire(&mut self) {
        for s in &mut self.series {
            match &mut s.value {
                ValueState::Gauge { value, .. } => *value = 0,
                ValueState::Rate { window, .. } => window.clear(),
                ValueState::Counter(_) | ValueState::Histogram { .. } => {}
            }
        }
    }
}

impl ValueState {
    /// The kind of metric this is the state of.
    #[must_use]
    pub fn kind(&self) -> MetricKind {
        match self {
            Self::Counter(_) => MetricKind::Counter,
            Self::Gauge { .. } => MetricKind::Gauge,
            Self::Histogram { .. } => MetricKind::Histogram,
            Self::Rate { .. } => MetricKind::Rate,
        }
    }

    /// The config as the registry compares it (`None` for counters and gauges).
    fn config_text(&self) -> Option<String> {
        match self {
            Self::Counter(_) | Self::Gauge { .. } => None,
            Self::Histogram { config, unit, .. } => Some(histogram_config_text(*config, *unit)),
            Self::Rate { config, .. } => Some(format!("{config:?}")),
        }
    }
}

fn export_metric(m: &Metric) -> ValueState {
    match m {
        Metric::Counter(c) => ValueState::Counter(c.get()),
        Metric::Gauge(g) => ValueState::Gauge {
            value: g.get(),
            min: g.min(),
            max: g.max(),
        },
        Metric::Histogram(h) => {
            let s = h.snapshot();
            let counts = s
                .counts()
                .iter()
                .enumerate()
                .filter(|(_, &n)| n != 0)
                .map(|(i, &n)| (i as u64, n))
                .collect();
            ValueState::Histogram {
                config: s.config(),
                unit: s.unit(),
                counts,
                min: s.min(),
                max: s.max(),
                rejected: s.rejected(),
            }
        }
        Metric::Rate(r) => {
            let (age, window) = r.window_state();
            ValueState::Rate {
                config: r.config(),
                total: r.total(),
                age,
                window,
            }
        }
    }
}

/// `(name, labels)` of a series, borrowed from a state.
type SeriesKey<'a> = (&'a str, &'a [(String, String)]);

impl Registry {
    /// The full state of every metric, read lock-free while writers run
    /// (each metric as its own snapshot reads it; not one instant for all).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Registry;
    ///
    /// let a = Registry::new();
    /// a.counter("logins", &[])?.add(3);
    /// let b = Registry::from_state(&a.export_state())?;
    /// assert_eq!(b.counter("logins", &[])?.get(), 3);
    /// b.merge_state(&a.export_state())?;
    /// assert_eq!(b.counter("logins", &[])?.get(), 6);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn export_state(&self) -> RegistryState {
        let (series, help, buckets) = self.list_all();
        let series = series
            .into_iter()
            .map(|((name, labels), m)| SeriesState {
                name,
                labels,
                value: export_metric(&m),
            })
            .collect();
        RegistryState {
            help,
            buckets,
            series,
        }
    }

    /// A new registry on the system clock holding `state` exactly: its
    /// snapshot equals the exported registry's (rates taken at the same
    /// moment of their ticks).
    ///
    /// # Errors
    ///
    /// As [`merge_state`](Registry::merge_state).
    pub fn from_state(state: &RegistryState) -> Result<Self, StatsError> {
        let reg = Self::new();
        reg.merge_state(state)?;
        Ok(reg)
    }

    /// Merges `state` into this registry by the merge rules of
    /// [`RegistryState`]: missing series are created as in the state,
    /// existing ones combined.
    ///
    /// # Errors
    ///
    /// Checked before anything changes: [`StatsError::KindMismatch`],
    /// [`StatsError::ConfigMismatch`] (histogram config or unit, rate
    /// window, help text, classic buckets; against this registry and within
    /// the state), [`StatsError::InvalidState`], the name and label errors
    /// of [`Registry::counter`], and the config errors of each kind. Found
    /// part way: [`StatsError::TooManySeries`] when a limited registry
    /// fills, [`StatsError::NameCollision`] between exposed names.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{HistogramConfig, Registry, StatsError};
    ///
    /// let a = Registry::new();
    /// a.histogram("t", &[], HistogramConfig { max: 1000, significant_digits: 2 })?;
    /// let b = Registry::new();
    /// b.histogram("t", &[], HistogramConfig { max: 1000, significant_digits: 3 })?;
    /// let err = b.merge_state(&a.export_state()).unwrap_err();
    /// assert!(matches!(err, StatsError::ConfigMismatch { .. }));
    /// # Ok::<(), StatsError>(())
    /// ```
    pub fn merge_state(&self, state: &RegistryState) -> Result<(), StatsError> {
        self.check_state(state)?;
        for (name, text) in &state.help {
            self.describe(name, text)?;
        }
        for (name, bounds) in &state.buckets {
            self.set_buckets(name, bounds)?;
        }
        for s in &state.series {
            self.merge_series(s)?;
        }
        Ok(())
    }

    /// Every check of `merge_state` that can be made without changing
    /// anything.
    fn check_state(&self, state: &RegistryState) -> Result<(), StatsError> {
        let snap_help = self.list_all();
        for (name, text) in &state.help {
            super::exposition::validate_metric_name(name)?;
            super::exposition::validate_help(name, text)?;
            if let Some((_, existing)) = snap_help.1.iter().find(|(n, _)| n == name) {
                if existing != text {
                    return Err(StatsError::ConfigMismatch {
                        name: name.clone(),
                        existing: format!("help {existing:?}"),
                        requested: format!("help {text:?}"),
                    });
                }
            }
        }
        for (name, bounds) in &state.buckets {
            super::exposition::validate_metric_name(name)?;
            let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
            if bounds.is_empty() || !increasing || bounds.iter().any(|v| !v.is_finite()) {
                return Err(StatsError::InvalidBuckets {
                    metric: name.clone(),
                    buckets: bounds.clone(),
                });
            }
            if let Some((_, existing)) = snap_help.2.iter().find(|(n, _)| n == name) {
                if existing != bounds {
                    return Err(StatsError::ConfigMismatch {
                        name: name.clone(),
                        existing: format!("buckets {existing:?}"),
                        requested: format!("buckets {bounds:?}"),
                    });
                }
            }
        }
        // Within the state too: one kind per name, one config per series.
        let mut kinds: std::collections::HashMap<&str, MetricKind> = Default::default();
        let mut configs: std::collections::HashMap<SeriesKey<'_>, String> = Default::default();
        for s in &state.series {
            let kind = s.value.kind();
            let config = s.value.config_text();
            if let Some(&k) = kinds.get(s.name.as_str()) {
                if k != kind {
                    return Err(StatsError::KindMismatch {
                        name: s.name.clone(),
                        existing: k,
                        requested: kind,
                    });
                }
            }
            kinds.insert(&s.name, kind);
            if let Some(c) = &config {
                match configs.get(&(s.name.as_str(), s.labels.as_slice())) {
                    Some(existing) if existing != c => {
                        return Err(StatsError::ConfigMismatch {
                            name: s.name.clone(),
                            existing: existing.clone(),
                            requested: c.clone(),
                        })
                    }
                    _ => {
                        configs.insert((&s.name, &s.labels), c.clone());
                    }
                }
            }
            self.precheck(&s.name, &s.labels, kind, config.as_deref())?;
            match &s.value {
                ValueState::Histogram {
                    config,
                    unit,
                    counts,
                    ..
                } => {
                    // The config itself (no histogram is built: only its
                    // size is computed), then every bucket index against it.
                    let n = super::Histogram::buckets_for(*config)? as u64;
                    if let Some(u) = unit {
                        if !(u.is_finite() && *u > 0.0) {
                            return Err(StatsError::InvalidUnit { unit: *u });
                        }
                    }
                    if let Some(&(bad, _)) = counts.iter().find(|(i, _)| *i >= n) {
                        return Err(StatsError::InvalidState {
                            name: s.name.clone(),
                            reason: format!("bucket {bad} past the histogram's {n} buckets"),
                        });
                    }
                }
                ValueState::Rate { config, window, .. } => {
                    super::rate::RatePlan::new(config.window, config.buckets, 1)?;
                    let n = config.buckets as u64;
                    if let Some(&(bad, _)) = window.iter().find(|(a, _)| *a >= n) {
                        return Err(StatsError::InvalidState {
                            name: s.name.clone(),
                            reason: format!("window bucket age {bad} past the rate's {n} buckets"),
                        });
                    }
                }
                ValueState::Counter(_) | ValueState::Gauge { .. } => {}
            }
            if kind != MetricKind::Histogram && state.buckets.iter().any(|(n, _)| *n == s.name) {
                return Err(StatsError::KindMismatch {
                    name: s.name.clone(),
                    existing: MetricKind::Histogram,
                    requested: kind,
                });
            }
        }
        Ok(())
    }

    fn merge_series(&self, s: &SeriesState) -> Result<(), StatsError> {
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (name, labels) = (s.name.as_str(), labels.as_slice());
        let existed = self.contains_series(name, &s.labels);
        match &s.value {
            ValueState::Counter(v) => self.counter(name, labels)?.add(*v),
            ValueState::Gauge { value, min, max } => {
                let g = self.gauge(name, labels)?;
                if existed {
                    g.merge_state(*value, *min, *max);
                } else {
                    g.load_state(*value, *min, *max);
                }
            }
            ValueState::Histogram {
                config,
                unit,
                counts,
                min,
                max,
                rejected,
            } => {
                let h = self.histogram_in(name, labels, *config, *unit)?;
                h.merge_sparse(counts, *min, *max, *rejected);
            }
            ValueState::Rate {
                config,
                total,
                age,
                window,
            } => {
                let r = self.rate_in(name, labels, *config, Some(*age))?;
                r.absorb(*total, window);
            }
        }
        Ok(())
    }
}
