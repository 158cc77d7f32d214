//! Stress tests for `Queue<T>`: N producers x M consumers, with single and
//! batch operations, close mid-stream, and overwrite. Conservation is checked
//! exactly: every item id is accounted for exactly once (a per-id tally), and
//! each consumer sees each producer's items in the order they were pushed.
//!
//! Sizes: 10^7 items in release builds (`cargo test --release --test
//! queue_stress`), fewer in debug, far fewer under miri.
//!
//! None may hang: a watchdog (`tests/watchdog`) fails a test that makes no
//! progress for 120 s, naming what it waited for. And none may lose a
//! wake-up: each ends by checking that no park ran out its slice while the
//! caller could already go on (`Queue::debug_missed_wakeups`; counted in
//! debug builds and with `--features test-counters`).

mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ringstat::queue::Closed;
use ringstat::{PopError, PushError, Queue};
use watchdog::{Progress, Watchdog};

const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;

fn total_items() -> usize {
    if cfg!(miri) {
        2_000
    } else if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    }
}

/// Item ids are `producer * per_producer + seq`.
struct Tally {
    seen: Vec<AtomicU8>,
    per_producer: usize,
}

impl Tally {
    fn new(total: usize) -> Self {
        Self {
            seen: (0..total).map(|_| AtomicU8::new(0)).collect(),
            per_producer: total / PRODUCERS,
        }
    }

    fn mark(&self, id: usize) {
        let before = self.seen[id].fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "item {id} delivered twice");
    }

    fn count(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) != 0)
            .count()
    }
}

/// Consumer-side check: per producer, ids arrive strictly increasing.
struct OrderCheck(Vec<Option<usize>>);

impl OrderCheck {
    fn new() -> Self {
        Self(vec![None; PRODUCERS])
    }
    /// Counts `id` as delivered (once) and checks its producer's order.
    fn record(&mut self, tally: &Tally, id: usize) {
        tally.mark(id);
        self.see(id, tally.per_producer);
    }

    fn see(&mut self, id: usize, per_producer: usize) {
        let p = id / per_producer;
        if let Some(last) = self.0[p] {
            assert!(id > last, "producer {p}: {id} after {last}");
        }
        self.0[p] = Some(id);
    }
}

/// Fails if a park of `q` ran out its slice while its caller could already
/// go on: a lost wake-up, which the slices would otherwise hide as latency.
fn assert_no_missed_wakeups<T>(q: &Queue<T>) {
    match q.debug_missed_wakeups() {
        Some(n) => assert_eq!(
            n, 0,
            "{n} parks ran out their slice while the item or slot they waited for was there, \
             and no wake-up came: lost wake-ups"
        ),
        None => eprintln!("missed wake-ups not counted (release build without `test-counters`)"),
    }
}

/// The watchdog of a test whose `threads` threads report to `progress`.
fn watch(test: &'static str, what: String, progress: &Arc<Progress>) -> Watchdog {
    let progress = Arc::clone(progress);
    Watchdog::start(test, what, move || progress.total())
}

/// Closes the queue if a thread panics, so the others stop instead of
/// blocking forever and the test fails rather than hangs.
struct CloseOnPanic<'a>(&'a Queue<usize>);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.close();
        }
    }
}

/// Consumers pop (alternating single and batch calls) until closed and
/// drained; consumer `c` reports its count to `progress` slot `c`.
fn spawn_consumers(
    q: &Arc<Queue<usize>>,
    tally: &Arc<Tally>,
    progress: &Arc<Progress>,
) -> Vec<thread::JoinHandle<usize>> {
    (0..CONSUMERS)
        .map(|c| {
            let q = Arc::clone(q);
            let tally = Arc::clone(tally);
            let progress = Arc::clone(progress);
            thread::spawn(move || {
                let _guard = CloseOnPanic(&q);
                let mut order = OrderCheck::new();
                let mut got = 0;
                let mut buf = Vec::with_capacity(64);
                let mut round = c;
                loop {
                    progress.set(c, got);
                    round += 1;
                    if round % 2 == 0 {
                        match q.pop() {
                            Ok(id) => {
                                order.record(&tally, id);
                                got += 1;
                            }
                            Err(PopError::Closed) => return got,
                            Err(PopError::Empty) => unreachable!("blocking pop"),
                        }
                    } else {
                        buf.clear();
                        match q.pop_batch(&mut buf, 1 + round % 64) {
                            Ok(_) => {
                                for &id in &buf {
                                    order.record(&tally, id);
                                }
                                got += buf.len();
                            }
                            Err(Closed) => return got,
                        }
                    }
                }
            })
        })
        .collect()
}

#[test]
fn mpmc_every_item_exactly_once() {
    let total = total_items();
    let per = total / PRODUCERS;
    let q = Arc::new(Queue::new(1024));
    let tally = Arc::new(Tally::new(total));
    let progress = Progress::new(CONSUMERS + PRODUCERS);
    let dog = watch(
        "mpmc_every_item_exactly_once",
        format!("{PRODUCERS} producers to push {total} items"),
        &progress,
    );
    let consumers = spawn_consumers(&q, &tally, &progress);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&q);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                let ids = p * per..(p + 1) * per;
                let mut batch = Vec::with_capacity(64);
                for (n, id) in ids.enumerate() {
                    progress.set(CONSUMERS + p, n);
                    if id % 3 == 0 {
                        // Keep per-producer order: flush the pending batch first.
                        q.push_batch(&mut batch).unwrap();
                        q.push(id).unwrap();
                    } else {
                        batch.push(id);
                        if batch.len() == 1 + id % 64 {
                            q.push_batch(&mut batch).unwrap();
                        }
                    }
                }
                q.push_batch(&mut batch).unwrap();
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    dog.waiting_for("the consumers to drain the closed queue");
    q.close();
    let popped: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    drop(dog);
    assert_eq!(popped, total);
    assert_eq!(tally.count(), total);
    assert_no_missed_wakeups(&q);
}

#[test]
fn close_mid_stream_loses_nothing() {
    let total = total_items();
    let per = total / PRODUCERS;
    // Small capacity: producers block often and are woken by the close.
    let q = Arc::new(Queue::new(64));
    let tally = Arc::new(Tally::new(total));
    let pushed = Arc::new(AtomicUsize::new(0));
    let progress = Progress::new(CONSUMERS + PRODUCERS);
    let dog = watch(
        "close_mid_stream_loses_nothing",
        format!("a third of {total} items to go through"),
        &progress,
    );
    let consumers = spawn_consumers(&q, &tally, &progress);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&q);
            let pushed = Arc::clone(&pushed);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                let mut ok = 0;
                let mut batch = Vec::new();
                for id in p * per..(p + 1) * per {
                    progress.set(CONSUMERS + p, ok);
                    if id % 2 == 0 {
                        match q.push(id) {
                            Ok(()) => ok += 1,
                            Err(PushError::Closed(v)) => {
                                assert_eq!(v, id, "the value comes back");
                                break;
                            }
                            Err(PushError::Full(_)) => unreachable!("blocking push"),
                        }
                    } else {
                        batch.push(id);
                        let before = batch.len();
                        let res = q.push_batch(&mut batch);
                        ok += before - batch.len();
                        if res.is_err() {
                            break;
                        }
                    }
                }
                pushed.fetch_add(ok, Ordering::Relaxed);
            })
        })
        .collect();
    // Close once roughly a third of the items went through.
    while tally.count() < total / 3 {
        thread::yield_now();
    }
    dog.waiting_for("the producers and consumers to stop after the close");
    assert!(q.close());
    for p in producers {
        p.join().unwrap();
    }
    let popped: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    drop(dog);
    let pushed = pushed.load(Ordering::Relaxed);
    assert!(pushed < total, "the close cut the stream short");
    assert_eq!(
        popped, pushed,
        "every item pushed before the close is popped"
    );
    assert_eq!(tally.count(), pushed);
    assert_no_missed_wakeups(&q);
}

#[test]
fn batch_pops_finishing_out_of_order_lose_nothing_and_release_everything() {
    // Only batch pops, so every slot is released either through the index
    // (by a long run that finished in order) or per slot (a short run, or
    // one that finished before a run ahead of it) and swept. With four
    // consumers, runs finish out of order all the time. The consumers stop
    // once every item is counted, leaving the queue open, so that a last
    // ring-long run on one thread can show the index catching up.
    let total = total_items();
    let per = total / PRODUCERS;
    let q = Arc::new(Queue::new(512));
    let tally = Arc::new(Tally::new(total));
    let popped = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The consumers' progress is `popped`; slots for the producers.
    let progress = Progress::new(PRODUCERS);
    let dog = {
        let (progress, popped) = (Arc::clone(&progress), Arc::clone(&popped));
        Watchdog::start(
            "batch_pops_finishing_out_of_order_lose_nothing_and_release_everything",
            format!("{PRODUCERS} producers to push {total} items"),
            move || progress.total() + popped.load(Ordering::Relaxed),
        )
    };
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let q = Arc::clone(&q);
            let tally = Arc::clone(&tally);
            let popped = Arc::clone(&popped);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let _guard = CloseOnPanic(&q);
                let mut order = OrderCheck::new();
                let mut buf = Vec::with_capacity(64);
                let mut round = c;
                while popped.load(Ordering::Relaxed) < total && !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let wait = Duration::from_millis(1);
                    q.pop_batch_timeout(&mut buf, 1 + round % 64, wait).unwrap();
                    popped.fetch_add(buf.len(), Ordering::Relaxed);
                    for id in buf.drain(..) {
                        order.record(&tally, id);
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&q);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                let mut batch = Vec::with_capacity(64);
                for (n, id) in (p * per..(p + 1) * per).enumerate() {
                    progress.set(p, n);
                    batch.push(id);
                    if batch.len() == 1 + id % 64 {
                        q.push_batch(&mut batch).unwrap();
                    }
                }
                q.push_batch(&mut batch).unwrap();
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    dog.waiting_for("the consumers to pop every item");
    // A lost item must fail the test, not hang it: once the consumers have
    // made no progress for 30 s, stop them and let the count speak.
    let mut last = (popped.load(Ordering::Relaxed), std::time::Instant::now());
    while popped.load(Ordering::Relaxed) < total {
        thread::sleep(Duration::from_millis(10));
        let now = popped.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, std::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().unwrap();
    }
    drop(dog);
    assert_eq!(
        popped.load(Ordering::Relaxed),
        total,
        "items lost: the consumers stopped after 30 s without progress"
    );
    assert_eq!(tally.count(), total);
    assert!(q.is_empty());
    // A ring's worth in one batch and out in one: the pop takes at most two
    // runs (the ring's end splits it), and the long one sweeps the index up
    // to itself, so at most a short run (under 16 slots) is left behind.
    let mut ring: Vec<usize> = (0..q.capacity()).collect();
    assert_eq!(q.try_push_batch(&mut ring), Ok(q.capacity()));
    let mut out = Vec::new();
    assert_eq!(q.try_pop_batch(&mut out, q.capacity()), Ok(q.capacity()));
    assert_eq!(out, (0..q.capacity()).collect::<Vec<_>>());
    let lag = q.debug_release_lag();
    assert!(lag < 16, "the release index is {lag} positions behind head");
    assert_no_missed_wakeups(&q);
}

#[test]
fn force_push_displaced_plus_popped_equals_pushed() {
    let total = total_items();
    let per = total / PRODUCERS;
    let q = Arc::new(Queue::new(256));
    let tally = Arc::new(Tally::new(total));
    let start = Arc::new(Barrier::new(PRODUCERS + CONSUMERS));
    let progress = Progress::new(CONSUMERS + PRODUCERS);
    let dog = watch(
        "force_push_displaced_plus_popped_equals_pushed",
        format!("{PRODUCERS} producers to force-push {total} items"),
        &progress,
    );
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let q = Arc::clone(&q);
            let tally = Arc::clone(&tally);
            let start = Arc::clone(&start);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                start.wait();
                let _guard = CloseOnPanic(&q);
                let mut order = OrderCheck::new();
                let mut got = 0;
                if c % 2 == 0 {
                    while let Ok(id) = q.pop() {
                        order.record(&tally, id);
                        got += 1;
                        progress.set(c, got);
                    }
                } else {
                    // Batch pops release through the index, which displacing
                    // pushes must also move past.
                    let mut buf = Vec::with_capacity(64);
                    while q.pop_batch(&mut buf, 1 + got % 64).is_ok() {
                        for id in buf.drain(..) {
                            order.record(&tally, id);
                            got += 1;
                        }
                        progress.set(c, got);
                    }
                }
                got
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = Arc::clone(&q);
            let tally = Arc::clone(&tally);
            let start = Arc::clone(&start);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                start.wait();
                let mut displaced = 0;
                for (n, id) in (p * per..(p + 1) * per).enumerate() {
                    progress.set(CONSUMERS + p, n);
                    if let Some(old) = q.force_push(id).unwrap() {
                        tally.mark(old);
                        displaced += 1;
                    }
                }
                displaced
            })
        })
        .collect();
    let displaced: usize = producers.into_iter().map(|p| p.join().unwrap()).sum();
    dog.waiting_for("the consumers to drain the closed queue");
    q.close();
    let popped: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    drop(dog);
    assert_eq!(displaced + popped, total);
    assert_eq!(tally.count(), total, "nothing lost, nothing duplicated");
    assert_no_missed_wakeups(&q);
}

#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn drops_every_item_once_across_threads() {
    let per = if cfg!(miri) { 100 } else { 50_000 };
    let dropped = Arc::new(AtomicUsize::new(0));
    let q = Arc::new(Queue::new(32));
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Progress::new(2);
    let dog = watch(
        "drops_every_item_once_across_threads",
        format!("2 producers to push {per} items each"),
        &progress,
    );
    let consumer = {
        let q = Arc::clone(&q);
        let stop = Arc::clone(&stop);
        // Pops (and drops) some items, leaves the rest in the queue.
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(q.try_pop());
            }
        })
    };
    let producers: Vec<_> = (0..2)
        .map(|i| {
            let q = Arc::clone(&q);
            let dropped = Arc::clone(&dropped);
            let progress = Arc::clone(&progress);
            thread::spawn(move || {
                for n in 0..per {
                    progress.set(i, n);
                    let item = Counted(Arc::clone(&dropped));
                    if (n + i) % 2 == 0 {
                        drop(q.force_push(item).unwrap());
                    } else {
                        drop(q.try_push(item));
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    drop(dog);
    // Leave a full queue (part of it wrapped around) for `Drop` to release.
    for _ in 0..40 {
        drop(q.force_push(Counted(Arc::clone(&dropped))).unwrap());
    }
    assert_eq!(q.len(), 32);
    assert_no_missed_wakeups(&q);
    drop(q);
    assert_eq!(dropped.load(Ordering::Relaxed), 2 * per + 40);
}

/// One way for a blocked operation to be woken: `wait` blocks on a queue of
/// capacity 2 (empty, or full with 0 and 1) until `act`, on another thread,
/// lets it go on.
struct WakePath {
    name: &'static str,
    start_full: bool,
    wait: fn(&Queue<usize>),
    act: fn(&Queue<usize>),
}

const WAKE_PATHS: &[WakePath] = &[
    WakePath {
        name: "a push wakes a parked pop",
        start_full: false,
        wait: |q| assert_eq!(q.pop(), Ok(7)),
        act: |q| q.push(7).unwrap(),
    },
    WakePath {
        name: "a batch push wakes a parked batch pop",
        start_full: false,
        wait: |q| {
            let mut out = Vec::new();
            assert!(q.pop_batch(&mut out, 2).unwrap() > 0);
            assert_eq!(out[0], 7);
        },
        act: |q| q.push_batch(&mut vec![7, 8]).unwrap(),
    },
    WakePath {
        name: "a force_push into room wakes a parked pop",
        start_full: false,
        wait: |q| assert_eq!(q.pop(), Ok(7)),
        act: |q| assert_eq!(q.force_push(7), Ok(None)),
    },
    WakePath {
        name: "a pop wakes a parked push",
        start_full: true,
        wait: |q| q.push(7).unwrap(),
        act: |q| assert_eq!(q.pop(), Ok(0)),
    },
    WakePath {
        name: "a batch pop wakes a parked batch push",
        start_full: true,
        wait: |q| q.push_batch(&mut vec![7, 8]).unwrap(),
        act: |q| {
            let mut out = Vec::new();
            assert_eq!(q.pop_batch(&mut out, 2), Ok(2));
        },
    },
    WakePath {
        name: "a close wakes a parked pop",
        start_full: false,
        wait: |q| assert_eq!(q.pop(), Err(PopError::Closed)),
        act: |q| assert!(q.close()),
    },
    WakePath {
        name: "a close wakes a parked push",
        start_full: true,
        wait: |q| assert_eq!(q.push(7), Err(PushError::Closed(7))),
        act: |q| assert!(q.close()),
    },
];

#[test]
fn parked_waiters_are_woken_on_every_path() {
    // The acting side lets the waiter spin, yield and park (tens of
    // microseconds) before it acts. This only shapes the interleaving: a
    // waiter that has not parked yet leaves its round untested, never failed.
    let let_it_park = Duration::from_millis(20);
    let rounds = if cfg!(miri) { 1 } else { 5 };
    let progress = Progress::new(1);
    let dog = watch(
        "parked_waiters_are_woken_on_every_path",
        "the first path".into(),
        &progress,
    );
    for (i, path) in WAKE_PATHS.iter().enumerate() {
        dog.waiting_for(format!("a waiter to return: {}", path.name));
        for round in 0..rounds {
            let q = Arc::new(Queue::new(2));
            if path.start_full {
                q.push_batch(&mut vec![0, 1]).unwrap();
            }
            let waiter = {
                let q = Arc::clone(&q);
                let wait = path.wait;
                thread::spawn(move || wait(&q))
            };
            thread::sleep(let_it_park);
            (path.act)(&q);
            waiter.join().unwrap();
            progress.set(0, i * rounds + round + 1);
            if let Some(n) = q.debug_missed_wakeups() {
                assert_eq!(n, 0, "{}: the wake-up was lost (round {round})", path.name);
            }
        }
    }
}
