//! [`UnboundedQueue<T>`]: a multi-producer multi-consumer queue with no
//! bound, with the same close and blocking-pop protocol as [`Queue`].
//!
//! The items live in crossbeam's `SegQueue` (a linked list of fixed-size
//! segments, lock-free). Around it, one word of state makes close exact:
//!
//! - `state` holds the close mark (bit 0) and the number of pushes in flight
//!   (the rest, in units of [`PUSHER`]). A push registers itself
//!   (`fetch_add`), checks the mark, pushes its items and deregisters
//!   (`fetch_sub`); [`close`](UnboundedQueue::close) sets the mark and then
//!   waits for the pushes in flight to finish. So a push either lands before
//!   `close` returns (and will be popped) or fails with its items handed back,
//!   and a consumer that reads "closed, no push in flight" and then finds the
//!   list empty knows it is drained for good.
//! - Consumers park on [`Waiters`] (the event count of `wait.rs`). The
//!   wake-up argument is the store-buffering pattern of `notify`: a pusher's
//!   `SeqCst` `fetch_sub` of `state` comes before its `SeqCst` load of the
//!   waiter count; a waiter's `SeqCst` increment of that count comes before
//!   its `SeqCst` load of `state` in `ready`. In the single total order of
//!   these four, either the pusher sees the waiter (and wakes it) or the
//!   waiter's load reads the `fetch_sub` (or a later change), which
//!   synchronises with it, so the pushed item is visible and it does not
//!   sleep.
//!
//! [`Queue`]: super::Queue

use core::fmt;
use std::time::{Duration, Instant};

use super::wait::{Spinner, Waiters};
use super::{Closed, PopError, PushError};
use crate::sync::{AtomicUsize, Backoff, CachePadded, Ordering, SegQueue};

/// The close mark in `state`.
const CLOSED: usize = 1;
/// One push in flight, in `state`.
const PUSHER: usize = 2;

/// An unbounded multi-producer multi-consumer FIFO queue: pushes never wait
/// and never fail for lack of room; pops wait (spin, yield, then park) like
/// [`Queue`](super::Queue)'s.
///
/// Items come out in the order their pushes linearised. After
/// [`close`](Self::close) pushes fail with the value handed back, and pops
/// drain what is left, then report [`PopError::Closed`].
///
/// # Examples
///
/// ```
/// use ringstat::queue::UnboundedQueue;
///
/// let q = UnboundedQueue::new();
/// for i in 0..10_000 {
///     q.try_push(i).unwrap(); // never full
/// }
/// q.close();
/// assert_eq!(q.iter().sum::<i32>(), (0..10_000).sum::<i32>());
/// ```
pub struct UnboundedQueue<T> {
    /// The items.
    items: SegQueue<T>,
    /// Bit 0: closed. Bits 1..: pushes in flight (registered, not yet done).
    /// Every change is a read-modify-write.
    state: CachePadded<AtomicUsize>,
    /// Consumers parked while the queue is empty and open.
    not_empty: Waiters,
}

impl<T> Default for UnboundedQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> UnboundedQueue<T> {
    /// Creates an empty queue. Allocates nothing until the first push.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::<u8>::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            items: SegQueue::new(),
            state: CachePadded::new(AtomicUsize::new(0)),
            not_empty: Waiters::new(),
        }
    }

    /// Registers a push in flight; `false` (and nothing registered) if the
    /// queue is closed.
    fn enter(&self) -> bool {
        // Acquire: pairs with nothing in particular; the mark we read decides
        // only whether we may push (close waits for us if we got in first).
        let prev = self.state.fetch_add(PUSHER, Ordering::Acquire);
        if prev & CLOSED != 0 {
            // Release: close's wait loop reads this with Acquire.
            self.state.fetch_sub(PUSHER, Ordering::Release);
            return false;
        }
        true
    }

    /// Deregisters a push whose items are in the list, and wakes consumers.
    fn leave(&self) {
        // SeqCst: the first half of the store-buffering pair with `ready` (see
        // the module docs); Release publishes the pushed items to a consumer
        // or closer that reads this value (or a later one, all RMWs) with
        // Acquire.
        self.state.fetch_sub(PUSHER, Ordering::SeqCst);
        self.not_empty.notify();
    }

    /// Pushes `value`. Never waits.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] (handing `value` back) if the queue is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::{queue::UnboundedQueue, PushError};
    ///
    /// let q = UnboundedQueue::new();
    /// q.try_push(1).unwrap();
    /// q.close();
    /// assert_eq!(q.try_push(2), Err(PushError::Closed(2)));
    /// ```
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        if !self.enter() {
            return Err(PushError::Closed(value));
        }
        self.items.push(value);
        self.leave();
        Ok(())
    }

    /// Pushes every item of `items` in order (draining it), all or nothing:
    /// a push racing [`close`](Self::close) lands whole before it or not at
    /// all. Returns how many were pushed.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed; `items` is left untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// let mut batch = vec![1, 2, 3];
    /// assert_eq!(q.try_push_batch(&mut batch), Ok(3));
    /// assert!(batch.is_empty());
    /// assert_eq!(q.len(), 3);
    /// ```
    pub fn try_push_batch(&self, items: &mut Vec<T>) -> Result<usize, Closed> {
        if items.is_empty() {
            return if self.is_closed() { Err(Closed) } else { Ok(0) };
        }
        if !self.enter() {
            return Err(Closed);
        }
        let n = items.len();
        for value in items.drain(..) {
            self.items.push(value);
        }
        self.leave();
        Ok(n)
    }

    /// Pops the oldest item if there is one.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] if there is none right now; [`PopError::Closed`]
    /// if the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::{queue::UnboundedQueue, PopError};
    ///
    /// let q = UnboundedQueue::new();
    /// assert_eq!(q.try_pop(), Err(PopError::Empty));
    /// q.try_push(7).unwrap();
    /// q.close();
    /// assert_eq!(q.try_pop(), Ok(7));
    /// assert_eq!(q.try_pop(), Err(PopError::Closed));
    /// ```
    pub fn try_pop(&self) -> Result<T, PopError> {
        if let Some(v) = self.items.pop() {
            return Ok(v);
        }
        if !self.settled_closed() {
            return Err(PopError::Empty);
        }
        // Closed with no push in flight: every item ever pushed is in the
        // list (see `settled_closed`), so one more look is final.
        self.items.pop().ok_or(PopError::Closed)
    }

    /// `true` if the queue is closed and no push is in flight any more
    /// (waiting, briefly, for the ones that got in before the close).
    fn settled_closed(&self) -> bool {
        let backoff = Backoff::new();
        loop {
            // Acquire: reads the last pusher's `fetch_sub` (or later RMW) in
            // the release sequence, so its items are visible to the next pop.
            let s = self.state.load(Ordering::Acquire);
            if s & CLOSED == 0 {
                return false;
            }
            if s < PUSHER {
                return true;
            }
            // A push that registered before the close is still running: it
            // holds no lock and finishes in a few instructions.
            backoff.snooze();
        }
    }

    /// Pops up to `max` items into `out` (appending). Returns how many.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed and drained (nothing was popped).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// q.try_push_batch(&mut vec![1, 2, 3]).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(q.try_pop_batch(&mut out, 2), Ok(2));
    /// assert_eq!(out, [1, 2]);
    /// ```
    pub fn try_pop_batch(&self, out: &mut Vec<T>, max: usize) -> Result<usize, Closed> {
        let mut n = 0;
        while n < max {
            match self.try_pop() {
                Ok(v) => {
                    out.push(v);
                    n += 1;
                }
                Err(PopError::Closed) if n == 0 => return Err(Closed),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Pops the oldest item, waiting for one until `deadline` (`None`:
    /// forever).
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] if `deadline` passed with the queue empty;
    /// [`PopError::Closed`] once it is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ringstat::{queue::UnboundedQueue, PopError};
    ///
    /// let q = UnboundedQueue::<u8>::new();
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// assert_eq!(q.pop_until(Some(soon)), Err(PopError::Empty));
    /// ```
    pub fn pop_until(&self, deadline: Option<Instant>) -> Result<T, PopError> {
        let spinner = Spinner::new();
        loop {
            match self.try_pop() {
                Err(PopError::Empty) => {}
                done => return done,
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(PopError::Empty);
            }
            if spinner.should_park() {
                self.not_empty.park(deadline, || self.ready());
            }
        }
    }

    /// Pops the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// q.try_push("a").unwrap();
    /// assert_eq!(q.pop(), Ok("a"));
    /// ```
    pub fn pop(&self) -> Result<T, PopError> {
        self.pop_until(None)
    }

    /// Pops the oldest item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// As [`pop_until`](Self::pop_until).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = ringstat::queue::UnboundedQueue::<u8>::new();
    /// assert!(q.pop_timeout(Duration::from_millis(1)).is_err());
    /// ```
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.pop_until(Instant::now().checked_add(timeout))
    }

    /// Pops up to `max` items into `out`, waiting for the first one until
    /// `deadline` (`None`: forever). Returns how many (0 only on timeout).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// q.try_push(1).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(q.pop_batch_until(&mut out, 8, None), Ok(1));
    /// ```
    pub fn pop_batch_until(
        &self,
        out: &mut Vec<T>,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, Closed> {
        if max == 0 {
            return Ok(0);
        }
        match self.pop_until(deadline) {
            Ok(v) => out.push(v),
            Err(PopError::Empty) => return Ok(0),
            Err(PopError::Closed) => return Err(Closed),
        }
        // The rest without waiting; a close now only ends the batch early.
        Ok(1 + self.try_pop_batch(out, max - 1).unwrap_or(0))
    }

    /// What a parked consumer checks after registering: an item or the close
    /// mark (the second half of the pair in the module docs).
    pub(super) fn ready(&self) -> bool {
        // SeqCst: pairs with the `fetch_sub(SeqCst)` in `leave` and the
        // `fetch_or(SeqCst)` in `close` (store-buffering with the waiter
        // count, see the module docs).
        let s = self.state.load(Ordering::SeqCst);
        s & CLOSED != 0 || !self.items.is_empty()
    }

    /// Closes the queue: later pushes fail with the value handed back, pops
    /// drain what is left, then report [`PopError::Closed`]; parked consumers
    /// wake. Returns once every push that got in before it has landed, so
    /// what the queue holds then is final. Returns `true` if this call closed
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::<u8>::new();
    /// assert!(q.close());
    /// assert!(!q.close());
    /// ```
    pub fn close(&self) -> bool {
        // SeqCst: a read-modify-write of `state` before the waiter-count load
        // in `notify` (the same pair as `leave`).
        let prev = self.state.fetch_or(CLOSED, Ordering::SeqCst);
        self.not_empty.notify();
        // Wait for the pushes in flight (they finish in a few instructions).
        let _ = self.settled_closed();
        prev & CLOSED == 0
    }

    /// `true` once [`close`](Self::close) has been called.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!ringstat::queue::UnboundedQueue::<u8>::new().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        // SeqCst: in the same order as close's fetch_or.
        self.state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// The number of items (a snapshot while others push and pop).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// q.try_push(()).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` if the queue holds no item (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::queue::UnboundedQueue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Pops until the queue is closed and drained (waiting while it is
    /// empty and open).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// q.try_push(1).unwrap();
    /// q.close();
    /// assert_eq!(q.iter().collect::<Vec<_>>(), [1]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        core::iter::from_fn(move || self.pop().ok())
    }
}

impl<T> UnboundedQueue<T> {
    /// Calls `f` on every item, oldest first, leaving them in place (it moves
    /// them out of the list and back, in order): for Python's garbage
    /// collector.
    ///
    /// # Safety
    ///
    /// No other thread may be inside any method of this queue during the
    /// call (the list would see our moves); earlier operations must
    /// happen-before it.
    #[doc(hidden)]
    pub unsafe fn for_each_quiescent(&self, mut f: impl FnMut(&T)) {
        let mut all = Vec::with_capacity(self.items.len());
        while let Some(v) = self.items.pop() {
            all.push(v);
        }
        for v in all {
            f(&v);
            self.items.push(v);
        }
    }
}

impl<T> UnboundedQueue<T> {
    /// The consumers' parking place (for the missed wake-up count in `wait.rs`).
    pub(super) fn not_empty(&self) -> &Waiters {
        &self.not_empty
    }
}

impl<T> fmt::Debug for UnboundedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedQueue")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
