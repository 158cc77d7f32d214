//! Loom models of the task waits (`src/queue/task.rs`): a task that
//! registers a `Waker` races the push, pop or close that should wake it, and
//! a task that gives up (deregisters) races them too. The task sleeps on a
//! loom condition variable until its waker fires, so a lost wake-up is a
//! deadlock that loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_waker`
#![cfg(ringstat_loom)]

use std::task::{Wake, Waker};

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use ringstat::queue::UnboundedQueue;
use ringstat::{PopError, PushError, Queue};

/// A task's wake-up: set by the waker, waited for by the task.
#[derive(Default)]
struct Flag {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.cond.notify_all();
    }
}

impl Flag {
    fn wait(&self) {
        let mut woken = self.woken.lock().unwrap();
        while !*woken {
            woken = self.cond.wait(woken).unwrap();
        }
    }
}

/// What a task does to pop: try, register, sleep until woken, deregister,
/// try again. `register(key, waker)` returns whether it registered.
fn task_pop<T>(
    try_pop: impl Fn() -> Result<T, PopError>,
    register: impl Fn(u64, &Waker) -> bool,
    deregister: impl Fn(u64) -> bool,
) -> Result<T, PopError> {
    for key in 1.. {
        match try_pop() {
            Err(PopError::Empty) => {}
            done => return done,
        }
        let flag = std::sync::Arc::new(Flag::default());
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        if register(key, &waker) {
            flag.wait();
            // Taken by the notifier that woke us: nothing left to remove.
            assert!(!deregister(key));
        } else {
            // An item was claimed but may not be published yet.
            thread::yield_now();
        }
    }
    unreachable!()
}

#[test]
fn a_task_waiting_for_an_item_is_woken_by_the_push() {
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(7).unwrap())
        };
        let got = task_pop(
            || q.try_pop(),
            |k, w| q.register_pop_waker(k, w),
            |k| q.deregister_pop_waker(k),
        );
        assert_eq!(got, Ok(7));
        producer.join().unwrap();
    });
}

#[test]
fn a_task_waiting_for_room_is_woken_by_the_pop() {
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        q.try_push(1).unwrap();
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_pop().unwrap())
        };
        let mut value = 2;
        for key in 1.. {
            match q.try_push(value) {
                Ok(()) => break,
                Err(PushError::Full(v)) => value = v,
                Err(PushError::Closed(_)) => unreachable!(),
            }
            let flag = std::sync::Arc::new(Flag::default());
            if q.register_push_waker(key, &Waker::from(std::sync::Arc::clone(&flag))) {
                flag.wait();
            } else {
                thread::yield_now();
            }
        }
        assert_eq!(consumer.join().unwrap(), 1);
        assert_eq!(q.try_pop(), Ok(2));
    });
}

#[test]
fn a_task_waiting_for_an_item_is_woken_by_close() {
    loom::model(|| {
        let q = Arc::new(Queue::<i32>::new(1));
        let closer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.close())
        };
        let got = task_pop(
            || q.try_pop(),
            |k, w| q.register_pop_waker(k, w),
            |k| q.deregister_pop_waker(k),
        );
        assert_eq!(got, Err(PopError::Closed));
        assert!(closer.join().unwrap());
    });
}

#[test]
fn a_task_on_the_unbounded_queue_is_woken_by_the_push() {
    loom::model(|| {
        let q = Arc::new(UnboundedQueue::new());
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(7).unwrap())
        };
        let got = task_pop(
            || q.try_pop(),
            |k, w| q.register_pop_waker(k, w),
            |k| q.deregister_pop_waker(k),
        );
        assert_eq!(got, Ok(7));
        producer.join().unwrap();
    });
}

#[test]
fn a_task_that_gives_up_takes_nothing_and_starves_no_thread() {
    // A task registers and then gives up (cancelled) while a push comes; a
    // parked thread must still get the item, and the task's registration
    // must be gone either way (taken by the push, or removed by the task).
    loom::model(|| {
        let q = Arc::new(Queue::new(1));
        let thread_consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.pop())
        };
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.try_push(7).unwrap())
        };
        let flag = std::sync::Arc::new(Flag::default());
        if q.register_pop_waker(1, &Waker::from(flag)) {
            q.deregister_pop_waker(1);
        }
        producer.join().unwrap();
        assert_eq!(thread_consumer.join().unwrap(), Ok(7));
        assert!(
            !q.deregister_pop_waker(1),
            "a registration outlived its task"
        );
    });
}
