"""The user-activity demo from many processes: ``python -m ringstat demo --processes N``.

``N`` producer processes each simulate users as the in-process demo does
(:func:`ringstat.demo.simulate_events`) but send every event through a
:class:`ringstat.FeedSender` into a :class:`ringstat.SharedQueue`; this
process feeds one pipeline from the queue (:meth:`ringstat.Pipeline.feed_from`,
a native thread) and shows the same live view. At the end the producers
flush and report how many events they sent; the aggregator applies every
frame left in the queue, so the summary counts all of them (``sent`` in
``--json``). Linux (shared memory).
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
from ringstat.demo_broker import _watch

# Frames of up to 16 KiB (about a thousand events), 256 of them in flight.
SLOT_SIZE = 16384
SLOTS = 256


class _Forward:
    """Stands in for a pipeline handle in a producer: forwards to the sender,
    counting events (and logins) for the final check."""

    def __init__(self, sender: ringstat.FeedSender, name: str, sent: dict[str, int]) -> None:
        self._s = sender
        self._name = name
        self._sent = sent

    def inc(self) -> None:
        self._s.count(self._name)
        self._sent[self._name] += 1

    def mark(self, n: int = 1) -> None:
        self._s.mark(self._name, n)
        self._sent["events"] += 1

    def seen(self, user: int) -> None:
        self._s.seen(self._name, user)
        self._sent["events"] += 1

    def start(self, user: int, ts: float) -> None:
        self._s.session_start(self._name, user, ts)
        self._sent["events"] += 1

    def end(self, user: int, ts: float) -> None:
        self._s.session_end(self._name, user, ts)
        self._sent["events"] += 1


def _producer(qname: str, index: int, opts: Options, done: Any) -> None:
    """One producer process: simulate for ``opts.seconds``, flush, report
    what it sent."""
    sender = ringstat.FeedSender(ringstat.SharedQueue.attach(qname))
    sent = {"events": 0, "registrations": 0, "logins": 0}
    fake: Any = type("M", (), {})()
    for name in ("registrations", "logins", "logins_rate", "online", "users"):
        setattr(fake, name, _Forward(sender, name, sent))
    stop = threading.Event()
    timer = threading.Timer(opts.seconds, stop.set)
    timer.start()
    simulate_events(cast(Metrics, fake), index, opts, stop, time.monotonic())
    sender.close()
    sent["events"] += sent["registrations"] + sent["logins"]
    done.put(sent)


def run_processes(opts: Options, out: TextIO = sys.stdout) -> int:
    """Runs the demo with ``opts.processes`` producer processes."""
    # One simulator a process: --rate is shared among the producers.
    opts = dataclasses.replace(opts, threads=opts.processes)
    qname = "ringstat-demo-" + uuid.uuid4().hex[:12]
    q = ringstat.SharedQueue.create(qname, maxsize=SLOTS, slot_size=SLOT_SIZE)
    registry = ringstat.Registry()
    pipeline = ringstat.Pipeline(registry, workers=opts.workers, name="demo")
    m = Metrics.resolve(pipeline)
    feed = pipeline.feed_from(q)
    ctx = mp.get_context("spawn")
    done: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_producer, args=(qname, i, opts, done), daemon=True)
        for i in range(opts.processes)
    ]
    view = LiveView(out) if opts.live and not opts.json else None
    interrupted = False
    t0 = time.monotonic()
    sent = {"events": 0, "registrations": 0, "logins": 0}
    try:
        for p in procs:
            p.start()
        _watch(procs, m, view, t0)
        for _ in procs:
            for k, v in done.get(timeout=10).items():
                sent[k] += v
        # Every producer flushed before reporting: apply what is queued.
        feed.stop(drain=True)
        pipeline.flush()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if view is not None:
            view.close()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        feed.stop()
        elapsed = time.monotonic() - t0
        pipeline.close()
        q.unlink()
    final = read(m)
    if opts.json:
        doc: dict[str, Any] = {
            "seconds": round(elapsed, 3),
            "processes": opts.processes,
            "interrupted": interrupted,
            **final,
            "sent": sent,
            "feed": feed.stats(),
            "lost_frames": q.lost,
        }
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(summary(final, elapsed, opts, interrupted)) + "\n")
        fs = feed.stats()
        out.write(
            f"  from {opts.processes} producer processes through a shared queue: "
            f"{sent['events']:,} events sent, {fs['events']:,} applied in "
            f"{fs['frames']:,} frames\n"
        )
    out.flush()
    return 130 if interrupted else 0
