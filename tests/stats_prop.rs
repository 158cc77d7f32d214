//! Property tests for `ringstat::stats`: histogram percentiles against exact
//! sorted-array quantiles within the documented relative error, merge against
//! recording into one histogram, and counter conservation under threads.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use ringstat::stats::{Counter, Gauge, Histogram, ManualClock, Rate};

const QS: [f64; 9] = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0];

/// Quantiles for the oracle, each with its exact value as `num / den` (the
/// decimal the caller writes), including ones whose `f64` product with a
/// count lands just above an integer (`0.07 * 100 = 7.000000000000001`).
const EXACT_QS: [(f64, u64, u64); 13] = [
    (0.0, 0, 1),
    (0.01, 1, 100),
    (0.07, 7, 100),
    (0.1, 1, 10),
    (0.25, 1, 4),
    (0.29, 29, 100),
    (0.5, 1, 2),
    (0.57, 57, 100),
    (0.75, 3, 4),
    (0.9, 9, 10),
    (0.99, 99, 100),
    (0.999, 999, 1000),
    (1.0, 1, 1),
];

/// The documented definition, computed without the library: the nearest-rank
/// `num/den`-quantile of `vals` is the smallest recorded value `v` such that
/// at least `ceil(num/den * count)` values are `<= v` (rank at least 1), in
/// exact integer arithmetic.
fn oracle_quantile(vals: &[u64], num: u64, den: u64) -> u64 {
    let n = vals.len() as u128;
    let rank = (u128::from(num) * n).div_ceil(u128::from(den)).max(1);
    let mut sorted = vals.to_vec();
    sorted.sort_unstable();
    *sorted
        .iter()
        .find(|&&v| vals.iter().filter(|&&x| x <= v).count() as u128 >= rank)
        .expect("rank <= count")
}

/// The documented error bound `2^-(m+1)`, with `m` the smallest integer such
/// that `2^m >= 10^digits`, computed without the library.
fn documented_error(digits: u8) -> f64 {
    let target = 10u64.pow(u32::from(digits));
    let m = (0..64).find(|&m| 1u64 << m >= target).expect("digits <= 5");
    1.0 / (1u64 << (m + 1)) as f64
}

/// As [`oracle_quantile`], for floats.
fn oracle_quantile_f64(vals: &[f64], num: u64, den: u64) -> f64 {
    let n = vals.len() as u128;
    let rank = (u128::from(num) * n).div_ceil(u128::from(den)).max(1);
    let mut sorted = vals.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[rank as usize - 1]
}

/// Floats from `1e-9` to 100 over many orders of magnitude, with repeats
/// and whole numbers.
fn float_values() -> impl Strategy<Value = Vec<f64>> {
    let one = prop_oneof![
        0.0f64..1e-3,
        0.0f64..100.0,
        (-9i32..2, 1.0f64..10.0).prop_map(|(e, m)| (m * 10f64.powi(e)).min(100.0)),
        (0u32..100).prop_map(f64::from),
    ];
    prop::collection::vec(one, 1..300)
}

fn cases() -> u32 {
    if cfg!(miri) {
        4
    } else {
        128
    }
}

/// Values spread over many orders of magnitude, with repeats.
fn values() -> impl Strategy<Value = Vec<u64>> {
    let one = prop_oneof![
        0u64..100,
        0u64..100_000,
        (0u32..40).prop_flat_map(|s| (1u64 << s)..(2u64 << s)),
    ];
    prop::collection::vec(one, 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn quantiles_within_relative_error(vals in values(), digits in 0u8..=4) {
        let h = Histogram::new(1 << 41, digits).unwrap();
        for &v in &vals {
            h.record(v).unwrap();
        }
        let mut sorted = vals.clone();
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        // The bound from the docs, not from the library.
        let err = documented_error(digits);
        prop_assert!(err <= 0.5 / 10f64.powi(i32::from(digits)) + 1e-15);
        prop_assert!(h.relative_error() <= err);
        let qs: Vec<f64> = EXACT_QS.iter().map(|&(q, _, _)| q).collect();
        let got = h.quantiles(&qs).unwrap();
        for (&(q, num, den), got) in EXACT_QS.iter().zip(got) {
            let exact = oracle_quantile(&vals, num, den);
            let got = got.unwrap();
            let diff = got.abs_diff(exact) as f64;
            prop_assert!(
                diff <= exact as f64 * err,
                "q={} got={} exact={} err={}", q, got, exact, err
            );
        }
        prop_assert_eq!(h.count(), n);
        prop_assert_eq!(h.min(), Some(sorted[0]));
        prop_assert_eq!(h.max(), Some(sorted[sorted.len() - 1]));
        let exact_sum: f64 = sorted.iter().map(|&v| v as f64).sum();
        prop_assert!((h.sum() - exact_sum).abs() <= exact_sum * err * (1.0 + 1e-9) + 1e-6);
    }

    #[test]
    fn float_quantiles_within_stated_error(
        vals in float_values(),
        digits in 0u8..=4,
        unit in prop::sample::select(vec![1e-6f64, 1e-3, 0.25, 3e-7, 1.0]),
    ) {
        // 100 (seconds, say) in ticks of `unit`.
        let max = (100.0 / unit).round() as u64;
        let h = Histogram::with_unit(
            ringstat::stats::HistogramConfig { max, significant_digits: digits },
            unit,
        )
        .unwrap();
        for &v in &vals {
            h.record_f64(v).unwrap();
        }
        let err = documented_error(digits);
        // The stated bound: `max(exact * 2^-(m+1), unit / 2)`, plus the
        // rounding of one float multiply or divide.
        let bound = |exact: f64| (exact * err).max(unit / 2.0) * (1.0 + 1e-9) + exact * 1e-15;
        let s = h.snapshot();
        let qs: Vec<f64> = EXACT_QS.iter().map(|&(q, _, _)| q).collect();
        let got = s.value_quantiles(&qs).unwrap();
        for (&(q, num, den), got) in EXACT_QS.iter().zip(got) {
            let exact = oracle_quantile_f64(&vals, num, den);
            let got = got.unwrap();
            prop_assert!(
                (got - exact).abs() <= bound(exact),
                "q={} got={} exact={} err={} unit={}", q, got, exact, err, unit
            );
        }
        prop_assert_eq!(s.count(), vals.len() as u64);
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(0.0, f64::max);
        prop_assert!((s.min_value().unwrap() - lo).abs() <= bound(lo));
        prop_assert!((s.max_value().unwrap() - hi).abs() <= bound(hi));
        let exact_sum: f64 = vals.iter().sum();
        let sum_bound: f64 = vals.iter().map(|&v| bound(v)).sum();
        prop_assert!((s.sum() - exact_sum).abs() <= sum_bound * (1.0 + 1e-9) + 1e-9);
    }

    #[test]
    fn merge_equals_recording_both(a in values(), b in values(), digits in 0u8..=3) {
        let ha = Histogram::new(1 << 41, digits).unwrap();
        let hb = Histogram::new(1 << 41, digits).unwrap();
        let both = Histogram::new(1 << 41, digits).unwrap();
        for &v in &a {
            ha.record(v).unwrap();
            both.record(v).unwrap();
        }
        for &v in &b {
            hb.record_n(v, 2).unwrap();
            both.record_n(v, 2).unwrap();
        }
        ha.merge(&hb).unwrap();
        prop_assert_eq!(ha.snapshot(), both.snapshot());
        prop_assert_eq!(ha.quantiles(&QS).unwrap(), both.quantiles(&QS).unwrap());
    }

    #[test]
    fn gauge_min_max_track_every_value(deltas in prop::collection::vec(-1000i64..1000, 0..100)) {
        let g = Gauge::new();
        let (mut v, mut lo, mut hi) = (0i64, 0i64, 0i64);
        for d in deltas {
            v += d;
            lo = lo.min(v);
            hi = hi.max(v);
            g.add(d);
        }
        prop_assert_eq!((g.get(), g.min(), g.max()), (v, lo, hi));
    }
}

fn threads_and_adds() -> (u64, u64) {
    if cfg!(miri) {
        (2, 50)
    } else {
        (4, 20_000)
    }
}

#[test]
fn counter_n_threads_m_adds_total_exactly() {
    let (n, m) = threads_and_adds();
    for shards in [1, 2, 64] {
        let c = Arc::new(Counter::with_shards(shards).unwrap());
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..m {
                        c.inc();
                        let now = c.get(); // monotonic for this reader
                        assert!(now >= last);
                        last = now;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(c.get(), n * m);
    }
}

#[test]
fn counter_take_while_adding_loses_nothing() {
    let (n, m) = threads_and_adds();
    let c = Arc::new(Counter::new());
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let c = Arc::clone(&c);
            thread::spawn(move || (0..m).for_each(|_| c.add(3)))
        })
        .collect();
    let mut taken = 0;
    while !hs.iter().all(|h| h.is_finished()) {
        taken += c.take();
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(taken + c.take(), 3 * n * m);
}

#[test]
fn histogram_concurrent_snapshots_are_consistent() {
    let (n, m) = threads_and_adds();
    let h = Arc::new(Histogram::new(1_000_000, 2).unwrap());
    let hs: Vec<_> = (0..n)
        .map(|t| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for i in 0..m {
                    h.record((t * 7919 + i * 104_729) % 1_000_001).unwrap();
                }
            })
        })
        .collect();
    while !hs.iter().all(|t| t.is_finished()) {
        let s = h.snapshot();
        let total: u64 = s.buckets().map(|(_, _, c)| c).sum();
        assert_eq!(total, s.count());
        if let (Some(lo), Some(hi)) = (s.min(), s.max()) {
            // Every counted bucket overlaps [min, max].
            for (blo, bhi, _) in s.buckets() {
                assert!(
                    bhi >= lo && blo <= hi,
                    "bucket {blo}..={bhi} outside {lo}..={hi}"
                );
            }
        }
    }
    for t in hs {
        t.join().unwrap();
    }
    assert_eq!(h.count(), n * m);
}

#[test]
fn rate_concurrent_total_is_exact() {
    let (n, m) = threads_and_adds();
    // A clock that never moves: the check cannot depend on how long the
    // test takes.
    let clock = Arc::new(ManualClock::new());
    let r = Arc::new(Rate::with_clock(Duration::from_secs(60), 60, clock).unwrap());
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let r = Arc::clone(&r);
            thread::spawn(move || (0..m).for_each(|_| r.inc()))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(r.total(), n * m);
    assert_eq!(r.count_in_window(), n * m);
}
