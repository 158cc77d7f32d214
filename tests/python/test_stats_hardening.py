"""Regression tests for the statistics types' bad input: sizes that crashed
the process, counts that wrapped, and Prometheus exposition that a real
parser rejected or read back wrong. Crash reproductions run in a subprocess,
so an abort fails the test instead of the whole run."""

from __future__ import annotations

import gc
import math
import subprocess
import sys
import weakref

import pytest
from prometheus_client.parser import text_string_to_metric_families

import ringstat
from ringstat import Counter, Histogram, ManualClock, Rate, Recorder, Registry

U64_MAX = 2**64 - 1
SATURATION = U64_MAX - 2**52


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import ringstat\n" + code],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _parse(text: str) -> list[tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
    return [
        (f.name, f.type, [(s.name, dict(s.labels), s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    ]


# --- sizes: a clear error, never an abort or PanicException -----------------


@pytest.mark.parametrize(
    ("code", "match"),
    [
        # Was: an 8 TB allocation and an abort.
        ("ringstat.Rate(window=1e9, buckets=10**12)", "too many rate buckets"),
        (
            "ringstat.Rate(window=1e7, buckets=10**10, clock=ringstat.ManualClock())",
            "too many rate buckets",
        ),
        ("ringstat.Registry().rate('r', window=1e9, buckets=10**12)", "too many rate buckets"),
        ("ringstat.Counter(shards=2**64 - 1)", "shards must be at most 65536"),
        ("ringstat.Counter(shards=2**70)", "shards"),
        ("ringstat.Histogram(10, 2**70)", r"significant_digits must be in 0\.\.=5"),
        ("ringstat.Histogram(10, 6)", r"significant.digits must be in 0\.\.=5"),
        ("ringstat.Histogram(0)", "max value must be at least 1"),
        ("ringstat.Histogram(2**64)", "max_value out of range"),
        ("ringstat.Recorder(ringstat.Registry(), capacity=2**64)", "capacity"),
        ("ringstat.Registry(max_series=-1)", "max_series must be at least 0"),
    ],
)
def test_bad_sizes_raise_value_error_in_a_clean_process(code: str, match: str) -> None:
    out = _run(
        f"""
import re
try:
    {code}
except ValueError as e:
    assert type(e).__name__ != "PanicException", e
    assert re.search({match!r}, str(e)), e
    print("ok")
"""
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_recorder_with_a_huge_interval_does_not_panic_its_thread() -> None:
    # Was: "overflow when adding duration to instant" in the sampler thread.
    out = _run(
        """
import time
rec = ringstat.Recorder(ringstat.Registry(), interval=1.8e19)
rec.start()
while len(rec) < 1:
    time.sleep(0.001)
time.sleep(0.05)
assert rec.running
rec.stop()
print("ok")
"""
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "panicked" not in out.stderr, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_huge_histograms_work() -> None:
    h = Histogram(U64_MAX, 5)
    h.record(U64_MAX)
    h.record(0)
    assert (h.min, h.max, h.count) == (0, U64_MAX, 2)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"shards": True}, TypeError),
        ({"shards": 1.0}, TypeError),
        ({"shards": 0}, ValueError),
        ({"shards": "4"}, TypeError),
    ],
)
def test_counter_shards_are_checked(kwargs: dict[str, object], exc: type[Exception]) -> None:
    with pytest.raises(exc, match="shards"):
        Counter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [float("nan"), float("inf"), -1.0, 1e30])
def test_rate_window_must_be_finite(window: float) -> None:
    with pytest.raises(ValueError, match="window"):
        Rate(window=window)


@pytest.mark.parametrize("buckets", [True, 0, -1, 1.5])
def test_rate_buckets_are_checked(buckets: object) -> None:
    with pytest.raises((TypeError, ValueError), match="buckets"):
        Rate(window=60, buckets=buckets)  # type: ignore[arg-type]


# --- counts saturate instead of wrapping ---------------------------------------


def test_record_n_count_saturates_instead_of_wrapping() -> None:
    # Was: two record_n of 2**63 made the count 0.
    h = Histogram(10)
    h.record_n(1, 2**63)
    h.record_n(1, 2**63)
    assert h.count == SATURATION
    assert h.snapshot()["count"] == SATURATION
    h.record_n(2, U64_MAX)
    h.record_n(3, U64_MAX)
    assert h.count == U64_MAX
    assert math.isfinite(h.sum)
    assert h.sum > 2**64
    assert h.percentile(100) in (1, 2, 3)


def test_sum_of_saturated_huge_values_is_finite() -> None:
    h = Histogram(U64_MAX, 2)
    for v in (U64_MAX, 2**63, 2**62):
        h.record_n(v, U64_MAX)
    assert math.isfinite(h.sum)
    assert h.sum > 2.0**128
    assert h.mean is not None
    assert h.mean > 2**62


def test_counter_and_rate_totals_saturate() -> None:
    c = Counter(shards=1)
    c.add(U64_MAX)
    c.add(U64_MAX)
    assert c.value == SATURATION
    r = Rate(clock=ManualClock())
    r.add(U64_MAX)
    r.add(U64_MAX)
    assert r.total == SATURATION


# --- metric names and label values in the exposition --------------------------


def test_a_counter_named_total_is_refused() -> None:
    # Was: "# TYPE _total counter", which prometheus_client rejects whole.
    reg = Registry()
    with pytest.raises(ValueError, match="invalid metric name"):
        reg.counter("_total")
    reg.counter("logins_total").inc()
    reg.counter("total").inc()
    assert _parse(reg.to_prometheus()) == [
        ("logins", "counter", [("logins_total", {}, 1.0)]),
        ("total", "counter", [("total_total", {}, 1.0)]),
    ]


def test_counter_x_total_beside_gauge_x_parses() -> None:
    reg = Registry()
    reg.counter("x_total").inc()
    reg.gauge("x").set(2)
    assert _parse(reg.to_prometheus()) == [
        ("x", "gauge", [("x", {}, 2.0)]),
        ("x", "counter", [("x_total", {}, 1.0)]),
    ]


@pytest.mark.parametrize("name", [1, None, b"c", ["c"]])
def test_non_str_names_are_type_errors(name: object) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        Registry().counter(name)  # type: ignore[call-overload]


@pytest.mark.parametrize("name", ["a\x00b", "", "1a", "a-b", "é"])
def test_bad_metric_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError, match="invalid metric name"):
        Registry().counter(name)


NASTY = 'back\\slash "quoted" new\nline tab\t é ✓ {a="b"},'


def test_label_values_round_trip_through_prometheus_client() -> None:
    reg = Registry(clock=ManualClock())
    reg.counter("events", labels={"v": NASTY, "empty": ""}).add(3)
    reg.gauge("online", labels={"room": "a\\nb"}).set(-2)
    h = reg.histogram("lat", labels={"v": NASTY}, max_value=1000, significant_digits=2)
    for v in (1, 2, 3, 500):
        h.record(v)
    reg.rate("r", labels={"v": NASTY}).add(5)
    text = reg.to_prometheus(percentiles=[50, 99])
    fams = {name: (kind, samples) for name, kind, samples in _parse(text)}
    assert fams["events"] == ("counter", [("events_total", {"empty": "", "v": NASTY}, 3.0)])
    assert fams["online"] == ("gauge", [("online", {"room": "a\\nb"}, -2.0)])
    kind, samples = fams["lat"]
    assert kind == "summary"
    assert samples == [
        ("lat", {"v": NASTY, "quantile": "0.5"}, 2.0),
        ("lat", {"v": NASTY, "quantile": "0.99"}, 500.0),
        ("lat_sum", {"v": NASTY}, 506.0),
        ("lat_count", {"v": NASTY}, 4.0),
    ]
    assert fams["r"][1][0][1] == {"v": NASTY}
    # One sample per line for any line-based reader too.
    assert len(text.splitlines()) == len(text.split("\n")) - 1


@pytest.mark.parametrize(
    "bad", ["a\rb", "a\r\nb", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e", "\x00"]
)
def test_label_values_with_other_line_breaks_are_refused(bad: str) -> None:
    # Was: written raw, splitting the sample line for line-based readers.
    reg = Registry()
    with pytest.raises(ValueError, match="invalid value"):
        reg.counter("c", labels={"v": bad})
    with pytest.raises(ValueError, match="invalid value"):
        reg.histogram("h", labels={"v": bad}, max_value=10)
    assert reg.series == 0
    assert _parse(reg.to_prometheus()) == []


def test_lone_surrogates_are_value_errors() -> None:
    # Was: "labels values must be str, not str" (a TypeError).
    reg = Registry()
    with pytest.raises(ValueError, match="valid Unicode"):
        reg.counter("c", labels={"v": "\ud800"})
    with pytest.raises(ValueError, match="valid Unicode"):
        reg.counter("c", labels={"\udc00": "v"})
    with pytest.raises(ValueError, match="valid Unicode"):
        reg.counter("\ud800")
    with pytest.raises(TypeError, match="labels values must be str, not int"):
        reg.counter("c", labels={"v": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="labels keys must be str, not bytes"):
        reg.counter("c", labels={b"k": "v"})  # type: ignore[dict-item]


# --- quantile lists -------------------------------------------------------------


def test_repeated_percentiles_are_written_once() -> None:
    # Was: h{quantile="0.5"} twice.
    reg = Registry()
    reg.histogram("h", max_value=10).record(1)
    text = reg.to_prometheus([50, 50, 50.0, -0.0, 0])
    assert text.count('quantile="0.5"') == 1
    assert 'quantile="-0"' not in text
    assert text.count('quantile="0"') == 1
    (fam,) = _parse(text)
    assert [s[1]["quantile"] for s in fam[2][:2]] == ["0.5", "0"]
    snap = reg.snapshot([99, 99])
    assert snap["metrics"][0]["values"]["percentiles"] == {"p99": 1}
    assert Recorder(reg, percentiles=[90, 90, 10]).percentiles == [90.0, 10.0]


@pytest.mark.parametrize("bad", [float("nan"), -0.5, 100.5, float("inf"), -float("inf")])
def test_percentiles_outside_0_100_are_refused(bad: float) -> None:
    reg = Registry()
    reg.histogram("h", max_value=10).record(1)
    with pytest.raises(ValueError, match=r"must be in \[0, 100\]"):
        reg.to_prometheus([50, bad])
    with pytest.raises(ValueError, match=r"must be in \[0, 100\]"):
        reg.snapshot([bad])
    h = Histogram(10)
    with pytest.raises(ValueError, match=r"must be in \[0, 100\]"):
        h.percentile(bad)
    with pytest.raises(ValueError, match=r"must be in \[0, 100\]"):
        h.percentiles([bad])


@pytest.mark.parametrize("bad", [True, "50", None])
def test_percentiles_must_be_numbers(bad: object) -> None:
    with pytest.raises(TypeError):
        Registry().to_prometheus([bad])  # type: ignore[list-item]


# --- series limit ------------------------------------------------------------------


def test_series_limit() -> None:
    reg = Registry(max_series=3)
    assert (reg.max_series, reg.series) == (3, 0)
    users = [reg.counter("logins", labels={"user": str(i)}) for i in range(3)]
    with pytest.raises(ringstat._ringstat.SeriesLimitError, match="limit of 3 series"):
        reg.counter("logins", labels={"user": "3"})
    # A ValueError too, and for a new family as well.
    with pytest.raises(ValueError, match="limit of 3 series"):
        reg.gauge("online")
    # Existing series keep working and can still be looked up.
    for c in users:
        c.inc()
    assert reg.counter("logins", labels={"user": "0"}) == users[0]
    assert reg.series == 3
    assert len(_parse(reg.to_prometheus())[0][2]) == 3
    assert Registry().max_series is None
    with pytest.raises(TypeError, match="max_series must be an int"):
        Registry(max_series=1.5)  # type: ignore[arg-type]


def test_series_limit_stops_a_cardinality_explosion() -> None:
    # Was: a million label sets taken without complaint (823 MB).
    reg = Registry(max_series=1000)

    def hit(user: int) -> bool:
        try:
            reg.counter("hits", labels={"user": str(user)}).inc()
        except ringstat._ringstat.SeriesLimitError:
            return False
        return True

    refused = sum(not hit(i) for i in range(100_000))
    assert (reg.series, refused) == (1000, 99_000)


# --- reference cycles ----------------------------------------------------------------


def test_stats_objects_in_reference_cycles_are_collected() -> None:
    # The stats pyclasses hold only Rust data (no Python objects), so a cycle
    # through Python objects that refer to them is collected as usual.
    class Holder:
        pass

    holder = Holder()
    reg = Registry(clock=ManualClock())
    holder.objects = [  # type: ignore[attr-defined]
        holder,
        reg,
        reg.counter("c"),
        reg.histogram("h", max_value=10),
        reg.rate("r"),
        Recorder(reg),
        ManualClock(),
    ]
    dead = weakref.ref(holder)
    del holder, reg
    gc.collect()
    assert dead() is None
