//! The pipeline's task waits (`src/pipeline/task.rs`), made deterministic by
//! a clock that stalls the worker: a send waker woken by the worker's pop, a
//! deregistered one not woken, a flush task waiting for room and answers, a
//! close waker woken by the workers' exit.

use std::sync::{Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use ringstat::pipeline::{Event, Pipeline, SendError};
use ringstat::stats::Registry;

/// A watchdog on every wait: a lost wake-up fails the test instead of
/// hanging it (not a timing assertion).
const WATCHDOG: Duration = Duration::from_secs(30);

/// A clock whose readers block while it is shut: stalls a worker at will
/// (a worker reads the clock to stamp an event sent with `ts` 0, and to
/// time its refreshes). Counts the readers it holds.
#[derive(Debug, Default)]
struct Gate {
    /// (shut, readers blocked now)
    state: Mutex<(bool, u32)>,
    changed: Condvar,
}

impl Gate {
    fn set(&self, shut: bool) {
        self.state.lock().unwrap().0 = shut;
        self.changed.notify_all();
    }

    /// Waits until a reader (the worker) is held.
    fn wait_held(&self) {
        let (g, _) = self
            .changed
            .wait_timeout_while(self.state.lock().unwrap(), WATCHDOG, |s| s.1 == 0)
            .unwrap();
        assert!(g.1 > 0, "the worker never read the shut clock");
    }
}

impl ringstat::stats::Clock for Gate {
    fn now_nanos(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            s.1 += 1;
            self.changed.notify_all();
            while s.0 {
                s = self.changed.wait(s).unwrap();
            }
            s.1 -= 1;
        }
        1
    }
}

/// Opens the gate when dropped, so a failed assertion does not leave the
/// worker stalled and the pipeline's drop waiting for it.
struct Reopen(Arc<Gate>);

impl Drop for Reopen {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// A task's wake-up, counted.
#[derive(Default)]
struct Flag {
    woken: Mutex<u32>,
    cond: Condvar,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap() += 1;
        self.cond.notify_all();
    }
}

impl Flag {
    fn count(&self) -> u32 {
        *self.woken.lock().unwrap()
    }

    /// Waits until woken more than `seen` times.
    fn wait_past(&self, seen: u32) {
        let (g, timeout) = self
            .cond
            .wait_timeout_while(self.woken.lock().unwrap(), WATCHDOG, |w| *w <= seen)
            .unwrap();
        assert!(!timeout.timed_out() || *g > seen, "lost wake-up");
    }
}

/// A one-worker pipeline stalled by a shut gate, its queue full: returns the
/// pipeline, its registry, the event sent and how many were sent.
fn stalled(gate: &Arc<Gate>) -> (Pipeline, Registry, Event, u64) {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(1)
        .capacity(2)
        .batch_size(1)
        .clock(gate.clone())
        .build()
        .unwrap();
    let ev = Event::count(p.counter("c").unwrap());
    gate.set(true);
    let reopen = Reopen(Arc::clone(gate)); // until set up
                                           // The worker stalls reading the clock (to stamp this event, or to time a
                                           // refresh): wait until it does; then nothing drains the queue.
    p.send(ev).unwrap();
    gate.wait_held();
    let mut sent = 1;
    while p.try_send(ev).is_ok() {
        sent += 1;
        assert!(sent < 100);
    }
    std::mem::forget(reopen); // the caller's guard takes over
    (p, reg, ev, sent)
}

#[test]
fn a_full_queue_wakes_a_send_waker_when_the_worker_pops() {
    let gate = Arc::new(Gate::default());
    let (p, reg, ev, sent) = stalled(&gate);
    let _reopen = Reopen(Arc::clone(&gate));
    assert!(matches!(p.try_send(ev), Err(SendError::Full(_))));
    let flag = Arc::new(Flag::default());
    assert!(p.register_send_waker(&ev, 1, &Waker::from(Arc::clone(&flag))));
    assert_eq!(flag.count(), 0);
    gate.set(false);
    flag.wait_past(0);
    assert!(!p.deregister_waker(1), "fired, so no longer registered");
    // Woken: a try may still lose the room to another sender; none here.
    assert!(p.try_send(ev).is_ok());
    p.close();
    assert_eq!(reg.counter("c", &[]).unwrap().get(), sent + 1);
}

#[test]
fn a_deregistered_send_waker_is_not_woken() {
    let gate = Arc::new(Gate::default());
    let (p, _reg, ev, _) = stalled(&gate);
    let _reopen = Reopen(Arc::clone(&gate));
    let flag = Arc::new(Flag::default());
    assert!(p.register_send_waker(&ev, 7, &Waker::from(Arc::clone(&flag))));
    assert!(p.deregister_waker(7));
    assert!(!p.deregister_waker(7));
    gate.set(false);
    p.flush(); // every pop that could have woken it has happened
    assert_eq!(flag.count(), 0);
    // Room now: nothing is registered.
    assert!(!p.register_send_waker(&ev, 8, &Waker::from(flag)));
}

#[test]
fn a_flush_task_waits_for_room_then_for_the_answer() {
    let gate = Arc::new(Gate::default());
    let (p, reg, _, sent) = stalled(&gate);
    let _reopen = Reopen(Arc::clone(&gate));
    let mut flush = p.flush_task();
    assert!(!flush.try_complete(), "flushed past a stalled worker");
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    // No room for the marker: registered with the queue.
    assert!(flush.register_waker(1, &waker));
    gate.set(false);
    flag.wait_past(0); // the worker's pop made room
    let mut key = 1;
    loop {
        p.deregister_waker(key);
        if flush.try_complete() {
            break;
        }
        key += 1;
        let seen = flag.count();
        if flush.register_waker(key, &waker) {
            flag.wait_past(seen);
        }
    }
    assert_eq!(reg.counter("c", &[]).unwrap().get(), sent);
    assert!(flush.try_complete());
    assert!(
        !flush.register_waker(99, &waker),
        "done: nothing to wait for"
    );
}

#[test]
fn a_close_waker_is_woken_once_the_workers_exit() {
    let gate = Arc::new(Gate::default());
    let (p, reg, ev, sent) = stalled(&gate);
    let _reopen = Reopen(Arc::clone(&gate));
    assert!(
        !p.close_until(Some(Instant::now())),
        "closed past a stalled worker"
    );
    assert!(p.is_closed());
    assert!(matches!(p.try_send(ev), Err(SendError::Closed(_))));
    let flag = Arc::new(Flag::default());
    assert!(p.register_close_waker(3, &Waker::from(Arc::clone(&flag))));
    assert_eq!(flag.count(), 0);
    gate.set(false);
    flag.wait_past(0);
    assert!(!p.deregister_waker(3));
    assert!(p.close_until(Some(Instant::now())));
    assert!(!p.register_close_waker(4, &Waker::from(flag)));
    assert_eq!(reg.counter("c", &[]).unwrap().get(), sent);
}
