//! Loom models of the shared queue's async waits (`register_waker` and the
//! watcher thread of `queue/shared/notify.rs`): a task that registers while
//! a producer (consumer, closer) runs is always woken, and finds what it was
//! woken for. Under loom the futex sleep is a yield, so the watcher is a
//! loom thread re-checking its word; a lost wake-up leaves the task waiting
//! forever, which loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" cargo test --release --test loom_shm_async`
//!
//! The models pin the preemption bound at 1 (every schedule with at most
//! one preemption, explored fully in a second). At the suite's usual 2 the
//! two threads that wait by yielding (the task on its flag, the watcher on
//! the word) exceed loom's default branch budget, and with a budget of
//! 200,000 branches one model had not finished after 7 minutes. The stress
//! tests of `tests/shm_queue_async.rs` cover the protocol with real threads
//! (and count any wake-up that had to be rescued by the timed re-check).
#![cfg(ringstat_loom)]

use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use ringstat::queue::{SharedPopError, SharedPushError, SharedQueue, SharedSide};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// `loom::model` at preemption bound 1 (see the module docs).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(1);
    b.check(f);
}

/// Registers and waits as a task would, once: `true` if it waited.
fn wait_once(q: &SharedQueue, side: SharedSide) -> bool {
    let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(std::sync::Arc::clone(&flag));
    if !q.register_waker(side, 1, &waker).unwrap() {
        return false; // ready: the caller retries at once
    }
    // Acquire: pairs with the Release in `wake`.
    while !flag.0.load(Ordering::Acquire) {
        thread::yield_now();
    }
    true
}

/// A task waits for a message while a producer (another "process") pushes
/// it: the task is woken (or told "ready") and then pops it.
#[test]
fn pop_waiter_is_woken_by_a_push() {
    model(|| {
        let q = SharedQueue::heap(2, 4, 3).unwrap();
        let producer = {
            let q = q.clone();
            thread::spawn(move || q.try_push(b"m").unwrap())
        };
        if q.try_pop() == Err(SharedPopError::Empty) {
            wait_once(&q, SharedSide::Pop);
            assert_eq!(q.try_pop().unwrap(), b"m");
        }
        producer.join().unwrap();
        drop(q); // stops the watcher
    });
}

/// A task waits for room in a full queue while a consumer pops.
#[test]
fn push_waiter_is_woken_by_a_pop() {
    model(|| {
        let q = SharedQueue::heap(1, 4, 3).unwrap();
        q.try_push(b"a").unwrap();
        let consumer = {
            let q = q.clone();
            thread::spawn(move || assert_eq!(q.try_pop().unwrap(), b"a"))
        };
        if q.try_push(b"b") == Err(SharedPushError::Full) {
            wait_once(&q, SharedSide::Push);
            q.try_push(b"b").unwrap();
        }
        consumer.join().unwrap();
    });
}

/// A task waits on an empty queue while another "process" closes it.
#[test]
fn pop_waiter_is_woken_by_close() {
    model(|| {
        let q = SharedQueue::heap(1, 4, 3).unwrap();
        let closer = {
            let q = q.clone();
            thread::spawn(move || {
                q.close();
            })
        };
        if q.try_pop() == Err(SharedPopError::Empty) {
            wait_once(&q, SharedSide::Pop);
            assert_eq!(q.try_pop(), Err(SharedPopError::Closed));
        }
        closer.join().unwrap();
    });
}
