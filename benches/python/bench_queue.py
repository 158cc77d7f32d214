"""ringstat.Queue against the Python queues people use today.

Run it (not a test):

    python benches/python/bench_queue.py            # full run
    python benches/python/bench_queue.py --quick    # smoke run, seconds

Every contender of a benchmark is measured in the same run, interleaved in
rounds (A B C, B C A, ...), each round the best of a few ``timeit`` repeats.
Per contender the table reports the median ns per operation over the rounds
and its ratio to the first (ringstat) row: each round's contender time over
ringstat's time in that round (above 1.0, ringstat was faster), as the
median over rounds with a ~95 % confidence interval for that median
(distribution-free, from order statistics) and the min-max over rounds. A
busy machine slows everyone in a round alike, so compare ratios, never
nanoseconds taken minutes apart.

Every table has an A/A row, ringstat against a second identical ringstat
contender: how far its interval lands from 1.0 is the resolution of that
run. A target is marked met only when the lower end of its interval clears
it, and not met only when the upper end stays below it; in between the run
did not decide it.

Benchmarks:

- ``put+get``: one put and one get on the same thread, queue never full;
  bounded (``maxsize=1024``) and unbounded (``Queue()``) queues, against
  ``queue.Queue`` (pure Python: a deque under a ``threading.Condition``),
  ``queue.SimpleQueue`` (C, unbounded, no ``maxsize``, no ``task_done``/``join``,
  no shutdown) and ``collections.deque`` (the floor of a Python call pair).
- ``threads``: a producer thread feeding a consumer thread, ns per item end
  to end (thread start and join included).
- ``threads, batches of 64``: the same with ``put_many``/``get_many``,
  against ``queue.Queue``/``SimpleQueue`` carrying lists of 64.
- ``batch``: 256 items in, 256 out, on one thread: ``put_many``/``get_many``
  against ``put``/``get`` loops, lists carried whole, and
  ``deque.extend``/``popleft``.

The list rows pass a reference to one prebuilt list (nothing is copied);
``put_many`` copies the items into the ring and ``get_many`` builds a new
list, so the consumer gets its own list, as with a list the producer
builds per batch.
"""

from __future__ import annotations

import argparse
import collections
import queue
import statistics
import sys
import threading
import timeit
from dataclasses import dataclass, field
from math import comb
from typing import Any, Callable

import ringstat

Setup = Callable[[], Callable[[], None]]
"""Builds a fresh contender and returns the function to time (one call does
``ops`` operations)."""


@dataclass
class Target:
    """A target on a contender's ratio (its time over ringstat's)."""

    min_ratio: float  # met when the interval's lower end is at least this
    text: str  # as the table shows it, e.g. ">= 10x faster"


@dataclass
class Contender:
    name: str
    setup: Setup
    ops: int  # operations done by one call of the timed function
    target: Target | None = None
    ns: list[float] = field(default_factory=list)  # per round


@dataclass
class Benchmark:
    title: str
    contenders: list[Contender]
    note: str = ""


# ----- put + get, single thread ---------------------------------------------


def put_get(make: Callable[[], Any], put: str, get: str, n: int) -> Setup:
    def setup() -> Callable[[], None]:
        q = make()
        p, g = getattr(q, put), getattr(q, get)

        def run() -> None:
            for i in range(n):
                p(i)
                g()

        return run

    return setup


def bench_put_get(n: int) -> Benchmark:
    ours = put_get(lambda: ringstat.Queue(1024), "put", "get", n)
    return Benchmark(
        "put+get pair, one thread",
        [
            Contender("ringstat.Queue(1024)", ours, n),
            Contender("ringstat.Queue(1024) (A/A)", ours, n),
            Contender(
                "ringstat.Queue(1024) put_nowait/get_nowait",
                put_get(lambda: ringstat.Queue(1024), "put_nowait", "get_nowait", n),
                n,
            ),
            Contender(
                "queue.Queue(1024) (pure Python)",
                put_get(lambda: queue.Queue(1024), "put", "get", n),
                n,
                Target(10.0, ">= 10x faster"),
            ),
            Contender("ringstat.Queue() unbounded", put_get(ringstat.Queue, "put", "get", n), n),
            Contender(
                "queue.Queue() unbounded (pure Python)", put_get(queue.Queue, "put", "get", n), n
            ),
            Contender(
                "queue.SimpleQueue (C, unbounded)",
                put_get(queue.SimpleQueue, "put", "get", n),
                n,
                Target(1 / 1.5, "within 1.5x of its time"),
            ),
            Contender("collections.deque", put_get(collections.deque, "append", "popleft", n), n),
        ],
        "deque is not a thread-safe blocking queue; it is the floor for a Python call pair.",
    )


# ----- producer thread -> consumer thread -----------------------------------


def threaded(make: Callable[[], Any], n: int, batch: int = 0, lists: bool = False) -> Setup:
    """``n`` items from a producer thread to a consumer thread: one by one,
    in ``put_many``/``get_many`` batches of ``batch``, or (``lists``) as
    lists of ``batch`` items, one ``put``/``get`` per list."""
    assert not batch or n % batch == 0, "n must be a multiple of batch"

    def setup() -> Callable[[], None]:
        def run() -> None:
            q = make()
            if lists:
                items = list(range(batch))

                def consume() -> None:
                    g = q.get
                    left = n
                    while left:
                        left -= len(g())

                def produce() -> None:
                    p = q.put
                    for _ in range(n // batch):
                        p(items)

            elif batch:
                items = list(range(batch))

                def consume() -> None:
                    left = n
                    while left:
                        left -= len(q.get_many(batch))

                def produce() -> None:
                    for _ in range(n // batch):
                        q.put_many(items)

            else:

                def consume() -> None:
                    g = q.get
                    for _ in range(n):
                        g()

                def produce() -> None:
                    p = q.put
                    for i in range(n):
                        p(i)

            t = threading.Thread(target=consume)
            t.start()
            produce()
            t.join()

        return run

    return setup


def bench_threads(n: int) -> Benchmark:
    ours = threaded(lambda: ringstat.Queue(1024), n)
    return Benchmark(
        "producer thread -> consumer thread, one item per call",
        [
            Contender("ringstat.Queue(1024)", ours, n),
            Contender("ringstat.Queue(1024) (A/A)", ours, n),
            Contender(
                "queue.Queue(1024) (pure Python)",
                threaded(lambda: queue.Queue(1024), n),
                n,
                Target(10.0, ">= 10x faster"),
            ),
            Contender("queue.SimpleQueue (C, unbounded)", threaded(queue.SimpleQueue, n), n),
            Contender("ringstat.Queue() unbounded", threaded(ringstat.Queue, n), n),
            Contender("queue.Queue() unbounded (pure Python)", threaded(queue.Queue, n), n),
        ],
        "Per item, thread start and join included; swings widely with vCPU placement: trust "
        "ratios only. The unbounded rows and SimpleQueue never make the producer wait.",
    )


def bench_threads_batched(n: int, batch: int = 64) -> Benchmark:
    ours = threaded(lambda: ringstat.Queue(1024), n, batch=batch)
    return Benchmark(
        f"producer thread -> consumer thread, batches of {batch} (per item)",
        [
            Contender(f"ringstat.Queue(1024) put_many/get_many({batch})", ours, n),
            Contender(f"ringstat.Queue(1024) put_many/get_many({batch}) (A/A)", ours, n),
            Contender(
                f"queue.Queue({1024 // batch}) of lists of {batch} (pure Python)",
                threaded(lambda: queue.Queue(1024 // batch), n, batch=batch, lists=True),
                n,
            ),
            Contender(
                f"queue.SimpleQueue of lists of {batch} (C, unbounded)",
                threaded(queue.SimpleQueue, n, batch=batch, lists=True),
                n,
            ),
            Contender(
                "ringstat.Queue(1024), one item per call",
                threaded(lambda: ringstat.Queue(1024), n),
                n,
            ),
        ],
        f"queue.Queue({1024 // batch}) holds at most 1024 items, as ringstat.Queue(1024) does.",
    )


# ----- batches, single thread -------------------------------------------------


def batch_setup(make: Callable[[], Any], size: int, rounds: int, kind: str) -> Setup:
    items = list(range(size))

    def setup() -> Callable[[], None]:
        q = make()
        if kind == "many":

            def run() -> None:
                for _ in range(rounds):
                    q.put_many(items)
                    q.get_many(size)

        elif kind == "list":

            def run() -> None:
                for _ in range(rounds):
                    q.put(items)
                    q.get()

        elif kind == "deque":

            def run() -> None:
                for _ in range(rounds):
                    q.extend(items)
                    pop = q.popleft
                    for _ in range(size):
                        pop()

        else:

            def run() -> None:
                for _ in range(rounds):
                    put, get = q.put, q.get
                    for i in items:
                        put(i)
                    for _ in range(size):
                        get()

        return run

    return setup


def bench_batch(rounds: int, size: int = 256) -> Benchmark:
    ops = rounds * size
    ours = batch_setup(lambda: ringstat.Queue(size), size, rounds, "many")
    return Benchmark(
        f"batch of {size}: put all, get all, one thread (per item)",
        [
            Contender("ringstat put_many/get_many", ours, ops),
            Contender("ringstat put_many/get_many (A/A)", ours, ops),
            Contender(
                "ringstat put/get loop",
                batch_setup(lambda: ringstat.Queue(size), size, rounds, "loop"),
                ops,
                Target(3.0, ">= 3x cheaper"),
            ),
            Contender(
                "queue.Queue put/get loop (pure Python)",
                batch_setup(lambda: queue.Queue(size), size, rounds, "loop"),
                ops,
            ),
            Contender(
                "queue.SimpleQueue put/get loop (C)",
                batch_setup(queue.SimpleQueue, size, rounds, "loop"),
                ops,
            ),
            Contender(
                f"queue.Queue carrying one list of {size} (pure Python)",
                batch_setup(lambda: queue.Queue(1), size, rounds, "list"),
                ops,
            ),
            Contender(
                f"queue.SimpleQueue carrying one list of {size} (C)",
                batch_setup(queue.SimpleQueue, size, rounds, "list"),
                ops,
            ),
            Contender(
                "deque extend/popleft",
                batch_setup(collections.deque, size, rounds, "deque"),
                ops,
            ),
        ],
        "The list rows move a reference to one list (no copy): the floor of a batch that "
        "is handed over whole.",
    )


# ----- statistics: Counter / Histogram ----------------------------------------
# In bench_stats.py (which reuses this file's Benchmark, run() and table()).


def benchmarks(quick: bool) -> list[Benchmark]:
    n = 2_048 if quick else 50_048  # whole batches of 64
    return [
        bench_put_get(n),
        bench_threads(n * 2),
        bench_threads_batched(n * 2),
        bench_batch(max(1, n // 256)),
    ]


# ----- running and reporting --------------------------------------------------


def run(bench: Benchmark, rounds: int, repeat: int) -> None:
    cs = bench.contenders
    for r in range(rounds):
        # Interleaved, each round starting one contender later (A B C, B C A,
        # C A B, ...): no contender always runs first after another table.
        for c in cs[r % len(cs) :] + cs[: r % len(cs)]:
            fn = c.setup()
            best = min(timeit.repeat(fn, number=1, repeat=repeat))
            c.ns.append(best / c.ops * 1e9)


def median_rank(n: int, confidence: float = 0.95) -> tuple[int, float]:
    """For a distribution-free confidence interval of the median of ``n``
    values, the order statistics ``k`` and ``n + 1 - k`` (1-based): ``k`` is
    the largest such that the binomial(n, 1/2) tails outside them hold at
    most ``1 - confidence``. Returns ``k`` and the interval's coverage. Below
    6 values no such ``k`` exists: ``k = 1``, the full range, with lower
    coverage (75 % for 3 values)."""
    k, tail = 0, 0.0  # tail: P(Binomial(n, 1/2) <= k - 1)
    while k < n // 2:
        nxt = tail + comb(n, k) / 2**n
        if 2 * nxt > 1 - confidence:
            break
        tail, k = nxt, k + 1
    if k == 0:
        return 1, 1 - 2 / 2**n
    return k, 1 - 2 * tail


def median_interval(values: list[float]) -> tuple[float, float]:
    """The median's confidence interval (see :func:`median_rank`)."""
    xs = sorted(values)
    k, _ = median_rank(len(xs))
    return xs[k - 1], xs[len(xs) - k]


def interval_note(rounds: int) -> str:
    k, coverage = median_rank(rounds)
    return (
        f"Median ratio intervals: rounds {k} and {rounds + 1 - k} of {rounds} in order, "
        f"{coverage:.1%} coverage."
    )


def verdict(target: Target | None, lo: float, hi: float) -> str:
    if target is None:
        return ""
    if lo >= target.min_ratio:
        return f"{target.text} ✅"
    if hi < target.min_ratio:
        return f"{target.text} ❌"
    return f"{target.text}: undecided (the interval spans it)"


def table(bench: Benchmark) -> str:
    base = bench.contenders[0]
    lines = [
        f"### {bench.title}",
        "",
        f"| contender | ns/op (median) | time / {base.name}'s: median (CI) | min-max | target |",
        "|---|---:|---|---|---|",
    ]
    for c in bench.contenders:
        if c is base:
            lines.append(f"| {c.name} | {statistics.median(c.ns):.1f} | 1 | | |")
            continue
        ratios = [ns / b for ns, b in zip(c.ns, base.ns)]
        lo, hi = median_interval(ratios)
        lines.append(
            f"| {c.name} | {statistics.median(c.ns):.1f} | "
            f"{statistics.median(ratios):.2f} ({lo:.2f}-{hi:.2f}) | "
            f"{min(ratios):.2f}-{max(ratios):.2f} | {verdict(c.target, lo, hi)} |"
        )
    if bench.note:
        lines += ["", bench.note]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15)")
    parser.add_argument("--repeat", type=int, default=None, help="timeit repeats per round (5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    repeat = args.repeat or (2 if args.quick else 5)

    print(f"## ringstat {ringstat.__version__} Python queue benchmarks")
    print()
    print(
        f"Python {sys.version.split()[0]} ({sys.implementation.name}), "
        f"{rounds} interleaved rounds, best of {repeat} timeit repeats per round"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    print(interval_note(rounds))
    for bench in benchmarks(args.quick):
        run(bench, rounds, repeat)
        print()
        print(table(bench), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
