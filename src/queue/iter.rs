//! Iterators over a queue's items: [`Queue::iter`] (blocking, until closed
//! and drained), [`Queue::try_iter`] (what is there now) and the consuming
//! [`IntoIterator`] (what is left). All three pop: an item an iterator
//! yields is gone from the queue, exactly as with [`Queue::pop`].

use core::fmt;
use core::iter::FusedIterator;

use super::Queue;

impl<T> Queue<T> {
    /// A blocking iterator: each `next` is a [`pop`](Self::pop), and the
    /// iteration ends once the queue is closed and drained. The usual
    /// consumer loop.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::thread;
    /// use ringstat::Queue;
    ///
    /// let q = Arc::new(Queue::new(16));
    /// let producer = {
    ///     let q = Arc::clone(&q);
    ///     thread::spawn(move || {
    ///         for i in 0..100u64 {
    ///             q.push(i).unwrap();
    ///         }
    ///         q.close();
    ///     })
    /// };
    /// let total: u64 = q.iter().sum(); // ends after the close
    /// producer.join().unwrap();
    /// assert_eq!(total, (0..100).sum::<u64>());
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { queue: self }
    }

    /// A non-blocking iterator: each `next` is a [`try_pop`](Self::try_pop),
    /// and the iteration ends at the first empty (or closed and drained)
    /// queue. Items pushed meanwhile are taken too, so with busy producers
    /// it may run on; `take(n)` bounds it.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(8);
    /// q.push_batch(&mut vec![1, 2, 3]).unwrap();
    /// assert_eq!(q.try_iter().collect::<Vec<_>>(), [1, 2, 3]);
    /// assert_eq!(q.try_iter().next(), None); // empty: does not wait
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { queue: self }
    }
}

/// Blocking iterator over popped items, from [`Queue::iter`]. Ends once the
/// queue is closed and drained, and stays ended.
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.pop().ok()
    }
}

// A closed queue stays closed, and after its close no push succeeds: once
// `pop` reports `Closed`, every later `pop` does too.
impl<T> FusedIterator for Iter<'_, T> {}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Iter").field(self.queue).finish()
    }
}

/// Non-blocking iterator over popped items, from [`Queue::try_iter`]. Ends
/// when the queue is empty; a later `next` may find new items.
pub struct TryIter<'a, T> {
    queue: &'a Queue<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.try_pop().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TryIter").field(self.queue).finish()
    }
}

/// The items left in a queue, oldest first, from its [`IntoIterator`]
/// implementation. Items not taken are dropped with the iterator.
pub struct IntoIter<T> {
    queue: Queue<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // The queue is ours alone: nothing can be pushed any more, so this
        // only drains (`try_pop` fails only once it is empty).
        self.queue.try_pop().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.queue.len();
        (len, Some(len))
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

// Once empty, the owned queue stays empty.
impl<T> FusedIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IntoIter").field(&self.queue).finish()
    }
}

impl<T> IntoIterator for Queue<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    /// The items left in the queue, oldest first (closed or not).
    ///
    /// # Examples
    ///
    /// ```
    /// let q = ringstat::Queue::new(4);
    /// q.push("a").unwrap();
    /// q.push("b").unwrap();
    /// let rest: Vec<_> = q.into_iter().collect();
    /// assert_eq!(rest, ["a", "b"]);
    /// ```
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { queue: self }
    }
}
