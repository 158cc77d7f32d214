"""Registry states from Python: export, restore (same snapshot), merge across
"machines" (exact p99), mismatches and bad bytes refused with clear errors,
the GIL released."""

from __future__ import annotations

import contextlib
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringstat
from ringstat import ManualClock, Registry, StateError


def metrics(reg: Registry) -> object:
    return reg.snapshot()["metrics"]


def machine(clock: ManualClock, seed: int, n: int) -> tuple[Registry, list[int]]:
    """One machine's registry after `n` logins, sessions and marks."""
    rng = random.Random(seed)
    reg = Registry(clock=clock)
    logins = reg.counter("logins", {"region": "eu"}, help="Logins.")
    online = reg.gauge("online")
    durations = reg.histogram("online_ms", max_value=86_400_000, significant_digits=3)
    latency = reg.histogram("latency_seconds", max_value=60.0, significant_digits=2, unit=1e-6)
    rate = reg.rate("login_rate", window=10.0, buckets=10)
    seen = []
    for _ in range(n):
        logins.inc()
        online.add(1)
        ms = rng.randrange(1, 3_600_000)
        seen.append(ms)
        durations.record(ms)
        latency.record(rng.random())
        rate.inc()
    online.sub(n // 3)
    return reg, seen


def test_restore_equals_original() -> None:
    clock = ManualClock()
    reg, _ = machine(clock, 1, 500)
    data = reg.export_state()
    assert isinstance(data, bytes)
    assert data[:4] == b"RSRS"
    assert data[4] == ringstat.STATE_VERSION
    back = Registry.from_state(data, clock=clock)
    assert metrics(back) == metrics(reg)
    assert back.to_prometheus() == reg.to_prometheus()
    assert back.export_state() == data


def test_two_machines_merge_exactly() -> None:
    """The notebook use: two machines' registries merged into one whose
    counts and percentiles equal those of one registry that saw every event."""
    clock = ManualClock()
    a, seen_a = machine(clock, 2, 700)
    b, seen_b = machine(clock, 3, 900)
    everything = Registry(clock=clock)
    for data in (a.export_state(), b.export_state()):
        everything.merge_state(data)
    one = Registry(clock=clock)
    h = one.histogram("online_ms", max_value=86_400_000, significant_digits=3)
    for ms in seen_a + seen_b:
        h.record(ms)
    merged = everything.histogram("online_ms", max_value=86_400_000, significant_digits=3)
    # Exact: the same buckets, so the same p50/p99/p99.9 as one histogram.
    for p in (50, 99, 99.9):
        assert merged.percentile(p) == h.percentile(p)
    assert (merged.count, merged.min, merged.max) == (1600, h.min, h.max)
    assert everything.counter("logins", {"region": "eu"}).value == 1600
    assert everything.gauge("online").value == (700 - 233) + (900 - 300)
    rate = everything.rate("login_rate", window=10.0, buckets=10)
    assert (rate.total, rate.count_in_window) == (1600, 1600)
    # Order does not matter.
    other = Registry(clock=clock)
    other.merge_state(b.export_state())
    other.merge_state(a.export_state())
    assert metrics(other) == metrics(everything)


def test_mismatches_are_value_errors_and_change_nothing() -> None:
    a = Registry()
    a.counter("logins").inc(2)
    a.histogram("t", max_value=1000, significant_digits=2).record(5)
    b = Registry()
    b.counter("logins").inc()
    b.histogram("t", max_value=1000, significant_digits=3)
    before = b.export_state()
    with pytest.raises(ValueError, match="t"):
        b.merge_state(a.export_state())
    assert b.export_state() == before
    c = Registry()
    c.rate("r", window=60.0, buckets=60)
    d = Registry()
    d.rate("r", window=10.0, buckets=10)
    with pytest.raises(ValueError, match="r"):
        c.merge_state(d.export_state())
    g = Registry()
    g.gauge("logins")
    with pytest.raises(ValueError, match="logins"):
        g.merge_state(a.export_state())
    full = Registry(max_series=1)
    full.counter("x")
    with pytest.raises(ringstat.SeriesLimitError):
        full.merge_state(a.export_state())


def test_bad_bytes_raise_state_error() -> None:
    reg = Registry()
    reg.counter("c").inc()
    data = reg.export_state()
    for bad in (b"", b"RSEF", data[:-1], data + b"\x00", b"RSRS\x09\x00"):
        with pytest.raises(StateError):
            reg.merge_state(bad)
    assert issubclass(StateError, ValueError)
    with pytest.raises(TypeError):
        reg.merge_state("not bytes")  # type: ignore[arg-type]
    with pytest.raises(StateError):
        Registry.from_state(b"junk")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        Registry().merge_state(b"RSRS\x01\x00" + data)
    with contextlib.suppress(ValueError):
        Registry().merge_state(data)


@given(st.integers(0, 10**6), st.data())
def test_damaged_state_never_crashes(seed: int, data: st.DataObject) -> None:
    reg, _ = machine(ManualClock(), seed, 20)
    raw = bytearray(reg.export_state())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(ValueError):
        Registry().merge_state(bytes(raw))


def test_gil_released_during_export_and_merge() -> None:
    """Another Python thread keeps running while a large state is exported
    and merged (no timing: it only has to make progress at all)."""
    reg = Registry()
    for i in range(300):
        reg.histogram(f"h{i}", max_value=10**9, significant_digits=3).record(i + 1)
    stop = threading.Event()
    ticks = [0]

    def spin() -> None:
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        target = Registry()
        for _ in range(5):
            target.merge_state(reg.export_state())
    finally:
        stop.set()
        t.join()
    assert ticks[0] > 0
    assert target.histogram("h7", max_value=10**9, significant_digits=3).count == 5


# ----- pipelines: distinct sketches and open sessions --------------------------


def activity(p: ringstat.Pipeline, users: range, device: int = 0) -> None:
    """The user-activity workload: login, session start (one session per
    user and device), seen; every third user logs out again."""
    for u in users:
        p.count("logins")
        p.session_start("online", device * 1_000_000 + u, ts=1.0 + u / 1000)
        p.seen("users", f"user-{u % 5000}")
        if u % 3 == 0:
            p.session_end("online", device * 1_000_000 + u, ts=2.0 + u * 0.007)


def logout_all(p: ringstat.Pipeline, users: range, device: int = 0) -> None:
    for u in users:
        if u % 3 != 0:
            p.session_end("online", device * 1_000_000 + u, ts=90.0 + u * 0.003)
    p.flush()


def test_two_pipelines_merge_exact_distinct_and_p99() -> None:
    """The notebook use: two machines run the workload on overlapping users;
    an aggregator merges their states: the distinct count is the one a single
    pipeline gives for every key (same sketch registers), the p99 session
    time is exact (same buckets)."""
    one = ringstat.Pipeline()
    machines = [ringstat.Pipeline(), ringstat.Pipeline(workers=1)]
    spans = [range(2000), range(1000, 4000)]
    # The users on machine 1 and 2 overlap (distinct counts them once); each
    # machine has its own device sessions.
    for device, (p, users) in enumerate(zip(machines, spans)):
        activity(p, users, device)
        activity(one, users, device)
    for device, (p, users) in enumerate(zip(machines, spans)):
        logout_all(p, users, device)
        logout_all(one, users, device)
    agg = ringstat.Pipeline()
    for p in machines:
        agg.merge_state(p.export_state())
    assert agg.distinct_count("users") == one.distinct_count("users")
    reg, ref = agg.registry, one.registry
    h = reg.histogram("online_duration_ms", max_value=30 * 24 * 3600 * 1000, significant_digits=2)
    h1 = ref.histogram("online_duration_ms", max_value=30 * 24 * 3600 * 1000, significant_digits=2)
    assert h.count == h1.count == 5000
    for q in (50, 99, 99.9):
        assert h.percentile(q) == h1.percentile(q)
    assert reg.counter("logins").value == 5000
    for p in [*machines, one, agg]:
        p.close()


def test_retired_merge_keeps_counts_and_drops_now() -> None:
    """A state merged as retired (an instance that is gone): counters,
    histograms, rate totals and distinct counts stay; gauges, rate windows
    and open sessions go."""
    clock = ManualClock()
    reg, _ = machine(clock, 3, 300)
    view = Registry(clock=clock)
    view.merge_state(reg.export_state(), retired=True)
    assert view.counter("logins", {"region": "eu"}).value == 300
    assert view.gauge("online").value == 0
    rate = view.rate("login_rate", window=10.0, buckets=10)
    assert (rate.total, rate.count_in_window) == (300, 0)
    h = view.histogram("online_ms", max_value=86_400_000, significant_digits=3)
    assert h.count == 300
    p = ringstat.Pipeline(workers=1)
    for u in range(100):
        p.session_start("online", u, ts=1.0)
        p.seen("users", u)
        if u % 2:
            p.session_end("online", u, ts=3.0)
    p.flush()
    agg = ringstat.Pipeline(workers=1)
    agg.merge_state(p.export_state(), retired=True)
    assert agg.distinct_count("users") == p.distinct_count("users")
    assert agg.registry.gauge("online_open").value == 0
    assert agg.registry.counter("online_completed_total").value == 50
    with pytest.raises(TypeError):
        agg.merge_state(p.export_state(), True)  # type: ignore[call-arg]
    p.close()
    agg.close()


def test_pipeline_checkpoint_and_resume() -> None:
    """Restore from a mid-stream state into a fresh pipeline and go on: the
    final statistics equal an uninterrupted run (sessions opened before the
    checkpoint end after it without anomalies)."""
    ref = ringstat.Pipeline()
    activity(ref, range(3000))
    logout_all(ref, range(3000))
    first = ringstat.Pipeline(workers=3)
    activity(first, range(3000))
    data = first.export_state()
    first.close()
    with pytest.raises(ringstat.PipelineClosed):
        first.export_state()
    back = ringstat.Pipeline()
    back.merge_state(data)
    logout_all(back, range(3000))
    reg, ref_reg = back.registry, ref.registry
    for name in ("logins", "online_started_total", "online_completed_total"):
        assert reg.counter(name).value == ref_reg.counter(name).value
    bad = reg.counter("online_anomalies_total", {"kind": "end_without_start"})
    assert bad.value == 0
    assert reg.gauge("online_open").value == 0
    assert back.distinct_count("users") == ref.distinct_count("users")
    with pytest.raises(StateError):
        back.merge_state(reg.export_state())  # a registry state, not a pipeline's
    back.close()
    ref.close()


@given(
    st.lists(st.integers(0, 10**6), max_size=50),
    st.lists(st.integers(-1000, 1000), max_size=20),
    st.lists(st.integers(0, 100), max_size=20),
)
def test_restore_property(values: list[int], deltas: list[int], marks: list[int]) -> None:
    """Any mix of records, gauge moves and rate marks restores to the same
    snapshot; merged twice, counts double."""
    clock = ManualClock()
    reg = Registry(clock=clock)
    h = reg.histogram("h", max_value=10**6, significant_digits=2)
    g = reg.gauge("g")
    r = reg.rate("r", window=5.0, buckets=5)
    for v in values:
        h.record(v)
    for d in deltas:
        g.add(d)
    for i, m in enumerate(marks):
        r.add(m)
        if i % 4 == 3:
            clock.advance(1.0)
    data = reg.export_state()
    assert metrics(Registry.from_state(data, clock=clock)) == metrics(reg)
    twice = Registry(clock=clock)
    twice.merge_state(data)
    twice.merge_state(data)
    h2 = twice.histogram("h", max_value=10**6, significant_digits=2)
    assert h2.count == 2 * h.count
    assert h2.percentile(99) == h.percentile(99)
    assert twice.rate("r", window=5.0, buckets=5).total == 2 * r.total
