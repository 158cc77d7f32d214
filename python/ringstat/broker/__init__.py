"""Ship ringstat events through RabbitMQ or Kafka, and apply them exactly once.

Each transport is an optional extra, imported on first use, so either works
without the other's client:

- RabbitMQ: ``pip install "ringstat[rabbitmq]"`` (``pika``);
  ``from ringstat.broker import Shipper, Consumer``; the connection is an
  ``amqp://user:pass@host:port/vhost`` URL (pika's
  :class:`pika.URLParameters`) and a queue or stream name.
- Kafka: ``pip install "ringstat[kafka]"`` (``confluent-kafka``, which
  bundles librdkafka); ``from ringstat.broker import KafkaShipper,
  KafkaConsumer``; the connection is a ``kafka://host:port[,host:port...]``
  URL (the bootstrap servers) and a topic name.

Both pairs behave alike:

- A shipper (:class:`Shipper`, :class:`KafkaShipper`) buffers events in a
  bounded local :class:`ringstat.Queue` and a background thread publishes
  them in batches, one versioned binary frame per broker message
  (``ringstat._ringstat.encode_frame``; format in ``src/wire/mod.rs``), with
  publisher confirms (RabbitMQ: durable queue or stream, persistent) or
  ``acks=all`` and the idempotent producer (Kafka); a full buffer blocks the
  producer or drops the event, counted either way.
- A consumer (:class:`Consumer`, :class:`KafkaConsumer`) reads frames, drops
  the ones it already applied (by producer id and sequence number,
  :class:`Dedup`), applies the others to a :class:`ringstat.Pipeline` and
  acknowledges (RabbitMQ) or commits the offset (Kafka) after applying each;
  with a checkpoint file it resumes from the checkpoint's broker position
  after a crash.

Across machines, :class:`StatePublisher` publishes an instance's statistics
(its registry or pipeline state) every few seconds to a RabbitMQ stream, and
:class:`GlobalAggregator` merges the newest state of every instance into one
global view: exact percentiles and distinct counts across machines
(``ringstat.broker._merge`` documents the update format).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ringstat.broker._dedup import Dedup

if TYPE_CHECKING:
    from ringstat.broker._kafka import KafkaConsumer, KafkaShipper
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
    "KafkaConsumer",
    "KafkaShipper",
    "Shipper",
    "StatePublisher",
    "StateUpdate",
    "decode_update",
    "encode_update",
]

_LAZY = {
    "Consumer": "_rabbitmq",
    "Shipper": "_rabbitmq",
    "KafkaConsumer": "_kafka",
    "KafkaShipper": "_kafka",
    "GlobalAggregator": "_merge",
    "StatePublisher": "_merge",
    "StateUpdate": "_merge",
    "decode_update": "_merge",
    "encode_update": "_merge",
}


def __getattr__(name: str) -> Any:
    # Each transport's client is imported only when its classes are asked for.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ringstat.broker' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"ringstat.broker.{module}"), name)
