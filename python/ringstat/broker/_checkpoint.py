"""Checkpoint files of a consumer: the pipeline's state, the broker position it
covers and the dedup state, written atomically.

Layout (version 1): the line ``RSCK 1``, one line of JSON
``{"offset": POSITION, "dedup": Dedup.state()}``, then the bytes of
``Pipeline.export_state()`` (the pipeline state format of ``src/wire/``) to
the end of the file. ``POSITION`` is the RabbitMQ stream offset of the last
frame applied (an int, -1 when the consumer starts at offset 0 and null
before the first), or for Kafka an object
``{"<partition>": <offset of the next message to read>, ...}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

from ringstat._ringstat import StateError

_MAGIC = b"RSCK 1\n"


Position = Union[int, dict[str, int], None]


def write(
    path: str | os.PathLike[str], offset: Position, dedup: dict[str, Any], state: bytes
) -> None:
    """Writes the checkpoint atomically: a temporary file next to ``path``,
    flushed to disk (fsync), renamed over ``path``, and the directory synced,
    so a crash at any moment leaves the old checkpoint or the new one."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    header = json.dumps({"offset": offset, "dedup": dedup}, separators=(",", ":")).encode()
    with open(tmp, "wb") as f:
        f.write(_MAGIC + header + b"\n" + state)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | os.PathLike[str]) -> tuple[Position, dict[str, Any], bytes]:
    """``(offset, dedup state, pipeline state bytes)``; :class:`StateError`
    for a file that is not a checkpoint."""
    data = Path(path).read_bytes()
    if not data.startswith(_MAGIC):
        raise StateError(f"{path}: not a ringstat checkpoint (version 1)")
    end = data.find(b"\n", len(_MAGIC))
    if end < 0:
        raise StateError(f"{path}: truncated checkpoint header")
    try:
        header = json.loads(data[len(_MAGIC) : end])
        offset = header["offset"]
        dedup = header["dedup"]
    except (ValueError, KeyError, TypeError) as e:
        raise StateError(f"{path}: bad checkpoint header: {e}") from e
    if isinstance(offset, dict):
        good = all(type(v) is int and v >= 0 and k.isdigit() for k, v in offset.items())
    else:
        good = offset is None or (type(offset) is int and offset >= -1)
    if not good or not isinstance(dedup, dict):
        raise StateError(f"{path}: bad checkpoint header")
    return offset, dedup, data[end + 1 :]
