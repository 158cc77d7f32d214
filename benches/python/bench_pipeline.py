"""ringstat.Pipeline end to end against what people do today.

Run it (not a test):

    python benches/python/bench_pipeline.py            # full run
    python benches/python/bench_pipeline.py --quick    # smoke run, seconds

The workload is the user-activity stream: for every user a login (session
start), a "seen" (distinct users) and a logout (session end, whose duration
goes into a histogram), sent in chunks of 4096 users (all starts, then all
seens, then all ends). Each contender ingests the same events and is timed
until every event is applied (``flush()`` or the consumer's ``join()``
included); then, untimed, its counts are checked (users logged in and out,
sessions still open, durations recorded, distinct users), so no contender
can win by dropping work.

- **ringstat, one event per call**: resolved handles,
  ``online.start(user, ts)``, ``users.seen(user)``, ``online.end(user, ts)``,
  into a ``Pipeline(workers=2)`` that counts starts, open sessions,
  durations (histogram) and distinct users (HyperLogLog, checked within
  5 %). An A/A row runs it twice as two contenders.
- **ringstat, numpy batches**: ``start_many``/``seen_many``/``end_many``
  with uint64 keys and float64 timestamps (the binding copies each array
  in chunks of 64 KiB).
- **SimpleQueue + consumer thread**: a ``queue.SimpleQueue`` (C) and a
  consumer thread doing the same work in plain Python: an int of logins, a
  dict of open sessions, a set of users, a list of durations. The anchor of
  the one-event-per-call target.
- **inline**: the same plain-Python work done by the producing thread
  itself, no queue and no thread: what a single-threaded service pays.
- **floor**: the same producer loop calling a no-op C builtin
  (``dict.get``) per event: no work, no queue. No per-event API can beat
  it, so its speed-up over a baseline is the ceiling of the one-event-per-
  call row's.
- **SimpleQueue of numpy chunks + consumer thread**: the batched baseline
  for the numpy row; the consumer applies each chunk with bulk dict/set
  operations.
- **queue.Queue + consumer thread + prometheus_client**: the
  ``queue.Queue(65536)`` (pure Python) and consumer thread of the common
  setup, updating a dict, a set and ``prometheus_client`` metrics
  (``Counter.inc()`` per login, ``Histogram.observe()`` per logout,
  ``Gauge.set()`` of the users online). Without ``prometheus_client`` it is
  skipped.

Contenders run interleaved in rounds (A B C, B C A, ...), each round the best
of a few repeats. The first table gives the median events per second; the
second, each ringstat row's speed-up over each baseline: per round,
ringstat's rate over the baseline's, as the median with a ~95 % confidence
interval for it (order statistics) and the min-max. A target is met only
when the lower end of its interval clears it. On a busy two-core machine
(the pipeline's workers, the producer and a consumer share the cores), trust
the ratios, not the rates.
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
from bench_queue import Target, interval_note, median_interval, verdict

try:
    import numpy as np
except ImportError:  # numpy is optional: the batch rows are skipped
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


Run = Callable[[], None]
"""The timed part: ingest every event and wait until it is applied."""
Check = Callable[[], None]
"""Untimed, after the run: assert the counts, release threads."""


# ----- ringstat -------------------------------------------------------------------------


def ringstat_check(p: Any, w: Workload) -> Check:
    def check() -> None:
        p.close()
        n = w.users
        stats = p.stats()
        assert stats["applied"] == stats["received"] == 3 * n, stats
        assert stats["dropped"] == stats["rejected"] == 0, stats
        got = {m["name"]: m["values"] for m in p.registry.snapshot()["metrics"]}
        assert got["online_started_total"]["value"] == n, got
        assert got["online_completed_total"]["value"] == n, got
        assert got["online_open"]["value"] == 0, got
        assert got["online_duration_ms"]["count"] == n, got
        distinct = p.distinct_count("users")
        assert abs(distinct - n) <= 0.05 * n, (distinct, n)

    return check


def ringstat_single(w: Workload) -> tuple[Run, Check]:
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

    return run, ringstat_check(p, w)


def ringstat_numpy(w: Workload) -> tuple[Run, Check]:
    p = ringstat.Pipeline(workers=2)
    online, users = p.sessions("online"), p.distinct("users")

    def run() -> None:
        for ids, starts, ends in w.chunks:
            online.start_many(ids, starts)
            users.seen_many(ids)
            online.end_many(ids, ends)
        p.flush()

    return run, ringstat_check(p, w)


# ----- plain Python baselines -----------------------------------------------------------


class Plain:
    """The plain-Python work per event: logins counted, open sessions in a
    dict, users in a set, durations in a list (a histogram is built on read)."""

    def __init__(self) -> None:
        self.logins = 0
        self.open_since: dict[int, float] = {}
        self.seen: set[int] = set()
        self.durations: list[float] = []

    def apply(self, kind: int, user: int, ts: float) -> None:
        if kind == 0:
            self.logins += 1
            self.open_since[user] = ts
        elif kind == 1:
            self.seen.add(user)
        else:
            started = self.open_since.pop(user, None)
            if started is not None:
                self.durations.append(ts - started)

    def apply_chunk(self, kind: int, ids: Any, ts: Any) -> None:
        """One chunk of numpy arrays, with bulk dict/set operations."""
        users = ids.tolist()
        if kind == 0:
            self.logins += len(users)
            self.open_since.update(zip(users, ts.tolist()))
        elif kind == 1:
            self.seen.update(users)
        else:
            pop, append = self.open_since.pop, self.durations.append
            for user, end in zip(users, ts.tolist()):
                started = pop(user, None)
                if started is not None:
                    append(end - started)

    def check(self, w: Workload) -> None:
        n = w.users
        assert self.logins == n
        assert not self.open_since
        assert len(self.seen) == n
        assert len(self.durations) == n


def simplequeue_thread(w: Workload) -> tuple[Run, Check]:
    state = Plain()

    def run() -> None:
        q: queue.SimpleQueue[tuple[int, int, float] | None] = queue.SimpleQueue()
        apply = state.apply

        def consume() -> None:
            get = q.get
            while (ev := get()) is not None:
                apply(*ev)

        t = threading.Thread(target=consume)
        t.start()
        put = q.put
        for ev in w.events:
            put(ev)
        put(None)
        t.join()

    return run, lambda: state.check(w)


def inline(w: Workload) -> tuple[Run, Check]:
    state = Plain()

    def run() -> None:
        apply = state.apply
        for kind, user, ts in w.events:
            apply(kind, user, ts)

    return run, lambda: state.check(w)


def floor(w: Workload) -> tuple[Run, Check]:
    def run() -> None:
        empty: dict[int, float] = {}
        get = empty.get  # a C call that does nothing: the loop's and a call's cost
        for kind, user, ts in w.events:
            if kind == 0:
                get(user, ts)
            elif kind == 1:
                get(user)
            else:
                get(user, ts)

    return run, lambda: None  # no work to check


def simplequeue_chunks(w: Workload) -> tuple[Run, Check]:
    state = Plain()

    def run() -> None:
        q: queue.SimpleQueue[tuple[int, Any, Any] | None] = queue.SimpleQueue()
        apply_chunk = state.apply_chunk

        def consume() -> None:
            get = q.get
            while (item := get()) is not None:
                apply_chunk(*item)

        t = threading.Thread(target=consume)
        t.start()
        put = q.put
        for ids, starts, ends in w.chunks:
            put((0, ids, starts))
            put((1, ids, None))
            put((2, ids, ends))
        put(None)
        t.join()

    return run, lambda: state.check(w)


def queue_prometheus(w: Workload) -> tuple[Run, Check]:
    pc = prometheus_client
    assert pc is not None
    reg = pc.CollectorRegistry()
    logins = pc.Counter("logins", "logins", registry=reg)
    online_g = pc.Gauge("online", "users online", registry=reg)
    durations = pc.Histogram("online_seconds", "online time", registry=reg)
    inc, set_online, observe = logins.inc, online_g.set, durations.observe
    open_since: dict[int, float] = {}
    seen: set[int] = set()

    def run() -> None:
        q: queue.Queue[tuple[int, int, float] | None] = queue.Queue(65536)

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

    def check() -> None:
        n = w.users
        assert len(seen) == n
        assert not open_since
        assert reg.get_sample_value("logins_total") == n
        assert reg.get_sample_value("online_seconds_count") == n
        assert reg.get_sample_value("online") == 0

    return run, check


# ----- runner -------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    make: Callable[[Workload], tuple[Run, Check]]
    rates: list[float] = field(default_factory=list)  # events per second, per round


@dataclass
class Comparison:
    ours: Contender
    anchor: Contender
    target: Target | None = None


def measure(contenders: list[Contender], w: Workload, rounds: int, repeat: int) -> None:
    n = len(w.events)
    for r in range(rounds):
        # Interleaved, each round starting one contender later (A B C, B C A,
        # ...): no contender always runs first.
        for c in contenders[r % len(contenders) :] + contenders[: r % len(contenders)]:
            best = float("inf")
            for _ in range(repeat):
                fn, check = c.make(w)  # a fresh pipeline / queue, not timed
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
                check()
            c.rates.append(n / best)


def rates_table(contenders: list[Contender]) -> str:
    lines = ["| contender | events/s (median) | ns/event |", "|---|---:|---:|"]
    for c in contenders:
        med = statistics.median(c.rates)
        lines.append(f"| {c.name} | {med:,.0f} | {1e9 / med:.0f} |")
    return "\n".join(lines)


def ratios_table(comparisons: list[Comparison]) -> str:
    lines = [
        "| ringstat | baseline | speed-up: median (CI) | min-max | target |",
        "|---|---|---|---|---|",
    ]
    for cmp in comparisons:
        ratios = [a / b for a, b in zip(cmp.ours.rates, cmp.anchor.rates)]
        lo, hi = median_interval(ratios)
        lines.append(
            f"| {cmp.ours.name} | {cmp.anchor.name} | {statistics.median(ratios):.2f} "
            f"({lo:.2f}-{hi:.2f}) | {min(ratios):.2f}-{max(ratios):.2f} | "
            f"{verdict(cmp.target, lo, hi)} |"
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

    single = Contender("ringstat, one event per call (handles)", ringstat_single)
    single_aa = Contender("ringstat, one event per call (A/A)", ringstat_single)
    simple = Contender("SimpleQueue + consumer thread, plain Python", simplequeue_thread)
    plain_inline = Contender("inline in the producing thread, plain Python", inline)
    noop = Contender("floor: the same loop, a no-op C call per event", floor)
    contenders = [single, single_aa, simple, plain_inline, noop]
    comparisons = [
        Comparison(single, single_aa),
        Comparison(single, simple, Target(10.0, ">= 10x")),
        Comparison(single, plain_inline),
        Comparison(single, noop),
        Comparison(noop, simple),
    ]
    prom = None
    if prometheus_client is not None:
        prom = Contender("queue.Queue + consumer thread + prometheus_client", queue_prometheus)
        contenders.append(prom)
        comparisons.append(Comparison(single, prom, Target(20.0, ">= 20x")))
    if np is not None:
        batched = Contender("ringstat, numpy batches", ringstat_numpy)
        chunks = Contender(
            "SimpleQueue of numpy chunks + consumer thread, plain Python", simplequeue_chunks
        )
        contenders.insert(1, batched)
        contenders.append(chunks)
        comparisons += [Comparison(batched, chunks), Comparison(batched, simple)]
        if prom is not None:
            comparisons.append(Comparison(batched, prom, Target(100.0, ">= 100x")))
    measure(contenders, w, rounds, repeat)

    print(f"## ringstat {ringstat.__version__} pipeline, end to end (flush included)")
    print()
    print(
        f"Python {sys.version.split()[0]} ({sys.implementation.name}), {len(w.events):,} "
        f"events ({users:,} users x login, seen, logout), {rounds} interleaved rounds, "
        f"best of {repeat} per round" + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    print(interval_note(rounds))
    if np is None:
        print("\nnumpy not installed: the batch rows are skipped.")
    if prometheus_client is None:
        print("\nprometheus_client not installed: its baseline is skipped.")
    print()
    print(rates_table(contenders))
    print()
    print(ratios_table(comparisons), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
