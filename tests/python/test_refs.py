"""Reference counting: the queue holds strong references and releases each
one exactly once (when got, when discarded, when the queue goes away)."""

from __future__ import annotations

import gc
import queue
import sys
import threading
import weakref

import pytest

from ringstat import Queue, ShutDown

if not hasattr(sys, "getrefcount"):  # pragma: no cover
    pytest.skip("needs sys.getrefcount", allow_module_level=True)


class Item:
    """A weak-referenceable object."""


def test_put_takes_a_reference_and_get_hands_it_over() -> None:
    obj = Item()
    base = sys.getrefcount(obj)
    q: Queue[Item] = Queue(2)
    q.put(obj)
    assert sys.getrefcount(obj) == base + 1
    got = q.get()
    assert got is obj
    del got
    assert sys.getrefcount(obj) == base


def test_items_are_released_when_got() -> None:
    q: Queue[Item] = Queue(4)
    obj = Item()
    ref = weakref.ref(obj)
    q.put(obj)
    del obj
    assert ref() is not None  # the queue keeps it alive
    q.get()
    assert ref() is None


def test_dropped_queue_releases_its_items() -> None:
    q: Queue[Item] = Queue(8)
    items = [Item() for _ in range(5)]
    refs = [weakref.ref(i) for i in items]
    q.put_many(items)
    del items
    assert all(r() is not None for r in refs)
    del q
    assert all(r() is None for r in refs)


def test_dropped_queue_after_wraparound_releases_its_items() -> None:
    q: Queue[Item] = Queue(3)
    for _ in range(10):
        q.put(Item())
        q.get()
    items = [Item() for _ in range(3)]
    refs = [weakref.ref(i) for i in items]
    q.put_many(items)
    del items, q
    assert all(r() is None for r in refs)


def test_immediate_shutdown_releases_items() -> None:
    q: Queue[Item] = Queue(8)
    items = [Item() for _ in range(5)]
    refs = [weakref.ref(i) for i in items]
    q.put_many(items)
    del items
    q.shutdown(immediate=True)
    assert all(r() is None for r in refs)


def test_failed_puts_keep_no_reference() -> None:
    obj = Item()
    base = sys.getrefcount(obj)
    q: Queue[Item] = Queue(1)
    q.put(Item())
    for _ in range(100):
        with pytest.raises(queue.Full):
            q.put_nowait(obj)
        with pytest.raises(queue.Full):
            q.put(obj, timeout=0)
        assert q.put_many([obj, obj], block=False) == 0
    q.shutdown()
    for _ in range(100):
        with pytest.raises(ShutDown):
            q.put(obj)
        with pytest.raises(ShutDown):
            q.put_many([obj])
    assert sys.getrefcount(obj) == base


def test_put_many_timeout_keeps_no_reference_to_leftovers() -> None:
    obj = Item()
    base = sys.getrefcount(obj)
    q: Queue[Item] = Queue(2)
    assert q.put_many([obj] * 5, timeout=0.01) == 2
    assert sys.getrefcount(obj) == base + 2
    q.get_many(2)
    assert sys.getrefcount(obj) == base


def test_blocked_put_interrupted_by_shutdown_keeps_no_reference() -> None:
    obj = Item()
    base = sys.getrefcount(obj)
    q: Queue[Item] = Queue(1)
    q.put(Item())
    errors: list[BaseException] = []

    def put() -> None:
        try:
            q.put(obj)
        except ShutDown as e:
            errors.append(e)

    t = threading.Thread(target=put)
    t.start()
    t.join(timeout=0.1)
    q.shutdown()
    t.join(timeout=10)
    assert len(errors) == 1
    errors.clear()
    gc.collect()
    assert sys.getrefcount(obj) == base


def test_many_items_no_leak() -> None:
    obj = Item()
    base = sys.getrefcount(obj)
    q: Queue[Item] = Queue(64)
    for _ in range(200):
        q.put_many([obj] * 50)
        for _ in range(10):
            q.get()
        q.get_many(40)
    assert sys.getrefcount(obj) == base
