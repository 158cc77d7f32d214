//! Async waits on the shared queue (`register_waker`, the watcher thread):
//! smoke, close, deregistration, and stress tests where "tasks" (threads
//! that only ever wait through a waker, never in a blocking call) move
//! every message exactly once with no wake-up lost: a lost one would be
//! found by the watcher's timed re-check, which counts it in
//! `debug_rescues`, and the tests assert that count stays 0.
#![cfg(all(target_os = "linux", not(ringstat_loom)))]

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::thread;

use ringstat::queue::{SharedPopError, SharedPushError, SharedQueue, SharedSide};

/// A waker that sets a flag and signals a condition variable.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Flag {
    fn wait(&self) {
        let mut s = self.set.lock().unwrap();
        while !*s {
            s = self.cv.wait(s).unwrap();
        }
        *s = false;
    }

    fn is_set(&self) -> bool {
        *self.set.lock().unwrap()
    }
}

/// Pops one message as an async task would: try, register, wait, retry.
fn task_pop(q: &SharedQueue, flag: &Arc<Flag>, key: u64) -> Result<Vec<u8>, SharedPopError> {
    let waker = Waker::from(Arc::clone(flag));
    loop {
        match q.try_pop() {
            Err(SharedPopError::Empty) => {}
            r => return r,
        }
        if q.register_waker(SharedSide::Pop, key, &waker).unwrap() {
            flag.wait();
            q.deregister_waker(SharedSide::Pop, key);
        }
    }
}

/// Pushes one message as an async task would.
fn task_push(
    q: &SharedQueue,
    flag: &Arc<Flag>,
    key: u64,
    msg: &[u8],
) -> Result<(), SharedPushError> {
    let waker = Waker::from(Arc::clone(flag));
    loop {
        match q.try_push(msg) {
            Err(SharedPushError::Full) => {}
            r => return r,
        }
        if q.register_waker(SharedSide::Push, key, &waker).unwrap() {
            flag.wait();
            q.deregister_waker(SharedSide::Push, key);
        }
    }
}

#[test]
fn smoke_push_fires_a_pop_waker() {
    let q = SharedQueue::heap(4, 16, 8).unwrap();
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    assert!(q.register_waker(SharedSide::Pop, 1, &waker).unwrap());
    let other = q.clone();
    let t = thread::spawn(move || other.try_push(b"hi").unwrap());
    flag.wait(); // fired by the watcher after the push
    t.join().unwrap();
    assert!(!q.deregister_waker(SharedSide::Pop, 1)); // it fired
    assert_eq!(q.try_pop().unwrap(), b"hi");
    // Ready now: nothing registered.
    q.try_push(b"x").unwrap();
    assert!(!q.register_waker(SharedSide::Pop, 2, &waker).unwrap());
    assert!(!q.register_waker(SharedSide::Push, 2, &waker).unwrap());
    assert_eq!(SharedQueue::debug_rescues(), 0);
}

#[test]
fn pop_frees_room_for_a_push_waker() {
    let q = SharedQueue::heap(1, 16, 8).unwrap();
    q.try_push(b"a").unwrap();
    let flag = Arc::new(Flag::default());
    assert!(q
        .register_waker(SharedSide::Push, 1, &Waker::from(Arc::clone(&flag)))
        .unwrap());
    assert_eq!(q.try_pop().unwrap(), b"a");
    flag.wait();
    q.try_push(b"b").unwrap();
}

#[test]
fn deregistered_waker_does_not_fire() {
    let q = SharedQueue::heap(4, 16, 8).unwrap();
    let flag = Arc::new(Flag::default());
    assert!(q
        .register_waker(SharedSide::Pop, 7, &Waker::from(Arc::clone(&flag)))
        .unwrap());
    assert!(q.deregister_waker(SharedSide::Pop, 7));
    assert!(!q.deregister_waker(SharedSide::Pop, 7));
    q.try_push(b"x").unwrap();
    // The watcher has no task: a later registration is "ready" at once.
    assert!(!q
        .register_waker(SharedSide::Pop, 8, &Waker::from(Arc::clone(&flag)))
        .unwrap());
    assert!(!flag.is_set());
}

#[test]
fn close_fires_every_waker_on_both_sides() {
    let q = SharedQueue::heap(1, 16, 8).unwrap();
    let empty = SharedQueue::heap(1, 16, 8).unwrap();
    q.try_push(b"full").unwrap();
    let flags: Vec<Arc<Flag>> = (0..3).map(|_| Arc::new(Flag::default())).collect();
    for (k, f) in flags.iter().enumerate() {
        let w = Waker::from(Arc::clone(f));
        assert!(q.register_waker(SharedSide::Push, k as u64, &w).unwrap());
        assert!(empty.register_waker(SharedSide::Pop, k as u64, &w).unwrap());
    }
    q.close();
    empty.close();
    for f in &flags {
        f.wait();
    }
    assert_eq!(q.try_push(b"x"), Err(SharedPushError::Closed));
    assert_eq!(empty.try_pop(), Err(SharedPopError::Closed));
    // Closed is "ready": nothing registers any more.
    assert!(!empty
        .register_waker(SharedSide::Pop, 9, Waker::noop())
        .unwrap());
}

#[test]
fn dropping_a_handle_with_registered_wakers_stops_its_watchers() {
    let q = SharedQueue::heap(2, 16, 8).unwrap();
    let other = q.clone();
    assert!(other
        .register_waker(SharedSide::Pop, 1, Waker::noop())
        .unwrap());
    drop(other); // stops the watcher, frees the counts
    q.try_push(b"still works").unwrap();
    assert_eq!(q.try_pop().unwrap(), b"still works");
}

/// Producer threads push; consumer "tasks" only wait through wakers. Every
/// message arrives exactly once; no wake-up was lost.
#[test]
fn stress_tasks_consume_threads_produce() {
    let (producers, consumers, per) = if cfg!(miri) {
        (2, 2, 50)
    } else {
        (3, 3, 20_000)
    };
    let q = SharedQueue::heap(8, 16, 16).unwrap();
    let prod: Vec<_> = (0..producers)
        .map(|k| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..per {
                    let id = (k * per + i) as u64;
                    q.push(&id.to_le_bytes(), None).unwrap();
                }
            })
        })
        .collect();
    let cons: Vec<_> = (0..consumers)
        .map(|c| {
            let q = q.clone();
            thread::spawn(move || {
                let flag = Arc::new(Flag::default());
                let mut got = Vec::new();
                while let Ok(m) = task_pop(&q, &flag, c as u64) {
                    got.push(u64::from_le_bytes(m.try_into().unwrap()));
                }
                got
            })
        })
        .collect();
    prod.into_iter().for_each(|t| t.join().unwrap());
    q.close();
    let mut seen = HashSet::new();
    for t in cons {
        for id in t.join().unwrap() {
            assert!(seen.insert(id), "message {id} popped twice");
        }
    }
    assert_eq!(seen.len(), producers * per);
    assert_eq!(SharedQueue::debug_rescues(), 0, "a wake-up was lost");
}

/// Producer "tasks" wait through wakers for room; consumers are threads
/// (blocking pops) and tasks mixed.
#[test]
fn stress_tasks_produce_into_a_small_queue() {
    let (producers, per) = if cfg!(miri) { (2, 50) } else { (3, 20_000) };
    let q = SharedQueue::heap(2, 16, 16).unwrap();
    let prod: Vec<_> = (0..producers)
        .map(|k| {
            let q = q.clone();
            thread::spawn(move || {
                let flag = Arc::new(Flag::default());
                for i in 0..per {
                    let id = (k * per + i) as u64;
                    task_push(&q, &flag, k as u64, &id.to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let blocking = {
        let q = q.clone();
        thread::spawn(move || {
            let mut got = Vec::new();
            while let Ok(m) = q.pop(None) {
                got.push(u64::from_le_bytes(m.try_into().unwrap()));
            }
            got
        })
    };
    let task = {
        let q = q.clone();
        thread::spawn(move || {
            let flag = Arc::new(Flag::default());
            let mut got = Vec::new();
            while let Ok(m) = task_pop(&q, &flag, 100) {
                got.push(u64::from_le_bytes(m.try_into().unwrap()));
            }
            got
        })
    };
    prod.into_iter().for_each(|t| t.join().unwrap());
    q.close();
    let mut seen = HashSet::new();
    for id in blocking
        .join()
        .unwrap()
        .into_iter()
        .chain(task.join().unwrap())
    {
        assert!(seen.insert(id), "message {id} popped twice");
    }
    assert_eq!(seen.len(), producers * per);
    assert_eq!(SharedQueue::debug_rescues(), 0, "a wake-up was lost");
}
