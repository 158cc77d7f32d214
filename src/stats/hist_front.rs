//! The storage of a [`Histogram`](super::Histogram): one shared set of
//! cells that any thread adds to with read-modify-writes, and per-thread
//! fronts that only their owner writes, with plain loads and stores, so the
//! common `record` takes no locked instruction. Readers sum them all.

use core::ops::Deref;

use super::store::Store;
use super::{saturating_add, COUNT_SATURATION};
use crate::sync::{thread_index, thread_index_if_known, AtomicPtr, AtomicU64, Ordering};

/// Words of a [`Cells`] store before the bucket counts: min, max, rejected.
pub(crate) const CELLS_HEAD: usize = 3;

/// Bucket counts with the smallest and largest value counted in them, in one
/// [`Store`] (on the heap, or in a shared region):
/// `[min, max, rejected, count 0, count 1, ...]`.
///
/// - min: smallest value counted; `u64::MAX` while empty. Only decreases.
/// - max: largest value counted; 0 while empty. Only increases.
/// - rejected: values refused by the histogram (used in its shared cells
///   only; a front leaves it at 0).
///
/// `W` holds the words: a [`Store`] for the shared cells, a borrowed slice
/// for a front.
pub(crate) struct Cells<W = Store<AtomicU64>> {
    /// `CELLS_HEAD` words, then one count per bucket.
    words: W,
}

impl Cells {
    /// Empty cells for `len` buckets on the heap.
    pub(crate) fn new(len: usize) -> Self {
        Self::from_store(Store::heap(CELLS_HEAD + len, |i| {
            AtomicU64::new(Self::empty_word(i))
        }))
    }

    /// Cells over `words` as they are (`CELLS_HEAD` words, then the counts).
    pub(crate) fn from_store(words: Store<AtomicU64>) -> Self {
        assert!(words.len() >= CELLS_HEAD, "cells start with three words");
        Self { words }
    }

    /// The words of empty cells: what a new store must hold.
    pub(crate) fn empty_word(i: usize) -> u64 {
        if i == 0 {
            u64::MAX
        } else {
            0
        }
    }
}

impl<W: Deref<Target = [AtomicU64]>> Cells<W> {
    /// One count per bucket.
    #[inline(always)]
    pub(crate) fn counts(&self) -> &[AtomicU64] {
        // SAFETY: every `Cells` has `CELLS_HEAD` words or more (`from_store`
        // checks; a front has `CELLS_HEAD + buckets`).
        unsafe { self.words.get_unchecked(CELLS_HEAD..) }
    }

    /// Smallest value counted.
    #[inline(always)]
    pub(crate) fn min(&self) -> &AtomicU64 {
        // SAFETY: every `Cells` has `CELLS_HEAD` words or more (`from_store`
        // checks; a front has `CELLS_HEAD + buckets`).
        unsafe { self.words.get_unchecked(0) }
    }

    /// Largest value counted.
    #[inline(always)]
    pub(crate) fn max(&self) -> &AtomicU64 {
        // SAFETY: every `Cells` has `CELLS_HEAD` words or more (`from_store`
        // checks; a front has `CELLS_HEAD + buckets`).
        unsafe { self.words.get_unchecked(1) }
    }

    /// Values the histogram refused.
    #[inline(always)]
    pub(crate) fn rejected(&self) -> &AtomicU64 {
        // SAFETY: every `Cells` has `CELLS_HEAD` words or more (`from_store`
        // checks; a front has `CELLS_HEAD + buckets`).
        unsafe { self.words.get_unchecked(2) }
    }

    /// Adds `n` values `v` to bucket `i`; any thread may call it.
    #[inline]
    pub(crate) fn add_shared(&self, i: usize, v: u64, n: u64) {
        // Relaxed loads: min only falls and max only rises, so a value that
        // is not a new extreme against a loaded value never will be.
        if v < self.min().load(Ordering::Relaxed) {
            self.min().fetch_min(v, Ordering::Relaxed);
        }
        if v > self.max().load(Ordering::Relaxed) {
            self.max().fetch_max(v, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire loads in `add_counts_to`, so a
        // reader that counts this value also sees the min/max above.
        saturating_add(&self.counts()[i], n, Ordering::Release);
    }

    /// As `add_shared`, for the one thread that writes these cells: plain
    /// loads and stores instead of read-modify-writes.
    ///
    /// # Safety
    ///
    /// `i < self.counts.len()`.
    #[inline]
    unsafe fn add_owned(&self, i: usize, v: u64, n: u64) {
        // Relaxed: this thread is the only writer, so its own loads are
        // current; readers pick the stores up through the Release below.
        if v < self.min().load(Ordering::Relaxed) {
            self.min().store(v, Ordering::Relaxed);
        }
        if v > self.max().load(Ordering::Relaxed) {
            self.max().store(v, Ordering::Relaxed);
        }
        // SAFETY: `i` is in range (this function's contract).
        let cell = unsafe { self.counts().get_unchecked(i) };
        // The only writer keeps the cell at or below the saturation point.
        let c = cell.load(Ordering::Relaxed);
        // `c <= COUNT_SATURATION`, so a small `n` cannot wrap: a plain add
        // (folded for `record`'s constant 1) instead of a saturating one.
        let sum = if n <= u64::MAX - COUNT_SATURATION {
            c + n
        } else {
            c.saturating_add(n)
        };
        // Release: pairs with the Acquire loads in `add_counts_to`, as in
        // `add_shared`.
        cell.store(sum.min(COUNT_SATURATION), Ordering::Release);
    }

    /// Adds these counts into `out`, each bucket stopping at
    /// `COUNT_SATURATION` as one cell would.
    pub(crate) fn add_counts_to(&self, out: &mut [u64]) {
        for (o, c) in out.iter_mut().zip(self.counts().iter()) {
            // Acquire: pairs with the Release count updates above: the
            // min/max of every value counted here are visible to the
            // caller's later loads of `min`/`max`.
            *o = o
                .saturating_add(c.load(Ordering::Acquire))
                .min(COUNT_SATURATION);
        }
    }
}

/// The per-thread fronts: slot `k` belongs to the thread whose
/// `thread_index()` is `k`; threads with an index past the last slot use the
/// shared cells. A slot's cells are allocated on its owner's first record.
///
/// An index passes to a new thread only after its old thread exited, ordered
/// by `thread_index`'s free list, so each front has one writer at a time.
pub(crate) struct Fronts {
    /// Null until claimed; then the first of `CELLS_HEAD + buckets` words of
    /// a leaked `Box<[AtomicU64]>` that lives until `drop`. Pointing at the
    /// words themselves saves `add` a dependent load.
    slots: Box<[AtomicPtr<AtomicU64>]>,
    /// Buckets per front.
    buckets: usize,
}

impl Fronts {
    /// `slots` fronts of `buckets` buckets each.
    pub(crate) fn new(slots: usize, buckets: usize) -> Self {
        Self {
            slots: (0..slots)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect(),
            buckets,
        }
    }

    /// No fronts: `add` always returns `false`, so every record goes to the
    /// shared cells.
    pub(crate) fn disabled() -> Self {
        Self::new(0, 0)
    }

    /// The number of slots.
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The cells a claimed slot points to.
    ///
    /// # Safety
    ///
    /// `p` was loaded (Acquire) from one of `self.slots` and is not null.
    #[inline(always)]
    unsafe fn cells(&self, p: *mut AtomicU64) -> Cells<&[AtomicU64]> {
        // SAFETY: a non-null slot points to `CELLS_HEAD + buckets` words
        // (published by `add_slow`, freed only in `drop`, which needs
        // `&mut self`, so they outlive `&self`).
        let words = unsafe { core::slice::from_raw_parts(p, CELLS_HEAD + self.buckets) };
        Cells { words }
    }

    /// Records `n` values `v` into bucket `i` of the calling thread's front
    /// and returns `true`, or returns `false` (recording nothing) when the
    /// thread has no slot.
    ///
    /// # Safety
    ///
    /// `i` is below the `buckets` given to [`Fronts::new`].
    #[inline]
    pub(crate) unsafe fn add(&self, i: usize, v: u64, n: u64) -> bool {
        // `usize::MAX` before the thread's first index, which fails the
        // bounds check too: one compare for both.
        let me = thread_index_if_known();
        let Some(slot) = self.slots.get(me) else {
            // SAFETY: forwarded from this function's contract.
            return unsafe { self.add_slow(i, v, n) };
        };
        // Acquire: pairs with the Release store in `add_slow`: the words are
        // initialised before we read them.
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            // SAFETY: forwarded from this function's contract.
            return unsafe { self.add_slow(i, v, n) };
        }
        // SAFETY: `p` is a non-null slot loaded above; `i < buckets`.
        unsafe { self.cells(p).add_owned(i, v, n) };
        true
    }

    /// `add` for a thread with no index yet or no front yet.
    ///
    /// # Safety
    ///
    /// As [`Fronts::add`].
    #[cold]
    unsafe fn add_slow(&self, i: usize, v: u64, n: u64) -> bool {
        let me = thread_index();
        let Some(slot) = self.slots.get(me) else {
            return false;
        };
        // Acquire: as in `add` (this thread may have taken over an index
        // whose old thread claimed the front).
        let mut p = slot.load(Ordering::Acquire);
        if p.is_null() {
            let words: Box<[AtomicU64]> = (0..CELLS_HEAD + self.buckets)
                .map(|k| AtomicU64::new(Cells::empty_word(k)))
                .collect();
            p = Box::into_raw(words).cast::<AtomicU64>();
            // Release: pairs with the Acquire loads of the slot in `add` and
            // `for_each`, publishing the initialised words. A plain store:
            // only this slot's owner writes it.
            slot.store(p, Ordering::Release);
        }
        // SAFETY: `p` is non-null and published; `i < buckets`.
        unsafe { self.cells(p).add_owned(i, v, n) };
        true
    }

    /// Calls `f` with the cells of every claimed front.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Cells<&[AtomicU64]>)) {
        for slot in self.slots.iter() {
            // Acquire: as in `add`.
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: non-null, loaded with Acquire from a slot.
                f(&unsafe { self.cells(p) });
            }
        }
    }
}

impl Drop for Fronts {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            // Relaxed: `&mut self` means no other thread holds the fronts;
            // whatever ended their access already synchronised with us.
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                let words = core::ptr::slice_from_raw_parts_mut(p, CELLS_HEAD + self.buckets);
                // SAFETY: `words` came from `Box::into_raw` in `add_slow`
                // with this length and is freed only here, once.
                drop(unsafe { Box::from_raw(words) });
            }
        }
    }
}
