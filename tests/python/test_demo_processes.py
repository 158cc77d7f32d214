"""``python -m ringstat demo --processes N``: producer processes feed one
aggregating pipeline through a shared-memory queue; the summary's totals
are exactly what the producers sent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shared queues need Linux"),
    pytest.mark.timeout(180),
]


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringstat", "demo", *args],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def test_demo_processes_totals_are_exact() -> None:
    proc = _demo("--processes", "2", "--seconds", "1.5", "--rate", "4000", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["processes"] == 2
    assert not doc["interrupted"]
    sent = doc["sent"]
    assert sent["events"] > 0
    # Every event sent was applied once: none lost, none twice.
    assert doc["feed"]["events"] == sent["events"]
    assert doc["events"]["applied"] == doc["events"]["received"] == sent["events"]
    assert doc["logins"] == sent["logins"]
    assert doc["registrations"] == sent["registrations"]
    assert doc["feed"]["bad_frames"] == doc["lost_frames"] == 0
    assert doc["distinct_users"] > 0


def test_demo_processes_summary() -> None:
    proc = _demo("--processes", "1", "--seconds", "1", "--rate", "1000", "--no-live")
    assert proc.returncode == 0, proc.stderr
    assert "ringstat demo summary" in proc.stdout
    assert "from 1 producer processes through a shared queue" in proc.stdout


def test_demo_processes_and_broker_exclude_each_other() -> None:
    proc = _demo("--processes", "2", "--broker", "amqp://127.0.0.1")
    assert proc.returncode == 2
    assert "--processes" in proc.stderr
    proc = _demo("--processes", "0")
    assert proc.returncode == 2
