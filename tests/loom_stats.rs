//! Loom models for `ringstat::stats` (2-3 threads, tiny sizes). Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_stats`
#![cfg(ringstat_loom)]

use std::sync::Arc as StdArc;
use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use ringstat::stats::{Counter, Gauge, Histogram, ManualClock, Rate};

#[test]
fn counter_concurrent_adds_and_read() {
    loom::model(|| {
        let c = Arc::new(Counter::with_shards(2).unwrap());
        let c1 = Arc::clone(&c);
        let c2 = Arc::clone(&c);
        let t1 = thread::spawn(move || c1.add(1));
        let t2 = thread::spawn(move || c2.add(2));
        let a = c.get();
        let b = c.get();
        assert!(a <= 3 && b <= 3);
        assert!(a <= b, "get() went backwards: {a} then {b}");
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(c.get(), 3);
    });
}

#[test]
fn counter_take_against_adds() {
    loom::model(|| {
        let c = Arc::new(Counter::with_shards(2).unwrap());
        let c1 = Arc::clone(&c);
        let c2 = Arc::clone(&c);
        let t1 = thread::spawn(move || c1.add(1));
        let t2 = thread::spawn(move || c2.add(2));
        let taken = c.take();
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(taken + c.get(), 3);
    });
}

#[test]
fn gauge_min_max_against_reset() {
    loom::model(|| {
        let g = Arc::new(Gauge::new());
        let g1 = Arc::clone(&g);
        let g2 = Arc::clone(&g);
        let t1 = thread::spawn(move || {
            g1.add(3);
        });
        let t2 = thread::spawn(move || {
            g2.sub(5);
        });
        let (old_min, old_max) = g.reset_min_max();
        assert!(old_min <= 0 && old_max >= 0);
        t1.join().unwrap();
        t2.join().unwrap();
        let (v, lo, hi) = (g.get(), g.min(), g.max());
        assert_eq!(v, -2);
        assert!(lo <= v && v <= hi, "min {lo} value {v} max {hi}");
        // Every value taken after the reset's swap is folded in; the
        // extremes stay within what the gauge ever held.
        assert!(lo >= -5 && hi <= 3);
    });
}

#[test]
fn gauge_min_max_without_reset() {
    loom::model(|| {
        let g = Arc::new(Gauge::new());
        let g1 = Arc::clone(&g);
        let t1 = thread::spawn(move || {
            g1.set(7);
        });
        g.set(-1);
        t1.join().unwrap();
        assert_eq!((g.min(), g.max()), (-1, 7));
    });
}

#[test]
fn histogram_record_against_snapshot() {
    loom::model(|| {
        // max 7, 0 digits: 4 buckets (0, 1, 2..=3, 4..=7).
        let h = Arc::new(Histogram::new(7, 0).unwrap());
        let h1 = Arc::clone(&h);
        let h2 = Arc::clone(&h);
        let t1 = thread::spawn(move || h1.record(1).unwrap());
        let t2 = thread::spawn(move || h2.record(6).unwrap());
        let s = h.snapshot();
        let total: u64 = s.buckets().map(|(_, _, c)| c).sum();
        assert_eq!(total, s.count());
        for (lo, hi, _) in s.buckets() {
            // A counted value's min/max updates are visible.
            if lo <= 1 && 1 <= hi {
                assert!(s.min().unwrap() <= 1);
            }
            if lo <= 6 && 6 <= hi {
                assert_eq!(s.max(), Some(6));
            }
        }
        t1.join().unwrap();
        t2.join().unwrap();
        let s = h.snapshot();
        assert_eq!((s.count(), s.min(), s.max()), (2, Some(1), Some(6)));
    });
}

/// Rotation raced by two increments: a rate of 2 buckets of 1 s and
/// `shards` shards holds one event in slot 0 at lap 0; at t = 2 s (slot 0
/// again, lap 1) two threads count into it while this one reads.
fn rate_rotation_model(shards: usize) {
    loom::model(move || {
        let clock = StdArc::new(ManualClock::new());
        let r = Arc::new(
            Rate::with_clock_and_shards(Duration::from_secs(2), 2, clock.clone(), shards).unwrap(),
        );
        r.inc();
        clock.set(Duration::from_secs(2));
        let r1 = Arc::clone(&r);
        let r2 = Arc::clone(&r);
        let t1 = thread::spawn(move || r1.inc());
        let t2 = thread::spawn(move || r2.add(2));
        let seen = r.count_in_window();
        assert!((0..=3).contains(&seen), "{seen}");
        let total = r.total();
        assert!((1..=4).contains(&total), "{total}");
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(r.total(), 4);
        assert_eq!(
            r.count_in_window(),
            3,
            "the lap-0 event left, both new ones stay"
        );
    });
}

#[test]
fn rate_rotation_against_concurrent_increments() {
    // One shard: both threads race to rotate the same slot.
    rate_rotation_model(1);
}

#[test]
fn rate_rotation_across_shards() {
    // Two shards: loom numbers the threads 0 (this one), 1 and 2, so the
    // spawned threads count into different shards, and this thread's event
    // shares shard 0 with the second's.
    rate_rotation_model(2);
}
