"""ringstat.Pipeline end to end against what people do today.

Run it (not a test):

    python benches/python/bench_pipeline.py            # full run
    python benches/python/bench_pipeline.py --quick    # smoke run, seconds

The workload is the user-activity stream: for every user a login (session
start), a "seen" (distinct users) and a logout (session end, whose duration
goes into a histogram), sent in chunks of 4096 users (all starts, then all
seens, then all ends). Each contender ingests the same events and is timed
until every event is applied (``flush()`` included):

- **ringstat, one event per call**: resolved handles,
  ``online.start(user, ts)``, ``users.seen(user)``, ``online.end(user, ts)``.
  The pipeline counts starts, open sessions, durations and distinct users.
- **ringstat, numpy batches**: ``start_many``/``seen_many``/``end_many`` with
  uint64 keys and float64 timestamps, read in place.
- **baseline**: a ``queue.Queue(65536)`` and a consumer thread that updates
  a dict of open sessions, a set of users and ``prometheus_client``
  metrics (``Counter.inc()`` per login, ``Histogram.observe()`` per logout,
  ``Gauge.set()`` of the users online). Without ``prometheus_client`` the
  consumer keeps plain ints instead (noted).

Contenders run interleaved in rounds (A B C A B C ...), each round the best
of a few repeats; the table reports the median events per second and, per
contender, the median of its per-round speed-up over the baseline with its
spread. On a busy two-core machine (the pipeline's workers, the producer and
the baseline's consumer share the cores), trust the ratios, not the rates.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import ringstat

try:
    import numpy as np
except ImportError:  # numpy is optional: the batch row is skipped
    np = None  # type: ignore[assignment]

try:
    import prometheus_client
except ImportError:
    prometheus_client = None  # type: ignore[assignment]

CHUNK = 4096
"""Users per chunk of the workload."""

Events = list[tuple[int, int, float]]
"""(kind, user, ts): kind 0 = login, 1 = seen, 2 = logout."""


@dataclass
class Workload:
    users: int
    events: Events
    chunks: list[tuple[Any, Any, Any]]
    """Per chunk: (users uint64, login ts float64, logout ts float64), numpy."""


def workload(users: int) -> Workload:
    events: Events = []
    chunks: list[tuple[Any, Any, Any]] = []
    for lo in range(0, users, CHUNK):
        ids = range(lo, min(lo + CHUNK, users))
        starts = [1.0 + u * 1e-3 for u in ids]
        ends = [s + 60.0 + (u % 600) for s, u in zip(starts, ids)]
        events += [(0, u, t) for u, t in zip(ids, starts)]
        events += [(1, u, 0.0) for u in ids]
        events += [(2, u, t) for u, t in zip(ids, ends)]
        if np is not None:
            chunks.append(
                (
                    np.array(ids, dtype=np.uint64),
                    np.array(starts, dtype=np.float64),
                    np.array(ends, dtype=np.float64),
                )
            )
    return Workload(users, events, chunks)


# ----- contenders: each returns the function to time -------------------------------


def ringstat_single(w: Workload) -> Callable[[], None]:
    p = ringstat.Pipeline(workers=2)
    online, users = p.sessions("online"), p.distinct("users")
    start, seen, end = online.start, users.seen, online.end

    def run() -> None:
        for kind, user, ts in w.events:
            if kind == 0:
                start(user, ts)
            elif kind == 1:
                seen(user)
            else:
                end(user, ts)
        p.flush()

    return run


def ringstat_numpy(w: Workload) -> Callable[[], None]:
    p = ringstat.Pipeline(workers=2)
    online, users = p.sessions("online"), p.distinct("users")

    def run() -> None:
        for ids, starts, ends in w.chunks:
            online.start_many(ids, starts)
            users.seen_many(ids)
            online.end_many(ids, ends)
        p.flush()

    return run


def baseline(w: Workload) -> Callable[[], None]:
    if prometheus_client is not None:
        reg = prometheus_client.CollectorRegistry()
        logins = prometheus_client.Counter("logins", "logins", registry=reg)
        online_g = prometheus_client.Gauge("online", "users online", registry=reg)
        durations = prometheus_client.Histogram("online_seconds", "online time", registry=reg)
        inc, set_online, observe = logins.inc, online_g.set, durations.observe
    else:
        totals = {"logins": 0, "online": 0, "observed": 0}

        def inc() -> None:
            totals["logins"] += 1

        def set_online(v: float) -> None:
            totals["online"] = int(v)

        def observe(v: float) -> None:
            totals["observed"] += 1

    def run() -> None:
        q: queue.Queue[tuple[int, int, float] | None] = queue.Queue(65536)
        open_since: dict[int, float] = {}
        seen: set[int] = set()

        def consume() -> None:
            get = q.get
            while (ev := get()) is not None:
                kind, user, ts = ev
                if kind == 0:
                    inc()
                    open_since[user] = ts
                    set_online(len(open_since))
                elif kind == 1:
                    seen.add(user)
                else:
                    started = open_since.pop(user, None)
                    if started is not None:
                        observe(ts - started)
                        set_online(len(open_since))

        t = threading.Thread(target=consume)
        t.start()
        put = q.put
        for ev in w.events:
            put(ev)
        put(None)
        t.join()
        assert len(seen) == w.users
        assert not open_since

    return run


# ----- runner -------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    make: Callable[[Workload], Callable[[], None]]
    rates: list[float] = field(default_factory=list)  # events per second, per round


def measure(contenders: list[Contender], w: Workload, rounds: int, repeat: int) -> None:
    n = len(w.events)
    for _ in range(rounds):
        for c in contenders:  # interleaved: A B C A B C ...
            best = float("inf")
            for _ in range(repeat):
                fn = c.make(w)  # a fresh pipeline / queue, not timed
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            c.rates.append(n / best)


def table(contenders: list[Contender], base: Contender) -> str:
    lines = [
        "| contender | events/s (median) | ns/event | x baseline (median ratio) | ratio spread |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in contenders:
        ratios = [r / b for r, b in zip(c.rates, base.rates)]
        med = statistics.median(c.rates)
        lines.append(
            f"| {c.name} | {med:,.0f} | {1e9 / med:.0f} | "
            f"{statistics.median(ratios):.1f} | {min(ratios):.1f}-{max(ratios):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15)")
    parser.add_argument("--repeat", type=int, default=None, help="repeats per round (3)")
    parser.add_argument("--users", type=int, default=None, help="users (3 events each)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    repeat = args.repeat or (1 if args.quick else 3)
    users = args.users or (4096 if args.quick else 65536)
    w = workload(users)

    base_name = "queue.Queue + consumer thread + " + (
        "prometheus_client" if prometheus_client is not None else "plain dict (no prometheus)"
    )
    contenders = [
        Contender("ringstat, one event per call (handles)", ringstat_single),
        Contender(base_name, baseline),
    ]
    if np is not None:
        contenders.insert(1, Contender("ringstat, numpy batches", ringstat_numpy))
    measure(contenders, w, rounds, repeat)

    print(f"## ringstat {ringstat.__version__} pipeline, end to end (flush included)")
    print()
    print(
        f"Python {sys.version.split()[0]} ({sys.implementation.name}), {len(w.events):,} "
        f"events ({users:,} users x login, seen, logout), {rounds} interleaved rounds, "
        f"best of {repeat} per round" + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    if np is None:
        print("\nnumpy not installed: the batch row is skipped.")
    if prometheus_client is None:
        print("\nprometheus_client not installed: the baseline updates plain ints.")
    print()
    print(table(contenders, contenders[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
