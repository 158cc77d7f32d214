"""A ringstat registry inside ``prometheus_client``'s registry.

For a service that keeps ``prometheus_client`` (its ``/metrics`` endpoint,
its own metrics, its multiprocess mode): register a :class:`RingstatCollector`
and every ringstat metric appears in ``generate_latest()`` next to the
``prometheus_client`` ones::

    from prometheus_client import REGISTRY
    from ringstat.prometheus import RingstatCollector

    REGISTRY.register(RingstatCollector(registry))

Each scrape takes one :meth:`ringstat.Registry.snapshot` and converts it:
counters to counters (``<name>_total``), gauges to gauges, histograms to
summaries (a ``quantile`` sample per percentile, ``_sum``, ``_count``), rates
to gauges (events per second over the window): the names, labels and values
of :meth:`ringstat.Registry.to_prometheus`. The snapshot carries no help
texts, so the families' ``# HELP`` lines are empty.

Needs ``prometheus_client`` (``pip install prometheus-client``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from prometheus_client.core import Metric

from ringstat._ringstat import Registry

__all__ = ["RingstatCollector"]

# ringstat kind -> prometheus_client type
_TYPES = {"counter": "counter", "gauge": "gauge", "rate": "gauge", "histogram": "summary"}


def _quantile_label(key: str) -> str:
    """``"p99.9"`` -> ``"0.999"``: the ``quantile`` label that to_prometheus
    writes for a snapshot's percentile key (the percentile shifted two decimal
    places, not divided by 100, then written in positional notation, whole
    numbers without a fraction: ``"1"``, ``"0.00001"``)."""
    q = Decimal(repr(float(f"{key[1:]}e-2") + 0.0))
    text = format(q, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class RingstatCollector:
    """A ``prometheus_client`` collector exposing ``registry``'s metrics, read
    at each ``collect()`` (each scrape). ``percentiles`` are the histograms'
    quantiles (default: the registry's, 50, 90, 99 and 99.9)."""

    def __init__(self, registry: Registry, *, percentiles: Iterable[float] | None = None) -> None:
        if not callable(getattr(registry, "snapshot", None)):
            raise TypeError(
                f"registry must have a snapshot() method, not {type(registry).__name__}"
            )
        self.registry = registry
        self.percentiles = None if percentiles is None else tuple(percentiles)

    def collect(self) -> Iterator[Metric]:
        """One family per ringstat metric name, in the registry's order."""
        snap = (
            self.registry.snapshot()
            if self.percentiles is None
            else self.registry.snapshot(self.percentiles)
        )
        families: dict[str, Metric] = {}
        for m in snap["metrics"]:
            name, kind = m["name"], m["kind"]
            labels: dict[str, str] = dict(m["labels"])
            values: dict[str, Any] = m["values"]
            base = name[: -len("_total")] if kind == "counter" and name.endswith("_total") else name
            family = families.get(base)
            if family is None:
                family = families[base] = Metric(base, "", _TYPES[kind])
            if kind == "counter":
                family.add_sample(f"{base}_total", labels, values["value"])
            elif kind == "gauge":
                family.add_sample(name, labels, values["value"])
            elif kind == "rate":
                family.add_sample(name, labels, values["per_second"])
            else:
                for key, v in values["percentiles"].items():
                    q = {**labels, "quantile": _quantile_label(key)}
                    family.add_sample(name, q, math.nan if v is None else v)
                family.add_sample(f"{name}_sum", labels, values["sum"])
                family.add_sample(f"{name}_count", labels, values["count"])
        yield from families.values()
