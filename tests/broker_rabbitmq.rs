//! `ringstat::broker` against a real RabbitMQ node (`tests/rabbit`): round
//! trip with exact statistics, duplicates and bad messages, the broker
//! restarted mid-stream, and frames across languages (a Python shipper into
//! the Rust consumer and the reverse). Skipped without rabbitmq-server
//! unless `RINGSTAT_REQUIRE_RABBITMQ` is set.

mod rabbit;
mod workload;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rabbit::Node;
use ringstat::broker::{BrokerError, Consumer, Event, Overflow, Shipper, StreamOffset};
use ringstat::pipeline::Op;
use ringstat::wire::FrameBuilder;
use ringstat::{Pipeline, Registry};
use workload::{
    aggregator, child_report, events, kill_repeatedly_then_finish, observed, reference, temp_path,
    wait_for, Observed, LONG,
};

fn qname(tag: &str) -> String {
    format!("test.rs.{tag}.{}", std::process::id())
}

/// Publishes raw bodies to `queue` (declared as the shipper declares it).
fn publish_raw(url: &str, queue: &str, bodies: &[Vec<u8>]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(queue.into(), durable, FieldTable::default())
            .await
            .unwrap();
        for b in bodies {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                b,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        }
        conn.close(200, "ok".into()).await.unwrap();
    });
}

#[test]
fn round_trip_exact_stats_duplicates_and_bad_messages() {
    let Some(node) = Node::start() else { return };
    let q = qname("roundtrip");
    let users = 0..3000;
    let evs = events(users.clone());
    let n = evs.len() as u64;

    let s = Shipper::builder(&node.url)
        .queue(&q)
        .batch_size(256)
        .max_in_flight(4)
        .build()
        .unwrap();
    for e in evs {
        s.send(e).unwrap();
    }
    assert!(s.flush(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    let st = s.stats();
    assert_eq!((st.accepted, st.confirmed_events), (n, n));
    assert_eq!((st.buffered, st.abandoned, st.rejected), (0, 0, 0));
    assert!(st.confirmed >= n.div_ceil(256) && st.connected);
    assert!(s.close(Some(LONG)));

    // A frame twice, and a message that is not a frame.
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 2, 0).unwrap();
    let f = b.finish(5, 1).encode().unwrap();
    publish_raw(&node.url, &q, &[f.clone(), b"hello".to_vec(), f]);

    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .prefetch(4)
        .start()
        .unwrap();
    assert!(c.wait_events(n + 1, LONG), "{:?}", c.stats());
    wait_for("the duplicate and the bad message", || {
        let st = c.stats();
        st.duplicates + st.bad_frames == 2
    });
    let dedup = c.stop();
    let cs = c.stats();
    assert_eq!((cs.events, cs.duplicates, cs.bad_frames), (n + 1, 1, 1));
    assert_eq!((cs.rejected_frames, cs.gaps, cs.reconnects), (0, 0, 0));
    assert_eq!(cs.lag, None, "RabbitMQ reports no lag");
    assert_eq!(cs.frames, st.confirmed + 1);
    assert_eq!(dedup.floor(5), Some(2));
    assert_eq!(dedup.floor(s.producer()), Some(st.confirmed + 1));

    let mut want = reference(users);
    want.logins += 2;
    assert_eq!(observed(&reg, &p), want);

    // A consumer whose pipeline is closed stops and leaves the frame in
    // the queue; the next consumer applies it.
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 7, 0).unwrap();
    publish_raw(&node.url, &q, &[b.finish(6, 1).encode().unwrap()]);
    let (_, closed) = aggregator();
    closed.close();
    let c = Consumer::builder(&node.url, closed)
        .queue(&q)
        .start()
        .unwrap();
    wait_for("the consumer of a closed pipeline to stop", || {
        c.is_finished()
    });
    assert_eq!((c.stats().frames, c.stats().events), (0, 0));
    c.stop();
    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .start()
        .unwrap();
    assert!(c.wait_events(1, LONG), "{:?}", c.stats());
    c.stop();
    p.flush();
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), 7);
}

/// Ships the events of `users` to `q` with `builder`'s settings, confirmed.
fn ship(url: &str, q: &str, users: std::ops::Range<u64>, stream: bool, batch: usize) -> u64 {
    let mut b = Shipper::builder(url).queue(q).batch_size(batch);
    if stream {
        b = b.stream();
    }
    let s = b.build().unwrap();
    let evs = events(users);
    let n = evs.len() as u64;
    for e in evs {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    assert_eq!(s.stats().confirmed_events, n);
    n
}

#[test]
fn stream_is_read_from_an_offset_and_replayed() {
    let Some(node) = Node::start() else { return };
    let q = qname("stream");
    let users = 0..2000;
    let n = ship(&node.url, &q, users.clone(), true, 128);
    // Two consumers from the first offset, one after the other: a stream
    // keeps its messages, acknowledged or not.
    for _ in 0..2 {
        let (reg, p) = aggregator();
        let c = Consumer::builder(&node.url, p.clone())
            .queue(&q)
            .stream_offset(StreamOffset::First)
            .start()
            .unwrap();
        assert!(
            c.wait_events(n, LONG),
            "{:?} {:?}",
            c.stats(),
            c.last_error()
        );
        c.stop();
        assert_eq!(observed(&reg, &p), reference(users.clone()));
    }
    // From the next offset: only what is published after it attached.
    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .stream_offset(StreamOffset::Next)
        .start()
        .unwrap();
    wait_for("the consumer", || c.stats().connected);
    std::thread::sleep(Duration::from_millis(300)); // attached before the next frame
    let s = Shipper::builder(&node.url)
        .queue(&q)
        .stream()
        .build()
        .unwrap();
    s.send(Event::count("logins", 9)).unwrap();
    assert!(s.close(Some(LONG)));
    assert!(c.wait_events(1, LONG), "{:?}", c.stats());
    c.stop();
    p.flush();
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), 9);
}

#[test]
fn max_length_pushes_back_until_the_consumer_reads() {
    let Some(node) = Node::start() else { return };
    let q = qname("maxlen");
    let users = 0..200;
    let evs = events(users.clone());
    let n = evs.len() as u64;
    let s = Shipper::builder(&node.url)
        .queue(&q)
        .batch_size(16)
        .max_length(3)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    for e in evs {
        s.send(e).unwrap();
    }
    // The queue holds 3 frames and refuses the next: nothing is lost.
    wait_for("a refusal", || s.stats().nacked >= 1);
    assert!(
        s.stats().confirmed <= 3 && s.stats().buffered > 0,
        "{:?}",
        s.stats()
    );
    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .max_length(3)
        .start()
        .unwrap();
    assert!(s.close(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    assert_eq!(s.stats().confirmed_events, n);
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    assert_eq!(observed(&reg, &p), reference(users));
}

#[test]
fn stream_checkpoint_settings_and_files_are_checked() {
    let ok = "amqp://127.0.0.1:1";
    let p = || Arc::new(Pipeline::new(&Registry::new()).unwrap());
    let config = |r: Result<Consumer, BrokerError>| {
        assert!(matches!(r, Err(BrokerError::Config(_))), "{r:?}");
    };
    config(
        Consumer::builder(ok, p())
            .checkpoint("x", 1, Duration::from_secs(1))
            .start(),
    );
    config(
        Consumer::builder(ok, p())
            .stream_offset(StreamOffset::First)
            .max_length(3)
            .start(),
    );
    config(Consumer::builder(ok, p()).max_length(0).start());
    assert!(matches!(
        Shipper::builder(ok).stream().max_length(3).build(),
        Err(BrokerError::Config(_))
    ));
    // A Kafka consumer's checkpoint is not a stream's: refused, nothing
    // merged.
    let path = temp_path("kafka.ckpt");
    let mut file = b"RSCK 1\n{\"offset\":{\"0\":3},\"dedup\":{\"producers\":{}}}\n".to_vec();
    file.extend_from_slice(&ringstat::wire::encode_pipeline_state(&Default::default()));
    std::fs::write(&path, file).unwrap();
    let r = Consumer::builder(ok, p())
        .stream_offset(StreamOffset::First)
        .checkpoint(&path, 1, Duration::from_secs(1))
        .start();
    assert!(
        matches!(r, Err(BrokerError::Checkpoint(ref e)) if e.contains("Kafka")),
        "{r:?}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// A consumer from `Next` with a checkpoint path and no file saves a
/// checkpoint before applying its first frame: killed before its first
/// regular checkpoint (its file copied while it runs), a restart replays
/// from that frame, not from a `Next` that has moved on.
#[test]
fn stream_consumer_pins_a_moving_start_in_its_first_checkpoint() {
    let Some(node) = Node::start() else { return };
    let q = qname("pin");
    let (path, killed) = (temp_path("pin.ckpt"), temp_path("pin-killed.ckpt"));
    let _ = std::fs::remove_file(&path);
    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .stream_offset(StreamOffset::Next)
        .checkpoint(&path, 1_000_000, Duration::from_secs(3600))
        .start()
        .unwrap();
    let s = Shipper::builder(&node.url)
        .queue(&q)
        .stream()
        .build()
        .unwrap();
    // `Next` counts from when the consumer attached: probe until it has.
    let deadline = Instant::now() + LONG;
    while !c.wait_events(1, Duration::from_millis(200)) {
        assert!(Instant::now() < deadline, "{:?}", c.stats());
        s.send(Event::count("probes", 1)).unwrap();
        assert!(s.flush(Some(LONG)));
    }
    for e in events(0..300) {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?}", s.stats());
    assert!(path.exists(), "no checkpoint before the first frame");
    std::fs::copy(&path, &killed).unwrap(); // what a SIGKILL now leaves
    let want = reference(0..300);
    wait_for("every user's events", || {
        observed(&reg, &p).logins >= want.logins
    });
    c.stop();
    let (events, probes) = (c.stats().events, reg.counter("probes", &[]).unwrap().get());
    let (reg2, p2) = aggregator();
    let c2 = Consumer::builder(&node.url, p2.clone())
        .queue(&q)
        .stream_offset(StreamOffset::Next)
        .checkpoint(&killed, 1_000_000, Duration::from_secs(3600))
        .start()
        .unwrap();
    assert!(c2.stats().restored);
    assert!(c2.wait_events(events, LONG), "{:?}", c2.stats());
    c2.stop();
    assert_eq!(observed(&reg2, &p2), observed(&reg, &p));
    assert_eq!(reg2.counter("probes", &[]).unwrap().get(), probes);
    for f in [&path, &killed] {
        std::fs::remove_file(f).unwrap();
    }
}

/// Set in the consumer process `stream_consumer_killed_...` starts:
/// `URL|QUEUE|CHECKPOINT|USERS`.
const CHILD_ENV: &str = "RINGSTAT_TEST_STREAM_CHECKPOINT_CHILD";

/// The consumer process of `stream_consumer_killed_repeatedly_...` (this
/// test binary run again for this test alone); without [`CHILD_ENV`] it
/// does nothing. It checkpoints every 2 frames, applies until the
/// statistics reach (or pass) those of every user, then prints them.
#[test]
fn stream_checkpoint_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [url, q, path, users] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("{CHILD_ENV}: {spec}");
    };
    let users: u64 = users.parse().unwrap();
    let (reg, p) = aggregator();
    let c = Consumer::builder(url, p.clone())
        .queue(q)
        .prefetch(2)
        .stream_offset(StreamOffset::First)
        .checkpoint(path, 2, Duration::from_millis(50))
        .start()
        .unwrap();
    child_report(c.stats().restored, &reg, &p, users, || drop(c.stop()));
}

#[test]
fn stream_consumer_killed_repeatedly_resumes_from_its_checkpoint_exact_stats() {
    let Some(node) = Node::start() else { return };
    let q = qname("killed");
    let users = 0..1500u64;
    ship(&node.url, &q, users.clone(), true, 8);
    let path = temp_path("stream-killed.ckpt");
    let _ = std::fs::remove_file(&path);
    let spec = format!("{}|{q}|{}|{}", node.url, path.display(), users.end);
    kill_repeatedly_then_finish("stream_checkpoint_child", CHILD_ENV, &spec, &path, users);
}

#[test]
fn broker_restarted_mid_stream_loses_nothing_counts_once() {
    let Some(mut node) = Node::start() else {
        return;
    };
    let q = qname("restart");
    let users = 0..8000u64;
    let half = 4000u64;
    let n = events(users.clone()).len() as u64;

    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .prefetch(4)
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .start()
        .unwrap();
    let s = Arc::new(
        Shipper::builder(&node.url)
            .queue(&q)
            .capacity(2048)
            .batch_size(128)
            .max_in_flight(4)
            .overflow(Overflow::Block { timeout: None })
            .backoff(Duration::from_millis(20), Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let producer = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            for e in events(0..half) {
                s.send(e).unwrap();
            }
        })
    };
    wait_for("some events consumed", || c.stats().events > 1000);
    node.stop();
    node.restart();
    producer.join().unwrap();
    // After the restart: the shipper finds its connection gone.
    for e in events(half..users.end) {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    let st = s.stats();
    assert_eq!((st.accepted, st.confirmed_events, st.abandoned), (n, n, 0));
    assert!(st.reconnects >= 1, "{st:?}");

    assert!(
        c.wait_events(n, LONG),
        "{:?} {:?}",
        c.stats(),
        c.last_error()
    );
    c.stop();
    let cs = c.stats();
    assert_eq!((cs.events, cs.bad_frames, cs.gaps), (n, 0, 0));
    assert!(cs.reconnects >= 1, "{cs:?}");
    eprintln!("shipper {st:?}\nconsumer {cs:?}");
    assert_eq!(observed(&reg, &p), reference(users));
}

#[test]
fn overflow_reject_hands_the_event_back_and_counts_it() {
    // No broker: nothing is confirmed, the buffer fills, sends are refused.
    let s = Shipper::builder("amqp://guest:guest@127.0.0.1:1/%2F")
        .capacity(4)
        .batch_size(1)
        .max_in_flight(1)
        .overflow(Overflow::Reject)
        .build()
        .unwrap();
    let mut refused = 0u64;
    let mut sent = 0u64;
    // The encoder takes some events out into frames that wait; then the
    // buffer stays full.
    while refused == 0 {
        match s.send(Event::count("logins", 1)) {
            Ok(()) => sent += 1,
            Err(ringstat::broker::SendError::Full(e)) => {
                assert_eq!(e, Event::count("logins", 1));
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let st = s.stats();
    assert_eq!((st.accepted, st.rejected, st.buffered), (sent, 1, sent));
    assert!(!s.flush(Some(Duration::from_millis(50))));
    assert!(!s.close(Some(Duration::from_millis(50))));
    let st = s.stats();
    assert_eq!(
        (st.abandoned, st.confirmed_events, st.buffered),
        (sent, 0, 0)
    );
    assert!(matches!(
        s.send(Event::count("logins", 1)),
        Err(ringstat::broker::SendError::Closed(_))
    ));
    assert!(matches!(
        s.send(Event::count("", 1)),
        Err(ringstat::broker::SendError::Invalid(..))
    ));
}

/// The project's Python with `ringstat.broker` (built by `make develop`),
/// or `None` (skip) unless `RINGSTAT_REQUIRE_PYTHON_BROKER` is set.
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("RINGSTAT_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    let ok = Command::new(&py)
        .args(["-c", "import ringstat.broker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("RINGSTAT_REQUIRE_PYTHON_BROKER").is_none(),
            "{} cannot import ringstat.broker (make develop)",
            py.display()
        );
        eprintln!("skipped: no Python with ringstat.broker ({})", py.display());
        return None;
    }
    Some(py)
}

const PY_SHIP: &str = r#"
import sys
from ringstat.broker import Shipper
url, q, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Shipper(url, q, batch_size=256) as s:
    for u in range(start, stop):
        s.count("logins")
        s.session_start("online", u, ts_ns=1_000_000_000 + u)
        s.seen("users", u)
        s.observe("latency_us", u % 97)
        if u % 3 == 0:
            s.session_end("online", u, ts_ns=2_000_000_000 + u)
    assert s.flush(120)
    print(s.stats()["published"])
"#;

const PY_CONSUME: &str = r#"
import json, struct, sys
import ringstat
from ringstat.broker import Consumer
url, q, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = ringstat.Pipeline(ringstat.Registry())
h = p.histogram("latency_us", max_value=1000)
c = Consumer(url, p, q).start()
ok = c.wait_events(n, 120)
c.stop()
p.flush()
reg = p.registry
h = reg.histogram("latency_us", max_value=1000)
bits = struct.unpack("<Q", struct.pack("<d", p.distinct_count("users")))[0]
print(json.dumps({
    "ok": ok,
    "logins": reg.counter("logins").value,
    "online_open": reg.gauge("online_open").value,
    "latency_count": h.count,
    "latency_sum": int(h.sum),
    "users_bits": bits,
    "duplicates": c.stats()["duplicates"],
}))
"#;

/// The value of `"key":` in a flat JSON object of numbers and booleans.
fn json_field(text: &str, key: &str) -> String {
    let at = text
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {text}"));
    text[at + key.len() + 4..]
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn cross_language_python_shipper_to_rust_consumer_and_back() {
    let Some(py) = python() else { return };
    let Some(node) = Node::start() else { return };
    let users = 0..2000u64;
    let n = events(users.clone()).len() as u64;

    // Python ships, Rust consumes.
    let q = qname("py2rs");
    let out = Command::new(&py)
        .args(["-c", PY_SHIP, &node.url, &q, "0", &users.end.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), n.to_string());
    let (reg, p) = aggregator();
    let c = Consumer::builder(&node.url, p.clone())
        .queue(&q)
        .start()
        .unwrap();
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    assert_eq!(observed(&reg, &p), reference(users.clone()));

    // Rust ships, Python consumes.
    let q = qname("rs2py");
    let s = Shipper::builder(&node.url)
        .queue(&q)
        .batch_size(256)
        .build()
        .unwrap();
    for e in events(users.clone()) {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)));
    let out = Command::new(&py)
        .args(["-c", PY_CONSUME, &node.url, &q, &n.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = reference(users);
    assert_eq!(json_field(&text, "ok"), "true", "{text}");
    let got = Observed {
        logins: json_field(&text, "logins").parse().unwrap(),
        online_open: json_field(&text, "online_open").parse().unwrap(),
        latency_count: json_field(&text, "latency_count").parse().unwrap(),
        latency_sum: json_field(&text, "latency_sum").parse().unwrap(),
        users_bits: json_field(&text, "users_bits").parse().unwrap(),
    };
    assert_eq!(got, want);
    assert_eq!(json_field(&text, "duplicates"), "0");
    // The frames are the same bytes in both languages: one more check on
    // the encoder itself.
    let py_frame = Command::new(&py)
        .args([
            "-c",
            "import sys; from ringstat._ringstat import encode_frame; \
             sys.stdout.write(encode_frame(9, 2, [('count', 'logins', 0, 3, 0), \
             ('session_start', 'online', 7, 0, 5)]).hex())",
        ])
        .output()
        .unwrap();
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 3, 0).unwrap();
    b.push(Op::Start, "online", 7, 0, 5).unwrap();
    let rs: String = b
        .finish(9, 2)
        .encode()
        .unwrap()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&py_frame.stdout), rs);
}
