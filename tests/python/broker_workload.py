"""The user-activity workload of the broker tests (test_broker.py,
test_kafka.py), shared without importing any broker client."""

from __future__ import annotations

from typing import Any

import ringstat
from ringstat.broker._shipper import ShipperBase

USERS = 300


def workload(s: ShipperBase, start: int, stop: int) -> None:
    """The user-activity events of users ``start..stop``."""
    for u in range(start, stop):
        s.count("logins")
        s.session_start("online", u, ts_ns=1_000_000_000 + u)
        s.seen("users", u)
        s.observe("latency_us", u % 97)
        if u % 3 == 0:
            s.session_end("online", u, ts_ns=2_000_000_000 + u)


def expected(start: int, stop: int) -> dict[str, Any]:
    n = stop - start
    ended = sum(1 for u in range(start, stop) if u % 3 == 0)
    return {
        "logins": n,
        "online_open": n - ended,
        "latency_count": n,
        "latency_sum": sum(u % 97 for u in range(start, stop)),
    }


def aggregator() -> ringstat.Pipeline:
    p = ringstat.Pipeline(ringstat.Registry())
    p.histogram("latency_us", max_value=1000)
    return p


def observed(p: ringstat.Pipeline) -> dict[str, Any]:
    p.flush()
    reg = p.registry
    h = reg.histogram("latency_us", max_value=1000)
    return {
        "logins": reg.counter("logins").value,
        "online_open": reg.gauge("online_open").value,
        "latency_count": h.count,
        "latency_sum": int(h.sum),
    }
