"""The Python methods of the native classes, set on them when ``ringstat`` is
imported.

The native module (``ringstat._ringstat``) imports nothing from this package:
it converts, releases the GIL and forwards. What is Python by nature lives
here and is attached to the native classes by :func:`attach` (``ringstat``'s
``__init__`` calls it), so a handle a ``Registry`` returns is still exactly
a ``ringstat.Counter`` and the stubs describe one class:

- ``SharedQueue.put_obj``/``get_obj`` (pickling around ``put``/``get``) and
  ``async_view()`` (:class:`ringstat.aio.AsyncSharedQueue`);
- ``Registry.snapshot()`` and ``Recorder.samples()``/``drain()`` wrap the
  native plain dicts in :class:`ringstat.snapshot.Snapshot`;
- ``to_pandas``/``to_polars`` (:mod:`ringstat.frames`) and ``_repr_html_``
  (:mod:`ringstat.display`), imported when called;
- what ``prometheus_client`` users type: ``Histogram.time()``,
  ``Histogram.observe``, ``Gauge.track_inprogress()``,
  ``Counter.count_exceptions()`` and ``labelnames=`` families
  (:class:`ringstat.family.Family`) on the ``Registry`` methods.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ringstat import _ringstat
from ringstat.family import Family
from ringstat.snapshot import Snapshot

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["attach"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _native(cls: type, name: str) -> Any:
    """The native method ``name`` of ``cls``, also once :func:`attach` has
    replaced it (so attaching twice wraps nothing twice)."""
    attr = cls.__dict__[name]
    return getattr(attr, "_native", attr)


def _decorate(fn: _F, scope: Callable[[], Any]) -> _F:
    """``fn`` run inside ``with scope():`` on every call (awaited inside it
    for a coroutine function)."""
    import inspect  # here: importing it costs more than the rest of the package

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with scope():
                return await fn(*args, **kwargs)

        return cast(_F, run_async)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with scope():
            return fn(*args, **kwargs)

    return cast(_F, run)


class Timer:
    """``Histogram.time()``: records the seconds a ``with`` block (or each
    call of a decorated function) takes, measured by :func:`time.perf_counter`.

    If the block raises and the histogram refuses the value (above its
    ``max_value``), the block's exception propagates (the value is counted in
    ``rejected``); otherwise the ``ValueError`` of ``record`` does.
    """

    __slots__ = ("_hist", "_start")

    def __init__(self, hist: _ringstat.Histogram) -> None:
        self._hist = hist
        self._start = 0.0

    def __enter__(self) -> Self:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = max(perf_counter() - self._start, 0.0)
        try:
            self._hist.record(elapsed)
        except ValueError:
            if exc_type is None:
                raise

    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn``: each call is timed by a fresh timer."""
        hist = self._hist
        return _decorate(fn, lambda: Timer(hist))


class InProgress:
    """``Gauge.track_inprogress()``: the gauge is one higher while a ``with``
    block (or a call of a decorated function) runs."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: _ringstat.Gauge) -> None:
        self._gauge = gauge

    def __enter__(self) -> Self:
        self._gauge.inc()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gauge.dec()

    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn``: the gauge counts the calls in progress."""
        return _decorate(fn, lambda: self)


class ExceptionCounter:
    """``Counter.count_exceptions()``: adds one for each exception of type
    ``exception`` leaving a ``with`` block (or a decorated function); the
    exception propagates."""

    __slots__ = ("_counter", "_exception")

    def __init__(
        self,
        counter: _ringstat.Counter,
        exception: type[BaseException] | tuple[type[BaseException], ...],
    ) -> None:
        self._counter = counter
        self._exception = exception

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, self._exception):
            self._counter.inc()

    def __call__(self, fn: _F) -> _F:
        """Decorate ``fn``: its exceptions of the type are counted."""
        return _decorate(fn, lambda: self)


# ----- the methods ------------------------------------------------------------


def _histogram_time(self: _ringstat.Histogram) -> Timer:
    """A timer recording elapsed seconds (a ``float``) into this histogram:
    ``with h.time():`` or ``@h.time()``, as prometheus_client's. The
    histogram needs a ``unit`` (``Histogram(60, unit=1e-6)``) where the core
    has units: seconds are fractions, which a histogram of ints refuses."""
    # `unit` is None for a histogram of ints; a core without units has no
    # `unit` at all (and rounds a float to the nearest int).
    if getattr(self, "unit", 1.0) is None:
        raise ValueError(
            "Histogram.time() records seconds, fractions included: create the "
            "histogram with a unit, e.g. Histogram(60, unit=1e-6) for seconds "
            "to the microsecond"
        )
    return Timer(self)


def _gauge_track_inprogress(self: _ringstat.Gauge) -> InProgress:
    """``inc()`` on entry and ``dec()`` on exit: ``with g.track_inprogress():``
    or ``@g.track_inprogress()``, as prometheus_client's."""
    return InProgress(self)


def _counter_count_exceptions(
    self: _ringstat.Counter,
    exception: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> ExceptionCounter:
    """Count the exceptions of type ``exception`` raised in a ``with`` block
    or a decorated function, as prometheus_client's."""
    return ExceptionCounter(self, exception)


def _histogram_to_pandas(self: _ringstat.Histogram) -> Any:
    from ringstat.frames import histogram_frame

    return histogram_frame(self, "pandas")


def _histogram_to_polars(self: _ringstat.Histogram) -> Any:
    from ringstat.frames import histogram_frame

    return histogram_frame(self, "polars")


def _histogram_repr_html(self: _ringstat.Histogram) -> str:
    from ringstat.display import histogram_html

    return histogram_html(self)


def _registry_to_pandas(
    self: _ringstat.Registry, percentiles: Iterable[float] | None = None
) -> Any:
    return self.snapshot(percentiles).to_pandas()


def _registry_repr_html(self: _ringstat.Registry) -> str:
    from ringstat.display import registry_html

    return registry_html(self)


def _recorder_to_pandas(self: _ringstat.Recorder) -> Any:
    from ringstat.frames import recorder_frame

    return recorder_frame(self, "pandas")


def _recorder_to_polars(self: _ringstat.Recorder) -> Any:
    from ringstat.frames import recorder_frame

    return recorder_frame(self, "polars")


def _wrap_snapshot(native: Callable[..., dict[str, Any]]) -> Callable[..., Snapshot]:
    def snapshot(self: _ringstat.Registry, percentiles: Iterable[float] | None = None) -> Snapshot:
        return Snapshot(native(self, percentiles))

    snapshot._native = native  # type: ignore[attr-defined]
    return snapshot


def _wrap_samples(native: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[Snapshot]]:
    def samples(self: _ringstat.Recorder) -> list[Snapshot]:
        return [Snapshot(s) for s in native(self)]

    samples._native = native  # type: ignore[attr-defined]
    return samples


def _labels_given(labels: Mapping[str, str] | None) -> None:
    if labels is not None:
        raise TypeError("give labels (one series) or labelnames (a family), not both")


def _series_or_family(
    reg: _ringstat.Registry,
    native: Callable[..., Any],
    name: str,
    *,
    labels: Mapping[str, str] | None,
    help: str | None,
    labelnames: Iterable[str] | None,
    config: dict[str, Any],
) -> Any:
    """One series (``labels``), or with ``labelnames`` a :class:`Family` whose
    children are created by ``native`` with the same configuration."""
    if labelnames is None:
        return native(reg, name, labels, help=help, **config)
    _labels_given(labels)
    if help is not None:
        reg.describe(name, help)
    return Family(name, labelnames, lambda lab: native(reg, name, lab, **config))


def _wrap_simple(native: Callable[..., Any]) -> Callable[..., Any]:
    """``Registry.counter``/``gauge`` with ``labelnames=``."""

    def method(
        self: _ringstat.Registry,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        help: str | None = None,
        labelnames: Iterable[str] | None = None,
    ) -> Any:
        return _series_or_family(
            self, native, name, labels=labels, help=help, labelnames=labelnames, config={}
        )

    method._native = native  # type: ignore[attr-defined]
    return method


def _wrap_histogram(native: Callable[..., Any]) -> Callable[..., Any]:
    def histogram(
        self: _ringstat.Registry,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: Iterable[str] | None = None,
        buckets: Iterable[float] | None = None,
    ) -> Any:
        if buckets is not None and labelnames is not None:
            # Bounds belong to the family: set them before any child exists.
            self.set_buckets(name, buckets)
            buckets = None
        config = {
            "max_value": max_value,
            "significant_digits": significant_digits,
            "unit": unit,
            "buckets": buckets,
        }
        return _series_or_family(
            self, native, name, labels=labels, help=help, labelnames=labelnames, config=config
        )

    histogram._native = native  # type: ignore[attr-defined]
    return histogram


def _wrap_rate(native: Callable[..., Any]) -> Callable[..., Any]:
    def rate(
        self: _ringstat.Registry,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        window: float = 60.0,
        buckets: int = 60,
        help: str | None = None,
        labelnames: Iterable[str] | None = None,
    ) -> Any:
        config = {"window": window, "buckets": buckets}
        return _series_or_family(
            self, native, name, labels=labels, help=help, labelnames=labelnames, config=config
        )

    rate._native = native  # type: ignore[attr-defined]
    return rate


def _shared_put_obj(
    self: _ringstat.SharedQueue, obj: object, block: bool = True, timeout: float | None = None
) -> None:
    """Put ``pickle.dumps(obj)`` (highest protocol); ``ValueError`` if the
    pickle is larger than ``slot_size``."""
    self.put(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), block, timeout)


def _shared_get_obj(
    self: _ringstat.SharedQueue, block: bool = True, timeout: float | None = None
) -> Any:
    """``pickle.loads(get(block, timeout))``: only for queues whose writers
    you trust, as for any unpickling."""
    return pickle.loads(self.get(block, timeout))


def _wrap_shared_gauge(native: Callable[..., Any]) -> Callable[..., Any]:
    """``SharedRegistry.gauge`` with ``labelnames=`` (and its ``mode``)."""

    def gauge(
        self: Any,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        mode: str | None = None,
        help: str | None = None,
        labelnames: Iterable[str] | None = None,
    ) -> Any:
        return _series_or_family(
            self,
            native,
            name,
            labels=labels,
            help=help,
            labelnames=labelnames,
            config={"mode": mode},
        )

    gauge._native = native  # type: ignore[attr-defined]
    return gauge


def _wrap_shared_histogram(native: Callable[..., Any]) -> Callable[..., Any]:
    """``SharedRegistry.histogram``: as ``Registry``'s, without ``buckets=``
    (shared histograms are exposed as summaries)."""

    def histogram(
        self: Any,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        max_value: float,
        significant_digits: int = 3,
        unit: float | None = None,
        help: str | None = None,
        labelnames: Iterable[str] | None = None,
    ) -> Any:
        config = {"max_value": max_value, "significant_digits": significant_digits, "unit": unit}
        return _series_or_family(
            self, native, name, labels=labels, help=help, labelnames=labelnames, config=config
        )

    histogram._native = native  # type: ignore[attr-defined]
    return histogram


def _attach_registry_methods(
    cls: type,
    gauge: Callable[..., Callable[..., Any]],
    histogram: Callable[..., Callable[..., Any]],
) -> None:
    """The Python layer of ``Registry`` and ``SharedRegistry``: snapshots as
    :class:`Snapshot`, ``labelnames`` families, ``to_pandas`` and Jupyter
    display."""
    snapshot = _native(cls, "snapshot")
    _set(cls, "snapshot", _wrap_snapshot(snapshot), snapshot)
    native = _native(cls, "counter")
    _set(cls, "counter", _wrap_simple(native), native)
    native = _native(cls, "gauge")
    _set(cls, "gauge", gauge(native), native)
    native = _native(cls, "histogram")
    _set(cls, "histogram", histogram(native), native)
    native = _native(cls, "rate")
    _set(cls, "rate", _wrap_rate(native), native)
    _set(cls, "to_pandas", _registry_to_pandas)
    _set(cls, "_repr_html_", _registry_repr_html)


def _set(cls: type, name: str, fn: Callable[..., Any], doc_from: Any = None) -> None:
    fn.__name__ = name
    fn.__qualname__ = f"{cls.__name__}.{name}"
    fn.__module__ = cls.__module__
    if doc_from is not None and fn.__doc__ is None:
        fn.__doc__ = doc_from.__doc__
    setattr(cls, name, fn)


def _queue_async_view(self: _ringstat.Queue[Any]) -> Any:
    from ringstat.aio import AsyncQueue

    return AsyncQueue(queue=self)


def _shared_queue_async_view(self: _ringstat.SharedQueue) -> Any:
    from ringstat.aio import AsyncSharedQueue

    return AsyncSharedQueue(self)


def _pipeline_async_view(self: _ringstat.Pipeline) -> Any:
    from ringstat.aio import AsyncPipeline

    return AsyncPipeline(self)


def _recorder_stream(self: _ringstat.Recorder) -> Any:
    from ringstat.aio import stream

    return stream(self)


def attach() -> None:
    """Set the Python methods on the native classes (idempotent)."""
    r = _ringstat
    _set(r.Queue, "async_view", _queue_async_view)
    if hasattr(r, "_pipeline_nowait"):  # unix
        _set(r.Pipeline, "async_view", _pipeline_async_view)
    _set(r.Counter, "count_exceptions", _counter_count_exceptions)
    _set(r.Gauge, "track_inprogress", _gauge_track_inprogress)
    # `observe` is `record` itself (prometheus_client's name): no extra call.
    r.Histogram.observe = r.Histogram.__dict__["record"]  # type: ignore[method-assign]
    _set(r.Histogram, "time", _histogram_time)
    _set(r.Histogram, "to_pandas", _histogram_to_pandas)
    _set(r.Histogram, "to_polars", _histogram_to_polars)
    _set(r.Histogram, "_repr_html_", _histogram_repr_html)

    _attach_registry_methods(r.Registry, _wrap_simple, _wrap_histogram)
    shared = getattr(r, "SharedRegistry", None)  # Linux only
    if shared is not None:
        _attach_registry_methods(shared, _wrap_shared_gauge, _wrap_shared_histogram)

    for name in ("samples", "drain"):
        native = _native(r.Recorder, name)
        _set(r.Recorder, name, _wrap_samples(native), native)
    _set(r.Recorder, "to_pandas", _recorder_to_pandas)
    _set(r.Recorder, "stream", _recorder_stream)
    if hasattr(r, "SharedQueue"):  # Linux only
        _set(r.SharedQueue, "put_obj", _shared_put_obj)
        _set(r.SharedQueue, "get_obj", _shared_get_obj)
        _set(r.SharedQueue, "async_view", _shared_queue_async_view)
    _set(r.Recorder, "to_polars", _recorder_to_polars)
