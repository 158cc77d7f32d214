"""Scraping 1,000 series: ringstat's native endpoint against prometheus_client's.

Run it (not a test):

    python benches/python/bench_scrape.py            # full run
    python benches/python/bench_scrape.py --quick    # smoke run, seconds

The same metrics in both registries (400 labelled counters, 400 labelled
gauges, 200 labelled histograms with prometheus_client's default buckets, no
``_created`` samples;
ringstat's histograms get the same bounds, so both expose classic buckets),
served by ``Registry.serve()`` and by ``prometheus_client.start_http_server``
in this process. A client in another process (``http.client``, a new
connection per scrape, as Prometheus does when a server closes them, and as
prometheus_client's server does) scrapes each in turn, in interleaved rounds
(A B A B ...), under two conditions:

- GIL free: this process only waits for the client;
- GIL held: a Python thread here spins in pure Python for the whole round,
  so a server that needs the GIL competes for it with the spinner.

The table reports, per contender and condition, the median over rounds of the
per-round median scrape latency and of scrapes per second, and the ratio of
prometheus_client's latency to the row's (above 1: the row is faster), as
the median and min-max over rounds (each round pairs the contenders' runs).
Every number printed is measured in this run.

ringstat runs twice: with the default 3 significant digits, whose histograms
hold ~18,000 log-linear buckets each (60 s in microseconds) that every
scrape reads to derive the classic buckets, and with 2 digits (~2,300).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import threading
from typing import Any

import ringstat

COUNTERS, GAUGES, HISTOGRAMS = 400, 400, 200

CLIENT = textwrap.dedent(
    """
    import http.client, json, sys, time
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    lat = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        lat.append(time.perf_counter() - t0)
        assert r.status == 200, r.status
        size = len(body)
        lines = sum(1 for l in body.splitlines() if l and not l.startswith(b"#"))
    print(json.dumps({"latencies": lat, "bytes": size, "samples": lines}))
    """
)


def build_ringstat(digits: int) -> ringstat.Registry:
    import prometheus_client

    bounds = [b for b in prometheus_client.Histogram.DEFAULT_BUCKETS if b != float("inf")]
    reg = ringstat.Registry()
    for i in range(COUNTERS):
        reg.counter("requests", {"route": f"r{i}"}).inc(i)
    for i in range(GAUGES):
        reg.gauge("in_flight", {"route": f"r{i}"}).set(i)
    for i in range(HISTOGRAMS):
        h = reg.histogram(
            "latency_seconds",
            {"route": f"r{i}"},
            max_value=60,
            unit=1e-6,
            significant_digits=digits,
            buckets=bounds,
        )
        for k in range(20):
            h.record(0.001 * (i % 50 + k))
    return reg


def build_prometheus_client() -> Any:
    import prometheus_client

    reg = prometheus_client.CollectorRegistry()
    c = prometheus_client.Counter("requests", "", ["route"], registry=reg)
    g = prometheus_client.Gauge("in_flight", "", ["route"], registry=reg)
    h = prometheus_client.Histogram("latency_seconds", "", ["route"], registry=reg)
    for i in range(COUNTERS):
        c.labels(f"r{i}").inc(i)
    for i in range(GAUGES):
        g.labels(f"r{i}").set(i)
    for i in range(HISTOGRAMS):
        child = h.labels(f"r{i}")
        for k in range(20):
            child.observe(0.001 * (i % 50 + k))
    return reg


def scrape(port: int, n: int) -> dict[str, Any]:
    """``n`` scrapes by a client in another process."""
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, "127.0.0.1", str(port), "/metrics", str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


class Spinner:
    """A Python thread spinning in pure Python (holding the GIL but for the
    interpreter's switch interval) until stopped."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        self.started.set()
        x = 0
        while not self.stop.is_set():
            for _ in range(1000):
                x += 1

    def __enter__(self) -> None:
        self.thread.start()
        self.started.wait()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def report(
    sizes: dict[str, tuple[int, int]],
    results: dict[tuple[str, str], list[tuple[float, float]]],
    contenders: list[str],
) -> None:
    for name, (size, samples) in sizes.items():
        print(f"  {name}: {samples} samples, {size} bytes per scrape")
    print()
    header = (
        f"{'condition':<10} {'contender':<18} {'median ms':>10} {'scrapes/s':>10} "
        f"{'prometheus_client/this latency':>32}"
    )
    print(header)
    print("-" * len(header))
    for condition in ("GIL free", "GIL held"):
        anchor = results[(condition, "prometheus_client")]
        for name in contenders:
            rs = results[(condition, name)]
            med_ms = statistics.median(r[0] for r in rs) * 1e3
            rate = statistics.median(r[1] for r in rs)
            ratio = ""
            if name != "prometheus_client":
                ratios = [t[0] / o[0] for t, o in zip(anchor, rs)]
                ratio = f"{statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"
            print(f"{condition:<10} {name:<18} {med_ms:>10.2f} {rate:>10.0f} {ratio:>32}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few scrapes, 1 round: a smoke run")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--scrapes", type=int, default=0, help="scrapes per round")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 7)
    n = args.scrapes or (5 if args.quick else 100)

    try:
        import prometheus_client
    except ImportError:
        print("prometheus_client is not installed (pip install -e .[bench]): nothing to compare")
        return 0

    # No `_created` samples: the same samples as ringstat's exposition.
    if hasattr(prometheus_client, "disable_created_metrics"):
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    servers = {
        "ringstat": build_ringstat(3).serve(),
        "ringstat 2 digits": build_ringstat(2).serve(),
    }
    theirs = build_prometheus_client()
    started = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=theirs)
    # prometheus_client >= 0.19 returns (server, thread); older ones nothing.
    if not isinstance(started, tuple):
        print("prometheus_client too old to report its port: nothing to compare")
        return 0
    their_server, their_thread = started
    their_port = their_server.server_port
    contenders = {name: s.port for name, s in servers.items()}
    contenders["prometheus_client"] = their_port

    print(
        f"Scrape of {COUNTERS + GAUGES + HISTOGRAMS} series: {rounds} rounds x {n} scrapes "
        f"per contender and condition, client in another process"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    sizes: dict[str, tuple[int, int]] = {}
    # (condition, contender) -> per-round (median latency s, scrapes/s)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for condition in ("GIL free", "GIL held"):
            for name, port in contenders.items():
                if condition == "GIL held":
                    with Spinner():
                        r = scrape(port, n)
                else:
                    r = scrape(port, n)
                lat = r["latencies"]
                sizes[name] = (r["bytes"], r["samples"])
                results.setdefault((condition, name), []).append(
                    (statistics.median(lat), len(lat) / sum(lat))
                )
    for s in servers.values():
        s.stop()
    their_server.shutdown()
    their_server.server_close()
    their_thread.join()

    report(sizes, results, list(contenders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
