"""The README's code runs as written: every Python block as a script in a
subprocess, and every Rust block is a complete program (``fn main``) that
can be pasted into ``main.rs`` (``cargo test --doc`` compiles and runs them
through ``src/lib.rs``'s ``ReadmeDoctests``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codeblocks import ROOT, block_id, blocks, run_python_block

README = ROOT / "README.md"
PYTHON = blocks(README, "python")
RUST = blocks(README, "rust")


def test_readme_has_code_blocks() -> None:
    assert len(PYTHON) >= 2
    assert len(RUST) >= 2


@pytest.mark.parametrize("code", PYTHON, ids=[block_id(c) for c in PYTHON])
def test_readme_python_block_runs(
    code: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if "ringstat.broker" in code:
        # A real broker: the session's private node (not started without pika).
        pytest.importorskip("pika")
        env["RINGSTAT_AMQP_URL"] = request.getfixturevalue("rabbitmq").url
    run_python_block(code, tmp_path, env)


@pytest.mark.parametrize("code", RUST, ids=[block_id(c) for c in RUST])
def test_readme_rust_block_is_a_complete_program(code: str) -> None:
    # Doctest fragments (statements at top level, hidden `# ` lines) compile
    # under rustdoc but not when pasted into main.rs.
    assert re.search(r"^fn main\(\)", code, re.MULTILINE), code
    assert not re.search(r"^# ", code, re.MULTILINE), code
    outside = re.sub(r"^fn main\(\).*?^\}$", "", code, flags=re.MULTILINE | re.DOTALL)
    for line in outside.splitlines():
        assert not line.strip() or line.startswith("use "), line
