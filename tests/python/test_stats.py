"""Behaviour of the statistics bindings: Counter, Gauge, Histogram, Rate,
ManualClock and Registry, every error path, snapshots and exposition."""

from __future__ import annotations

import json
import math
import random
import re
import threading
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import ringstat
from ringstat import Counter, Gauge, Histogram, ManualClock, Rate, Registry

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class Index:
    """An int-like object (as numpy ints are): has ``__index__`` only."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


# ----- Counter ----------------------------------------------------------------


def test_counter_smoke() -> None:
    c = Counter()
    assert c.value == 0
    c.inc()
    c.add(2)
    c.add(Index(3))
    assert c.value == 6
    assert int(c) == 6
    assert repr(c) == "<ringstat.Counter value=6>"


def test_counter_take_and_reset() -> None:
    c = Counter()
    c.add(5)
    assert c.take() == 5
    assert c.value == 0
    c.inc()
    c.reset()
    assert c.value == 0


def test_counter_shards() -> None:
    assert Counter(shards=3).shards == 4
    assert Counter(shards=1).shards == 1
    assert Counter().shards >= 4


def test_counter_saturates_near_2_64() -> None:
    c = Counter(shards=1)
    c.add(U64_MAX)
    c.add(2)
    assert c.value == U64_MAX - 2**52  # stops there, never wraps


@pytest.mark.parametrize("bad", ["1", 1.0, None, True, [1]])
def test_counter_add_wrong_type(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^n must be an int, not "):
        Counter().add(bad)


@pytest.mark.parametrize("bad", [-1, 2**64, -(2**70), Index(-1)])
def test_counter_add_out_of_range(bad: Any) -> None:
    c = Counter()
    with pytest.raises(ValueError, match=r"^n out of range: need 0 <= n < 2\*\*64, got "):
        c.add(bad)
    assert c.value == 0


def test_counter_bad_shards() -> None:
    with pytest.raises(ValueError, match="shards must be at least 1"):
        Counter(shards=0)
    with pytest.raises(ValueError, match="shards must be at most 65536"):
        Counter(shards=2**20)
    with pytest.raises(TypeError, match="shards must be an int"):
        Counter(shards="4")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Counter(4)  # type: ignore[call-arg]  # keyword-only


def test_counter_threads_exact() -> None:
    c = Counter()
    threads_n, per_thread = 16, 20_000
    start = threading.Barrier(threads_n)

    def work() -> None:
        start.wait()
        inc, add = c.inc, c.add
        for i in range(per_thread):
            inc()
            add(i % 3)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per = per_thread + sum(i % 3 for i in range(per_thread))
    assert c.value == threads_n * per


def test_counter_take_threads_exact() -> None:
    """Every add is returned by exactly one take(), while writers run."""
    c = Counter()
    taken: list[int] = []
    done = threading.Event()

    def taker() -> None:
        while not done.is_set():
            taken.append(c.take())

    t = threading.Thread(target=taker)
    t.start()

    def write() -> None:
        for _ in range(20_000):
            c.inc()

    writers = [threading.Thread(target=write) for _ in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    t.join()
    assert sum(taken) + c.take() == 80_000


# ----- Gauge --------------------------------------------------------------------


def test_gauge_smoke() -> None:
    g = Gauge()
    assert (g.value, g.min, g.max) == (0, 0, 0)
    assert g.inc() == 1
    assert g.add(4) == 5
    assert g.sub(7) == -2
    assert g.dec() == -3
    g.set(10)
    assert (g.value, g.min, g.max) == (10, -3, 10)
    assert int(g) == 10
    assert g.reset_min_max() == (-3, 10)
    assert (g.min, g.max) == (10, 10)
    assert repr(g) == "<ringstat.Gauge value=10 min=10 max=10>"


def test_gauge_initial_value_and_range() -> None:
    g = Gauge(I64_MIN)
    assert (g.value, g.min, g.max) == (I64_MIN, I64_MIN, I64_MIN)
    assert g.sub(1) == I64_MAX  # wraps, as documented
    assert Gauge(value=-4).value == -4


@pytest.mark.parametrize("bad", [2**63, I64_MIN - 1])
def test_gauge_out_of_range(bad: int) -> None:
    g = Gauge()
    with pytest.raises(ValueError, match=r"^value out of range: need -2\*\*63 <= value < 2\*\*63"):
        g.set(bad)
    with pytest.raises(ValueError, match=r"^n out of range"):
        g.add(bad)
    with pytest.raises(ValueError, match=r"^n out of range"):
        g.sub(bad)
    with pytest.raises(ValueError, match=r"^value out of range"):
        Gauge(bad)
    assert g.value == 0


@pytest.mark.parametrize("bad", [1.5, "1", None, False])
def test_gauge_wrong_type(bad: Any) -> None:
    g = Gauge()
    with pytest.raises(TypeError, match=r"^value must be an int, not "):
        g.set(bad)
    with pytest.raises(TypeError, match=r"^n must be an int, not "):
        g.add(bad)
    with pytest.raises(TypeError, match=r"^n must be an int, not "):
        g.sub(bad)


def test_gauge_threads_balance() -> None:
    g = Gauge()

    def work() -> None:
        for _ in range(10_000):
            g.inc()
            g.dec()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert g.value == 0
    assert g.min >= -8
    assert 1 <= g.max <= 8


# ----- Histogram ---------------------------------------------------------------


def test_histogram_smoke() -> None:
    h = Histogram(1_000_000)
    assert (h.max_value, h.significant_digits) == (1_000_000, 3)
    assert h.relative_error <= 0.0005
    assert (h.count, h.sum, h.min, h.max, h.mean) == (0, 0.0, None, None, None)
    assert h.percentile(50) is None
    assert h.percentiles([50, 99]) == [None, None]
    for v in (1, 2, 3, 4):
        h.record(v)
    assert (h.count, h.sum, h.min, h.max, h.mean) == (4, 10.0, 1, 4, 2.5)
    assert h.percentile(50) == 2
    assert h.percentile(100) == 4
    assert h.percentile(0) == 1
    assert h.percentiles((100, 0, 75.0)) == [4, 1, 3]
    assert h.rejected == 0
    assert repr(h) == (
        "<ringstat.Histogram max_value=1000000 significant_digits=3 count=4 "
        "min=Some(1) max=Some(4)>"
    )


def test_histogram_without_unit_refuses_fractions() -> None:
    # Was: 2.5 was silently recorded as 3 (and 12.5 as 13, the README's example).
    h = Histogram(100, significant_digits=2)
    h.record(2.0)
    h.record(-0.0)
    h.record(100.0)
    for v in (2.5, 2.4, 99.5):
        with pytest.raises(ValueError, match=r"^value .* is not a whole number.*unit"):
            h.record(v)
    assert h.buckets() == [(0, 0, 1), (2, 2, 1), (100, 100, 1)]
    assert h.rejected == 3


def test_histogram_number_like_values() -> None:
    h = Histogram(100)
    h.record(Index(7))
    h.record(Fraction(16, 2))  # __float__: 8.0
    h.record(Decimal("9"))  # __float__: 9.0
    assert h.buckets() == [(7, 7, 1), (8, 8, 1), (9, 9, 1)]
    with pytest.raises(ValueError, match="not a whole number"):
        h.record(Fraction(15, 2))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (101, r"^value 101 is above the histogram's max value 100"),
        (100.5, r"^value 100.5 is outside the histogram's range 0..=100"),
        (-1, r"^value -1 is outside the histogram's range 0..=100"),
        (-0.6, r"^value -0.6 is outside the histogram's range 0..=100"),
        (2**64, r"^value 18446744073709552000 is outside"),
        (10**400, r"^value inf is outside"),
        (-(10**400), r"^value -inf is outside"),
        (math.inf, r"^value inf is outside"),
        (math.nan, r"^value is NaN"),
        (Index(-5), r"^value -5 is outside"),
    ],
)
def test_histogram_rejects_bad_values(bad: Any, message: str) -> None:
    h = Histogram(100)
    with pytest.raises(ValueError, match=message):
        h.record(bad)
    assert h.count == 0
    assert h.rejected == 1
    assert h.snapshot()["rejected"] == 1


@pytest.mark.parametrize("bad", ["1", None, True, [1], object()])
def test_histogram_record_wrong_type(bad: Any) -> None:
    h = Histogram(100)
    with pytest.raises(TypeError, match=r"^value must be an int or float, not "):
        h.record(bad)
    assert (h.count, h.rejected) == (0, 0)


def test_histogram_record_n() -> None:
    h = Histogram(100)
    h.record_n(7, 3)
    h.record_n(8, 0)
    assert (h.count, h.sum) == (3, 21.0)
    with pytest.raises(ValueError, match="above the histogram's max value"):
        h.record_n(101, 5)
    assert h.rejected == 5
    with pytest.raises(TypeError, match=r"^value must be an int for record_n"):
        h.record_n(7.0, 1)  # without a unit: ints only
    with pytest.raises(TypeError, match=r"^count must be an int"):
        h.record_n(7, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^count out of range"):
        h.record_n(7, -1)
    with pytest.raises(ValueError, match=r"^value out of range"):
        h.record_n(-7, 1)
    assert h.count == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_value": 0}, ValueError, r"^histogram max value must be at least 1, got 0"),
        ({"max_value": -1}, ValueError, r"^max_value out of range"),
        ({"max_value": 2**64}, ValueError, r"^max_value out of range"),
        ({"max_value": 1.5}, TypeError, r"^max_value must be an int, not float"),
        ({"max_value": None}, TypeError, r"^max_value must be an int, not NoneType"),
        (
            {"max_value": 10, "significant_digits": 6},
            ValueError,
            r"^significant digits must be in 0..=5, got 6",
        ),
        (
            {"max_value": 10, "significant_digits": 300},
            ValueError,
            r"^significant_digits must be in 0..=5, got 300",
        ),
        (
            {"max_value": 10, "significant_digits": -1},
            ValueError,
            r"^significant_digits must be in 0..=5, got -1",
        ),
        (
            {"max_value": 10, "significant_digits": "3"},
            TypeError,
            r"^significant_digits must be an int, not str",
        ),
    ],
)
def test_histogram_bad_config(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Histogram(**kwargs)


def test_histogram_max_value_u64() -> None:
    h = Histogram(U64_MAX, significant_digits=1)
    h.record(U64_MAX)
    assert h.max == U64_MAX


@pytest.mark.parametrize("bad", [-0.1, 100.1, math.nan, math.inf])
def test_histogram_bad_percentile(bad: float) -> None:
    h = Histogram(100)
    h.record(1)
    with pytest.raises(ValueError, match=r"^q must be in \[0, 100\] \(a percentile"):
        h.percentile(bad)
    with pytest.raises(ValueError, match=r"^qs must be in \[0, 100\]"):
        h.percentiles([50, bad])


def test_histogram_percentile_wrong_type() -> None:
    h = Histogram(100)
    with pytest.raises(TypeError, match=r"^q must be an int or float, not str"):
        h.percentile("50")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^qs must be an iterable of numbers, not str"):
        h.percentiles("50")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^qs must be an iterable of numbers, not int"):
        h.percentiles(50)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^qs must be an int or float, not NoneType"):
        h.percentiles([50, None])  # type: ignore[list-item]


def exact_percentile(sorted_values: list[int], p: float) -> int:
    """Nearest rank: the smallest value with at least ceil(p/100 * n) values <= it."""
    n = len(sorted_values)
    rank = math.ceil(Fraction(str(p)) * n / 100)
    return sorted_values[min(max(rank, 1), n) - 1]


@pytest.mark.parametrize("digits", [1, 2, 3])
def test_histogram_percentiles_within_documented_error(digits: int) -> None:
    rng = random.Random(digits)
    values = [int(rng.lognormvariate(8, 2)) % 10_000_000 for _ in range(20_000)]
    values += [0, 1, 9_999_999]
    h = Histogram(10_000_000, significant_digits=digits)
    for v in values:
        h.record(v)
    values.sort()
    ps = [0, 0.1, 1, 5, 10, 25, 50, 66.6, 75, 90, 95, 99, 99.9, 99.99, 100]
    got = h.percentiles(ps)
    for p, reported in zip(ps, got):
        exact = exact_percentile(values, p)
        assert reported is not None
        assert abs(reported - exact) <= exact * h.relative_error, (p, reported, exact)
        assert h.percentile(p) == reported
    assert h.relative_error <= 10**-digits / 2
    assert (h.count, h.min, h.max) == (len(values), values[0], values[-1])
    assert h.sum == pytest.approx(sum(values), rel=h.relative_error)


def test_histogram_merge() -> None:
    a, b = Histogram(100), Histogram(100)
    a.record(1)
    b.record(99)
    a.merge(b)
    assert (a.count, a.min, a.max) == (2, 1, 99)
    assert b.count == 1
    a.merge(a)
    assert a.count == 4
    with pytest.raises(
        ValueError,
        match=r"^cannot merge a histogram with \(max 100, 2 digits\) into one with \(max 100, 3",
    ):
        a.merge(Histogram(100, significant_digits=2))
    with pytest.raises(TypeError, match=r"^other must be a Histogram, not int"):
        a.merge(1)  # type: ignore[arg-type]
    assert a.count == 4


def test_histogram_snapshot_dict() -> None:
    h = Histogram(1000)
    for v in range(1, 101):
        h.record(v)
    s = h.snapshot()
    assert s == {
        "count": 100,
        "sum": 5050.0,
        "min": 1,
        "max": 100,
        "rejected": 0,
        "percentiles": {"p50": 50, "p90": 90, "p99": 99, "p99.9": 100},
    }
    assert json.loads(json.dumps(s)) == s
    assert h.snapshot(percentiles=[25, 0.5])["percentiles"] == {"p25": 25, "p0.5": 1}
    assert Histogram(10).snapshot()["percentiles"]["p50"] is None
    with pytest.raises(ValueError, match=r"^percentiles must be in \[0, 100\]"):
        h.snapshot(percentiles=[0.5, 101])


def test_histogram_threads_exact_count() -> None:
    h = Histogram(1_000_000, significant_digits=2)

    def work(seed: int) -> None:
        for i in range(5_000):
            h.record((i * seed) % 1_000_000)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.count == 40_000
    assert sum(c for _, _, c in h.buckets()) == 40_000


# ----- handles -----------------------------------------------------------------


def test_handles_compare_by_metric() -> None:
    a, b = Counter(), Counter()
    assert a == a  # noqa: PLR0124
    assert a != b
    assert len({a, b, a}) == 2
    assert Histogram(10) != Histogram(10)
    assert Gauge() != 0


@pytest.mark.parametrize("cls", [Counter, Gauge, Histogram, Rate, Registry, ManualClock])
def test_classes_cannot_be_subclassed(cls: type) -> None:
    with pytest.raises(TypeError):
        type("Sub", (cls,), {})


def test_handles_are_frozen() -> None:
    c = Counter()
    with pytest.raises(AttributeError):
        c.value = 3  # type: ignore[misc]


# ----- Rate and ManualClock ---------------------------------------------------


def test_manual_clock() -> None:
    clock = ManualClock()
    assert clock.now() == 0.0
    clock.advance(1.5)
    clock.advance(1)
    assert clock.now() == 2.5
    clock.set(0.25)
    assert clock.now() == 0.25
    for bad in (-1, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^seconds must be a finite, non-negative number"):
            clock.advance(bad)
        with pytest.raises(ValueError, match=r"^seconds must be a finite, non-negative"):
            clock.set(bad)
    with pytest.raises(TypeError, match=r"^seconds must be an int or float, not str"):
        clock.advance("1")  # type: ignore[arg-type]
    assert clock.now() == 0.25


def test_rate_with_manual_clock() -> None:
    clock = ManualClock()
    r = Rate(60, 60, clock=clock)
    assert (r.window, r.buckets) == (60.0, 60)
    for _ in range(10):
        r.inc()
        clock.advance(1)
    assert r.per_second == 1.0
    assert (r.count_in_window, r.total) == (10, 10)
    r.add(5)
    assert r.total == 15
    clock.advance(60)
    assert (r.count_in_window, r.total) == (0, 15)
    assert r.per_second == 0.0


def test_rate_per_second_over_partial_window() -> None:
    clock = ManualClock()
    r = Rate(window=10, buckets=10, clock=clock)
    r.add(50)
    clock.advance(5)
    assert r.per_second == 10.0


def test_rate_defaults_and_system_clock() -> None:
    r = Rate()
    assert (r.window, r.buckets) == (60.0, 60)
    r.inc()
    assert r.total == 1
    assert r.count_in_window == 1
    assert r.per_second > 0
    assert repr(r).startswith("<ringstat.Rate window=60s buckets=60 total=1 ")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"window": 0}, ValueError, r"^invalid rate window 0ns with 60 buckets"),
        ({"window": 1, "buckets": 2000}, ValueError, r"^invalid rate window 1s with 2000 buckets"),
        ({"window": -1}, ValueError, r"^window must be a finite, non-negative number of seconds"),
        ({"window": math.nan}, ValueError, r"^window must be a finite"),
        ({"window": "60"}, TypeError, r"^window must be an int or float, not str"),
        ({"buckets": 0}, ValueError, r"^buckets must be at least 1, got 0"),
        ({"buckets": 1.0}, TypeError, r"^buckets must be an int, not float"),
        ({"clock": object()}, TypeError, r"^clock must be a ManualClock or None, not object"),
    ],
)
def test_rate_bad_config(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Rate(**kwargs)


@pytest.mark.parametrize(
    ("bad", "error"), [(-1, ValueError), (2**64, ValueError), (1.0, TypeError)]
)
def test_rate_add_bad(bad: Any, error: type[Exception]) -> None:
    r = Rate(clock=ManualClock())
    with pytest.raises(error, match=r"^n "):
        r.add(bad)
    assert r.total == 0


# ----- Registry -----------------------------------------------------------------


def test_registry_get_or_create_returns_the_same_metric() -> None:
    reg = Registry()
    a = reg.counter("logins", labels={"region": "eu"})
    b = reg.counter("logins", {"region": "eu"})
    assert a == b
    a.inc()
    assert b.value == 1
    other = reg.counter("logins", labels={"region": "us"})
    assert other != a
    assert other.value == 0
    assert reg.gauge("online") == reg.gauge("online", labels={})
    h = reg.histogram("session_us", max_value=10**9)
    assert h == reg.histogram("session_us", max_value=10**9, significant_digits=3)
    r = reg.rate("logins_rate", window=10, buckets=10)
    assert r == reg.rate("logins_rate", window=10.0, buckets=10)


def test_registry_label_order_does_not_matter() -> None:
    reg = Registry()
    a = reg.counter("c", {"a": "1", "b": "2"})
    assert a == reg.counter("c", {"b": "2", "a": "1"})


def test_registry_kind_mismatch() -> None:
    reg = Registry()
    reg.counter("logins")
    with pytest.raises(
        ValueError, match=r'^metric "logins" is registered as a counter, not a gauge$'
    ):
        reg.gauge("logins")
    with pytest.raises(ValueError, match="registered as a counter, not a histogram"):
        reg.histogram("logins", max_value=10)
    with pytest.raises(ValueError, match="registered as a counter, not a rate"):
        reg.rate("logins", labels={"x": "y"})


def test_registry_config_mismatch_and_collision() -> None:
    reg = Registry()
    reg.histogram("h", max_value=100)
    with pytest.raises(ValueError, match=r'^metric "h" is registered with configuration'):
        reg.histogram("h", max_value=1000)
    reg.rate("r")
    with pytest.raises(ValueError, match=r'^metric "r" is registered with configuration'):
        reg.rate("r", window=30)
    reg.counter("x")
    with pytest.raises(ValueError, match=r"same Prometheus name as metric \"x\""):
        reg.gauge("x_total")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r.counter("1bad"), ValueError, r'^invalid metric name "1bad"'),
        (lambda r: r.counter(""), ValueError, r'^invalid metric name ""'),
        (lambda r: r.counter(1), TypeError, r"^name must be a str, not int"),
        (lambda r: r.counter("c", {"le": "1"}), ValueError, r'^invalid label name "le"'),
        (lambda r: r.counter("c", {"__x": "1"}), ValueError, r'^invalid label name "__x"'),
        (lambda r: r.counter("c", {"a-b": "1"}), ValueError, r'^invalid label name "a-b"'),
        (lambda r: r.counter("c", {1: "1"}), TypeError, r"^labels keys must be str, not int"),
        (
            lambda r: r.counter("c", {"a": 1}),
            TypeError,
            r'^labels values must be str, not int \(for label "a"\)$',
        ),
        (lambda r: r.counter("c", [("a", "b")]), TypeError, r"^labels must be a dict of str"),
        (lambda r: r.counter("c", "a=b"), TypeError, r"^labels must be a dict of str"),
        (lambda r: r.gauge(None), TypeError, r"^name must be a str, not NoneType"),
        (lambda r: r.histogram("h", max_value=0), ValueError, r"max value must be at least 1"),
        (lambda r: r.histogram("h"), TypeError, r"max_value"),
        (lambda r: r.rate("r", buckets=0), ValueError, r"^buckets must be at least 1"),
        (lambda r: r.rate("r", window=-2), ValueError, r"^window must be a finite"),
        (lambda r: r.snapshot([50, 150]), ValueError, r"^percentiles must be in \[0, 100\]"),
        (lambda r: r.snapshot(["50"]), TypeError, r"^percentiles must be an int or float"),
        (lambda r: r.to_prometheus([-1]), ValueError, r"^percentiles must be in \[0, 100\]"),
    ],
)
def test_registry_errors(call: Any, error: type[Exception], message: str) -> None:
    reg = Registry()
    with pytest.raises(error, match=message):
        call(reg)
    assert reg.snapshot()["metrics"] == []


def populated() -> tuple[Registry, ManualClock]:
    clock = ManualClock()
    reg = Registry(clock=clock)
    reg.counter("logins", labels={"region": "eu"}).add(3)
    reg.counter("logins", labels={"region": "us"}).inc()
    online = reg.gauge("users_online")
    online.add(5)
    online.sub(3)
    session = reg.histogram("session_us", max_value=10**9, significant_digits=2)
    for v in (120, 250, 980):
        session.record(v)
    rate = reg.rate("login_rate", labels={"room": 'a"b\\c\nd'}, window=10, buckets=10)
    rate.add(20)
    clock.advance(4)
    reg.histogram("empty_us", max_value=10)
    return reg, clock


def test_registry_snapshot_layout_and_json_round_trip() -> None:
    reg, _ = populated()
    snap = reg.snapshot()
    assert isinstance(snap["timestamp"], float)
    assert snap["timestamp"] > 1.7e9
    metrics = snap["metrics"]
    assert [(m["name"], m["kind"]) for m in metrics] == [
        ("empty_us", "histogram"),
        ("login_rate", "rate"),
        ("logins", "counter"),
        ("logins", "counter"),
        ("session_us", "histogram"),
        ("users_online", "gauge"),
    ]
    by_key = {(m["name"], tuple(m["labels"].items())): m for m in metrics}
    assert by_key["logins", (("region", "eu"),)]["values"] == {"value": 3}
    assert by_key["logins", (("region", "us"),)]["values"] == {"value": 1}
    assert by_key["users_online", ()]["values"] == {"value": 2, "min": 0, "max": 5}
    assert by_key["session_us", ()]["values"] == {
        "count": 3,
        "sum": 1350.0,
        "min": 120,
        "max": 980,
        "rejected": 0,
        "percentiles": {"p50": 250, "p90": 980, "p99": 980, "p99.9": 980},
    }
    assert by_key["empty_us", ()]["values"]["percentiles"]["p99"] is None
    assert by_key["login_rate", (("room", 'a"b\\c\nd'),)]["values"] == {
        "total": 20,
        "in_window": 20,
        "per_second": 5.0,
        "window": 10.0,
    }
    text = json.dumps(snap)
    assert json.loads(text) == snap


def test_registry_snapshot_custom_percentiles() -> None:
    reg, _ = populated()
    snap = reg.snapshot(percentiles=[0, 100])
    hist = next(m for m in snap["metrics"] if m["name"] == "session_us")
    assert hist["values"]["percentiles"] == {"p0": 120, "p100": 980}


SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_prometheus(text: str) -> tuple[dict[str, str], dict[tuple[str, tuple[Any, ...]], float]]:
    """A strict line-by-line parser of the text format 0.0.4 subset we emit."""
    types: dict[str, str] = {}
    samples: dict[tuple[str, tuple[Any, ...]], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            kw, ty, name, kind = line.split(" ")
            assert (kw, ty) == ("#", "TYPE")
            assert kind in {"counter", "gauge", "summary"}
            assert name not in types
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels: list[tuple[str, str]] = []
        if m["labels"] is not None:
            raw = m["labels"]
            pos = 0
            while pos < len(raw):
                lm = LABEL.match(raw, pos)
                assert lm, raw[pos:]
                value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e[1], e[1]), lm[2])
                labels.append((lm[1], value))
                pos = lm.end()
        key = (m["name"], tuple(labels))
        assert key not in samples
        samples[key] = float(m["value"])  # also parses NaN, +Inf
    return types, samples


def test_registry_to_prometheus() -> None:
    reg, _ = populated()
    types, samples = parse_prometheus(reg.to_prometheus())
    assert types == {
        "empty_us": "summary",
        "login_rate": "gauge",
        "logins_total": "counter",
        "session_us": "summary",
        "users_online": "gauge",
    }
    assert samples["logins_total", (("region", "eu"),)] == 3
    assert samples["logins_total", (("region", "us"),)] == 1
    assert samples["users_online", ()] == 2
    assert samples["login_rate", (("room", 'a"b\\c\nd'),)] == 5.0
    assert samples["session_us", (("quantile", "0.5"),)] == 250
    assert samples["session_us", (("quantile", "0.999"),)] == 980
    assert samples["session_us_sum", ()] == 1350
    assert samples["session_us_count", ()] == 3
    assert math.isnan(samples["empty_us", (("quantile", "0.99"),)])
    assert samples["empty_us_count", ()] == 0
    _, custom = parse_prometheus(reg.to_prometheus(percentiles=[25]))
    assert custom["session_us", (("quantile", "0.25"),)] == 120


def test_registry_rates_use_its_clock() -> None:
    clock = ManualClock()
    reg = Registry(clock=clock)
    r = reg.rate("events", window=2, buckets=2)
    r.add(4)
    clock.advance(1)
    assert r.per_second == 4.0
    clock.advance(10)
    assert r.per_second == 0.0
    assert r.total == 4


def test_registry_threads_share_metrics() -> None:
    reg = Registry()

    def work() -> None:
        for _ in range(2_000):
            reg.counter("hits", labels={"page": "home"}).inc()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reg.counter("hits", labels={"page": "home"}).value == 16_000
    assert repr(reg) == "<ringstat.Registry metrics=1>"


def test_exported_from_package() -> None:
    for name in ("Counter", "Gauge", "Histogram", "Rate", "Registry", "ManualClock"):
        assert getattr(ringstat, name) is getattr(ringstat._ringstat, name)
        assert getattr(ringstat, name).__module__ == "ringstat._ringstat"


def test_registry_bad_clock() -> None:
    with pytest.raises(TypeError, match=r"^clock must be a ManualClock or None, not int"):
        Registry(clock=1)  # type: ignore[arg-type]
