//! Batch operations: a run of slots claimed with one atomic operation.

use std::time::{Duration, Instant};

use super::wait::Spinner;
use super::{Closed, NoRun, Queue};

impl<T> Queue<T> {
    /// Moves as many items as there is room for from the front of `items`
    /// into the queue, in order, claiming them with one atomic operation, and
    /// returns how many moved (0 if the queue is full). Items that did not fit
    /// stay in `items`.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed; `items` is then untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(3);
    /// let mut items = vec![1, 2, 3, 4, 5];
    /// assert_eq!(q.try_push_batch(&mut items), Ok(3));
    /// assert_eq!(items, [4, 5]);
    /// assert_eq!(q.try_pop(), Ok(1));
    /// ```
    pub fn try_push_batch(&self, items: &mut Vec<T>) -> Result<usize, Closed> {
        if items.is_empty() {
            return if self.is_closed() { Err(Closed) } else { Ok(0) };
        }
        // A run stops at the end of the ring's lap: a batch that wraps
        // around takes a second claim.
        let mut moved = 0;
        let mut woke = false;
        while !items.is_empty() {
            match self.claim_push(items.len(), false) {
                Ok(run) => {
                    woke |= run.woke;
                    // The run's slots as one slice: its pointer and length
                    // stay in registers for the loop.
                    let slots = &self.buffer[run.index..run.index + run.len];
                    let src = items.as_ptr();
                    for (k, slot) in slots.iter().enumerate() {
                        // SAFETY: `k < run.len <= items.len()`, so this reads
                        // an initialised element; each is read once, and
                        // the `set_len` below forgets the moved ones.
                        let value = unsafe { src.add(k).read() };
                        Self::write_slot(slot, run.start + k, value);
                    }
                    let rest = items.len() - run.len;
                    // SAFETY: the first `run.len` elements were moved out
                    // above (nothing between can panic); shift the `rest`
                    // untouched ones to the front and shorten to them.
                    unsafe {
                        let base = items.as_mut_ptr();
                        core::ptr::copy(base.add(run.len), base, rest);
                        items.set_len(rest);
                    }
                    moved += run.len;
                }
                // Closed after a first run landed: report what moved; the
                // next call reports the close.
                Err(Err(NoRun::Closed)) if moved == 0 => return Err(Closed),
                Err(_) => break,
            }
        }
        if woke {
            self.not_empty.wake_all();
        }
        Ok(moved)
    }

    /// Moves every item of `items` into the queue, in order, waiting for room
    /// as long as it takes; `items` is empty on success.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is or becomes closed; the items not yet moved
    /// stay in `items`.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(8);
    /// let mut items: Vec<u32> = (0..5).collect();
    /// q.push_batch(&mut items).unwrap();
    /// assert!(items.is_empty());
    /// assert_eq!(q.len(), 5);
    /// ```
    pub fn push_batch(&self, items: &mut Vec<T>) -> Result<(), Closed> {
        self.push_batch_until(items, None).map(|_| ())
    }

    /// Moves items from the front of `items` into the queue, waiting for room
    /// at most `timeout`; returns how many moved (all of them unless the
    /// timeout elapsed). Items not moved stay in `items`.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is or becomes closed before all moved.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let q = ringstat::Queue::new(2);
    /// let mut items = vec![1, 2, 3];
    /// assert_eq!(q.push_batch_timeout(&mut items, Duration::from_millis(1)), Ok(2));
    /// assert_eq!(items, [3]);
    /// ```
    pub fn push_batch_timeout(
        &self,
        items: &mut Vec<T>,
        timeout: Duration,
    ) -> Result<usize, Closed> {
        self.push_batch_until(items, Instant::now().checked_add(timeout))
    }

    /// As [`push_batch_timeout`](Self::push_batch_timeout) with a deadline
    /// (`None`: wait forever).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is or becomes closed before all moved.
    pub fn push_batch_until(
        &self,
        items: &mut Vec<T>,
        deadline: Option<Instant>,
    ) -> Result<usize, Closed> {
        let mut moved = 0;
        let spinner = Spinner::new();
        loop {
            let n = self.try_push_batch(items)?;
            moved += n;
            if items.is_empty() {
                return Ok(moved);
            }
            if n > 0 {
                spinner.reset();
            }
            if !self.wait_for_room(&spinner, deadline) {
                return Ok(moved);
            }
        }
    }

    /// Pops up to `max` of the oldest items into `out` (appending, in order),
    /// claiming them with one atomic operation, without waiting; returns how
    /// many were popped (0 if the queue is empty or `max` is 0).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(8);
    /// for i in 0..5 {
    ///     q.try_push(i).unwrap();
    /// }
    /// let mut out = Vec::new();
    /// assert_eq!(q.try_pop_batch(&mut out, 3), Ok(3));
    /// assert_eq!(out, [0, 1, 2]);
    /// ```
    pub fn try_pop_batch(&self, out: &mut Vec<T>, max: usize) -> Result<usize, Closed> {
        if max == 0 {
            return if self.is_closed() && self.is_empty() {
                Err(Closed)
            } else {
                Ok(0)
            };
        }
        // Reserve before claiming: nothing may panic while we own slots, so
        // no claim asks for more than the spare capacity reserved here.
        out.reserve(max.min(self.cap));
        // A run stops at the end of the ring's lap: a batch that wraps
        // around takes a second claim.
        let mut popped = 0;
        let mut woke = false;
        while popped < max {
            let room = out.capacity() - out.len();
            if room == 0 {
                break;
            }
            match self.claim_pop((max - popped).min(room)) {
                Ok(run) => {
                    woke |= run.woke;
                    let len = out.len();
                    let slots = &self.buffer[run.index..run.index + run.len];
                    let spare = &mut out.spare_capacity_mut()[..run.len];
                    for (slot, dst) in slots.iter().zip(spare) {
                        dst.write(Self::read_out(slot));
                    }
                    // Every value of the run has been read: free its slots.
                    self.release_run(&run);
                    // SAFETY: the loop initialised the `run.len` elements
                    // after `len`, within the capacity (`run.len <= room`).
                    unsafe { out.set_len(len + run.len) };
                    popped += run.len;
                }
                Err(NoRun::Closed) if popped == 0 => return Err(Closed),
                Err(_) => break,
            }
        }
        if woke {
            self.not_full.wake_all();
        }
        Ok(popped)
    }

    /// Pops up to `max` items into `out`, waiting as long as it takes for at
    /// least one; returns how many were popped (at least 1 when `max >= 1`).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(8);
    /// q.try_push("x").unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(q.pop_batch(&mut out, 64), Ok(1));
    /// ```
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> Result<usize, Closed> {
        self.pop_batch_until(out, max, None)
    }

    /// Pops up to `max` items into `out`, waiting at most `timeout` for at
    /// least one; returns how many were popped (0 on timeout).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let q = ringstat::Queue::<u8>::new(8);
    /// let mut out = Vec::new();
    /// assert_eq!(q.pop_batch_timeout(&mut out, 8, Duration::from_millis(1)), Ok(0));
    /// ```
    pub fn pop_batch_timeout(
        &self,
        out: &mut Vec<T>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, Closed> {
        self.pop_batch_until(out, max, Instant::now().checked_add(timeout))
    }

    /// As [`pop_batch_timeout`](Self::pop_batch_timeout) with a deadline
    /// (`None`: wait forever).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue is closed and drained.
    pub fn pop_batch_until(
        &self,
        out: &mut Vec<T>,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<usize, Closed> {
        let spinner = Spinner::new();
        loop {
            let n = self.try_pop_batch(out, max)?;
            if n > 0 || max == 0 {
                return Ok(n);
            }
            if !self.wait_for_item(&spinner, deadline) {
                return Ok(0);
            }
        }
    }
}
