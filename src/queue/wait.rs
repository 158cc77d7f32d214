//! Parking for blocked producers and consumers: an event count.
//!
//! A waiter first spins and yields (the caller's [`Backoff`]); only then does
//! it park here. The protocol that rules out lost wake-ups:
//!
//! - waiter: under `lock`, `count.fetch_add(1, SeqCst)`, then re-check the
//!   queue's indices with `SeqCst` loads (`ready()`); sleep only if nothing
//!   changed. `Condvar::wait` releases `lock` atomically with going to sleep.
//! - notifier: its state change is a `SeqCst` read-modify-write on `head` or
//!   `tail`; then `count.load(SeqCst)`, and only if non-zero it takes `lock`
//!   and calls `notify_all`.
//!
//! All four operations are `SeqCst`, so they sit in one total order: either
//! the notifier's load sees the waiter's increment (and then it takes the
//! lock, which it can only get once the waiter sleeps or has left, so the
//! notification is not missed), or the increment comes later in that order
//! than the notifier's index update, and then the waiter's re-check sees the
//! new index and does not sleep. The fast path of a push or pop pays one
//! `SeqCst` load of a read-mostly cache line (a plain `mov` on x86) and no
//! fence.
//!
//! Sleeps are sliced to [`PARK_SLICE`] so that a deadline is honoured and the
//! Python layer can check for signals; an idle waiter wakes a few times per
//! second and burns no measurable CPU.

use std::time::{Duration, Instant};

use core::cell::Cell;

use crate::sync::{seqcst_pair_fence, thread, AtomicUsize, Backoff, Condvar, Mutex, Ordering};

/// The longest a parked waiter sleeps before it re-checks by itself.
pub(crate) const PARK_SLICE: Duration = Duration::from_millis(200);

/// How many extra `yield_now` calls a waiter makes after its backoff
/// completes and before it parks. Parking costs a futex sleep and a wake-up
/// (microseconds, and a syscall for the notifier too); on a busy queue the
/// item usually arrives within a few yields, so this keeps throughput from
/// collapsing into park/unpark round trips, while an idle waiter still parks
/// after some tens of microseconds. Under loom: none, so models reach the
/// parking path at once.
const YIELDS_BEFORE_PARK: u32 = if cfg!(ringstat_loom) { 0 } else { 64 };

/// Where a blocked operation is in its spin → yield → park progression.
pub(crate) struct Spinner {
    backoff: Backoff,
    yields: Cell<u32>,
}

impl Spinner {
    pub(crate) fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            yields: Cell::new(0),
        }
    }

    /// Starts over (progress was made).
    pub(crate) fn reset(&self) {
        self.backoff.reset();
        self.yields.set(0);
    }

    /// One waiting step: spin or yield while that still makes sense, and
    /// return `true` once it is time to park instead.
    pub(crate) fn should_park(&self) -> bool {
        if !self.backoff.is_completed() {
            self.backoff.snooze();
            return false;
        }
        let y = self.yields.get();
        if y < YIELDS_BEFORE_PARK {
            self.yields.set(y + 1);
            thread::yield_now();
            return false;
        }
        true
    }
}

/// One side's sleepers (consumers waiting for items, or producers waiting for
/// room).
#[derive(Debug)]
pub(crate) struct Waiters {
    /// Number of threads registered to sleep (or about to). Written only by
    /// waiters, read by every notifier: read-mostly.
    count: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Waiters {
    pub(crate) fn new() -> Self {
        Self {
            count: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    /// Wakes every parked waiter, if there is one. Call after the `SeqCst`
    /// update of `head`/`tail` that may let a waiter proceed.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst: pairs with the waiter's `fetch_add(SeqCst)` in `park`; see
        // the module docs for why this rules out a lost wake-up.
        seqcst_pair_fence();
        if self.count.load(Ordering::SeqCst) != 0 {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        // Taking the lock orders us after any waiter that registered: it
        // holds the lock from its registration until it sleeps.
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cond.notify_all();
    }

    /// Parks the calling thread until notified, until `deadline`, or for at
    /// most [`PARK_SLICE`], whichever comes first, unless `ready()` (which must
    /// read the queue's indices with `SeqCst` loads) says the caller can make
    /// progress right now. Spurious returns are allowed: the caller re-tries.
    pub(crate) fn park(&self, deadline: Option<Instant>, ready: impl FnOnce() -> bool) {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SeqCst: pairs with the `count.load(SeqCst)` in `notify`.
        self.count.fetch_add(1, Ordering::SeqCst);
        seqcst_pair_fence();
        if !ready() {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(PARK_SLICE),
                None => PARK_SLICE,
            };
            if !slice.is_zero() {
                let _ = self
                    .cond
                    .wait_timeout(guard, slice)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        // Relaxed: a notifier that still sees the old count only pays for a
        // spurious `notify_all`.
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}
