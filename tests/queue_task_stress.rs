//! Stress test of the task waits (`Queue::register_pop_waker` and friends):
//! producers and consumers that wait like async tasks (register a `Waker`,
//! sleep until it fires) share a queue with threads that park, while some
//! tasks give up their waits (as a cancelled `get` does). Checks
//! conservation (every item popped exactly once) and counts lost wake-ups:
//! a task whose sleep runs out a slice while what it waits for is there,
//! and that no wake-up reaches within one more slice.
//!
//! Sizes: 4 * 10^5 items in release builds (`make test-rust` runs this with
//! `--release --features test-counters`), fewer in debug.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use ringstat::queue::UnboundedQueue;
use ringstat::{PopError, PushError, Queue};

/// Keys of registrations: unique per queue side, as the API asks.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// How long a task sleeps before it checks whether its wake-up is lost.
const SLICE: Duration = Duration::from_millis(200);

fn items_per_producer() -> usize {
    if cfg!(debug_assertions) {
        10_000
    } else {
        100_000
    }
}

/// A task's waker: unparks its thread.
struct Unpark {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Counts of what the tasks saw.
#[derive(Default)]
struct Seen {
    lost: AtomicUsize,
    gave_up: AtomicUsize,
    slept: AtomicUsize,
}

/// Waits like a task for what `register` registers for: returns at once if
/// it registered nothing. Every `give_up`-th wait is abandoned instead (the
/// registration removed), as by a cancelled task.
fn wait_as_task(
    seen: &Seen,
    key: u64,
    give_up: bool,
    register: impl Fn(u64, &Waker) -> bool,
    deregister: impl Fn(u64) -> bool,
    ready: impl Fn() -> bool,
) {
    let flag = Arc::new(Unpark {
        woken: AtomicBool::new(false),
        thread: thread::current(),
    });
    if !register(key, &Waker::from(Arc::clone(&flag))) {
        return;
    }
    if give_up {
        seen.gave_up.fetch_add(1, Ordering::Relaxed);
        deregister(key);
        return;
    }
    seen.slept.fetch_add(1, Ordering::Relaxed);
    let mut slice_end = Instant::now() + SLICE;
    let mut grace = false;
    while !flag.woken.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < slice_end {
            thread::park_timeout(slice_end - now);
            continue;
        }
        if !grace && ready() {
            // What we wait for is there and nobody woke us: a wake-up that
            // is late or lost. Late ones come within one more slice.
            grace = true;
            slice_end = Instant::now() + SLICE;
        } else if grace {
            seen.lost.fetch_add(1, Ordering::Relaxed);
            eprintln!("lost wake-up (key {key})");
            break;
        } else {
            slice_end = Instant::now() + SLICE;
        }
    }
    deregister(key);
}

/// Per-item tally: every item must be popped exactly once.
fn tally(n: usize) -> Arc<Vec<AtomicU8>> {
    Arc::new((0..n).map(|_| AtomicU8::new(0)).collect())
}

fn check_once(seen: &[AtomicU8]) {
    for (id, n) in seen.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 1, "item {id} popped {n:?} times");
    }
}

#[test]
fn tasks_and_threads_share_a_ring_without_losing_items_or_wakeups() {
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 3;
    let per = items_per_producer();
    let q = Arc::new(Queue::new(4));
    let seen = Arc::new(Seen::default());
    let popped = tally(PRODUCERS * per);

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (q, seen) = (Arc::clone(&q), Arc::clone(&seen));
            thread::spawn(move || {
                let mut key = 0;
                for i in p * per..(p + 1) * per {
                    if p == 0 {
                        q.push(i).unwrap(); // a thread that parks
                        continue;
                    }
                    let mut v = i;
                    loop {
                        match q.try_push(v) {
                            Ok(()) => break,
                            Err(PushError::Full(back)) => v = back,
                            Err(PushError::Closed(_)) => unreachable!(),
                        }
                        key += 1;
                        wait_as_task(
                            &seen,
                            next_key(),
                            key % 5 == 0,
                            |k, w| q.register_push_waker(k, w),
                            |k| q.deregister_push_waker(k),
                            || !q.is_full() || q.is_closed(),
                        );
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (q, seen, popped) = (Arc::clone(&q), Arc::clone(&seen), Arc::clone(&popped));
            thread::spawn(move || {
                let mut key = 0;
                loop {
                    let got = if c == 0 {
                        q.pop() // a thread that parks
                    } else {
                        match q.try_pop() {
                            Err(PopError::Empty) => {
                                key += 1;
                                wait_as_task(
                                    &seen,
                                    next_key(),
                                    key % 3 == 0,
                                    |k, w| q.register_pop_waker(k, w),
                                    |k| q.deregister_pop_waker(k),
                                    || !q.is_empty() || q.is_closed(),
                                );
                                continue;
                            }
                            got => got,
                        }
                    };
                    match got {
                        Ok(id) => {
                            popped[id].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    for c in consumers {
        c.join().unwrap();
    }
    check_once(&popped);
    assert_eq!(seen.lost.load(Ordering::Relaxed), 0, "lost wake-ups");
    assert!(seen.slept.load(Ordering::Relaxed) > 0, "no task ever slept");
    assert!(
        seen.gave_up.load(Ordering::Relaxed) > 0,
        "no task ever gave up"
    );
    if let Some(n) = q.debug_missed_wakeups() {
        assert_eq!(n, 0, "parked threads lost wake-ups");
    }
}

#[test]
fn tasks_and_threads_share_an_unbounded_queue() {
    // Whether a task finds the queue empty and sleeps depends on scheduling:
    // rounds until one did (each round checks conservation and wake-ups).
    let slept = (0..20).find(|_| unbounded_round() > 0);
    assert!(slept.is_some(), "no task ever slept in 20 rounds");
}

/// One round of the unbounded test; how many task waits slept.
fn unbounded_round() -> usize {
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 3;
    let per = items_per_producer();
    let q = Arc::new(UnboundedQueue::new());
    let seen = Arc::new(Seen::default());
    let popped = tally(PRODUCERS * per);

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for i in p * per..(p + 1) * per {
                    q.try_push(i).unwrap();
                    if i % 64 == 0 {
                        thread::yield_now(); // let the queue run empty
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (q, seen, popped) = (Arc::clone(&q), Arc::clone(&seen), Arc::clone(&popped));
            thread::spawn(move || {
                let mut key = 0;
                loop {
                    let got = if c == 0 {
                        q.pop()
                    } else {
                        match q.try_pop() {
                            Err(PopError::Empty) => {
                                key += 1;
                                wait_as_task(
                                    &seen,
                                    next_key(),
                                    key % 3 == 0,
                                    |k, w| q.register_pop_waker(k, w),
                                    |k| q.deregister_pop_waker(k),
                                    || !q.is_empty() || q.is_closed(),
                                );
                                continue;
                            }
                            got => got,
                        }
                    };
                    match got {
                        Ok(id) => {
                            popped[id].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q.close();
    for c in consumers {
        c.join().unwrap();
    }
    check_once(&popped);
    assert_eq!(seen.lost.load(Ordering::Relaxed), 0, "lost wake-ups");
    if let Some(n) = q.debug_missed_wakeups() {
        assert_eq!(n, 0, "parked threads lost wake-ups");
    }
    seen.slept.load(Ordering::Relaxed)
}
