"""The README's code runs as written: every Python block as a script in a
subprocess, and every Rust block is a complete program (``fn main``) that
can be pasted into ``main.rs`` (``cargo test --doc`` compiles and runs them
through ``src/lib.rs``'s ``ReadmeDoctests``)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [code for tag, code in FENCE.findall(README.read_text()) if tag == lang]


def _id(code: str) -> str:
    first = next(line for line in code.splitlines() if line.strip() and "import" not in line)
    return first.strip()[:40]


PYTHON = blocks("python")


def optional_needs(code: str) -> list[str]:
    """The optional packages a block needs (it is skipped without them)."""
    needs = []
    if "to_pandas" in code or "ringstat.plot" in code:
        needs.append("pandas")
    if "ringstat.plot" in code:
        needs.append("matplotlib")
    if "numpy" in code:
        needs.append("numpy")
    if "ringstat.broker" in code:
        needs.append("pika")
    return needs


def test_readme_has_code_blocks() -> None:
    assert len(PYTHON) >= 2
    assert len(blocks("rust")) >= 2


@pytest.mark.parametrize("code", PYTHON, ids=[_id(c) for c in PYTHON])
def test_readme_python_block_runs(
    code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for module in optional_needs(code):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp_path)}
    if "ringstat.broker" in code:
        # A real broker: the session's private node.
        env["RINGSTAT_AMQP_URL"] = request.getfixturevalue("rabbitmq").url
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "a README example should print what it shows"
    for png in re.findall(r'savefig\("([^"]+)"\)', code):
        assert (tmp_path / png).stat().st_size > 1024


@pytest.mark.parametrize("code", blocks("rust"), ids=[_id(c) for c in blocks("rust")])
def test_readme_rust_block_is_a_complete_program(code: str) -> None:
    # Doctest fragments (statements at top level, hidden `# ` lines) compile
    # under rustdoc but not when pasted into main.rs.
    assert re.search(r"^fn main\(\)", code, re.MULTILINE), code
    assert not re.search(r"^# ", code, re.MULTILINE), code
    outside = re.sub(r"^fn main\(\).*?^\}$", "", code, flags=re.MULTILINE | re.DOTALL)
    for line in outside.splitlines():
        assert not line.strip() or line.startswith("use "), line
