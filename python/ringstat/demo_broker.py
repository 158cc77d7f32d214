"""The user-activity demo through a broker: ``python -m ringstat demo --broker URL``
(RabbitMQ for an ``amqp://`` URL, Kafka for a ``kafka://`` one).

``--producers`` processes each simulate users as the in-process demo does
(:func:`ringstat.demo.simulate_events`) but send every event through a
:class:`ringstat.broker.Shipper` (:class:`~ringstat.broker.KafkaShipper`);
this process runs one aggregator, a :class:`ringstat.broker.Consumer`
(:class:`~ringstat.broker.KafkaConsumer`) applying the frames to a pipeline, and
shows the same live view. At the end the producers flush and the aggregator
waits until every event they shipped is applied, so the summary counts all
of them (``shipped`` in ``--json``).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import sys
import threading
import time
import uuid
from typing import Any, TextIO, cast

import ringstat
from ringstat.demo import LiveView, Metrics, Options, read, simulate_events, summary


class _Forward:
    """Stands in for a pipeline handle in a producer: forwards to the shipper."""

    def __init__(self, shipper: Any, name: str) -> None:
        self._s = shipper
        self._name = name

    def inc(self) -> None:
        self._s.count(self._name)

    def mark(self, n: int = 1) -> None:
        self._s.mark(self._name, n)

    def seen(self, user: int) -> None:
        self._s.seen(self._name, user)

    def start(self, user: int, ts: float) -> None:
        self._s.session_start(self._name, user, int(ts * 1e9))

    def end(self, user: int, ts: float) -> None:
        self._s.session_end(self._name, user, int(ts * 1e9))


def _kafka(url: str) -> bool:
    return url.startswith("kafka://")


def _producer(url: str, queue: str, index: int, opts: Options, done: Any) -> None:
    """One producer process: simulate for ``opts.seconds``, flush, report."""
    from ringstat import broker  # each transport's client only if used

    make = broker.KafkaShipper if _kafka(url) else broker.Shipper
    shipper = make(url, queue, name=f"producer-{index}")
    m = {name: _Forward(shipper, name) for name in ("registrations", "logins", "logins_rate")}
    fake = type("M", (), {})()
    fake.registrations, fake.logins, fake.logins_rate = (
        m["registrations"],
        m["logins"],
        m["logins_rate"],
    )
    fake.online, fake.users = _Forward(shipper, "online"), _Forward(shipper, "users")
    stop = threading.Event()
    timer = threading.Timer(opts.seconds, stop.set)
    timer.start()
    simulate_events(cast(Metrics, fake), index, opts, stop, time.monotonic())
    shipper.close()
    done.put(shipper.stats()["published"])


def _watch(procs: list[Any], m: Metrics, view: LiveView | None, t0: float) -> None:
    """Refresh the live view until every producer has exited."""
    last_applied, last_t = 0, t0
    while any(p.is_alive() for p in procs):
        time.sleep(0.5)
        if view is not None:
            now = time.monotonic()
            v = read(m)
            applied = v["events"]["applied"]
            view.show(v, now - t0, (applied - last_applied) / max(now - last_t, 1e-9))
            last_applied, last_t = applied, now


def run_broker(opts: Options, out: TextIO = sys.stdout) -> int:
    """Runs the demo through the broker at ``opts.broker``."""
    from ringstat import broker  # each transport's client only if used

    url = opts.broker
    assert url is not None
    make = broker.KafkaConsumer if _kafka(url) else broker.Consumer
    # One simulator a process: --rate is shared among the producers.
    opts = dataclasses.replace(opts, threads=opts.producers)
    queue = "ringstat.demo." + uuid.uuid4().hex[:8]
    registry = ringstat.Registry()
    pipeline = ringstat.Pipeline(registry, workers=opts.workers, name="demo")
    m = Metrics.resolve(pipeline)
    consumer = make(url, pipeline, queue, name="demo").start()
    ctx = mp.get_context("spawn")
    done: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_producer, args=(url, queue, i, opts, done), daemon=True)
        for i in range(opts.producers)
    ]
    view = LiveView(out) if opts.live and not opts.json else None
    interrupted = False
    t0 = time.monotonic()
    shipped = 0
    try:
        for p in procs:
            p.start()
        _watch(procs, m, view, t0)
        shipped = sum(done.get(timeout=10) for _ in procs)
        consumer.wait_events(shipped, 120)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if view is not None:
            view.close()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        consumer.stop()
        elapsed = time.monotonic() - t0
        pipeline.close()
    final = read(m)
    if opts.json:
        doc: dict[str, Any] = {
            "seconds": round(elapsed, 3),
            "producers": opts.producers,
            "broker": True,
            "interrupted": interrupted,
            **final,
            "shipped": shipped,
            "consumer": consumer.stats(),
        }
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(summary(final, elapsed, opts, interrupted)) + "\n")
        out.write(f"  through {opts.broker} from {opts.producers} producer processes\n")
    out.flush()
    return 130 if interrupted else 0
