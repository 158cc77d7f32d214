//! Event frames (`src/wire/`): round trips, every way decoding refuses
//! input, arbitrary bytes never panic, and applying a frame to a pipeline.

use proptest::prelude::*;
use ringstat::pipeline::{Op, Pipeline};
use ringstat::stats::HistogramConfig;
use ringstat::wire::{
    apply, peek_header, ApplyError, Frame, FrameBuilder, FrameError, Record, FRAME_VERSION,
    HEADER_LEN,
};
use ringstat::Registry;

const OPS: [Op; 8] = [
    Op::Count,
    Op::Set,
    Op::GaugeAdd,
    Op::Observe,
    Op::Mark,
    Op::Start,
    Op::End,
    Op::Seen,
];

fn sample() -> Frame {
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 1, 0).unwrap();
    b.push(Op::Set, "temp", 0, (-5i64) as u64, 0).unwrap();
    b.push(Op::Start, "online", 42, 0, 1_000_000).unwrap();
    b.push(Op::Seen, "users", u64::MAX, 0, u64::MAX).unwrap();
    b.finish(0xfeed, 17)
}

#[test]
fn smoke_round_trip() {
    let f = sample();
    let bytes = f.encode().unwrap();
    assert_eq!(&bytes[..4], b"RSEF");
    assert_eq!(bytes[4], FRAME_VERSION);
    assert_eq!(Frame::decode(&bytes).unwrap(), f);
    let h = peek_header(&bytes).unwrap();
    assert_eq!((h.producer, h.sequence), (0xfeed, 17));
    assert_eq!(f.records[1].value as i64, -5);
}

#[test]
fn empty_frame() {
    let bytes = Frame::default().encode().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 2);
    assert_eq!(Frame::decode(&bytes).unwrap(), Frame::default());
}

#[test]
fn every_truncation_is_refused() {
    let bytes = sample().encode().unwrap();
    for n in 0..bytes.len() {
        let e = Frame::decode(&bytes[..n]).unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::Truncated { .. }
                    | FrameError::Foreign { .. }
                    | FrameError::Short { .. }
            ),
            "{n}: {e:?}"
        );
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn foreign_version_flags_trailing() {
    let bytes = sample().encode().unwrap();
    assert!(matches!(
        Frame::decode(b"{\"json\": 1}"),
        Err(FrameError::Foreign { .. })
    ));
    assert!(matches!(
        Frame::decode(b""),
        Err(FrameError::Foreign { .. })
    ));
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert_eq!(
        Frame::decode(&v2),
        Err(FrameError::UnsupportedVersion { found: 2 })
    );
    assert!(Frame::decode(&v2)
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    let mut fl = bytes.clone();
    fl[5] = 1;
    assert_eq!(
        Frame::decode(&fl),
        Err(FrameError::UnknownFlags { found: 1 })
    );
    let mut tr = bytes.clone();
    tr.push(0);
    assert!(matches!(
        Frame::decode(&tr),
        Err(FrameError::TrailingBytes { len: 1, .. })
    ));
}

#[test]
fn bad_op_name_index_and_utf8() {
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "c", 0, 1, 0).unwrap();
    let bytes = b.finish(1, 1).encode().unwrap();
    // Layout: header, counts (2), name "c" (2), then the event.
    let ev = HEADER_LEN + 4;
    let mut op = bytes.clone();
    op[ev] = 99;
    assert!(matches!(
        Frame::decode(&op),
        Err(FrameError::BadOp { code: 99, .. })
    ));
    let mut idx = bytes.clone();
    idx[ev + 1] = 5;
    assert!(matches!(
        Frame::decode(&idx),
        Err(FrameError::BadNameIndex { index: 5, .. })
    ));
    let mut utf = bytes.clone();
    utf[HEADER_LEN + 3] = 0xff;
    assert!(matches!(
        Frame::decode(&utf),
        Err(FrameError::BadName { .. })
    ));
    // A huge declared count is refused before anything is allocated.
    let mut huge = bytes[..HEADER_LEN].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    assert!(matches!(
        Frame::decode(&huge),
        Err(FrameError::BadCount { .. })
    ));
    let mut short = bytes[..HEADER_LEN].to_vec();
    short.extend_from_slice(&[0, 100, 1, 2, 3]);
    assert!(matches!(
        Frame::decode(&short),
        Err(FrameError::Short {
            count: 100,
            left: 3,
            ..
        })
    ));
}

#[test]
fn encode_refuses_what_cannot_travel() {
    let mut b = FrameBuilder::new();
    assert_eq!(
        b.push(Op::Count, "", 0, 1, 0),
        Err(FrameError::TooLarge {
            field: "name length"
        })
    );
    let long = "x".repeat(2000);
    assert!(b.push(Op::Count, &long, 0, 1, 0).is_err());
    assert!(b.is_empty());
    let f = Frame {
        names: vec![],
        records: vec![Record {
            op: Op::Count,
            name: 0,
            key: 0,
            value: 1,
            ts: 0,
        }],
        ..Frame::default()
    };
    assert!(matches!(f.encode(), Err(FrameError::BadNameIndex { .. })));
}

#[test]
fn apply_to_pipeline() {
    let reg = Registry::new();
    let p = Pipeline::new(&reg).unwrap();
    let cfg = HistogramConfig {
        max: 1000,
        significant_digits: 2,
    };
    let mut b = FrameBuilder::new();
    b.push(Op::Count, "logins", 0, 2, 0).unwrap();
    b.push(Op::GaugeAdd, "g", 0, (-3i64) as u64, 0).unwrap();
    b.push(Op::Observe, "lat", 0, 250, 0).unwrap();
    b.push(Op::Start, "online", 7, 0, 1_000_000).unwrap();
    b.push(Op::Seen, "users", 7, 0, 0).unwrap();
    let f = b.finish(1, 1);
    // No histogram yet: refused, and nothing of the frame was sent.
    assert_eq!(
        apply(&p, &f),
        Err(ApplyError::UnknownHistogram { name: "lat".into() })
    );
    p.flush();
    assert_eq!(p.stats().received, 0);
    p.histogram("lat", cfg).unwrap();
    assert_eq!(apply(&p, &f), Ok(0));
    p.flush();
    assert_eq!(reg.counter("logins", &[]).unwrap().get(), 2);
    assert_eq!(reg.gauge("g", &[]).unwrap().get(), -3);
    assert_eq!(reg.histogram("lat", &[], cfg).unwrap().count(), 1);
    assert_eq!(reg.gauge("online_open", &[]).unwrap().get(), 1);
    p.close();
    assert_eq!(apply(&p, &f), Err(ApplyError::Closed));
}

fn record(names: usize) -> impl Strategy<Value = Record> {
    (
        0..OPS.len(),
        0..names as u32,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(op, name, key, value, ts)| Record {
            op: OPS[op],
            name,
            key,
            value,
            ts,
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop::collection::vec("[a-z_]{1,12}", 1..6).prop_flat_map(|names| {
        let n = names.len();
        (
            any::<u64>(),
            any::<u64>(),
            Just(names),
            prop::collection::vec(record(n), 0..64),
        )
            .prop_map(|(producer, sequence, names, records)| Frame {
                producer,
                sequence,
                names,
                records,
            })
    })
}

proptest! {
    #[test]
    fn round_trip(f in frame()) {
        let bytes = f.encode().unwrap();
        prop_assert_eq!(Frame::decode(&bytes).unwrap(), f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Frame::decode(&bytes);
        let _ = peek_header(&bytes);
    }

    #[test]
    fn valid_prefix_then_noise_never_panics(
        f in frame(),
        cut in any::<prop::sample::Index>(),
        noise in prop::collection::vec(any::<u8>(), 0..32),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let mut bytes = f.encode().unwrap();
        bytes.truncate(cut.index(bytes.len() + 1));
        bytes.extend_from_slice(&noise);
        if !bytes.is_empty() {
            let i = flip.0.index(bytes.len());
            bytes[i] ^= flip.1;
        }
        if let Ok(g) = Frame::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(g.encode().unwrap(), bytes);
        }
    }
}

proptest! {
    /// `Dedup` against a model: a frame is new iff it was never added and
    /// its sequence is not below its producer's first one (nothing pending
    /// overflows here, so no gap); the state round-trips.
    #[test]
    fn dedup_matches_the_model(ops in prop::collection::vec((0u64..3, 0u64..40), 0..300)) {
        use std::collections::{HashMap, HashSet};
        let mut d = ringstat::wire::Dedup::new(1000);
        let mut added = HashSet::new();
        let mut first = HashMap::new();
        for (p, s) in ops {
            let start = *first.entry(p).or_insert(s);
            let new = s >= start && !added.contains(&(p, s));
            prop_assert_eq!(d.seen(p, s), !new);
            prop_assert_eq!(d.add(p, s), new);
            if new {
                added.insert((p, s));
            }
            prop_assert!(d.seen(p, s));
        }
        prop_assert_eq!(d.gaps(), 0);
        let (state, gaps) = d.state();
        prop_assert_eq!(ringstat::wire::Dedup::from_state(&state, gaps, 1000), d);
    }
}

mod event_buffer {
    //! `EventBuffer` (a shipper's local buffer): against a model, and
    //! conservation with many producers and one taker.

    use super::OPS;
    use proptest::prelude::*;
    use ringstat::pipeline::Op;
    use ringstat::wire::{BufferMetrics, EventBuffer, Frame, Pushed, Refused, MAX_NAME_LEN};
    use std::collections::VecDeque;
    use std::sync::Arc;

    #[derive(Debug, Clone)]
    enum Step {
        Push(Op, String, u64, u64, u64),
        Take(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        let name = prop_oneof![
            8 => "[a-c]{1,3}",
            1 => Just("x".repeat(MAX_NAME_LEN + 1)), // rejected at push
            1 => Just("y".repeat(70)), // alone too big for a small frame limit
        ];
        prop_oneof![
            3 => (prop::sample::select(&OPS[..]), name, any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(op, n, k, v, t)| Step::Push(op, n, k, v, t)),
            1 => (1usize..12).prop_map(Step::Take),
        ]
    }

    proptest! {
        /// Every take returns the model's oldest events, in order, as frames
        /// within the limit numbered 1, 2, ...; overflow drops the newest;
        /// the counts add up at every step.
        #[test]
        fn against_a_model(
            steps in prop::collection::vec(step(), 0..80),
            cap in 1usize..8,
            limit in prop::option::of(64usize..200),
            drop_newest in any::<bool>(),
        ) {
            let m = BufferMetrics::default();
            let b = EventBuffer::new(cap, 5, drop_newest, limit, m.clone());
            let mut model: VecDeque<(Op, String, u64, u64, u64)> = VecDeque::new();
            let (mut events, mut dropped, mut blocked, mut rejected) = (0u64, 0u64, 0u64, 0u64);
            let (mut queued, mut sequence) = (0i64, 0u64);
            for s in steps {
                match s {
                    Step::Push(op, name, k, v, t) => {
                        let r = b.push(op, &name, k, v, t);
                        if name.len() > MAX_NAME_LEN {
                            prop_assert_eq!(r, Ok(Pushed::Rejected));
                            events += 1;
                            rejected += 1;
                        } else if model.len() == cap && drop_newest {
                            prop_assert_eq!(r, Ok(Pushed::Dropped));
                            dropped += 1;
                        } else if model.len() == cap {
                            prop_assert!(matches!(r, Err(Refused::Full(_))));
                            blocked += 1;
                        } else {
                            prop_assert_eq!(r, Ok(Pushed::Queued));
                            model.push_back((op, name, k, v, t));
                            events += 1;
                            queued += 1;
                        }
                    }
                    Step::Take(n) => {
                        let frames = b.take(n, Some(std::time::Instant::now())).unwrap();
                        let want: Vec<_> = model.drain(..n.min(model.len())).collect();
                        let mut got = Vec::new();
                        let mut settles = 0;
                        for f in &frames {
                            settles += f.settles;
                            if let Some(body) = &f.body {
                                prop_assert!(body.len() <= limit.unwrap_or(usize::MAX));
                                let d = Frame::decode(body).unwrap();
                                sequence += 1;
                                prop_assert_eq!((d.producer, d.sequence), (5, sequence));
                                prop_assert_eq!(d.records.len(), f.events);
                                for r in d.records {
                                    got.push((r.op, d.names[r.name as usize].clone(), r.key, r.value, r.ts));
                                }
                            }
                        }
                        // What is missing was alone too big for the limit.
                        let fits: Vec<_> = want
                            .iter()
                            .filter(|e| {
                                let mut fb = ringstat::wire::FrameBuilder::new();
                                fb.push_within(limit.unwrap_or(usize::MAX), e.0, &e.1, e.2, e.3, e.4)
                                    == Ok(true)
                            })
                            .cloned()
                            .collect();
                        rejected += (want.len() - fits.len()) as u64;
                        prop_assert_eq!(got, fits);
                        prop_assert_eq!(settles, want.len());
                    }
                }
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(
                    (m.events.get(), m.dropped.get(), m.blocked.get(), m.rejected.get()),
                    (events, dropped, blocked, rejected)
                );
                // +1 per event queued; the caller subtracts what it settles.
                prop_assert_eq!(m.buffered.get(), queued);
            }
        }
    }

    /// Producers on several threads (blocking on a full buffer) and one
    /// taker: every event arrives exactly once, each producer's in order,
    /// frames numbered without a gap; close drains the rest.
    #[test]
    fn stress_many_producers_one_taker() {
        const PRODUCERS: u64 = 4;
        let per: u64 = if cfg!(miri) { 50 } else { 20_000 };
        let m = BufferMetrics::default();
        let b = Arc::new(EventBuffer::new(64, 1, false, Some(256), m.clone()));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    for i in 0..per {
                        let mut r = b.push(Op::Observe, "v", p, i, 0);
                        while let Err(Refused::Full(e)) = r {
                            r = b.push_until(e, None);
                        }
                        assert_eq!(r, Ok(Pushed::Queued));
                    }
                })
            })
            .collect();
        let taker = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut next = vec![0u64; PRODUCERS as usize];
                let mut sequence = 0;
                let mut settled = 0;
                while let Ok(frames) = b.take(100, None) {
                    for f in frames {
                        settled += f.settles;
                        let d = Frame::decode(&f.body.unwrap()).unwrap();
                        sequence += 1;
                        assert_eq!(d.sequence, sequence);
                        for r in d.records {
                            assert_eq!(r.value, next[r.key as usize]);
                            next[r.key as usize] += 1;
                        }
                    }
                }
                (next, settled)
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        b.close();
        let (next, settled) = taker.join().unwrap();
        assert!(next.iter().all(|&n| n == per));
        assert_eq!(settled as u64, PRODUCERS * per);
        assert_eq!(
            (m.events.get(), m.rejected.get(), m.dropped.get()),
            (PRODUCERS * per, 0, 0)
        );
        assert_eq!(m.buffered.get(), (PRODUCERS * per) as i64);
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Err(Refused::Closed));
    }
}
