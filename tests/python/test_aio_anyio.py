"""ringstat.AsyncQueue and AsyncPipeline under anyio on its asyncio backend:
task groups, cancel scopes (``fail_after``, ``move_on_after``) and worker
threads (``anyio.to_thread``), with the same native wake-ups."""

from __future__ import annotations

import sys

import pytest

import ringstat
from ringstat import AsyncQueue

anyio = pytest.importorskip("anyio")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the loop wake-up needs unix")


def test_queue_with_task_groups_threads_and_cancel_scopes() -> None:
    n = 2_000

    async def main() -> None:
        q: AsyncQueue[int] = AsyncQueue(8)
        got: list[int] = []

        def produce() -> None:  # a worker thread: blocking puts
            for i in range(n):
                q.sync.put(i)

        async def consume() -> None:
            got.extend([await q.get() for _ in range(n)])

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.to_thread.run_sync(produce)
        assert got == list(range(n))

        # A cancel scope ends a waiting get and takes nothing.
        with anyio.move_on_after(0.01) as scope:
            await q.get()
        assert scope.cancelled_caught
        with pytest.raises(TimeoutError), anyio.fail_after(0.01):
            await q.get()
        q.put_nowait(5)
        assert await q.get() == 5

        # A waiting put is woken by a get from another task.
        for i in range(8):
            q.put_nowait(i)
        async with anyio.create_task_group() as tg:
            tg.start_soon(q.put, 8)
            await anyio.sleep(0)
            assert q.full()
            assert await q.get() == 0
        assert [q.get_nowait() for _ in range(8)] == list(range(1, 9))

    anyio.run(main, backend="asyncio")


def test_pipeline_sends_and_flush() -> None:
    async def main() -> None:
        p = ringstat.Pipeline(workers=1, capacity=16)
        ap = p.async_view()
        c = p.counter("c")

        async def send(k: int) -> None:
            for _ in range(500):
                await ap.send(c.inc)

        async with anyio.create_task_group() as tg:
            for k in range(4):
                tg.start_soon(send, k)
        await ap.flush()
        assert p.registry.counter("c").value == 2_000
        await ap.close()

    anyio.run(main, backend="asyncio")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shared queues need Linux")
def test_shared_queue_with_a_process_and_cancel_scopes() -> None:
    import uuid

    name = f"ringstat-pytest-anyio-{uuid.uuid4().hex[:12]}"
    n = 1_000

    async def main() -> None:
        aq = ringstat.SharedQueue(name, maxsize=4, slot_size=16).async_view()
        # A cancel scope ends a waiting get and takes nothing.
        with anyio.move_on_after(0.01) as scope:
            await aq.get()
        assert scope.cancelled_caught
        code = (
            f"import ringstat; q = ringstat.SharedQueue.attach({name!r})\n"
            f"for i in range({n}): q.put(str(i).encode())\n"
            "q.shutdown()"
        )
        got: list[int] = []

        async def consume() -> None:
            got.extend([int(m) async for m in aq])

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.run_process([sys.executable, "-c", code])
        assert got == list(range(n))

    try:
        anyio.run(main, backend="asyncio")
    finally:
        ringstat.SharedQueue.cleanup(name)
