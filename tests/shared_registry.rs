//! The shared registry in one process and across forked processes: the
//! same snapshot as the in-process registry, gauges per process with their
//! modes, SIGKILLed workers (gauges gone in live modes, counts kept),
//! churn of 1,000 workers with the registry's size and walk staying flat,
//! and workers SIGKILLed mid-registration (nothing wedged or duplicated).
#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::time::Duration;

use ringstat::stats::{
    AnonymousMemory, GaugeMode, HistogramConfig, MetricValue, RateConfig, Registry, SharedError,
    SharedOptions, SharedRegistry, StatsError,
};

fn small() -> SharedOptions {
    SharedOptions {
        max_processes: 16,
        max_entries: 64,
        data_bytes: 256 << 10,
        counter_shards: 4,
    }
}

fn open(opts: SharedOptions) -> (Arc<AnonymousMemory>, SharedRegistry) {
    let mem = Arc::new(AnonymousMemory::new(opts.bytes()).unwrap());
    let reg = SharedRegistry::open(Arc::clone(&mem), opts).unwrap();
    (mem, reg)
}

fn gauge_values(reg: &SharedRegistry, name: &str) -> Vec<(Vec<(String, String)>, i64)> {
    reg.snapshot()
        .metrics
        .into_iter()
        .filter(|m| m.name == name)
        .map(|m| match m.value {
            MetricValue::Gauge { value, .. } => (m.labels, value),
            other => panic!("{name} is {other:?}"),
        })
        .collect()
}

fn counter_value(reg: &SharedRegistry, name: &str) -> u64 {
    let s = reg.snapshot();
    let m = s.metrics.iter().find(|m| m.name == name).expect(name);
    match m.value {
        MetricValue::Counter(c) => c,
        ref other => panic!("{name} is {other:?}"),
    }
}

/// The same operations on a shared and an in-process registry give the same
/// exposition text (timestamps aside: the text has none).
#[test]
fn same_snapshot_as_the_in_process_registry() {
    let (_m, shared) = open(small());
    let local = Registry::new();
    let cfg = HistogramConfig {
        max: 1_000_000,
        significant_digits: 2,
    };
    for (name, labels) in [("logins", vec![("region", "eu")]), ("logins", vec![])] {
        let a = shared.counter(name, &labels).unwrap();
        let b = local.counter(name, &labels).unwrap();
        a.add(7);
        b.add(7);
    }
    let (a, b) = (
        shared.histogram("latency_us", &[], cfg).unwrap(),
        local.histogram("latency_us", &[], cfg).unwrap(),
    );
    for v in [1u64, 10, 100, 1000, 12_345] {
        a.record(v).unwrap();
        b.record(v).unwrap();
    }
    let (a, b) = (
        shared
            .histogram_with_unit("wait_seconds", &[], cfg, 1e-6)
            .unwrap(),
        local
            .histogram_with_unit("wait_seconds", &[], cfg, 1e-6)
            .unwrap(),
    );
    a.record_f64(0.25).unwrap();
    b.record_f64(0.25).unwrap();
    let g = shared.gauge("online", &[]).unwrap();
    let h = local.gauge("online", &[]).unwrap();
    g.add(3);
    h.add(3);
    shared.describe("logins", "Logins so far.").unwrap();
    local.describe("logins", "Logins so far.").unwrap();
    assert_eq!(
        shared.snapshot().to_prometheus(),
        local.snapshot().to_prometheus()
    );
}

/// Errors match the in-process registry's, and a full registry says so.
#[test]
fn errors_and_limits() {
    let (_m, reg) = open(small());
    reg.counter("x", &[]).unwrap();
    assert!(matches!(
        reg.gauge("x", &[]),
        Err(SharedError::Stats(StatsError::KindMismatch { .. }))
    ));
    assert!(matches!(
        reg.counter("bad name", &[]),
        Err(SharedError::Stats(StatsError::InvalidMetricName { .. }))
    ));
    assert!(matches!(
        reg.counter("y", &[("a", "1"), ("a", "2")]),
        Err(SharedError::Stats(StatsError::DuplicateLabel { .. }))
    ));
    let cfg = HistogramConfig {
        max: 100,
        significant_digits: 1,
    };
    reg.histogram("h", &[], cfg).unwrap();
    assert!(matches!(
        reg.histogram("h", &[], HistogramConfig { max: 200, ..cfg }),
        Err(SharedError::Stats(StatsError::ConfigMismatch { .. }))
    ));
    reg.gauge_with_mode("g", &[], GaugeMode::Max).unwrap();
    assert!(matches!(
        reg.gauge_with_mode("g", &[], GaugeMode::Sum),
        Err(SharedError::Stats(StatsError::ConfigMismatch { .. }))
    ));
    let long = "v".repeat(300);
    assert!(matches!(
        reg.counter("z", &[("k", &long)]),
        Err(SharedError::KeyTooLong { .. })
    ));
    // Fill the directory: a clear error, never a hang or a panic.
    let err = (0..100)
        .map(|i| reg.counter(&format!("c{i}"), &[]))
        .find_map(Result::err)
        .expect("64 entries run out");
    assert!(
        matches!(
            err,
            SharedError::Full {
                what: "directory entries",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("full"), "{err}");
}

/// Memory that holds something else, or is too small, is refused.
#[test]
fn foreign_or_small_memory_is_refused() {
    let opts = small();
    let mem = Arc::new(AnonymousMemory::new(opts.bytes()).unwrap());
    // SAFETY: a test writes the first byte of its own fresh mapping.
    unsafe { *mem.as_ref().as_ptr_for_test() = 0x42 };
    let err = SharedRegistry::open(Arc::clone(&mem), opts).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
    let tiny = AnonymousMemory::new(4096).unwrap();
    let err = SharedRegistry::open(tiny, opts).unwrap_err();
    assert!(err.to_string().contains("smaller"), "{err}");
}

trait PtrForTest {
    fn as_ptr_for_test(&self) -> *mut u8;
}

impl PtrForTest for AnonymousMemory {
    fn as_ptr_for_test(&self) -> *mut u8 {
        ringstat::stats::SharedMemory::as_ptr(self)
    }
}

/// Two registries over the same memory see each other's series and share
/// counts; the second gets the first's sizes.
#[test]
fn two_attachments_share_everything() {
    let (mem, a) = open(small());
    let b = SharedRegistry::open(Arc::clone(&mem), SharedOptions::default()).unwrap();
    a.counter("hits", &[]).unwrap().add(2);
    b.counter("hits", &[]).unwrap().add(3);
    assert_eq!(counter_value(&a, "hits"), 5);
    assert_eq!(counter_value(&b, "hits"), 5);
    let r = b
        .rate(
            "events",
            &[],
            RateConfig {
                window: Duration::from_secs(10),
                buckets: 10,
            },
        )
        .unwrap();
    r.add(4);
    let ra = a
        .rate(
            "events",
            &[],
            RateConfig {
                window: Duration::from_secs(10),
                buckets: 10,
            },
        )
        .unwrap();
    assert_eq!(ra.total(), 4);
    assert_eq!(ra.count_in_window(), 4);
    assert_eq!(a.usage(), b.usage());
}

/// Forks `n` children that each run `f`, then report through a pipe and
/// wait to be killed (`kill`) or exit 0 (`!kill`). Returns their pids
/// after all have reported.
fn fork_workers(n: usize, kill: bool, f: impl Fn(usize)) -> Vec<libc::pid_t> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for `pipe` to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let mut pids = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the child runs `f` (a panic caught) and then only
        // async-signal-safe calls (`write`, `pause`, `_exit`); `f` uses the registry, whose
        // memory is shared by design.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: `prctl` with these arguments only sets this process's
            // parent-death signal: a worker never outlives a failed test.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            // A panic in `f` reports "!" instead of leaving the parent
            // waiting for a byte that never comes.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_ok();
            let byte: &[u8; 1] = if ok { b"x" } else { b"!" };
            // SAFETY: writes one byte from a valid buffer to our pipe.
            unsafe {
                libc::write(fds[1], byte.as_ptr().cast(), 1);
                if !ok {
                    libc::_exit(101);
                }
                if kill {
                    loop {
                        libc::pause();
                    }
                }
                libc::_exit(0);
            }
        }
        pids.push(pid);
    }
    let mut buf = [0u8; 1];
    for _ in 0..n {
        // SAFETY: reads one byte into a valid buffer from our pipe.
        assert_eq!(unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 1) }, 1);
        assert_eq!(
            &buf, b"x",
            "a forked worker panicked (its message is above)"
        );
    }
    // SAFETY: closing the two descriptors `pipe` gave us.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    pids
}

fn kill_and_reap(pids: &[libc::pid_t], kill: bool) {
    for &pid in pids {
        let mut status = 0;
        // SAFETY: signalling and reaping our own children.
        unsafe {
            if kill {
                libc::kill(pid, libc::SIGKILL);
            }
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        }
    }
}

/// Workers in forked processes write; SIGKILLed workers' gauges vanish in
/// the live modes and stay (until their slot is reused) in the others;
/// their counts stay counted.
#[test]
fn killed_workers_gauges_vanish_counts_stay() {
    let (_m, reg) = open(small());
    let requests = reg.counter("requests", &[]).unwrap();
    for mode in GaugeMode::ALL {
        reg.gauge_with_mode(&format!("inflight_{mode}"), &[], mode)
            .unwrap();
    }
    let work = |i: usize| {
        for mode in GaugeMode::ALL {
            // In the child: its own slot.
            let g = reg
                .gauge_with_mode(&format!("inflight_{mode}"), &[], mode)
                .unwrap();
            g.set(10 + i as i64);
        }
        requests.add(100);
    };
    let survivors = fork_workers(2, true, work);
    let victims = fork_workers(3, true, |i| work(i + 2));
    assert_eq!(counter_value(&reg, "requests"), 500);
    // 10 + 11 + 12 + 13 + 14, the parent at 0.
    assert_eq!(gauge_values(&reg, "inflight_livesum")[0].1, 60);
    assert_eq!(gauge_values(&reg, "inflight_livemax")[0].1, 14);
    assert_eq!(gauge_values(&reg, "inflight_liveall").len(), 6);
    kill_and_reap(&victims, true);
    assert_eq!(counter_value(&reg, "requests"), 500);
    assert_eq!(gauge_values(&reg, "inflight_livesum")[0].1, 21);
    assert_eq!(gauge_values(&reg, "inflight_livemax")[0].1, 11);
    assert_eq!(gauge_values(&reg, "inflight_livemin")[0].1, 0);
    assert_eq!(gauge_values(&reg, "inflight_sum")[0].1, 60);
    assert_eq!(gauge_values(&reg, "inflight_max")[0].1, 14);
    let live = gauge_values(&reg, "inflight_liveall");
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live.iter().all(|(l, _)| l[0].0 == "pid"));
    assert_eq!(gauge_values(&reg, "inflight_all").len(), 6);
    // A new worker reuses a dead slot and starts at 0.
    let again = fork_workers(1, false, |_| {
        reg.gauge("inflight_livesum", &[]).unwrap();
        let g = reg
            .gauge_with_mode("inflight_sum", &[], GaugeMode::Sum)
            .unwrap();
        assert_eq!(g.get(), 0, "a reused slot starts at zero");
    });
    kill_and_reap(&again, false);
    kill_and_reap(&survivors, true);
    assert_eq!(gauge_values(&reg, "inflight_livesum")[0].1, 0);
    assert_eq!(counter_value(&reg, "requests"), 500);
    assert!(reg.usage().reclaimed_slots >= 1);
}

/// 1,000 workers start, register, write and are SIGKILLed, eight at a
/// time: the registry's size, the entries a snapshot walks and the slots
/// in use stay flat, and every count is kept.
#[test]
fn churn_of_1000_workers_stays_flat() {
    let opts = SharedOptions {
        max_processes: 32,
        ..small()
    };
    let (_m, reg) = open(opts);
    let hits = reg.counter("hits", &[]).unwrap();
    reg.gauge("busy", &[]).unwrap().set(1);
    let first = reg.usage();
    let mut peak_slots = 0;
    for round in 0..125 {
        let pids = fork_workers(8, true, |_| {
            reg.gauge("busy", &[]).unwrap().set(1);
            hits.inc();
        });
        let during = reg.usage();
        peak_slots = peak_slots.max(during.process_slots_used);
        kill_and_reap(&pids, true);
        let u = reg.usage();
        assert_eq!(u.bytes, first.bytes);
        assert_eq!(u.entries, first.entries);
        assert_eq!(u.entries_used, first.entries_used, "round {round}");
        assert_eq!(u.process_slots, first.process_slots);
        assert_eq!(u.data_used, first.data_used, "round {round}");
        assert_eq!(
            gauge_values(&reg, "busy"),
            vec![(vec![], 1)],
            "round {round}"
        );
    }
    // The parent and eight workers at a time, whatever the churn.
    assert!(peak_slots <= 9, "{peak_slots} slots used");
    assert_eq!(counter_value(&reg, "hits"), 1000);
    assert!(reg.usage().reclaimed_slots >= 990);
    assert_eq!(reg.snapshot().metrics.len(), 2);
}

/// Garbage written over a registry's words (directory, process table, data;
/// the header is checked once at attach) never makes a snapshot or a
/// registration panic or read out of bounds: bad entries are skipped or
/// refused with an error.
#[test]
fn corrupted_words_never_panic() {
    let opts = SharedOptions {
        max_processes: 4,
        max_entries: 16,
        data_bytes: 64 << 10,
        counter_shards: 2,
    };
    let cfg = HistogramConfig {
        max: 1000,
        significant_digits: 1,
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..1000 {
        let (mem, reg) = open(opts);
        reg.counter("c", &[("k", "v")]).unwrap().inc();
        reg.gauge("g", &[]).unwrap().set(3);
        reg.histogram("h", &[], cfg).unwrap().record(7).unwrap();
        reg.rate(
            "r",
            &[],
            RateConfig {
                window: Duration::from_secs(1),
                buckets: 4,
            },
        )
        .unwrap()
        .inc();
        let words = ringstat::stats::SharedMemory::len(mem.as_ref()) / 8;
        let base = ringstat::stats::SharedMemory::as_ptr(mem.as_ref()).cast::<u64>();
        // Past the 16-word header (and the first 128-byte line): anywhere in
        // the process table, directory and data, as many as a few dozen words.
        for _ in 0..(1 + next() % 40) {
            // Mostly the process table and the directory (words 16..848
            // with these sizes), where the offsets and lengths live.
            let span = if next() % 4 == 0 {
                (opts.bytes() / 8).min(words) - 16
            } else {
                16 * 4 + 48 * 16
            };
            let at = 16 + (next() as usize) % span;
            let value = match next() % 4 {
                0 => next(),
                1 => next() % 4096,
                2 => 1,
                _ => u64::MAX,
            };
            // SAFETY: `at` is inside the mapping, 8-aligned; a test writes
            // its own registry's memory from one thread (the registry only
            // reads it afterwards, through atomics of the same size).
            unsafe { base.add(at).write_volatile(value) };
        }
        let _ = reg.snapshot().to_prometheus();
        let _ = reg.counter("c", &[("k", "v")]).map(|c| c.inc());
        let _ = reg.gauge("g2", &[]).map(|g| g.set(1));
        let _ = reg.histogram("h", &[], cfg).map(|h| h.record(1));
        let _ = reg.usage();
        let again = SharedRegistry::open(Arc::clone(&mem), opts);
        assert!(again.is_ok(), "round {round}: the header was not touched");
    }
}

/// The metric of name index `j` (its kind follows `j`, the same in every
/// process).
fn register_nth(reg: &SharedRegistry, name: &str, j: usize) -> Result<(), SharedError> {
    match j % 3 {
        0 => reg
            .histogram(
                name,
                &[],
                HistogramConfig {
                    max: 1000,
                    significant_digits: 2,
                },
            )
            .map(|_| ()),
        1 => reg.counter(name, &[("k", "v")]).map(|_| ()),
        _ => reg.gauge(name, &[]).map(|_| ()),
    }
}

/// Names registered in round `round`: `SHARED` that every child of the
/// round races for, and `UNIQUE` of each child's own.
const SHARED: usize = 30;
const UNIQUE: usize = 60;

fn round_names(round: usize, children: usize) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = (0..SHARED).map(|j| (format!("s{round}_{j}"), j)).collect();
    for c in 0..children {
        v.extend((0..UNIQUE).map(|j| (format!("u{round}_{c}_{j}"), j)));
    }
    v
}

/// Processes SIGKILLed at random points while they register new metrics
/// (many names, several processes racing for the same ones), 100 times:
/// then surviving processes register every name and write, concurrently;
/// nothing is wedged (every registration returns), each name is in the
/// snapshot once, counts are exact, and the dead claims taken over are
/// counted in `reclaimed_entries`.
#[test]
fn killed_mid_registration_never_wedges() {
    let (rounds, children) = (25usize, 4usize);
    let opts = SharedOptions {
        max_processes: 32,
        // A metric takes up to 5 entries (family, series, ...), and room to
        // spare: a nearly full directory is slow to probe.
        max_entries: 6 * rounds * (SHARED + children * UNIQUE),
        data_bytes: 16 << 20,
        counter_shards: 4,
    };
    let (_m, reg) = open(opts);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut rand = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut all = Vec::new();
    for round in 0..rounds {
        let names = round_names(round, children);
        let mut pids = Vec::new();
        for c in 0..children {
            // SAFETY: the child only registers metrics in the shared memory
            // (by design shared) and then sleeps until it is killed.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                // SAFETY: sets this process's parent-death signal.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                // The shared names from a different start in each child,
                // interleaved with its own.
                for k in 0..SHARED.max(UNIQUE) {
                    if k < SHARED {
                        let (n, j) = &names[(k + c * 11) % SHARED];
                        let _ = register_nth(&reg, n, *j);
                    }
                    if k < UNIQUE {
                        let (n, j) = &names[SHARED + c * UNIQUE + k];
                        let _ = register_nth(&reg, n, *j);
                    }
                }
                loop {
                    // SAFETY: waits for the SIGKILL.
                    unsafe { libc::pause() };
                }
            }
            pids.push(pid);
        }
        std::thread::sleep(Duration::from_micros(rand(1_000)));
        kill_and_reap(&pids, true);
        all.extend(names);
    }
    let before = reg.usage();
    // Survivors: every name, concurrently, each counted.
    let survivors = 3;
    let done = reg.counter("survivor_registrations", &[]).unwrap();
    let failed = reg.counter("survivor_failures", &[]).unwrap();
    let pids = fork_workers(survivors, false, |_| {
        // No panic in a forked child: a failure is counted for the parent.
        for (n, j) in &all {
            match register_nth(&reg, n, *j) {
                Ok(()) => done.inc(),
                Err(_) => failed.inc(),
            }
        }
    });
    kill_and_reap(&pids, false);
    assert_eq!(counter_value(&reg, "survivor_failures"), 0);
    for (n, j) in &all {
        register_nth(&reg, n, *j).unwrap();
    }
    assert_eq!(
        counter_value(&reg, "survivor_registrations"),
        (survivors * all.len()) as u64
    );
    let snap = reg.snapshot();
    let mut seen = std::collections::HashSet::new();
    for m in &snap.metrics {
        assert!(seen.insert(m.name.clone()), "{} twice", m.name);
    }
    assert_eq!(snap.metrics.len(), all.len() + 2);
    let after = reg.usage();
    // Entries in use: what the same registrations take without kills, plus
    // dead claims that no probe passed (never a duplicate).
    let (_m2, clean) = open(opts);
    clean.counter("survivor_registrations", &[]).unwrap();
    clean.counter("survivor_failures", &[]).unwrap();
    for (n, j) in &all {
        register_nth(&clean, n, *j).unwrap();
    }
    let dead_left = after.entries_used - clean.usage().entries_used;
    assert!(dead_left <= rounds * children, "{dead_left} claims left");
    assert!(after.reclaimed_entries >= before.reclaimed_entries);
    eprintln!(
        "registration kill test: {} kills, {} names, {} dead claims reclaimed ({} before the \
         survivors), {dead_left} left unvisited",
        rounds * children,
        all.len(),
        after.reclaimed_entries,
        before.reclaimed_entries
    );
}
