//! The exposition formats: classic buckets per histogram family, OpenMetrics
//! 1.0, and the errors of `set_buckets`.

use ringstat::stats::{
    Format, HistogramConfig, MetricKind, MetricValue, Registry, StatsError,
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};

const CFG: HistogramConfig = HistogramConfig {
    max: 60_000_000,
    significant_digits: 3,
};

#[test]
fn buckets_are_cumulative_and_exact_at_the_bounds() {
    let reg = Registry::new();
    reg.set_buckets("lat", &[0.005, 0.01, 0.1, 1.0]).unwrap();
    let h = reg.histogram_with_unit("lat", &[], CFG, 1e-6).unwrap();
    // Values exactly at a bound count under it; just above, not.
    for v in [0.001, 0.005, 0.0051, 0.01, 0.05, 0.1, 0.2, 1.0, 30.0] {
        h.record_f64(v).unwrap();
    }
    let snap = reg.snapshot();
    let MetricValue::Histogram { buckets, count, .. } = &snap.metrics[0].value else {
        panic!()
    };
    assert_eq!(*count, 9);
    assert_eq!(
        buckets.as_deref(),
        Some(&[(0.005, 2), (0.01, 4), (0.1, 6), (1.0, 8)][..])
    );
    let text = snap.to_prometheus();
    let want = "# TYPE lat histogram\n\
                lat_bucket{le=\"0.005\"} 2\n\
                lat_bucket{le=\"0.01\"} 4\n\
                lat_bucket{le=\"0.1\"} 6\n\
                lat_bucket{le=\"1\"} 8\n\
                lat_bucket{le=\"+Inf\"} 9\n";
    assert!(text.starts_with(want), "{text}");
    assert!(text.contains("\nlat_count 9\n"));
}

#[test]
fn integer_histograms_and_labels() {
    let reg = Registry::new();
    reg.set_buckets("size", &[10.0, 100.0]).unwrap();
    let cfg = HistogramConfig {
        max: 1000,
        significant_digits: 2,
    };
    reg.histogram("size", &[("k", "b")], cfg)
        .unwrap()
        .record(10)
        .unwrap();
    reg.histogram("size", &[("k", "a")], cfg)
        .unwrap()
        .record(500)
        .unwrap();
    let text = reg.snapshot().to_prometheus();
    assert_eq!(
        text,
        "# TYPE size histogram\n\
         size_bucket{k=\"a\",le=\"10\"} 0\n\
         size_bucket{k=\"a\",le=\"100\"} 0\n\
         size_bucket{k=\"a\",le=\"+Inf\"} 1\n\
         size_sum{k=\"a\"} 500\n\
         size_count{k=\"a\"} 1\n\
         size_bucket{k=\"b\",le=\"10\"} 1\n\
         size_bucket{k=\"b\",le=\"100\"} 1\n\
         size_bucket{k=\"b\",le=\"+Inf\"} 1\n\
         size_sum{k=\"b\"} 10\n\
         size_count{k=\"b\"} 1\n"
    );
}

#[test]
fn summaries_stay_the_default() {
    let reg = Registry::new();
    reg.histogram("h", &[], CFG).unwrap().record(5).unwrap();
    let text = reg.snapshot().to_prometheus();
    assert!(text.starts_with("# TYPE h summary\nh{quantile=\"0.5\"} 5\n"));
    assert!(!text.contains("_bucket"));
}

#[test]
fn openmetrics_text() {
    let reg = Registry::new();
    reg.describe("logins", "Logins \"ok\"\\\n").unwrap();
    reg.counter("logins", &[("r", "e\"u")]).unwrap().add(2);
    reg.counter("errors_total", &[]).unwrap().inc();
    reg.gauge("online", &[]).unwrap().set(-1);
    reg.set_buckets("lat", &[0.1]).unwrap();
    reg.histogram_with_unit("lat", &[], CFG, 1e-6)
        .unwrap()
        .record_f64(0.05)
        .unwrap();
    reg.histogram("empty", &[], CFG).unwrap();
    let snap = reg.snapshot();
    assert_eq!(
        snap.to_openmetrics(),
        "# TYPE empty summary\n\
         empty{quantile=\"0.5\"} NaN\n\
         empty{quantile=\"0.9\"} NaN\n\
         empty{quantile=\"0.99\"} NaN\n\
         empty{quantile=\"0.999\"} NaN\n\
         empty_sum 0\n\
         empty_count 0\n\
         # TYPE errors counter\n\
         errors_total 1\n\
         # TYPE lat histogram\n\
         lat_bucket{le=\"0.1\"} 1\n\
         lat_bucket{le=\"+Inf\"} 1\n\
         lat_sum 0.05\n\
         lat_count 1\n\
         # HELP logins Logins \\\"ok\\\"\\\\\\n\n\
         # TYPE logins counter\n\
         logins_total{r=\"e\\\"u\"} 2\n\
         # TYPE online gauge\n\
         online -1\n\
         # EOF\n"
    );
    // The Prometheus text names counter families with `_total`, HELP keeps `"`.
    let text = snap.render(Format::Prometheus);
    assert!(
        text.contains("# HELP logins_total Logins \"ok\"\\\\\\n\n# TYPE logins_total counter\n")
    );
    assert!(!text.contains("# EOF"));
    assert!(Format::Prometheus.content_type() == PROMETHEUS_CONTENT_TYPE);
    assert!(Format::OpenMetrics.content_type() == OPENMETRICS_CONTENT_TYPE);
}

#[test]
fn openmetrics_counter_beside_a_gauge_of_its_family_name() {
    let reg = Registry::new();
    reg.counter("x_total", &[]).unwrap().inc();
    reg.gauge("x", &[]).unwrap().set(3);
    assert_eq!(
        reg.snapshot().to_openmetrics(),
        "# TYPE x gauge\nx 3\n# TYPE x_total unknown\nx_total 1\n# EOF\n"
    );
}

#[test]
fn set_buckets_errors() {
    let reg = Registry::new();
    let bad: [&[f64]; 6] = [
        &[],
        &[f64::INFINITY],
        &[1.0, 1.0],
        &[2.0, 1.0],
        &[1.0, f64::NAN],
        &[f64::NEG_INFINITY, 1.0],
    ];
    for b in bad {
        let err = reg.set_buckets("h", b).unwrap_err();
        assert!(
            matches!(err, StatsError::InvalidBuckets { .. }),
            "{b:?}: {err}"
        );
    }
    assert!(matches!(
        reg.set_buckets("bad name", &[1.0]),
        Err(StatsError::InvalidMetricName { .. })
    ));
    // A last +Inf is dropped; -0.0 is 0.
    reg.set_buckets("h", &[-0.0, 1.0, f64::INFINITY]).unwrap();
    reg.set_buckets("h", &[0.0, 1.0]).unwrap();
    assert!(matches!(
        reg.set_buckets("h", &[0.0, 2.0]),
        Err(StatsError::ConfigMismatch { .. })
    ));
    // Bounds make the family a histogram.
    assert!(matches!(
        reg.gauge("h", &[]),
        Err(StatsError::KindMismatch {
            existing: MetricKind::Histogram,
            ..
        })
    ));
    reg.counter("c", &[]).unwrap();
    assert!(matches!(
        reg.set_buckets("c", &[1.0]),
        Err(StatsError::KindMismatch {
            existing: MetricKind::Counter,
            ..
        })
    ));
    // A histogram reserves `_bucket`.
    reg.histogram("lat", &[], CFG).unwrap();
    assert!(matches!(
        reg.gauge("lat_bucket", &[]),
        Err(StatsError::NameCollision { .. })
    ));
    let text = format!("{}", reg.set_buckets("h", &[]).unwrap_err());
    assert!(text.contains("strictly increasing"), "{text}");
}
