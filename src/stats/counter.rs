//! [`Counter`]: a monotonic `u64` sharded over cache-padded cells.

use core::fmt;

use super::store::Store;
use super::{saturating_add, StatsError};
use crate::sync::{default_shard_count, thread_index, AtomicU64, CachePadded, Ordering};

/// A monotonically increasing `u64` count (total logins), sharded so that
/// concurrent writers do not bounce one cache line.
///
/// Each thread adds to the shard picked by its thread index, so a thread
/// keeps its shard; readers sum all shards.
///
/// # Guarantees while writers run
///
/// - [`get`](Counter::get) never returns more than the total added so far
///   (minus what [`take`](Counter::take) removed), and every add that
///   *happened before* the call is included.
/// - Without `take`/`reset`, successive `get` calls from one thread never
///   decrease: every shard only grows, and a thread never reads an older
///   value of a shard than it read before.
/// - [`take`](Counter::take) swaps each shard with zero: every add is
///   returned by exactly one `take` (or is still in the counter), never lost
///   and never counted twice.
///
/// Counts never wrap: a shard stops at
/// [`COUNT_SATURATION`](super::COUNT_SATURATION) (`u64::MAX - 2^52`) and the
/// total saturates at `u64::MAX`, so a huge `add` reads as a huge count,
/// never as a small one.
///
/// # Examples
///
/// ```
/// use ringstat::stats::Counter;
///
/// let logins = Counter::new();
/// logins.inc();
/// logins.add(2);
/// assert_eq!(logins.get(), 3);
/// ```
pub struct Counter {
    /// One cell per shard; `shards.len()` is a power of two. Any thread may
    /// add to any cell; a thread uses cell `thread_index() & mask`. On the
    /// heap, or in a shared region (a [`SharedRegistry`](super::SharedRegistry)).
    shards: Store<CachePadded<AtomicU64>>,
    /// `shards.len() - 1`.
    mask: usize,
    /// Mixed into the shard choice: 0 in process; in a shared region, the
    /// process's slot, so that the main threads of different processes
    /// (all thread index 0) add to different shards.
    salt: usize,
}

impl Counter {
    /// The most shards [`with_shards`](Counter::with_shards) accepts (8 MiB
    /// of padded cells).
    pub const MAX_SHARDS: usize = 1 << 16;

    /// A counter at zero with the default number of shards (twice the
    /// available parallelism, rounded up to a power of two, 4 to 64).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// assert_eq!(c.get(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_valid_shards(default_shard_count())
    }

    /// A counter at zero with `shards` shards, rounded up to a power of two
    /// (at least 1). One shard makes it a plain shared atomic.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidShards`] if `shards` is above
    /// [`MAX_SHARDS`](Counter::MAX_SHARDS).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Counter;
    ///
    /// assert_eq!(Counter::with_shards(3)?.shards(), 4);
    /// assert!(Counter::with_shards(usize::MAX).is_err());
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn with_shards(shards: usize) -> Result<Self, StatsError> {
        if shards > Self::MAX_SHARDS {
            return Err(StatsError::InvalidShards {
                shards,
                max: Self::MAX_SHARDS,
            });
        }
        Ok(Self::with_valid_shards(shards))
    }

    /// `shards` is at most `MAX_SHARDS`, so the power of two fits.
    fn with_valid_shards(shards: usize) -> Self {
        let n = shards.clamp(1, Self::MAX_SHARDS).next_power_of_two();
        Self::from_store(Store::heap(n, |_| CachePadded::new(AtomicU64::new(0))))
    }

    /// A counter over `shards` (a power of two in length, at least 1), as
    /// they are: a shared region's cells keep their count.
    pub(crate) fn from_store(shards: Store<CachePadded<AtomicU64>>) -> Self {
        debug_assert!(shards.len().is_power_of_two());
        Self::from_store_salted(shards, 0)
    }

    /// As `from_store`, adding to shard `(thread index ^ salt) & mask`.
    pub(crate) fn from_store_salted(shards: Store<CachePadded<AtomicU64>>, salt: usize) -> Self {
        debug_assert!(shards.len().is_power_of_two());
        let mask = shards.len() - 1;
        Self { shards, mask, salt }
    }

    /// The number of shards.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::stats::Counter::new().shards().is_power_of_two());
    /// ```
    #[must_use]
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Adds one.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// c.inc();
    /// assert_eq!(c.get(), 1);
    /// ```
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n` (saturating; see the type docs).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// c.add(5);
    /// assert_eq!(c.get(), 5);
    /// ```
    #[inline]
    pub fn add(&self, n: u64) {
        self.add_to_shard(n, thread_index());
    }

    /// Adds `n` to shard `hint & (shards - 1)`. Any `hint` is correct; one
    /// that differs between concurrent threads keeps them off each other's
    /// cache line. For callers (the Python binding) where reading the thread
    /// index costs more than the add: in a shared library every thread-local
    /// access is a call to `__tls_get_addr`.
    #[inline]
    pub(crate) fn add_to_shard(&self, n: u64, hint: usize) {
        let shard = &self.shards[(hint ^ self.salt) & self.mask];
        // Relaxed: the count publishes no other data; readers need only the
        // per-shard modification order.
        saturating_add(shard, n, Ordering::Relaxed);
    }

    /// The current total: the sum of all shards (see the type docs for what
    /// it guarantees while writers run).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// c.add(7);
    /// assert_eq!(c.get(), 7);
    /// ```
    #[must_use]
    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            // Relaxed: see `add`.
            .fold(0u64, |acc, s| acc.saturating_add(s.load(Ordering::Relaxed)))
    }

    /// Returns the total and sets the counter to zero, shard by shard with an
    /// atomic swap: an add racing `take` is returned either by this call or by
    /// a later one, exactly once.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// c.add(3);
    /// assert_eq!(c.take(), 3);
    /// assert_eq!(c.get(), 0);
    /// ```
    pub fn take(&self) -> u64 {
        self.shards
            .iter()
            // Relaxed: see `add`; the swap's atomicity alone makes each add
            // land in exactly one `take`.
            .fold(0u64, |acc, s| {
                acc.saturating_add(s.swap(0, Ordering::Relaxed))
            })
    }

    /// Sets the counter to zero; the same as [`take`](Counter::take) with the
    /// result dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = ringstat::stats::Counter::new();
    /// c.inc();
    /// c.reset();
    /// assert_eq!(c.get(), 0);
    /// ```
    pub fn reset(&self) {
        let _ = self.take();
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get())
            .field("shards", &self.shards())
            .finish()
    }
}
