"""Statistics of many instances merged into one global view, over RabbitMQ.

Each instance (a process, a machine) runs its own :class:`ringstat.Registry`
or :class:`ringstat.Pipeline`; a :class:`StatePublisher` publishes its state
every ``interval`` seconds as a *state update*, and a
:class:`GlobalAggregator` keeps the newest update of every instance and
merges them (``merge_state``: counters add, histograms merge bucket-wise,
HyperLogLog sketches unite, rate windows add by age) into one global view,
which a notebook reads (:meth:`GlobalAggregator.registry`), and Prometheus
scrapes (:meth:`GlobalAggregator.serve`, or any ringstat web app: the
aggregator has ``to_prometheus()``).

An update carries the instance's cumulative state, not the change since the
last one (cumulative temporality, as OpenTelemetry calls it): the newest
update of an instance replaces its older ones, so a lost, repeated or
reordered update never counts twice or goes missing for good, and a reader
that starts late (a notebook) needs only the newest update of each instance.
Exact global percentiles and distinct counts follow, which Prometheus
summaries cannot give.

Update format, version 1 (little-endian), one per broker message::

    0   4  magic  b"RSSU" (ringstat state update)
    4   1  version (1)
    5   1  flags: bit 0 FINAL (the instance's last update: it stopped);
           the other bits are reserved (0)
    6   2  reserved (0)
    8   8  instance id (u64)
    16  8  sequence (u64, increasing per instance)
    24  8  wall-clock time of the export (ns since the Unix epoch)
    32  .  the state: Registry.export_state() (b"RSRS") or
           Pipeline.export_state() (b"RSPS"), formats in src/wire/

An aggregator made with ``retire_after`` *retires* an instance that stopped
(a FINAL update) or has been silent for longer than that: what it counted
stays (counters, histograms, distinct counts, rate totals), what it said
about "now" goes (its gauges count 0, its rate windows and open sessions
are left out), so a dead worker's requests per second or queue depth do not
stay in the view forever. Without it (the default) every instance's newest
state counts as it is: a session opened on a worker that has since been
recycled still counts as online, as the user may well be.

The updates travel on a RabbitMQ stream (an append-only log, read by any
number of readers from any offset), so an aggregator, a second aggregator or
a notebook can each replay it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union

from ringstat._ringstat import Pipeline, Registry, StateError
from ringstat.broker import _checkpoint
from ringstat.broker._rabbitmq import _RETRY, _declare

if TYPE_CHECKING:
    from typing_extensions import Self

import pika

__all__ = [
    "GlobalAggregator",
    "StatePublisher",
    "StateUpdate",
    "decode_update",
    "encode_update",
]

UPDATE_MAGIC = b"RSSU"
UPDATE_VERSION = 1
#: Flag of an instance's last update (``StatePublisher.close()``).
FINAL = 0x01
_HEADER = struct.Struct("<4sBBHQQQ")
_STATE_MAGICS = (b"RSRS", b"RSPS")
_U64 = (1 << 64) - 1


class _Exportable(Protocol):
    def export_state(self) -> bytes: ...


@dataclass(frozen=True)
class StateUpdate:
    """One decoded state update (see the module docs for the format)."""

    instance: int
    sequence: int
    time_ns: int
    state: bytes
    #: The instance's last update: it stopped (``StatePublisher.close()``).
    final: bool = False

    @property
    def kind(self) -> str:
        """``"registry"`` or ``"pipeline"``: whose ``export_state`` made it."""
        return "registry" if self.state[:4] == b"RSRS" else "pipeline"


def encode_update(
    instance: int,
    sequence: int,
    state: bytes,
    time_ns: int | None = None,
    *,
    final: bool = False,
) -> bytes:
    """The bytes of one state update. ``state`` is what ``export_state()`` of
    a :class:`ringstat.Registry` or :class:`ringstat.Pipeline` returned;
    ``final`` marks the instance's last one."""
    for name, v in (("instance", instance), ("sequence", sequence)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _U64:
            raise ValueError(f"{name} must be an int in 0..2**64-1, got {v!r}")
    if not isinstance(state, (bytes, bytearray, memoryview)):
        raise TypeError(f"state must be bytes, got {type(state).__name__}")
    state = bytes(state)
    if state[:4] not in _STATE_MAGICS:
        raise ValueError("state must come from Registry.export_state() or Pipeline.export_state()")
    ts = time.time_ns() if time_ns is None else time_ns
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= _U64:
        raise ValueError(f"time_ns must be an int in 0..2**64-1, got {ts!r}")
    flags = FINAL if final else 0
    return _HEADER.pack(UPDATE_MAGIC, UPDATE_VERSION, flags, 0, instance, sequence, ts) + state


def decode_update(data: bytes) -> StateUpdate:
    """Checks and splits a state update; :class:`ringstat.StateError` (a
    ``ValueError``) says what is wrong. The state itself is checked when it
    is merged."""
    data = bytes(data)
    if len(data) < _HEADER.size + 4:
        raise StateError(f"state update too short ({len(data)} bytes)")
    magic, version, flags, reserved, instance, seq, ts = _HEADER.unpack_from(data)
    if magic != UPDATE_MAGIC:
        raise StateError(f"not a ringstat state update (starts with {magic!r})")
    if version != UPDATE_VERSION:
        raise StateError(
            f"unsupported state update version {version} (this build reads {UPDATE_VERSION})"
        )
    if flags & ~FINAL or reserved:
        raise StateError(f"unknown state update flags {flags:#04x}/{reserved:#06x}")
    state = data[_HEADER.size :]
    if state[:4] not in _STATE_MAGICS:
        raise StateError(f"state update carries no registry or pipeline state ({state[:4]!r})")
    return StateUpdate(instance, seq, ts, state, final=bool(flags & FINAL))


class StatePublisher:
    """Publishes ``source.export_state()`` (a :class:`ringstat.Registry` or
    :class:`ringstat.Pipeline`) to the RabbitMQ stream ``queue`` every
    ``interval`` seconds, with publisher confirms, from a background thread;
    :meth:`close` (and ``with``) publishes a last update, marked FINAL (the
    aggregators retire the instance), and stops.

    ``instance`` identifies the source (default: random, one per publisher).
    Give a stable one only to a source that carries its statistics over a
    restart (restored from its own checkpoint): a new update of an instance
    replaces its old ones, so a source that restarts empty under the same id
    would take its past counts out of the global view. A broker that is down
    is retried with backoff; the next update published carries everything
    counted meanwhile, so nothing is lost.
    """

    def __init__(
        self,
        url: str,
        source: _Exportable,
        queue: str = "ringstat.states",
        *,
        interval: float = 1.0,
        instance: int | None = None,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if not callable(getattr(source, "export_state", None)):
            kind = type(source).__name__
            raise TypeError(f"source must be a Registry or Pipeline (export_state()), got {kind}")
        if not (isinstance(interval, (int, float)) and interval > 0):
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        if instance is not None and (
            isinstance(instance, bool) or not isinstance(instance, int) or not 0 <= instance <= _U64
        ):
            raise ValueError(f"instance must be an int in 0..2**64-1, got {instance!r}")
        self._params = pika.URLParameters(url)
        self.source = source
        self._queue_name = queue
        self.interval = float(interval)
        self.instance = secrets.randbits(63) if instance is None else instance
        self._backoff = (backoff, max_backoff)
        self._seq = 0
        self._conn: Any = None
        self._ch: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = {"published": 0, "bytes": 0, "failures": 0, "reconnects": 0}
        self._ever_connected = False
        self._thread = threading.Thread(target=self._run, name="ringstat-state-pub", daemon=True)
        self._thread.start()

    def publish(self, timeout: float | None = None) -> bool:
        """Exports and publishes one update now; ``True`` once the broker
        confirmed it, ``False`` if it was not confirmed within ``timeout``
        seconds (``None``: retry until it is)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._publish(lambda: deadline is not None and time.monotonic() >= deadline)

    def stats(self) -> dict[str, int]:
        """``published`` updates (confirmed), their ``bytes``, ``failures``
        (publishes retried) and ``reconnects``. Does not wait for a publish
        that is retrying (the counts are written under the publish lock and
        copied here under the GIL)."""
        return dict(self._stats)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stops the periodic updates, publishes a last one (retrying for up
        to ``timeout`` seconds) and disconnects; ``True`` if that last update
        was confirmed."""
        self._stop.set()
        self._thread.join()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._publish(
                lambda: deadline is not None and time.monotonic() >= deadline, final=True
            )
        finally:
            with self._lock:
                self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        # The periodic updates; a broker that is down is retried until it is
        # back or close() is called (which then publishes the last update).
        while not self._stop.wait(self.interval):
            self._publish(self._stop.is_set)

    def _publish(self, give_up: Callable[[], bool], final: bool = False) -> bool:
        with self._lock:
            self._seq += 1
            body = encode_update(self.instance, self._seq, self.source.export_state(), final=final)
            delay, cap = self._backoff
            while True:
                try:
                    self._channel().basic_publish(
                        "",
                        self._queue_name,
                        body,
                        properties=pika.BasicProperties(delivery_mode=2),
                        mandatory=True,
                    )
                    self._stats["published"] += 1
                    self._stats["bytes"] += len(body)
                    return True
                except (pika.exceptions.NackError, *_RETRY):
                    self._stats["failures"] += 1
                    self._disconnect()
                if give_up():
                    return False
                time.sleep(delay)
                delay = min(delay * 2, cap)

    def _channel(self) -> Any:
        if self._ch is None:
            conn = pika.BlockingConnection(self._params)
            try:
                ch = conn.channel()
                _declare(ch, self._queue_name, None, True)
                ch.confirm_delivery()
            except BaseException:
                conn.close()
                raise
            if self._ever_connected:
                self._stats["reconnects"] += 1
            self._ever_connected = True
            self._conn, self._ch = conn, ch
        return self._ch

    def _disconnect(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(*_RETRY):
                conn.close()


Source = Union[Registry, Pipeline]


class GlobalAggregator:
    """Reads the state updates of every instance from the RabbitMQ stream
    ``queue`` and merges the newest of each into one global view.

    :meth:`registry` is the merged registry (rebuilt when an update arrived
    since the last call), :meth:`distinct_count` a merged HyperLogLog
    estimate (pipeline states), :meth:`to_prometheus` its exposition and
    :meth:`serve` an HTTP endpoint for Prometheus. An update older than the
    one held for its instance (a redelivery) is dropped; one that is not an
    update or whose state does not load is counted in ``bad_updates`` and
    dropped; an instance whose state does not merge with the others' (another
    histogram config under the same name) is left out of the view and
    counted in ``conflicts``.

    With ``retire_after`` (seconds), an instance whose newest update is
    FINAL (its publisher closed) or older than that (by the export time the
    instance's clock wrote) is retired (see the module docs): its counts
    stay, its gauges, rate windows and open sessions leave the view; a newer
    update brings it back. Keep it well above the publishers' interval plus
    the clock skew between machines. ``None`` (the default): no instance is
    retired.

    ``offset`` is where a new aggregator starts reading the stream
    (``"first"``: every instance ever, the default). With ``checkpoint`` (a
    file path) the newest update of every instance and the stream offset
    they cover are written atomically every ``checkpoint_interval`` seconds
    and at :meth:`stop`; a restarted aggregator loads them and reads on after
    that offset.
    """

    def __init__(
        self,
        url: str,
        queue: str = "ringstat.states",
        *,
        offset: int | str = "first",
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_interval: float = 5.0,
        prefetch: int = 16,
        retire_after: float | None = None,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        if retire_after is not None and not (
            isinstance(retire_after, (int, float))
            and not isinstance(retire_after, bool)
            and retire_after > 0
        ):
            raise ValueError(f"retire_after must be > 0 seconds or None, got {retire_after!r}")
        if not (isinstance(checkpoint_interval, (int, float)) and checkpoint_interval > 0):
            raise ValueError(f"checkpoint_interval must be > 0, got {checkpoint_interval!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
        self._params = pika.URLParameters(url)
        self._queue_name = queue
        self._offset: int | str = offset
        self.last_offset: int | None = None
        self._prefetch = prefetch
        self._retire_ns = None if retire_after is None else int(retire_after * 1e9)
        self._backoff = (backoff, max_backoff)
        self._checkpoint = checkpoint
        self._checkpoint_interval = float(checkpoint_interval)
        self._lock = threading.Lock()
        self._updates: dict[int, StateUpdate] = {}
        self._view: Source | None = None
        self._view_retired: frozenset[int] = frozenset()
        self._stats = {
            "updates": 0,
            "stale": 0,
            "bad_updates": 0,
            "conflicts": 0,
            "reconnects": 0,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition(self._lock)
        if checkpoint is not None and os.path.exists(checkpoint):
            self._restore(checkpoint)

    # -- the view ---------------------------------------------------------

    def add(self, data: bytes) -> bool:
        """Takes one update (as read from the stream); ``True`` if it is now
        its instance's newest. The consumer thread calls it; call it yourself
        to merge updates that came another way."""
        try:
            upd = decode_update(data)
            _close(_merged([upd], strict=True)[0])  # the state alone must load
        except ValueError:
            with self._lock:
                self._stats["bad_updates"] += 1
            return False
        with self._lock:
            held = self._updates.get(upd.instance)
            if held is not None and held.sequence >= upd.sequence:
                self._stats["stale"] += 1
                return False
            self._updates[upd.instance] = upd
            _close(self._view)
            self._view = None
            self._stats["updates"] += 1
            self._changed.notify_all()
        return True

    def registry(self) -> Registry:
        """The global registry: every instance's newest state merged."""
        with self._lock:
            view = self._ensure_view()
            return view.registry if isinstance(view, Pipeline) else view

    def distinct_count(self, name: str) -> float:
        """The merged estimate of the distinct counter ``name`` (a union of
        every instance's sketch). ``KeyError`` if no instance has it."""
        with self._lock:
            view = self._ensure_view()
            # Asking a pipeline for an unknown counter would create it.
            known = isinstance(view, Pipeline) and any(
                m["name"] == f"{name}_distinct" for m in view.registry.snapshot([])["metrics"]
            )
            if not isinstance(view, Pipeline) or not known:
                raise KeyError(f"no instance has a distinct counter {name!r}")
            return view.distinct_count(name)

    def to_prometheus(self, percentiles: Iterable[float] | None = None) -> str:
        """The global registry in the Prometheus text format."""
        reg = self.registry()
        return reg.to_prometheus() if percentiles is None else reg.to_prometheus(percentiles)

    def instances(self) -> dict[int, tuple[int, int]]:
        """``{instance id: (sequence, export time ns)}`` of the updates held."""
        with self._lock:
            return {i: (u.sequence, u.time_ns) for i, u in self._updates.items()}

    def retired(self) -> frozenset[int]:
        """The instances retired now (with ``retire_after``): stopped (a
        FINAL update) or silent for longer than ``retire_after``."""
        with self._lock:
            return self._retired()

    def _retired(self) -> frozenset[int]:
        limit = self._retire_ns
        if limit is None:
            return frozenset()
        now = time.time_ns()
        return frozenset(i for i, u in self._updates.items() if u.final or now - u.time_ns > limit)

    def stats(self) -> dict[str, int]:
        """``updates`` taken, ``stale`` ones dropped (older than the one
        held), ``bad_updates`` (not an update, or a state that does not
        load), ``conflicts`` (instances left out of the view because their
        state does not merge with the others', such as another histogram
        config under one name), ``reconnects``, ``instances`` held and how
        many of them are ``retired``."""
        with self._lock:
            retired = len(self._retired())
            return {**self._stats, "instances": len(self._updates), "retired": retired}

    def wait(self, predicate: Any, timeout: float) -> bool:
        """Waits until ``predicate(self)`` is true, re-checked after each
        update; ``False`` at the timeout (for tests, demos and notebooks)."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.1))
        return True

    def _ensure_view(self) -> Source:
        # Rebuilt on read after an update or when an instance expired: a
        # scrape every few seconds merges once, however many updates arrived.
        retired = self._retired()
        if self._view is None or retired != self._view_retired:
            _close(self._view)
            self._view, conflicts = _merged(self._updates.values(), retired=retired)
            self._view_retired = retired
            self._stats["conflicts"] = len(conflicts)
        return self._view

    # -- HTTP -------------------------------------------------------------

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> _Server:
        """Serves :meth:`to_prometheus` at ``/metrics`` over HTTP from a
        background thread (``.port``, ``.url``, ``.close()``)."""
        from ringstat.wsgi import MetricsApp

        return _Server(MetricsApp(self), host, port)

    # -- consuming --------------------------------------------------------

    def start(self) -> Self:
        """Consumes the stream in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self.run, name="ringstat-global", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stops consuming (and writes the checkpoint, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        """Consumes in this thread until :meth:`stop`."""
        delay, cap = self._backoff
        first = True
        last_checkpoint = time.monotonic()
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(self._params)
            except _RETRY:
                self._stop.wait(delay)
                delay = min(delay * 2, cap)
                continue
            if not first:
                with self._lock:
                    self._stats["reconnects"] += 1
            first, delay = False, self._backoff[0]
            try:
                ch = conn.channel()
                _declare(ch, self._queue_name, None, True)
                ch.basic_qos(prefetch_count=self._prefetch)
                start = self._offset if self.last_offset is None else self.last_offset + 1
                for method, props, body in ch.consume(
                    self._queue_name,
                    inactivity_timeout=0.1,
                    arguments={"x-stream-offset": start},
                ):
                    if self._stop.is_set():
                        ch.cancel()
                        break
                    if method is not None:
                        self.add(body)
                        if props.headers:
                            self.last_offset = props.headers.get(
                                "x-stream-offset", self.last_offset
                            )
                        ch.basic_ack(method.delivery_tag)
                    if (
                        self._checkpoint is not None
                        and time.monotonic() - last_checkpoint >= self._checkpoint_interval
                    ):
                        self.checkpoint()
                        last_checkpoint = time.monotonic()
            except _RETRY:
                pass
            finally:
                with contextlib.suppress(*_RETRY):
                    conn.close()
        if self._checkpoint is not None:
            self.checkpoint()

    # -- checkpoints ------------------------------------------------------

    def checkpoint(self) -> None:
        """Writes the checkpoint now (the consumer does it by itself)."""
        if self._checkpoint is None:
            raise ValueError("this aggregator was made without a checkpoint path")
        with self._lock:
            held = list(self._updates.values())
            offset = self.last_offset
        meta = {
            "instances": [[u.instance, u.sequence, u.time_ns, len(u.state), u.final] for u in held]
        }
        _checkpoint.write(self._checkpoint, offset, meta, b"".join(u.state for u in held))

    def _restore(self, path: str | os.PathLike[str]) -> None:
        offset, meta, blob = _checkpoint.read(path)
        if isinstance(offset, dict):
            raise StateError(f"{path}: a Kafka consumer's checkpoint, not a global aggregator's")
        updates: dict[int, StateUpdate] = {}
        pos = 0
        try:
            for instance, seq, ts, n, *final in meta["instances"]:
                # Checkpoints before the FINAL flag hold four fields.
                updates[instance] = StateUpdate(
                    instance, seq, ts, blob[pos : pos + n], final=bool(final and final[0])
                )
                pos += n
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"{path}: bad aggregator checkpoint: {e}") from e
        if pos != len(blob):
            raise StateError(f"{path}: bad aggregator checkpoint: {len(blob) - pos} stray bytes")
        _close(_merged(updates.values(), strict=True)[0])  # it must load
        self._updates = updates
        self.last_offset = offset


def _merged(
    updates: Iterable[StateUpdate],
    strict: bool = False,
    retired: frozenset[int] = frozenset(),
) -> tuple[Source, list[int]]:
    """A fresh registry (registry states only) or pipeline with every
    update's state merged (those of ``retired`` instances as retired), and
    the instances whose state did not merge with the others (a merge checks
    everything before it changes anything, so a refused state leaves no
    trace); ``strict`` raises instead."""
    held = list(updates)
    view: Source
    if any(u.kind == "pipeline" for u in held):
        view = Pipeline(Registry(), workers=1, capacity=64, name="global")
    else:
        view = Registry()
    try:
        conflicts = [
            u.instance for u in held if not _merge_into(view, u, strict, u.instance in retired)
        ]
        if isinstance(view, Pipeline):
            view.flush()  # sets the `{name}_distinct` gauges from the united sketches
    except BaseException:
        _close(view)
        raise
    return view, conflicts


def _merge_into(view: Source, u: StateUpdate, strict: bool, retired: bool) -> bool:
    try:
        if isinstance(view, Pipeline) and u.kind == "pipeline":
            view.merge_state(u.state, retired=retired)
        else:
            reg = view.registry if isinstance(view, Pipeline) else view
            reg.merge_state(u.state, retired=retired)
    except ValueError:
        if strict:
            raise
        return False
    return True


def _close(view: Source | None) -> None:
    """Stops a merged pipeline's worker (a registry needs nothing)."""
    if isinstance(view, Pipeline):
        view.close()


class _Server:
    """A WSGI app served by a stdlib server on a daemon thread."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = wsgiref.simple_server.make_server(host, port, app, handler_class=_Quiet)
        self.port: int = self._httpd.server_port
        self.url = f"http://{host}:{self.port}/metrics"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ringstat-global-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stops serving and frees the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
