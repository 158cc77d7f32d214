"""RabbitMQ shipper and consumer of ringstat event frames (``pika``)."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable

from ringstat._ringstat import Pipeline, PipelineClosed, Registry, StateError
from ringstat.broker._consumer import ConsumerBase
from ringstat.broker._dedup import Dedup
from ringstat.broker._shipper import ShipperBase

try:
    import pika
    import pika.exceptions
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('ringstat.broker needs pika: pip install "ringstat[rabbitmq]"') from e

# Errors after which the connection is dropped and made again.
_RETRY = (pika.exceptions.AMQPError, OSError)


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


class Shipper(ShipperBase):
    """Buffers events locally and publishes them to RabbitMQ in frames.

    Producer calls (:meth:`count`, :meth:`session_start`, ... or
    :meth:`send`; native, a Pipeline send's cost) check the event and put it
    into a bounded local buffer of ``capacity`` events (a lock-free ring)
    and return. A background thread takes up to
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
    ``..._blocked_total``, ``..._rejected_total`` (accepted events a frame
    cannot carry: an int past 64 bits, a name over 1024 bytes; never
    published, counted as settled), ``..._publish_failures_total`` (failed attempts),
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
        super().__init__(
            producer_id=producer_id,
            capacity=capacity,
            batch_size=batch_size,
            linger=linger,
            overflow=overflow,
            registry=registry,
            name=name,
            backoff=backoff,
            max_backoff=max_backoff,
        )
        self._params = pika.URLParameters(url)
        self._queue_name = queue
        self._max_length = max_length
        self._stream = stream
        self._m_nacked = self.registry.counter("ringstat_shipper_nacked", self._labels)
        self._conn: Any = None
        self._ch: Any = None
        self._ever_connected = False
        self._thread.start()

    def stats(self) -> dict[str, int]:
        """The shipper's metrics, by short name."""
        return {**super().stats(), "nacked": self._m_nacked.value}

    # ----- the publishing thread (ShipperBase._run calls these) ------------

    def _prepare(self) -> None:
        with contextlib.suppress(*_RETRY):
            self._channel()

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

    def _publish(self, body: bytes, good: int, settles: int) -> bool:
        """Publish until confirmed (``True``) or aborted by close (``False``)."""
        delay, cap = self._backoff
        props = pika.BasicProperties(delivery_mode=2)
        while True:
            try:
                self._channel().basic_publish(
                    "", self._queue_name, body, properties=props, mandatory=True
                )
                self._m_frames.inc()
                self._settled(good, settles)
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


class Consumer(ConsumerBase):
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
    replaying only the frames after the last checkpoint. With no file yet,
    the first checkpoint is written before the first frame is applied, so
    it pins where a ``"next"`` or ``"last"`` start fell.

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
        self._params = pika.URLParameters(url)
        self._queue_name = queue
        self._prefetch = prefetch
        self._max_length = max_length
        self._offset = stream_offset
        self.last_offset: int | None = None
        #: The stream offset the consumer resumed after, from its checkpoint
        #: (``None``: it started without one).
        self.restored_offset: int | None = None
        super().__init__(
            pipeline,
            dedup=dedup,
            registry=registry,
            name=name,
            backoff=backoff,
            max_backoff=max_backoff,
            on_frame=on_frame,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
        )

    def _position(self) -> int | None:
        return self.last_offset

    def _restore_position(self, path: str | os.PathLike[str], position: Any) -> None:
        if not (position is None or type(position) is int):
            raise StateError(f"{path}: not a RabbitMQ stream checkpoint (offset {position!r})")
        self.last_offset = self.restored_offset = position

    def _pin_start(self, props: Any) -> None:
        """Before the first frame with no checkpoint to resume from, saves one
        whose offset is just before that frame: ``"next"`` and ``"last"`` move,
        so a consumer killed before its first regular checkpoint must resume
        where this run began, not where the stream ends by then."""
        first = (props.headers or {}).get("x-stream-offset")
        # pika gives its `long`, an int subclass.
        if isinstance(first, int):
            self.last_offset = int(first) - 1
            self.checkpoint()

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
            if stream and self.last_offset is None and self._checkpoint is not None:
                self._pin_start(props)
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
