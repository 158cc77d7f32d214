//! Waiting on a [`SharedQueue`] without a thread per waiter: async tasks
//! (asyncio coroutines through the binding) register a [`Waker`] and are
//! woken when a push, pop or close in *any process* may let them proceed.
//!
//! # Design
//!
//! A producer in another process wakes sleepers the only way it can: it
//! bumps a futex word in the region (`DATA_SEQ` after a push, `SPACE_SEQ`
//! after a pop) and calls `futex_wake` if the region's waiter count is not
//! zero. An eventfd cannot be registered in the region (a descriptor means
//! nothing in another process without passing it over a socket), so each
//! handle that has async waiters keeps one *watcher* thread per side, blocked
//! natively in `futex_wait` on that side's word like a blocking `pop` is.
//! When the word moves it fires the wakers of every task registered on
//! that side of this handle (each then retries; those that find nothing
//! register again) — the same "all registered tasks wake" rule as
//! [`Queue::register_pop_waker`](crate::Queue::register_pop_waker). So:
//!
//! - one thread per handle and side, shared by all its waiting tasks (on any
//!   number of event loops), started on the first wait and parked on a
//!   condition variable while nobody waits; it ends when the handle drops;
//! - the process counts as one sleeper in the region (in the watcher
//!   handle's own participant entry, so a killed process's count is swept
//!   like any other) while it has waiting tasks, and not at all otherwise;
//! - before registering, a task re-checks the queue a few times with
//!   spin hints (no yield: it runs on an event loop; a few µs at most), as
//!   blocking waits spin before they sleep: a peer streaming messages
//!   usually lands the next one sooner than a wake-up through the watcher
//!   thread and the loop's fd (measured here: a third as many waits);
//! - no polling: the watcher sleeps in the kernel until woken; its timed
//!   re-check (every `RECHECK`, as blocking waits do) only sweeps dead
//!   participants and fires the tasks if that freed something or the
//!   operation looks possible (a wake-up lost to a killed process).
//!
//! Not chosen: one thread per process waiting on every queue's words at
//! once with `futex_waitv` (Linux 5.16+; it saves threads when a process
//! waits on many queues, at the cost of a fallback for older kernels), and
//! an io_uring `FUTEX_WAIT` whose ring fd the loop would watch directly
//! (one hop fewer per wake-up, but io_uring is often disabled in containers).
//!
//! # No lost wake-ups
//!
//! Registration is the protocol of the blocking `wait`: count the waiter,
//! SeqCst fence, read the word (`seen`), re-check the queue. A push either
//! happens before the re-check (which then sees it: "ready", nothing
//! registered) or its fence comes after ours and it sees the count, so it
//! bumps the word past `seen`. The watcher fires every task whose `seen`
//! differs from the word before it sleeps with the word's current value,
//! so a bump between a task's registration and the watcher's sleep is never
//! slept through. `futex_wake(1)` may pick another process's sleeper; that
//! one takes the message. A watcher woken when none of its tasks can use
//! the wake-up (they left meanwhile) passes it on to another sleeper, and
//! a task that leaves after being fired but before retrying does the same
//! ([`pass_wake`](SharedQueue::pass_wake)).

use std::task::Waker;
use std::time::Instant;

use super::{
    pos_after, st_pos, st_state, SharedQueue, DATA_SEQ, EMPTY, FULL, POP_WAITERS, POS_MASK,
    PUSH_WAITERS, READING, RECHECK, SPACE_SEQ,
};
use crate::sync::{
    fence, AtomicBool, Backoff, Condvar, Mutex, MutexGuard, Ordering, StdArc, StdAtomicU64,
};

/// Readiness checks, with exponentially longer spins between them, before a
/// task registers (at most 2^7 - 1 spin hints in all: a few µs). Under loom
/// one: a spin there is a yield, and the models are about the registration.
const SPINS: u32 = if cfg!(ringstat_loom) { 1 } else { 7 };

/// Which operation a task waits to be able to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedSide {
    /// A pop (a message arrives, or the queue closes).
    Pop,
    /// A push (a slot frees, or the queue closes).
    Push,
}

impl SharedSide {
    fn index(self) -> usize {
        match self {
            Self::Pop => 0,
            Self::Push => 1,
        }
    }

    /// The futex word and the global waiter count of this side.
    fn words(self) -> (usize, usize) {
        match self {
            Self::Pop => (DATA_SEQ, POP_WAITERS),
            Self::Push => (SPACE_SEQ, PUSH_WAITERS),
        }
    }
}

/// Why a waker could not be registered.
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedWaitError {
    /// The participant table is full of live processes.
    TooManyProcesses {
        /// Its size.
        max: usize,
    },
    /// The watcher thread could not be started.
    Thread(std::io::Error),
}

impl core::fmt::Display for SharedWaitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyProcesses { max } => write!(
                f,
                "shared queue has {max} live participants: no room to register"
            ),
            Self::Thread(e) => write!(f, "cannot start the shared queue's watcher thread: {e}"),
        }
    }
}

impl std::error::Error for SharedWaitError {}

/// Times a watcher's timed re-check found the operation possible with no
/// dead participant swept: each is a wake-up that never came (lost to a
/// killed process, or a bug). Tests without kills expect 0.
static RESCUES: StdAtomicU64 = StdAtomicU64::new(0);

/// One registered task.
struct Task {
    key: u64,
    waker: Waker,
    /// The side's futex word when the task checked the queue.
    seen: u32,
}

#[derive(Default)]
struct SideState {
    tasks: Vec<Task>,
    /// This process is counted as a sleeper of the side (global count and
    /// the watcher handle's entry): exactly while `tasks` is not empty,
    /// except between a registration's count and its re-check.
    counted: bool,
    /// The watcher thread runs (parked or not).
    thread: bool,
    /// The handle dropped: the watcher exits.
    stop: bool,
}

struct Side {
    state: Mutex<SideState>,
    /// The watcher parks here while `tasks` is empty.
    idle: Condvar,
}

/// The async waits of one [`SharedQueue`] handle.
pub(super) struct Notifier {
    /// A handle of its own: its participant entry carries this process's
    /// sleeper counts for the async waiters.
    q: SharedQueue,
    sides: [Side; 2],
    /// Set (with each side's `stop`) when the handle drops: ends a watcher's
    /// sleep under loom, where the futex sleep has no timeout.
    stopping: AtomicBool,
    /// The fork generation it was made in: a forked child (which has no
    /// watcher threads) makes a new one.
    generation: u64,
}

impl Notifier {
    fn new(q: &SharedQueue) -> Self {
        let side = || Side {
            state: Mutex::new(SideState::default()),
            idle: Condvar::new(),
        };
        Self {
            q: q.clone(),
            sides: [side(), side()],
            stopping: AtomicBool::new(false),
            generation: crate::shm::fork_generation(),
        }
    }

    fn lock(&self, side: SharedSide) -> MutexGuard<'_, SideState> {
        self.sides[side.index()]
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds this process to the side's sleeper counts (once).
    fn count(&self, st: &mut SideState, me: usize, side: SharedSide) {
        if !st.counted {
            let (seq, waiters) = side.words();
            // Relaxed: the fence in `register` orders these before the
            // re-check (as in `SharedQueue::wait`).
            self.q
                .entry_waiters(me, seq)
                .fetch_add(1, Ordering::Relaxed);
            self.q
                .region
                .u32_at(waiters)
                .fetch_add(1, Ordering::Relaxed);
            st.counted = true;
        }
    }

    /// Removes this process from the side's sleeper counts if no task is
    /// left.
    fn uncount_if_idle(&self, st: &mut SideState, side: SharedSide) {
        if st.counted && st.tasks.is_empty() {
            if let Ok(me) = self.q.me() {
                let (seq, waiters) = side.words();
                // Relaxed: only wakers' decisions depend on the counts; a
                // sweep that reaped our entry meanwhile saturates at 0.
                let _ = self.q.entry_waiters(me, seq).fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |c| Some(c.saturating_sub(1)),
                );
                let _ = self.q.region.u32_at(waiters).fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |c| Some(c.saturating_sub(1)),
                );
            }
            st.counted = false;
        }
    }

    fn register(
        self: &StdArc<Self>,
        side: SharedSide,
        key: u64,
        waker: &Waker,
    ) -> Result<bool, SharedWaitError> {
        let me = self
            .q
            .me()
            .map_err(|max| SharedWaitError::TooManyProcesses { max })?;
        let (seq, _) = side.words();
        let mut st = self.lock(side);
        if st.stop {
            return Ok(false);
        }
        self.count(&mut st, me, side);
        // SeqCst fence: pairs with the fence in `SharedQueue::wake` (Dekker):
        // either the waker sees our count, or our re-check sees its message
        // (or freed slot).
        fence(Ordering::SeqCst);
        // Acquire: pairs with the Release bump in `wake`/`close`, so a close
        // whose bump we read is seen by the re-check.
        let seen = self.q.region.u32_at(seq).load(Ordering::Acquire);
        if self.q.ready(side) {
            self.uncount_if_idle(&mut st, side);
            return Ok(false);
        }
        if let Some(t) = st.tasks.iter_mut().find(|t| t.key == key) {
            t.waker.clone_from(waker);
            t.seen = seen;
        } else {
            st.tasks.push(Task {
                key,
                waker: waker.clone(),
                seen,
            });
        }
        if st.thread {
            self.sides[side.index()].idle.notify_one();
        } else {
            let me2 = StdArc::clone(self);
            let name = format!("ringstat-shm-{}", side.index());
            if let Err(e) = crate::sync::spawn_named(name, move || me2.watch(side)) {
                st.tasks.retain(|t| t.key != key);
                self.uncount_if_idle(&mut st, side);
                return Err(SharedWaitError::Thread(e));
            }
            st.thread = true;
        }
        Ok(true)
    }

    fn deregister(&self, side: SharedSide, key: u64) -> bool {
        let mut st = self.lock(side);
        let before = st.tasks.len();
        st.tasks.retain(|t| t.key != key);
        let found = st.tasks.len() != before;
        self.uncount_if_idle(&mut st, side);
        found
    }

    /// Takes the tasks that `pick` selects, uncounting if none is left;
    /// the caller wakes them after unlocking.
    fn take(
        &self,
        st: &mut SideState,
        side: SharedSide,
        pick: impl Fn(&Task) -> bool,
    ) -> Vec<Waker> {
        let mut fired = Vec::new();
        st.tasks.retain(|t| {
            if pick(t) {
                fired.push(t.waker.clone());
                false
            } else {
                true
            }
        });
        self.uncount_if_idle(st, side);
        fired
    }

    /// The watcher thread of `side` (see the module docs).
    fn watch(self: StdArc<Self>, side: SharedSide) {
        let (seq, waiters) = side.words();
        let word = self.q.region.u32_at(seq);
        loop {
            let cur;
            {
                let mut st = self.lock(side);
                loop {
                    if st.stop {
                        st.thread = false;
                        return;
                    }
                    if !st.tasks.is_empty() {
                        break;
                    }
                    st = self.sides[side.index()]
                        .idle
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                // Acquire: pairs with the Release bump of the waker whose
                // wake-up we pass to the tasks (they retry after it).
                cur = word.load(Ordering::Acquire);
                let fired = self.take(&mut st, side, |t| t.seen != cur);
                if !fired.is_empty() {
                    drop(st);
                    fired.into_iter().for_each(Waker::wake);
                    continue;
                }
            }
            let slept = Instant::now();
            crate::sync::futex_wait_or_stop(word, cur, Some(RECHECK), &self.stopping);
            // Acquire: as above.
            let now = word.load(Ordering::Acquire);
            let fired = if now != cur {
                let mut st = self.lock(side);
                let fired = self.take(&mut st, side, |t| t.seen != now);
                if fired.is_empty() && !st.stop {
                    // Woken for nothing we can use (our tasks left): hand
                    // the wake-up to another sleeper, if any.
                    drop(st);
                    self.q.wake_sleeper(waiters, seq);
                }
                fired
            } else if cfg!(not(ringstat_loom)) && slept.elapsed() >= RECHECK {
                // (Never under loom: a model must not depend on the clock.)
                // The timed re-check of blocking waits: sweep dead
                // participants; fire if that freed something, or if the
                // operation looks possible with no wake-up having come.
                let swept = self.q.sweep() > 0;
                let ready = !swept && self.q.ready(side);
                let mut st = self.lock(side);
                if swept || ready {
                    if ready && !st.tasks.is_empty() {
                        // Relaxed: a statistic.
                        RESCUES.fetch_add(1, Ordering::Relaxed);
                    }
                    self.take(&mut st, side, |_| true)
                } else {
                    Vec::new()
                }
            } else {
                Vec::new() // spurious
            };
            fired.into_iter().for_each(Waker::wake);
        }
    }

    /// Stops the watchers (the handle is dropping); tasks still registered
    /// are dropped unfired.
    fn stop(&self) {
        // Release: pairs with the Acquire load in `futex_wait_or_stop`.
        self.stopping.store(true, Ordering::Release);
        for side in [SharedSide::Pop, SharedSide::Push] {
            let mut st = self.lock(side);
            st.stop = true;
            st.tasks.clear();
            self.uncount_if_idle(&mut st, side);
            self.sides[side.index()].idle.notify_all();
        }
    }
}

impl SharedQueue {
    /// The handle's notifier, made on first use (and anew in a forked
    /// child, whose copy has no watcher threads).
    fn notifier(&self) -> StdArc<Notifier> {
        let mut slot = self
            .notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = crate::shm::fork_generation();
        match &*slot {
            Some(n) if n.generation == generation => StdArc::clone(n),
            _ => {
                if let Some(old) = slot.take() {
                    // Inherited from the parent: its mutexes may have been
                    // held at the fork; never touch them.
                    core::mem::forget(old);
                }
                let n = StdArc::new(Notifier::new(self));
                *slot = Some(StdArc::clone(&n));
                n
            }
        }
    }

    /// Stops this handle's watcher threads, if it has any (on drop).
    pub(super) fn stop_notifier(&mut self) {
        let slot = self
            .notifier
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = slot.take() {
            if n.generation == crate::shm::fork_generation() {
                n.stop();
            } else {
                core::mem::forget(n);
            }
        }
    }

    /// Whether a pop (`Pop`) or push (`Push`) may succeed now, or the queue
    /// is closed: a peek at the stamp under `head` (`tail`) that moves the
    /// index past slots already claimed, as a pop (push) would. A slot
    /// still being written (read) is not ready: its publish (free) bumps the
    /// word. A slot held by a dead participant is found by the sweep.
    fn ready(&self, side: SharedSide) -> bool {
        // Enough for any honest queue (a retry follows each index move); a
        // region corrupted into a loop is handed to the real operation.
        for _ in 0..64 {
            if self.is_closed() {
                return true;
            }
            let (index, lap_back) = match side {
                SharedSide::Pop => (self.head(), 0),
                SharedSide::Push => (self.tail(), self.capacity),
            };
            // Relaxed: picks the slot; the stamp load synchronises.
            let i = index.load(Ordering::Relaxed);
            // Acquire: pairs with the Release publish (free) of the stamp.
            let s = self.region.u64_at(self.slot_off(i)).load(Ordering::Acquire);
            let p = st_pos(s);
            if p == i & POS_MASK {
                match (side, st_state(s)) {
                    (SharedSide::Pop, FULL) | (SharedSide::Push, EMPTY) => return true,
                    (SharedSide::Pop, READING) | (SharedSide::Push, _) => {
                        // Claimed by someone else: the index is behind.
                        // Relaxed: `head`/`tail` are hints.
                        let _ =
                            index.compare_exchange(i, i + 1, Ordering::Relaxed, Ordering::Relaxed);
                    }
                    _ => return false, // EMPTY or being written: not yet
                }
            } else if pos_after(p, i & POS_MASK) {
                // Relaxed: as above.
                let _ = index.compare_exchange(i, i + 1, Ordering::Relaxed, Ordering::Relaxed);
            } else if side == SharedSide::Push && p == i.wrapping_sub(lap_back) & POS_MASK {
                if st_state(s) != EMPTY {
                    return false; // the previous lap's message is still in
                }
                // EMPTY of the previous lap: a stale read; look again.
            } else if index.load(Ordering::Relaxed) == i {
                // Pop: the previous lap's reader is still copying out.
                return false;
            }
        }
        true
    }

    /// Registers `waker` to be woken once a pop (`Pop`) or push (`Push`) may
    /// succeed — after a push, pop or close in any process — or the queue
    /// closes. Returns `Ok(false)`, registering nothing, if that is already
    /// the case: try again. `key` names the registration for
    /// [`deregister_waker`](Self::deregister_waker); keep it unique among
    /// this handle's registrations on that side. See the module docs for
    /// the watcher thread behind it.
    ///
    /// # Errors
    ///
    /// [`SharedWaitError`] if the handle cannot register in the region or
    /// the watcher thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Waker;
    /// use ringstat::queue::{SharedQueue, SharedSide};
    ///
    /// let q = SharedQueue::heap(1, 16, 4).unwrap();
    /// assert!(!q.register_waker(SharedSide::Push, 1, Waker::noop()).unwrap()); // room now
    /// assert!(q.register_waker(SharedSide::Pop, 1, Waker::noop()).unwrap()); // empty: waits
    /// q.try_push(b"x").unwrap(); // fires it (through the watcher thread)
    /// assert!(!q.register_waker(SharedSide::Pop, 2, Waker::noop()).unwrap()); // a message is in
    /// ```
    pub fn register_waker(
        &self,
        side: SharedSide,
        key: u64,
        waker: &Waker,
    ) -> Result<bool, SharedWaitError> {
        // Spin briefly first (no yield: the caller is an event loop): a
        // peer that is streaming puts (gets) usually lands the next one
        // within a microsecond or two, far sooner than a wake-up through
        // the watcher thread and the loop's fd would.
        let backoff = Backoff::new();
        for _ in 0..SPINS {
            if self.ready(side) {
                return Ok(false); // no shared writes on the fast path
            }
            backoff.spin();
        }
        self.notifier().register(side, key, waker)
    }

    /// Removes the registration `key` of
    /// [`register_waker`](Self::register_waker); `false` if it was fired
    /// (or never made). A task that leaves after its waker fired, without
    /// retrying, should call [`pass_wake`](Self::pass_wake).
    pub fn deregister_waker(&self, side: SharedSide, key: u64) -> bool {
        let n = self
            .notifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        n.is_some_and(|n| n.generation == crate::shm::fork_generation() && n.deregister(side, key))
    }

    /// Passes a wake-up on: bumps the side's word and wakes one sleeper, in
    /// any process (for a task that was woken and leaves without retrying,
    /// so the message or slot it was woken for is not left unclaimed while
    /// others sleep).
    pub fn pass_wake(&self, side: SharedSide) {
        let (seq, waiters) = side.words();
        self.wake(seq, waiters, 1);
    }

    /// Wakes one futex sleeper on `seq` if any is counted, without bumping.
    fn wake_sleeper(&self, waiters: usize, seq: usize) {
        // SeqCst fence: as in `wake`.
        fence(Ordering::SeqCst);
        // Relaxed: only decides whether to make the call.
        if self.region.u32_at(waiters).load(Ordering::Relaxed) != 0 {
            crate::sync::futex_wake(self.region.u32_at(seq), 1);
        }
    }

    /// Test hook: how many times a watcher's timed re-check found work that
    /// no wake-up announced (see `RESCUES`); 0 in a run without killed
    /// processes.
    #[doc(hidden)]
    pub fn debug_rescues() -> u64 {
        // Relaxed: a statistic.
        RESCUES.load(Ordering::Relaxed)
    }
}
