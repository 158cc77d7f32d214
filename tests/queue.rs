//! Behaviour of `Queue<T>`, named as a checklist.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ringstat::queue::MAX_CAPACITY;
use ringstat::{PopError, PushError, Queue};

#[test]
fn smoke() {
    let q = Queue::new(1);
    q.try_push(7).unwrap();
    assert_eq!(q.try_pop(), Ok(7));
    q.try_push(8).unwrap();
    assert_eq!(q.try_pop(), Ok(8));
    assert_eq!(q.try_pop(), Err(PopError::Empty));
}

#[test]
fn capacity() {
    for cap in 1..20 {
        let q = Queue::<i32>::new(cap);
        assert_eq!(q.capacity(), cap);
        for i in 0..cap {
            assert_eq!(q.len(), i);
            q.try_push(i as i32).unwrap();
        }
        assert!(q.is_full());
        assert_eq!(q.try_push(-1), Err(PushError::Full(-1)));
        assert_eq!(q.len(), cap);
    }
}

#[test]
#[should_panic(expected = "queue capacity must be at least 1, got 0")]
fn zero_capacity() {
    let _ = Queue::<i32>::new(0);
}

#[test]
fn capacity_errors() {
    let e = Queue::<u8>::try_new(0).unwrap_err();
    assert_eq!(e.requested(), 0);
    assert!(e.to_string().contains("at least 1"));
    let e = Queue::<u8>::try_new(MAX_CAPACITY + 1).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    // Valid, but far more memory than exists: an error, not an abort. (Miri
    // reports an impossible allocation as resource exhaustion instead of
    // failing it, so it skips this part.)
    if !cfg!(miri) {
        let e = Queue::<u64>::try_new(1 << 50).unwrap_err();
        assert!(e.is_alloc_failure());
        assert!(e.to_string().contains("out of memory"), "{e}");
    }
}

#[test]
fn len_empty_full() {
    let q = Queue::new(2);
    assert!(q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.len(), 0);

    q.try_push(()).unwrap();
    assert!(!q.is_empty());
    assert!(!q.is_full());
    assert_eq!(q.len(), 1);

    q.try_push(()).unwrap();
    assert!(!q.is_empty());
    assert!(q.is_full());
    assert_eq!(q.len(), 2);

    q.try_pop().unwrap();
    assert_eq!(q.len(), 1);
}

#[test]
fn len_across_many_laps() {
    let q = Queue::new(3);
    for lap in 0..50 {
        for i in 0..(lap % 4).min(3) {
            q.try_push(i).unwrap();
        }
        assert_eq!(q.len(), (lap % 4).min(3));
        while q.try_pop().is_ok() {}
        assert_eq!(q.len(), 0);
    }
}

#[test]
fn push_error_hands_value_back() {
    let q = Queue::new(1);
    q.try_push(String::from("a")).unwrap();
    let e = q.try_push(String::from("b")).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.to_string(), "push failed: the queue is full");
    assert_eq!(format!("{e:?}"), "Full(..)");
    assert_eq!(e.into_inner(), "b");
    q.close();
    let e = q.try_push(String::from("c")).unwrap_err();
    assert!(e.is_closed());
    assert_eq!(e.into_inner(), "c");
}

#[test]
fn fifo_order_and_wraparound() {
    let q = Queue::new(5);
    let mut next_out = 0;
    let mut next_in = 0;
    for round in 0..1000 {
        for _ in 0..(round % 5 + 1) {
            if q.try_push(next_in).is_ok() {
                next_in += 1;
            }
        }
        for _ in 0..(round % 3 + 1) {
            if let Ok(v) = q.try_pop() {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
    }
}

#[test]
fn close_drains_then_reports_closed() {
    let q = Queue::new(4);
    q.try_push(1).unwrap();
    q.try_push(2).unwrap();
    assert!(q.close());
    assert!(!q.close());
    assert!(q.is_closed());
    assert_eq!(q.try_push(3), Err(PushError::Closed(3)));
    assert_eq!(q.push(3), Err(PushError::Closed(3)));
    assert_eq!(q.force_push(3), Err(PushError::Closed(3)));
    assert_eq!(q.len(), 2);
    assert_eq!(q.pop(), Ok(1));
    assert_eq!(q.try_pop(), Ok(2));
    assert_eq!(q.try_pop(), Err(PopError::Closed));
    assert_eq!(q.pop(), Err(PopError::Closed));
    assert_eq!(
        q.pop_timeout(Duration::from_secs(10)),
        Err(PopError::Closed)
    );
}

#[test]
fn force_push_overwrites_oldest() {
    let q = Queue::new(3);
    for i in 0..3 {
        assert_eq!(q.force_push(i), Ok(None));
    }
    assert_eq!(q.force_push(3), Ok(Some(0)));
    assert_eq!(q.force_push(4), Ok(Some(1)));
    assert_eq!(q.len(), 3);
    assert_eq!(q.try_pop(), Ok(2));
    assert_eq!(q.force_push(5), Ok(None));
    let rest: Vec<_> = std::iter::from_fn(|| q.try_pop().ok()).collect();
    assert_eq!(rest, [3, 4, 5]);
}

#[test]
fn force_push_capacity_one() {
    let q = Queue::new(1);
    assert_eq!(q.force_push(1), Ok(None));
    for i in 2..100 {
        assert_eq!(q.force_push(i), Ok(Some(i - 1)));
        assert_eq!(q.len(), 1);
    }
    assert_eq!(q.try_pop(), Ok(99));
}

#[test]
fn batch_push_and_pop() {
    let q = Queue::new(5);
    let mut items: Vec<i32> = (0..12).collect();
    assert_eq!(q.try_push_batch(&mut items), Ok(5));
    assert_eq!(items, (5..12).collect::<Vec<_>>());
    assert_eq!(q.try_push_batch(&mut items), Ok(0));

    let mut out = Vec::new();
    assert_eq!(q.try_pop_batch(&mut out, 2), Ok(2));
    assert_eq!(out, [0, 1]);
    // Room for 2 more, across the wrap-around point.
    assert_eq!(q.try_push_batch(&mut items), Ok(2));
    assert_eq!(q.try_pop_batch(&mut out, 100), Ok(5));
    assert_eq!(out, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(q.try_pop_batch(&mut out, 100), Ok(0));
    assert_eq!(q.try_pop_batch(&mut out, 0), Ok(0));

    let mut empty = Vec::new();
    assert_eq!(q.try_push_batch(&mut empty), Ok(0));
    q.close();
    assert_eq!(q.try_push_batch(&mut items), Err(ringstat::queue::Closed));
    assert_eq!(items, (7..12).collect::<Vec<_>>(), "nothing lost on close");
    assert_eq!(q.try_push_batch(&mut empty), Err(ringstat::queue::Closed));
    assert_eq!(q.try_pop_batch(&mut out, 3), Err(ringstat::queue::Closed));
    assert_eq!(q.try_pop_batch(&mut out, 0), Err(ringstat::queue::Closed));
}

/// Batches move owned values: a partial push leaves the rest of the vector
/// in order, pops append after what `out` already holds, runs wrap around
/// the ring, and every value is dropped exactly once (Miri checks the
/// moves too).
#[test]
fn batch_moves_owned_values() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let make = |i: usize| (i.to_string(), DropCounter(Arc::clone(&dropped)));
    let q = Queue::new(5);
    // Start mid-ring so runs wrap.
    q.try_push(make(100)).unwrap();
    q.try_push(make(101)).unwrap();
    drop(q.try_pop().unwrap());
    drop(q.try_pop().unwrap());
    let mut items: Vec<_> = (0..8).map(make).collect();
    assert_eq!(q.try_push_batch(&mut items), Ok(5));
    let left: Vec<&str> = items.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(left, ["5", "6", "7"]);
    let mut out = vec![make(99)];
    assert_eq!(q.try_pop_batch(&mut out, 3), Ok(3));
    assert_eq!(q.try_push_batch(&mut items), Ok(3));
    assert!(items.is_empty());
    assert_eq!(q.try_pop_batch(&mut out, 10), Ok(5));
    let got: Vec<&str> = out.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(got, ["99", "0", "1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(dropped.load(Ordering::Relaxed), 2);
    drop(out);
    assert_eq!(dropped.load(Ordering::Relaxed), 11);
    // Items still queued are dropped with the queue.
    let mut more: Vec<_> = (0..4).map(make).collect();
    assert_eq!(q.try_push_batch(&mut more), Ok(4));
    drop(q);
    assert_eq!(dropped.load(Ordering::Relaxed), 15);
}

#[test]
fn batch_timeouts() {
    let q = Queue::new(2);
    let mut items = vec![1, 2, 3];
    assert_eq!(
        q.push_batch_timeout(&mut items, Duration::from_millis(5)),
        Ok(2)
    );
    assert_eq!(items, [3]);
    let mut out = Vec::new();
    assert_eq!(
        q.pop_batch_timeout(&mut out, 10, Duration::from_millis(5)),
        Ok(2)
    );
    assert_eq!(
        q.pop_batch_timeout(&mut out, 10, Duration::from_millis(5)),
        Ok(0)
    );
}

#[test]
fn timeouts_expire() {
    let q = Queue::new(1);
    assert_eq!(q.pop_timeout(Duration::ZERO), Err(PopError::Empty));
    assert_eq!(
        q.pop_timeout(Duration::from_millis(20)),
        Err(PopError::Empty)
    );
    q.push_timeout(1, Duration::ZERO).unwrap();
    assert_eq!(
        q.push_timeout(2, Duration::from_millis(20)),
        Err(PushError::Full(2))
    );
    // A huge timeout does not overflow: it waits "forever" and is satisfied.
    assert_eq!(q.pop_timeout(Duration::MAX), Ok(1));
}

#[test]
fn blocked_pop_wakes_on_push() {
    let q = Arc::new(Queue::new(1));
    let consumer = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.pop())
    };
    thread::sleep(Duration::from_millis(50)); // let it park
    q.push(42).unwrap();
    assert_eq!(consumer.join().unwrap(), Ok(42));
}

#[test]
fn blocked_push_wakes_on_pop() {
    let q = Arc::new(Queue::new(1));
    q.push(1).unwrap();
    let producer = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.push(2))
    };
    thread::sleep(Duration::from_millis(50));
    assert_eq!(q.pop(), Ok(1));
    producer.join().unwrap().unwrap();
    assert_eq!(q.pop(), Ok(2));
}

/// A producer blocked on a full queue waits, while it spins and yields, for
/// half the ring to be free (so it stops trailing the consumer line by line).
/// When the consumer frees a single slot and stops, the push must still
/// complete,
/// whether the producer is spinning or parked when the slot frees up, and
/// wherever `tail` sits in the ring (the watched gap may wrap to the next
/// lap).
#[test]
fn blocked_push_takes_a_single_freed_slot() {
    let caps: &[usize] = if cfg!(miri) {
        &[1, 2, 65]
    } else {
        &[1, 2, 63, 64, 65, 100, 1000]
    };
    for &cap in caps {
        for offset in [0, 1, cap / 2, cap - 1] {
            for pause in [Duration::ZERO, Duration::from_millis(20)] {
                let q = Arc::new(Queue::new(cap));
                // Move `tail` to `offset` in the ring, then fill it.
                for i in 0..offset {
                    q.push(i).unwrap();
                    assert_eq!(q.pop(), Ok(i));
                }
                for i in 0..cap {
                    q.push(1000 + i).unwrap();
                }
                let producer = {
                    let q = Arc::clone(&q);
                    thread::spawn(move || q.push(usize::MAX))
                };
                thread::sleep(pause);
                assert_eq!(q.pop(), Ok(1000));
                producer.join().unwrap().unwrap();
                let rest: Vec<usize> = std::iter::from_fn(|| q.try_pop().ok()).collect();
                let expected: Vec<usize> = (1001..1000 + cap).chain([usize::MAX]).collect();
                assert_eq!(rest, expected, "cap {cap}, offset {offset}");
            }
        }
    }
}

#[test]
fn close_wakes_every_waiter() {
    let empty = Arc::new(Queue::<u32>::new(1));
    let full = Arc::new(Queue::<u32>::new(1));
    full.push(0).unwrap();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let e = Arc::clone(&empty);
        handles.push(thread::spawn(move || e.pop().is_err()));
        let f = Arc::clone(&full);
        handles.push(thread::spawn(move || f.push(1).is_err()));
        let e = Arc::clone(&empty);
        handles.push(thread::spawn(move || {
            e.pop_batch(&mut Vec::new(), 4).is_err()
        }));
    }
    thread::sleep(Duration::from_millis(50));
    empty.close();
    full.close();
    for h in handles {
        assert!(h.join().unwrap(), "every waiter returns with an error");
    }
    assert_eq!(full.pop(), Ok(0), "what was pushed before close stays");
}

#[test]
fn spsc() {
    const N: u64 = if cfg!(miri) { 200 } else { 100_000 };
    let q = Arc::new(Queue::new(3));
    let producer = {
        let q = Arc::clone(&q);
        thread::spawn(move || {
            for i in 0..N {
                q.push(i).unwrap();
            }
        })
    };
    for i in 0..N {
        assert_eq!(q.pop(), Ok(i));
    }
    producer.join().unwrap();
    assert!(q.is_empty());
}

#[test]
fn mpmc() {
    const PER: usize = if cfg!(miri) { 50 } else { 25_000 };
    const THREADS: usize = 4;
    let q = Arc::new(Queue::<usize>::new(7));
    let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..PER).map(|_| AtomicUsize::new(0)).collect());
    let mut handles = Vec::new();
    for _ in 0..THREADS {
        let consumer_q = Arc::clone(&q);
        let seen = Arc::clone(&seen);
        handles.push(thread::spawn(move || {
            for _ in 0..PER {
                let v = consumer_q.pop().unwrap();
                seen[v].fetch_add(1, Ordering::Relaxed);
            }
        }));
        let producer_q = Arc::clone(&q);
        handles.push(thread::spawn(move || {
            for i in 0..PER {
                producer_q.push(i).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    for c in seen.iter() {
        assert_eq!(c.load(Ordering::Relaxed), THREADS);
    }
}

/// Counts live instances, so tests can prove every item is dropped once.
#[derive(Debug)]
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn drops() {
    let steps = if cfg!(miri) { 30 } else { 1000 };
    for cap in [1, 2, 7, 16] {
        for additional in 0..=cap + 2 {
            let dropped = Arc::new(AtomicUsize::new(0));
            let q = Queue::new(cap);
            let mut created = 0;
            // Walk the ring a few laps first so head/tail are not at zero.
            for _ in 0..steps % (cap * 3 + 1) {
                q.try_push(DropCounter(Arc::clone(&dropped))).unwrap();
                created += 1;
                drop(q.try_pop().unwrap());
            }
            for _ in 0..additional {
                // Overflowing pushes hand the value back; force_push displaces.
                match q.force_push(DropCounter(Arc::clone(&dropped))) {
                    Ok(displaced) => drop(displaced),
                    Err(e) => drop(e.into_inner()),
                }
                created += 1;
            }
            assert_eq!(
                dropped.load(Ordering::Relaxed),
                created - additional.min(cap)
            );
            drop(q);
            assert_eq!(dropped.load(Ordering::Relaxed), created, "cap={cap}");
        }
    }
}

#[test]
fn linearizable() {
    // Every thread does push-then-pop on a queue of capacity = threads: a
    // pop right after one's own push never finds the queue empty.
    const THREADS: usize = 4;
    const OPS: usize = if cfg!(miri) { 50 } else { 20_000 };
    let q = Arc::new(Queue::new(THREADS));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let q = Arc::clone(&q);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..OPS {
                    q.try_push(0).unwrap();
                    q.try_pop().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn send_sync_bounds() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Queue<String>>();
    assert_send_sync::<Queue<std::sync::mpsc::Sender<u8>>>(); // Send, !Sync item
}

#[test]
fn debug_format() {
    let q = Queue::new(2);
    q.try_push(1).unwrap();
    assert_eq!(
        format!("{q:?}"),
        "Queue { len: 1, capacity: 2, closed: false }"
    );
}

#[test]
fn iter_pops_until_closed_and_drained() {
    let n = if cfg!(miri) { 200 } else { 100_000u64 };
    let q = Arc::new(Queue::new(8));
    let producer = {
        let q = Arc::clone(&q);
        thread::spawn(move || {
            for i in 0..n {
                q.push(i).unwrap();
            }
            q.close();
        })
    };
    let mut it = q.iter();
    let got: Vec<u64> = it.by_ref().collect();
    producer.join().unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "every item, in order");
    // Fused: a closed, drained queue stays so.
    assert_eq!(it.next(), None);
    assert_eq!(q.iter().next(), None);
}

#[test]
fn try_iter_stops_at_empty_and_resumes() {
    let q = Queue::new(4);
    let mut it = q.try_iter();
    assert_eq!(it.next(), None, "empty: does not wait");
    for i in 0..3 {
        q.try_push(i).unwrap();
    }
    assert_eq!(it.by_ref().take(2).collect::<Vec<_>>(), [0, 1]);
    q.try_push(3).unwrap();
    assert_eq!(it.by_ref().collect::<Vec<_>>(), [2, 3]);
    q.try_push(4).unwrap();
    assert_eq!(it.next(), Some(4), "not fused: later items are found");
    q.try_push(5).unwrap();
    q.close();
    assert_eq!(
        q.try_iter().collect::<Vec<_>>(),
        [5],
        "drains a closed queue"
    );
    assert_eq!(q.try_iter().next(), None);
}

#[test]
fn into_iter_yields_what_is_left_and_drops_the_rest() {
    for cap in [1, 3, 8] {
        for skip in 0..cap * 2 {
            let dropped = Arc::new(AtomicUsize::new(0));
            let q = Queue::new(cap);
            // Move head and tail off zero, so the items left wrap the ring.
            for _ in 0..skip {
                q.try_push(DropCounter(Arc::clone(&dropped))).unwrap();
                drop(q.try_pop().unwrap());
            }
            let ids: Vec<_> = (0..cap).map(|_| Arc::new(AtomicUsize::new(0))).collect();
            for id in &ids {
                q.try_push(DropCounter(Arc::clone(id))).unwrap();
            }
            if skip % 2 == 1 {
                q.close(); // closed or not, the items left come out
            }
            let mut it = q.into_iter();
            assert_eq!(it.len(), cap);
            let first = it.next().unwrap();
            assert!(Arc::ptr_eq(&first.0, &ids[0]), "oldest first");
            assert_eq!(it.len(), cap - 1);
            drop(first);
            drop(it);
            // Taken or not, every item is dropped exactly once.
            for id in &ids {
                assert_eq!(id.load(Ordering::Relaxed), 1, "cap={cap} skip={skip}");
            }
            assert_eq!(dropped.load(Ordering::Relaxed), skip);
        }
    }
}

#[test]
fn iterators_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let q = Queue::<String>::new(1);
    assert_send(&q.iter());
    assert_send(&q.try_iter());
    assert_send(&q.into_iter());
}
