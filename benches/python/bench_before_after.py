"""The hot paths of ``make bench`` in two installed builds, alternated.

Run it (not a test) with two interpreters whose environments hold the two
builds (wheels) to compare, e.g. before and after a change:

    python benches/python/bench_before_after.py /tmp/venv-before/bin/python \\
        /tmp/venv-after/bin/python --rounds 7

Each round runs every case once in each interpreter (the order alternates
between rounds), as a fresh process; a case reports its best of 5 timings.
The table gives each case's ns per operation for both, and the median ratio
of the second's time over the first's per round (below 1: the second is
faster) with its min-max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CASE = r"""
import json, sys, threading, time
import ringstat

N = 200_000

def best(fn, n=N, reps=5):
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out / n * 1e9

res = {}
reg = ringstat.Registry()
c = reg.counter("c")
def counter():
    inc = c.inc
    for _ in range(N):
        inc()
res["Counter.inc()"] = best(counter)

h = reg.histogram("h", max_value=1_000_000)
def hist():
    rec = h.record
    for i in range(N):
        rec(i & 1023)
res["Histogram.record(int)"] = best(hist)

q = ringstat.Queue(1024)
def pair():
    put, get = q.put, q.get
    for i in range(N):
        put(i)
        get()
res["Queue put+get, one thread"] = best(pair)

def transfer():
    q2 = ringstat.Queue(1024)
    def consume():
        get = q2.get
        for _ in range(N):
            get()
    t = threading.Thread(target=consume)
    t.start()
    put = q2.put
    for i in range(N):
        put(i)
    t.join()
res["Queue producer -> consumer thread"] = best(transfer, reps=3)

def pipeline():
    p = ringstat.Pipeline(ringstat.Registry())
    online, users = p.sessions("online"), p.distinct("users")
    start, seen, end = online.start, users.seen, online.end
    n = N // 3
    for u in range(n):
        start(u, 1.0)
    for u in range(n):
        seen(u)
    for u in range(n):
        end(u, 2.0)
    p.flush()
    p.close()
res["Pipeline handles, until applied"] = best(pipeline, n=3 * (N // 3), reps=3)

json.dump(res, sys.stdout)
"""


def run(python: str) -> dict[str, float]:
    out = subprocess.run([python, "-c", CASE], check=True, capture_output=True, text=True)
    got: dict[str, float] = json.loads(out.stdout)
    return got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("first", help="interpreter with the first build (e.g. before)")
    parser.add_argument("second", help="interpreter with the second build (e.g. after)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    a: list[dict[str, float]] = []
    b: list[dict[str, float]] = []
    for r in range(args.rounds):
        if r % 2 == 0:
            a.append(run(args.first))
            b.append(run(args.second))
        else:
            b.append(run(args.second))
            a.append(run(args.first))
    print(f"{args.rounds} rounds, alternated; second's time / first's (below 1: faster)")
    print()
    print("| case | first ns/op | second ns/op | ratio: median (min-max) |")
    print("|---|---:|---:|---|")
    for case in a[0]:
        ratios = [y[case] / x[case] for x, y in zip(a, b)]
        print(
            f"| {case} | {statistics.median(x[case] for x in a):.1f} | "
            f"{statistics.median(y[case] for y in b):.1f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
