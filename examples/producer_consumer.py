"""Producers and consumers moving batches through a bounded ringstat.Queue.

Producer threads put batches with ``put_many`` (one atomic claim per run of
slots, waiting while the queue is full); consumer threads take up to 256
items at a time with ``get_many``. When the producers are done, ``shutdown()``
lets the consumers drain what is left, then their ``get_many`` raises
``ShutDown``. A Counter and a Histogram record what the consumers saw, and
the end checks that every item arrived exactly once.

    python examples/producer_consumer.py --items 1000000 --producers 2 --consumers 2
"""

from __future__ import annotations

import argparse
import threading
import time

import ringstat


def produce(q: ringstat.Queue[int], first: int, count: int, batch: int) -> None:
    for start in range(first, first + count, batch):
        # Blocks while the queue is full; returns how many were put (all of them here).
        q.put_many(range(start, min(start + batch, first + count)))


def consume(
    q: ringstat.Queue[int],
    items: ringstat.Counter,
    batch_sizes: ringstat.Histogram,
    sums: list[int],
) -> None:
    total = 0
    while True:
        try:
            got = q.get_many(256)  # waits for the first item, then takes up to 256
        except ringstat.ShutDown:  # shut down and drained
            break
        items.add(len(got))
        batch_sizes.record(len(got))
        total += sum(got)
    sums.append(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items per producer")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024, help="items per put_many")
    parser.add_argument("--capacity", type=int, default=8192, help="queue size")
    args = parser.parse_args()

    q: ringstat.Queue[int] = ringstat.Queue(args.capacity)
    reg = ringstat.Registry()
    items = reg.counter("items_consumed")
    batch_sizes = reg.histogram("get_many_batch_size", max_value=256)
    sums: list[int] = []

    started = time.perf_counter()
    consumers = [
        threading.Thread(target=consume, args=(q, items, batch_sizes, sums))
        for _ in range(args.consumers)
    ]
    producers = [
        threading.Thread(target=produce, args=(q, i * args.items, args.items, args.batch))
        for i in range(args.producers)
    ]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    q.shutdown()  # consumers drain what is left, then see ShutDown
    for t in consumers:
        t.join()
    elapsed = time.perf_counter() - started

    n = args.items * args.producers
    print(
        f"moved {items.value:,} items in {elapsed:.2f} s ({items.value / elapsed:,.0f} per second)"
    )
    print(f"get_many batch size p50/p99: {batch_sizes.percentiles([50, 99])}")
    assert items.value == n, (items.value, n)
    assert sum(sums) == n * (n - 1) // 2, "an item was lost or delivered twice"
    print("every item arrived exactly once")


if __name__ == "__main__":
    main()
