//! `ringstat::stats::Recorder`: a background sampler of a registry. Short
//! intervals and no timing assertions: counts, order, bounds, and that stop
//! returns.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringstat::stats::{
    HistogramConfig, MetricValue, Recorder, RecorderConfig, RecorderError, Registry,
};

fn config(interval_ms: u64, capacity: usize) -> RecorderConfig {
    RecorderConfig {
        interval: Duration::from_millis(interval_ms),
        capacity,
        ..RecorderConfig::default()
    }
}

/// Waits (without asserting how long) until `rec` holds `n` samples.
fn wait_for(rec: &Recorder, n: usize) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while rec.len() < n {
        assert!(Instant::now() < give_up, "no progress in 60 s");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn recorder_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Recorder>();
}

#[test]
fn smoke() {
    let reg = Registry::new();
    let logins = reg.counter("logins", &[]).unwrap();
    let rec = Recorder::new(&reg, config(1, 100)).unwrap();
    assert!(!rec.is_running());
    assert!(rec.is_empty());
    assert!(rec.start().unwrap());
    wait_for(&rec, 1);
    logins.add(5);
    wait_for(&rec, 3);
    assert!(rec.stop());
    let samples = rec.samples();
    assert!(samples.len() >= 3);
    assert!(samples
        .windows(2)
        .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    // Counter values never go backwards along the series.
    let values: Vec<u64> = samples
        .iter()
        .map(|s| match s.metrics[0].value {
            MetricValue::Counter(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
        .collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]));
    rec.sample_now();
    assert_eq!(
        rec.samples().last().unwrap().metrics[0].value,
        MetricValue::Counter(5)
    );
}

#[test]
fn zero_config_is_refused() {
    let reg = Registry::new();
    assert_eq!(
        Recorder::new(&reg, config(0, 10)).unwrap_err(),
        RecorderError::ZeroInterval
    );
    assert_eq!(
        Recorder::new(&reg, config(10, 0)).unwrap_err(),
        RecorderError::ZeroCapacity
    );
    let bad = RecorderConfig {
        quantiles: vec![0.5, 50.0],
        ..RecorderConfig::default()
    };
    assert_eq!(
        Recorder::new(&reg, bad).unwrap_err(),
        RecorderError::InvalidQuantile { q: 50.0 }
    );
    assert_eq!(
        RecorderError::ZeroCapacity.to_string(),
        "capacity must be at least 1"
    );
}

#[test]
fn capacity_keeps_the_newest() {
    let reg = Registry::new();
    let c = reg.counter("c", &[]).unwrap();
    let rec = Recorder::new(&reg, config(1_000_000, 3)).unwrap();
    for i in 0..10 {
        c.add(1);
        rec.sample_now();
        assert_eq!(rec.len(), (i + 1).min(3));
    }
    assert_eq!(rec.dropped(), 7);
    let values: Vec<_> = rec
        .samples()
        .into_iter()
        .map(|s| s.metrics[0].value.clone())
        .collect();
    assert_eq!(
        values,
        vec![
            MetricValue::Counter(8),
            MetricValue::Counter(9),
            MetricValue::Counter(10)
        ]
    );
}

#[test]
fn bound_respected_while_running() {
    let reg = Registry::new();
    reg.gauge("g", &[]).unwrap().set(1);
    let rec = Recorder::new(&reg, config(1, 4)).unwrap();
    rec.start().unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while rec.dropped() < 3 {
        assert!(rec.len() <= 4);
        assert!(Instant::now() < give_up, "no progress in 60 s");
        thread::sleep(Duration::from_millis(1));
    }
    rec.stop();
    assert_eq!(rec.len(), 4);
}

#[test]
fn stop_wakes_a_long_interval() {
    // An hour-long interval: stop must not wait for it (the test would time
    // out rather than assert a duration).
    let reg = Registry::new();
    let rec = Recorder::new(&reg, config(3_600_000, 10)).unwrap();
    rec.start().unwrap();
    wait_for(&rec, 1);
    assert!(rec.stop());
    assert!(!rec.stop());
    assert_eq!(rec.len(), 1);
}

#[test]
fn restart_appends_and_drop_joins() {
    let reg = Registry::new();
    let rec = Recorder::new(&reg, config(3_600_000, 10)).unwrap();
    rec.start().unwrap();
    assert!(!rec.start().unwrap());
    wait_for(&rec, 1);
    rec.stop();
    rec.start().unwrap();
    wait_for(&rec, 2);
    drop(rec); // joins the running thread
}

#[test]
fn drain_and_clear() {
    let reg = Registry::new();
    let rec = Recorder::new(&reg, config(1_000, 10)).unwrap();
    rec.sample_now();
    rec.sample_now();
    assert_eq!(rec.drain().len(), 2);
    assert!(rec.is_empty());
    rec.sample_now();
    rec.clear();
    assert!(rec.is_empty());
    assert_eq!(rec.dropped(), 0);
}

#[test]
fn custom_quantiles_and_concurrent_writers() {
    let reg = Registry::new();
    let h = reg
        .histogram(
            "online_seconds",
            &[("region", "eu")],
            HistogramConfig {
                max: 86_400,
                significant_digits: 2,
            },
        )
        .unwrap();
    let rec = Arc::new(
        Recorder::new(
            &reg,
            RecorderConfig {
                interval: Duration::from_millis(1),
                capacity: 1000,
                quantiles: vec![0.5, 0.99],
            },
        )
        .unwrap(),
    );
    rec.start().unwrap();
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                for v in 0..20_000u64 {
                    h.record((v + t) % 3_600).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let rec = Arc::clone(&rec);
        thread::spawn(move || {
            for _ in 0..100 {
                let _ = rec.samples();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    rec.stop();
    rec.sample_now();
    let samples = rec.samples();
    assert!(samples.len() >= 2);
    let mut last_count = 0;
    for s in &samples {
        let MetricValue::Histogram {
            count, quantiles, ..
        } = &s.metrics[0].value
        else {
            panic!("not a histogram")
        };
        assert!(*count >= last_count);
        last_count = *count;
        let qs: Vec<f64> = quantiles.iter().map(|&(q, _)| q).collect();
        assert_eq!(qs, vec![0.5, 0.99]);
    }
    assert_eq!(last_count, 40_000);
}

#[test]
fn an_interval_past_what_an_instant_holds_samples_once_and_stops() {
    // Was: `Instant + interval` overflowed and the sampler thread panicked
    // (silently: `stop` swallows the join error), so count such panics.
    static SAMPLER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if thread::current().name() == Some("ringstat-recorder") {
            SAMPLER_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        previous(info);
    }));
    let reg = Registry::new();
    let rec = Recorder::new(
        &reg,
        RecorderConfig {
            interval: Duration::MAX,
            ..RecorderConfig::default()
        },
    )
    .unwrap();
    rec.start().unwrap();
    wait_for(&rec, 1);
    assert!(rec.is_running());
    rec.stop(); // joins the sampler: any panic of it has been counted
    assert!(!rec.is_running());
    assert_eq!(rec.len(), 1);
    assert_eq!(
        SAMPLER_PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the sampler thread panicked"
    );
}
