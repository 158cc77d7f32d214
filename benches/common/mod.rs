//! Contenders shared by the queue benchmarks: ringstat's `Queue` and the
//! anchors (crossbeam `ArrayQueue`, crossbeam-channel, flume, std
//! `sync_channel`) behind one small trait, and the transfers whose anchors
//! do not fit it: `rtrb` (single producer, single consumer, each thread
//! owning its end) and batches moved as one element each.

#![allow(dead_code)]

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

/// A bounded queue of `u64` as the benchmarks drive it.
///
/// Every contender's methods are `#[inline(always)]`: with plain `#[inline]`,
/// whether LLVM inlines a wrapper into the transfer loop depends on how many
/// call sites the wrapper has in this binary, and an out-of-line call per
/// item cost about a quarter of the throughput in a scratch harness (114 vs
/// 150 M items/s, pinned 1P/1C, with the same queue code executed).
pub trait Contender: Send + Sync + 'static {
    /// Display name.
    const NAME: &'static str;
    /// Whether several threads may pop at once.
    const MULTI_CONSUMER: bool = true;
    fn with_capacity(cap: usize) -> Self;
    /// Pushes, waiting while full (the contender's own way of waiting).
    fn push(&self, v: u64);
    /// Pops, waiting while empty.
    fn pop(&self) -> u64;
    /// Non-blocking pair for the single-thread cost.
    fn try_push(&self, v: u64) -> bool;
    fn try_pop(&self) -> Option<u64>;
}

pub struct Ringstat(ringstat::Queue<u64>);

impl Contender for Ringstat {
    const NAME: &'static str = "ringstat::Queue";
    fn with_capacity(cap: usize) -> Self {
        Self(ringstat::Queue::new(cap))
    }
    #[inline(always)]
    fn push(&self, v: u64) {
        self.0.push(v).unwrap();
    }
    #[inline(always)]
    fn pop(&self) -> u64 {
        self.0.pop().unwrap()
    }
    #[inline(always)]
    fn try_push(&self, v: u64) -> bool {
        self.0.try_push(v).is_ok()
    }
    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        self.0.try_pop().ok()
    }
}

pub struct ArrayQueue(crossbeam_queue::ArrayQueue<u64>);

impl Contender for ArrayQueue {
    const NAME: &'static str = "crossbeam ArrayQueue";
    fn with_capacity(cap: usize) -> Self {
        Self(crossbeam_queue::ArrayQueue::new(cap))
    }
    #[inline(always)]
    fn push(&self, mut v: u64) {
        // ArrayQueue cannot block: spin, then yield (crossbeam's Backoff).
        let backoff = Backoff::new();
        while let Err(back) = self.0.push(v) {
            v = back;
            backoff.snooze();
        }
    }
    #[inline(always)]
    fn pop(&self) -> u64 {
        let backoff = Backoff::new();
        loop {
            if let Some(v) = self.0.pop() {
                return v;
            }
            backoff.snooze();
        }
    }
    #[inline(always)]
    fn try_push(&self, v: u64) -> bool {
        self.0.push(v).is_ok()
    }
    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        self.0.pop()
    }
}

pub struct CrossbeamChannel(
    crossbeam_channel::Sender<u64>,
    crossbeam_channel::Receiver<u64>,
);

impl Contender for CrossbeamChannel {
    const NAME: &'static str = "crossbeam-channel bounded";
    fn with_capacity(cap: usize) -> Self {
        let (s, r) = crossbeam_channel::bounded(cap);
        Self(s, r)
    }
    #[inline(always)]
    fn push(&self, v: u64) {
        self.0.send(v).unwrap();
    }
    #[inline(always)]
    fn pop(&self) -> u64 {
        self.1.recv().unwrap()
    }
    #[inline(always)]
    fn try_push(&self, v: u64) -> bool {
        self.0.try_send(v).is_ok()
    }
    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

pub struct Flume(flume::Sender<u64>, flume::Receiver<u64>);

impl Contender for Flume {
    const NAME: &'static str = "flume bounded";
    fn with_capacity(cap: usize) -> Self {
        let (s, r) = flume::bounded(cap);
        Self(s, r)
    }
    #[inline(always)]
    fn push(&self, v: u64) {
        self.0.send(v).unwrap();
    }
    #[inline(always)]
    fn pop(&self) -> u64 {
        self.1.recv().unwrap()
    }
    #[inline(always)]
    fn try_push(&self, v: u64) -> bool {
        self.0.try_send(v).is_ok()
    }
    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        self.1.try_recv().ok()
    }
}

/// `std::sync::mpsc::sync_channel`. Its `Receiver` is not `Sync`: it sits
/// behind a `Mutex` that only the single consumer ever takes (uncontended),
/// and multi-consumer runs skip it.
pub struct StdSyncChannel(
    std::sync::mpsc::SyncSender<u64>,
    Mutex<std::sync::mpsc::Receiver<u64>>,
);

impl Contender for StdSyncChannel {
    const NAME: &'static str = "std sync_channel";
    const MULTI_CONSUMER: bool = false;
    fn with_capacity(cap: usize) -> Self {
        let (s, r) = std::sync::mpsc::sync_channel(cap);
        Self(s, Mutex::new(r))
    }
    #[inline(always)]
    fn push(&self, v: u64) {
        self.0.send(v).unwrap();
    }
    #[inline(always)]
    fn pop(&self) -> u64 {
        self.1.lock().unwrap().recv().unwrap()
    }
    #[inline(always)]
    fn try_push(&self, v: u64) -> bool {
        self.0.try_send(v).is_ok()
    }
    #[inline(always)]
    fn try_pop(&self) -> Option<u64> {
        self.1.lock().unwrap().try_recv().ok()
    }
}

/// Moves `items` from `producers` threads to `consumers` threads through a
/// fresh queue and returns the wall time from the common start to the last
/// item popped. Checks the sum so nothing is optimised away or lost.
pub fn transfer<C: Contender>(
    cap: usize,
    producers: usize,
    consumers: usize,
    items: u64,
) -> Duration {
    let q = Arc::new(C::with_capacity(cap));
    let per_p = items / producers as u64;
    let per_c = items / consumers as u64;
    assert_eq!(per_p * producers as u64, items);
    assert_eq!(per_c * consumers as u64, items);
    let start = Arc::new(Barrier::new(producers + consumers + 1));
    let mut handles = Vec::new();
    for _ in 0..producers {
        let (q, start) = (Arc::clone(&q), Arc::clone(&start));
        handles.push(thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            for i in 0..per_p {
                q.push(i);
            }
            (t0, Instant::now(), 0)
        }));
    }
    for _ in 0..consumers {
        let (q, start) = (Arc::clone(&q), Arc::clone(&start));
        handles.push(thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            let mut sum = 0u64;
            for _ in 0..per_c {
                sum = sum.wrapping_add(q.pop());
            }
            (t0, Instant::now(), sum)
        }));
    }
    start.wait();
    let spans: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let sum: u64 = spans.iter().map(|s| s.2).sum();
    assert_eq!(sum, producers as u64 * per_p * (per_p - 1) / 2);
    span(spans.iter().map(|s| (s.0, s.1)))
}

/// Wall time from the first worker's start to the last one's end, measured
/// by the workers themselves: the coordinating thread may be descheduled
/// right after the start barrier (4 workers on 2 vCPUs), so its own clock
/// would under-measure.
fn span(spans: impl Iterator<Item = (Instant, Instant)>) -> Duration {
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for (a, b) in spans {
        first = Some(first.map_or(a, |f| f.min(a)));
        last = Some(last.map_or(b, |l| l.max(b)));
    }
    last.unwrap() - first.unwrap()
}

/// Runs `produce` and `consume` on two threads released together and
/// returns the span from the first start to the last end (see [`span`]).
/// `consume` returns the sum of what it popped, checked against the sum of
/// `0..items`, so nothing is optimised away or lost.
fn pair(
    items: u64,
    produce: impl FnOnce() + Send + 'static,
    consume: impl FnOnce() -> u64 + Send + 'static,
) -> Duration {
    let start = Arc::new(Barrier::new(3));
    let producer = {
        let start = Arc::clone(&start);
        thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            produce();
            (t0, Instant::now())
        })
    };
    let consumer = {
        let start = Arc::clone(&start);
        thread::spawn(move || {
            start.wait();
            let t0 = Instant::now();
            let sum = consume();
            (t0, Instant::now(), sum)
        })
    };
    start.wait();
    let p = producer.join().unwrap();
    let (c0, c1, sum) = consumer.join().unwrap();
    assert_eq!(sum, items * (items - 1) / 2);
    span([p, (c0, c1)].into_iter())
}

/// ringstat batch transfer: 1 producer pushing batches of `batch` with
/// `push_batch`, 1 consumer draining with `pop_batch(.., batch)`.
pub fn transfer_ringstat_batch(cap: usize, items: u64, batch: usize) -> Duration {
    let q = Arc::new(ringstat::Queue::<u64>::new(cap));
    let qc = Arc::clone(&q);
    pair(
        items,
        move || {
            let mut buf = Vec::with_capacity(batch);
            let mut i = 0;
            while i < items {
                buf.extend(i..(i + batch as u64).min(items));
                i += buf.len() as u64;
                q.push_batch(&mut buf).unwrap();
            }
        },
        move || {
            let mut buf = Vec::with_capacity(batch);
            let (mut sum, mut got) = (0u64, 0);
            while got < items {
                buf.clear();
                got += qc.pop_batch(&mut buf, batch).unwrap() as u64;
                sum = buf.iter().fold(sum, |s, &v| s.wrapping_add(v));
            }
            sum
        },
    )
}

/// Items per batch in the batch-against-batch anchors, whose element is a
/// whole batch.
pub const BATCH: usize = 64;

/// Batches as one element each: a crossbeam `ArrayQueue<[u64; 64]>` of
/// `cap / 64` slots (so it holds `cap` items), 1 producer and 1 consumer,
/// waiting with crossbeam's `Backoff` as [`ArrayQueue`] does. `items` must
/// be a multiple of 64.
pub fn transfer_arrayqueue_arrays(cap: usize, items: u64) -> Duration {
    assert_eq!(items % BATCH as u64, 0, "whole batches only");
    let q = Arc::new(crossbeam_queue::ArrayQueue::<[u64; BATCH]>::new(
        (cap / BATCH).max(1),
    ));
    let qc = Arc::clone(&q);
    pair(
        items,
        move || {
            for b in 0..items / BATCH as u64 {
                let base = b * BATCH as u64;
                let mut batch: [u64; BATCH] = std::array::from_fn(|k| base + k as u64);
                let backoff = Backoff::new();
                while let Err(back) = q.push(batch) {
                    batch = back;
                    backoff.snooze();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..items / BATCH as u64 {
                let backoff = Backoff::new();
                let batch = loop {
                    if let Some(b) = qc.pop() {
                        break b;
                    }
                    backoff.snooze();
                };
                sum = batch.iter().fold(sum, |s, &v| s.wrapping_add(v));
            }
            sum
        },
    )
}

/// Batches as one element each: a crossbeam-channel `bounded(cap / 64)` of
/// `Vec<u64>` (so it holds `cap` items), 1 producer and 1 consumer, blocking
/// in the channel. Every batch is a fresh `Vec`, freed by the consumer, as
/// a channel of `Vec`s is used. `items` must be a multiple of 64.
pub fn transfer_channel_vecs(cap: usize, items: u64) -> Duration {
    assert_eq!(items % BATCH as u64, 0, "whole batches only");
    let (s, r) = crossbeam_channel::bounded::<Vec<u64>>((cap / BATCH).max(1));
    pair(
        items,
        move || {
            for b in 0..items / BATCH as u64 {
                let base = b * BATCH as u64;
                s.send((base..base + BATCH as u64).collect()).unwrap();
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..items / BATCH as u64 {
                let batch = r.recv().unwrap();
                sum = batch.iter().fold(sum, |s, &v| s.wrapping_add(v));
            }
            sum
        },
    )
}

/// `rtrb`'s wait-free SPSC ring, single items: each thread owns its end
/// (no `Arc` on the hot path, no lock); a full or empty ring waits with
/// crossbeam's `Backoff`, as [`ArrayQueue`] does (rtrb cannot block).
pub fn transfer_rtrb(cap: usize, items: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(cap);
    pair(
        items,
        move || {
            for i in 0..items {
                let backoff = Backoff::new();
                let mut v = i;
                while let Err(rtrb::PushError::Full(back)) = tx.push(v) {
                    v = back;
                    backoff.snooze();
                }
            }
        },
        move || {
            let mut sum = 0u64;
            for _ in 0..items {
                let backoff = Backoff::new();
                let v = loop {
                    if let Ok(v) = rx.pop() {
                        break v;
                    }
                    backoff.snooze();
                };
                sum = sum.wrapping_add(v);
            }
            sum
        },
    )
}

/// `rtrb`'s chunk API in batches of up to `batch`: the producer takes
/// `write_chunk_uninit(n)` for as many of its next `batch` items as fit
/// and fills it from an iterator; the consumer takes `read_chunk(n)` for as
/// many as are there, up to `batch` (as ringstat's `pop_batch` does), and
/// commits them all. Either side waits with crossbeam's `Backoff` when it
/// gets no slot.
pub fn transfer_rtrb_chunks(cap: usize, items: u64, batch: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(cap);
    pair(
        items,
        move || {
            let mut i = 0;
            while i < items {
                let want = (items - i).min(batch as u64) as usize;
                let n = want.min(tx.slots());
                if n == 0 {
                    let backoff = Backoff::new();
                    while tx.slots() == 0 {
                        backoff.snooze();
                    }
                    continue;
                }
                let chunk = tx.write_chunk_uninit(n).unwrap();
                i += chunk.fill_from_iter(i..i + n as u64) as u64;
            }
        },
        move || {
            let (mut sum, mut got) = (0u64, 0);
            while got < items {
                let n = rx.slots().min(batch);
                if n == 0 {
                    let backoff = Backoff::new();
                    while rx.slots() == 0 {
                        backoff.snooze();
                    }
                    continue;
                }
                let chunk = rx.read_chunk(n).unwrap();
                let (a, b) = chunk.as_slices();
                sum = a.iter().chain(b).fold(sum, |s, &v| s.wrapping_add(v));
                chunk.commit_all();
                got += n as u64;
            }
            sum
        },
    )
}
