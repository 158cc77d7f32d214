//! The release index `done`: a consumer that has read a long run of slots
//! advances `done` past the run instead of writing a freed stamp into every
//! slot, so it only reads the cache lines the producer writes and the producer
//! keeps them; producers count the slots behind `done` as free without reading
//! their stamps. Single pops, short runs, and runs that finish before a run
//! claimed ahead of theirs free per slot, and `sweep` carries `done` past
//! such slots.

use super::{Queue, Run};
use crate::sync::{fence, Ordering};

impl<T> Queue<T> {
    /// The first position of `pos`'s lap.
    #[inline(always)]
    fn lap_of(&self, pos: usize) -> usize {
        pos & !(self.one_lap - 1)
    }

    /// How many positions from `tail` (a position without flags, or a
    /// closed `tail`, which gets 0) to the end of its lap are free because
    /// their previous lap's positions are behind `done`: a producer may
    /// claim them without looking at their stamps.
    #[inline(always)]
    pub(super) fn released(&self, tail: usize) -> usize {
        if tail & self.mark_bit != 0 {
            return 0;
        }
        // Acquire: pairs with the SeqCst (release) CAS that advanced `done`
        // in `release_run` or `sweep`, so the consumers' reads of the
        // previous lap's values happen before our writes.
        let done = self.done.load(Ordering::Acquire);
        // Positions before `free_to` are free for this lap.
        let free_to = done.wrapping_add(self.one_lap);
        if free_to.wrapping_sub(tail) as isize <= 0 {
            0
        } else if self.lap_of(free_to) == self.lap_of(tail) {
            self.index(free_to) - self.index(tail)
        } else {
            self.cap - self.index(tail)
        }
    }

    /// Frees the slots of `run`, a run of positions claimed by `claim_pop`
    /// whose values the caller has read out: in one store to `done` if every
    /// position before the run is released already, else slot by slot.
    ///
    /// Through `done`, the consumer only reads the run's cache lines and the
    /// producer keeps them; a freed stamp per slot would move every line to
    /// the consumer and back each lap. A short run (under a quarter of the
    /// ring, at most 16 slots) is freed per slot, as a single pop is: it
    /// writes few lines, while moving `done` costs a CAS and a fence, and
    /// sends a producer of single items to its out-of-line attempt (the
    /// inlined one only accepts a freed stamp).
    #[inline]
    pub(super) fn release_run(&self, run: &Run) {
        if run.len < (self.cap / 4).clamp(1, 16) {
            self.free_per_slot(run);
            return;
        }
        let end = self.after_run(run.start, run.len);
        // SeqCst (a release): pairs with the Acquire load of `done` in
        // `released`, so our reads of the run's values happen before the
        // next lap's writes; and it is in the total order with the fences
        // below (see the per-slot branch).
        if self
            .done
            .compare_exchange(run.start, end, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            // Runs claimed after ours may have finished first and freed
            // their slots per slot (below); they cannot advance `done` past
            // ours, so we carry it past theirs. With no run claimed after
            // ours (one consumer), there is nothing to look for.
            // SeqCst fence: with the one in the other branch, either that
            // consumer's `done` load sees our CAS, or our loads (of `head`,
            // then of its stamps) see its claim and its freed stamps.
            fence(Ordering::SeqCst);
            if self.position(self.head.load(Ordering::Relaxed)) != end {
                self.sweep();
            }
            return;
        }
        // A run before ours is still being read (or was freed per slot and
        // not swept yet): free ours per slot.
        self.free_per_slot(run);
        // SeqCst fence: see above. Then carry `done` past whatever is freed
        // from it on, ours included.
        fence(Ordering::SeqCst);
        self.sweep();
    }

    /// Frees the slots of `run` as [`take_slot`](Self::take_slot) frees one:
    /// a stamp of `pos + one_lap` in each.
    #[inline]
    fn free_per_slot(&self, run: &Run) {
        let freed = run.start.wrapping_add(self.one_lap);
        for (k, slot) in self.buffer[run.index..run.index + run.len]
            .iter()
            .enumerate()
        {
            // Release: pairs with the Acquire stamp load of the next lap's
            // producer (`claim_push`), and of `sweep`.
            slot.stamp.store(freed.wrapping_add(k), Ordering::Release);
        }
    }

    /// Advances `done` over the positions, from `done` on, whose slots were
    /// freed per slot (or rewritten since, by the next lap's producer or by
    /// `force_push`): a slot is free for position `p + one_lap` once its stamp
    /// is at least `p + one_lap`. Stops at the first position still in use
    /// (being read, or not popped yet, or not written yet).
    #[cold]
    #[inline(never)]
    fn sweep(&self) {
        // Relaxed: the CAS below re-checks it.
        let mut done = self.done.load(Ordering::Relaxed);
        // While consumers pop single items, `done` stays where it is and
        // falls any number of laps behind; rather than walk every position
        // since, jump it to a lap behind `tail`. Every position before that
        // is released: a producer has claimed the position a lap after
        // each, which it can only do once that one is released. (`done`
        // then still gives producers no slot at or after `tail`, so this
        // jump frees nothing by itself.) Relaxed `head`: only decides
        // whether to look.
        let head = self.position(self.head.load(Ordering::Relaxed));
        if head.wrapping_sub(done) as isize >= self.one_lap as isize {
            // Acquire: every write of `tail` is a read-modify-write, so this
            // synchronises with every claim before it, and through them
            // with the releases they acquired.
            let floor = self
                .position(self.tail.load(Ordering::Acquire))
                .wrapping_sub(self.one_lap);
            if floor.wrapping_sub(done) as isize > 0 {
                // SeqCst: as below.
                match self
                    .done
                    .compare_exchange(done, floor, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => done = floor,
                    Err(d) => done = d,
                }
            }
        }
        loop {
            let index = self.index(done);
            let mut len = 0;
            while index + len < self.cap {
                // Acquire: pairs with the Release store of a freed stamp in
                // `take_slot` or `release_run` (or of the next lap's stamp by
                // a producer, which itself acquired the slot), so that
                // consumer's read of the value happens before the `done`
                // CAS below, which producers acquire.
                let stamp = self.slot_at(index + len).stamp.load(Ordering::Acquire);
                let pos = done.wrapping_add(len);
                if (stamp.wrapping_sub(pos) as isize) < self.one_lap as isize {
                    break;
                }
                len += 1;
            }
            if len == 0 {
                return;
            }
            let end = self.after_run(done, len);
            // SeqCst: as in `release_run`. A stale `done` fails here: then
            // another consumer moved it, and we go on from where it is.
            match self
                .done
                .compare_exchange(done, end, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => done = end,
                Err(d) => done = d,
            }
        }
    }

    /// How many positions `head` is ahead of the release index `done`: the
    /// popped positions whose slots are not yet known free through `done`
    /// (being read, or freed per slot and not swept yet). For the tests of
    /// the release protocol; not part of the API.
    #[doc(hidden)]
    pub fn debug_release_lag(&self) -> usize {
        // SeqCst: a snapshot, as in `len`.
        let head = self.position(self.head.load(Ordering::SeqCst));
        let mut pos = self.done.load(Ordering::SeqCst);
        let mut lag = 0;
        while pos != head {
            pos = self.next(pos);
            lag += 1;
        }
        lag
    }
}
