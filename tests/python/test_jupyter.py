"""Notebook helpers: DataFrames (ringstat.frames), HTML and text display
(ringstat.display), matplotlib plots rendered to PNG (ringstat.plot), the
live display (ringstat.jupyter), and that the core package needs none of the
notebook extras."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ringstat import Histogram, ManualClock, Recorder, Registry
from ringstat.display import snapshot_html, snapshot_text
from ringstat.frames import format_labels, recorder_frame, snapshot_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXTRAS_HINT = 'needs the notebook extras: pip install "ringstat[notebook]"'


def _registry() -> Registry:
    reg = Registry(clock=ManualClock())
    reg.counter("events", labels={"kind": "login"}).add(3)
    reg.counter("events", labels={"kind": "logout"}).add(1)
    reg.gauge("users_online").set(2)
    h = reg.histogram("online_seconds", max_value=86_400, significant_digits=2)
    for v in (1, 5, 30, 300, 1200, 4000):
        h.record(v)
    reg.rate("logins_rate", window=10, buckets=10).add(10)
    return reg


# --- core without extras --------------------------------------------------


def test_core_imports_without_notebook_extras() -> None:
    code = """
import sys
for name in ("pandas", "polars", "matplotlib", "IPython", "nbclient", "nbformat", "ipykernel"):
    sys.modules[name] = None  # any import of them raises ImportError
import json, ringstat, ringstat.snapshot, ringstat.display, ringstat.frames
import ringstat.plot, ringstat.jupyter
reg = ringstat.Registry()
reg.counter("c").inc()
h = reg.histogram("h", max_value=100)
h.record(5)
snap = reg.snapshot()
json.dumps(snap)
assert "<table>" in snap._repr_html_() and "c" in str(snap)
assert "<svg" in h._repr_html_() and reg._repr_html_()
with ringstat.Recorder(reg, interval=0.01) as rec:
    pass
assert rec.samples()
for call in (snap.to_pandas, h.to_pandas, rec.to_pandas, reg.to_pandas):
    try:
        call()
    except ImportError as e:
        assert 'pip install "ringstat[notebook]"' in str(e), e
    else:
        raise AssertionError("to_pandas without pandas")
try:
    ringstat.plot.plot_histogram(h)
except ImportError as e:
    assert "ringstat[notebook]" in str(e), e
else:
    raise AssertionError("plot_histogram without matplotlib")
try:
    ringstat.jupyter.live(reg, duration=0)
except ImportError as e:
    assert "ringstat[notebook]" in str(e), e
else:
    raise AssertionError("live without IPython")
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --- snapshots: dict subclass, text and HTML --------------------------------


def test_snapshot_is_plain_json_data() -> None:
    snap = _registry().snapshot()
    assert isinstance(snap, dict)
    assert json.loads(json.dumps(snap)) == snap
    assert repr(snap) == repr(dict(snap))


def test_snapshot_text_table() -> None:
    text = str(_registry().snapshot())
    lines = text.splitlines()
    assert lines[0].startswith("ringstat snapshot at ")
    assert lines[0].endswith(" UTC")
    assert any(ln.split()[:3] == ['events{kind="login"}', "counter", "3"] for ln in lines)
    assert any("p99" in ln and "online_seconds" in ln for ln in lines)
    assert any("logins_rate" in ln and "/s" in ln for ln in lines)
    assert str(Registry().snapshot()).endswith("(no metrics)")


def test_snapshot_html_escapes_everything() -> None:
    reg = Registry()
    reg.counter("c", labels={"who": "<script>alert('x')</script>&"}).inc()
    # One snapshot for both renderings: each snapshot carries its own
    # timestamp, and two taken a millisecond apart render differently.
    snap = reg.snapshot()
    html = snap._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&amp;" in html
    assert snapshot_html(snap) == html
    assert "no metrics yet" in Registry()._repr_html_()


def test_registry_and_histogram_html() -> None:
    reg = _registry()
    html = reg._repr_html_()
    assert "ringstat.Registry" in html
    for name in ("events", "users_online", "online_seconds", "logins_rate"):
        assert name in html
    assert "<svg" in html  # the histogram's percentile bar
    h = reg.histogram("online_seconds", max_value=86_400, significant_digits=2)
    hh = h._repr_html_()
    assert "ringstat.Histogram" in hh
    assert "p99" in hh
    assert hh.count("<rect") == len(h.buckets())  # one bar per bucket (< 40)
    assert "<svg" not in Histogram(10)._repr_html_()  # empty: no bars


def test_histogram_bars_are_capped() -> None:
    h = Histogram(1_000_000, significant_digits=3)
    for v in range(0, 1_000_000, 997):
        h.record(v)
    assert len(h.buckets()) > 40
    assert h._repr_html_().count("<rect") <= 40


def test_snapshot_text_helper_matches_str() -> None:
    snap = _registry().snapshot()
    assert snapshot_text(snap) == str(snap)


# --- DataFrames -------------------------------------------------------------


def test_format_labels() -> None:
    assert format_labels({}) == ""
    assert format_labels({"zone": "a", "region": "eu"}) == "region=eu,zone=a"


def test_snapshot_to_pandas() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    reg = _registry()
    snap = reg.snapshot(percentiles=[50, 99])
    df = snap.to_pandas()
    assert list(df.columns) == [
        "name",
        "labels",
        "kind",
        "value",
        "min",
        "max",
        "count",
        "sum",
        "mean",
        "rejected",
        "p50",
        "p99",
        "total",
        "in_window",
        "per_second",
        "window",
    ]
    assert len(df) == 5
    assert df.attrs["timestamp"] == snap["timestamp"]
    row = df.set_index(["name", "labels"]).loc[("events", "kind=login")]
    assert row["kind"] == "counter"
    assert row["value"] == 3
    h = df[df.name == "online_seconds"].iloc[0]
    assert h["count"] == 6
    assert h["p50"] == 30
    assert h["mean"] == pytest.approx(h["sum"] / 6)
    assert df[df.name == "logins_rate"].iloc[0]["total"] == 10
    assert list(reg.to_pandas(percentiles=[50, 99]).columns) == list(df.columns)
    assert list(snapshot_frame(snap).columns) == list(df.columns)


def test_empty_snapshot_frame() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    df = Registry().snapshot().to_pandas()
    assert list(df.columns) == ["name", "labels", "kind"]
    assert len(df) == 0


def test_histogram_to_pandas() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    h = Histogram(1000, significant_digits=2)
    for v in (1, 1, 5, 900):
        h.record(v)
    df = h.to_pandas()
    assert list(df.columns) == ["low", "high", "count", "fraction", "cumulative"]
    assert df["count"].tolist() == [2, 1, 1]
    assert df["cumulative"].iloc[-1] == 1.0
    assert df["fraction"].sum() == pytest.approx(1.0)
    assert len(Histogram(10).to_pandas()) == 0


def test_histogram_with_unit_to_pandas() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    h = Histogram(60, unit=1e-6)
    h.record(0.0125)
    h.record(0.5)
    df = h.to_pandas()
    assert df["low"].dtype == "float64"
    assert df["count"].tolist() == [1, 1]
    for value, (low, high) in zip((0.0125, 0.5), zip(df["low"], df["high"])):
        assert low <= value <= high


def test_recorder_to_pandas_is_tidy() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    reg = _registry()
    rec = Recorder(reg)
    rec.sample_now()
    reg.counter("events", labels={"kind": "login"}).inc()
    rec.sample_now()
    df = rec.to_pandas()
    assert list(df.columns) == ["timestamp", "metric", "labels", "field", "value"]
    assert str(df["timestamp"].dtype).startswith("datetime64[")
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df["value"].dtype == "float64"
    logins = df[(df.metric == "events") & (df.labels == "kind=login")]
    assert logins["value"].tolist() == [3.0, 4.0]
    fields = set(df[df.metric == "online_seconds"].field)
    assert {"count", "sum", "mean", "min", "max", "p50", "p99.9"} <= fields
    assert set(df[df.metric == "logins_rate"].field) == {
        "total",
        "in_window",
        "per_second",
        "window",
    }
    # a list of snapshots works too
    assert recorder_frame(rec.samples()).equals(df)


def test_empty_histogram_percentiles_are_nan() -> None:
    pd = pytest.importorskip("pandas", reason=EXTRAS_HINT)
    reg = Registry()
    reg.histogram("h", max_value=10)
    rec = Recorder(reg)
    rec.sample_now()
    df = rec.to_pandas()
    assert pd.isna(df[df.field == "p50"]["value"].iloc[0])


def test_bad_backend() -> None:
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    with pytest.raises(ValueError, match="backend must be"):
        snapshot_frame(Registry().snapshot(), "arrow")  # type: ignore[call-overload]


def test_polars_frames() -> None:
    pl = pytest.importorskip("polars", reason="polars is optional")
    reg = _registry()
    rec = Recorder(reg)
    rec.sample_now()
    snap_df = reg.snapshot().to_polars()
    assert isinstance(snap_df, pl.DataFrame)
    assert snap_df.height == 5
    tidy = rec.to_polars()
    assert tidy.columns == ["timestamp", "metric", "labels", "field", "value"]
    assert str(tidy.schema["timestamp"]).startswith("Datetime")
    assert (
        reg.histogram("online_seconds", max_value=86_400, significant_digits=2).to_polars().height
        == 6
    )


# --- plots ------------------------------------------------------------------


@pytest.fixture
def agg() -> Any:
    pytest.importorskip("matplotlib", reason=EXTRAS_HINT)
    pytest.importorskip("pandas", reason=EXTRAS_HINT)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 1024


def test_plot_histogram_png(agg: Any, tmp_path: Path) -> None:
    from ringstat.plot import plot_histogram

    h = _registry().histogram("online_seconds", max_value=86_400, significant_digits=2)
    fig, ax = agg.subplots()
    assert plot_histogram(h, percentiles=(50, 90, 99), ax=ax, unit="s") is ax
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["p50 = 30", "p90 = 4,000", "p99 = 4,000"]
    assert ax.get_xscale() == "log"
    path = tmp_path / "histogram.png"
    fig.savefig(path)
    _assert_png(path)
    # an empty histogram still draws, on a new figure
    assert plot_histogram(Histogram(10)).get_title() == "0 values"


def test_plot_recorder_png(agg: Any, tmp_path: Path) -> None:
    from ringstat.plot import plot_recorder

    reg = _registry()
    rate = reg.rate("logins_rate", window=10, buckets=10)
    with Recorder(reg, interval=0.001) as rec:
        for _ in range(5):
            rate.add(10)
            rec.sample_now()
    fig, ax = agg.subplots()
    plot_recorder(rec, "logins_rate", "per_second", ax=ax)
    assert len(ax.get_lines()) == 1
    path = tmp_path / "rate.png"
    fig.savefig(path)
    _assert_png(path)
    ax = plot_recorder(rec.to_pandas(), "online_seconds", ["p50", "p99"])
    assert len(ax.get_lines()) == 2
    fig, ax = agg.subplots()
    plot_recorder(rec, "events", "value", ax=ax)
    assert sorted(str(line.get_label()) for line in ax.get_lines()) == [
        "value {kind=login}",
        "value {kind=logout}",
    ]
    path = tmp_path / "events.png"
    fig.savefig(path)
    _assert_png(path)
    with pytest.raises(ValueError, match="no metric 'nope'"):
        plot_recorder(rec, "nope", "value")
    with pytest.raises(ValueError, match="no field"):
        plot_recorder(rec, "events", "p99")


# --- live -------------------------------------------------------------------


class _FakeHandle:
    def __init__(self) -> None:
        self.updates: list[Any] = []

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


def test_live_updates_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    display_mod = pytest.importorskip("IPython.display", reason=EXTRAS_HINT)
    import ringstat.jupyter

    shown: list[Any] = []
    handle = _FakeHandle()

    def fake_display(obj: Any, display_id: bool = False) -> _FakeHandle:
        assert display_id is True
        shown.append(obj)
        return handle

    monkeypatch.setattr(display_mod, "display", fake_display)
    reg = _registry()
    ticks = 0

    def until() -> bool:
        nonlocal ticks
        ticks += 1
        return ticks > 3

    assert ringstat.jupyter.live(reg, every=0.001, until=until) is handle
    assert len(shown) == 1
    assert len(handle.updates) == 4  # three refreshes, then the final frame
    final = handle.updates[-1].data
    assert "ringstat.Registry" in final
    assert "final" in final

    handle.updates.clear()
    done = threading.Event()
    threading.Timer(0.01, done.set).start()
    ringstat.jupyter.live(reg, every=10, until=done)  # the event wakes it early
    assert "final" in handle.updates[-1].data

    handle.updates.clear()
    ringstat.jupyter.live(
        reg.histogram("online_seconds", max_value=86_400, significant_digits=2), duration=0
    )
    assert "ringstat.Histogram" in handle.updates[-1].data


def test_live_bad_arguments() -> None:
    import ringstat.jupyter

    with pytest.raises(ValueError, match="every must be"):
        ringstat.jupyter.live(Registry(), every=0)
    with pytest.raises(ValueError, match="duration must be"):
        ringstat.jupyter.live(Registry(), duration=-1)
