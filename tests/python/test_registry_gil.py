"""Registry.to_prometheus and snapshot read the metrics detached from the
interpreter, so a scrape rendered on a worker thread does not stop the
event loop or other threads (a registry of 1,000 histograms takes tens of
milliseconds). Shown by order, not by time."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

import ringstat


@pytest.mark.parametrize("read", ["to_prometheus", "snapshot"])
def test_registry_read_releases_the_gil(read: str) -> None:
    # With a switch interval far longer than the test, a thread only gets the
    # GIL when the holder gives it up. The main thread waits on `started`;
    # the reader sets it and goes straight into the read. If the read holds
    # the GIL, the main thread cannot run before the reader has set
    # `finished`, in any trial. If it releases the GIL, the main thread can
    # wake while the read runs (unless the OS wakes it only after the read:
    # hence a registry that takes a while to read, and several trials).
    registry = ringstat.Registry()
    for i in range(200):
        registry.histogram("h", {"i": str(i)}, max_value=60.0, unit=1e-6).record(1.0)
    call: Callable[[], object] = getattr(registry, read)
    woken_during_read = 0
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        for _ in range(20):
            started, finished = threading.Event(), threading.Event()

            def reader(
                started: threading.Event = started, finished: threading.Event = finished
            ) -> None:
                started.set()
                call()
                finished.set()

            thread = threading.Thread(target=reader)
            thread.start()
            started.wait()
            woken_during_read += not finished.is_set()
            thread.join()
            if woken_during_read:
                break
    finally:
        sys.setswitchinterval(old)
    assert woken_during_read
