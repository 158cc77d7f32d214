"""ringstat.AsyncQueue against the queues asyncio code uses today.

Run it (not a test):

    python benches/python/bench_asyncio.py            # full run
    python benches/python/bench_asyncio.py --quick    # smoke run, seconds

As in ``bench_queue.py`` (whose runner and table this file reuses): the
contenders of a table run interleaved in rounds in the same process, and the
table reports each one's time over ringstat's per round (above 1.0, ringstat
was faster) as the median with its confidence interval and the min-max,
plus an A/A row (ringstat against itself) that shows the run's resolution.

Benchmarks (ns per item, end to end, a queue of ``maxsize=64``):

- ``task -> task``: a producer task and a consumer task on one loop,
  against ``asyncio.Queue``; under asyncio's own loop and under uvloop.
- ``thread -> task``: a producer thread (blocking ``put``) and a consumer
  task (``await get``), against ``janus`` and ``culsans`` (their
  ``sync_q``/``async_q``), thread start and join included.
- ``task -> thread``: the reverse.
- ``process -> task`` (Linux): a producer process (started once, told by a
  pipe to put ``n`` 16-byte messages per round) and a consumer task, through
  ``SharedQueue`` (``await q.async_view().get()``), against what asyncio code
  does today with ``multiprocessing.Queue``: ``await
  loop.run_in_executor(None, mpq.get)`` per message (the stdlib queue has no
  async interface, so each wait goes through a thread). A third row blocks in
  ``SharedQueue.get`` through the same executor: the cost of the executor hop
  with ringstat's own queue.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import threading
import uuid
from typing import Any, Callable

import ringstat
from bench_queue import Benchmark, Contender, Setup, Target, interval_note, run, table


def optional(module: str) -> Any | None:
    try:
        return __import__(module)
    except ImportError:
        return None


uvloop: Any = optional("uvloop")
janus: Any = optional("janus")
culsans: Any = optional("culsans")

MAXSIZE = 64
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


# One loop per kind for the whole run, closed at the end.
_loops: dict[LoopFactory, asyncio.AbstractEventLoop] = {}


def close_loops() -> None:
    for loop in _loops.values():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    _loops.clear()


def on_loop(factory: LoopFactory, body: Callable[[], Any]) -> Setup:
    """A setup whose timed call runs ``body()`` to completion on the loop of
    ``factory``'s kind."""

    def setup() -> Callable[[], None]:
        loop = _loops.get(factory)
        if loop is None:
            loop = _loops[factory] = factory()

        def timed() -> None:
            loop.run_until_complete(body())

        return timed

    return setup


# ----- task -> task -------------------------------------------------------------


def task_to_task(make: Callable[[], Any], n: int) -> Callable[[], Any]:
    async def body() -> None:
        q = make()

        async def produce() -> None:
            for i in range(n):
                await q.put(i)

        async def consume() -> None:
            for _ in range(n):
                await q.get()

        await asyncio.gather(produce(), consume())

    return body


def bench_task_to_task(n: int, loop_name: str, factory: LoopFactory) -> Benchmark:
    ours = on_loop(factory, task_to_task(lambda: ringstat.AsyncQueue(MAXSIZE), n))
    return Benchmark(
        f"task -> task, one {loop_name} loop",
        [
            Contender("ringstat.AsyncQueue", ours, n),
            Contender("ringstat.AsyncQueue (A/A)", ours, n),
            Contender(
                "asyncio.Queue",
                on_loop(factory, task_to_task(lambda: asyncio.Queue(MAXSIZE), n)),
                n,
                Target(1.0, ">= 1x"),
            ),
        ],
    )


# ----- thread <-> task ------------------------------------------------------------


Pair = Callable[[], "tuple[Any, Any, Callable[[], Any] | None]"]
"""Makes a queue: its thread side, its task side, and what closes it (a
coroutine function), if anything must."""


def ringstat_pair() -> tuple[Any, Any, None]:
    q: ringstat.Queue[int] = ringstat.Queue(MAXSIZE)
    return q, q.async_view(), None


def janus_pair() -> tuple[Any, Any, Callable[[], Any]]:
    q = janus.Queue(MAXSIZE)
    return q.sync_q, q.async_q, q.aclose


def culsans_pair() -> tuple[Any, Any, None]:
    q = culsans.Queue(MAXSIZE)
    return q.sync_q, q.async_q, None


def thread_to_task(pair: Pair, n: int) -> Callable[[], Any]:
    async def body() -> None:
        sync_q, async_q, close = pair()  # janus needs a running loop

        def produce() -> None:
            for i in range(n):
                sync_q.put(i)

        t = threading.Thread(target=produce)
        t.start()
        for _ in range(n):
            await async_q.get()
        t.join()
        if close is not None:
            await close()

    return body


def task_to_thread(pair: Pair, n: int) -> Callable[[], Any]:
    async def body() -> None:
        sync_q, async_q, close = pair()

        def consume() -> None:
            for _ in range(n):
                sync_q.get()

        t = threading.Thread(target=consume)
        t.start()
        for i in range(n):
            await async_q.put(i)
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        if close is not None:
            await close()

    return body


def bench_mixed(n: int, title: str, shape: Callable[..., Callable[[], Any]]) -> Benchmark:
    factory = asyncio.new_event_loop
    ours = on_loop(factory, shape(ringstat_pair, n))
    contenders = [
        Contender("ringstat.Queue + async_view()", ours, n),
        Contender("ringstat (A/A)", ours, n),
    ]
    if janus is not None:
        contenders.append(
            Contender("janus", on_loop(factory, shape(janus_pair, n)), n, Target(5.0, ">= 5x"))
        )
    if culsans is not None:
        contenders.append(
            Contender("culsans", on_loop(factory, shape(culsans_pair, n)), n, Target(2.0, ">= 2x"))
        )
    return Benchmark(title, contenders)


# ----- process -> task ------------------------------------------------------------


def _produce_on_command(q: Any, ctrl: Any) -> None:
    """The producer process: for each ``n`` received on ``ctrl``, puts ``n``
    messages on ``q`` (a ``SharedQueue`` or a ``multiprocessing.Queue``);
    ``None`` ends it."""
    put = q.put
    ctrl.send("ready")
    while True:
        n = ctrl.recv()
        if n is None:
            return
        for i in range(n):
            put(b"%016d" % i)


class Producer:
    """A producer process kept for the whole run (its start is not timed)."""

    def __init__(self, q: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ctrl, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_produce_on_command, args=(q, theirs), daemon=True)
        self.proc.start()
        assert self.ctrl.recv() == "ready"  # its start stays out of the timings

    def stop(self) -> None:
        self.ctrl.send(None)
        self.proc.join(timeout=60)


_producers: list[Producer] = []
_shared: list[Any] = []


def stop_producers() -> None:
    for p in _producers:
        p.stop()
    _producers.clear()
    for q in _shared:
        q.unlink()
    _shared.clear()


def process_to_task(kind: str, n: int) -> Callable[[], Any]:
    """The consumer task's body for a producer process of ``kind``."""
    if kind == "mp":
        q: Any = multiprocessing.get_context("spawn").Queue(MAXSIZE)
    else:
        q = ringstat.SharedQueue(f"bench-aio-{uuid.uuid4().hex[:10]}", MAXSIZE, 32)
        _shared.append(q)
    producer = Producer(q)
    _producers.append(producer)

    async def body() -> None:
        producer.ctrl.send(n)
        if kind == "async_view":
            get = q.async_view().get
            for _ in range(n):
                await get()
        else:
            loop = asyncio.get_running_loop()
            for _ in range(n):
                await loop.run_in_executor(None, q.get)

    return body


def bench_process_to_task(n: int) -> Benchmark:
    factory = asyncio.new_event_loop
    ours = on_loop(factory, process_to_task("async_view", n))
    return Benchmark(
        "process -> task (asyncio loop)",
        [
            Contender("SharedQueue + async_view()", ours, n),
            Contender("SharedQueue (A/A)", ours, n),
            Contender(
                "SharedQueue.get in run_in_executor",
                on_loop(factory, process_to_task("executor", n)),
                n,
            ),
            Contender(
                "multiprocessing.Queue.get in run_in_executor",
                on_loop(factory, process_to_task("mp", n)),
                n,
                Target(5.0, ">= 5x"),
            ),
        ],
    )


def benchmarks(quick: bool) -> list[Benchmark]:
    n = 1_000 if quick else 20_000
    out = [bench_task_to_task(n, "asyncio", asyncio.new_event_loop)]
    if uvloop is not None:
        out.append(bench_task_to_task(n, "uvloop", uvloop.new_event_loop))
    out.append(bench_mixed(n, "thread -> task (asyncio loop)", thread_to_task))
    out.append(bench_mixed(n, "task -> thread (asyncio loop)", task_to_thread))
    if hasattr(ringstat, "SharedQueue"):  # Linux
        out.append(bench_process_to_task(n // 2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (15)")
    parser.add_argument("--repeat", type=int, default=None, help="timeit repeats per round (3)")
    parser.add_argument(
        "--only", default=None, help="run only the tables whose title contains this"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    repeat = args.repeat or (1 if args.quick else 3)

    print(f"## ringstat {ringstat.__version__} asyncio queue benchmarks")
    print()
    print(
        f"Python {sys.version.split()[0]}, {rounds} interleaved rounds, best of {repeat} "
        f"timeit repeats per round; n items through a queue of maxsize={MAXSIZE}"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    missing = [
        m for m, mod in (("uvloop", uvloop), ("janus", janus), ("culsans", culsans)) if not mod
    ]
    if missing:
        print(f"Not installed, rows left out: {', '.join(missing)} (pip install '.[bench]')")
    print(interval_note(rounds))
    try:
        for bench in benchmarks(args.quick):
            if args.only and args.only not in bench.title:
                continue
            run(bench, rounds, repeat)
            print()
            print(table(bench), flush=True)
    finally:
        close_loops()
        stop_producers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
