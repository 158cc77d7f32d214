"""What ringstat.plot draws, read back from the returned matplotlib Axes:
histogram bars are a density (no steps where the buckets widen), and time
axes are labelled as clock times. Needs the notebook extras."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ringstat import Histogram

pytest.importorskip(
    "matplotlib", reason='needs the notebook extras: pip install "ringstat[notebook]"'
)
pytest.importorskip("pandas", reason='needs the notebook extras: pip install "ringstat[notebook]"')


@pytest.fixture
def plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    yield pyplot
    pyplot.close("all")


def _bars(ax: Any) -> list[tuple[float, float, float]]:
    """(left edge, right edge, height) of every bar, left to right."""
    bars = [(p.get_x(), p.get_x() + p.get_width(), p.get_height()) for p in ax.patches]
    return sorted(bars)


def _mean_height(bars: list[tuple[float, float, float]], lo: float, hi: float) -> float:
    inside = [h for left, right, h in bars if left >= lo and right <= hi]
    assert len(inside) >= 3, (lo, hi, bars)
    return sum(inside) / len(inside)


@pytest.mark.parametrize("edge", [256, 512])
def test_uniform_density_has_no_step_where_buckets_widen(plt: Any, edge: int) -> None:
    from ringstat.plot import plot_histogram

    # Bucket widths double at 256 and 512 (2 significant digits): a count per
    # bucket doubles there although the data is flat.
    rng = random.Random(7)
    h = Histogram(2_000, significant_digits=2)
    for _ in range(200_000):
        h.record(rng.randrange(1, 1_000))
    widths = {hi + 1 - lo for lo, hi, _ in h.buckets() if edge - 64 <= lo < edge + 64}
    assert len(widths) == 2, widths  # the layout this test is about
    ax = plt.subplots()[1]
    assert plot_histogram(h, ax=ax, log_x=False) is ax
    bars = _bars(ax)
    below = _mean_height(bars, edge - 48, edge)
    above = _mean_height(bars, edge, edge + 48)
    assert 0.85 < above / below < 1.15, (below, above)
    # Per unit of value: the uniform density is count / range.
    assert below == pytest.approx(200_000 / 999, rel=0.15)
    assert ax.get_ylabel() == "count per unit of value"


def test_lognormal_density_on_a_log_axis_is_smooth(plt: Any) -> None:
    # The notebook's case: online times (log-normal) on a log axis, where a
    # count per bucket showed spikes at 256 and 512.
    from ringstat.plot import plot_histogram

    rng = random.Random(11)
    h = Histogram(86_400, significant_digits=2)
    for _ in range(200_000):
        h.record(min(round(rng.lognormvariate(5.8, 1.0)), 86_400))
    ax = plot_histogram(h, unit="s")
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "count per decade"
    bars = _bars(ax)
    for edge in (256, 512):
        below = _mean_height(bars, edge * 0.8, edge)
        above = _mean_height(bars, edge, edge * 1.25)
        assert 0.8 < above / below < 1.25, (edge, below, above)
    # The bars' areas (height x decades) add up to the count.
    import math

    area = sum(h_ * math.log10(right / left) for left, right, h_ in bars)
    assert area == pytest.approx(h.count, rel=1e-9)


def test_recorder_time_axis_reads_as_clock_times(plt: Any) -> None:
    import pandas as pd

    from ringstat.plot import plot_recorder

    # A 3-second recording, as in the notebook: ticks every half second.
    start = datetime(2026, 12, 2, 14, 2, 1, tzinfo=timezone.utc)
    stamps = [start + timedelta(seconds=0.2 * i) for i in range(16)]
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(stamps, utc=True),
            "metric": "logins_rate",
            "labels": "",
            "field": "per_second",
            "value": [float(i) for i in range(16)],
        }
    )
    ax = plot_recorder(frame, "logins_rate", "per_second")
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 2, labels
    for label in labels:
        assert re.fullmatch(r"14:0[23]:\d\d(\.\d+)?", label), labels
    assert "2026" in ax.xaxis.get_major_formatter().get_offset()
