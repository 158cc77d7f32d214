//! Waiting without a thread: an async task registers a [`Waker`] with the
//! side it waits on and is woken by the push, pop or close that a parked
//! thread would be woken by (the protocol of `wait.rs`, with a list of wakers
//! in place of the condition variable).
//!
//! The pattern for a task that wants an item (room is the mirror image):
//!
//! 1. `try_pop`; on [`PopError::Empty`](super::PopError::Empty):
//! 2. `register_pop_waker(key, waker)`; `false` means a pop may succeed now
//!    (or the queue closed): go back to 1;
//! 3. wait for the waker, then `deregister_pop_waker(key)` (a no-op if the
//!    waker fired) and go back to 1. A task that stops waiting (cancelled,
//!    timed out) deregisters too, and has taken nothing: no item is lost.
//!
//! A waker fires for every push (or pop) after its registration until it is
//! taken; several tasks registered on one side all wake, and those that
//! find nothing register again.

use std::task::Waker;

use super::{Queue, UnboundedQueue};

impl<T> Queue<T> {
    /// Registers `waker` to be woken once a pop may succeed (an item was
    /// pushed, or the queue closed). Returns `false`, registering nothing,
    /// if that is already the case: try the pop again. `key` names the
    /// registration for [`deregister_pop_waker`](Self::deregister_pop_waker);
    /// keep it unique among the registrations on this queue's pop side.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::{Wake, Waker};
    ///
    /// struct Flag(AtomicBool);
    /// impl Wake for Flag {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// let q = ringstat::Queue::new(4);
    /// let flag = Arc::new(Flag(AtomicBool::new(false)));
    /// assert!(q.register_pop_waker(1, &Waker::from(Arc::clone(&flag))));
    /// q.try_push(7).unwrap(); // wakes the registered task
    /// assert!(flag.0.load(Ordering::SeqCst));
    /// assert!(!q.deregister_pop_waker(1)); // already taken by the push
    /// assert!(!q.register_pop_waker(2, &Waker::from(flag))); // an item is there
    /// ```
    pub fn register_pop_waker(&self, key: u64, waker: &Waker) -> bool {
        self.not_empty
            .register(key, waker, || self.flag_item_wait())
    }

    /// Removes the waker registered under `key` by
    /// [`register_pop_waker`](Self::register_pop_waker); returns `false` if a
    /// push or close already took it (it has fired or is firing).
    pub fn deregister_pop_waker(&self, key: u64) -> bool {
        self.not_empty.deregister(key)
    }

    /// Registers `waker` to be woken once a push may succeed (an item was
    /// popped, or the queue closed). Returns `false`, registering nothing,
    /// if that is already the case. The mirror of
    /// [`register_pop_waker`](Self::register_pop_waker).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Waker;
    ///
    /// let q = ringstat::Queue::new(1);
    /// assert!(!q.register_push_waker(1, Waker::noop())); // room now
    /// q.try_push(1).unwrap();
    /// assert!(q.register_push_waker(1, Waker::noop())); // full: registered
    /// assert!(q.deregister_push_waker(1));
    /// ```
    pub fn register_push_waker(&self, key: u64, waker: &Waker) -> bool {
        self.not_full.register(key, waker, || self.flag_room_wait())
    }

    /// Removes the waker registered under `key` by
    /// [`register_push_waker`](Self::register_push_waker); returns `false` if
    /// a pop or close already took it.
    pub fn deregister_push_waker(&self, key: u64) -> bool {
        self.not_full.deregister(key)
    }
}

impl<T> UnboundedQueue<T> {
    /// As [`Queue::register_pop_waker`]: registers `waker` to be woken once
    /// a pop may succeed; `false` (nothing registered) if one may now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Waker;
    ///
    /// let q = ringstat::queue::UnboundedQueue::new();
    /// assert!(q.register_pop_waker(1, Waker::noop()));
    /// q.try_push(1).unwrap();
    /// assert!(!q.deregister_pop_waker(1)); // the push took it
    /// ```
    pub fn register_pop_waker(&self, key: u64, waker: &Waker) -> bool {
        self.not_empty().register(key, waker, || self.ready())
    }

    /// As [`Queue::deregister_pop_waker`].
    pub fn deregister_pop_waker(&self, key: u64) -> bool {
        self.not_empty().deregister(key)
    }
}
