//! Unit tests for `ringstat::stats`: every error path, the semantics of each
//! aggregator on one thread, and the Prometheus exposition text.

use std::sync::Arc;
use std::time::Duration;

use ringstat::stats::{
    Clock, Counter, Gauge, Histogram, HistogramConfig, ManualClock, MetricKind, MetricValue, Rate,
    RateConfig, Registry, StatsError, SystemClock,
};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn aggregators_are_send_sync() {
    assert_send_sync::<Counter>();
    assert_send_sync::<Gauge>();
    assert_send_sync::<Histogram>();
    assert_send_sync::<Rate>();
    assert_send_sync::<Registry>();
}

// --- counter -------------------------------------------------------------

#[test]
fn counter_smoke() {
    let c = Counter::new();
    c.inc();
    c.add(41);
    assert_eq!(c.get(), 42);
    assert_eq!(c.take(), 42);
    assert_eq!(c.get(), 0);
    c.add(5);
    c.reset();
    assert_eq!(c.get(), 0);
}

#[test]
fn counter_shards_round_up() {
    assert_eq!(Counter::with_shards(0).unwrap().shards(), 1);
    assert_eq!(Counter::with_shards(5).unwrap().shards(), 8);
    assert!(Counter::new().shards() >= 4);
}

#[test]
fn counter_saturates_instead_of_wrapping() {
    let c = Counter::with_shards(1).unwrap();
    c.add(u64::MAX);
    c.add(2);
    assert_eq!(c.get(), ringstat::stats::COUNT_SATURATION);
}

// --- gauge ---------------------------------------------------------------

#[test]
fn gauge_min_max_reset() {
    let g = Gauge::new();
    g.add(5);
    g.sub(8);
    g.set(2);
    assert_eq!((g.get(), g.min(), g.max()), (2, -3, 5));
    assert_eq!(g.reset_min_max(), (-3, 5));
    assert_eq!((g.min(), g.max()), (2, 2));
    g.add(1);
    assert_eq!((g.min(), g.max()), (2, 3));
}

#[test]
fn gauge_wraps() {
    let g = Gauge::with_value(i64::MAX);
    assert_eq!(g.add(1), i64::MIN);
    assert_eq!(g.min(), i64::MIN);
}

// --- histogram -----------------------------------------------------------

#[test]
fn histogram_bad_config() {
    assert_eq!(
        Histogram::new(100, 6).unwrap_err(),
        StatsError::InvalidSignificantDigits { digits: 6 }
    );
    assert_eq!(
        Histogram::new(0, 2).unwrap_err(),
        StatsError::InvalidMaxValue { max: 0 }
    );
    for d in 0..=5 {
        assert!(Histogram::new(1, d).is_ok());
        assert!(Histogram::new(u64::MAX, d.min(3)).is_ok());
    }
}

#[test]
fn histogram_empty() {
    let h = Histogram::new(1000, 2).unwrap();
    assert_eq!(h.count(), 0);
    assert_eq!((h.min(), h.max(), h.mean()), (None, None, None));
    assert_eq!(h.quantile(0.5).unwrap(), None);
    assert_eq!(h.sum(), 0.0);
}

#[test]
fn histogram_min_max_at_the_ends_of_the_range() {
    // The stored min starts at u64::MAX and the max at 0: recording exactly
    // those values must still read as recorded, and agree with a snapshot.
    let h = Histogram::new(u64::MAX, 1).unwrap();
    h.record(u64::MAX).unwrap();
    assert_eq!((h.min(), h.max()), (Some(u64::MAX), Some(u64::MAX)));
    let zeros = Histogram::new(1000, 2).unwrap();
    zeros.record_n(0, 3).unwrap();
    assert_eq!((zeros.min(), zeros.max()), (Some(0), Some(0)));
    let s = zeros.snapshot();
    assert_eq!((s.min(), s.max()), (Some(0), Some(0)));
    // A zero-count record leaves an empty histogram empty.
    let none = Histogram::new(1000, 2).unwrap();
    none.record_n(5, 0).unwrap();
    assert_eq!((none.min(), none.max()), (None, None));
}

#[test]
fn histogram_out_of_range_is_rejected_and_counted() {
    let h = Histogram::new(1000, 2).unwrap();
    assert_eq!(
        h.record(1001).unwrap_err(),
        StatsError::ValueOutOfRange {
            value: 1001,
            max: 1000
        }
    );
    assert!(h.record(u64::MAX).is_err());
    assert!(h.record_n(5000, 3).is_err());
    assert_eq!(h.rejected(), 5);
    assert_eq!(h.count(), 0);
    h.record(1000).unwrap();
    assert_eq!((h.count(), h.max()), (1, Some(1000)));
    assert_eq!(h.snapshot().rejected(), 5);
}

#[test]
fn histogram_floats() {
    let h = Histogram::new(100, 2).unwrap();
    assert_eq!(h.record_f64(f64::NAN).unwrap_err(), StatsError::NotANumber);
    // Negatives are refused, not clamped to 0 (was: -0.4 recorded 0).
    for bad in [
        -0.4,
        -0.6,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        100.5,
        1e30,
    ] {
        assert!(
            matches!(
                h.record_f64(bad),
                Err(StatsError::FloatOutOfRange { max: 100, .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(h.rejected(), 8);
    h.record_f64(-0.0).unwrap();
    h.record_f64(0.4).unwrap(); // no unit: rounds to 0
    h.record_f64(99.6).unwrap();
    assert_eq!((h.count(), h.min(), h.max()), (3, Some(0), Some(100)));
}

#[test]
fn histogram_bad_quantiles() {
    let h = Histogram::new(100, 2).unwrap();
    h.record(1).unwrap();
    for q in [-0.1, 1.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            h.quantile(q),
            Err(StatsError::InvalidQuantile { .. })
        ));
    }
    assert!(h.quantiles(&[0.5, 2.0]).is_err());
    assert!(h.percentile(100.5).is_err());
    assert_eq!(h.percentile(100.0).unwrap(), Some(1));
}

#[test]
fn histogram_exact_small_values() {
    let h = Histogram::new(10_000, 3).unwrap();
    for v in 0..=2000 {
        h.record(v).unwrap();
    }
    assert_eq!(h.count(), 2001);
    assert_eq!(h.sum(), (0..=2000u64).sum::<u64>() as f64);
    assert_eq!(h.quantile(0.0).unwrap(), Some(0));
    assert_eq!(h.quantile(1.0).unwrap(), Some(2000));
    assert_eq!(h.percentile(50.0).unwrap(), Some(1000));
}

#[test]
fn histogram_large_values_within_bound() {
    let h = Histogram::new(u64::MAX, 2).unwrap();
    let vals = [1u64 << 40, (1 << 40) + 12345, u64::MAX / 3, u64::MAX];
    for v in vals {
        h.record(v).unwrap();
    }
    let err = h.relative_error();
    assert!(err <= 0.005);
    for (k, v) in vals.iter().enumerate() {
        let q = (k + 1) as f64 / vals.len() as f64;
        let got = h.quantile(q).unwrap().unwrap() as f64;
        assert!((got - *v as f64).abs() <= *v as f64 * err, "{got} vs {v}");
    }
    assert_eq!(h.max(), Some(u64::MAX));
}

#[test]
fn histogram_merge_incompatible() {
    let a = Histogram::new(100, 2).unwrap();
    let b = Histogram::new(100, 3).unwrap();
    b.record(1).unwrap();
    let e = a.merge(&b).unwrap_err();
    assert_eq!(
        e,
        StatsError::IncompatibleHistograms {
            left: (100, 2),
            right: (100, 3)
        }
    );
    assert_eq!(a.count(), 0);
    assert!(e.to_string().contains("3 digits"));
}

#[test]
fn histogram_snapshot_buckets_cover_values() {
    let h = Histogram::new(1_000_000, 1).unwrap();
    for v in [0, 1, 31, 32, 33, 999_999] {
        h.record(v).unwrap();
    }
    let s = h.snapshot();
    let total: u64 = s.buckets().map(|(_, _, c)| c).sum();
    assert_eq!(total, s.count());
    for (lo, hi, _) in s.buckets() {
        assert!(lo <= hi);
    }
    assert!(s
        .buckets()
        .any(|(lo, hi, _)| lo <= 999_999 && 999_999 <= hi));
}

// --- rate ----------------------------------------------------------------

fn manual_rate(window_s: u64, buckets: usize) -> (Arc<ManualClock>, Rate) {
    let clock = Arc::new(ManualClock::new());
    let r = Rate::with_clock(Duration::from_secs(window_s), buckets, clock.clone()).unwrap();
    (clock, r)
}

#[test]
fn system_clock_coarse_readings_never_lead_and_catch_up() {
    // Orderings only, no wall-clock bounds: a coarse reading never leads the
    // fine clock, coarse readings never go back, and the coarse clock
    // catches up with any earlier fine reading (a wrong origin or unit would
    // lead, or never catch up).
    let c = SystemClock::new();
    let mark = c.now_nanos() + 1;
    let mut last = 0u64;
    let mut caught_up = false;
    // Progress guard only (as the recorder tests' 60 s): a healthy coarse
    // clock catches up within one timer tick.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !caught_up {
        let before = c.now_nanos();
        let coarse = c.now_nanos_within(u64::MAX);
        let after = c.now_nanos();
        assert!(before <= after);
        assert!(coarse <= after, "{coarse} > {after}");
        assert!(coarse >= last, "coarse clock went back: {coarse} < {last}");
        last = coarse;
        caught_up = coarse >= mark;
        assert!(
            caught_up || std::time::Instant::now() < give_up,
            "the coarse clock never reached {mark} (at {coarse})"
        );
        std::thread::yield_now();
    }
    // A tolerance finer than any coarse source reads the fine clock.
    let before = c.now_nanos();
    let exact = c.now_nanos_within(0);
    assert!(before <= exact && exact <= c.now_nanos());
    // So does every clock that does not override it.
    let m = ManualClock::new();
    m.advance(Duration::from_nanos(7));
    assert_eq!(m.now_nanos_within(u64::MAX), 7);
}

#[test]
fn rate_on_the_system_clock_counts_every_increment_in_its_window() {
    let r = Rate::new();
    for _ in 0..1000 {
        r.inc();
    }
    r.add(5);
    assert_eq!((r.total(), r.count_in_window()), (1005, 1005));
}

#[test]
fn rate_shards_are_a_bounded_power_of_two() {
    let try_rate = |shards| {
        let clock = Arc::new(ManualClock::new());
        Rate::with_clock_and_shards(Duration::from_secs(60), 60, clock, shards)
    };
    let rate = |shards| try_rate(shards).unwrap();
    assert_eq!(rate(0).shards(), 1);
    assert_eq!(rate(3).shards(), 4);
    assert_eq!(rate(1024).shards(), 1024);
    assert_eq!(
        try_rate(1025).unwrap_err(),
        StatsError::InvalidShards {
            shards: 1025,
            max: 1024
        }
    );
    let default = Rate::new();
    assert!(default.shards().is_power_of_two() && default.shards() <= 16);
    // A default rate with many buckets takes fewer shards.
    let fine = Rate::with_window(Duration::from_secs(3600), 3600).unwrap();
    assert!(fine.shards() * 3600 <= 1 << 14, "{}", fine.shards());
    let finer = Rate::with_window(Duration::from_secs(3600), 100_000).unwrap();
    assert_eq!(finer.shards(), 1);
}

#[test]
fn rate_counts_from_many_threads_sum_across_shards() {
    let clock = Arc::new(ManualClock::new());
    let r = Arc::new(
        Rate::with_clock_and_shards(Duration::from_secs(10), 10, clock.clone(), 4).unwrap(),
    );
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    r.add(t + 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let expect = 10_000 * (1..=6).sum::<u64>();
    assert_eq!((r.total(), r.count_in_window()), (expect, expect));
    assert_eq!(r.per_second(), expect as f64); // one bucket covered
    clock.advance(Duration::from_secs(10));
    assert_eq!((r.total(), r.count_in_window()), (expect, 0));
}

#[test]
fn rate_bad_windows() {
    let c = Arc::new(ManualClock::new());
    for (w, n) in [
        (Duration::from_secs(1), 0),
        (Duration::ZERO, 1),
        (Duration::from_millis(10), 11),
        (Duration::MAX, 1),
    ] {
        assert_eq!(
            Rate::with_clock(w, n, c.clone()).unwrap_err(),
            StatsError::InvalidWindow {
                window: w,
                buckets: n
            }
        );
    }
    assert!(Rate::with_clock(Duration::from_millis(10), 10, c).is_ok());
}

#[test]
fn rate_slides() {
    let (clock, r) = manual_rate(10, 10);
    r.add(10); // t = 0
    clock.advance(Duration::from_secs(5));
    r.add(20); // t = 5
    assert_eq!(r.count_in_window(), 30);
    assert_eq!(r.per_second(), 6.0); // 30 over the 5 s since creation
    clock.advance(Duration::from_secs(5)); // t = 10: tick 0 left the window
    assert_eq!(r.count_in_window(), 20);
    assert_eq!(r.per_second(), 20.0 / 9.0); // 20 over 9 full buckets + 0 s
    clock.advance(Duration::from_millis(9_500)); // t = 19.5: tick 5 gone
    assert_eq!(r.count_in_window(), 0);
    r.inc(); // rotates slot 9
    assert_eq!((r.count_in_window(), r.total()), (1, 31));
}

#[test]
fn rate_long_idle_and_reuse_of_slots() {
    let (clock, r) = manual_rate(3, 3);
    for lap in 0..50u64 {
        r.add(lap + 1);
        assert_eq!(r.count_in_window(), lap + 1);
        clock.advance(Duration::from_secs(3));
    }
    clock.advance(Duration::from_secs(1_000_000));
    assert_eq!(r.count_in_window(), 0);
    r.inc();
    assert_eq!(r.count_in_window(), 1);
    assert_eq!(r.total(), (1..=50).sum::<u64>() + 1);
}

#[test]
fn rate_clock_going_backwards_keeps_total() {
    let (clock, r) = manual_rate(2, 2);
    clock.set(Duration::from_secs(10));
    r.inc();
    clock.set(Duration::from_secs(7)); // same slot, older lap
    r.inc();
    assert_eq!(r.total(), 2);
    clock.set(Duration::from_secs(10));
    assert_eq!(r.count_in_window(), 1);
}

#[test]
fn rate_per_second_floor_is_one_bucket() {
    let (_clock, r) = manual_rate(60, 60);
    r.add(7);
    assert_eq!(r.per_second(), 7.0);
}

// --- registry ------------------------------------------------------------

#[test]
fn registry_get_or_create_returns_the_same_metric() {
    let reg = Registry::new();
    let a = reg
        .counter("logins", &[("region", "eu"), ("app", "web")])
        .unwrap();
    let b = reg
        .counter("logins", &[("app", "web"), ("region", "eu")])
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let c = reg.counter("logins", &[("region", "us")]).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    let clone = reg.clone();
    assert!(Arc::ptr_eq(
        &a,
        &clone
            .counter("logins", &[("region", "eu"), ("app", "web")])
            .unwrap()
    ));
}

#[test]
fn registry_kind_mismatch_names_both_kinds() {
    let reg = Registry::new();
    reg.counter("logins", &[]).unwrap();
    let e = reg.gauge("logins", &[("x", "y")]).unwrap_err();
    assert_eq!(
        e,
        StatsError::KindMismatch {
            name: "logins".into(),
            existing: MetricKind::Counter,
            requested: MetricKind::Gauge
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("logins") && msg.contains("counter") && msg.contains("gauge"),
        "{msg}"
    );
}

#[test]
fn registry_invalid_names() {
    let reg = Registry::new();
    for bad in ["", "1abc", "a-b", "a b", "é"] {
        assert_eq!(
            reg.counter(bad, &[]).unwrap_err(),
            StatsError::InvalidMetricName { name: bad.into() }
        );
    }
    assert!(reg.counter("ns:sub_name9", &[]).is_ok());
    for bad in ["", "1a", "a:b", "__x", "quantile", "le", "a-b"] {
        assert_eq!(
            reg.gauge("g", &[(bad, "v")]).unwrap_err(),
            StatsError::InvalidLabelName {
                metric: "g".into(),
                label: bad.into()
            },
            "{bad}"
        );
    }
    assert_eq!(
        reg.gauge("g", &[("a", "1"), ("a", "2")]).unwrap_err(),
        StatsError::DuplicateLabel {
            metric: "g".into(),
            label: "a".into()
        }
    );
    assert!(reg.snapshot().metrics.iter().all(|m| m.name != "g"));
}

#[test]
fn registry_name_collisions() {
    let reg = Registry::new();
    let cfg = HistogramConfig {
        max: 100,
        significant_digits: 1,
    };
    reg.counter("logins", &[]).unwrap();
    assert!(matches!(
        reg.gauge("logins_total", &[]),
        Err(StatsError::NameCollision { .. })
    ));
    reg.histogram("lat", &[], cfg).unwrap();
    assert!(matches!(
        reg.gauge("lat_count", &[]),
        Err(StatsError::NameCollision { .. })
    ));
}

#[test]
fn registry_config_mismatch() {
    let reg = Registry::new();
    let cfg = HistogramConfig {
        max: 100,
        significant_digits: 1,
    };
    reg.histogram("h", &[], cfg).unwrap();
    assert!(reg.histogram("h", &[], cfg).is_ok());
    let e = reg
        .histogram("h", &[], HistogramConfig { max: 200, ..cfg })
        .unwrap_err();
    assert!(matches!(e, StatsError::ConfigMismatch { .. }));
    assert!(e.to_string().contains("200"));
    assert!(matches!(
        reg.histogram(
            "h2",
            &[],
            HistogramConfig {
                significant_digits: 9,
                ..cfg
            }
        ),
        Err(StatsError::InvalidSignificantDigits { digits: 9 })
    ));
    reg.rate("r", &[], RateConfig::default()).unwrap();
    let other = RateConfig {
        window: Duration::from_secs(10),
        buckets: 10,
    };
    assert!(matches!(
        reg.rate("r", &[], other),
        Err(StatsError::ConfigMismatch { .. })
    ));
    let bad = RateConfig {
        window: Duration::from_secs(1),
        buckets: 0,
    };
    assert!(matches!(
        reg.rate("r2", &[], bad),
        Err(StatsError::InvalidWindow { .. })
    ));
    // A failed creation registers nothing.
    assert!(reg.gauge("h2", &[]).is_ok());
}

#[test]
fn registry_snapshot_is_plain_sorted_data() {
    let clock = Arc::new(ManualClock::new());
    let reg = Registry::with_clock(clock.clone());
    reg.gauge("b", &[]).unwrap().set(-3);
    reg.counter("a", &[("k", "2")]).unwrap().add(2);
    reg.counter("a", &[("k", "1")]).unwrap().inc();
    let h = reg
        .histogram(
            "c",
            &[],
            HistogramConfig {
                max: 100,
                significant_digits: 2,
            },
        )
        .unwrap();
    h.record(10).unwrap();
    let _ = h.record(1000);
    let r = reg
        .rate(
            "d",
            &[],
            RateConfig {
                window: Duration::from_secs(4),
                buckets: 4,
            },
        )
        .unwrap();
    r.add(8);
    clock.advance(Duration::from_secs(2));
    let s = reg.snapshot();
    assert!(s.timestamp_ms > 0);
    let names: Vec<_> = s
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.labels.clone()))
        .collect();
    assert_eq!(names[0], ("a", vec![("k".to_owned(), "1".to_owned())]));
    assert_eq!(names[1].0, "a");
    assert_eq!(
        s.metrics[2].value,
        MetricValue::Gauge {
            value: -3,
            min: -3,
            max: 0
        }
    );
    match &s.metrics[3].value {
        MetricValue::Histogram {
            count,
            sum,
            min,
            max,
            rejected,
            quantiles,
            unit: None,
            buckets: None,
        } => {
            assert_eq!(
                (*count, *sum, *min, *max, *rejected),
                (1, 10.0, Some(10), Some(10), 1)
            );
            assert_eq!(quantiles.len(), 4);
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(
        s.metrics[4].value,
        MetricValue::Rate {
            total: 8,
            in_window: 8,
            per_second: 4.0,
            window: Duration::from_secs(4)
        }
    );
    assert_eq!(s.metrics[4].kind(), MetricKind::Rate);
}

// --- exposition ----------------------------------------------------------

#[test]
fn prometheus_exact_text() {
    let clock = Arc::new(ManualClock::new());
    let reg = Registry::with_clock(clock.clone());
    reg.counter("logins", &[("region", "eu")]).unwrap().add(3);
    reg.counter("logins", &[("region", "us")]).unwrap().inc();
    reg.counter("errors_total", &[]).unwrap().inc();
    reg.gauge("users_online", &[]).unwrap().set(7);
    let h = reg
        .histogram(
            "online_seconds",
            &[("app", "web")],
            HistogramConfig {
                max: 1000,
                significant_digits: 2,
            },
        )
        .unwrap();
    for v in 1..=100 {
        h.record(v).unwrap();
    }
    reg.histogram(
        "empty_seconds",
        &[],
        HistogramConfig {
            max: 10,
            significant_digits: 1,
        },
    )
    .unwrap();
    reg.rate(
        "logins_rate",
        &[],
        RateConfig {
            window: Duration::from_secs(10),
            buckets: 10,
        },
    )
    .unwrap()
    .add(20);
    clock.advance(Duration::from_secs(4));
    let text = reg
        .snapshot_with_quantiles(&[0.5, 0.99])
        .unwrap()
        .to_prometheus();
    let expected = "\
# TYPE empty_seconds summary
empty_seconds{quantile=\"0.5\"} NaN
empty_seconds{quantile=\"0.99\"} NaN
empty_seconds_sum 0
empty_seconds_count 0
# TYPE errors_total counter
errors_total 1
# TYPE logins_total counter
logins_total{region=\"eu\"} 3
logins_total{region=\"us\"} 1
# TYPE logins_rate gauge
logins_rate 5
# TYPE online_seconds summary
online_seconds{app=\"web\",quantile=\"0.5\"} 50
online_seconds{app=\"web\",quantile=\"0.99\"} 99
online_seconds_sum{app=\"web\"} 5050
online_seconds_count{app=\"web\"} 100
# TYPE users_online gauge
users_online 7
";
    assert_eq!(text, expected);
}

#[test]
fn prometheus_escapes_label_values() {
    let reg = Registry::new();
    reg.counter("c", &[("path", "C:\\dir\n\"x\"")])
        .unwrap()
        .inc();
    let text = reg.snapshot().to_prometheus();
    assert_eq!(
        text,
        "# TYPE c_total counter\nc_total{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n"
    );
}

/// `(metric name, unescaped labels, value)` of one exposition line.
type Sample = (String, Vec<(String, String)>, f64);

/// A small parser for the text format: every line is `# TYPE name type` or
/// `name{label="value",...} value` with a valid name, valid label names,
/// properly escaped label values and a float value. Returns the unescaped
/// labels and the value.
fn parse_line(line: &str) -> Result<Sample, String> {
    fn valid_name(n: &str) -> Result<(), String> {
        let mut c = n.chars();
        let ok = c
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        ok.then_some(()).ok_or(format!("bad name {n:?}"))
    }
    if let Some(rest) = line.strip_prefix("# TYPE ") {
        let parts: Vec<&str> = rest.split(' ').collect();
        if parts.len() != 2 || !["counter", "gauge", "summary"].contains(&parts[1]) {
            return Err(format!("bad TYPE line {line:?}"));
        }
        valid_name(parts[0])?;
        return Ok((parts[0].to_owned(), vec![], f64::NAN));
    }
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    valid_name(name)?;
    let mut labels = Vec::new();
    let mut chars = line[name_end..].chars().peekable();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            let mut lname = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                lname.push(c);
            }
            valid_name(&lname)?;
            if chars.next() != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")? {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        e => return Err(format!("bad escape {e:?}")),
                    },
                    '\n' => return Err("raw newline".into()),
                    c => value.push(c),
                }
            }
            labels.push((lname, value));
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                e => return Err(format!("expected , or }} got {e:?}")),
            }
        }
    }
    if chars.next() != Some(' ') {
        return Err("no space before value".into());
    }
    let v: String = chars.collect();
    let value = match v.as_str() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().map_err(|_| format!("bad value {s:?}"))?,
    };
    Ok((name.to_owned(), labels, value))
}

#[test]
fn prometheus_output_parses_line_by_line() {
    let reg = Registry::new();
    let nasty = "a\\b\"c\nd,}{= é";
    reg.counter("c", &[("v", nasty), ("w", "")])
        .unwrap()
        .add(u64::MAX);
    reg.gauge("ns:g", &[("_x", "1")]).unwrap().set(i64::MIN);
    let h = reg
        .histogram(
            "h",
            &[("v", nasty)],
            HistogramConfig {
                max: u64::MAX,
                significant_digits: 3,
            },
        )
        .unwrap();
    h.record(u64::MAX).unwrap();
    h.record(1).unwrap();
    reg.rate("r", &[], RateConfig::default()).unwrap().inc();
    let text = reg.snapshot().to_prometheus();
    assert!(text.ends_with('\n'));
    let mut samples = 0;
    for line in text.lines() {
        let (name, labels, value) = parse_line(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if line.starts_with('#') {
            continue;
        }
        samples += 1;
        if name == "c_total" {
            assert_eq!(labels[0], ("v".to_owned(), nasty.to_owned()));
            // An add of u64::MAX saturates (it does not wrap).
            assert_eq!(value, ringstat::stats::COUNT_SATURATION as f64);
        }
        if name == "ns:g" {
            assert_eq!(value, i64::MIN as f64);
        }
    }
    // c, g, h (4 quantiles + sum + count), r
    assert_eq!(samples, 1 + 1 + 6 + 1);
}

#[test]
fn error_messages_name_the_bad_value() {
    let cases: Vec<(StatsError, &str)> = vec![
        (StatsError::InvalidSignificantDigits { digits: 7 }, "7"),
        (StatsError::InvalidMaxValue { max: 0 }, "0"),
        (
            StatsError::ValueOutOfRange {
                value: 123,
                max: 100,
            },
            "123",
        ),
        (
            StatsError::FloatOutOfRange {
                value: -2.5,
                max: 100,
            },
            "-2.5",
        ),
        (StatsError::NotANumber, "NaN"),
        (StatsError::InvalidQuantile { q: 1.5 }, "1.5"),
        (StatsError::InvalidMetricName { name: "a-b".into() }, "a-b"),
        (
            StatsError::InvalidLabelName {
                metric: "m".into(),
                label: "__x".into(),
            },
            "__x",
        ),
        (
            StatsError::DuplicateLabel {
                metric: "m".into(),
                label: "k".into(),
            },
            "k",
        ),
        (
            StatsError::NameCollision {
                name: "x_total".into(),
                existing: "x".into(),
            },
            "x_total",
        ),
        (
            StatsError::InvalidWindow {
                window: Duration::from_secs(1),
                buckets: 0,
            },
            "0 buckets",
        ),
    ];
    for (e, needle) in cases {
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        let _: &dyn std::error::Error = &e;
    }
}

#[test]
fn prometheus_help_lines_escape_backslash_and_newline() {
    let reg = Registry::new();
    reg.describe("logins", "Logins.\nA \\ and a \"quote\".")
        .unwrap();
    reg.counter("logins", &[("region", "eu")]).unwrap().inc();
    reg.counter("logins", &[("region", "us")]).unwrap().inc();
    reg.gauge("online", &[]).unwrap().set(2);
    assert_eq!(
        reg.snapshot().to_prometheus(),
        "# HELP logins_total Logins.\\nA \\\\ and a \"quote\".\n\
         # TYPE logins_total counter\n\
         logins_total{region=\"eu\"} 1\n\
         logins_total{region=\"us\"} 1\n\
         # TYPE online gauge\n\
         online 2\n"
    );
    let snap = reg.snapshot();
    assert_eq!(
        snap.metrics[0].help.as_deref(),
        Some("Logins.\nA \\ and a \"quote\".")
    );
    assert_eq!(snap.metrics[2].help, None);
}

#[test]
fn describe_checks_name_text_and_conflicts() {
    let reg = Registry::new();
    reg.describe("h", "Latency.").unwrap();
    reg.describe("h", "Latency.").unwrap(); // the same text again: fine
    assert!(matches!(
        reg.describe("h", "Other."),
        Err(StatsError::ConfigMismatch { .. })
    ));
    for bad in ["a\rb", "a\0b", "a\u{2028}b", "a\u{85}b", "a\x0bb"] {
        assert!(
            matches!(reg.describe("g", bad), Err(StatsError::InvalidHelp { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        reg.describe("1x", "help"),
        Err(StatsError::InvalidMetricName { .. })
    ));
    // Described before it exists: written once it does, for every kind.
    let cfg = HistogramConfig {
        max: 100,
        significant_digits: 2,
    };
    reg.histogram("h", &[], cfg).unwrap().record(5).unwrap();
    let text = reg.snapshot().to_prometheus();
    assert!(
        text.starts_with("# HELP h Latency.\n# TYPE h summary\n"),
        "{text}"
    );
    assert!(!text.contains("# HELP g"));
}

#[test]
fn histogram_units() {
    let cfg = HistogramConfig {
        max: 60_000_000,
        significant_digits: 3,
    };
    for bad in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Histogram::with_unit(cfg, bad),
            Err(StatsError::InvalidUnit { .. })
        ));
    }
    let h = Histogram::with_unit(cfg, 1e-6).unwrap();
    // Was (no unit, the only kind): 0.0125 could only be recorded as 0.
    h.record_f64(0.0125).unwrap();
    h.record_value(0.0125).unwrap();
    assert_eq!(h.quantile(0.5).unwrap(), Some(12_500));
    assert_eq!(h.snapshot().min_value(), Some(0.0125));
    assert_eq!(h.value_quantile(1.0).unwrap(), Some(0.0125));
    for bad in [-0.4, 60.5, f64::INFINITY] {
        assert!(matches!(
            h.record_f64(bad),
            Err(StatsError::UnitValueOutOfRange { max, .. }) if max == 60.0
        ));
    }
    assert_eq!(h.rejected(), 3);
    // Merging needs the same unit as well as the same config.
    let ints = Histogram::with_config(cfg).unwrap();
    assert!(matches!(
        h.merge(&ints),
        Err(StatsError::IncompatibleUnits { .. })
    ));
    let same = Histogram::with_unit(cfg, 1e-6).unwrap();
    same.record_f64(1.5).unwrap();
    h.merge(&same).unwrap();
    assert_eq!(h.snapshot().max_value(), Some(1.5));
    // Without a unit, `record_value` refuses a fraction rather than round it.
    assert!(matches!(
        ints.record_value(12.5),
        Err(StatsError::FractionalValue { .. })
    ));
    ints.record_value(12.0).unwrap();
    assert_eq!((ints.count(), ints.rejected()), (1, 1));
}
