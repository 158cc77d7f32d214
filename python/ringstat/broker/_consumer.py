"""What every consumer shares, whatever the broker: applying a frame once
(dedup by producer and sequence), the metrics, the background thread and the
checkpoints. A transport (``_rabbitmq.py``, ``_kafka.py``) supplies ``run``
and the broker position a checkpoint covers (``_position`` and
``_restore_position``)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ringstat._ringstat import Pipeline, Registry, apply_frame, frame_header
from ringstat.broker import _checkpoint
from ringstat.broker._dedup import Dedup

if TYPE_CHECKING:
    from typing_extensions import Self


class ConsumerBase:
    """The transport-independent half of a consumer (see :class:`Consumer`
    and :class:`KafkaConsumer` for the behaviour)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        dedup: Dedup | None,
        registry: Registry | None,
        name: str,
        backoff: float,
        max_backoff: float,
        on_frame: Callable[[int, int, int], None] | None,
        checkpoint: str | os.PathLike[str] | None,
        checkpoint_every: int,
        checkpoint_interval: float,
    ) -> None:
        if checkpoint_every < 1 or not checkpoint_interval > 0:
            raise ValueError(
                f"checkpoint_every must be >= 1 and checkpoint_interval > 0,"
                f" got {checkpoint_every} and {checkpoint_interval}"
            )
        self.pipeline = pipeline
        self.dedup = dedup if dedup is not None else Dedup()
        self._backoff = (backoff, max_backoff)
        self._on_frame = on_frame
        reg = registry if registry is not None else pipeline.registry
        labels = {"consumer": name}
        self._labels = labels
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
        #: True when the consumer resumed from its checkpoint file.
        self.restored = False
        if checkpoint is not None and os.path.exists(checkpoint):
            position, dedup_state, state = _checkpoint.read(checkpoint)
            self._restore_position(checkpoint, position)
            pipeline.merge_state(state)
            self.dedup = Dedup.from_state(dedup_state)
            self.restored = True

    def start(self) -> Self:
        """Consume in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.run, name="ringstat-consumer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop consuming (frames not yet acknowledged are delivered again to
        the next consumer). A consumer also stops by itself when its pipeline
        is closed."""
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
            _checkpoint.write(self._checkpoint, self._position(), self.dedup.state(), state)
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
            time.sleep(0.005)
        return True

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

    # ----- what a transport supplies ------------------------------------------

    def run(self) -> None:
        """Consume in this thread until :meth:`stop` is called."""
        raise NotImplementedError

    def _position(self) -> Any:
        """The broker position the applied frames cover (JSON-ready)."""
        raise NotImplementedError

    def _restore_position(self, path: str | os.PathLike[str], position: Any) -> None:
        """Resume after ``position`` (read from the checkpoint ``path``);
        :class:`ringstat.StateError` if it is not this transport's."""
        raise NotImplementedError
