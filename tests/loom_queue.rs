//! Loom models of `Queue<T>`: every interleaving of 2-3 threads on a queue of
//! capacity 1-2 (bounded by `LOOM_MAX_PREEMPTIONS`).
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_queue`
//!
//! Under loom, a timed park waits for a notification only (loom has no
//! clock), so a lost wake-up shows up as a deadlock that loom reports.
#![cfg(ringstat_loom)]

use loom::sync::Arc;
use loom::thread;
use ringstat::queue::Closed;
use ringstat::{PopError, PushError, Queue};

/// A queue of capacity 2 holding 1 and 2: full, so that whatever a
/// model's producer pushes goes into a slot a consumer frees.
fn full_of_one_and_two() -> Arc<Queue<i32>> {
    let q = Arc::new(Queue::new(2));
    q.try_push(1).unwrap();
    q.try_push(2).unwrap();
    q
}

#[test]
fn push_pop_two_producers() {
    loom::model(|| {
        let q = Arc::new(Queue::new(2));
        let producers: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.try_push(v).unwrap())
            })
            .collect();
        let mut got = vec![q.pop().unwrap(), q.pop().unwrap()];
        for p in producers {
            p.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.try_pop(), Err(PopError::Empty));
    });
}

#[test]
fn park_and_wake_on_capacity_one() {
    // The producer blocks on the full queue and the consumer on the empty
    // one, in turn: both must always be woken.
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                q.push(1).unwrap();
                q.push(2).unwrap();
            })
        };
        assert_eq!(q.pop(), Ok(1));
        assert_eq!(q.pop(), Ok(2));
        producer.join().unwrap();
    });
}

#[test]
fn two_consumers_race_while_producer_wraps() {
    // Two consumers race on `head` for the two queued items while a producer
    // pushes into the slot the first pop frees (the next lap). Each consumer
    // pops once, so no two threads ever spin on the same unfinished slot at
    // once: loom cannot bound such a schedule (each spinner's yield
    // re-enables the other), so that case is left to the stress tests.
    loom::model(|| {
        let q = full_of_one_and_two();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.try_pop().unwrap())
            })
            .collect();
        let pushed = q.try_push(3).is_ok();
        let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.try_pop().ok(), pushed.then_some(3));
        assert_eq!(q.try_pop(), Err(PopError::Empty));
    });
}

#[test]
fn batch_push_pop() {
    loom::model(|| {
        let q = Arc::new(Queue::new(2));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut items = vec![1, 2, 3];
                q.push_batch(&mut items).unwrap();
                assert!(items.is_empty());
            })
        };
        let mut out = Vec::new();
        while out.len() < 3 {
            q.pop_batch(&mut out, 2).unwrap();
        }
        assert_eq!(out, [1, 2, 3]);
        producer.join().unwrap();
    });
}

#[test]
fn batch_pops_finishing_out_of_order_release_every_slot() {
    // Two consumers each claim a run of one slot; the second may finish
    // first, find the release index behind its run and free its slot per
    // slot, while the first advances the index over its own. Whatever the
    // order, once both are done the index has caught up with `head` (one of
    // them carried it past the other's slot), and a producer racing with
    // them only ever claims freed slots.
    loom::model(|| {
        let q = full_of_one_and_two();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || {
                    let mut out = Vec::new();
                    assert_eq!(q.try_pop_batch(&mut out, 1), Ok(1));
                    out[0]
                })
            })
            .collect();
        let mut items = vec![3, 4];
        let pushed = q.try_push_batch(&mut items).unwrap();
        let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert_eq!(q.debug_release_lag(), 0);
        // The slots not refilled above are free now.
        assert_eq!(q.try_push_batch(&mut items), Ok(2 - pushed));
        let mut out = Vec::new();
        assert_eq!(q.try_pop_batch(&mut out, 2), Ok(2));
        assert_eq!(out, [3, 4]);
        assert_eq!(q.debug_release_lag(), 0);
    });
}

#[test]
fn batch_and_single_pops_mixed_with_a_wrapping_producer() {
    // A single pop frees its slot per slot and never moves the release
    // index; a batch pop behind or ahead of it must still free its own, and
    // a producer that wraps into either slot must see it free only once its
    // value has been read.
    loom::model(|| {
        let q = full_of_one_and_two();
        let single = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_pop().unwrap())
        };
        let batch = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut out = Vec::new();
                assert_eq!(q.try_pop_batch(&mut out, 1), Ok(1));
                out[0]
            })
        };
        let pushed = q.try_push(3).is_ok();
        let mut got = vec![single.join().unwrap(), batch.join().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        let mut out = Vec::new();
        let _ = q.try_pop_batch(&mut out, 2);
        assert_eq!(out, pushed.then_some(3).into_iter().collect::<Vec<_>>());
        // Both slots are free: the ring takes two more.
        let mut items = vec![4, 5];
        assert_eq!(q.try_push_batch(&mut items), Ok(2));
    });
}

#[test]
fn batch_pop_after_laps_of_single_pops_races_with_a_producer() {
    // Single pops leave the release index behind, laps behind here; the
    // first batch pop after them jumps it to a lap behind `tail` and sweeps
    // the rest, while a producer claims the slot the batch pop frees.
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        for v in 0..3 {
            q.try_push(v).unwrap();
            assert_eq!(q.try_pop(), Ok(v));
        }
        q.try_push(3).unwrap();
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(4).is_ok())
        };
        let mut out = Vec::new();
        assert_eq!(q.try_pop_batch(&mut out, 1), Ok(1));
        let pushed = producer.join().unwrap();
        assert_eq!(out, [3]);
        assert_eq!(q.debug_release_lag(), 0);
        assert_eq!(q.try_pop().ok(), pushed.then_some(4));
    });
}

#[test]
fn batch_pops_against_force_push() {
    // `force_push` on a full queue displaces the oldest item: it claims that
    // position as a consumer would and rewrites its slot, so a batch pop
    // racing with it must not see the slot twice, and the release index
    // must still be carried past the displaced position.
    loom::model(|| {
        let q = full_of_one_and_two();
        let popper = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut out = Vec::new();
                let _ = q.try_pop_batch(&mut out, 2);
                out
            })
        };
        let displaced = q.force_push(3).unwrap();
        let mut all = popper.join().unwrap();
        all.extend(displaced);
        let mut out = Vec::new();
        let _ = q.try_pop_batch(&mut out, 2);
        all.extend(out);
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3], "displaced + popped + left = pushed");
        assert_eq!(q.debug_release_lag(), 0);
    });
}

#[test]
fn batch_push_against_single_push() {
    loom::model(|| {
        let q = Arc::new(Queue::new(2));
        let batcher = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut items = vec![10, 11];
                q.try_push_batch(&mut items).unwrap()
            })
        };
        let single = q.try_push(20).is_ok();
        let batched = batcher.join().unwrap();
        let mut out = Vec::new();
        q.try_pop_batch(&mut out, 4).unwrap();
        assert_eq!(out.len(), batched + usize::from(single));
        assert!(out.len() <= 2);
        // The batch stays contiguous and in order.
        let tens: Vec<_> = out
            .iter()
            .copied()
            .filter(|v| (10..20).contains(v))
            .collect();
        assert_eq!(tens, [10, 11][..batched]);
    });
}

#[test]
fn close_wakes_blocked_consumer_and_producer() {
    loom::model(|| {
        let empty = Arc::new(Queue::<u8>::new(1));
        let full = Arc::new(Queue::<u8>::new(1));
        full.try_push(0).unwrap();
        let consumer = {
            let q = Arc::clone(&empty);
            thread::spawn(move || q.pop())
        };
        let producer = {
            let q = Arc::clone(&full);
            thread::spawn(move || q.push(1))
        };
        empty.close();
        full.close();
        assert_eq!(consumer.join().unwrap(), Err(PopError::Closed));
        assert_eq!(producer.join().unwrap(), Err(PushError::Closed(1)));
        assert_eq!(full.try_pop(), Ok(0));
    });
}

#[test]
fn close_races_with_push() {
    // A push either lands before the close (and is drained) or fails with
    // its value handed back: never lost.
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(5).is_ok())
        };
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    match q.pop_batch(&mut out, 1) {
                        Ok(_) => {}
                        Err(Closed) => return out,
                    }
                }
            })
        };
        q.close();
        let pushed = producer.join().unwrap();
        let popped = consumer.join().unwrap();
        assert_eq!(popped, if pushed { vec![5] } else { vec![] });
    });
}

#[test]
fn force_push_conserves_items() {
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let pushers: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.force_push(v).unwrap())
            })
            .collect();
        let popped = q.try_pop().ok();
        let mut all: Vec<i32> = pushers
            .into_iter()
            .filter_map(|p| p.join().unwrap())
            .collect();
        all.extend(popped);
        all.extend(q.try_pop().ok());
        all.sort_unstable();
        assert_eq!(all, [1, 2], "displaced + popped + left = pushed");
    });
}

#[test]
fn force_push_wakes_blocked_consumer() {
    // The consumer parks on the empty queue, flagging `tail`. The first
    // `force_push` claims normally (clearing the flag and waking it); the
    // second may displace the first item, which keeps the flag and wakes by
    // the waiter count. Either way the consumer must wake.
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.pop().unwrap())
        };
        let mut all: Vec<i32> = [1, 2]
            .into_iter()
            .filter_map(|v| q.force_push(v).unwrap())
            .collect();
        all.push(consumer.join().unwrap());
        all.extend(q.try_pop().ok());
        all.sort_unstable();
        assert_eq!(all, [1, 2], "displaced + popped + left = pushed");
    });
}

#[test]
fn force_push_keeps_blocked_producer_waiting_for_room() {
    // A producer parks on the full queue, flagging `head`, while this thread
    // `force_push`es, displacing the oldest item (and keeping the flag: the
    // queue is still full). The pops that follow must wake the producer.
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        q.try_push(0).unwrap();
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.push(1).unwrap())
        };
        assert_eq!(q.force_push(2), Ok(Some(0)));
        assert_eq!(q.pop(), Ok(2));
        assert_eq!(q.pop(), Ok(1));
        producer.join().unwrap();
    });
}

#[test]
fn drop_releases_items() {
    loom::model(|| {
        let item = Arc::new(());
        let q = Arc::new(Queue::new(2));
        let pusher = {
            let q = Arc::clone(&q);
            let item = Arc::clone(&item);
            thread::spawn(move || {
                let _ = q.try_push(item);
            })
        };
        drop(q.try_pop());
        pusher.join().unwrap();
        drop(q);
        assert_eq!(Arc::strong_count(&item), 1);
    });
}
