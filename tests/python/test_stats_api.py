"""What a prometheus_client user types first, checked against prometheus_client
itself and through its exposition parser; and the native module importing
nothing from the package."""

from __future__ import annotations

import asyncio
import inspect
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ringstat
from ringstat import Counter, Gauge, Histogram, Recorder, Registry, SeriesLimitError

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def families(text: str) -> dict[str, Any]:
    """The parsed exposition: family name -> (type, help, samples as a set)."""
    return {
        f.name: (
            f.type,
            f.documentation,
            {(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples},
        )
        for f in text_string_to_metric_families(text)
    }


def prom_error(fn: Any) -> str:
    try:
        fn()
    except ValueError as e:
        return str(e)
    raise AssertionError("prometheus_client did not raise")  # pragma: no cover


# ----- the native module imports nothing from the package ----------------------


def test_native_module_imports_no_ringstat_module() -> None:
    # Load the extension alone (the package's __init__ never runs), use every
    # class whose methods used to import ringstat.frames/display/snapshot,
    # and list the ringstat modules imported.
    code = textwrap.dedent(
        """
        import importlib.machinery, importlib.util, pathlib, sys
        pkg = importlib.util.find_spec("ringstat")
        folder = pathlib.Path(pkg.submodule_search_locations[0])
        path = next(
            p for s in importlib.machinery.EXTENSION_SUFFIXES
            for p in folder.glob("_ringstat*" + s)
        )
        spec = importlib.util.spec_from_file_location("ringstat._ringstat", path)
        native = importlib.util.module_from_spec(spec)
        sys.modules["ringstat._ringstat"] = native
        spec.loader.exec_module(native)
        reg = native.Registry()
        reg.counter("c", help="help").inc(2)
        h = reg.histogram("h", max_value=100)
        h.record(5)
        snap = reg.snapshot()
        assert type(snap) is dict, type(snap)
        assert "# HELP c_total help" in reg.to_prometheus()
        rec = native.Recorder(reg)
        rec.sample_now()
        assert type(rec.samples()[0]) is dict
        assert type(rec.drain()[0]) is dict
        repr(h), repr(reg), repr(rec)
        assert not hasattr(native.Histogram, "to_pandas")
        assert not hasattr(native.Registry, "_repr_html_")
        print(sorted(m for m in sys.modules if m == "ringstat" or m.startswith("ringstat.")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ringstat._ringstat']"


def test_attached_methods_keep_the_native_classes() -> None:
    reg = Registry()
    c = reg.counter("c")
    assert type(c) is Counter
    assert type(c) is ringstat._ringstat.Counter
    assert type(reg.snapshot()) is ringstat.snapshot.Snapshot
    rec = Recorder(reg)
    rec.sample_now()
    assert all(type(s) is ringstat.snapshot.Snapshot for s in rec.samples())
    # Attaching again (a reload) wraps nothing twice.
    ringstat._methods.attach()
    assert type(reg.snapshot()) is ringstat.snapshot.Snapshot
    assert dict(reg.snapshot())["metrics"][0]["values"] == {"value": 0}


# ----- Counter.inc(amount) ------------------------------------------------------


def test_counter_inc_amount_like_prometheus_client() -> None:
    c = Counter()
    p = prometheus_client.Counter("c", "d", registry=CollectorRegistry())
    for amount in (None, 5, 0, 2.0, 7):
        if amount is None:
            c.inc()
            p.inc()
        else:
            c.inc(amount)
            p.inc(amount)
    c.inc(amount=3)
    p.inc(amount=3)
    assert c.value == p._value.get() == 18
    c.inc(2**64 - 1)  # accepted; a shard saturates (documented), never wraps
    assert c.value >= 2**64 - 1 - 2**52


@pytest.mark.parametrize("bad", [-1, -0.5, -(2**70), -1.0])
def test_counter_inc_negative_has_prometheus_clients_message(bad: Any) -> None:
    p = prometheus_client.Counter("c", "d", registry=CollectorRegistry())
    expected = prom_error(lambda: p.inc(bad))
    c = Counter()
    with pytest.raises(ValueError, match="non-negative") as e:
        c.inc(bad)
    assert str(e.value) == expected == "Counters can only be incremented by non-negative amounts."
    assert c.value == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (0.5, r"^amount must be a whole number .*got 0\.5$"),
        (1e-300, r"^amount must be a whole number"),
        (math.nan, r"^amount must be a number, got nan$"),
        (math.inf, r"^amount out of range: need 0 <= amount < 2\*\*64"),
        (2**64, r"^amount out of range: need 0 <= amount < 2\*\*64, got 18446744073709551616$"),
        (2.0**64, r"^amount out of range"),
    ],
)
def test_counter_inc_bad_values(bad: Any, message: str) -> None:
    c = Counter()
    with pytest.raises(ValueError, match=message):
        c.inc(bad)
    assert c.value == 0


@pytest.mark.parametrize("bad", [True, "1", b"1", [1], object()])
def test_counter_inc_wrong_type(bad: Any) -> None:
    c = Counter()
    with pytest.raises(TypeError, match=r"^amount must be an int or float, not "):
        c.inc(bad)
    assert c.value == 0


def test_counter_count_exceptions() -> None:
    c = Counter()
    p = prometheus_client.Counter("c", "d", registry=CollectorRegistry())
    metrics: list[Any] = [c, p]
    for metric in metrics:
        with pytest.raises(KeyError), metric.count_exceptions():
            raise KeyError
        with pytest.raises(KeyError), metric.count_exceptions(ValueError):
            raise KeyError
        with metric.count_exceptions():
            pass

        @metric.count_exceptions((KeyError, ValueError))  # type: ignore[untyped-decorator,unused-ignore]
        def f(e: type[Exception] | None) -> int:
            if e is not None:
                raise e
            return 1

        assert f(None) == 1
        with pytest.raises(ValueError, match=r"^$"):
            f(ValueError)
    assert c.value == p._value.get() == 2


# ----- Gauge --------------------------------------------------------------------


def test_gauge_inc_dec_amount_like_prometheus_client() -> None:
    g = Gauge()
    p = prometheus_client.Gauge("g", "d", registry=CollectorRegistry())
    steps: list[tuple[str, Any]] = [
        ("inc", None),
        ("inc", 5),
        ("dec", 7),
        ("inc", -3),
        ("dec", 2.0),
    ]
    for op, amount in steps:
        args = () if amount is None else (amount,)
        getattr(g, op)(*args)
        getattr(p, op)(*args)
    assert g.value == p._value.get() == -6
    assert g.inc(amount=2) == -4
    assert g.dec(amount=1) == -5
    assert (g.min, g.max) == (-6, 6)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (1.5, ValueError, r"^amount must be a whole number"),
        (math.nan, ValueError, r"^amount must be a number"),
        (2**63, ValueError, r"^amount out of range: need -2\*\*63 <= amount < 2\*\*63"),
        (-(2**63) - 1, ValueError, r"^amount out of range"),
        ("1", TypeError, r"^amount must be an int or float, not str$"),
        (False, TypeError, r"^amount must be an int or float, not bool$"),
    ],
)
def test_gauge_inc_dec_bad_amounts(bad: Any, error: type[Exception], message: str) -> None:
    g = Gauge(3)
    with pytest.raises(error, match=message):
        g.inc(bad)
    with pytest.raises(error, match=message):
        g.dec(bad)
    assert (g.value, g.min, g.max) == (3, 3, 3)


def test_track_inprogress_like_prometheus_client() -> None:
    g = Gauge()
    p = prometheus_client.Gauge("g", "d", registry=CollectorRegistry())
    pairs: list[tuple[Any, Any]] = [(g, lambda: g.value), (p, p._value.get)]
    for metric, value in pairs:
        with metric.track_inprogress():
            assert value() == 1
            with metric.track_inprogress():
                assert value() == 2
        assert value() == 0
        with pytest.raises(KeyError), metric.track_inprogress():
            raise KeyError
        assert value() == 0

        @metric.track_inprogress()  # type: ignore[untyped-decorator,unused-ignore]
        def work(x: int, value: Any = value) -> tuple[int, float]:
            return x, value()

        assert work(7) == (7, 1)
        assert work.__name__ == "work"
        assert value() == 0
    assert g.max == 2


def test_track_inprogress_and_time_on_coroutines() -> None:
    g = Gauge()
    h = seconds_histogram(10)

    @g.track_inprogress()
    @h.time()
    async def work() -> int:
        await asyncio.sleep(0)
        return g.value

    assert asyncio.run(work()) == 1
    assert g.value == 0
    assert h.count == 1


# ----- Histogram.time() and observe ---------------------------------------------


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """``perf_counter`` returns these values in turn."""
    times: list[float] = []
    monkeypatch.setattr(ringstat._methods, "perf_counter", lambda: times.pop(0))
    yield times
    assert times == []


def seconds_histogram(max_value: int) -> Histogram:
    """A histogram of seconds: with a unit of 1 us where the core has units
    (helper hist's float recording), else of ints (a float is rounded)."""
    try:
        return Histogram(max_value, unit=1e-6)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return Histogram(max_value)


def test_histogram_time_records_seconds(fake_clock: list[float]) -> None:
    h = seconds_histogram(1000)
    fake_clock += [10.0, 12.0]
    with h.time() as t:
        assert isinstance(t, ringstat._methods.Timer)
    assert h.count == 1
    assert h.min == pytest.approx(2, abs=1e-6)
    assert h.max == pytest.approx(2, abs=1e-6)
    assert h.sum == pytest.approx(2.0, rel=h.relative_error)

    @h.time()
    def f(x: int) -> int:
        return x

    fake_clock += [0.0, 3.0, 100.0, 107.0]
    assert f(1) == 1
    assert f(2) == 2
    assert f.__name__ == "f"
    assert h.count == 3
    assert h.max == pytest.approx(7, abs=1e-6)


def test_histogram_time_when_the_body_raises(fake_clock: list[float]) -> None:
    h = seconds_histogram(10)
    fake_clock += [0.0, 4.0]
    with pytest.raises(KeyError), h.time():
        raise KeyError
    assert h.count == 1
    assert h.max == pytest.approx(4, abs=1e-6)
    # Too long for the histogram: the body's exception wins, the value is rejected.
    fake_clock += [0.0, 50.0]
    with pytest.raises(KeyError), h.time():
        raise KeyError
    assert (h.count, h.rejected) == (1, 1)
    # Without one, record's ValueError says so.
    fake_clock += [0.0, 50.0]
    with pytest.raises(ValueError, match=r"\b50\b"), h.time():
        pass
    assert (h.count, h.rejected) == (1, 2)


def _records_fractions() -> bool:
    h = seconds_histogram(10)
    try:
        h.record(0.25)
    except ValueError:
        return False
    return h.sum != 0.0


@pytest.mark.xfail(
    not _records_fractions(),
    reason="float recording in the core histogram (helper hist) is not merged: 0.25 s rounds to 0",
    strict=True,
)
def test_histogram_time_records_fractions_of_a_second(fake_clock: list[float]) -> None:
    h = seconds_histogram(60)
    fake_clock += [1.0, 1.25]
    with h.time():
        pass
    assert h.count == 1
    assert h.sum == pytest.approx(0.25, rel=h.relative_error)


def test_histogram_time_needs_a_unit_where_the_core_has_units() -> None:
    h = Histogram(100)
    if not hasattr(h, "unit"):
        pytest.skip("the core histogram has no units yet (helper hist not merged)")
    with pytest.raises(ValueError, match=r"Histogram\(60, unit=1e-6\)"):
        h.time()
    assert h.count == 0


def test_histogram_observe_is_record() -> None:
    h = Histogram(100)
    assert Histogram.__dict__["observe"] is Histogram.__dict__["record"]
    h.observe(5)
    assert (h.count, h.max) == (1, 5)
    with pytest.raises(ValueError, match=r"\b101\b"):
        h.observe(101)
    assert h.rejected == 1


# ----- help text ----------------------------------------------------------------


def test_help_lines_match_prometheus_client() -> None:
    text = 'Requests served.\nSecond line with a \\ backslash and "quotes".'
    reg = Registry()
    reg.counter("requests", help=text).inc(3)
    reg.gauge("online", help="Users online.").set(2)
    reg.histogram("latency", max_value=1000, help="Latency.").record(5)
    reg.rate("logins_rate", help="Logins per second.")
    ours = reg.to_prometheus()

    pr = CollectorRegistry()
    prometheus_client.Counter("requests", text, registry=pr).inc(3)
    prom = generate_latest(pr).decode()
    help_line = next(line for line in prom.splitlines() if line.startswith("# HELP"))
    assert help_line in ours.splitlines()

    parsed = families(ours)
    assert parsed["requests"][:2] == ("counter", text)
    assert parsed["online"][:2] == ("gauge", "Users online.")
    assert parsed["latency"][:2] == ("summary", "Latency.")
    assert parsed["logins_rate"][:2] == ("gauge", "Logins per second.")
    # The HELP line comes before TYPE, once per family.
    lines = ours.splitlines()
    assert lines.index("# HELP online Users online.") + 1 == lines.index("# TYPE online gauge")


def test_help_is_per_family_and_checked() -> None:
    reg = Registry()
    reg.describe("c", "Declared before use.")
    reg.counter("c", labels={"k": "a"})
    reg.counter("c", labels={"k": "b"}, help="Declared before use.")
    reg.counter("c", labels={"k": "c"}, help=None)
    assert reg.to_prometheus().count("# HELP") == 1
    with pytest.raises(ValueError, match="registered with configuration help"):
        reg.counter("c", help="Something else.")
    assert reg.series == 3
    for bad in ("a\rb", "a\x00b", "a\u2028b", "a\x85b"):
        with pytest.raises(ValueError, match="invalid help"):
            reg.gauge("g", help=bad)
    assert reg.series == 3  # a bad help creates nothing
    with pytest.raises(TypeError, match="help must be a str, not int"):
        reg.gauge("g", help=1)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="help must be a str"):
        reg.describe("g", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid metric name"):
        reg.describe("1x", "help")
    reg.gauge("empty", help="")
    assert "# HELP empty \n" in reg.to_prometheus()


# ----- labels() -----------------------------------------------------------------


def test_labels_like_prometheus_client() -> None:
    reg = Registry()
    ours = reg.counter("http_requests", help="Requests.", labelnames=["method", "code"])
    pr = CollectorRegistry()
    prom = prometheus_client.Counter(
        "http_requests", "Requests.", labelnames=["method", "code"], registry=pr
    )
    for fam in (ours, prom):
        fam.labels("GET", 200).inc()
        fam.labels(method="GET", code="200").inc(2)
        fam.labels(code="500", method="POST").inc()
    assert families(reg.to_prometheus())["http_requests"] == (
        families(generate_latest(pr).decode())["http_requests"][0],
        "Requests.",
        {
            s
            for s in families(generate_latest(pr).decode())["http_requests"][2]
            if s[0] == "http_requests_total"
        },
    )
    assert ours.labels("GET", "200") is ours.labels(method="GET", code=200)
    assert ours.labels("GET", "200") == reg.counter(
        "http_requests", {"method": "GET", "code": "200"}
    )
    assert ours.labels("GET", "200").value == 3
    assert ours.name == "http_requests"
    assert ours.labelnames == ("method", "code")


def test_labels_errors_like_prometheus_client() -> None:
    reg = Registry()
    ours = reg.gauge("g", labelnames=["a", "b"])
    prom = prometheus_client.Gauge("g", "d", labelnames=["a", "b"], registry=CollectorRegistry())
    calls: list[Callable[[Any], Any]] = [
        lambda f: f.labels("x"),
        lambda f: f.labels("x", "y", "z"),
        lambda f: f.labels(a="x"),
        lambda f: f.labels(a="x", c="y"),
        lambda f: f.labels("x", b="y"),
    ]
    for call in calls:
        expected = prom_error(lambda call=call: call(prom))
        with pytest.raises(ValueError, match=r"^(Incorrect|Can't)") as e:
            call(ours)
        assert str(e.value).startswith(expected.split(":")[0]), (str(e.value), expected)
    assert reg.series == 0


def test_labelnames_are_checked() -> None:
    reg = Registry()
    with pytest.raises(TypeError, match="labelnames must be an iterable of str"):
        reg.counter("c", labelnames="method")
    with pytest.raises(TypeError, match="labelnames must hold str"):
        reg.counter("c", labelnames=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="distinct"):
        reg.counter("c", labelnames=["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        reg.counter("c", labelnames=[])
    with pytest.raises(TypeError, match="not both"):
        reg.counter("c", {"a": "1"}, labelnames=["a"])  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="invalid help"):
        reg.counter("c", help="\r", labelnames=["a"])
    # A bad label name is refused by the registry at the first series.
    fam = reg.counter("c", labelnames=["le"])
    with pytest.raises(ValueError, match="le"):
        fam.labels("1")
    assert reg.series == 0


def test_labels_of_every_kind_and_series_limit() -> None:
    reg = Registry(max_series=3)
    lat = reg.histogram("latency", labelnames=["route"], max_value=1000, significant_digits=2)
    lat.labels("/").record(5)
    assert lat.labels("/").significant_digits == 2
    rate = reg.rate("hits", labelnames=["route"], window=10, buckets=10)
    rate.labels(route="/").add(4)
    assert rate.labels("/").window == 10
    online = reg.gauge("online", labelnames=["room"])
    online.labels("a").inc()
    with pytest.raises(SeriesLimitError):
        online.labels("b")
    online.labels("a").inc()  # existing series keep working
    assert reg.snapshot()["metrics"][2]["values"]["value"] == 2
    assert "online" in repr(online)


def test_family_children_are_shared_across_threads() -> None:
    import threading

    reg = Registry()
    fam = reg.counter("c", labelnames=["k"])
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for i in range(2000):
            fam.labels(str(i % 7)).inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(fam.labels(str(k)).value for k in range(7)) == 8000
    assert reg.series == 7


def test_counter_inc_arguments_are_checked() -> None:
    # inc is a hand-written native method (its hot path skips PyO3's
    # argument parsing): the usual TypeErrors, and nothing counted.
    c = Counter()
    with pytest.raises(TypeError, match=r"^inc\(\) takes at most 1 argument \(2 given\)$"):
        c.inc(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^inc\(\) got an unexpected keyword argument 'n'$"):
        c.inc(n=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^inc\(\) got multiple values for argument 'amount'$"):
        c.inc(1, amount=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"doesn't apply to a 'ringstat\._ringstat\.Gauge' object"):
        Counter.inc(Gauge())  # type: ignore[arg-type]
    assert c.value == 0
    c.inc(None)  # type: ignore[arg-type]
    c.inc(amount=None)  # type: ignore[arg-type]
    assert c.value == 2
    assert str(inspect.signature(Counter.inc)) == "(self, /, amount=1)"


def test_inc_amounts_at_the_edges_of_the_int_fast_path() -> None:
    # One exact int in -2**63..2**63 skips the general conversion; the rest
    # (larger ints, int subclasses, numpy-like __index__) take it.
    class MyInt(int):
        pass

    class Index:
        def __index__(self) -> int:
            return 4

    c = Counter()
    for amount in (2**62, 2**63, MyInt(3), Index()):
        c.inc(amount)
    assert c.value == 2**62 + 2**63 + 7
    g = Gauge()
    assert g.inc(-(2**63)) == -(2**63)
    assert g.dec(-(2**63 - 1)) == -1
    assert g.inc(MyInt(2)) == 1
    assert g.dec(Index()) == -3
    with pytest.raises(ValueError, match="non-negative"):
        c.inc(MyInt(-1))
