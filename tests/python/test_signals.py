"""Ctrl-C interrupts blocked calls: a real SIGINT sent to a child process
blocked in get(), put(), get_many(), put_many() or join() raises
KeyboardInterrupt there. No tight timing: only generous upper bounds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import default_sigint

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT with os.kill (POSIX)")

SETUP = {
    "get": "q = ringstat.Queue(1)",
    "put": "q = ringstat.Queue(1); q.put(0)",
    "get_many": "q = ringstat.Queue(1)",
    "put_many": "q = ringstat.Queue(1)",
    "put_many_endless": "import itertools; q = ringstat.Queue()",
    "join": "q = ringstat.Queue(1); q.put(0)",
    "get_timeout": "q = ringstat.Queue(1)",
}
CALL = {
    "get": "q.get()",
    "put": "q.put(1)",
    "get_many": "q.get_many(10)",
    "put_many": "q.put_many(range(10))",
    # Never waits (unbounded), so only the per-chunk signal check stops it.
    "put_many_endless": "q.put_many(itertools.repeat(None))",
    "join": "q.join()",
    "get_timeout": "q.get(timeout=3600)",
}


@pytest.mark.parametrize("op", sorted(CALL))
def test_sigint_interrupts_blocked_call(op: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import ringstat
        {SETUP[op]}
        try:
            print("ready", flush=True)
            {CALL[op]}
        except KeyboardInterrupt as e:
            print("interrupted", flush=True)
            print("unfinished", q.unfinished_tasks, "qsize", q.qsize(), flush=True)
            print("items_put", getattr(e, "items_put", "-"), flush=True)
            sys.exit(0)
        print("returned", flush=True)
        sys.exit(1)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # Give the call time to block (with the GIL released). If it has not
        # yet, the SIGINT still surfaces as KeyboardInterrupt inside the try.
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "interrupted"
    # An interrupted put leaves its item neither in the queue nor counted for
    # join(); put_many keeps the one item that fitted (if it got that far).
    if op == "put_many_endless":
        # Everything taken was put, counted, and reported on the exception.
        n = lines[2].split()[1]
        expected = {f"unfinished {n} qsize {n}"}
    elif op == "put_many":
        expected = {"unfinished 0 qsize 0", "unfinished 1 qsize 1"}
    elif op.startswith("get"):
        expected = {"unfinished 0 qsize 0"}
    else:  # put, join: the item put in the setup
        expected = {"unfinished 1 qsize 1"}
    assert lines[1] in expected
