"""ringstat.AsyncQueue: the asyncio.Queue interface over a native queue,
woken natively, shared by threads and several event loops.

Every test runs under asyncio's own loop and under uvloop (``run``), with
debug on and a small ``slow_callback_duration``: any callback that blocks the
loop logs a warning, and the fixture fails the test if one did.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import ringstat
from ringstat import AsyncQueue
from ringstat.aio import QueueShutDown

try:
    import uvloop
except ImportError:  # not built for every CPython: those tests skip
    uvloop = None  # type: ignore[assignment]

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
    ),
]

_R = TypeVar("_R")

# A callback that takes this long is logged by asyncio's debug mode. Far below
# what a get or put blocking the loop on a native wait would take (the tests
# make those wait for other threads or coroutines), far above what a
# non-blocking call costs, even on a busy machine.
SLOW = 0.25


class _SlowLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.slow: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "took" in msg and "seconds" in msg:
            self.slow.append(msg)


def join_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join()


Run = Callable[[Callable[[], Awaitable[_R]]], _R]


def run_loop(kind: str, main: Callable[[], Awaitable[_R]]) -> _R:
    """Runs ``main()`` on a new loop of ``kind`` in debug mode, with a small
    ``slow_callback_duration`` (``asyncio.run`` with a loop factory, which
    Python 3.9 lacks)."""
    loop = asyncio.new_event_loop() if kind == "asyncio" else uvloop.new_event_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW
    try:
        return loop.run_until_complete(main())
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def in_time(seconds: float, aw: Awaitable[_R]) -> Awaitable[_R]:
    """``asyncio.timeout`` around ``aw`` where there is one (3.11+), else
    ``wait_for``."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:
        return asyncio.wait_for(aw, seconds)

    async def bounded() -> _R:
        async with timeout(seconds):
            return await aw

    return bounded()


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Run[Any]]:
    """``run(main)``: ``main()`` on a debug loop of the parametrized kind; the
    test fails if any callback was slow."""
    log = _SlowLog()
    logger = logging.getLogger("asyncio")
    logger.addHandler(log)
    try:
        yield lambda main: run_loop(request.param, main)
    finally:
        logger.removeHandler(log)
    assert log.slow == [], f"slow callbacks: {log.slow}"


def test_the_interface_of_asyncio_queue(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(2)
        assert (q.maxsize, q.qsize(), q.empty(), q.full()) == (2, 0, True, False)
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        q.put_nowait(1)
        await q.put(2)
        assert (q.qsize(), len(q), q.full()) == (2, 2, True)
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(3)
        assert q.sync.unfinished_tasks == 2, "a refused put is not a task"
        assert await q.get() == 1
        assert q.get_nowait() == 2
        q.task_done()
        q.task_done()
        await q.join()
        with pytest.raises(ValueError, match="too many"):
            q.task_done()
        assert "AsyncQueue" in repr(q)

    run(main)


def test_a_view_shares_the_native_queue() -> None:
    q: ringstat.Queue[str] = ringstat.Queue()
    view = q.async_view()
    assert isinstance(view, AsyncQueue)
    assert view.sync is q
    assert AsyncQueue(queue=q).sync is q
    q.put("a")
    assert view.get_nowait() == "a"
    view.put_nowait("b")
    assert q.get_nowait() == "b"


def test_a_waiting_get_lets_the_loop_run(run: Run[None]) -> None:
    # Proved by order, not time: the item is pushed (by a thread) only once
    # another task has ticked while the get waits. A get that blocked the loop
    # would never see it: the thread gives up and the get returns its marker.
    async def main() -> None:
        q: AsyncQueue[str] = AsyncQueue()
        ticked = threading.Event()

        def producer() -> None:
            q.sync.put("item" if ticked.wait(timeout=30) else "loop was blocked")

        async def ticker() -> None:
            for _ in range(10):
                await asyncio.sleep(0)
            ticked.set()

        t = threading.Thread(target=producer)
        t.start()
        tick = asyncio.create_task(ticker())
        assert await q.get() == "item"
        await tick
        await asyncio.to_thread(t.join)

    run(main)


def test_a_waiting_put_lets_the_loop_run(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(1)
        q.put_nowait(0)
        ticked = threading.Event()
        got: list[int] = []

        def consumer() -> None:
            if ticked.wait(timeout=30):
                got.append(q.sync.get())

        async def ticker() -> None:
            for _ in range(10):
                await asyncio.sleep(0)
            ticked.set()

        t = threading.Thread(target=consumer)
        t.start()
        tick = asyncio.create_task(ticker())
        await q.put(1)
        await tick
        await asyncio.to_thread(t.join)
        assert got == [0]
        assert q.get_nowait() == 1

    run(main)


def test_a_waiting_get_does_not_poll() -> None:
    # While a get waits for a thread, the loop sleeps in select() until the
    # native wake-up: a poll on a timer would show as many select() calls.
    calls = 0

    async def main() -> None:
        nonlocal calls
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        select = selector.select

        def counted(timeout: float | None = None) -> Any:
            nonlocal calls
            calls += 1
            return select(timeout)

        q: AsyncQueue[int] = AsyncQueue()
        started = threading.Event()

        def producer() -> None:
            started.wait()
            # Give the loop every chance to poll (if it did) before the push.
            threading.Event().wait(0.5)
            q.sync.put(1)

        t = threading.Thread(target=producer)
        t.start()
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0)  # the get is now waiting
        selector.select = counted
        started.set()
        assert await getter == 1
        selector.select = select
        t.join()

    run_loop("asyncio", main)
    # One select that sleeps until the push, plus a couple around the wake-up.
    assert calls <= 4, f"select() called {calls} times while one get waited"


def test_threads_to_coroutines_and_back(run: Run[None]) -> None:
    n, producers = 3000, 3

    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(8)

        def produce(k: int) -> None:
            for i in range(k, n, producers):
                q.sync.put(i)

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
        for t in threads:
            t.start()

        async def consume() -> list[int]:
            return [x async for x in q]

        consumers = [asyncio.create_task(consume()) for _ in range(3)]
        await asyncio.to_thread(join_all, threads)
        q.shutdown()
        got = sorted(x for part in await asyncio.gather(*consumers) for x in part)
        assert got == list(range(n))

        # Coroutines to threads.
        back: AsyncQueue[int] = AsyncQueue(8)
        out: list[int] = []
        lock = threading.Lock()

        def drain() -> None:
            for x in back.sync:
                with lock:
                    out.append(x)

        readers = [threading.Thread(target=drain) for _ in range(2)]
        for t in readers:
            t.start()

        async def produce_async(k: int) -> None:
            for i in range(k, n, producers):
                await back.put(i)

        await asyncio.gather(*(produce_async(k) for k in range(producers)))
        back.shutdown()
        await asyncio.to_thread(join_all, readers)
        assert sorted(out) == list(range(n))

    run(main)


def test_one_queue_two_loops_and_threads() -> None:
    # Tasks on an asyncio loop and on a uvloop loop, each in its own thread,
    # and plain threads, all producing into and consuming from one queue.
    q: ringstat.Queue[int] = ringstat.Queue(4)
    n = 2000
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    produced = [threading.Event() for _ in range(3)]

    def loop_thread(kind: str, k: int) -> None:
        async def main() -> list[int]:
            view = q.async_view()

            async def consume() -> list[int]:
                return [x async for x in view]

            consumer = asyncio.create_task(consume())
            for i in range(k * n, (k + 1) * n):
                await view.put(i)
            produced[k].set()
            return await consumer  # until shutdown

        try:
            results[kind] = run_loop(kind, main)
        except BaseException as e:
            errors.append(e)
            produced[k].set()

    def thread_producer() -> None:
        for i in range(2 * n, 3 * n):
            q.put(i)
        produced[2].set()

    def thread_consumer() -> None:
        results["thread"] = list(q)

    threads = [
        threading.Thread(target=loop_thread, args=("asyncio", 0)),
        threading.Thread(target=loop_thread, args=("uvloop", 1)),
        threading.Thread(target=thread_producer),
        threading.Thread(target=thread_consumer),
    ]
    for t in threads:
        t.start()
    for e in produced:
        assert e.wait(timeout=60)
    q.shutdown()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(x for part in results.values() for x in part) == list(range(3 * n))


def test_cancelled_gets_lose_no_item(run: Run[None]) -> None:
    # Many gets wait and are cancelled (directly, by wait_for and by timeout)
    # while threads and tasks push: every item pushed is got exactly once,
    # by a get that returned, or is still in the queue.
    n_thread, n_task = 600, 600

    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue()
        rng = random.Random(21)
        got: list[int] = []

        def produce() -> None:
            for i in range(n_thread):
                q.sync.put(i)

        async def produce_async() -> None:
            for i in range(n_thread, n_thread + n_task):
                q.put_nowait(i)
                if i % 7 == 0:
                    await asyncio.sleep(0)

        async def impatient(k: int) -> None:
            while True:
                try:
                    if k % 3 == 0:
                        got.append(await asyncio.wait_for(q.get(), 0.0005))
                    elif k % 3 == 1:
                        got.append(await in_time(0.0005, q.get()))
                    else:
                        task = asyncio.create_task(q.get())
                        for _ in range(rng.randrange(3)):
                            await asyncio.sleep(0)
                        if task.cancel():
                            # Cancelled while it waited, or before it ran.
                            with pytest.raises(asyncio.CancelledError):
                                await task
                        else:
                            got.append(task.result())
                except asyncio.TimeoutError:  # noqa: PERF203 (the point of the test)
                    pass
                except QueueShutDown:
                    return

        t = threading.Thread(target=produce)
        t.start()
        consumers = [asyncio.create_task(impatient(k)) for k in range(9)]
        await produce_async()
        await asyncio.to_thread(t.join)
        q.shutdown()
        await asyncio.gather(*consumers)
        left = []
        while not q.empty():
            left.append(q.sync.get_nowait())
        everything = Tally(got + left)
        assert sorted(everything) == list(range(n_thread + n_task)), "lost items"
        assert max(everything.values()) == 1, "duplicated items"

    run(main)


def test_timeouts(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(1)
        with pytest.raises(asyncio.TimeoutError):
            await in_time(0.01, q.get())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.get(), 0.01)
        await q.put(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.put(2), 0.01)
        assert q.qsize() == 1
        # The queue still works, for threads too, after the cancelled waits.
        assert await asyncio.to_thread(q.sync.get, timeout=5) == 1
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        await asyncio.to_thread(q.sync.put, 5)
        assert await waiter == 5

    run(main)


def test_shutdown_wakes_every_waiter(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(1)
        getters = [asyncio.create_task(q.get()) for _ in range(3)]
        await asyncio.sleep(0)
        q.shutdown()
        for g in getters:
            with pytest.raises(QueueShutDown):
                await g
        with pytest.raises(ringstat.ShutDown):
            await q.put(1)  # QueueShutDown is a ringstat.ShutDown
        assert q.is_shutdown

        full: AsyncQueue[int] = AsyncQueue(1)
        full.put_nowait(0)
        putter = asyncio.create_task(full.put(1))
        await asyncio.sleep(0)
        await asyncio.to_thread(full.sync.shutdown)  # from another thread
        with pytest.raises(QueueShutDown):
            await putter
        assert full.get_nowait() == 0, "get drains after shutdown"
        assert [x async for x in full] == []
        with pytest.raises(QueueShutDown):
            full.get_nowait()

        gone: AsyncQueue[int] = AsyncQueue()
        for i in range(3):
            gone.put_nowait(i)
        gone.shutdown(immediate=True)
        with pytest.raises(QueueShutDown):
            await gone.get()
        await gone.join()  # immediate shutdown counts the items as done

    run(main)


def test_join_waits_for_task_done_from_a_thread(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue()
        for i in range(50):
            await q.put(i)
        done = []

        def worker() -> None:
            while True:
                try:
                    done.append(q.sync.get_nowait())
                except ringstat.Empty:
                    return
                q.sync.task_done()

        joiners = [asyncio.create_task(q.join()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(j.done() for j in joiners)
        t = threading.Thread(target=worker)
        t.start()
        await asyncio.gather(*joiners)
        assert len(done) == 50
        await asyncio.to_thread(t.join)
        # A cancelled join leaves nothing behind.
        q.put_nowait(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(q.join(), 0.01)
        q.get_nowait()
        q.task_done()
        await q.join()

    run(main)


def test_put_many_and_get_many(run: Run[None]) -> None:
    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(4)

        async def consume() -> list[int]:
            out: list[int] = []
            while len(out) < 100:
                batch = await q.get_many(3)
                assert 1 <= len(batch) <= 3
                out += batch
            return out

        consumer = asyncio.create_task(consume())
        assert await q.put_many(range(50)) == 50  # an iterator
        assert await q.put_many(list(range(50, 100))) == 50  # a sequence
        assert await consumer == list(range(100))
        q.shutdown()
        with pytest.raises(QueueShutDown):
            await q.get_many(2)
        with pytest.raises(QueueShutDown):
            await q.put_many([1])

    run(main)


def test_a_loop_that_ends_leaves_the_queue_usable() -> None:
    # A get cancelled because its loop stopped leaves no registration that a
    # later push from another thread would trip over.
    q: ringstat.Queue[int] = ringstat.Queue(2)

    async def main() -> None:
        view = q.async_view()
        pending = asyncio.create_task(view.get())
        await asyncio.sleep(0)
        pending.cancel()

    for kind in ("asyncio", "uvloop") if uvloop else ("asyncio",):
        run_loop(kind, main)
        q.put(1)
        assert q.get() == 1


@pytest.mark.parametrize("kind", LOOPS)
def test_the_slow_callback_check_sees_a_blocked_loop(kind: str) -> None:
    # The check the fixture makes can fail: a callback that blocks the loop
    # (here, a thread-style wait) is logged under both loops.
    log = _SlowLog()
    logger = logging.getLogger("asyncio")
    logger.addHandler(log)

    async def main() -> None:
        threading.Event().wait(2 * SLOW)  # blocks the loop

    try:
        run_loop(kind, main)
    finally:
        logger.removeHandler(log)
    assert len(log.slow) == 1, log.slow


def test_a_recorder_streams_its_samples_to_a_task(run: Run[None]) -> None:
    # The sampling thread wakes the task for each sample; a stop from
    # another thread ends the stream after the samples taken before it.
    async def main() -> None:
        reg = ringstat.Registry()
        logins = reg.counter("logins")
        rec = ringstat.Recorder(reg, interval=0.01)
        rec.start()
        got = []
        async for sample in rec.stream():
            got.append(sample)
            logins.inc()
            if len(got) == 3:
                await asyncio.to_thread(rec.stop)
        assert len(got) >= 3
        assert all(isinstance(s, ringstat.snapshot.Snapshot) for s in got)
        values = [s["metrics"][0]["values"]["value"] for s in got]
        assert values == sorted(values), "samples come oldest first"
        # A stopped recorder's stream ends at once.
        assert [s async for s in rec.stream()] == []

    run(main)
