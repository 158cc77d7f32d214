"""Shared helpers for the ringstat Python test suite."""

from __future__ import annotations

import signal
import sys

import pytest

# The session's private RabbitMQ node, a fixture (tests/python/rabbitmq_node.py).
from rabbitmq_node import rabbitmq  # noqa: F401

# queue.Queue gained shutdown() and queue.ShutDown in Python 3.13.
HAS_STDLIB_SHUTDOWN = sys.version_info >= (3, 13)

needs_stdlib_shutdown = pytest.mark.skipif(
    not HAS_STDLIB_SHUTDOWN, reason="queue.Queue.shutdown() needs Python 3.13+"
)


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell
    runs background jobs with SIGINT ignored, and Python keeps an ignored
    SIGINT ignored, so give the child the default disposition, as a terminal
    does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
