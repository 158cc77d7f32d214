"""``python -m ringstat demo --broker URL`` against the session's RabbitMQ
node: producer processes ship, one aggregator applies every event."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kafka_node import KafkaNode
from rabbitmq_node import RabbitNode

# The first test to ask for the session's node waits for it to start.
pytestmark = pytest.mark.timeout(300)


def test_demo_through_broker(rabbitmq: RabbitNode) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ringstat", "demo", "--broker", rabbitmq.url),
            *("--producers", "2", "--seconds", "1.5", "--rate", "2000", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["producers"] == 2
    assert doc["shipped"] > 0
    # Every event shipped was applied once, none twice.
    assert doc["consumer"]["events"] == doc["shipped"]
    assert doc["events"]["applied"] == doc["shipped"]
    assert doc["logins"] > 0
    assert doc["distinct_users"] > 0


def test_demo_broker_needs_a_url() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ringstat", "demo", "--broker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--broker" in proc.stderr


def test_demo_through_broker_summary(rabbitmq: RabbitNode) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ringstat", "demo", "--broker", rabbitmq.url),
            *("--producers", "1", "--seconds", "1", "--rate", "1000", "--no-live"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ringstat demo summary" in proc.stdout
    assert "from 1 producer processes" in proc.stdout


def test_demo_through_kafka(kafka: KafkaNode) -> None:
    pytest.importorskip("confluent_kafka")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ringstat", "demo", "--broker", kafka.url),
            *("--producers", "2", "--seconds", "1.5", "--rate", "2000", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["shipped"] > 0
    assert doc["consumer"]["events"] == doc["shipped"]
    assert doc["events"]["applied"] == doc["shipped"]
