"""Native core of the ``ringstat`` package (built from ``src/python/`` by maturin)."""

import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from types import GenericAlias, TracebackType
from typing import (
    Any,
    Generic,
    Literal,
    SupportsFloat,
    SupportsIndex,
    TypedDict,
    TypeVar,
    final,
    overload,
)

import pandas as pd
import polars as pl
from typing_extensions import Buffer, Self, TypeAlias, disjoint_base

from ringstat._methods import ExceptionCounter, InProgress, Timer
from ringstat.aio import AsyncPipeline, AsyncQueue, AsyncSharedQueue
from ringstat.family import Family
from ringstat.snapshot import Snapshot

_T = TypeVar("_T")
_D = TypeVar("_D")

__all__ = [
    "FRAME_VERSION",
    "STATE_VERSION",
    "Counter",
    "CounterHandle",
    "DistinctHandle",
    "Feed",
    "FeedSender",
    "FrameError",
    "Gauge",
    "GaugeHandle",
    "Histogram",
    "HistogramHandle",
    "ManualClock",
    "MetricsServer",
    "Pipeline",
    "PipelineClosed",
    "Queue",
    "Rate",
    "RateHandle",
    "Recorder",
    "Registry",
    "SeriesLimitError",
    "SessionsHandle",
    "SharedQueue",
    "SharedRegistry",
    "ShutDown",
    "StateError",
    "_EventBuffer",
    "_LoopWaker",
    "_PendingSend",
    "_PipelineTask",
    "__version__",
    "_pipeline_nowait",
    "_pipeline_task",
    "apply_frame",
    "decode_frame",
    "encode_frame",
    "frame_header",
]

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
    """A multi-producer, multi-consumer FIFO queue of Python objects with the
    interface of :class:`queue.Queue`: a lock-free ring buffer allocated up front
    when ``maxsize > 0``, a lock-free unbounded list otherwise.

    Any thread may call any method. Blocking calls release the GIL and stay
    interruptible by Ctrl-C. ``put``/``get`` raise the standard library's own
    :class:`queue.Full` and :class:`queue.Empty`; after ``shutdown()`` they raise
    :class:`ShutDown`. CPython's own ``test_queue`` passes against it.

    Differences from :class:`queue.Queue`: ``maxsize`` is read-only (a ring's
    size is fixed); there are no ``mutex``/``not_empty``/``not_full``/
    ``all_tasks_done`` attributes or ``_put``/``_get`` hooks. Extras:
    ``put_many``, ``get_many``, ``len()``, iteration until shut down and
    drained, and ``shutdown`` on every Python version.
    """

    def __new__(cls, maxsize: int = 0) -> Queue[_T]:
        """Create a queue that holds at most ``maxsize`` items; ``maxsize <= 0``
        (the default) makes it unbounded.

        Raises ``TypeError`` if ``maxsize`` is not an int and ``ValueError`` (or
        ``MemoryError``) if it is too large to allocate.
        """

    @classmethod
    def __class_getitem__(cls, key: Any) -> GenericAlias:
        """``Queue[int]``: a generic alias, as for :class:`queue.Queue`."""

    @property
    def maxsize(self) -> int:
        """The most items the queue holds, ``<= 0`` if unbounded (read-only)."""

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done by :meth:`task_done`."""

    @property
    def is_shutdown(self) -> bool:
        """``True`` once :meth:`shutdown` has been called."""

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` at the back of the queue.

        If the queue is full: with a false ``block`` raise :class:`queue.Full`
        at once; otherwise wait for room, at most ``timeout`` seconds if it is
        not ``None``, then raise :class:`queue.Full`. Raises :class:`ShutDown`
        if the queue is (or becomes, while waiting) shut down, and
        ``ValueError`` for a negative ``timeout`` when blocking.
        """

    def put_nowait(self, item: _T) -> None:
        """``put(item, block=False)``."""

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return the oldest item.

        If the queue is empty: with a false ``block`` raise :class:`queue.Empty`
        at once; otherwise wait for an item, at most ``timeout`` seconds if it is
        not ``None``, then raise :class:`queue.Empty`. Once the queue is shut down
        and drained, raise :class:`ShutDown`.
        """

    def get_nowait(self) -> _T:
        """``get(block=False)``."""

    def put_many(
        self, items: Iterable[_T], block: bool = True, timeout: float | None = None
    ) -> int:
        """Put the items of ``items``, in order, claiming room for runs of them
        with one atomic operation; return how many were put.

        Items are taken from ``items`` in chunks of at most 1024, each put before
        the next is taken, so an endless iterable is fine.

        - ``block=True``, no ``timeout``: every item is put, waiting for room.
        - ``block=False`` or a ``timeout``: as many as fit (now, or before the
          timeout) are put. For a sequence the result ``n`` says which:
          ``items[n:]`` were not put. From any other iterable only as many
          items as there is room for are taken; if some taken items still could
          not be put, :class:`queue.Full` is raised with ``items_put`` (the count
          put) and ``items_left`` (the taken items not put, in order).
        - Any other error on the way (:class:`ShutDown`, an exception raised by
          the iterable, ``KeyboardInterrupt``) propagates with the same two
          attributes: the items before it stay in the queue, and nothing taken
          from ``items`` is lost.
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
        """``True`` if the queue holds ``maxsize`` items (a snapshot; never for an
        unbounded queue)."""

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

        With a true ``immediate`` the items left are discarded at once (each
        counted as done for :meth:`join`) and ``get`` raises :class:`ShutDown`
        immediately.
        """

    def __iter__(self) -> Queue[_T]:
        """The queue itself: iterating gets items (waiting for them) until the
        queue is shut down and drained."""

    def __next__(self) -> _T:
        """``get()``, ending the iteration once the queue is shut down and
        drained."""

    def __len__(self) -> int:
        """``qsize()``."""

    def async_view(self) -> AsyncQueue[_T]:
        """An :class:`ringstat.AsyncQueue` over this queue (the
        :class:`asyncio.Queue` interface, for coroutines on any event loop),
        sharing its items with the threads that use this one."""

    # For ringstat.aio (private): never wait, never raise Empty/Full.
    def _try_get(self, default: _D) -> _T | _D: ...
    def _try_put(self, item: _T) -> bool: ...
    def _try_get_many(self, max_items: int) -> list[_T]: ...
    def _wait(self, put: bool, waker: _LoopWaker) -> int: ...
    def _unwait_get(self, token: int) -> bool: ...
    def _unwait_put(self, token: int) -> bool: ...
    def _wait_join(self, waker: _LoopWaker) -> int: ...
    def _unwait_join(self, token: int) -> None: ...

@final
class _PendingSend:
    """An event whose send found its queue full (see :mod:`ringstat.aio`)."""

    def _wait(self, waker: _LoopWaker) -> int: ...
    def _unwait(self, token: int) -> bool: ...
    def _try_send(self) -> bool: ...

@final
class _PipelineTask:
    """A flush or close advanced without blocking (see :mod:`ringstat.aio`)."""

    def _try_complete(self) -> bool: ...
    def _wait(self, waker: _LoopWaker) -> int: ...
    def _unwait(self, token: int) -> bool: ...

def _pipeline_nowait(method: Any, /, *args: Any, **kwargs: Any) -> _PendingSend | None: ...
def _pipeline_task(pipeline: Pipeline, close: bool = False) -> _PipelineTask: ...

@final
class _LoopWaker:
    """One event loop's native wake-up channel (see :mod:`ringstat.aio`)."""

    def __new__(cls) -> _LoopWaker: ...
    def fileno(self) -> int: ...
    def take_fired(self) -> list[int]: ...
    def fire(self, token: int) -> None: ...

# ----- statistics -------------------------------------------------------------
#
# Conventions: values read live are properties (``counter.value``,
# ``histogram.count``); actions are methods. Percentiles are on numpy's 0-100
# scale (``percentile(99)``), never 0-1. Times are seconds (int or float).
# Wrong argument types raise TypeError and bad values ValueError, each naming
# the argument. Handles (Counter, Gauge, Histogram, Rate) are hashable and
# compare equal when they refer to the same metric.

@final
class Counter:
    """A monotonic count (total logins) that many threads add to without
    contention: sharded over cache-padded cells, summed when read.

    ``inc()`` and ``add(n)`` never block and never lose an add; ``value`` is
    exact once writers are quiescent; ``take()`` returns the total and resets it
    atomically (each add is returned by exactly one ``take``). Counts never
    wrap: a shard stops at ``2**64 - 1 - 2**52`` and the total at ``2**64 - 1``.

    >>> c = Counter()
    >>> c.inc()
    >>> c.add(2)
    >>> c.value
    3
    """

    def __new__(cls, *, shards: int | None = None) -> Counter:
        """A counter at 0. ``shards`` (1 to 65536, rounded up to a power of
        two) defaults to twice the CPU count, at least 4."""

    def inc(self, amount: SupportsIndex | float = 1) -> None:
        """Add ``amount`` (default 1; the fastest call is without it), as
        prometheus_client's ``inc(amount=1)``: an int in ``0 <= amount <
        2**64``, or a float that is a whole number (``2.0``).

        Raises ``ValueError`` for a negative amount ("Counters can only be
        incremented by non-negative amounts."), a fractional or NaN float
        (ringstat counters count whole events: record fractions in a
        :class:`Histogram`) or one too large, and ``TypeError`` for anything
        but an int or float (``bool`` included).
        """

    def count_exceptions(
        self, exception: type[BaseException] | tuple[type[BaseException], ...] = ...
    ) -> ExceptionCounter:
        """Count the exceptions of type ``exception`` (default
        :class:`Exception`) raised in a ``with`` block or a decorated function
        (``@c.count_exceptions()``); they propagate. As prometheus_client's."""

    def add(self, n: SupportsIndex) -> None:
        """Add ``n``, an int in ``0 <= n < 2**64``.

        Raises ``TypeError`` if ``n`` is not an int (``bool`` included) and
        ``ValueError`` if it is negative or too large.
        """

    @property
    def value(self) -> int:
        """The current total."""

    def take(self) -> int:
        """Return the total and reset the counter to 0, atomically per shard."""

    def reset(self) -> None:
        """Reset the counter to 0."""

    @property
    def shards(self) -> int:
        """The number of shards (a power of two)."""

    def __int__(self) -> int:
        """``value``."""

    def __eq__(self, other: object, /) -> bool:
        """``True`` if both handles refer to the same counter."""

    def __hash__(self) -> int: ...

@final
class Gauge:
    """A value that goes up and down (users online), with the smallest and
    largest values it held since creation or the last :meth:`reset_min_max`.

    Values are ints in ``-2**63 <= v < 2**63``; arithmetic wraps at that range.

    >>> g = Gauge()
    >>> g.inc()
    1
    >>> (g.value, g.min, g.max)
    (1, 0, 1)
    """

    def __new__(cls, value: SupportsIndex | None = None) -> Gauge:
        """A gauge at ``value`` (default 0); min and max start there too."""

    def set(self, value: SupportsIndex) -> None:
        """Set the value."""

    def add(self, n: SupportsIndex) -> int:
        """Add ``n`` and return the new value."""

    def sub(self, n: SupportsIndex) -> int:
        """Subtract ``n`` and return the new value."""

    def inc(self, amount: SupportsIndex | float = 1) -> int:
        """Add ``amount`` (default 1: an int, or a float that is a whole
        number; ``ValueError`` for a fractional one) and return the new value."""

    def dec(self, amount: SupportsIndex | float = 1) -> int:
        """Subtract ``amount`` (default 1, as :meth:`inc`) and return the new
        value."""

    def track_inprogress(self) -> InProgress:
        """``inc()`` on entry, ``dec()`` on exit: ``with g.track_inprogress():``
        or ``@g.track_inprogress()`` (coroutine functions too), as
        prometheus_client's."""

    @property
    def value(self) -> int:
        """The current value."""

    @property
    def min(self) -> int:
        """The smallest value since creation or the last :meth:`reset_min_max`."""

    @property
    def max(self) -> int:
        """The largest value since creation or the last :meth:`reset_min_max`."""

    def reset_min_max(self) -> tuple[int, int]:
        """Restart min/max tracking from the current value; return the previous
        ``(min, max)``."""

    def __int__(self) -> int:
        """``value``."""

    def __eq__(self, other: object, /) -> bool:
        """``True`` if both handles refer to the same gauge."""

    def __hash__(self) -> int: ...

class _HistogramValues(TypedDict):
    """The values of a histogram, from one consistent snapshot."""

    count: int
    sum: float
    min: float | None
    max: float | None
    rejected: int
    percentiles: dict[str, float | None]
    """``{"p50": v, "p99.9": v}``: the key is ``"p"`` + the percentile asked
    for, the value ``None`` while the histogram is empty. Values (and ``min``,
    ``max``) are ints for a histogram without a unit, floats with one."""

@final
class Histogram:
    """A log-linear (HDR-style) histogram of ints in ``0..=max_value``, recorded
    lock-free from many threads, with count, sum, min, max, mean and
    percentiles readable live.

    **Error bound**: a percentile is within ``relative_error`` (at most
    ``10**-significant_digits / 2``) of the exact nearest-rank percentile of
    the recorded values (the smallest recorded value ``v`` such that at least
    ``ceil(q / 100 * count)`` values are ``<= v``). ``count``, ``min`` and
    ``max`` are exact; ``sum`` and ``mean`` hold the same relative error.

    **Floats and units**: without a ``unit`` values are ints, and a float with
    a fraction raises ``ValueError`` rather than being rounded. With one
    (``Histogram(60, unit=1e-6)``: seconds up to a minute, kept to the
    microsecond) values are floats, counted in ticks of ``unit``, and every
    value read back (``min``, ``max``, percentiles) is a float within
    ``max(relative_error * value, unit / 2)`` of the exact one: full relative
    precision from ``2**m * unit`` up (about ``10**significant_digits``
    ticks), half a tick below.

    **Bad values** (above ``max_value``, negative, NaN, infinite) raise
    ``ValueError``, are not recorded, and are counted in ``rejected``.

    Memory: 8 bytes per bucket; 3 digits up to ``10**6`` is about 11 000
    buckets (88 KiB).

    >>> h = Histogram(3_600_000_000, significant_digits=3)
    >>> for us in (120, 250, 980):
    ...     h.record(us)
    >>> h.percentile(50), h.count, h.max
    (250, 3, 980)
    """

    def __new__(
        cls,
        max_value: float,
        significant_digits: int = 3,
        *,
        unit: float | None = None,
    ) -> Histogram:
        """An empty histogram for values ``0..=max_value`` keeping
        ``significant_digits`` (``0..=5``) decimal digits. Without ``unit``,
        of ints (``max_value`` an int ``>= 1``); with one (finite, above 0), of
        floats in ticks of ``unit`` (``max_value / unit`` ticks, at least 1 and
        below ``2**64``). Memory grows with ``log2(max_value / unit)``."""

    def record(self, value: SupportsFloat | SupportsIndex) -> None:
        """Record one value: an int in ``0..=max_value``, or a float (a whole
        number unless the histogram has a ``unit``).

        Raises ``TypeError`` for anything but a real number (``bool``
        included) and ``ValueError`` for a value out of range, negative, NaN,
        or with a fraction when there is no unit (which is then counted in
        :attr:`rejected`).
        """

    def observe(self, value: SupportsFloat | SupportsIndex) -> None:
        """:meth:`record` (prometheus_client's name)."""

    def time(self) -> Timer:
        """Record the seconds (a float) a ``with`` block or each call of a
        decorated function takes (``@h.time()``, coroutine functions too),
        measured with :func:`time.perf_counter`, as prometheus_client's. If
        the block raises and the value is refused (above ``max_value``), the
        block's exception propagates. A histogram of ints (no ``unit``)
        cannot hold fractions of a second: ``time()`` then raises
        ``ValueError``."""

    def record_n(self, value: SupportsFloat | SupportsIndex, count: SupportsIndex) -> None:
        """Record ``count`` occurrences of ``value``: an int (``TypeError`` for a
        float) or, with a ``unit``, any real number. An out-of-range value adds
        ``count`` to :attr:`rejected`. Counts saturate instead of wrapping: a
        bucket stops at ``2**64 - 1 - 2**52`` and :attr:`count` at ``2**64 - 1``
        (past that, counts are lower bounds and percentiles approximate)."""

    @property
    def unit(self) -> float | None:
        """The value of one tick, ``None`` for a histogram of ints."""

    @property
    def count(self) -> int:
        """Number of values recorded (exact)."""

    @property
    def sum(self) -> float:
        """Sum of the values recorded (within :attr:`relative_error`)."""

    @property
    def min(self) -> float | None:
        """Smallest value recorded (exact; to the tick with a ``unit``),
        ``None`` while empty."""

    @property
    def max(self) -> float | None:
        """Largest value recorded (exact; to the tick with a ``unit``),
        ``None`` while empty."""

    @property
    def mean(self) -> float | None:
        """Mean of the values recorded, ``None`` while empty."""

    @property
    def rejected(self) -> int:
        """Values refused by :meth:`record` (out of range, negative, NaN)."""

    @property
    def max_value(self) -> float:
        """The highest value that can be recorded (an int without a unit)."""

    @property
    def significant_digits(self) -> int:
        """Decimal significant digits kept."""

    @property
    def relative_error(self) -> float:
        """The documented relative error bound ``2**-(m+1)``, at most
        ``10**-significant_digits / 2``."""

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile, ``q`` in ``[0, 100]`` as in
        :func:`numpy.percentile` (``percentile(99)`` is p99); ``None`` while
        empty. Raises ``ValueError`` for ``q`` out of range or NaN."""

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several percentiles (each in ``[0, 100]``) from one snapshot, in the
        order asked."""

    def merge(self, other: Histogram) -> None:
        """Add every value recorded in ``other`` to this histogram. Raises
        ``ValueError`` unless both have the same ``max_value``,
        ``significant_digits`` and ``unit``."""

    def buckets(self) -> list[tuple[float, float, int]]:
        """Non-empty buckets as ``(lowest, highest, count)``, in value order
        (with a ``unit``: the values of the lowest and highest tick)."""

    def snapshot(self, percentiles: Iterable[float] | None = None) -> _HistogramValues:
        """count, sum, min, max, rejected and ``percentiles`` (default 50, 90,
        99, 99.9) as a JSON-serialisable dict, all from one consistent snapshot."""

    def to_pandas(self) -> pd.DataFrame:
        """The non-empty buckets as a pandas DataFrame, in value order:
        ``low``, ``high`` (the bucket's inclusive range), ``count``,
        ``fraction`` (of all values) and ``cumulative`` (of values ``<=
        high``). Needs pandas (``pip install "ringstat[notebook]"``)."""

    def to_polars(self) -> pl.DataFrame:
        """As :meth:`to_pandas`, as a polars DataFrame (needs polars)."""

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a summary table and a bar chart of the
        buckets (see :mod:`ringstat.display`)."""

    def __eq__(self, other: object, /) -> bool:
        """``True`` if both handles refer to the same histogram."""

    def __hash__(self) -> int: ...

@final
class ManualClock:
    """A clock for tests that moves only when told to; starts at 0. Pass it as
    ``clock=`` to :class:`Rate` or :class:`Registry` to make rates
    deterministic.

    >>> clock = ManualClock()
    >>> r = Rate(window=10, buckets=10, clock=clock)
    >>> r.add(50)
    >>> clock.advance(5)
    >>> r.per_second
    10.0
    """

    def __new__(cls) -> ManualClock:
        """A clock at 0 seconds."""

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (``>= 0``)."""

    def set(self, seconds: float) -> None:
        """Set the clock to ``seconds`` (``>= 0``) after its origin; setting it
        backwards is allowed (totals stay exact)."""

    def now(self) -> float:
        """The current reading, in seconds since the origin."""

@final
class Rate:
    """Events per second over a sliding window (default: 60 buckets of 1 s),
    plus the total ever counted. The window rotates lazily: no timer thread.

    A bucket counts at most ``2**40 - 1`` events per tick (``total`` stays
    exact, and saturates near ``2**64`` instead of wrapping). ``buckets`` is at
    most ``2**24`` (``ValueError`` beyond).
    """

    def __new__(
        cls, window: float = 60.0, buckets: int = 60, *, clock: ManualClock | None = None
    ) -> Rate:
        """A rate over ``window`` seconds cut into ``buckets`` buckets (each at
        least 1 ms), reading ``clock`` (default: the system's monotonic clock)."""

    def inc(self) -> None:
        """Count one event now."""

    def add(self, n: SupportsIndex) -> None:
        """Count ``n`` events now (an int in ``0 <= n < 2**64``)."""

    @property
    def total(self) -> int:
        """Every event ever counted."""

    @property
    def count_in_window(self) -> int:
        """Events in the current window."""

    @property
    def per_second(self) -> float:
        """Events per second over the window: ``count_in_window`` divided by the
        time the window covers (never more than the rate's age, never less than
        one bucket)."""

    @property
    def window(self) -> float:
        """The window length in seconds."""

    @property
    def buckets(self) -> int:
        """The number of buckets the window is cut into."""

    def __eq__(self, other: object, /) -> bool:
        """``True`` if both handles refer to the same rate."""

    def __hash__(self) -> int: ...

class _MetricSnapshot(TypedDict):
    """One metric series of :meth:`Registry.snapshot`."""

    name: str
    labels: dict[str, str]
    kind: Literal["counter", "gauge", "histogram", "rate"]
    values: dict[str, Any]
    """By kind: counter ``value``; gauge ``value``, ``min``, ``max``; histogram
    as :meth:`Histogram.snapshot`; rate ``total``, ``in_window``,
    ``per_second``, ``window`` (seconds)."""

class _RegistrySnapshot(TypedDict):  # noqa: PYI049 (documents the layout of Snapshot)
    """:meth:`Registry.snapshot`: plain dicts, lists, str, int, float and
    ``None``, so ``json.dumps`` takes it as is."""

    timestamp: float
    """Wall-clock time, seconds since the Unix epoch (like :func:`time.time`)."""
    metrics: list[_MetricSnapshot]
    """Sorted by name, then labels."""

@final
class Registry:
    """Named metrics with optional labels, created on first use.

    Every call with the same name and labels returns a handle to the same
    metric (handles compare equal). Raises ``ValueError`` (with the reason) for
    an invalid metric or label name, a label value holding NUL, ``\r`` or a
    Unicode line break other than ``\n`` (``\x0b``, ``\x0c``, ``\x1c``-``\x1e``,
    ``\x85``, ``\u2028``, ``\u2029``), a name registered as another kind, a
    histogram or rate registered with another configuration, or a name whose
    Prometheus exposition would collide with another metric's. With
    ``max_series``, asking for a new series past that many raises
    :class:`SeriesLimitError`.

    >>> reg = Registry()
    >>> reg.counter("logins", labels={"region": "eu"}).inc()
    >>> print(reg.to_prometheus(), end="")
    # TYPE logins_total counter
    logins_total{region="eu"} 1
    """

    def __new__(
        cls, *, clock: ManualClock | None = None, max_series: int | None = None
    ) -> Registry:
        """An empty registry; its rates read ``clock`` (default: the system's
        monotonic clock). ``max_series`` (an int >= 0, default unlimited) caps
        the number of distinct name and label sets: a guard against unbounded
        label cardinality."""

    @property
    def max_series(self) -> int | None:
        """The most series the registry creates, ``None`` when unlimited."""

    @property
    def series(self) -> int:
        """The number of series (name and label sets) registered."""

    def describe(self, name: str, help: str) -> None:
        """Set the help text of the family ``name`` (all its label sets),
        written as its ``# HELP`` line by :meth:`to_prometheus` (``\\`` and
        newline escaped). The family need not exist yet. Raises ``ValueError``
        for a text holding NUL, ``\r`` or another line break than ``\n``, or if
        ``name`` already has another help."""

    @overload
    def counter(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        help: str | None = None,
        labelnames: None = None,
    ) -> Counter: ...
    @overload
    def counter(
        self,
        name: str,
        labels: None = None,
        *,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Counter]:
        """The counter ``name{labels}``, created at 0 on first use; ``help``
        is its ``# HELP`` text (see :meth:`describe`). With ``labelnames``
        (instead of ``labels``): a :class:`ringstat.family.Family` whose
        ``labels(*values, **kw)`` returns the series, as prometheus_client's
        ``Counter(name, help, labelnames).labels(...)``."""

    @overload
    def gauge(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        help: str | None = None,
        labelnames: None = None,
    ) -> Gauge: ...
    @overload
    def gauge(
        self,
        name: str,
        labels: None = None,
        *,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Gauge]:
        """The gauge ``name{labels}``, created at 0 on first use (``help`` and
        ``labelnames`` as for :meth:`counter`)."""

    @overload
    def histogram(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: None = None,
        buckets: Iterable[float] | None = None,
    ) -> Histogram: ...
    @overload
    def histogram(
        self,
        name: str,
        labels: None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: Iterable[str],
        buckets: Iterable[float] | None = None,
    ) -> Family[Histogram]:
        """The histogram ``name{labels}``, created empty on first use (see
        :class:`Histogram`: with a ``unit``, of floats kept to it and
        ``max_value`` in its values; ``help`` and ``labelnames`` as for
        :meth:`counter`). With ``buckets`` (bounds in the histogram's values),
        the family is exposed with classic buckets (see :meth:`set_buckets`);
        without, as a summary."""

    @overload
    def rate(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        window: float = 60.0,
        buckets: int = 60,
        help: str | None = None,
        labelnames: None = None,
    ) -> Rate: ...
    @overload
    def rate(
        self,
        name: str,
        labels: None = None,
        *,
        window: float = 60.0,
        buckets: int = 60,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Rate]:
        """The rate ``name{labels}``, created on the registry's clock on first use
        (see :class:`Rate`; ``help`` and ``labelnames`` as for :meth:`counter`)."""

    def snapshot(self, percentiles: Iterable[float] | None = None) -> Snapshot:
        """Every metric's current values as plain, JSON-serialisable data (a
        :class:`ringstat.snapshot.Snapshot`: a ``dict`` laid out as
        ``_RegistrySnapshot``, with ``to_pandas()``, ``to_polars()``, an HTML
        table in Jupyter and a text table as ``str()``), histograms with ``percentiles`` (each in ``[0, 100]``; default 50, 90,
        99, 99.9). Each metric is read lock-free while writers run; the metrics
        are not read at one single instant.

        Layout::

            {"timestamp": 1764000000.123,
             "metrics": [
               {"name": "logins", "labels": {"region": "eu"}, "kind": "counter",
                "values": {"value": 3}},
               {"name": "online", "labels": {}, "kind": "gauge",
                "values": {"value": 2, "min": 0, "max": 5}},
               {"name": "session_us", "labels": {}, "kind": "histogram",
                "values": {"count": 3, "sum": 1350.0, "min": 120, "max": 980,
                           "rejected": 0,
                           "percentiles": {"p50": 250, "p90": 980, ...}}},
               {"name": "logins_rate", "labels": {}, "kind": "rate",
                "values": {"total": 10, "in_window": 4, "per_second": 0.07,
                           "window": 60.0}}]}
        """

    def to_prometheus(self, percentiles: Iterable[float] | None = None) -> str:
        """Every metric in the Prometheus text exposition format 0.0.4, a
        ``# HELP`` line for each family with a help text: counters
        as ``<name>_total``, gauges and rates (per second) as gauges,
        histograms as summaries with a ``quantile`` label per percentile
        (``quantile="0.99"`` for 99; a repeated percentile is written once),
        ``_sum`` and ``_count``. Label values are escaped (``\\``, ``\"``,
        ``\n``), so the text parses and round-trips."""

    def set_buckets(self, name: str, buckets: Iterable[float]) -> None:
        """Expose the histogram family ``name`` (all its label sets) with
        classic buckets: type ``histogram``, a cumulative
        ``<name>_bucket{le="b"}`` per bound ``b`` (in the histogram's values)
        and ``le="+Inf"``, ``_sum`` and ``_count``, which Prometheus can sum
        across instances and give to ``histogram_quantile``. Without it (the
        default) a histogram is a summary of quantiles. The counts come from
        the histogram's log-linear buckets at each scrape: a value above a
        bound by less than the histogram's relative error may count under it;
        values exactly at a bound always do. ``ValueError`` unless ``buckets``
        is a non-empty, strictly increasing list of finite numbers (a last
        ``inf`` is dropped), if ``name`` is another kind, or already has other
        bounds."""

    def to_openmetrics(self, percentiles: Iterable[float] | None = None) -> str:
        """Every metric as OpenMetrics 1.0 text: the samples of
        :meth:`to_prometheus`, a counter's family named without ``_total``
        (typed ``unknown`` under its own name beside a gauge of that name),
        ending with ``# EOF``."""

    def serve(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        path: str = "/metrics",
        percentiles: Iterable[float] | None = None,
        basic_auth: tuple[str, str] | None = None,
        basic_auth_sha256: tuple[str, str] | None = None,
        read_timeout: float = 5.0,
        max_connections: int = 64,
        gzip: bool = True,
    ) -> MetricsServer:
        """Serve this registry over HTTP from a native thread that never takes
        the GIL, so scrapes answer while Python is busy. ``GET``/``HEAD`` of
        ``path`` only (404 elsewhere, 405 other methods); Prometheus text 0.0.4
        or OpenMetrics 1.0 by the ``Accept`` header, gzip when accepted.
        Binds ``host``, an IP address or ``"localhost"`` (never looked up;
        loopback by default, ``"0.0.0.0"`` exposes it) and ``port`` (0: a free
        one, see :attr:`MetricsServer.port`). A client gets
        ``read_timeout`` seconds to send its request head; at most
        ``max_connections`` at once. ``basic_auth=(user, password)``, or
        ``basic_auth_sha256=(user, sha256 hex digest of the password)``,
        requires those credentials (401 otherwise); for TLS, put a reverse
        proxy in front. Runs until :meth:`MetricsServer.stop`, the end of a
        ``with`` block, or interpreter exit (the server is kept alive until
        then, referenced or not; a child forked after ``serve()`` does not
        serve, and its ``stop()`` leaves the parent's server running). ``OSError`` if the address cannot
        be bound, ``ValueError``/``TypeError`` for bad arguments."""

    def export_state(self) -> bytes:
        """The full state of every metric as bytes (versioned format
        :data:`STATE_VERSION`): counter values, gauge value/min/max, every
        histogram bucket with min, max and rejected, rate totals and window
        buckets, help texts and classic buckets. Read and encoded with the
        GIL released. Feed it to :meth:`merge_state` or :meth:`from_state`
        on this or another machine."""

    def merge_state(self, data: bytes, *, retired: bool = False) -> None:
        """Merges a state from :meth:`export_state`: a series this registry
        lacks is created as in the state; otherwise counters add, gauges add
        (min/max widen), histograms add bucket-wise (exact quantiles across
        machines), rates add by window bucket. ``retired``: the state of a
        source that is gone, whose gauges count as 0 and rate windows as
        empty (its counters, histograms and rate totals stay). Raises
        :class:`StateError` for bytes that are not a state and ``ValueError``
        for a mismatch (another kind, histogram precision or unit, rate
        window), checked before anything changes. The GIL is released."""

    @classmethod
    def from_state(
        cls,
        data: bytes,
        *,
        clock: ManualClock | None = None,
        max_series: int | None = None,
    ) -> Registry:
        """A new registry (arguments as for ``Registry()``) holding a state
        from :meth:`export_state`: its snapshot equals the original's.
        Raises as :meth:`merge_state`."""

    def to_pandas(self, percentiles: Iterable[float] | None = None) -> pd.DataFrame:
        """``snapshot(percentiles).to_pandas()``: one row per metric and
        labels, percentiles as columns (see :func:`ringstat.frames.snapshot_frame`)."""

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a fresh snapshot as a table."""

@final
class MetricsServer:
    """A running scrape endpoint, from :meth:`Registry.serve`; a context
    manager that stops it on exit.

    >>> reg = Registry()
    >>> with reg.serve() as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen for port 0)."""

    @property
    def host(self) -> str:
        """The address it listens on."""

    @property
    def path(self) -> str:
        """The path served."""

    @property
    def url(self) -> str:
        """``http://host:port/path``."""

    @property
    def running(self) -> bool:
        """``True`` until :meth:`stop`."""

    def stop(self) -> None:
        """Stop serving and join the server thread (scrapes in flight finish,
        for up to a second). Idempotent."""

    def __enter__(self) -> MetricsServer: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool: ...

@final
class SharedRegistry:
    """Metrics in a named shared-memory region (Linux) that many processes
    write and any process reads: the methods of :class:`Registry`, and the
    same handle classes. Counters, histograms and rates are shared (a dead
    process's counts stay counted); each process has its own gauge value,
    combined in snapshots by the gauge's ``mode``. ``SharedRegistry(name)``
    attaches if the region exists, else creates it (mode 0600) with the given
    sizes. Pickles as its name: a child process (multiprocessing fork, spawn
    or forkserver) attaches to the same region. A full registry raises
    ``MemoryError``.

    >>> import os
    >>> reg = SharedRegistry(f"ringstat-stub-{os.getpid()}")
    >>> reg.counter("jobs").inc()
    >>> print(reg.to_prometheus(), end="")
    # TYPE jobs_total counter
    jobs_total 1
    >>> reg.unlink()
    True
    """

    def __new__(
        cls,
        name: str,
        *,
        max_processes: int = 256,
        max_entries: int = 1024,
        data_bytes: int = 8388608,
        counter_shards: int = 16,
    ) -> SharedRegistry:
        """Attach to the shared registry ``name`` or create it with room for
        ``max_processes`` processes at once (default 256; slots of dead
        processes are reused), ``max_entries`` directory entries (1024) and
        ``data_bytes`` of metric cells (8 MiB)."""

    @staticmethod
    def attach(name: str) -> SharedRegistry:
        """Attach to the existing shared registry ``name`` (``ValueError`` if
        there is none)."""

    @property
    def name(self) -> str | None:
        """The region's name."""

    def unlink(self) -> bool:
        """Remove the region's name (attached processes keep working); False
        if it was already gone."""

    def usage(self) -> dict[str, int]:
        """Sizes and use: ``bytes``, ``entries``, ``entries_used``,
        ``process_slots``, ``process_slots_used``, ``data_used``,
        ``reclaimed_entries``, ``reclaimed_slots``."""

    def describe(self, name: str, help: str) -> None:
        """Set the help text of the family ``name`` (as :meth:`Registry.describe`)."""

    @overload
    def counter(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        help: str | None = None,
        labelnames: None = None,
    ) -> Counter: ...
    @overload
    def counter(
        self,
        name: str,
        labels: None = None,
        *,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Counter]:
        """The counter ``name{labels}``, shared by every process."""

    @overload
    def gauge(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        mode: str | None = None,
        help: str | None = None,
        labelnames: None = None,
    ) -> Gauge: ...
    @overload
    def gauge(
        self,
        name: str,
        labels: None = None,
        *,
        mode: str | None = None,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Gauge]:
        """This process's gauge ``name{labels}``; snapshots combine every
        process's value by ``mode``: ``"livesum"`` (default), ``"sum"``,
        ``"liveall"``/``"all"`` (one series per process, label ``pid``),
        ``"livemax"``, ``"max"``, ``"livemin"``, ``"min"``; the ``live`` modes
        leave out processes that died. Get it again after ``os.fork()``."""

    @overload
    def histogram(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: None = None,
    ) -> Histogram: ...
    @overload
    def histogram(
        self,
        name: str,
        labels: None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Histogram]:
        """The histogram ``name{labels}``, shared by every process."""

    @overload
    def rate(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        window: float = 60.0,
        buckets: int = 60,
        help: str | None = None,
        labelnames: None = None,
    ) -> Rate: ...
    @overload
    def rate(
        self,
        name: str,
        labels: None = None,
        *,
        window: float = 60.0,
        buckets: int = 60,
        help: str | None = None,
        labelnames: Iterable[str],
    ) -> Family[Rate]:
        """The rate ``name{labels}``, shared by every process."""

    def snapshot(self, percentiles: Iterable[float] | None = None) -> Snapshot:
        """Every process's metrics, as :meth:`Registry.snapshot`."""

    def to_prometheus(self, percentiles: Iterable[float] | None = None) -> str:
        """Every metric in the Prometheus text format, as :meth:`Registry.to_prometheus`."""

    def to_openmetrics(self, percentiles: Iterable[float] | None = None) -> str:
        """Every metric as OpenMetrics 1.0 text, as :meth:`Registry.to_openmetrics`."""

    def serve(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        path: str = "/metrics",
        percentiles: Iterable[float] | None = None,
        basic_auth: tuple[str, str] | None = None,
        basic_auth_sha256: tuple[str, str] | None = None,
        read_timeout: float = 5.0,
        max_connections: int = 64,
        gzip: bool = True,
    ) -> MetricsServer:
        """Serve every process's metrics over HTTP from a native thread that
        never takes the GIL, with the arguments and behaviour of
        :meth:`Registry.serve`; each scrape reads the shared region afresh
        (gauges combined by their mode)."""

    def to_pandas(self, percentiles: Iterable[float] | None = None) -> pd.DataFrame:
        """``snapshot(percentiles).to_pandas()``."""

    def _repr_html_(self) -> str:
        """Jupyter's rich display: a fresh snapshot as a table."""

    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

class SeriesLimitError(ValueError):
    """Raised when a :class:`Registry` created with ``max_series`` already
    holds that many series and a new name or label set is asked for; the
    existing series keep working."""

# ----- recorder ---------------------------------------------------------------

@final
class Recorder:
    """Samples a :class:`Registry` every ``interval`` seconds on a native
    background thread (no Python code runs on it) into a bounded in-memory
    time series: the newest ``capacity`` snapshots, the oldest dropped.

    ``start()`` takes a first sample at once; ``stop()`` wakes and joins the
    thread without waiting out the interval (releasing the GIL). As a
    context manager it starts on entry and stops on exit. ``samples()``
    returns the series as dicts shaped like :meth:`Registry.snapshot`;
    ``to_pandas()`` as a tidy frame.

    >>> reg = Registry()
    >>> with Recorder(reg, interval=0.1) as rec:
    ...     reg.counter("logins").inc()
    >>> len(rec.samples()) >= 1
    True
    """

    def __new__(
        cls,
        registry: Registry,
        interval: float = 1.0,
        capacity: int = 3600,
        *,
        percentiles: Iterable[float] | None = None,
    ) -> Recorder:
        """A stopped recorder of ``registry``: a sample every ``interval``
        seconds (> 0), the newest ``capacity`` (>= 1) kept, histograms with
        ``percentiles`` (default 50, 90, 99, 99.9)."""

    def start(self) -> None:
        """Start sampling (a sample at once, then one per interval); does
        nothing if running."""

    def stop(self) -> None:
        """Stop sampling and join the thread, promptly; the samples stay.
        Does nothing if not running."""

    @property
    def running(self) -> bool:
        """``True`` between :meth:`start` and :meth:`stop`."""

    def sample_now(self) -> None:
        """Take one sample now, on the calling thread (running or not)."""

    def samples(self) -> list[Snapshot]:
        """The samples kept, oldest first, each like :meth:`Registry.snapshot`."""

    def drain(self) -> list[Snapshot]:
        """Remove and return the samples kept, oldest first."""

    def clear(self) -> None:
        """Remove every sample."""

    @property
    def interval(self) -> float:
        """Seconds between samples."""

    @property
    def capacity(self) -> int:
        """The most samples kept."""

    @property
    def percentiles(self) -> list[float]:
        """The percentiles reported for histograms."""

    @property
    def dropped(self) -> int:
        """Samples dropped, ever, because ``capacity`` was reached."""

    def to_pandas(self) -> pd.DataFrame:
        """The samples as a tidy pandas DataFrame: ``timestamp`` (UTC),
        ``metric``, ``labels`` (``"k=v,..."``), ``field`` (``value``,
        ``per_second``, ``p99``...), ``value`` (float). Needs pandas (``pip
        install "ringstat[notebook]"``)."""

    def to_polars(self) -> pl.DataFrame:
        """As :meth:`to_pandas`, as a polars DataFrame (needs polars)."""

    def stream(self) -> AsyncIterator[Snapshot]:
        """``async for sample in recorder.stream()``: each sample taken from now
        on, as the sampling thread takes it (woken natively, no polling), until
        the recorder stops. A slow reader skips the samples dropped from the
        series (over ``capacity``) or drained meanwhile."""

    # For ringstat.aio (private).
    def _taken(self) -> int: ...
    def _samples_since(self, seen: int) -> tuple[list[dict[str, Any]], int]: ...
    def _wait_sample(self, seen: int, waker: _LoopWaker) -> int: ...
    def _unwait_sample(self, token: int) -> bool: ...
    def __len__(self) -> int:
        """The number of samples kept."""

    def __enter__(self) -> Recorder:
        """``start()``; returns the recorder."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        """``stop()``."""

# ----- pipeline ---------------------------------------------------------------
#
# Events -> bounded per-worker queues -> native worker threads -> the
# registry's metrics. Timestamps (``ts``) are seconds on the pipeline clock
# (``Pipeline.now()``); ``None`` stamps the event when a worker applies it.
# Keys are ints in ``-2**63..2**64`` (negatives as 64-bit two's complement) or
# ``str``/``bytes`` (hashed to 64 bits, stable across runs). Batch methods
# (``*_many``) take any iterable, or a 1-D contiguous numpy array of
# uint64/int64 (float64 too for histogram values and ``ts``) read through the
# buffer protocol in chunks; a wrong dtype raises ``TypeError``, a
# non-contiguous or multi-dimensional array ``ValueError``. Arrays and exact
# lists/tuples are checked whole before anything is sent; other iterables
# (generators, ``itertools.count()``) are consumed 8192 at a time, so memory
# stays bounded. Batch methods return how many events they sent; an exception
# raised by one (a bad element, ``PipelineClosed`` from a racing ``close()``,
# Ctrl-C) carries ``exc.sent``: that many were sent and are applied exactly
# once, the rest were not sent nor counted (for an iterator, its first
# ``exc.sent`` elements). A pipeline used in a process forked after it was
# built raises ``RuntimeError`` at ``flush()``, ``close()`` and any send that
# waits for room: its workers run only in the parent.

class PipelineClosed(RuntimeError):
    """Raised by a send on a :class:`Pipeline` that was closed (the event is not
    sent; from a batch method, ``exc.sent`` of its events were sent before the
    close). A drop under ``backpressure="drop_newest"``/``"overwrite_oldest"``
    is not an error: it is counted in ``stats()["dropped"]``."""

class _PipelineStats(TypedDict):
    """:meth:`Pipeline.stats`. After ``close()``: ``received == applied +
    dropped + rejected``."""

    received: int
    """Events accepted by a send (queued, or dropped by ``drop_newest``)."""
    applied: int
    """Events applied by the workers."""
    dropped: int
    """Events dropped by a full queue or displaced by ``overwrite_oldest``."""
    rejected: int
    """Events naming a metric this pipeline does not have."""
    queue_depth: int
    """Events waiting in the queues now."""

@final
class CounterHandle:
    """A pipeline counter resolved once (:meth:`Pipeline.counter`): the hot path
    with no name lookup. Handles keep their pipeline alive; after
    :meth:`Pipeline.close` their sends raise :class:`PipelineClosed`."""

    @property
    def name(self) -> str:
        """The metric name."""

    def inc(self) -> None:
        """Add one."""

    def add(self, n: SupportsIndex) -> None:
        """Add ``n`` (an int in ``0 <= n < 2**64``)."""

    def add_many(self, ns: Iterable[SupportsIndex] | Any) -> int:
        """Add each count of ``ns`` (ints, or a numpy uint64/int64 array), one
        event each; return how many were sent (see ``exc.sent`` above)."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class GaugeHandle:
    """A pipeline gauge resolved once (:meth:`Pipeline.gauge`)."""

    @property
    def name(self) -> str:
        """The metric name."""

    def set(self, value: SupportsIndex) -> None:
        """Set the gauge to ``value`` (an int in ``-2**63 <= v < 2**63``)."""

    def add(self, n: SupportsIndex) -> None:
        """Add ``n`` (may be negative)."""

    def add_many(self, ns: Iterable[SupportsIndex] | Any) -> int:
        """Add each delta of ``ns`` (ints, or a numpy int64 array), in order."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class HistogramHandle:
    """A pipeline histogram resolved once (:meth:`Pipeline.histogram`)."""

    @property
    def name(self) -> str:
        """The metric name."""

    def observe(self, value: SupportsFloat | SupportsIndex) -> None:
        """Record ``value``: an int in ``0..=max_value``, or a float rounded to the
        nearest int (as :meth:`Histogram.record`). A bad value raises
        ``ValueError`` (``TypeError`` for a non-number), is counted in the
        histogram's ``rejected`` and is not sent."""

    def observe_many(self, values: Iterable[SupportsFloat | SupportsIndex] | Any) -> int:
        """Record every value (ints/floats, or a numpy uint64/int64/float64
        array). If one is out of range, ``ValueError`` names its index and
        nothing is sent."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class RateHandle:
    """A pipeline rate resolved once (:meth:`Pipeline.rate`)."""

    @property
    def name(self) -> str:
        """The metric name."""

    def mark(self, n: SupportsIndex | None = None) -> None:
        """Count ``n`` events (default 1), timed when a worker applies them."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class SessionsHandle:
    """A session tracker resolved once (:meth:`Pipeline.sessions`)."""

    @property
    def name(self) -> str:
        """The tracker name (its metrics are ``{name}_open``, ...)."""

    def start(self, key: int | str | bytes, ts: float | None = None) -> None:
        """Open a session for ``key`` at ``ts`` (a second start for an open key
        restarts it and is counted as an anomaly)."""

    def end(self, key: int | str | bytes, ts: float | None = None) -> None:
        """Close the session of ``key`` at ``ts``, recording its duration in
        whole milliseconds in ``{name}_duration_ms``."""

    def start_many(
        self,
        keys: Iterable[int | str | bytes] | Any,
        ts: float | Iterable[float] | Any | None = None,
    ) -> int:
        """``start`` for every key, in order."""

    def end_many(
        self,
        keys: Iterable[int | str | bytes] | Any,
        ts: float | Iterable[float] | Any | None = None,
    ) -> int:
        """``end`` for every key, in order."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class DistinctHandle:
    """A distinct counter (HyperLogLog) resolved once (:meth:`Pipeline.distinct`)."""

    @property
    def name(self) -> str:
        """The counter name."""

    @property
    def count(self) -> float:
        """Estimated distinct keys seen (relative standard error
        ``1.04 / sqrt(2**precision)``), merged from the workers now."""

    @property
    def count_in_window(self) -> float:
        """Estimated distinct keys seen in the sliding window ending now."""

    def seen(self, key: int | str | bytes, ts: float | None = None) -> None:
        """Record that ``key`` was seen at ``ts``."""

    def seen_many(
        self,
        keys: Iterable[int | str | bytes] | Any,
        ts: float | Iterable[float] | Any | None = None,
    ) -> int:
        """``seen`` for every key."""

    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Pipeline:
    """Typed events -> bounded per-worker queues -> native worker threads ->
    the live metrics of a :class:`Registry`.

    Resolve metrics once (``c = pipeline.counter("logins")``) and send through
    the handle (``c.inc()``): no name lookup on the hot path. The string
    methods (``pipeline.count("logins")``) resolve the name on each call.

    Guarantees: :meth:`flush` returns once every event sent before it is
    applied; :meth:`close` (and ``with``) applies everything queued and stops
    the workers; a send racing with close is applied or raises
    :class:`PipelineClosed`. ``backpressure``: ``"block"`` (default; a send
    waits for room, nothing is dropped), ``"drop_newest"`` (a full queue drops
    the new event) or ``"overwrite_oldest"`` (it displaces the oldest); drops
    are counted, never raised. Keyed events (sessions, distinct) of one key
    are applied in order; other events in order per sending thread.

    The pipeline registers its own metrics (``ringstat_pipeline_*_total``
    with the label ``pipeline=<name>``); sessions register ``{name}_open``,
    ``{name}_started_total``, ``{name}_completed_total``,
    ``{name}_duration_ms`` and ``{name}_anomalies_total{kind=...}``;
    distinct counters ``{name}_distinct`` and ``{name}_distinct_window``
    (refreshed every second and by :meth:`flush`).

    >>> with Pipeline() as p:
    ...     logins = p.counter("logins")
    ...     logins.inc()
    ...     p.flush()
    ...     p.registry.counter("logins").value
    1
    """

    def __new__(
        cls,
        registry: Registry | None = None,
        *,
        capacity: int = 65536,
        workers: int = 2,
        batch_size: int = 256,
        backpressure: Literal["block", "drop_newest", "overwrite_oldest"] = "block",
        name: str = "default",
        clock: ManualClock | None = None,
    ) -> Pipeline:
        """Start ``workers`` (1-256) worker threads, each draining a queue of
        ``ceil(capacity / workers)`` events in batches of up to ``batch_size``,
        into ``registry`` (a new one on ``clock`` if ``None``). ``clock``
        (default: the system's monotonic clock) stamps events without ``ts``
        and drives the sliding windows; give ``registry`` the same clock."""

    @property
    def registry(self) -> Registry:
        """The registry the pipeline writes to."""

    @property
    def workers(self) -> int:
        """Number of worker threads."""

    @property
    def capacity(self) -> int:
        """Total queue capacity."""

    @property
    def backpressure(self) -> Literal["block", "drop_newest", "overwrite_oldest"]:
        """The back-pressure policy."""

    @property
    def closed(self) -> bool:
        """``True`` once :meth:`close` has begun."""

    def now(self) -> float:
        """The pipeline clock now, in seconds: the time base of ``ts``."""

    def counter(self, name: str) -> CounterHandle:
        """The registry counter ``name``, resolved once (created on first use)."""

    def gauge(self, name: str) -> GaugeHandle:
        """The registry gauge ``name``, resolved once."""

    def histogram(
        self, name: str, *, max_value: int, significant_digits: int = 3
    ) -> HistogramHandle:
        """The registry histogram ``name`` (see :class:`Histogram`); ``ValueError``
        if it exists with another configuration."""

    def rate(self, name: str, *, window: float = 60.0, buckets: int = 60) -> RateHandle:
        """The registry rate ``name`` (events per second over ``window``)."""

    def sessions(
        self,
        name: str,
        *,
        max_duration: float = 2592000.0,
        significant_digits: int = 2,
        max_sessions: int | None = None,
    ) -> SessionsHandle:
        """The session tracker ``name``: durations up to ``max_duration`` seconds
        (longer ones counted as rejected) with ``significant_digits``.
        ``max_sessions`` (default: no limit) bounds the sessions kept open,
        split evenly over the workers: a start beyond it evicts that worker's
        oldest-started session, which leaves ``{name}_open``, is counted in
        ``{name}_evicted_total``, is not completed and records no duration (a
        later end for its key is an ``end_without_start`` anomaly)."""

    def distinct(
        self, name: str, *, precision: int = 12, window: float = 60.0, buckets: int = 12
    ) -> DistinctHandle:
        """The distinct counter ``name``: HyperLogLog with ``2**precision``
        registers (``precision`` 4-16; 12: 1.63 % standard error), plus a
        sliding window of ``window`` seconds in ``buckets`` steps."""

    def count(self, name: str, n: SupportsIndex = 1) -> None:
        """Add ``n`` to the counter ``name``."""

    def set(self, name: str, value: SupportsIndex) -> None:
        """Set the gauge ``name``."""

    def gauge_add(self, name: str, n: SupportsIndex) -> None:
        """Add ``n`` (may be negative) to the gauge ``name``."""

    def observe(self, name: str, value: SupportsFloat | SupportsIndex) -> None:
        """Record ``value`` in the histogram ``name``, which must have been
        resolved with :meth:`histogram` (``ValueError`` otherwise)."""

    def mark(self, name: str, n: SupportsIndex = 1) -> None:
        """Count ``n`` events in the rate ``name``."""

    def session_start(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Open a session of the tracker ``name`` for ``key``."""

    def session_end(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Close the session of ``key`` in the tracker ``name``."""

    def seen(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Record ``key`` in the distinct counter ``name``."""

    def export_state(self) -> bytes:
        """The full state of the pipeline's statistics as bytes: its registry's
        state (as :meth:`Registry.export_state`) plus every distinct counter's
        HyperLogLog registers and every session tracker's open sessions (key,
        start time). Flushes first; exact when nothing is sent meanwhile (a
        checkpoint pauses its input). Releases the GIL.
        :class:`PipelineClosed` on a closed pipeline."""

    def merge_state(self, data: bytes, *, retired: bool = False) -> None:
        """Merges a state from :meth:`export_state`: the registry as
        :meth:`Registry.merge_state`, distinct counters take the union of the
        sketches (the estimate is that of one counter that saw every key),
        open sessions are united (a key open here keeps its start); missing
        counters and trackers are created with the state's configs.
        ``retired``: the state of a pipeline that is gone (its registry as in
        :meth:`Registry.merge_state`, its open sessions left out). Then
        flushes. :class:`StateError` for bytes that are not a pipeline state,
        ``ValueError`` for a mismatch, :class:`PipelineClosed` on a closed
        pipeline. Releases the GIL."""

    def flush(self) -> None:
        """Wait until every event whose send returned before this call is applied
        (or counted as displaced), then refresh the depth and distinct gauges.
        Releases the GIL and stays interruptible by Ctrl-C. Returns at once on
        a closed pipeline."""

    def async_view(self) -> AsyncPipeline:
        """An :class:`ringstat.AsyncPipeline` over this pipeline: sends,
        ``flush()`` and ``close()`` awaited from coroutines without blocking
        the event loop."""

    def close(self) -> None:
        """Stop accepting events, apply every event already queued, stop the
        workers. Idempotent; releases the GIL and stays interruptible."""

    def stats(self) -> _PipelineStats:
        """The pipeline's own counts, each read separately."""

    def distinct_count(self, name: str) -> float:
        """:attr:`DistinctHandle.count` of the distinct counter ``name``."""

    def distinct_in_window(self, name: str) -> float:
        """:attr:`DistinctHandle.count_in_window` of the distinct counter ``name``."""

    def feed_from(self, queue: SharedQueue) -> Feed:
        """Start a native thread that pops event frames from ``queue`` (put
        there by ``FeedSender`` in other processes) and applies them to
        this pipeline, metrics resolved by name; it never takes the GIL.
        Linux. Stop it with :meth:`Feed.stop`; it also ends when the queue is
        shut down and empty, and when the pipeline closes."""

    def __enter__(self) -> Pipeline: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool:
        """``close()``."""

@final
class SharedQueue:
    """A bounded multi-producer, multi-consumer queue of byte messages in named
    shared memory (``/dev/shm``, Linux), for processes: any process attaches by
    name; a process killed at any point never wedges the others.

    ``maxsize`` slots of ``slot_size`` bytes are fixed at creation; a larger
    message raises ``ValueError`` (never blocks). ``put``/``get`` follow
    :class:`queue.Queue` (``block``, ``timeout``, :class:`queue.Full`,
    :class:`queue.Empty`, :class:`ShutDown` after :meth:`shutdown`);
    ``timeout=None`` waits forever. Blocking calls release the GIL and stay
    interruptible by Ctrl-C. A message that a killed process was writing or
    reading when it died is counted in :attr:`lost`; nothing else is lost.

    Pickles as a reference by name (so it passes to ``multiprocessing``
    children under fork, spawn and forkserver) and works in forked children.
    The name lives until :meth:`unlink` (or :meth:`cleanup`) or a reboot.
    """

    def __new__(
        cls,
        name: str,
        maxsize: int = 1024,
        slot_size: int = 1024,
        *,
        max_processes: int = 128,
        mode: int = 0o600,
    ) -> Self:
        """Attach the queue ``name``, or create it (``maxsize`` slots of
        ``slot_size`` bytes, ``mode`` permissions, room for ``max_processes``
        attached processes) if there is none. An existing queue keeps its own
        sizes. ``ValueError`` for a name that is not a valid shared-memory name
        or a region that is not a ringstat queue."""

    @classmethod
    def create(
        cls,
        name: str,
        maxsize: int = 1024,
        slot_size: int = 1024,
        *,
        max_processes: int = 128,
        mode: int = 0o600,
    ) -> Self:
        """Create the queue ``name``; :class:`FileExistsError` if it exists."""

    @classmethod
    def attach(cls, name: str) -> Self:
        """Attach the existing queue ``name``; :class:`FileNotFoundError` if
        there is none."""

    @staticmethod
    def cleanup(name: str) -> bool:
        """Remove the name ``name`` (attached handles keep working); ``False``
        if there was none."""

    def unlink(self) -> bool:
        """Remove this queue's name (see :meth:`cleanup`)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickle as a reference: unpickling attaches by name."""

    @property
    def name(self) -> str:
        """The queue's name."""

    @property
    def maxsize(self) -> int:
        """The number of slots."""

    @property
    def slot_size(self) -> int:
        """The largest message, in bytes."""

    @property
    def lost(self) -> int:
        """Messages lost to killed processes (claimed and never finished)."""

    @property
    def is_shutdown(self) -> bool:
        """``True`` once any process has called :meth:`shutdown`."""

    def put(self, item: Buffer, block: bool = True, timeout: float | None = None) -> None:
        """Put a message: ``bytes``, ``bytearray``, ``memoryview`` or any
        C-contiguous buffer (a numpy array). As :meth:`queue.Queue.put`;
        ``ValueError`` if it is larger than ``slot_size``."""

    def put_nowait(self, item: Buffer) -> None:
        """``put(item, block=False)``."""

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Remove and return the oldest message, as :meth:`queue.Queue.get`."""

    def get_nowait(self) -> bytes:
        """``get(block=False)``."""

    def put_obj(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        """Put ``pickle.dumps(obj)``; ``ValueError`` if the pickle is larger
        than ``slot_size``."""

    def get_obj(self, block: bool = True, timeout: float | None = None) -> Any:
        """``pickle.loads(get(block, timeout))`` (trust the writers, as for any
        unpickling)."""

    def put_many(
        self, items: Iterable[Buffer], block: bool = True, timeout: float | None = None
    ) -> int:
        """Put the messages of ``items`` in order; return how many were put
        (fewer only with ``block=False`` or a ``timeout``, when the queue stayed
        full)."""

    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[bytes]:
        """Remove and return up to ``max_items`` (>= 1) messages, waiting for the
        first exactly as :meth:`get` does; the list is never empty."""

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down for every process: ``put`` raises
        :class:`ShutDown`; ``get`` drains what is left (``immediate`` discards
        it) and then raises :class:`ShutDown`; blocked calls wake up."""

    def sweep(self) -> int:
        """Free the entries of dead processes (their claimed slots are counted
        in :attr:`lost`); return how many. Blocked calls do it periodically."""

    def qsize(self) -> int:
        """The number of messages (a snapshot)."""

    def empty(self) -> bool:
        """``True`` if the queue holds no message (a snapshot)."""

    def full(self) -> bool:
        """``True`` if every slot is taken (a snapshot)."""

    def __len__(self) -> int: ...
    def async_view(self) -> AsyncSharedQueue:
        """An :class:`ringstat.AsyncSharedQueue` over this queue: ``await
        get()``/``put()`` from coroutines, woken natively by the other
        processes' puts and gets."""

    # For ringstat.aio (private): never wait, never raise Empty/Full.
    def _try_get(self) -> bytes | None: ...
    def _try_put(self, item: Buffer) -> bool: ...
    def _try_get_many(self, max_items: int) -> list[bytes]: ...
    def _wait(self, put: bool, waker: _LoopWaker) -> int: ...
    def _unwait_get(self, token: int) -> bool: ...
    def _unwait_put(self, token: int) -> bool: ...
    def _pass_wake(self, put: bool) -> None: ...

# ----- event frames (src/wire/) ------------------------------------------------

FRAME_VERSION: int
"""The event frame format version this build writes and reads."""

STATE_VERSION: int
"""The registry state format version this build writes and reads."""

class StateError(ValueError):
    """Bytes that are not a valid ringstat registry state (truncated, foreign,
    another version, a field out of range)."""

class FrameError(ValueError):
    """Bytes that are not a valid ringstat event frame (truncated, foreign,
    another version), or events that cannot be encoded."""

_FrameEvent: TypeAlias = tuple[str, str, int, int, int]

def encode_frame(
    producer: int,
    sequence: int,
    events: Iterable[tuple[str, str, int | str | bytes, int, int]],
) -> bytes:
    """Encode events ``(op, name, key, value, ts_ns)`` as one versioned frame of
    ``producer`` (0 <= int < 2**64) numbered ``sequence``.

    ``op`` is a :class:`Pipeline` by-name method: ``"count"``, ``"set"``,
    ``"gauge_add"``, ``"observe"``, ``"mark"``, ``"session_start"``,
    ``"session_end"`` or ``"seen"``; ``key`` an int (a str or bytes is hashed
    as the pipeline hashes keys); ``value`` an int (signed for ``set`` and
    ``gauge_add``); ``ts_ns`` nanoseconds (0: when applied). Raises
    ``TypeError``/``ValueError`` naming the bad event, :class:`FrameError` for
    a frame too large or an empty or too long name. The format is documented
    in ``src/wire/mod.rs``."""

def decode_frame(data: bytes) -> tuple[int, int, list[_FrameEvent]]:
    """``(producer, sequence, events)`` of a frame (keys as the ints they were
    hashed to). Raises :class:`FrameError` for anything that is not a valid
    frame of this version; never crashes."""

def frame_header(data: bytes) -> tuple[int, int]:
    """``(producer, sequence)`` of a frame without decoding its events (to drop
    duplicates cheaply). Raises :class:`FrameError`."""

def apply_frame(pipeline: Pipeline, data: bytes) -> tuple[int, int, int]:
    """Decode a frame and send its events to ``pipeline`` (metrics resolved by
    name; a histogram must be resolved beforehand with its configuration);
    return ``(producer, sequence, events)``. Nothing is sent if the frame is
    invalid (:class:`FrameError`) or names an unresolved histogram or a
    metric the pipeline refuses (``ValueError``); :class:`PipelineClosed` if
    the pipeline is closed. Releases the GIL while sending."""

# ----- many processes into one pipeline (src/wire/feed.rs) -------------------

class _FeedStats(TypedDict):
    frames: int
    events: int
    bad_frames: int
    rejected_frames: int
    rejected_events: int
    unapplied_frames: int

@final
class Feed:
    """The thread of :meth:`Pipeline.feed_from`: pops event frames from a
    :class:`SharedQueue` (sleeping on the queue's futex while it is empty)
    and applies them to the pipeline. A message that is not a valid frame
    is counted in ``bad_frames`` and skipped; a frame the pipeline refuses
    (an unresolved histogram) in ``rejected_frames``."""

    def stop(self, drain: bool = False) -> None:
        """Stop the thread and join it (idempotent). With ``drain=True`` it
        first applies every frame queued now: call it once the producers
        have flushed, then :meth:`Pipeline.flush`. Without, queued frames
        stay for another consumer. Releases the GIL."""

    @property
    def running(self) -> bool:
        """``True`` while the thread runs."""

    @property
    def end(self) -> str:
        """Why the thread ended: ``"running"``, ``"stopped"``,
        ``"queue_closed"``, ``"pipeline_closed"`` or
        ``"too_many_processes"``."""

    def stats(self) -> _FeedStats:
        """Frames and events applied, bad and rejected frames, frames popped
        after the pipeline closed."""

    def __enter__(self) -> Feed: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool:
        """``stop()``."""

@final
class _EventBuffer:
    """A shipper's bounded buffer of checked events (``ringstat.broker``):
    its methods are the shipper's producer calls; the publishing thread
    takes frames of them with :meth:`take`."""

    def __new__(
        cls,
        capacity: int,
        producer_id: int,
        *,
        drop_newest: bool,
        max_frame_bytes: int | None,
        events: Counter,
        dropped: Counter,
        blocked: Counter,
        rejected: Counter,
        buffered: Gauge,
    ) -> _EventBuffer: ...
    @property
    def producer_id(self) -> int: ...
    def __len__(self) -> int: ...
    def send(
        self, op: str, name: str, key: int | str | bytes = 0, value: int = 1, ts_ns: int = 0
    ) -> bool: ...
    def count(self, name: str, n: int = 1) -> bool: ...
    def set(self, name: str, value: int) -> bool: ...
    def observe(self, name: str, value: int) -> bool: ...
    def mark(self, name: str, n: int = 1) -> bool: ...
    def session_start(
        self, name: str, key: int | str | bytes, ts_ns: int | None = None
    ) -> bool: ...
    def session_end(self, name: str, key: int | str | bytes, ts_ns: int | None = None) -> bool: ...
    def seen(self, name: str, key: int | str | bytes) -> bool: ...
    def close(self) -> bool: ...
    def take(
        self, max_events: int, timeout: float | None = None
    ) -> list[tuple[bytes | None, int, int]]: ...

@disjoint_base
class FeedSender:
    """The producer side of :meth:`Pipeline.feed_from`, for any process:
    the pipeline's by-name send methods, batched locally into event frames
    of at most the queue's ``slot_size`` bytes; each full frame is put into
    the :class:`SharedQueue`, waiting for room (back-pressure; the GIL is
    released and Ctrl-C works). :meth:`flush` puts the last partial frame;
    ``ringstat.FeedSender`` also flushes at interpreter exit and at
    the end of a ``multiprocessing`` process (waiting at most 5 s for room,
    so a producer whose aggregator is gone still exits), and a collected
    sender puts its batch (waiting at most 1 s). In a forked child, events
    batched before the fork are dropped (the parent sends them) and the
    child gets its own producer id."""

    def __new__(cls, queue: SharedQueue) -> Self: ...
    @property
    def producer_id(self) -> int:
        """The producer id written in this sender's frames (random)."""

    @property
    def frame_size(self) -> int:
        """The most bytes of a frame: the queue's ``slot_size``."""

    @property
    def pending(self) -> int:
        """Events batched and not yet put into the queue."""

    @property
    def closed(self) -> bool:
        """``True`` after :meth:`close`."""

    def send(
        self,
        op: str,
        name: str,
        key: int | str | bytes | None = None,
        value: SupportsIndex | None = None,
        ts: float | None = None,
    ) -> None:
        """One event by op name (``"count"``, ``"set"``, ``"gauge_add"``,
        ``"observe"``, ``"mark"``, ``"session_start"``, ``"session_end"``,
        ``"seen"``); ``value`` defaults to 1."""

    def count(self, name: str, n: SupportsIndex = 1) -> None:
        """Add ``n`` to the counter ``name``."""

    def set(self, name: str, value: SupportsIndex) -> None:
        """Set the gauge ``name``."""

    def gauge_add(self, name: str, n: SupportsIndex) -> None:
        """Add ``n`` (may be negative) to the gauge ``name``."""

    def observe(self, name: str, value: SupportsIndex) -> None:
        """Record the int ``value`` in the histogram ``name``, which the
        aggregator's pipeline must have resolved (else the frame is
        rejected there)."""

    def mark(self, name: str, n: SupportsIndex = 1) -> None:
        """Count ``n`` events in the rate ``name``."""

    def session_start(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Open a session of ``key`` in the tracker ``name``; ``ts`` in seconds
        on the aggregator's pipeline clock (``None``: when applied)."""

    def session_end(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Close the session of ``key`` in the tracker ``name``."""

    def seen(self, name: str, key: int | str | bytes, ts: float | None = None) -> None:
        """Record ``key`` in the distinct counter ``name``."""

    @property
    def unsent_frames(self) -> int:
        """Frames a :meth:`flush` could not put yet (timeout, interrupt)."""

    def flush(self, timeout: float | None = None) -> None:
        """Put the batched events as one frame (and any frame an earlier flush
        could not put), waiting for room at most ``timeout`` seconds
        (``None``: forever). :class:`queue.Full` at the timeout: the frames
        are kept for the next flush. :class:`ShutDown` if the queue is shut
        down (the frames are dropped: nobody reads them)."""

    def close(self) -> None:
        """Flush, then refuse further events (:class:`ShutDown`). Idempotent."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool:
        """``close()``."""
