"""``python -m ringstat top NAME`` in a real terminal (tmux: keys sent, the
pane captured), and printed once when stdout is a pipe."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import ringstat

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="shared memory is Linux-only")
TMUX = shutil.which("tmux")


@pytest.fixture
def reg() -> Iterator[ringstat.SharedRegistry]:
    r = ringstat.SharedRegistry(f"ringstat-top-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield r
    r.unlink()


def test_top_once_through_a_pipe(reg: ringstat.SharedRegistry) -> None:
    reg.counter("requests", {"path": "/"}).inc(5)
    reg.gauge("busy").set(3)
    reg.histogram("latency_us", max_value=1000).record(7)
    out = subprocess.run(
        [sys.executable, "-m", "ringstat", "top", reg.name or "", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "\x1b[" not in out
    assert "requests{path=/} counter 5" in out, out
    assert "busy{} gauge 3" in out, out
    assert "latency_us{} histogram n=1" in out, out


def test_top_of_a_missing_registry_fails_clearly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ringstat", "top", f"ringstat-none-{uuid.uuid4().hex}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("ringstat top:"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(TMUX is None, reason="needs tmux for a real terminal")
@pytest.mark.timeout(120)
def test_top_in_a_real_terminal(tmp_path: Path, reg: ringstat.SharedRegistry) -> None:
    # top in a tmux pane (a real pseudo-terminal): the table shows writes
    # made after it started, is redrawn in place, and q quits with status 0.
    pytest.importorskip("rich", reason='the terminal view needs rich: pip install "ringstat[demo]"')
    assert TMUX is not None
    requests = reg.counter("requests")
    requests.inc(5)
    socket = f"ringstat-top-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    done, tmp = tmp_path / "exit-status", tmp_path / "exit-status.tmp"
    command = (
        f"{shlex.quote(sys.executable)} -m ringstat top {shlex.quote(reg.name or '')} "
        f"--interval 0.2; echo $? > {shlex.quote(str(tmp))}; "
        f"mv {shlex.quote(str(tmp))} {shlex.quote(str(done))}; sleep 60"
    )
    tmux = [TMUX, "-L", socket, "-f", os.devnull]

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=30, check=True
        ).stdout

    def wait_for(text: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            s = screen()
            if text in s:
                return s
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never shown:\n{screen()}")

    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "120", "-y", "30", command],
        check=True,
        timeout=30,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        first = wait_for("│ requests")
        assert "12,345" not in first, first
        requests.inc(12_340)
        live = wait_for("12,345")
        assert live.count("ringstat top") == 1, live  # redrawn in place
        subprocess.run([*tmux, "send-keys", "q"], check=True, timeout=30)
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.exists(), screen()
        final = screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30, check=False)
    assert done.read_text().strip() == "0", final
    assert final.count("ringstat top") == 1, final
