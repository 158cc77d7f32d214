"""``Snapshot``: what :meth:`ringstat.Registry.snapshot` returns.

A plain :class:`dict` (``{"timestamp": ..., "metrics": [...]}``, JSON-ready
as is) with three conveniences: ``to_pandas()``/``to_polars()`` (one row per
metric and labels, percentiles as columns), a rich HTML table in Jupyter,
and ``str()`` as an aligned text table for terminals. ``repr()`` stays the
dict's own.

This module imports nothing beyond the standard library: pandas, polars and
IPython are imported only when a conversion or display asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["Snapshot"]


class Snapshot(dict[str, Any]):
    """Every metric of a registry at one moment, as a plain dict.

    ``snap["timestamp"]`` is seconds since the Unix epoch and
    ``snap["metrics"]`` a list of ``{"name", "labels", "kind", "values"}``
    dicts (see :meth:`ringstat.Registry.snapshot`).
    """

    __slots__ = ()

    def to_pandas(self) -> pd.DataFrame:
        """One row per metric and labels: ``name``, ``labels`` (``"k=v,..."``),
        ``kind``, then the values, histogram percentiles as columns (``p50``,
        ``p99``...). ``df.attrs["timestamp"]`` is the snapshot's time.

        Needs pandas (``pip install "ringstat[notebook]"``).
        """
        from ringstat.frames import snapshot_frame

        return snapshot_frame(self, "pandas")

    def to_polars(self) -> pl.DataFrame:
        """As :meth:`to_pandas`, as a polars DataFrame (needs polars)."""
        from ringstat.frames import snapshot_frame

        return snapshot_frame(self, "polars")

    def _repr_html_(self) -> str:
        from ringstat.display import snapshot_html

        return snapshot_html(self)

    def __str__(self) -> str:
        from ringstat.display import snapshot_text

        return snapshot_text(self)
