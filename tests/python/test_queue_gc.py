"""Reference cycles through a ringstat.Queue are collected (the queue takes
part in garbage collection: ``__traverse__`` visits its items)."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from typing import Any

import pytest

from ringstat import Queue


class Holder:
    """Holds a queue that holds a bound method of the holder: a cycle."""

    def __init__(self, maxsize: int) -> None:
        self.q: Queue[Any] = Queue(maxsize)
        self.q.put(self.callback)

    def callback(self) -> None:
        pass


@pytest.mark.parametrize("maxsize", [0, 4])
def test_cycle_through_a_queue_is_collected(maxsize: int) -> None:
    # Regression: Queue was GC-tracked without __traverse__, so this leaked.
    h = Holder(maxsize)
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("maxsize", [0, 4])
def test_queue_holding_itself_is_collected(maxsize: int) -> None:
    q: Queue[Any] = Queue(maxsize)
    q.put(q)
    ref = weakref.ref(q)
    del q
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("maxsize", [0, 64])
def test_collection_leaves_a_live_queue_intact(maxsize: int) -> None:
    # Traversal must neither drop nor reorder what a reachable queue holds.
    q: Queue[object] = Queue(maxsize)
    items = [object() for _ in range(50)]
    q.put_many(items)
    base = [sys.getrefcount(x) for x in items]
    for _ in range(3):
        gc.collect()
    assert [sys.getrefcount(x) for x in items] == base
    assert all(a is b for a, b in zip(q.get_many(100), items))


def test_collection_while_other_threads_use_the_queue() -> None:
    # The collector runs while consumers are parked in get() (detached):
    # traversal then skips the items rather than race with them.
    q: Queue[object] = Queue()
    got: list[object] = []

    def consume() -> None:
        got.extend(q)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(2000):
        q.put(i)
        if i % 100 == 0:
            gc.collect()
    q.shutdown()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(2000))  # type: ignore[type-var]
