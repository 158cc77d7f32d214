"""ringstat's statistics against the Python metrics libraries people use today.

Run it (not a test):

    python benches/python/bench_stats.py            # full run
    python benches/python/bench_stats.py --quick    # smoke run, seconds

As in ``bench_queue.py`` (whose runner and table this file reuses): every
contender of a benchmark is measured in the same run, interleaved in rounds
(A B C, B C A, ...), each round the best of ``timeit`` repeats; the table reports
the median ns per call over the rounds and, per contender, its per-round
time over the first (ringstat) row's, as the median with a ~95 % confidence
interval and the min-max. An A/A row (ringstat against itself) shows the
resolution; a target is met only when the lower end of its interval clears
it. Single-thread per-call costs repeat within a few percent on a quiet
machine; on a busy one, trust the ratios.

Benchmarks (one Python call per operation, in a plain ``for`` loop, so every
figure includes the loop's own few ns):

- ``Counter.inc()`` against ``prometheus_client`` ``Counter.inc()``.
- ``Histogram.record(v)`` (ints and floats, 3 significant digits) against
  ``prometheus_client`` ``Histogram.observe(v)`` (default buckets) and the
  ``hdrhistogram`` package's ``HdrHistogram.record_value(v)`` (3 digits).

Both anchors are pure Python (``prometheus_client`` keeps its values under a
``threading.Lock``; PyPI's ``hdrhistogram`` computes the bucket index in
Python and only encodes in C), so the ratios measure a native call against
interpreted code; the rows say so.

An anchor whose package is not installed (``pip install -e .[bench]``) is
skipped with a note.
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any, Callable

import ringstat
from bench_queue import Benchmark, Contender, Setup, Target, interval_note, run, table

MAX_US = 10**8
"""Histogram range: 100 s in microseconds."""


def optional(module: str) -> Any | None:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        return None


prometheus_client = optional("prometheus_client")
hdrh_histogram = optional("hdrh.histogram")


def calls(make: Callable[[], Callable[[], object]], n: int) -> Setup:
    """``n`` calls of a no-argument method."""

    def setup() -> Callable[[], None]:
        f = make()

        def go() -> None:
            for _ in range(n):
                f()

        return go

    return setup


def calls_with(make: Callable[[], Callable[[Any], object]], values: list[Any]) -> Setup:
    """One call per value."""

    def setup() -> Callable[[], None]:
        f = make()

        def go() -> None:
            for v in values:
                f(v)

        return go

    return setup


def bench_counter(n: int) -> Benchmark:
    ours = calls(lambda: ringstat.Counter().inc, n)
    contenders = [
        Contender("ringstat Counter.inc()", ours, n),
        Contender("ringstat Counter.inc() (A/A)", ours, n),
        Contender(
            "ringstat Counter.add(1)",
            calls_with(lambda: ringstat.Counter().add, [1] * n),
            n,
        ),
    ]
    if prometheus_client is not None:
        pc = prometheus_client

        def prom() -> Callable[[], object]:
            return pc.Counter("bench_logins", "logins", registry=None).inc  # type: ignore[no-any-return]

        contenders.append(
            Contender(
                "prometheus_client Counter.inc() (pure Python)",
                calls(prom, n),
                n,
                Target(10.0, ">= 10x faster"),
            )
        )
    return Benchmark("Counter: one increment", contenders)


def latencies(n: int) -> list[int]:
    """Log-normal latencies in microseconds (median ~3 ms), reproducible."""
    rng = random.Random(42)
    return [min(int(rng.lognormvariate(8, 1.5)), MAX_US) for _ in range(n)]


def bench_histogram(n: int) -> Benchmark:
    ints = latencies(n)
    seconds = [v / 1e6 for v in ints]

    def ours() -> Callable[[Any], object]:
        return ringstat.Histogram(MAX_US, significant_digits=3).record

    def ours_seconds() -> Callable[[Any], object]:
        # Float seconds kept to the microsecond: the same buckets in ticks.
        return ringstat.Histogram(MAX_US / 1e6, significant_digits=3, unit=1e-6).record

    contenders = [
        Contender("ringstat Histogram.record(int)", calls_with(ours, ints), n),
        Contender("ringstat Histogram.record(int) (A/A)", calls_with(ours, ints), n),
        Contender(
            "ringstat Histogram(unit=1e-6).record(float s)", calls_with(ours_seconds, seconds), n
        ),
    ]
    if prometheus_client is not None:
        pc = prometheus_client

        def prom() -> Callable[[Any], object]:
            return pc.Histogram("bench_latency", "latency", registry=None).observe  # type: ignore[no-any-return]

        contenders.append(
            Contender(
                "prometheus_client Histogram.observe(s) (pure Python)",
                calls_with(prom, seconds),
                n,
                Target(15.0, ">= 15x faster"),
            )
        )
    if hdrh_histogram is not None:
        hdr = hdrh_histogram

        def hdr_make() -> Callable[[Any], object]:
            return hdr.HdrHistogram(1, MAX_US, 3).record_value  # type: ignore[no-any-return]

        contenders.append(
            Contender(
                "hdrhistogram HdrHistogram.record_value(int) (pure Python)",
                calls_with(hdr_make, ints),
                n,
                Target(15.0, ">= 15x faster"),
            )
        )
    return Benchmark(
        "Histogram: record one value",
        contenders,
        "prometheus_client has 15 fixed buckets (no percentiles); hdrhistogram and "
        "ringstat keep 3 significant digits.",
    )


def benchmarks(quick: bool) -> list[Benchmark]:
    n = 2_000 if quick else 100_000
    return [bench_counter(n), bench_histogram(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15)")
    parser.add_argument("--repeat", type=int, default=None, help="timeit repeats per round (5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    repeat = args.repeat or (2 if args.quick else 5)

    print(f"## ringstat {ringstat.__version__} Python statistics benchmarks")
    print()
    print(
        f"Python {sys.version.split()[0]} ({sys.implementation.name}), "
        f"{rounds} interleaved rounds, best of {repeat} timeit repeats per round"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    print(interval_note(rounds))
    for module, package in (
        (prometheus_client, "prometheus_client"),
        (hdrh_histogram, "hdrhistogram"),
    ):
        if module is None:
            print(f"\n{package} not installed: its rows are skipped.")
    for bench in benchmarks(args.quick):
        run(bench, rounds, repeat)
        print()
        print(table(bench), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
