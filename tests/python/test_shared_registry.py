"""ringstat.SharedRegistry with real processes: multiprocessing pools (spawn,
fork, forkserver), an os.fork prefork of workers that attach and write, an
unrelated subprocess reading the sums live, and SIGKILLed workers (their
gauges vanish in the live modes, their counts stay)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import ringstat

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="shared memory is Linux-only")


@pytest.fixture
def name() -> Iterator[str]:
    n = f"ringstat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    # Remove the name whatever the test did (the memory goes with the last
    # process that maps it).
    with contextlib.suppress(ValueError):
        ringstat.SharedRegistry.attach(n).unlink()


def _values(reg: ringstat.SharedRegistry, metric: str) -> list[tuple[dict[str, str], int]]:
    return [
        (m["labels"], m["values"]["value"])
        for m in reg.snapshot()["metrics"]
        if m["name"] == metric
    ]


def _work(reg: ringstat.SharedRegistry, n: int) -> int:
    """A pool task: the registry arrives pickled (by name) and reattaches."""
    reg.counter("tasks").inc(n)
    reg.histogram("task_size", max_value=1000).record(n)
    return os.getpid()


def test_same_api_and_exposition_as_registry(name: str) -> None:
    shared = ringstat.SharedRegistry(name, max_processes=8, max_entries=64, data_bytes=1 << 20)
    local = ringstat.Registry()
    for reg in (shared, local):
        reg.counter("logins", {"region": "eu"}, help="Logins.").inc(3)
        reg.gauge("online").set(2)
        reg.histogram("latency_us", max_value=10_000, significant_digits=2).record(120)
        reg.histogram("wait_s", max_value=10.0, unit=1e-3).record(0.5)
        fam = reg.counter("jobs", labelnames=["kind"])
        fam.labels("a").inc()
    assert shared.to_prometheus() == local.to_prometheus()
    snap = shared.snapshot()
    assert isinstance(snap, ringstat.snapshot.Snapshot)
    assert [m["name"] for m in snap["metrics"]] == [m["name"] for m in local.snapshot()["metrics"]]
    assert "latency_us" in shared._repr_html_()
    pd = pytest.importorskip("pandas")
    frame = shared.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == len(snap["metrics"])
    assert shared.name == name
    assert "SharedRegistry" in repr(shared)


def test_errors_are_clear(name: str) -> None:
    reg = ringstat.SharedRegistry(name, max_processes=4, max_entries=8, data_bytes=1 << 16)
    reg.counter("x")
    with pytest.raises(ValueError, match="counter"):
        reg.gauge("x")
    with pytest.raises(ValueError, match="mode must be one of"):
        reg.gauge("g", mode="average")
    with pytest.raises(TypeError):
        reg.counter(3)  # type: ignore[call-overload]

    def fill() -> None:
        for i in range(20):
            reg.counter(f"c{i}")

    with pytest.raises(MemoryError, match="full"):
        fill()
    with pytest.raises(ValueError, match="no shared region named"):
        ringstat.SharedRegistry.attach(name + "-missing")


def test_pickles_by_name(name: str) -> None:
    reg = ringstat.SharedRegistry(name)
    reg.counter("hits").inc(2)
    again = pickle.loads(pickle.dumps(reg))
    assert again.name == name
    again.counter("hits").inc(3)
    assert reg.counter("hits").value == 5


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing_pool(name: str, method: str) -> None:
    reg = ringstat.SharedRegistry(name)
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        pids = pool.starmap(_work, [(reg, n) for n in range(1, 21)])
    assert os.getpid() not in pids
    assert reg.counter("tasks").value == sum(range(1, 21))
    assert reg.histogram("task_size", max_value=1000).count == 20


def _fork_worker(reg: ringstat.SharedRegistry, w: int, ready: int) -> None:
    """A prefork worker: attaches by name (as a gunicorn worker would after
    fork), writes, reports, and waits to be killed."""
    mine = ringstat.SharedRegistry(reg.name or "")
    mine.gauge("inflight").set(10 + w)
    mine.gauge("inflight_all", mode="all").set(10 + w)
    mine.counter("requests").inc(100)
    os.write(ready, b"x")
    signal.pause()


def _prefork(reg: ringstat.SharedRegistry, n: int) -> list[int]:
    r, w = os.pipe()
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                _fork_worker(reg, i, w)
            finally:
                os._exit(0)
        pids.append(pid)
    for _ in range(n):
        assert os.read(r, 1) == b"x"
    os.close(r)
    os.close(w)
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_prefork_workers_and_sigkill(name: str) -> None:
    reg = ringstat.SharedRegistry(name, max_processes=16)
    reg.gauge("inflight")  # registered before the fork, as an app would
    reg.gauge("inflight_all", mode="all")
    pids = _prefork(reg, 4)
    try:
        assert reg.counter("requests").value == 400
        assert _values(reg, "inflight") == [({}, 10 + 11 + 12 + 13)]
        victims, survivors = pids[:2], pids[2:]
        _kill(victims)
        pids = survivors
        # Gauges of the killed workers vanish (livesum); counts stay.
        assert _values(reg, "inflight") == [({}, 12 + 13)]
        assert reg.counter("requests").value == 400
        # "all" keeps a dead worker's value (until its slot is reused),
        # one series per pid.
        per_pid = {labels["pid"]: v for labels, v in _values(reg, "inflight_all")}
        for pid, v in zip(victims + survivors, (10, 11, 12, 13)):
            assert per_pid[str(pid)] == v
    finally:
        _kill(pids)
    assert _values(reg, "inflight") == [({}, 0)]
    assert reg.usage()["process_slots_used"] <= 5


def test_unrelated_process_reads_the_sum_live(name: str) -> None:
    reg = ringstat.SharedRegistry(name)
    c = reg.counter("events")
    code = textwrap.dedent(
        f"""
        import ringstat
        import sys
        reg = ringstat.SharedRegistry.attach({name!r})
        print(reg.counter(sys.argv[1]).value)
        """
    )

    def read(metric: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", code, metric],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return int(out.stdout)

    c.inc(5)
    assert read("events") == 5
    pids = _prefork(reg, 2)
    try:
        # Two workers wrote 100 each, and are still running.
        assert read("requests") == 200
    finally:
        _kill(pids)
    c.inc(1)
    assert read("events") == 6
    assert read("requests") == 200


def _serve_worker(name: str, w: int, ready: Any, done: Any) -> None:
    """A spawned worker: attaches by name, counts and sets its gauge, then
    stays alive (a livesum gauge counts live processes only) until told."""
    reg = ringstat.SharedRegistry.attach(name)
    reg.counter("jobs", help="Jobs done.").inc(10 * (w + 1))
    reg.gauge("inflight").set(w + 1)
    ready.put(w)
    done.wait(60)


# A client in its own process: scrapes the URL (argv[1]) as Prometheus text,
# then as OpenMetrics (by Accept), and prints both replies as JSON.
_SCRAPER = textwrap.dedent(
    """
    import json, sys, urllib.request
    out = []
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        req = urllib.request.Request(sys.argv[1], headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            out.append([r.headers["Content-Type"], r.read().decode()])
    print(json.dumps(out))
    """
)


def _scrape(url: str) -> list[list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRAPER, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: list[list[str]] = json.loads(out.stdout)
    return result


def test_served_natively_to_a_client_process(name: str) -> None:
    reg = ringstat.SharedRegistry(name, max_processes=8, max_entries=64, data_bytes=1 << 20)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=_serve_worker, args=(name, w, ready, done)) for w in range(2)]
    for p in workers:
        p.start()
    try:
        assert sorted(ready.get(timeout=120) for _ in workers) == [0, 1]
        with reg.serve() as server:
            assert server.host == "127.0.0.1"
            (ctype, text), (om_type, om) = _scrape(server.url)
            assert ctype.startswith("text/plain; version=0.0.4")
            assert "# HELP jobs_total Jobs done.\n" in text
            assert "jobs_total 30\n" in text
            assert "inflight 3\n" in text  # 1 + 2, both workers alive
            assert om_type.startswith("application/openmetrics-text; version=1.0.0")
            assert "# TYPE jobs counter\n" in om
            assert "jobs_total 30\n" in om
            assert "inflight 3\n" in om
            assert om.endswith("# EOF\n")
            assert om == reg.to_openmetrics()
            done.set()
            for p in workers:
                p.join(60)
                assert p.exitcode == 0
            # The workers are gone: their counts stay, their gauges vanish.
            (_, text), _ = _scrape(server.url)
            assert "jobs_total 30\n" in text
            assert "inflight 0\n" in text
        assert not server.running
    finally:
        done.set()
        for p in workers:
            p.join(60)
            if p.is_alive():
                p.kill()


def test_serve_arguments_as_registry(name: str) -> None:
    reg = ringstat.SharedRegistry(name, max_processes=4, max_entries=8, data_bytes=1 << 16)
    local = ringstat.Registry()
    bad: list[dict[str, Any]] = [
        {"port": -1},
        {"host": "example.com"},
        {"path": "metrics"},
        {"read_timeout": 0},
        {"max_connections": 0},
        {"basic_auth": ("u", "p"), "basic_auth_sha256": ("u", "00")},
        {"basic_auth": "user"},
    ]
    for kwargs in bad:
        with pytest.raises((ValueError, TypeError)) as shared_err:
            reg.serve(**kwargs)
        with pytest.raises((ValueError, TypeError)) as local_err:
            local.serve(**kwargs)
        assert type(shared_err.value) is type(local_err.value)
        assert str(shared_err.value) == str(local_err.value)
    with reg.serve(path="/m", basic_auth=("u", "p"), gzip=False) as server:
        assert server.url.endswith("/m")
