//! Model test: any sequence of single-threaded operations on `Queue<T>`
//! behaves exactly like a bounded `VecDeque`.
//!
//! No operation here waits, so none may hang; if one spins forever (a bug in
//! the stamps or the release index), the watchdog (`tests/watchdog`) fails
//! the test after 120 s, naming the operation.

mod watchdog;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use ringstat::queue::Closed;
use ringstat::{PopError, PushError, Queue};
use watchdog::Watchdog;

#[derive(Clone, Debug)]
enum Op {
    TryPush(u32),
    ForcePush(u32),
    TryPop,
    PushBatch(Vec<u32>),
    PopBatch(usize),
    TryIter(usize),
    Close,
    Len,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::TryPush),
        2 => any::<u32>().prop_map(Op::ForcePush),
        4 => Just(Op::TryPop),
        2 => proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushBatch),
        2 => (0usize..12).prop_map(Op::PopBatch),
        1 => (0usize..12).prop_map(Op::TryIter),
        1 => Just(Op::Len),
    ]
}

/// The reference: a bounded FIFO with a closed flag.
struct Model {
    items: VecDeque<u32>,
    cap: usize,
    closed: bool,
}

impl Model {
    fn try_push(&mut self, v: u32) -> Result<(), PushError<u32>> {
        if self.closed {
            Err(PushError::Closed(v))
        } else if self.items.len() == self.cap {
            Err(PushError::Full(v))
        } else {
            self.items.push_back(v);
            Ok(())
        }
    }

    fn try_pop(&mut self) -> Result<u32, PopError> {
        match self.items.pop_front() {
            Some(v) => Ok(v),
            None if self.closed => Err(PopError::Closed),
            None => Err(PopError::Empty),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 512 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_vecdeque(
        cap in 1usize..9,
        mut ops in proptest::collection::vec(op(), 0..200),
        close_at in proptest::option::of(0usize..200),
    ) {
        // At most one close (sometimes none), anywhere in the sequence; the
        // second close below checks that closing twice is harmless.
        if let Some(at) = close_at {
            let at = at.min(ops.len());
            ops.insert(at, Op::Close);
            ops.insert(at, Op::Close);
        }
        let q = Queue::new(cap);
        let mut m = Model { items: VecDeque::new(), cap, closed: false };
        let done = Arc::new(AtomicUsize::new(0));
        let dog = {
            let done = Arc::clone(&done);
            // Relaxed: progress for the watchdog, ordering nothing.
            Watchdog::start("matches_vecdeque", "the first operation", move || {
                done.load(Ordering::Relaxed)
            })
        };
        for (i, op) in ops.into_iter().enumerate() {
            dog.waiting_for(format!(
                "operation {i}, {op:?}, on a queue of capacity {cap} holding {} items",
                m.items.len()
            ));
            done.store(i + 1, Ordering::Relaxed);
            match op {
                Op::TryPush(v) => prop_assert_eq!(q.try_push(v), m.try_push(v)),
                Op::ForcePush(v) => {
                    let expected = if m.closed {
                        Err(PushError::Closed(v))
                    } else {
                        let displaced = if m.items.len() == cap { m.items.pop_front() } else { None };
                        m.items.push_back(v);
                        Ok(displaced)
                    };
                    prop_assert_eq!(q.force_push(v), expected);
                }
                Op::TryPop => prop_assert_eq!(q.try_pop(), m.try_pop()),
                Op::PushBatch(items) => {
                    let mut ours = items.clone();
                    let got = q.try_push_batch(&mut ours);
                    if m.closed {
                        prop_assert_eq!(got, Err(Closed));
                        prop_assert_eq!(ours, items);
                    } else {
                        let n = items.len().min(cap - m.items.len());
                        m.items.extend(&items[..n]);
                        prop_assert_eq!(got, Ok(n));
                        prop_assert_eq!(&ours[..], &items[n..]);
                    }
                }
                Op::PopBatch(max) => {
                    let mut out = vec![999];
                    let got = q.try_pop_batch(&mut out, max);
                    if m.closed && m.items.is_empty() {
                        prop_assert_eq!(got, Err(Closed));
                        prop_assert_eq!(out, vec![999]);
                    } else {
                        let n = max.min(m.items.len());
                        let expected: Vec<u32> =
                            std::iter::once(999).chain(m.items.drain(..n)).collect();
                        prop_assert_eq!(got, Ok(n));
                        prop_assert_eq!(out, expected);
                        if n > 0 && cap < 8 {
                            // On one thread, a batch pop leaves every popped
                            // slot released through the index: its own run,
                            // and (swept) those freed by single pops and
                            // displaced by `force_push` before it. (Below
                            // capacity 8 every run counts as long; longer
                            // rings free short runs per slot.)
                            prop_assert_eq!(q.debug_release_lag(), 0);
                        }
                    }
                }
                Op::TryIter(n) => {
                    let got: Vec<u32> = q.try_iter().take(n).collect();
                    let n = n.min(m.items.len());
                    prop_assert_eq!(got, m.items.drain(..n).collect::<Vec<_>>());
                }
                Op::Close => {
                    prop_assert_eq!(q.close(), !m.closed);
                    m.closed = true;
                }
                Op::Len => {}
            }
            prop_assert_eq!(q.len(), m.items.len());
            prop_assert_eq!(q.is_empty(), m.items.is_empty());
            prop_assert_eq!(q.is_full(), m.items.len() == cap);
            prop_assert_eq!(q.is_closed(), m.closed);
        }
        // What is left, taken by the consuming iterator, is exactly the
        // model's contents.
        dog.waiting_for("the consuming iterator");
        let rest = q.into_iter();
        prop_assert_eq!(rest.len(), m.items.len());
        prop_assert_eq!(rest.collect::<Vec<_>>(), Vec::from(m.items));
    }
}
