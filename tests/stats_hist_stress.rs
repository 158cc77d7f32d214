//! Stress test of the histogram's per-thread fronts: more threads than
//! fronts (so some record through the shared cells), concurrent snapshots
//! and merges, and conservation at the end: every bucket holds exactly what
//! recording the same values on one thread gives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use ringstat::stats::{Histogram, HistogramConfig};

fn sizes() -> (u64, u64) {
    if cfg!(miri) {
        (3, 40)
    } else {
        (12, 100_000)
    }
}

/// The values thread `t` records: spread over the range, repeatable.
fn value(t: u64, i: u64) -> u64 {
    (t * 7919 + i * 104_729) % 1_000_001
}

#[test]
fn histogram_fronts_conserve_every_record() {
    let (threads, per) = sizes();
    let cfg = HistogramConfig {
        max: 1_000_000,
        significant_digits: 2,
    };
    let h = Arc::new(Histogram::with_config(cfg).unwrap());
    assert!(
        threads > h.fronts() as u64 || cfg!(miri),
        "the test needs threads without a front"
    );
    // Merged in while the writers run; counted in the model too.
    let extra = Histogram::with_config(cfg).unwrap();
    extra.record_n(3, 5).unwrap();
    let merges = 4;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (h, done) = (Arc::clone(&h), Arc::clone(&done));
        thread::spawn(move || {
            let mut last = 0;
            let mut snapshots = 0u64;
            while !done.load(Ordering::Relaxed) || snapshots == 0 {
                let s = h.snapshot();
                let total: u64 = s.buckets().map(|(_, _, c)| c).sum();
                assert_eq!(total, s.count());
                // Nothing is ever taken away: a reader's counts never fall.
                assert!(s.count() >= last, "{} then {}", last, s.count());
                last = s.count();
                if let (Some(lo), Some(hi)) = (s.min(), s.max()) {
                    for (blo, bhi, _) in s.buckets() {
                        assert!(bhi >= lo && blo <= hi, "{blo}..={bhi} outside {lo}..={hi}");
                    }
                }
                snapshots += 1;
            }
        })
    };
    // Started together, so that threads sharing a front slot overlap.
    let start = Arc::new(Barrier::new(threads as usize));
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let (h, start) = (Arc::clone(&h), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..per {
                    match i % 3 {
                        0 => h.record(value(t, i)).unwrap(),
                        1 => h.record_n(value(t, i), 2).unwrap(),
                        _ => h.record_f64(value(t, i) as f64).unwrap(),
                    }
                }
            })
        })
        .collect();
    for _ in 0..merges {
        h.merge(&extra).unwrap();
    }
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    // The model: the same values recorded on one thread.
    let model = Histogram::with_config(cfg).unwrap();
    for t in 0..threads {
        for i in 0..per {
            let n = if i % 3 == 1 { 2 } else { 1 };
            model.record_n(value(t, i), n).unwrap();
        }
    }
    for _ in 0..merges {
        model.merge(&extra).unwrap();
    }
    let (got, want) = (h.snapshot(), model.snapshot());
    assert_eq!(got.count(), want.count(), "records lost or counted twice");
    let first_diff = got.buckets().zip(want.buckets()).find(|(g, w)| g != w);
    assert_eq!(
        first_diff, None,
        "(got, want) of the first differing bucket"
    );
    assert_eq!(
        (got.count(), got.min(), got.max()),
        (want.count(), want.min(), want.max())
    );
    assert_eq!(h.count(), want.count());
    assert_eq!(got.rejected(), 0);
}

/// Threads come and go (a pool that replaces its workers): a new thread
/// takes an exited thread's index and so its fronts, written from then on
/// by the new thread alone. Every record is counted once.
#[test]
fn histogram_fronts_pass_from_exited_threads_to_new_ones() {
    let (waves, per) = if cfg!(miri) { (3, 20) } else { (200, 2_000) };
    let cfg = HistogramConfig {
        max: 1_000_000,
        significant_digits: 2,
    };
    let h = Arc::new(Histogram::with_config(cfg).unwrap());
    let model = Histogram::with_config(cfg).unwrap();
    for wave in 0..waves {
        // Two threads at a time, each recording and then exiting.
        let threads: Vec<_> = (0..2u64)
            .map(|k| {
                let h = Arc::clone(&h);
                let t = wave * 2 + k;
                thread::spawn(move || {
                    for i in 0..per {
                        h.record(value(t, i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for k in 0..2u64 {
            for i in 0..per {
                model.record(value(wave * 2 + k, i)).unwrap();
            }
        }
        assert_eq!(h.count(), model.count(), "wave {wave}");
    }
    let (got, want) = (h.snapshot(), model.snapshot());
    let first_diff = got.buckets().zip(want.buckets()).find(|(g, w)| g != w);
    assert_eq!(
        first_diff, None,
        "(got, want) of the first differing bucket"
    );
    assert_eq!((got.min(), got.max()), (want.min(), want.max()));
}
