"""ringstat.SharedRegistry against prometheus_client's multiprocess mode.

Run it (not a test):

    python benches/python/bench_shm_stats.py            # full run
    python benches/python/bench_shm_stats.py --quick    # smoke run, seconds

Benchmarks, each contender measured in the same run, interleaved in rounds
(A B A B ...); the table shows each figure's median over the rounds with its
min-max, and ringstat's ratio over the anchor (median, and the min-max of the
per-round ratios):

- Counter increments from 4 processes at once (forked workers, each
  ``counter.inc()`` in a plain loop, released together): total increments per
  second over the slowest worker's time. Anchor: ``prometheus_client``
  ``Counter.inc()`` with ``PROMETHEUS_MULTIPROC_DIR`` set (one mmap file per
  process, a lock per value). Target: 20x.
- Snapshot (scrape) time with 10, 100 and 1,000 dead workers (each wrote a
  counter and a gauge, then exited): ``SharedRegistry.to_prometheus()``
  against ``generate_latest`` over a ``MultiProcessCollector``, which reads
  every dead worker's files. Ours should stay flat, theirs grows.

Without ``prometheus_client`` (``pip install -e .[bench]``) the anchors are
skipped with a note.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import ringstat

WORKERS = 4


def _optional_prometheus() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def _fork_all(n: int, child: Callable[[int], None]) -> list[int]:
    """Forks ``n`` children running ``child(i)``; returns their pids."""
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                child(i)
            except BaseException:  # report, never return to the parent's code
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    return pids


def _reap(pids: list[int]) -> None:
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeError(f"worker {pid} failed ({status})")


def _increments(make: Callable[[], Callable[[], None]], n: int) -> float:
    """Increments per second of ``WORKERS`` forked processes, each calling the
    ``inc`` that ``make()`` returns (in the child) ``n`` times, released
    together through a pipe; timed from the release to the last finish."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()

    def child(_: int) -> None:
        inc = make()
        inc()  # warm: first use creates files, slots, handles
        os.read(go_r, 1)
        for _ in range(n):
            inc()
        os.write(done_w, b"x")

    pids = _fork_all(WORKERS, child)
    time.sleep(0.05 * WORKERS)  # let every child reach the gate
    t0 = time.perf_counter()
    os.write(go_w, b"x" * WORKERS)
    for _ in range(WORKERS):
        os.read(done_r, 1)
    elapsed = time.perf_counter() - t0
    _reap(pids)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    return WORKERS * n / elapsed


def _ringstat_inc(name: str) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        return ringstat.SharedRegistry.attach(name).counter("bench_incs").inc

    return make


def _prometheus_inc() -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        from prometheus_client import CollectorRegistry, Counter, values

        assert "MultiProcessValue" in values.ValueClass.__qualname__, values.ValueClass

        c = Counter("bench_incs", "increments", registry=CollectorRegistry())
        return c.inc

    return make


def _dead_workers_ringstat(name: str, k: int) -> None:
    def child(i: int) -> None:
        reg = ringstat.SharedRegistry.attach(name)
        reg.counter("requests").inc()
        reg.gauge("inflight").set(i)

    _reap(_fork_all(k, child))


def _dead_workers_prometheus(k: int) -> None:
    from prometheus_client import CollectorRegistry, Counter, Gauge

    reg = CollectorRegistry()
    c = Counter("requests", "requests", registry=reg)
    g = Gauge("inflight", "inflight", registry=reg, multiprocess_mode="livesum")

    def child(i: int) -> None:
        c.inc()
        g.set(i)

    _reap(_fork_all(k, child))


def _time_best(f: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def _scrapes(name: str, tmp: str, dead_counts: list[int], have_prom: bool) -> None:
    """Scrape time with ``k`` dead workers, ours against prometheus_client's."""
    print("\nsnapshot (scrape) seconds with k dead workers (best of 5)")
    print(f"  {'k':>6}  {'ringstat':>12}  {'prometheus_client':>18}  {'ratio':>8}")
    for k in dead_counts:
        kname = f"{name}-{k}"
        reg = ringstat.SharedRegistry(kname, max_processes=64)
        reg.counter("requests")
        reg.gauge("inflight")
        _dead_workers_ringstat(kname, k)
        assert reg.counter("requests").value == k
        ours_s = _time_best(reg.to_prometheus, 5)
        walk = reg.usage()
        reg.unlink()
        theirs_s = float("nan")
        if have_prom:
            kdir = os.path.join(tmp, f"dead-{k}")
            os.makedirs(kdir)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = kdir
            _dead_workers_prometheus(k)
            files = len(os.listdir(kdir))
            assert files >= k, f"{files} files for {k} dead workers: not in multiprocess mode"
            from prometheus_client import CollectorRegistry, generate_latest
            from prometheus_client.multiprocess import MultiProcessCollector

            scrape = CollectorRegistry()
            MultiProcessCollector(scrape, path=kdir)  # type: ignore[no-untyped-call]

            def scrape_once(s: CollectorRegistry = scrape) -> bytes:
                return generate_latest(s)

            theirs_s = _time_best(scrape_once, 5)
        print(
            f"  {k:>6}  {ours_s:>12.3g}  {theirs_s:>18.3g}  {theirs_s / ours_s:>7.1f}x"
            f"   (ours walks {walk['entries']} entries + {walk['process_slots']} slots;"
            f" {walk['process_slots_used']} slots used)"
        )


def _summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3g} [{min(xs):.3g}-{max(xs):.3g}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round: a smoke run")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, quick 1)")
    args = parser.parse_args(argv)
    if sys.platform != "linux":
        print("shared memory benchmarks need Linux")
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    n = 2_000 if args.quick else 200_000
    dead_counts = [10, 50] if args.quick else [10, 100, 1000]
    tmp = tempfile.mkdtemp(prefix="ringstat-bench-")
    # prometheus_client picks its multiprocess values at import when this is
    # set (and reads it again for each new file): set it before any import.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp
    have_prom = _optional_prometheus()
    name = f"ringstat-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    print(
        f"# bench_shm_stats: {rounds} round(s), {WORKERS} processes x {n:,} increments"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    if not have_prom:
        print("# prometheus_client not installed: anchors skipped (pip install -e .[bench])")
    try:
        reg = ringstat.SharedRegistry(name, max_processes=64)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(rounds):
            ours.append(_increments(_ringstat_inc(name), n))
            if have_prom:
                theirs.append(_increments(_prometheus_inc(), n))
        assert reg.counter("bench_incs").value == rounds * WORKERS * (n + 1)
        print(f"\ncounter increments/s, {WORKERS} processes")
        print(f"  ringstat.SharedRegistry  {_summary(ours)}")
        if theirs:
            ratios = [a / b for a, b in zip(ours, theirs)]
            print(f"  prometheus_client mp     {_summary(theirs)}")
            print(f"  ratio ringstat/anchor    {_summary(ratios)}   (target 20x)")
        reg.unlink()

        _scrapes(name, tmp, dead_counts, have_prom)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
