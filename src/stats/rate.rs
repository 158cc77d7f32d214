//! [`Rate`]: events per second over a sliding window that rotates lazily,
//! reading an injectable [`Clock`].

use core::fmt;
use std::time::Duration;

use super::{saturating_add, Clock, StatsError, SystemClock};
// `StdArc`: `Arc<dyn Clock>` needs unsized coercion (see `sync`).
use super::store::Store;
use crate::sync::StdArc as Arc;
use crate::sync::{default_shard_count, thread_index, AtomicU64, CachePadded, Ordering};

/// The two numbers that fix a [`Rate`]'s window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateConfig {
    /// Length of the sliding window.
    pub window: Duration,
    /// Number of buckets the window is cut into (its time resolution).
    pub buckets: usize,
}

impl Default for RateConfig {
    /// 60 buckets of 1 s.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            buckets: 60,
        }
    }
}

/// Bits of a slot word holding the count; the top 24 hold the lap tag.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;
/// Adds up to this size take the `fetch_add` fast path; see `add`.
const FAST_ADD_MAX: u64 = 1 << 20;

/// Words per padded line of a rate's cells.
pub(crate) const LINE_WORDS: usize = 16;
/// A cache line (or two, where the hardware prefetches pairs) of words.
pub(crate) type Line = CachePadded<[AtomicU64; LINE_WORDS]>;
/// The most shards a default rate gets.
const MAX_DEFAULT_SHARDS: usize = 16;
/// A default rate takes fewer shards rather than hold more slots than this
/// (128 KiB) across them.
const MAX_DEFAULT_SLOTS: usize = 1 << 14;

/// The default shard count for a rate of `buckets` buckets: the thread
/// shard count (as for [`Counter`](super::Counter)), at most
/// [`MAX_DEFAULT_SHARDS`], and fewer when the slots would pass
/// [`MAX_DEFAULT_SLOTS`].
fn default_rate_shards(buckets: usize) -> usize {
    let mut n = default_shard_count().min(MAX_DEFAULT_SHARDS);
    while n > 1 && n.saturating_mul(buckets) > MAX_DEFAULT_SLOTS {
        n /= 2;
    }
    n
}

fn pack(lap: u64, count: u64) -> u64 {
    (lap << COUNT_BITS) | count
}

/// `a` is a later lap than `b` (tags compare modulo `2^24`).
fn is_later(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & TAG_MASK;
    d != 0 && d <= TAG_MASK / 2
}

/// Events per second over a sliding window (default: 60 buckets of 1 s),
/// plus the total ever counted.
///
/// # How it works
///
/// Time is cut into ticks of `window / buckets`. Tick `t` counts into slot
/// `t % buckets`; each slot is one `u64` packing the slot's *lap*
/// (`t / buckets`, modulo `2^24`) and its count (40 bits). Nobody rotates the
/// window on a timer: the first increment of a new tick finds an old lap in
/// its slot and replaces it with a compare-and-swap (lazy rotation); readers
/// sum only slots whose lap belongs to the current window.
///
/// The slots and the total are sharded, as a [`Counter`](super::Counter)
/// is: each shard has a full set of slots and a total of its own, on cache
/// lines of their own, and a thread counts into shard `thread_index & (shards
/// - 1)`; readers sum the shards. An increment is one `fetch_add` on its
/// shard's slot plus one on its shard's total, except at a rotation, so
/// threads on different shards never write the same line. A default rate
/// has up to 16 shards (twice the CPUs, like a counter), fewer when that
/// would hold more than 2^14 slots in all; see
/// [`with_clock_and_shards`](Rate::with_clock_and_shards) to choose.
///
/// # Limits (documented, not silent)
///
/// - A slot counts up to `2^40 - 1` events per tick and shard and saturates
///   there; [`total`](Rate::total) stays exact up to
///   [`COUNT_SATURATION`](super::COUNT_SATURATION) per shard and saturates
///   (never wraps).
/// - At most [`MAX_SHARDS`](Rate::MAX_SHARDS) shards and
///   [`MAX_SLOTS`](Rate::MAX_SLOTS) slots (`buckets * shards`, 128 MiB).
/// - An increment that reads the clock, then stalls for a whole window
///   before touching its slot, is counted in the total but not the window.
/// - Increments may read a clock that lags by up to 1 % of a tick
///   ([`Clock::now_nanos_within`]; with the [`SystemClock`] on Linux, the
///   coarse clock once a tick spans 100 timer ticks, as the default 1 s
///   does). An event that close after a tick starts may be
///   counted in the tick before.
/// - Lap tags wrap after `2^24` laps (32 years at the default window); a slot
///   left untouched for exactly a multiple of that could be misread.
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use ringstat::stats::{ManualClock, Rate};
///
/// let clock = Arc::new(ManualClock::new());
/// let logins = Rate::with_clock(Duration::from_secs(60), 60, clock.clone())?;
/// for _ in 0..10 {
///     logins.inc();
///     clock.advance(Duration::from_secs(1));
/// }
/// assert_eq!(logins.per_second(), 1.0);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!((logins.count_in_window(), logins.total()), (0, 10));
/// # Ok::<(), ringstat::stats::StatsError>(())
/// ```
pub struct Rate {
    config: RateConfig,
    clock: Arc<dyn Clock>,
    /// `window / buckets` in nanoseconds, at least 1 ms.
    tick_nanos: u64,
    /// The shards, `stride` lines each. Shard `s` holds its slots (packed
    /// `(lap tag, count)`) in words `0..buckets` of its lines and its total
    /// (every event counted through it) in word `buckets`. Any thread may
    /// write any cell; a thread uses shard `thread_index() & mask`.
    cells: Store<Line>,
    /// Lines per shard: `buckets + 1` words, rounded up.
    stride: usize,
    /// Number of shards minus one (a power of two minus one).
    mask: usize,
    /// Clock reading at creation.
    created: u64,
}

impl Rate {
    /// The most shards [`with_clock_and_shards`](Rate::with_clock_and_shards)
    /// accepts.
    pub const MAX_SHARDS: usize = 1024;

    /// The most slots (`buckets * shards`) a rate may hold: 2^24 words,
    /// 128 MiB.
    pub const MAX_SLOTS: usize = 1 << 24;

    /// A rate over 60 buckets of 1 s on the [`SystemClock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ringstat::stats::Rate::new();
    /// r.inc();
    /// assert_eq!(r.total(), 1);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(
            RateConfig::default().window,
            RateConfig::default().buckets,
            Arc::new(SystemClock::new()),
        )
        .expect("the default window is valid")
    }

    /// A rate over `window` cut into `buckets` buckets, on the
    /// [`SystemClock`].
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidWindow`] if `buckets` is 0 or a bucket would be
    /// shorter than 1 ms (or the window longer than 584 years);
    /// [`StatsError::TooManyBuckets`] if `buckets` is above
    /// [`MAX_SLOTS`](Rate::MAX_SLOTS).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::stats::Rate;
    ///
    /// assert!(Rate::with_window(Duration::from_secs(10), 10).is_ok());
    /// assert!(Rate::with_window(Duration::from_secs(10), 0).is_err());
    /// ```
    pub fn with_window(window: Duration, buckets: usize) -> Result<Self, StatsError> {
        Self::with_clock(window, buckets, Arc::new(SystemClock::new()))
    }

    /// A rate over `window` cut into `buckets` buckets, reading `clock`.
    ///
    /// # Errors
    ///
    /// As [`Rate::with_window`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use ringstat::stats::{ManualClock, Rate};
    ///
    /// let r = Rate::with_clock(Duration::from_secs(5), 5, Arc::new(ManualClock::new()))?;
    /// assert_eq!(r.config().buckets, 5);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn with_clock(
        window: Duration,
        buckets: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StatsError> {
        Self::with_clock_and_shards(window, buckets, clock, default_rate_shards(buckets))
    }

    /// As [`with_clock`](Rate::with_clock), with `shards` shards (rounded up
    /// to a power of two, at least 1; see the type docs).
    /// More shards let more threads count without sharing a cache line; each
    /// costs `(buckets + 1) * 8` bytes, rounded up to 128.
    ///
    /// # Errors
    ///
    /// As [`Rate::with_window`]; [`StatsError::InvalidShards`] above
    /// [`MAX_SHARDS`](Rate::MAX_SHARDS), [`StatsError::TooManyBuckets`] if
    /// `buckets` times the shards (rounded up) is above
    /// [`MAX_SLOTS`](Rate::MAX_SLOTS).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use ringstat::stats::{ManualClock, Rate};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let r = Rate::with_clock_and_shards(Duration::from_secs(60), 60, clock, 3)?;
    /// assert_eq!(r.shards(), 4);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    pub fn with_clock_and_shards(
        window: Duration,
        buckets: usize,
        clock: Arc<dyn Clock>,
        shards: usize,
    ) -> Result<Self, StatsError> {
        let plan = RatePlan::new(window, buckets, shards)?;
        let created = clock.now_nanos();
        let cells = Store::heap(plan.lines, |line| {
            CachePadded::new(core::array::from_fn(|k| {
                AtomicU64::new(plan.initial_word(created, line * LINE_WORDS + k))
            }))
        });
        Ok(Self::from_store(plan, clock, created, cells))
    }

    /// A rate laid out by `plan` over `cells` (`plan.lines` lines, each
    /// word as [`RatePlan::initial_word`] made it, or updated since), made
    /// at clock reading `created`.
    pub(crate) fn from_store(
        plan: RatePlan,
        clock: Arc<dyn Clock>,
        created: u64,
        cells: Store<Line>,
    ) -> Self {
        assert_eq!(cells.len(), plan.lines, "cells sized by the plan");
        Self {
            config: plan.config,
            clock,
            tick_nanos: plan.tick_nanos,
            cells,
            stride: plan.stride,
            mask: plan.shards - 1,
            created,
        }
    }

    /// The number of shards.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::stats::Rate::new().shards().is_power_of_two());
    /// ```
    #[must_use]
    pub fn shards(&self) -> usize {
        self.mask + 1
    }

    /// Word `word` of shard `shard`: slot `word` for `word < buckets`, the
    /// shard's total for `word == buckets`.
    #[inline]
    fn cell(&self, shard: usize, word: usize) -> &AtomicU64 {
        &self.cells[shard * self.stride + word / LINE_WORDS][word % LINE_WORDS]
    }

    /// The window configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = ringstat::stats::Rate::new();
    /// assert_eq!(r.config().window, Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn config(&self) -> RateConfig {
        self.config
    }

    /// Counts one event now.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ringstat::stats::Rate::new();
    /// r.inc();
    /// assert_eq!(r.count_in_window(), 1);
    /// ```
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Counts `n` events now.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ringstat::stats::Rate::new();
    /// r.add(3);
    /// assert_eq!(r.total(), 3);
    /// ```
    pub fn add(&self, n: u64) {
        // Relaxed everywhere: the counts publish no other data, and each
        // slot's single word makes its (lap, count) pair atomic on its own.
        let shard = thread_index() & self.mask;
        let buckets = self.config.buckets;
        saturating_add(self.cell(shard, buckets), n, Ordering::Relaxed);
        // A reading that may lag by 1 % of a tick (see the type docs).
        let tick = self.clock.now_nanos_within(self.tick_nanos / 100) / self.tick_nanos;
        let len = buckets as u64;
        let lap = (tick / len) & TAG_MASK;
        let slot = self.cell(shard, (tick % len) as usize);
        let mut cur = slot.load(Ordering::Relaxed);
        // Fast path: the slot is on our lap and far from saturating. Fewer
        // than 2^19 threads can be between this check and their add, so
        // the count cannot carry into the tag. If the slot rotates in
        // between (a full window later), the events land in that later tick.
        if cur >> COUNT_BITS == lap && cur & COUNT_MASK < COUNT_MASK / 2 && n <= FAST_ADD_MAX {
            slot.fetch_add(n, Ordering::Relaxed);
            return;
        }
        loop {
            let tag = cur >> COUNT_BITS;
            let new = if tag == lap {
                pack(lap, (cur & COUNT_MASK).saturating_add(n).min(COUNT_MASK))
            } else if is_later(lap, tag) {
                // Lazy rotation: the slot still holds an older lap.
                pack(lap, n.min(COUNT_MASK))
            } else {
                // The slot already holds a later lap: these events are older
                // than the window (see the type docs).
                return;
            };
            match slot.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Every event ever counted (saturating; see the type docs).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ringstat::stats::Rate::new();
    /// r.add(2);
    /// assert_eq!(r.total(), 2);
    /// ```
    #[must_use]
    pub fn total(&self) -> u64 {
        // Relaxed: as in `add`.
        (0..self.shards()).fold(0u64, |sum, s| {
            sum.saturating_add(self.cell(s, self.config.buckets).load(Ordering::Relaxed))
        })
    }

    /// Events in the current window: the current (partial) bucket and the
    /// `buckets - 1` before it.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ringstat::stats::Rate::new();
    /// r.add(4);
    /// assert_eq!(r.count_in_window(), 4);
    /// ```
    #[must_use]
    pub fn count_in_window(&self) -> u64 {
        self.window_at(self.clock.now_nanos()).0
    }

    /// Events per second over the window: [`count_in_window`](Rate::count_in_window)
    /// divided by the time the window covers, i.e. its full buckets plus the
    /// elapsed part of the current one, but no more than the time since the
    /// rate was created and no less than one bucket.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use ringstat::stats::{ManualClock, Rate};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let r = Rate::with_clock(Duration::from_secs(10), 10, clock.clone())?;
    /// r.add(50);
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(r.per_second(), 10.0);
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn per_second(&self) -> f64 {
        let (count, covered) = self.window_at(self.clock.now_nanos());
        count as f64 / (covered as f64 / 1e9)
    }

    /// `(events in the window, nanoseconds the window covers)` at `now`.
    fn window_at(&self, now: u64) -> (u64, u64) {
        let tick = now / self.tick_nanos;
        let len = self.config.buckets as u64;
        let (lap, cur) = (tick / len, tick % len);
        let mut count = 0u64;
        for i in 0..self.config.buckets {
            // Slots after the current one hold the previous lap's ticks.
            let want = if i as u64 <= cur {
                lap
            } else if let Some(prev) = lap.checked_sub(1) {
                prev
            } else {
                continue;
            };
            for s in 0..self.shards() {
                // Relaxed: as in `add`.
                let w = self.cell(s, i).load(Ordering::Relaxed);
                if w >> COUNT_BITS == want & TAG_MASK {
                    count = count.saturating_add(w & COUNT_MASK);
                }
            }
        }
        let span = (len - 1) * self.tick_nanos + (now - tick * self.tick_nanos);
        let covered = span
            .min(now.saturating_sub(self.created))
            .max(self.tick_nanos);
        (count, covered)
    }
}

/// State export and merge (`stats::state`).
impl Rate {
    /// This rate, made `age` nanoseconds old (clamped to its clock's now):
    /// a restored rate reports `per_second` over the time its original
    /// covered.
    pub(crate) fn with_created_age(mut self, age: u64) -> Self {
        self.created = self.clock.now_nanos().saturating_sub(age);
        self
    }

    /// `(nanoseconds since creation, [(age in ticks, count)])` at now: the
    /// non-empty buckets of the current window, age 0 the current tick.
    pub(crate) fn window_state(&self) -> (u64, Vec<(u64, u64)>) {
        let now = self.clock.now_nanos();
        let tick = now / self.tick_nanos;
        let len = self.config.buckets as u64;
        let mut out = Vec::new();
        for age in 0..len.min(tick + 1) {
            let t = tick - age;
            let (lap, i) = ((t / len) & TAG_MASK, (t % len) as usize);
            let mut count = 0u64;
            for s in 0..self.shards() {
                // Relaxed: as in `add`.
                let w = self.cell(s, i).load(Ordering::Relaxed);
                if w >> COUNT_BITS == lap {
                    count = count.saturating_add(w & COUNT_MASK);
                }
            }
            if count != 0 {
                out.push((age, count));
            }
        }
        (now.saturating_sub(self.created), out)
    }

    /// Adds `total` to the total and each `(age, count)` to the bucket
    /// `age` ticks before now (ages past the window, or before this clock's
    /// first tick, count in the total only).
    pub(crate) fn absorb(&self, total: u64, buckets: &[(u64, u64)]) {
        saturating_add(self.cell(0, self.config.buckets), total, Ordering::Relaxed);
        let tick = self.clock.now_nanos() / self.tick_nanos;
        let len = self.config.buckets as u64;
        for &(age, n) in buckets {
            let Some(t) = tick.checked_sub(age).filter(|_| age < len) else {
                continue;
            };
            let (lap, slot) = ((t / len) & TAG_MASK, self.cell(0, (t % len) as usize));
            // Relaxed: as in `add`, whose rotation this loop repeats.
            let mut cur = slot.load(Ordering::Relaxed);
            loop {
                let tag = cur >> COUNT_BITS;
                let new = if tag == lap {
                    pack(lap, (cur & COUNT_MASK).saturating_add(n).min(COUNT_MASK))
                } else if is_later(lap, tag) {
                    pack(lap, n.min(COUNT_MASK))
                } else {
                    break;
                };
                match slot.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
    }
}

/// The layout of a [`Rate`]'s cells, checked: what a shared region
/// allocates before it makes the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RatePlan {
    /// The window.
    pub(crate) config: RateConfig,
    /// `window / buckets` in nanoseconds, at least 1 ms.
    tick_nanos: u64,
    /// Lines per shard.
    stride: usize,
    /// Shards, a power of two.
    pub(crate) shards: usize,
    /// Lines in all.
    pub(crate) lines: usize,
}

impl RatePlan {
    /// The layout of a rate over `window` in `buckets` with `shards` shards
    /// (rounded up to a power of two), or why there is none.
    pub(crate) fn new(window: Duration, buckets: usize, shards: usize) -> Result<Self, StatsError> {
        let bad = StatsError::InvalidWindow { window, buckets };
        let window_nanos = u64::try_from(window.as_nanos()).map_err(|_| bad.clone())?;
        let n = u64::try_from(buckets).map_err(|_| bad.clone())?;
        if n == 0 || window_nanos / n < 1_000_000 {
            return Err(bad);
        }
        if shards > Rate::MAX_SHARDS {
            return Err(StatsError::InvalidShards {
                shards,
                max: Rate::MAX_SHARDS,
            });
        }
        let shards = shards.max(1).next_power_of_two();
        if buckets.saturating_mul(shards) > Rate::MAX_SLOTS {
            return Err(StatsError::TooManyBuckets {
                buckets,
                shards,
                max: Rate::MAX_SLOTS,
            });
        }
        let stride = (buckets + 1).div_ceil(LINE_WORDS);
        let lines = shards.checked_mul(stride).ok_or(bad)?;
        Ok(Self {
            config: RateConfig { window, buckets },
            tick_nanos: window_nanos / n,
            stride,
            shards,
            lines,
        })
    }

    /// The initial value of word `w` (counting all lines' words in order)
    /// of a rate made at clock reading `created`: each shard's total
    /// starts at 0; its slots (and unused words) are tagged one lap before
    /// the first, always older than any lap an increment computes, and with
    /// count 0 they add nothing anyway.
    pub(crate) fn initial_word(&self, created: u64, w: usize) -> u64 {
        let first_lap = created / self.tick_nanos / self.config.buckets as u64;
        let word = w % (self.stride * LINE_WORDS);
        if word == self.config.buckets {
            0
        } else {
            pack(first_lap.wrapping_sub(1) & TAG_MASK, 0)
        }
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rate")
            .field("config", &self.config)
            .field("total", &self.total())
            .field("count_in_window", &self.count_in_window())
            .finish()
    }
}
