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
"""

from __future__ import annotations

from ringstat.broker._dedup import Dedup
from ringstat.broker._rabbitmq import Consumer, Shipper

__all__ = ["Consumer", "Dedup", "Shipper"]
