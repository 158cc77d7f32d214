//! HyperLogLog error against the documented bound: relative standard error
//! `1.04 / sqrt(2^p)`, over several sizes, seeds and precisions; and the
//! pipeline's merged per-worker partials equal one sketch of all keys.

use std::sync::Arc;
use std::time::Duration;

use ringstat::pipeline::{DistinctConfig, Event, HyperLogLog, Pipeline};
use ringstat::stats::{ManualClock, Registry};

/// Distinct keys from a seed: a bijective scramble of `seed * 2^32 + i`, so
/// sets from different seeds are disjoint and keys are not consecutive.
fn key(seed: u64, i: u64) -> u64 {
    (seed << 32 | i).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef
}

fn sizes() -> &'static [u64] {
    if cfg!(miri) {
        &[0, 1, 10, 100]
    } else {
        &[0, 1, 10, 100, 1_000, 5_000, 20_000, 100_000]
    }
}

#[test]
fn error_within_documented_bound() {
    for p in [8u8, 12, 14] {
        let sigma = 1.04 / f64::from(1u32 << p).sqrt();
        let mut sq_sum = 0.0;
        let mut trials = 0.0;
        for &n in sizes() {
            for seed in 1..=4u64 {
                let mut h = HyperLogLog::new(p).unwrap();
                assert!((h.standard_error() - sigma).abs() < 1e-12);
                for i in 0..n {
                    h.insert(key(seed, i));
                    if i % 3 == 0 {
                        h.insert(key(seed, i)); // duplicates change nothing
                    }
                }
                let est = h.count();
                if n == 0 {
                    assert_eq!(est, 0.0);
                    continue;
                }
                let rel = (est - n as f64) / n as f64;
                // Every single estimate within 4 standard errors (a 1-in-15 000
                // event per trial for a normal error).
                assert!(
                    rel.abs() <= 4.0 * sigma,
                    "p={p} n={n} seed={seed}: {est} ({rel:+.4} vs sigma {sigma:.4})"
                );
                sq_sum += rel * rel;
                trials += 1.0;
            }
        }
        // The root-mean-square error is about one standard error (well below
        // for small n, where the estimate is nearly exact).
        let rms = (sq_sum / trials).sqrt();
        assert!(
            rms <= 1.5 * sigma,
            "p={p}: rms {rms:.4} vs sigma {sigma:.4}"
        );
    }
}

#[test]
fn merge_is_union() {
    let mut a = HyperLogLog::new(12).unwrap();
    let mut b = HyperLogLog::new(12).unwrap();
    let mut all = HyperLogLog::new(12).unwrap();
    for i in 0..30_000 {
        let k = key(9, i);
        if i % 2 == 0 { &mut a } else { &mut b }.insert(k);
        if i % 5 == 0 {
            b.insert(k); // overlap
        }
        all.insert(k);
    }
    a.merge(&b).unwrap();
    assert_eq!(a, all);
}

#[test]
fn pipeline_partials_merge_to_one_sketch() {
    let n = if cfg!(miri) { 300 } else { 50_000 };
    for workers in [1, 3] {
        let reg = Registry::new();
        let p = Pipeline::builder(&reg)
            .workers(workers)
            .capacity(1024)
            .build()
            .unwrap();
        let users = p.distinct("users").unwrap();
        let mut plain = HyperLogLog::new(12).unwrap();
        let mut batch = Vec::new();
        for i in 0..n {
            let k = key(3, i % (n / 2)); // every key twice
            plain.insert(k);
            batch.push(Event::seen(users, k));
            if batch.len() == 500 {
                p.send_batch(&mut batch).unwrap();
            }
        }
        p.send_batch(&mut batch).unwrap();
        p.flush();
        let est = p.distinct_count(users);
        assert_eq!(est, plain.count(), "workers={workers}");
        let truth = (n / 2) as f64;
        assert!((est - truth).abs() <= 4.0 * plain.standard_error() * truth);
        assert_eq!(
            reg.gauge("users_distinct", &[]).unwrap().get(),
            est.round() as i64
        );
    }
}

#[test]
fn sliding_window_distinct_on_a_manual_clock() {
    let clock = Arc::new(ManualClock::new());
    let reg = Registry::with_clock(clock.clone());
    let p = Pipeline::builder(&reg)
        .workers(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    let cfg = DistinctConfig {
        precision: 14,
        window: Duration::from_secs(10),
        buckets: 10,
    };
    let users = p.distinct_with("users", cfg).unwrap();
    let sec = 1_000_000_000u64;
    // Seconds 0..20: 100 new users each second, plus every user of the
    // previous second again. Explicit timestamps and ts = 0 ("now") mixed.
    for s in 0..20u64 {
        clock.set(Duration::from_secs(s));
        for u in 0..100 {
            p.send(Event::seen(users, s * 100 + u).at(s * sec + 1))
                .unwrap();
            if s > 0 {
                p.send(Event::seen(users, (s - 1) * 100 + u)).unwrap();
            }
        }
        p.flush();
        // The window holds seconds (s - 9)..=s: 100 new users each, and
        // second s - 9 also re-saw the users of second s - 10.
        let expect = 100.0 * (s + 1).min(11) as f64;
        let got = p.distinct_in_window(users);
        assert!(
            (got - expect).abs() <= 4.0 * 0.008_125 * expect,
            "second {s}: {got} vs {expect}"
        );
        assert_eq!(
            reg.gauge("users_distinct_window", &[]).unwrap().get(),
            got.round() as i64
        );
    }
    let total = p.distinct_count(users);
    assert!((total - 2000.0).abs() <= 4.0 * 0.008_125 * 2000.0);
    // Later, the window empties; the total stays.
    clock.set(Duration::from_secs(100));
    assert_eq!(p.distinct_in_window(users), 0.0);
    assert_eq!(p.distinct_count(users), total);
    // A different config under the same name is refused.
    assert!(p.distinct("users").is_err());
    assert_eq!(p.distinct_with("users", cfg).unwrap(), users);
}
