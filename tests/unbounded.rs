//! `UnboundedQueue<T>`: unit tests, a model test against `VecDeque`, and
//! stress tests that check conservation (every item pushed is popped exactly
//! once) across producers, consumers and a racing close.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ringstat::queue::{Closed, UnboundedQueue};
use ringstat::{PopError, PushError};

fn per_producer() -> usize {
    if cfg!(miri) {
        200
    } else if cfg!(debug_assertions) {
        50_000
    } else {
        500_000
    }
}

#[test]
fn smoke() {
    let q = UnboundedQueue::new();
    q.try_push(1).unwrap();
    q.try_push(2).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_pop(), Ok(1));
    assert_eq!(q.pop(), Ok(2));
    assert!(q.is_empty());
    assert_eq!(q.try_pop(), Err(PopError::Empty));
}

#[test]
fn never_full() {
    let q = UnboundedQueue::new();
    let n = if cfg!(miri) { 1000 } else { 1_000_000 };
    for i in 0..n {
        q.try_push(i).unwrap();
    }
    assert_eq!(q.len(), n);
    let mut out = Vec::new();
    assert_eq!(q.try_pop_batch(&mut out, usize::MAX), Ok(n));
    assert!(out.iter().copied().eq(0..n));
}

#[test]
fn close_drains_then_reports_closed() {
    let q = UnboundedQueue::new();
    q.try_push("a").unwrap();
    assert!(q.close());
    assert!(!q.close());
    assert_eq!(q.try_push("b"), Err(PushError::Closed("b")));
    let mut batch = vec!["c"];
    assert_eq!(q.try_push_batch(&mut batch), Err(Closed));
    assert_eq!(batch, ["c"]);
    assert_eq!(q.pop(), Ok("a"));
    assert_eq!(q.pop(), Err(PopError::Closed));
    assert_eq!(q.try_pop_batch(&mut Vec::new(), 4), Err(Closed));
}

#[test]
fn timed_pop_times_out_and_empty_batch_is_ok() {
    let q = UnboundedQueue::<u8>::new();
    assert_eq!(
        q.pop_timeout(Duration::from_millis(1)),
        Err(PopError::Empty)
    );
    let soon = Instant::now() + Duration::from_millis(1);
    assert_eq!(q.pop_batch_until(&mut Vec::new(), 8, Some(soon)), Ok(0));
    assert_eq!(q.try_push_batch(&mut Vec::new()), Ok(0));
}

#[test]
fn drops_every_item_left_in_it() {
    let item = Arc::new(());
    {
        let q = UnboundedQueue::new();
        for _ in 0..100 {
            q.try_push(Arc::clone(&item)).unwrap();
        }
        drop(q.try_pop());
    }
    assert_eq!(Arc::strong_count(&item), 1);
}

#[test]
fn parked_consumer_is_woken_by_each_kind_of_push() {
    // A consumer parks; one push (single, then batch) must wake it. Without
    // the wake-up it would still return after its 200 ms re-check, so the
    // missed wake-up count is what fails (debug and `test-counters` builds).
    for batch in [false, true] {
        let q = Arc::new(UnboundedQueue::new());
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.pop())
        };
        thread::sleep(Duration::from_millis(20)); // let it park (not a correctness bound)
        if batch {
            q.try_push_batch(&mut vec![5]).unwrap();
        } else {
            q.try_push(5).unwrap();
        }
        assert_eq!(consumer.join().unwrap(), Ok(5));
        assert_eq!(
            q.debug_missed_wakeups().unwrap_or(0),
            0,
            "lost wake-up (batch: {batch})"
        );
    }
}

#[test]
fn blocked_consumer_wakes_on_push_and_on_close() {
    let q = Arc::new(UnboundedQueue::new());
    let consumer = {
        let q = Arc::clone(&q);
        thread::spawn(move || (q.pop(), q.pop()))
    };
    thread::sleep(Duration::from_millis(20)); // let it park (not a correctness bound)
    q.try_push(5).unwrap();
    q.close();
    assert_eq!(consumer.join().unwrap(), (Ok(5), Err(PopError::Closed)));
    assert_eq!(q.debug_missed_wakeups().unwrap_or(0), 0, "lost wake-ups");
}

/// N producers, M consumers (single and batch pops), close racing the
/// producers: every successful push is popped exactly once, none twice.
fn conservation(producers: usize, consumers: usize, close_early: bool) {
    let per = per_producer();
    let q = Arc::new(UnboundedQueue::new());
    let pushed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(producers + consumers + 1));
    let producer_threads: Vec<_> = (0..producers)
        .map(|p| {
            let (q, pushed, start) = (Arc::clone(&q), Arc::clone(&pushed), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut sent = Vec::new();
                let mut i = 0;
                while i < per {
                    if i % 3 == 0 {
                        let mut batch: Vec<usize> =
                            (i..(i + 7).min(per)).map(|j| p * per + j).collect();
                        let n = batch.len();
                        match q.try_push_batch(&mut batch) {
                            Ok(_) => sent.extend((i..i + n).map(|j| p * per + j)),
                            Err(Closed) => break,
                        }
                        i += n;
                    } else {
                        if q.try_push(p * per + i).is_err() {
                            break;
                        }
                        sent.push(p * per + i);
                        i += 1;
                    }
                }
                pushed.fetch_add(sent.len(), Ordering::Relaxed);
                sent
            })
        })
        .collect();
    let consumer_threads: Vec<_> = (0..consumers)
        .map(|c| {
            let (q, start) = (Arc::clone(&q), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut got = Vec::new();
                let mut batch = Vec::new();
                loop {
                    if c % 2 == 0 {
                        match q.pop() {
                            Ok(v) => got.push(v),
                            Err(_) => break,
                        }
                    } else {
                        match q.pop_batch_until(&mut batch, 16, None) {
                            Ok(_) => got.append(&mut batch),
                            Err(Closed) => break,
                        }
                    }
                }
                got
            })
        })
        .collect();
    start.wait();
    if close_early {
        thread::sleep(Duration::from_millis(5));
        q.close();
    }
    let mut sent: Vec<usize> = producer_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    q.close();
    let mut got: Vec<usize> = consumer_threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(got.len(), pushed.load(Ordering::Relaxed));
    sent.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, sent, "every pushed item popped exactly once");
    assert_eq!(q.try_pop(), Err(PopError::Closed));
    // Counted in debug and `test-counters` builds: a park that ran out its
    // slice while an item or the close was already there.
    assert_eq!(q.debug_missed_wakeups().unwrap_or(0), 0, "lost wake-ups");
}

#[test]
fn stress_mpmc_every_item_exactly_once() {
    conservation(3, 3, false);
}

#[test]
fn stress_close_racing_producers_loses_nothing() {
    for _ in 0..if cfg!(miri) { 1 } else { 5 } {
        conservation(2, 2, true);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(u32),
    PushBatch(Vec<u32>),
    Pop,
    PopBatch(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Push),
        2 => proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::PushBatch),
        4 => Just(Op::Pop),
        2 => (0usize..12).prop_map(Op::PopBatch),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 8 } else { 512 }))]

    /// Any single-threaded sequence of operations behaves like a `VecDeque`
    /// with a closed flag.
    #[test]
    fn behaves_like_a_vecdeque(ops in proptest::collection::vec(op(), 0..64)) {
        let q = UnboundedQueue::new();
        let mut model = VecDeque::new();
        let mut closed = false;
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = q.try_push(v);
                    if closed {
                        prop_assert_eq!(r, Err(PushError::Closed(v)));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(v);
                    }
                }
                Op::PushBatch(mut vs) => {
                    let before = vs.clone();
                    let r = q.try_push_batch(&mut vs);
                    if closed {
                        prop_assert_eq!(r, Err(Closed));
                        prop_assert_eq!(vs, before);
                    } else {
                        prop_assert_eq!(r, Ok(before.len()));
                        model.extend(before);
                    }
                }
                Op::Pop => {
                    let expect = match model.pop_front() {
                        Some(v) => Ok(v),
                        None if closed => Err(PopError::Closed),
                        None => Err(PopError::Empty),
                    };
                    prop_assert_eq!(q.try_pop(), expect);
                }
                Op::PopBatch(max) => {
                    let mut out = Vec::new();
                    let r = q.try_pop_batch(&mut out, max);
                    let n = max.min(model.len());
                    let expect: Vec<u32> = model.drain(..n).collect();
                    if n == 0 && closed && max > 0 {
                        prop_assert_eq!(r, Err(Closed));
                    } else {
                        prop_assert_eq!(r, Ok(n));
                    }
                    prop_assert_eq!(out, expect);
                }
                Op::Close => {
                    prop_assert_eq!(q.close(), !closed);
                    closed = true;
                }
            }
            prop_assert_eq!(q.len(), model.len());
            prop_assert_eq!(q.is_empty(), model.is_empty());
            prop_assert_eq!(q.is_closed(), closed);
        }
    }
}
