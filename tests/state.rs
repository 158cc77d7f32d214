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
            prop_assert!(decode_state(&bytes[..cut]).is_err());
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
