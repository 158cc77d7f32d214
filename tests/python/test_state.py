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
