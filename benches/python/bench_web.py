"""Serving /metrics from a Python service: rendering cost, and what a scrape
costs the event loop.

Run it (not a test):

    python benches/python/bench_web.py            # 1,000 series, 15 rounds
    python benches/python/bench_web.py --quick    # smoke run, seconds

Two measurements, each contender interleaved in rounds (A B A B ...) in the
same run; the table gives the median over rounds and its ratio to the first
row:

- render: ``Registry.to_prometheus()`` of ``--series`` series (a quarter each
  counters, gauges, rates and histograms, labelled by route) against
  ``prometheus_client.generate_latest`` of the same metrics (histograms as
  its ``Summary``, which has no quantiles, and as its ``Histogram`` with the
  default buckets);
- loop stall: the longest gap of a coroutine ticking every millisecond
  while ``ringstat.asgi.MetricsApp`` answers 5 scrapes (gzip) through
  httpx's in-process ASGI transport, against the same reply rendered inline
  on the loop, and against no scrape at all (the machine's own jitter).

On a shared 2-core machine the loop-stall figures carry the host's jitter
(the no-scrape row shows it); trust the ratios between rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ringstat
from ringstat.asgi import MetricsApp
from ringstat.exposition import respond


def ringstat_registry(series: int) -> ringstat.Registry:
    reg = ringstat.Registry()
    for i in range(series):
        labels = {"route": f"/r{i}"}
        kind = i % 4
        if kind == 0:
            reg.counter("requests", labels).inc(i)
        elif kind == 1:
            reg.gauge("in_flight", labels).set(i)
        elif kind == 2:
            reg.rate("rps", labels).inc()
        else:
            h = reg.histogram("latency_seconds", labels, max_value=60.0, unit=1e-6)
            for v in range(50):
                h.record(v * 0.001 * (i % 7 + 1))
    return reg


def prometheus_client_registry(series: int, histogram: bool) -> Any:
    import prometheus_client as pc

    reg = pc.CollectorRegistry()
    requests = pc.Counter("requests", "", ["route"], registry=reg)
    in_flight = pc.Gauge("in_flight", "", ["route"], registry=reg)
    rps = pc.Gauge("rps", "", ["route"], registry=reg)
    metric_type = pc.Histogram if histogram else pc.Summary
    latency = metric_type("latency_seconds", "", ["route"], registry=reg)
    for i in range(series):
        route = f"/r{i}"
        kind = i % 4
        if kind == 0:
            requests.labels(route).inc(i)
        elif kind == 1:
            in_flight.labels(route).set(i)
        elif kind == 2:
            rps.labels(route).set(1)
        else:
            for v in range(50):
                latency.labels(route).observe(v * 0.001 * (i % 7 + 1))
    return reg


def render_ms(render: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        render()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


async def inline_app(reg: ringstat.Registry, scope: Any, receive: Any, send: Any) -> None:
    reply = respond(reg, scope["method"], None, "gzip")
    headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def loop_stall_ms(app: Any, scrapes: int) -> float:
    import httpx

    async def main() -> float:
        done = False
        worst = 0.0

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        tick = asyncio.ensure_future(ticker())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(scrapes):
                if app is not None:
                    (await client.get("/metrics")).raise_for_status()
                await asyncio.sleep(0.01)  # let the ticker run between scrapes
        done = True
        await tick
        return worst * 1e3

    return asyncio.run(main())


def table(title: str, rows: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    first = statistics.median(next(iter(rows.values())))
    for name, values in rows.items():
        med = statistics.median(values)
        ratio = med / first if first else float("nan")
        print(f"  {name:<48} {med:9.2f} ms  x{ratio:6.2f}  (min {min(values):.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100 series, 2 rounds: a smoke run")
    parser.add_argument("--series", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    series = args.series or (100 if args.quick else 1000)
    rounds = args.rounds or (2 if args.quick else 15)
    print(
        f"Python {sys.version.split()[0]}, {series} series, {rounds} rounds"
        + (", --quick (numbers not meaningful)" if args.quick else "")
    )
    reg = ringstat_registry(series)

    renders: dict[str, Callable[[], object]] = {"ringstat to_prometheus()": reg.to_prometheus}
    try:
        import prometheus_client

        summary = prometheus_client_registry(series, histogram=False)
        buckets = prometheus_client_registry(series, histogram=True)
        renders["prometheus_client generate_latest (Summary)"] = lambda: (
            prometheus_client.generate_latest(summary)
        )
        renders["prometheus_client generate_latest (Histogram)"] = lambda: (
            prometheus_client.generate_latest(buckets)
        )
    except ImportError:
        print("prometheus_client not installed: render anchors skipped")
    render_rows: dict[str, list[float]] = {name: [] for name in renders}
    for _ in range(rounds):
        for name, render in renders.items():
            render_rows[name].append(render_ms(render, 3))
    table("render, best of 3 per round", render_rows)

    try:
        import httpx  # noqa: F401
    except ImportError:
        print("httpx not installed: loop stall skipped (pip install -e .[web])")
        return 0
    apps: dict[str, Any] = {
        "MetricsApp (render on a worker thread)": MetricsApp(reg),
        "the same reply rendered inline on the loop": (
            lambda scope, receive, send: inline_app(reg, scope, receive, send)
        ),
        "no scrape (the host's jitter)": None,
    }
    stall_rows: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            stall_rows[name].append(loop_stall_ms(app, 5))
    table("longest event-loop stall over 5 scrapes", stall_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
