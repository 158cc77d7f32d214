"""Lock-free queues and live statistics, written in Rust.

``ringstat.Queue`` is a multi-producer multi-consumer queue with the interface
of :class:`queue.Queue` (plus ``put_many``/``get_many``): a lock-free ring
buffer when ``maxsize > 0``, a lock-free unbounded list otherwise. It
raises the standard library's own :class:`queue.Full` and :class:`queue.Empty`
(re-exported here as ``ringstat.Full`` and ``ringstat.Empty``), and
``ringstat.ShutDown``, which is :class:`queue.ShutDown` on Python 3.13+.

Live statistics that many threads update at native speed while anyone reads
them: ``Counter`` (sharded, monotonic), ``Gauge`` (with min/max),
``Histogram`` (log-linear, percentiles on numpy's 0-100 scale), ``Rate``
(events per second over a sliding window), and ``Registry`` (get-or-create by
name and labels, ``snapshot()`` as plain dicts, ``to_prometheus()``,
``to_openmetrics()``, and ``serve()``: a scrape endpoint on a native thread
that never takes the GIL, returning a ``MetricsServer``).
What a ``prometheus_client`` user types works too: ``inc(amount)``,
``dec(amount)``, ``Gauge.track_inprogress()``, ``Histogram.time()`` and
``observe``, ``Counter.count_exceptions()``, ``help=`` (``# HELP`` lines)
and ``labelnames=`` families with ``labels(...)`` (:mod:`ringstat.family`).
``SharedRegistry(name)`` holds the same metrics in named shared memory that
many processes write and any process reads (Linux; ``python -m ringstat top
NAME`` shows it live). ``ManualClock`` makes rates deterministic in tests. ``Recorder`` samples a
registry on a native background thread into a bounded time series.

``AsyncQueue`` (:mod:`ringstat.aio`) gives a queue the :class:`asyncio.Queue`
interface for coroutines on any event loop, woken natively; threads keep
using the same queue; ``AsyncSharedQueue`` (``SharedQueue.async_view()``)
does the same for a queue shared with other processes. ``AsyncPipeline``
awaits a pipeline's sends, flush and close without blocking the loop.

Event frames for brokers: ``encode_frame``, ``decode_frame``,
``frame_header``, ``apply_frame`` (a versioned binary format, many events a
message); ``FeedSender`` and ``Pipeline.feed_from`` carry them through a
``SharedQueue`` from many processes into one pipeline (Linux);
``ringstat.broker`` ships them through RabbitMQ
(``pip install "ringstat[rabbitmq]"``) or Kafka (``"ringstat[kafka]"``).

Notebook helpers (``pip install "ringstat[notebook]"``; imported on demand):
``ringstat.frames`` (pandas/polars DataFrames), ``ringstat.display`` (HTML),
``ringstat.plot`` (matplotlib) and ``ringstat.jupyter.live``.

Web services (imported on demand): ``ringstat.asgi`` (``MetricsApp`` serving
``/metrics``, ``MetricsMiddleware`` counting requests), ``ringstat.wsgi``
(``MetricsApp``), ``ringstat.exposition`` (their formats: the hook for
OpenMetrics) and ``ringstat.prometheus`` (``RingstatCollector``, a registry
inside ``prometheus_client``'s).
"""

from queue import Empty, Full

from ringstat._methods import attach as _attach
from ringstat._ringstat import (
    FRAME_VERSION,
    STATE_VERSION,
    Counter,
    CounterHandle,
    DistinctHandle,
    Feed,
    FrameError,
    Gauge,
    GaugeHandle,
    Histogram,
    HistogramHandle,
    ManualClock,
    MetricsServer,
    Pipeline,
    PipelineClosed,
    Queue,
    Rate,
    RateHandle,
    Recorder,
    Registry,
    SeriesLimitError,
    SessionsHandle,
    SharedQueue,
    SharedRegistry,
    ShutDown,
    StateError,
    __version__,
    apply_frame,
    decode_frame,
    encode_frame,
    frame_header,
)
from ringstat.aio import AsyncPipeline, AsyncQueue, AsyncSharedQueue
from ringstat.feed import FeedSender

# The Python methods of the native classes (to_pandas, time(), labelnames
# families...): the native module imports nothing from this package.
_attach()

__all__ = [
    "FRAME_VERSION",
    "STATE_VERSION",
    "AsyncPipeline",
    "AsyncQueue",
    "AsyncSharedQueue",
    "Counter",
    "CounterHandle",
    "DistinctHandle",
    "Empty",
    "Feed",
    "FeedSender",
    "FrameError",
    "Full",
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
    "__version__",
    "apply_frame",
    "decode_frame",
    "encode_frame",
    "frame_header",
]
