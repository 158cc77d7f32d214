//! Registry states (`stats::state`, `wire::state`): restore gives the same
//! snapshot, merge equals one registry that saw every event, merge order,
//! config mismatches refused, and decoding arbitrary or damaged bytes never
//! panics.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use ringstat::stats::{
    HistogramConfig, ManualClock, MetricSnapshot, MetricValue, RateConfig, Registry, RegistryState,
    StatsError, ValueState,
};
use ringstat::wire::{decode_state, encode_state, StateError, STATE_VERSION};

const H: HistogramConfig = HistogramConfig {
    max: 100_000,
    significant_digits: 2,
};
const RATE: RateConfig = RateConfig {
    window: Duration::from_secs(10),
    buckets: 10,
};

/// One thing a registry sees.
#[derive(Debug, Clone)]
enum Ev {
    Count(u8, u64),
    GaugeAdd(i64),
    Record(u64),
    RecordSeconds(u32),
    Mark(u64),
    Tick(u64),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (0u8..3, 0u64..1000).prop_map(|(l, n)| Ev::Count(l, n)),
        (-50i64..50).prop_map(Ev::GaugeAdd),
        (0u64..200_000).prop_map(Ev::Record),
        (0u32..5_000).prop_map(Ev::RecordSeconds),
        (1u64..20).prop_map(Ev::Mark),
        (0u64..4_000).prop_map(Ev::Tick),
    ]
}

/// A registry on `clock` with every metric the events touch created now,
/// help and classic buckets set.
fn registry(clock: &Arc<ManualClock>) -> Registry {
    let r = Registry::with_clock(clock.clone());
    r.describe("logins", "Logins.").unwrap();
    r.set_buckets("online_ms", &[10.0, 1000.0]).unwrap();
    for l in ["eu", "us", "ap"] {
        r.counter("logins", &[("region", l)]).unwrap();
    }
    r.gauge("online", &[]).unwrap();
    r.histogram("online_ms", &[], H).unwrap();
    r.histogram_with_unit("latency_seconds", &[], H, 1e-3)
        .unwrap();
    r.rate("login_rate", &[], RATE).unwrap();
    r
}

/// Applies `e` to `r`; `Tick` advances the shared clock only when `tick`.
fn apply(r: &Registry, clock: &ManualClock, e: &Ev, tick: bool) {
    match *e {
        Ev::Count(l, n) => r
            .counter("logins", &[("region", ["eu", "us", "ap"][l as usize])])
            .unwrap()
            .add(n),
        Ev::GaugeAdd(d) => {
            r.gauge("online", &[]).unwrap().add(d);
        }
        Ev::Record(v) => {
            let _ = r.histogram("online_ms", &[], H).unwrap().record(v);
        }
        Ev::RecordSeconds(ms) => {
            let h = r
                .histogram_with_unit("latency_seconds", &[], H, 1e-3)
                .unwrap();
            h.record_f64(f64::from(ms) / 1000.0).unwrap();
        }
        Ev::Mark(n) => r.rate("login_rate", &[], RATE).unwrap().add(n),
        Ev::Tick(ms) => {
            if tick {
                clock.advance(Duration::from_millis(ms));
            }
        }
    }
}

fn metrics(r: &Registry) -> Vec<MetricSnapshot> {
    r.snapshot().metrics
}

/// The snapshot with gauge min and max blanked (order-dependent on merge).
fn without_gauge_extremes(r: &Registry) -> Vec<MetricSnapshot> {
    let mut m = metrics(r);
    for s in &mut m {
        if let MetricValue::Gauge { min, max, .. } = &mut s.value {
            *min = 0;
            *max = 0;
        }
    }
    m
}

fn round_trip(r: &Registry) -> RegistryState {
    let bytes = encode_state(&r.export_state());
    decode_state(&bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn restore_equals_original(
        events in prop::collection::vec(ev(), 0..120),
        reset_at in any::<prop::sample::Index>(),
    ) {
        let clock = Arc::new(ManualClock::new());
        let a = registry(&clock);
        let reset_at = reset_at.index(events.len() + 1);
        for (i, e) in events.iter().enumerate() {
            if i == reset_at {
                // Gauge extremes that no longer include 0.
                a.gauge("online", &[]).unwrap().reset_min_max();
            }
            apply(&a, &clock, e, true);
        }
        let state = round_trip(&a);
        prop_assert_eq!(&state, &a.export_state());
        let b = Registry::with_clock(clock.clone());
        b.merge_state(&state).unwrap();
        prop_assert_eq!(metrics(&b), metrics(&a));
        prop_assert_eq!(b.export_state(), a.export_state());
    }

    #[test]
    fn merge_equals_one_registry(
        events in prop::collection::vec((any::<bool>(), ev()), 0..160),
    ) {
        let clock = Arc::new(ManualClock::new());
        let (a, b, all) = (registry(&clock), registry(&clock), registry(&clock));
        for (left, e) in &events {
            apply(if *left { &a } else { &b }, &clock, e, false);
            apply(&all, &clock, e, true);
        }
        let merged = Registry::with_clock(clock.clone());
        merged.merge_state(&round_trip(&a)).unwrap();
        merged.merge_state(&round_trip(&b)).unwrap();
        prop_assert_eq!(without_gauge_extremes(&merged), without_gauge_extremes(&all));
    }

    #[test]
    fn merge_commutes_and_associates(
        events in prop::collection::vec((0u8..3, ev()), 0..160),
    ) {
        let clock = Arc::new(ManualClock::new());
        let parts = [registry(&clock), registry(&clock), registry(&clock)];
        for (i, e) in &events {
            apply(&parts[*i as usize], &clock, e, true);
        }
        let [x, y, z] = parts.map(|p| p.export_state());
        let merge = |states: &[&RegistryState]| {
            let m = Registry::with_clock(clock.clone());
            for s in states {
                m.merge_state(s).unwrap();
            }
            m
        };
        // Commutative, gauge extremes included.
        prop_assert_eq!(metrics(&merge(&[&x, &y])), metrics(&merge(&[&y, &x])));
        // Associative, but for gauge extremes.
        let yz = merge(&[&y, &z]).export_state();
        prop_assert_eq!(
            without_gauge_extremes(&merge(&[&merge(&[&x, &y]).export_state(), &z])),
            without_gauge_extremes(&merge(&[&x, &yz]))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut b = b"RSRS\x01\x00".to_vec();
        b.extend_from_slice(&bytes);
        for input in [&bytes[..], &b[..]] {
            if let Ok(s) = decode_state(input) {
                let _ = Registry::new().merge_state(&s);
            }
        }
    }

    #[test]
    fn damaged_states_never_panic(
        events in prop::collection::vec(ev(), 0..60),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let clock = Arc::new(ManualClock::new());
        let a = registry(&clock);
        for e in &events {
            apply(&a, &clock, e, true);
        }
        let bytes = encode_state(&a.export_state());
        // Every truncation is refused.
        for cut in 0..bytes.len() {
            let e = decode_state(&bytes[..cut]).unwrap_err().to_string();
            // Its words are about a state, never a frame.
            prop_assert!(!e.contains("frame"), "{}", e);
        }
        // One flipped byte: refused, or a state that merges or is refused.
        let mut bad = bytes.clone();
        let i = at.index(bad.len());
        bad[i] ^= xor;
        if let Ok(s) = decode_state(&bad) {
            let _ = Registry::with_clock(clock.clone()).merge_state(&s);
        }
    }
}

#[test]
fn header_and_refusals() {
    let reg = Registry::new();
    reg.counter("c", &[]).unwrap().inc();
    let bytes = encode_state(&reg.export_state());
    assert_eq!(&bytes[..4], b"RSRS");
    assert_eq!(bytes[4], STATE_VERSION);
    assert!(matches!(
        decode_state(b"RSEF\x01\x00"),
        Err(StateError::Foreign { .. })
    ));
    let mut v = bytes.clone();
    v[4] = 2;
    assert_eq!(
        decode_state(&v),
        Err(StateError::UnsupportedVersion { found: 2 })
    );
    let mut f = bytes.clone();
    f[5] = 1;
    assert_eq!(decode_state(&f), Err(StateError::UnknownFlags { found: 1 }));
    let mut t = bytes.clone();
    t.push(0);
    assert!(matches!(decode_state(&t), Err(StateError::Invalid { .. })));
    // A count that claims more than the bytes left is refused before any
    // allocation.
    let huge = b"RSRS\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\x7f".to_vec();
    assert!(matches!(decode_state(&huge), Err(StateError::Malformed(_))));
}

#[test]
fn config_mismatches_are_errors_and_change_nothing() {
    let a = Registry::new();
    a.counter("logins", &[]).unwrap().add(2);
    a.histogram("t", &[], H).unwrap().record(5).unwrap();
    let b = Registry::new();
    b.counter("logins", &[]).unwrap().add(1);
    b.histogram(
        "t",
        &[],
        HistogramConfig {
            significant_digits: 3,
            ..H
        },
    )
    .unwrap();
    let before = b.export_state();
    let err = b.merge_state(&a.export_state()).unwrap_err();
    assert!(matches!(err, StatsError::ConfigMismatch { .. }), "{err}");
    assert_eq!(b.export_state(), before, "nothing merged");

    // Another rate window.
    let c = Registry::new();
    c.rate("r", &[], RATE).unwrap();
    let d = Registry::new();
    d.rate(
        "r",
        &[],
        RateConfig {
            window: Duration::from_secs(60),
            buckets: 60,
        },
    )
    .unwrap();
    assert!(matches!(
        d.merge_state(&c.export_state()),
        Err(StatsError::ConfigMismatch { .. })
    ));
    // Another kind under the name.
    let e = Registry::new();
    e.gauge("logins", &[]).unwrap();
    assert!(matches!(
        e.merge_state(&a.export_state()),
        Err(StatsError::KindMismatch { .. })
    ));
    // Another unit.
    let u = Registry::new();
    u.histogram_with_unit("t", &[], H, 1e-3).unwrap();
    assert!(matches!(
        u.merge_state(&a.export_state()),
        Err(StatsError::ConfigMismatch { .. })
    ));
}

#[test]
fn bad_states_are_errors() {
    let a = Registry::new();
    a.histogram("t", &[], H).unwrap().record(5).unwrap();
    let mut s = a.export_state();
    if let ValueState::Histogram { counts, .. } = &mut s.series[0].value {
        counts.push((1 << 40, 1));
    }
    assert!(matches!(
        Registry::new().merge_state(&s),
        Err(StatsError::InvalidState { .. })
    ));
    s.series[0].name = "bad name".into();
    assert!(Registry::new().merge_state(&s).is_err());

    // Conflicts within one state are found before anything changes.
    let two = |value: ValueState| RegistryState {
        series: vec![
            ringstat::stats::SeriesState {
                name: "x".into(),
                labels: vec![],
                value: ValueState::Counter(1),
            },
            ringstat::stats::SeriesState {
                name: "x".into(),
                labels: vec![],
                value,
            },
        ],
        ..RegistryState::default()
    };
    let target = Registry::new();
    let kinds = two(ValueState::Gauge {
        value: 1,
        min: 0,
        max: 1,
    });
    assert!(matches!(
        target.merge_state(&kinds),
        Err(StatsError::KindMismatch { .. })
    ));
    assert!(target.is_empty(), "nothing created");
}

#[test]
fn rate_window_restores_by_age() {
    let clock = Arc::new(ManualClock::new());
    let a = Registry::with_clock(clock.clone());
    let r = a.rate("r", &[], RATE).unwrap();
    r.add(5);
    clock.advance(Duration::from_secs(3));
    r.add(7);
    let state = a.export_state();
    // Restored on a clock far ahead: the buckets keep their ages.
    let later = Arc::new(ManualClock::new());
    later.advance(Duration::from_secs(1_000));
    let b = Registry::with_clock(later.clone());
    b.merge_state(&state).unwrap();
    let rb = b.rate("r", &[], RATE).unwrap();
    assert_eq!((rb.total(), rb.count_in_window()), (12, 12));
    later.advance(Duration::from_secs(7));
    assert_eq!(rb.count_in_window(), 7, "the older bucket left the window");
    assert_eq!(rb.total(), 12);
}

// ----- pipeline states: distinct sketches and open sessions --------------------

use ringstat::pipeline::{Event, Pipeline};
use ringstat::wire::{decode_pipeline_state, encode_pipeline_state};

/// The user-activity workload for users `users`: a login count, a session
/// start, a `seen`; every third user logs out again.
fn activity(p: &Pipeline, users: std::ops::Range<u64>) {
    let logins = p.counter("logins").unwrap();
    let online = p.sessions("online").unwrap();
    let seen = p.distinct("users").unwrap();
    for u in users {
        p.send(Event::count(logins)).unwrap();
        p.send(Event::start(online, u).at(1_000_000_000 + u * 1_000_000))
            .unwrap();
        p.send(Event::seen(seen, u % 5_000)).unwrap();
        if u % 3 == 0 {
            p.send(Event::end(online, u).at(2_000_000_000 + u * 7_000_000))
                .unwrap();
        }
    }
}

/// Every user still open logs out.
fn logout_all(p: &Pipeline, users: std::ops::Range<u64>) {
    let online = p.sessions("online").unwrap();
    for u in users.filter(|u| u % 3 != 0) {
        p.send(Event::end(online, u).at(90_000_000_000 + u * 3_000_000))
            .unwrap();
    }
    p.flush();
}

/// The statistics that matter, without the pipeline's own metrics (they
/// count the pipeline's work, not the events), the window gauge, and gauge
/// extremes (they depend on how the workers interleave, restored or not).
fn stats_of(reg: &Registry) -> Vec<MetricSnapshot> {
    without_gauge_extremes(reg)
        .into_iter()
        .filter(|m| !m.name.starts_with("ringstat_pipeline") && !m.name.ends_with("_window"))
        .collect()
}

fn pipeline(workers: usize) -> (Registry, Pipeline) {
    let reg = Registry::new();
    let p = Pipeline::builder(&reg).workers(workers).build().unwrap();
    (reg, p)
}

#[test]
fn pipeline_restore_continues_exactly() {
    // One pipeline sees everything; another is restored from a checkpoint
    // of a third half-way (other worker counts: routing differs).
    let (reg_all, all) = pipeline(2);
    activity(&all, 0..3_000);
    logout_all(&all, 0..3_000);

    let (_, first) = pipeline(3);
    activity(&first, 0..3_000);
    let bytes = encode_pipeline_state(&first.export_state().unwrap());
    first.close();
    let state = decode_pipeline_state(&bytes).unwrap();
    assert_eq!(state.sessions[0].open.len(), 2_000);
    let (reg_back, back) = pipeline(2);
    back.merge_state(&state).unwrap();
    logout_all(&back, 0..3_000);

    assert_eq!(stats_of(&reg_back), stats_of(&reg_all));
    let anomalies = reg_back
        .counter("online_anomalies_total", &[("kind", "end_without_start")])
        .unwrap();
    assert_eq!(anomalies.get(), 0);
    let (u1, u2) = (
        all.distinct("users").unwrap(),
        back.distinct("users").unwrap(),
    );
    assert_eq!(all.distinct_count(u1), back.distinct_count(u2));
}

#[test]
fn pipelines_merge_into_exact_distinct_counts() {
    // Two machines with overlapping users, merged into an aggregator: the
    // same sketch registers, so the same estimate, as one pipeline.
    let (_, a) = pipeline(2);
    let (_, b) = pipeline(1);
    let (_, one) = pipeline(2);
    activity(&a, 0..2_000);
    activity(&b, 1_000..4_000);
    let seen = one.distinct("users").unwrap();
    for u in (0..2_000).chain(1_000..4_000) {
        one.send(Event::seen(seen, u % 5_000)).unwrap();
    }
    one.flush();
    let (reg_m, m) = pipeline(2);
    m.merge_state(&a.export_state().unwrap()).unwrap();
    m.merge_state(&b.export_state().unwrap()).unwrap();
    let dm = m.distinct("users").unwrap();
    assert_eq!(m.distinct_count(dm), one.distinct_count(seen));
    assert_eq!(reg_m.counter("logins", &[]).unwrap().get(), 2_000 + 3_000);
    // The open sessions were united (user 1000..2000 open on both keep one).
    let st = m.export_state().unwrap();
    let open = &st.sessions[0].open;
    assert!(open.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn pipeline_state_mismatches_and_bad_bytes() {
    let (_, a) = pipeline(1);
    a.distinct("users").unwrap();
    let state = a.export_state().unwrap();
    let reg = Registry::new();
    let b = Pipeline::builder(&reg).build().unwrap();
    b.distinct_with(
        "users",
        ringstat::pipeline::DistinctConfig {
            precision: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(b.merge_state(&state).is_err());
    let bytes = encode_pipeline_state(&state);
    for cut in 0..bytes.len() {
        assert!(decode_pipeline_state(&bytes[..cut]).is_err());
    }
    assert!(decode_state(&bytes).is_err(), "not a registry state");
    a.close();
    assert!(a.export_state().is_err(), "closed: the workers are gone");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn damaged_pipeline_states_never_panic(
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let (_, a) = pipeline(1);
        activity(&a, 0..20);
        let mut bytes = encode_pipeline_state(&a.export_state().unwrap());
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        let (_, b) = pipeline(1);
        if let Ok(s) = decode_pipeline_state(&bytes) {
            let _ = b.merge_state(&s);
        }
        let mut junk = b"RSPS\x01\x00".to_vec();
        junk.extend_from_slice(&tail);
        if let Ok(s) = decode_pipeline_state(&junk) {
            let _ = b.merge_state(&s);
        }
    }
}

#[test]
fn retired_states_keep_counts_and_drop_now() {
    // A gone instance: its counts stay; its gauges, rate windows and open
    // sessions leave the merged view.
    let (reg_a, a) = pipeline(2);
    activity(&a, 0..3_000);
    a.flush();
    reg_a.gauge("queue_depth", &[]).unwrap().set(7);
    reg_a.rate("login_rate", &[], RATE).unwrap().add(5);
    let mut st = a.export_state().unwrap();
    st.retire();
    assert!(st.sessions.iter().all(|s| s.open.is_empty()));
    let (reg_m, m) = pipeline(1);
    m.merge_state(&st).unwrap();
    m.flush();
    assert_eq!(reg_m.counter("logins", &[]).unwrap().get(), 3_000);
    assert_eq!(reg_m.gauge("queue_depth", &[]).unwrap().get(), 0);
    let r = reg_m.rate("login_rate", &[], RATE).unwrap();
    assert_eq!((r.total(), r.count_in_window()), (5, 0));
    assert_eq!(m.export_state().unwrap().sessions[0].open.len(), 0);
    assert_eq!(reg_m.gauge("online_open", &[]).unwrap().get(), 0);
    let d = m.distinct("users").unwrap();
    assert_eq!(
        m.distinct_count(d),
        a.distinct_count(a.distinct("users").unwrap())
    );
    // Ended sessions' durations stay in the histogram.
    let ended = |reg: &Registry| {
        reg.snapshot()
            .metrics
            .into_iter()
            .find(|s| s.name == "online_duration_ms")
            .map(|s| match s.value {
                MetricValue::Histogram { count, .. } => count,
                _ => 0,
            })
    };
    assert_eq!(ended(&reg_m), ended(&reg_a));
    assert_eq!(ended(&reg_m), Some(1_000));
}
