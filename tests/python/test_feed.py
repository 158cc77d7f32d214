"""Many processes into one pipeline: ringstat.FeedSender in producer processes
(multiprocessing spawn and fork, os.fork, an unrelated subprocess), frames
through a SharedQueue, Pipeline.feed_from in the aggregator. Exact totals;
a producer killed with SIGKILL loses at most its unsent batch and the frame
it was putting. No timing assertions: only generous bounds against hangs."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="shared queues need Linux"
)


@pytest.fixture
def name() -> Iterator[str]:
    n = f"ringstat-pytest-feed-{uuid.uuid4().hex[:12]}"
    yield n
    ringstat.SharedQueue.cleanup(n)


def _producer(qname: str, k: int, n: int) -> None:
    """n logins, n sessions opened (keys k*n..), the even ones closed, n
    users seen, n marks, the gauge down by n. No flush: the exit hook puts
    the last frame."""
    tx = ringstat.FeedSender(ringstat.SharedQueue.attach(qname))
    for i in range(n):
        key = k * n + i
        tx.count("logins")
        tx.session_start("online", key)
        if key % 2 == 0:
            tx.session_end("online", key)
        tx.seen("users", key)
        tx.mark("requests", 1)
        tx.gauge_add("level", -1)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_producer_processes_conserve_counts(name: str, method: str) -> None:
    producers, n = 3, 3000
    # Small slots, few of them: many frames, producers wait for room.
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=512)
    reg = ringstat.Registry()
    p = ringstat.Pipeline(reg)
    feed = p.feed_from(q)
    ctx: Any = mp.get_context(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        procs = [ctx.Process(target=_producer, args=(name, k, n)) for k in range(producers)]
        for pr in procs:
            pr.start()
    for pr in procs:
        pr.join(60)
        assert pr.exitcode == 0
    feed.stop(drain=True)
    assert (feed.running, feed.end) == (False, "stopped")
    p.flush()
    total = producers * n
    assert reg.counter("logins").value == total
    assert reg.counter("online_started_total").value == total
    assert reg.counter("online_completed_total").value == total // 2
    assert reg.gauge("online_open").value == total // 2
    assert reg.gauge("level").value == -total
    assert reg.rate("requests").total == total
    assert abs(p.distinct_count("users") - total) < total * 0.05
    s = feed.stats()
    assert s["events"] == total * 5 + total // 2
    assert s["frames"] > producers
    assert (s["bad_frames"], s["rejected_frames"], s["unapplied_frames"], q.lost) == (0, 0, 0, 0)
    p.close()


def _logged_producer(qname: str, k: int, batch: int, quota: int, log: Any) -> None:
    """Frames of exactly `batch` increments of p{k}; log[k] = events whose
    flush returned. Runs `quota` frames, or until killed."""
    tx = ringstat.FeedSender(ringstat.SharedQueue.attach(qname))
    metric = f"p{k}"
    f = 0
    while f < quota:
        for _ in range(batch):
            tx.count(metric)
        tx.flush()
        f += 1
        log[k] = f * batch


def test_killed_producers_lose_at_most_their_batch(name: str) -> None:
    batch, quota, survivors, kills = 20, 150, 2, 25
    q = ringstat.SharedQueue(name, maxsize=4, slot_size=256)
    reg = ringstat.Registry()
    p = ringstat.Pipeline(reg)
    feed = p.feed_from(q)
    ctx: Any = mp.get_context("fork")
    log = ctx.Array("q", survivors + kills, lock=False)
    rng = random.Random(20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        alive = [
            ctx.Process(target=_logged_producer, args=(name, k, batch, quota, log))
            for k in range(survivors)
        ]
        for pr in alive:
            pr.start()
        for k in range(survivors, survivors + kills):
            pr = ctx.Process(target=_logged_producer, args=(name, k, batch, 10**9, log))
            pr.start()
            time.sleep(rng.uniform(0.001, 0.02))
            os.kill(pr.pid, signal.SIGKILL)
            pr.join(30)
            assert pr.exitcode == -signal.SIGKILL
    for pr in alive:
        pr.join(60)
        assert pr.exitcode == 0
    feed.stop(drain=True)
    p.flush()
    for k in range(survivors):
        assert reg.counter(f"p{k}").value == batch * quota
    for k in range(survivors, survivors + kills):
        arrived, flushed = reg.counter(f"p{k}").value, log[k]
        assert arrived % batch == 0, f"producer {k}: part of a frame"
        assert flushed <= arrived <= flushed + batch, (k, flushed, arrived)
    assert q.lost <= kills
    assert feed.stats()["bad_frames"] == 0
    p.close()


def test_bad_messages_are_counted_and_queue_shutdown_ends_the_feed(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=16, slot_size=128)
    reg = ringstat.Registry()
    p = ringstat.Pipeline(reg)
    p.histogram("latency", max_value=1000)
    feed = p.feed_from(q)
    good = ringstat.encode_frame(1, 1, [("count", "ok", 0, 2, 0), ("observe", "latency", 0, 7, 0)])
    unknown = ringstat.encode_frame(1, 2, [("observe", "nope", 0, 7, 0), ("count", "ok", 0, 5, 0)])
    for msg in (b"GET / HTTP/1.1", good[:-1], b"", unknown, good):
        q.put(msg)
    q.shutdown()
    deadline = time.monotonic() + 30
    while feed.running:
        assert time.monotonic() < deadline, "the feed did not end"
        time.sleep(0.005)
    assert feed.end == "queue_closed"
    p.flush()
    assert reg.counter("ok").value == 2
    assert reg.histogram("latency", max_value=1000).count == 1
    s = feed.stats()
    assert (s["frames"], s["events"], s["bad_frames"]) == (1, 2, 3)
    assert (s["rejected_frames"], s["rejected_events"]) == (1, 2)
    assert "queue_closed" in repr(feed)
    feed.stop()  # idempotent after the end
    p.close()


def test_pipeline_close_stops_the_feed(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=4, slot_size=64)
    p = ringstat.Pipeline()
    with p.feed_from(q) as feed:
        assert feed.running
        p.close()
        deadline = time.monotonic() + 30
        while feed.running:
            assert time.monotonic() < deadline, "the feed ignored the close"
            time.sleep(0.005)
        assert feed.end == "pipeline_closed"
    # Stopping explicitly leaves queued frames for another consumer.
    p2 = ringstat.Pipeline()
    feed2 = p2.feed_from(q)
    feed2.stop()
    assert feed2.end == "stopped"
    tx = ringstat.FeedSender(q)
    tx.count("x")
    tx.flush()
    assert len(q) == 1
    p2.close()


def test_sender_arguments_and_errors(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=4, slot_size=128)
    with pytest.raises(TypeError, match="SharedQueue"):
        ringstat.FeedSender(b"not a queue")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SharedQueue"):
        ringstat.Pipeline().feed_from(ringstat.Queue(4))  # type: ignore[arg-type]
    tx = ringstat.FeedSender(q)
    assert (tx.frame_size, tx.pending, tx.closed) == (128, 0, False)
    assert 0 <= tx.producer_id < 2**64
    with pytest.raises(ringstat.FrameError, match="larger than a frame"):
        tx.count("x" * 120)
    with pytest.raises(ValueError, match="unknown op"):
        tx.send("explode", "x")
    with pytest.raises(TypeError, match="op must be a str"):
        tx.send(3, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        tx.count(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n"):
        tx.count("logins", -1)
    with pytest.raises(TypeError):
        tx.session_start("online", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ts"):
        tx.session_start("online", 1, ts=-1.0)
    assert tx.pending == 0  # nothing of the refused events was batched
    tx.send("set", "level", value=-3)
    tx.send("seen", "users", key="alice")
    tx.set("level", 4)
    tx.observe("latency", 12)
    assert tx.pending == 4
    assert "4 pending" in repr(tx)
    with tx:
        pass
    assert (tx.closed, tx.pending, len(q)) == (True, 0, 1)
    with pytest.raises(ringstat.ShutDown):
        tx.count("logins")
    tx.close()  # idempotent
    _, _, events = ringstat.decode_frame(q.get_nowait())
    assert [e[0] for e in events] == ["set", "seen", "set", "observe"]
    assert events[0][3] == -3


def test_fork_child_does_not_resend_the_parents_batch(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=256)
    tx = ringstat.FeedSender(q)
    for _ in range(5):
        tx.count("n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            tx.count("n")
            tx.flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent_id = tx.producer_id
    tx.flush()
    frames = [ringstat.decode_frame(q.get_nowait()) for _ in range(2)]
    assert sorted(len(ev) for _, _, ev in frames) == [1, 5]
    child = next(f for f in frames if len(f[2]) == 1)
    assert child[0] != parent_id


def test_unflushed_events_go_out_at_exit_and_at_collection(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=256)
    script = textwrap.dedent(
        f"""
        import ringstat
        tx = ringstat.FeedSender(ringstat.SharedQueue.attach({name!r}))
        for _ in range(7):
            tx.count("at_exit")
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    _, _, events = ringstat.decode_frame(q.get_nowait())
    assert len(events) == 7
    tx = ringstat.FeedSender(q)
    tx.count("collected", 3)
    del tx
    _, _, events = ringstat.decode_frame(q.get_nowait())
    assert events == [("count", "collected", 0, 3, 0)]


def test_flush_timeout_keeps_the_frame(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=1, slot_size=64)
    q.put(b"occupied")
    tx = ringstat.FeedSender(q)
    tx.count("kept", 2)
    with pytest.raises(queue.Full):
        tx.flush(timeout=0.01)
    assert (tx.pending, tx.unsent_frames) == (0, 1)
    with pytest.raises(ValueError, match="timeout"):
        tx.flush(timeout=-1)
    assert q.get_nowait() == b"occupied"
    tx.flush(timeout=0)
    assert tx.unsent_frames == 0
    assert ringstat.decode_frame(q.get_nowait())[2] == [("count", "kept", 0, 2, 0)]
    # A shut-down queue: the frame is dropped, ShutDown raised.
    tx.count("gone")
    q.shutdown()
    with pytest.raises(ringstat.ShutDown):
        tx.flush()
    assert tx.unsent_frames == 0


def test_feed_copy_in_a_forked_child_is_inert(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=256)
    p = ringstat.Pipeline()
    feed = p.feed_from(q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            feed.stop()  # no thread to join here: returns at once
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert feed.running  # the parent's thread is untouched
    tx = ringstat.FeedSender(q)
    tx.count("after_fork")
    tx.flush()
    feed.stop(drain=True)
    p.flush()
    assert p.registry.counter("after_fork").value == 1
    assert name in repr(feed)
    assert not repr(feed).count("/")
    p.close()
