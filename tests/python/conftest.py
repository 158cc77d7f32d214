"""Shared helpers for the ringstat Python test suite."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The session's private brokers, fixtures (tests/python/rabbitmq_node.py,
# tests/python/kafka_node.py).
from kafka_node import kafka  # noqa: F401
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


@contextlib.contextmanager
def serve(command: Callable[[int], list[str]], cwd: Path, log: Path) -> Iterator[str]:
    """Runs the server ``command(fd)`` in a subprocess on a socket bound here
    to a free port of 127.0.0.1 (passed as file descriptor ``fd``, so no
    other process can take the port in between), waits until it answers
    ``GET /metrics``, and yields its base URL. The server (its whole process
    group: gunicorn's workers too) is stopped on exit, whatever happened;
    its output goes to ``log``, shown if it does not come up."""
    import httpx

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with sock, log.open("wb") as out:
        proc = subprocess.Popen(
            command(sock.fileno()),
            cwd=cwd,
            pass_fds=[sock.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The socket already listens: the first request waits for the server
        # to accept it. Retry only while the process starts up.
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                httpx.get(base + "/metrics", timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"server did not answer:\n{log.read_text()}")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
