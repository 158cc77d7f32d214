"""ringstat.Recorder: a native background sampler of a Registry. No timing
assertions: counts, order, bounds, and that stop() returns."""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import weakref

import pytest

import ringstat
from ringstat import Recorder, Registry
from ringstat.snapshot import Snapshot


def _wait_for(rec: Recorder, n: int) -> None:
    give_up = time.monotonic() + 60
    while len(rec) < n:
        assert time.monotonic() < give_up, "no progress in 60 s"
        time.sleep(0.001)


def test_exported() -> None:
    assert ringstat.Recorder is ringstat._ringstat.Recorder
    assert Recorder.__module__ == "ringstat._ringstat"


def test_smoke_start_stop() -> None:
    reg = Registry()
    c = reg.counter("logins", labels={"region": "eu"})
    rec = Recorder(reg, interval=0.001, capacity=100)
    assert (rec.interval, rec.capacity, rec.running, len(rec)) == (0.001, 100, False, 0)
    assert rec.percentiles == [50.0, 90.0, 99.0, 99.9]
    rec.start()
    rec.start()  # no-op while running
    assert rec.running
    _wait_for(rec, 1)
    c.add(3)
    _wait_for(rec, 3)
    rec.stop()
    rec.stop()  # no-op when stopped
    assert not rec.running
    samples = rec.samples()
    assert len(samples) >= 3
    assert all(isinstance(s, Snapshot) for s in samples)
    ts = [s["timestamp"] for s in samples]
    assert ts == sorted(ts)
    values = [s["metrics"][0]["values"]["value"] for s in samples]
    assert values == sorted(values)
    rec.sample_now()
    last = rec.samples()[-1]
    assert last["metrics"] == reg.snapshot()["metrics"]
    json.dumps(last)  # plain data


def test_samples_have_the_snapshot_shape() -> None:
    reg = Registry()
    reg.histogram("h", max_value=1000).record(5)
    reg.rate("r").inc()
    reg.gauge("g").set(-1)
    rec = Recorder(reg, percentiles=[50, 99.9])
    rec.sample_now()
    (s,) = rec.samples()
    expected = reg.snapshot(percentiles=[50, 99.9])
    assert s.keys() == expected.keys()
    assert [m["name"] for m in s["metrics"]] == ["g", "h", "r"]
    assert s["metrics"][1]["values"]["percentiles"] == {"p50": 5, "p99.9": 5}


def test_context_manager_and_drain() -> None:
    reg = Registry()
    reg.counter("c").inc()
    with Recorder(reg, interval=3600) as rec:
        assert rec.running
        _wait_for(rec, 1)
    # stop() does not wait out the hour-long interval
    assert not rec.running
    assert len(rec.drain()) == 1
    assert len(rec) == 0
    rec.sample_now()
    rec.clear()
    assert rec.samples() == []


def test_capacity_keeps_newest() -> None:
    reg = Registry()
    c = reg.counter("c")
    rec = Recorder(reg, capacity=3)
    for _ in range(10):
        c.inc()
        rec.sample_now()
    assert len(rec) == 3
    assert rec.dropped == 7
    assert [s["metrics"][0]["values"]["value"] for s in rec.samples()] == [8, 9, 10]


def test_bound_respected_while_running() -> None:
    reg = Registry()
    reg.gauge("g").set(1)
    with Recorder(reg, interval=0.001, capacity=4) as rec:
        give_up = time.monotonic() + 60
        while rec.dropped < 3:
            assert len(rec) <= 4
            assert time.monotonic() < give_up
            time.sleep(0.001)
    assert len(rec) == 4


def test_writers_keep_going_while_sampled() -> None:
    reg = Registry()
    c = reg.counter("hits")
    with Recorder(reg, interval=0.001) as rec:

        def work() -> None:
            for _ in range(20_000):
                c.inc()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rec.sample_now()
    assert rec.samples()[-1]["metrics"][0]["values"]["value"] == 80_000


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"interval": 0}, ValueError, r"^interval must be more than 0 seconds"),
        ({"interval": -1}, ValueError, r"^interval must be a finite, non-negative"),
        ({"interval": "1"}, TypeError, r"^interval must be an int or float, not str"),
        ({"capacity": 0}, ValueError, r"capacity"),
        ({"capacity": 1.5}, TypeError, r"^capacity must be an int, not float"),
        ({"percentiles": [101]}, ValueError, r"^percentiles must be in \[0, 100\]"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        Recorder(Registry(), **kwargs)  # type: ignore[arg-type]


def test_registry_type_checked() -> None:
    with pytest.raises(TypeError, match=r"^registry must be a Registry, not dict"):
        Recorder({})  # type: ignore[arg-type]


def test_repr() -> None:
    rec = Recorder(Registry(), interval=2.5, capacity=10)
    assert repr(rec) == "<ringstat.Recorder interval=2.5s capacity=10 samples=0>"
    rec.start()
    assert repr(rec).endswith(" running>")
    rec.stop()


def _sampler_threads() -> int:
    """Native threads of this process named by the recorder (Linux only:
    /proc; the kernel keeps 15 characters of a thread name)."""
    return sum(_thread_name(tid) == "ringstat-record" for tid in os.listdir("/proc/self/task"))


def _thread_name(tid: str) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:  # the thread exited while we listed
        return ""


def _wait_for_threads(n: int) -> None:
    give_up = time.monotonic() + 60
    while _sampler_threads() != n:
        assert time.monotonic() < give_up, f"{_sampler_threads()} sampler threads, want {n}"
        time.sleep(0.001)


needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts native threads in /proc"
)


def _no_sampler_threads() -> int:
    """Settle the baseline: recorders that earlier tests dropped (some in
    reference cycles, freed only by the collector) stop their samplers
    asynchronously, so wait for them before counting ours."""
    gc.collect()
    _wait_for_threads(0)
    return 0


@needs_proc
def test_dropped_while_running_releases_thread() -> None:
    base = _no_sampler_threads()
    reg = Registry()
    rec = Recorder(reg, interval=3600)
    rec.start()
    _wait_for(rec, 1)
    assert _sampler_threads() == base + 1
    del rec  # Drop stops and joins the sampler
    _wait_for_threads(base)


@needs_proc
def test_recorder_in_a_reference_cycle_is_collected_and_stops() -> None:
    class Holder:
        pass

    base = _no_sampler_threads()
    holder = Holder()
    holder.me = holder  # type: ignore[attr-defined]
    holder.rec = Recorder(Registry(), interval=3600)  # type: ignore[attr-defined]
    holder.rec.start()  # type: ignore[attr-defined]
    _wait_for(holder.rec, 1)  # type: ignore[attr-defined]
    assert _sampler_threads() == base + 1
    alive = weakref.ref(holder)
    del holder
    gc.collect()
    assert alive() is None
    _wait_for_threads(base)
