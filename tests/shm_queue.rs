//! The shared queue: behaviour (smoke, capacity, sizes, close, timeouts),
//! a model check against `VecDeque`, reclaim of slots held by dead
//! processes, a cross-process stress test with conservation by message id,
//! and a test that SIGKILLs producers and consumers at random points.
#![cfg(all(target_os = "linux", not(ringstat_loom)))]

use std::collections::{HashSet, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use ringstat::queue::{
    SharedPopError, SharedPushError, SharedQueue, SharedQueueError, SharedQueueOptions,
};
use ringstat::shm::{self, Kind, Options, Region};

struct Name(String);

impl Name {
    fn new(tag: &str) -> Self {
        let n = format!("ringstat-tq-{tag}-{}", std::process::id());
        let _ = shm::cleanup(&n);
        Name(n)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shm::cleanup(&self.0);
    }
}

fn opts() -> SharedQueueOptions {
    SharedQueueOptions::default()
}

fn child(test: &str, envs: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

#[test]
fn smoke() {
    let name = Name::new("smoke");
    let q = SharedQueue::create(&name.0, 4, 16, &opts()).unwrap();
    let other = SharedQueue::attach(&name.0, &opts()).unwrap();
    assert_eq!((other.capacity(), other.slot_size()), (4, 16));
    assert_eq!(q.try_pop(), Err(SharedPopError::Empty));
    q.try_push(b"a").unwrap();
    q.try_push(b"").unwrap();
    q.try_push(&[7; 16]).unwrap();
    assert_eq!(other.len(), 3);
    assert_eq!(other.try_pop().unwrap(), b"a");
    assert_eq!(other.try_pop().unwrap(), b"");
    assert_eq!(other.try_pop_with(|b| b.len()).unwrap(), 16);
    assert!(q.is_empty());
    assert_eq!(q.lost(), 0);
}

#[test]
fn capacity_and_sizes() {
    let q = SharedQueue::heap(2, 8, 4).unwrap();
    q.try_push(b"1").unwrap();
    q.try_push(b"2").unwrap();
    assert_eq!(q.try_push(b"3"), Err(SharedPushError::Full));
    assert_eq!(
        q.try_push(&[0; 9]),
        Err(SharedPushError::TooLarge { len: 9, max: 8 })
    );
    // A message larger than a slot fails at once, even when blocking forever.
    assert_eq!(
        q.push(&[0; 100], None),
        Err(SharedPushError::TooLarge { len: 100, max: 8 })
    );
    assert_eq!(
        q.push(b"3", Some(Duration::from_millis(10))),
        Err(SharedPushError::Full)
    );
    assert_eq!(q.try_pop().unwrap(), b"1");
    q.try_push(b"3").unwrap();
    assert_eq!(q.try_pop().unwrap(), b"2");
    assert_eq!(q.try_pop().unwrap(), b"3");
    assert_eq!(
        q.pop(Some(Duration::from_millis(10))),
        Err(SharedPopError::Empty)
    );
    for (cap, slot, procs) in [(0, 8, 1), (1, 0, 1), (1, 8, 0), (1, 8, 1 << 20)] {
        assert!(matches!(
            SharedQueue::heap(cap, slot, procs),
            Err(SharedQueueError::InvalidArgument(_))
        ));
    }
}

#[test]
fn close_drains_then_reports_closed() {
    let q = SharedQueue::heap(4, 8, 4).unwrap();
    q.try_push(b"x").unwrap();
    assert!(q.close());
    assert!(!q.close());
    assert_eq!(q.try_push(b"y"), Err(SharedPushError::Closed));
    assert_eq!(q.try_pop().unwrap(), b"x");
    assert_eq!(q.try_pop(), Err(SharedPopError::Closed));
    assert_eq!(q.pop(None), Err(SharedPopError::Closed));
}

#[test]
fn blocking_across_threads_and_close_wakes() {
    let q = SharedQueue::heap(1, 8, 8).unwrap();
    std::thread::scope(|s| {
        let q2 = q.clone();
        s.spawn(move || {
            for i in 0..200u8 {
                q2.push(&[i], None).unwrap();
            }
        });
        for i in 0..200u8 {
            assert_eq!(q.pop(None).unwrap(), [i]);
        }
        let q3 = q.clone();
        let waiter = s.spawn(move || q3.pop(None));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(waiter.join().unwrap(), Err(SharedPopError::Closed));
    });
}

#[test]
fn attach_refuses_a_registry_and_bad_layouts() {
    let name = Name::new("kind");
    let _r = Region::create(
        &name.0,
        Kind::new(*b"REGY", 1),
        4096,
        &Options::default(),
        |_| {},
    )
    .unwrap();
    let e = SharedQueue::attach(&name.0, &opts()).unwrap_err();
    assert!(e.to_string().contains("REGY"), "{e}");
    // A queue kind whose parameters do not match its size.
    let name2 = Name::new("layout");
    let _r2 = Region::create(
        &name2.0,
        ringstat::queue::SHARED_QUEUE_KIND,
        4096,
        &Options::default(),
        |r| r.u64_at(0).store(1 << 40, Ordering::Relaxed),
    )
    .unwrap();
    let e = SharedQueue::attach(&name2.0, &opts()).unwrap_err();
    assert!(matches!(e, SharedQueueError::BadLayout { .. }), "{e}");
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop,
    Close,
}

proptest! {
    /// Any single-threaded sequence of operations matches a `VecDeque` model.
    #[test]
    fn matches_vecdeque_model(
        cap in 1usize..6,
        ops in proptest::collection::vec(
            prop_oneof![
                8 => (0usize..12).prop_map(Op::Push),
                8 => Just(Op::Pop),
                1 => Just(Op::Close),
            ],
            0..80,
        ),
    ) {
        let slot = 8;
        let q = SharedQueue::heap(cap, slot, 2).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut closed = false;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(len) => {
                    let msg = vec![i as u8; len];
                    let want = if len > slot {
                        Err(SharedPushError::TooLarge { len, max: slot })
                    } else if closed {
                        Err(SharedPushError::Closed)
                    } else if model.len() == cap {
                        Err(SharedPushError::Full)
                    } else {
                        model.push_back(msg.clone());
                        Ok(())
                    };
                    prop_assert_eq!(q.try_push(&msg), want);
                }
                Op::Pop => {
                    let want = match model.pop_front() {
                        Some(m) => Ok(m),
                        None if closed => Err(SharedPopError::Closed),
                        None => Err(SharedPopError::Empty),
                    };
                    prop_assert_eq!(q.try_pop(), want);
                }
                Op::Close => {
                    prop_assert_eq!(q.close(), !closed);
                    closed = true;
                }
            }
            prop_assert_eq!(q.len(), model.len());
        }
        prop_assert_eq!(q.lost(), 0);
    }
}

/// A child that claims a slot and is SIGKILLed before finishing: the slot
/// is detected, reclaimed and counted lost; the queue keeps working.
#[test]
fn killed_mid_push_and_mid_pop_are_reclaimed() {
    if let Ok(spec) = std::env::var("RINGSTAT_SHMQ_CLAIM") {
        let (name, what) = spec.split_once(':').unwrap();
        let q = SharedQueue::attach(name, &opts()).unwrap();
        match what {
            "push" => q.debug_claim_push_and_stop().unwrap(),
            _ => q.debug_claim_pop_and_stop(),
        }
        // Die holding the claim, as a SIGKILL at this instruction would.
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
            .unwrap();
        unreachable!();
    }
    let name = Name::new("claim");
    let q = SharedQueue::create(&name.0, 2, 8, &opts()).unwrap();
    // Mid-push: the consumer meets the dead producer's claim.
    let mut c = child(
        "killed_mid_push_and_mid_pop_are_reclaimed",
        &[("RINGSTAT_SHMQ_CLAIM", format!("{}:push", name.0))],
    );
    assert!(!c.wait().unwrap().success());
    q.try_push(b"after").unwrap();
    assert_eq!(q.pop(Some(Duration::from_secs(5))).unwrap(), b"after");
    assert_eq!(q.lost(), 1);
    // Mid-pop: a full queue whose head slot a dead consumer holds.
    q.try_push(b"a").unwrap();
    q.try_push(b"b").unwrap();
    let mut c = child(
        "killed_mid_push_and_mid_pop_are_reclaimed",
        &[("RINGSTAT_SHMQ_CLAIM", format!("{}:pop", name.0))],
    );
    assert!(!c.wait().unwrap().success());
    // The producer of the next lap finds the dead reader's slot.
    q.push(b"c", Some(Duration::from_secs(5))).unwrap();
    assert_eq!(q.lost(), 2);
    assert_eq!(q.try_pop().unwrap(), b"b");
    assert_eq!(q.try_pop().unwrap(), b"c");
    assert_eq!(q.try_pop(), Err(SharedPopError::Empty));
    // The dead children's table entries are swept.
    q.sweep();
}

// ---------------------------------------------------------------------------
// Multi-process stress and kill tests. A log region records what happened:
// word 0: stop flag; 1: delivered count; 8..8+P: per-producer acked count;
// then the delivered ids (id + 1; 0 is a hole left by a killed consumer).
// ---------------------------------------------------------------------------

const LOG_KIND: Kind = Kind::new(*b"TLOG", 1);
const MAX_PRODUCERS: usize = 4096;
const LOG_IDS: usize = 8 + MAX_PRODUCERS;

fn log_len(max_ids: usize) -> usize {
    (LOG_IDS + max_ids) * 8
}

fn id(producer: u64, seq: u64) -> u64 {
    (producer << 32) | seq
}

/// Producer `k`: pushes seq 0, 1, ... (up to `quota`, or until stopped),
/// recording each acknowledged push.
fn run_producer(name: &str, log_name: &str, k: usize, quota: u64) {
    let q = SharedQueue::attach(name, &opts()).unwrap();
    let log = Region::attach(log_name, LOG_KIND, &Options::default()).unwrap();
    let mut seq = 0;
    while seq < quota && log.u64_at(0).load(Ordering::Relaxed) == 0 {
        let mut msg = [0u8; 24];
        msg[..8].copy_from_slice(&id(k as u64, seq).to_le_bytes());
        match q.push(&msg, Some(Duration::from_millis(50))) {
            Ok(()) => {
                seq += 1;
                log.u64_at((8 + k) * 8).store(seq, Ordering::Relaxed);
            }
            Err(SharedPushError::Full) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Consumer: pops until the queue is closed and drained, logging ids.
fn run_consumer(name: &str, log_name: &str) {
    let q = SharedQueue::attach(name, &opts()).unwrap();
    let log = Region::attach(log_name, LOG_KIND, &Options::default()).unwrap();
    let cap = (log.payload_len() / 8 - LOG_IDS) as u64;
    loop {
        // Logged while the slot is still claimed: a consumer killed before
        // the log entry is complete dies holding the claim, which is then
        // reclaimed and counted lost; so every message is either logged or
        // counted (or both, if it dies between logging and freeing).
        match q.pop_with(Some(Duration::from_millis(50)), |b| {
            let v = u64::from_le_bytes(b[..8].try_into().unwrap());
            let i = log.u64_at(8).fetch_add(1, Ordering::Relaxed);
            assert!(i < cap, "log full");
            log.u64_at((LOG_IDS + i as usize) * 8)
                .store(v + 1, Ordering::Relaxed);
        }) {
            Ok(()) => {}
            Err(SharedPopError::Empty) => {}
            Err(SharedPopError::Closed) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

fn role_from_env() -> bool {
    let Ok(role) = std::env::var("RINGSTAT_SHMQ_ROLE") else {
        return false;
    };
    let parts: Vec<&str> = role.split(':').collect();
    match parts[0] {
        "producer" => run_producer(
            parts[1],
            parts[2],
            parts[3].parse().unwrap(),
            parts[4].parse().unwrap(),
        ),
        _ => run_consumer(parts[1], parts[2]),
    }
    true
}

/// Checks conservation: no id delivered twice, every delivered id was
/// produced (at most one past a producer's last acknowledgement: the push
/// in flight when it was killed), and acknowledged ids that never arrived
/// are at most the lost count (consumers log while they hold the claim).
fn check_conservation(log: &Region, producers: usize, lost: u64, consumer_kills: u64) -> u64 {
    let n = log.u64_at(8).load(Ordering::Relaxed) as usize;
    let mut seen = HashSet::new();
    let acked: Vec<u64> = (0..producers)
        .map(|k| log.u64_at((8 + k) * 8).load(Ordering::Relaxed))
        .collect();
    let mut holes = 0;
    for i in 0..n {
        let v = log.u64_at((LOG_IDS + i) * 8).load(Ordering::Relaxed);
        if v == 0 {
            holes += 1;
            continue;
        }
        let v = v - 1;
        assert!(seen.insert(v), "message {v:#x} delivered twice");
        let (k, seq) = ((v >> 32) as usize, v & 0xffff_ffff);
        assert!(k < producers, "unknown producer in {v:#x}");
        assert!(
            seq <= acked[k],
            "seq {seq} of producer {k} beyond its ack {}",
            acked[k]
        );
    }
    let missing: u64 = (0..producers)
        .map(|k| {
            (0..acked[k])
                .filter(|&s| !seen.contains(&id(k as u64, s)))
                .count() as u64
        })
        .sum();
    assert!(holes as u64 <= consumer_kills);
    assert!(
        missing <= lost,
        "{missing} acknowledged messages missing; lost {lost}, consumer kills {consumer_kills}"
    );
    missing
}

/// 4 producer and 4 consumer processes, no kills: every message delivered
/// exactly once, none lost. (Release builds: 10^6 messages in all.)
#[test]
fn stress_processes_conservation() {
    if role_from_env() {
        return;
    }
    let per_producer: u64 = if cfg!(debug_assertions) {
        10_000
    } else {
        250_000
    };
    let (p, c) = (4usize, 4usize);
    let name = Name::new("stress");
    let log_name = Name::new("stresslog");
    let q = SharedQueue::create(&name.0, 64, 24, &opts()).unwrap();
    let log = Region::create(
        &log_name.0,
        LOG_KIND,
        log_len(per_producer as usize * p),
        &Options::default(),
        |_| {},
    )
    .unwrap();
    let role = |r: String| vec![("RINGSTAT_SHMQ_ROLE", r)];
    let consumers: Vec<Child> = (0..c)
        .map(|_| {
            child(
                "stress_processes_conservation",
                &role(format!("consumer:{}:{}", name.0, log_name.0)),
            )
        })
        .collect();
    let producers: Vec<Child> = (0..p)
        .map(|k| {
            child(
                "stress_processes_conservation",
                &role(format!(
                    "producer:{}:{}:{k}:{per_producer}",
                    name.0, log_name.0
                )),
            )
        })
        .collect();
    for mut pr in producers {
        assert!(pr.wait().unwrap().success());
    }
    q.close();
    for mut co in consumers {
        assert!(co.wait().unwrap().success());
    }
    assert_eq!(q.lost(), 0);
    assert_eq!(check_conservation(&log, p, 0, 0), 0);
    assert_eq!(
        log.u64_at(8).load(Ordering::Relaxed),
        per_producer * p as u64
    );
}

/// Kills producers and consumers with SIGKILL at random points, hundreds of
/// times, respawning them; then stops, closes, drains, and checks
/// conservation by message id. The queue never wedges: the final drain
/// finishes.
#[test]
fn kill_random_processes() {
    if role_from_env() {
        return;
    }
    let kills = 200;
    let name = Name::new("kill");
    let log_name = Name::new("killlog");
    let q = SharedQueue::create(&name.0, 8, 24, &opts()).unwrap();
    let log = Region::create(
        &log_name.0,
        LOG_KIND,
        log_len(1 << 21),
        &Options::default(),
        |_| {},
    )
    .unwrap();
    let test = "kill_random_processes";
    let mut next_producer = 0usize;
    let spawn_producer = |n: &mut usize| {
        let k = *n;
        *n += 1;
        assert!(k < MAX_PRODUCERS);
        child(
            test,
            &[(
                "RINGSTAT_SHMQ_ROLE",
                format!("producer:{}:{}:{k}:{}", name.0, log_name.0, u32::MAX),
            )],
        )
    };
    let spawn_consumer = || {
        child(
            test,
            &[(
                "RINGSTAT_SHMQ_ROLE",
                format!("consumer:{}:{}", name.0, log_name.0),
            )],
        )
    };
    let mut producers: Vec<Child> = (0..2).map(|_| spawn_producer(&mut next_producer)).collect();
    let mut consumers: Vec<Child> = (0..2).map(|_| spawn_consumer()).collect();
    // A small deterministic generator: no extra dependency, repeatable.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut consumer_kills = 0;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_micros(rand(4000)));
        let which = rand(4) as usize;
        if which < 2 {
            let mut c =
                std::mem::replace(&mut producers[which], spawn_producer(&mut next_producer));
            c.kill().unwrap();
            c.wait().unwrap();
        } else {
            let mut c = std::mem::replace(&mut consumers[which - 2], spawn_consumer());
            c.kill().unwrap();
            c.wait().unwrap();
            consumer_kills += 1;
        }
    }
    // Stop the producers, then close and drain.
    log.u64_at(0).store(1, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(60);
    for mut p in producers {
        while p.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "a producer hung");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    q.close();
    for mut c in consumers {
        while c.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a consumer hung: the queue is wedged"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Whatever is left (claims of dead processes nobody met yet) is swept.
    q.sweep();
    while let Ok(v) = q.try_pop_with(|b| u64::from_le_bytes(b[..8].try_into().unwrap())) {
        let i = log.u64_at(8).fetch_add(1, Ordering::Relaxed);
        log.u64_at((LOG_IDS + i as usize) * 8)
            .store(v + 1, Ordering::Relaxed);
    }
    let lost = q.lost();
    assert!(lost <= kills, "lost {lost} > kills {kills}");
    let missing = check_conservation(&log, next_producer, lost, consumer_kills);
    let delivered = log.u64_at(8).load(Ordering::Relaxed);
    eprintln!(
        "kill test: {kills} kills ({consumer_kills} consumers), {delivered} delivered, \
         {lost} lost, {missing} acknowledged but missing"
    );
    assert!(delivered > 0);
}
