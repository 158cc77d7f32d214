"""ringstat.broker against a real RabbitMQ node (conftest.py): shipper and
consumer end to end, duplicates, bad frames, the broker restarted mid-stream,
a consumer slower than the producer, and the overflow policy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pika = pytest.importorskip("pika")

import ringstat  # noqa: E402
from broker_workload import USERS, aggregator, expected, observed, workload  # noqa: E402
from rabbitmq_node import RabbitNode  # noqa: E402
from ringstat._ringstat import encode_frame  # noqa: E402
from ringstat.broker import Consumer, Dedup, Shipper  # noqa: E402

# The first test to ask for the session's node waits for it to start.
pytestmark = pytest.mark.timeout(300)


def qname() -> str:
    return "test." + uuid.uuid4().hex[:12]


def test_smoke_end_to_end(rabbitmq: RabbitNode) -> None:
    q = qname()
    p = aggregator()
    c = Consumer(rabbitmq.url, p, q).start()
    with Shipper(rabbitmq.url, q, batch_size=256) as s:
        workload(s, 0, USERS)
        assert s.flush(60)
        st = s.stats()
    assert st["published"] == st["events"] > 0
    assert st["buffered"] == 0
    assert st["frames"] >= st["events"] // 256
    assert c.wait_events(st["events"], 60)
    c.stop()
    assert observed(p) == expected(0, USERS)
    assert abs(p.distinct_count("users") - USERS) < USERS * 0.1
    assert c.stats()["duplicates"] == 0
    # The shipper's metrics are ringstat metrics.
    assert "ringstat_shipper_published_total" in s.registry.to_prometheus()


def publish_raw(url: str, q: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue=q, durable=True)
    for b in bodies:
        ch.basic_publish("", q, b)
    conn.close()


def test_duplicates_applied_once_and_bad_frames_counted(rabbitmq: RabbitNode) -> None:
    q = qname()
    f1 = encode_frame(5, 1, [("count", "logins", 0, 2, 0)])
    f2 = encode_frame(5, 2, [("count", "logins", 0, 3, 0)])
    bad = encode_frame(5, 4, [("count", "logins", 0, 3, 0)])[:-1]  # truncated
    unresolved = encode_frame(5, 3, [("observe", "nope", 0, 1, 0)])
    publish_raw(rabbitmq.url, q, [f1, f1, b"hello", f2, f1, bad, f2, unresolved])
    p = aggregator()
    c = Consumer(rabbitmq.url, p, q).start()
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
    }
    assert observed(p)["logins"] == 5
    assert c.dedup.floor(5) == 3


def test_consumer_of_a_closed_pipeline_stops_and_leaves_the_frame(rabbitmq: RabbitNode) -> None:
    q = qname()
    publish_raw(rabbitmq.url, q, [encode_frame(8, 1, [("count", "logins", 0, 2, 0)])])
    closed = aggregator()
    closed.close()
    c = Consumer(rabbitmq.url, closed, q).start()
    assert c._thread is not None
    c._thread.join(60)
    assert not c._thread.is_alive()
    assert c.stats()["frames"] == 0
    p = aggregator()
    c2 = Consumer(rabbitmq.url, p, q).start()
    assert c2.wait_events(1, 60)
    c2.stop()
    assert observed(p)["logins"] == 2


@pytest.mark.parametrize("stream", [False, True], ids=["classic", "stream"])
def test_broker_restarted_mid_stream(rabbitmq: RabbitNode, stream: bool) -> None:
    """Events sent while the broker is down are buffered, published after it
    is back (reconnecting), and applied exactly once; a stream consumer
    resumes after the last offset it handled."""
    q = qname()
    p = aggregator()
    offset = "first" if stream else None
    c = Consumer(rabbitmq.url, p, q, prefetch=4, stream_offset=offset).start()
    s = Shipper(rabbitmq.url, q, stream=stream, batch_size=64, backoff=0.05, max_backoff=0.5)
    workload(s, 0, 100)
    assert s.flush(60)
    rabbitmq.stop()
    workload(s, 100, 200)  # buffered locally while the broker is down
    assert s.stats()["connected"] == 0 or s.stats()["buffered"] > 0
    rabbitmq.start()
    workload(s, 200, USERS)
    assert s.flush(120), s.stats()
    st = s.stats()
    s.close()
    assert st["reconnects"] >= 1
    assert st["publish_failures"] >= 1
    assert st["published"] == st["events"]
    assert c.wait_events(st["events"], 120), (c.stats(), st)
    c.stop()
    assert observed(p) == expected(0, USERS)
    assert c.stats()["reconnects"] >= 1


def test_slow_consumer_back_pressure(rabbitmq: RabbitNode) -> None:
    """A broker queue capped at 3 frames refuses publishes while nobody
    consumes: the shipper retries, its bounded buffer fills and the producer
    blocks (counted). Once a consumer runs, everything arrives once."""
    q = qname()
    cap = 200
    s = Shipper(
        rabbitmq.url, q, batch_size=50, capacity=cap, max_length=3, backoff=0.02, max_backoff=0.1
    )
    n_users = 400
    producer = threading.Thread(target=workload, args=(s, 0, n_users))
    producer.start()
    deadline = time.monotonic() + 60
    while s.stats()["blocked"] == 0 or s.stats()["nacked"] == 0:
        assert time.monotonic() < deadline, s.stats()
        time.sleep(0.02)
    st = s.stats()
    assert st["buffered"] <= cap + 50  # the queue plus one frame
    p = aggregator()
    c = Consumer(rabbitmq.url, p, q, max_length=3, prefetch=2).start()
    producer.join(120)
    assert not producer.is_alive()
    assert s.flush(120), s.stats()
    st = s.stats()
    s.close()
    assert c.wait_events(st["events"], 120), (c.stats(), st)
    c.stop()
    assert observed(p) == expected(0, n_users)
    assert st["dropped"] == 0


def test_overflow_drop_newest_is_counted() -> None:
    """No broker at all (a closed port): the buffer fills and every event
    past it is dropped, counted, and reported by the call."""
    port = 1  # nothing listens there
    s = Shipper(
        f"amqp://guest:guest@127.0.0.1:{port}/%2F",
        qname(),
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


def test_bad_events_refused_at_send() -> None:
    s = Shipper("amqp://guest:guest@127.0.0.1:1/%2F", qname(), backoff=0.01)
    with pytest.raises(ValueError, match="unknown op"):
        s.send("explode", "c")
    with pytest.raises(TypeError, match="name"):
        s.send("count", "")
    with pytest.raises(TypeError, match="value"):
        s.send("count", "c", 0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        s.send("count", "c", 0, -1)
    with pytest.raises(TypeError, match="key"):
        s.send("seen", "u", [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overflow"):
        Shipper("amqp://127.0.0.1:1/", overflow="sometimes")
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        Shipper("amqp://127.0.0.1:1/", capacity=0)
    s.close(timeout=0.1)
    assert s.stats()["events"] == 0


def test_every_producer_call_checks_like_send() -> None:
    """The producer calls (native, bound on the instance) refuse bad
    arguments with send's messages; an event of the right types that the
    frame format cannot carry is accepted and counted in ``rejected``."""
    s = Shipper("amqp://guest:guest@127.0.0.1:1/%2F", qname(), backoff=10.0)
    bad: list[tuple[type[Exception], str, Any]] = [
        (TypeError, "name must be a non-empty str", lambda: s.count("")),
        (TypeError, "name must be a non-empty str", lambda: s.seen(b"users", 1)),  # type: ignore[arg-type]
        (TypeError, "value must be an int, not float", lambda: s.count("c", 1.5)),  # type: ignore[arg-type]
        (TypeError, "value must be an int, not bool", lambda: s.observe("h", True)),
        (TypeError, "ts_ns must be an int", lambda: s.session_start("o", 1, 1.0)),  # type: ignore[arg-type]
        (ValueError, "value and ts_ns must be >= 0 for 'count'", lambda: s.count("c", -1)),
        (ValueError, ">= 0 for 'session_end'", lambda: s.session_end("o", 1, -5)),
        (ValueError, ">= 0 for 'set'", lambda: s.send("set", "g", 0, 1, -1)),
        (TypeError, "key must be an int, str or bytes, not list", lambda: s.seen("u", [1])),  # type: ignore[arg-type]
        (TypeError, "key must be an int, str or bytes, not bool", lambda: s.seen("u", True)),
        (
            ValueError,
            "unknown op 'explode' \\(one of count, gauge_add",
            lambda: s.send("explode", "c"),
        ),
        (ValueError, "unknown op 5", lambda: s.send(5, "c")),  # type: ignore[arg-type]
        # An explicit None is no default (but ts_ns=None is the wall clock).
        (TypeError, "value must be an int, not NoneType", lambda: s.count("c", None)),  # type: ignore[arg-type]
        (TypeError, "key must be an int, str or bytes", lambda: s.send("seen", "u", None)),  # type: ignore[arg-type]
        (TypeError, "ts_ns must be an int", lambda: s.send("count", "c", 0, 1, None)),  # type: ignore[arg-type]
    ]
    for exc, match, call in bad:
        with pytest.raises(exc, match=match):
            call()
    assert s.stats()["events"] == 0
    good = [
        s.set("g", -5),
        s.send("gauge_add", "g", 0, -(2**63)),
        s.seen("u", "alice"),
        s.seen("u", -1),
        s.session_start("o", b"k"),
        s.mark("r", n=3),
        s.count(name="c"),
        s.session_end("o", b"k", None),
    ]
    unencodable = [
        s.count("c", 2**64),
        s.set("g", 2**63),
        s.seen("u", 2**64),
        s.session_start("o", 1, 2**64),
        s.count("x" * 1025),
        s.count("\ud800"),
    ]
    assert all(good)
    assert all(unencodable)
    st = s.stats()
    assert (st["events"], st["rejected"], st["buffered"]) == (14, 6, 8)
    assert not s.close(timeout=0.1)
    with pytest.raises(ringstat.ShutDown):
        s.count("c")
    with pytest.raises(ringstat.ShutDown):
        s.send("seen", "u", 1)


def test_many_producer_threads_small_buffer_exactly_once(rabbitmq: RabbitNode) -> None:
    """Producer threads blocking on a small buffer, and an event the format
    cannot carry: every other event arrives exactly once and ``flush``
    settles them all."""
    q = qname()
    p = aggregator()
    c = Consumer(rabbitmq.url, p, q).start()
    threads, per = 4, 300
    with Shipper(rabbitmq.url, q, capacity=32, batch_size=64) as s:
        assert s.count("logins", 2**64)  # no u64: rejected
        workers = [
            threading.Thread(target=workload, args=(s, t * per, (t + 1) * per))
            for t in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert s.flush(120), s.stats()
        st = s.stats()
    assert st["rejected"] == 1
    assert st["published"] == st["events"] - 1
    assert st["buffered"] == st["dropped"] == 0
    assert st["blocked"] > 0
    assert c.wait_events(st["published"], 120), c.stats()
    c.stop()
    assert observed(p) == expected(0, threads * per)
    assert c.stats()["duplicates"] == 0


def test_dedup_model() -> None:
    d = Dedup(max_pending=3)
    assert d.add(1, 10)
    assert not d.add(1, 10)
    assert d.seen(1, 9)  # below the first seen: older than anything delivered
    assert all(d.add(1, s) for s in (12, 13, 14))
    assert d.floor(1) == 11
    assert d.add(1, 15)  # 4 pending > 3: the floor jumps over the gap
    assert d.gaps == 1
    assert d.floor(1) == 16
    assert Dedup.from_state(d.state()).state() == d.state()
    with pytest.raises(ValueError, match="max_pending"):
        Dedup(0)


def test_aggregator_killed_repeatedly_replays_exactly(rabbitmq: RabbitNode, tmp_path: Path) -> None:
    """The stream keeps every frame: an aggregator killed with SIGKILL at any
    moment and restarted replays it from the first offset, and its final
    statistics equal those of a pipeline fed directly, never killed."""
    q = qname()
    with Shipper(rabbitmq.url, q, stream=True, batch_size=16) as s:
        workload(s, 0, USERS)
        assert s.flush(60)
        total = s.stats()["events"]
        messages = s.stats()["frames"] + 1  # and the retried frame below
    # A retried frame (same sequence) in the stream too: dropped on replay.
    publish_stream_dup(rabbitmq.url, q, s.producer_id)

    direct = aggregator()
    for u in range(USERS):
        direct.seen("users", u)
    progress, result = tmp_path / "progress", tmp_path / "result.json"
    script = Path(__file__).with_name("broker_aggregator.py")
    argv = [sys.executable, str(script), rabbitmq.url, q, str(total), str(messages)]
    argv += [str(progress), str(result)]
    kills = 0
    for round_ in range(3):
        progress.unlink(missing_ok=True)
        proc = subprocess.Popen(argv)
        try:
            deadline = time.monotonic() + 60
            while not (progress.exists() and int(progress.read_text() or 0) >= 3 * (round_ + 1)):
                assert proc.poll() is None, "the aggregator exited early"
                assert time.monotonic() < deadline
                time.sleep(0.005)
            if proc.poll() is None and not result.exists():
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            proc.kill()
            proc.wait()
    assert kills >= 1
    result.unlink(missing_ok=True)
    subprocess.run(argv, check=True, timeout=120)
    final = json.loads(result.read_text())
    assert final.pop("duplicates") >= 1
    users = final.pop("users")
    assert final == expected(0, USERS)
    assert users == direct.distinct_count("users")  # HLL registers: order-free


def test_aggregator_killed_repeatedly_resumes_from_checkpoint(
    rabbitmq: RabbitNode, tmp_path: Path
) -> None:
    """An aggregator that checkpoints (pipeline state + stream offset + dedup,
    written atomically) is killed with SIGKILL again and again; each restart
    restores the checkpoint and resumes the stream after its offset. The
    final statistics equal an unkilled run, sessions opened before a
    checkpoint and closed after it included (no end without a start)."""
    q = qname()
    with Shipper(rabbitmq.url, q, stream=True, batch_size=16) as s:
        workload(s, 0, USERS)
        for u in range(USERS):  # later frames close the sessions still open
            if u % 3 != 0:
                s.session_end("online", u, ts_ns=3_000_000_000 + u)
        assert s.flush(60)
        total = s.stats()["events"]
        messages = s.stats()["frames"] + 1  # and the retried frame below
    publish_stream_dup(rabbitmq.url, q, s.producer_id)

    direct = aggregator()
    for u in range(USERS):
        direct.seen("users", u)
    progress, result = tmp_path / "progress", tmp_path / "result.json"
    ckpt = tmp_path / "aggregator.ckpt"
    script = Path(__file__).with_name("broker_aggregator.py")
    argv = [sys.executable, str(script), rabbitmq.url, q, str(total), str(messages)]
    argv += [str(progress), str(result), str(ckpt)]
    kills = 0
    for _ in range(4):
        progress.unlink(missing_ok=True)
        proc = subprocess.Popen(argv)
        try:
            deadline = time.monotonic() + 60
            # Kill after 7 frames of this run: past a checkpoint (every 5), mid-way to the next.
            while not (progress.exists() and int(progress.read_text() or 0) >= 7):
                if proc.poll() is not None:
                    break  # finished: the stream is consumed
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
    assert final.pop("restored_offset") is not None  # resumed, not replayed
    assert final.pop("checkpoints") >= kills
    users = final.pop("users")
    assert final.pop("duplicates") >= 1  # the retried frame, known from the restored dedup
    want = expected(0, USERS)
    want.update(online_open=0, completed=USERS, end_without_start=0)
    assert final == want
    assert users == direct.distinct_count("users")


def test_first_frame_pins_a_moving_start(rabbitmq: RabbitNode, tmp_path: Path) -> None:
    """A stream consumer from ``"next"`` with a checkpoint path and no file
    saves a checkpoint before applying its first frame: killed before its
    first regular checkpoint (here: its file copied while it runs), a restart
    replays from that frame, not from a ``"next"`` that has moved on."""
    q = qname()
    ckpt, killed = tmp_path / "c.ckpt", tmp_path / "killed.ckpt"
    p = aggregator()
    s = Shipper(rabbitmq.url, q, stream=True, batch_size=16)
    c = Consumer(
        rabbitmq.url,
        p,
        q,
        stream_offset="next",
        checkpoint=ckpt,
        checkpoint_every=10**6,
        checkpoint_interval=3600,
    ).start()
    try:
        # "next" counts from when the consumer attached: probe until it has.
        deadline = time.monotonic() + 60
        while not c.wait_events(1, 0.2):
            assert time.monotonic() < deadline, c.stats()
            s.count("probes")
            assert s.flush(60)
        workload(s, 0, USERS)
        assert s.flush(60)
        assert ckpt.exists(), "no checkpoint before the first frame"
        killed.write_bytes(ckpt.read_bytes())  # the state a SIGKILL now leaves
        deadline = time.monotonic() + 60
        while observed(p)["logins"] < USERS:
            assert time.monotonic() < deadline, c.stats()
            time.sleep(0.01)
    finally:
        c.stop()
        s.close()
    got = observed(p)
    assert got == expected(0, USERS)
    p2 = aggregator()
    c2 = Consumer(rabbitmq.url, p2, q, stream_offset="next", checkpoint=killed).start()
    assert c2.restored
    assert c2.restored_offset is not None
    assert c2.wait_events(c.stats()["events"], 60), (c2.stats(), c.stats())
    c2.stop()
    assert observed(p2) == got
    assert p2.registry.counter("probes").value == p.registry.counter("probes").value >= 1


def test_checkpoint_needs_a_stream_and_refuses_a_bad_file(tmp_path: Path) -> None:
    p = aggregator()
    with pytest.raises(ValueError, match="stream"):
        Consumer("amqp://127.0.0.1:1/%2F", p, checkpoint=tmp_path / "c")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"RSCK 1\n{}\n")
    with pytest.raises(ringstat.StateError):
        Consumer("amqp://127.0.0.1:1/%2F", p, stream_offset="first", checkpoint=bad)
    bad.write_bytes(b'RSCK 1\n{"offset":3,"dedup":{"producers":{}}}\nnot a state')
    with pytest.raises(ringstat.StateError):
        Consumer("amqp://127.0.0.1:1/%2F", p, stream_offset="first", checkpoint=bad)
    p.close()


def publish_stream_dup(url: str, q: str, producer: int) -> None:
    """Publish frame 1 of ``producer`` again, as a retry after a lost
    confirm would."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue=q, durable=True, arguments={"x-queue-type": "stream"})
    ch.confirm_delivery()
    ch.basic_publish("", q, encode_frame(producer, 1, [("count", "logins", 0, 1000, 0)]))
    conn.close()
