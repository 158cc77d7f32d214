"""The property-based fuzz test of the whole native surface
(``fuzz_surface.py``), run in a subprocess: a crash (SIGSEGV, SIGABRT) or a
hang then fails this test instead of killing pytest, and the subprocess's
output is searched for Rust panics (``PanicException``, ``panicked at``),
including those of native threads that Python never sees.

Sized to take well under a minute (15-50 s here, release build);
``RINGSTAT_FUZZ_EXAMPLES`` (examples per class, default 30) scales it.
``python tests/python/fuzz_surface.py --help``: a deep run that gets past
crashes and lists every distinct failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLES = int(os.environ.get("RINGSTAT_FUZZ_EXAMPLES", "30"))
# Generous bounds (2 shared vCPUs): the whole run takes 15-50 s at 30.
PER_TEST_LIMIT = 60 + 4 * EXAMPLES
LIMIT = 240 + 12 * EXAMPLES
# A cap on the address space of the subprocess, so a bad capacity that the
# library tries to honour fails to allocate instead of eating the machine.
MEMORY_LIMIT = 8 << 30
PANIC_MARKERS = ("PanicException", "panicked at", "Fatal Python error")


def problems(returncode: int | None, output: str) -> list[str]:
    """What went wrong in a fuzz subprocess that exited with ``returncode``
    (``None``: killed after a timeout) and printed ``output``."""
    found = []
    if returncode is None:
        found.append("hang: the subprocess did not finish in time")
    elif returncode < 0:
        found.append(f"crash: killed by {signal.Signals(-returncode).name}")
    elif returncode != 0:
        found.append(f"failures (pytest exit status {returncode})")
    found += [f"the output has {m!r}" for m in PANIC_MARKERS if m in output]
    return found


def last_lines(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8").splitlines()[-n:])
    except OSError:
        return "(no journal)"


def run_inner(tmp_path: Path, *pytest_args: str) -> tuple[list[str], str]:
    """Runs ``fuzz_surface.py`` under pytest in a subprocess; returns the
    problems found and a report (the last calls made, the output's tail)."""
    journal = tmp_path / "journal"
    env = dict(os.environ)
    env.pop("RINGSTAT_FUZZ_COLLECT", None)  # failures must fail the run
    env.update(
        RINGSTAT_FUZZ_JOURNAL=str(journal),
        RINGSTAT_FUZZ_MEMORY_LIMIT=str(MEMORY_LIMIT),
        RINGSTAT_FUZZ_EXAMPLES=str(EXAMPLES),
        # Hypothesis writes nothing into the repository.
        HYPOTHESIS_STORAGE_DIRECTORY=str(tmp_path / "hypothesis"),
        PYTHONFAULTHANDLER="1",
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["-o", f"timeout={PER_TEST_LIMIT}", str(HERE / "fuzz_surface.py"), *pytest_args]
    returncode: int | None
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT, check=False
        )
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        returncode, output = None, _text(e.stdout) + _text(e.stderr)
    found = problems(returncode, output)
    report = "\n".join(
        [
            *found,
            "-- the last calls made (the crash or hang is in the last one):",
            last_lines(journal, 8),
            "-- the end of the output:",
            output[-12_000:],
        ]
    )
    return found, report


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


@pytest.mark.timeout(LIMIT + 60)
def test_fuzz_whole_surface(tmp_path: Path) -> None:
    """Every public method, property and constructor, with good and bad
    arguments: clean exceptions only, no panic, no crash, no hang, no
    reference leaked."""
    pytest.importorskip("hypothesis")
    found, report = run_inner(tmp_path)
    assert not found, report


def test_every_class_is_fuzzed() -> None:
    pytest.importorskip("hypothesis")
    import fuzz_surface as fs

    classes = set(fs.public_classes())
    assert classes - fs.EXCEPTIONS == set(fs.FACTORIES)
    assert {"Queue", "Pipeline", "Recorder", "SessionsHandle"} <= set(fs.FACTORIES)
    for name in fs.FACTORIES:
        assert any(op.startswith("call:") for op in fs.operations_of(fs.public_classes()[name]))


def test_crashes_panics_and_hangs_are_detected() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; os.abort()"], capture_output=True, check=False
    )
    assert problems(proc.returncode, "") == ["crash: killed by SIGABRT"]
    assert problems(0, "thread 'ringstat-default-0' panicked at src/pipeline/worker.rs:1:1")
    assert problems(0, "pyo3_runtime.PanicException: boom")
    assert problems(None, "")
    assert problems(0, "34 passed") == []


def test_checks_of_one_call_can_fail() -> None:
    pytest.importorskip("hypothesis")
    import fuzz_surface as fs

    ctx = fs.Ctx(None, "self-test")
    panic_type = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})

    def panics() -> None:
        raise panic_type("boom")

    def no_message() -> None:
        raise ValueError

    kept: list[object] = []
    fs.invoke(ctx, "panics()", panics)
    fs.invoke(ctx, "no_message()", no_message)
    fs.invoke(ctx, "fine()", lambda: 1)
    fs.run_call(ctx, None, fs.Call("Self", "keeps", [fs.New()], {}), kept.append)
    kinds = [f.split(":")[0] for f in ctx.failures]
    assert kinds == ["PanicException", "empty message", "refcount"]
    kept.clear()
    fs.check_released(ctx)
    assert len(ctx.failures) == 3
