//! Criterion benchmarks for `ringstat::Queue` against crossbeam `ArrayQueue`,
//! crossbeam-channel `bounded`, flume `bounded`, std `sync_channel` and
//! `rtrb` (a wait-free single-producer single-consumer ring), at capacities
//! 1024 and 65536:
//!
//! - `push_pop/1thread`: one push then one pop on one thread (ns per pair);
//! - `push_pop_64/1thread`: 64 items in, then 64 out, on one thread (per
//!   item): ringstat's batch calls against 64 single-item calls, and against
//!   the anchors' batches (`ArrayQueue<[u64; 64]>`, a crossbeam-channel of
//!   `Vec<u64>`, `rtrb`'s `write_chunk_uninit`/`read_chunk`);
//! - `transfer/1p1c` and `transfer/2p2c`: items moved between threads;
//! - `transfer/batch64`: batches of 64, 1 producer and 1 consumer: ringstat
//!   `push_batch`/`pop_batch`, `ArrayQueue` single items, and the anchors'
//!   batches as above;
//! - `push_pop_ratio/1thread`: `push_pop/1thread` as a paired comparison
//!   (as `transfer_ratio`, below): 10^5 pairs on ringstat, then on
//!   `ArrayQueue` (or on a second ringstat queue, A/A), back to back;
//! - `transfer_ratio/*`: the same transfers as paired comparisons (see
//!   `ratio::TimeRatio`): each iteration runs ringstat once and the anchor
//!   once, back to back, and its value is ringstat's time over the anchor's
//!   (reported as the geometric mean over pairs). Below 1.0, ringstat moved
//!   the items faster. `vs itself (A/A)` pairs ringstat with itself: how far
//!   it lands from 1.0 is the resolution.
//!
//! Criterion measures one function after another, so the plain `transfer`
//! groups compare contenders measured seconds or minutes apart (see
//! `benches/ratio` for why that matters here); the `transfer_ratio` groups
//! compare runs made moments apart.
//!
//! Run: `cargo bench --bench queue`; `python3 benches/criterion_table.py`
//! then prints the table for BENCHMARKS.md from `target/criterion`.

mod common;
mod ratio;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    transfer, transfer_arrayqueue_arrays, transfer_channel_vecs, transfer_ringstat_batch,
    transfer_rtrb, transfer_rtrb_chunks, ArrayQueue, Contender, CrossbeamChannel, Flume, Ringstat,
    StdSyncChannel, BATCH,
};
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use ratio::{paired, TimeRatio};

const CAPS: [usize; 2] = [1024, 65536];
/// Items per threaded transfer. Each transfer spawns and joins its threads
/// (100-200 µs here); with 2·10^5 items that overhead was a quarter of
/// ringstat's batch transfer and pulled every ratio toward 1.0. 10^6 items,
/// as in `queue_rounds`, keeps it at a few percent.
const ITEMS: u64 = 1_000_000;

fn single_thread<C: Contender>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cap: usize,
) {
    let q = C::with_capacity(cap);
    g.bench_function(format!("{}/cap{cap}", C::NAME), |b| {
        b.iter(|| {
            let ok = q.try_push(black_box(1));
            black_box(ok);
            // Hand criterion one `u64`, not the `Option<u64>`: black-boxing
            // the 16-byte option stores it as two 8-byte halves and reloads
            // it as one 16-byte value, a failed store-to-load forward that
            // took half of every contender's loop (perf annotate) and hid
            // the queues' own cost.
            q.try_pop().unwrap_or(u64::MAX)
        })
    });
}

fn threaded<C: Contender>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cap: usize,
    p: usize,
    c: usize,
) {
    if c > 1 && !C::MULTI_CONSUMER {
        return;
    }
    g.bench_function(format!("{}/cap{cap}", C::NAME), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| transfer::<C>(cap, p, c, ITEMS)).sum())
    });
}

fn bench_single_thread(crit: &mut Criterion) {
    let mut g = crit.benchmark_group("push_pop/1thread");
    for cap in CAPS {
        single_thread::<Ringstat>(&mut g, cap);
        single_thread::<ArrayQueue>(&mut g, cap);
        single_thread::<CrossbeamChannel>(&mut g, cap);
        single_thread::<Flume>(&mut g, cap);
        single_thread::<StdSyncChannel>(&mut g, cap);
        let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(cap);
        g.bench_function(format!("rtrb/cap{cap}"), |b| {
            b.iter(|| {
                let ok = tx.push(black_box(1)).is_ok();
                black_box(ok);
                rx.pop().unwrap_or(u64::MAX)
            })
        });
    }
    g.finish();
}

/// One thread moving 64 items in and out per iteration: ringstat's batch
/// calls (one claim per 64 items) against 64 single-item pairs of each
/// contender. Reported per item.
fn bench_single_thread_batch(crit: &mut Criterion) {
    const N: usize = 64;
    let mut g = crit.benchmark_group("push_pop_64/1thread");
    g.throughput(Throughput::Elements(N as u64));
    for cap in CAPS {
        let q = ringstat::Queue::<u64>::new(cap);
        let mut items = Vec::with_capacity(N);
        let mut out = Vec::with_capacity(N);
        g.bench_function(format!("ringstat::Queue batch/cap{cap}"), |b| {
            b.iter(|| {
                items.extend(0..N as u64);
                q.try_push_batch(black_box(&mut items)).unwrap();
                out.clear();
                q.try_pop_batch(&mut out, N).unwrap();
                black_box(&out);
            })
        });
        single_thread_n::<Ringstat>(&mut g, cap, N);
        single_thread_n::<ArrayQueue>(&mut g, cap, N);
        batch_anchors_single_thread(&mut g, cap);
    }
    g.finish();
}

/// The anchors' own batches, 64 items in then 64 out on one thread, each
/// holding `cap` items as ringstat's queue does: a crossbeam
/// `ArrayQueue<[u64; 64]>`, a crossbeam-channel of `Vec<u64>` (a fresh
/// `Vec` per batch, as such a channel is used), and `rtrb`'s chunks.
fn batch_anchors_single_thread(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cap: usize,
) {
    let aq = crossbeam_queue::ArrayQueue::<[u64; BATCH]>::new(cap / BATCH);
    g.bench_function(format!("crossbeam ArrayQueue<[u64; 64]>/cap{cap}"), |b| {
        b.iter(|| {
            let batch: [u64; BATCH] = std::array::from_fn(|k| k as u64);
            aq.push(black_box(batch)).unwrap();
            black_box(aq.pop().unwrap());
        })
    });
    let (s, r) = crossbeam_channel::bounded::<Vec<u64>>(cap / BATCH);
    g.bench_function(format!("crossbeam-channel of Vec/cap{cap}"), |b| {
        b.iter(|| {
            s.try_send(black_box((0..BATCH as u64).collect())).unwrap();
            black_box(r.try_recv().unwrap());
        })
    });
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(cap);
    g.bench_function(format!("rtrb chunks/cap{cap}"), |b| {
        b.iter(|| {
            let chunk = tx.write_chunk_uninit(BATCH).unwrap();
            chunk.fill_from_iter(black_box(0..BATCH as u64));
            // Read in place, not copied out: rtrb's way, and its advantage.
            let chunk = rx.read_chunk(BATCH).unwrap();
            black_box(chunk.as_slices());
            chunk.commit_all();
        })
    });
}

fn single_thread_n<C: Contender>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cap: usize,
    n: usize,
) {
    let q = C::with_capacity(cap);
    g.bench_function(format!("{} single/cap{cap}", C::NAME), |b| {
        b.iter(|| {
            for i in 0..n as u64 {
                black_box(q.try_push(black_box(i)));
            }
            for _ in 0..n {
                black_box(q.try_pop());
            }
        })
    });
}

fn bench_threaded(crit: &mut Criterion) {
    for (name, p, c) in [("transfer/1p1c", 1, 1), ("transfer/2p2c", 2, 2)] {
        let mut g = crit.benchmark_group(name);
        g.throughput(Throughput::Elements(ITEMS));
        g.sample_size(10);
        for cap in CAPS {
            threaded::<Ringstat>(&mut g, cap, p, c);
            threaded::<ArrayQueue>(&mut g, cap, p, c);
            threaded::<CrossbeamChannel>(&mut g, cap, p, c);
            threaded::<Flume>(&mut g, cap, p, c);
            threaded::<StdSyncChannel>(&mut g, cap, p, c);
            if p == 1 && c == 1 {
                timed(&mut g, format!("rtrb/cap{cap}"), move || {
                    transfer_rtrb(cap, ITEMS)
                });
            }
        }
        g.finish();
    }
    let mut g = crit.benchmark_group("transfer/batch64");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(10);
    for cap in CAPS {
        g.bench_function(format!("ringstat::Queue batch64/cap{cap}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| transfer_ringstat_batch(cap, ITEMS, 64))
                    .sum()
            })
        });
        threaded::<ArrayQueue>(&mut g, cap, 1, 1);
        for (name, run) in batch_anchors(cap) {
            timed(&mut g, format!("{name}/cap{cap}"), run);
        }
    }
    g.finish();
}

/// One timed run of a transfer.
type Run = Box<dyn Fn() -> Duration>;

/// The anchors' batches of 64 between two threads, each holding `cap`
/// items: (name, one timed transfer of [`ITEMS`]).
fn batch_anchors(cap: usize) -> [(&'static str, Run); 3] {
    [
        (
            "crossbeam ArrayQueue<[u64; 64]>",
            Box::new(move || transfer_arrayqueue_arrays(cap, ITEMS)),
        ),
        (
            "crossbeam-channel of Vec",
            Box::new(move || transfer_channel_vecs(cap, ITEMS)),
        ),
        (
            "rtrb chunks",
            Box::new(move || transfer_rtrb_chunks(cap, ITEMS, BATCH)),
        ),
    ]
}

/// A benchmark whose one run is `run`, which times itself.
fn timed(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: String,
    run: impl Fn() -> Duration,
) {
    g.bench_function(id, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
    });
}

/// `n` single-thread push+pop pairs on `q`, timed: the loop of
/// `push_pop/1thread`, run as one side of a paired comparison.
#[inline(always)]
fn pairs<C: Contender>(q: &C, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        black_box(q.try_push(black_box(i)));
        black_box(q.try_pop().unwrap_or(u64::MAX));
    }
    t.elapsed()
}

/// Push+pop pairs per run of `push_pop_ratio` (0.5-1 ms here).
const PAIRS_PER_RUN: u64 = 100_000;

/// `push_pop/1thread` as a paired comparison: each iteration times
/// [`PAIRS_PER_RUN`] pairs on ringstat's queue and as many on
/// `ArrayQueue`'s, back to back. A slower or faster moment of the host
/// then falls on both sides of a pair, where criterion's plain group
/// measures the two contenders seconds apart.
fn bench_single_thread_ratio(crit: &mut Criterion<TimeRatio>) {
    let mut g = crit.benchmark_group("push_pop_ratio/1thread");
    for cap in CAPS {
        let ours = Ringstat::with_capacity(cap);
        paired_pairs(
            &mut g,
            "vs crossbeam ArrayQueue",
            cap,
            &ours,
            &ArrayQueue::with_capacity(cap),
        );
        paired_pairs(
            &mut g,
            "vs itself (A/A)",
            cap,
            &ours,
            &Ringstat::with_capacity(cap),
        );
    }
    g.finish();
}

/// Ringstat's queue `ours` paired with `anchor`, [`PAIRS_PER_RUN`]
/// single-thread pairs on each per run.
fn paired_pairs<C: Contender>(
    g: &mut BenchmarkGroup<'_, TimeRatio>,
    name: &str,
    cap: usize,
    ours: &Ringstat,
    anchor: &C,
) {
    g.bench_function(format!("{name}/cap{cap}"), |b| {
        b.iter_custom(|iters| {
            paired(
                iters,
                || pairs(ours, PAIRS_PER_RUN),
                || pairs(anchor, PAIRS_PER_RUN),
            )
        })
    });
}

/// Ringstat paired with contender `C`, `p` producers and `c` consumers.
fn paired_transfer<C: Contender>(
    g: &mut BenchmarkGroup<'_, TimeRatio>,
    name: &str,
    cap: usize,
    p: usize,
    c: usize,
) {
    g.bench_function(format!("{name}/cap{cap}"), |b| {
        b.iter_custom(|iters| {
            paired(
                iters,
                || transfer::<Ringstat>(cap, p, c, ITEMS),
                || transfer::<C>(cap, p, c, ITEMS),
            )
        })
    });
}

/// `ours` paired with `anchor`, one run of each per iteration (see
/// `ratio::paired`).
fn paired_with(
    g: &mut BenchmarkGroup<'_, TimeRatio>,
    id: String,
    ours: impl Fn() -> Duration,
    anchor: impl Fn() -> Duration,
) {
    g.bench_function(id, |b| b.iter_custom(|iters| paired(iters, &ours, &anchor)));
}

fn bench_ratios(crit: &mut Criterion<TimeRatio>) {
    for (name, p, c) in [("transfer_ratio/1p1c", 1, 1), ("transfer_ratio/2p2c", 2, 2)] {
        let mut g = crit.benchmark_group(name);
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
        for cap in CAPS {
            paired_transfer::<ArrayQueue>(&mut g, "vs crossbeam ArrayQueue", cap, p, c);
            paired_transfer::<CrossbeamChannel>(&mut g, "vs crossbeam-channel", cap, p, c);
            if p == 1 && c == 1 {
                paired_with(
                    &mut g,
                    format!("vs rtrb/cap{cap}"),
                    || transfer::<Ringstat>(cap, 1, 1, ITEMS),
                    || transfer_rtrb(cap, ITEMS),
                );
            }
            paired_transfer::<Ringstat>(&mut g, "vs itself (A/A)", cap, p, c);
        }
        g.finish();
    }
    let mut g = crit.benchmark_group("transfer_ratio/batch64");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    for cap in CAPS {
        let ours = move || transfer_ringstat_batch(cap, ITEMS, BATCH);
        paired_with(
            &mut g,
            format!("ringstat batch64 vs crossbeam ArrayQueue single/cap{cap}"),
            ours,
            || transfer::<ArrayQueue>(cap, 1, 1, ITEMS),
        );
        for (name, anchor) in batch_anchors(cap) {
            paired_with(
                &mut g,
                format!("ringstat batch64 vs {name}/cap{cap}"),
                ours,
                anchor,
            );
        }
        paired_with(
            &mut g,
            format!("ringstat batch64 vs itself (A/A)/cap{cap}"),
            ours,
            ours,
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_single_thread, bench_single_thread_batch, bench_threaded
}
criterion_group! {
    name = ratios;
    config = ratio::config();
    targets = bench_single_thread_ratio, bench_ratios
}
criterion_main!(benches, ratios);
