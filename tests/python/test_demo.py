"""The main job, ``python -m ringstat demo``, run as a user runs it: in a
subprocess, without a terminal. No timing assertions: only generous bounds."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import ringstat.demo
from conftest import default_sigint

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
    # on the machine): one short line per refresh (the first comes half-way
    # through), then the summary, last.
    live, summary = lines[: at[0]], "\n".join(lines[at[0] :])
    live = [line for line in live if line]
    assert live, out
    for line in live:
        assert line.startswith("["), line
        assert len(line) <= 160, line  # it was one 414-character line
        for label in ("] logins", "  logins/s", "  online", "  users", "  events/s", "  dropped"):
            assert label + " " in line, (label, line)
    # Elapsed time and counters never go backwards from one refresh to the
    # next, nor from the last refresh to the summary.
    elapsed = [_number(line, "[") for line in live]
    logins = [_number(line, "] logins") for line in live]
    assert elapsed == sorted(elapsed)
    assert logins == sorted(logins)
    assert _number(summary, "\n  logins") >= logins[-1]
    assert "online time p50/p90/p99" in summary
    # Within the first minute, logins per second is the logins so far over
    # the time so far (it showed the total itself during the first second).
    for t, n, line in zip(elapsed, logins, live):
        per_s = _number(line, "logins/s")
        assert per_s * t == pytest.approx(n, rel=0.3, abs=200), line


def test_per_second_before_the_window_fills() -> None:
    rate = {"total": 300, "in_window": 300, "per_second": 300.0, "window": 60.0}
    # The rate divides by at least one 1-second bucket: 300/s after 0.5 s is wrong.
    assert ringstat.demo.per_second(rate, 0.5) == 600.0
    assert ringstat.demo.per_second(rate, 30.0) == 10.0
    full = {**rate, "per_second": 5.0}
    assert ringstat.demo.per_second(full, 61.0) == 5.0


@pytest.mark.parametrize("batch", [False, True], ids=["events", "batch"])
def test_demo_pacer_counts_what_the_summary_counts(
    monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    # --rate paces by what the simulators account for: exactly the logins.
    if batch and not HAS_NUMPY:
        pytest.skip("--batch needs numpy")
    accounted: list[int] = []
    account = ringstat.demo.Pacer.account

    def spy(self: ringstat.demo.Pacer, logins: int) -> None:
        accounted.append(logins)
        account(self, logins)

    monkeypatch.setattr(ringstat.demo.Pacer, "account", spy)
    out = io.StringIO()
    opts = ringstat.demo.Options(seconds=0.5, threads=2, batch=batch, json=True)
    assert ringstat.demo.run(opts, out) == 0
    doc = json.loads(out.getvalue())
    assert doc["logins"] > 0
    assert sum(accounted) == doc["logins"]


def test_demo_rate_is_logins_per_second() -> None:
    # --rate paces what the summary reports as logins/s (it paced pipeline
    # events, about five per login, so logins came out near rate / 5).
    rate = 2000
    proc = run_demo("--seconds", "2", "--json", "--rate", str(rate), "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    per_s = doc["logins"] / doc["seconds"]
    assert 0.5 * rate < per_s < 1.25 * rate, doc["logins"]
    assert 0.5 * rate < doc["logins_per_second"] < 1.25 * rate, doc["logins_per_second"]


@pytest.mark.skipif(not HAS_NUMPY, reason="--batch needs numpy")
def test_demo_batch_rate_is_logins_per_second() -> None:
    rate = 4000
    proc = run_demo("--seconds", "2", "--json", "--rate", str(rate), "--batch")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    per_s = doc["logins"] / doc["seconds"]
    assert 0.5 * rate < per_s < 1.25 * rate, doc["logins"]


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
    with subprocess.Popen(
        [sys.executable, "-m", "ringstat", "demo", "--seconds", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the first live line: running
            assert first.startswith("["), first
            time.sleep(0.3)
            os.kill(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert "ringstat demo summary" in out
    assert "interrupted" in out
    assert "Traceback" not in err


def test_demo_in_process_render() -> None:
    opts = ringstat.demo.Options(seconds=0.3, threads=1, live=False)
    buf = io.StringIO()
    assert ringstat.demo.run(opts, buf) == 0
    assert "ringstat demo summary" in buf.getvalue()


class _Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_demo_terminal_view_is_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich", reason='the terminal view needs rich: pip install "ringstat[demo]"')
    monkeypatch.setenv("TERM", "xterm-256color")  # not a "dumb" terminal, whatever CI has
    out = _Terminal()
    opts = ringstat.demo.Options(seconds=1.2, threads=1, rate=5000)
    assert ringstat.demo.run(opts, out) == 0
    text = out.getvalue()
    assert "\x1b[" in text  # rich redraws in place
    assert "logins/s (last minute)" in text
    assert "┃" in text or "│" in text  # a rich table
    assert "ringstat demo summary" in text


def test_demo_terminal_without_rich_prints_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # any import of rich raises ImportError
    monkeypatch.setitem(sys.modules, "rich.live", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    out = _Terminal()
    opts = ringstat.demo.Options(seconds=1.2, threads=1, rate=5000)
    assert ringstat.demo.run(opts, out) == 0
    text = out.getvalue()
    assert "\x1b[" not in text
    live = [line for line in text.splitlines() if line.startswith("[")]
    assert live, text
    assert all("logins/s" in line for line in live)


TMUX = shutil.which("tmux")


@pytest.mark.skipif(TMUX is None, reason="needs tmux for a real terminal")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("interrupt", [False, True], ids=["to-the-end", "ctrl-c"])
def test_demo_in_a_real_terminal(tmp_path: Path, interrupt: bool) -> None:
    # The demo in a tmux pane (a real pseudo-terminal, 100x40): the rich
    # table is redrawn in place (its rows appear once on the screen, however
    # many refreshes), then the summary follows it, also after Ctrl-C.
    pytest.importorskip("rich", reason='the terminal view needs rich: pip install "ringstat[demo]"')
    assert TMUX is not None
    # One server per test: a server just killed may still hold a reused name.
    socket = f"ringstat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    done, tmp = tmp_path / "exit-status", tmp_path / "exit-status.tmp"
    seconds = 600 if interrupt else 3
    command = (
        f"{shlex.quote(sys.executable)} -m ringstat demo --seconds {seconds} --threads 2 "
        f"--rate 5000; echo $? > {shlex.quote(str(tmp))}; "
        f"mv {shlex.quote(str(tmp))} {shlex.quote(str(done))}; sleep 60"
    )
    tmux = [TMUX, "-L", socket, "-f", os.devnull]

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True, timeout=30, check=True
        ).stdout

    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "100", "-y", "40", command],
        check=True,
        timeout=30,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        screens: list[str] = []
        sent_ctrl_c = False
        deadline = time.monotonic() + 90
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.3)
            screens.append(screen())
            if interrupt and not sent_ctrl_c and "logins total" in screens[-1]:
                subprocess.run([*tmux, "send-keys", "C-c"], check=True, timeout=30)
                sent_ctrl_c = True
        assert done.exists(), screens[-1:]
        final = screen()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30, check=False)
    assert sent_ctrl_c == interrupt
    assert done.read_text().strip() == ("130" if interrupt else "0"), final
    assert ("interrupted" in final) == interrupt, final
    # While it ran, the screen held the live table and no summary.
    running = [s for s in screens if "logins total" in s and "summary" not in s]
    assert running, screens
    assert "│ logins total" in running[-1], running[-1]  # a rich table
    # At the end: the last table, once, then the summary below it.
    assert final.count("logins total") == 1, final
    assert final.count("events applied") == 2, final  # the table's row and the summary's
    assert final.index("logins total") < final.index("ringstat demo summary"), final
