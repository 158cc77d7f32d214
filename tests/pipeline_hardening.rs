//! Regression tests of the pipeline core against hostile sizes and keys:
//! every bad size is an error (never a panic or an abort), batches report
//! exactly what they sent, and the session limit evicts and counts.

use std::time::{Duration, Instant};

use ringstat::pipeline::{
    DistinctConfig, Event, Pipeline, PipelineError, SessionsConfig, DEFAULT_CAPACITY,
};
use ringstat::Registry;

#[test]
fn huge_capacity_is_an_error_not_an_abort() {
    let reg = Registry::new();
    let e = Pipeline::builder(&reg)
        .workers(1)
        .capacity(1 << 50)
        .build()
        .unwrap_err();
    assert!(matches!(e, PipelineError::OutOfMemory { .. }), "{e:?}");
    assert!(e.to_string().contains("out of memory"), "{e}");
}

#[test]
fn capacity_above_the_maximum_says_so() {
    let reg = Registry::new();
    let cap = ringstat::queue::MAX_CAPACITY + 1;
    let e = Pipeline::builder(&reg).capacity(cap).build().unwrap_err();
    assert_eq!(e, PipelineError::InvalidCapacity { capacity: cap });
    assert!(e.to_string().contains("at most"), "{e}");
}

#[test]
fn name_with_nul_is_an_error_not_a_panic() {
    let reg = Registry::new();
    let e = Pipeline::builder(&reg).name("a\0b").build().unwrap_err();
    assert_eq!(
        e,
        PipelineError::InvalidName {
            name: "a\0b".into()
        }
    );
}

#[test]
fn huge_batch_size_does_not_allocate_up_front() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .batch_size(usize::MAX)
        .build()
        .unwrap();
    let c = p.counter("c").unwrap();
    let mut batch = vec![Event::count(c); 1000];
    p.send_batch(&mut batch).unwrap();
    p.close();
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 1000);
    assert_eq!(p.capacity(), DEFAULT_CAPACITY);
}

#[test]
fn huge_distinct_window_is_an_error_not_an_abort() {
    let reg = Registry::new();
    let p = Pipeline::new(&reg).unwrap();
    for buckets in [1usize << 40, 1 << 33] {
        let cfg = DistinctConfig {
            precision: 16,
            window: Duration::from_secs(u64::MAX / 2_000_000_000),
            buckets,
        };
        let e = p.distinct_with("u", cfg).unwrap_err();
        assert!(matches!(e, PipelineError::OutOfMemory { .. }), "{e:?}");
    }
    // The pipeline still works.
    assert!(p.distinct("u").is_ok());
}

#[test]
fn send_batch_until_leaves_what_it_did_not_send() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(2)
        .capacity(16)
        .build()
        .unwrap();
    let c = p.counter("c").unwrap();
    let mut batch = vec![Event::count(c); 10_000];
    let mut sent = 0;
    while !batch.is_empty() {
        let before = batch.len();
        p.send_batch_until(&mut batch, Some(Instant::now() + Duration::from_millis(1)))
            .unwrap();
        sent += before - batch.len();
    }
    p.close();
    assert_eq!(sent, 10_000);
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 10_000);
    assert_eq!(p.stats().received, 10_000);
}

#[test]
fn send_batch_racing_close_reports_exactly_what_went_in() {
    for workers in [1, 3] {
        let reg = Registry::new();
        let p = Pipeline::builder(&reg)
            .workers(workers)
            .capacity(64)
            .build()
            .unwrap();
        let c = p.counter("c").unwrap();
        let mut batch: Vec<Event> = (0..200_000u64)
            .map(|k| Event::count(c).with_key(k))
            .collect();
        let total = batch.len();
        std::thread::scope(|s| {
            s.spawn(|| {
                // Close once the batch is under way (`applied` moves as
                // the workers drain; `received` only once a run is queued).
                while p.stats().applied < 1000 {
                    std::thread::yield_now();
                }
                p.close();
            });
            assert!(p.send_batch(&mut batch).is_err());
        });
        let sent = (total - batch.len()) as u64;
        assert!(sent >= 1000 && sent < total as u64, "{sent}");
        let s = p.stats();
        assert_eq!(s.received, sent);
        assert_eq!(reg.counter("c", &[]).unwrap().get(), sent);
    }
}

#[test]
fn sessions_limit_evicts_the_oldest_and_counts() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg).workers(1).build().unwrap();
    let cfg = SessionsConfig {
        max_open: Some(3),
        ..SessionsConfig::default()
    };
    let s = p.sessions_with("online", cfg).unwrap();
    for k in 0..10u64 {
        p.send(Event::start(s, k).at(1 + k)).unwrap();
    }
    // 7 evicted (0..=6); 7, 8, 9 open. Ending 8 completes; ending 0 was
    // evicted: an end without start.
    p.send(Event::end(s, 8).at(2_000_000_000)).unwrap();
    p.send(Event::end(s, 0).at(2_000_000_000)).unwrap();
    p.flush();
    let counter = |n: &str| reg.counter(n, &[]).unwrap().get();
    assert_eq!(counter("online_evicted_total"), 7);
    assert_eq!(counter("online_started_total"), 10);
    assert_eq!(counter("online_completed_total"), 1);
    assert_eq!(reg.gauge("online_open", &[]).unwrap().get(), 2);
    assert_eq!(
        reg.counter("online_anomalies_total", &[("kind", "end_without_start")])
            .unwrap()
            .get(),
        1
    );
    // A restart moves a session to the back: 7 restarted, so 9 goes next.
    p.send(Event::start(s, 7).at(50)).unwrap();
    p.send(Event::start(s, 20).at(60)).unwrap();
    p.send(Event::start(s, 21).at(70)).unwrap();
    p.send(Event::end(s, 7).at(80)).unwrap();
    p.flush();
    assert_eq!(counter("online_evicted_total"), 8);
    assert_eq!(counter("online_completed_total"), 2);
    assert_eq!(reg.gauge("online_open", &[]).unwrap().get(), 2);
    // Another limit under the same name is a mismatch; 0 is refused.
    assert!(p.sessions("online").is_err());
    let zero = SessionsConfig {
        max_open: Some(0),
        ..SessionsConfig::default()
    };
    assert_eq!(
        p.sessions_with("other", zero),
        Err(PipelineError::InvalidMaxOpen)
    );
}

#[test]
fn sessions_limit_bounds_memory_under_churn() {
    // Many keys that never end, and many that do: the open count stays at
    // the limit and every start is accounted for.
    let reg = Registry::new();
    let p = Pipeline::builder(&reg).workers(2).build().unwrap();
    let cfg = SessionsConfig {
        max_open: Some(100),
        ..SessionsConfig::default()
    };
    let s = p.sessions_with("s", cfg).unwrap();
    let mut batch = Vec::new();
    for k in 0..50_000u64 {
        batch.push(Event::start(s, k).at(1 + k));
        if k % 2 == 0 {
            batch.push(Event::end(s, k).at(2 + k));
        }
    }
    p.send_batch(&mut batch).unwrap();
    p.flush();
    let counter = |n: &str| reg.counter(n, &[]).unwrap().get();
    let open = reg.gauge("s_open", &[]).unwrap().get();
    assert!((0..=100).contains(&open), "{open}");
    assert_eq!(
        counter("s_started_total"),
        counter("s_completed_total") + counter("s_evicted_total") + open as u64
    );
}
