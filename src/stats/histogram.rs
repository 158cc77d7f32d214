//! [`Histogram`]: a lock-free log-linear (HDR-style) histogram of `u64`
//! values with bounded relative error.

use core::fmt;

use super::hist_front::{Cells, Fronts};
use super::snapshot_hist::HistogramSnapshot;
use super::{saturating_add, StatsError};
use crate::sync::{default_shard_count, Ordering};

/// The two numbers that fix a histogram's bucket layout.
///
/// Two histograms merge bucket by bucket only if their configs are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistogramConfig {
    /// The highest value that can be recorded (at least 1); the lowest is 0.
    pub max: u64,
    /// Decimal significant digits kept, `0..=5`: percentiles are within
    /// `10^-digits / 2` relative error (see [`Histogram`]).
    pub significant_digits: u8,
}

/// Bucket geometry shared by [`Histogram`] and [`HistogramSnapshot`].
///
/// Values below `2^(m+1)` get a bucket each. Above, bucket group `e >= 1`
/// covers `[2^(m+e), 2^(m+e+1))` with `2^m` buckets of width `2^e`, so a
/// bucket's width is at most `1 / 2^m` of its lowest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `m`: the smallest integer with `2^m >= 10^digits`.
    pub(crate) magnitude: u32,
    /// `2^(m+1) - 1`.
    mask: u64,
}

impl Layout {
    pub(crate) fn new(digits: u8) -> Self {
        let magnitude = match digits {
            0 => 0,
            1 => 4,
            2 => 7,
            3 => 10,
            4 => 14,
            _ => 17,
        };
        Self {
            magnitude,
            mask: (1u64 << (magnitude + 1)) - 1,
        }
    }

    /// The bucket index of `v`. Branch-free: `e = 0` below `2^(m+1)`.
    #[inline(always)]
    pub(crate) fn index(self, v: u64) -> usize {
        // `| 1` changes nothing (`mask >= 1`) but tells the compiler the
        // operand is never 0, so `ilog2` is one `bsr` with no zero check.
        let e = (v | self.mask | 1).ilog2() - self.magnitude;
        ((u64::from(e) << self.magnitude) + (v >> e)) as usize
    }

    /// `(lowest value, width)` of bucket `i`.
    pub(crate) fn bucket(self, i: usize) -> (u64, u64) {
        let i = i as u64;
        if i <= self.mask {
            return (i, 1);
        }
        let e = (i >> self.magnitude) - 1;
        let sub = i - (e << self.magnitude);
        (sub << e, 1 << e)
    }

    /// The value reported for bucket `i`: its midpoint, so that every value
    /// in the bucket is within `2^-(m+1)` relative error of it.
    pub(crate) fn representative(self, i: usize) -> u64 {
        let (low, width) = self.bucket(i);
        low + width / 2
    }

    /// The documented relative error bound `2^-(m+1)`.
    pub(crate) fn relative_error(self) -> f64 {
        1.0 / f64::from(1u32 << (self.magnitude + 1))
    }
}

/// The value of `ticks` ticks of `unit` (`ticks` itself without a unit), as
/// [`Histogram::tick_value`] gives it: for readers of plain snapshot data.
pub(crate) fn tick_value(unit: Option<f64>, ticks: u64) -> f64 {
    Scale::new(unit).value(ticks)
}

/// Converts values to ticks and back for a unit. When the unit is the
/// reciprocal of an integer (`1e-3`, `1e-6`, ...), by multiplying and
/// dividing by that integer, each correctly rounded, so `0.0125` seconds is
/// exactly 12 500 microsecond ticks and back (`0.0125 / 1e-6` is not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    /// The declared unit, `None` for integers (then a unit of 1).
    declared: Option<f64>,
    unit: f64,
    /// `1 / unit` rounded, when that is an integer to within `1e-9`
    /// (relative); 0 otherwise.
    per_unit: f64,
}

impl Scale {
    fn new(declared: Option<f64>) -> Self {
        let unit = declared.unwrap_or(1.0);
        let inv = (1.0 / unit).round();
        let per_unit = if inv >= 1.0 && (inv * unit - 1.0).abs() <= 1e-9 {
            inv
        } else {
            0.0
        };
        Self {
            declared,
            unit,
            per_unit,
        }
    }

    /// The declared unit.
    pub(crate) fn unit(self) -> Option<f64> {
        self.declared
    }

    /// `v` in ticks, unrounded.
    #[inline]
    fn ticks(self, v: f64) -> f64 {
        if self.per_unit != 0.0 {
            v * self.per_unit
        } else {
            v / self.unit
        }
    }

    /// The value of `t` ticks.
    pub(crate) fn value(self, t: u64) -> f64 {
        self.value_of_f64(t as f64)
    }

    /// The value of `t` ticks given as a float (a sum of ticks).
    pub(crate) fn value_of_f64(self, t: f64) -> f64 {
        if self.per_unit != 0.0 {
            t / self.per_unit
        } else {
            t * self.unit
        }
    }
}

/// A log-linear histogram in the HDR style: record `u64` values (or `f64`
/// values in a declared unit) lock-free from many threads, read count, sum,
/// min, max, mean and percentiles live.
///
/// # Layout and error bound
///
/// Configured by the highest trackable value `max` and `digits` significant
/// decimal digits (`0..=5`). With `m` the smallest integer such that
/// `2^m >= 10^digits`, values below `2^(m+1)` are counted exactly and larger
/// ones in buckets whose width is at most `1/2^m` of their lowest value.
/// A percentile (and every value derived from buckets) is reported as its
/// bucket's midpoint, clamped into `[min, max]`, so:
///
/// **`|reported - exact| <= exact * 2^-(m+1) <= exact * 10^-digits / 2`**
///
/// where `exact` is the nearest-rank quantile of the recorded values (the
/// smallest recorded value `v` such that at least `ceil(q * count)` values
/// are `<= v`). [`Histogram::relative_error`] returns `2^-(m+1)`.
/// `count`, `min` and `max` are exact; `sum` and `mean` are computed from the
/// buckets and hold the same relative error bound.
///
/// Counts never wrap: a bucket (and `rejected`) stops at
/// [`COUNT_SATURATION`](super::COUNT_SATURATION) (`u64::MAX - 2^52`) and `count`
/// saturates at `u64::MAX`; `sum` is an `f64` and never overflows (see
/// [`HistogramSnapshot::sum`]). Once counts saturate they are lower bounds,
/// and percentiles over them lose their error bound.
///
/// # Floats and units
///
/// A histogram built by [`with_unit`](Histogram::with_unit) counts integer
/// *ticks* of `unit` (`unit = 1e-6` for microseconds of a duration in
/// seconds): the integer API (`record`, `quantile`, `min`, ...) speaks ticks,
/// and [`record_f64`](Histogram::record_f64) and the `*_value` getters speak
/// values (`ticks * unit`). A float `v` is counted in tick `round(v / unit)`
/// when that is below `2^(m+1)`, else in `floor(v / unit)` (the tick whose
/// bucket holds `v / unit` itself), so a value-unit percentile is within
/// **`max(exact * 2^-(m+1), unit / 2)`** of the exact one: relative error
/// from `2^m` ticks up, half a tick below. Floats are never rounded beyond
/// that; [`record_value`](Histogram::record_value) refuses a fraction in a
/// histogram without a unit instead of rounding it to an integer.
///
/// Memory: 8 bytes per bucket, about `2^m * (log2(max) - m + 2)` buckets
/// (3 digits up to `10^12`: 31 744 buckets, 248 KiB), once for the shared
/// cells and once more for each thread that records (see below).
///
/// # Bad values
///
/// Values above `max`, and negative, infinite or NaN floats given to
/// [`record_f64`](Histogram::record_f64), are not recorded: the call returns
/// an error naming the value, and the value is counted in
/// [`rejected`](Histogram::rejected), so a caller that drops the error still
/// sees the loss in every snapshot.
///
/// # Concurrency
///
/// Each recording thread gets its own *front*, a copy of the buckets that
/// only it writes, so recording is a plain load and store with no locked
/// instruction; the threads holding the [`fronts`](Histogram::fronts)
/// smallest per-thread indices get one (an exited thread's index, and its
/// front, pass to the next new thread), the others `fetch_add` into the
/// shared cells. Readers sum the shared cells and every front. A
/// [`snapshot`](Histogram::snapshot) taken while writers run is internally
/// consistent: its count is exactly the sum of its buckets, its sum and
/// percentiles are derived from those same buckets, and every counted value
/// lies within its `[min, max]`. Records in flight may be missing from it.
///
/// # Examples
///
/// ```
/// use ringstat::stats::Histogram;
///
/// let online_secs = Histogram::new(3_600_000, 3)?;
/// for v in 1..=1000 {
///     online_secs.record(v)?;
/// }
/// assert_eq!(online_secs.count(), 1000);
/// let p50 = online_secs.quantile(0.5)?.unwrap();
/// assert!((499..=501).contains(&p50));
/// assert!(online_secs.record(u64::MAX).is_err());
/// assert_eq!(online_secs.rejected(), 1);
/// # Ok::<(), ringstat::stats::StatsError>(())
/// ```
pub struct Histogram {
    config: HistogramConfig,
    layout: Layout,
    /// The unit, and conversions between values and ticks (see [`Scale`]).
    scale: Scale,
    /// `layout.index(config.max) + 1` buckets that any thread adds to:
    /// merges, and threads without a front of their own.
    shared: Cells,
    /// Per-thread buckets, each written by one thread only (none in a
    /// shared region: every process records into `shared`).
    fronts: Fronts,
}

/// Where a record goes: the calling thread's front (every public method),
/// or straight to the shared cells. `Shared` is for callers that are
/// serialized anyway (the Python binding, under the interpreter lock),
/// where a front only adds the thread-local lookup that picks it: in a
/// shared library a call to `__tls_get_addr`, about a tenth of a Python
/// `record` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Front,
    #[cfg_attr(not(any(feature = "python", test)), allow(dead_code))]
    Shared,
}

impl Histogram {
    /// An empty histogram for values `0..=max` with `digits` significant
    /// decimal digits.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidMaxValue`] if `max` is 0,
    /// [`StatsError::InvalidSignificantDigits`] if `digits > 5`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Histogram;
    ///
    /// assert!(Histogram::new(1_000_000, 3).is_ok());
    /// assert!(Histogram::new(1_000_000, 6).is_err());
    /// ```
    pub fn new(max: u64, digits: u8) -> Result<Self, StatsError> {
        Self::with_config(HistogramConfig {
            max,
            significant_digits: digits,
        })
    }

    /// An empty histogram with the given configuration.
    ///
    /// # Errors
    ///
    /// As [`Histogram::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 1000, significant_digits: 2 };
    /// assert_eq!(Histogram::with_config(cfg)?.config(), cfg);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn with_config(config: HistogramConfig) -> Result<Self, StatsError> {
        let len = Self::buckets_for(config)?;
        Ok(Self {
            config,
            layout: Layout::new(config.significant_digits),
            scale: Scale::new(None),
            shared: Cells::new(len),
            fronts: Fronts::new(default_shard_count(), len),
        })
    }

    /// The number of buckets of a histogram with `config`, or why there is
    /// no such histogram.
    pub(crate) fn buckets_for(config: HistogramConfig) -> Result<usize, StatsError> {
        if config.significant_digits > 5 {
            return Err(StatsError::InvalidSignificantDigits {
                digits: config.significant_digits,
            });
        }
        if config.max == 0 {
            return Err(StatsError::InvalidMaxValue { max: config.max });
        }
        Ok(Layout::new(config.significant_digits).index(config.max) + 1)
    }

    /// A histogram over `cells` as they are (a shared region's), with no
    /// per-thread fronts: every record goes to `cells`.
    pub(crate) fn from_cells(
        config: HistogramConfig,
        unit: Option<f64>,
        cells: Cells,
    ) -> Result<Self, StatsError> {
        let len = Self::buckets_for(config)?;
        if let Some(unit) = unit {
            if !(unit.is_finite() && unit > 0.0) {
                return Err(StatsError::InvalidUnit { unit });
            }
        }
        assert_eq!(cells.counts().len(), len, "cells sized for the config");
        Ok(Self {
            config,
            layout: Layout::new(config.significant_digits),
            scale: Scale::new(unit),
            shared: cells,
            fronts: Fronts::disabled(),
        })
    }

    /// An empty histogram of ticks of `unit` (`config.max` is in ticks):
    /// [`record_f64`](Histogram::record_f64) takes values in the unit's
    /// scale, and the `*_value` getters return them (see the type docs).
    ///
    /// # Errors
    ///
    /// As [`Histogram::new`], and [`StatsError::InvalidUnit`] if `unit` is
    /// not finite and above 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// // Seconds, kept to the microsecond, up to one minute.
    /// let cfg = HistogramConfig { max: 60_000_000, significant_digits: 3 };
    /// let latency = Histogram::with_unit(cfg, 1e-6)?;
    /// latency.record_f64(0.0125)?;
    /// assert_eq!(latency.quantile(0.5)?, Some(12_500)); // ticks
    /// assert_eq!(latency.value_quantile(0.5)?, Some(0.0125)); // seconds
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn with_unit(config: HistogramConfig, unit: f64) -> Result<Self, StatsError> {
        if !(unit.is_finite() && unit > 0.0) {
            return Err(StatsError::InvalidUnit { unit });
        }
        Ok(Self {
            scale: Scale::new(Some(unit)),
            ..Self::with_config(config)?
        })
    }

    /// The value of one tick, `None` for a histogram built without a unit
    /// (whose ticks are the integer values themselves).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// assert_eq!(Histogram::new(100, 2)?.unit(), None);
    /// let cfg = HistogramConfig { max: 100, significant_digits: 2 };
    /// assert_eq!(Histogram::with_unit(cfg, 0.5)?.unit(), Some(0.5));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn unit(&self) -> Option<f64> {
        self.scale.unit()
    }

    /// The value of `ticks` ticks in the histogram's unit (`ticks` itself
    /// without a unit), as the `*_value` getters report it.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 60_000_000, significant_digits: 3 };
    /// assert_eq!(Histogram::with_unit(cfg, 1e-6)?.tick_value(12_500), 0.0125);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn tick_value(&self, ticks: u64) -> f64 {
        self.scale.value(ticks)
    }

    /// How many threads can have a front of their own (see the type docs).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::stats::Histogram::new(100, 2)?.fronts().is_power_of_two());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn fronts(&self) -> usize {
        self.fronts.slots()
    }

    /// The configuration this histogram was built with.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 1)?;
    /// assert_eq!(h.config().max, 100);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn config(&self) -> HistogramConfig {
        self.config
    }

    /// The documented relative error bound, `2^-(m+1)` (at most
    /// `10^-digits / 2`).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 3)?;
    /// assert!(h.relative_error() <= 0.0005);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn relative_error(&self) -> f64 {
        self.layout.relative_error()
    }

    /// Records one value.
    ///
    /// # Errors
    ///
    /// [`StatsError::ValueOutOfRange`] if `v > config().max`; nothing is
    /// recorded and [`rejected`](Histogram::rejected) grows by one.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record(42)?;
    /// assert_eq!(h.max(), Some(42));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[inline]
    pub fn record(&self, v: u64) -> Result<(), StatsError> {
        self.record_n(v, 1)
    }

    /// Records `n` occurrences of one value.
    ///
    /// # Errors
    ///
    /// [`StatsError::ValueOutOfRange`] if `v > config().max`; nothing is
    /// recorded and [`rejected`](Histogram::rejected) grows by `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record_n(7, 3)?;
    /// assert_eq!(h.count(), 3);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[inline]
    pub fn record_n(&self, v: u64, n: u64) -> Result<(), StatsError> {
        self.record_n_via(v, n, Via::Front)
    }

    /// As [`record_n`](Histogram::record_n), through `via`.
    #[inline]
    pub(crate) fn record_n_via(&self, v: u64, n: u64, via: Via) -> Result<(), StatsError> {
        if v > self.config.max {
            return Err(self.reject_int(v, n));
        }
        if n == 0 {
            return Ok(());
        }
        let i = self.layout.index(v);
        // SAFETY: `v <= max` and the index is monotone in `v`, so
        // `i <= layout.index(max)`, below the bucket count of the fronts.
        if via == Via::Shared || !unsafe { self.fronts.add(i, v, n) } {
            self.shared.add_shared(i, v, n);
        }
        Ok(())
    }

    /// Records a float in the histogram's unit (1 without one): counted in
    /// tick `round(v / unit)` below `2^(m+1)` ticks, else `floor(v / unit)`
    /// (see the type docs). Without a unit this rounds fractions to an
    /// integer; [`record_value`](Histogram::record_value) refuses them.
    ///
    /// # Errors
    ///
    /// [`StatsError::NotANumber`] for NaN; [`StatsError::FloatOutOfRange`]
    /// (no unit) or [`StatsError::UnitValueOutOfRange`] (with a unit) for negative
    /// values, infinities and values above the highest tick. Nothing is
    /// recorded and [`rejected`](Histogram::rejected) grows by one. `-0.0`
    /// records 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record_f64(2.6)?;
    /// assert_eq!(h.min(), Some(3));
    /// assert!(h.record_f64(-1.0).is_err());
    /// assert!(h.record_f64(-0.4).is_err());
    /// assert!(h.record_f64(f64::NAN).is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn record_f64(&self, v: f64) -> Result<(), StatsError> {
        self.record_f64_n(v, 1)
    }

    /// Records `n` occurrences of a float (see
    /// [`record_f64`](Histogram::record_f64)).
    ///
    /// # Errors
    ///
    /// As `record_f64`; [`rejected`](Histogram::rejected) grows by `n`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 1000, significant_digits: 2 };
    /// let h = Histogram::with_unit(cfg, 0.5)?;
    /// h.record_f64_n(1.5, 3)?;
    /// assert_eq!((h.count(), h.sum()), (3, 4.5));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn record_f64_n(&self, v: f64, n: u64) -> Result<(), StatsError> {
        self.record_f64_n_via(v, n, Via::Front)
    }

    /// As [`record_f64_n`](Histogram::record_f64_n), through `via`.
    pub(crate) fn record_f64_n_via(&self, v: f64, n: u64, via: Via) -> Result<(), StatsError> {
        if v.is_nan() {
            saturating_add(self.shared.rejected(), n, Ordering::Relaxed);
            return Err(StatsError::NotANumber);
        }
        match self.ticks(v) {
            Some(t) => self.record_n_via(t, n, via),
            None => {
                saturating_add(self.shared.rejected(), n, Ordering::Relaxed);
                Err(self.float_range_err(v))
            }
        }
    }

    /// As [`record_f64`](Histogram::record_f64), but a histogram without a
    /// unit refuses a fraction instead of rounding it, so no value is ever
    /// counted farther from itself than the stated precision.
    ///
    /// # Errors
    ///
    /// As `record_f64`, and [`StatsError::FractionalValue`] for a fraction
    /// in a histogram without a unit (counted in
    /// [`rejected`](Histogram::rejected)).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record_value(12.0)?;
    /// assert!(h.record_value(12.5).is_err());
    /// assert_eq!((h.count(), h.rejected()), (1, 1));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn record_value(&self, v: f64) -> Result<(), StatsError> {
        self.record_value_via(v, Via::Front)
    }

    /// Records `v` as [`record_f64`](Histogram::record_f64) does, through
    /// `via`, if it is in range (not NaN, not negative, not above the
    /// highest tick); `false`, with nothing recorded or counted, if not.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    #[inline]
    pub(crate) fn record_f64_in_range(&self, v: f64, via: Via) -> bool {
        match self.ticks(v) {
            Some(t) => self.record_n_via(t, 1, via).is_ok(),
            None => false,
        }
    }

    /// As [`record_value`](Histogram::record_value), through `via`.
    pub(crate) fn record_value_via(&self, v: f64, via: Via) -> Result<(), StatsError> {
        // Out-of-range values (NaN included) get `record_f64`'s error.
        let in_range = (0.0..=self.config.max as f64).contains(&v);
        if self.scale.unit().is_none() && in_range && v.fract() != 0.0 {
            saturating_add(self.shared.rejected(), 1, Ordering::Relaxed);
            return Err(StatsError::FractionalValue { value: v });
        }
        self.record_f64_n_via(v, 1, via)
    }

    /// The tick of value `v` (see the type docs), `None` if it is negative,
    /// infinite, NaN or above the highest tick.
    fn ticks(&self, v: f64) -> Option<u64> {
        let t = self.scale.ticks(v);
        // Below 2^(m+1) ticks buckets are one tick wide: the nearest tick.
        // Above, buckets are whole ticks wide: the tick in `t`'s bucket; and
        // just below, where the nearest tick would be the first wide bucket,
        // the tick below (within `t * 2^-(m+1)` there).
        let exact_below = (2u64 << self.layout.magnitude) as f64;
        let r = t.round();
        let r = if r < exact_below { r } else { t.floor() };
        // 2^64 as f64: anything at or above does not fit a u64. `-0.0`
        // passes (it is not below 0), other negatives do not.
        if !(0.0..18_446_744_073_709_551_616.0).contains(&r) || v < 0.0 {
            return None;
        }
        let r = r as u64;
        (r <= self.config.max).then_some(r)
    }

    #[cold]
    fn float_range_err(&self, v: f64) -> StatsError {
        match self.scale.unit() {
            Some(_) => StatsError::UnitValueOutOfRange {
                value: v,
                max: self.scale.value(self.config.max),
            },
            None => StatsError::FloatOutOfRange {
                value: v,
                max: self.config.max,
            },
        }
    }

    #[cold]
    fn reject_int(&self, v: u64, n: u64) -> StatsError {
        saturating_add(self.shared.rejected(), n, Ordering::Relaxed);
        StatsError::ValueOutOfRange {
            value: v,
            max: self.config.max,
        }
    }

    /// How many values `record*` refused (each one also returned an error).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(10, 1)?;
    /// let _ = h.record(11);
    /// assert_eq!(h.rejected(), 1);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.shared.rejected().load(Ordering::Relaxed)
    }

    /// An internally consistent copy of the histogram (see the type docs).
    /// Costs one load per bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record(5)?;
    /// let s = h.snapshot();
    /// assert_eq!((s.count(), s.min(), s.max()), (1, Some(5), Some(5)));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        // Every count first (Acquire, in `add_counts_to`), then min/max: the
        // min/max of every value counted are visible to the loads below.
        let mut counts = vec![0u64; self.shared.counts().len()];
        self.shared.add_counts_to(&mut counts);
        self.fronts.for_each(|f| f.add_counts_to(&mut counts));
        let (min, max) = self.min_max();
        let rejected = self.shared.rejected().load(Ordering::Relaxed);
        HistogramSnapshot::new(
            self.config,
            self.layout,
            self.scale,
            counts,
            min,
            max,
            rejected,
        )
    }

    /// Smallest and largest value over the shared cells and every front
    /// (`u64::MAX` and 0 while empty). Relaxed: callers that need them to
    /// cover some counts load those counts first with Acquire.
    fn min_max(&self) -> (u64, u64) {
        let mut min = self.shared.min().load(Ordering::Relaxed);
        let mut max = self.shared.max().load(Ordering::Relaxed);
        self.fronts.for_each(|f| {
            min = min.min(f.min().load(Ordering::Relaxed));
            max = max.max(f.max().load(Ordering::Relaxed));
        });
        (min, max)
    }

    /// Number of values recorded (exact; sums the buckets, saturating at
    /// `u64::MAX`).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record_n(1, 4)?;
    /// assert_eq!(h.count(), 4);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn count(&self) -> u64 {
        // Bucket by bucket, so each stops at the saturation point as in a
        // snapshot.
        let mut counts = vec![0u64; self.shared.counts().len()];
        self.shared.add_counts_to(&mut counts);
        self.fronts.for_each(|f| f.add_counts_to(&mut counts));
        counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Sum of the values recorded, from bucket midpoints (exact below
    /// `2^(m+1)`, otherwise within the relative error bound), in value units
    /// (ticks times the unit, if any).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record(3)?;
    /// h.record(4)?;
    /// assert_eq!(h.sum(), 7.0);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.snapshot().sum()
    }

    /// Smallest value recorded, `None` while empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// assert_eq!(h.min(), None);
    /// h.record(9)?;
    /// assert_eq!(h.min(), Some(9));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn min(&self) -> Option<u64> {
        // Read directly, without the copy of every bucket a snapshot makes.
        // Relaxed: the value alone is reported (a record in flight may show
        // here before its count does, as in any two separate reads).
        let (min, _) = self.min_max();
        if min != u64::MAX {
            return Some(min);
        }
        // Empty, or `u64::MAX` itself was recorded (when `max` allows it).
        (self.count() != 0).then_some(min)
    }

    /// Largest value recorded, `None` while empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record(9)?;
    /// assert_eq!(h.max(), Some(9));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn max(&self) -> Option<u64> {
        // Read directly, as in `min`. Relaxed: as there.
        let (_, max) = self.min_max();
        if max != 0 {
            return Some(max);
        }
        // Empty, or only zeros were recorded.
        (self.count() != 0).then_some(0)
    }

    /// Mean of the values recorded, `None` while empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record(2)?;
    /// h.record(4)?;
    /// assert_eq!(h.mean(), Some(3.0));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn mean(&self) -> Option<f64> {
        self.snapshot().mean()
    }

    /// The `q`-quantile (`q` in `[0, 1]`; p99 is `quantile(0.99)`), `None`
    /// while empty. See the type docs for the definition and error bound.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] if `q` is NaN or outside `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// for v in 1..=10 { h.record(v)?; }
    /// assert_eq!(h.quantile(0.9)?, Some(9));
    /// assert!(h.quantile(1.5).is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn quantile(&self, q: f64) -> Result<Option<u64>, StatsError> {
        self.snapshot().quantile(q)
    }

    /// The percentile `p` in `[0, 100]`: `percentile(99.0) == quantile(0.99)`.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] (with `q = p / 100`) if `p` is NaN or
    /// outside `[0, 100]`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// for v in 1..=100 { h.record(v)?; }
    /// assert_eq!(h.percentile(99.0)?, Some(99));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn percentile(&self, p: f64) -> Result<Option<u64>, StatsError> {
        self.quantile(p / 100.0)
    }

    /// Several quantiles from one snapshot, in the order asked.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] for the first bad `q`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// for v in 1..=100 { h.record(v)?; }
    /// assert_eq!(h.quantiles(&[0.5, 0.99])?, vec![Some(50), Some(99)]);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn quantiles(&self, qs: &[f64]) -> Result<Vec<Option<u64>>, StatsError> {
        self.snapshot().quantiles(qs)
    }

    /// The `q`-quantile in value units (ticks times the unit, if any): for
    /// floats recorded by [`record_f64`](Histogram::record_f64).
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] if `q` is NaN or outside `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 1000, significant_digits: 2 };
    /// let h = Histogram::with_unit(cfg, 0.25)?;
    /// h.record_f64(1.75)?;
    /// assert_eq!(h.value_quantile(1.0)?, Some(1.75));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn value_quantile(&self, q: f64) -> Result<Option<f64>, StatsError> {
        self.snapshot().value_quantile(q)
    }

    /// Adds every value recorded in `other` to `self`, bucket by bucket (from
    /// a snapshot of `other`). Afterwards `self` holds exactly what recording
    /// both value streams into one histogram would give.
    ///
    /// # Errors
    ///
    /// [`StatsError::IncompatibleHistograms`] if the configs differ; `self`
    /// is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Histogram;
    ///
    /// let a = Histogram::new(100, 2)?;
    /// let b = Histogram::new(100, 2)?;
    /// a.record(1)?;
    /// b.record(99)?;
    /// a.merge(&b)?;
    /// assert_eq!((a.count(), a.min(), a.max()), (2, Some(1), Some(99)));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn merge(&self, other: &Histogram) -> Result<(), StatsError> {
        self.merge_snapshot(&other.snapshot())
    }

    /// Adds a snapshot's values to `self` (see [`merge`](Histogram::merge)).
    ///
    /// # Errors
    ///
    /// [`StatsError::IncompatibleHistograms`] if the configs differ.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = ringstat::stats::Histogram::new(100, 2)?;
    /// a.record(5)?;
    /// let s = a.snapshot();
    /// a.merge_snapshot(&s)?;
    /// assert_eq!(a.count(), 2);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn merge_snapshot(&self, other: &HistogramSnapshot) -> Result<(), StatsError> {
        let oc = other.config();
        if oc != self.config {
            return Err(StatsError::IncompatibleHistograms {
                left: (self.config.max, self.config.significant_digits),
                right: (oc.max, oc.significant_digits),
            });
        }
        if other.unit() != self.scale.unit() {
            return Err(StatsError::IncompatibleUnits {
                left: self.scale.unit(),
                right: other.unit(),
            });
        }
        if let (Some(lo), Some(hi)) = (other.min(), other.max()) {
            self.shared.min().fetch_min(lo, Ordering::Relaxed);
            self.shared.max().fetch_max(hi, Ordering::Relaxed);
        }
        saturating_add(self.shared.rejected(), other.rejected(), Ordering::Relaxed);
        for (cell, &n) in self.shared.counts().iter().zip(other.counts()) {
            if n != 0 {
                // Release: pairs with the Acquire loads of a snapshot, after
                // the min/max update above (as in `Cells::add_shared`).
                saturating_add(cell, n, Ordering::Release);
            }
        }
        Ok(())
    }
}

/// State export and merge (`stats::state`).
impl Histogram {
    /// The number of buckets.
    pub(crate) fn bucket_count(&self) -> usize {
        self.shared.counts().len()
    }

    /// Adds sparse `(bucket index, count)` pairs, with their min, max and
    /// rejected count, as [`merge_snapshot`](Histogram::merge_snapshot)
    /// adds a snapshot. The caller checked every index is below
    /// [`bucket_count`](Histogram::bucket_count).
    pub(crate) fn merge_sparse(
        &self,
        counts: &[(u64, u64)],
        min: Option<u64>,
        max: Option<u64>,
        rejected: u64,
    ) {
        let mut dense = vec![0u64; self.bucket_count()];
        for &(i, n) in counts {
            if let Some(c) = usize::try_from(i).ok().and_then(|i| dense.get_mut(i)) {
                *c = c.saturating_add(n);
            }
        }
        let snap = HistogramSnapshot::new(
            self.config,
            self.layout,
            self.scale,
            dense,
            min.unwrap_or(u64::MAX),
            max.unwrap_or(0),
            rejected,
        );
        self.merge_snapshot(&snap)
            .expect("a snapshot of this histogram's own config and unit");
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("config", &self.config)
            .field("unit", &self.scale.unit())
            .field("count", &s.count())
            .field("min", &s.min())
            .field("max", &s.max())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_front_records_read_the_same() {
        let cfg = HistogramConfig {
            max: 10_000,
            significant_digits: 2,
        };
        let (a, b) = (
            Histogram::with_config(cfg).unwrap(),
            Histogram::with_config(cfg).unwrap(),
        );
        for v in [0, 1, 7, 130, 9_999, 10_000] {
            a.record_n(v, 2).unwrap();
            b.record_n_via(v, 2, Via::Shared).unwrap();
            a.record_value(v as f64).unwrap();
            b.record_value_via(v as f64, Via::Shared).unwrap();
        }
        assert_eq!(
            (a.count(), a.sum(), a.min(), a.max()),
            (b.count(), b.sum(), b.min(), b.max())
        );
        assert_eq!(a.snapshot(), b.snapshot());
        assert!(b.record_n_via(10_001, 1, Via::Shared).is_err());
        assert!(b.record_value_via(2.5, Via::Shared).is_err());
        assert_eq!((b.rejected(), b.count()), (2, a.count()));
    }

    /// Threads that exit hand their index, and so their front, to the next
    /// thread; a thread past the last slot records into the shared cells.
    #[test]
    fn fronts_pass_between_threads_and_overflow_to_shared() {
        let h = crate::sync::StdArc::new(Histogram::new(1_000, 2).unwrap());
        for round in 0..3u64 {
            let workers: Vec<_> = (0..h.fronts() as u64 + 1)
                .map(|t| {
                    let h = crate::sync::StdArc::clone(&h);
                    std::thread::spawn(move || h.record(round * 100 + t).unwrap())
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        }
        let threads = h.fronts() as u64 + 1;
        assert_eq!(h.count(), 3 * threads);
        assert_eq!((h.min(), h.max()), (Some(0), Some(200 + threads - 1)));
    }

    #[test]
    fn record_f64_in_range_records_or_leaves_everything_alone() {
        let cfg = HistogramConfig {
            max: 10_000,
            significant_digits: 2,
        };
        let (a, b) = (
            Histogram::with_unit(cfg, 1e-3).unwrap(),
            Histogram::with_unit(cfg, 1e-3).unwrap(),
        );
        for v in [0.0, -0.0, 0.0015, 1.0, 9.999, 10.0] {
            a.record_f64(v).unwrap();
            assert!(b.record_f64_in_range(v, Via::Shared), "{v}");
        }
        assert_eq!(a.snapshot(), b.snapshot());
        for v in [-0.5, 10.5, f64::NAN, f64::INFINITY] {
            assert!(!b.record_f64_in_range(v, Via::Shared), "{v}");
        }
        assert_eq!((b.rejected(), b.count()), (0, a.count()));
    }
}
