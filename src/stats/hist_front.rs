//! The storage of a [`Histogram`](super::Histogram): one shared set of
//! cells that any thread adds to with read-modify-writes, and per-thread
//! fronts that only their owner writes, with plain loads and stores, so the
//! common `record` takes no locked instruction. Readers sum them all.

use super::store::Store;
use super::{saturating_add, COUNT_SATURATION};
use crate::sync::{thread_index, AtomicPtr, AtomicU64, Ordering};

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
pub(crate) struct Cells {
    /// `CELLS_HEAD` words, then one count per bucket.
    words: Store<AtomicU64>,
}

impl Cells {
    /// Empty cells for `len` buckets on the heap.
    pub(crate) fn new(len: usize) -> Self {
        Self::from_store(Store::heap(CELLS_HEAD + len, |i| {
            AtomicU64::new(if i == 0 { u64::MAX } else { 0 })
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

    /// One count per bucket.
    #[inline(always)]
    pub(crate) fn counts(&self) -> &[AtomicU64] {
        // SAFETY: `from_store` checked `len >= CELLS_HEAD`.
        unsafe { self.words.get_unchecked(CELLS_HEAD..) }
    }

    /// Smallest value counted.
    #[inline(always)]
    pub(crate) fn min(&self) -> &AtomicU64 {
        // SAFETY: `from_store` checked `len >= CELLS_HEAD`.
        unsafe { self.words.get_unchecked(0) }
    }

    /// Largest value counted.
    #[inline(always)]
    pub(crate) fn max(&self) -> &AtomicU64 {
        // SAFETY: `from_store` checked `len >= CELLS_HEAD`.
        unsafe { self.words.get_unchecked(1) }
    }

    /// Values the histogram refused.
    #[inline(always)]
    pub(crate) fn rejected(&self) -> &AtomicU64 {
        // SAFETY: `from_store` checked `len >= CELLS_HEAD`.
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
        // Release: pairs with the Acquire loads in `add_counts_to`, as in
        // `add_shared`.
        cell.store(c.saturating_add(n).min(COUNT_SATURATION), Ordering::Release);
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

/// One thread's cells: written only by the thread whose index is `owner`.
struct Front {
    /// The `thread_index()` of the only thread that writes `cells`. An index
    /// passes to a new thread only after its thread exited, ordered by
    /// `thread_index`'s free list: one writer at a time.
    owner: usize,
    cells: Cells,
}

/// The per-thread fronts: slot `thread_index() & mask` belongs to the first
/// thread that records through it; the others in that slot use the shared
/// cells. A slot's front is allocated on its owner's first record.
pub(crate) struct Fronts {
    /// Null until claimed; then a `Box<Front>` that lives until `drop`.
    slots: Box<[AtomicPtr<Front>]>,
    /// `slots.len() - 1`; `slots.len()` is a power of two.
    mask: usize,
    /// Buckets per front.
    buckets: usize,
}

impl Fronts {
    /// `slots` fronts (a power of two, at least 1) of `buckets` buckets each.
    pub(crate) fn new(slots: usize, buckets: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        Self {
            slots: (0..slots)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect(),
            mask: slots - 1,
            buckets,
        }
    }

    /// The number of slots (a power of two).
    /// No fronts: `add` always returns `false`, so every record goes to
    /// the shared cells. One slot holding a front owned by no thread keeps
    /// `add` free of an extra branch.
    pub(crate) fn disabled() -> Self {
        let fronts = Self::new(1, 0);
        let nobody = Box::into_raw(Box::new(Front {
            owner: usize::MAX,
            cells: Cells::new(0),
        }));
        // Relaxed: not shared yet; whatever shares `fronts` publishes it.
        fronts.slots[0].store(nobody, Ordering::Relaxed);
        fronts
    }

    pub(crate) fn slots(&self) -> usize {
        // `disabled` is the only one with no buckets.
        if self.buckets == 0 {
            0
        } else {
            self.slots.len()
        }
    }

    /// Records `n` values `v` into bucket `i` of the calling thread's front
    /// and returns `true`, or returns `false` (recording nothing) when its
    /// slot belongs to another thread.
    ///
    /// # Safety
    ///
    /// `i` is below the `buckets` given to [`Fronts::new`].
    #[inline]
    pub(crate) unsafe fn add(&self, i: usize, v: u64, n: u64) -> bool {
        let me = thread_index();
        // SAFETY: `mask = slots.len() - 1`, so the index is in range.
        let slot = unsafe { self.slots.get_unchecked(me & self.mask) };
        // Acquire: pairs with the Release of the claiming CAS in `claim`:
        // the front's fields are initialised before we read them.
        let p = slot.load(Ordering::Acquire);
        if p.is_null() {
            // SAFETY: forwarded from this function's contract.
            return unsafe { self.claim(me, i, v, n) };
        }
        // SAFETY: a non-null slot points to a live `Front` (published by
        // `claim`, freed only in `drop`, which needs `&mut self`).
        let front = unsafe { &*p };
        if front.owner != me {
            return false;
        }
        // SAFETY: the front has `buckets` cells and `i < buckets`.
        unsafe { front.cells.add_owned(i, v, n) };
        true
    }

    /// # Safety
    ///
    /// As [`Fronts::add`].
    #[cold]
    unsafe fn claim(&self, me: usize, i: usize, v: u64, n: u64) -> bool {
        let slot = &self.slots[me & self.mask];
        let new = Box::into_raw(Box::new(Front {
            owner: me,
            cells: Cells::new(self.buckets),
        }));
        // Release on success: pairs with the Acquire loads of the slot in
        // `add` and `for_each`, publishing the initialised front. Acquire on
        // failure: the winner's front is read below.
        match slot.compare_exchange(
            core::ptr::null_mut(),
            new,
            Ordering::Release,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // SAFETY: just published and never freed before `drop`; it
                // has `buckets` cells and `i < buckets`.
                unsafe { (*new).cells.add_owned(i, v, n) };
                true
            }
            Err(other) => {
                // SAFETY: `new` came from `Box::into_raw` above and was never
                // shared (the CAS failed).
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: as in `add`.
                let front = unsafe { &*other };
                if front.owner != me {
                    return false;
                }
                // SAFETY: as in `add`.
                unsafe { front.cells.add_owned(i, v, n) };
                true
            }
        }
    }

    /// Calls `f` with the cells of every claimed front.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Cells)) {
        for slot in self.slots.iter() {
            // Acquire: as in `add`.
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: as in `add`.
                f(&unsafe { &*p }.cells);
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
                // SAFETY: `p` came from `Box::into_raw` in `claim` and is
                // freed only here, once.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
