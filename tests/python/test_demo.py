"""The main job, ``python -m ringstat demo``, run as a user runs it: in a
subprocess, without a terminal. No timing assertions: only generous bounds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

import ringstat.demo

try:
    import numpy  # noqa: F401

    HAS_NUMPY = True
except ImportError:
    HAS_NUMPY = False


def run_demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringstat", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_snapshot(doc: dict[str, Any]) -> None:
    assert doc["logins"] > 0
    assert 0 < doc["registrations"] <= doc["logins"]
    assert doc["logins_per_second"] > 0
    assert 0 <= doc["online_now"] <= doc["logins"]
    # Every user registered once; HyperLogLog is within a few percent.
    assert abs(doc["distinct_users"] - doc["registrations"]) <= 0.1 * doc["registrations"] + 10
    ev = doc["events"]
    assert ev["received"] == ev["applied"] > 0
    assert ev["dropped"] == ev["rejected"] == ev["queue_depth"] == 0
    if doc["sessions_completed"]:
        q = doc["online_time_ms"]
        assert 0 <= q["p50"] <= q["p90"] <= q["p99"]
    names = {m["name"] for m in doc["registry"]["metrics"]}
    assert {"logins", "registrations", "online_open", "users_distinct"} <= names


def test_demo_json() -> None:
    proc = run_demo("--seconds", "1", "--json", "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["threads"] == 2
    assert doc["interrupted"] is False
    check_snapshot(doc)


@pytest.mark.skipif(not HAS_NUMPY, reason="--batch needs numpy")
def test_demo_batch_json() -> None:
    proc = run_demo("--seconds", "1", "--json", "--batch")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["batch"] is True
    check_snapshot(doc)


def _number(line: str, label: str) -> float:
    """The number after ``label`` in a line of the demo's output."""
    found = re.search(re.escape(label) + r"\s+([\d,.]+)", line)
    assert found, (label, line)
    return float(found.group(1).replace(",", ""))


def test_demo_live_view_without_a_terminal() -> None:
    proc = run_demo("--seconds", "1.5", "--rate", "20000")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b[" not in out  # no ANSI escapes when stdout is not a TTY
    lines = out.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("ringstat demo summary")]
    assert len(at) == 1, out
    # Content and order, not how many refreshes fit in the run (that depends
    # on the machine): one plain line per refresh (the first comes half-way
    # through), then the summary, last.
    live, summary = lines[: at[0]], "\n".join(lines[at[0] :])
    live = [line for line in live if line]
    assert live, out
    for line in live:
        assert line.startswith("ringstat demo "), line
        assert " | logins total " in line, line
        assert " | events applied " in line, line
    # Elapsed time and counters never go backwards from one refresh to the
    # next, nor from the last refresh to the summary.
    elapsed = [_number(line, "ringstat demo") for line in live]
    logins = [_number(line, "logins total") for line in live]
    assert elapsed == sorted(elapsed)
    assert logins == sorted(logins)
    assert _number(summary, "\n  logins") >= logins[-1]
    assert "online time p50/p90/p99" in summary


def test_demo_help() -> None:
    proc = run_demo("--help")
    assert proc.returncode == 0
    for flag in ("--seconds", "--threads", "--rate", "--batch", "--json", "--no-live"):
        assert flag in proc.stdout
    top = subprocess.run(
        [sys.executable, "-m", "ringstat", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert top.returncode == 0
    assert "demo" in top.stdout


def test_demo_bad_arguments() -> None:
    proc = run_demo("--seconds", "-1")
    assert proc.returncode == 2
    assert "--seconds" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT with os.kill (POSIX)")
def test_demo_sigint_stops_with_a_summary() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringstat", "demo", "--seconds", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first live line: running
        assert first.startswith("ringstat demo"), first
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "ringstat demo summary" in out
    assert "interrupted" in out
    assert "Traceback" not in err


def test_demo_in_process_render() -> None:
    opts = ringstat.demo.Options(seconds=0.3, threads=1, live=False)
    import io

    buf = io.StringIO()
    assert ringstat.demo.run(opts, buf) == 0
    assert "ringstat demo summary" in buf.getvalue()
