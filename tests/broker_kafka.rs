//! `ringstat::broker::kafka` against a real Kafka-protocol broker (tansu,
//! `tests/kafka`): round trip with exact statistics, duplicates, bad
//! messages and commit after apply; the broker restarted mid-stream;
//! overflow; bad input. Frames across languages are checked by
//! `tests/python/test_kafka.py` (it runs `examples/broker_kafka.rs`).
//! Skipped without tansu unless `RINGSTAT_REQUIRE_KAFKA` is set.

mod kafka;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka::Node;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use ringstat::broker::kafka::{ConsumerBuilder, ShipperBuilder, StartAt};
use ringstat::broker::{
    BrokerError, Consumer, Event, Overflow, SendError, Shipper, MIN_FRAME_BYTES,
};
use ringstat::pipeline::Op;
use ringstat::wire::FrameBuilder;
use ringstat::{Pipeline, Registry};
use workload::{
    aggregator, child_report, events, kill_repeatedly_then_finish, observed, reference, temp_path,
    wait_for, LONG,
};

fn topic(tag: &str) -> String {
    format!("test.rs.{tag}.{}", std::process::id())
}

/// Produces raw bodies to `topic` (made by a shipper or consumer before).
fn produce_raw(node: &Node, topic: &str, bodies: &[Vec<u8>]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", node.port))
        .create()
        .unwrap();
    for b in bodies {
        p.send(
            BaseRecord::<[u8], [u8]>::to(topic)
                .payload(&b[..])
                .key(&[0u8; 8][..]),
        )
        .unwrap();
    }
    p.flush(LONG).unwrap();
}

/// The sizes of the first `n` messages of partition 0 of `topic`.
fn message_sizes(node: &Node, topic: &str, n: usize) -> Vec<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", node.port))
        .set("group.id", "sizes")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + LONG;
    let mut sizes = Vec::new();
    while sizes.len() < n {
        assert!(Instant::now() < deadline, "gave up reading {topic}");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            sizes.push(m.payload_len());
        }
    }
    sizes
}

#[test]
fn round_trip_exact_stats_duplicates_bad_messages_commit_after_apply() {
    let Some(node) = Node::start() else { return };
    let t = topic("roundtrip");
    let users = 0..3000;
    let evs = events(users.clone());
    let n = evs.len() as u64;

    let s = ShipperBuilder::new(&node.url)
        .topic(&t)
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
    produce_raw(&node, &t, &[f.clone(), b"hello".to_vec(), f]);

    let (reg, p) = aggregator();
    let c = Consumer::kafka(&node.url, p.clone())
        .topic(&t)
        .group("g1")
        .start()
        .unwrap();
    assert!(
        c.wait_events(n + 1, LONG),
        "{:?} {:?}",
        c.stats(),
        c.last_error()
    );
    wait_for("the duplicate and the bad message", || {
        let st = c.stats();
        st.duplicates + st.bad_frames == 2
    });
    let dedup = c.stop();
    let cs = c.stats();
    assert_eq!((cs.events, cs.duplicates, cs.bad_frames), (n + 1, 1, 1));
    assert_eq!((cs.rejected_frames, cs.gaps, cs.reconnects), (0, 0, 0));
    assert_eq!(cs.lag, Some(0), "every message read");
    assert_eq!(cs.frames, st.confirmed + 1);
    assert_eq!(dedup.floor(5), Some(2));
    assert_eq!(dedup.floor(s.producer()), Some(st.confirmed + 1));
    let mut want = reference(users.clone());
    want.logins += 2;
    assert_eq!(observed(&reg, &p), want);

    // A consumer whose pipeline is closed stops and commits nothing for
    // the frame; the group's next consumer (at the committed offsets)
    // applies only it.
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 7, 0).unwrap();
    produce_raw(&node, &t, &[b.finish(6, 1).encode().unwrap()]);
    let (_, closed) = aggregator();
    closed.close();
    let c = ConsumerBuilder::new(&node.url, closed)
        .topic(&t)
        .group("g1")
        .start()
        .unwrap();
    wait_for("the consumer of a closed pipeline to stop", || {
        c.is_finished()
    });
    assert_eq!((c.stats().frames, c.stats().events), (0, 0));
    assert_eq!(c.stats().lag, None, "nothing read");
    c.stop();
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("g1")
        .start()
        .unwrap();
    assert!(c.wait_events(1, LONG), "{:?}", c.stats());
    c.stop();
    assert_eq!(c.stats().frames, 1);
    p.flush();
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), 7);

    // StartAt::First replays the topic, whatever the group committed.
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("g1")
        .start_at(StartAt::First)
        .start()
        .unwrap();
    assert!(c.wait_events(n + 2, LONG), "{:?}", c.stats());
    c.stop();
    let mut want = reference(users);
    want.logins += 9;
    assert_eq!(observed(&reg, &p), want);
}

#[test]
fn broker_restarted_mid_stream_loses_nothing_counts_once() {
    let Some(mut node) = Node::start() else {
        return;
    };
    let t = topic("restart");
    let users = 0..8000u64;
    let half = 4000u64;
    let n = events(users.clone()).len() as u64;

    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .start()
        .unwrap();
    let s = Arc::new(
        ShipperBuilder::new(&node.url)
            .topic(&t)
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
    // Sent while the broker is down: buffered, then blocked.
    let during = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            for e in events(half..half + 500) {
                s.send(e).unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    node.restart();
    producer.join().unwrap();
    during.join().unwrap();
    for e in events(half + 500..users.end) {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    let st = s.stats();
    assert_eq!((st.accepted, st.confirmed_events, st.abandoned), (n, n, 0));

    assert!(
        c.wait_events(n, LONG),
        "{:?} {:?}",
        c.stats(),
        c.last_error()
    );
    let dedup = c.stop();
    let cs = c.stats();
    assert_eq!((cs.events, cs.bad_frames, cs.gaps), (n, 0, 0));
    assert!(st.reconnects >= 1 && cs.reconnects >= 1, "{st:?} {cs:?}");
    eprintln!("shipper {st:?}\nconsumer {cs:?}");
    assert_eq!(observed(&reg, &p), reference(users));

    // Read again from the first offset with the dedup record the consumer
    // ended with: every frame is a duplicate, nothing is applied twice.
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("replay")
        .start_at(StartAt::First)
        .dedup(dedup)
        .start()
        .unwrap();
    wait_for("every frame seen again", || {
        c.stats().duplicates == cs.frames + cs.duplicates
    });
    c.stop();
    assert_eq!((c.stats().events, c.stats().frames), (0, 0));
    p.flush();
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), 0);
}

#[test]
fn overflow_reject_hands_the_event_back_and_counts_it() {
    // No broker: nothing is acknowledged, the buffer fills, sends are refused.
    let s = Shipper::kafka("kafka://127.0.0.1:1")
        .capacity(4)
        .batch_size(1)
        .max_in_flight(1)
        .overflow(Overflow::Reject)
        .build()
        .unwrap();
    let mut refused = 0u64;
    let mut sent = 0u64;
    while refused == 0 {
        match s.send(Event::count("logins", 1)) {
            Ok(()) => sent += 1,
            Err(SendError::Full(e)) => {
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
    assert!(s.last_error().is_some());
    assert!(matches!(
        s.send(Event::count("logins", 1)),
        Err(SendError::Closed(_))
    ));
    assert!(matches!(
        s.send(Event::count("", 1)),
        Err(SendError::Invalid(..))
    ));
}

#[test]
fn a_batch_larger_than_max_frame_bytes_goes_as_several_frames() {
    let Some(node) = Node::start() else { return };
    let t = topic("split");
    let users = 0..2000;
    let evs = events(users.clone());
    let n = evs.len() as u64;
    // One batch of every event; each frame at most MIN_FRAME_BYTES.
    let s = ShipperBuilder::new(&node.url)
        .topic(&t)
        .batch_size(1 << 16)
        .max_frame_bytes(MIN_FRAME_BYTES)
        .build()
        .unwrap();
    for e in evs {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    let st = s.stats();
    assert_eq!((st.confirmed_events, st.abandoned, st.nacked), (n, 0, 0));
    assert!(st.confirmed > 1, "{st:?}");
    let sizes = message_sizes(&node, &t, st.confirmed as usize);
    assert!(sizes.iter().all(|&b| b <= MIN_FRAME_BYTES), "{sizes:?}");

    let (reg, p) = aggregator();
    let c = Consumer::kafka(&node.url, p.clone())
        .topic(&t)
        .start_at(StartAt::First)
        .start()
        .unwrap();
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    assert_eq!((c.stats().frames, c.stats().gaps), (st.confirmed, 0));
    assert_eq!(observed(&reg, &p), reference(users));
}

#[test]
fn max_lag_holds_the_shipper_until_the_group_reads() {
    let Some(node) = Node::start() else { return };
    let t = topic("maxlag");
    let users = 0..40;
    let evs = events(users.clone());
    let n = evs.len() as u64;
    // Frames of 8 events, at most 3 messages unread by the group "g".
    let s = ShipperBuilder::new(&node.url)
        .topic(&t)
        .batch_size(8)
        .max_lag("g", 3)
        .build()
        .unwrap();
    for e in evs {
        s.send(e).unwrap();
    }
    wait_for("the hold", || s.stats().throttled >= 1);
    assert!(
        !s.flush(Some(Duration::from_millis(300))),
        "held: {:?}",
        s.stats()
    );
    let st = s.stats();
    assert!(st.confirmed < n.div_ceil(8) && st.buffered > 0, "{st:?}");
    // The group reads and commits: the shipper goes on to the end.
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("g")
        .start()
        .unwrap();
    assert!(s.flush(Some(LONG)), "{:?} {:?}", s.stats(), s.last_error());
    assert_eq!(s.stats().confirmed_events, n);
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    assert_eq!(observed(&reg, &p), reference(users));
    assert!(s.close(Some(LONG)));
}

#[test]
fn first_checkpoint_replays_from_the_first_offsets() {
    let Some(node) = Node::start() else { return };
    let t = topic("ckfirst");
    let users = 0..1000;
    let evs = events(users.clone());
    let n = evs.len() as u64;
    let s = ShipperBuilder::new(&node.url)
        .topic(&t)
        .batch_size(64)
        .build()
        .unwrap();
    for e in evs {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?}", s.stats());
    // A consumer of the group applies everything and commits it, then dies
    // with its pipeline (no checkpoint).
    let (_, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p)
        .topic(&t)
        .group("g")
        .start()
        .unwrap();
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    // With a checkpoint path and no file yet: from the first offsets.
    let path = temp_path("ckfirst.ckpt");
    let _ = std::fs::remove_file(&path);
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("g")
        .checkpoint(&path, 1000, Duration::from_secs(60))
        .start()
        .unwrap();
    assert!(!c.stats().restored);
    assert!(c.wait_events(n, LONG), "{:?}", c.stats());
    c.stop();
    assert!(c.stats().checkpoints >= 1, "a last one when it stops");
    assert_eq!(observed(&reg, &p), reference(users.clone()));
    // Restarted from it: on from its offsets, nothing twice; a checkpoint
    // that does not fit the pipeline is refused and changes nothing.
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 5, 0).unwrap();
    produce_raw(&node, &t, &[b.finish(77, 1).encode().unwrap()]);
    let unfit = Arc::new(Pipeline::new(&Registry::new()).unwrap());
    unfit.counter("latency_us").unwrap(); // a histogram in the checkpoint
    let e = ConsumerBuilder::new(&node.url, unfit)
        .topic(&t)
        .checkpoint(&path, 1, Duration::from_secs(1))
        .start()
        .unwrap_err();
    assert!(matches!(e, BrokerError::Checkpoint(_)), "{e}");
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(&node.url, p.clone())
        .topic(&t)
        .group("g")
        .checkpoint(&path, 1000, Duration::from_secs(60))
        .start()
        .unwrap();
    assert!(c.stats().restored);
    assert!(c.wait_events(1, LONG), "{:?}", c.stats());
    c.stop();
    let mut want = reference(users);
    want.logins += 5;
    assert_eq!(observed(&reg, &p), want);
    std::fs::remove_file(&path).unwrap();
}

/// Set in the consumer process `killed_repeatedly_...` starts: `URL|TOPIC|
/// CHECKPOINT|USERS`.
const CHILD_ENV: &str = "RINGSTAT_TEST_CHECKPOINT_CHILD";

/// The consumer process of `killed_repeatedly_resumes_from_its_checkpoint`
/// (this test binary run again for this test alone); without
/// [`CHILD_ENV`] it does nothing. It checkpoints every 2 frames, applies
/// until the statistics reach (or pass) those of every user, then prints
/// them.
#[test]
fn checkpoint_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [url, t, path, users] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("{CHILD_ENV}: {spec}");
    };
    let users: u64 = users.parse().unwrap();
    let (reg, p) = aggregator();
    let c = ConsumerBuilder::new(url, p.clone())
        .topic(t)
        .group("killed")
        .checkpoint(path, 2, Duration::from_millis(50))
        .start()
        .unwrap();
    child_report(c.stats().restored, &reg, &p, users, || drop(c.stop()));
}

#[test]
fn killed_repeatedly_resumes_from_its_checkpoint_exact_stats() {
    let Some(node) = Node::start() else { return };
    let t = topic("killed");
    let users = 0..1500u64;
    let s = ShipperBuilder::new(&node.url)
        .topic(&t)
        .batch_size(8)
        .build()
        .unwrap();
    for e in events(users.clone()) {
        s.send(e).unwrap();
    }
    assert!(s.close(Some(LONG)), "{:?}", s.stats());
    let path = temp_path("killed.ckpt");
    let _ = std::fs::remove_file(&path);
    let spec = format!("{}|{t}|{}|{}", node.url, path.display(), users.end);
    kill_repeatedly_then_finish("checkpoint_child", CHILD_ENV, &spec, &path, users);
}

#[test]
fn bad_input_is_a_clear_error() {
    let url = |r: Result<Shipper, BrokerError>| match r {
        Err(BrokerError::Url(m)) => m,
        other => panic!("{other:?}"),
    };
    for bad in [
        "",
        "kafka://",
        "kafka:///",
        "amqp://127.0.0.1:5672",
        "kafka://127.0.0.1",
        "kafka://127.0.0.1:notaport",
        "kafka://:9092",
        "kafka://127.0.0.1:9092,",
        "kafka://127.0.0.1:99999",
    ] {
        let m = url(ShipperBuilder::new(bad).build());
        assert!(m.contains("kafka://host:port"), "{bad}: {m}");
        let p = Arc::new(Pipeline::new(&Registry::new()).unwrap());
        assert!(matches!(
            ConsumerBuilder::new(bad, p).start(),
            Err(BrokerError::Url(_))
        ));
    }
    let ok = "kafka://127.0.0.1:1";
    for b in [
        ShipperBuilder::new(ok).capacity(0),
        ShipperBuilder::new(ok).batch_size(0),
        ShipperBuilder::new(ok).max_in_flight(0),
        ShipperBuilder::new(ok).max_frame_bytes(MIN_FRAME_BYTES - 1),
        ShipperBuilder::new(ok).partitions(0),
        ShipperBuilder::new(ok).max_lag("g", 0),
        ShipperBuilder::new(ok).max_lag("", 3),
        ShipperBuilder::new(ok).config("no.such.setting", "1"),
        ShipperBuilder::new(ok).config("acks", "maybe"),
    ] {
        let e = b.build().unwrap_err();
        assert!(matches!(e, BrokerError::Config(_)), "{e}");
        assert!(!e.to_string().is_empty());
    }
    let p = Arc::new(Pipeline::new(&Registry::new()).unwrap());
    for b in [
        ConsumerBuilder::new(ok, p.clone()).partitions(0),
        ConsumerBuilder::new(ok, p.clone()).prefetch_bytes(10),
        ConsumerBuilder::new(ok, p.clone()).config("no.such.setting", "1"),
        ConsumerBuilder::new(ok, p.clone()).checkpoint("x", 0, Duration::from_secs(1)),
        ConsumerBuilder::new(ok, p.clone()).checkpoint("x", 1, Duration::ZERO),
    ] {
        assert!(matches!(b.start(), Err(BrokerError::Config(_))));
    }
    // No broker: the consumer keeps trying and stops when asked.
    let c = ConsumerBuilder::new(ok, p).start().unwrap();
    wait_for("an error", || c.last_error().is_some());
    c.stop();
    assert!(!c.stats().connected);
}
