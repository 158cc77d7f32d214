//! Blocking and timed operations: spin, then yield, then park (`wait.rs`).

use std::time::{Duration, Instant};

use super::wait::{Spinner, Waiters};
use super::{PopError, PushError, Queue};
use crate::sync::Ordering;

/// What one waiting step did.
pub(super) enum Waited {
    /// Spun or yielded once.
    Spun,
    /// Parked (and was woken, or its slice ran out).
    Parked,
    /// The deadline has passed.
    TimedOut,
}

impl<T> Queue<T> {
    /// Pushes `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] (handing `value` back) if the queue is or becomes
    /// closed while waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(1);
    /// q.push("a").unwrap();
    /// assert_eq!(q.pop(), Ok("a"));
    /// ```
    #[inline]
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        self.push_until(value, None)
    }

    /// Pushes `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] if there was no room when `timeout` elapsed,
    /// [`PushError::Closed`] if the queue is or becomes closed; both hand the
    /// value back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::{PushError, Queue};
    ///
    /// let q = Queue::new(1);
    /// q.push_timeout(1, Duration::from_millis(1)).unwrap();
    /// assert_eq!(q.push_timeout(2, Duration::from_millis(1)), Err(PushError::Full(2)));
    /// ```
    #[inline]
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        // The clock is read only if the queue is full.
        match self.try_push(value) {
            Err(PushError::Full(v)) => self.push_wait(v, Instant::now().checked_add(timeout)),
            done => done,
        }
    }

    /// Pushes `value`, waiting for room until `deadline` (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`push_timeout`](Self::push_timeout).
    #[inline]
    pub fn push_until(&self, value: T, deadline: Option<Instant>) -> Result<(), PushError<T>> {
        // The fast path is inlined into the caller; only a full queue costs a
        // call. (An out-of-line `push` costs a call and a stack frame per
        // item, which on a busy producer/consumer pair is a large share of
        // the per-item cost.)
        match self.try_push(value) {
            Err(PushError::Full(v)) => self.push_wait(v, deadline),
            done => done,
        }
    }

    /// The slow path of the blocking pushes: `value` did not fit just now.
    #[inline(never)]
    fn push_wait(&self, value: T, deadline: Option<Instant>) -> Result<(), PushError<T>> {
        let mut value = value;
        let spinner = Spinner::new();
        loop {
            if !self.wait_for_room(&spinner, deadline) {
                return Err(PushError::Full(value));
            }
            match self.try_push(value) {
                Err(PushError::Full(v)) => value = v,
                done => return done,
            }
        }
    }

    /// Pops the oldest item, waiting for one as long as it takes.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(1);
    /// q.push(7).unwrap();
    /// q.close();
    /// assert_eq!(q.pop(), Ok(7));
    /// assert!(q.pop().is_err()); // closed and drained: no waiting
    /// ```
    #[inline]
    pub fn pop(&self) -> Result<T, PopError> {
        self.pop_until(None)
    }

    /// Pops the oldest item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] if none arrived in time, [`PopError::Closed`] once
    /// the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ringstat::{PopError, Queue};
    ///
    /// let q = Queue::<u8>::new(1);
    /// assert_eq!(q.pop_timeout(Duration::from_millis(1)), Err(PopError::Empty));
    /// ```
    #[inline]
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        // The clock is read only if the queue is empty.
        match self.try_pop() {
            Err(PopError::Empty) => self.pop_wait(Instant::now().checked_add(timeout)),
            done => done,
        }
    }

    /// Pops the oldest item, waiting until `deadline` (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`pop_timeout`](Self::pop_timeout).
    #[inline]
    pub fn pop_until(&self, deadline: Option<Instant>) -> Result<T, PopError> {
        // Fast path inlined, as in `push_until`.
        match self.try_pop() {
            Err(PopError::Empty) => self.pop_wait(deadline),
            done => done,
        }
    }

    /// The slow path of the blocking pops: the queue was empty just now.
    #[inline(never)]
    fn pop_wait(&self, deadline: Option<Instant>) -> Result<T, PopError> {
        let spinner = Spinner::new();
        loop {
            if !self.wait_for_item(&spinner, deadline) {
                return Err(PopError::Empty);
            }
            match self.try_pop() {
                Err(PopError::Empty) => {}
                done => return done,
            }
        }
    }

    /// Waits after a pop found the queue empty, until the slot at `head` may
    /// hold an item (or `head` moved), or after one park. Returns `false`
    /// once `deadline` has passed.
    ///
    /// While spinning it watches only the stamp of the slot at `head`, the
    /// one cache line the next pop needs anyway, instead of re-running
    /// `try_pop` (whose empty check is a `SeqCst` fence and a load of the
    /// producers' `tail` line). A consumer polling `tail` keeps stealing that
    /// line from the producer it is waiting for; watching the stamp does not.
    /// The spin is bounded by the `Spinner`; a close is noticed when it parks
    /// (`flag_item_wait` reads the mark bit) or after the notify that wakes
    /// it.
    pub(super) fn wait_for_item(&self, spinner: &Spinner, deadline: Option<Instant>) -> bool {
        // Relaxed: `head` only picks the slot to watch; `try_pop` re-reads
        // everything with the orderings it needs.
        let head = self.unflagged(self.head.load(Ordering::Relaxed));
        let stamp = &self.slot(head).stamp;
        loop {
            match self.wait(&self.not_empty, &self.not_full, spinner, deadline, || {
                self.flag_item_wait()
            }) {
                Waited::TimedOut => return false,
                Waited::Parked => return true,
                // Relaxed: a stamp written for `head` (or later: `head` is
                // stale) is only a hint to retry `try_pop`, which loads it
                // again with Acquire. Before that, the stamp is `head` (freed
                // per slot) or the previous lap's (released through `done`).
                Waited::Spun if stamp.load(Ordering::Relaxed).wrapping_sub(head) as isize > 0 => {
                    return true
                }
                Waited::Spun => {}
            }
        }
    }

    /// Waits after a push found the queue full, until half the ring is free
    /// (or `tail` moved), or after one park. Returns `false` once `deadline`
    /// has passed. The mirror of [`wait_for_item`](Self::wait_for_item),
    /// with one difference: while it spins and yields, it waits for a gap of
    /// `capacity / 2` free slots rather than for the first one; only when it
    /// is time to park does one free slot do (the park returns at once if
    /// there is any room).
    ///
    /// A producer that resumes as soon as one slot is free stays in lock-step
    /// right behind the consumer: every push finds the next slot still full,
    /// re-enters this wait, and both threads keep writing the same cache
    /// lines, while each failed push also reads the consumers' `head` line.
    /// Waiting for half the ring lets the consumer drain undisturbed; the
    /// producer then refills that half in one run, on lines the consumer
    /// left long ago. No item waits longer for it: the queue is full, so the
    /// consumers have a full ring of work meanwhile. With a slow consumer the
    /// gap never opens and the producer falls back to the first free slot
    /// when its spin and yield budget runs out, as before.
    pub(super) fn wait_for_room(&self, spinner: &Spinner, deadline: Option<Instant>) -> bool {
        // Relaxed: as in `wait_for_item`.
        let tail = self.unflagged(self.tail.load(Ordering::Relaxed));
        if tail & self.mark_bit != 0 {
            return true; // closed: `try_push` reports it
        }
        // The slot `gap - 1` positions after `tail`, and its stamp while it
        // still holds the previous lap's item. Consumers free slots in
        // order (up to the few pops in flight), so once it is free, the
        // slots before it are too, or will be in a moment. Batch pops free
        // it without changing its stamp, by moving `done` past `gone`, its
        // previous lap's position.
        let gap = (self.cap / 2).max(1);
        let far_pos = self.advance(tail, gap - 1);
        let far = &self.slot(far_pos).stamp;
        let full = far_pos.wrapping_add(1).wrapping_sub(self.one_lap);
        let gone = far_pos.wrapping_sub(self.one_lap);
        // Relaxed: a hint, as in `wait_for_item`.
        let free = || {
            far.load(Ordering::Relaxed) != full
                || self.done.load(Ordering::Relaxed).wrapping_sub(gone) as isize > 0
        };
        loop {
            match self.wait(&self.not_full, &self.not_empty, spinner, deadline, || {
                self.flag_room_wait()
            }) {
                Waited::TimedOut => return false,
                Waited::Parked => return true,
                Waited::Spun if free() => return true,
                Waited::Spun => {}
            }
        }
    }

    /// One step of waiting: spin, then yield, then park (see `Spinner`) on
    /// `waiters`, unless a thread of the other side (`partners`) is waking
    /// up (see [`Spinner::defer`]); no spinning if the other side last
    /// waited on our CPU (see [`Spinner::meet`]).
    pub(super) fn wait(
        &self,
        waiters: &Waiters,
        partners: &Waiters,
        spinner: &Spinner,
        deadline: Option<Instant>,
        ready: impl Fn() -> bool,
    ) -> Waited {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Waited::TimedOut;
        }
        spinner.meet(waiters, partners);
        if spinner.defer(partners.is_waking()) {
            return Waited::Spun;
        }
        if spinner.should_park() {
            waiters.park(deadline, ready);
            return Waited::Parked;
        }
        Waited::Spun
    }

    // ----- the last check before a park (see wait.rs) ------------------------

    /// Called by a consumer registered to park on `not_empty`, under its
    /// lock: sets `tail`'s `wait_bit`, so that the next push takes its slow
    /// path and wakes the sleepers, and returns whether to skip the sleep
    /// (closed, or not empty).
    pub(super) fn flag_item_wait(&self) -> bool {
        // SeqCst read-modify-write: in `tail`'s modification order it comes
        // either before the next claim, which then reads the flag, clears it
        // and wakes us once its item is written, or after it, and then the
        // claimed item shows in the value read here. The `SeqCst` also puts
        // it in one order with `close`'s `fetch_or` and the count loads of
        // `Waiters::notify`.
        let tail = self.tail.fetch_or(self.wait_bit, Ordering::SeqCst);
        tail & self.mark_bit != 0
            || self.position(tail) != self.position(self.head.load(Ordering::SeqCst))
    }

    /// Called by a producer registered to park on `not_full`, under its
    /// lock: sets `head`'s `wait_bit` (the next pop wakes the sleepers) and
    /// returns whether to skip the sleep (closed, or not full).
    pub(super) fn flag_room_wait(&self) -> bool {
        // SeqCst: as in `flag_item_wait`, with `head` and the pops that
        // clear the flag. A `tail` that moved since only makes the queue
        // look fuller; a pop after this read-modify-write sees the flag.
        let head = self.head.fetch_or(self.wait_bit, Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        tail & self.mark_bit != 0
            || self.position(head).wrapping_add(self.one_lap) != self.position(tail)
    }
}
