"""matplotlib plots of histograms and recorded time series.

- :func:`plot_histogram`: a histogram's distribution (a density drawn from
  its buckets) with a marker at each percentile;
- :func:`plot_recorder`: one metric's fields (``per_second``, ``p99``...)
  over time, from a :class:`ringstat.Recorder` or its tidy DataFrame.

Both draw on ``ax`` (a new figure's axes if ``None``) and return the axes.
matplotlib and pandas are imported only when a function is called
(``pip install "ringstat[notebook]"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from ringstat._ringstat import Histogram, Recorder

__all__ = ["plot_histogram", "plot_recorder"]

_INSTALL_HINT = 'pip install "ringstat[notebook]"'


def _axes(ax: Axes | None) -> Axes:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(f"ringstat needs matplotlib for this: {_INSTALL_HINT}") from e
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=(7, 3.5), layout="constrained")
    return new


def plot_histogram(
    hist: Histogram,
    percentiles: Sequence[float] = (50, 90, 99),
    ax: Axes | None = None,
    *,
    title: str | None = None,
    unit: str = "",
    log_x: bool | None = None,
) -> Axes:
    """Draw the distribution of ``hist`` as a density, one bar per non-empty
    bucket (its value range as the width), with a dashed vertical line and
    a legend entry at each of ``percentiles``.

    A bar's height is the bucket's count divided by its width: per unit of
    value on a linear axis, per decade (unit of ``log10`` value) on a log
    axis, so the bars' areas are the counts as drawn. Buckets widen as
    values grow (the width doubles at each power of two past the exact
    range); plotting raw counts would show steps there that are not in the
    data.

    ``log_x`` (default: when max/min spans more than two decades) puts the
    values on a log scale, which suits latencies; there a bucket starting
    at 0 is drawn from 0.5. ``unit`` labels the x axis. Returns the axes.
    """
    ax = _axes(ax)
    buckets = hist.buckets()
    if buckets:
        # A bucket holds the integers lo..=hi: the value range [lo, hi + 1).
        lo_v, hi_v = max(buckets[0][0], 1), buckets[-1][1] + 1
        if log_x is None:
            log_x = hi_v / lo_v > 100
        if log_x:
            lows = [max(lo, 0.5) for lo, _, _ in buckets]
            heights = [c / math.log10((hi + 1) / low) for low, (_, hi, c) in zip(lows, buckets)]
        else:
            lows = [float(lo) for lo, _, _ in buckets]
            heights = [c / (hi + 1 - lo) for lo, hi, c in buckets]
        widths = [hi + 1 - low for low, (_, hi, _) in zip(lows, buckets)]
        ax.bar(lows, heights, width=widths, align="edge", color="#4c72b0", alpha=0.8)
        if log_x:
            ax.set_xscale("log")
        values = hist.percentiles(percentiles)
        for i, (p, v) in enumerate(zip(percentiles, values)):
            if v is None:
                continue
            color = f"C{(i + 1) % 10}"
            ax.axvline(v, color=color, linestyle="--", linewidth=1.2, label=f"p{p:g} = {v:,}")
        ax.legend(loc="upper right", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no values yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"value ({unit})" if unit else "value")
    if log_x:
        ax.set_ylabel("count per decade")
    else:
        ax.set_ylabel(f"count per {unit}" if unit else "count per unit of value")
    ax.set_title(title if title is not None else f"{hist.count:,} values")
    return ax


def plot_recorder(
    recorder_or_frame: Recorder | pd.DataFrame,
    metric: str,
    field: str | Sequence[str] = "value",
    ax: Axes | None = None,
    *,
    labels: str | None = None,
    title: str | None = None,
) -> Axes:
    """Plot ``field`` (or several, e.g. ``["p50", "p99"]``) of ``metric``
    over time, one line per label set (or only ``labels``, as
    ``"k=v,..."``), from a recorder or the tidy frame of its
    ``to_pandas()``. Returns the axes.

    Raises ``ValueError`` if the frame has no such metric or field.
    """
    ax = _axes(ax)
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(f"ringstat needs pandas for this: {_INSTALL_HINT}") from e

    df = (
        recorder_or_frame
        if isinstance(recorder_or_frame, pd.DataFrame)
        else recorder_or_frame.to_pandas()
    )
    fields = [field] if isinstance(field, str) else list(field)
    sel = df[(df["metric"] == metric) & df["field"].isin(fields)]
    if labels is not None:
        sel = sel[sel["labels"] == labels]
    if sel.empty:
        known = sorted(set(df.loc[df["metric"] == metric, "field"]))
        if not known:
            raise ValueError(f"no metric {metric!r} in the samples")
        raise ValueError(f"no field {fields} of {metric!r} in the samples; it has {known}")
    for (lab, fld), group in sel.groupby(["labels", "field"], sort=True):
        name = str(fld) if not lab else f"{fld} {{{lab}}}"
        ax.plot(group["timestamp"], group["value"], marker=".", label=name)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(fields[0] if len(fields) == 1 else "value")
    ax.set_title(title if title is not None else metric)
    ax.legend(loc="best", fontsize="small")
    _time_axis(ax)
    return ax


def _time_axis(ax: Axes) -> None:
    """Label the x axis as clock times (``14:02:05``, ``14:02:05.5``), the
    date and year once in the offset; matplotlib's concise default labels
    sub-minute ticks with seconds alone (``02.0``, ``02.5``)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call,unused-ignore]
    # Tick levels: years, months, days, hours, minutes, seconds and below.
    formatter = mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call,unused-ignore]
        locator,
        formats=["%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S.%f"],
        zero_formats=["", "%Y", "%b", "%b-%d", "%H:%M", "%H:%M:%S.%f"],
        offset_formats=["", "%Y", "%Y-%b", "%Y-%b-%d", "%Y-%b-%d", "%Y-%b-%d"],
    )
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)
