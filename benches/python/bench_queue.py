"""ringstat.Queue against the Python queues people use today.

Run it (not a test):

    python benches/python/bench_queue.py            # full run
    python benches/python/bench_queue.py --quick    # smoke run, seconds

Every contender of a benchmark is measured in the same run, interleaved in
rounds (A B C A B C ...), each round a ``timeit`` measurement; the table
reports the median ns per operation over the rounds and, per contender, the
median of its per-round ratio to the ringstat figure (so a busy machine slows
everyone in a round alike). Threaded figures swing a lot on shared 2-vCPU
machines: compare ratios, not absolute numbers, and never numbers taken
minutes apart.

Benchmarks:

- ``put+get``: one put and one get on the same thread, queue never full;
  bounded (``maxsize=1024``) and unbounded (``Queue()``) queues.
- ``threads``: a producer thread feeding a consumer thread through a bounded
  queue (``maxsize=1024``) and through unbounded ones; ns per item end to
  end.
- ``batch``: ``put_many``/``get_many`` of 256 items (per item), against
  ``put``/``get`` loops and ``deque.extend``/``popleft``.
- faster-fifo (single process, pickling) as a reference, if importable.
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
from typing import Any, Callable

import ringstat

Setup = Callable[[], Callable[[], None]]
"""Builds a fresh contender and returns the function to time (one call does
``ops`` operations)."""


@dataclass
class Contender:
    name: str
    setup: Setup
    ops: int  # operations done by one call of the timed function
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
    return Benchmark(
        "put+get pair, one thread",
        [
            Contender("ringstat.Queue", put_get(lambda: ringstat.Queue(1024), "put", "get", n), n),
            Contender(
                "ringstat.Queue (nowait)",
                put_get(lambda: ringstat.Queue(1024), "put_nowait", "get_nowait", n),
                n,
            ),
            Contender("queue.Queue", put_get(lambda: queue.Queue(1024), "put", "get", n), n),
            Contender("ringstat.Queue() unbounded", put_get(ringstat.Queue, "put", "get", n), n),
            Contender("queue.Queue() unbounded", put_get(queue.Queue, "put", "get", n), n),
            Contender("queue.SimpleQueue", put_get(queue.SimpleQueue, "put", "get", n), n),
            Contender("collections.deque", put_get(collections.deque, "append", "popleft", n), n),
        ],
        "deque is not a thread-safe blocking queue; it is the floor for a Python call pair.",
    )


# ----- producer thread -> consumer thread -----------------------------------


def threaded(make: Callable[[], Any], n: int, batch: int = 0) -> Setup:
    def setup() -> Callable[[], None]:
        def run() -> None:
            q = make()
            if batch:
                assert n % batch == 0, "n must be a multiple of batch"

                def consume() -> None:
                    left = n
                    while left:
                        left -= len(q.get_many(batch))

                items = list(range(batch))

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
    n -= n % 64  # whole batches for the put_many/get_many contender
    return Benchmark(
        "producer thread -> consumer thread, maxsize=1024",
        [
            Contender("ringstat.Queue", threaded(lambda: ringstat.Queue(1024), n), n),
            Contender("queue.Queue", threaded(lambda: queue.Queue(1024), n), n),
            Contender(
                "ringstat.Queue put_many/get_many(64)",
                threaded(lambda: ringstat.Queue(1024), n, batch=64),
                n,
            ),
            Contender("ringstat.Queue() unbounded", threaded(ringstat.Queue, n), n),
            Contender("queue.Queue() unbounded", threaded(queue.Queue, n), n),
            Contender("queue.SimpleQueue", threaded(queue.SimpleQueue, n), n),
        ],
        "Includes thread start/join; swings widely with vCPU placement: trust ratios only. "
        "The unbounded rows and SimpleQueue never make the producer wait.",
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
    return Benchmark(
        f"batch of {size}: put all, get all (per item)",
        [
            Contender(
                "ringstat put_many/get_many",
                batch_setup(lambda: ringstat.Queue(size), size, rounds, "many"),
                ops,
            ),
            Contender(
                "ringstat put/get loop",
                batch_setup(lambda: ringstat.Queue(size), size, rounds, "loop"),
                ops,
            ),
            Contender(
                "queue.Queue put/get loop",
                batch_setup(lambda: queue.Queue(size), size, rounds, "loop"),
                ops,
            ),
            Contender(
                "deque extend/popleft",
                batch_setup(collections.deque, size, rounds, "deque"),
                ops,
            ),
        ],
    )


# ----- faster-fifo, for reference ---------------------------------------------


def bench_faster_fifo(n: int) -> Benchmark | None:
    try:
        import faster_fifo  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def ff_setup() -> Callable[[], None]:
        q = faster_fifo.Queue(max_size_bytes=1 << 20)

        def run() -> None:
            for i in range(n):
                q.put_nowait(i)
                q.get_nowait()

        return run

    return Benchmark(
        "put+get pair, one process: faster-fifo reference",
        [
            Contender("ringstat.Queue", put_get(lambda: ringstat.Queue(1024), "put", "get", n), n),
            Contender("faster_fifo.Queue", ff_setup, n),
        ],
        "faster-fifo is a multi-process queue (shared memory, pickled items).",
    )


# ----- statistics: Counter / Histogram ----------------------------------------
# In bench_stats.py (which reuses this file's Benchmark, run() and table()):
# ringstat.Counter.inc vs prometheus_client Counter.inc, ringstat
# Histogram.record vs prometheus_client Histogram.observe and hdrhistogram
# record_value.


def benchmarks(quick: bool) -> list[Benchmark]:
    n = 2_000 if quick else 50_000
    out = [
        bench_put_get(n),
        bench_threads(n * 2),
        bench_batch(max(1, n // 256)),
    ]
    ff = bench_faster_fifo(n)
    if ff is not None:
        out.append(ff)
    return out


# ----- running and reporting --------------------------------------------------


def run(bench: Benchmark, rounds: int, repeat: int) -> None:
    for _ in range(rounds):
        for c in bench.contenders:  # interleaved: A B C A B C ...
            fn = c.setup()
            best = min(timeit.repeat(fn, number=1, repeat=repeat))
            c.ns.append(best / c.ops * 1e9)


def table(bench: Benchmark) -> str:
    base = bench.contenders[0]
    lines = [
        f"### {bench.title}",
        "",
        f"| contender | ns/op (median) | x {base.name} (median ratio) | ratio spread |",
        "|---|---:|---:|---:|",
    ]
    for c in bench.contenders:
        ratios = [ns / b for ns, b in zip(c.ns, base.ns)]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        lines.append(
            f"| {c.name} | {statistics.median(c.ns):.1f} | "
            f"{statistics.median(ratios):.2f} | {spread} |"
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
    try:
        import faster_fifo  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        print("\nfaster-fifo not installed: its reference row is skipped.")
    for bench in benchmarks(args.quick):
        run(bench, rounds, repeat)
        print()
        print(table(bench), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
