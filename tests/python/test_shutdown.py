"""shutdown(): Python 3.13 semantics, checked against queue.Queue where it has them."""

from __future__ import annotations

import functools
import queue
import threading
import time
from typing import Any

import pytest

import ringstat
from conftest import needs_stdlib_shutdown
from ringstat import Queue, ShutDown


def test_put_after_shutdown_raises_and_is_not_counted() -> None:
    q: Queue[int] = Queue(4)
    q.shutdown()
    assert q.is_shutdown
    for call in (
        lambda: q.put(1),
        lambda: q.put_nowait(1),
        lambda: q.put(1, timeout=1),
        lambda: q.put_many([1, 2]),
        lambda: q.put_many([]),
    ):
        with pytest.raises(ShutDown):
            call()
    assert q.unfinished_tasks == 0
    assert q.qsize() == 0


def test_get_drains_then_raises() -> None:
    q: Queue[int] = Queue(4)
    q.put_many([1, 2, 3])
    q.shutdown()
    assert q.get() == 1
    assert q.get_many(1) == [2]
    assert q.get_nowait() == 3
    for call in (q.get, q.get_nowait, lambda: q.get(timeout=5), lambda: q.get_many(3)):
        with pytest.raises(ShutDown):
            call()


def test_immediate_discards_items_and_adjusts_task_count() -> None:
    q: Queue[int] = Queue(4)
    q.put_many([1, 2, 3])
    q.get()  # one item handed out, not yet done
    q.shutdown(immediate=True)
    assert q.qsize() == 0
    with pytest.raises(ShutDown):
        q.get()
    # The two discarded items count as done; the one handed out does not.
    assert q.unfinished_tasks == 1
    q.task_done()
    q.join()


def test_shutdown_twice_is_harmless() -> None:
    q: Queue[int] = Queue(1)
    q.shutdown()
    q.shutdown(immediate=True)
    q.shutdown()
    assert q.is_shutdown


def test_immediate_is_a_truth_value() -> None:
    # As in queue.Queue.shutdown: `if immediate:`.
    q: Queue[int] = Queue(2)
    q.put_many([1, 2])
    q.shutdown(0)  # type: ignore[arg-type]
    assert q.is_shutdown
    assert q.qsize() == 2
    q.shutdown(1)  # type: ignore[arg-type]
    assert q.qsize() == 0
    assert q.unfinished_tasks == 0


def _blocked(target: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.1)  # let it block (the test passes either way)
    return t, errors


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_blocked_getters(immediate: bool) -> None:
    q: Queue[int] = Queue(1)
    threads = [_blocked(q.get) for _ in range(3)] + [_blocked(lambda: q.get_many(5))]
    q.shutdown(immediate=immediate)
    for t, errors in threads:
        t.join(timeout=10)
        assert not t.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], ShutDown)


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_blocked_putters(immediate: bool) -> None:
    q: Queue[int] = Queue(1)
    q.put(0)
    threads = [_blocked(lambda: q.put(1)) for _ in range(3)]
    threads.append(_blocked(lambda: q.put_many([1, 2, 3])))
    q.shutdown(immediate=immediate)
    for t, errors in threads:
        t.join(timeout=10)
        assert not t.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], ShutDown)
    assert q.unfinished_tasks == (0 if immediate else 1)


def test_immediate_shutdown_releases_join() -> None:
    q: Queue[int] = Queue(4)
    q.put_many([1, 2, 3])
    t, errors = _blocked(q.join)
    q.shutdown(immediate=True)
    t.join(timeout=10)
    assert not t.is_alive()
    assert errors == []


@needs_stdlib_shutdown
@pytest.mark.parametrize("immediate", [False, True])
def test_parity_with_stdlib_shutdown(immediate: bool) -> None:
    def script(q: Any) -> list[object]:
        log: list[object] = []

        def attempt(op: Any) -> None:
            try:
                log.append(op())
            except (queue.Full, queue.Empty, ringstat.ShutDown, ValueError) as e:
                log.append(type(e).__name__)

        for i in range(3):
            attempt(functools.partial(q.put, i))
        attempt(q.get)
        attempt(q.task_done)
        attempt(lambda: q.shutdown(immediate=immediate))
        attempt(lambda: q.put(9))
        attempt(lambda: q.put_nowait(9))
        log.append(q.qsize())
        log.append(q.unfinished_tasks)
        for _ in range(4):
            attempt(q.get_nowait)
            attempt(lambda: q.get(timeout=0.01))
        log.append(q.is_shutdown)
        return log

    reference = script(queue.Queue(4))
    ours = script(Queue(4))
    assert ours == reference
