//! The user-activity workload through RabbitMQ: a `Shipper` publishes the
//! events in frames (persistent, publisher confirms), a `Consumer` applies
//! them to a pipeline (ack after apply, duplicates dropped); prints the
//! events per second end to end (first send to last event applied), the
//! shipper's and consumer's counts and the statistics.
//!
//! ```text
//! cargo run --release --features rabbitmq --example broker_rabbitmq -- \
//!     --url amqp://guest:guest@127.0.0.1:5672/%2F --users 50000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringstat::broker::{Consumer, Event, Shipper};
use ringstat::{Pipeline, Registry};

const USAGE: &str = "\
The user-activity workload through RabbitMQ (ringstat::broker): shipper and
consumer in this process, events per second end to end, counts, statistics.

Usage: cargo run --release --features rabbitmq --example broker_rabbitmq -- [OPTIONS]

Options:
  --url URL     the broker (default amqp://guest:guest@127.0.0.1:5672/%2F)
  --queue NAME  the durable queue (default: a new one per run)
  --users N     users; 4 events each: login, session start, seen, session end
                (default 50000: 200,000 events)
  -h, --help    print this help
";

struct Args {
    url: String,
    queue: Option<String>,
    users: u64,
}

/// The options, or `None` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/%2F".into(),
        queue: None,
        users: 50_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--queue" => args.queue = Some(value),
            "--users" => {
                args.users = value
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("--users: not a positive count: {value}"))?;
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(Some(args))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return Ok(());
        }
        Err(e) => {
            eprint!("error: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let queue = args.queue.unwrap_or_else(|| {
        format!(
            "ringstat.example.{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
    });
    let events = args.users * 4;

    let registry = Registry::new();
    let pipeline = Arc::new(Pipeline::builder(&registry).workers(2).build()?);
    let consumer = Consumer::builder(&args.url, Arc::clone(&pipeline))
        .queue(&queue)
        .prefetch(8)
        .start()?;
    let shipper = Shipper::builder(&args.url).queue(&queue).build()?;

    let t0 = Instant::now();
    for u in 0..args.users {
        let ts = 1_000_000_000 + u * 1_000;
        shipper.send(Event::count("logins", 1))?;
        shipper.send(Event::start("online", u).at(ts))?;
        shipper.send(Event::seen("users", u))?;
        shipper.send(Event::end("online", u).at(ts + (u % 600) * 1_000_000_000))?;
    }
    let sent = t0.elapsed();
    let confirmed = shipper.flush(Some(Duration::from_secs(300)));
    let applied = consumer.wait_events(events, Duration::from_secs(300));
    pipeline.flush();
    let elapsed = t0.elapsed();
    let ss = shipper.stats();
    let cs = consumer.stats();
    shipper.close(Some(Duration::from_secs(10)));
    consumer.stop();

    println!("queue            {queue}");
    println!(
        "events           {events} ({} users) in {:.3} s: {:.0} events/s end to end \
         (sends returned after {:.3} s)",
        args.users,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        sent.as_secs_f64(),
    );
    println!(
        "shipper          accepted {} confirmed {} in {} frames (published {}), rejected {}, \
         blocked {}, buffered {}, reconnects {}, all confirmed: {confirmed}",
        ss.accepted,
        ss.confirmed_events,
        ss.confirmed,
        ss.published,
        ss.rejected,
        ss.blocked,
        ss.buffered,
        ss.reconnects,
    );
    println!(
        "consumer         {} events in {} frames, duplicates {}, bad {}, reconnects {}, \
         all applied: {applied}",
        cs.events, cs.frames, cs.duplicates, cs.bad_frames, cs.reconnects,
    );
    let users = pipeline.distinct("users")?;
    println!(
        "statistics       logins {}, online now {}, distinct users ~{:.0}",
        registry.counter("logins", &[])?.get(),
        registry.gauge("online_open", &[])?.get(),
        pipeline.distinct_count(users),
    );
    if !(confirmed && applied) {
        eprintln!(
            "not everything arrived: {:?}",
            consumer.last_error().or(shipper.last_error())
        );
        std::process::exit(1);
    }
    Ok(())
}
