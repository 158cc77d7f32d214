//! Stress: many producer threads, several workers, close mid-stream, and the
//! three back-pressure policies. Checks conservation exactly: under `Block`
//! nothing whose send succeeded is lost; under the drop policies every drop
//! is counted, `received == applied + dropped`, and the applied counts match.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;

use ringstat::pipeline::{Backpressure, Event, Pipeline, SendError};
use ringstat::stats::Registry;

const PRODUCERS: u64 = 8;

fn per_producer() -> u64 {
    if cfg!(miri) {
        50
    } else if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    }
}

#[test]
fn block_close_mid_stream_loses_nothing_sent() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(3)
        .capacity(96)
        .batch_size(16)
        .build()
        .unwrap();
    let hits = p.counter("hits").unwrap();
    let online = p.sessions("online").unwrap();
    let ok_sends = AtomicU64::new(0);
    let ok_starts = AtomicU64::new(0);
    let ok_ends = AtomicU64::new(0);
    let closed_seen = AtomicU64::new(0);
    let barrier = Barrier::new(PRODUCERS as usize + 1);
    thread::scope(|s| {
        for id in 0..PRODUCERS {
            let (p, ok_sends, ok_starts, ok_ends, closed_seen, barrier) =
                (&p, &ok_sends, &ok_starts, &ok_ends, &closed_seen, &barrier);
            s.spawn(move || {
                let mut tx = p.sender();
                barrier.wait();
                let mut batch = Vec::new();
                for i in 0..per_producer() {
                    // Half the producers send singly, half in batches.
                    let user = id * 1_000_000 + i / 2;
                    let ev = if i % 3 == 0 {
                        Event::count(hits)
                    } else if i % 2 == 0 {
                        Event::start(online, user)
                    } else {
                        Event::end(online, user)
                    };
                    let tally = |ev: Event, n: u64| match ev.op() {
                        ringstat::pipeline::Op::Count => ok_sends.fetch_add(n, Ordering::Relaxed),
                        ringstat::pipeline::Op::Start => ok_starts.fetch_add(n, Ordering::Relaxed),
                        _ => ok_ends.fetch_add(n, Ordering::Relaxed),
                    };
                    if id % 2 == 0 {
                        match tx.send(ev) {
                            Ok(()) => {
                                tally(ev, 1);
                            }
                            Err(SendError::Closed(back)) => {
                                assert_eq!(back, ev);
                                closed_seen.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            Err(e) => panic!("Block never drops: {e}"),
                        }
                    } else {
                        batch.push(ev);
                        if batch.len() == 64 || i + 1 == per_producer() {
                            let sent: Vec<Event> = batch.clone();
                            let r = tx.send_batch(&mut batch);
                            // What is left in `batch` was not sent.
                            let mut left = batch.clone();
                            for ev in sent {
                                if let Some(pos) = left.iter().position(|e| *e == ev) {
                                    left.swap_remove(pos);
                                } else {
                                    tally(ev, 1);
                                }
                            }
                            match r {
                                Ok(0) => {}
                                Ok(d) => panic!("Block never drops: {d}"),
                                Err(_) => {
                                    closed_seen.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
        barrier.wait();
        // Let the stream run a little, then close while producers push.
        while p.stats().applied < PRODUCERS * per_producer() / 4 {
            thread::yield_now();
        }
        p.close();
    });
    assert!(p.is_closed());
    let stats = p.stats();
    let sent = ok_sends.load(Ordering::Relaxed)
        + ok_starts.load(Ordering::Relaxed)
        + ok_ends.load(Ordering::Relaxed);
    assert_eq!(stats.received, sent);
    assert_eq!(stats.applied, sent);
    assert_eq!(
        (stats.dropped, stats.rejected, stats.queue_depth),
        (0, 0, 0)
    );
    assert_eq!(
        reg.counter("hits", &[]).unwrap().get(),
        ok_sends.load(Ordering::Relaxed)
    );
    // Every start and end is accounted for by the session metrics.
    let c = |n: &str| reg.counter(n, &[]).unwrap().get();
    let a = |k: &str| {
        reg.counter("online_anomalies_total", &[("kind", k)])
            .unwrap()
            .get()
    };
    assert_eq!(
        c("online_started_total") + a("double_start"),
        ok_starts.load(Ordering::Relaxed)
    );
    assert_eq!(
        c("online_completed_total") + a("end_without_start"),
        ok_ends.load(Ordering::Relaxed)
    );
    assert_eq!(
        reg.gauge("online_open", &[]).unwrap().get(),
        (c("online_started_total") - c("online_completed_total")) as i64
    );
    // The close was mid-stream: producers are at most a queue ahead of the
    // workers, so at least one had not finished and saw `Closed`.
    assert!(closed_seen.load(Ordering::Relaxed) > 0);
}

/// Runs `PRODUCERS` threads of counter events through a small pipeline with
/// `policy` while another thread flushes repeatedly; returns
/// `(successful sends, sends refused as dropped, dropped reported by batches)`.
fn lossy_run(policy: Backpressure, reg: &Registry) -> (Pipeline, u64, u64, u64) {
    let p = Pipeline::builder(reg)
        .workers(2)
        .capacity(8)
        .batch_size(4)
        .backpressure(policy)
        .build()
        .unwrap();
    let hits = p.counter("hits").unwrap();
    let ok = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let batch_dropped = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let flusher = s.spawn(|| {
            let mut flushes = 0;
            while !done.load(Ordering::Relaxed) {
                p.flush();
                flushes += 1;
            }
            flushes
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                let (p, ok, refused, batch_dropped) = (&p, &ok, &refused, &batch_dropped);
                s.spawn(move || {
                    let n = per_producer() / 2;
                    if id % 2 == 0 {
                        for _ in 0..n {
                            match p.send(Event::count(hits)) {
                                Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                                Err(SendError::Dropped(_)) => {
                                    refused.fetch_add(1, Ordering::Relaxed)
                                }
                                Err(e) => panic!("{e}"),
                            };
                        }
                    } else {
                        let mut tx = p.sender();
                        for _ in 0..n / 16 {
                            let mut batch = vec![Event::count(hits); 16];
                            let d = tx.send_batch(&mut batch).unwrap();
                            assert!(batch.is_empty());
                            batch_dropped.fetch_add(d, Ordering::Relaxed);
                            ok.fetch_add(16, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in producers {
            t.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(flusher.join().unwrap() > 0);
    });
    p.close();
    (
        p,
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        batch_dropped.load(Ordering::Relaxed),
    )
}

#[test]
fn drop_newest_counts_every_drop() {
    let reg = Registry::new();
    let (p, ok, refused, batch_dropped) = lossy_run(Backpressure::DropNewest, &reg);
    let s = p.stats();
    let hits = reg.counter("hits", &[]).unwrap().get();
    // Batches count the events that did not fit as sent-and-dropped.
    assert_eq!(s.received, ok + refused);
    assert_eq!(s.dropped, refused + batch_dropped);
    assert_eq!(s.received, s.applied + s.dropped);
    assert_eq!(hits, s.applied);
    assert_eq!((s.rejected, s.queue_depth), (0, 0));
    assert_eq!(
        reg.counter(
            "ringstat_pipeline_dropped_total",
            &[("pipeline", "default")]
        )
        .unwrap()
        .get(),
        s.dropped
    );
}

#[test]
fn overwrite_oldest_counts_every_displaced_event() {
    let reg = Registry::new();
    let (p, ok, refused, batch_dropped) = lossy_run(Backpressure::OverwriteOldest, &reg);
    let s = p.stats();
    assert_eq!(refused, 0, "overwrite never refuses");
    assert_eq!(s.received, ok);
    assert_eq!(s.received, s.applied + s.dropped);
    assert!(batch_dropped <= s.dropped);
    assert_eq!(reg.counter("hits", &[]).unwrap().get(), s.applied);
    assert_eq!((s.rejected, s.queue_depth), (0, 0));
}

#[test]
fn block_never_drops_under_pressure() {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(2)
        .capacity(4)
        .batch_size(2)
        .build()
        .unwrap();
    let hits = p.counter("hits").unwrap();
    thread::scope(|s| {
        for _ in 0..PRODUCERS {
            s.spawn(|| {
                for _ in 0..per_producer() / 4 {
                    p.send(Event::count(hits)).unwrap();
                }
            });
        }
        s.spawn(|| {
            for _ in 0..20 {
                p.flush();
            }
        });
    });
    p.flush();
    let total = PRODUCERS * (per_producer() / 4);
    assert_eq!(reg.counter("hits", &[]).unwrap().get(), total);
    let st = p.stats();
    assert_eq!((st.received, st.applied, st.dropped), (total, total, 0));
}
