//! Loom models of `UnboundedQueue<T>`: its close protocol (pushes in flight
//! land before `close` returns or fail) and its wake-ups (a consumer parked
//! on an empty queue is always woken by a push or a close). The list itself
//! is a loom mutex around a `VecDeque` here (see `src/sync.rs`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_unbounded`
#![cfg(ringstat_loom)]

use loom::sync::Arc;
use loom::thread;
use ringstat::queue::{Closed, UnboundedQueue};
use ringstat::{PopError, PushError};

#[test]
fn parked_consumer_is_woken_by_a_push() {
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::new());
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(1).unwrap())
        };
        assert_eq!(q.pop(), Ok(1));
        producer.join().unwrap();
    });
}

#[test]
fn parked_consumer_is_woken_by_close() {
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::<i32>::new());
        let closer = {
            let q = Arc::clone(&q);
            thread::spawn(move || assert!(q.close()))
        };
        assert_eq!(q.pop(), Err(PopError::Closed));
        closer.join().unwrap();
    });
}

fn push_or_hand_back(q: &UnboundedQueue<i32>, v: i32) -> usize {
    match q.try_push(v) {
        Ok(()) => 1,
        Err(PushError::Closed(back)) => {
            assert_eq!(back, v);
            0
        }
        Err(PushError::Full(_)) => unreachable!("unbounded"),
    }
}

#[test]
fn pushes_racing_close_land_whole_or_fail() {
    // A single push and a batch push race a close. Once `close` returns, what
    // the queue holds is final: exactly the pushes that succeeded, the batch
    // whole and in order; a failed push hands its values back.
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::new());
        let single = {
            let q = Arc::clone(&q);
            thread::spawn(move || push_or_hand_back(&q, 1))
        };
        let batch = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut items = vec![10, 20];
                match q.try_push_batch(&mut items) {
                    Ok(n) => {
                        assert!(items.is_empty());
                        n
                    }
                    Err(Closed) => {
                        assert_eq!(items, [10, 20]);
                        0
                    }
                }
            })
        };
        q.close();
        let mut got = Vec::new();
        while let Ok(v) = q.try_pop() {
            got.push(v);
        }
        let pushed = single.join().unwrap() + batch.join().unwrap();
        assert_eq!(got.len(), pushed);
        let from_batch: Vec<_> = got.iter().copied().filter(|&v| v >= 10).collect();
        assert!(from_batch.is_empty() || from_batch == [10, 20]);
        assert_eq!(q.try_pop(), Err(PopError::Closed));
    });
}

#[test]
fn parked_consumer_sees_a_push_racing_close() {
    // The consumer parks; a push and a close race. If the push succeeded, the
    // consumer gets its item before `Closed`.
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::new());
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(v) = q.pop() {
                    got.push(v);
                }
                got
            })
        };
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || push_or_hand_back(&q, 1))
        };
        q.close();
        let pushed = producer.join().unwrap();
        assert_eq!(consumer.join().unwrap().len(), pushed);
    });
}

#[test]
fn two_consumers_one_item_and_close() {
    // Two parked consumers, one item, then close: exactly one gets the item
    // and both finish.
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::new());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.pop().ok())
            })
            .collect();
        q.try_push(7).unwrap();
        q.close();
        let got: Vec<_> = consumers
            .into_iter()
            .filter_map(|c| c.join().unwrap())
            .collect();
        assert_eq!(got, [7]);
    });
}
