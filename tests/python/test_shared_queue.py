"""ringstat.SharedQueue: byte messages between real processes (multiprocessing
fork, spawn and forkserver; an unrelated subprocess attaching by name; a
gunicorn-style prefork with os.fork), queue.Queue conventions, kill safety and
Ctrl-C. No timing assertions: only generous upper bounds against hangs."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat
from conftest import default_sigint

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="shared queues need Linux"
)


@pytest.fixture
def name() -> Iterator[str]:
    n = f"ringstat-pytest-{uuid.uuid4().hex[:12]}"
    yield n
    ringstat.SharedQueue.cleanup(n)


def test_put_get_bytes_like(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=16)
    assert (q.name, q.maxsize, q.slot_size, q.lost) == (name, 8, 16, 0)
    q.put(b"abc")
    q.put(bytearray(b"def"))
    q.put(memoryview(b"xxghixx")[2:5])
    q.put(b"")
    assert q.qsize() == len(q) == 4
    assert [q.get() for _ in range(4)] == [b"abc", b"def", b"ghi", b""]
    assert q.empty()
    # Too large, not a buffer: clear errors, nothing put.
    with pytest.raises(ValueError, match="slot size"):
        q.put(b"x" * 17, timeout=None)
    with pytest.raises(ValueError, match="slot size"):
        q.put(bytearray(17))
    with pytest.raises(TypeError, match="bytes-like"):
        q.put("text")  # type: ignore[arg-type]
    assert q.empty()


def test_put_numpy_arrays(name: str) -> None:
    np = pytest.importorskip("numpy")
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=16)
    q.put(np.arange(4, dtype=np.int32))
    assert np.frombuffer(q.get(), dtype=np.int32).tolist() == [0, 1, 2, 3]
    q.put(np.ones((2, 2), dtype=np.float32))
    assert np.frombuffer(q.get(), dtype=np.float32).tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="contiguous"):
        q.put(np.arange(8, dtype=np.int8)[::2])
    with pytest.raises(ValueError, match="slot size"):
        q.put(np.zeros(5, dtype=np.int32))
    assert q.empty()


def test_full_empty_timeouts_and_shutdown(name: str) -> None:
    q = ringstat.SharedQueue.create(name, maxsize=1, slot_size=8)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put_nowait(b"1")
    assert q.full()
    with pytest.raises(queue.Full):
        q.put(b"2", block=False)
    with pytest.raises(queue.Full):
        q.put(b"2", timeout=0.01)
    with pytest.raises(ValueError, match="timeout"):
        q.put(b"2", timeout=-1)
    assert q.get() == b"1"

    # timeout=None waits for as long as it takes.
    def late() -> None:
        time.sleep(0.05)
        q.put(b"late")

    t = threading.Thread(target=late)
    t.start()
    assert q.get(timeout=None) == b"late"
    t.join()
    q.put(b"left")
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(ringstat.ShutDown):
        q.put(b"x")
    assert q.get() == b"left"
    with pytest.raises(ringstat.ShutDown):
        q.get()


def test_shutdown_wakes_a_blocked_get(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=1, slot_size=8)
    got: list[BaseException] = []

    def wait() -> None:
        try:
            q.get()
        except BaseException as e:
            got.append(e)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.05)
    ringstat.SharedQueue.attach(name).shutdown()
    t.join(timeout=30)
    assert not t.is_alive()
    assert isinstance(got[0], ringstat.ShutDown)


def test_create_attach_errors(name: str) -> None:
    with pytest.raises(FileNotFoundError):
        ringstat.SharedQueue.attach(name)
    q = ringstat.SharedQueue.create(name, 4, 8)
    with pytest.raises(FileExistsError):
        ringstat.SharedQueue.create(name, 4, 8)
    # An existing queue keeps its own sizes.
    assert ringstat.SharedQueue(name, maxsize=99, slot_size=99).maxsize == 4
    with pytest.raises(ValueError, match="maxsize"):
        ringstat.SharedQueue(name + "x", maxsize=0)
    with pytest.raises(TypeError, match="slot_size"):
        ringstat.SharedQueue(name + "x", slot_size="8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        ringstat.SharedQueue(name + "x", mode=0o1777)
    with pytest.raises(ValueError, match="name"):
        ringstat.SharedQueue("a/b")
    assert oct(os.stat(f"/dev/shm/{name}").st_mode & 0o777) == oct(0o600)
    assert q.unlink()
    assert not ringstat.SharedQueue.cleanup(name)
    q.put(b"still ok")
    assert q.get() == b"still ok"


def test_objects_and_batches(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=4, slot_size=256)
    q.put_obj({"user": 1, "event": "login"})
    assert q.get_obj() == {"user": 1, "event": "login"}
    with pytest.raises(ValueError, match="slot size"):
        q.put_obj(list(range(1000)))
    assert q.put_many([b"a", b"b", b"c"]) == 3
    assert q.get_many(10) == [b"a", b"b", b"c"]
    assert q.put_many(iter([b"1", b"2", b"3", b"4", b"5"]), block=False) == 4
    assert q.get_many(2) == [b"1", b"2"]
    assert q.get_many(5, timeout=1) == [b"3", b"4"]
    with pytest.raises(queue.Empty):
        q.get_many(1, block=False)
    with pytest.raises(ValueError, match="max_items"):
        q.get_many(0)


def test_pickles_as_a_reference(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=4, slot_size=8)
    q2 = pickle.loads(pickle.dumps(q))
    assert q2.name == name
    assert q2 is not q
    q.put(b"x")
    assert q2.get() == b"x"


def _producer(q: ringstat.SharedQueue, k: int, n: int) -> None:
    for i in range(n):
        q.put(f"{k}:{i}".encode())


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_start_methods(name: str, method: str) -> None:
    ctx: Any = mp.get_context(method)
    q = ringstat.SharedQueue(name, maxsize=16, slot_size=32)
    procs = [ctx.Process(target=_producer, args=(q, k, 200)) for k in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        for p in procs:
            p.start()
    got = {q.get(timeout=60).decode() for _ in range(600)}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got == {f"{k}:{i}" for k in range(3) for i in range(200)}
    assert q.lost == 0


def test_unrelated_process_attaches_by_name(name: str) -> None:
    there = ringstat.SharedQueue(name, maxsize=4, slot_size=64)
    back = ringstat.SharedQueue(name + "-back", maxsize=4, slot_size=64)
    code = textwrap.dedent(
        f"""
        import ringstat
        there = ringstat.SharedQueue.attach({name!r})
        back = ringstat.SharedQueue.attach({name + "-back"!r})
        back.put(b"hello from " + there.get(timeout=60))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        there.put(b"parent")
        assert back.get(timeout=60) == b"hello from parent"
    finally:
        assert proc.wait(timeout=60) == 0
        back.unlink()


def test_prefork_workers_write(name: str) -> None:
    # gunicorn-style: the master creates the queue, then forks workers that
    # use the inherited object directly.
    q = ringstat.SharedQueue(name, maxsize=8, slot_size=32)
    pids = []
    for k in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
            pid = os.fork()
        if pid == 0:  # worker
            code = 0
            try:
                for i in range(100):
                    q.put(f"w{k}:{i}".encode(), timeout=60)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    got = [q.get(timeout=60) for _ in range(300)]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(got) == sorted(f"w{k}:{i}".encode() for k in range(3) for i in range(100))


def test_killed_blocked_consumer_does_not_wedge(name: str) -> None:
    q = ringstat.SharedQueue(name, maxsize=2, slot_size=8)
    code = (
        f"import ringstat; q = ringstat.SharedQueue.attach({name!r}); "
        "print('ready', flush=True); q.get()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    q.put(b"a")
    q.put(b"b")
    assert [q.get(timeout=10), q.get(timeout=10)] == [b"a", b"b"]
    assert q.sweep() >= 0
    assert q.lost == 0


def test_sigint_interrupts_a_blocked_get(name: str) -> None:
    ringstat.SharedQueue(name, maxsize=1, slot_size=8)
    code = textwrap.dedent(
        f"""
        import ringstat
        q = ringstat.SharedQueue.attach({name!r})
        try:
            print("ready", flush=True)
            q.get()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # noqa: PLW1509 - no threads in this test
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in out
