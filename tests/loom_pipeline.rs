//! Loom models of the pipeline's own wait logic (beyond the queue's):
//! flush markers answered by a worker, and close draining a worker.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_pipeline`
#![cfg(ringstat_loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use ringstat::pipeline::{Event, Pipeline};
use ringstat::stats::Registry;

#[test]
fn flush_covers_a_send_that_returned_before_it() {
    // Capacity 2: with capacity 1, the flush marker's push and the event's
    // push both spin-wait (through loom's yield) on the same slot and loom
    // ping-pongs between the two spinners past its branch limit.
    loom::model(|| {
        let reg = Registry::new();
        let p = Arc::new(
            Pipeline::builder(&reg)
                .workers(1)
                .capacity(2)
                .build()
                .unwrap(),
        );
        let c = p.counter("c").unwrap();
        let sent = Arc::new(AtomicBool::new(false));
        let producer = {
            let (p, sent) = (Arc::clone(&p), Arc::clone(&sent));
            thread::spawn(move || {
                p.send(Event::count(c)).unwrap();
                // Release: pairs with the Acquire load before the flush.
                sent.store(true, Ordering::Release);
            })
        };
        let before = sent.load(Ordering::Acquire);
        p.flush();
        let counter = reg.counter("c", &[]).unwrap();
        if before {
            assert_eq!(
                counter.get(),
                1,
                "flush returned before a sent event applied"
            );
        }
        producer.join().unwrap();
        p.close();
        assert_eq!(counter.get(), 1);
    });
}

#[test]
fn close_drains_a_concurrent_send_or_refuses_it() {
    loom::model(|| {
        let reg = Registry::new();
        let p = Arc::new(
            Pipeline::builder(&reg)
                .workers(1)
                .capacity(1)
                .build()
                .unwrap(),
        );
        let c = p.counter("c").unwrap();
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.send(Event::count(c)).is_ok())
        };
        p.close();
        let ok = producer.join().unwrap();
        assert_eq!(reg.counter("c", &[]).unwrap().get(), u64::from(ok));
        assert_eq!(p.stats().applied, u64::from(ok));
    });
}
