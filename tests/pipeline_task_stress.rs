//! Stress test of the pipeline's task waits (`src/pipeline/task.rs`):
//! sender "tasks" (threads that wait like async tasks: register a waker,
//! sleep until it fires, try again) share a small pipeline with plain
//! blocking senders, and flush tasks run meanwhile; some senders give up
//! their waits (as a cancelled send does) and send nothing for those.
//! Checks conservation: the counter holds exactly the sends that returned
//! `Ok`, and every flush task saw the sends that returned before it began.
//! A lost wake-up hangs a task: its sleep has a watchdog.
//!
//! Sizes: 3 tasks and a thread of 10^5 sends each in release builds (`make
//! test-rust`), fewer in debug.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::thread;
use std::time::Duration;

use ringstat::pipeline::{Event, Pipeline, SendError};
use ringstat::stats::Registry;

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A watchdog on each sleep: a lost wake-up fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(30);

fn per_sender() -> u64 {
    if cfg!(debug_assertions) {
        20_000
    } else {
        100_000
    }
}

#[derive(Default)]
struct Flag {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.cond.notify_all();
    }
}

impl Flag {
    fn sleep(&self) {
        let (woken, _) = self
            .cond
            .wait_timeout_while(self.woken.lock().unwrap(), WATCHDOG, |w| !*w)
            .unwrap();
        assert!(*woken, "lost wake-up");
    }
}

/// One send as a task does it; `give_up`: abandon the first wait (the event
/// is then not sent). `true` if sent.
fn task_send(p: &Pipeline, ev: Event, give_up: bool) -> bool {
    loop {
        match p.try_send(ev) {
            Ok(()) => return true,
            Err(SendError::Full(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new(Flag::default());
        if p.register_send_waker(&ev, key, &Waker::from(Arc::clone(&flag))) {
            if give_up {
                p.deregister_waker(key);
                return false;
            }
            flag.sleep();
            p.deregister_waker(key);
        } else {
            thread::yield_now();
        }
    }
}

fn task_flush(p: &Pipeline) {
    let mut flush = p.flush_task();
    while !flush.try_complete() {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let flag = Arc::new(Flag::default());
        if flush.register_waker(key, &Waker::from(Arc::clone(&flag))) {
            flag.sleep();
            p.deregister_waker(key);
        } else {
            thread::yield_now();
        }
    }
}

#[test]
fn task_senders_and_flushes_with_blocking_senders() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(2)
        .capacity(8)
        .batch_size(2)
        .build()
        .unwrap();
    let c = p.counter("c").unwrap();
    let n = per_sender();
    let sent_by_tasks = AtomicU64::new(0);
    thread::scope(|s| {
        for t in 0..3u64 {
            let (p, reg, sent) = (&p, &reg, &sent_by_tasks);
            let name = format!("task{t}");
            let mine_c = p.counter(&name).unwrap();
            s.spawn(move || {
                let mut mine = 0;
                for i in 0..n {
                    // Keyed events spread over both workers.
                    let ev = Event::count(mine_c).with_key(t * n + i);
                    if task_send(p, ev, i % 97 == 0) {
                        mine += 1;
                    }
                    if i % 1_000 == 0 {
                        // Every send of this task that returned is applied,
                        // and none that gave up.
                        task_flush(p);
                        assert_eq!(reg.counter(&name, &[]).unwrap().get(), mine);
                    }
                }
                sent.fetch_add(mine, Ordering::Relaxed);
            });
        }
        let p = &p;
        s.spawn(move || {
            for _ in 0..n {
                p.send(Event::count(c)).unwrap();
            }
        });
    });
    task_flush(&p);
    let by_tasks = sent_by_tasks.load(Ordering::Relaxed);
    let applied: u64 = (0..3)
        .map(|t| reg.counter(&format!("task{t}"), &[]).unwrap().get())
        .sum();
    assert_eq!(applied, by_tasks);
    assert_eq!(reg.counter("c", &[]).unwrap().get(), n);
    let total = by_tasks + n;
    let closer = || p.close_until(Some(std::time::Instant::now()));
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    while !closer() {
        let flag = Arc::new(Flag::default());
        if p.register_close_waker(key, &Waker::from(Arc::clone(&flag))) {
            flag.sleep();
        }
    }
    let s = p.stats();
    assert_eq!((s.received, s.applied, s.dropped), (total, total, 0));
}
