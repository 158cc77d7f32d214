"""The broker-per-event architecture against ringstat's frames, through the
same RabbitMQ on this machine, end to end (producer call to statistics
applied), durability on for both.

Run it (not a test; needs rabbitmq-server and pika, ``make broker-tools``):

    python benches/python/bench_broker.py            # 200,000 events, 3 rounds
    python benches/python/bench_broker.py --quick    # smoke run
    python benches/python/bench_broker.py --url amqp://guest:guest@127.0.0.1:5672/%2F

Without ``--url`` it starts a private node on 127.0.0.1 (as the tests do)
and stops it at the end. The workload is the user-activity stream: per user
a login (counter), a session start, a "seen" (distinct users) and a session
end: 4 events a user.

- **pika, one message per event**: a producer thread publishes each event
  as a small JSON message, persistent, with publisher confirms (pika's
  blocking channel waits for each confirm); a consumer thread (prefetch
  1000) decodes it, updates a dict/set/int and acknowledges it.
- **pika, per event, no confirms**: the same with persistent messages but
  without publisher confirms (a lower durability bar: a publish lost in a
  broker crash goes unnoticed), the fast end of what that architecture does.
- **ringstat shipper + consumer (classic queue)**: ``ringstat.broker``:
  the same events into a :class:`Shipper` (frames of up to 4096 events,
  persistent, confirmed) and a :class:`Consumer` applying them to a
  ``Pipeline`` (ack after apply, dedup on).
- **ringstat shipper + consumer (stream)**: the same through a RabbitMQ
  stream (``x-queue-type: stream``).
- **Rust shipper + consumer (lapin, classic queue)**, with
  ``--rust-example PATH`` (build it with ``cargo build --release --features
  rabbitmq --example broker_rabbitmq``; PATH is then
  ``target/release/examples/broker_rabbitmq``): ``ringstat::broker`` in one
  Rust process, up to 8 frames in flight; the figure is the one the example
  prints (its own process start not included).

Contenders run interleaved in rounds; the table gives the median events per
second, the ratio over each pika baseline per round (median, min-max), the
broker's CPU seconds per run and its memory (VmRSS of the beam process,
from /proc, after the contender's runs; the Erlang VM keeps what it took,
so a row inherits the growth of the rows before it). Trust the ratios, not the rates, on a
busy two-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pika

import ringstat
from ringstat.broker import Consumer, Shipper

TICK = os.sysconf("SC_CLK_TCK")


def beam_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def beam_mem_mib(pid: int | None) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    if pid is None:
        return (0.0, 0.0)
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            vals[k] = int(v.split()[0]) / 1024
    return (vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0))


def pika_per_event(url: str, users: int, confirm: bool = True) -> float:
    q = "bench.pika." + uuid.uuid4().hex[:8]
    params = pika.URLParameters(url)
    total = 4 * users
    state: dict[str, Any] = {"logins": 0, "online": {}, "users": set(), "durations": []}
    done = threading.Event()

    def consume() -> None:
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.queue_declare(queue=q, durable=True)
        ch.basic_qos(prefetch_count=1000)
        for seen, (method, _props, body) in enumerate(ch.consume(q), 1):
            op, user, ts = json.loads(body)
            if op == "login":
                state["logins"] += 1
            elif op == "start":
                state["online"][user] = ts
            elif op == "seen":
                state["users"].add(user)
            else:
                state["durations"].append(ts - state["online"].pop(user))
            ch.basic_ack(method.delivery_tag)
            if seen == total:
                break
        ch.cancel()
        conn.close()
        done.set()

    setup = pika.BlockingConnection(params)
    setup.channel().queue_declare(queue=q, durable=True)
    setup.close()
    t = threading.Thread(target=consume)
    t.start()
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if confirm:
        ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    t0 = time.perf_counter()
    for u in range(users):
        for ev in (("login", u, 0), ("start", u, 1000 + u), ("seen", u, 0), ("end", u, 5000 + u)):
            ch.basic_publish("", q, json.dumps(ev).encode(), properties=props)
    done.wait()
    elapsed = time.perf_counter() - t0
    t.join()
    ch.queue_delete(q)
    conn.close()
    assert state["logins"] == users, "pika lost events"
    assert len(state["users"]) == users
    assert len(state["durations"]) == users
    assert not state["online"]
    return total / elapsed


def ringstat_frames(url: str, users: int, stream: bool) -> float:
    q = "bench.ringstat." + uuid.uuid4().hex[:8]
    total = 4 * users
    p = ringstat.Pipeline(ringstat.Registry(), workers=1)
    c = Consumer(url, p, q, prefetch=8, stream_offset="first" if stream else None).start()
    s = Shipper(url, q, stream=stream, batch_size=4096)
    t0 = time.perf_counter()
    count, start, seen, end = s.count, s.session_start, s.seen, s.session_end
    for u in range(users):
        count("logins")
        start("online", u, 1000 + u)
        seen("users", u)
        end("online", u, 5000 + u)
    assert c.wait_events(total, 600), (s.stats(), c.stats())
    p.flush()
    elapsed = time.perf_counter() - t0
    s.close()
    c.stop()
    reg = p.registry
    assert reg.counter("logins").value == users, "ringstat lost events"
    assert reg.gauge("online_open").value == 0
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_delete(q)
    conn.close()
    p.close()
    return total / elapsed


def rust_example(path: str, url: str, users: int) -> float:
    """Runs examples/broker_rabbitmq.rs's binary; its events/s end to end."""
    import re
    import subprocess

    out = subprocess.run(
        [path, "--url", url, "--users", str(users)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    m = re.search(r"([0-9.]+) events/s end to end", out)
    assert m is not None, out
    assert f"logins {users}," in out, out
    return float(m.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round: a smoke run")
    parser.add_argument("--url", help="an existing broker (default: start a private node)")
    parser.add_argument("--events", type=int, help="events per run (default 200,000)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--rust-example",
        help="the built examples/broker_rabbitmq binary: adds the Rust shipper + consumer",
    )
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 200_000)
    users = max(1, events // 4)
    rounds = args.rounds or (1 if args.quick else 3)

    node = None
    url = args.url
    beam: int | None = None
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
        from rabbitmq_node import RabbitNode

        node = RabbitNode()
        t0 = time.perf_counter()
        node.start()
        print(f"private rabbitmq node started in {time.perf_counter() - t0:.1f} s")
        beam = node.beam_pid()
    target = url if url is not None else node.url if node is not None else ""
    try:
        contenders: list[tuple[str, Callable[[], float]]] = [
            ("pika, one message per event", lambda: pika_per_event(target, users)),
            (
                "pika, per event, no confirms",
                lambda: pika_per_event(target, users, False),
            ),
            (
                "ringstat frames, classic queue",
                lambda: ringstat_frames(target, users, False),
            ),
            ("ringstat frames, stream", lambda: ringstat_frames(target, users, True)),
        ]
        if args.rust_example:
            example = args.rust_example
            contenders.append(
                ("Rust shipper+consumer, classic", lambda: rust_example(example, target, users))
            )
        rates: dict[str, list[float]] = {n: [] for n, _ in contenders}
        cpu: dict[str, float] = {n: 0.0 for n, _ in contenders}
        hwm: dict[str, float] = {n: 0.0 for n, _ in contenders}
        for r in range(rounds):
            for name, run in contenders:
                c0 = beam_cpu(beam)
                rates[name].append(run())
                cpu[name] += beam_cpu(beam) - c0
                hwm[name] = max(hwm[name], beam_mem_mib(beam)[0])
                print(f"round {r + 1}: {name}: {rates[name][-1]:,.0f} events/s", flush=True)
        base = rates[contenders[0][0]]
        base_nc = rates[contenders[1][0]]
        print()
        quick = ", --quick (numbers not meaningful)" if args.quick else ""
        print(f"{events:,} events a run, {rounds} rounds{quick}")
        print(
            f"{'contender':32} {'events/s':>10} {'x pika (min-max)':>20} "
            f"{'x pika no-confirm':>20} {'broker CPU s/run':>17} {'broker RSS MiB after':>21}"
        )
        for name, _ in contenders:
            ratios = [a / b for a, b in zip(rates[name], base)]
            ratios_nc = [a / b for a, b in zip(rates[name], base_nc)]
            print(
                f"{name:32} {statistics.median(rates[name]):>10,.0f} "
                f"{statistics.median(ratios):>9.1f} ({min(ratios):.1f}-{max(ratios):.1f}) "
                f"{statistics.median(ratios_nc):>9.1f} ({min(ratios_nc):.1f}-{max(ratios_nc):.1f}) "
                f"{cpu[name] / rounds:>17.2f} {hwm[name]:>21.0f}"
            )
        if beam is None:
            print("(broker CPU/memory: only with the private node, no --url)")
    finally:
        if node is not None:
            node.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
