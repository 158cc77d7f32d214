"""Reference cycles through ringstat objects are collected.

A pyclass that holds Python objects must show them to the garbage collector
(``__traverse__``) and drop them when asked (``__clear__``); otherwise a
cycle through it, such as an object holding a ``Queue`` that holds a bound
method of that object, is never freed.

The pyclasses of ``src/python/`` that hold Python objects:

- ``Queue`` (``queue.rs``): its items, ``Queue<Py<PyAny>>``. Any cycle
  through a queued item passes through it.
- ``Pipeline`` (``pipeline/mod.rs``): its ``Registry``, ``Py<PyRegistry>``.
  A ``Registry`` holds no Python object, so no cycle can pass through a
  pipeline; it is tested here so that it stays collectable.

Every other class holds Rust data only (``Arc`` of a metric, ids, names).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import pytest

from ringstat import Pipeline, Queue, Registry


class Holder:
    """A weak-referenceable object that refers to ringstat objects."""

    def __init__(self) -> None:
        self.parts: list[object] = []

    def method(self) -> None:
        """Its bound method refers back to it."""


def collected(build: Callable[[Holder], None]) -> bool:
    """Builds a cycle through ``holder`` with ``build``, drops it, runs the
    collector and tells whether ``holder`` was freed."""
    holder = Holder()
    build(holder)
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    return ref() is None


def queue_holding(item: Callable[[Holder], object]) -> Callable[[Holder], None]:
    def build(holder: Holder) -> None:
        q: Queue[object] = Queue(4)
        q.put(item(holder))
        holder.parts.append(q)

    return build


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(lambda h: h.method, id="bound-method"),
        pytest.param(lambda h: h, id="the-holder"),
        pytest.param(lambda h: [h], id="a-list-of-the-holder"),
        pytest.param(lambda h: {"callback": h.method}, id="a-dict"),
    ],
)
def test_cycle_through_a_queued_item_is_collected(item: Callable[[Holder], object]) -> None:
    assert collected(queue_holding(item))


def test_cycle_through_put_many_is_collected() -> None:
    def build(holder: Holder) -> None:
        q: Queue[object] = Queue(4)
        assert q.put_many([holder.method, holder]) == 2
        holder.parts.append(q)

    assert collected(build)


def test_cycle_through_a_shut_down_queue_is_collected() -> None:
    def build(holder: Holder) -> None:
        q: Queue[object] = Queue(2)
        q.put(holder.method)
        q.shutdown()  # the item stays, for get() to drain
        holder.parts.append(q)

    assert collected(build)


def test_cycle_through_nested_queues_is_collected() -> None:
    def build(holder: Holder) -> None:
        inner: Queue[object] = Queue(1)
        inner.put(holder)
        outer: Queue[object] = Queue(1)
        outer.put(inner)
        holder.parts.append(outer)

    assert collected(build)


def test_queue_holding_itself_is_collected() -> None:
    q: Queue[object] = Queue(2)
    q.put(q)
    item = Holder()
    q.put(item)
    ref = weakref.ref(item)
    del q, item
    gc.collect()
    assert ref() is None


def test_collector_sees_queued_items() -> None:
    q: Queue[object] = Queue(2)
    item = Holder()
    q.put(item)
    assert any(r is item for r in gc.get_referents(q))
    q.get()
    assert not any(r is item for r in gc.get_referents(q))


def test_cycle_through_a_pipeline_is_collected() -> None:
    def build(holder: Holder) -> None:
        pipeline = Pipeline(Registry(), workers=1, capacity=8)
        pipeline.counter("holder_calls").inc()
        pipeline.close()
        holder.parts += [pipeline, holder]

    assert collected(build)
