"""Fenced code blocks of Markdown files, run as tests: the README's
(``test_readme.py``) and the documentation site's (``test_docs.py``)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(path: Path, lang: str) -> list[str]:
    """The bodies of the ```lang blocks of the Markdown file ``path``."""
    return [code for tag, code in FENCE.findall(path.read_text()) if tag == lang]


def block_id(code: str) -> str:
    """A test id: the block's first line that is not an import."""
    first = next(line for line in code.splitlines() if line.strip() and "import" not in line)
    return first.strip()[:40]


def optional_needs(code: str) -> list[str]:
    """The optional packages a block needs (it is skipped without them)."""
    needs = []
    if "to_pandas" in code or "ringstat.plot" in code:
        needs.append("pandas")
    if "ringstat.plot" in code:
        needs.append("matplotlib")
    if "ringstat.jupyter" in code:
        needs.append("IPython")
    if "prometheus_client" in code:
        needs.append("prometheus_client")
    if "numpy" in code:
        needs.append("numpy")
    if "fastapi" in code:
        needs += ["fastapi", "httpx"]
    if "flask" in code:
        needs.append("flask")
    if "starlette" in code:
        needs += ["starlette", "httpx"]
    if "KafkaShipper" in code or "KafkaConsumer" in code:
        needs.append("confluent_kafka")
    elif "ringstat.broker" in code:
        needs.append("pika")
    return needs


def run_python_block(code: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """Run ``code`` as a script in a subprocess (warnings are errors, cwd
    ``tmp_path``, ``env`` added to the environment); it must exit 0, print
    what it shows, and write the PNGs it saves."""
    for module in optional_needs(code):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp_path), **(env or {})}
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
    assert proc.stdout.strip(), "an example should print what it shows"
    for png in re.findall(r'savefig\("([^"]+)"\)', code):
        assert (tmp_path / png).stat().st_size > 1024
