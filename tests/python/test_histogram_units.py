"""Histograms of floats: a declared ``unit``, values kept within
``max(relative_error * value, unit / 2)``, and no silent rounding."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringstat import Histogram


def nearest_rank(values: list[float], p: float) -> float:
    """The documented definition: the smallest recorded value ``v`` with at
    least ``ceil(p / 100 * count)`` values ``<= v`` (rank at least 1)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p / 100 * len(ordered), 9)))
    return ordered[rank - 1]


def test_readme_example_keeps_the_fraction() -> None:
    # Was: Histogram.record(12.5) silently recorded 13.
    h = Histogram(86_400, unit=1e-3)
    h.record(12.5)
    assert h.percentile(50) == pytest.approx(12.5, rel=h.relative_error)
    assert h.min == 12.5
    assert h.max == 12.5
    assert h.sum == pytest.approx(12.5, rel=h.relative_error)


def test_seconds_kept_to_the_microsecond() -> None:
    h = Histogram(60, unit=1e-6)
    assert (h.unit, h.max_value) == (1e-6, 60.0)
    h.record(0.0125)
    h.record(2)  # an int is a value too, not a tick
    h.record_n(0.5, 3)
    assert h.count == 5
    assert h.min == 0.0125
    assert h.max == 2.0
    s = h.snapshot([50, 100])
    assert isinstance(s["min"], float)
    assert s["percentiles"]["p100"] == 2.0
    p50 = h.percentile(50)
    assert p50 is not None
    assert abs(p50 - 0.5) <= 0.5 * h.relative_error
    lo, hi, n = h.buckets()[0]
    assert lo <= 0.0125 <= hi
    assert n == 1


def test_histogram_without_unit_still_returns_ints() -> None:
    h = Histogram(1000)
    assert h.unit is None
    h.record(7)
    h.record(8.0)
    assert h.percentile(0) == 7
    assert isinstance(h.percentile(0), int)
    assert isinstance(h.min, int)
    assert isinstance(h.max_value, int)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (-0.4, r"^value -0.4 is outside the histogram's range 0..=60"),
        (-1, r"^value -1 is outside"),
        (60.5, r"^value 60.5 is outside"),
        (math.inf, r"^value inf is outside"),
        (-math.inf, r"^value -inf is outside"),
        (math.nan, r"^value is NaN"),
        (10**400, r"^value inf is outside"),
    ],
)
def test_unit_histogram_rejects_bad_values(bad: float, message: str) -> None:
    # Was (without a unit): -0.4 was clamped to 0.
    h = Histogram(60, unit=1e-6)
    with pytest.raises(ValueError, match=message):
        h.record(bad)
    with pytest.raises(ValueError, match=message):
        h.record_n(bad, 2)
    assert h.count == 0
    assert h.rejected == 3


@pytest.mark.parametrize("bad", [True, "1", None, [1.0]])
def test_unit_histogram_rejects_non_numbers(bad: object) -> None:
    h = Histogram(60, unit=1e-6)
    with pytest.raises(TypeError, match="must be an int or float"):
        h.record(bad)  # type: ignore[arg-type]
    assert h.rejected == 0


@pytest.mark.parametrize(
    ("max_value", "unit", "error"),
    [
        (60, 0.0, ValueError),
        (60, -1e-6, ValueError),
        (60, math.nan, ValueError),
        (60, math.inf, ValueError),
        (60, "1e-6", TypeError),
        (1e-9, 1e-6, ValueError),  # less than one tick
        (1e30, 1e-9, ValueError),  # 2**64 ticks or more
        (math.nan, 1e-6, ValueError),
    ],
)
def test_bad_units(max_value: float, unit: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Histogram(max_value, unit=unit)  # type: ignore[arg-type]


def test_merge_needs_the_same_unit() -> None:
    a = Histogram(60, unit=1e-6)
    b = Histogram(60, unit=1e-6)
    b.record(1.5)
    a.merge(b)
    assert a.max == 1.5
    with pytest.raises(ValueError, match="unit"):
        a.merge(Histogram(60_000_000))  # the same ticks, but ints


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(0, 1e-3),
            st.floats(0, 60),
            st.floats(1e-6, 1e-5),
            st.integers(0, 60),
        ),
        min_size=1,
        max_size=200,
    ),
    digits=st.integers(1, 4),
    unit=st.sampled_from([1e-6, 1e-3, 0.25, 3e-7]),
)
def test_percentiles_within_the_stated_error(values: list[float], digits: int, unit: float) -> None:
    h = Histogram(60, digits, unit=unit)
    for v in values:
        h.record(v)
    assert h.count == len(values)
    for p in (0, 1, 10, 25, 50, 75, 90, 99, 100):
        exact = nearest_rank([float(v) for v in values], p)
        got = h.percentile(p)
        assert got is not None
        bound = max(exact * h.relative_error, unit / 2)
        assert abs(got - exact) <= bound * (1 + 1e-9) + 1e-15, (p, got, exact, bound)


def test_registry_histogram_with_a_unit_reads_back_in_values() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from ringstat import Registry

    reg = Registry()
    lat = reg.histogram("latency_seconds", max_value=60, unit=1e-6, help="Latency.")
    lat.record(0.0125)
    lat.record(0.25)
    # The same name, config and unit: the same series; another unit is refused.
    assert reg.histogram("latency_seconds", max_value=60, unit=1e-6) == lat
    with pytest.raises(ValueError, match="config"):
        reg.histogram("latency_seconds", max_value=60_000_000)
    with pytest.raises(ValueError, match="unit must be finite and above 0"):
        reg.histogram("bad_unit_seconds", max_value=1, unit=-1.0)
    snap = reg.snapshot()
    h = next(m for m in snap["metrics"] if m["name"] == "latency_seconds")["values"]
    assert (h["min"], h["max"], h["count"]) == (0.0125, 0.25, 2)
    assert h["sum"] == pytest.approx(0.2625, rel=lat.relative_error)
    assert h["percentiles"]["p50"] == pytest.approx(0.0125, rel=lat.relative_error)
    # The exposition shows seconds, not microsecond ticks.
    [fam] = [
        f
        for f in text_string_to_metric_families(reg.to_prometheus())
        if f.name == "latency_seconds"
    ]
    quantiles = {s.labels["quantile"]: s.value for s in fam.samples if "quantile" in s.labels}
    assert quantiles["0.5"] == pytest.approx(0.0125, rel=lat.relative_error)
    assert quantiles["0.99"] == pytest.approx(0.25, rel=lat.relative_error)
    # Families pass the unit on to each child.
    fam_h = reg.histogram("req_seconds", max_value=10, unit=1e-3, labelnames=["path"])
    fam_h.labels("/").record(0.5)
    assert fam_h.labels(path="/").max == 0.5
