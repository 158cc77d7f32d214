"""Event frames from Python: round trips, refused input (never a crash),
bad events named, applying a frame to a pipeline."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ringstat
from ringstat import FrameError, apply_frame, decode_frame, encode_frame, frame_header

OPS = ["count", "set", "gauge_add", "observe", "mark", "session_start", "session_end", "seen"]
U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, str, int, int, int]:
    op = draw(st.sampled_from(OPS))
    name = draw(st.text("abcxyz_", min_size=1, max_size=8))
    value = draw(I64 if op in ("set", "gauge_add") else U64)
    return (op, name, draw(U64), value, draw(U64))


@given(U64, U64, st.lists(events(), max_size=40))
def test_round_trip(producer: int, seq: int, evs: list[tuple[str, str, int, int, int]]) -> None:
    data = encode_frame(producer, seq, evs)
    assert decode_frame(data) == (producer, seq, evs)
    assert frame_header(data) == (producer, seq)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)
    with contextlib.suppress(FrameError):
        frame_header(data)


def test_refused_input_says_why() -> None:
    data = encode_frame(1, 2, [("count", "logins", 0, 1, 0)])
    with pytest.raises(FrameError, match="truncated"):
        decode_frame(data[:-1])
    with pytest.raises(FrameError, match="not a ringstat event frame"):
        decode_frame(b'{"op": "count"}')
    v2 = data[:4] + bytes([ringstat.FRAME_VERSION + 1]) + data[5:]
    with pytest.raises(FrameError, match="unsupported frame version"):
        frame_header(v2)
    with pytest.raises(FrameError, match="unexpected bytes"):
        decode_frame(data + b"\0")
    with pytest.raises(TypeError):
        decode_frame("text")  # type: ignore[arg-type]
    assert issubclass(FrameError, ValueError)


def test_bad_events_named() -> None:
    with pytest.raises(ValueError, match='event 1: unknown op "explode"'):
        encode_frame(1, 1, [("count", "c", 0, 1, 0), ("explode", "c", 0, 1, 0)])
    with pytest.raises(TypeError, match="event 0: expected a tuple"):
        encode_frame(1, 1, [["count", "c", 0, 1, 0]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="event 0: expected 5 items"):
        encode_frame(1, 1, [("count", "c")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"event 0: .*value"):
        encode_frame(1, 1, [("count", "c", 0, -1, 0)])
    with pytest.raises(TypeError, match="event 0: name must be a str"):
        encode_frame(1, 1, [("count", 3, 0, 1, 0)])  # type: ignore[list-item]
    with pytest.raises(FrameError, match="name length"):
        encode_frame(1, 1, [("count", "", 0, 1, 0)])
    with pytest.raises(ValueError, match="producer"):
        encode_frame(-1, 1, [])
    # A str key is hashed as the pipeline hashes it.
    (_, _, [ev]) = decode_frame(encode_frame(1, 1, [("seen", "u", "alice", 0, 0)]))
    assert isinstance(ev[2], int)


def test_apply_frame() -> None:
    reg = ringstat.Registry()
    p = ringstat.Pipeline(reg)
    data = encode_frame(
        9,
        4,
        [
            ("count", "logins", 0, 2, 0),
            ("set", "temp", 0, -7, 0),
            ("observe", "lat", 0, 30, 0),
            ("session_start", "online", "alice", 0, 10**9),
        ],
    )
    with pytest.raises(ValueError, match='histogram "lat" is not resolved'):
        apply_frame(p, data)
    p.flush()
    assert p.stats()["received"] == 0  # nothing of the refused frame was sent
    p.histogram("lat", max_value=100)
    assert apply_frame(p, data) == (9, 4, 4)
    p.flush()
    assert reg.counter("logins").value == 2
    assert reg.gauge("temp").value == -7
    assert reg.histogram("lat", max_value=100).count == 1
    assert reg.gauge("online_open").value == 1
    with pytest.raises(FrameError):
        apply_frame(p, data[:-3])
    p.close()
    with pytest.raises(ringstat.PipelineClosed):
        apply_frame(p, data)


@pytest.mark.parametrize(
    ("client", "name", "extra"),
    [("pika", "Shipper", "rabbitmq"), ("confluent_kafka", "KafkaShipper", "kafka")],
)
def test_broker_without_its_client_names_the_extra(client: str, name: str, extra: str) -> None:
    # ringstat.broker itself imports without either client; a transport's
    # class without its client names the extra to install.
    code = (
        "import sys\n"
        f"sys.modules[{client!r}] = None\n"
        "import ringstat.broker\n"
        "try:\n"
        f"    ringstat.broker.{name}\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f'pip install "ringstat[{extra}]"' in out
