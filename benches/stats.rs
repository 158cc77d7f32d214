//! Criterion benchmarks for `ringstat::stats` against their anchors, all in
//! one run: `Counter::inc` vs one shared `AtomicU64::fetch_add` (1 and 2
//! threads), `Histogram::record` vs `hdrhistogram` (1 thread) and, on 2
//! threads, vs a `Mutex<hdrhistogram::Histogram>` and vs `hdrhistogram`'s
//! per-thread `sync` recorders (`SyncHistogram` + one `Recorder` per
//! thread, merged by `refresh` on read, which is not timed), and `Rate`
//! increments. Threaded runs are timed over the span from the first
//! thread's start to the last thread's end.
//!
//! Targets (issue 3): single-thread `inc` <= 1.5x `fetch_add`; 2-thread `inc`
//! throughput >= 2x the shared atomic; `record` >= `hdrhistogram` on one
//! thread and >= 3x the mutex-wrapped one on 2 threads. Threaded numbers on
//! a 2-vCPU shared host swing widely: compare within one run only.
//!
//! `stats_ratio/2threads` runs the two-thread comparisons as pairs (see
//! `benches/ratio`): ringstat and its anchor back to back in every
//! iteration, reported as ringstat's time over the anchor's. How contended
//! the anchor's shared line or lock is depends on whether the host runs
//! both vCPUs at that moment, and a pair shares that moment.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ratio::{paired, TimeRatio};
use ringstat::stats::{Counter, Histogram, Rate};

mod ratio;

const MAX: u64 = 3_600_000_000; // one hour in microseconds
const DIGITS: u8 = 3;

/// 4096 pseudo-random values spread over several magnitudes (xorshift).
fn values() -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> (x % 40 + 24)) % MAX
        })
        .collect()
}

/// Runs `op(i)` `iters` times on each of `threads` threads, started together,
/// and returns the span from the first thread's start to the last one's end.
fn threaded<F>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    threaded_each(vec![(); threads], iters, move |(), i| op(i))
}

/// As [`threaded`], with one `state` per thread, each handed to `op` by
/// `&mut` (a per-thread recorder, say).
fn threaded_each<S, F>(states: Vec<S>, iters: u64, op: F) -> Duration
where
    S: Send + 'static,
    F: Fn(&mut S, u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(states.len() + 1));
    let handles: Vec<_> = states
        .into_iter()
        .enumerate()
        .map(|(t, mut state)| {
            let (op, barrier) = (Arc::clone(&op), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    op(&mut state, i.wrapping_add(t as u64 * 7919));
                }
                drop(state);
                (start, Instant::now())
            })
        })
        .collect();
    barrier.wait();
    let spans: Vec<(Instant, Instant)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    last - first
}

/// One `hdrhistogram` recorder per thread over a shared `SyncHistogram`.
fn sync_recorders(
    sync: &hdrhistogram::sync::SyncHistogram<u64>,
    threads: usize,
) -> Vec<hdrhistogram::sync::Recorder<u64>> {
    (0..threads).map(|_| sync.recorder()).collect()
}

/// A `SyncHistogram` with the same layout as ringstat's.
fn sync_histogram() -> hdrhistogram::sync::SyncHistogram<u64> {
    hdrhistogram::Histogram::<u64>::new_with_max(MAX, DIGITS)
        .unwrap()
        .into_sync()
}

fn counter(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_inc");
    g.throughput(Throughput::Elements(1));
    let ours = Counter::new();
    g.bench_function("ringstat/1", |b| b.iter(|| black_box(&ours).inc()));
    let shared = AtomicU64::new(0);
    g.bench_function("fetch_add/1", |b| {
        b.iter(|| black_box(&shared).fetch_add(1, Ordering::Relaxed))
    });
    // 2 threads: elements per iteration = 2, so throughput is comparable.
    g.throughput(Throughput::Elements(2));
    let ours = Arc::new(Counter::new());
    g.bench_function("ringstat/2", |b| {
        b.iter_custom(|iters| {
            let c = Arc::clone(&ours);
            threaded(2, iters, move |_| c.inc())
        })
    });
    let shared = Arc::new(AtomicU64::new(0));
    g.bench_function("fetch_add/2", |b| {
        b.iter_custom(|iters| {
            let a = Arc::clone(&shared);
            threaded(2, iters, move |_| {
                a.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.finish();
}

fn histogram(c: &mut Criterion) {
    let vals = Arc::new(values());
    let mut g = c.benchmark_group("histogram_record");
    g.throughput(Throughput::Elements(1));
    let ours = Histogram::new(MAX, DIGITS).unwrap();
    let mut i = 0usize;
    g.bench_function("ringstat/1", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(&ours).record(vals[i]).unwrap();
        })
    });
    let mut hdr = hdrhistogram::Histogram::<u64>::new_with_max(MAX, DIGITS).unwrap();
    g.bench_function("hdrhistogram/1", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(&mut hdr).record(vals[i]).unwrap();
        })
    });
    g.throughput(Throughput::Elements(2));
    let ours = Arc::new(Histogram::new(MAX, DIGITS).unwrap());
    g.bench_function(BenchmarkId::new("ringstat", 2), |b| {
        b.iter_custom(|iters| {
            let (h, v) = (Arc::clone(&ours), Arc::clone(&vals));
            threaded(2, iters, move |i| h.record(v[(i & 4095) as usize]).unwrap())
        })
    });
    let locked = Arc::new(Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_max(MAX, DIGITS).unwrap(),
    ));
    g.bench_function(BenchmarkId::new("mutex_hdrhistogram", 2), |b| {
        b.iter_custom(|iters| {
            let (h, v) = (Arc::clone(&locked), Arc::clone(&vals));
            threaded(2, iters, move |i| {
                h.lock().unwrap().record(v[(i & 4095) as usize]).unwrap();
            })
        })
    });
    let mut sync = sync_histogram();
    let mut ran = false;
    g.bench_function(BenchmarkId::new("hdrhistogram_sync_recorders", 2), |b| {
        ran = true;
        b.iter_custom(|iters| {
            let v = Arc::clone(&vals);
            let took = threaded_each(sync_recorders(&sync, 2), iters, move |r, i| {
                r.record(v[(i & 4095) as usize]).unwrap();
            });
            // Merges what the (now dropped) recorders wrote; not timed.
            sync.refresh();
            took
        })
    });
    assert!(
        !ran || !sync.is_empty(),
        "the recorders' values reached the histogram"
    );
    g.finish();
}

fn rate(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate_inc");
    g.throughput(Throughput::Elements(1));
    let r = Rate::new();
    g.bench_function("ringstat/1", |b| b.iter(|| black_box(&r).inc()));
    g.throughput(Throughput::Elements(2));
    let r = Arc::new(Rate::new());
    g.bench_function("ringstat/2", |b| {
        b.iter_custom(|iters| {
            let r = Arc::clone(&r);
            threaded(2, iters, move |_| r.inc())
        })
    });
    g.finish();
}

/// Operations per thread in one run of a pair: enough that thread start-up
/// (100-200 µs here) stays a few percent of ringstat's run.
const COUNTER_OPS: u64 = 4_000_000;
const RECORD_OPS: u64 = 400_000;

fn ratios(c: &mut Criterion<TimeRatio>) {
    let vals = Arc::new(values());
    let mut g = c.benchmark_group("stats_ratio/2threads");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    let ours = Arc::new(Counter::new());
    let shared = Arc::new(AtomicU64::new(0));
    g.bench_function("Counter::inc vs shared fetch_add", |b| {
        b.iter_custom(|iters| {
            paired(
                iters,
                || {
                    let c = Arc::clone(&ours);
                    threaded(2, COUNTER_OPS, move |_| c.inc())
                },
                || {
                    let a = Arc::clone(&shared);
                    threaded(2, COUNTER_OPS, move |_| {
                        a.fetch_add(1, Ordering::Relaxed);
                    })
                },
            )
        })
    });
    let ours = Arc::new(Histogram::new(MAX, DIGITS).unwrap());
    let locked = Arc::new(Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_max(MAX, DIGITS).unwrap(),
    ));
    let record = || {
        let (h, v) = (Arc::clone(&ours), Arc::clone(&vals));
        threaded(2, RECORD_OPS, move |i| {
            h.record(v[(i & 4095) as usize]).unwrap()
        })
    };
    g.bench_function("Histogram::record vs Mutex<hdrhistogram>", |b| {
        b.iter_custom(|iters| {
            paired(iters, record, || {
                let (h, v) = (Arc::clone(&locked), Arc::clone(&vals));
                threaded(2, RECORD_OPS, move |i| {
                    h.lock().unwrap().record(v[(i & 4095) as usize]).unwrap();
                })
            })
        })
    });
    // In a mutex only so `paired`'s `Fn` can refresh it; never locked
    // while timing.
    let sync = Mutex::new(sync_histogram());
    g.bench_function("Histogram::record vs hdrhistogram sync recorders", |b| {
        b.iter_custom(|iters| {
            paired(iters, record, || {
                let v = Arc::clone(&vals);
                let recorders = sync_recorders(&sync.lock().unwrap(), 2);
                let took = threaded_each(recorders, RECORD_OPS, move |r, i| {
                    r.record(v[(i & 4095) as usize]).unwrap();
                });
                sync.lock().unwrap().refresh();
                took
            })
        })
    });
    g.bench_function("Histogram::record vs itself (A/A)", |b| {
        b.iter_custom(|iters| paired(iters, record, record))
    });
    g.finish();

    // One thread, paired: the same values into ringstat and `hdrhistogram`.
    let mut g = c.benchmark_group("stats_ratio/1thread");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    let ours = Histogram::new(MAX, DIGITS).unwrap();
    let hdr = RefCell::new(hdrhistogram::Histogram::<u64>::new_with_max(MAX, DIGITS).unwrap());
    let record = || {
        let start = Instant::now();
        for i in 0..RECORD_OPS {
            black_box(&ours).record(vals[(i & 4095) as usize]).unwrap();
        }
        start.elapsed()
    };
    g.bench_function("Histogram::record vs hdrhistogram", |b| {
        b.iter_custom(|iters| {
            paired(iters, record, || {
                let mut h = hdr.borrow_mut();
                let start = Instant::now();
                for i in 0..RECORD_OPS {
                    black_box(&mut *h)
                        .record(vals[(i & 4095) as usize])
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("Histogram::record vs itself (A/A)", |b| {
        b.iter_custom(|iters| paired(iters, record, record))
    });
    g.finish();
}

criterion_group!(benches, counter, histogram, rate);
criterion_group! {
    name = paired_benches;
    config = ratio::config();
    targets = ratios
}
criterion_main!(benches, paired_benches);
