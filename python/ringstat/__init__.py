"""Lock-free queues and live statistics, written in Rust.

``ringstat.Queue`` is a bounded multi-producer multi-consumer ring buffer with
the interface of :class:`queue.Queue` (plus ``put_many``/``get_many``). It
raises the standard library's own :class:`queue.Full` and :class:`queue.Empty`
(re-exported here as ``ringstat.Full`` and ``ringstat.Empty``), and
``ringstat.ShutDown``, which is :class:`queue.ShutDown` on Python 3.13+.
"""

from queue import Empty, Full

from ringstat._ringstat import Queue, ShutDown, __version__

# Statistics (Counter, Gauge, Histogram, Rate, Registry) are re-exported here
# once their bindings land.

__all__ = [
    "Empty",
    "Full",
    "Queue",
    "ShutDown",
    "__version__",
]
