//! The time sources of a [`Rate`](super::Rate): the [`Clock`] trait, the
//! default [`SystemClock`] (with a coarse, cheaper reading on Linux) and the
//! [`ManualClock`] for tests.

use core::fmt;
use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// A monotonic time source in nanoseconds from an arbitrary fixed origin.
/// Inject a [`ManualClock`] to make a [`Rate`](super::Rate) deterministic in tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Nanoseconds since this clock's origin; never decreases for a real
    /// clock (a [`ManualClock`] may be set backwards: rates stay correct
    /// for totals and skip such events in the window).
    fn now_nanos(&self) -> u64;

    /// A reading that may lag [`now_nanos`](Clock::now_nanos) by up to
    /// `tolerance` nanoseconds, for callers that need no finer resolution; a
    /// clock with a cheaper, coarser source may use it here. A [`Rate`](super::Rate)
    /// reads its clock this way on every increment, with a tolerance of 1 %
    /// of its tick. The default returns `now_nanos()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Clock, SystemClock};
    ///
    /// let c = SystemClock::new();
    /// let coarse = c.now_nanos_within(10_000_000);
    /// assert!(coarse <= c.now_nanos());
    /// ```
    fn now_nanos_within(&self, tolerance: u64) -> u64 {
        let _ = tolerance;
        self.now_nanos()
    }
}

/// `CLOCK_MONOTONIC_COARSE`: Linux's monotonic clock as of the last timer
/// tick, read from memory the kernel shares (cheaper than `Instant::now`,
/// which reads the time-stamp counter), at the resolution of a tick.
#[cfg(all(target_os = "linux", not(miri)))]
mod coarse {
    /// Calls `f` (`clock_gettime` or `clock_getres`) for `clock` and
    /// returns its answer in nanoseconds.
    #[inline]
    fn ask(
        f: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
        clock: libc::clockid_t,
    ) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `f` is one of the two libc calls above, which only write
        // the `timespec` they are given; `ts` is valid, writable and ours.
        if unsafe { f(clock, &mut ts) } != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos)
    }

    /// The coarse clock, in nanoseconds.
    #[inline]
    pub(super) fn now() -> Option<u64> {
        ask(libc::clock_gettime, libc::CLOCK_MONOTONIC_COARSE)
    }

    /// The fine monotonic clock the coarse one follows, in nanoseconds.
    pub(super) fn fine_now() -> Option<u64> {
        ask(libc::clock_gettime, libc::CLOCK_MONOTONIC)
    }

    /// How far the coarse clock may lag the fine one, in nanoseconds.
    pub(super) fn resolution() -> Option<u64> {
        ask(libc::clock_getres, libc::CLOCK_MONOTONIC_COARSE)
    }
}

/// How far apart (nanoseconds) [`SystemClock::new`] accepts the `Instant`
/// origin and the coarse one: a few microseconds when the thread is not
/// preempted between the two readings.
#[cfg(all(target_os = "linux", not(miri)))]
const MAX_ORIGIN_SKEW: u64 = 50_000;

/// How often [`SystemClock::new`] tries to read both origins within
/// [`MAX_ORIGIN_SKEW`] before it takes the last pair.
#[cfg(all(target_os = "linux", not(miri)))]
const MAX_ORIGIN_TRIES: u32 = 8;

/// A coarse source for [`SystemClock::now_nanos_within`] (never made where
/// there is none).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]
struct Coarse {
    /// The fine monotonic clock at the clock's origin, in nanoseconds.
    origin: u64,
    /// How far a coarse reading may lag.
    resolution: u64,
}

#[cfg(all(target_os = "linux", not(miri)))]
impl Coarse {
    /// A [`SystemClock`]'s `Instant` origin and its coarse source, if the
    /// system has one.
    ///
    /// The coarse origin is a fine reading taken just after the `Instant`
    /// origin, so a coarse reading never leads `now_nanos`; it lags by its
    /// resolution plus the time between the two origins. A reading taken
    /// before bounds that time: if the thread was preempted in between, try
    /// again (a few times at most).
    fn origins() -> (Instant, Option<Self>) {
        let mut tries = 1;
        let (origin, fine) = loop {
            let before = coarse::fine_now();
            let origin = Instant::now();
            let fine = coarse::fine_now();
            let close = matches!((before, fine),
                (Some(a), Some(b)) if b.saturating_sub(a) <= MAX_ORIGIN_SKEW);
            if close || tries == MAX_ORIGIN_TRIES {
                break (origin, fine);
            }
            tries += 1;
        };
        let coarse = fine
            .zip(coarse::resolution())
            .map(|(origin, resolution)| Self { origin, resolution });
        (origin, coarse)
    }
}

/// The default [`Clock`]: [`Instant`] elapsed since the clock was made.
///
/// On Linux, [`now_nanos_within`](Clock::now_nanos_within) reads the coarse
/// monotonic clock (`CLOCK_MONOTONIC_COARSE`) when the tolerance allows its
/// resolution (one timer tick, 1-10 ms): about a third of the cost of
/// `Instant::now`.
///
/// # Examples
///
/// ```
/// use ringstat::stats::{Clock, SystemClock};
///
/// let c = SystemClock::new();
/// assert!(c.now_nanos() <= c.now_nanos());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
    coarse: Option<Coarse>,
}

impl SystemClock {
    /// A clock whose origin is now.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = ringstat::stats::SystemClock::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        #[cfg(all(target_os = "linux", not(miri)))]
        let (origin, coarse) = Coarse::origins();
        #[cfg(not(all(target_os = "linux", not(miri))))]
        let (origin, coarse) = (Instant::now(), None);
        Self { origin, coarse }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        // Saturates after 584 years.
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn now_nanos_within(&self, tolerance: u64) -> u64 {
        #[cfg(all(target_os = "linux", not(miri)))]
        if let Some(c) = self.coarse {
            if c.resolution <= tolerance {
                if let Some(now) = coarse::now() {
                    // The coarse clock follows the fine one the origin was
                    // read from (`Instant` reads the same `CLOCK_MONOTONIC`
                    // on Linux), and lags it by at most `resolution`. Just
                    // after the origin it may read below it: 0 then.
                    return now.saturating_sub(c.origin);
                }
            }
        }
        self.now_nanos()
    }
}

/// A [`Clock`] that moves only when told to; starts at 0.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ringstat::stats::{Clock, ManualClock};
///
/// let c = ManualClock::new();
/// c.advance(Duration::from_millis(1500));
/// assert_eq!(c.now_nanos(), 1_500_000_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new().now_nanos(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `d` (saturating).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::stats::{Clock, ManualClock};
    ///
    /// let c = ManualClock::new();
    /// c.advance(Duration::from_secs(2));
    /// assert_eq!(c.now_nanos(), 2_000_000_000);
    /// ```
    pub fn advance(&self, d: Duration) {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: the clock value publishes no other data.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(d))
            });
    }

    /// Sets the clock to `t` after its origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::stats::{Clock, ManualClock};
    ///
    /// let c = ManualClock::new();
    /// c.set(Duration::from_nanos(7));
    /// assert_eq!(c.now_nanos(), 7);
    /// ```
    pub fn set(&self, t: Duration) {
        let t = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(t, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

/// `CLOCK_MONOTONIC` itself (nanoseconds since boot): the same reading in
/// every process of the machine, for the rates of a shared registry.
#[cfg(all(target_os = "linux", not(miri)))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct BootClock {
    /// How far the coarse clock may lag, if there is one.
    resolution: Option<u64>,
}

#[cfg(all(target_os = "linux", not(miri)))]
impl BootClock {
    /// The clock.
    pub(crate) fn new() -> Self {
        Self {
            resolution: coarse::resolution(),
        }
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
impl Clock for BootClock {
    fn now_nanos(&self) -> u64 {
        coarse::fine_now().unwrap_or(0)
    }

    #[inline]
    fn now_nanos_within(&self, tolerance: u64) -> u64 {
        if self.resolution.is_some_and(|r| r <= tolerance) {
            if let Some(now) = coarse::now() {
                return now;
            }
        }
        self.now_nanos()
    }
}
