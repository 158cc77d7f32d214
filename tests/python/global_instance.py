"""One instance for test_global.py: the user-activity events of users
START..STOP into its own pipeline, published as state updates to QUEUE
while it runs; exits after its last update is confirmed.

    python global_instance.py URL QUEUE START STOP
"""

from __future__ import annotations

import sys

import ringstat
from ringstat.broker import StatePublisher


def workload(p: ringstat.Pipeline, start: int, stop: int) -> None:
    """The events of users ``start..stop`` (test_global.py replays them
    into one pipeline to compare)."""
    for u in range(start, stop):
        p.count("logins")
        p.session_start("online", u, ts=1000.0 + u / 1000)
        p.seen("users", u)
        p.observe("latency_us", u % 97)
        if u % 3 == 0:
            p.session_end("online", u, ts=2000.0 + u / 1000)


def pipeline() -> ringstat.Pipeline:
    p = ringstat.Pipeline(ringstat.Registry())
    p.histogram("latency_us", max_value=1000)
    return p


def main() -> None:
    url, queue, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    p = pipeline()
    pub = StatePublisher(url, p, queue, interval=0.02)
    step = max(1, (stop - start) // 10)
    for lo in range(start, stop, step):
        workload(p, lo, min(lo + step, stop))
    p.flush()
    if not pub.close(timeout=120):
        sys.exit("last update not confirmed")
    p.close()


if __name__ == "__main__":
    main()
