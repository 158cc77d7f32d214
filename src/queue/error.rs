//! Errors returned by [`Queue`](super::Queue) operations.
//!
//! Every error of an operation that was handed a value gives that value back:
//! a failed push never loses data.

use core::fmt;

/// A push that did not happen; the value comes back to the caller.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a failed push hands the value back; dropping it loses the item"]
pub enum PushError<T> {
    /// The queue was full (for timed pushes: still full when the timeout
    /// elapsed).
    Full(T),
    /// The queue was closed; it accepts no more items.
    Closed(T),
}

impl<T> PushError<T> {
    /// Takes the value back out of the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::Queue;
    ///
    /// let q = Queue::new(1);
    /// q.try_push(1).unwrap();
    /// assert_eq!(q.try_push(2).unwrap_err().into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) => v,
        }
    }

    /// `true` if the push failed because the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// `true` if the push failed because the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may not be `Debug`; say which variant it is.
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("push failed: the queue is full"),
            Self::Closed(_) => f.write_str("push failed: the queue is closed"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

/// A pop that returned nothing.
// `repr(usize)`: with a one-byte error, `Result<u64, PopError>` is returned
// through memory and copied byte by byte by an inlined `pop`; word-sized, the
// error sits where the item does and the result comes back in two registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum PopError {
    /// The queue was empty (for timed pops: still empty when the timeout
    /// elapsed).
    Empty,
    /// The queue is closed and every item pushed before the close has been
    /// popped: no item will ever arrive.
    Closed,
}

impl fmt::Display for PopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("pop failed: the queue is empty"),
            Self::Closed => f.write_str("pop failed: the queue is closed and drained"),
        }
    }
}

impl std::error::Error for PopError {}

/// A batch operation stopped because the queue is closed (and, for pops,
/// drained). Items a batch push did not move stay in the caller's `Vec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is closed")
    }
}

impl std::error::Error for Closed {}

/// The capacity given to [`Queue::try_new`](super::Queue::try_new) is not
/// usable: 0, above [`MAX_CAPACITY`](super::MAX_CAPACITY), or more memory
/// than can be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapacityError {
    pub(crate) requested: usize,
    /// `true` if the capacity was valid but the memory could not be had.
    pub(crate) alloc_failed: bool,
}

impl CapacityError {
    /// The capacity that was asked for.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// `true` if the capacity was valid but its memory could not be
    /// allocated (the error a binding maps to `MemoryError`).
    pub fn is_alloc_failure(&self) -> bool {
        self.alloc_failed
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requested == 0 {
            f.write_str("queue capacity must be at least 1, got 0")
        } else if self.alloc_failed {
            write!(
                f,
                "cannot allocate a queue of capacity {}: out of memory",
                self.requested
            )
        } else {
            write!(
                f,
                "queue capacity {} is too large (at most {})",
                self.requested,
                super::MAX_CAPACITY
            )
        }
    }
}

impl std::error::Error for CapacityError {}
