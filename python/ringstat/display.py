"""Rich display: HTML tables for Jupyter and aligned text for terminals.

Jupyter calls ``_repr_html_`` on ``Registry``, ``Histogram`` and snapshots
(``Registry.snapshot()``), which render here. Every string that comes from
a metric (names, label keys and values) is escaped with :func:`html.escape`.
Only the standard library is used.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ringstat._ringstat import Histogram, Registry

__all__ = [
    "histogram_html",
    "histogram_text",
    "metric_summary",
    "registry_html",
    "snapshot_html",
    "snapshot_text",
]

_STYLE = (
    "<style>"
    ".ringstat table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    ".ringstat th,.ringstat td{padding:2px 8px;text-align:left;vertical-align:middle}"
    ".ringstat td.num{text-align:right}"
    ".ringstat caption{text-align:left;font-weight:bold;padding-bottom:4px}"
    ".ringstat .muted{opacity:.65}"
    "</style>"
)
_BAR_COLOR = "#4c72b0"
_BARS = 40


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A number for people: ints with thousands separators, floats with 4
    significant digits (2 decimals from 1000 up), ``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _labels_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def _timestamp_text(timestamp: float) -> str:
    t = _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def metric_summary(metric: Mapping[str, Any]) -> tuple[str, str]:
    """``(value, details)`` texts for one metric of a snapshot: the main
    number (a counter's total, a gauge's value, a histogram's count, a
    rate's events per second) and the rest in one line."""
    kind = metric["kind"]
    v = metric["values"]
    if kind == "counter":
        return fmt(v["value"]), ""
    if kind == "gauge":
        return fmt(v["value"]), f"min {fmt(v['min'])}  max {fmt(v['max'])}"
    if kind == "histogram":
        count = v["count"]
        parts = [f"mean {fmt(v['sum'] / count if count else None)}"]
        parts += [f"{k} {fmt(p)}" for k, p in v["percentiles"].items()]
        parts.append(f"max {fmt(v['max'])}")
        if v.get("rejected"):
            parts.append(f"rejected {fmt(v['rejected'])}")
        return fmt(count), "  ".join(parts)
    if kind == "rate":
        details = f"total {fmt(v['total'])}  {fmt(v['in_window'])} in {fmt(v['window'])} s"
        return f"{fmt(v['per_second'])}/s", details
    return "", ", ".join(f"{k}={fmt(x)}" for k, x in v.items())  # pragma: no cover


def _percentile_bar(values: Mapping[str, Any], width: int = 160, height: int = 14) -> str:
    """An inline SVG: a line from min to max (log scale) with a tick at each
    percentile, the first one thicker."""
    lo, hi = values.get("min"), values.get("max")
    if lo is None or hi is None:
        return ""
    span = math.log1p(max(hi - lo, 0))

    def x(v: float) -> float:
        frac = math.log1p(max(v - lo, 0)) / span if span > 0 else 0.5
        return 2 + frac * (width - 4)

    mid = height / 2
    parts = [
        f'<svg width="{width}" height="{height}" role="img" '
        f'aria-label="{_e("distribution from min to max")}">',
        f'<line x1="2" y1="{mid}" x2="{width - 2}" y2="{mid}" stroke="#999" stroke-width="1"/>',
        f"<title>{_e(f'min {fmt(lo)} .. max {fmt(hi)}')}</title>",
    ]
    for i, (key, v) in enumerate(values.get("percentiles", {}).items()):
        if v is None:
            continue
        px = x(v)
        w = 3 if i == 0 else 1.5
        parts.append(
            f'<line x1="{px:.1f}" y1="1" x2="{px:.1f}" y2="{height - 1}" '
            f'stroke="{_BAR_COLOR}" stroke-width="{w}">'
            f"<title>{_e(f'{key} {fmt(v)}')}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def snapshot_html(snapshot: Mapping[str, Any], title: str = "ringstat snapshot") -> str:
    """A snapshot as an HTML table: metric, labels, kind, value, details,
    and a small min-to-max bar with percentile ticks for histograms."""
    metrics: Sequence[Mapping[str, Any]] = snapshot["metrics"]
    caption = (
        f"{_e(title)} <span class='muted'>({len(metrics)} metrics, "
        f"{_e(_timestamp_text(snapshot['timestamp']))})</span>"
    )
    rows = []
    for m in metrics:
        value, details = metric_summary(m)
        bar = _percentile_bar(m["values"]) if m["kind"] == "histogram" else ""
        labels = ", ".join(f"{k}={m['labels'][k]}" for k in sorted(m["labels"]))
        rows.append(
            "<tr>"
            f"<td><code>{_e(m['name'])}</code></td>"
            f"<td>{_e(labels)}</td>"
            f"<td class='muted'>{_e(m['kind'])}</td>"
            f"<td class='num'><b>{_e(value)}</b></td>"
            f"<td>{_e(details)}</td>"
            f"<td>{bar}</td>"
            "</tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='6' class='muted'>no metrics yet</td></tr>")
    return (
        f"{_STYLE}<div class='ringstat'><table><caption>{caption}</caption>"
        "<thead><tr><th>metric</th><th>labels</th><th>kind</th><th>value</th>"
        "<th>details</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def registry_html(registry: Registry) -> str:
    """A fresh snapshot of ``registry`` as an HTML table."""
    return snapshot_html(registry.snapshot(), title="ringstat.Registry")


def _bucket_bars(
    buckets: Sequence[tuple[float, float, int]], width: int = 320, height: int = 48
) -> str:
    """An inline SVG bar chart of a histogram's buckets (at most 40 bars,
    neighbouring buckets merged), bar heights relative to the tallest."""
    if not buckets:
        return ""
    group = max(1, math.ceil(len(buckets) / _BARS))
    bars = []
    for i in range(0, len(buckets), group):
        chunk = buckets[i : i + group]
        bars.append((chunk[0][0], chunk[-1][1], sum(c for _, _, c in chunk)))
    tallest = max(c for _, _, c in bars) or 1
    bw = width / len(bars)
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{_e("bucket counts")}">'
    ]
    for i, (lo, hi, c) in enumerate(bars):
        h = max(1.0, c / tallest * (height - 2))
        parts.append(
            f'<rect x="{i * bw:.1f}" y="{height - h:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{_BAR_COLOR}"><title>{_e(f"{lo}..{hi}: {c}")}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram_html(hist: Histogram, percentiles: Sequence[float] = (50, 90, 99, 99.9)) -> str:
    """A histogram as HTML: count, mean, min, max, percentiles and rejected
    in a table, and a small bar chart of its buckets."""
    s = hist.snapshot(percentiles)
    cells = [("count", fmt(s["count"])), ("mean", fmt(hist.mean)), ("min", fmt(s["min"]))]
    cells += [(k, fmt(v)) for k, v in s["percentiles"].items()]
    cells += [("max", fmt(s["max"])), ("rejected", fmt(s["rejected"]))]
    head = "".join(f"<th>{_e(k)}</th>" for k, _ in cells)
    body = "".join(f"<td class='num'>{_e(v)}</td>" for _, v in cells)
    caption = (
        "ringstat.Histogram <span class='muted'>"
        f"(0..={_e(fmt(hist.max_value))}, {hist.significant_digits} significant digits)</span>"
    )
    bars = _bucket_bars(hist.buckets()) if s["count"] else ""
    return (
        f"{_STYLE}<div class='ringstat'><table><caption>{caption}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody><tr>{body}</tr></tbody></table>"
        f"{bars}</div>"
    )


def histogram_text(hist: Histogram) -> str:
    """A histogram's summary on one line, for terminals."""
    s = hist.snapshot()
    parts = [f"count {fmt(s['count'])}", f"mean {fmt(hist.mean)}", f"min {fmt(s['min'])}"]
    parts += [f"{k} {fmt(v)}" for k, v in s["percentiles"].items()]
    parts.append(f"max {fmt(s['max'])}")
    return "  ".join(parts)


def snapshot_text(snapshot: Mapping[str, Any]) -> str:
    """A snapshot as an aligned text table (what ``print(snapshot)`` shows)."""
    metrics: Sequence[Mapping[str, Any]] = snapshot["metrics"]
    lines = [f"ringstat snapshot at {_timestamp_text(snapshot['timestamp'])}"]
    if not metrics:
        return lines[0] + "\n  (no metrics)"
    rows = []
    for m in metrics:
        value, details = metric_summary(m)
        rows.append((m["name"] + _labels_text(m["labels"]), m["kind"], value, details))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for name, kind, value, details in rows:
        lines.append(f"  {name:<{w0}}  {kind:<{w1}}  {value:>{w2}}  {details}".rstrip())
    return "\n".join(lines)
