//! The user-activity workload of the broker tests (`broker_rabbitmq.rs`,
//! `broker_kafka.rs`; as `tests/python/broker_workload.py`): its events, the
//! aggregator they feed, the statistics compared, and the SIGKILL loop of
//! the checkpoint tests.
#![allow(dead_code)] // each test file uses a part

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringstat::broker::Event;
use ringstat::stats::HistogramConfig;
use ringstat::wire::{apply, FrameBuilder};
use ringstat::{Pipeline, Registry};

/// Bounds on waits that only a hang would reach (not timing assertions).
pub const LONG: Duration = Duration::from_secs(120);

/// The user-activity events of users `range`: 4 or 5 events per user.
pub fn events(range: Range<u64>) -> Vec<Event> {
    let mut v = Vec::new();
    for u in range {
        v.push(Event::count("logins", 1));
        v.push(Event::start("online", u).at(1_000_000_000 + u));
        v.push(Event::seen("users", u));
        v.push(Event::observe("latency_us", u % 97));
        if u % 3 == 0 {
            v.push(Event::end("online", u).at(2_000_000_000 + u));
        }
    }
    v
}

const LATENCY: HistogramConfig = HistogramConfig {
    max: 1000,
    significant_digits: 3,
};

/// A registry and a pipeline with the workload's histogram resolved.
pub fn aggregator() -> (Registry, Arc<Pipeline>) {
    let reg = Registry::new();
    let p = Pipeline::new(&reg).unwrap();
    p.histogram("latency_us", LATENCY).unwrap();
    (reg, Arc::new(p))
}

/// What the checks compare: logins, open sessions, latency count and sum,
/// the distinct estimate's bits.
#[derive(Debug, PartialEq)]
pub struct Observed {
    pub logins: u64,
    pub online_open: i64,
    pub latency_count: u64,
    pub latency_sum: u64,
    pub users_bits: u64,
}

/// The workload's statistics in `reg`, once `p` has applied what it holds.
pub fn observed(reg: &Registry, p: &Pipeline) -> Observed {
    p.flush();
    let h = reg.histogram("latency_us", &[], LATENCY).unwrap();
    let users = p.distinct("users").unwrap();
    Observed {
        logins: reg.counter("logins", &[]).unwrap().get(),
        online_open: reg.gauge("online_open", &[]).unwrap().get(),
        latency_count: h.count(),
        latency_sum: h.sum() as u64,
        users_bits: p.distinct_count(users).to_bits(),
    }
}

/// The same events applied in process, without a broker.
pub fn reference(range: Range<u64>) -> Observed {
    let (reg, p) = aggregator();
    let mut b = FrameBuilder::new();
    for e in events(range) {
        b.push(e.op, &e.name, e.key, e.value, e.ts).unwrap();
    }
    apply(&p, &b.finish(1, 1)).unwrap();
    observed(&reg, &p)
}

pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary file path for this test process.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringstat-{}-{name}", std::process::id()))
}

/// The end of a checkpoint test's consumer process: prints whether it
/// restored a checkpoint, waits until the statistics reach (or pass) those
/// of users `0..users`, stops the consumer and prints them.
pub fn child_report(restored: bool, reg: &Registry, p: &Pipeline, users: u64, stop: impl FnOnce()) {
    println!("RESTORED {restored}");
    let want = reference(0..users);
    wait_for("every user's events", || {
        let got = observed(reg, p);
        got == want || got.logins > want.logins
    });
    stop();
    println!("OBSERVED {:?}", observed(reg, p));
}

/// The parent of a checkpoint test: runs the test `child` of this test
/// binary (with `env=spec`) four times, killing it (SIGKILL) once each run
/// wrote a checkpoint of its own to `path`, then once to the end; checks
/// that the last run restored a checkpoint and ends with the statistics of
/// users `users`, as a run never killed would.
pub fn kill_repeatedly_then_finish(
    child: &str,
    env: &str,
    spec: &str,
    path: &Path,
    users: Range<u64>,
) {
    let start = || -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", child, "--nocapture"])
            .env(env, spec)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let written = || std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut kills = 0;
    for _ in 0..4 {
        let before = written();
        let mut ch = start();
        // SIGKILL once this run wrote a checkpoint of its own: mid-stream,
        // past a checkpoint, on the way to the next.
        let deadline = Instant::now() + LONG;
        while ch.try_wait().unwrap().is_none() && written() == before {
            assert!(Instant::now() < deadline, "no checkpoint written");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(3));
        if ch.try_wait().unwrap().is_none() {
            ch.kill().unwrap();
            kills += 1;
        }
        ch.wait().unwrap();
    }
    assert!(kills >= 2, "the consumer finished before it was killed");
    let out = start().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("RESTORED true"), "{stdout}");
    let got = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OBSERVED "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(got, format!("{:?}", reference(users)));
    std::fs::remove_file(path).unwrap();
}
