"""RabbitMQ shipper and consumer of ringstat event frames (``pika``)."""

from __future__ import annotations

import contextlib
import os
import queue as _stdqueue
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Union

from ringstat._ringstat import (
    Pipeline,
    PipelineClosed,
    Queue,
    Registry,
    ShutDown,
    apply_frame,
    encode_frame,
    frame_header,
)
from ringstat.broker import _checkpoint
from ringstat.broker._dedup import Dedup

if TYPE_CHECKING:
    from typing_extensions import Self

try:
    import pika
    import pika.exceptions
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('ringstat.broker needs pika: pip install "ringstat[rabbitmq]"') from e

Key = Union[int, str, bytes]
_Event = tuple[str, str, Key, int, int]
_OPS = frozenset(
    ("count", "set", "gauge_add", "observe", "mark", "session_start", "session_end", "seen")
)
# Errors after which the connection is dropped and made again.
_RETRY = (pika.exceptions.AMQPError, OSError)


def _encodable(event: _Event) -> bool:
    try:
        encode_frame(0, 0, [event])
    except (ValueError, TypeError):
        return False
    return True


def _declare(ch: Any, name: str, max_length: int | None, stream: bool) -> None:
    """The durable queue: a classic queue, or a RabbitMQ stream (an
    append-only log read from an offset). With ``max_length`` (frames) a
    full classic queue refuses publishes (``reject-publish``), which is how
    a slow consumer pushes back."""
    args: dict[str, Any] = {}
    if stream:
        if max_length is not None:
            raise ValueError("max_length is for classic queues; a stream keeps everything")
        args = {"x-queue-type": "stream"}
    elif max_length is not None:
        args = {"x-max-length": max_length, "x-overflow": "reject-publish"}
    ch.queue_declare(queue=name, durable=True, arguments=args or None)


class Shipper:
    """Buffers events locally and publishes them to RabbitMQ in frames.

    Producer calls (:meth:`count`, :meth:`session_start`, ... or
    :meth:`send`) put an event into a bounded :class:`ringstat.Queue` of
    ``capacity`` events and return. A background thread takes up to
    ``batch_size`` events at a time (waiting at most ``linger`` seconds for
    the first), encodes them as one frame ``(producer_id, sequence)`` and
    publishes it persistent, with publisher confirms, waiting for the
    confirm before the next frame: one frame in flight, so the memory is at
    most ``capacity`` events plus one frame.

    With ``stream=True`` the queue is a RabbitMQ stream (an append-only log
    that consumers read from an offset, :class:`Consumer` ``stream_offset``)
    instead of a classic queue.

    While the broker is down, slow, or refuses (a full queue with
    ``max_length``), the thread retries the same frame (same sequence) with
    exponential backoff from ``backoff`` to ``max_backoff`` seconds,
    reconnecting; a consumer drops the duplicates a retry may create.
    Meanwhile the local queue fills. When it is full, ``overflow`` decides:

    - ``"block"`` (default): the producer call waits for room; nothing is
      lost. Each wait is counted in ``ringstat_shipper_blocked_total``.
    - ``"drop_newest"``: the event is dropped, counted in
      ``ringstat_shipper_dropped_total``, and the call returns ``False``.

    Call :meth:`close` (or use it as a context manager) before the process
    exits: the publishing thread is a daemon, and events still buffered at
    exit are not sent.

    Metrics, in ``registry`` with the label ``shipper=<name>``:
    ``ringstat_shipper_events_total`` (accepted), ``..._published_total``
    (confirmed by the broker), ``..._frames_total``, ``..._dropped_total``,
    ``..._blocked_total``, ``..._rejected_total`` (events the frame encoder
    refused), ``..._publish_failures_total`` (failed attempts),
    ``..._nacked_total`` (attempts the broker refused), ``..._reconnects_total``,
    gauges ``ringstat_shipper_buffered`` (events not yet confirmed) and
    ``ringstat_shipper_connected``.
    """

    def __init__(
        self,
        url: str,
        queue: str = "ringstat.events",
        *,
        producer_id: int | None = None,
        capacity: int = 65_536,
        batch_size: int = 4096,
        linger: float = 0.02,
        overflow: str = "block",
        max_length: int | None = None,
        stream: bool = False,
        registry: Registry | None = None,
        name: str = "default",
        backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if stream and max_length is not None:
            raise ValueError("max_length is for classic queues; a stream keeps everything")
        if overflow not in ("block", "drop_newest"):
            raise ValueError(f"overflow must be 'block' or 'drop_newest', got {overflow!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._params = pika.URLParameters(url)
        self._queue_name = queue
        self._max_length = max_length
        self._stream = stream
        self.producer_id = producer_id if producer_id is not None else secrets.randbits(63)
        self._q: Queue[_Event] = Queue(capacity)
        self._batch = batch_size
        self._linger = linger
        self._drop = overflow == "drop_newest"
        self._backoff = (backoff, max_backoff)
        self.registry = registry if registry is not None else Registry()
        labels = {"shipper": name}
        reg = self.registry
        self._m_events = reg.counter("ringstat_shipper_events", labels)
        self._m_published = reg.counter("ringstat_shipper_published", labels)
        self._m_frames = reg.counter("ringstat_shipper_frames", labels)
        self._m_dropped = reg.counter("ringstat_shipper_dropped", labels)
        self._m_blocked = reg.counter("ringstat_shipper_blocked", labels)
        self._m_rejected = reg.counter("ringstat_shipper_rejected", labels)
        self._m_failures = reg.counter("ringstat_shipper_publish_failures", labels)
        self._m_nacked = reg.counter("ringstat_shipper_nacked", labels)
        self._m_reconnects = reg.counter("ringstat_shipper_reconnects", labels)
        self._m_buffered = reg.gauge("ringstat_shipper_buffered", labels)
        self._m_connected = reg.gauge("ringstat_shipper_connected", labels)
        self._seq = 0
        self._conn: Any = None
        self._ch: Any = None
        self._ever_connected = False
        self._abort = threading.Event()
        self._done = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"ringstat-shipper-{name}")
        self._thread.daemon = True
        self._thread.start()

    # ----- producer side ----------------------------------------------------

    def send(self, op: str, name: str, key: Key = 0, value: int = 1, ts_ns: int = 0) -> bool:
        """Queue one event (``op`` as a :class:`ringstat.Pipeline` method
        name); ``False`` if ``drop_newest`` dropped it. Raises ``ValueError``
        or ``TypeError`` for a bad event, :class:`ringstat.ShutDown` after
        :meth:`close`."""
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r} (one of {', '.join(sorted(_OPS))})")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, not {name!r}")
        for arg, v in (("value", value), ("ts_ns", ts_ns)):
            if type(v) is not int:
                raise TypeError(f"{arg} must be an int, not {type(v).__name__}")
        if ts_ns < 0 or (value < 0 and op not in ("set", "gauge_add")):
            raise ValueError(f"value and ts_ns must be >= 0 for {op!r}")
        if not isinstance(key, (int, str, bytes)) or isinstance(key, bool):
            raise TypeError(f"key must be an int, str or bytes, not {type(key).__name__}")
        item = (op, name, key, value, ts_ns)
        try:
            self._q.put_nowait(item)
        except _stdqueue.Full:
            if self._drop:
                self._m_dropped.inc()
                return False
            self._m_blocked.inc()
            self._q.put(item)
        self._m_events.inc()
        self._m_buffered.inc()
        return True

    def count(self, name: str, n: int = 1) -> bool:
        """Add ``n`` to the counter ``name``."""
        return self.send("count", name, 0, n)

    def set(self, name: str, value: int) -> bool:
        """Set the gauge ``name``."""
        return self.send("set", name, 0, value)

    def observe(self, name: str, value: int) -> bool:
        """Record an int ``value`` in the histogram ``name``."""
        return self.send("observe", name, 0, value)

    def mark(self, name: str, n: int = 1) -> bool:
        """Count ``n`` events in the rate ``name``."""
        return self.send("mark", name, 0, n)

    def session_start(self, name: str, key: Key, ts_ns: int | None = None) -> bool:
        """Open the session of ``key``; ``ts_ns`` defaults to the wall clock
        (``time.time_ns()``), so durations survive the trip."""
        return self.send("session_start", name, key, 0, time.time_ns() if ts_ns is None else ts_ns)

    def session_end(self, name: str, key: Key, ts_ns: int | None = None) -> bool:
        """Close the session of ``key`` (``ts_ns`` as for :meth:`session_start`)."""
        return self.send("session_end", name, key, 0, time.time_ns() if ts_ns is None else ts_ns)

    def seen(self, name: str, key: Key) -> bool:
        """Count ``key`` in the distinct counter ``name``."""
        return self.send("seen", name, key, 0)

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
            self._q.shutdown()
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
            "nacked": self._m_nacked.value,
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
            while True:
                try:
                    items = self._q.get_many(self._batch, timeout=self._linger)
                except _stdqueue.Empty:
                    self._idle()
                    continue
                except ShutDown:
                    return
                body, good = self._encode(items)
                if body is not None and not self._publish(body):
                    return
                self._m_published.inc(good)
                self._m_buffered.dec(len(items))
                with self._done:
                    self._done.notify_all()
        finally:
            self._disconnect()
            with self._done:
                self._done.notify_all()

    def _encode(self, items: list[_Event]) -> tuple[bytes | None, int]:
        """One frame of ``items``; events the encoder refuses (checked one by
        one only if the batch fails) are counted in ``rejected``."""
        try:
            body = encode_frame(self.producer_id, self._seq + 1, items)
        except (ValueError, TypeError):
            good = [it for it in items if _encodable(it)]
            self._m_rejected.inc(len(items) - len(good))
            if not good:
                return None, 0
            items = good
            body = encode_frame(self.producer_id, self._seq + 1, items)
        self._seq += 1
        return body, len(items)

    def _idle(self) -> None:
        """Serve heartbeats while nothing is to publish."""
        if self._conn is not None:
            try:
                self._conn.process_data_events(0)
            except _RETRY:
                self._disconnect()

    def _channel(self) -> Any:
        if self._ch is None:
            conn = pika.BlockingConnection(self._params)
            try:
                ch = conn.channel()
                _declare(ch, self._queue_name, self._max_length, self._stream)
                ch.confirm_delivery()
            except BaseException:
                conn.close()
                raise
            if self._ever_connected:
                self._m_reconnects.inc()
            self._ever_connected = True
            self._conn, self._ch = conn, ch
            self._m_connected.set(1)
        return self._ch

    def _disconnect(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        self._m_connected.set(0)
        if conn is not None:
            with contextlib.suppress(*_RETRY):
                conn.close()

    def _publish(self, body: bytes) -> bool:
        """Publish until confirmed (``True``) or aborted by close (``False``)."""
        delay, cap = self._backoff
        props = pika.BasicProperties(delivery_mode=2)
        while True:
            try:
                self._channel().basic_publish(
                    "", self._queue_name, body, properties=props, mandatory=True
                )
                self._m_frames.inc()
                return True
            except pika.exceptions.NackError:
                # Refused (a full queue): same channel, after the backoff.
                self._m_nacked.inc()
                self._m_failures.inc()
            except _RETRY:
                self._m_failures.inc()
                self._disconnect()
            if self._abort.wait(delay):
                return False
            delay = min(delay * 2, cap)


class Consumer:
    """Applies frames from a RabbitMQ queue to a :class:`ringstat.Pipeline`.

    Each frame is applied (its events sent to ``pipeline``) and then
    acknowledged: a crash between the two redelivers it (at-least-once). A
    frame whose ``(producer, sequence)`` was applied before is acknowledged
    without applying it again (``dedup``, a :class:`Dedup`), so the
    statistics count every event once. A message that is not a frame is
    acknowledged without applying it and counted in ``bad_frames`` (so is a
    frame the pipeline refuses, such as one observing an unresolved
    histogram: a poison message must not loop). Histograms must be resolved in
    ``pipeline`` (with their configuration) before frames record into them;
    other metrics are created with their defaults on first use.

    At most ``prefetch`` frames are unacknowledged at once (bounded memory);
    a lost connection is made again with backoff.

    With ``stream_offset`` (``"first"``, ``"next"``, ``"last"`` or an int
    offset) the queue is a RabbitMQ stream (a :class:`Shipper` made with
    ``stream=True``), read from that offset; :attr:`last_offset` is the
    offset of the last frame handled, and a reconnect resumes after it. An
    aggregator that restarts from ``"first"`` with an empty pipeline and
    dedup replays the whole stream and ends with exactly the statistics of
    a run that never stopped (``tests/python/test_broker.py``).

    With ``checkpoint`` (a file path; streams only) the consumer writes a
    checkpoint every ``checkpoint_every`` frames or ``checkpoint_interval``
    seconds, whichever comes first, and when it stops: the pipeline's full
    state (``Pipeline.export_state()``: counters, histograms, sketches, open
    sessions), the stream offset it covers and the dedup state, written
    atomically (temporary file, fsync, rename). A consumer made with an
    existing checkpoint file restores it into ``pipeline`` (which should be
    fresh) and resumes the stream after that offset: killed at any moment
    and restarted, it ends with the statistics of a run never killed,
    replaying only the frames after the last checkpoint.

    Metrics, in ``registry`` (default: the pipeline's) with the label
    ``consumer=<name>``: ``ringstat_consumer_frames_total`` (applied),
    ``..._events_total`` (applied), ``..._duplicates_total``,
    ``..._bad_frames_total``, ``..._reconnects_total``,
    ``..._checkpoints_total``.
    """

    def __init__(
        self,
        url: str,
        pipeline: Pipeline,
        queue: str = "ringstat.events",
        *,
        prefetch: int = 8,
        max_length: int | None = None,
        stream_offset: int | str | None = None,
        dedup: Dedup | None = None,
        registry: Registry | None = None,
        name: str = "default",
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        on_frame: Callable[[int, int, int], None] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
    ) -> None:
        if checkpoint is not None and stream_offset is None:
            raise ValueError(
                "checkpoint needs a stream (stream_offset): a classic queue cannot be"
                " read again from the checkpoint's position"
            )
        if checkpoint_every < 1 or not checkpoint_interval > 0:
            raise ValueError(
                f"checkpoint_every must be >= 1 and checkpoint_interval > 0,"
                f" got {checkpoint_every} and {checkpoint_interval}"
            )
        self._params = pika.URLParameters(url)
        self.pipeline = pipeline
        self._queue_name = queue
        self._prefetch = prefetch
        self._max_length = max_length
        self._offset = stream_offset
        self.last_offset: int | None = None
        self.dedup = dedup if dedup is not None else Dedup()
        self._backoff = (backoff, max_backoff)
        self._on_frame = on_frame
        reg = registry if registry is not None else pipeline.registry
        labels = {"consumer": name}
        self._m_frames = reg.counter("ringstat_consumer_frames", labels)
        self._m_events = reg.counter("ringstat_consumer_events", labels)
        self._m_dups = reg.counter("ringstat_consumer_duplicates", labels)
        self._m_bad = reg.counter("ringstat_consumer_bad_frames", labels)
        self._m_reconnects = reg.counter("ringstat_consumer_reconnects", labels)
        self._m_checkpoints = reg.counter("ringstat_consumer_checkpoints", labels)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._checkpoint = checkpoint
        self._every = (checkpoint_every, checkpoint_interval)
        self._since = (0, time.monotonic())
        #: The stream offset the consumer resumed after, from its checkpoint
        #: (``None``: it started without one).
        self.restored_offset: int | None = None
        if checkpoint is not None and os.path.exists(checkpoint):
            offset, dedup_state, state = _checkpoint.read(checkpoint)
            pipeline.merge_state(state)
            self.dedup = Dedup.from_state(dedup_state)
            self.last_offset = self.restored_offset = offset

    def start(self) -> Consumer:
        """Consume in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.run, name="ringstat-consumer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop consuming (unacknowledged frames go back to the queue). A
        consumer also stops by itself when its pipeline is closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        """The consumer's metrics, by short name (``checkpoints`` only with a
        checkpoint path)."""
        return {
            "frames": self._m_frames.value,
            "events": self._m_events.value,
            "duplicates": self._m_dups.value,
            "bad_frames": self._m_bad.value,
            "reconnects": self._m_reconnects.value,
            **({"checkpoints": self._m_checkpoints.value} if self._checkpoint else {}),
        }

    def checkpoint(self) -> None:
        """Writes the checkpoint now (see the class docs); the consumer calls
        it by itself. Consistent when only this consumer sends to the
        pipeline."""
        if self._checkpoint is None:
            raise ValueError("this consumer was made without a checkpoint path")
        with self._lock:
            state = self.pipeline.export_state()
            _checkpoint.write(self._checkpoint, self.last_offset, self.dedup.state(), state)
        self._m_checkpoints.inc()
        self._since = (0, time.monotonic())

    def _after_frame(self) -> None:
        if self._checkpoint is None:
            return
        frames, since = self._since
        self._since = (frames + 1, since)
        every, interval = self._every
        if frames + 1 >= every or time.monotonic() - since >= interval:
            self.checkpoint()

    def wait_events(self, n: int, timeout: float) -> bool:
        """Wait until at least ``n`` events were applied; ``False`` at the
        timeout (for tests and demos)."""
        deadline = time.monotonic() + timeout
        while self._m_events.value < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def run(self) -> None:
        """Consume in this thread until :meth:`stop` is called."""
        delay, cap = self._backoff
        first = True
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(self._params)
            except _RETRY:
                self._stop.wait(delay)
                delay = min(delay * 2, cap)
                continue
            if not first:
                self._m_reconnects.inc()
            first, delay = False, self._backoff[0]
            try:
                self._consume(conn)
            except _RETRY:
                pass
            finally:
                with contextlib.suppress(*_RETRY):
                    conn.close()
        if self._checkpoint is not None and self._since[0] > 0:
            with contextlib.suppress(PipelineClosed):
                self.checkpoint()

    def _consume(self, conn: Any) -> None:
        ch = conn.channel()
        stream = self._offset is not None
        _declare(ch, self._queue_name, self._max_length, stream)
        ch.basic_qos(prefetch_count=self._prefetch)
        args = None
        if stream:
            # After a reconnect, go on after the last frame seen.
            offset = self._offset if self.last_offset is None else self.last_offset + 1
            args = {"x-stream-offset": offset}
        for method, props, body in ch.consume(
            self._queue_name, inactivity_timeout=0.1, arguments=args
        ):
            if self._stop.is_set():
                ch.cancel()
                return
            if method is None:
                continue
            try:
                self.handle(body)
            except PipelineClosed:
                # Nowhere to apply it: leave it unacknowledged and stop.
                self._stop.set()
                ch.cancel()
                return
            if stream and props.headers:
                self.last_offset = props.headers.get("x-stream-offset", self.last_offset)
            ch.basic_ack(method.delivery_tag)
            try:
                self._after_frame()
            except PipelineClosed:
                self._stop.set()
                ch.cancel()
                return

    def handle(self, body: bytes) -> bool:
        """Apply one frame unless it is a duplicate; ``True`` if applied.
        A bad frame is counted and dropped (``False``)."""
        try:
            producer, seq = frame_header(body)
        except ValueError:
            self._m_bad.inc()
            return False
        with self._lock:
            if self.dedup.seen(producer, seq):
                self._m_dups.inc()
                return False
            try:
                _, _, n = apply_frame(self.pipeline, body)
            except ValueError:
                self._m_bad.inc()
                return False
            self.dedup.add(producer, seq)
        self._m_frames.inc()
        self._m_events.inc(n)
        if self._on_frame is not None:
            self._on_frame(producer, seq, n)
        return True
