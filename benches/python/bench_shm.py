"""ringstat.SharedQueue between processes, against multiprocessing.Queue,
faster-fifo (if installed) and a Unix socket.

Run it (not a test):

    python benches/python/bench_shm.py            # full run
    python benches/python/bench_shm.py --quick    # smoke run, seconds

Throughput: P producer processes send N messages each to C consumer
processes (forked and waiting on a barrier, so process start is not timed);
the clock runs from the barrier to the last consumer's exit (the parent puts
one empty message per consumer as end marker once the producers are done).
Rows: 1P/1C and 4P/4C, 64-byte and 1 KiB messages; single put/get and
batches (put_many/get_many of 64) where the queue has them.

Latency: one message round trip (parent -> child -> parent), 64 bytes,
median and p99 over many trips, against two multiprocessing.Queues and a
Unix socketpair.

Events into one pipeline: P producer processes send N counter events
each, aggregated by one pipeline in this process; clock from the barrier to
the last event applied. ringstat.FeedSender frames through a SharedQueue
into Pipeline.feed_from (native thread), against the same frames
(encode_frame of 1000 events) through a multiprocessing.Queue applied by a
Python loop with apply_frame.

Contenders are interleaved in rounds (A B C A B C ...); the ratio column is
each round's contender time over ringstat's time in that round (above 1.0,
ringstat was faster), as the median over rounds with its min-max: single
put/get rows against ringstat's put/get (row 1), batch rows against
ringstat's put_many/get_many (row 2). ringstat's put_many/get_many is one
Python call per batch with one slot claim per message inside. On the
shared 2-vCPU machine 4P/4C means 8 processes on 2 vCPUs: the numbers
measure scheduling as much as the queues. Compare ratios, never ns taken
minutes apart.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import ringstat

try:
    import faster_fifo  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - optional anchor
    faster_fifo = None

CTX = mp.get_context("fork")
BATCH = 64


@dataclass
class Kind:
    """One contender: how to make a queue and move messages through it."""

    name: str
    make: Callable[[int, int], Any]  # (maxsize, msg_size) -> queue
    batched: bool = False
    close: Callable[[Any], None] = lambda q: None


def _shared(maxsize: int, size: int) -> ringstat.SharedQueue:
    return ringstat.SharedQueue.create(
        f"ringstat-bench-{uuid.uuid4().hex[:10]}", maxsize=maxsize, slot_size=size
    )


def _unlink(q: Any) -> None:
    q.unlink()


def kinds() -> list[Kind]:
    out = [
        Kind("ringstat.SharedQueue put/get", _shared, close=_unlink),
        Kind(f"ringstat.SharedQueue put_many/get_many({BATCH})", _shared, True, _unlink),
        Kind("multiprocessing.Queue put/get", lambda m, s: CTX.Queue(m)),
    ]
    if faster_fifo is not None:
        # faster-fifo sizes its buffer in bytes; room for `maxsize` messages.
        def ff(m: int, s: int) -> Any:
            return faster_fifo.Queue(max_size_bytes=max(m * (s + 64), 1 << 16))

        out.append(Kind("faster_fifo.Queue put/get", ff))
        out.append(Kind(f"faster_fifo.Queue put_many/get_many({BATCH})", ff, True))
    return out


def _produce(q: Any, batched: bool, n: int, size: int, go: Any) -> None:
    msg = b"x" * size
    go.wait()
    if batched:
        chunk = [msg] * BATCH
        for _ in range(n // BATCH):
            if isinstance(q, ringstat.SharedQueue):
                q.put_many(chunk)
            else:
                q.put_many(chunk, timeout=1e9)
    else:
        put = q.put
        for _ in range(n):
            put(msg)


def _consume(q: Any, batched: bool, go: Any) -> None:
    go.wait()
    if batched:
        shared = isinstance(q, ringstat.SharedQueue)
        while True:
            got = q.get_many(BATCH) if shared else q.get_many(max_messages_to_get=BATCH)
            ends = got.count(b"")
            if ends:
                # One end marker per consumer: hand back any extra we took.
                for _ in range(ends - 1):
                    q.put(b"")
                return
    get = q.get
    while get() != b"":
        pass


def _join(procs: list[Any], what: str) -> None:
    """Joins `procs`; a hang fails the run instead of stalling it."""
    deadline = time.monotonic() + 300
    for p in procs:
        p.join(timeout=max(deadline - time.monotonic(), 0))
        if p.is_alive():
            for q in procs:
                q.kill()
            raise RuntimeError(f"{what}: a process hung")
        assert p.exitcode == 0, (what, p.exitcode)


def throughput(kind: Kind, producers: int, consumers: int, n: int, size: int) -> float:
    """ns per message, `producers` x `n` messages of `size` bytes."""
    q = kind.make(1024, size)
    go = CTX.Barrier(producers + consumers + 1)
    cons = [CTX.Process(target=_consume, args=(q, kind.batched, go)) for _ in range(consumers)]
    prods = [
        CTX.Process(target=_produce, args=(q, kind.batched, n, size, go)) for _ in range(producers)
    ]
    for p in cons + prods:
        p.start()
    go.wait()
    t0 = time.perf_counter_ns()
    _join(prods, kind.name)
    for _ in range(consumers):
        q.put(b"")
    _join(cons, kind.name)
    elapsed = time.perf_counter_ns() - t0
    kind.close(q)
    return elapsed / (producers * n)


def _echo(a: Any, b: Any, trips: int) -> None:
    if isinstance(a, socket.socket):
        for _ in range(trips):
            b.sendall(a.recv(4096))
        return
    for _ in range(trips):
        b.put(a.get())


def latency(kind: str, trips: int) -> list[int]:
    """Round-trip times (ns) of a 64-byte message to a child and back."""
    msg = b"y" * 64
    if kind == "unix socketpair":
        s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child = CTX.Process(target=_echo, args=(s2, s2, trips))
        child.start()
        out = []
        for _ in range(trips):
            t = time.perf_counter_ns()
            s1.sendall(msg)
            s1.recv(4096)
            out.append(time.perf_counter_ns() - t)
        _join([child], kind)
        s1.close()
        s2.close()
        return out
    there: Any
    back: Any
    if kind.startswith("ringstat"):
        there, back = _shared(16, 64), _shared(16, 64)
    else:
        there, back = CTX.Queue(16), CTX.Queue(16)
    child = CTX.Process(target=_echo, args=(there, back, trips))
    child.start()
    out = []
    for _ in range(trips):
        t = time.perf_counter_ns()
        there.put(msg)
        back.get()
        out.append(time.perf_counter_ns() - t)
    _join([child], kind)
    if kind.startswith("ringstat"):
        there.unlink()
        back.unlink()
    return out


FRAME_EVENTS = 1000


def _feed_producer(qname: str, n: int, barrier: Any) -> None:
    tx = ringstat.FeedSender(ringstat.SharedQueue.attach(qname))
    barrier.wait()
    for _ in range(n):
        tx.count("events")
    tx.flush()


def _mpq_producer(q: Any, n: int, barrier: Any) -> None:
    barrier.wait()
    batch: list[tuple[str, str, int, int, int]] = []
    seq = 0
    for _ in range(n):
        batch.append(("count", "events", 0, 1, 0))
        if len(batch) == FRAME_EVENTS:
            seq += 1
            q.put(ringstat.encode_frame(os.getpid(), seq, batch))
            batch = []
    if batch:
        q.put(ringstat.encode_frame(os.getpid(), seq + 1, batch))
    q.put(None)


def events_into_pipeline(kind: str, producers: int, n: int) -> float:
    """ns per event from `producers` processes into one pipeline."""
    reg = ringstat.Registry()
    pipe = ringstat.Pipeline(reg)
    barrier = CTX.Barrier(producers + 1)
    if kind == "ringstat FeedSender -> feed_from":
        name = f"bench-feed-{uuid.uuid4().hex[:8]}"
        q = ringstat.SharedQueue.create(name, maxsize=256, slot_size=16384)
        feed = pipe.feed_from(q)
        procs = [
            CTX.Process(target=_feed_producer, args=(name, n, barrier)) for _ in range(producers)
        ]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter_ns()
        for p in procs:
            p.join()
        feed.stop(drain=True)
        pipe.flush()
        t = time.perf_counter_ns() - t0
        q.unlink()
    else:
        mq: Any = CTX.Queue()
        procs = [CTX.Process(target=_mpq_producer, args=(mq, n, barrier)) for _ in range(producers)]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter_ns()
        done = 0
        while done < producers:
            msg = mq.get()
            if msg is None:
                done += 1
            else:
                ringstat.apply_frame(pipe, msg)
        pipe.flush()
        t = time.perf_counter_ns() - t0
        for p in procs:
            p.join()
    assert reg.counter("events").value == producers * n
    pipe.close()
    return t / (producers * n)


@dataclass
class Row:
    name: str
    ns: list[float] = field(default_factory=list)


def ratio_text(rows: list[Row], bases: list[int]) -> list[str]:
    """Per row: median ns and the per-round ratio to row `bases[i]`."""
    lines = []
    for r, b in zip(rows, bases):
        ratios = [x / y for x, y in zip(r.ns, rows[b].ns)]
        lines.append(
            f"  {r.name:<48} {statistics.median(r.ns):>10.0f} ns/msg   "
            f"vs row {b + 1}: {statistics.median(ratios):6.2f}x  "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one round")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    n = 1024 if args.quick else 50_000
    trips = 200 if args.quick else 5_000
    if faster_fifo is None:
        print("faster-fifo is not installed: its rows are left out (pip install faster-fifo)")
    print(f"CPUs: {os.cpu_count()}, Python {sys.version.split()[0]}, rounds: {rounds}")
    for producers, consumers in [(1, 1), (4, 4)]:
        for size in [64, 1024]:
            ks = kinds()
            rows = [Row(k.name) for k in ks]
            for _ in range(rounds):
                for k, row in zip(ks, rows):
                    row.ns.append(throughput(k, producers, consumers, n, size))
            print(f"\n{producers}P/{consumers}C, {size}-byte messages, {producers * n} messages:")
            # Single rows against ringstat's single (row 1), batch rows
            # against ringstat's batch (row 2).
            bases = [1 if k.batched else 0 for k in ks]
            print("\n".join(ratio_text(rows, bases)))
    feed_kinds = ["ringstat FeedSender -> feed_from", "mp.Queue of frames -> apply_frame"]
    events = 20_000 if args.quick else 500_000
    for producers in (1, 4):
        rows = [Row(fk) for fk in feed_kinds]
        for _ in range(rounds):
            for fk, row in zip(feed_kinds, rows):
                row.ns.append(events_into_pipeline(fk, producers, events))
        print(f"\nevents into one pipeline, {producers} producer processes x {events} events:")
        print("\n".join(ratio_text(rows, [0, 0])).replace("ns/msg", "ns/event"))
    names = ["ringstat.SharedQueue", "multiprocessing.Queue", "unix socketpair"]
    samples: dict[str, list[int]] = {k: [] for k in names}
    for _ in range(rounds):
        for kn in names:
            samples[kn].extend(latency(kn, trips))
    print(f"\nround trip, 64 bytes, {rounds * trips} trips each:")
    base = statistics.median(samples[names[0]])
    for kn in names:
        s = sorted(samples[kn])
        med, p99 = statistics.median(s), s[int(len(s) * 0.99) - 1]
        print(
            f"  {kn:<24} median {med / 1000:8.1f} us   p99 {p99 / 1000:8.1f} us   "
            f"median ratio {med / base:6.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
