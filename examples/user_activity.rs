//! A user-activity service in miniature: producer threads simulate users
//! registering, logging in and logging out; pipeline workers fold the events
//! into live statistics, printed once a second and summarised at the end.
//!
//! ```text
//! cargo run --release --example user_activity -- --seconds 3 --threads 4
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ringstat::pipeline::{Event, Pipeline};
use ringstat::stats::{MetricValue, Registry, Snapshot};

const USAGE: &str = "\
A user-activity service in miniature: producer threads simulate users
registering, logging in and logging out; pipeline workers fold the events
into live statistics, printed once a second and summarised at the end.

Usage: cargo run --release --example user_activity -- [OPTIONS]

Options:
  --seconds N   how long to run, in seconds (default 3)
  --threads N   producer threads (default 2)
  -h, --help    print this help
";

struct Args {
    seconds: f64,
    threads: u64,
}

/// The options, or `None` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        seconds: 3.0,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--seconds" | "--threads" => {}
            _ => return Err(format!("unknown argument {flag}")),
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => {
                args.seconds = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--seconds: not a duration: {value}"))?;
            }
            "--threads" => {
                args.threads = value
                    .parse()
                    .ok()
                    .filter(|&t| t >= 1)
                    .ok_or_else(|| format!("--threads: not a positive count: {value}"))?;
            }
            _ => unreachable!("checked above"),
        }
    }
    Ok(Some(args))
}

/// A small xorshift generator per producer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

fn counter(s: &Snapshot, name: &str) -> u64 {
    s.metrics
        .iter()
        .find(|m| m.name == name)
        .map_or(0, |m| match m.value {
            MetricValue::Counter(v) => v,
            _ => 0,
        })
}

fn gauge(s: &Snapshot, name: &str) -> i64 {
    s.metrics
        .iter()
        .find(|m| m.name == name)
        .map_or(0, |m| match m.value {
            MetricValue::Gauge { value, .. } => value,
            _ => 0,
        })
}

fn rate(s: &Snapshot, name: &str) -> f64 {
    s.metrics
        .iter()
        .find(|m| m.name == name)
        .map_or(0.0, |m| match m.value {
            MetricValue::Rate { per_second, .. } => per_second,
            _ => 0.0,
        })
}

fn quantiles(s: &Snapshot, name: &str) -> Vec<(f64, Option<u64>)> {
    s.metrics
        .iter()
        .find(|m| m.name == name)
        .map_or_else(Vec::new, |m| match &m.value {
            MetricValue::Histogram { quantiles, .. } => quantiles.clone(),
            _ => Vec::new(),
        })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return Ok(());
        }
        Err(e) => {
            eprint!("error: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let registry = Registry::new();
    let pipeline = Pipeline::builder(&registry)
        .workers(2)
        .capacity(65_536)
        .build()?;
    let registrations = pipeline.counter("registrations")?;
    let logins = pipeline.counter("logins")?;
    let logins_rate = pipeline.rate("logins_per_second")?;
    let online = pipeline.sessions("online")?;
    let users = pipeline.distinct("users")?;

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let run_for = Duration::from_secs_f64(args.seconds);
    thread::scope(|s| {
        for t in 0..args.threads {
            let (pipeline, stop) = (&pipeline, &stop);
            s.spawn(move || {
                let mut tx = pipeline.sender();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                // Each thread simulates its own 10 000 users, some online.
                let base = t * 1_000_000;
                let mut logged_in = vec![false; 10_000];
                let mut batch = Vec::with_capacity(256);
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        let u = rng.below(10_000);
                        let user = base + u;
                        let now = pipeline.now();
                        match rng.below(10) {
                            0 => {
                                batch.push(Event::count(registrations));
                                batch.push(Event::seen(users, user));
                            }
                            _ if !logged_in[u as usize] => {
                                logged_in[u as usize] = true;
                                batch.push(Event::count(logins));
                                batch.push(Event::mark(logins_rate, 1));
                                batch.push(Event::seen(users, user));
                                batch.push(Event::start(online, user).at(now));
                            }
                            _ => {
                                logged_in[u as usize] = false;
                                batch.push(Event::end(online, user).at(now));
                            }
                        }
                    }
                    if tx.send_batch(&mut batch).is_err() {
                        return; // closed
                    }
                }
            });
        }

        // The live line, once a second (and at the end).
        let mut last_applied = 0u64;
        let mut last = Instant::now();
        loop {
            let elapsed = started.elapsed();
            let remaining = run_for.saturating_sub(elapsed);
            thread::sleep(remaining.min(Duration::from_secs(1)));
            let snap = registry.snapshot();
            let applied = pipeline.stats().applied;
            let dt = last.elapsed().as_secs_f64().max(1e-9);
            println!(
                "[{:5.1}s] logins {:>9}  online {:>6}  distinct users {:>7.0}  ingest {:>10.0} ev/s  depth {:>6}",
                started.elapsed().as_secs_f64(),
                counter(&snap, "logins"),
                gauge(&snap, "online_open"),
                pipeline.distinct_count(users),
                (applied - last_applied) as f64 / dt,
                pipeline.stats().queue_depth,
            );
            last_applied = applied;
            last = Instant::now();
            if started.elapsed() >= run_for {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    pipeline.close();

    let snap = registry.snapshot();
    let stats = pipeline.stats();
    println!();
    println!(
        "registrations total      {}",
        counter(&snap, "registrations")
    );
    println!("logins total             {}", counter(&snap, "logins"));
    println!(
        "logins per second (1 min) {:.0}",
        rate(&snap, "logins_per_second")
    );
    println!("users online now         {}", gauge(&snap, "online_open"));
    println!(
        "distinct users           {:.0} (+-{:.1} % std. error)",
        pipeline.distinct_count(users),
        100.0 * 1.04 / 64.0
    );
    let qs = quantiles(&snap, "online_duration_ms");
    let q = |want: f64| {
        qs.iter()
            .find(|(x, _)| (*x - want).abs() < 1e-9)
            .and_then(|(_, v)| *v)
            .map_or_else(|| "-".to_owned(), |v| format!("{v} ms"))
    };
    println!(
        "online time p50/p90/p99  {} / {} / {}",
        q(0.5),
        q(0.9),
        q(0.99)
    );
    println!(
        "events ingested          {} ({:.0} per second)",
        stats.applied,
        stats.applied as f64 / elapsed.max(1e-9)
    );
    println!("events dropped           {}", stats.dropped);
    Ok(())
}
