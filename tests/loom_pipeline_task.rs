//! Loom models of the pipeline's task waits (`src/pipeline/task.rs`): a task
//! that registers a waker for a flush's answer, or for the workers' exit,
//! races the worker that answers (or exits). The task sleeps on a loom
//! condition variable until its waker fires, so a lost wake-up is a deadlock
//! that loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_pipeline_task`
#![cfg(ringstat_loom)]

use std::task::{Wake, Waker};
use std::time::Instant;

use loom::sync::{Condvar, Mutex};
use ringstat::pipeline::{Event, Pipeline};
use ringstat::stats::Registry;

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

/// What a task does: try; register (`false`: try again); sleep until woken;
/// deregister (a no-op once fired); try again.
fn task(
    mut attempt: impl FnMut() -> bool,
    register: impl Fn(u64, &Waker) -> bool,
    deregister: impl Fn(u64) -> bool,
) {
    for key in 1.. {
        if attempt() {
            return;
        }
        let flag = std::sync::Arc::new(Flag::default());
        if register(key, &Waker::from(std::sync::Arc::clone(&flag))) {
            flag.wait();
            // Taken by the answer that woke us: nothing left to remove.
            assert!(!deregister(key));
        } else {
            loom::thread::yield_now();
        }
    }
}

#[test]
fn a_flush_task_is_woken_by_the_workers_answer() {
    loom::model(|| {
        let reg = Registry::new();
        let p = Pipeline::builder(&reg)
            .workers(1)
            .capacity(2)
            .build()
            .unwrap();
        let c = p.counter("c").unwrap();
        p.send(Event::count(c)).unwrap();
        let mut flush = p.flush_task();
        let f = std::cell::RefCell::new(&mut flush);
        task(
            || f.borrow_mut().try_complete(),
            |k, w| f.borrow().register_waker(k, w),
            |k| p.deregister_waker(k),
        );
        assert_eq!(reg.counter("c", &[]).unwrap().get(), 1);
        p.close();
    });
}

#[test]
fn a_close_task_is_woken_by_the_workers_exit() {
    loom::model(|| {
        let reg = Registry::new();
        let p = Pipeline::builder(&reg)
            .workers(1)
            .capacity(2)
            .build()
            .unwrap();
        let c = p.counter("c").unwrap();
        p.send(Event::count(c)).unwrap();
        task(
            || p.close_until(Some(Instant::now())),
            |k, w| p.register_close_waker(k, w),
            |k| p.deregister_waker(k),
        );
        assert_eq!(reg.counter("c", &[]).unwrap().get(), 1);
    });
}
