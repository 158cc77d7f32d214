"""Kafka shipper and consumer of ringstat event frames (``confluent-kafka``)."""

from __future__ import annotations

import contextlib
import logging
import os
from functools import partial
from typing import Any, Callable

from ringstat._ringstat import Pipeline, PipelineClosed, Registry, StateError, frame_header
from ringstat.broker._consumer import ConsumerBase
from ringstat.broker._dedup import Dedup
from ringstat.broker._shipper import ShipperBase

try:
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # admin re-exports it, untyped
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        'ringstat.broker.KafkaShipper needs confluent-kafka: pip install "ringstat[kafka]"'
    ) from e

# librdkafka's log lines (connection refused, ...): silent unless the
# application configures logging; the metrics count what matters.
_log = logging.getLogger("ringstat.broker.kafka")
_log.addHandler(logging.NullHandler())
_E = ck.KafkaError
# Errors that say the connection to the brokers is gone.
_DOWN = frozenset((_E._TRANSPORT, _E._ALL_BROKERS_DOWN, _E._RESOLVE))
_PURGED = frozenset((_E._PURGE_QUEUE, _E._PURGE_INFLIGHT))
# Seconds a metadata or offset request may take before the caller backs off
# and tries again (close() waits for one at most).
_CONNECT_TIMEOUT = 2.0


def _servers(url: str) -> str:
    """The bootstrap servers of ``kafka://host:port[,host:port...]``."""
    rest = url[len("kafka://") :].rstrip("/") if isinstance(url, str) else ""
    ok = isinstance(url, str) and url.startswith("kafka://") and rest != ""
    for server in rest.split(",") if ok else ():
        host, sep, port = server.rpartition(":")
        ok = ok and bool(sep and host and "/" not in host and port.isdigit())
    if not ok:
        raise ValueError(f"a Kafka URL is kafka://host:port[,host:port...], got {url!r}")
    return rest


def _common(url: str, backoff: float, max_backoff: float) -> dict[str, Any]:
    ms = max(1, int(backoff * 1000))
    return {
        "bootstrap.servers": _servers(url),
        "reconnect.backoff.ms": ms,
        "reconnect.backoff.max.ms": max(ms, int(max_backoff * 1000)),
        "logger": _log,
    }


def _ensure_topic(conf: dict[str, Any], topic: str, partitions: int, timeout: float) -> None:
    """Create ``topic`` unless it exists (as a RabbitMQ queue is declared);
    ``ck.KafkaException`` if the brokers cannot be reached."""
    keep = ("bootstrap.servers", "reconnect.backoff.ms", "reconnect.backoff.max.ms", "logger")
    admin = AdminClient({k: conf[k] for k in keep if k in conf})
    md = admin.list_topics(topic=topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is not None and t.error is None and t.partitions:
        return
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    try:
        futures[topic].result(timeout)
    except ck.KafkaException as e:
        if e.args[0].code() != _E.TOPIC_ALREADY_EXISTS:
            raise


class KafkaShipper(ShipperBase):
    """Buffers events locally and publishes them to a Kafka topic in frames.

    The same producer calls, local buffer, overflow policy and metrics as
    :class:`Shipper` (RabbitMQ): events go into a bounded local buffer of
    ``capacity`` events; a background thread takes
    up to ``batch_size`` at a time (waiting at most ``linger`` seconds for the
    first) and produces each batch as one frame ``(producer_id, sequence)``,
    one Kafka message keyed by the producer id (so one producer's frames stay
    in one partition, in order), with ``acks=all`` and the idempotent
    producer (``enable.idempotence``: a retry inside the client writes no
    duplicate). A batch whose frame would exceed ``max_frame_bytes`` is split;
    an event too big for a frame alone is counted in ``..._rejected_total``.

    At most ``max_in_flight`` frames are unacknowledged at once (the first
    frame alone, so a consumer meets the producer's oldest frame first), so
    the memory is at most ``capacity`` events plus ``max_in_flight`` frames.
    While the brokers are down or slow, the client retries and reconnects
    with backoff (``backoff`` to ``max_backoff`` seconds), frames stay in
    flight and the local buffer fills; then ``overflow`` decides, as for
    :class:`Shipper`: ``"block"`` (counted in ``blocked``) or
    ``"drop_newest"`` (counted in ``dropped``). A frame whose delivery failed
    for good (a fatal client error) is produced again with its sequence
    number, and a consumer drops the duplicate.

    Kafka keeps every message whether or not anyone reads it, so a slow
    consumer does not slow the producer by itself. With ``group`` and
    ``max_lag`` the shipper holds back while the consumer group ``group``
    (a :class:`KafkaConsumer`'s ``group``) has ``max_lag`` messages or more
    to read in this producer's partition: each hold is counted in
    ``throttled``, and the local buffer fills, so the producers block.

    Call :meth:`close` (or use it as a context manager) before the process
    exits: events still buffered at exit are not sent.

    Metrics, in ``registry`` with the label ``shipper=<name>``: those of
    :class:`Shipper` (``nacked`` aside), ``ringstat_shipper_throttled_total``
    and the gauge ``ringstat_shipper_in_flight`` (frames). ``config`` adds
    or overrides librdkafka producer settings.
    """

    def __init__(
        self,
        url: str,
        topic: str = "ringstat.events",
        *,
        producer_id: int | None = None,
        capacity: int = 65_536,
        batch_size: int = 4096,
        linger: float = 0.02,
        overflow: str = "block",
        max_in_flight: int = 4,
        max_frame_bytes: int = 900_000,
        partitions: int = 1,
        group: str | None = None,
        max_lag: int | None = None,
        registry: Registry | None = None,
        name: str = "default",
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        if max_in_flight < 1 or partitions < 1:
            raise ValueError(
                f"max_in_flight and partitions must be >= 1, got {max_in_flight}, {partitions}"
            )
        if (group is None) != (max_lag is None) or (max_lag is not None and max_lag < 1):
            raise ValueError("max_lag (>= 1) and group go together")
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
            max_frame_bytes=max_frame_bytes,
        )
        self._topic = topic
        self._partitions = partitions
        self._max_in_flight = max_in_flight
        self._group = group
        self._max_lag = max_lag
        ms = max(1, int(backoff * 1000))
        self._conf: dict[str, Any] = {
            **_common(url, backoff, max_backoff),
            "acks": "all",
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 0,
            "message.timeout.ms": 0,  # never give up: retry until close()
            "retry.backoff.ms": ms,
            "retry.backoff.max.ms": max(ms, int(max_backoff * 1000)),
            "message.max.bytes": max(1_000_000, max_frame_bytes + 4096),
            "error_cb": self._on_error,
            **(config or {}),
        }
        self._key = self.producer_id.to_bytes(8, "big")
        self._m_throttled = self.registry.counter("ringstat_shipper_throttled", self._labels)
        self._m_in_flight = self.registry.gauge("ringstat_shipper_in_flight", self._labels)
        self._producer: Any = None
        self._pending: dict[int, tuple[bytes, int, int]] = {}
        self._retry: list[int] = []
        self._fatal = False
        self._down = False
        self._ever_connected = False
        self._delivered_any = False
        self._partition: int | None = None
        self._end_offset = 0
        self._lag_client: Any = None
        self._committed = 0
        self._thread.start()

    def stats(self) -> dict[str, int]:
        """The shipper's metrics, by short name."""
        return {
            **super().stats(),
            "throttled": self._m_throttled.value,
            "in_flight": self._m_in_flight.value,
        }

    # ----- librdkafka callbacks (served by poll() on the shipper thread) -----

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = True
        if err.code() in _DOWN:
            self._down = True
            self._m_connected.set(0)

    def _delivered(self, seq: int, err: Any, msg: Any) -> None:
        if seq not in self._pending:
            return
        if err is not None:
            if err.code() in _PURGED and self._abort.is_set():
                return
            self._m_failures.inc()
            if err.code() == _E.MSG_SIZE_TOO_LARGE:
                # The brokers refuse a frame this big (a max_frame_bytes above
                # their limit): reject its events; its sequence number stays a
                # gap that Dedup skips past.
                _, good, settles = self._pending.pop(seq)
                self._m_in_flight.set(len(self._pending))
                self._m_rejected.inc(good)
                self._settled(0, settles)
            else:
                self._retry.append(seq)
            return
        _, good, settles = self._pending.pop(seq)
        self._m_in_flight.set(len(self._pending))
        self._m_frames.inc()
        self._delivered_any = True
        if self._down:
            self._down = False
            self._m_reconnects.inc()
        self._m_connected.set(1)
        self._partition = msg.partition()
        self._end_offset = max(self._end_offset, msg.offset() + 1)
        self._settled(good, settles)

    # ----- the publishing thread (ShipperBase._run calls these) ------------

    def _connect(self) -> bool:
        """The producer, made once the topic exists; ``False`` if the brokers
        cannot be reached (counted; the caller backs off)."""
        if self._producer is not None:
            return True
        try:
            _ensure_topic(self._conf, self._topic, self._partitions, timeout=_CONNECT_TIMEOUT)
        except ck.KafkaException:
            self._m_failures.inc()
            return False
        self._producer = ck.Producer(self._conf)
        if self._ever_connected:
            self._m_reconnects.inc()
        self._ever_connected = True
        self._m_connected.set(1)
        return True

    def _poll(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.poll(timeout)

    def _prepare(self) -> None:
        # The idempotent producer gets its producer id about 0.5 s after it
        # is made: made now, that overlaps the application's start.
        self._connect()

    def _idle(self) -> None:
        self._poll(0)

    def _behind(self) -> bool:
        """The consumer group looked ``max_lag`` messages or more behind at
        the last look."""
        if self._max_lag is None or self._partition is None:
            return False
        return self._end_offset - self._committed >= self._max_lag

    def _lag_ok(self) -> bool:
        """``True`` unless the consumer group is ``max_lag`` messages or more
        behind in this producer's partition (its committed offset is read
        again only while it looks behind)."""
        part, max_lag = self._partition, self._max_lag
        if not self._behind() or part is None or max_lag is None:
            return True
        if self._lag_client is None:
            self._lag_client = ck.Consumer(
                {**self._conf_for_lag(), "group.id": self._group, "enable.auto.commit": False}
            )
        tp = ck.TopicPartition(self._topic, part)
        try:
            (got,) = self._lag_client.committed([tp], timeout=_CONNECT_TIMEOUT)
        except ck.KafkaException:
            return False
        self._committed = max(self._committed, got.offset)
        return self._end_offset - self._committed < max_lag

    def _conf_for_lag(self) -> dict[str, Any]:
        keep = ("bootstrap.servers", "reconnect.backoff.ms", "reconnect.backoff.max.ms", "logger")
        return {k: self._conf[k] for k in keep if k in self._conf}

    def _wait(self, until: Callable[[], bool]) -> bool:
        """Serve the client until ``until()``; failed frames are produced
        again meanwhile, after a backoff. ``False`` if aborted by close."""
        delay, cap = self._backoff
        throttled = False
        while not until():
            if self._abort.is_set():
                return False
            if not self._connect():
                if self._abort.wait(delay):
                    return False
                delay = min(delay * 2, cap)
                continue
            if self._retry:
                if self._abort.wait(delay):
                    return False
                delay = min(delay * 2, cap)
                self._resend()
                continue
            if self._behind():
                if not throttled:
                    throttled = True
                    self._m_throttled.inc()
                self._poll(0)
                if self._abort.wait(delay):
                    return False
                delay = min(delay * 2, cap)
                continue
            self._poll(0.05)
        return True

    def _room(self) -> bool:
        limit = self._max_in_flight if self._delivered_any else 1
        return self._producer is not None and len(self._pending) < limit and not self._retry

    def _publish(self, body: bytes, good: int, settles: int) -> bool:
        _, seq = frame_header(body)
        if not self._wait(lambda: self._room() and self._lag_ok()):
            return False
        self._pending[seq] = (body, good, settles)
        self._m_in_flight.set(len(self._pending))
        self._produce(seq)
        return True

    def _produce(self, seq: int) -> None:
        body = self._pending[seq][0]
        while True:
            try:
                self._producer.produce(
                    self._topic, body, self._key, on_delivery=partial(self._delivered, seq)
                )
                return
            except BufferError:  # noqa: PERF203 - the client's own queue is full: serve it
                self._producer.poll(0.05)
            except ck.KafkaException as e:
                self._delivered(seq, e.args[0], None)
                return

    def _resend(self) -> None:
        """Produce the failed frames again, oldest first (after a fatal
        error, from a new producer: the old one cannot send any more)."""
        if self._fatal:
            self._drop_producer()
            self._fatal = False
            if not self._connect():
                return
        retry, self._retry = sorted(set(self._retry)), []
        for seq in retry:
            if seq in self._pending:
                self._produce(seq)

    def _drain(self) -> None:
        self._wait(lambda: not self._pending and not self._retry)

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # What is still queued or in flight is given up (or sent again).
            producer.purge(True, True, False)
            producer.poll(0)
            self._retry = list(self._pending)

    def _disconnect(self) -> None:
        self._drop_producer()
        self._lag_client, client = None, self._lag_client
        if client is not None:
            with contextlib.suppress(ck.KafkaException, RuntimeError):
                client.close()
        self._m_connected.set(0)


class KafkaConsumer(ConsumerBase):
    """Applies frames from a Kafka topic to a :class:`ringstat.Pipeline`.

    The consumer reads every partition of ``topic`` (one aggregator per
    topic and group: partitions are assigned to it, not balanced among group
    members). Each frame is applied (its events sent to ``pipeline``) and
    then its offset is committed to the consumer group ``group`` (one commit
    request in flight at a time; frames applied meanwhile go with the next):
    a crash between the two reads it again (at-least-once), and a frame whose
    ``(producer, sequence)`` was applied before is skipped (``dedup``, a
    :class:`Dedup`), so the statistics count every event once. A message that
    is not a frame, or that the pipeline refuses (an unresolved histogram),
    is skipped and counted in ``bad_frames``. Histograms must be resolved in
    ``pipeline`` (with their configuration) before frames record into them.

    It starts at the group's committed offsets (``start="committed"``,
    falling back to the first offset) or at the first offset
    (``start="first"``: an aggregator with a fresh pipeline and dedup
    replays the topic and ends with the statistics of a run never stopped).
    The client fetches ahead at most about ``prefetch_bytes`` (bounded
    memory), waits at most 10 ms for new data per fetch (live statistics;
    ``config={"fetch.wait.max.ms": ...}`` polls a quiet topic less) and
    reconnects by itself with backoff when the brokers are down.

    With ``checkpoint`` (a file path) the consumer writes a checkpoint every
    ``checkpoint_every`` frames or ``checkpoint_interval`` seconds, whichever
    comes first, and when it stops: the pipeline's full state
    (``Pipeline.export_state()``), the offset to read next in each partition
    and the dedup state, written atomically (temporary file, fsync, rename).
    A consumer made with an existing checkpoint file restores it into
    ``pipeline`` (which should be fresh) and seeks each partition to the
    checkpoint's offset (not the group's committed one, which may be ahead
    of the state the checkpoint holds): killed at any moment and restarted,
    it ends with the statistics of a run never killed. Until its first
    checkpoint file exists it reads from the first offsets, whatever
    ``start`` says (its state starts empty: only a replay is exact).

    Metrics, in ``registry`` (default: the pipeline's) with the label
    ``consumer=<name>``: those of :class:`Consumer`, and the gauge
    ``ringstat_consumer_lag`` (messages in the topic not yet read, from the
    client's last fetch: how far behind a slow consumer is). ``config`` adds
    or overrides librdkafka consumer settings.
    """

    def __init__(
        self,
        url: str,
        pipeline: Pipeline,
        topic: str = "ringstat.events",
        *,
        group: str = "ringstat",
        start: str = "committed",
        partitions: int = 1,
        prefetch_bytes: int = 8 << 20,
        dedup: Dedup | None = None,
        registry: Registry | None = None,
        name: str = "default",
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        on_frame: Callable[[int, int, int], None] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        if start not in ("committed", "first"):
            raise ValueError(f"start must be 'committed' or 'first', got {start!r}")
        if partitions < 1 or prefetch_bytes < 1024:
            raise ValueError(
                f"partitions must be >= 1 and prefetch_bytes >= 1024,"
                f" got {partitions}, {prefetch_bytes}"
            )
        self._topic = topic
        self._start_at = start
        self._partitions = partitions
        self._conf: dict[str, Any] = {
            **_common(url, backoff, max_backoff),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "queued.max.messages.kbytes": max(1, prefetch_bytes >> 10),
            "fetch.max.bytes": max(prefetch_bytes, 1_100_000),
            # A fetch waits at most this long for data (tansu answers a fetch
            # only then, not when data arrives): the latency of live
            # statistics on a quiet topic, at up to 100 idle fetches a second
            # (raise it with ``config`` to poll less).
            "fetch.wait.max.ms": 10,
            "error_cb": self._on_error,
            "on_commit": self._committed,
            **(config or {}),
        }
        #: Offset to read next, by partition (applied frames only).
        self.positions: dict[int, int] = {}
        self._last_commit: dict[int, int] = {}
        self._commit_in_flight = False
        #: The positions the consumer resumed from, from its checkpoint
        #: (``None``: it started without one).
        self.restored_positions: dict[int, int] | None = None
        self._down = False
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
        if checkpoint is not None and not self.restored:
            # No checkpoint yet: the state starts empty, so only a replay is
            # exact (the group's committed offsets may cover frames whose
            # state died with a killed consumer).
            self._start_at = "first"
        reg = registry if registry is not None else pipeline.registry
        self._m_lag = reg.gauge("ringstat_consumer_lag", self._labels)

    def stats(self) -> dict[str, int]:
        """The consumer's metrics, by short name (``checkpoints`` only with a
        checkpoint path)."""
        return {**super().stats(), "lag": self._m_lag.value}

    def _position(self) -> dict[str, int]:
        return {str(p): o for p, o in sorted(self.positions.items())}

    def _restore_position(self, path: str | os.PathLike[str], position: Any) -> None:
        if not isinstance(position, dict):
            raise StateError(f"{path}: not a Kafka checkpoint (offset {position!r})")
        self.positions = {int(p): int(o) for p, o in position.items()}
        self.restored_positions = dict(self.positions)

    def _on_error(self, err: Any) -> None:
        if err.code() in _DOWN:
            self._down = True

    def _open(self) -> Any:
        """A client assigned every partition of the topic at the offsets to
        read; ``ck.KafkaException`` if the brokers cannot be reached."""
        _ensure_topic(self._conf, self._topic, self._partitions, timeout=_CONNECT_TIMEOUT)
        c = ck.Consumer(self._conf)
        try:
            md = c.list_topics(self._topic, timeout=_CONNECT_TIMEOUT)
            parts = sorted(md.topics[self._topic].partitions)
            if not parts:
                raise ck.KafkaException(ck.KafkaError(_E.UNKNOWN_TOPIC_OR_PART))
            tps = [ck.TopicPartition(self._topic, p) for p in parts]
            committed = {}
            if self._start_at == "committed":
                committed = {
                    tp.partition: tp.offset for tp in c.committed(tps, timeout=_CONNECT_TIMEOUT)
                }
            for tp in tps:
                if tp.partition in self.positions:
                    tp.offset = self.positions[tp.partition]
                elif committed.get(tp.partition, -1) >= 0:
                    tp.offset = committed[tp.partition]
                else:
                    tp.offset = ck.OFFSET_BEGINNING
            c.assign(tps)
        except BaseException:
            c.close()
            raise
        return c

    def run(self) -> None:
        """Consume in this thread until :meth:`stop` is called."""
        delay, cap = self._backoff
        first = True
        while not self._stop.is_set():
            try:
                c = self._open()
                self._commit_in_flight = False
            except ck.KafkaException:
                self._stop.wait(delay)
                delay = min(delay * 2, cap)
                continue
            if not first:
                self._m_reconnects.inc()
            first, delay = False, self._backoff[0]
            try:
                self._consume(c)
            except ck.KafkaException:
                pass  # a fatal client error: a new client, after the backoff
            finally:
                self._commit(c, asynchronous=False)
                with contextlib.suppress(ck.KafkaException, RuntimeError):
                    c.close()
        if self._checkpoint is not None and self._since[0] > 0:
            with contextlib.suppress(PipelineClosed):
                self.checkpoint()

    def _committed(self, err: Any, _partitions: Any) -> None:
        # on_commit: the asynchronous commit in flight is answered. A failure
        # (the brokers down) leaves the older commit: the next call sends the
        # positions again.
        self._commit_in_flight = False
        if err is not None:
            self._last_commit = {}

    def _commit(self, c: Any, asynchronous: bool = True) -> None:
        """Commit the positions of the applied frames (after apply:
        at-least-once). One asynchronous commit at a time: while one is in
        flight the positions wait for the next call, so a fast stream of
        small frames does not pile up commit requests."""
        if not self.positions or self.positions == self._last_commit:
            return
        if asynchronous and self._commit_in_flight:
            return
        offsets = [ck.TopicPartition(self._topic, p, o) for p, o in self.positions.items()]
        with contextlib.suppress(ck.KafkaException):
            c.commit(offsets=offsets, asynchronous=asynchronous)
            self._commit_in_flight = asynchronous
            self._last_commit = dict(self.positions)

    def _consume(self, c: Any) -> None:
        while not self._stop.is_set():
            msg = c.poll(0.1)
            if msg is None:
                self._commit(c)  # positions left waiting by a commit in flight
                continue
            err = msg.error()
            if err is not None:
                if err.code() in _DOWN:
                    self._down = True
                continue
            if self._down:
                self._down = False
                self._m_reconnects.inc()
            part, offset = msg.partition(), msg.offset()
            try:
                self.handle(msg.value() or b"")
            except PipelineClosed:
                # Nowhere to apply it: leave it uncommitted and stop.
                self._stop.set()
                return
            self.positions[part] = offset + 1
            self._commit(c)
            with contextlib.suppress(ck.KafkaException):
                tp = ck.TopicPartition(self._topic, part)
                _, high = c.get_watermark_offsets(tp, cached=True)
                self._m_lag.set(max(0, high - offset - 1))
            try:
                self._after_frame()
            except PipelineClosed:
                self._stop.set()
                return
