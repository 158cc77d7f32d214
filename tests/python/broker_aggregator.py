"""An aggregator process for the kill -9 tests (test_broker.py, test_kafka.py):
reads a RabbitMQ stream (an amqp:// URL) or a Kafka topic (a kafka:// URL)
from its first offset into a fresh pipeline, writes its
progress (frames applied) after each frame, and once ``events`` events are
applied and ``messages`` stream messages read (applied or dropped as
duplicates: the retried frame is the stream's last message) writes the
statistics as JSON and exits. With CHECKPOINT (a file) it checkpoints every 5
frames and resumes from the checkpoint instead of replaying the stream from
the start (the counts of frames and duplicates are in the checkpoint too).

    python broker_aggregator.py URL QUEUE EVENTS MESSAGES PROGRESS_FILE RESULT_FILE [CHECKPOINT]

For Kafka, the consumer group is named after the result file, so two
aggregators of the same topic (killed and never killed) do not share offsets.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import ringstat


def main() -> None:
    url, queue, events, messages, progress, result = sys.argv[1:7]
    checkpoint = sys.argv[7] if len(sys.argv) > 7 else None
    p = ringstat.Pipeline(ringstat.Registry())
    p.histogram("latency_us", max_value=1000)
    frames = 0

    def on_frame(_producer: int, _seq: int, _n: int) -> None:
        nonlocal frames
        frames += 1
        tmp = Path(progress + ".tmp")
        tmp.write_text(str(frames))
        os.replace(tmp, progress)
        time.sleep(0.005)  # a slow aggregator, so the test kills it mid-stream

    # Each transport's client only where it is used (a venv may have one).
    kafka = url.startswith("kafka://")
    c: Any
    if kafka:
        from ringstat.broker import KafkaConsumer

        c = KafkaConsumer(
            url,
            p,
            queue,
            group="aggregator-" + Path(result).stem,
            start="first",
            on_frame=on_frame,
            checkpoint=checkpoint,
            checkpoint_every=5,
        )
    else:
        from ringstat.broker import Consumer

        c = Consumer(
            url,
            p,
            queue,
            stream_offset="first",
            prefetch=4,
            on_frame=on_frame,
            checkpoint=checkpoint,
            checkpoint_every=5,
        )
    c.start()
    while not c.wait_events(int(events), 1.0):
        pass
    while (st := c.stats())["frames"] + st["duplicates"] < int(messages):
        time.sleep(0.02)
    c.stop()
    p.flush()
    reg = p.registry
    h = reg.histogram("latency_us", max_value=1000)
    out: dict[str, object] = {
        "logins": reg.counter("logins").value,
        "online_open": reg.gauge("online_open").value,
        "latency_count": h.count,
        "latency_sum": int(h.sum),
        "users": p.distinct_count("users"),
        "duplicates": c.stats()["duplicates"],
    }
    if checkpoint is not None:
        anomalies = reg.counter("online_anomalies_total", {"kind": "end_without_start"})
        out["completed"] = reg.counter("online_completed_total").value
        out["end_without_start"] = anomalies.value
        restored = c.restored_positions if kafka else c.restored_offset
        out["restored_offset"] = restored
        out["checkpoints"] = c.stats()["checkpoints"]
    Path(result).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
