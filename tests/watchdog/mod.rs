//! A watchdog for tests that could hang: a lost item, a livelocked claim or a
//! lost wake-up must fail the test with a message, not stall the run.
//!
//! The test reports progress (any number that grows); once it has not grown
//! for [`bound`] (120 s, or `RINGSTAT_TEST_WATCHDOG_SECS`), the watchdog
//! writes which test was waiting for what to stderr and exits the process
//! with status 101, the status of a failed test. It exits rather than panics
//! because the stuck thread may be the test's own (a `try_*` call spinning
//! forever), which nothing else can interrupt. Under `cargo nextest` each test
//! is a process of its own; under `cargo test` the exit ends the whole test
//! binary, which is what a hang would have done, only later and silently.

#![allow(dead_code)] // each test file uses a part

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test may make no progress: `RINGSTAT_TEST_WATCHDOG_SECS`, or
/// 120 s (generous: the debug stress tests take seconds in all).
pub fn bound() -> Duration {
    std::env::var("RINGSTAT_TEST_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// Per-thread progress counters, each on its own cache line, so that the
/// threads of a stress test report progress without contending.
pub struct Progress(Box<[Padded]>);

#[repr(align(128))]
struct Padded(AtomicUsize);

impl Progress {
    pub fn new(threads: usize) -> Arc<Self> {
        Arc::new(Self(
            (0..threads).map(|_| Padded(AtomicUsize::new(0))).collect(),
        ))
    }

    /// Thread `i` has done `n` operations so far.
    pub fn set(&self, i: usize, n: usize) {
        // Relaxed: a hint for the watchdog, ordering nothing.
        self.0[i].0.store(n, Ordering::Relaxed);
    }

    /// Thread `i` has done one more operation.
    pub fn tick(&self, i: usize) {
        // Relaxed: as in `set`; only thread `i` writes its counter.
        let slot = &self.0[i].0;
        slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub fn total(&self) -> usize {
        // Relaxed: as in `set`.
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

struct Shared {
    test: &'static str,
    waiting_for: Mutex<String>,
    stop: AtomicBool,
}

/// Watches one test until dropped.
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching `test`, which makes progress as long as `progress()`
    /// keeps changing, and now waits for `waiting_for`.
    pub fn start(
        test: &'static str,
        waiting_for: impl Into<String>,
        progress: impl Fn() -> usize + Send + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            test,
            waiting_for: Mutex::new(waiting_for.into()),
            stop: AtomicBool::new(false),
        });
        let bound = bound();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("watchdog {test}"))
                .spawn(move || watch(&shared, bound, progress))
                .expect("spawn the watchdog")
        };
        Self {
            shared,
            thread: Some(thread),
        }
    }

    /// The test now waits for `what` (named in the failure message).
    pub fn waiting_for(&self, what: impl Into<String>) {
        *self.shared.waiting_for.lock().unwrap() = what.into();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Relaxed: the join below orders the watchdog's exit.
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn watch(shared: &Shared, bound: Duration, progress: impl Fn() -> usize) {
    let poll = Duration::from_millis(250).min(bound);
    let mut last = (progress(), Instant::now());
    // Relaxed: see `Drop`.
    while !shared.stop.load(Ordering::Relaxed) {
        thread::park_timeout(poll);
        let now = progress();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= bound && !shared.stop.load(Ordering::Relaxed) {
            let what = shared
                .waiting_for
                .lock()
                .map_or_else(|e| e.into_inner().clone(), |w| w.clone());
            // Straight to stderr: the test harness captures `eprintln!` of a
            // test's threads and would never print it, since we exit.
            let _ = writeln!(
                std::io::stderr(),
                "\nwatchdog: test `{}` made no progress for {} s while waiting for {} \
                 (progress stuck at {}); exiting with status 101",
                shared.test,
                bound.as_secs(),
                what,
                now,
            );
            std::process::exit(101);
        }
    }
}
