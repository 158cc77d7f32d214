//! Many processes into one pipeline (`wire::Feed`, `wire::FeedSender`):
//! producer processes (this test binary re-run in a role) batch events into
//! frames put into a shared queue; the test process feeds its pipeline from
//! it. Exact totals; bad frames counted; a producer killed with SIGKILL
//! loses at most its unsent batch and the frame it was putting (one killed
//! holding a claimed slot: that frame counted in `lost`, nothing else).
#![cfg(all(target_os = "linux", feature = "wire", not(ringstat_loom)))]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringstat::pipeline::{Op, Pipeline};
use ringstat::queue::{SharedQueue, SharedQueueOptions};
use ringstat::shm::{self, Kind, Options, Region};
use ringstat::wire::{Feed, FeedEnd, FeedSender, FrameBatcher, FrameBuilder};
use ringstat::Registry;

const ROLE: &str = "RINGSTAT_FEED_ROLE";
/// Per producer `k`: the events of its frames that `flush` returned for.
const LOG_KIND: Kind = Kind::new(*b"FLOG", 1);

struct Name(String);

impl Name {
    fn new(tag: &str) -> Self {
        let n = format!("ringstat-tf-{tag}-{}", std::process::id());
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

fn child(test: &str, role: String) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Producer `k` of the conservation test: `n` logins, `n` sessions opened
/// (keys `k*n..`), the even ones closed, `n` users seen; no explicit flush
/// for the last frame (dropping the sender puts it).
fn run_producer(name: &str, k: u64, n: u64) {
    let q = SharedQueue::attach(name, &opts()).unwrap();
    let mut tx = FeedSender::new(q);
    for i in 0..n {
        let key = k * n + i;
        tx.send(Op::Count, "logins", 0, 1, 0).unwrap();
        tx.send(Op::Start, "online", key, 0, 1_000).unwrap();
        if key % 2 == 0 {
            tx.send(Op::End, "online", key, 0, 3_000_000).unwrap();
        }
        tx.send(Op::Seen, "users", key, 0, 0).unwrap();
        tx.send(Op::GaugeAdd, "level", 0, (-1i64) as u64, 0)
            .unwrap();
    }
}

/// Producer `k` of the kill test: frames of exactly `batch` increments of
/// `p{k}`, logging the events of each frame once `flush` returned; runs
/// until killed or `quota` frames.
fn run_logged_producer(name: &str, log_name: &str, k: usize, batch: u64, quota: u64) {
    let q = SharedQueue::attach(name, &opts()).unwrap();
    let log = Region::attach(log_name, LOG_KIND, &Options::default()).unwrap();
    let mut tx = FeedSender::new(q);
    let metric = format!("p{k}");
    for f in 1..=quota {
        for _ in 0..batch {
            tx.send(Op::Count, &metric, 0, 1, 0).unwrap();
        }
        tx.flush().unwrap();
        log.u64_at(k * 8).store(f * batch, Ordering::Relaxed);
    }
}

/// A producer that puts 3 frames of 10 increments of `c`, then dies (is
/// killed) in the middle of its next put: it has claimed the slot and not
/// written it. Sets `log[0]` once the claim is held.
fn run_claimer(name: &str, log_name: &str) {
    let q = SharedQueue::attach(name, &opts()).unwrap();
    let log = Region::attach(log_name, LOG_KIND, &Options::default()).unwrap();
    let mut tx = FeedSender::new(q.clone());
    for _ in 0..3 {
        for _ in 0..10 {
            tx.send(Op::Count, "c", 0, 1, 0).unwrap();
        }
        tx.flush().unwrap();
    }
    q.debug_claim_push_and_stop().unwrap();
    log.u64_at(0).store(1, Ordering::Relaxed);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn role_from_env() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let p: Vec<&str> = role.split(':').collect();
    match p[0] {
        "producer" => run_producer(p[1], p[2].parse().unwrap(), p[3].parse().unwrap()),
        "claimer" => run_claimer(p[1], p[2]),
        _ => run_logged_producer(
            p[1],
            p[2],
            p[3].parse().unwrap(),
            p[4].parse().unwrap(),
            p[5].parse().unwrap(),
        ),
    }
    true
}

/// 3 producer processes; the aggregator's registry ends with exactly their
/// counts (distinct within the HyperLogLog's error).
#[test]
fn processes_feed_one_pipeline_exactly() {
    if role_from_env() {
        return;
    }
    let (producers, n) = (3u64, 2_000u64);
    let name = Name::new("exact");
    // Small slots and few of them: many frames, and producers wait for room.
    let q = SharedQueue::create(&name.0, 8, 256, &opts()).unwrap();
    let reg = Registry::new();
    let p = Arc::new(Pipeline::new(&reg).unwrap());
    let mut feed = Feed::start(Arc::clone(&p), q.clone()).unwrap();
    let children: Vec<Child> = (0..producers)
        .map(|k| {
            child(
                "processes_feed_one_pipeline_exactly",
                format!("producer:{}:{k}:{n}", name.0),
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    feed.stop_after_drain();
    assert_eq!(feed.end(), FeedEnd::Stopped);
    p.flush();
    let total = producers * n;
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), total);
    assert_eq!(
        reg.counter("online_started_total", &[]).unwrap().get(),
        total
    );
    assert_eq!(
        reg.counter("online_completed_total", &[]).unwrap().get(),
        total / 2
    );
    assert_eq!(
        reg.gauge("online_open", &[]).unwrap().get(),
        (total / 2) as i64
    );
    assert_eq!(reg.gauge("level", &[]).unwrap().get(), -(total as i64));
    let users = p.distinct_count(p.distinct("users").unwrap());
    assert!(
        (users - total as f64).abs() < total as f64 * 0.05,
        "{users}"
    );
    let s = feed.stats();
    assert_eq!(s.events, total * 4 + total / 2);
    assert!(s.frames > producers, "frames of at most 256 bytes: {s:?}");
    assert_eq!((s.bad_frames, s.rejected_frames, q.lost()), (0, 0, 0));
}

/// Messages that are not frames are counted and skipped; a frame naming an
/// unresolved histogram is rejected whole; the feed ends when the queue is
/// closed and drained, and when the pipeline closes.
#[test]
fn bad_frames_are_counted_and_the_feed_ends() {
    let q = SharedQueue::heap(16, 128, 4).unwrap();
    let reg = Registry::new();
    let p = Arc::new(Pipeline::new(&reg).unwrap());
    let mut feed = Feed::start(Arc::clone(&p), q.clone()).unwrap();
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "ok", 0, 2, 0).unwrap();
    let good = b.finish(1, 1).encode().unwrap();
    b.push(Op::Observe, "latency", 0, 5, 0).unwrap();
    b.push(Op::Count, "ok", 0, 100, 0).unwrap();
    let unknown_hist = b.finish(1, 2).encode().unwrap();
    q.try_push(b"GET / HTTP/1.1").unwrap();
    q.try_push(&good[..good.len() - 1]).unwrap();
    q.try_push(b"").unwrap();
    q.try_push(&unknown_hist).unwrap();
    q.try_push(&good).unwrap();
    q.close();
    // Closed and drained: the thread ends on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while feed.end() == FeedEnd::Running {
        assert!(Instant::now() < deadline, "the feed did not end");
        std::thread::sleep(Duration::from_millis(2));
    }
    feed.stop();
    assert_eq!(feed.end(), FeedEnd::QueueClosed);
    p.flush();
    assert_eq!(reg.counter("ok", &[]).unwrap().get(), 2);
    let s = feed.stats();
    assert_eq!(
        (
            s.frames,
            s.events,
            s.bad_frames,
            s.rejected_frames,
            s.rejected_events
        ),
        (1, 1, 3, 1, 2)
    );

    // A closed pipeline stops a feed waiting on an empty queue.
    let q = SharedQueue::heap(4, 64, 4).unwrap();
    let feed = Feed::start(Arc::clone(&p), q.clone()).unwrap();
    p.close();
    while feed.end() == FeedEnd::Running {
        assert!(Instant::now() < deadline, "the feed ignored the close");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(feed.end(), FeedEnd::PipelineClosed);
}

/// The batcher: frames never exceed the limit, numbered from 1; an event
/// larger than an empty frame is refused without losing the batch.
#[test]
fn batcher_limits_and_refusals() {
    let mut b = FrameBatcher::new(48, 9);
    let mut frames = Vec::new();
    for i in 0..100u64 {
        frames.extend(b.add(Op::Seen, "u", i << 40, 0, 0).unwrap());
    }
    let long = "x".repeat(40);
    assert!(b.add(Op::Count, &long, 0, 1, 0).is_err());
    frames.extend(b.take());
    assert!(b.take().is_none());
    let mut events = 0;
    for (i, f) in frames.iter().enumerate() {
        assert!(f.len() <= 48);
        let d = ringstat::wire::Frame::decode(f).unwrap();
        assert_eq!((d.producer, d.sequence), (9, i as u64 + 1));
        events += d.records.len();
    }
    assert_eq!(events, 100);
}

/// Producers killed with SIGKILL at random points while others run to
/// completion: the survivors' events all arrive; a killed producer's
/// arrivals are whole frames, at least what it had flushed and at most one
/// frame more (the one it was putting); the queue stays usable.
#[test]
fn killed_producers_lose_at_most_their_batch() {
    if role_from_env() {
        return;
    }
    let (batch, quota, survivors, kills) = (20u64, 200u64, 2usize, 30usize);
    let name = Name::new("kill");
    let log_name = Name::new("killlog");
    let q = SharedQueue::create(&name.0, 4, 256, &opts()).unwrap();
    let log = Region::create(
        &log_name.0,
        LOG_KIND,
        (survivors + kills) * 8,
        &Options::default(),
        |_| {},
    )
    .unwrap();
    let reg = Registry::new();
    let p = Arc::new(Pipeline::new(&reg).unwrap());
    let mut feed = Feed::start(Arc::clone(&p), q.clone()).unwrap();
    let test = "killed_producers_lose_at_most_their_batch";
    let spawn = |k: usize, quota: u64| {
        child(
            test,
            format!("logged:{}:{}:{k}:{batch}:{quota}", name.0, log_name.0),
        )
    };
    let alive: Vec<Child> = (0..survivors).map(|k| spawn(k, quota)).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for k in survivors..survivors + kills {
        let mut c = spawn(k, u64::MAX);
        std::thread::sleep(Duration::from_micros(1_000 + rand(8_000)));
        c.kill().unwrap();
        c.wait().unwrap();
    }
    for mut c in alive {
        assert!(c.wait().unwrap().success());
    }
    feed.stop_after_drain();
    p.flush();
    for k in 0..survivors {
        assert_eq!(
            reg.counter(&format!("p{k}"), &[]).unwrap().get(),
            batch * quota
        );
    }
    let mut arrived_total = 0;
    for k in survivors..survivors + kills {
        let flushed = log.u64_at(k * 8).load(Ordering::Relaxed);
        let arrived = reg.counter(&format!("p{k}"), &[]).map_or(0, |c| c.get());
        assert_eq!(arrived % batch, 0, "producer {k}: a partial frame");
        assert!(
            flushed <= arrived && arrived <= flushed + batch,
            "producer {k}: flushed {flushed}, arrived {arrived}"
        );
        arrived_total += arrived;
    }
    assert!(q.lost() <= kills as u64, "lost {}", q.lost());
    eprintln!(
        "feed kill test: {kills} producers killed, {arrived_total} of their events arrived, \
         {} frames lost",
        q.lost()
    );
    assert_eq!(feed.stats().bad_frames, 0);
}

/// A producer SIGKILLed between claiming a slot and publishing its frame:
/// the aggregator's feed reclaims the slot, counts it in `lost`, and every
/// other frame (the dead producer's earlier ones, another producer's later
/// ones) is applied once.
#[test]
fn producer_killed_mid_put_costs_one_frame() {
    if role_from_env() {
        return;
    }
    let name = Name::new("midput");
    let log_name = Name::new("midputlog");
    let q = SharedQueue::create(&name.0, 4, 256, &opts()).unwrap();
    let log = Region::create(&log_name.0, LOG_KIND, 8, &Options::default(), |_| {}).unwrap();
    let mut c = child(
        "producer_killed_mid_put_costs_one_frame",
        format!("claimer:{}:{}", name.0, log_name.0),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.u64_at(0).load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the claimer never claimed");
        assert!(c.try_wait().unwrap().is_none(), "the claimer exited");
        std::thread::sleep(Duration::from_millis(2));
    }
    c.kill().unwrap();
    c.wait().unwrap();
    let reg = Registry::new();
    let p = Arc::new(Pipeline::new(&reg).unwrap());
    let mut feed = Feed::start(Arc::clone(&p), q.clone()).unwrap();
    // More frames than slots: they get through only past the dead claim.
    let mut tx = FeedSender::new(q.clone());
    for _ in 0..6 {
        for _ in 0..10 {
            tx.send(Op::Count, "d", 0, 1, 0).unwrap();
        }
        tx.flush().unwrap();
    }
    feed.stop_after_drain();
    p.flush();
    assert_eq!(reg.counter("c", &[]).unwrap().get(), 30);
    assert_eq!(reg.counter("d", &[]).unwrap().get(), 60);
    assert_eq!(q.lost(), 1);
    let s = feed.stats();
    assert_eq!((s.frames, s.bad_frames), (9, 0));
}
