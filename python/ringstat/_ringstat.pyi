"""Native core of the ``ringstat`` package (built from ``src/python/`` by maturin)."""

import sys
from collections.abc import Iterable
from types import GenericAlias
from typing import Any, Generic, TypeVar, final

_T = TypeVar("_T")

__all__ = ["Queue", "ShutDown", "__version__"]

__version__: str
"""The package version (the Rust crate's version)."""

if sys.version_info >= (3, 13):
    from queue import ShutDown as ShutDown
else:
    class ShutDown(Exception):
        """Raised by ``put()`` on a queue that was shut down, and by ``get()`` once it is
        also drained. On Python 3.13+ this is :class:`queue.ShutDown` itself."""

@final
class Queue(Generic[_T]):
    """A bounded multi-producer, multi-consumer FIFO queue of Python objects: a
    lock-free ring buffer with the interface of :class:`queue.Queue`.

    Any thread may call any method. Blocking calls release the GIL and stay
    interruptible by Ctrl-C. ``put``/``get`` raise the standard library's own
    :class:`queue.Full` and :class:`queue.Empty`; after ``shutdown()`` they raise
    :class:`ShutDown`.

    Differences from :class:`queue.Queue`: ``maxsize`` is required, at least 1,
    and read-only (``maxsize <= 0`` raises ``ValueError`` instead of meaning
    "unbounded": the ring is allocated up front and never grows); ``block``
    must be a ``bool``; there are no ``mutex``/``not_empty``/``not_full``/
    ``all_tasks_done`` attributes or ``_put``/``_get`` hooks. Extras:
    ``put_many``, ``get_many``, ``len()``.
    """

    def __new__(cls, maxsize: int) -> Queue[_T]:
        """Create a queue that holds at most ``maxsize`` items.

        Raises ``TypeError`` if ``maxsize`` is not an int and ``ValueError`` if it
        is less than 1 or too large.
        """

    @classmethod
    def __class_getitem__(cls, key: Any) -> GenericAlias:
        """``Queue[int]``: a generic alias, as for :class:`queue.Queue`."""

    @property
    def maxsize(self) -> int:
        """The most items the queue holds (read-only)."""

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done by :meth:`task_done`."""

    @property
    def is_shutdown(self) -> bool:
        """``True`` once :meth:`shutdown` has been called."""

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` at the back of the queue.

        If the queue is full: with ``block=False`` raise :class:`queue.Full` at
        once; otherwise wait for room, at most ``timeout`` seconds if it is not
        ``None``, then raise :class:`queue.Full`. Raises :class:`ShutDown` if the
        queue is (or becomes, while waiting) shut down, and ``ValueError`` for a
        negative ``timeout``.
        """

    def put_nowait(self, item: _T) -> None:
        """``put(item, block=False)``."""

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return the oldest item.

        If the queue is empty: with ``block=False`` raise :class:`queue.Empty` at
        once; otherwise wait for an item, at most ``timeout`` seconds if it is not
        ``None``, then raise :class:`queue.Empty`. Once the queue is shut down and
        drained, raise :class:`ShutDown`.
        """

    def get_nowait(self) -> _T:
        """``get(block=False)``."""

    def put_many(
        self, items: Iterable[_T], block: bool = True, timeout: float | None = None
    ) -> int:
        """Put every item of ``items``, in order, claiming room for runs of them
        with one atomic operation; return how many were put.

        With ``block=True`` and no ``timeout`` every item is put (waiting for
        room as needed). With ``block=False``, as many as fit right now are put;
        with a ``timeout``, as many as fit before it elapses: the rest are not
        put (``items[n:]`` for a sequence, ``n`` being the result). Never raises
        :class:`queue.Full`. Raises :class:`ShutDown` if the queue is (or
        becomes) shut down before every item is put; the items put before that
        stay in the queue.
        """

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[_T]:
        """Remove and return up to ``max_items`` (>= 1) of the oldest items, in
        order, claimed with one atomic operation; the list is never empty.

        If the queue is empty, waits for the first item exactly as :meth:`get`
        does (raising :class:`queue.Empty` or :class:`ShutDown` likewise), then
        returns what is there without waiting for more.
        """

    def qsize(self) -> int:
        """The number of items in the queue (a snapshot)."""

    def empty(self) -> bool:
        """``True`` if the queue holds no item (a snapshot)."""

    def full(self) -> bool:
        """``True`` if the queue holds ``maxsize`` items (a snapshot)."""

    def task_done(self) -> None:
        """Mark one item got from the queue as processed (for :meth:`join`).

        Raises ``ValueError`` if called more times than items were put.
        """

    def join(self) -> None:
        """Block until every item put has been marked done by :meth:`task_done`.

        Releases the GIL while waiting and is interruptible by Ctrl-C.
        """

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down: ``put`` raises :class:`ShutDown` from now on,
        ``get`` returns the items left and then raises :class:`ShutDown`; every
        blocked ``put``/``get`` wakes.

        With ``immediate=True`` the items left are discarded at once (each
        counted as done for :meth:`join`) and ``get`` raises :class:`ShutDown`
        immediately.
        """

    def __len__(self) -> int:
        """``qsize()``."""
