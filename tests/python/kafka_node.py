"""A private Kafka-protocol broker for the Kafka broker tests, the session
fixture `kafka` (imported by conftest.py).

The broker is tansu (crates.io, Apache-2.0), built once by `make kafka-tools`
into build/tansu/bin/tansu (RINGSTAT_TANSU overrides the path), with its
SQLite storage engine: the topics live in a file of a private directory, so
a broker stopped and started again (the fault tests) keeps them. Started
once per session on 127.0.0.1 only, on a free port, in its own session
(process group); a watchdog process kills it when this test process ends in
any way (its stdin pipe closes, even after SIGKILL), and the fixture's
finalizer and atexit stop it first in the normal case.

`make test` builds tansu where missing and sets RINGSTAT_REQUIRE_KAFKA=1, so
a missing broker fails there instead of skipping.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rabbitmq_node import WATCHDOG, free_ports

ROOT = Path(__file__).resolve().parents[2]
TANSU = Path(os.environ.get("RINGSTAT_TANSU", ROOT / "build" / "tansu" / "bin" / "tansu"))


class KafkaNode:
    """One private tansu broker; :meth:`stop` and :meth:`start` restart it
    on the same storage file and port (the fault tests)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ringstat-kafka-"))
        (self.port,) = free_ports(1)
        self.url = f"kafka://127.0.0.1:{self.port}"
        listener = f"tcp://127.0.0.1:{self.port}"
        self.argv = [
            str(TANSU),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "sqlite://tansu.db",  # relative to the private directory
        ]
        # Only what the broker needs: no settings leak in from the caller's
        # environment (tansu reads STORAGE_ENGINE, LISTENER_URL, ...).
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_LOG": "warn"}
        self.server: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []

    def start(self, timeout: float = 60.0) -> None:
        t0 = time.monotonic()
        with open(self.dir / "server.log", "ab") as out:
            self.server = subprocess.Popen(
                self.argv,
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._arm_watchdog()
        self.wait_ready(timeout)
        self.start_seconds.append(time.monotonic() - t0)

    def _arm_watchdog(self) -> None:
        self._drop_watchdog()
        assert self.server is not None
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.dir), str(self.server.pid)],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def _drop_watchdog(self) -> None:
        # Killed before its stdin closes, or it would kill the broker.
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()
            self.watchdog = None

    def wait_ready(self, timeout: float) -> None:
        """Until the broker answers a metadata request."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while True:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"tansu exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}"})
                with contextlib.suppress(Exception):
                    admin.list_topics(timeout=2)
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"tansu not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        text = (self.dir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    @property
    def pid(self) -> int | None:
        """The broker process (for CPU and memory from /proc)."""
        return None if self.server is None else self.server.pid

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after 30 s)."""
        if self.server is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        self.server = None

    def shutdown(self) -> None:
        self.stop()
        self._drop_watchdog()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaNode]:
    """A running private Kafka-protocol broker (see the module docs)."""
    pytest.importorskip("confluent_kafka")
    if not TANSU.exists():
        if os.environ.get("RINGSTAT_REQUIRE_KAFKA"):
            pytest.fail(f"{TANSU} missing: `make kafka-tools` builds tansu")
        pytest.skip("tansu is not built (make kafka-tools)")
    node = KafkaNode()
    atexit.register(node.shutdown)
    try:
        node.start()
        yield node
    finally:
        node.shutdown()
        atexit.unregister(node.shutdown)
