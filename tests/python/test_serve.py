"""Registry.serve(): the native scrape endpoint, scraped by real HTTP clients
(urllib here, and in another process for the GIL test)."""

from __future__ import annotations

import base64
import gzip
import json
import mmap
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

import ringstat

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def registry() -> ringstat.Registry:
    reg = ringstat.Registry()
    reg.counter("logins", {"region": "eu"}, help="Successful logins.").inc(7)
    reg.gauge("online").set(3)
    for region, values in (("eu", [0.005, 0.05, 0.5]), ("us", [0.05, 2.0])):
        h = reg.histogram(
            "latency_seconds",
            {"region": region},
            max_value=60,
            unit=1e-6,
            buckets=[0.01, 0.1, 1.0],
        )
        for v in values:
            h.record(v)
    reg.histogram("online_seconds", max_value=86_400).record(30)
    return reg


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_smoke_prometheus_text() -> None:
    reg = registry()
    with reg.serve() as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert server.running
        status, headers, body = fetch(server.url)
    assert not server.running
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert text == reg.to_prometheus()
    families = {f.name: f for f in parse_prometheus(text)}
    assert families["latency_seconds"].type == "histogram"
    assert families["online_seconds"].type == "summary"
    buckets = {
        (s.labels["region"], s.labels["le"]): s.value
        for s in families["latency_seconds"].samples
        if s.name == "latency_seconds_bucket"
    }
    assert buckets == {
        ("eu", "0.01"): 1,
        ("eu", "0.1"): 2,
        ("eu", "1"): 3,
        ("eu", "+Inf"): 3,
        ("us", "0.01"): 0,
        ("us", "0.1"): 1,
        ("us", "1"): 1,
        ("us", "+Inf"): 2,
    }


def test_openmetrics_by_accept_and_parseable() -> None:
    reg = registry()
    reg.counter("x_total").inc()
    reg.gauge("x").set(1)
    with reg.serve() as server:
        status, headers, body = fetch(server.url, {"Accept": OPENMETRICS})
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text == reg.to_openmetrics()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}  # type: ignore[no-untyped-call]
    assert families["logins"].type == "counter"
    assert families["logins"].documentation == "Successful logins."
    assert families["latency_seconds"].type == "histogram"
    assert families["online_seconds"].type == "summary"
    # A counter x_total beside a gauge x: typed unknown under its own name.
    assert families["x_total"].type == "unknown"
    assert families["x"].type == "gauge"


def test_gzip_when_asked() -> None:
    reg = registry()
    with reg.serve() as server:
        status, headers, body = fetch(server.url, {"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["content-encoding"] == "gzip"
        assert gzip.decompress(body).decode() == reg.to_prometheus()
        _, headers, body = fetch(server.url)
        assert "content-encoding" not in headers
    with reg.serve(gzip=False) as server:
        _, headers, _ = fetch(server.url, {"Accept-Encoding": "gzip"})
        assert "content-encoding" not in headers


def test_only_get_and_head_of_the_path() -> None:
    with registry().serve(path="/custom") as server:
        assert server.url.endswith("/custom")
        base = f"http://127.0.0.1:{server.port}"
        assert fetch(base + "/metrics")[0] == 404
        assert fetch(base + "/")[0] == 404
        assert fetch(base + "/custom?x=1")[0] == 200
        req = urllib.request.Request(server.url, data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        with e.value:
            assert e.value.code == 405
            assert e.value.headers["Allow"] == "GET, HEAD"
        req = urllib.request.Request(server.url, method="HEAD")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            assert r.read() == b""


def test_basic_auth() -> None:
    def auth(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    digest = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"  # "s3cret"
    for kwargs in (
        {"basic_auth": ("prom", "s3cret")},
        {"basic_auth_sha256": ("prom", digest)},
    ):
        with registry().serve(**kwargs) as server:  # type: ignore[arg-type]
            status, headers, _ = fetch(server.url)
            assert status == 401
            assert headers["www-authenticate"].startswith('Basic realm="ringstat"')
            assert fetch(server.url, auth("prom", "wrong"))[0] == 401
            assert fetch(server.url, auth("other", "s3cret"))[0] == 401
            assert fetch(server.url, auth("prom", "s3cret"))[0] == 200


def test_slow_client_does_not_hold_the_server() -> None:
    with registry().serve(read_timeout=0.3) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        try:
            slow.sendall(b"GET /metr")
            # Another client's scrapes complete while the first stalls.
            for _ in range(3):
                assert fetch(server.url)[0] == 200
            # And the server closes the stalled one (not the watchdog).
            slow.settimeout(30)
            rest = b""
            while chunk := slow.recv(4096):
                rest += chunk
            assert rest == b"" or rest.startswith(b"HTTP/1.1 408")
        finally:
            slow.close()


def test_bad_arguments() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="port"):
        reg.serve(port=70_000)
    with pytest.raises(ValueError, match="port"):
        reg.serve(port=-1)
    with pytest.raises(TypeError, match="host"):
        reg.serve(host=1)  # type: ignore[arg-type]
    # Never looked up: an IP address or "localhost" only.
    with pytest.raises(ValueError, match="host must be an IP address"):
        reg.serve(host="no-such-host.invalid")
    with reg.serve(host="localhost") as server:
        assert server.host == "127.0.0.1"
    with pytest.raises(ValueError, match="read_timeout"):
        reg.serve(read_timeout=2**63)
    with pytest.raises(ValueError, match="path"):
        reg.serve(path="metrics")
    with pytest.raises(ValueError, match="read_timeout"):
        reg.serve(read_timeout=-1)
    with pytest.raises(ValueError, match="read_timeout"):
        reg.serve(read_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        reg.serve(max_connections=0)
    with pytest.raises(ValueError, match="percentiles"):
        reg.serve(percentiles=[101])
    with pytest.raises(TypeError, match="basic_auth"):
        reg.serve(basic_auth="prom:s3cret")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="basic_auth"):
        reg.serve(basic_auth=("prom", 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SHA-256"):
        reg.serve(basic_auth_sha256=("prom", "abc"))
    with pytest.raises(TypeError, match="not both"):
        reg.serve(basic_auth=("a", "b"), basic_auth_sha256=("a", "0" * 64))
    with reg.serve() as server, pytest.raises(OSError, match="in use"):
        reg.serve(port=server.port)


def test_buckets_arguments() -> None:
    reg = ringstat.Registry()
    with pytest.raises(ValueError, match="buckets"):
        reg.histogram("h", max_value=10, buckets=[])
    with pytest.raises(ValueError, match="buckets"):
        reg.histogram("h", max_value=10, buckets=[2, 1])
    with pytest.raises(ValueError, match="buckets"):
        reg.histogram("h", max_value=10, buckets=[1, float("nan")])
    with pytest.raises(TypeError, match="buckets"):
        reg.histogram("h", max_value=10, buckets="1,2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="buckets"):
        reg.histogram("h", max_value=10, buckets=[1, "2"])  # type: ignore[list-item]
    reg.histogram("h", max_value=10, buckets=[1, 5])
    reg.histogram("h", {"a": "b"}, max_value=10, buckets=[1, 5, float("inf")])
    with pytest.raises(ValueError, match="buckets"):
        reg.histogram("h", max_value=10, buckets=[1, 6])
    reg.counter("c")
    with pytest.raises(ValueError, match="counter"):
        reg.set_buckets("c", [1])
    fam = reg.histogram("f", max_value=10, labelnames=["k"], buckets=[3])
    fam.labels("v").record(2)
    assert 'f_bucket{k="v",le="3"} 1\n' in reg.to_prometheus()


def test_stop_is_idempotent_and_unregisters() -> None:
    server = registry().serve()
    assert repr(server).startswith("<ringstat.MetricsServer http://127.0.0.1:")
    server.stop()
    server.stop()
    assert "stopped" in repr(server)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_stop_its_copy() -> None:
    """A child forked after serve() has no server thread: stop() there must
    not join one (or hang), and the parent's server keeps serving."""
    server = registry().serve()
    try:
        with warnings.catch_warnings():
            # 3.12+ warns about fork() in a process with threads.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                server.stop()
                code = 0 if not server.running else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert server.running
        assert fetch(server.url)[0] == 200
    finally:
        server.stop()


def test_a_server_left_running_stops_at_exit(tmp_path: Path) -> None:
    # The interpreter exits normally with a server never stopped.
    code = textwrap.dedent(
        """
        import atexit, ringstat, urllib.request
        reg = ringstat.Registry()
        reg.counter("c").inc()
        # Registered before serve(): atexit runs it after the server's stop.
        atexit.register(lambda: print("running at exit:", s.running))
        s = reg.serve()
        with urllib.request.urlopen(s.url, timeout=30) as r:
            assert r.status == 200
        print(s.port)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    port_line, at_exit = out.stdout.splitlines()
    assert at_exit == "running at exit: False"
    port = int(port_line)
    assert out.stderr == ""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


CLIENT = """
import json, mmap, sys, time, urllib.request
url, flag, out, n = sys.argv[1:5]
with open(flag, "r+b") as f, mmap.mmap(f.fileno(), 2) as mm:
    deadline = time.monotonic() + 60
    while not mm[0]:  # the spinner is running
        if time.monotonic() > deadline:
            sys.exit("the spinner never started")
        time.sleep(0.001)
    results = []
    for _ in range(int(n)):
        with urllib.request.urlopen(url, timeout=30) as r:
            results.append([r.status, b'logins_total{region="eu"} 7' in r.read()])
    with open(out, "w") as o:
        json.dump(results, o)
    mm[1] = 1  # done
"""


@pytest.mark.parametrize("kind", ["registry", "shared"])
def test_scrapes_complete_while_a_python_thread_holds_the_gil(tmp_path: Path, kind: str) -> None:
    """Order, not time: the client (another process) starts scraping only
    once the spinner runs, and the spinner stops only once the client is
    done. The spinner holds the GIL throughout: a pure-Python loop whose
    checks (a byte of a shared mmap, the monotonic clock) never release it,
    with the switch interval raised past its deadline so no other thread can
    take the GIL from it. A server that needed the GIL would answer no
    scrape until the spinner gave up. The same for a shared registry."""
    reg: ringstat.Registry | ringstat.SharedRegistry
    if kind == "registry":
        reg = registry()
    else:
        if sys.platform != "linux":
            pytest.skip("shared memory is Linux-only")
        reg = ringstat.SharedRegistry(
            f"ringstat-serve-gil-{os.getpid()}", max_processes=4, max_entries=16
        )
        reg.unlink()  # the mapping stays; the name is not needed
        reg.counter("logins", {"region": "eu"}).inc(7)
    flag, out = tmp_path / "flag", tmp_path / "out"
    flag.write_bytes(b"\0\0")
    n = 20
    with reg.serve() as server, open(flag, "r+b") as f, mmap.mmap(f.fileno(), 2) as mm:
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, server.url, str(flag), str(out), str(n)]
        )
        spun = {"iterations": 0, "saw_done": False}

        def spin() -> None:
            mm[0] = 1  # go
            deadline = time.monotonic() + 60
            i = 0
            while True:
                i += 1
                if i % 1000 == 0:
                    if mm[1]:
                        spun["saw_done"] = True
                        break
                    if time.monotonic() > deadline:
                        break
            spun["iterations"] = i

        old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            spinner = threading.Thread(target=spin)
            spinner.start()
            spinner.join()
        finally:
            sys.setswitchinterval(old)
        assert client.wait(timeout=60) == 0
    assert spun["saw_done"], "the client did not finish while the spinner ran"
    assert spun["iterations"] > 0
    assert json.loads(out.read_text()) == [[200, True]] * n
