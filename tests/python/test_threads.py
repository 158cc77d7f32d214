"""Concurrent use: N producers x M consumers, everything counted and checksummed."""

from __future__ import annotations

import threading
from typing import Callable

import pytest

from ringstat import Queue, ShutDown

PER_PRODUCER = 5_000


def run_all(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def wrap(f: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                f()
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(f)) for f in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert errors == []


@pytest.mark.parametrize(("producers", "consumers", "maxsize"), [(1, 1, 1), (4, 4, 8), (3, 5, 64)])
@pytest.mark.parametrize("batched", [False, True])
def test_mpmc_conservation(producers: int, consumers: int, maxsize: int, batched: bool) -> None:
    q: Queue[int] = Queue(maxsize)
    done = threading.Barrier(producers, action=q.shutdown)
    got: list[list[int]] = [[] for _ in range(consumers)]

    def producer(p: int) -> Callable[[], None]:
        def run() -> None:
            items = range(p * PER_PRODUCER, (p + 1) * PER_PRODUCER)
            if batched:
                for start in range(0, PER_PRODUCER, 37):
                    q.put_many(items[start : start + 37])
            else:
                for i in items:
                    q.put(i)
            done.wait()  # the last producer shuts the queue down

        return run

    def consumer(c: int) -> Callable[[], None]:
        def run() -> None:
            out = got[c]
            try:
                while True:
                    if batched:
                        batch = q.get_many(16)
                        out.extend(batch)
                        for _ in batch:
                            q.task_done()
                    else:
                        out.append(q.get())
                        q.task_done()
            except ShutDown:
                pass

        return run

    run_all([producer(p) for p in range(producers)] + [consumer(c) for c in range(consumers)])
    everything = [i for out in got for i in out]
    total = producers * PER_PRODUCER
    assert len(everything) == total
    assert sum(everything) == total * (total - 1) // 2
    assert sorted(everything) == list(range(total))
    # Each producer's items come out in the order it put them.
    for out in got:
        for p in range(producers):
            mine = [i for i in out if i // PER_PRODUCER == p]
            assert mine == sorted(mine)
    assert q.unfinished_tasks == 0
    q.join()


def test_join_waits_for_task_done_from_other_threads() -> None:
    q: Queue[int] = Queue(16)
    processed: list[int] = []

    def worker() -> None:
        try:
            while True:
                item = q.get()
                processed.append(item)
                q.task_done()
        except ShutDown:
            pass

    workers = [threading.Thread(target=worker) for _ in range(3)]
    for w in workers:
        w.start()
    for i in range(1000):
        q.put(i)
    q.join()
    # join() returned: every item was got and marked done.
    assert sorted(processed) == list(range(1000))
    q.shutdown()
    for w in workers:
        w.join(timeout=10)
        assert not w.is_alive()


def test_blocking_get_is_woken_by_put() -> None:
    q: Queue[str] = Queue(1)
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(q.get(timeout=30)))
    t.start()
    t.join(timeout=0.05)
    q.put("x")
    t.join(timeout=30)
    assert result == ["x"]


def test_blocking_put_is_woken_by_get() -> None:
    q: Queue[int] = Queue(1)
    q.put(1)
    t = threading.Thread(target=lambda: q.put(2, timeout=30))
    t.start()
    t.join(timeout=0.05)
    assert q.get() == 1
    t.join(timeout=30)
    assert q.get(timeout=30) == 2


def test_blocking_releases_the_gil() -> None:
    """A thread blocked in get() (no timeout) or join() must let the main thread
    run Python to release it: if it kept the GIL this would deadlock (and the
    pytest timeout would fail the test)."""
    q: Queue[int] = Queue(1)
    result: list[int] = []

    def consume() -> None:
        result.append(q.get())
        q.task_done()

    t = threading.Thread(target=consume)
    t.start()
    total = sum(i * i for i in range(200_000))  # Python work while it waits
    q.put(total)
    q.join()
    t.join(timeout=30)
    assert result == [total]
