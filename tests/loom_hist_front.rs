//! Loom models of the histogram's per-thread fronts (2-3 threads, 4
//! buckets, 2 front slots). Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --test loom_hist_front`
#![cfg(ringstat_loom)]

use loom::sync::Arc;
use loom::thread;
use ringstat::stats::{Histogram, HistogramSnapshot};

/// A snapshot is internally consistent: its count is the sum of its
/// buckets, and min/max cover every counted value.
fn check_consistent(s: &HistogramSnapshot) {
    let total: u64 = s.buckets().map(|(_, _, c)| c).sum();
    assert_eq!(total, s.count());
    if let (Some(lo), Some(hi)) = (s.min(), s.max()) {
        for (blo, bhi, _) in s.buckets() {
            assert!(bhi >= lo && blo <= hi, "{blo}..={bhi} outside {lo}..={hi}");
        }
    } else {
        assert_eq!(s.count(), 0);
    }
}

/// Three threads record while one of them snapshots: two claim the two
/// front slots as they first record, the third (an index past the slots)
/// uses the shared cells, and every record is counted exactly once.
#[test]
fn fronts_claim_record_and_snapshot() {
    loom::model(|| {
        // max 7, 0 digits: 4 buckets (0, 1, 2..=3, 4..=7).
        let h = Arc::new(Histogram::new(7, 0).unwrap());
        assert_eq!(h.fronts(), 2);
        let h1 = Arc::clone(&h);
        let h2 = Arc::clone(&h);
        let t1 = thread::spawn(move || {
            h1.record(1).unwrap();
            h1.record(1).unwrap();
        });
        let t2 = thread::spawn(move || h2.record(6).unwrap());
        h.record(3).unwrap();
        let s = h.snapshot();
        check_consistent(&s);
        // This thread's own record happened before its snapshot.
        assert!((1..=4).contains(&s.count()), "{}", s.count());
        t1.join().unwrap();
        t2.join().unwrap();
        let s = h.snapshot();
        check_consistent(&s);
        assert_eq!((s.count(), s.min(), s.max()), (4, Some(1), Some(6)));
        assert_eq!(h.count(), 4);
    });
}

/// A merge into the shared cells races a record into a front: both land.
#[test]
fn fronts_merge_and_record() {
    loom::model(|| {
        let h = Arc::new(Histogram::new(7, 0).unwrap());
        let other = Histogram::new(7, 0).unwrap();
        other.record(5).unwrap();
        let h1 = Arc::clone(&h);
        let t1 = thread::spawn(move || h1.record(2).unwrap());
        h.merge(&other).unwrap();
        check_consistent(&h.snapshot());
        t1.join().unwrap();
        let s = h.snapshot();
        assert_eq!((s.count(), s.min(), s.max()), (2, Some(2), Some(5)));
    });
}
