//! [`HistogramSnapshot`]: a plain-data copy of a [`Histogram`](super::Histogram)
//! and the quantile arithmetic.

use super::histogram::{HistogramConfig, Layout, Scale};
use super::StatsError;

/// A plain-data copy of a histogram: bucket counts plus exact min/max.
/// Internally consistent: `count()` is the sum of the buckets, and every
/// counted value lies within `[min, max]`.
///
/// # Examples
///
/// ```
/// let h = ringstat::stats::Histogram::new(1000, 2)?;
/// h.record(10)?;
/// h.record(20)?;
/// let s = h.snapshot();
/// assert_eq!(s.count(), 2);
/// assert_eq!(s.mean(), Some(15.0));
/// assert_eq!(s.buckets().count(), 2);
/// # Ok::<(), ringstat::stats::StatsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    config: HistogramConfig,
    layout: Layout,
    /// The unit (`None` without one) and its tick conversions.
    scale: Scale,
    /// Dense bucket counts, as laid out by `layout`.
    counts: Vec<u64>,
    count: u64,
    /// `u64::MAX` when empty.
    min: u64,
    /// 0 when empty.
    max: u64,
    rejected: u64,
}

impl HistogramSnapshot {
    pub(crate) fn new(
        config: HistogramConfig,
        layout: Layout,
        scale: Scale,
        counts: Vec<u64>,
        min: u64,
        max: u64,
        rejected: u64,
    ) -> Self {
        let count = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
        Self {
            config,
            layout,
            scale,
            counts,
            count,
            min,
            max,
            rejected,
        }
    }

    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The configuration of the histogram it was taken from.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// assert_eq!(h.snapshot().config(), h.config());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn config(&self) -> HistogramConfig {
        self.config
    }

    /// The unit of the histogram it was taken from (`None`: integers).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// assert_eq!(h.snapshot().unit(), None);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn unit(&self) -> Option<f64> {
        self.scale.unit()
    }

    /// Ticks to value units.
    fn value(&self, ticks: u64) -> f64 {
        self.scale.value(ticks)
    }

    /// Smallest value in value units (ticks times the unit), `None` when
    /// empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 1000, significant_digits: 2 };
    /// let h = Histogram::with_unit(cfg, 0.5)?;
    /// h.record_f64(1.5)?;
    /// assert_eq!(h.snapshot().min_value(), Some(1.5));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn min_value(&self) -> Option<f64> {
        self.min().map(|t| self.value(t))
    }

    /// Largest value in value units, `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 1000, significant_digits: 2 };
    /// let h = Histogram::with_unit(cfg, 0.5)?;
    /// h.record_f64(2.0)?;
    /// assert_eq!(h.snapshot().max_value(), Some(2.0));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn max_value(&self) -> Option<f64> {
        self.max().map(|t| self.value(t))
    }

    /// Number of values counted (the sum of the buckets).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// assert_eq!(h.snapshot().count(), 0);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Values refused by `record*` up to the snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(10, 1)?;
    /// let _ = h.record_f64(f64::NAN);
    /// assert_eq!(h.snapshot().rejected(), 1);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Smallest value, `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record(3)?;
    /// assert_eq!(h.snapshot().min(), Some(3));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn min(&self) -> Option<u64> {
        (self.count != 0).then_some(self.min)
    }

    /// Largest value, `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record(3)?;
    /// assert_eq!(h.snapshot().max(), Some(3));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn max(&self) -> Option<u64> {
        (self.count != 0).then_some(self.max)
    }

    /// The value reported for bucket `i`: its midpoint clamped to `[min, max]`.
    fn value_of(&self, i: usize) -> u64 {
        // Not `clamp`: it panics if min > max, which a consistent snapshot never
        // has, but a read path must not be able to panic.
        self.layout.representative(i).max(self.min).min(self.max)
    }

    /// Sum of the counted values, each taken as its bucket's reported value
    /// (exact below `2^(m+1)`, otherwise within the relative error bound),
    /// in value units (ticks times the unit, if any).
    /// Summed exactly in 128 bits and rounded once; past `2^128` (only with
    /// saturated counts of huge values) summed in `f64` instead, never
    /// wrapping.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record_n(10, 3)?;
    /// assert_eq!(h.snapshot().sum(), 30.0);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn sum(&self) -> f64 {
        let terms = || {
            self.counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c != 0)
                .map(|(i, &c)| (c, self.value_of(i)))
        };
        // `c * v < 2^128` for 64-bit factors; only the sum can overflow.
        let ticks = terms()
            .try_fold(0u128, |acc, (c, v)| {
                acc.checked_add(u128::from(c) * u128::from(v))
            })
            .map_or_else(
                || terms().map(|(c, v)| c as f64 * v as f64).sum(),
                |total| total as f64,
            );
        self.scale.value_of_f64(ticks)
    }

    /// `sum() / count()`, `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record(1)?;
    /// h.record(2)?;
    /// assert_eq!(h.snapshot().mean(), Some(1.5));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn mean(&self) -> Option<f64> {
        (self.count != 0).then(|| self.sum() / self.count as f64)
    }

    /// Non-empty buckets as `(lowest value, highest value, count)`, in value
    /// order (the highest value may exceed `config().max` in the last bucket).
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record_n(7, 2)?;
    /// assert_eq!(h.snapshot().buckets().collect::<Vec<_>>(), vec![(7, 7, 2)]);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .map(|(i, &c)| {
                let (low, width) = self.layout.bucket(i);
                (low, low + (width - 1), c)
            })
    }

    /// Cumulative counts at each of `bounds` (value units, ascending): the
    /// `i`-th is the number of values `<= bounds[i]`, as Prometheus' classic
    /// `_bucket{le=...}` samples want them.
    ///
    /// A bucket of the log-linear layout counts under a bound when its
    /// lowest value is at or below the bound, so a value above a bound by
    /// less than the histogram's relative error (or half a tick) may count
    /// under it; values recorded exactly at a bound always do. Unsorted
    /// bounds give counts that are not cumulative.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Histogram, HistogramConfig};
    ///
    /// let cfg = HistogramConfig { max: 10_000_000, significant_digits: 3 };
    /// let h = Histogram::with_unit(cfg, 1e-6)?;
    /// for v in [0.004, 0.005, 0.02, 1.5] {
    ///     h.record_f64(v)?;
    /// }
    /// assert_eq!(h.snapshot().cumulative_counts(&[0.005, 0.1, 1.0]), vec![2, 3, 3]);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn cumulative_counts(&self, bounds: &[f64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(bounds.len());
        let mut buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .peekable();
        let mut below = 0u64;
        for &bound in bounds {
            while let Some(&(i, &c)) = buckets.peek() {
                if self.value(self.layout.bucket(i).0) > bound {
                    break;
                }
                below = below.saturating_add(c);
                buckets.next();
            }
            out.push(below);
        }
        out
    }

    /// The `q`-quantile, `None` when empty (see
    /// [`Histogram`](super::Histogram) for the definition and error bound).
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] if `q` is NaN or outside `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record(1)?;
    /// h.record(2)?;
    /// assert_eq!(h.snapshot().quantile(0.5)?, Some(1));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn quantile(&self, q: f64) -> Result<Option<u64>, StatsError> {
        Ok(self.quantiles(&[q])?.pop().flatten())
    }

    /// The `q`-quantile in value units (ticks times the unit, if any),
    /// `None` when empty.
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
    /// let h = Histogram::with_unit(cfg, 0.5)?;
    /// h.record_f64(2.5)?;
    /// assert_eq!(h.snapshot().value_quantile(0.5)?, Some(2.5));
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn value_quantile(&self, q: f64) -> Result<Option<f64>, StatsError> {
        Ok(self.value_quantiles(&[q])?.pop().flatten())
    }

    /// Several quantiles in value units, in the order asked.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] for the first bad `q`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// h.record(4)?;
    /// assert_eq!(h.snapshot().value_quantiles(&[0.5])?, vec![Some(4.0)]);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn value_quantiles(&self, qs: &[f64]) -> Result<Vec<Option<f64>>, StatsError> {
        Ok(self
            .quantiles(qs)?
            .into_iter()
            .map(|t| t.map(|t| self.value(t)))
            .collect())
    }

    /// Several quantiles in one pass over the buckets, in the order asked.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] for the first bad `q`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::stats::Histogram::new(1000, 2)?;
    /// for v in 1..=4 { h.record(v)?; }
    /// assert_eq!(h.snapshot().quantiles(&[1.0, 0.0])?, vec![Some(4), Some(1)]);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn quantiles(&self, qs: &[f64]) -> Result<Vec<Option<u64>>, StatsError> {
        if let Some(&q) = qs.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(StatsError::InvalidQuantile { q });
        }
        if self.count == 0 {
            return Ok(vec![None; qs.len()]);
        }
        let mut order: Vec<(u64, usize)> = qs
            .iter()
            .enumerate()
            .map(|(k, &q)| (quantile_rank(q, self.count), k))
            .collect();
        order.sort_unstable();
        let mut out = vec![None; qs.len()];
        let mut pending = order.into_iter().peekable();
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            seen = seen.saturating_add(c);
            while let Some(&(rank, k)) = pending.peek() {
                if rank > seen {
                    break;
                }
                out[k] = Some(self.value_of(i));
                pending.next();
            }
            if pending.peek().is_none() {
                break;
            }
        }
        Ok(out)
    }
}

/// The nearest rank of quantile `q` among `count` values, `1..=count`:
/// `ceil(q * count)`, where a product within `1e-12` (relative) of an
/// integer counts as that integer, so that `0.07 * 100` is rank 7, not 8.
#[must_use]
pub fn quantile_rank(q: f64, count: u64) -> u64 {
    let x = q * count as f64;
    let r = x.round();
    let rank = if (x - r).abs() <= x.abs() * 1e-12 {
        r
    } else {
        x.ceil()
    };
    (rank as u64).clamp(1, count.max(1))
}
