//! Parking for blocked producers and consumers: an event count, flagged in
//! the index the other side advances.
//!
//! A waiter first spins and yields (the caller's [`Backoff`]); only then does
//! it park here. The protocol that rules out lost wake-ups, for a consumer
//! waiting for an item (a producer waiting for room is the mirror image,
//! with `head` for `tail`):
//!
//! - waiter: under `lock`, `count.fetch_add(1, SeqCst)`, then `ready()`:
//!   `tail.fetch_or(wait_bit, SeqCst)` and a check of the value it read
//!   (and of `head`); sleep only if the queue was still empty and open.
//!   `Condvar::wait` releases `lock` atomically with going to sleep.
//! - claimer: every push claims its position with a compare-and-swap on
//!   `tail` whose new value has no `wait_bit`. If the value it replaced had
//!   the flag, the claimer publishes its item and then calls
//!   [`wake_all`](Waiters::wake_all): it takes `lock`, sets `count` to 0
//!   (everyone registered is being woken), bumps the epoch and calls
//!   `notify_all`.
//!
//! The waiter's `fetch_or` and the claims are read-modify-writes of one
//! location, so they sit in its modification order. A claim after the
//! `fetch_or` reads the flag (or a later flag: only claims clear it, and each
//! that does wakes everyone registered), and its `wake_all` takes the lock,
//! which it can only get once the waiter sleeps or has left: the wake-up is
//! not missed. A claim before it shows in the value the waiter reads, and the
//! waiter does not sleep. A flag left behind by a waiter that did not sleep
//! costs the next claimer one spurious `wake_all`.
//!
//! No stamp carries the `wait_bit`, so a flagged index fails the inlined
//! attempt of `try_push`/`try_pop` and the claim happens out of line, where
//! the wake-up is. A push or pop that succeeds inline therefore knows that
//! nobody sleeps without reading anything beyond what a queue without
//! blocking reads: no waiter count, no fence.
//!
//! [`notify`](Waiters::notify) is the other way in, for the rare updates that
//! keep the flag (`close`, and `force_push` displacing an item): after its
//! `SeqCst` read-modify-write of the index, the notifier loads `count` with
//! `SeqCst` and wakes everyone if it is not 0. The waiter's increment, its
//! `fetch_or` and these two are all `SeqCst`, so either the load sees the
//! increment, or the waiter's `ready()` sees the update.
//!
//! Sleeps are sliced to [`PARK_SLICE`] so that a deadline is honoured and the
//! Python layer can check for signals; an idle waiter wakes a few times per
//! second and burns no measurable CPU.
//!
//! # What checks this argument
//!
//! The slices hide a lost wake-up: it costs a sleeper at most one slice of
//! latency, and no test fails. Two checks cover it:
//!
//! - **The model** (`tests/loom_queue.rs`): under loom a waiter parks at once
//!   and a lost wake-up is a deadlock. Loom treats `SeqCst` accesses as
//!   `AcqRel`, so `seqcst_pair_fence` (nothing in real builds) puts the
//!   `SeqCst` fence there that the argument above gets from the accesses.
//!   Loom thus checks the protocol, not how the real build compiles it.
//! - **The real build**: debug builds, and builds with the `test-counters`
//!   feature, count *missed wake-ups* per side (see [`Waiters::park`]): parks
//!   whose slice ran out with nobody waking them, after which `ready()` finds
//!   that the caller could go on and no notifier comes within one more slice.
//!   The stress tests (`tests/queue_stress.rs`) assert the count is 0:
//!   one parks a waiter on each wake-up path in turn (push, batch push,
//!   `force_push`, pop, batch pop, close on either side), the others after
//!   10^6 (debug) or 10^7 (release) items. A wake-up that is missing or
//!   misplaced (a claim that clears the flag and does not wake, a `notify`
//!   that skips) fails them on any target. A weakened ordering fails them
//!   only where the hardware shows it. On x86-64 a `SeqCst` load is the same
//!   `mov` as a `Relaxed` one (weakening `notify`'s load changes no
//!   instruction), and the index updates that the fences order against are
//!   locked read-modify-writes, visible to every core once done (removing
//!   the fence in `pop_stalled` changes nothing observable). There the loom
//!   model alone checks the orderings; the stress tests on a weak-memory
//!   target (AArch64) would check the build too.

use std::task::Waker;
use std::time::{Duration, Instant};

use core::cell::Cell;

use crate::sync::{
    current_cpu, seqcst_pair_fence, spin_loop, thread, AtomicU64, AtomicUsize, Backoff, Condvar,
    Mutex, MutexGuard, Ordering,
};

/// The longest a parked waiter sleeps before it re-checks by itself.
pub(crate) const PARK_SLICE: Duration = Duration::from_millis(200);

/// Whether [`Waiters::park`] counts missed wake-ups: in debug builds and with
/// the `test-counters` feature (the release stress tests), so that release
/// builds pay nothing. Never under loom, where a lost wake-up is a deadlock,
/// nor under Miri, whose interpreter can hold a notifier between its update
/// and its wake-up for longer than two park slices of real time (seen: 2
/// counted in a stress test whose items all arrived).
const COUNT_MISSED: bool = cfg!(all(
    any(debug_assertions, feature = "test-counters"),
    not(ringstat_loom),
    not(miri)
));

/// How many extra `yield_now` calls a waiter makes after its backoff
/// completes and before it parks. Parking costs a futex sleep and a wake-up
/// (microseconds, and a syscall for the notifier too); on a busy queue the
/// item usually arrives within a few yields, so this keeps throughput from
/// collapsing into park/unpark round trips, while an idle waiter still parks
/// after some tens of microseconds. (Under loom a waiter parks at once: see
/// [`Spinner::should_park`].)
const YIELDS_BEFORE_PARK: u32 = 64;

/// How long, per blocking call, a waiter spins in place of yielding or
/// parking while a thread of the *other* side is waking up (see
/// [`Spinner::defer`]): longer than a typical wake-up on a shared VM. Past
/// it the partner is probably queued behind us on our own CPU, where
/// spinning only delays it, so the waiter yields instead.
const MAX_DEFER: Duration = Duration::from_micros(200);

/// How long, per blocking call, a waiter keeps from parking while a thread
/// of the other side is waking up: after [`MAX_DEFER`] of spinning, it yields
/// until this bound. On a busy VM, waking a thread whose vCPU went idle can
/// take milliseconds; the bound keeps a waiter from burning more than that
/// for a partner that is slower still.
const MAX_DEFER_YIELDING: Duration = Duration::from_millis(2);

/// Spin-loop hints per deferred step (about 1.6 µs at 25 ns per `PAUSE`).
const DEFER_SPINS: u32 = 64;

/// Where a blocked operation is in its spin → yield → park progression.
pub(crate) struct Spinner {
    backoff: Backoff,
    /// Whether the other side's last waiter began its wait on the CPU we run
    /// on (see [`meet`](Self::meet)); `None` until the first step.
    partner_here: Cell<Option<bool>>,
    yields: Cell<u32>,
    /// When this waiter first put off parking for a waking partner.
    deferring_since: Cell<Option<Instant>>,
}

impl Spinner {
    pub(crate) fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            partner_here: Cell::new(None),
            yields: Cell::new(0),
            deferring_since: Cell::new(None),
        }
    }

    /// Starts over (progress was made).
    pub(crate) fn reset(&self) {
        self.backoff.reset();
        self.partner_here.set(None);
        self.yields.set(0);
        self.deferring_since.set(None);
    }

    /// Called at every step; at the first one (and the first after
    /// [`reset`](Self::reset)) it records in `ours` the CPU this waiter runs
    /// on and looks up the CPU on which the other side (`partners`) last
    /// began to wait. If that is ours, the thread we wait for is probably
    /// queued behind us on this CPU: it can only run once we step aside, so
    /// spinning only delays it, and this waiter yields at once (see
    /// [`should_park`](Self::should_park) and [`defer`](Self::defer)).
    ///
    /// A stale record costs little either way: a waiter that yields with
    /// nothing else to run is back in under a microsecond, and one that
    /// spins behaves as if there were no record.
    pub(crate) fn meet(&self, ours: &Waiters, partners: &Waiters) {
        if self.partner_here.get().is_some() {
            return;
        }
        let here = current_cpu().is_some_and(|cpu| {
            ours.note_cpu(cpu);
            partners.last_cpu() == Some(cpu)
        });
        self.partner_here.set(Some(here));
    }

    /// Whether [`meet`](Self::meet) found the other side's last waiter on our
    /// CPU.
    fn partner_here(&self) -> bool {
        self.partner_here.get() == Some(true)
    }

    /// One waiting step: spin or yield while that still makes sense, and
    /// return `true` once it is time to park instead. The spinning part is
    /// skipped when the partner waits on our CPU (see [`meet`](Self::meet)).
    pub(crate) fn should_park(&self) -> bool {
        if cfg!(ringstat_loom) {
            // Under loom every spin is a yield, and loom runs the other
            // threads to completion before it resumes a yielding one: a
            // waiter that spun first would always find its condition met and
            // never sleep. Parking at once makes the models explore real
            // sleeps, so a lost wake-up shows up as a deadlock.
            return true;
        }
        if !self.backoff.is_completed() && !self.partner_here() {
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

    /// A waiting step taken instead of the normal one (spin, yield or park)
    /// while `partner_waking`: a thread of the other side has been woken
    /// from a park and will make progress for us as soon as it runs. Spins
    /// [`DEFER_SPINS`] hints and returns `true` for the first [`MAX_DEFER`]
    /// of a blocking call, then yields and returns `true` until
    /// [`MAX_DEFER_YIELDING`]; returns `false` (take the normal step)
    /// otherwise.
    ///
    /// Without it, the two sides take turns: the consumer wakes the parked
    /// producer, drains the ring while the producer is still waking, then
    /// yields (on a CPU shared with a busy thread, that hands over a whole
    /// time slice) or parks, and the producer wakes it in turn. Yielding
    /// rather than parking also keeps the waiter's vCPU running, so a
    /// partner on a VM finds it awake instead of paying a slow wake-up for
    /// every ring of items.
    ///
    /// Not when the partner waits on our CPU (see [`meet`](Self::meet)):
    /// then the woken thread is probably queued behind us.
    pub(crate) fn defer(&self, partner_waking: bool) -> bool {
        if cfg!(ringstat_loom) || !partner_waking || self.partner_here() {
            // Under loom, parking at once is the point (see `should_park`).
            return false;
        }
        let now = Instant::now();
        let since = self.deferring_since.get().unwrap_or(now);
        self.deferring_since.set(Some(since));
        let deferred = now.duration_since(since);
        if deferred >= MAX_DEFER_YIELDING {
            return false;
        }
        if deferred >= MAX_DEFER {
            thread::yield_now();
            return true;
        }
        for _ in 0..DEFER_SPINS {
            spin_loop();
        }
        true
    }
}

/// What `Waiters::lock` guards.
#[derive(Debug, Default)]
struct Parked {
    /// The wake-up epoch, bumped by every notifier that wakes the sleepers. A
    /// thread that finds it changed when it wakes was deregistered by that
    /// notifier; otherwise (its slice ran out) it deregisters itself.
    epoch: u64,
    /// Tasks registered to be woken (async waiters), with the key their
    /// owner chose; each also counts one in `Waiters::count`, like a parked
    /// thread. `wake_all` takes them all; an owner that gives up first
    /// removes its own (`Waiters::deregister`).
    wakers: Vec<(u64, Waker)>,
}

/// One side's sleepers (consumers waiting for items, or producers waiting for
/// room): parked threads, and registered [`Waker`]s of async tasks.
#[derive(Debug)]
pub(crate) struct Waiters {
    /// The CPU on which a thread of this side last began a blocking wait,
    /// plus one (0: none known). Written only when it changes, at the start
    /// of a wait; read by the other side's waiters as a hint (see
    /// [`Spinner::meet`]).
    last_cpu: AtomicUsize,
    /// Number of threads registered to sleep and not yet woken. Changed only
    /// under `lock` (a waiter adds itself; a notifier that wakes everyone
    /// clears it). Read without the lock only by [`notify`](Self::notify)
    /// (`close`, `force_push` displacing an item); pushes and pops learn of
    /// sleepers from the index's `wait_bit` instead.
    count: AtomicUsize,
    /// Number of threads a notifier deregistered and woke that have not yet
    /// returned from [`park`](Self::park) (they still have to be scheduled
    /// and take `lock`). Changed only under `lock`; read without it by the
    /// other side's waiters as a hint (see [`Spinner::defer`]).
    waking: AtomicUsize,
    /// The wake-up epoch and the registered [`Waker`]s (see
    /// [`Parked`]).
    lock: Mutex<Parked>,
    cond: Condvar,
    /// Parks that ran out their slice while the caller could already go on
    /// and no notifier came (see [`park`](Self::park)); counted only when
    /// [`COUNT_MISSED`], read by the tests.
    missed: AtomicU64,
}

impl Waiters {
    pub(crate) fn new() -> Self {
        Self {
            last_cpu: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            waking: AtomicUsize::new(0),
            lock: Mutex::new(Parked::default()),
            cond: Condvar::new(),
            missed: AtomicU64::new(0),
        }
    }

    /// Wakes every parked waiter, if there is one. Call after a `SeqCst`
    /// update of `head`/`tail` that may let a waiter proceed but keeps the
    /// index's `wait_bit` (see the module docs).
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst: pairs with the waiter's `fetch_add(SeqCst)` in `park`; see
        // the module docs for why this rules out a lost wake-up.
        seqcst_pair_fence();
        if self.count.load(Ordering::SeqCst) != 0 {
            self.wake_all();
        }
    }

    /// Wakes every parked waiter and registered [`Waker`]. Called by the
    /// claimer that cleared the index's `wait_bit`, once its items are
    /// published, and by `notify`.
    #[cold]
    pub(crate) fn wake_all(&self) {
        // Taking the lock orders us after any waiter that registered: it
        // holds the lock from its registration until it sleeps (a task: until
        // its `Waker` is in the list).
        let mut parked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed load: `count` only changes under the lock we hold.
        let sleepers = self.count.load(Ordering::Relaxed);
        if sleepers == 0 {
            return; // another notifier woke them while we waited for the lock
        }
        let wakers = core::mem::take(&mut parked.wakers);
        // Relaxed: under the lock, like every change of `waking`; its
        // lock-free readers only take it as a hint. Tasks are not threads
        // about to run on a CPU: not counted.
        self.waking
            .fetch_add(sleepers - wakers.len(), Ordering::Relaxed);
        // Deregister every sleeper at once, so the notifiers that follow take
        // the fast path while they wake up (otherwise each push or pop would
        // take this lock and make a futex call until the sleeper, which needs
        // the same lock to return, finally gets it). SeqCst: a notifier's
        // `count` load that reads this 0 comes after a wake-up of everyone
        // registered before it.
        self.count.store(0, Ordering::SeqCst);
        parked.epoch = parked.epoch.wrapping_add(1);
        self.cond.notify_all();
        drop(parked);
        // Outside the lock: a waker may run arbitrary code (write to an
        // eventfd, re-register).
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Registers `waker` (under `key`, which the caller keeps unique among
    /// its registrations here) to be woken by the next [`wake_all`](Self::wake_all),
    /// unless `ready()` (as for [`park`](Self::park)) finds that the caller
    /// can make progress now. Returns whether it registered; if so, the
    /// caller either is woken or calls [`deregister`](Self::deregister).
    ///
    /// The same protocol as `park`, with the list in place of the condition
    /// variable: the task counts in `count` and is in the list before the
    /// lock is released, so a notifier that comes after `ready()` finds it.
    pub(crate) fn register(&self, key: u64, waker: &Waker, ready: impl Fn() -> bool) -> bool {
        let mut parked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // SeqCst: pairs with the `count.load(SeqCst)` in `notify`, as in `park`.
        self.count.fetch_add(1, Ordering::SeqCst);
        seqcst_pair_fence();
        if ready() {
            // Relaxed: under the lock, as in `park`.
            self.count.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        parked.wakers.push((key, waker.clone()));
        true
    }

    /// Removes the waker registered under `key`, if no notifier has taken it
    /// yet; returns whether it was still registered. A task that stops
    /// waiting (it gave up, or was cancelled) calls it so that it is not
    /// counted any more.
    pub(crate) fn deregister(&self, key: u64) -> bool {
        let mut parked = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = parked.wakers.iter().position(|(k, _)| *k == key) else {
            return false;
        };
        drop(parked.wakers.swap_remove(at));
        // Relaxed: under the lock, as in `park`.
        self.count.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Parks the calling thread until notified, until `deadline`, or for at
    /// most [`PARK_SLICE`], whichever comes first, unless `ready()` (which must
    /// flag the index the other side advances and read it, as the module
    /// docs say) finds that the caller can make progress right now. Spurious
    /// returns are allowed: the caller re-tries.
    ///
    /// When [`COUNT_MISSED`], a slice that runs out with nobody waking us
    /// (before `deadline`) calls `ready()` again; see
    /// [`check_missed`](Self::check_missed).
    pub(crate) fn park(&self, deadline: Option<Instant>, ready: impl Fn() -> bool) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let registered_in = guard.epoch;
        // SeqCst: pairs with the `count.load(SeqCst)` in `notify`.
        self.count.fetch_add(1, Ordering::SeqCst);
        seqcst_pair_fence();
        if !ready() {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(PARK_SLICE),
                None => PARK_SLICE,
            };
            if !slice.is_zero() {
                let (g, waited) = self
                    .cond
                    .wait_timeout(guard, slice)
                    .unwrap_or_else(|e| e.into_inner());
                guard = g;
                if COUNT_MISSED && waited.timed_out() && guard.epoch == registered_in {
                    guard = self.check_missed(guard, registered_in, deadline, &ready);
                }
            }
        }
        if guard.epoch == registered_in {
            // No notifier woke us (ready, slice over, or a spurious wake-up):
            // we are still counted. Relaxed: under the lock, like every other
            // change of `count`; a notifier that still sees the old count only
            // pays for a spurious `notify_all`.
            self.count.fetch_sub(1, Ordering::Relaxed);
        } else {
            // A notifier deregistered us and counted us in `waking`: we are
            // back. Relaxed: under the lock, as in `wake_all`.
            self.waking.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Test builds: our slice ran out and nobody woke us. If `ready()` now
    /// finds that the caller could go on, the thing it waited for arrived
    /// while we slept, and its wake-up is late or lost. A late one (its
    /// claimer cleared the flag and is still publishing, or waits for the
    /// lock we hold) arrives within one more slice; if none does, count a
    /// missed wake-up. Calling `ready()` again only sets the flag once more:
    /// at worst one spurious `wake_all`. A later, unrelated wake-up ends the
    /// grace too, so the count may miss some; it never counts a wake-up that
    /// was only late.
    #[cold]
    fn check_missed<'a>(
        &self,
        mut guard: MutexGuard<'a, Parked>,
        registered_in: u64,
        deadline: Option<Instant>,
        ready: &impl Fn() -> bool,
    ) -> MutexGuard<'a, Parked> {
        let now = Instant::now();
        let grace_end = now + PARK_SLICE;
        // Only when the caller's deadline leaves a whole grace slice: a
        // deadline that cuts it short tells nothing.
        if deadline.is_some_and(|d| d < grace_end) || !ready() {
            return guard;
        }
        while guard.epoch == registered_in {
            let left = grace_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Relaxed: a statistic for the tests, ordering nothing.
                self.missed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            guard = self
                .cond
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        guard
    }

    /// How many parks ended by their slice running out while the caller
    /// could already proceed and no notifier came (see
    /// [`check_missed`](Self::check_missed)); `None` when not counted
    /// (release builds without the `test-counters` feature, loom).
    pub(crate) fn missed_wakeups(&self) -> Option<u64> {
        // Relaxed: as in `check_missed`.
        COUNT_MISSED.then(|| self.missed.load(Ordering::Relaxed))
    }

    /// Records that a thread of this side begins to wait on `cpu`.
    fn note_cpu(&self, cpu: usize) {
        // Relaxed: a hint that orders nothing. Stored only when it changes,
        // so that this line, which the other side's waiters read (see
        // `Spinner::meet`), stays clean while the waiters stay put.
        let cpu = cpu.wrapping_add(1);
        if self.last_cpu.load(Ordering::Relaxed) != cpu {
            self.last_cpu.store(cpu, Ordering::Relaxed);
        }
    }

    /// The CPU on which a thread of this side last began to wait, if any.
    fn last_cpu(&self) -> Option<usize> {
        // Relaxed: a hint, see `note_cpu`.
        self.last_cpu.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Whether a thread woken from here has not yet returned from its park:
    /// it is about to make progress on this side. A hint (a stale answer
    /// costs a park or a few yields, never correctness).
    pub(crate) fn is_waking(&self) -> bool {
        // Relaxed: a hint; see `waking`.
        self.waking.load(Ordering::Relaxed) != 0
    }
}

impl<T> super::Queue<T> {
    /// How many parks, on either side, ended by their slice running out while
    /// the caller could already proceed and no wake-up came (see
    /// `Waiters::check_missed`): lost wake-ups, which the slices would
    /// otherwise hide. `None` where they are not counted (release builds
    /// without the `test-counters` feature). For the stress tests; not part
    /// of the API.
    #[doc(hidden)]
    pub fn debug_missed_wakeups(&self) -> Option<u64> {
        Some(self.not_empty.missed_wakeups()? + self.not_full.missed_wakeups()?)
    }
}

impl<T> super::UnboundedQueue<T> {
    /// As [`Queue::debug_missed_wakeups`](super::Queue::debug_missed_wakeups),
    /// for the consumers (producers never wait).
    #[doc(hidden)]
    pub fn debug_missed_wakeups(&self) -> Option<u64> {
        self.not_empty().missed_wakeups()
    }
}

#[cfg(all(test, not(ringstat_loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;

    #[test]
    fn a_woken_waiter_stops_counting_as_waking_when_it_returns() {
        let w = Arc::new(Waiters::new());
        let sleeper = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || w.park(None, || false))
        };
        // Registered (it holds the lock until it sleeps, so the notifier
        // below cannot miss it).
        while w.count.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        w.notify();
        sleeper.join().unwrap();
        assert!(!w.is_waking(), "a returned waiter still counts as waking");
        assert_eq!(w.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiter_that_times_out_is_never_waking() {
        let w = Waiters::new();
        w.park(Some(Instant::now() + Duration::from_millis(1)), || false);
        assert!(!w.is_waking());
        assert_eq!(w.count.load(Ordering::SeqCst), 0);
        // A ready waiter does not sleep, and leaves no trace either.
        w.park(None, || true);
        assert!(!w.is_waking());
        assert_eq!(w.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_slice_that_runs_out_while_ready_counts_a_missed_wakeup() {
        let w = Waiters::new();
        assert_eq!(w.missed_wakeups(), COUNT_MISSED.then_some(0));
        // Not ready when it parks; ready when the slice runs out, and nobody
        // wakes it: the wake-up was lost.
        let checks = core::cell::Cell::new(0);
        w.park(None, || {
            checks.set(checks.get() + 1);
            checks.get() > 1
        });
        assert_eq!(w.missed_wakeups(), COUNT_MISSED.then_some(1));
        assert_eq!(checks.get(), if COUNT_MISSED { 2 } else { 1 });
        assert_eq!(w.count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_late_wakeup_is_not_a_missed_one() {
        let w = Arc::new(Waiters::new());
        let (tx, rx) = std::sync::mpsc::channel();
        // Woken only once the re-check has found it ready: the notifier
        // blocks on the lock the waiter holds until it sleeps again.
        let notifier = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                if rx.recv().is_ok() {
                    w.notify();
                }
            })
        };
        let checks = core::cell::Cell::new(0);
        w.park(None, || {
            checks.set(checks.get() + 1);
            if checks.get() > 1 {
                tx.send(()).unwrap();
            }
            checks.get() > 1
        });
        drop(tx);
        notifier.join().unwrap();
        assert_eq!(w.missed_wakeups(), COUNT_MISSED.then_some(0));
        assert!(!w.is_waking());
        assert_eq!(w.count.load(Ordering::SeqCst), 0);
    }

    /// Pins the calling thread to the CPU it runs on, and returns that CPU.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn pin_here() -> usize {
        let cpu = current_cpu().expect("sched_getcpu works on Linux");
        // SAFETY: `set` is a zeroed `cpu_set_t` we own, `CPU_SET` sets one
        // bit of it, and `sched_setaffinity` only reads it.
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        assert_eq!(pinned, 0, "sched_setaffinity failed");
        cpu
    }

    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn a_waiter_yields_at_once_when_the_other_side_last_waited_on_its_cpu() {
        // On a thread of its own, so that the pinning ends with it.
        std::thread::spawn(|| {
            let cpu = pin_here();
            let (ours, partners) = (Waiters::new(), Waiters::new());
            let s = Spinner::new();
            s.meet(&ours, &partners);
            assert_eq!(ours.last_cpu(), Some(cpu), "a waiter records its CPU");
            assert!(!s.partner_here(), "the other side has not waited yet");

            partners.note_cpu(cpu);
            s.meet(&ours, &partners);
            assert!(!s.partner_here(), "decided once per wait, until progress");
            s.reset();
            s.meet(&ours, &partners);
            assert!(s.partner_here(), "the other side last waited here");
            assert!(!s.defer(true), "no spinning for a partner queued behind us");
            assert!(!s.should_park());
            assert_eq!(s.yields.get(), 1, "the first step yields");
            assert!(!s.backoff.is_completed(), "and does not spin");

            partners.note_cpu(cpu + 1);
            s.reset();
            s.meet(&ours, &partners);
            assert!(!s.partner_here(), "the other side last waited elsewhere");
            assert!(!s.should_park());
            assert_eq!(s.yields.get(), 0, "the first step spins");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn deferring_is_bounded_and_starts_over_after_progress() {
        let s = Spinner::new();
        assert!(!s.defer(false), "no waking partner: nothing to defer for");
        let start = Instant::now();
        let mut steps = 0u64;
        while s.defer(true) {
            steps += 1;
        }
        assert!(steps > 0, "a waking partner defers at least once");
        // Not a speed check: `defer` keeps returning `true` until its own
        // clock reads `MAX_DEFER_YIELDING`, so this holds on any machine.
        assert!(
            start.elapsed() >= MAX_DEFER_YIELDING,
            "spins, then yields, for the whole bound"
        );
        assert!(!s.defer(true), "the bound holds for the rest of the call");
        s.reset();
        assert!(s.defer(true), "progress starts a new bound");
    }
}
