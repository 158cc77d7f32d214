"""ringstat.Pipeline: every method, argument errors, flush/close guarantees,
back-pressure policies counted exactly, batches (numpy read in place when
numpy is installed), and a replay against a plain-Python model."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat
from ringstat import ManualClock, Pipeline, PipelineClosed, Registry

try:
    import numpy as np
except ImportError:  # numpy is optional; requirements-dev.txt installs it for CI
    np = None  # type: ignore[assignment]

needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed")


@pytest.fixture
def pipe() -> Iterator[Pipeline]:
    with Pipeline(workers=2, capacity=1024) as p:
        yield p


def values(p: Pipeline) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]]:
    snap = p.registry.snapshot()
    return {(m["name"], tuple(sorted(m["labels"].items()))): m["values"] for m in snap["metrics"]}


def value(p: Pipeline, name: str, key: str = "value") -> Any:
    return values(p)[(name, ())][key]


# ----- construction ---------------------------------------------------------


def test_smoke() -> None:
    reg = Registry()
    with Pipeline(reg) as p:
        assert p.registry is reg
        c = p.counter("logins")
        c.inc()
        c.add(2)
        p.flush()
        assert reg.counter("logins").value == 3
    assert p.closed


def test_defaults_and_properties() -> None:
    p = Pipeline()
    try:
        assert (p.workers, p.capacity, p.backpressure, p.closed) == (2, 65536, "block", False)
        assert isinstance(p.registry, Registry)
        assert "workers=2" in repr(p)
        assert p.now() >= 0.0
    finally:
        p.close()
    assert "closed" in repr(p)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": 1.5}, TypeError, "workers"),
        ({"capacity": 0}, ValueError, "capacity"),
        ({"capacity": "8"}, TypeError, "capacity"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"backpressure": "lossy"}, ValueError, "backpressure"),
        ({"backpressure": 1}, TypeError, "backpressure"),
        ({"name": 3}, TypeError, "name"),
        ({"clock": 3}, TypeError, "clock"),
    ],
)
def test_bad_constructor_arguments(
    kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        Pipeline(**kwargs)


def test_registry_must_be_a_registry() -> None:
    with pytest.raises(TypeError, match="registry"):
        Pipeline({})  # type: ignore[arg-type]


def test_own_metrics_carry_the_pipeline_name() -> None:
    with Pipeline(name="ingest") as p:
        p.count("c")
        p.flush()
        v = values(p)
    assert v[("ringstat_pipeline_applied_total", (("pipeline", "ingest"),))]["value"] == 1


# ----- handles and string methods ---------------------------------------------


def test_counter_gauge_rate_histogram(pipe: Pipeline) -> None:
    c = pipe.counter("c")
    g = pipe.gauge("g")
    r = pipe.rate("r")
    h = pipe.histogram("h", max_value=1000, significant_digits=2)
    c.inc()
    c.add(9)
    g.set(5)
    g.add(-7)
    r.mark()
    r.mark(4)
    h.observe(10)
    h.observe(20.4)  # rounded to 20
    pipe.flush()
    assert value(pipe, "c") == 10
    assert value(pipe, "g") == -2
    assert value(pipe, "r", "total") == 5
    assert value(pipe, "h", "count") == 2
    assert value(pipe, "h", "max") == 20
    assert (c.name, g.name, r.name, h.name) == ("c", "g", "r", "h")


def test_string_methods(pipe: Pipeline) -> None:
    pipe.histogram("h", max_value=100)
    pipe.count("c")
    pipe.count("c", 4)
    pipe.set("g", 3)
    pipe.gauge_add("g", 2)
    pipe.observe("h", 7)
    pipe.mark("r")
    pipe.mark("r", 2)
    pipe.session_start("s", 1, 1.0)
    pipe.session_end("s", 1, 3.5)
    pipe.seen("u", "alice")
    pipe.seen("u", "alice")
    pipe.seen("u", b"bob")
    pipe.flush()
    assert value(pipe, "c") == 5
    assert value(pipe, "g") == 5
    assert value(pipe, "h", "count") == 1
    assert value(pipe, "r", "total") == 3
    assert value(pipe, "s_completed_total") == 1
    assert value(pipe, "s_duration_ms", "max") == 2500
    assert round(pipe.distinct_count("u")) == 2
    assert round(pipe.distinct_in_window("u")) == 2


def test_handles_are_the_same_metric(pipe: Pipeline) -> None:
    a, b = pipe.counter("c"), pipe.counter("c")
    assert a == b
    assert hash(a) == hash(b)
    assert pipe.counter("d") != a
    a.inc()
    pipe.count("c")
    pipe.flush()
    assert value(pipe, "c") == 2


def test_observe_needs_a_resolved_histogram(pipe: Pipeline) -> None:
    with pytest.raises(ValueError, match=r"pipeline\.histogram"):
        pipe.observe("nope", 1)


def test_histogram_bad_values_are_rejected_and_counted(pipe: Pipeline) -> None:
    h = pipe.histogram("h", max_value=100)
    for bad in (101, -1, float("nan"), float("inf"), 2**70):
        with pytest.raises(ValueError, match=r"range|value|NaN|nan"):
            h.observe(bad)
    with pytest.raises(TypeError, match="value"):
        h.observe("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        h.observe(True)
    pipe.flush()
    assert value(pipe, "h", "rejected") == 5
    assert value(pipe, "h", "count") == 0


def test_config_mismatch_is_a_value_error(pipe: Pipeline) -> None:
    pipe.histogram("h", max_value=100)
    with pytest.raises(ValueError, match="h"):
        pipe.histogram("h", max_value=200)
    pipe.sessions("s", max_duration=60.0)
    with pytest.raises(ValueError, match="s"):
        pipe.sessions("s", max_duration=120.0)
    pipe.distinct("u", precision=10)
    with pytest.raises(ValueError, match="u"):
        pipe.distinct("u", precision=14)


def test_by_name_methods_reuse_the_configuration_a_name_was_resolved_with(
    pipe: Pipeline,
) -> None:
    pipe.rate("r", window=10.0, buckets=5)
    pipe.sessions("s", max_duration=60.0)
    pipe.distinct("u", precision=10)
    with pytest.raises(ValueError, match=r"pipeline\.histogram"):
        pipe.observe("h", 1)
    pipe.histogram("h", max_value=100)
    # None of these re-resolves with the default configuration (which would
    # be a mismatch): they find the metric as resolved.
    pipe.mark("r", 2)
    pipe.session_start("s", "alice", ts=1.0)
    pipe.session_end("s", "alice", ts=3.0)
    pipe.seen("u", "alice")
    pipe.observe("h", 7)
    pipe.flush()
    assert pipe.distinct_count("u") == pytest.approx(1.0, abs=0.1)
    assert pipe.stats()["applied"] == 5
    assert pipe.rate("r").name == "r"


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda p: p.counter(3), TypeError, "name"),
        (lambda p: p.counter("not a name"), ValueError, "not a name"),
        (lambda p: p.count("c", -1), ValueError, "n"),
        (lambda p: p.count("c", 1.0), TypeError, "n"),
        (lambda p: p.count("c", True), TypeError, "n"),
        (lambda p: p.set("g", 2**63), ValueError, "value"),
        (lambda p: p.set("g", "1"), TypeError, "value"),
        (lambda p: p.gauge_add("g", None), TypeError, "n"),
        (lambda p: p.session_start("s", 1.5), TypeError, "key"),
        (lambda p: p.session_start("s", 2**64), ValueError, "key"),
        (lambda p: p.session_start("s", 1, -1.0), ValueError, "ts"),
        (lambda p: p.session_start("s", 1, "now"), TypeError, "ts"),
        (lambda p: p.seen("u", None), TypeError, "key"),
        (lambda p: p.counter("c").add(-1), ValueError, "n"),
        (lambda p: p.rate("r").mark(-1), ValueError, "n"),
        (lambda p: p.rate("r2", window=0), ValueError, "window"),
        (lambda p: p.distinct("d", precision=3), ValueError, "precision"),
        (lambda p: p.histogram("h", max_value=-1), ValueError, "max_value"),
        (lambda p: p.histogram("h", max_value=10, significant_digits=9), ValueError, "digit"),
    ],
)
def test_bad_arguments_name_the_argument(
    pipe: Pipeline, call: Any, exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        call(pipe)


def test_keys_ints_negative_and_strings(pipe: Pipeline) -> None:
    u = pipe.distinct("u")
    for k in (0, 1, -1, 2**64 - 1, "x", b"x", "y"):
        u.seen(k)
    pipe.flush()
    # -1 and 2**64 - 1 are the same 64-bit key; "x" and b"x" the same bytes.
    assert round(u.count) == 5


# ----- sessions with a manual clock ---------------------------------------------


def test_sessions_by_timestamp() -> None:
    clock = ManualClock()
    with Pipeline(clock=clock) as p:
        s = p.sessions("online")
        s.start(1, 10.0)
        s.start(2, 10.0)
        s.end(1, 70.0)
        s.end(3, 70.0)  # end without start: an anomaly
        p.flush()
        v = values(p)
    assert v[("online_open", ())]["value"] == 1
    assert v[("online_completed_total", ())]["value"] == 1
    assert v[("online_duration_ms", ())]["max"] == 60_000
    assert v[("online_anomalies_total", (("kind", "end_without_start"),))]["value"] == 1


def test_distinct_window_follows_the_clock() -> None:
    clock = ManualClock()
    reg = Registry(clock=clock)
    with Pipeline(reg, clock=clock) as p:
        u = p.distinct("u", window=10.0, buckets=10)
        u.seen_many(range(100))
        p.flush()
        # HyperLogLog estimates (precision 12): within 5 % here.
        assert abs(u.count - 100) <= 5
        assert u.count_in_window == u.count
        clock.advance(60)
        assert abs(u.count - 100) <= 5
        assert u.count_in_window == 0.0


# ----- flush and close ------------------------------------------------------------


def test_flush_applies_everything_sent_before_it(pipe: Pipeline) -> None:
    c = pipe.counter("c")
    for i in range(1, 6):
        for _ in range(1000):
            c.inc()
        pipe.flush()
        assert value(pipe, "c") == 1000 * i
        assert pipe.stats()["queue_depth"] == 0


def test_flush_and_close_from_many_threads() -> None:
    p = Pipeline(workers=2, capacity=64)
    c = p.counter("c")

    def produce() -> None:
        for _ in range(5000):
            c.inc()
        p.flush()

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.close()
    p.close()  # idempotent
    p.flush()  # returns at once when closed
    s = p.stats()
    assert s == {"received": 20000, "applied": 20000, "dropped": 0, "rejected": 0, "queue_depth": 0}


def test_send_after_close_raises_pipeline_closed() -> None:
    p = Pipeline()
    c, s = p.counter("c"), p.sessions("s")
    p.close()
    assert p.closed
    assert issubclass(PipelineClosed, RuntimeError)
    with pytest.raises(PipelineClosed):
        c.inc()
    with pytest.raises(PipelineClosed):
        p.count("c")
    with pytest.raises(PipelineClosed):
        s.start_many([1, 2, 3])


def test_close_mid_stream_loses_nothing_sent_before_close() -> None:
    p = Pipeline(workers=2, capacity=256)
    c = p.counter("c")
    sent = [0, 0]
    started = threading.Barrier(3)

    def produce(i: int) -> None:
        started.wait()
        try:
            while True:
                c.inc()
                sent[i] += 1
        except PipelineClosed:
            pass

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    started.wait()
    while sum(sent) < 10_000:
        pass
    p.close()
    for t in threads:
        t.join()
    s = p.stats()
    assert p.registry.counter("c").value == sum(sent) == s["received"] == s["applied"]


def test_context_manager_closes_on_error() -> None:
    p = Pipeline()

    def body() -> None:
        with p:
            p.count("c")
            raise KeyError("boom")

    with pytest.raises(KeyError):
        body()
    assert p.closed
    assert p.registry.counter("c").value == 1


# ----- back-pressure --------------------------------------------------------------


@pytest.mark.parametrize("policy", ["block", "drop_newest", "overwrite_oldest"])
def test_backpressure_conservation(policy: str) -> None:
    p = Pipeline(workers=1, capacity=8, batch_size=1, backpressure=policy)  # type: ignore[arg-type]
    c = p.counter("c")
    n = 20_000
    for _ in range(n):
        c.inc()
    p.close()
    s = p.stats()
    assert s["received"] == n
    assert s["applied"] + s["dropped"] + s["rejected"] == n
    assert p.registry.counter("c").value == s["applied"]
    if policy == "block":
        assert s["dropped"] == 0


@pytest.mark.parametrize("policy", ["drop_newest", "overwrite_oldest"])
def test_batch_backpressure_conservation(policy: str) -> None:
    p = Pipeline(workers=2, capacity=16, backpressure=policy)  # type: ignore[arg-type]
    c = p.counter("c")
    for _ in range(50):
        c.add_many([1] * 1000)
    p.close()
    s = p.stats()
    assert s["received"] == 50_000
    assert s["applied"] + s["dropped"] == 50_000
    assert p.registry.counter("c").value == s["applied"]


# ----- batches --------------------------------------------------------------------


def test_batches_from_sequences(pipe: Pipeline) -> None:
    c, g = pipe.counter("c"), pipe.gauge("g")
    h = pipe.histogram("h", max_value=1000)
    s, u = pipe.sessions("s"), pipe.distinct("u")
    c.add_many([1, 2, 3])
    c.add_many(range(4))
    c.add_many(())
    g.add_many([5, -2])
    h.observe_many([1, 2.6, 1000])
    s.start_many([1, 2, "three"], ts=1.0)
    s.end_many((1, 2, "three"), ts=[2.0, 3.0, 4.0])
    u.seen_many(iter([1, 2, 2, 3]))
    pipe.flush()
    assert value(pipe, "c") == 12
    assert value(pipe, "g") == 3
    assert value(pipe, "h", "count") == 3
    assert value(pipe, "h", "max") == 1000
    assert value(pipe, "s_completed_total") == 3
    assert value(pipe, "s_duration_ms", "max") == 3000
    assert round(u.count) == 3


def test_batch_errors_name_the_element_and_send_nothing(pipe: Pipeline) -> None:
    c = pipe.counter("c")
    h = pipe.histogram("h", max_value=10)
    s = pipe.sessions("s")
    with pytest.raises(ValueError, match=r"ns\[2\]"):
        c.add_many([1, 2, -3])
    with pytest.raises(TypeError, match=r"ns\[1\]"):
        c.add_many([1, "2"])
    with pytest.raises(TypeError, match="ns"):
        c.add_many(5)
    with pytest.raises(TypeError, match="str"):
        c.add_many("123")
    with pytest.raises(ValueError, match=r"values\[1\]"):
        h.observe_many([1, 11])
    with pytest.raises(TypeError, match=r"keys\[0\]"):
        s.start_many([1.5])
    with pytest.raises(ValueError, match="ts"):
        s.start_many([1, 2], ts=[1.0])
    with pytest.raises(ValueError, match="ts"):
        s.start_many([1, 2], ts=-1.0)
    pipe.flush()
    assert value(pipe, "c") == 0
    assert value(pipe, "h", "count") == 0
    assert value(pipe, "s_started_total") == 0


@needs_numpy
def test_numpy_batches_match_the_list_path() -> None:
    assert np is not None
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 5000, 20_000, dtype=np.uint64)
    counts = rng.integers(0, 100, 1000, dtype=np.int64)
    ts = np.sort(rng.uniform(1.0, 100.0, len(keys)))
    results = []
    for as_array in (False, True):
        clock = ManualClock()
        with Pipeline(workers=2, clock=clock) as p:
            c, s, u = p.counter("c"), p.sessions("s"), p.distinct("u")
            h = p.histogram("h", max_value=100)
            if as_array:
                c.add_many(counts)
                c.add_many(counts.astype(np.uint64))
                h.observe_many(counts.astype(np.float64))
                u.seen_many(keys)
                s.start_many(keys[: len(keys) // 2], ts[: len(keys) // 2])
                s.end_many(keys[len(keys) // 2 :], ts[len(keys) // 2 :])
            else:
                c.add_many(counts.tolist())
                c.add_many(counts.tolist())
                h.observe_many(counts.tolist())
                u.seen_many(keys.tolist())
                s.start_many(keys[: len(keys) // 2].tolist(), ts[: len(keys) // 2].tolist())
                s.end_many(keys[len(keys) // 2 :].tolist(), ts[len(keys) // 2 :].tolist())
            p.flush()
            # Everything but the depth gauge and the gauges' min/max (which
            # depend on how the workers interleave).
            v = {k: m.get("value", m) for k, m in values(p).items() if "queue_depth" not in k[0]}
            stats = p.stats()
            results.append((v, u.count, stats["received"], stats["applied"]))
    assert results[0] == results[1]
    assert results[0][0][("c", ())] == 2 * int(counts.sum())


@needs_numpy
def test_numpy_int64_keys_and_views() -> None:
    assert np is not None
    with Pipeline() as p:
        u = p.distinct("u")
        a = np.arange(-50, 50, dtype=np.int64)
        u.seen_many(a[10:60])  # a contiguous slice: offset data pointer
        u.seen_many(np.frombuffer(b"\0" + a.tobytes(), dtype=np.int64, offset=1))  # unaligned
        p.flush()
        assert abs(u.count - 100) <= 5


@needs_numpy
def test_numpy_wrong_dtype_or_layout_raises() -> None:
    assert np is not None
    with Pipeline() as p:
        c, u = p.counter("c"), p.distinct("u")
        with pytest.raises(TypeError, match=r"uint64 or int64.*float64"):
            u.seen_many(np.arange(10, dtype=np.float64))
        with pytest.raises(TypeError, match="int32"):
            u.seen_many(np.arange(10, dtype=np.int32))
        with pytest.raises(TypeError, match="uint64 or int64"):
            u.seen_many(np.arange(10, dtype=">u8"))
        with pytest.raises(ValueError, match="contiguous"):
            u.seen_many(np.arange(20, dtype=np.uint64)[::2])
        with pytest.raises(ValueError, match="1-D"):
            u.seen_many(np.zeros((2, 2), dtype=np.uint64))
        with pytest.raises(ValueError, match=r"ns\[1\]"):
            c.add_many(np.array([1, -1], dtype=np.int64))
        u.seen_many(np.empty(0, dtype=np.uint64))
        p.flush()
        assert u.count == 0.0
        assert p.registry.counter("c").value == 0


# ----- a replay against a plain-Python model ----------------------------------------


def test_replay_against_a_model() -> None:
    rng = random.Random(42)
    counts: dict[str, int] = {"logins": 0, "registrations": 0}
    open_since: dict[int, float] = {}
    durations_ms: list[int] = []
    users: set[int] = set()
    anomalies = 0
    clock = ManualClock()
    with Pipeline(workers=3, capacity=512, clock=clock) as p:
        logins, regs = p.counter("logins"), p.counter("registrations")
        online, distinct = p.sessions("online"), p.distinct("users")
        t = 1.0
        for _ in range(30_000):
            t += rng.random()
            user = rng.randrange(3000)
            op = rng.random()
            if op < 0.1:
                regs.inc()
                counts["registrations"] += 1
                distinct.seen(user)
                users.add(user)
            elif op < 0.6:
                logins.inc()
                counts["logins"] += 1
                online.start(user, t)
                if user in open_since:
                    anomalies += 1
                open_since[user] = t
            else:
                online.end(user, t)
                if user in open_since:
                    durations_ms.append(int((t - open_since.pop(user)) * 1000))
        p.flush()
        v = values(p)
        est = distinct.count
    assert v[("logins", ())]["value"] == counts["logins"]
    assert v[("registrations", ())]["value"] == counts["registrations"]
    assert v[("online_open", ())]["value"] == len(open_since)
    assert v[("online_completed_total", ())]["value"] == len(durations_ms)
    assert v[("online_anomalies_total", (("kind", "double_start"),))]["value"] == anomalies
    hist = v[("online_duration_ms", ())]
    assert hist["count"] == len(durations_ms)
    # Durations are recorded in whole ms; float rounding may move one by 1 ms.
    assert abs(hist["max"] - max(durations_ms)) <= 1 + max(durations_ms) * 0.005
    # HyperLogLog, precision 12: standard error 1.63 %; allow 5 sigma.
    assert abs(est - len(users)) <= 0.0815 * len(users)


def test_package_exports() -> None:
    for name in ("Pipeline", "PipelineClosed", "CounterHandle", "SessionsHandle"):
        assert getattr(ringstat, name) is not None
