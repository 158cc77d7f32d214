//! The pipeline's API as a checklist: smoke, config errors, handles,
//! closed sends, flush after close, drop joins, foreign handles, units.

use std::sync::Arc;
use std::time::Duration;

use ringstat::pipeline::{Backpressure, Event, Pipeline, PipelineError, SendError, SessionsConfig};
use ringstat::queue::Closed;
use ringstat::stats::{HistogramConfig, ManualClock, MetricValue, Registry};

#[test]
fn smoke() {
    let reg = Registry::new();
    let p = Pipeline::new(&reg).unwrap();
    let c = p.counter("c").unwrap();
    let g = p.gauge("g").unwrap();
    let h = p
        .histogram(
            "h",
            HistogramConfig {
                max: 100,
                significant_digits: 2,
            },
        )
        .unwrap();
    let r = p.rate("r").unwrap();
    p.send(Event::add(c, 5)).unwrap();
    p.send(Event::set(g, 10)).unwrap();
    p.send(Event::gauge_add(g, -3)).unwrap();
    p.send(Event::observe(h, 42)).unwrap();
    p.send(Event::observe(h, 1_000)).unwrap(); // out of range: rejected by the histogram
    p.send(Event::mark(r, 2)).unwrap();
    p.flush();
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 5);
    assert_eq!(reg.gauge("g", &[]).unwrap().get(), 7);
    let hist = reg
        .histogram(
            "h",
            &[],
            HistogramConfig {
                max: 100,
                significant_digits: 2,
            },
        )
        .unwrap();
    assert_eq!((hist.count(), hist.rejected()), (1, 1));
    assert_eq!(reg.rate("r", &[], Default::default()).unwrap().total(), 2);
    let s = p.stats();
    assert_eq!((s.received, s.applied, s.dropped, s.rejected), (6, 6, 0, 0));
}

#[test]
fn config_errors() {
    let reg = Registry::new();
    let b = || Pipeline::builder(&reg);
    assert_eq!(
        b().workers(0).build().unwrap_err(),
        PipelineError::InvalidWorkers { workers: 0 }
    );
    assert_eq!(
        b().workers(257).build().unwrap_err(),
        PipelineError::InvalidWorkers { workers: 257 }
    );
    assert_eq!(
        b().capacity(0).build().unwrap_err(),
        PipelineError::InvalidCapacity { capacity: 0 }
    );
    assert_eq!(
        b().workers(4).capacity(3).build().unwrap_err(),
        PipelineError::InvalidCapacity { capacity: 3 }
    );
    assert_eq!(
        b().batch_size(0).build().unwrap_err(),
        PipelineError::InvalidBatchSize { batch_size: 0 }
    );
    let p = b().workers(1).capacity(1).build().unwrap();
    assert!(matches!(
        p.counter("bad name"),
        Err(PipelineError::Stats(_))
    ));
    p.counter("x").unwrap();
    assert!(matches!(p.gauge("x"), Err(PipelineError::Stats(_))));
    let h = HistogramConfig {
        max: 10,
        significant_digits: 1,
    };
    p.histogram("hh", h).unwrap();
    assert!(p
        .histogram(
            "hh",
            HistogramConfig {
                max: 11,
                significant_digits: 1
            }
        )
        .is_err());
    assert!(p
        .distinct_with(
            "d",
            ringstat::pipeline::DistinctConfig {
                precision: 3,
                ..Default::default()
            }
        )
        .is_err());
    assert!(p
        .distinct_with(
            "d",
            ringstat::pipeline::DistinctConfig {
                buckets: 0,
                ..Default::default()
            }
        )
        .is_err());
    assert!(p
        .sessions_with(
            "s",
            SessionsConfig {
                max_ms: 0,
                significant_digits: 2,
                max_open: None,
            }
        )
        .is_err());
    // Errors display their argument.
    assert!(PipelineError::InvalidWorkers { workers: 0 }
        .to_string()
        .contains('0'));
}

#[test]
fn same_name_same_handle() {
    let p = Pipeline::new(&Registry::new()).unwrap();
    let a = p.sessions("online").unwrap();
    assert_eq!(p.sessions("online").unwrap(), a);
    assert_ne!(p.counter("online").unwrap().index(), a.index());
}

#[test]
fn closed_pipeline_hands_events_back() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg).workers(3).build().unwrap();
    let c = p.counter("c").unwrap();
    let mut tx = p.sender();
    p.send(Event::count(c)).unwrap();
    p.close();
    p.close(); // idempotent
    assert!(p.is_closed());
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 1);
    let ev = Event::count(c);
    assert_eq!(p.send(ev), Err(SendError::Closed(ev)));
    assert_eq!(tx.send(ev), Err(SendError::Closed(ev)));
    let mut batch: Vec<Event> = (0..10).map(|k| Event::count(c).with_key(k)).collect();
    assert_eq!(tx.send_batch(&mut batch), Err(Closed));
    assert_eq!(batch.len(), 10);
    p.flush(); // returns at once
    tx.flush();
    assert_eq!(p.stats().received, 1);
}

#[test]
fn drop_drains_and_joins() {
    let reg = Registry::new();
    let tx;
    {
        let p = Pipeline::builder(&reg)
            .workers(2)
            .capacity(64)
            .build()
            .unwrap();
        let c = p.counter("c").unwrap();
        tx = p.sender();
        for _ in 0..10_000 {
            tx.send(Event::count(c)).unwrap();
        }
    }
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 10_000);
    assert!(matches!(
        tx.send(Event::count(ringstat_counter(&reg))),
        Err(SendError::Closed(_))
    ));
}

/// A handle from another pipeline over the same registry.
fn ringstat_counter(reg: &Registry) -> ringstat::pipeline::CounterId {
    Pipeline::builder(reg)
        .name("other")
        .build()
        .unwrap()
        .counter("c")
        .unwrap()
}

#[test]
fn foreign_handles_are_rejected_and_counted() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg).workers(1).build().unwrap();
    let other = Pipeline::builder(&Registry::new())
        .name("other")
        .build()
        .unwrap();
    let _ = other.counter("a").unwrap();
    let foreign = other.sessions("s").unwrap(); // index 1: unknown here
    p.counter("only").unwrap(); // index 0
    p.send(Event::start(foreign, 1)).unwrap();
    let g = other.gauge("g2").unwrap(); // index 2
    p.send(Event::set(g, 1)).unwrap();
    p.flush();
    let s = p.stats();
    assert_eq!((s.received, s.applied, s.rejected), (2, 0, 2));
}

#[test]
fn drop_newest_returns_the_event() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(1)
        .capacity(1)
        .backpressure(Backpressure::DropNewest)
        .build()
        .unwrap();
    let c = p.counter("c").unwrap();
    let mut dropped = 0;
    for _ in 0..1000 {
        match p.send(Event::count(c)) {
            Ok(()) => {}
            Err(SendError::Dropped(ev)) => {
                assert_eq!(ev, Event::count(c));
                dropped += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    p.close();
    let s = p.stats();
    assert_eq!(s.dropped, dropped);
    assert_eq!(s.applied + s.dropped, 1000);
    assert_eq!(reg.counter("c", &[]).unwrap().get(), s.applied);
}

#[test]
fn sessions_use_the_pipeline_clock_for_ts_zero() {
    let clock = Arc::new(ManualClock::new());
    let reg = Registry::with_clock(clock.clone());
    let p = Pipeline::builder(&reg)
        .workers(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    let online = p.sessions("online").unwrap();
    clock.set(Duration::from_secs(10));
    for u in 0..5 {
        p.send(Event::start(online, u)).unwrap();
    }
    p.flush();
    assert_eq!(reg.gauge("online_open", &[]).unwrap().get(), 5);
    clock.set(Duration::from_millis(12_345));
    for u in 0..5 {
        p.send(Event::end(online, u)).unwrap();
    }
    p.send(Event::end(online, 99)).unwrap();
    p.flush();
    let snap = reg.snapshot();
    let m = snap
        .metrics
        .iter()
        .find(|m| m.name == "online_duration_ms")
        .unwrap();
    match &m.value {
        MetricValue::Histogram {
            count, min, max, ..
        } => {
            assert_eq!(*count, 5);
            // 2 345 ms, within the 2-digit bucket width.
            let (lo, hi) = (min.unwrap(), max.unwrap());
            assert!((2_330..=2_360).contains(&lo) && (2_330..=2_360).contains(&hi));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reg.counter("online_anomalies_total", &[("kind", "end_without_start")])
            .unwrap()
            .get(),
        1
    );
    assert_eq!(reg.gauge("online_open", &[]).unwrap().get(), 0);
    // The pipeline's own metrics are in the registry.
    let text = reg.snapshot().to_prometheus();
    for name in [
        "ringstat_pipeline_received_total{pipeline=\"default\"} 11",
        "ringstat_pipeline_applied_total{pipeline=\"default\"} 11",
        "ringstat_pipeline_dropped_total{pipeline=\"default\"} 0",
        "ringstat_pipeline_rejected_total{pipeline=\"default\"} 0",
        "ringstat_pipeline_queue_depth{pipeline=\"default\"} 0",
        "ringstat_pipeline_applied{pipeline=\"default\"}",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
}

/// A clock whose readers block while it is shut: stalls a worker at will
/// (a worker reads the clock to stamp an event sent with `ts` 0).
#[derive(Debug, Default)]
struct Gate {
    shut: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn set(&self, shut: bool) {
        *self.shut.lock().unwrap() = shut;
        self.opened.notify_all();
    }
}

impl ringstat::stats::Clock for Gate {
    fn now_nanos(&self) -> u64 {
        let mut shut = self.shut.lock().unwrap();
        while *shut {
            shut = self.opened.wait(shut).unwrap();
        }
        1
    }
}

#[test]
fn flush_and_close_until_give_up_at_the_deadline_and_resume() {
    use std::time::Instant;
    let gate = Arc::new(Gate::default());
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(1)
        .clock(gate.clone())
        .build()
        .unwrap();
    let c = p.counter("c").unwrap();
    gate.set(true);
    p.send(Event::count(c)).unwrap(); // the worker stalls stamping it
    let soon = || Some(Instant::now() + Duration::from_millis(20));
    let mut flush = p.start_flush();
    assert!(!flush.wait_until(soon()), "flushed past a stalled worker");
    assert!(!p.flush_until(Some(Instant::now())));
    assert!(!p.close_until(soon()), "closed past a stalled worker");
    assert!(p.is_closed());
    assert!(p.send(Event::count(c)).is_err());
    gate.set(false);
    // The flush begun before the close resumes and keeps its guarantee.
    assert!(flush.wait_until(None));
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 1);
    assert!(flush.wait_until(Some(Instant::now())));
    assert!(p.close_until(None));
    assert!(p.close_until(Some(Instant::now())));
    let s = p.stats();
    assert_eq!((s.received, s.applied, s.queue_depth), (1, 1, 0));
}
