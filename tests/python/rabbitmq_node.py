"""A private RabbitMQ node for the broker tests (Debian's rabbitmq-server),
the session fixture `rabbitmq` (imported by conftest.py).

Started once per session on 127.0.0.1 only: node rabbit@localhost, free
ports for AMQP, Erlang distribution and a private epmd, a private
directory for data, logs and config. Each process runs in its own session
(process group); a watchdog process kills them when this test process ends
in any way (its stdin pipe closes, even after SIGKILL), and the fixture's
finalizer and atexit stop them first in the normal case.

`make test` installs rabbitmq-server where missing and sets
RINGSTAT_REQUIRE_RABBITMQ=1, so a missing server fails there instead of
skipping.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
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

# pika logs every refused connection at ERROR; the fault tests make many.
logging.getLogger("pika").setLevel(logging.CRITICAL)

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = shutil.which("epmd") or "/usr/bin/epmd"

# Once its stdin closes (the test process died or finished): kills the
# process groups named in argv[2:], then removes the node's directory argv[1].
WATCHDOG = """
import os, shutil, signal, sys, time
sys.stdin.read()
for pgid in sys.argv[2:]:
    try:
        os.killpg(int(pgid), signal.SIGKILL)
    except OSError:
        pass
time.sleep(1)
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1, below the kernel's ephemeral
    range (so no outgoing connection takes one before the node binds it),
    held open together while chosen."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", rng.randrange(10_000, max(low, 10_001))))
            except OSError:
                s.close()
                continue
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class RabbitNode:
    """One private node; :meth:`stop` and :meth:`start` restart it on the
    same data directory and ports (the fault tests)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ringstat-rabbit-"))
        self.port, self.dist_port, self.epmd_port = free_ports(3)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        home = self.dir / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text("ringstat-test-" + os.urandom(8).hex())
        cookie.chmod(0o400)
        (self.dir / "env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.epmd: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.start_seconds: list[float] = []

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log, "ab") as out:
            return subprocess.Popen(
                argv,
                cwd=self.dir,  # an erl_crash.dump stays in the private directory
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _arm_watchdog(self) -> None:
        self._drop_watchdog()
        pgids = [str(p.pid) for p in (self.epmd, self.server) if p is not None]
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(self.dir), *pgids],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def _drop_watchdog(self) -> None:
        # Killed before its stdin closes, or it would kill the groups.
        if self.watchdog is not None:
            self.watchdog.kill()
            self.watchdog.wait()
            assert self.watchdog.stdin is not None
            self.watchdog.stdin.close()
            self.watchdog = None

    def start(self, timeout: float = 180.0) -> None:
        t0 = time.monotonic()
        if self.epmd is None:
            self.epmd = self._spawn(
                [EPMD, "-address", "127.0.0.1", "-port", str(self.epmd_port)], "epmd.log"
            )
        self.server = self._spawn([str(SERVER)], "server.log")
        self._arm_watchdog()
        self.wait_ready(timeout)
        self.start_seconds.append(time.monotonic() - t0)

    def wait_ready(self, timeout: float) -> None:
        import pika

        deadline = time.monotonic() + timeout
        while True:
            assert self.server is not None
            if self.server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited:\n{self.log_tail()}")
            try:
                pika.BlockingConnection(pika.URLParameters(self.url)).close()
                return
            except pika.exceptions.AMQPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rabbitmq-server not ready:\n{self.log_tail()}") from None
                time.sleep(0.2)

    def log_tail(self) -> str:
        text = (self.dir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    def beam_pid(self) -> int | None:
        """The node's Erlang VM (for CPU and memory from /proc)."""
        if self.server is None:
            return None
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getpgid(int(d.name)) == self.server.pid and (
                        (d / "comm").read_text().startswith("beam")
                    ):
                        return int(d.name)
        return None

    def stop(self) -> None:
        """Stop the node (SIGTERM to its group, SIGKILL after 30 s)."""
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
        # The VM may outlive the wrapper script briefly.
        deadline = time.monotonic() + 30
        while self.beam_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server = None

    def shutdown(self) -> None:
        self.stop()
        if self.epmd is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.epmd.pid, signal.SIGKILL)
            self.epmd.wait()
            self.epmd = None
        self._drop_watchdog()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitNode]:
    """A running private RabbitMQ node (see the module docs)."""
    pytest.importorskip("pika")
    if not SERVER.exists():
        if os.environ.get("RINGSTAT_REQUIRE_RABBITMQ"):
            pytest.fail(f"{SERVER} missing: `make broker-tools` installs rabbitmq-server")
        pytest.skip("rabbitmq-server is not installed (make broker-tools)")
    node = RabbitNode()
    atexit.register(node.shutdown)
    try:
        node.start()
        yield node
    finally:
        node.shutdown()
        atexit.unregister(node.shutdown)
