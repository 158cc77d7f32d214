"""asyncio access to :class:`ringstat.Queue`: :class:`AsyncQueue`, a view with
the interface of :class:`asyncio.Queue` over a native queue that threads and
other event loops keep using at the same time.

How a waiting task is woken: each running loop gets one hub, a native
``_LoopWaker`` whose eventfd (a pipe off Linux) the loop watches with
``add_reader``. A task that finds the queue empty (or full) registers a
native waker under a token with the queue and awaits a future. The push (or
pop, or shutdown) that ends the wait, on any thread and without the GIL,
hands the token to the hub and writes the fd; the loop's reader callback
resolves the token's future. Nothing polls and nothing runs on a timer; a
call never blocks the loop.

:class:`AsyncSharedQueue` does the same for a :class:`ringstat.SharedQueue`,
whose other end is usually another *process*. A push there can only bump a
futex word in the shared region and ``futex_wake`` its sleepers; an eventfd
cannot be registered in the region (a descriptor means nothing in another
process). So the native handle keeps one watcher thread per side (get, put),
started by the first wait and parked while nobody waits, blocked natively in
``futex_wait`` on that word exactly like a blocking ``get``. When the word
moves it fires the wakers of every task waiting on that side, through the same
loop hubs; each task retries, and those that find nothing wait again. One
thread per handle and side serves all its tasks on all loops; no task polls
and no call runs in an executor. The watcher's only timed action is the
liveness re-check every blocking wait makes (about every 100 ms while tasks
wait): it sweeps killed processes' leftovers. See ``src/queue/shared/notify.rs``
for why no wake-up is lost.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ringstat._ringstat import (
    CounterHandle,
    DistinctHandle,
    GaugeHandle,
    HistogramHandle,
    Pipeline,
    Queue,
    RateHandle,
    Recorder,
    SessionsHandle,
    ShutDown,
    _LoopWaker,
    _PendingSend,
    _pipeline_nowait,
    _pipeline_task,
    _PipelineTask,
)
from ringstat.snapshot import Snapshot

try:
    from ringstat._ringstat import SharedQueue
except ImportError:  # not Linux: no shared queue
    SharedQueue = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self

__all__ = ["AsyncPipeline", "AsyncQueue", "AsyncSharedQueue", "QueueShutDown", "stream"]

_T = TypeVar("_T")

if sys.version_info >= (3, 13):

    class QueueShutDown(asyncio.QueueShutDown, ShutDown):  # type: ignore[misc]
        """Raised by :class:`AsyncQueue` after ``shutdown()``: both
        :class:`asyncio.QueueShutDown` and ``ringstat.ShutDown``."""

else:
    QueueShutDown = ShutDown

# `_try_get`'s "nothing there" (an item may be any object, even None).
_MISSING: Any = object()
# Immediate retries (the queue changed while registering) before a wait
# yields to the loop instead: a producer on another thread may have claimed a
# slot and not yet filled it.
_RETRIES = 2
# Calls that completed at once, in a row, after which `get`/`put` yield to the
# loop once: a task draining a queue that threads keep filling (or filling
# an unbounded one) would otherwise never give other tasks a turn, since
# awaiting a coroutine that does not suspend does not yield.
_STREAK = 64


class _Hub:
    """One event loop's end of the native wake-ups: the futures of its
    waiting tasks, by token, resolved when the native side fires them."""

    __slots__ = ("__weakref__", "native", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.native = _LoopWaker()
        self.pending: dict[int, asyncio.Future[None]] = {}
        loop.add_reader(self.native.fileno(), self._on_fired)

    def _on_fired(self) -> None:
        pending = self.pending
        for token in self.native.take_fired():
            fut = pending.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(None)


# Keyed weakly by the loop: the loop holds its hub (through its reader), the
# hub holds no reference to the loop, so a loop that goes away takes its
# hub (and its fd) with it.
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def _hub() -> tuple[asyncio.AbstractEventLoop, _Hub]:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        with _hubs_lock:
            hub = _hubs.get(loop)
            if hub is None:
                hub = _hubs[loop] = _Hub(loop)
    return loop, hub


async def _wait_until(q: Queue[Any], for_put: bool, attempt: Callable[[], Any]) -> Any:
    """Waits (natively woken) for room (``for_put``) or items, then calls
    ``attempt`` until it returns something other than ``_MISSING``."""
    loop, hub = _hub()
    unwait = q._unwait_put if for_put else q._unwait_get
    retries = 0
    while True:
        token = q._wait(for_put, hub.native)
        if token:
            retries = 0
            await _await_token(loop, hub, token, unwait)
        elif retries >= _RETRIES:
            retries = 0
            await asyncio.sleep(0)
        else:
            retries += 1
        got = attempt()
        if got is not _MISSING:
            return got


async def _await_token(loop: asyncio.AbstractEventLoop, hub: _Hub, token: int, cancel: Any) -> None:
    """Awaits the native wake-up of ``token``; calls ``cancel(token)`` if the
    wait ends (cancelled, timed out) before it fired."""
    fut = loop.create_future()
    hub.pending[token] = fut
    try:
        await fut
    finally:
        if hub.pending.pop(token, None) is not None:
            cancel(token)


class _QueueView(Generic[_T]):
    """What the coroutine views of a :class:`ringstat.Queue` and of a
    :class:`ringstat.SharedQueue` share: the sizes, shutdown, iteration, and
    the occasional yield of a task that never has to wait."""

    __slots__ = ("_q", "_streak")
    _q: Any
    _streak: int

    @property
    def maxsize(self) -> int:
        return int(self._q.maxsize)

    def qsize(self) -> int:
        return int(self._q.qsize())

    def empty(self) -> bool:
        return bool(self._q.empty())

    def full(self) -> bool:
        return bool(self._q.full())

    def __len__(self) -> int:
        return int(self._q.qsize())

    async def _yield_if_due(self) -> None:
        # A task that never waits still lets the loop's other tasks run; a
        # cancellation here has taken or put nothing yet.
        self._streak += 1
        if self._streak >= _STREAK:
            self._streak = 0
            await asyncio.sleep(0)

    async def get(self) -> _T:
        raise NotImplementedError

    def shutdown(self, immediate: bool = False) -> None:
        """Shuts the queue down (for threads, every loop and, for a shared
        queue, every process): ``put`` raises :data:`QueueShutDown`; ``get``
        drains, then raises it. With ``immediate=True`` the items left are
        discarded; waiting tasks and blocked calls wake up."""
        self._q.shutdown(immediate)

    @property
    def is_shutdown(self) -> bool:
        return bool(self._q.is_shutdown)

    def __aiter__(self) -> AsyncIterator[_T]:
        return self

    async def __anext__(self) -> _T:
        try:
            return await self.get()
        except ShutDown:
            raise StopAsyncIteration from None


class AsyncQueue(_QueueView[_T]):
    """The :class:`asyncio.Queue` interface over a :class:`ringstat.Queue`.

    ``AsyncQueue(maxsize)`` makes a new queue; ``AsyncQueue(queue=q)`` (or
    ``q.async_view()``) a view of ``q``. The view holds no state of its own:
    threads keep calling ``q``'s blocking methods while tasks on any number
    of event loops await this one, all on the same items.

    ``get_nowait``/``put_nowait`` raise :class:`asyncio.QueueEmpty` and
    :class:`asyncio.QueueFull`; after ``shutdown()``, ``put`` and a drained
    ``get`` raise :data:`QueueShutDown` (``ringstat.ShutDown``, and also
    :class:`asyncio.QueueShutDown` on Python 3.13+). Cancelling a waiting
    ``get`` takes no item.
    """

    __slots__ = ()
    _q: Queue[_T]

    def __init__(self, maxsize: int = 0, *, queue: Queue[_T] | None = None) -> None:
        self._q: Queue[_T] = Queue(maxsize) if queue is None else queue
        self._streak = 0

    @property
    def sync(self) -> Queue[_T]:
        """The native queue: its blocking methods are for threads."""
        return self._q

    def __repr__(self) -> str:
        return f"<ringstat.AsyncQueue of {self._q!r}>"

    # ----- get ------------------------------------------------------------

    def get_nowait(self) -> _T:
        """Removes and returns an item; :class:`asyncio.QueueEmpty` if none."""
        try:
            item = self._q._try_get(_MISSING)
        except ShutDown:
            raise QueueShutDown from None
        if item is _MISSING:
            raise asyncio.QueueEmpty
        return item

    async def get(self) -> _T:
        """Removes and returns an item, waiting for one."""
        q = self._q
        try:
            await self._yield_if_due()
            item = q._try_get(_MISSING)
            if item is not _MISSING:
                return item
            self._streak = 0
            got: _T = await _wait_until(q, False, lambda: q._try_get(_MISSING))
            return got
        except ShutDown:
            raise QueueShutDown from None

    async def get_many(self, max_items: int) -> list[_T]:
        """Removes and returns up to ``max_items`` items (at least one),
        waiting for the first."""
        q = self._q
        try:
            await self._yield_if_due()
            items = q._try_get_many(max_items)
            if items:
                return items
            self._streak = 0
            many: list[_T] = await _wait_until(
                q, False, lambda: q._try_get_many(max_items) or _MISSING
            )
            return many
        except ShutDown:
            raise QueueShutDown from None

    # ----- put ------------------------------------------------------------

    def put_nowait(self, item: _T) -> None:
        """Puts ``item``; :class:`asyncio.QueueFull` if there is no room."""
        try:
            if not self._q._try_put(item):
                raise asyncio.QueueFull
        except ShutDown:
            raise QueueShutDown from None

    async def put(self, item: _T) -> None:
        """Puts ``item``, waiting for room."""
        q = self._q
        try:
            await self._yield_if_due()
            if q._try_put(item):
                return
            self._streak = 0
            await _wait_until(q, True, lambda: None if q._try_put(item) else _MISSING)
        except ShutDown:
            raise QueueShutDown from None

    async def put_many(self, items: Iterable[_T]) -> int:
        """Puts every item of ``items`` in order, waiting for room as needed;
        returns how many were put. Cancelled, some may have been put: the
        items of a sequence ``items[:n]`` are in (``n`` is not reported)."""
        q = self._q
        seq: Sequence[_T] = items if isinstance(items, Sequence) else list(items)
        total = len(seq)
        done = 0
        try:
            await asyncio.sleep(0)  # as `put`, once per batch
            done = q.put_many(seq, block=False)
            if done == total:
                return done

            def attempt() -> object:
                nonlocal done
                done += q.put_many(seq[done:], block=False)
                return None if done == total else _MISSING

            await _wait_until(q, True, attempt)
            return done
        except ShutDown:
            raise QueueShutDown from None

    # ----- tasks, shutdown, iteration ---------------------------------------

    def task_done(self) -> None:
        """Marks one item got from the queue as processed."""
        self._q.task_done()

    async def join(self) -> None:
        """Waits until every item put has been marked done."""
        q = self._q
        loop = hub = None
        while True:
            if hub is None:
                if q.unfinished_tasks == 0:
                    return
                loop, hub = _hub()
            token = q._wait_join(hub.native)
            if not token:
                return
            assert loop is not None
            await _await_token(loop, hub, token, q._unwait_join)


async def _shared_wait_until(q: SharedQueue, for_put: bool, attempt: Callable[[], Any]) -> Any:
    """``_wait_until`` for a shared queue: a task that leaves (cancelled,
    timed out) after its wake-up fired passes the wake-up on, so the message
    (or slot) it was woken for does not wait for the next re-check while
    another process's consumer (producer) sleeps."""
    loop, hub = _hub()
    retries = 0
    while True:
        token = q._wait(for_put, hub.native)
        if token:
            retries = 0
            fut = loop.create_future()
            hub.pending[token] = fut
            try:
                await fut
            except BaseException:
                if hub.pending.pop(token, None) is None:
                    q._pass_wake(for_put)  # fired, and we leave without using it
                elif not (q._unwait_put(token) if for_put else q._unwait_get(token)):
                    q._pass_wake(for_put)  # fired natively, not yet seen by the loop
                raise
        elif retries >= _RETRIES:
            retries = 0
            await asyncio.sleep(0)
        else:
            retries += 1
        got = attempt()
        if got is not _MISSING:
            return got


def _found(item: bytes | None) -> Any:
    """``_MISSING`` for ``_try_get``'s "nothing there" (an empty message is
    ``b""``, a message all the same)."""
    return _MISSING if item is None else item


class AsyncSharedQueue(_QueueView[bytes]):
    """The :class:`asyncio.Queue` interface over a :class:`ringstat.SharedQueue`
    (byte messages between processes; Linux).

    ``AsyncSharedQueue(q)`` (or ``q.async_view()``) is a view of ``q``: other
    processes (and threads of this one) keep using the queue's blocking
    methods, or their own views, on the same messages. A waiting ``get`` is
    woken natively by a ``put`` in any process (see the module docs).

    ``put`` takes any bytes-like message (``ValueError`` if it is larger than
    ``slot_size``, ``TypeError`` if it is not bytes-like); ``get`` returns
    ``bytes``; ``put_obj``/``get_obj`` pickle. ``get_nowait``/``put_nowait``
    raise :class:`asyncio.QueueEmpty`/:class:`asyncio.QueueFull`; after
    ``shutdown()`` (by any process) ``put`` and a drained ``get`` raise
    :data:`QueueShutDown`. Cancelled (``asyncio.timeout``, ``wait_for``,
    ``task.cancel()``), a waiting ``get`` has taken no message and a waiting
    ``put`` has put nothing. There is no ``join``/``task_done``: the shared
    queue does not track tasks. Bound a wait on a peer that may die with
    ``asyncio.timeout``/``wait_for``; a message a killed peer was writing or
    reading is counted in ``lost``, nothing else is.
    """

    __slots__ = ()
    _q: SharedQueue

    def __init__(self, queue: SharedQueue) -> None:
        if SharedQueue is None or not isinstance(queue, SharedQueue):
            raise TypeError(f"queue must be a ringstat.SharedQueue, not {type(queue).__name__}")
        self._q = queue
        self._streak = 0

    @property
    def sync(self) -> SharedQueue:
        """The shared queue: its blocking methods are for threads."""
        return self._q

    @property
    def slot_size(self) -> int:
        return self._q.slot_size

    @property
    def lost(self) -> int:
        return self._q.lost

    def __repr__(self) -> str:
        return f"<ringstat.AsyncSharedQueue of {self._q!r}>"

    # ----- get ------------------------------------------------------------

    def get_nowait(self) -> bytes:
        """Removes and returns a message; :class:`asyncio.QueueEmpty` if none."""
        try:
            item = self._q._try_get()
        except ShutDown:
            raise QueueShutDown from None
        if item is None:
            raise asyncio.QueueEmpty
        return item

    async def get(self) -> bytes:
        """Removes and returns the oldest message, waiting for one."""
        q = self._q
        try:
            await self._yield_if_due()
            item = q._try_get()
            if item is not None:
                return item
            self._streak = 0
            got: bytes = await _shared_wait_until(q, False, lambda: _found(q._try_get()))
            return got
        except ShutDown:
            raise QueueShutDown from None

    async def get_many(self, max_items: int) -> list[bytes]:
        """Removes and returns up to ``max_items`` messages (at least one),
        waiting for the first."""
        q = self._q
        try:
            await self._yield_if_due()
            items = q._try_get_many(max_items)
            if items:
                return items
            self._streak = 0
            many: list[bytes] = await _shared_wait_until(
                q, False, lambda: q._try_get_many(max_items) or _MISSING
            )
            return many
        except ShutDown:
            raise QueueShutDown from None

    async def get_obj(self) -> Any:
        """``pickle.loads(await get())`` (trust the writers, as for any
        unpickling)."""
        return pickle.loads(await self.get())

    # ----- put ------------------------------------------------------------

    def put_nowait(self, item: Buffer) -> None:
        """Puts ``item``; :class:`asyncio.QueueFull` if there is no room."""
        try:
            if not self._q._try_put(item):
                raise asyncio.QueueFull
        except ShutDown:
            raise QueueShutDown from None

    async def put(self, item: Buffer) -> None:
        """Puts the message ``item``, waiting for room."""
        q = self._q
        try:
            await self._yield_if_due()
            if q._try_put(item):
                return
            self._streak = 0
            await _shared_wait_until(q, True, lambda: None if q._try_put(item) else _MISSING)
        except ShutDown:
            raise QueueShutDown from None

    async def put_many(self, items: Iterable[Buffer]) -> int:
        """Puts every message of ``items`` in order, waiting for room as
        needed; returns how many were put. Cancelled, some may have been put:
        the messages ``items[:n]`` of a sequence are in (``n`` is not
        reported); none is put twice or in part."""
        q = self._q
        seq: Sequence[Buffer] = items if isinstance(items, Sequence) else list(items)
        total = len(seq)
        done = 0
        try:
            await asyncio.sleep(0)  # as `put`, once per batch
            while done < total and q._try_put(seq[done]):
                done += 1
            if done == total:
                return done

            def attempt() -> object:
                nonlocal done
                while done < total and q._try_put(seq[done]):
                    done += 1
                return None if done == total else _MISSING

            await _shared_wait_until(q, True, attempt)
            return done
        except ShutDown:
            raise QueueShutDown from None

    async def put_obj(self, obj: object) -> None:
        """``await put(pickle.dumps(obj))`` (highest protocol)."""
        await self.put(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


async def _wait_for(
    loop: asyncio.AbstractEventLoop, hub: _Hub, task: _PendingSend | _PipelineTask
) -> None:
    """One wait of a pending send or a pipeline task: until its native
    waker fires (or, when it says progress is possible now, a short pass)."""
    token = task._wait(hub.native)
    if token:
        await _await_token(loop, hub, token, task._unwait)
    else:
        # Progress is possible (a slot is being freed): let the loop run
        # once rather than spin on it.
        await asyncio.sleep(0)


# What AsyncPipeline.send takes the bound methods of.
_SENDERS = (
    Pipeline,
    CounterHandle,
    GaugeHandle,
    HistogramHandle,
    RateHandle,
    SessionsHandle,
    DistinctHandle,
)


class AsyncPipeline:
    """A :class:`ringstat.Pipeline` from coroutines: sends that never block
    the event loop, and ``await flush()`` / ``await close()``.

    ``AsyncPipeline(pipeline)`` (or ``pipeline.async_view()``) is a view:
    threads keep using ``pipeline`` (and its handles) at the same time.

    A send is first tried at once. Only under ``backpressure="block"`` with
    its worker's queue full does it wait: it registers a native waker with
    that queue and awaits the loop's wake-up (the worker's next pop writes the
    loop's eventfd; nothing polls), then tries again. ``send(method, *args)``
    takes any single-event send method of the pipeline or of a handle
    (``p.count``, ``logins.inc``, ``online.start``, ...); ``count``, ``set``,
    ``gauge_add``, ``observe``, ``mark``, ``session_start``, ``session_end``
    and ``seen`` are shortcuts for the pipeline's own.

    Cancelled (or timed out) while it waits, a send has not sent its event,
    and never will: the event is sent only by a try, which runs between
    awaits. So an awaited send sends its event exactly once if it returns,
    and not at all if it raises (``PipelineClosed`` included).
    Batch methods (``add_many``, ...), ``flush`` and ``close`` are refused by
    ``send`` (``TypeError``, nothing done): call batches through
    :func:`asyncio.to_thread`.
    """

    __slots__ = ("_p",)

    def __init__(self, pipeline: Pipeline) -> None:
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a ringstat.Pipeline, not {type(pipeline).__name__}")
        self._p = pipeline

    @property
    def sync(self) -> Pipeline:
        """The pipeline: its methods are for threads."""
        return self._p

    def __repr__(self) -> str:
        return f"<ringstat.AsyncPipeline of {self._p!r}>"

    async def send(self, method: Any, /, *args: Any, **kwargs: Any) -> None:
        """Calls ``method(*args, **kwargs)``, a single-event send method,
        waiting for room without blocking the loop."""
        if not isinstance(getattr(method, "__self__", None), _SENDERS):
            raise TypeError(
                "AsyncPipeline.send() takes a send method of a Pipeline or of one of its"
                f" handles (p.count, logins.inc, ...), not {method!r}"
            )
        pending = _pipeline_nowait(method, *args, **kwargs)
        if pending is None:
            return
        loop, hub = _hub()
        while True:
            await _wait_for(loop, hub, pending)
            if pending._try_send():
                return

    async def count(self, name: str, n: int = 1) -> None:
        """``pipeline.count(name, n)``, awaited."""
        await self.send(self._p.count, name, n)

    async def set(self, name: str, value: int) -> None:
        """``pipeline.set(name, value)``, awaited."""
        await self.send(self._p.set, name, value)

    async def gauge_add(self, name: str, n: int) -> None:
        """``pipeline.gauge_add(name, n)``, awaited."""
        await self.send(self._p.gauge_add, name, n)

    async def observe(self, name: str, value: float) -> None:
        """``pipeline.observe(name, value)``, awaited."""
        await self.send(self._p.observe, name, value)

    async def mark(self, name: str, n: int = 1) -> None:
        """``pipeline.mark(name, n)``, awaited."""
        await self.send(self._p.mark, name, n)

    async def session_start(
        self, name: str, key: int | str | bytes, ts: float | None = None
    ) -> None:
        """``pipeline.session_start(name, key, ts)``, awaited."""
        await self.send(self._p.session_start, name, key, ts)

    async def session_end(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """``pipeline.session_end(name, key, ts)``, awaited."""
        await self.send(self._p.session_end, name, key, ts)

    async def seen(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """``pipeline.seen(name, key, ts)``, awaited."""
        await self.send(self._p.seen, name, key, ts)

    async def flush(self) -> None:
        """Waits until every event sent before this call is applied, as
        ``pipeline.flush()``, without blocking the loop: the flush markers
        wait for room and the workers' answers wake the loop. Cancelled, the
        flush is abandoned (its markers are answered for nobody)."""
        if self._p.closed:
            return
        await self._run(_pipeline_task(self._p))

    async def close(self) -> None:
        """Closes the pipeline (sends raise ``PipelineClosed`` at once) and
        waits, without blocking the loop, until the workers have applied
        every event queued and exited. Cancelled, the pipeline stays closed
        and its workers finish on their own; awaiting ``close()`` again (or
        ``pipeline.close()``) waits for them."""
        await self._run(_pipeline_task(self._p, True))

    @staticmethod
    async def _run(task: _PipelineTask) -> None:
        if task._try_complete():
            return
        loop, hub = _hub()
        while True:
            await _wait_for(loop, hub, task)
            if task._try_complete():
                return

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def stream(recorder: Recorder) -> AsyncIterator[Snapshot]:
    """``recorder.stream()``: yields each sample the recorder takes from now
    on, as its native thread takes it (the thread wakes the loop; nothing
    polls), and ends once the recorder is stopped and every sample taken
    before the stop was yielded. A reader slower than the interval gets the
    samples still kept, oldest first: those dropped (over ``capacity``) or
    drained meanwhile are skipped."""
    seen = recorder._taken()
    loop, hub = _hub()
    while True:
        token = recorder._wait_sample(seen, hub.native)
        if token:
            if not recorder.running:
                recorder._unwait_sample(token)
                return
            await _await_token(loop, hub, token, recorder._unwait_sample)
        samples, seen = recorder._samples_since(seen)
        for s in samples:
            yield Snapshot(s)
