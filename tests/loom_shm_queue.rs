//! Loom models of the shared queue's claim, publish and reclaim (the region
//! is heap memory under loom; each loom thread plays a process with its own
//! handle and participant entry, and "dies" through a test hook).
//!
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_shm_queue`
#![cfg(ringstat_loom)]

use loom::thread;
use ringstat::queue::{SharedPopError, SharedPushError, SharedQueue};

fn pop_spin(q: &SharedQueue) -> Vec<u8> {
    loop {
        match q.try_pop() {
            Ok(m) => return m,
            Err(SharedPopError::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn push_spin(q: &SharedQueue, msg: &[u8]) {
    loop {
        match q.try_push(msg) {
            Ok(()) => return,
            Err(SharedPushError::Full) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two producers, one consumer: each message arrives once, intact.
#[test]
fn claim_publish_two_producers() {
    loom::model(|| {
        let q = SharedQueue::heap(2, 4, 4).unwrap();
        let producers: Vec<_> = [*b"aaaa", *b"bbbb"]
            .into_iter()
            .map(|m| {
                let q = q.clone();
                thread::spawn(move || push_spin(&q, &m))
            })
            .collect();
        let mut got = vec![pop_spin(&q), pop_spin(&q)];
        for p in producers {
            p.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![b"aaaa".to_vec(), b"bbbb".to_vec()]);
        assert_eq!(q.lost(), 0);
    });
}

/// One producer, two consumers that each try one pop while it pushes:
/// every message is popped exactly once (by them or by the final drain).
#[test]
fn claim_publish_two_consumers() {
    loom::model(|| {
        let q = SharedQueue::heap(2, 1, 4).unwrap();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.try_pop().ok())
            })
            .collect();
        push_spin(&q, b"1");
        push_spin(&q, b"2");
        let mut got: Vec<_> = consumers
            .into_iter()
            .filter_map(|c| c.join().unwrap())
            .collect();
        while let Ok(m) = q.try_pop() {
            got.push(m);
        }
        got.sort();
        assert_eq!(got, vec![b"1".to_vec(), b"2".to_vec()]);
    });
}

/// A producer dies holding a claim while another pushes and a consumer
/// pops: the consumer gets the live producer's message, the dead claim is
/// reclaimed (by the consumer or by a sweep) and counted once, and the
/// queue works afterwards.
#[test]
fn reclaim_dead_producer_claim() {
    loom::model(|| {
        let q = SharedQueue::heap(2, 1, 4).unwrap();
        let dead = {
            let q = q.clone();
            thread::spawn(move || {
                q.debug_claim_push_and_stop().unwrap();
                q.debug_die();
            })
        };
        let live = {
            let q = q.clone();
            thread::spawn(move || push_spin(&q, b"x"))
        };
        assert_eq!(pop_spin(&q), b"x");
        dead.join().unwrap();
        live.join().unwrap();
        q.sweep();
        assert_eq!(q.lost(), 1);
        push_spin(&q, b"y");
        assert_eq!(pop_spin(&q), b"y");
        assert_eq!(q.try_pop(), Err(SharedPopError::Empty));
    });
}

/// A consumer dies holding a claim on a full queue of capacity 1: the
/// producer of the next lap reclaims the slot, counts it lost, and pushes.
#[test]
fn reclaim_dead_consumer_claim() {
    loom::model(|| {
        let q = SharedQueue::heap(1, 1, 4).unwrap();
        q.try_push(b"a").unwrap();
        let dead = {
            let q = q.clone();
            thread::spawn(move || {
                q.debug_claim_pop_and_stop();
                q.debug_die();
            })
        };
        let live = {
            let q = q.clone();
            thread::spawn(move || push_spin(&q, b"b"))
        };
        dead.join().unwrap();
        live.join().unwrap();
        assert_eq!(q.lost(), 1);
        assert_eq!(pop_spin(&q), b"b");
    });
}
