"""Single-threaded behaviour of ringstat.Queue, checked against queue.Queue."""

from __future__ import annotations

import functools
import itertools
import queue
from typing import Any, Callable

import pytest

import ringstat
from ringstat import Queue

AnyQueue = Any  # ringstat.Queue or queue.Queue: the same interface


def both(maxsize: int) -> list[AnyQueue]:
    return [queue.Queue(maxsize), Queue(maxsize)]


# ----- smoke and parity ------------------------------------------------------


def test_smoke() -> None:
    q: Queue[str] = Queue(2)
    q.put("login")
    q.put("logout")
    assert q.get() == "login"
    assert q.get() == "logout"


def test_fifo_order_and_any_object() -> None:
    items: list[object] = [None, 1, "two", 3.0, (4,), [5], {"six": 6}, object(), Queue(1)]
    q: Queue[object] = Queue(len(items))
    for item in items:
        q.put(item)
    got = [q.get() for _ in items]
    assert all(a is b for a, b in zip(got, items))


@pytest.mark.parametrize("maxsize", [1, 2, 3, 7])
def test_parity_with_stdlib(maxsize: int) -> None:
    """The same script of operations gives the same results on both queues."""

    def script(q: AnyQueue) -> list[object]:
        log: list[object] = []

        def attempt(op: Callable[[], object]) -> None:
            try:
                log.append(op())
            except (queue.Full, queue.Empty) as e:
                log.append(type(e))

        for i in range(3 * maxsize):
            attempt(functools.partial(q.put_nowait, i))
            log.extend([q.qsize(), q.empty(), q.full()])
            if i % 3 == 2:
                attempt(q.get_nowait)
                attempt(lambda: q.get(block=False))
        for _ in range(maxsize + 1):
            attempt(lambda: q.get(timeout=0))
            log.extend([q.qsize(), q.empty(), q.full()])
        attempt(lambda: q.put(1, False))
        attempt(lambda: q.put(2, True, 0))
        log.append(q.maxsize)
        return log

    reference, ours = (script(q) for q in both(maxsize))
    assert ours == reference


def test_capacity_one() -> None:
    q: Queue[int] = Queue(1)
    assert q.maxsize == 1
    assert q.empty()
    assert not q.full()
    q.put(1)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.01)
    assert q.get_nowait() == 1
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)


def test_wraps_around_many_laps() -> None:
    q: Queue[int] = Queue(3)
    for i in range(1000):
        q.put(i)
        q.put(-i)
        assert q.get() == i
        assert q.get() == -i
    assert q.empty()


def test_len_qsize_and_repr() -> None:
    q: Queue[int] = Queue(4)
    assert len(q) == 0
    q.put(1)
    q.put(2)
    assert len(q) == q.qsize() == 2
    assert repr(q) == "<ringstat.Queue maxsize=4 qsize=2 unfinished_tasks=2>"
    q.shutdown()
    assert repr(q) == "<ringstat.Queue maxsize=4 qsize=2 unfinished_tasks=2 shutdown>"


def test_maxsize_is_read_only() -> None:
    q: Queue[int] = Queue(4)
    with pytest.raises(AttributeError):
        q.maxsize = 5  # type: ignore[misc]


def test_infinite_timeout_means_forever() -> None:
    q: Queue[int] = Queue(1)
    q.put(1, timeout=float("inf"))
    assert q.get(timeout=1e300) == 1


def test_block_false_ignores_timeout() -> None:
    # As in queue.Queue: a non-blocking call does not look at the timeout.
    q: Queue[int] = Queue(1)
    q.put(1, False, -1)
    with pytest.raises(queue.Full):
        q.put(2, False, -1)
    assert q.get(False, -5) == 1


# ----- bad input ---------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, -1, -(2**70)])
def test_maxsize_below_one_means_unbounded(maxsize: int) -> None:
    # As in queue.Queue: maxsize <= 0 is an unbounded queue, and maxsize
    # reads back as given.
    q: Queue[int] = Queue(maxsize)
    assert q.maxsize == max(maxsize, -(2**63))
    assert q.put_many(range(10_000)) == 10_000
    assert not q.full()
    q.put_nowait(-1)
    assert q.qsize() == 10_001
    assert q.get_many(20_000) == [*range(10_000), -1]


def test_no_maxsize_is_unbounded() -> None:
    q: Queue[int] = Queue()
    assert q.maxsize == 0
    for i in range(5000):
        q.put(i, block=False)
    assert q.qsize() == 5000
    assert [q.get() for _ in range(5000)] == list(range(5000))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.001)


@pytest.mark.parametrize("maxsize", [2**62, 2**64, 2**70])
def test_maxsize_too_large_is_a_value_error(maxsize: int) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Queue(maxsize)


@pytest.mark.parametrize("maxsize", [2**40, 2**59])
def test_maxsize_too_large_to_allocate_is_a_memory_error(maxsize: int) -> None:
    with pytest.raises(MemoryError, match="maxsize: cannot allocate"):
        Queue(maxsize)


@pytest.mark.parametrize("maxsize", ["8", 8.0, True, [8]])
def test_maxsize_of_wrong_type_is_a_type_error(maxsize: object) -> None:
    with pytest.raises(TypeError, match="maxsize must be an int"):
        Queue(maxsize)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [-1, -0.001, float("nan")])
def test_negative_timeout_is_a_value_error(timeout: float) -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.put(1, timeout=timeout)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(timeout=timeout)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.put_many([1], timeout=timeout)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get_many(1, timeout=timeout)
    # Nothing was put or counted by the failed calls.
    assert q.qsize() == 0
    assert q.unfinished_tasks == 0


def test_timeout_of_wrong_type_is_a_type_error() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(TypeError, match="timeout must be a number or None, not str"):
        q.get(timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout must be a number or None, not list"):
        q.put(1, timeout=[1])  # type: ignore[arg-type]


@pytest.mark.parametrize(("block", "blocks"), [(0, False), (1, True), (None, False), ("yes", True)])
def test_block_is_a_truth_value_as_in_the_stdlib(block: object, blocks: bool) -> None:
    for q in both(1):
        q.put(1)
        # A blocking call with a tiny timeout and a non-blocking one both
        # raise; only the blocking one looks at the (negative) timeout.
        if blocks:
            with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
                q.put(2, block, -1)
        else:
            with pytest.raises(queue.Full):
                q.put(2, block, -1)
        assert q.get(block, -1 if not blocks else None) == 1
        assert q.unfinished_tasks == 1


def test_block_whose_truth_value_raises_propagates() -> None:
    class Bad:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth")

    q: Queue[int] = Queue(1)
    with pytest.raises(RuntimeError, match="no truth"):
        q.put(1, Bad())  # type: ignore[arg-type]
    assert q.qsize() == 0
    assert q.unfinished_tasks == 0


def test_put_many_of_a_non_iterable_is_a_type_error() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(TypeError, match="items must be an iterable, not int"):
        q.put_many(5)  # type: ignore[arg-type]


def test_put_many_iteration_error_says_what_went_in() -> None:
    def gen() -> Any:
        yield 1
        yield 2
        raise RuntimeError("boom")

    q: Queue[int] = Queue(4)
    with pytest.raises(RuntimeError, match="boom") as info:
        q.put_many(gen())
    # The items taken before the error were put, and the exception says so.
    assert info.value.items_put == 2  # type: ignore[attr-defined]
    assert info.value.items_left == []  # type: ignore[attr-defined]
    assert q.get_many(4) == [1, 2]
    assert q.unfinished_tasks == 2


def test_put_many_consumes_an_endless_iterable_in_bounded_chunks() -> None:
    # Regression: the whole iterable was collected first (an endless one
    # aborted the process). Non-blocking, it takes only what fits.
    it = itertools.count()
    q: Queue[int] = Queue(100)
    assert q.put_many(it, block=False) == 100
    assert next(it) == 100  # nothing more was taken from the iterator
    assert q.get_many(1000) == list(range(100))


def test_put_many_endless_iterable_with_timeout_hands_back_the_leftover() -> None:
    it = itertools.count()
    q: Queue[int] = Queue(3)
    with pytest.raises(queue.Full) as info:
        q.put_many(it, timeout=0.01)
    put = info.value.items_put  # type: ignore[attr-defined]
    left = info.value.items_left  # type: ignore[attr-defined]
    assert put == 3
    # Whatever was taken from the iterator and not put comes back.
    assert q.get_many(10) + left == list(range(put + len(left)))
    assert next(it) == put + len(left)
    assert q.unfinished_tasks == 3


def test_put_many_shutdown_midway_says_what_went_in() -> None:
    q: Queue[int] = Queue()
    stop_at = 2000

    def gen() -> Any:
        for i in itertools.count():
            if i == stop_at:
                q.shutdown()
            yield i

    with pytest.raises(ringstat.ShutDown) as info:
        q.put_many(gen())
    put = info.value.items_put  # type: ignore[attr-defined]
    left = info.value.items_left  # type: ignore[attr-defined]
    got = q.get_many(10**6)
    assert got == list(range(put))
    assert got + left == list(range(put + len(left)))
    assert 1024 <= put <= stop_at


def test_put_many_into_unbounded_queue_never_raises_full() -> None:
    q: Queue[int] = Queue()
    assert q.put_many(range(100_000), block=False) == 100_000
    assert q.put_many(iter(range(10)), timeout=0) == 10
    assert q.qsize() == 100_010


@pytest.mark.parametrize(
    ("max_items", "exc"), [(0, ValueError), (-3, ValueError), ("2", TypeError)]
)
def test_get_many_bad_max_items(max_items: Any, exc: type[Exception]) -> None:
    q: Queue[int] = Queue(1)
    q.put(1)
    with pytest.raises(exc, match="max_items"):
        q.get_many(max_items)
    assert q.qsize() == 1


# ----- batches -------------------------------------------------------------------


def test_put_many_get_many_roundtrip() -> None:
    q: Queue[int] = Queue(8)
    assert q.put_many(range(5)) == 5
    assert q.put_many([]) == 0
    assert q.get_many(3) == [0, 1, 2]
    assert q.get_many(100) == [3, 4]
    with pytest.raises(queue.Empty):
        q.get_many(4, block=False)
    with pytest.raises(queue.Empty):
        q.get_many(4, timeout=0.01)


def test_put_many_non_blocking_puts_what_fits() -> None:
    q: Queue[int] = Queue(3)
    items = list(range(10))
    n = q.put_many(items, block=False)
    assert n == 3
    assert q.unfinished_tasks == 3
    assert q.put_many(items[n:], block=False) == 0
    assert q.get_many(10) == [0, 1, 2]


def test_put_many_with_timeout_puts_what_fits_in_time() -> None:
    q: Queue[str] = Queue(2)
    assert q.put_many("abcd", timeout=0.02) == 2
    assert q.unfinished_tasks == 2
    assert q.get_many(5) == ["a", "b"]


def test_put_many_more_than_capacity_blocks_until_consumed() -> None:
    import threading

    q: Queue[int] = Queue(4)
    got: list[int] = []

    def consume() -> None:
        while len(got) < 100:
            got.extend(q.get_many(3))

    t = threading.Thread(target=consume)
    t.start()
    assert q.put_many(range(100)) == 100
    t.join(timeout=30)
    assert got == list(range(100))


# ----- task_done / join ----------------------------------------------------------


def test_task_done_and_join_counts() -> None:
    q: Queue[int] = Queue(4)
    q.join()  # nothing put: returns at once
    q.put(1)
    q.put_many([2, 3])
    assert q.unfinished_tasks == 3
    q.get_many(3)
    q.task_done()
    q.task_done()
    assert q.unfinished_tasks == 1
    q.task_done()
    q.join()
    with pytest.raises(ValueError, match="task_done\\(\\) called too many times"):
        q.task_done()
    assert q.unfinished_tasks == 0


def test_failed_puts_are_not_counted() -> None:
    q: Queue[int] = Queue(1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.001)
    assert q.unfinished_tasks == 1
    q.get()
    q.task_done()
    q.join()


def test_task_done_too_often_matches_stdlib() -> None:
    for q in both(1):
        with pytest.raises(ValueError, match="task_done\\(\\) called too many times"):
            q.task_done()


def test_ringstat_exports_behave_like_the_stdlib_ones() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(ringstat.Empty):
        q.get_nowait()
    q.put(1)
    with pytest.raises(ringstat.Full):
        q.put_nowait(1)


# ----- iteration -----------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, 4])
def test_iteration_gets_until_shut_down_and_drained(maxsize: int) -> None:
    import threading

    q: Queue[int] = Queue(maxsize)

    def produce() -> None:
        for i in range(100):
            q.put(i)
        q.shutdown()

    t = threading.Thread(target=produce)
    t.start()
    assert list(q) == list(range(100))
    t.join()
    assert list(iter(q)) == []


def test_put_and_get_take_their_arguments_as_python_methods_do() -> None:
    """``put(item)`` and ``get()`` take a fast path; every other spelling
    goes through the general one: same behaviour, CPython's errors."""
    q: Any = Queue(2)
    q.put(1)
    q.put(item=2)
    with pytest.raises(queue.Full):
        q.put(3, False)
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    with pytest.raises(queue.Full):
        q.put(3, True, 0.01)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    assert q.unfinished_tasks == 2  # refused puts are not counted
    assert q.get() == 1
    assert q.get(False) == 2
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(True, 0.01)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    bad: list[tuple[Callable[[], object], str]] = [
        (lambda: q.put(), r"^put\(\) missing 1 required positional argument: 'item'$"),  # noqa: PLW0108 (calls it with no argument)
        (lambda: q.put(1, True, None, 4), r"^put\(\) takes at most 3 arguments \(4 given\)$"),
        (lambda: q.put(1, item=2), r"^put\(\) got multiple values for argument 'item'$"),
        (lambda: q.get(True, None, 3), r"^get\(\) takes at most 2 arguments \(3 given\)$"),
        (lambda: q.get(wait=1), r"^get\(\) got an unexpected keyword argument 'wait'$"),
        (lambda: q.get(timeout="1"), "timeout must be a number or None, not str"),
        (
            lambda: q.put_nowait(),  # noqa: PLW0108 (calls it with no argument)
            r"^put_nowait\(\) missing 1 required positional argument: 'item'$",
        ),
        (lambda: q.put_nowait(1, True), r"^put_nowait\(\) takes at most 1 argument \(2 given\)$"),
        (lambda: q.get_nowait(1), r"^get_nowait\(\) takes no arguments \(1 given\)$"),
    ]
    for call, match in bad:
        with pytest.raises(TypeError, match=match):
            call()
    assert q.qsize() == 0
    assert q.unfinished_tasks == 2
    q.put_nowait(item=3)
    q.put_nowait(4)
    with pytest.raises(queue.Full):
        q.put_nowait(9)
    assert [q.get_nowait(), q.get_nowait()] == [3, 4]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    assert q.unfinished_tasks == 4
    q.put(5)
    q.shutdown()
    assert q.get() == 5
    with pytest.raises(ringstat.ShutDown):
        q.get()
    with pytest.raises(ringstat.ShutDown):
        q.put(6)
    assert q.unfinished_tasks == 5
