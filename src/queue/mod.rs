//! [`Queue<T>`]: a bounded multi-producer multi-consumer ring buffer.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue with per-slot sequence
//! numbers ("stamps"), in the layout of crossbeam's `ArrayQueue` and
//! `crossbeam-channel`'s array flavour, extended with:
//!
//! - **batch claims**: a producer (consumer) checks the stamps of a run of
//!   slots and claims the whole run with a single compare-and-swap of `tail`
//!   (`head`), so a batch of `n` items costs one contended atomic instead of
//!   `n`;
//! - **a release index** for batch pops: a consumer that has read a long run
//!   advances one index, `done`, past it instead of freeing every slot
//!   (see `release.rs`);
//! - **close**: a mark bit in `tail`, so a push that races with
//!   [`close`](Queue::close) either lands before it (and will be popped) or
//!   fails with the value handed back;
//! - **lossy overwrite** ([`force_push`](Queue::force_push));
//! - **blocking waits** that spin, then yield, then park on an event count
//!   with no lost wake-ups (see `wait.rs` and `blocking.rs`).
//!
//! # Progress
//!
//! Claiming a slot is lock-free. As in every Vyukov-style queue, a consumer
//! that reaches a slot whose producer claimed it but was preempted before
//! writing it spins until the write lands (and vice versa); such a window is a
//! few instructions long.

mod batch;
mod blocking;
mod error;
mod iter;
mod release;
#[cfg(target_os = "linux")]
mod shared;
mod task;
mod unbounded;
mod wait;

use core::fmt;
use core::mem::MaybeUninit;

pub use error::{CapacityError, Closed, PopError, PushError};
pub use iter::{IntoIter, Iter, TryIter};
#[cfg(target_os = "linux")]
pub use shared::{
    SharedPopError, SharedPushError, SharedQueue, SharedQueueError, SharedQueueOptions,
    MAX_PROCESSES, MAX_SHARED_CAPACITY, MAX_SLOT_SIZE, SHARED_QUEUE_KIND,
};
#[cfg(target_os = "linux")]
pub use shared::{SharedSide, SharedWaitError};
pub use unbounded::UnboundedQueue;

use crate::sync::{fence, AtomicUsize, Backoff, CachePadded, Ordering, UnsafeCell};
use wait::Waiters;

/// The largest capacity [`Queue::try_new`] accepts: positions need three
/// bits above the slot index (the close mark, the waiter flag and the lap),
/// and at least two for the lap at the largest capacity.
pub const MAX_CAPACITY: usize = usize::MAX >> 4;

/// One cell of the ring.
struct Slot<T> {
    /// The slot's sequence number. For a slot at index `i` in lap `L`
    /// (position `p = L + i`): `stamp == p` means empty and ready for the
    /// producer that claims position `p`; `stamp == p + 1` means it holds the
    /// value written for position `p`, ready for the consumer of `p`, until
    /// the release index `done` passes `p`. The consumer either sets it to
    /// `p + one_lap`, i.e. empty for the next lap ("freed per slot"), or
    /// leaves it and advances `done` past `p` ("released through `done`"):
    /// the producer of `p + one_lap` accepts either.
    stamp: AtomicUsize,
    /// Initialised exactly when `stamp == p + 1` for the slot's current
    /// position `p` and `done` has not passed `p` (or while the owner of a
    /// claimed position accesses it).
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer queue.
///
/// Any number of threads may push and pop through a shared reference
/// (`&Queue<T>`, typically inside an `Arc`). Items come out in the order
/// their pushes claimed positions.
///
/// | operation | when the queue is full / empty |
/// |---|---|
/// | [`try_push`](Self::try_push) / [`try_pop`](Self::try_pop) | fail at once, handing the value back |
/// | [`push`](Self::push) / [`pop`](Self::pop) | wait (spin, yield, then park) |
/// | [`push_timeout`](Self::push_timeout) / [`pop_timeout`](Self::pop_timeout) | wait at most the given time |
/// | [`force_push`](Self::force_push) | overwrite the oldest item and return it |
/// | [`try_push_batch`](Self::try_push_batch) / [`try_pop_batch`](Self::try_pop_batch) and their blocking forms | move a run of items with one atomic claim |
/// | [`iter`](Self::iter) / [`try_iter`](Self::try_iter) | pop until closed and drained / until empty |
///
/// After [`close`](Self::close), pushes fail with the value handed back and
/// pops drain what is left, then report [`PopError::Closed`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::thread;
/// use ringstat::Queue;
///
/// let q = Arc::new(Queue::new(1024));
/// let producer = {
///     let q = Arc::clone(&q);
///     thread::spawn(move || {
///         for i in 0..10_000u64 {
///             q.push(i).unwrap();
///         }
///         q.close();
///     })
/// };
/// let mut sum = 0;
/// while let Ok(v) = q.pop() {
///     sum += v;
/// }
/// producer.join().unwrap();
/// assert_eq!(sum, (0..10_000u64).sum::<u64>());
/// ```
pub struct Queue<T> {
    /// Position of the next pop: `lap | wait | index`. Never carries the
    /// mark bit. Advanced (by CAS) only by consumers and by `force_push`;
    /// `wait_bit` is set by producers about to park for room (see
    /// [`wait`] and `flag_room_wait`).
    head: CachePadded<AtomicUsize>,
    /// Position of the next push: `lap | wait | mark | index`. Advanced (by
    /// CAS) only by producers; `mark_bit` is set once, by `close`;
    /// `wait_bit` by consumers about to park for an item.
    tail: CachePadded<AtomicUsize>,
    /// The release index: every position before `done` has been read by its
    /// consumer and its slot is free for the next lap, whatever its stamp
    /// says. Batch pops of long runs advance it (by CAS, from the start of
    /// their run to its end) instead of writing a freed stamp into every
    /// slot they read; single pops, short runs, and runs that finish before
    /// a run claimed ahead of theirs free their slots the per-slot way, and
    /// `sweep` carries `done` past such slots. Never ahead of `head`. See
    /// `release_run`.
    done: CachePadded<AtomicUsize>,
    /// `cap` slots; slot `i` starts with stamp `i` (empty, lap 0).
    buffer: Box<[Slot<T>]>,
    /// Number of slots, `1..=MAX_CAPACITY`.
    cap: usize,
    /// `(cap + 1).next_power_of_two()`: above every index; set in `tail` when
    /// closed.
    mark_bit: usize,
    /// `2 * mark_bit`: set in `tail` (in `head`) while consumers (producers)
    /// may be parked waiting for an item (for room). No stamp carries it, so
    /// a flagged index fails the inlined attempt of `try_push` (`try_pop`);
    /// the out-of-line claim that clears it wakes the sleepers. This is what
    /// keeps the waiters' state off the fast path: a push or pop reads no
    /// waiter count.
    wait_bit: usize,
    /// `4 * mark_bit`: the amount a position grows by per lap.
    one_lap: usize,
    /// Consumers parked waiting for an item (or the close).
    not_empty: CachePadded<Waiters>,
    /// Producers parked waiting for room (or the close).
    not_full: CachePadded<Waiters>,
}

// SAFETY: the queue moves `T`s between threads (a value pushed on one thread is
// popped and dropped on another), so `T: Send` is required and sufficient:
// no `&T` is ever shared between threads, every slot is accessed by one owner
// at a time as established by its stamp.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: as above; `&Queue<T>` only lets threads move owned `T`s in and out.
unsafe impl<T: Send> Sync for Queue<T> {}

/// A run of positions claimed with one CAS. It never crosses the end of a
/// lap, so its positions are `start, start + 1, ..., start + len - 1` and its
/// slots are `index(start)..index(start) + len`.
#[derive(Clone, Copy)]
struct Run {
    /// First claimed position.
    start: usize,
    /// `index(start)`: the run's slots are `index..index + len`.
    index: usize,
    /// Number of positions claimed (at least 1).
    len: usize,
    /// Whether the claim cleared the index's `wait_bit`: the claimer must
    /// wake the other side's sleepers once the run is published.
    woke: bool,
}

/// Why no run could be claimed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NoRun {
    /// Full (for pushes) or empty (for pops).
    Blocked,
    /// Closed (for pops: closed and drained).
    Closed,
}

impl<T> Queue<T> {
    /// Creates a queue that holds at most `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or larger than [`MAX_CAPACITY`]. Use
    /// [`try_new`](Self::try_new) to get an error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::<u64>::new(3);
    /// assert_eq!(q.capacity(), 3);
    /// ```
    pub fn new(capacity: usize) -> Self {
        match Self::try_new(capacity) {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        }
    }

    /// Creates a queue that holds at most `capacity` items, or an error if
    /// `capacity` is 0, larger than [`MAX_CAPACITY`], or its slots cannot be
    /// allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::Queue::<u8>::try_new(0).is_err());
    /// assert!(ringstat::Queue::<u8>::try_new(1).is_ok());
    /// ```
    pub fn try_new(capacity: usize) -> Result<Self, CapacityError> {
        let error = |alloc_failed| CapacityError {
            requested: capacity,
            alloc_failed,
        };
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(error(false));
        }
        let mark_bit = (capacity + 1).next_power_of_two();
        let wait_bit = mark_bit * 2;
        let one_lap = mark_bit * 4;
        // Fallible allocation: a huge capacity is an error, not an abort.
        let mut buffer = Vec::new();
        buffer
            .try_reserve_exact(capacity)
            .map_err(|_| error(true))?;
        buffer.extend((0..capacity).map(|i| Slot {
            stamp: AtomicUsize::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        Ok(Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            done: CachePadded::new(AtomicUsize::new(0)),
            buffer: buffer.into_boxed_slice(),
            cap: capacity,
            mark_bit,
            wait_bit,
            one_lap,
            not_empty: CachePadded::new(Waiters::new()),
            not_full: CachePadded::new(Waiters::new()),
        })
    }

    // ----- positions ---------------------------------------------------------

    #[inline(always)]
    fn index(&self, pos: usize) -> usize {
        pos & (self.mark_bit - 1)
    }

    /// `raw` (a value of `head` or `tail`) without its `wait_bit`: the
    /// position, with `tail`'s mark bit if closed.
    #[inline(always)]
    fn unflagged(&self, raw: usize) -> usize {
        raw & !self.wait_bit
    }

    /// `raw` (a value of `head` or `tail`) without its flag bits: the
    /// position alone.
    #[inline(always)]
    fn position(&self, raw: usize) -> usize {
        raw & !(self.wait_bit | self.mark_bit)
    }

    /// The position after `pos` (which carries no mark bit).
    #[inline(always)]
    fn next(&self, pos: usize) -> usize {
        self.next_at(pos, self.index(pos))
    }

    /// [`next`](Self::next) for a `pos` whose index the caller already has.
    #[inline(always)]
    fn next_at(&self, pos: usize, index: usize) -> usize {
        debug_assert_eq!(index, self.index(pos));
        if index + 1 < self.cap {
            pos + 1
        } else {
            self.next_lap(pos)
        }
    }

    /// How many slots from `index` on (at most `max`, within the lap) have
    /// the stamps `first, first + 1, ...`: the run a batch can claim. Every
    /// stamp is loaded with Acquire (see the callers for what each pairs
    /// with); stamps past the run may be loaded too, and are ignored.
    ///
    /// Four stamps per step, compared without branches between them: one
    /// loop branch per four slots, and a cost that does not depend on where
    /// the loop falls in the code.
    #[inline(always)]
    fn run_len(&self, index: usize, max: usize, first: usize) -> usize {
        let slots = &self.buffer[index..index + max];
        let holds =
            |slot: &Slot<T>, k: usize| slot.stamp.load(Ordering::Acquire) == first.wrapping_add(k);
        let mut len = 0;
        for four in slots.chunks_exact(4) {
            let all = holds(&four[0], len)
                & holds(&four[1], len + 1)
                & holds(&four[2], len + 2)
                & holds(&four[3], len + 3);
            if !all {
                break;
            }
            len += 4;
        }
        len + slots[len..]
            .iter()
            .zip(len..)
            .take_while(|&(slot, k)| holds(slot, k))
            .count()
    }

    /// The position `len` steps after `pos`, for a run that does not cross
    /// the end of `pos`'s lap (`index(pos) + len <= cap`).
    #[inline(always)]
    fn after_run(&self, pos: usize, len: usize) -> usize {
        let index = self.index(pos);
        debug_assert!(index + len <= self.cap);
        if index + len < self.cap {
            pos + len
        } else {
            self.next_lap(pos)
        }
    }

    /// The position `k` steps after `pos` (which carries no mark bit), for
    /// `k < cap`: at most one lap boundary is crossed.
    #[inline]
    fn advance(&self, pos: usize, k: usize) -> usize {
        debug_assert!(k < self.cap);
        let index = self.index(pos);
        if index + k < self.cap {
            pos + k
        } else {
            self.next_lap(pos) + (index + k - self.cap)
        }
    }

    /// The first position (index 0) of the lap after `pos`'s.
    #[inline(always)]
    fn next_lap(&self, pos: usize) -> usize {
        (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
    }

    #[inline(always)]
    fn slot_at(&self, index: usize) -> &Slot<T> {
        debug_assert!(index < self.cap);
        // SAFETY: callers pass `index(pos) + k` for a run that stays inside
        // the lap, so `index < cap == buffer.len()`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = self.index(pos);
        debug_assert!(index < self.cap);
        // SAFETY: `index` is the low bits of a position, always `< cap ==
        // buffer.len()` by construction of positions (`next` wraps at `cap`).
        unsafe { self.buffer.get_unchecked(index) }
    }

    // ----- claiming ----------------------------------------------------------

    /// Claims up to `want` (>= 1) consecutive positions for writing.
    ///
    /// With `force`, a full queue is made room in by claiming the oldest item:
    /// the result is then `Err(Ok(pos))`, with `pos` the tail position whose
    /// slot still holds the displaced value and now belongs to the caller.
    #[inline(always)]
    fn claim_push(&self, want: usize, force: bool) -> Result<Run, Result<usize, NoRun>> {
        let backoff = Backoff::new();
        let mut raw = self.tail.load(Ordering::Relaxed);
        loop {
            // Count the run of slots, from `tail` to at most the end of
            // this lap, that are empty for their position (`tail + k`). A
            // closed `tail` carries the mark bit, which no stamp does, so it
            // finds no run and `push_stalled` reports the close.
            let tail = self.unflagged(raw);
            let index = self.index(tail);
            let max = want.min(self.cap - index);
            // Acquire (in `run_len`): pairs with the consumer's Release
            // store of `pos + one_lap` in `take_slot` or `release_run`, so
            // its read of the old value happens before our write.
            let mut len = self.run_len(index, max, tail);
            if len < max {
                // The slots whose stamps still hold the previous lap's
                // values may have been released through `done`. (While
                // consumers pop single items, `done` stays behind and this
                // adds nothing.) A stale `tail` may count slots another
                // producer has claimed since; the CAS below rejects it.
                len = len.max(self.released(tail).min(max));
            }
            if len > 0 {
                let end = self.after_run(tail, len);
                // SeqCst: part of the total order with the index loads in the
                // full/empty checks (wait.rs). On x86 and ARMv8 this is the
                // same instruction as AcqRel. The new value has no
                // `wait_bit`: if `raw` had it, waking the sleepers is ours.
                match self
                    .tail
                    .compare_exchange_weak(raw, end, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        return Ok(Run {
                            start: tail,
                            index,
                            len,
                            woke: raw != tail,
                        })
                    }
                    Err(t) => {
                        raw = t;
                        backoff.spin();
                        continue;
                    }
                }
            }
            let stamp = self.slot(tail).stamp.load(Ordering::Acquire);
            if let Some(stop) = self.push_stalled(tail, stamp, force, &backoff) {
                return Err(stop);
            }
            raw = self.tail.load(Ordering::Relaxed);
        }
    }

    /// Claims one position for writing: [`claim_push`](Self::claim_push)
    /// with `want == 1`, written out. Returns the claimed position, its slot
    /// and whether the claim cleared `tail`'s `wait_bit` (see [`Run::woke`]).
    /// Out of line: [`try_push`](Self::try_push) inlines a single attempt
    /// and calls this only when that attempt fails.
    #[cold]
    #[inline(never)]
    fn claim_push_one(&self, force: bool) -> Result<(usize, &Slot<T>, bool), Result<usize, NoRun>> {
        let backoff = Backoff::new();
        let mut raw = self.tail.load(Ordering::Relaxed);
        loop {
            // Acquire: as in `claim_push`. A closed `tail` carries the mark
            // bit, which no stamp does (and `released` gives 0 for it), so
            // it falls through to `push_stalled`.
            let tail = self.unflagged(raw);
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail || self.released(tail) > 0 {
                // SeqCst: as in `claim_push`, which also says why the new
                // value has no `wait_bit`.
                match self.tail.compare_exchange_weak(
                    raw,
                    self.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok((tail, slot, raw != tail)),
                    Err(t) => {
                        raw = t;
                        backoff.spin();
                        continue;
                    }
                }
            }
            if let Some(stop) = self.push_stalled(tail, stamp, force, &backoff) {
                return Err(stop);
            }
            raw = self.tail.load(Ordering::Relaxed);
        }
    }

    /// The slow path of a push claim: the slot at `tail` (whose stamp was
    /// `stamp`) is not free for `tail`. Returns what the claim should report
    /// (closed; full; with `force`, the displaced position), or `None` after
    /// backing off, to retry with a fresh `tail`.
    #[cold]
    fn push_stalled(
        &self,
        tail: usize,
        stamp: usize,
        force: bool,
        backoff: &Backoff,
    ) -> Option<Result<usize, NoRun>> {
        if tail & self.mark_bit != 0 {
            return Some(Err(NoRun::Closed));
        }
        if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
            // The slot still holds the previous lap's value: full, unless
            // head moved since. SeqCst fence: pairs with the SeqCst CAS on
            // `head` in `claim_pop`, so a stale `head` cannot make us report
            // full after a pop that completed before this check.
            fence(Ordering::SeqCst);
            let head = self.head.load(Ordering::Relaxed);
            if self.unflagged(head).wrapping_add(self.one_lap) == tail {
                if !force {
                    return Some(Err(NoRun::Blocked));
                }
                if let Some(pos) = self.displace_oldest(head, tail) {
                    return Some(Ok(pos));
                }
            }
            backoff.spin();
        } else {
            // Our `tail` is stale, or a consumer of the previous lap has
            // claimed the slot but not finished reading it.
            backoff.snooze();
        }
        None
    }

    /// `force_push` on a full queue: take the oldest item's position away from
    /// consumers, then advance `tail` past it. Returns the position whose slot
    /// (still holding the oldest value) now belongs to the caller. `head` is
    /// the value read from `head`, flags and all.
    #[cold]
    fn displace_oldest(&self, head: usize, tail: usize) -> Option<usize> {
        // The queue stays full, so producers parked for room stay parked:
        // keep `head`'s `wait_bit` for the pop that makes room.
        let new_head = self.next(self.unflagged(head)) | (head & self.wait_bit);
        // SeqCst: as for every index CAS (see `claim_push`).
        if self
            .head
            .compare_exchange(head, new_head, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return None; // a consumer took it first: there is room now
        }
        // While head is one position ahead of a full queue's tail, no producer
        // can claim (they see the slot full and head moved, so they wait) and
        // no consumer can reach this slot. The other writers of `tail` are
        // `close`, which sets the mark bit, and consumers about to park,
        // which set the `wait_bit`: keep both (`force_push` then wakes
        // through `Waiters::notify`, which does not need the flag).
        let new_tail = self.next(tail);
        let mut cur = tail;
        loop {
            let mark = cur & (self.mark_bit | self.wait_bit);
            // SeqCst: as for every index CAS.
            match self.tail.compare_exchange(
                cur,
                new_tail | mark,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(tail),
                Err(actual) => {
                    debug_assert_eq!(self.position(actual), tail);
                    cur = actual;
                }
            }
        }
    }

    /// Claims up to `want` (>= 1) consecutive positions for reading.
    #[inline(always)]
    fn claim_pop(&self, want: usize) -> Result<Run, NoRun> {
        let backoff = Backoff::new();
        let mut raw = self.head.load(Ordering::Relaxed);
        loop {
            let head = self.unflagged(raw);
            // The run of slots, from `head` to at most the end of this lap,
            // that hold the value for their position (stamp `head + k + 1`).
            let index = self.index(head);
            let max = want.min(self.cap - index);
            // Acquire (in `run_len`): pairs with the producer's Release
            // store of `pos + 1` in `write_slot`, making its write visible.
            let len = self.run_len(index, max, head.wrapping_add(1));
            if len > 0 {
                let end = self.after_run(head, len);
                // SeqCst, and no `wait_bit` in the new value: see
                // `claim_push`.
                match self
                    .head
                    .compare_exchange_weak(raw, end, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        return Ok(Run {
                            start: head,
                            index,
                            len,
                            woke: raw != head,
                        })
                    }
                    Err(h) => {
                        raw = h;
                        backoff.spin();
                        continue;
                    }
                }
            }
            let stamp = self.slot(head).stamp.load(Ordering::Acquire);
            if let Some(stop) = self.pop_stalled(head, stamp, &backoff) {
                return Err(stop);
            }
            raw = self.head.load(Ordering::Relaxed);
        }
    }

    /// Claims one position for reading: [`claim_pop`](Self::claim_pop) with
    /// `want == 1`, written out; the counterpart of
    /// [`claim_push_one`](Self::claim_push_one), called when
    /// [`try_pop`](Self::try_pop)'s inlined attempt fails.
    #[cold]
    #[inline(never)]
    fn claim_pop_one(&self) -> Result<(usize, &Slot<T>, bool), NoRun> {
        let backoff = Backoff::new();
        let mut raw = self.head.load(Ordering::Relaxed);
        loop {
            // Acquire: as in `claim_pop`.
            let head = self.unflagged(raw);
            let slot = self.slot(head);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                // SeqCst, and no `wait_bit` in the new value: see
                // `claim_push`.
                match self.head.compare_exchange_weak(
                    raw,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok((head, slot, raw != head)),
                    Err(h) => {
                        raw = h;
                        backoff.spin();
                        continue;
                    }
                }
            }
            if let Some(stop) = self.pop_stalled(head, stamp, &backoff) {
                return Err(stop);
            }
            raw = self.head.load(Ordering::Relaxed);
        }
    }

    /// The slow path of a pop claim: the slot at `head` (whose stamp was
    /// `stamp`) holds no value for `head`. Returns why the claim fails (empty;
    /// closed and drained), or `None` after backing off, to retry.
    #[cold]
    fn pop_stalled(&self, head: usize, stamp: usize, backoff: &Backoff) -> Option<NoRun> {
        if stamp == head || stamp == head.wrapping_add(1).wrapping_sub(self.one_lap) {
            // Not written for this lap (freed per slot, or still the
            // previous lap's stamp: released through `done`, or its consumer
            // is still reading it): empty, unless tail moved. SeqCst
            // fence: pairs with the SeqCst CAS on `tail` in `claim_push`.
            fence(Ordering::SeqCst);
            let tail = self.tail.load(Ordering::Relaxed);
            if self.position(tail) == head {
                return Some(if tail & self.mark_bit != 0 {
                    NoRun::Closed
                } else {
                    NoRun::Blocked
                });
            }
            // A producer claimed the slot and is writing it.
            backoff.spin();
        } else {
            // Our `head` is stale.
            backoff.snooze();
        }
        None
    }

    /// Writes `value` into `slot`, the slot of the claimed position `pos`,
    /// and publishes it.
    #[inline(always)]
    fn write_slot(slot: &Slot<T>, pos: usize, value: T) {
        // SAFETY: we own position `pos` (claimed by CAS); its slot is empty
        // (stamp was `pos`), so nobody else reads or writes the value now.
        slot.value
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        // Release: pairs with the Acquire stamp load in `claim_pop`.
        slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
    }

    /// Reads the value out of `slot`, the slot of the claimed position `pos`,
    /// and frees the slot for the next lap.
    #[inline(always)]
    fn take_slot(&self, slot: &Slot<T>, pos: usize) -> T {
        let value = Self::read_out(slot);
        // Release: pairs with the Acquire stamp load in `claim_push` of the
        // next lap's producer (and in `sweep`).
        slot.stamp
            .store(pos.wrapping_add(self.one_lap), Ordering::Release);
        value
    }

    /// Reads the value out of `slot`, the slot of a claimed position the
    /// caller owns, without freeing the slot: [`take_slot`](Self::take_slot)
    /// or [`release_run`](Self::release_run) does that after the read.
    #[inline(always)]
    fn read_out(slot: &Slot<T>) -> T {
        // SAFETY: we own the slot's claimed position (claimed by CAS); its
        // stamp was `pos + 1`, so the value is initialised and ours to move
        // out. The caller releases the position only after this read.
        slot.value.with(|p| unsafe { p.read().assume_init() })
    }

    // ----- single-item operations --------------------------------------------

    /// Pushes `value` if there is room, without waiting.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] if the queue is full, [`PushError::Closed`] if it
    /// is closed; both hand `value` back.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::{PushError, Queue};
    ///
    /// let q = Queue::new(1);
    /// assert_eq!(q.try_push(10), Ok(()));
    /// assert_eq!(q.try_push(20), Err(PushError::Full(20)));
    /// q.close();
    /// assert_eq!(q.try_push(30), Err(PushError::Closed(30)));
    /// ```
    #[inline(always)]
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        // One attempt, inlined: a load of `tail`, the slot's stamp, a compare
        // and a CAS. Anything else (a lost race, full, closed, consumers
        // parked) is the out-of-line `try_push_slow`, so the caller's loop
        // carries no backoff state or spilled registers for it.
        // Relaxed: only picks the slot; the stamp load synchronises.
        let tail = self.tail.load(Ordering::Relaxed);
        let index = self.index(tail);
        let slot = self.slot_at(index);
        // Acquire: as in `claim_push`. A closed `tail` carries the mark bit,
        // and one with consumers parked the `wait_bit`; no stamp carries
        // either, so both take the slow path. That is how a push that
        // succeeds here knows, without another load, that nobody sleeps.
        // A slot freed through `done` (consumers popping runs) keeps the
        // previous lap's stamp: `released` says it is free, for a `tail`
        // without flags only (`released` itself refuses the mark bit).
        if (slot.stamp.load(Ordering::Acquire) == tail
            || (tail & self.wait_bit == 0 && self.released(tail) > 0))
            // SeqCst: as in `claim_push`.
            && self
                .tail
                .compare_exchange_weak(
                    tail,
                    self.next_at(tail, index),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Self::write_slot(slot, tail, value);
            return Ok(());
        }
        self.try_push_slow(value)
    }

    /// [`try_push`](Self::try_push) after its first attempt failed.
    #[cold]
    #[inline(never)]
    fn try_push_slow(&self, value: T) -> Result<(), PushError<T>> {
        match self.claim_push_one(false) {
            Ok((pos, slot, woke)) => {
                Self::write_slot(slot, pos, value);
                if woke {
                    self.not_empty.wake_all();
                }
                Ok(())
            }
            Err(Err(NoRun::Closed)) => Err(PushError::Closed(value)),
            Err(_) => Err(PushError::Full(value)),
        }
    }

    /// Pops the oldest item, without waiting.
    ///
    /// # Errors
    ///
    /// [`PopError::Empty`] if there is no item, [`PopError::Closed`] if the
    /// queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::{PopError, Queue};
    ///
    /// let q = Queue::new(4);
    /// assert_eq!(q.try_pop(), Err(PopError::Empty));
    /// q.try_push('a').unwrap();
    /// q.close();
    /// assert_eq!(q.try_pop(), Ok('a'));
    /// assert_eq!(q.try_pop(), Err(PopError::Closed));
    /// ```
    #[inline(always)]
    pub fn try_pop(&self) -> Result<T, PopError> {
        // One inlined attempt, as in `try_push`.
        // Relaxed: only picks the slot; the stamp load synchronises.
        let head = self.head.load(Ordering::Relaxed);
        let index = self.index(head);
        let slot = self.slot_at(index);
        // Acquire: as in `claim_pop`. A `head` with producers parked carries
        // the `wait_bit`, which no stamp does: slow path, as in `try_push`.
        if slot.stamp.load(Ordering::Acquire) == head.wrapping_add(1)
            // SeqCst: see `claim_push`.
            && self
                .head
                .compare_exchange_weak(
                    head,
                    self.next_at(head, index),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Ok(self.take_slot(slot, head));
        }
        self.try_pop_slow()
    }

    /// [`try_pop`](Self::try_pop) after its first attempt failed.
    #[cold]
    #[inline(never)]
    fn try_pop_slow(&self) -> Result<T, PopError> {
        match self.claim_pop_one() {
            Ok((pos, slot, woke)) => {
                let value = self.take_slot(slot, pos);
                if woke {
                    self.not_full.wake_all();
                }
                Ok(value)
            }
            Err(NoRun::Closed) => Err(PopError::Closed),
            Err(NoRun::Blocked) => Err(PopError::Empty),
        }
    }

    /// Pushes `value`, overwriting the oldest item if the queue is full (lossy
    /// telemetry mode). Returns the displaced item, if any.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] (handing `value` back) if the queue is closed;
    /// never [`PushError::Full`].
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(2);
    /// assert_eq!(q.force_push(1), Ok(None));
    /// assert_eq!(q.force_push(2), Ok(None));
    /// assert_eq!(q.force_push(3), Ok(Some(1))); // 1 was the oldest
    /// assert_eq!(q.try_pop(), Ok(2));
    /// assert_eq!(q.try_pop(), Ok(3));
    /// ```
    pub fn force_push(&self, value: T) -> Result<Option<T>, PushError<T>> {
        match self.claim_push_one(true) {
            Ok((pos, slot, woke)) => {
                Self::write_slot(slot, pos, value);
                if woke {
                    self.not_empty.wake_all();
                }
                Ok(None)
            }
            Err(Ok(pos)) => {
                let slot = self.slot(pos);
                // SAFETY: `displace_oldest` gave us position `pos`; its slot
                // holds the initialised value of the previous lap, which no
                // consumer can reach any more (head moved past it).
                let old = slot
                    .value
                    .with_mut(|p| unsafe { p.replace(MaybeUninit::new(value)).assume_init() });
                // Release: pairs with the Acquire stamp load in `claim_pop`.
                slot.stamp.store(pos.wrapping_add(1), Ordering::Release);
                // `displace_oldest` kept `tail`'s `wait_bit`, so this wakes
                // by the count (see `Waiters::notify`).
                self.not_empty.notify();
                Ok(Some(old))
            }
            Err(Err(_)) => Err(PushError::Closed(value)),
        }
    }

    // ----- close and observers -----------------------------------------------

    /// Closes the queue: later pushes fail with the value handed back,
    /// consumers drain what is left and then get [`PopError::Closed`], and
    /// every blocked waiter wakes. Returns `true` if this call closed it,
    /// `false` if it was already closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::<u8>::new(1);
    /// assert!(q.close());
    /// assert!(!q.close());
    /// assert!(q.is_closed());
    /// ```
    pub fn close(&self) -> bool {
        // SeqCst: a read-modify-write of `tail`, before the loads of the
        // waiter counts in `notify` (the protocol in wait.rs). It keeps the
        // `wait_bit`: the wake-ups below do not need it.
        let prev = self.tail.fetch_or(self.mark_bit, Ordering::SeqCst);
        self.not_empty.notify();
        self.not_full.notify();
        prev & self.mark_bit == 0
    }

    /// `true` once [`close`](Self::close) has been called.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::<u8>::new(1);
    /// assert!(!q.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        // SeqCst: reads the mark bit in the same order as the close's fetch_or.
        self.tail.load(Ordering::SeqCst) & self.mark_bit != 0
    }

    /// The number of items in the queue. While other threads push and pop,
    /// this is a snapshot: exact at one instant during the call.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(4);
    /// q.try_push(1).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        loop {
            // SeqCst: head and tail read at one consistent instant (tail is
            // re-read to confirm it did not move while head was read).
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                let (head, tail) = (self.position(head), self.position(tail));
                let hix = self.index(head);
                let tix = self.index(tail);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.cap
                };
            }
        }
    }

    /// `true` if the queue holds no item (a snapshot, like [`len`](Self::len)).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::Queue::<u8>::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        // SeqCst: same instant reasoning as `len`.
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        self.position(tail) == self.position(head)
    }

    /// `true` if the queue holds `capacity()` items (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(1);
    /// q.try_push(0).unwrap();
    /// assert!(q.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        // SeqCst: same instant reasoning as `len`.
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        self.position(head).wrapping_add(self.one_lap) == self.position(tail)
    }

    /// The most items the queue holds.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringstat::Queue::<u8>::new(5).capacity(), 5);
    /// ```
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

impl<T> Queue<T> {
    /// Calls `f` on every item in the queue, oldest first, without removing
    /// any: for a caller that must see what the queue holds, such as Python's
    /// garbage collector visiting references.
    ///
    /// # Safety
    ///
    /// No other thread may be inside any method of this queue during the
    /// call, and every earlier operation must happen-before it (the caller's
    /// own lock, such as the GIL held around every access, provides that).
    #[doc(hidden)]
    pub unsafe fn for_each_quiescent(&self, mut f: impl FnMut(&T)) {
        // Quiescent: as in `Drop`, exactly the positions head..tail hold
        // initialised values.
        let len = self.len();
        // Relaxed: the caller's synchronisation orders us after every push.
        let mut pos = self.position(self.head.load(Ordering::Relaxed));
        for _ in 0..len {
            let slot = self.slot(pos);
            // SAFETY: position `pos` lies in head..tail, so its slot holds an
            // initialised value, and by the caller's contract nobody moves it
            // out while we read it.
            slot.value.with(|p| f(unsafe { (*p).assume_init_ref() }));
            pos = self.next(pos);
        }
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: no other thread can touch the queue; every claimed
        // position has been released, so exactly the positions head..tail
        // hold initialised values.
        let len = self.len();
        // Relaxed: `&mut self` already synchronises with every other thread.
        let mut pos = self.position(self.head.load(Ordering::Relaxed));
        for _ in 0..len {
            let slot = self.slot(pos);
            // SAFETY: position `pos` lies in head..tail, so its slot holds an
            // initialised value that nobody else owns; it is dropped once.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            pos = self.next(pos);
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .field("closed", &self.is_closed())
            .finish()
    }
}
