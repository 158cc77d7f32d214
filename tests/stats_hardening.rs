//! Regression tests for bad sizes, count overflow, and exposition output that
//! a Prometheus parser rejects. Each reproduces a bug of the earlier code: a
//! panic, an abort, a wrapped count, or an unparseable line.

use std::sync::Arc;
use std::time::Duration;

use ringstat::stats::{
    Counter, Histogram, HistogramConfig, ManualClock, MetricValue, Rate, RateConfig, Registry,
    StatsError, COUNT_SATURATION,
};

// --- sizes ---------------------------------------------------------------

#[test]
fn counter_shards_above_the_limit_are_an_error_not_a_panic() {
    // Was: `usize::MAX.next_power_of_two()` overflowed, and `inc` panicked.
    assert_eq!(
        Counter::with_shards(usize::MAX).unwrap_err(),
        StatsError::InvalidShards {
            shards: usize::MAX,
            max: Counter::MAX_SHARDS
        }
    );
    assert!(Counter::with_shards(Counter::MAX_SHARDS + 1).is_err());
    let c = Counter::with_shards(Counter::MAX_SHARDS).unwrap();
    c.inc();
    assert_eq!((c.get(), c.shards()), (1, Counter::MAX_SHARDS));
}

#[test]
fn rate_bucket_counts_that_cannot_be_allocated_are_an_error() {
    // Was: an allocation of 8 TB, and the process aborted.
    let clock = Arc::new(ManualClock::new());
    let err = Rate::with_clock(
        Duration::from_secs(1_000_000_000),
        1_000_000_000_000,
        clock.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, StatsError::TooManyBuckets { max, .. } if max == Rate::MAX_SLOTS));
    // Shards multiply the slots.
    let err = Rate::with_clock_and_shards(
        Duration::from_secs(100_000),
        Rate::MAX_SLOTS / 2,
        clock.clone(),
        4,
    )
    .unwrap_err();
    assert!(matches!(err, StatsError::TooManyBuckets { shards: 4, .. }));
    assert!(matches!(
        Rate::with_clock_and_shards(Duration::from_secs(60), 60, clock.clone(), usize::MAX),
        Err(StatsError::InvalidShards { .. })
    ));
    // The largest window allowed still works.
    let r = Rate::with_clock(Duration::from_secs(100_000), Rate::MAX_SLOTS, clock.clone()).unwrap();
    r.add(3);
    assert_eq!(r.count_in_window(), 3);
}

// --- count overflow --------------------------------------------------------

#[test]
fn histogram_record_n_saturates_instead_of_wrapping() {
    // Was: two record_n of 2^63 made the count 0.
    let h = Histogram::new(10, 1).unwrap();
    h.record_n(1, 1 << 63).unwrap();
    h.record_n(1, 1 << 63).unwrap();
    h.record(1).unwrap();
    assert_eq!(h.count(), COUNT_SATURATION);
    assert_eq!(h.snapshot().count(), COUNT_SATURATION);
    assert_eq!(h.quantile(0.5).unwrap(), Some(1));
    // Across buckets the count saturates at u64::MAX, never wraps.
    h.record_n(2, u64::MAX).unwrap();
    h.record_n(3, u64::MAX).unwrap();
    assert_eq!(h.count(), u64::MAX);
    // Past saturation ranks are approximate (documented), never a panic.
    assert!(matches!(h.quantile(1.0).unwrap(), Some(1..=3)));
    assert_eq!((h.min(), h.max()), (Some(1), Some(3)));
    // So does `rejected`.
    let _ = h.record_n(11, u64::MAX);
    let _ = h.record_n(11, u64::MAX);
    assert_eq!(h.rejected(), COUNT_SATURATION);
}

#[test]
fn histogram_sum_and_quantiles_of_saturated_huge_values_do_not_overflow() {
    // Was: the 128-bit sum overflowed (a panic in debug builds), and so did
    // the running count of the quantile scan.
    let h = Histogram::new(u64::MAX, 2).unwrap();
    h.record_n(u64::MAX, u64::MAX).unwrap();
    h.record_n(1 << 63, u64::MAX).unwrap();
    h.record_n(1 << 62, u64::MAX).unwrap();
    let s = h.snapshot();
    assert_eq!(s.count(), u64::MAX);
    let sum = s.sum();
    assert!(sum.is_finite() && sum > 2f64.powi(128), "{sum}");
    let top = s.quantile(1.0).unwrap().unwrap();
    assert!(top >= 1 << 62, "{top}");
    assert!(s.mean().unwrap() > 2f64.powi(62));
}

#[test]
fn histogram_merge_saturates() {
    let a = Histogram::new(10, 1).unwrap();
    let b = Histogram::new(10, 1).unwrap();
    a.record_n(5, u64::MAX - 1).unwrap();
    b.record_n(5, u64::MAX - 1).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a.count(), COUNT_SATURATION);
}

#[test]
fn rate_total_saturates() {
    // Was: the total wrapped at 2^64.
    let r = Rate::with_clock(Duration::from_secs(10), 10, Arc::new(ManualClock::new())).unwrap();
    r.add(u64::MAX);
    r.add(u64::MAX);
    assert_eq!(r.total(), COUNT_SATURATION);
}

#[test]
fn counter_add_saturates_and_take_returns_it() {
    let c = Counter::with_shards(1).unwrap();
    c.add(u64::MAX - 5);
    c.add(10);
    assert_eq!(c.take(), COUNT_SATURATION);
    c.add(1);
    assert_eq!(c.get(), 1);
}

// --- exposition ------------------------------------------------------------

#[test]
fn a_counter_named_total_is_refused() {
    // Was: `# TYPE _total counter`, an empty family name, and parsers
    // rejected the whole exposition.
    let reg = Registry::new();
    assert!(matches!(
        reg.counter("_total", &[]),
        Err(StatsError::InvalidMetricName { .. })
    ));
    assert!(reg.counter("a_total", &[]).is_ok());
    assert!(reg.counter("total", &[]).is_ok());
}

#[test]
fn a_counter_x_total_beside_a_gauge_x_parses() {
    // Two families for a parser that folds `_total` (prometheus_client gives
    // a counter and a gauge both named `x`), each line valid: allowed, as
    // the pipeline's own `*_applied_total` counter and `*_applied` rate are.
    let reg = Registry::new();
    reg.counter("x_total", &[]).unwrap().inc();
    reg.gauge("x", &[]).unwrap().set(2);
    assert_eq!(
        reg.snapshot().to_prometheus(),
        "# TYPE x gauge\nx 2\n# TYPE x_total counter\nx_total 1\n"
    );
    // A histogram `s` and a gauge `s_sum` would both write `s_sum` lines.
    reg.gauge("s_sum", &[]).unwrap();
    let cfg = HistogramConfig {
        max: 10,
        significant_digits: 1,
    };
    assert!(matches!(
        reg.histogram("s", &[], cfg),
        Err(StatsError::NameCollision { .. })
    ));
}

#[test]
fn label_values_with_line_breaks_other_than_newline_are_refused() {
    // Was: written raw, so a line-based reader split the sample line.
    let reg = Registry::new();
    for bad in [
        "a\rb",
        "a\u{2028}b",
        "a\u{2029}b",
        "a\u{85}b",
        "a\x0bb",
        "a\x0cb",
        "a\x1cb",
        "a\x00b",
    ] {
        let err = reg.counter("c", &[("v", bad)]).unwrap_err();
        assert_eq!(
            err,
            StatsError::InvalidLabelValue {
                metric: "c".into(),
                label: "v".into(),
                value: bad.into()
            }
        );
    }
    assert!(reg.snapshot().metrics.is_empty(), "nothing was created");
    // Newline, backslash, quote, tab and other Unicode are escaped or kept.
    reg.gauge("g", &[("v", "a\nb\\c\"d\te\u{e9}")])
        .unwrap()
        .set(1);
    assert_eq!(
        reg.snapshot().to_prometheus(),
        "# TYPE g gauge\ng{v=\"a\\nb\\\\c\\\"d\te\u{e9}\"} 1\n"
    );
}

#[test]
fn repeated_quantiles_are_written_once() {
    // Was: `h{quantile="0.5"}` twice, a duplicate sample.
    let reg = Registry::new();
    let cfg = HistogramConfig {
        max: 10,
        significant_digits: 1,
    };
    reg.histogram("h", &[], cfg).unwrap().record(1).unwrap();
    let text = reg
        .snapshot_with_quantiles(&[0.5, 0.5, -0.0, 0.0])
        .unwrap()
        .to_prometheus();
    assert_eq!(
        text,
        "# TYPE h summary\nh{quantile=\"0.5\"} 1\nh{quantile=\"0\"} 1\nh_sum 1\nh_count 1\n"
    );
    for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        assert!(matches!(
            reg.snapshot_with_quantiles(&[bad]),
            Err(StatsError::InvalidQuantile { .. })
        ));
    }
}

// --- cardinality limit -------------------------------------------------------

#[test]
fn a_limited_registry_refuses_new_series_and_keeps_the_old_ones() {
    let reg = Registry::with_clock_and_limit(Arc::new(ManualClock::new()), Some(3));
    assert_eq!(reg.limit(), Some(3));
    let a = reg.counter("logins", &[("user", "a")]).unwrap();
    reg.gauge("online", &[]).unwrap();
    reg.rate("r", &[], RateConfig::default()).unwrap();
    assert_eq!(reg.len(), 3);
    assert_eq!(
        reg.counter("logins", &[("user", "b")]).unwrap_err(),
        StatsError::TooManySeries {
            name: "logins".into(),
            limit: 3
        }
    );
    // A new family is refused too, and leaves no trace of its name.
    assert!(reg.gauge("other", &[]).is_err());
    assert_eq!(reg.len(), 3);
    // Existing series keep working and can be looked up again.
    a.inc();
    reg.counter("logins", &[("user", "a")]).unwrap().inc();
    assert_eq!(a.get(), 2);
    let snap = reg.snapshot();
    assert_eq!(snap.metrics.len(), 3);
    assert_eq!(snap.metrics[0].value, MetricValue::Counter(2));
    // The error says what happened.
    let msg = reg.gauge("x", &[]).unwrap_err().to_string();
    assert!(msg.contains("limit of 3 series"), "{msg}");
    // A limit of 0 refuses everything; no limit refuses nothing.
    assert!(Registry::with_limit(0).counter("c", &[]).is_err());
    assert_eq!(Registry::new().limit(), None);
}
