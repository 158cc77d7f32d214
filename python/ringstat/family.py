"""``Family``: a metric with label names declared up front, and its children.

What ``registry.counter(name, labelnames=[...])`` returns, as
``prometheus_client``'s labelled metrics::

    requests = registry.counter("requests", help="HTTP requests.", labelnames=["method"])
    requests.labels("GET").inc()
    requests.labels(method="POST").inc(2)

Each ``labels(...)`` returns the registry's series for those label values (a
plain :class:`ringstat.Counter`, ``Gauge``, ``Histogram`` or ``Rate``),
created on first use and cached, so the same values give the same object.
Values are converted with ``str()``, as prometheus_client does
(``labels(200)`` is ``labels("200")``). A registry created with
``max_series`` raises :class:`ringstat.SeriesLimitError` for a new series
past the limit. Series are never removed (the registry keeps every series it
created).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Family"]

_M = TypeVar("_M")


class Family(Generic[_M]):
    """The series of one metric name over declared label names; ``labels()``
    picks (or creates) one."""

    __slots__ = ("_children", "_labelnames", "_make", "_name")

    def __init__(
        self,
        name: str,
        labelnames: Iterable[str],
        make: Callable[[Mapping[str, str]], _M],
    ) -> None:
        """A family of ``name`` whose series ``make(labels)`` returns (the
        registry's get-or-create). Use ``registry.counter(name, labelnames=...)``
        and friends rather than this constructor."""
        if isinstance(labelnames, str):
            raise TypeError("labelnames must be an iterable of str (a list or tuple), not str")
        try:
            it = iter(labelnames)
        except TypeError:
            raise TypeError(
                f"labelnames must be an iterable of str, not {type(labelnames).__name__}"
            ) from None
        # One by one, not tuple(labelnames): a wrong __len__ must not size it.
        collected: list[str] = []
        for n in it:
            if not isinstance(n, str):
                raise TypeError(f"labelnames must hold str, not {type(n).__name__}")
            collected.append(n)
        names = tuple(collected)
        if not names:
            raise ValueError("labelnames must name at least one label")
        if len(set(names)) != len(names):
            raise ValueError(f"labelnames must be distinct, got {list(names)!r}")
        self._name = name
        self._labelnames = names
        self._make = make
        # Label values (all str) -> the series; only ever added to.
        self._children: dict[tuple[str, ...], _M] = {}

    @property
    def name(self) -> str:
        """The metric name."""
        return self._name

    @property
    def labelnames(self) -> tuple[str, ...]:
        """The label names, in the order ``labels()`` takes them positionally."""
        return self._labelnames

    def labels(self, *values: object, **kwvalues: object) -> _M:
        """The series for these label values: positional in ``labelnames``
        order, or by name (not both). Values are converted with ``str()``.
        Raises ``ValueError`` for a wrong number or wrong names of labels,
        as prometheus_client does."""
        if kwvalues:
            if values:
                raise ValueError("Can't pass both *args and **kwargs")
            if len(kwvalues) != len(self._labelnames) or any(
                n not in kwvalues for n in self._labelnames
            ):
                raise ValueError(
                    f"Incorrect label names: expected {list(self._labelnames)!r}, "
                    f"got {sorted(kwvalues)!r}"
                )
            values = tuple(kwvalues[n] for n in self._labelnames)
        elif len(values) != len(self._labelnames):
            raise ValueError(
                f"Incorrect label count: expected {len(self._labelnames)} "
                f"({', '.join(self._labelnames)}), got {len(values)}"
            )
        # Keys are all-str tuples: a tuple holding a non-str misses here and
        # is looked up again as strings.
        child = self._children.get(values)  # type: ignore[arg-type]
        if child is not None:
            return child
        key = tuple(v if type(v) is str else str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            made = self._make(dict(zip(self._labelnames, key)))
            # Two threads may both create it: the registry returns the same
            # series to both, and one handle is kept.
            child = self._children.setdefault(key, made)
        return child

    def __repr__(self) -> str:
        return (
            f"<ringstat.Family {self._name!r} labelnames={list(self._labelnames)!r} "
            f"series={len(self._children)}>"
        )
