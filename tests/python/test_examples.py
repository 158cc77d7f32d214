"""Every example in examples/ runs, briefly, as a user would run it, and the
README lists each one. No timing assertions."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# How each Python example is run in the test (short arguments), and what it needs.
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "web_service.py": (["--self-test"], []),
    "fastapi_service.py": (["--self-test"], ["fastapi", "uvicorn", "httpx"]),
    "producer_consumer.py": (["--items", "20000", "--producers", "2", "--consumers", "3"], []),
    "stats_to_pandas.py": (["--seconds", "0.5", "--csv", "stats.csv"], ["pandas"]),
}


def run_example(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name), *args],
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_example_is_tested_and_listed_in_the_readme() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(RUNS)
    readme = (ROOT / "README.md").read_text()
    for name in [*scripts, *(p.name for p in EXAMPLES.glob("*.rs"))]:
        assert f"examples/{name}" in readme, name


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs(name: str, tmp_path: Path) -> None:
    args, needs = RUNS[name]
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    proc = run_example(name, args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    if name == "web_service.py":
        # 4 clients x 25 users: each registers and logs in, 4 in 5 log out.
        assert 'events_total{kind="login"} 100' in out, out
        assert 'events_total{kind="logout"} 80' in out, out
        assert "users_online 20" in out, out
        assert re.search(r"^request_us_count 280$", out, re.MULTILINE), out
    elif name == "fastapi_service.py":
        # 4 clients x 25 users: each registers, logs in and is looked up, 4 in 5
        # log out; one logout of a stranger is refused. /metrics is not counted.
        for line in (
            'http_requests_total{method="POST",route="/login",status="200"} 100',
            'http_requests_total{method="POST",route="/logout",status="200"} 80',
            'http_requests_total{method="POST",route="/logout",status="409"} 1',
            'http_requests_total{method="GET",route="/users/{user}",status="200"} 100',
            'http_request_duration_seconds_count{method="POST",route="/register"} 100',
            "http_requests_in_progress 0",
            'user_events_total{kind="logout"} 80',
            "users_online 20",
            "session_seconds_count 80",
        ):
            assert re.search(f"^{re.escape(line)}$", out, re.MULTILINE), line
        assert "/metrics" not in out
    elif name == "producer_consumer.py":
        assert "moved 40,000 items" in out, out
        assert "every item arrived exactly once" in out, out
    else:
        assert "snapshot:" in out, out
        assert "logins per second over time" in out, out
        assert (
            (tmp_path / "stats.csv").read_text().startswith("timestamp,metric,labels,field,value")
        )


CARGO = shutil.which("cargo")


@pytest.mark.skipif(CARGO is None, reason="needs cargo")
@pytest.mark.timeout(600)
def test_rust_example_help() -> None:
    # `-- --help` printed "--help needs a value" and failed.
    assert CARGO is not None
    cmd = [CARGO, "run", "--quiet", "--example", "user_activity", "--"]
    proc = subprocess.run(
        [*cmd, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: cargo run --release --example user_activity" in proc.stdout
    for flag in ("--seconds", "--threads", "--help"):
        assert flag in proc.stdout
    bad = subprocess.run(
        [*cmd, "--bogus"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert bad.returncode == 2
    assert "unknown argument --bogus" in bad.stderr
    assert "Usage:" in bad.stderr
