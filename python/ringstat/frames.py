"""DataFrames from ringstat snapshots, histograms and recorders.

- :func:`snapshot_frame`: one row per metric and labels, percentiles as
  columns (what ``Registry.snapshot().to_pandas()`` returns);
- :func:`histogram_frame`: a histogram's non-empty buckets;
- :func:`recorder_frame`: a recorder's samples as a tidy frame
  (``timestamp, metric, labels, field, value``), ready for
  ``df.pivot_table`` or plotting.

pandas (and polars, for the ``"polars"`` backend) are imported only when a
function is called; without them the error says what to install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from ringstat._ringstat import Histogram, Recorder

__all__ = [
    "format_labels",
    "histogram_frame",
    "recorder_frame",
    "snapshot_frame",
    "snapshot_rows",
    "tidy_rows",
]

Backend = Literal["pandas", "polars"]

_INSTALL_HINT = 'pip install "ringstat[notebook]"'

# Column order of a snapshot frame, after name, labels and kind; histogram
# percentiles (p50, p99.9, ...) follow "rejected" in the order asked for.
_LEADING = ("value", "min", "max", "count", "sum", "mean", "rejected")
_TRAILING = ("total", "in_window", "per_second", "window")


def _need(module: str, hint: str) -> None:
    """Raises an ImportError that says what to install if ``module`` is
    missing (imported here, so the caller's own import then finds it)."""
    try:
        __import__(module)
    except ImportError as e:
        raise ImportError(f"ringstat needs {module} for this: {hint}") from e


def _need_pandas() -> None:
    _need("pandas", _INSTALL_HINT)


def _need_polars() -> None:
    _need("polars", "pip install polars")


def format_labels(labels: Mapping[str, str]) -> str:
    """``{"region": "eu", "zone": "a"}`` as ``"region=eu,zone=a"`` (sorted by
    label name; ``""`` for no labels)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _flat_values(kind: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's values as flat fields: percentiles lifted to the top level
    and, for histograms, ``mean`` (``None`` while empty)."""
    out: dict[str, Any] = {k: v for k, v in values.items() if k != "percentiles"}
    if kind == "histogram":
        count = values.get("count") or 0
        out["mean"] = values["sum"] / count if count else None
        out.update(values.get("percentiles", {}))
    return out


def snapshot_rows(snapshot: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of :func:`snapshot_frame` as dicts, and the column order."""
    rows: list[dict[str, Any]] = []
    percentile_cols: dict[str, None] = {}
    seen: set[str] = set()
    for m in snapshot["metrics"]:
        flat = _flat_values(m["kind"], m["values"])
        if m["kind"] == "histogram":
            percentile_cols.update(dict.fromkeys(m["values"].get("percentiles", {})))
        seen.update(flat)
        row = {"name": m["name"], "labels": format_labels(m["labels"]), "kind": m["kind"]}
        row.update(flat)
        rows.append(row)
    columns = ["name", "labels", "kind"]
    columns += [c for c in _LEADING if c in seen]
    columns += list(percentile_cols)
    columns += [c for c in _TRAILING if c in seen]
    return rows, columns


@overload
def snapshot_frame(
    snapshot: Mapping[str, Any], backend: Literal["pandas"] = "pandas"
) -> pd.DataFrame: ...
@overload
def snapshot_frame(snapshot: Mapping[str, Any], backend: Literal["polars"]) -> pl.DataFrame: ...
def snapshot_frame(
    snapshot: Mapping[str, Any], backend: Backend = "pandas"
) -> pd.DataFrame | pl.DataFrame:
    """A snapshot (``Registry.snapshot()``) as a DataFrame: one row per metric
    and labels; columns ``name``, ``labels`` (``"k=v,..."``), ``kind``, then
    ``value, min, max, count, sum, mean, rejected``, the histogram
    percentiles (``p50``, ``p90``...), and ``total, in_window, per_second,
    window``, each present if some metric has it (missing cells are
    NaN/null). pandas frames carry the snapshot's time in
    ``df.attrs["timestamp"]``."""
    rows, columns = snapshot_rows(snapshot)
    data = {c: [r.get(c) for r in rows] for c in columns}
    if backend == "polars":
        _need_polars()
        import polars as pl

        return pl.DataFrame(data, strict=False)
    _check_backend(backend)
    _need_pandas()
    import pandas as pd

    df: pd.DataFrame = pd.DataFrame(data, columns=columns)
    df.attrs["timestamp"] = snapshot["timestamp"]
    return df


@overload
def histogram_frame(hist: Histogram, backend: Literal["pandas"] = "pandas") -> pd.DataFrame: ...
@overload
def histogram_frame(hist: Histogram, backend: Literal["polars"]) -> pl.DataFrame: ...
def histogram_frame(hist: Histogram, backend: Backend = "pandas") -> pd.DataFrame | pl.DataFrame:
    """A histogram's non-empty buckets, in value order: ``low`` and ``high``
    (the bucket's inclusive value range: ints, or floats for a histogram
    with a ``unit``), ``count``, ``fraction`` (of all
    values) and ``cumulative`` (fraction of values ``<= high``)."""
    buckets = hist.buckets()
    total = sum(c for _, _, c in buckets)
    running = 0
    cumulative: list[float] = []
    for _, _, c in buckets:
        running += c
        cumulative.append(running / total)
    data: dict[str, list[Any]] = {
        "low": [lo for lo, _, _ in buckets],
        "high": [hi for _, hi, _ in buckets],
        "count": [c for _, _, c in buckets],
        "fraction": [c / total for _, _, c in buckets],
        "cumulative": cumulative,
    }
    if backend == "polars":
        _need_polars()
        import polars as pl

        return pl.DataFrame(data)
    _check_backend(backend)
    _need_pandas()
    import pandas as pd

    # A histogram with a unit holds floats (its bounds are fractions).
    bound = "uint64" if hist.unit is None else "float64"
    frame: pd.DataFrame = pd.DataFrame(
        {
            "low": pd.Series(data["low"], dtype=bound),
            "high": pd.Series(data["high"], dtype=bound),
            "count": pd.Series(data["count"], dtype="uint64"),
            "fraction": pd.Series(data["fraction"], dtype="float64"),
            "cumulative": pd.Series(data["cumulative"], dtype="float64"),
        }
    )
    return frame


def tidy_rows(
    samples: Iterable[Mapping[str, Any]],
) -> tuple[list[float], list[str], list[str], list[str], list[float]]:
    """Snapshots flattened into the columns of :func:`recorder_frame`:
    ``(timestamps, metrics, labels, fields, values)``, ``None`` values as
    NaN."""
    ts: list[float] = []
    metrics: list[str] = []
    labels: list[str] = []
    fields: list[str] = []
    values: list[float] = []
    nan = float("nan")
    for s in samples:
        t = float(s["timestamp"])
        for m in s["metrics"]:
            name = m["name"]
            lab = format_labels(m["labels"])
            for field, v in _flat_values(m["kind"], m["values"]).items():
                ts.append(t)
                metrics.append(name)
                labels.append(lab)
                fields.append(field)
                values.append(nan if v is None else float(v))
    return ts, metrics, labels, fields, values


@overload
def recorder_frame(
    recorder: Recorder | Sequence[Mapping[str, Any]], backend: Literal["pandas"] = "pandas"
) -> pd.DataFrame: ...
@overload
def recorder_frame(
    recorder: Recorder | Sequence[Mapping[str, Any]], backend: Literal["polars"]
) -> pl.DataFrame: ...
def recorder_frame(
    recorder: Recorder | Sequence[Mapping[str, Any]], backend: Backend = "pandas"
) -> pd.DataFrame | pl.DataFrame:
    """A recorder's samples (or any list of snapshots) as a tidy frame: one
    row per ``timestamp`` (UTC datetime), ``metric``, ``labels``
    (``"k=v,..."``), ``field`` (``value``, ``per_second``, ``p99``...) and
    ``value`` (float; NaN for an empty histogram's percentiles).

    >>> df = recorder.to_pandas()  # doctest: +SKIP
    >>> df[df.field == "per_second"].pivot_table(
    ...     index="timestamp", columns="metric", values="value"
    ... )  # doctest: +SKIP
    """
    samples = recorder if isinstance(recorder, Sequence) else recorder.samples()
    ts, metrics, labels, fields, values = tidy_rows(samples)
    if backend == "polars":
        _need_polars()
        import polars as pl

        ms = pl.Series("timestamp", [round(t * 1000) for t in ts], dtype=pl.Int64)
        return pl.DataFrame(
            {
                "timestamp": pl.from_epoch(ms, time_unit="ms").dt.replace_time_zone("UTC"),
                "metric": metrics,
                "labels": labels,
                "field": fields,
                "value": pl.Series(values, dtype=pl.Float64),
            }
        )
    _check_backend(backend)
    _need_pandas()
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(
        {
            # Snapshot times are whole milliseconds: convert exactly.
            "timestamp": pd.to_datetime(
                pd.Series([round(t * 1000) for t in ts], dtype="int64"), unit="ms", utc=True
            ),
            "metric": pd.Series(metrics, dtype="object"),
            "labels": pd.Series(labels, dtype="object"),
            "field": pd.Series(fields, dtype="object"),
            "value": pd.Series(values, dtype="float64"),
        }
    )
    return frame


def _check_backend(backend: str) -> None:
    if backend != "pandas":
        raise ValueError(f'backend must be "pandas" or "polars", got {backend!r}')
