"""ringstat.broker's Kafka transport against a real Kafka-protocol broker
(tansu, kafka_node.py): shipper and consumer end to end, duplicates, bad
frames, the broker restarted mid-stream, the aggregator killed repeatedly
and resumed from its checkpoint, a consumer slower than the producer, and
the overflow policy."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ck = pytest.importorskip("confluent_kafka")

import ringstat  # noqa: E402
from broker_workload import USERS, aggregator, expected, observed, workload  # noqa: E402
from kafka_node import KafkaNode  # noqa: E402
from ringstat._ringstat import encode_frame  # noqa: E402
from ringstat.broker import KafkaConsumer, KafkaShipper  # noqa: E402

# The first test to ask for the session's broker waits for it to start.
pytestmark = pytest.mark.timeout(300)


def topic() -> str:
    return "test." + uuid.uuid4().hex[:12]


def produce_raw(url: str, t: str, bodies: list[bytes]) -> None:
    """Messages written by a plain client, acks=all, in order (the topic made
    first, as the shipper does: tansu creates none by itself)."""
    from ringstat.broker._kafka import _ensure_topic

    servers = url[len("kafka://") :]
    _ensure_topic({"bootstrap.servers": servers}, t, 1, timeout=30)
    p = ck.Producer({"bootstrap.servers": servers, "acks": "all"})
    for b in bodies:
        p.produce(t, b)
        p.flush(30)
    assert len(p) == 0


def test_smoke_end_to_end(kafka: KafkaNode) -> None:
    t = topic()
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t).start()
    with KafkaShipper(kafka.url, t, batch_size=256) as s:
        workload(s, 0, USERS)
        assert s.flush(60), s.stats()
        st = s.stats()
    assert st["published"] == st["events"] > 0
    assert st["buffered"] == 0
    assert st["in_flight"] == 0
    assert st["frames"] >= st["events"] // 256
    assert c.wait_events(st["events"], 60), c.stats()
    c.stop()
    assert observed(p) == expected(0, USERS)
    assert abs(p.distinct_count("users") - USERS) < USERS * 0.1
    assert c.stats()["duplicates"] == 0
    assert c.stats()["lag"] == 0
    assert "ringstat_shipper_published_total" in s.registry.to_prometheus()
    # Committed after apply: a consumer of the same group starts after the end.
    p2 = aggregator()
    c2 = KafkaConsumer(kafka.url, p2, t).start()
    produce_raw(kafka.url, t, [encode_frame(99, 1, [("count", "logins", 0, 7, 0)])])
    assert c2.wait_events(1, 60)
    c2.stop()
    assert c2.stats()["frames"] == 1
    assert observed(p2)["logins"] == 7


def test_duplicates_applied_once_and_bad_frames_counted(kafka: KafkaNode) -> None:
    t = topic()
    f1 = encode_frame(5, 1, [("count", "logins", 0, 2, 0)])
    f2 = encode_frame(5, 2, [("count", "logins", 0, 3, 0)])
    bad = encode_frame(5, 4, [("count", "logins", 0, 3, 0)])[:-1]  # truncated
    unresolved = encode_frame(5, 3, [("observe", "nope", 0, 1, 0)])
    produce_raw(kafka.url, t, [f1, f1, b"hello", f2, f1, bad, f2, unresolved])
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t, start="first").start()
    deadline = time.monotonic() + 60
    while sum(c.stats()[k] for k in ("frames", "duplicates", "bad_frames")) < 8:
        assert time.monotonic() < deadline, c.stats()
        time.sleep(0.02)
    c.stop()
    assert c.stats() == {
        "frames": 2,
        "events": 2,
        "duplicates": 3,
        "bad_frames": 3,
        "reconnects": 0,
        "lag": 0,
    }
    assert observed(p)["logins"] == 5
    assert c.dedup.floor(5) == 3
    assert c.positions == {0: 8}


def test_broker_restarted_mid_stream(kafka: KafkaNode) -> None:
    """Events sent while the broker is down are buffered, published after it
    is back (the client reconnects), and applied exactly once; the consumer
    goes on from its position."""
    t = topic()
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t, backoff=0.05, max_backoff=0.5).start()
    s = KafkaShipper(kafka.url, t, batch_size=64, backoff=0.05, max_backoff=0.5)
    workload(s, 0, 100)
    assert s.flush(60), s.stats()
    kafka.stop()
    workload(s, 100, 200)  # buffered locally while the broker is down
    assert s.stats()["published"] < s.stats()["events"]
    kafka.start()
    workload(s, 200, USERS)
    assert s.flush(120), s.stats()
    st = s.stats()
    s.close()
    assert st["published"] == st["events"]
    assert st["reconnects"] >= 1
    assert c.wait_events(st["events"], 120), (c.stats(), st)
    c.stop()
    assert observed(p) == expected(0, USERS)
    assert c.stats()["reconnects"] >= 1


def test_slow_consumer_back_pressure(kafka: KafkaNode) -> None:
    """Kafka keeps what nobody reads, so the shipper holds back by itself
    while the consumer group is max_lag messages behind: it is throttled
    (counted), its bounded buffer fills and the producer blocks (counted).
    A slow consumer then catches up, and everything arrives once."""
    t = topic()
    cap, batch, in_flight = 200, 50, 2
    s = KafkaShipper(
        kafka.url,
        t,
        batch_size=batch,
        capacity=cap,
        max_in_flight=in_flight,
        group="slow",
        max_lag=3,
        backoff=0.02,
        max_backoff=0.1,
    )
    n_users = 400
    producer = threading.Thread(target=workload, args=(s, 0, n_users))
    producer.start()
    deadline = time.monotonic() + 60
    while s.stats()["blocked"] == 0 or s.stats()["throttled"] == 0:
        assert time.monotonic() < deadline, s.stats()
        time.sleep(0.02)
    st = s.stats()
    assert st["buffered"] <= cap + in_flight * batch  # the queue plus the frames in flight
    lags: list[int] = []

    def slow(_producer: int, _seq: int, _n: int) -> None:
        lags.append(c.stats()["lag"])
        time.sleep(0.01)

    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t, group="slow", on_frame=slow).start()
    producer.join(120)
    assert not producer.is_alive()
    assert s.flush(120), s.stats()
    st = s.stats()
    s.close()
    assert c.wait_events(st["events"], 120), (c.stats(), st)
    c.stop()
    assert observed(p) == expected(0, n_users)
    assert st["dropped"] == 0
    assert max(lags) >= 1  # the consumer saw itself behind


def test_overflow_drop_newest_is_counted() -> None:
    """No broker at all (a closed port): the buffer fills and every event
    past it is dropped, counted, and reported by the call."""
    s = KafkaShipper(
        "kafka://127.0.0.1:1",
        topic(),
        capacity=10,
        batch_size=4,
        overflow="drop_newest",
        backoff=0.01,
        max_backoff=0.02,
    )
    results = [s.count("c") for _ in range(100)]
    st = s.stats()
    assert results.count(False) == st["dropped"] > 0
    assert st["events"] + st["dropped"] == 100
    assert st["buffered"] == st["events"]  # nothing confirmed
    assert not s.close(timeout=0.2)
    assert s.stats()["published"] == 0


def test_bad_arguments_refused() -> None:
    for url in ("amqp://127.0.0.1:5672/", "kafka://", "kafka://host", "kafka://h:p", "h:9092"):
        with pytest.raises(ValueError, match="kafka://"):
            KafkaShipper(url)
        with pytest.raises(ValueError, match="kafka://"):
            KafkaConsumer(url, aggregator())
    with pytest.raises(ValueError, match="max_lag"):
        KafkaShipper("kafka://127.0.0.1:1", max_lag=3)
    with pytest.raises(ValueError, match="max_in_flight"):
        KafkaShipper("kafka://127.0.0.1:1", max_in_flight=0)
    with pytest.raises(ValueError, match="start"):
        KafkaConsumer("kafka://127.0.0.1:1", aggregator(), start="last")
    s = KafkaShipper("kafka://127.0.0.1:1", topic(), backoff=0.01)
    with pytest.raises(ValueError, match="unknown op"):
        s.send("explode", "c")
    with pytest.raises(TypeError, match="key"):
        s.send("seen", "u", [1])  # type: ignore[arg-type]
    s.close(timeout=0.1)
    assert s.stats()["events"] == 0


def test_first_checkpoint_replays_from_the_first_offsets(kafka: KafkaNode, tmp_path: Path) -> None:
    """A consumer with a checkpoint path and no file yet reads the topic from
    its first offsets, though its group committed past them: its state starts
    empty, and the committed offsets may cover frames whose state died with a
    killed consumer."""
    t = topic()
    with KafkaShipper(kafka.url, t, batch_size=64) as s:
        workload(s, 0, USERS)
        assert s.flush(60), s.stats()
        total = s.stats()["events"]
    # A consumer of the group applies everything and commits it, then dies
    # with its pipeline (no checkpoint).
    first = KafkaConsumer(kafka.url, aggregator(), t, group="g").start()
    assert first.wait_events(total, 60), first.stats()
    first.stop()
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t, group="g", checkpoint=tmp_path / "c.ckpt").start()
    assert not c.restored
    assert c.wait_events(total, 60), c.stats()
    c.stop()
    assert observed(p) == expected(0, USERS)
    assert (tmp_path / "c.ckpt").exists()
    # Restarted from that checkpoint, it reads on from its offsets: nothing twice.
    p2 = aggregator()
    c2 = KafkaConsumer(kafka.url, p2, t, group="g", checkpoint=tmp_path / "c.ckpt").start()
    assert c2.restored
    produce_raw(kafka.url, t, [encode_frame(77, 1, [("count", "logins", 0, 5, 0)])])
    assert c2.wait_events(total + 1, 60), c2.stats()  # its counts are restored too
    c2.stop()
    want = expected(0, USERS)
    want["logins"] += 5
    assert observed(p2) == want


def test_checkpoint_of_another_transport_refused(tmp_path: Path) -> None:
    """A RabbitMQ stream checkpoint (an int offset) is not a Kafka one, and
    the other way round."""
    from ringstat.broker import _checkpoint

    p = aggregator()
    ck_file = tmp_path / "rabbit.ckpt"
    _checkpoint.write(ck_file, 12, {"producers": {}}, p.export_state())
    with pytest.raises(ringstat.StateError, match="Kafka"):
        KafkaConsumer("kafka://127.0.0.1:1", aggregator(), checkpoint=ck_file)
    _checkpoint.write(ck_file, {"0": 5, "1": 7}, {"producers": {}}, p.export_state())
    c = KafkaConsumer("kafka://127.0.0.1:1", aggregator(), checkpoint=ck_file)
    assert c.restored_positions == {0: 5, 1: 7}
    ck_file.write_bytes(ck_file.read_bytes().replace(b'"0":5', b'"x":5'))
    with pytest.raises(ringstat.StateError):
        KafkaConsumer("kafka://127.0.0.1:1", aggregator(), checkpoint=ck_file)
    p.close()


def test_large_batches_split_into_frames_under_the_limit(kafka: KafkaNode) -> None:
    """A batch whose frame would pass max_frame_bytes goes as several frames."""
    t = topic()
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t).start()
    with KafkaShipper(kafka.url, t, batch_size=4096, max_frame_bytes=2000, linger=0.5) as s:
        for u in range(2000):
            s.seen("users", f"user-{u:06d}")
        s.count("logins", 3)
        assert s.flush(60), s.stats()
        st = s.stats()
    assert st["frames"] >= 2000 * 11 // 2000  # the keys alone pass 2000 bytes many times over
    assert c.wait_events(2001, 60), c.stats()
    c.stop()
    assert observed(p)["logins"] == 3
    assert abs(p.distinct_count("users") - 2000) < 200


def test_event_too_big_for_any_frame_is_rejected_not_sequenced(kafka: KafkaNode) -> None:
    """With ``max_frame_bytes=64`` an event of a 60-byte name fits no frame:
    counted in ``rejected``, settled, and no sequence number spent on it
    (the consumer sees no gap)."""
    t = topic()
    p = aggregator()
    c = KafkaConsumer(kafka.url, p, t).start()
    with KafkaShipper(kafka.url, t, max_frame_bytes=64, linger=0.05) as s:
        assert s.count("logins")
        assert s.count("x" * 60)
        for _ in range(5):
            assert s.count("logins")
        assert s.flush(60), s.stats()
        st = s.stats()
    assert (st["events"], st["rejected"], st["published"], st["buffered"]) == (7, 1, 6, 0)
    assert c.wait_events(6, 60), c.stats()
    c.stop()
    assert observed(p)["logins"] == 6
    assert c.stats()["duplicates"] == 0
    assert "x" * 60 not in p.registry.to_prometheus()


def aggregator_run(
    url: str, t: str, total: int, messages: int, tmp: Path, *, name: str, ckpt: Path | None
) -> list[str]:
    script = Path(__file__).with_name("broker_aggregator.py")
    argv = [sys.executable, str(script), url, t, str(total), str(messages)]
    argv += [str(tmp / f"{name}.progress"), str(tmp / f"{name}.json")]
    return argv + ([str(ckpt)] if ckpt is not None else [])


def test_aggregator_killed_repeatedly_resumes_from_checkpoint(
    kafka: KafkaNode, tmp_path: Path
) -> None:
    """An aggregator that checkpoints (pipeline state + partition offsets +
    dedup, written atomically) is killed with SIGKILL again and again; each
    restart restores the checkpoint and seeks to its offsets. Its final
    statistics equal those of an aggregator of the same topic never killed,
    sessions opened before a checkpoint and closed after it included."""
    t = topic()
    with KafkaShipper(kafka.url, t, batch_size=16) as s:
        workload(s, 0, USERS)
        for u in range(USERS):  # later frames close the sessions still open
            if u % 3 != 0:
                s.session_end("online", u, ts_ns=3_000_000_000 + u)
        assert s.flush(60), s.stats()
        total = s.stats()["events"]
        messages = s.stats()["frames"] + 1  # and the retried frame below
    # Frame 1 again, as a retry after a lost acknowledgement would write it.
    produce_raw(kafka.url, t, [encode_frame(s.producer_id, 1, [("count", "logins", 0, 1000, 0)])])

    never = aggregator_run(
        kafka.url, t, total, messages, tmp_path, name="never", ckpt=tmp_path / "n.ckpt"
    )
    subprocess.run(never, check=True, timeout=120)
    unkilled = json.loads((tmp_path / "never.json").read_text())

    ckpt = tmp_path / "aggregator.ckpt"
    argv = aggregator_run(kafka.url, t, total, messages, tmp_path, name="killed", ckpt=ckpt)
    progress, result = tmp_path / "killed.progress", tmp_path / "killed.json"
    kills = 0
    for _ in range(4):
        progress.unlink(missing_ok=True)
        proc = subprocess.Popen(argv)
        try:
            deadline = time.monotonic() + 60
            # Kill after 7 frames of this run: past a checkpoint (every 5), mid-way to the next.
            while not (progress.exists() and int(progress.read_text() or 0) >= 7):
                if proc.poll() is not None:
                    break  # finished: the topic is consumed
                assert time.monotonic() < deadline
                time.sleep(0.002)
            if proc.poll() is None and not result.exists():
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            proc.kill()
            proc.wait()
    assert kills >= 2
    assert ckpt.exists()
    result.unlink(missing_ok=True)
    subprocess.run(argv, check=True, timeout=120)
    final = json.loads(result.read_text())
    assert final.pop("restored_offset")  # resumed from partition offsets, not replayed
    assert final.pop("checkpoints") >= kills
    unkilled.pop("restored_offset")
    unkilled.pop("checkpoints")
    assert final == unkilled
    assert final.pop("duplicates") >= 1  # the retried frame
    users = final.pop("users")
    want = expected(0, USERS)
    want.update(online_open=0, completed=USERS, end_without_start=0)
    assert final == want
    assert abs(users - USERS) < USERS * 0.1


# ----- frames across languages: examples/broker_kafka.rs (ringstat::broker::kafka)

ROOT = Path(__file__).resolve().parents[2]


def rust_kafka_example() -> str:
    """The built examples/broker_kafka.rs: ``RINGSTAT_RUST_KAFKA_EXAMPLE``
    (``make test-py`` builds it and sets it: missing is then a failure), or
    target/{debug,release}/examples/broker_kafka (skip if neither)."""
    path = os.environ.get("RINGSTAT_RUST_KAFKA_EXAMPLE")
    if path:
        assert Path(path).exists(), (
            f"{path} missing (cargo build --features kafka --example broker_kafka)"
        )
        return path
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "examples" / "broker_kafka"
        if p.exists():
            return str(p)
    pytest.skip(
        "examples/broker_kafka is not built (cargo build --features kafka --example broker_kafka)"
    )


def example_workload(s: KafkaShipper, users: int) -> None:
    """The workload examples/broker_kafka.rs ships (4 events a user)."""
    for u in range(users):
        ts = 1_000_000_000 + u * 1_000
        s.count("logins")
        s.session_start("online", u, ts_ns=ts)
        s.seen("users", u)
        s.session_end("online", u, ts_ns=ts + (u % 600) * 1_000_000_000)


def run_example(exe: str, *args: str) -> dict[str, object]:
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_frames_cross_languages_with_the_rust_shipper_and_consumer(kafka: KafkaNode) -> None:
    exe = rust_kafka_example()
    users = 2000
    n = 4 * users

    # Rust ships, Python consumes.
    t = topic()
    shipped = run_example(
        exe,
        "--url",
        kafka.url,
        "--topic",
        t,
        "--users",
        str(users),
        "--mode",
        "ship",
        "--batch-size",
        "256",
    )
    assert shipped["ok"] is True
    assert shipped["events"] == n
    p = ringstat.Pipeline(ringstat.Registry())
    c = KafkaConsumer(kafka.url, p, t, start="first").start()
    assert c.wait_events(n, 120), c.stats()
    c.stop()
    p.flush()
    st = c.stats()
    assert (st["duplicates"], st["bad_frames"], st["frames"]) == (0, 0, shipped["frames"])
    reg = p.registry
    bits = struct.unpack("<Q", struct.pack("<d", p.distinct_count("users")))[0]
    py_side = {
        "logins": reg.counter("logins").value,
        "online_open": reg.gauge("online_open").value,
        "users_bits": bits,
    }
    assert (py_side["logins"], py_side["online_open"]) == (users, 0)
    # Each message is keyed by the producer id, 8 bytes big-endian (as Python).
    raw = ck.Consumer({"bootstrap.servers": kafka.url[len("kafka://") :], "group.id": t})
    raw.assign([ck.TopicPartition(t, 0, ck.OFFSET_BEGINNING)])
    msg = raw.poll(30)
    raw.close()
    assert msg is not None
    assert msg.error() is None
    assert msg.key() == int(str(shipped["producer"])).to_bytes(8, "big")

    # Python ships, Rust consumes: the same statistics, bit for bit.
    t2 = topic()
    with KafkaShipper(kafka.url, t2, batch_size=256) as s:
        example_workload(s, users)
        assert s.flush(60), s.stats()
    got = run_example(
        exe, "--url", kafka.url, "--topic", t2, "--users", str(users), "--mode", "consume"
    )
    assert got["ok"] is True
    assert got["events"] == n
    assert (got["duplicates"], got["bad_frames"]) == (0, 0)
    assert {k: got[k] for k in py_side} == py_side
