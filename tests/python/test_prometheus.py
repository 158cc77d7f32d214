"""A real Prometheus (Debian's package, installed by `make tools`) scrapes
Registry.serve() every second on loopback; its HTTP API returns the values
ringstat holds, histogram_quantile over the classic buckets included."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ringstat

PROMETHEUS = shutil.which("prometheus")
# CI (make test) installs Prometheus first: there, a missing one fails.
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("CI"),
    reason="prometheus not installed (make tools installs it)",
)

BOUNDS = [0.01, 0.1, 1.0]
# Per region: (value, how many times).
RECORDED = {"eu": [(0.005, 10), (0.05, 80), (0.5, 10)], "us": [(0.05, 20), (0.5, 80)]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def classic_quantile(q: float, counts: list[float]) -> float:
    """Prometheus' histogram_quantile over cumulative `counts` at BOUNDS
    (+Inf last): linear interpolation inside the bucket holding the rank."""
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, c in zip(BOUNDS, counts):
        if c >= rank:
            return lower + (bound - lower) * (rank - below) / (c - below)
        lower, below = bound, c
    return BOUNDS[-1]


def cumulative(values: list[tuple[float, int]]) -> list[float]:
    return [float(sum(n for v, n in values if v <= b)) for b in BOUNDS] + [
        float(sum(n for _, n in values))
    ]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, ringstat.MetricsServer]]:
    """Prometheus scraping a ringstat server (with basic auth) every second:
    yields (Prometheus' base URL, the ringstat server); both stopped after."""
    assert PROMETHEUS is not None, "prometheus not installed: run make tools"
    reg = ringstat.Registry()
    reg.counter("logins", {"region": "eu"}).inc(7)
    reg.gauge("online").set(-3)
    for region, values in RECORDED.items():
        h = reg.histogram(
            "latency_seconds", {"region": region}, max_value=60, unit=1e-6, buckets=BOUNDS
        )
        for v, n in values:
            for _ in range(n):
                h.record(v)
    server = reg.serve(basic_auth=("prom", "s3cret"))
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "ringstat",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "basic_auth": {"username": "prom", "password": "s3cret"},
                        "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
                    }
                ],
            }
        )
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.console.templates=/nonexistent",
            "--web.console.libraries=/nonexistent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.stop()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(base: str, promql: str) -> list[dict[str, Any]]:
    """The result of `promql` once it is non-empty (Prometheus starting up,
    first scrapes); bounded so a broken setup fails rather than hangs."""
    deadline = time.monotonic() + 60
    while True:
        try:
            result = query(base, promql)
            if result:
                return result
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"no result for {promql}"
        time.sleep(0.2)


def value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_ringstat(prometheus: tuple[str, ringstat.MetricsServer]) -> None:
    base, server = prometheus
    up = wait_for(base, 'up{job="ringstat"} == 1')
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{server.port}"
    assert value(query(base, 'logins_total{region="eu"}')) == 7
    assert value(query(base, "online")) == -3
    buckets = query(base, "latency_seconds_bucket")
    got = {(r["metric"]["region"], float(r["metric"]["le"])): float(r["value"][1]) for r in buckets}
    for region, values in RECORDED.items():
        got_counts = [got[(region, le)] for le in [*BOUNDS, float("inf")]]
        assert got_counts == cumulative(values), region
    assert value(query(base, 'latency_seconds_count{region="us"}')) == 100
    # One region's quantile, and across regions (summed buckets): what a
    # summary cannot do.
    for q in (0.5, 0.9):
        eu = query(base, f'histogram_quantile({q}, latency_seconds_bucket{{region="eu"}})')
        assert value(eu) == pytest.approx(classic_quantile(q, cumulative(RECORDED["eu"])))
        both = query(base, f"histogram_quantile({q}, sum by (le) (latency_seconds_bucket))")
        merged = RECORDED["eu"] + RECORDED["us"]
        assert value(both) == pytest.approx(classic_quantile(q, cumulative(merged)))
    # Every sample of the exposition was ingested.
    assert value(query(base, 'scrape_samples_scraped{job="ringstat"}')) == 2 + 2 * 6
