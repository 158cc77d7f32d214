//! [`Histogram`]: a lock-free log-linear (HDR-style) histogram of `u64`
//! values with bounded relative error.

use core::fmt;

use super::snapshot_hist::HistogramSnapshot;
use super::{saturating_add, StatsError};
use crate::sync::{AtomicU64, Ordering};

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
        let e = (63 - (v | self.mask).leading_zeros()) - self.magnitude;
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

/// A log-linear histogram in the HDR style: record `u64` values lock-free
/// from many threads, read count, sum, min, max, mean and percentiles live.
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
/// Memory: 8 bytes per bucket, about `2^m * (log2(max) - m + 2)` buckets
/// (3 digits up to `10^12`: 31 744 buckets, 248 KiB).
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
/// Recording is one `fetch_add` on the value's bucket, preceded by min/max
/// updates (an RMW only when the value is a new extreme). A
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
    /// One count per bucket, `layout.index(config.max) + 1` of them. Written
    /// with Release by `record`/`merge` after min/max are updated.
    counts: Box<[AtomicU64]>,
    /// Smallest value recorded; `u64::MAX` while empty. Only decreases.
    min: AtomicU64,
    /// Largest value recorded; 0 while empty. Only increases.
    max: AtomicU64,
    /// Values refused by `record*` (out of range, negative, NaN).
    rejected: AtomicU64,
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
        if config.significant_digits > 5 {
            return Err(StatsError::InvalidSignificantDigits {
                digits: config.significant_digits,
            });
        }
        if config.max == 0 {
            return Err(StatsError::InvalidMaxValue { max: config.max });
        }
        let layout = Layout::new(config.significant_digits);
        let len = layout.index(config.max) + 1;
        Ok(Self {
            config,
            layout,
            counts: (0..len).map(|_| AtomicU64::new(0)).collect(),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
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
        let Some(bucket) = self.counts.get(self.layout.index(v)) else {
            return Err(self.reject_int(v, n));
        };
        if v > self.config.max {
            // The last bucket may reach past `max`.
            return Err(self.reject_int(v, n));
        }
        if n == 0 {
            return Ok(());
        }
        // Relaxed loads: min only falls and max only rises, so a value that
        // is not a new extreme against a loaded value never will be.
        if v < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(v, Ordering::Relaxed);
        }
        if v > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(v, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire bucket loads in `snapshot`, so a
        // snapshot that counts this value also sees the min/max above.
        saturating_add(bucket, n, Ordering::Release);
        Ok(())
    }

    /// Records a float, rounded to the nearest integer (halves away from
    /// zero); for callers whose values are `f64` (seconds from Python, say).
    ///
    /// # Errors
    ///
    /// [`StatsError::NotANumber`] for NaN; [`StatsError::FloatOutOfRange`]
    /// for negative values, infinities and values that round above
    /// `config().max`. Nothing is recorded and
    /// [`rejected`](Histogram::rejected) grows by one. `-0.0` records 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(100, 2)?;
    /// h.record_f64(2.6)?;
    /// assert_eq!(h.min(), Some(3));
    /// assert!(h.record_f64(-1.0).is_err());
    /// assert!(h.record_f64(f64::NAN).is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn record_f64(&self, v: f64) -> Result<(), StatsError> {
        if v.is_nan() {
            saturating_add(&self.rejected, 1, Ordering::Relaxed);
            return Err(StatsError::NotANumber);
        }
        let r = v.round();
        // 2^64 as f64: anything at or above does not fit a u64.
        if !(0.0..18_446_744_073_709_551_616.0).contains(&r) || (r as u64) > self.config.max {
            saturating_add(&self.rejected, 1, Ordering::Relaxed);
            return Err(StatsError::FloatOutOfRange {
                value: v,
                max: self.config.max,
            });
        }
        self.record_n(r as u64, 1)
    }

    #[cold]
    fn reject_int(&self, v: u64, n: u64) -> StatsError {
        saturating_add(&self.rejected, n, Ordering::Relaxed);
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
        self.rejected.load(Ordering::Relaxed)
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
        // Acquire: pairs with the Release `fetch_add` in `record_n`/`merge`:
        // min/max of every value counted here are visible below.
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .collect();
        let min = self.min.load(Ordering::Relaxed);
        let max = self.max.load(Ordering::Relaxed);
        let rejected = self.rejected.load(Ordering::Relaxed);
        HistogramSnapshot::new(self.config, self.layout, counts, min, max, rejected)
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
        self.counts
            .iter()
            .fold(0u64, |a, c| a.saturating_add(c.load(Ordering::Relaxed)))
    }

    /// Sum of the values recorded, from bucket midpoints (exact below
    /// `2^(m+1)`, otherwise within the relative error bound).
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
        let min = self.min.load(Ordering::Relaxed);
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
        let max = self.max.load(Ordering::Relaxed);
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
        if let (Some(lo), Some(hi)) = (other.min(), other.max()) {
            self.min.fetch_min(lo, Ordering::Relaxed);
            self.max.fetch_max(hi, Ordering::Relaxed);
        }
        saturating_add(&self.rejected, other.rejected(), Ordering::Relaxed);
        for (cell, &n) in self.counts.iter().zip(other.counts()) {
            if n != 0 {
                // Release: as in `record_n`, after the min/max update above.
                saturating_add(cell, n, Ordering::Release);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("config", &self.config)
            .field("count", &s.count())
            .field("min", &s.min())
            .field("max", &s.max())
            .finish()
    }
}
