"""What a shipper's producer call costs from a Python loop, against the
same calls on an in-process ``ringstat.Pipeline`` (the anchor), same run.

Run it (not a test; no broker needed):

    python benches/python/bench_shipper_calls.py             # 200,000 events, 5 rounds
    python benches/python/bench_shipper_calls.py --quick     # smoke run

The workload is ``bench_broker.py``'s: per user a login (``count``), a
session start, a ``seen`` and a session end, 4 calls a user, through
local names bound before the loop. The shippers point at a closed port
(127.0.0.1:1) with a buffer larger than the run, so every event is
buffered and nothing is published: the figure is the producer call
alone (validation, buffer, metrics). The ``drop_newest`` row has a
buffer of 16 events, so nearly every call is a counted drop.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import ringstat
from ringstat.broker import KafkaShipper, Shipper


def calls(target: Any, users: int) -> float:
    """Seconds for the 4 calls a user on ``target``."""
    count, start, seen, end = target.count, target.session_start, target.seen, target.session_end
    t0 = time.perf_counter()
    for u in range(users):
        count("logins")
        start("online", u, 1000 + u)
        seen("users", u)
        end("online", u, 5000 + u)
    return time.perf_counter() - t0


def pipeline(users: int) -> float:
    p = ringstat.Pipeline(ringstat.Registry(), capacity=1 << 20, workers=1)
    try:
        return calls(p, users)
    finally:
        p.close()


def shipper(make: Callable[[], Any], users: int) -> float:
    s = make()
    try:
        return calls(s, users)
    finally:
        s.close(timeout=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round: a smoke run")
    parser.add_argument("--events", type=int, help="events per run (default 200,000)")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 200_000)
    users = max(1, events // 4)
    rounds = args.rounds or (1 if args.quick else 5)
    cap = 4 * users + 4096
    amqp = "amqp://guest:guest@127.0.0.1:1/%2F"
    rows: list[tuple[str, Callable[[], float]]] = [
        ("Pipeline (anchor)", lambda: pipeline(users)),
        ("Shipper (RabbitMQ)", lambda: shipper(lambda: Shipper(amqp, capacity=cap), users)),
        (
            "KafkaShipper",
            lambda: shipper(lambda: KafkaShipper("kafka://127.0.0.1:1", capacity=cap), users),
        ),
        (
            "Shipper, drop_newest, 16 events",
            lambda: shipper(
                lambda: Shipper(amqp, capacity=16, overflow="drop_newest", backoff=10.0), users
            ),
        ),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(rounds):  # interleaved, so host noise hits every row alike
        for name, run in rows:
            times[name].append(run())
    anchor = statistics.median(times[rows[0][0]]) / (4 * users)
    print(f"{4 * users:,} calls, {rounds} rounds, median ns per call (min-max), x anchor")
    for name, _ in rows:
        per = [t / (4 * users) * 1e9 for t in times[name]]
        med = statistics.median(per)
        print(
            f"{name:34} {med:8.1f} ns ({min(per):.1f}-{max(per):.1f})  {med / anchor / 1e9:5.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
