"""The broker-per-event architecture against ringstat's frames, through the
same broker on this machine (RabbitMQ, then Kafka), end to end (producer
call to statistics applied), durability on for both.

Run it (not a test; needs rabbitmq-server and pika, ``make broker-tools``,
and for the Kafka rows tansu and confluent-kafka, ``make kafka-tools``):

    python benches/python/bench_broker.py            # 200,000 events, 3 rounds
    python benches/python/bench_broker.py --quick    # smoke run
    python benches/python/bench_broker.py --url amqp://guest:guest@127.0.0.1:5672/%2F
    python benches/python/bench_broker.py --only kafka --kafka-url kafka://127.0.0.1:9092

Without ``--url`` (``--kafka-url``) it starts a private RabbitMQ node
(tansu broker, SQLite storage) on 127.0.0.1 as the tests do, and stops it at
the end. The workload is the user-activity stream: per user
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

- **confluent-kafka, one message per event**: the Kafka form of the first
  row: a producer (``acks=all``, idempotent, librdkafka's own batching)
  produces each event as a small JSON message; a consumer updates a
  dict/set/int and stores each message's offset after applying it, which
  the client commits every 5 s and at the end (at-least-once, the usual
  confluent-kafka way; committing each message, even asynchronously,
  floods the broker with tens of thousands of commit requests in flight
  and did not finish 200,000 events in 15 minutes here).
- **ringstat KafkaShipper + KafkaConsumer**: the same events as frames of up
  to 4096 events (``acks=all``, idempotent), applied to a ``Pipeline``,
  offsets committed after apply (one commit in flight at a time), dedup on.
- **Rust shipper + consumer (rdkafka)**, with ``--rust-kafka-example PATH``
  (build it with ``cargo build --release --features kafka --example
  broker_kafka``; PATH is then ``target/release/examples/broker_kafka``):
  ``ringstat::broker::kafka`` in one Rust process, the same frames and
  settings; the figure is the one the example prints, timed after its own
  warm-up event (its process start not included).

The Kafka rows are timed after one warm-up event crossed end to end on
each side (the idempotent producer takes about 0.5 s to get its producer
id; the RabbitMQ rows include their connection set-up, a few ms).

Contenders run interleaved in rounds (each broker's rows together); the
table gives the median events per second, the ratio over each per-event
baseline per round (median, min-max), the
broker's CPU seconds per run and its memory (VmRSS of the beam or tansu
process, from /proc, after the contender's runs; neither gives back all it
took, so a row inherits the growth of the rows before it). Trust the ratios, not the rates, on a
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


def apply_event(state: dict[str, Any], body: bytes) -> None:
    """The per-event consumer's work: decode one JSON event, update the dict."""
    op, user, ts = json.loads(body)
    if op == "login":
        state["logins"] += 1
    elif op == "start":
        state["online"][user] = ts
    elif op == "seen":
        state["users"].add(user)
    else:
        state["durations"].append(ts - state["online"].pop(user))


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
            apply_event(state, body)
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


def warm_up(producer: Any, topic: str, state: dict[str, Any]) -> None:
    """One event end to end (the idempotent producer's id, the consumer's
    first fetch), not timed, as for ringstat's Kafka row."""
    producer.produce(topic, json.dumps(("seen", -1, 0)).encode())
    producer.flush()
    while len(state["users"]) < 1:
        time.sleep(0.001)
    state["users"].clear()


def kafka_per_event(url: str, users: int) -> float:
    import confluent_kafka as ck

    servers = url[len("kafka://") :]
    t = "bench.kafka." + uuid.uuid4().hex[:8]
    total = 4 * users
    state: dict[str, Any] = {"logins": 0, "online": {}, "users": set(), "durations": []}
    done = threading.Event()
    ready = threading.Event()
    failed: list[Any] = []

    def consume() -> None:
        c = ck.Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": t,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,  # as ringstat's consumers
            }
        )
        c.assign([ck.TopicPartition(t, 0, ck.OFFSET_BEGINNING)])
        ready.set()
        seen = 0
        while seen < total + 1:  # and the warm-up event
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                apply_event(state, msg.value() or b"")
                c.store_offsets(message=msg)  # after apply; auto-committed every 5 s
                seen += 1
        c.commit(asynchronous=False)
        c.close()
        done.set()

    from ringstat.broker._kafka import _ensure_topic

    _ensure_topic({"bootstrap.servers": servers}, t, 1, timeout=30)
    th = threading.Thread(target=consume)
    th.start()
    ready.wait()

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    p = ck.Producer(
        {
            "bootstrap.servers": servers,
            "acks": "all",
            "enable.idempotence": True,
            "on_delivery": delivered,
        }
    )
    warm_up(p, t, state)
    t0 = time.perf_counter()
    for u in range(users):
        for ev in (("login", u, 0), ("start", u, 1000 + u), ("seen", u, 0), ("end", u, 5000 + u)):
            body = json.dumps(ev).encode()
            while True:
                try:
                    p.produce(t, body)
                    break
                except BufferError:
                    p.poll(0.01)
            p.poll(0)
    p.flush()
    done.wait()
    elapsed = time.perf_counter() - t0
    th.join()
    assert not failed, failed[:3]
    assert state["logins"] == users, "the Kafka baseline lost events"
    assert len(state["users"]) == users
    assert len(state["durations"]) == users
    assert not state["online"]
    return total / elapsed


def ringstat_kafka(url: str, users: int) -> float:
    from ringstat.broker import KafkaConsumer, KafkaShipper

    t = "bench.ringstat." + uuid.uuid4().hex[:8]
    total = 4 * users
    p = ringstat.Pipeline(ringstat.Registry(), workers=1)
    c = KafkaConsumer(url, p, t, group=t).start()
    s = KafkaShipper(url, t, batch_size=4096)
    s.seen("warmup", 0)  # one event end to end, not timed (as for the baseline)
    assert s.flush(60)
    assert c.wait_events(1, 60)
    t0 = time.perf_counter()
    count, start, seen, end = s.count, s.session_start, s.seen, s.session_end
    for u in range(users):
        count("logins")
        start("online", u, 1000 + u)
        seen("users", u)
        end("online", u, 5000 + u)
    assert c.wait_events(total + 1, 600), (s.stats(), c.stats())
    p.flush()
    elapsed = time.perf_counter() - t0
    s.close()
    c.stop()
    reg = p.registry
    assert reg.counter("logins").value == users, "ringstat lost events"
    assert reg.gauge("online_open").value == 0
    p.close()
    return total / elapsed


def run_rounds(
    contenders: list[tuple[str, Callable[[], float]]],
    *,
    rounds: int,
    pid: int | None,
    events: int,
    quick: bool,
    broker: str,
) -> None:
    """Run the contenders interleaved; print a table with ratios over the
    first (and, if there are 4 or more, the second) contender."""
    rates: dict[str, list[float]] = {n: [] for n, _ in contenders}
    cpu: dict[str, float] = {n: 0.0 for n, _ in contenders}
    hwm: dict[str, float] = {n: 0.0 for n, _ in contenders}
    for r in range(rounds):
        for name, run in contenders:
            c0 = beam_cpu(pid)
            rates[name].append(run())
            cpu[name] += beam_cpu(pid) - c0
            hwm[name] = max(hwm[name], beam_mem_mib(pid)[0])
            print(f"round {r + 1}: {name}: {rates[name][-1]:,.0f} events/s", flush=True)
    bases = [contenders[0][0]] + ([contenders[1][0]] if len(contenders) >= 4 else [])
    print()
    note = ", --quick (numbers not meaningful)" if quick else ""
    print(f"{broker}: {events:,} events a run, {rounds} rounds{note}")
    print("baselines: " + "; ".join(f"{i + 1}. {b}" for i, b in enumerate(bases)))
    header = f"{'contender':38} {'events/s':>10}"
    for i, _ in enumerate(bases):
        header += f" {'x baseline ' + str(i + 1) + ' (min-max)':>24}"
    print(header + f" {'broker CPU s/run':>17} {'broker RSS MiB after':>21}")
    for name, _ in contenders:
        line = f"{name:38} {statistics.median(rates[name]):>10,.0f}"
        for b in bases:
            ratios = [a / x for a, x in zip(rates[name], rates[b])]
            cell = f"{statistics.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f})"
            line += f" {cell:>24}"
        print(line + f" {cpu[name] / rounds:>17.2f} {hwm[name]:>21.0f}")
    if pid is None:
        print("(broker CPU/memory: only with the private broker, no --url)")
    print()


def rust_example(path: str, url: str, users: int) -> float:
    """Runs examples/broker_rabbitmq.rs's (or broker_kafka.rs's) binary; its
    events/s end to end."""
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
    parser.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    parser.add_argument("--kafka-url", help="an existing Kafka (default: start a private tansu)")
    parser.add_argument("--only", choices=("rabbitmq", "kafka"), help="one broker's rows")
    parser.add_argument("--events", type=int, help="events per run (default 200,000)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument(
        "--rust-example",
        help="the built examples/broker_rabbitmq binary: adds the Rust shipper + consumer",
    )
    parser.add_argument(
        "--rust-kafka-example",
        help="the built examples/broker_kafka binary: adds the Rust Kafka shipper + consumer",
    )
    args = parser.parse_args(argv)
    events = args.events or (2_000 if args.quick else 200_000)
    users = max(1, events // 4)
    rounds = args.rounds or (1 if args.quick else 3)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
    if args.only != "kafka":
        bench_rabbitmq(args.url, users, rounds, events, args.quick, rust=args.rust_example)
    if args.only != "rabbitmq":
        bench_kafka(args.kafka_url, users, rounds, events, args.quick, rust=args.rust_kafka_example)
    return 0


def bench_rabbitmq(
    url: str | None, users: int, rounds: int, events: int, quick: bool, *, rust: str | None = None
) -> None:
    node = None
    beam: int | None = None
    if url is None:
        from rabbitmq_node import RabbitNode

        node = RabbitNode()
        t0 = time.perf_counter()
        node.start()
        print(f"private rabbitmq node started in {time.perf_counter() - t0:.1f} s")
        beam = node.beam_pid()
        url = node.url
    target = url
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
        if rust:
            example = rust
            contenders.append(
                ("Rust shipper+consumer, classic", lambda: rust_example(example, target, users))
            )
        run_rounds(
            contenders, rounds=rounds, pid=beam, events=events, quick=quick, broker="RabbitMQ"
        )
    finally:
        if node is not None:
            node.shutdown()


def bench_kafka(
    url: str | None, users: int, rounds: int, events: int, quick: bool, *, rust: str | None = None
) -> None:
    node = None
    pid: int | None = None
    if url is None:
        from kafka_node import KafkaNode

        node = KafkaNode()
        t0 = time.perf_counter()
        node.start()
        print(f"private tansu broker started in {time.perf_counter() - t0:.1f} s")
        pid = node.pid
        url = node.url
    target = url
    try:
        contenders: list[tuple[str, Callable[[], float]]] = [
            ("confluent-kafka, one message per event", lambda: kafka_per_event(target, users)),
            ("ringstat KafkaShipper + KafkaConsumer", lambda: ringstat_kafka(target, users)),
        ]
        if rust:
            example = rust
            contenders.append(
                ("Rust shipper+consumer (rdkafka)", lambda: rust_example(example, target, users))
            )
        run_rounds(
            contenders, rounds=rounds, pid=pid, events=events, quick=quick, broker="Kafka (tansu)"
        )
    finally:
        if node is not None:
            node.shutdown()


if __name__ == "__main__":
    sys.exit(main())
