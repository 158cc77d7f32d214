//! Replays a recorded user-activity stream through the pipeline and through
//! a plain single-threaded reference model, and compares every total, every
//! session count and duration, and distinct counts within the documented
//! HyperLogLog error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread;

use ringstat::pipeline::{Event, HyperLogLog, Pipeline};
use ringstat::stats::{HistogramConfig, ManualClock, MetricValue, Registry};

/// One recorded event, in the stream's own vocabulary.
#[derive(Clone, Copy, Debug)]
enum Rec {
    Register { user: u64 },
    Login { user: u64, ts: u64 },
    Logout { user: u64, ts: u64 },
    Latency { micros: u64 },
    Load { value: i64 },
}

/// A deterministic xorshift generator (no dependency, same stream every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn record(len: usize, users: u64, seed: u64) -> Vec<Rec> {
    let mut rng = Rng(seed);
    let mut ts = 1_000_000_000u64; // 1 s
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        ts += rng.below(3_000_000); // up to 3 ms apart
        let user = rng.below(users);
        out.push(match rng.below(100) {
            0..=4 => Rec::Register { user },
            // Mostly balanced logins/logouts; the randomness yields double
            // starts and ends without start, which both sides must count.
            5..=49 => Rec::Login { user, ts },
            50..=89 => Rec::Logout { user, ts },
            90..=97 => Rec::Latency {
                micros: rng.below(2_000_000),
            },
            _ => Rec::Load {
                value: rng.below(1000) as i64 - 500,
            },
        });
    }
    out
}

/// The reference model: what the pipeline must compute, the obvious way.
#[derive(Default, Debug)]
struct Model {
    registrations: u64,
    logins: u64,
    latencies: Vec<u64>,
    load: i64,
    open: HashMap<u64, u64>,
    started: u64,
    completed: u64,
    durations_ms: Vec<u64>,
    end_without_start: u64,
    double_start: u64,
    negative: u64,
    seen: HashSet<u64>,
}

impl Model {
    fn apply(&mut self, r: Rec) {
        match r {
            Rec::Register { user } => {
                self.registrations += 1;
                self.seen.insert(user);
            }
            Rec::Login { user, ts } => {
                self.logins += 1;
                self.seen.insert(user);
                if self.open.insert(user, ts).is_some() {
                    self.double_start += 1;
                } else {
                    self.started += 1;
                }
            }
            Rec::Logout { user, ts } => match self.open.remove(&user) {
                None => self.end_without_start += 1,
                Some(start) => {
                    self.completed += 1;
                    match ts.checked_sub(start) {
                        Some(d) => self.durations_ms.push(d / 1_000_000),
                        None => self.negative += 1,
                    }
                }
            },
            Rec::Latency { micros } => self.latencies.push(micros),
            Rec::Load { value } => self.load = value,
        }
    }
}

struct Handles {
    registrations: ringstat::pipeline::CounterId,
    logins: ringstat::pipeline::CounterId,
    latency: ringstat::pipeline::HistogramId,
    load: ringstat::pipeline::GaugeId,
    online: ringstat::pipeline::SessionsId,
    users: ringstat::pipeline::DistinctId,
    login_rate: ringstat::pipeline::RateId,
}

const LATENCY: HistogramConfig = HistogramConfig {
    max: 10_000_000,
    significant_digits: 3,
};

fn resolve(p: &Pipeline) -> Handles {
    Handles {
        registrations: p.counter("registrations").unwrap(),
        logins: p.counter("logins").unwrap(),
        latency: p.histogram("latency_us", LATENCY).unwrap(),
        load: p.gauge("load").unwrap(),
        online: p.sessions("online").unwrap(),
        users: p.distinct("users").unwrap(),
        login_rate: p.rate("logins_rate").unwrap(),
    }
}

/// The events one record becomes.
fn events(h: &Handles, r: Rec, out: &mut Vec<Event>) {
    match r {
        Rec::Register { user } => {
            out.push(Event::count(h.registrations));
            out.push(Event::seen(h.users, user));
        }
        Rec::Login { user, ts } => {
            out.push(Event::count(h.logins));
            out.push(Event::mark(h.login_rate, 1));
            out.push(Event::seen(h.users, user));
            out.push(Event::start(h.online, user).at(ts));
        }
        Rec::Logout { user, ts } => out.push(Event::end(h.online, user).at(ts)),
        Rec::Latency { micros } => out.push(Event::observe(h.latency, micros)),
        Rec::Load { value } => out.push(Event::set(h.load, value)),
    }
}

fn stream_len() -> usize {
    if cfg!(miri) {
        500
    } else {
        40_000
    }
}

fn check(reg: &Registry, p: &Pipeline, h: &Handles, m: &Model, check_gauge: bool) {
    let c = |name: &str| reg.counter(name, &[]).unwrap().get();
    let anomaly = |kind: &str| {
        reg.counter("online_anomalies_total", &[("kind", kind)])
            .unwrap()
            .get()
    };
    assert_eq!(c("registrations"), m.registrations);
    assert_eq!(c("logins"), m.logins);
    assert_eq!(
        reg.rate("logins_rate", &[], Default::default())
            .unwrap()
            .total(),
        m.logins
    );
    if check_gauge {
        assert_eq!(reg.gauge("load", &[]).unwrap().get(), m.load);
    }
    // Sessions: every count, and every duration.
    assert_eq!(
        reg.gauge("online_open", &[]).unwrap().get(),
        m.open.len() as i64
    );
    assert_eq!(c("online_started_total"), m.started);
    assert_eq!(c("online_completed_total"), m.completed);
    assert_eq!(anomaly("end_without_start"), m.end_without_start);
    assert_eq!(anomaly("double_start"), m.double_start);
    assert_eq!(anomaly("negative_duration"), m.negative);
    let snap = reg.snapshot();
    let durations = snap
        .metrics
        .iter()
        .find(|s| s.name == "online_duration_ms")
        .unwrap();
    let mut sorted = m.durations_ms.clone();
    sorted.sort_unstable();
    match &durations.value {
        MetricValue::Histogram {
            count,
            min,
            max,
            rejected,
            quantiles,
            ..
        } => {
            assert_eq!(*count, sorted.len() as u64);
            assert_eq!(*rejected, 0);
            assert_eq!(*min, sorted.first().copied());
            assert_eq!(*max, sorted.last().copied());
            for &(q, v) in quantiles {
                // Nearest rank, 1-based.
                let rank = ringstat::stats::quantile_rank(q, sorted.len() as u64);
                let exact = sorted[rank as usize - 1];
                let v = v.unwrap() as f64;
                // 2 significant digits: within 0.5 % (plus one unit).
                assert!(
                    (v - exact as f64).abs() <= exact as f64 * 0.005 + 1.0,
                    "q{q}: {v} vs {exact}"
                );
            }
        }
        other => panic!("{other:?}"),
    }
    let lat = snap
        .metrics
        .iter()
        .find(|s| s.name == "latency_us")
        .unwrap();
    match &lat.value {
        MetricValue::Histogram { count, max, .. } => {
            assert_eq!(*count, m.latencies.len() as u64);
            assert_eq!(*max, m.latencies.iter().max().copied());
        }
        other => panic!("{other:?}"),
    }
    // Distinct users: the merged partials equal one sketch of all keys, and
    // that is within 4 standard errors of the truth.
    let mut plain = HyperLogLog::new(12).unwrap();
    for &u in &m.seen {
        plain.insert(u);
    }
    let est = p.distinct_count(h.users);
    assert_eq!(est, plain.count());
    let truth = m.seen.len() as f64;
    assert!(
        (est - truth).abs() <= 4.0 * plain.standard_error() * truth,
        "{est} vs {truth}"
    );
    assert_eq!(
        reg.gauge("users_distinct", &[]).unwrap().get(),
        est.round() as i64
    );
    let stats = p.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.rejected, 0);
    assert_eq!(stats.received, stats.applied);
    assert_eq!(stats.queue_depth, 0);
}

#[test]
fn replay_single_producer_matches_model() {
    let stream = record(stream_len(), 2_000, 0x5eed);
    let mut model = Model::default();
    for &r in &stream {
        model.apply(r);
    }
    assert!(model.double_start > 0 && model.end_without_start > 0);

    let reg = Registry::new();
    let p = Pipeline::builder(&reg)
        .workers(3)
        .capacity(512)
        .build()
        .unwrap();
    let h = resolve(&p);
    let mut evs = Vec::new();
    for &r in &stream {
        evs.clear();
        events(&h, r, &mut evs);
        for &e in &evs {
            p.send(e).unwrap();
        }
    }
    p.flush();
    check(&reg, &p, &h, &model, true);
    p.close();
    check(&reg, &p, &h, &model, true);
}

#[test]
fn replay_partitioned_producers_with_batches_matches_model() {
    // Four producers, each replaying the users `user % 4 == i` in recorded
    // order (so each key's events keep their order), in batches of 97.
    let stream = record(stream_len(), 3_000, 0xfeed);
    let mut model = Model::default();
    for &r in &stream {
        model.apply(r);
    }
    let clock = Arc::new(ManualClock::new());
    let reg = Registry::with_clock(clock.clone());
    let p = Pipeline::builder(&reg)
        .workers(2)
        .capacity(256)
        .batch_size(32)
        .clock(clock)
        .build()
        .unwrap();
    let h = resolve(&p);
    thread::scope(|s| {
        for i in 0..4u64 {
            let (p, h, stream) = (&p, &h, &stream);
            s.spawn(move || {
                let mut tx = p.sender();
                let mut batch = Vec::new();
                for &r in stream {
                    let user = match r {
                        Rec::Register { user }
                        | Rec::Login { user, .. }
                        | Rec::Logout { user, .. } => user,
                        // Unkeyed records: spread by position.
                        Rec::Latency { micros } => micros,
                        Rec::Load { .. } => continue, // order across producers is not kept
                    };
                    if user % 4 != i {
                        continue;
                    }
                    events(h, r, &mut batch);
                    if batch.len() >= 97 {
                        assert_eq!(tx.send_batch(&mut batch), Ok(0));
                    }
                }
                assert_eq!(tx.send_batch(&mut batch), Ok(0));
            });
        }
    });
    p.flush();
    check(&reg, &p, &h, &model, false);
    // Everything was stamped: the window on the manual clock (at 0) holds
    // every key of the first minute only.
    assert!(p.distinct_in_window(h.users) <= p.distinct_count(h.users));
}
