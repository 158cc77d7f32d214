"""What every shipper shares, whatever the broker: the producer calls, the
bounded local buffer and its overflow policy, frame encoding, the metrics and
the publishing thread's loop. A transport (``_rabbitmq.py``, ``_kafka.py``)
supplies ``_publish``, ``_idle``, ``_drain`` and ``_disconnect``."""

from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING, Union

from ringstat._ringstat import Registry, ShutDown, _EventBuffer

if TYPE_CHECKING:
    from typing_extensions import Self

Key = Union[int, str, bytes]
#: ``(body, events in it, buffered events it settles)``; ``body`` is ``None``
#: when every event of the batch was refused by the encoder.
_Frame = tuple[Union[bytes, None], int, int]
#: The producer calls, served by the native buffer's methods of these names.
_CALLS = ("send", "count", "set", "observe", "mark", "session_start", "session_end", "seen")


class ShipperBase:
    """The transport-independent half of a shipper (see :class:`Shipper`
    and :class:`KafkaShipper` for the behaviour)."""

    def __init__(
        self,
        *,
        producer_id: int | None,
        capacity: int,
        batch_size: int,
        linger: float,
        overflow: str,
        registry: Registry | None,
        name: str,
        backoff: float,
        max_backoff: float,
        max_frame_bytes: int | None = None,
    ) -> None:
        if overflow not in ("block", "drop_newest"):
            raise ValueError(f"overflow must be 'block' or 'drop_newest', got {overflow!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_frame_bytes is not None and max_frame_bytes < 64:
            raise ValueError(f"max_frame_bytes must be >= 64, got {max_frame_bytes}")
        self.producer_id = producer_id if producer_id is not None else secrets.randbits(63)
        self._batch = batch_size
        self._linger = linger
        self._backoff = (backoff, max_backoff)
        self.registry = registry if registry is not None else Registry()
        self._labels = {"shipper": name}
        reg, labels = self.registry, self._labels
        self._m_events = reg.counter("ringstat_shipper_events", labels)
        self._m_published = reg.counter("ringstat_shipper_published", labels)
        self._m_frames = reg.counter("ringstat_shipper_frames", labels)
        self._m_dropped = reg.counter("ringstat_shipper_dropped", labels)
        self._m_blocked = reg.counter("ringstat_shipper_blocked", labels)
        self._m_rejected = reg.counter("ringstat_shipper_rejected", labels)
        self._m_failures = reg.counter("ringstat_shipper_publish_failures", labels)
        self._m_reconnects = reg.counter("ringstat_shipper_reconnects", labels)
        self._m_buffered = reg.gauge("ringstat_shipper_buffered", labels)
        self._m_connected = reg.gauge("ringstat_shipper_connected", labels)
        # The bounded buffer, its checks and its metrics are native; the
        # producer calls are its methods, bound on the instance so a call
        # runs no Python frame (the methods below document them).
        self._buf = _EventBuffer(
            capacity,
            self.producer_id,
            drop_newest=overflow == "drop_newest",
            max_frame_bytes=max_frame_bytes,
            events=self._m_events,
            dropped=self._m_dropped,
            blocked=self._m_blocked,
            rejected=self._m_rejected,
            buffered=self._m_buffered,
        )
        vars(self).update((call, getattr(self._buf, call)) for call in _CALLS)
        self._abort = threading.Event()
        self._done = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"ringstat-shipper-{name}")
        self._thread.daemon = True

    # ----- producer side ----------------------------------------------------

    def send(self, op: str, name: str, key: Key = 0, value: int = 1, ts_ns: int = 0) -> bool:
        """Queue one event (``op`` as a :class:`ringstat.Pipeline` method
        name); ``False`` if ``drop_newest`` dropped it. Raises ``ValueError``
        or ``TypeError`` for a bad event, :class:`ringstat.ShutDown` after
        :meth:`close`."""
        return self._buf.send(op, name, key, value, ts_ns)

    def count(self, name: str, n: int = 1) -> bool:
        """Add ``n`` to the counter ``name``."""
        return self._buf.count(name, n)

    def set(self, name: str, value: int) -> bool:
        """Set the gauge ``name``."""
        return self._buf.set(name, value)

    def observe(self, name: str, value: int) -> bool:
        """Record an int ``value`` in the histogram ``name``."""
        return self._buf.observe(name, value)

    def mark(self, name: str, n: int = 1) -> bool:
        """Count ``n`` events in the rate ``name``."""
        return self._buf.mark(name, n)

    def session_start(self, name: str, key: Key, ts_ns: int | None = None) -> bool:
        """Open the session of ``key``; ``ts_ns`` defaults to the wall clock
        (``time.time_ns()``), so durations survive the trip."""
        return self._buf.session_start(name, key, ts_ns)

    def session_end(self, name: str, key: Key, ts_ns: int | None = None) -> bool:
        """Close the session of ``key`` (``ts_ns`` as for :meth:`session_start`)."""
        return self._buf.session_end(name, key, ts_ns)

    def seen(self, name: str, key: Key) -> bool:
        """Count ``key`` in the distinct counter ``name``."""
        return self._buf.seen(name, key)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before the call is confirmed by
        the broker (or refused by the encoder); ``False`` at the timeout."""
        target = self._m_events.value
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self._m_published.value + self._m_rejected.value < target:
                if not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting events, publish what is buffered (waiting at most
        ``timeout`` seconds) and disconnect. ``True`` if everything was
        confirmed; else the unconfirmed events stay counted in
        ``ringstat_shipper_buffered``."""
        if not self._closed:
            self._closed = True
            self._buf.close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join()
        return self._m_buffered.value == 0

    def stats(self) -> dict[str, int]:
        """The shipper's metrics, by short name."""
        return {
            "events": self._m_events.value,
            "published": self._m_published.value,
            "frames": self._m_frames.value,
            "dropped": self._m_dropped.value,
            "blocked": self._m_blocked.value,
            "rejected": self._m_rejected.value,
            "publish_failures": self._m_failures.value,
            "reconnects": self._m_reconnects.value,
            "buffered": self._m_buffered.value,
            "connected": self._m_connected.value,
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- the publishing thread --------------------------------------------

    def _run(self) -> None:
        try:
            self._prepare()
            while True:
                try:
                    frames = self._buf.take(self._batch, self._linger)
                except ShutDown:
                    self._drain()
                    return
                if not frames:
                    self._idle()
                    continue
                for body, good, settles in frames:
                    if body is None:
                        self._settled(0, settles)
                    elif not self._publish(body, good, settles):
                        return
        finally:
            self._disconnect()
            with self._done:
                self._done.notify_all()

    def _settled(self, good: int, settles: int) -> None:
        """``good`` events confirmed by the broker; ``settles`` leave the buffer."""
        self._m_published.inc(good)
        self._m_buffered.dec(settles)
        with self._done:
            self._done.notify_all()

    # ----- what a transport supplies ------------------------------------------

    def _publish(self, body: bytes, good: int, settles: int) -> bool:
        """Hand the frame to the broker, retrying until it is accepted;
        ``_settled(good, settles)`` once the broker confirmed it (now or
        later). ``False`` if aborted by :meth:`close`."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """The thread starts: connect now, so the first frame does not wait
        for the connection (a failure is left to the first publish's retry)."""

    def _idle(self) -> None:
        """Nothing to publish for ``linger`` seconds: keep the connection alive."""

    def _drain(self) -> None:
        """The buffer is closed and empty: wait for frames still in flight
        (until confirmed or aborted by :meth:`close`)."""

    def _disconnect(self) -> None:
        """Drop the connection (the thread ends or a retry reconnects)."""
