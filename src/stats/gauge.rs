//! [`Gauge`]: an `i64` that goes up and down, with the min and max seen.

use core::fmt;

use super::store::Store;
use crate::sync::{AtomicI64, Ordering};

/// Cells of a gauge's [`Store`]: the value, then the min and max.
pub(crate) const GAUGE_CELLS: usize = 3;

/// A signed `i64` value that goes up and down (users online), with the
/// minimum and maximum it has held since the last
/// [`reset_min_max`](Gauge::reset_min_max).
///
/// Values are `i64` so that a gauge fed by `add(1)`/`sub(1)` from different
/// threads may dip below zero transiently without wrapping to a huge number.
/// Arithmetic wraps at the `i64` range, like [`i64::wrapping_add`].
///
/// # Guarantees
///
/// - Every value the gauge takes (after each `set`, `add` or `sub`) is folded
///   into min and max; once writers are quiescent,
///   `min() <= get() <= max()`.
/// - A new gauge and a reset gauge have `min == max ==` the value at that
///   moment (0 for a new gauge).
/// - While writers run, `min`/`max` may lag by the writes still in flight.
///
/// # Examples
///
/// ```
/// use ringstat::stats::Gauge;
///
/// let online = Gauge::new();
/// online.add(3);
/// online.sub(1);
/// assert_eq!((online.get(), online.min(), online.max()), (2, 0, 3));
/// ```
pub struct Gauge {
    /// `[value, min, max]`: on the heap, or one process's slot in a shared
    /// region (a [`SharedRegistry`](super::SharedRegistry)).
    cells: Store<AtomicI64>,
}

impl Gauge {
    /// A gauge at 0 (min and max 0).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringstat::stats::Gauge::new().get(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_value(0)
    }

    /// A gauge at `v` (min and max `v`).
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::with_value(-4);
    /// assert_eq!((g.get(), g.min(), g.max()), (-4, -4, -4));
    /// ```
    #[must_use]
    pub fn with_value(v: i64) -> Self {
        Self::from_store(Store::heap(GAUGE_CELLS, |_| AtomicI64::new(v)))
    }

    /// A gauge over `cells` (`[value, min, max]`), as they are.
    pub(crate) fn from_store(cells: Store<AtomicI64>) -> Self {
        assert_eq!(cells.len(), GAUGE_CELLS, "a gauge has three cells");
        Self { cells }
    }

    #[inline(always)]
    fn value_cell(&self) -> &AtomicI64 {
        // SAFETY: `from_store` checked that there are three cells.
        unsafe { self.cells.get_unchecked(0) }
    }

    #[inline(always)]
    fn min_cell(&self) -> &AtomicI64 {
        // SAFETY: `from_store` checked that there are three cells.
        unsafe { self.cells.get_unchecked(1) }
    }

    #[inline(always)]
    fn max_cell(&self) -> &AtomicI64 {
        // SAFETY: `from_store` checked that there are three cells.
        unsafe { self.cells.get_unchecked(2) }
    }

    /// Sets the value to `v`.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// g.set(10);
    /// assert_eq!((g.get(), g.max()), (10, 10));
    /// ```
    #[inline]
    pub fn set(&self, v: i64) {
        // Relaxed: `value` publishes nothing; the Release in `observe` orders
        // this store before the min/max update for `reset_min_max`.
        self.value_cell().store(v, Ordering::Relaxed);
        self.observe(v);
    }

    /// Adds `d` (wrapping) and returns the new value.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// assert_eq!(g.add(2), 2);
    /// ```
    #[inline]
    pub fn add(&self, d: i64) -> i64 {
        // Relaxed: as in `set`.
        let new = self
            .value_cell()
            .fetch_add(d, Ordering::Relaxed)
            .wrapping_add(d);
        self.observe(new);
        new
    }

    /// Subtracts `d` (wrapping) and returns the new value.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// assert_eq!(g.sub(2), -2);
    /// assert_eq!(g.min(), -2);
    /// ```
    #[inline]
    pub fn sub(&self, d: i64) -> i64 {
        // Relaxed: as in `set`.
        let new = self
            .value_cell()
            .fetch_sub(d, Ordering::Relaxed)
            .wrapping_sub(d);
        self.observe(new);
        new
    }

    /// The current value.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::with_value(5);
    /// assert_eq!(g.get(), 5);
    /// ```
    #[must_use]
    pub fn get(&self) -> i64 {
        self.value_cell().load(Ordering::Relaxed)
    }

    /// The smallest value since creation or the last reset.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// g.set(-1);
    /// g.set(4);
    /// assert_eq!(g.min(), -1);
    /// ```
    #[must_use]
    pub fn min(&self) -> i64 {
        self.min_cell().load(Ordering::Relaxed)
    }

    /// The largest value since creation or the last reset.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// g.set(4);
    /// g.set(1);
    /// assert_eq!(g.max(), 4);
    /// ```
    #[must_use]
    pub fn max(&self) -> i64 {
        self.max_cell().load(Ordering::Relaxed)
    }

    /// Restarts min/max tracking from the current value and returns the
    /// previous `(min, max)`.
    ///
    /// A write racing the reset is either in the returned pair and in the
    /// new min/max (through the current value read after the swap), or only
    /// in the new min/max; it is never missing from the new ones.
    ///
    /// # Examples
    ///
    /// ```
    /// let g = ringstat::stats::Gauge::new();
    /// g.set(9);
    /// g.set(2);
    /// assert_eq!(g.reset_min_max(), (0, 9));
    /// assert_eq!((g.min(), g.max()), (2, 2));
    /// ```
    pub fn reset_min_max(&self) -> (i64, i64) {
        let v0 = self.value_cell().load(Ordering::Relaxed);
        // Acquire: pairs with the Release fetch_min/fetch_max in `observe`.
        // A writer whose min/max update the swap replaced has its value
        // write happen-before the load of `value` below, so that value (or a
        // later one) is folded back in.
        let old_min = self.min_cell().swap(v0, Ordering::Acquire);
        let old_max = self.max_cell().swap(v0, Ordering::Acquire);
        let v = self.value_cell().load(Ordering::Relaxed);
        // Release: keeps the same pairing for a later reset.
        self.min_cell().fetch_min(v, Ordering::Release);
        self.max_cell().fetch_max(v, Ordering::Release);
        (old_min, old_max)
    }

    #[inline]
    fn observe(&self, v: i64) {
        // Release: pairs with the Acquire swaps in `reset_min_max` (see
        // there). Always an RMW, never a load-and-skip: a plain load could
        // read the min from before a racing reset's swap while the reset
        // reads the value from before this write (store buffering), and
        // the value would be missing from the new min/max.
        self.min_cell().fetch_min(v, Ordering::Release);
        self.max_cell().fetch_max(v, Ordering::Release);
    }
}

/// State restore and merge (`stats::state`).
impl Gauge {
    /// Sets value, min and max exactly (a gauge restored from a state).
    pub(crate) fn load_state(&self, value: i64, min: i64, max: i64) {
        // Relaxed value store as in `set`; Release min/max stores: pair with
        // the Acquire swaps in `reset_min_max`, as `observe` does.
        self.value_cell().store(value, Ordering::Relaxed);
        self.min_cell().store(min, Ordering::Release);
        self.max_cell().store(max, Ordering::Release);
    }

    /// Adds `value` and widens min/max to `min`/`max` (and the new value).
    pub(crate) fn merge_state(&self, value: i64, min: i64, max: i64) {
        self.add(value);
        // Release: pairs with the Acquire swaps in `reset_min_max`.
        self.min_cell().fetch_min(min, Ordering::Release);
        self.max_cell().fetch_max(max, Ordering::Release);
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("value", &self.get())
            .field("min", &self.min())
            .field("max", &self.max())
            .finish()
    }
}
