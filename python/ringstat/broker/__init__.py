"""Ship ringstat events through RabbitMQ, and apply them exactly once.

Install with the extra: ``pip install "ringstat[rabbitmq]"`` (it brings
``pika``). Connection settings are an ``amqp://user:pass@host:port/vhost``
URL (pika's :class:`pika.URLParameters`).

- :class:`Shipper` buffers events in a bounded local :class:`ringstat.Queue`
  and a background thread publishes them in batches, one versioned binary
  frame per broker message (``ringstat._ringstat.encode_frame``; format in
  ``src/wire/mod.rs``), to a durable queue, persistent, with publisher
  confirms.
- :class:`Consumer` reads frames, drops the ones it already applied
  (by producer id and sequence number, :class:`Dedup`), applies the others
  to a :class:`ringstat.Pipeline` and acknowledges each after applying it.
- :class:`StatePublisher` publishes an instance's statistics (its registry or
  pipeline state) every few seconds, and :class:`GlobalAggregator` merges the
  newest state of every instance into one global view: exact percentiles and
  distinct counts across machines (``ringstat.broker._merge`` documents the
  update format).
"""

from __future__ import annotations

from ringstat.broker._dedup import Dedup
from ringstat.broker._merge import (
    GlobalAggregator,
    StatePublisher,
    StateUpdate,
    decode_update,
    encode_update,
)
from ringstat.broker._rabbitmq import Consumer, Shipper

__all__ = [
    "Consumer",
    "Dedup",
    "GlobalAggregator",
    "Shipper",
    "StatePublisher",
    "StateUpdate",
    "decode_update",
    "encode_update",
]
