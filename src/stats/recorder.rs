//! [`Recorder`]: samples a [`Registry`] at a fixed interval on a background
//! thread into a bounded in-memory time series of [`Snapshot`]s.
//!
//! # Design
//!
//! One background thread per running recorder wakes every `interval`, takes
//! [`Registry::snapshot_with_quantiles`] (lock-free reads of every metric),
//! and appends it to a ring of at most `capacity` samples, dropping the
//! oldest when full. The ring is a `Mutex<VecDeque<Snapshot>>`: it is touched
//! once per interval by the sampler and briefly by readers, so contention is
//! nil, and unlike a [`Queue`](crate::Queue) it lets [`Recorder::samples`]
//! copy the series without consuming it. The same mutex guards the stop
//! flag, and a condvar wakes the sampler at once on [`Recorder::stop`], so
//! stopping never waits for the rest of an interval.
//!
//! Sampling is on deadlines (`start + k * interval`), so the series does not
//! drift; if the thread falls more than an interval behind (a suspended
//! process), the missed ticks are skipped, not bunched up.

use core::fmt;
use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::{Registry, Snapshot, DEFAULT_QUANTILES};
use crate::sync::{thread, Condvar, Mutex, MutexGuard};

/// How a [`Recorder`] samples.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderConfig {
    /// Time between samples (more than zero).
    pub interval: Duration,
    /// Most samples kept (at least 1); the oldest are dropped beyond it.
    pub capacity: usize,
    /// Quantiles (each in `[0, 1]`) reported for every histogram.
    pub quantiles: Vec<f64>,
}

impl Default for RecorderConfig {
    /// One sample a second, an hour of them, [`DEFAULT_QUANTILES`].
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            capacity: 3600,
            quantiles: DEFAULT_QUANTILES.to_vec(),
        }
    }
}

/// A [`RecorderConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecorderError {
    /// The interval is zero.
    ZeroInterval,
    /// The capacity is zero.
    ZeroCapacity,
    /// A quantile is outside `[0, 1]` (or NaN).
    InvalidQuantile {
        /// The quantile given.
        q: f64,
    },
}

impl fmt::Display for RecorderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroInterval => f.write_str("interval must be more than zero"),
            Self::ZeroCapacity => f.write_str("capacity must be at least 1"),
            Self::InvalidQuantile { q } => write!(f, "quantile must be in [0, 1], got {q}"),
        }
    }
}

impl std::error::Error for RecorderError {}

/// The ring and the stop flag, under one mutex.
struct State {
    /// Oldest first; never longer than `capacity`.
    samples: VecDeque<Snapshot>,
    /// Samples dropped to respect the capacity, ever.
    dropped: u64,
    /// Set by [`Recorder::stop`]; cleared by [`Recorder::start`] before it
    /// spawns the sampler. Read by the sampler before every wait.
    stop: bool,
    /// Samples taken since the recorder was made (the sequence number of
    /// the newest, counting from 1).
    taken: u64,
    /// Tasks waiting for the next sample (or a stop), with their keys.
    wakers: Vec<(u64, Waker)>,
}

struct Shared {
    registry: Registry,
    config: RecorderConfig,
    state: Mutex<State>,
    /// Notified by `stop` (with `state.stop` set) to end the sampler's wait.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is changed by single pushes and flag writes: a panic
        // elsewhere cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sample(&self) {
        let snap = self
            .registry
            .snapshot_with_quantiles(&self.config.quantiles)
            .expect("quantiles validated in Recorder::new");
        let mut state = self.lock();
        if state.samples.len() == self.config.capacity {
            state.samples.pop_front();
            state.dropped += 1;
        }
        state.samples.push_back(snap);
        state.taken += 1;
        let wakers = core::mem::take(&mut state.wakers);
        drop(state);
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// The sampler thread: a sample now, then one per interval until stopped.
    fn run(&self) {
        let interval = self.config.interval;
        let mut next = Instant::now();
        loop {
            self.sample();
            // `None`: the next tick is past what an `Instant` can hold (an
            // interval of centuries): no more samples, wait for `stop`.
            let mut due = next.checked_add(interval);
            let now = Instant::now();
            if let Some(n) = due.filter(|&n| n < now) {
                // Fell behind (suspended?): skip the missed ticks.
                let behind = now.duration_since(n).as_nanos();
                let skip = behind / interval.as_nanos() + 1;
                due = interval
                    .checked_mul(u32::try_from(skip).unwrap_or(u32::MAX))
                    .and_then(|d| n.checked_add(d));
            }
            let mut state = self.lock();
            loop {
                if state.stop {
                    return;
                }
                let now = Instant::now();
                let wait = match due {
                    Some(due) if now >= due => break,
                    Some(due) => Some(due - now),
                    None => None,
                };
                state = match wait {
                    Some(wait) => self
                        .wake
                        .wait_timeout(state, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0),
                    None => self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                };
            }
            // `due` is `Some` here: the loop breaks only on a due tick.
            next = due.unwrap_or(now);
        }
    }
}

/// Samples a [`Registry`] every `interval` on a background thread into a
/// bounded time series of [`Snapshot`]s (the newest `capacity` kept).
///
/// Writers to the registry are never slowed: each sample reads every metric
/// lock-free. [`stop`](Recorder::stop) (or dropping the recorder) wakes and
/// joins the thread at once; [`start`](Recorder::start) may be called again
/// after a stop, appending to the same series.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ringstat::stats::{Recorder, RecorderConfig, Registry};
///
/// let reg = Registry::new();
/// let logins = reg.counter("logins", &[])?;
/// let config = RecorderConfig { interval: Duration::from_millis(10), ..Default::default() };
/// let rec = Recorder::new(&reg, config)?;
/// rec.start()?; // takes a first sample at once
/// logins.add(3);
/// rec.stop();
/// rec.sample_now(); // one more, by hand
/// let samples = rec.samples();
/// assert!(samples.len() >= 2);
/// assert!(samples.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Recorder {
    shared: crate::sync::Arc<Shared>,
    /// The running sampler, if any. Held across start and stop so they
    /// serialise.
    handle: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Recorder {
    /// A stopped recorder of `registry` (which it shares, as a clone).
    ///
    /// # Errors
    ///
    /// [`RecorderError`] for a zero interval or capacity, or a quantile
    /// outside `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::stats::{Recorder, RecorderConfig, Registry};
    ///
    /// let reg = Registry::new();
    /// let bad = RecorderConfig { interval: Duration::ZERO, ..Default::default() };
    /// assert!(Recorder::new(&reg, bad).is_err());
    /// assert!(Recorder::new(&reg, RecorderConfig::default()).is_ok());
    /// ```
    pub fn new(registry: &Registry, config: RecorderConfig) -> Result<Self, RecorderError> {
        if config.interval.is_zero() {
            return Err(RecorderError::ZeroInterval);
        }
        if config.capacity == 0 {
            return Err(RecorderError::ZeroCapacity);
        }
        if let Some(&q) = config.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(RecorderError::InvalidQuantile { q });
        }
        Ok(Self {
            shared: crate::sync::Arc::new(Shared {
                registry: registry.clone(),
                state: Mutex::new(State {
                    samples: VecDeque::with_capacity(config.capacity.min(4096)),
                    dropped: 0,
                    stop: false,
                    taken: 0,
                    wakers: Vec::new(),
                }),
                config,
                wake: Condvar::new(),
            }),
            handle: Mutex::new(None),
        })
    }

    fn handle(&self) -> MutexGuard<'_, Option<thread::JoinHandle<()>>> {
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the sampling thread, which takes a sample at once and then one
    /// every interval. Returns `false` (and does nothing) if it is running.
    ///
    /// # Errors
    ///
    /// The I/O error of a failed thread spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// assert!(rec.start()?);
    /// assert!(!rec.start()?);
    /// assert!(rec.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(&self) -> std::io::Result<bool> {
        let mut handle = self.handle();
        if handle.is_some() {
            return Ok(false);
        }
        self.shared.lock().stop = false;
        let shared = crate::sync::Arc::clone(&self.shared);
        let h = thread::Builder::new()
            .name("ringstat-recorder".to_owned())
            .spawn(move || shared.run())?;
        *handle = Some(h);
        Ok(true)
    }

    /// Stops the sampling thread and waits for it (promptly: it is woken,
    /// not left to finish its interval). Returns `false` if it was not
    /// running. The samples stay.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// assert!(!rec.stop());
    /// rec.start()?;
    /// assert!(rec.stop());
    /// assert!(!rec.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) -> bool {
        let mut handle = self.handle();
        let Some(h) = handle.take() else {
            return false;
        };
        let mut state = self.shared.lock();
        state.stop = true;
        let wakers = core::mem::take(&mut state.wakers);
        drop(state);
        self.shared.wake.notify_all();
        for (_, w) in wakers {
            w.wake(); // a task waiting for samples learns of the stop
        }
        // A panic in the sampler (none is expected) already printed itself;
        // the recorder stays usable.
        let _ = h.join();
        true
    }

    /// `true` between [`start`](Recorder::start) and [`stop`](Recorder::stop).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.handle().is_some()
    }

    /// Takes one sample now, on the calling thread (running or not).
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// rec.sample_now();
    /// assert_eq!(rec.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sample_now(&self) {
        self.shared.sample();
    }

    /// A copy of the samples kept, oldest first.
    #[must_use]
    pub fn samples(&self) -> Vec<Snapshot> {
        self.shared.lock().samples.iter().cloned().collect()
    }

    /// Removes and returns the samples kept, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// rec.sample_now();
    /// assert_eq!(rec.drain().len(), 1);
    /// assert!(rec.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drain(&self) -> Vec<Snapshot> {
        self.shared.lock().samples.drain(..).collect()
    }

    /// How many samples were taken since the recorder was made: the sequence
    /// number of the newest (0: none yet).
    #[must_use]
    pub fn taken(&self) -> u64 {
        self.shared.lock().taken
    }

    /// The samples kept whose sequence number is above `seen` (see
    /// [`taken`](Self::taken)), oldest first, and the newest sequence
    /// number. Samples already dropped (over capacity) or drained are not
    /// there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// rec.sample_now();
    /// let (first, seen) = rec.samples_since(0);
    /// rec.sample_now();
    /// let (second, newest) = rec.samples_since(seen);
    /// assert_eq!((first.len(), second.len(), seen, newest), (1, 1, 1, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn samples_since(&self, seen: u64) -> (Vec<Snapshot>, u64) {
        let state = self.shared.lock();
        let new = usize::try_from(state.taken.saturating_sub(seen)).unwrap_or(usize::MAX);
        let skip = state.samples.len().saturating_sub(new);
        (
            state.samples.iter().skip(skip).cloned().collect(),
            state.taken,
        )
    }

    /// Registers `waker` (under `key`, unique among this recorder's
    /// registrations) to be woken by the next sample or by
    /// [`stop`](Self::stop); returns `false`, registering nothing, if a
    /// sample newer than `seen` is already there.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ringstat::stats::{Recorder, RecorderConfig, Registry};
    /// use std::task::Waker;
    /// let rec = Recorder::new(&Registry::new(), RecorderConfig::default())?;
    /// assert!(rec.register_sample_waker(1, 0, Waker::noop()));
    /// rec.sample_now(); // wakes it
    /// assert!(!rec.deregister_sample_waker(1));
    /// assert!(!rec.register_sample_waker(2, 0, Waker::noop())); // sample 1 is newer
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_sample_waker(&self, key: u64, seen: u64, waker: &Waker) -> bool {
        let mut state = self.shared.lock();
        if state.taken > seen {
            return false;
        }
        state.wakers.push((key, waker.clone()));
        true
    }

    /// Removes the registration `key`; `false` if a sample or a stop
    /// already took it.
    pub fn deregister_sample_waker(&self, key: u64) -> bool {
        let mut state = self.shared.lock();
        let before = state.wakers.len();
        state.wakers.retain(|(k, _)| *k != key);
        state.wakers.len() != before
    }

    /// Removes every sample (the dropped count is kept).
    pub fn clear(&self) {
        self.shared.lock().samples.clear();
    }

    /// The number of samples kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.lock().samples.len()
    }

    /// `true` if no sample is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples dropped, ever, because the ring was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// How this recorder samples.
    #[must_use]
    pub fn config(&self) -> &RecorderConfig {
        &self.shared.config
    }
}

impl Drop for Recorder {
    /// Stops the sampling thread (see [`Recorder::stop`]).
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("config", &self.shared.config)
            .field("running", &self.is_running())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
