"""Shared helpers for the ringstat Python test suite."""

from __future__ import annotations

import sys

import pytest

# queue.Queue gained shutdown() and queue.ShutDown in Python 3.13.
HAS_STDLIB_SHUTDOWN = sys.version_info >= (3, 13)

needs_stdlib_shutdown = pytest.mark.skipif(
    not HAS_STDLIB_SHUTDOWN, reason="queue.Queue.shutdown() needs Python 3.13+"
)
