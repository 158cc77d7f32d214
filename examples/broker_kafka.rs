//! The user-activity workload through Kafka: a `Shipper` produces the
//! events in frames (acks=all, idempotent producer), a `Consumer` applies
//! them to a pipeline (commit after apply, duplicates dropped); prints the
//! events per second end to end (first send to last event applied), the
//! shipper's and consumer's counts and the statistics. `--mode ship` and
//! `--mode consume` run one side only (the cross-language test runs them
//! against the Python `KafkaConsumer` and `KafkaShipper`).
//!
//! ```text
//! cargo run --release --features kafka --example broker_kafka -- \
//!     --url kafka://127.0.0.1:9092 --users 50000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringstat::broker::kafka::{ConsumerBuilder, ShipperBuilder, StartAt};
use ringstat::broker::{Consumer, Event, Shipper};
use ringstat::{Pipeline, Registry};

const USAGE: &str = "\
The user-activity workload through Kafka (ringstat::broker::kafka): shipper
and consumer in this process, events per second end to end, counts,
statistics.

Usage: cargo run --release --features kafka --example broker_kafka -- [OPTIONS]

Options:
  --url URL        the brokers (default kafka://127.0.0.1:9092)
  --topic NAME     the topic (default: a new one per run)
  --users N        users; 4 events each: login, session start, seen, session
                   end (default 50000: 200,000 events)
  --mode MODE      both (default), ship (send, flush, exit) or consume (read
                   the topic from its first offset until 4 x users events are
                   applied, print the statistics as JSON)
  --batch-size N   events per frame (default 4096)
  --in-flight N    frames unacknowledged at once (default 4)
  --fetch-wait-ms N  the consumer's fetch.wait.max.ms (default 10)
  -h, --help       print this help
";

struct Args {
    url: String,
    topic: Option<String>,
    users: u64,
    mode: String,
    batch_size: usize,
    in_flight: usize,
    fetch_wait_ms: u64,
}

fn positive(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("{flag}: not a positive count: {value}"))
}

/// The options, or `None` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        url: "kafka://127.0.0.1:9092".into(),
        topic: None,
        users: 50_000,
        mode: "both".into(),
        batch_size: 4096,
        in_flight: 4,
        fetch_wait_ms: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => args.url = value,
            "--topic" => args.topic = Some(value),
            "--users" => args.users = positive(&flag, &value)?,
            "--batch-size" => args.batch_size = positive(&flag, &value)? as usize,
            "--in-flight" => args.in_flight = positive(&flag, &value)? as usize,
            "--fetch-wait-ms" => args.fetch_wait_ms = positive(&flag, &value)?,
            "--mode" if ["both", "ship", "consume"].contains(&value.as_str()) => args.mode = value,
            "--mode" => return Err(format!("--mode: both, ship or consume, not {value}")),
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
    let topic = args.topic.clone().unwrap_or_else(|| {
        format!(
            "ringstat.example.{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
    });
    let events = args.users * 4;
    let ship = || {
        ShipperBuilder::new(&args.url)
            .topic(&topic)
            .batch_size(args.batch_size)
            .max_in_flight(args.in_flight)
            .build()
    };
    let registry = Registry::new();
    let pipeline = Arc::new(Pipeline::builder(&registry).workers(2).build()?);
    let consume = || {
        ConsumerBuilder::new(&args.url, Arc::clone(&pipeline))
            .topic(&topic)
            .start_at(StartAt::First)
            .config("fetch.wait.max.ms", &args.fetch_wait_ms.to_string())
            .start()
    };
    match args.mode.as_str() {
        "ship" => return ship_only(&ship()?, args.users),
        "consume" => return consume_only(&consume()?, &registry, &pipeline, events),
        _ => {}
    }
    let consumer = consume()?;
    let shipper = ship()?;
    // One event end to end before timing (as bench_broker.py's Kafka rows):
    // the idempotent producer's id, the topic and the first fetch.
    shipper.send(Event::count("warmup", 1))?;
    let warm = consumer.wait_events(1, Duration::from_secs(120));
    if !warm {
        eprintln!(
            "warm-up event not applied: {:?}",
            consumer.last_error().or(shipper.last_error())
        );
        std::process::exit(1);
    }
    let events_total = events + 1;

    let t0 = Instant::now();
    send_all(&shipper, args.users)?;
    let sent = t0.elapsed();
    let confirmed = shipper.flush(Some(Duration::from_secs(300)));
    let applied = consumer.wait_events(events_total, Duration::from_secs(300));
    pipeline.flush();
    let elapsed = t0.elapsed();
    let ss = shipper.stats();
    let cs = consumer.stats();
    shipper.close(Some(Duration::from_secs(10)));
    consumer.stop();

    println!("topic            {topic}");
    println!(
        "events           {events} ({} users) in {:.3} s: {:.0} events/s end to end \
         (sends returned after {:.3} s)",
        args.users,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        sent.as_secs_f64(),
    );
    println!(
        "shipper          accepted {} acknowledged {} in {} frames (produced {}), rejected {}, \
         blocked {}, buffered {}, reconnects {}, all acknowledged: {confirmed}",
        ss.accepted.saturating_sub(1),
        ss.confirmed_events.saturating_sub(1),
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
        cs.events.saturating_sub(1),
        cs.frames,
        cs.duplicates,
        cs.bad_frames,
        cs.reconnects,
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

/// The workload: login, session start, seen, session end for each user.
fn send_all(shipper: &Shipper, users: u64) -> Result<(), ringstat::broker::SendError> {
    for u in 0..users {
        let ts = 1_000_000_000 + u * 1_000;
        shipper.send(Event::count("logins", 1))?;
        shipper.send(Event::start("online", u).at(ts))?;
        shipper.send(Event::seen("users", u))?;
        shipper.send(Event::end("online", u).at(ts + (u % 600) * 1_000_000_000))?;
    }
    Ok(())
}

/// `--mode ship`: sends the workload, waits for the acknowledgements.
fn ship_only(shipper: &Shipper, users: u64) -> Result<(), Box<dyn std::error::Error>> {
    send_all(shipper, users)?;
    let ok = shipper.close(Some(Duration::from_secs(300)));
    let st = shipper.stats();
    println!(
        "{{\"producer\": {}, \"events\": {}, \"frames\": {}, \"ok\": {ok}}}",
        shipper.producer(),
        st.confirmed_events,
        st.confirmed
    );
    if !ok {
        eprintln!("not everything acknowledged: {:?}", shipper.last_error());
        std::process::exit(1);
    }
    Ok(())
}

/// `--mode consume`: applies `events` events, prints the statistics.
fn consume_only(
    consumer: &Consumer,
    registry: &Registry,
    pipeline: &Pipeline,
    events: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let ok = consumer.wait_events(events, Duration::from_secs(300));
    consumer.stop();
    pipeline.flush();
    let cs = consumer.stats();
    let users = pipeline.distinct("users")?;
    println!(
        "{{\"ok\": {ok}, \"events\": {}, \"frames\": {}, \"duplicates\": {}, \
         \"bad_frames\": {}, \"logins\": {}, \"online_open\": {}, \"users_bits\": {}}}",
        cs.events,
        cs.frames,
        cs.duplicates,
        cs.bad_frames,
        registry.counter("logins", &[])?.get(),
        registry.gauge("online_open", &[])?.get(),
        pipeline.distinct_count(users).to_bits(),
    );
    if !ok {
        eprintln!("not everything arrived: {:?}", consumer.last_error());
        std::process::exit(1);
    }
    Ok(())
}
