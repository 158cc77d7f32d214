"""CPython's own ``queue`` tests (``Lib/test/test_queue.py`` of the running
interpreter) against :class:`ringstat.Queue`.

``BaseQueueTestMixin`` covers ``queue.Queue``'s behaviour (blocking, timeouts,
``task_done``/``join`` and, on 3.13+, ``shutdown``); ``BaseSimpleQueueTest``
covers many threads putting and getting. Both run on an unbounded queue
(``type2test()``) and on bounded ones (``type2test(n)``).

The one test left out is ``test_shrinking_queue``: it assigns ``q.maxsize``,
and a ring buffer's size is fixed (README, "Differences from queue.Queue").
"""

from __future__ import annotations

import queue
import unittest
from typing import Any

from test import test_queue as cpython  # type: ignore[import-not-found]

import ringstat


class RingstatQueueTest(cpython.BaseQueueTestMixin, unittest.TestCase):  # type: ignore[misc]
    queue = queue
    type2test = ringstat.Queue

    @unittest.skip("maxsize is read-only: a ring buffer's size is fixed")
    def test_shrinking_queue(self) -> Any:
        pass


class RingstatSimpleQueueTest(cpython.BaseSimpleQueueTest, unittest.TestCase):  # type: ignore[misc]
    queue = queue
    type2test = ringstat.Queue


class RingstatBoundedSimpleQueueTest(cpython.BaseSimpleQueueTest, unittest.TestCase):  # type: ignore[misc]
    """The same threads through a small ring, so puts wait for room too."""

    queue = queue

    @staticmethod
    def type2test() -> ringstat.Queue[Any]:
        return ringstat.Queue(32)
