"""ringstat.AsyncSharedQueue: coroutines at one end of a SharedQueue, real
processes at the other, woken natively across the process boundary.

The peers are real processes (``python -c``, attaching by name); the
coroutines run under asyncio and uvloop with debug on and a small
``slow_callback_duration`` (the ``run`` fixture of ``test_aio``): a call that
blocked the loop fails the test. No timing assertions: timeouts are generous
bounds against hangs, or the thing under test (cancellation).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import uuid
import weakref
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat
from ringstat import AsyncSharedQueue
from ringstat.aio import QueueShutDown, _hubs
from test_aio import LOOPS, Run, _SlowLog, in_time, run_loop

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="shared queues need Linux"
)

# Long enough never to end a healthy test; short enough to end a hung one.
PATIENCE = 60.0


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Run[Any]]:
    """``run(main)`` on a debug loop of each kind; fails on slow callbacks
    (as in ``test_aio``)."""
    log = _SlowLog()
    logger = logging.getLogger("asyncio")
    logger.addHandler(log)
    try:
        yield lambda main: run_loop(request.param, main)
    finally:
        logger.removeHandler(log)
    assert log.slow == [], f"slow callbacks: {log.slow}"


@pytest.fixture
def name() -> Iterator[str]:
    n = f"ringstat-pytest-aio-{uuid.uuid4().hex[:12]}"
    yield n
    ringstat.SharedQueue.cleanup(n)


def peer(code: str) -> subprocess.Popen[str]:
    """A process running ``code`` (``ringstat`` imported), its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", "import ringstat\n" + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, out
    return out


def test_the_interface(name: str, run: Run[None]) -> None:
    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=2, slot_size=32)
        aq = q.async_view()
        assert isinstance(aq, AsyncSharedQueue)
        assert aq.sync is q
        assert (aq.maxsize, aq.slot_size, aq.lost) == (2, 32, 0)
        assert aq.empty()
        assert not aq.full()
        assert aq.qsize() == 0 == len(aq)
        with pytest.raises(asyncio.QueueEmpty):
            aq.get_nowait()
        aq.put_nowait(b"")  # an empty message is a message
        await aq.put(bytearray(b"ab"))
        assert aq.full()
        assert aq.qsize() == 2
        with pytest.raises(asyncio.QueueFull):
            aq.put_nowait(b"c")
        assert await aq.get() == b""
        assert aq.get_nowait() == b"ab"
        assert await aq.put_many([b"1", bytearray(b"2")]) == 2
        assert await aq.get_many(5) == [b"1", b"2"]
        await aq.put_obj({"k": 1})
        assert await aq.get_obj() == {"k": 1}
        assert "AsyncSharedQueue" in repr(aq)
        aq.put_nowait(b"last")
        aq.shutdown()
        assert aq.is_shutdown
        with pytest.raises(QueueShutDown):
            await aq.put(b"x")
        with pytest.raises(ringstat.ShutDown):  # QueueShutDown is a ringstat.ShutDown
            aq.put_nowait(b"x")
        assert [m async for m in aq] == [b"last"]
        with pytest.raises(QueueShutDown):
            await aq.get()
        with pytest.raises(QueueShutDown):
            await aq.get_many(3)

    run(main)


def test_bad_input_gets_clear_errors(name: str, run: Run[None]) -> None:
    with pytest.raises(TypeError, match="SharedQueue"):
        AsyncSharedQueue(ringstat.Queue(1))  # type: ignore[arg-type]

    async def main() -> None:
        aq = AsyncSharedQueue(ringstat.SharedQueue(name, maxsize=1, slot_size=4))
        with pytest.raises(TypeError, match="bytes-like"):
            await aq.put("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="slot size"):
            await aq.put(b"12345")
        with pytest.raises(ValueError, match="slot size"):
            aq.put_nowait(b"12345")
        with pytest.raises(ValueError, match="slot size"):
            await aq.put_obj(list(range(100)))
        with pytest.raises(ValueError, match="max_items"):
            await aq.get_many(0)
        with pytest.raises(TypeError):
            await aq.get_many("3")  # type: ignore[arg-type]
        # A bad message in a batch: the ones before it are in, nothing after.
        with pytest.raises(TypeError):
            await aq.put_many([b"ok", "bad"])  # type: ignore[list-item]
        assert aq.get_nowait() == b"ok"
        assert aq.empty()

    run(main)


def test_coroutine_consumer_of_a_producer_process(name: str, run: Run[None]) -> None:
    n = 5_000

    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=8, slot_size=16)
        aq = q.async_view()
        proc = peer(
            f"""
            q = ringstat.SharedQueue.attach({name!r})
            for i in range({n}):
                q.put(str(i).encode())
            q.shutdown()
            """
        )
        ticks = 0

        async def ticker() -> None:  # the loop stays free while get waits
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        got = [int(m) async for m in aq]
        t.cancel()
        assert got == list(range(n))
        assert ticks > 0
        await asyncio.to_thread(finish, proc)
        assert q.lost == 0

    run(main)


def test_coroutine_producer_to_a_consumer_process(name: str, run: Run[None]) -> None:
    n = 5_000

    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=4, slot_size=16)
        aq = AsyncSharedQueue(q)
        proc = peer(
            f"""
            q = ringstat.SharedQueue.attach({name!r})
            total = count = 0
            for m in iter(lambda: q.get(timeout={PATIENCE}), None):
                total += int(m)
                count += 1
                if count == {n}:
                    break
            print(count, total)
            """
        )
        for i in range(0, n, 2):  # singles and batches, waiting for room
            await aq.put(str(i).encode())
            assert await aq.put_many([str(i + 1).encode()]) == 1
        out = await asyncio.to_thread(finish, proc)
        assert out.split() == [str(n), str(n * (n - 1) // 2)]

    run(main)


def test_cancelled_gets_lose_nothing_from_a_producer_process(name: str, run: Run[None]) -> None:
    # Gets are cancelled (directly, by wait_for, by asyncio.timeout) while a
    # process puts: every message is got exactly once by a get that
    # returned, or is still in the queue.
    n = 2_000

    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=4, slot_size=16)
        aq = q.async_view()
        rng = random.Random(21)
        got: list[int] = []
        proc = peer(
            f"""
            import time
            q = ringstat.SharedQueue.attach({name!r})
            for i in range({n}):
                q.put(str(i).encode())
                if i % 50 == 0:
                    time.sleep(0.002)  # let the gets wait (and be cancelled)
            """
        )

        async def impatient(k: int) -> None:
            while True:
                try:
                    if k % 3 == 0:
                        got.append(int(await asyncio.wait_for(aq.get(), 0.0005)))
                    elif k % 3 == 1:
                        got.append(int(await in_time(0.0005, aq.get())))
                    else:
                        task = asyncio.create_task(aq.get())
                        for _ in range(rng.randrange(3)):
                            await asyncio.sleep(0)
                        if task.cancel():
                            with pytest.raises(asyncio.CancelledError):
                                await task
                        else:
                            got.append(int(task.result()))
                except asyncio.TimeoutError:  # noqa: PERF203 (the point of the test)
                    pass
                except QueueShutDown:
                    return

        consumers = [asyncio.create_task(impatient(k)) for k in range(6)]
        await asyncio.to_thread(finish, proc)
        aq.shutdown()
        await asyncio.gather(*consumers)
        left = [int(m) for m in q.get_many(n, block=False)] if not q.empty() else []
        everything = Tally(got + left)
        assert sorted(everything) == list(range(n)), "lost messages"
        assert max(everything.values()) == 1, "duplicated messages"

    run(main)


def test_cancelled_puts_put_nothing(name: str, run: Run[None]) -> None:
    # A consumer process reads slowly; puts into the full queue are cancelled
    # at random: the process receives exactly the messages whose put returned.
    n = 600

    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=2, slot_size=16)
        aq = q.async_view()
        proc = peer(
            f"""
            import time
            q = ringstat.SharedQueue.attach({name!r})
            got = []
            try:
                while True:
                    got.append(int(q.get(timeout={PATIENCE})))
                    if len(got) % 20 == 0:
                        time.sleep(0.002)
            except ringstat.ShutDown:
                pass
            print(*got)
            """
        )
        put: list[int] = []
        for i in range(n):
            try:
                await asyncio.wait_for(aq.put(str(i).encode()), 0.0005 * (i % 3))
                put.append(i)
            except asyncio.TimeoutError:  # noqa: PERF203 (the point of the test)
                pass
        aq.shutdown()
        received = [int(x) for x in (await asyncio.to_thread(finish, proc)).split()]
        assert received == put
        assert q.lost == 0

    run(main)


def test_shutdown_by_another_process_wakes_every_waiter(name: str, run: Run[None]) -> None:
    async def main() -> None:
        empty = ringstat.SharedQueue(name, maxsize=1, slot_size=8)
        full = ringstat.SharedQueue(name + "-full", maxsize=1, slot_size=8)
        try:
            full.put(b"in")
            getters = [asyncio.create_task(empty.async_view().get()) for _ in range(3)]
            putters = [asyncio.create_task(full.async_view().put(b"x")) for _ in range(3)]
            await asyncio.sleep(0.01)  # every task waits now
            proc = peer(
                f"""
                ringstat.SharedQueue.attach({name!r}).shutdown()
                ringstat.SharedQueue.attach({name + "-full"!r}).shutdown()
                """
            )
            for t in getters + putters:
                with pytest.raises(QueueShutDown):
                    await in_time(PATIENCE, t)
            await asyncio.to_thread(finish, proc)
            assert full.async_view().get_nowait() == b"in", "get drains after shutdown"
        finally:
            full.unlink()

    run(main)


def test_a_killed_producer_does_not_hang_the_consumer(name: str, run: Run[None]) -> None:
    # The producer is SIGKILLed while it puts (possibly mid-put): the
    # coroutine got an unbroken prefix of its messages, a bounded wait ends,
    # and the queue keeps working for the living.
    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=2, slot_size=16)
        aq = q.async_view()
        proc = peer(
            f"""
            q = ringstat.SharedQueue.attach({name!r})
            i = 0
            while True:
                q.put(str(i).encode())
                i += 1
            """
        )
        got = [int(await in_time(PATIENCE, aq.get())) for _ in range(200)]
        proc.kill()
        await asyncio.to_thread(proc.wait, PATIENCE)
        assert proc.stdout is not None
        proc.stdout.close()
        while True:
            try:
                got.append(int(await asyncio.wait_for(aq.get(), 0.5)))
            except asyncio.TimeoutError:  # noqa: PERF203 (how the loop ends)
                break
        # Nothing got out of order or twice; at most the message being
        # written at the kill is lost, and then it is counted.
        assert got == list(range(len(got)))
        assert q.lost <= 1
        assert q.sweep() >= 0
        await aq.put(b"alive")
        assert await in_time(PATIENCE, aq.get()) == b"alive"

    run(main)


def test_a_killed_waiting_consumer_leaves_the_queue_usable(name: str, run: Run[None]) -> None:
    # A process whose coroutine waits (its watcher thread counted as a
    # sleeper) is killed; this process's coroutines keep working.
    async def main() -> None:
        q = ringstat.SharedQueue(name, maxsize=2, slot_size=8)
        aq = q.async_view()
        proc = peer(
            f"""
            import asyncio
            async def main():
                aq = ringstat.SharedQueue.attach({name!r}).async_view()
                print("ready", flush=True)
                await aq.get()
            asyncio.run(main())
            """
        )
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)).strip() == "ready"
        await asyncio.sleep(0.05)
        proc.kill()
        await asyncio.to_thread(proc.wait, PATIENCE)
        proc.stdout.close()
        getter = asyncio.create_task(aq.get())
        await asyncio.sleep(0)
        await asyncio.to_thread(q.put, b"a")
        assert await in_time(PATIENCE, getter) == b"a"
        assert q.lost == 0

    run(main)


def test_two_loops_and_a_process_share_one_queue(name: str) -> None:
    # Coroutines on two event loops (two threads) consume what a process
    # puts: each message once; each loop is woken natively.
    n = 3_000
    ringstat.SharedQueue(name, maxsize=8, slot_size=16)
    proc = peer(
        f"""
        q = ringstat.SharedQueue.attach({name!r})
        for i in range({n}):
            q.put(str(i).encode())
        q.shutdown()
        """
    )

    async def consume() -> list[int]:
        aq = ringstat.SharedQueue.attach(name).async_view()
        return [int(m) async for m in aq]

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futs = [pool.submit(run_loop, kind, consume) for kind in ("asyncio", "asyncio")]
        results = [f.result(timeout=PATIENCE) for f in futs]
    finish(proc)
    everything = Tally(results[0] + results[1])
    assert sorted(everything) == list(range(n))
    assert max(everything.values()) == 1


def test_a_waiting_get_does_not_poll(name: str) -> None:
    # While a get waits for another process, the loop sleeps in select()
    # until the native wake-up: a poll on a timer would show as many calls.
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

        aq = ringstat.SharedQueue(name, maxsize=2, slot_size=8).async_view()
        getter = asyncio.create_task(aq.get())
        await asyncio.sleep(0)  # the get is now waiting
        selector.select = counted
        proc = peer(
            f"""
            import time
            time.sleep(0.5)  # every chance to poll, if the loop did
            ringstat.SharedQueue.attach({name!r}).put(b"x")
            """
        )
        assert await getter == b"x"
        selector.select = select
        await asyncio.to_thread(finish, proc)

    run_loop("asyncio", main)
    # One select that sleeps until the put, plus a couple around the wake-up.
    assert calls <= 4, f"select() called {calls} times while one get waited"


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


def test_no_references_or_threads_leak(name: str, run: Run[Any]) -> None:
    # Waits, wake-ups and cancellations leave no pending future behind, hold
    # no Python reference to the queue, and the native watcher threads end
    # with the last handle.
    threads_before = _tasks()

    async def main() -> weakref.ref[ringstat.SharedQueue]:
        q = ringstat.SharedQueue(name, maxsize=1, slot_size=8)
        ref = weakref.ref(q)
        aq = q.async_view()
        for _ in range(50):
            getter = asyncio.create_task(aq.get())
            await asyncio.sleep(0)
            if random.random() < 0.5:
                getter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await getter
            else:
                aq.put_nowait(b"m")
                assert await getter == b"m"
        aq.put_nowait(b"full")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aq.put(b"no room"), 0.01)
        assert aq.get_nowait() == b"full"
        # No count of references here: Python 3.13 keeps the timed-out put's
        # frame (and its closure over `q`) in a cycle until a collection; the
        # weak reference below, dead after one, shows nothing holds `q`.
        hub = _hubs[asyncio.get_running_loop()]
        assert hub.pending == {}
        return ref

    ref = run(main)
    gc.collect()  # outside the loop: a full collection is a slow callback
    assert ref() is None
    # The watchers (one per side) exit once the handle is gone; they notice
    # within a re-check interval. A bounded wait, not a timing assertion.
    for _ in range(int(PATIENCE * 20)):
        if _tasks() <= threads_before:
            break
        import time

        time.sleep(0.05)
    assert _tasks() <= threads_before


def test_pickled_messages_between_processes(name: str, run: Run[None]) -> None:
    async def main() -> None:
        aq = ringstat.SharedQueue(name, maxsize=4, slot_size=256).async_view()
        proc = peer(
            f"""
            q = ringstat.SharedQueue.attach({name!r})
            q.put_obj({{"event": "login", "user": 7}})
            """
        )
        assert await in_time(PATIENCE, aq.get_obj()) == {"event": "login", "user": 7}
        await asyncio.to_thread(finish, proc)
        raw = pickle.dumps(("x", 1))
        await aq.put(raw)
        assert await aq.get_obj() == ("x", 1)

    run(main)


def test_ctrl_c_style_cancellation_of_the_whole_program(name: str) -> None:
    # asyncio.run cancels a main task that waits on the queue (SIGINT): the
    # process exits cleanly (no watcher thread keeps it alive).
    ringstat.SharedQueue(name, maxsize=1, slot_size=8)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import asyncio, ringstat, signal
                signal.signal(signal.SIGINT, signal.default_int_handler)
                async def main():
                    aq = ringstat.SharedQueue.attach({name!r}).async_view()
                    print("ready", flush=True)
                    await aq.get()
                try:
                    asyncio.run(main())
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in out
    assert proc.returncode == 0
