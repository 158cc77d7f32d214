"""Many processes into one pipeline: :class:`FeedSender` in each producer
process, :meth:`ringstat.Pipeline.feed_from` in the aggregator.

The native class does the work (batching into event frames, putting them
into the :class:`ringstat.SharedQueue`); this subclass only adds the flush
at exit, through :class:`multiprocessing.util.Finalize`, which runs at
interpreter exit and at the end of a ``multiprocessing`` child (where
``atexit`` does not run under ``fork``).
"""

from __future__ import annotations

import contextlib
import weakref
from multiprocessing import util as _mp_util

from ringstat._ringstat import FeedSender as _NativeFeedSender
from ringstat._ringstat import SharedQueue

__all__ = ["FeedSender"]

# Before multiprocessing's own exit work (priority 0 and lower), after
# finalizers that still send events (higher).
_EXIT_PRIORITY = 5
# The longest the exit flush waits for room: a producer whose aggregator is
# gone must still exit.
_EXIT_WAIT = 5.0


def _flush_at_exit(ref: weakref.ReferenceType[FeedSender]) -> None:
    sender = ref()
    if sender is not None and not sender.closed:
        # At exit nothing can be raised to anyone: a shut-down queue has no
        # reader for these events anyway.
        with contextlib.suppress(Exception):
            sender.flush(timeout=_EXIT_WAIT)


class FeedSender(_NativeFeedSender):
    __doc__ = _NativeFeedSender.__doc__

    def __init__(self, queue: SharedQueue) -> None:
        # The finalizer holds only a weak reference: a collected sender is
        # flushed by its native destructor instead.
        _mp_util.Finalize(
            self, _flush_at_exit, args=(weakref.ref(self),), exitpriority=_EXIT_PRIORITY
        )
