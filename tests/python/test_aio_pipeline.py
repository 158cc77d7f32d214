"""ringstat.AsyncPipeline: sends, flush and close of a Pipeline awaited from
coroutines without blocking the loop.

The input is kept full by a thread flooding the one worker's queue with
batch sends (detached, at native speed), so the coroutines' sends find it
full and wait; the worker's pops wake them through the loop's eventfd. Every
test runs under asyncio and uvloop with debug on and a small
``slow_callback_duration`` (the ``run`` fixture of ``test_aio``), and fails
if a callback was slow.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat
import ringstat.aio
import test_aio
from ringstat import AsyncPipeline, Pipeline, PipelineClosed
from test_aio import Run, in_time

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the loop wake-up needs unix")

FLOOD_BATCH = 2_000


@pytest.fixture(params=test_aio.LOOPS)
def run(request: pytest.FixtureRequest) -> Iterator[Run[Any]]:
    """``test_aio``'s ``run``: ``main()`` on a debug loop of the parametrized
    kind; the test fails if any callback was slow."""
    log = test_aio._SlowLog()
    logger = logging.getLogger("asyncio")
    logger.addHandler(log)
    try:
        yield lambda main: test_aio.run_loop(request.param, main)
    finally:
        logger.removeHandler(log)
    assert log.slow == [], f"slow callbacks: {log.slow}"


class Waits:
    """Counts the waits of awaited sends and flushes: registered (the queue
    was full when the waker was registered), and cancelled while waiting."""

    def __init__(self) -> None:
        self.registered = 0
        self.cancelled = 0


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    w = Waits()
    real = ringstat.aio._await_token

    async def counted(loop: Any, hub: Any, token: int, cancel: Any) -> None:
        w.registered += 1
        try:
            await real(loop, hub, token, cancel)
        except asyncio.CancelledError:
            w.cancelled += 1
            raise

    monkeypatch.setattr(ringstat.aio, "_await_token", counted)
    return w


class Flood:
    """A thread that keeps the pipeline's input full with batch sends of
    the counter ``flood`` until stopped (or the pipeline closes)."""

    def __init__(self, p: Pipeline) -> None:
        self.sent = 0
        self._stop = threading.Event()
        self._flood = p.counter("flood")
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        batch = [1] * FLOOD_BATCH
        while not self._stop.is_set():
            try:
                self.sent += self._flood.add_many(batch)
            except PipelineClosed as e:  # noqa: PERF203 (ends the loop)
                self.sent += e.sent  # type: ignore[attr-defined]
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def pipeline() -> Pipeline:
    # One small worker queue: every coroutine's send competes with the flood.
    return Pipeline(workers=1, capacity=16, batch_size=4)


def test_sends_wait_for_room_and_are_woken(run: Run[None], waits: Waits) -> None:
    n_tasks, per_task = 8, 300

    async def main() -> None:
        p = pipeline()
        ap = AsyncPipeline(p)
        c = p.counter("c")
        flood = Flood(p)
        try:

            async def sender(k: int) -> None:
                for i in range(per_task):
                    if i % 3 == 0:
                        await ap.send(c.inc)
                    elif i % 3 == 1:
                        await ap.count("c")
                    else:
                        await ap.send(c.add, 1)

            # Rounds until some send waited (the first nearly always has).
            rounds = 0
            while rounds == 0 or (waits.registered == 0 and rounds < 20):
                rounds += 1
                await in_time(120, asyncio.gather(*(sender(k) for k in range(n_tasks))))
            await ap.flush()
            assert p.registry.counter("c").value == rounds * n_tasks * per_task
        finally:
            flood.stop()
        await ap.close()
        assert p.registry.counter("flood").value == flood.sent
        s = p.stats()
        total = rounds * n_tasks * per_task + flood.sent
        assert (s["received"], s["applied"], s["dropped"]) == (total, total, 0)

    run(main)
    assert waits.registered > 0, "no send ever found the input full"


def test_cancelled_sends_send_nothing(run: Run[None], waits: Waits) -> None:
    # Sends are cancelled (directly, by wait_for and by timeout) while the
    # input is full: a send that returned sent its event once; one that was
    # cancelled sent nothing. The counter holds exactly the returned ones.
    async def main() -> None:
        p = pipeline()
        ap = p.async_view()
        c = p.counter("c")
        rng = random.Random(21)
        done = 0
        flood = Flood(p)
        try:

            async def impatient(k: int) -> None:
                nonlocal done
                for _ in range(150):
                    try:
                        if k % 3 == 0:
                            await asyncio.wait_for(ap.send(c.inc), 0.0005)
                        elif k % 3 == 1:
                            await in_time(0.0005, ap.count("c"))
                        else:
                            task = asyncio.create_task(ap.send(c.inc))
                            for _ in range(rng.randrange(3)):
                                await asyncio.sleep(0)
                            if task.cancel():
                                with pytest.raises(asyncio.CancelledError):
                                    await task
                                continue
                            task.result()
                        done += 1
                    except asyncio.TimeoutError:
                        pass

            # Rounds until some send was cancelled while it waited.
            rounds = 0
            while rounds == 0 or (waits.cancelled == 0 and rounds < 20):
                rounds += 1
                await asyncio.gather(*(impatient(k) for k in range(9)))
        finally:
            flood.stop()
        await ap.flush()
        assert p.registry.counter("c").value == done
        await ap.close()

    run(main)
    assert waits.cancelled > 0, "no send was cancelled while it waited"


def test_flush_sees_every_event_and_waits_for_room(run: Run[None], waits: Waits) -> None:
    async def main() -> None:
        p = pipeline()
        ap = AsyncPipeline(p)
        users = p.distinct("users")
        online = p.sessions("online")
        flood = Flood(p)
        try:
            for rnd in range(20):
                for u in range(25):
                    await ap.send(users.seen, u)
                    await ap.session_start("online", f"{rnd}-{u}")
                await ap.flush()
                # Everything sent before the flush is applied.
                assert p.registry.gauge("online_open").value == 25 * (rnd + 1)
        finally:
            flood.stop()
        await ap.flush()
        assert round(p.distinct_count("users")) == 25
        assert online.name == "online"
        await ap.close()
        assert p.closed
        await ap.flush()  # closed: returns at once

    run(main)
    assert waits.registered > 0


def test_timeouts_and_close(run: Run[None]) -> None:
    async def main() -> None:
        p = pipeline()
        ap = AsyncPipeline(p)
        c = p.counter("c")
        sent = 0
        flood = Flood(p)
        try:
            for _ in range(200):
                try:
                    await asyncio.wait_for(ap.send(c.inc), 0.001)
                    sent += 1
                except asyncio.TimeoutError:  # noqa: PERF203
                    pass
            closer = asyncio.create_task(ap.close())
            # A send racing with the close is applied, or raises PipelineClosed.
            try:
                await ap.send(c.inc)
                sent += 1
            except PipelineClosed:
                pass
            await closer
        finally:
            flood.stop()
        assert p.closed
        assert p.registry.counter("c").value == sent
        with pytest.raises(PipelineClosed):
            await ap.count("c")
        with pytest.raises(PipelineClosed):
            await ap.send(c.inc)
        await ap.close()  # idempotent

    run(main)


def test_arguments_and_dropping_policies(run: Run[None]) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="Pipeline"):
            AsyncPipeline(ringstat.Registry())  # type: ignore[arg-type]
        for policy in ("drop_newest", "overwrite_oldest"):
            p = Pipeline(workers=1, capacity=4, backpressure=policy)
            async with p.async_view() as ap:
                assert "AsyncPipeline" in repr(ap)
                assert ap.sync is p
                for _ in range(100):
                    await ap.mark("r")  # never waits: drops are counted
                await ap.flush()
            s = p.stats()
            assert s["received"] == 100
            assert s["applied"] + s["dropped"] == 100
        p = pipeline()
        ap = AsyncPipeline(p)
        c = p.counter("c")
        p.histogram("h", max_value=10)
        # Bad arguments raise as the method does, nothing sent.
        with pytest.raises(ValueError, match="range"):
            await ap.observe("h", 11)
        with pytest.raises(TypeError):
            await ap.send(c.add, "x")
        # A batch method could only wait by blocking the loop: refused.
        with pytest.raises(TypeError, match="to_thread"):
            await ap.send(c.add_many, [1, 2])
        # So would a flush or a close: awaited through the view instead.
        with pytest.raises(TypeError, match=r"AsyncPipeline\.flush"):
            await ap.send(p.flush)
        with pytest.raises(TypeError, match=r"AsyncPipeline\.close"):
            await ap.send(p.close)
        assert not p.closed
        # Not a pipeline's or a handle's method: refused, not called.
        called: list[int] = []
        with pytest.raises(TypeError, match="send method of a Pipeline"):
            await ap.send(called.append, 1)
        assert called == []
        # A pipeline method that sends nothing: called, nothing to wait for.
        await ap.send(p.counter, "other")
        await ap.set("g", 5)
        await ap.gauge_add("g", -2)
        await ap.observe("h", 3)
        await ap.session_end("online", 1)
        await ap.seen("u", "alice")
        await ap.close()
        assert p.registry.gauge("g").value == 3
        assert p.registry.counter("c").value == 0

    run(main)
