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
    # the reader sets it and goes straight into the read. If that releases
    # the GIL, the main thread wakes while the read is still running
    # (`finished` not yet set); if not, only once the reader has ended.
    registry = ringstat.Registry()
    registry.histogram("h", max_value=60.0, unit=1e-6).record(1.0)
    call: Callable[[], object] = getattr(registry, read)
    started, finished = threading.Event(), threading.Event()

    def reader() -> None:
        started.set()
        call()
        finished.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=reader)
        thread.start()
        started.wait()
        finished_when_woken = finished.is_set()
        thread.join()
    finally:
        sys.setswitchinterval(old)
    assert not finished_when_woken
