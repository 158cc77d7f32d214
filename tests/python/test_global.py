"""ringstat.broker's global view against a real RabbitMQ node: instance
processes publish their pipelines' states, the aggregator merges the newest
of each into statistics equal to one pipeline that saw every event; stale,
repeated, bad and conflicting updates; the broker restarted while
publishing; the aggregator restarted from its checkpoint; the HTTP
endpoint read by prometheus_client's parser."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

pika = pytest.importorskip("pika")

import ringstat  # noqa: E402
from global_instance import pipeline, workload  # noqa: E402
from rabbitmq_node import RabbitNode  # noqa: E402
from ringstat.broker import (  # noqa: E402
    GlobalAggregator,
    StatePublisher,
    decode_update,
    encode_update,
)

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).parent
SLICES = [(0, 400), (400, 1000), (1000, 1300)]


def qname() -> str:
    return "test.global." + uuid.uuid4().hex[:12]


def figures(reg: ringstat.Registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    """Every series but the pipelines' own metrics and the distinct
    counters' window gauge (window sketches are not in a state); of a gauge
    its value (min and max of a sum across machines are not in any state)."""
    return {
        (m["name"], tuple(sorted(m["labels"].items()))): (
            m["values"]["value"] if m["kind"] == "gauge" else m["values"]
        )
        for m in reg.snapshot()["metrics"]
        if not m["name"].startswith("ringstat_") and not m["name"].endswith("_distinct_window")
    }


def single(slices: list[tuple[int, int]]) -> tuple[dict[Any, Any], float]:
    """The figures of one pipeline that saw every event."""
    p = pipeline()
    for lo, hi in slices:
        workload(p, lo, hi)
    p.flush()
    out = figures(p.registry), p.distinct_count("users")
    p.close()
    return out


def run_instances(url: str, q: str, slices: list[tuple[int, int]]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "global_instance.py"), url, q, str(lo), str(hi)],
            cwd=HERE,
        )
        for lo, hi in slices
    ]
    for pr in procs:
        assert pr.wait(240) == 0


def test_instances_merge_into_the_figures_of_one_pipeline(rabbitmq: RabbitNode) -> None:
    q = qname()
    with GlobalAggregator(rabbitmq.url, q) as agg:
        run_instances(rabbitmq.url, q, SLICES)
        # Every instance's last update (its close) carries all its events.
        want, distinct = single(SLICES)
        assert agg.wait(lambda a: figures(a.registry()) == want, 120), figures(agg.registry())
        assert agg.stats()["instances"] == 3
        assert agg.stats()["bad_updates"] == agg.stats()["conflicts"] == 0
        # A HyperLogLog union is the sketch of one counter that saw every key.
        assert agg.distinct_count("users") == distinct
        with pytest.raises(KeyError):
            agg.distinct_count("nope")


def raw_publish(url: str, q: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue=q, durable=True, arguments={"x-queue-type": "stream"})
    for b in bodies:
        ch.basic_publish("", q, b)
    conn.close()


def registry_state(logins: int, max_value: int = 1000) -> bytes:
    reg = ringstat.Registry()
    reg.counter("logins").inc(logins)
    reg.histogram("latency_us", max_value=max_value).record(logins)
    return reg.export_state()


def test_stale_repeated_bad_and_conflicting_updates(rabbitmq: RabbitNode) -> None:
    q = qname()
    a2 = encode_update(1, 2, registry_state(20))
    bodies = [
        encode_update(1, 1, registry_state(10)),
        a2,
        encode_update(1, 1, registry_state(10)),  # older than the one held
        a2,  # a redelivery
        encode_update(2, 7, registry_state(5)),
        b"not an update",
        a2[:-3],  # truncated state
        encode_update(3, 1, registry_state(1, max_value=10)),  # another config
    ]
    raw_publish(rabbitmq.url, q, bodies)
    with GlobalAggregator(rabbitmq.url, q) as agg:
        assert agg.wait(
            lambda a: sum(a.stats()[k] for k in ("updates", "stale", "bad_updates")) == 8, 60
        )
        reg = agg.registry()
        st = agg.stats()
    assert {k: st[k] for k in ("updates", "stale", "bad_updates", "instances")} == {
        "updates": 4,
        "stale": 2,
        "bad_updates": 2,
        "instances": 3,
    }
    # Instance 3 does not merge with the others: left out, counted.
    assert st["conflicts"] == 1
    assert reg.counter("logins").value == 25
    assert reg.histogram("latency_us", max_value=1000).count == 2
    assert set(agg.instances()) == {1, 2, 3}


def test_broker_restarted_while_instances_publish(rabbitmq: RabbitNode) -> None:
    q = qname()
    with pipeline() as p:
        pub = StatePublisher(rabbitmq.url, p, q, interval=0.02)
        with GlobalAggregator(rabbitmq.url, q) as agg:
            workload(p, 0, 500)
            p.flush()
            assert agg.wait(lambda a: a.registry().counter("logins").value == 500, 60)
            rabbitmq.stop()
            workload(p, 500, 900)  # counted while the broker is down
            rabbitmq.start()
            p.flush()
            assert pub.close(timeout=120)
            want, distinct = single([(0, 900)])
            assert agg.wait(lambda a: figures(a.registry()) == want, 120), figures(agg.registry())
            assert agg.distinct_count("users") == distinct
        st = pub.stats()
        assert st["failures"] >= 1, st
        assert st["reconnects"] >= 1, st


def test_aggregator_resumes_from_its_checkpoint(rabbitmq: RabbitNode, tmp_path: Path) -> None:
    q = qname()
    ck = tmp_path / "global.ck"
    run_instances(rabbitmq.url, q, SLICES[:2])
    want2, _ = single(SLICES[:2])
    with GlobalAggregator(rabbitmq.url, q, checkpoint=ck, checkpoint_interval=0.05) as agg:
        assert agg.wait(lambda a: figures(a.registry()) == want2, 120)
    offset = agg.last_offset
    assert ck.exists()
    assert offset is not None
    # A new aggregator starts from the checkpoint, not the stream's start:
    # the figures hold before it reads anything, and it reads on after them.
    run_instances(rabbitmq.url, q, SLICES[2:])
    again = GlobalAggregator(rabbitmq.url, q, checkpoint=ck)
    assert again.last_offset == offset
    assert figures(again.registry()) == want2
    want3, distinct = single(SLICES)
    with again:
        assert again.wait(lambda a: figures(a.registry()) == want3, 120)
        assert again.distinct_count("users") == distinct
        assert again.stats()["stale"] == 0  # nothing before the offset was read again


def gauge_state(logins: int, online: int) -> bytes:
    reg = ringstat.Registry()
    reg.counter("logins").inc(logins)
    reg.gauge("online").set(online)
    return reg.export_state()


def test_gone_instances_are_retired(rabbitmq: RabbitNode) -> None:
    """With retire_after, a stopped instance (FINAL) and a silent one keep
    their counts in the view and lose their gauges; a newer update brings
    one back. Without it every instance counts as it is."""
    q = qname()
    now = time.time_ns()
    raw_publish(
        rabbitmq.url,
        q,
        [
            encode_update(1, 1, gauge_state(10, 5), final=True),  # stopped
            encode_update(2, 1, gauge_state(20, 3)),  # live
            encode_update(3, 1, gauge_state(30, 7), time_ns=now - 600 * 10**9),  # silent
        ],
    )
    with GlobalAggregator(rabbitmq.url, q, retire_after=300) as agg:
        assert agg.wait(lambda a: a.stats()["instances"] == 3, 60)
        reg = agg.registry()
        assert (reg.counter("logins").value, reg.gauge("online").value) == (60, 3)
        assert agg.retired() == {1, 3}
        assert agg.stats()["retired"] == 2
        raw_publish(rabbitmq.url, q, [encode_update(3, 2, gauge_state(31, 8))])
        assert agg.wait(lambda a: a.retired() == {1}, 60)
        reg = agg.registry()
        assert (reg.counter("logins").value, reg.gauge("online").value) == (61, 11)
    with GlobalAggregator(rabbitmq.url, q) as every:
        assert every.wait(lambda a: a.stats()["updates"] == 4, 60)
        assert every.registry().gauge("online").value == 5 + 3 + 8
        assert every.retired() == frozenset()
    # Time alone retires an instance that stops publishing.
    with GlobalAggregator(rabbitmq.url, q, retire_after=0.5) as soon:
        assert soon.wait(lambda a: a.retired() == {1, 2, 3}, 60)
        assert soon.registry().gauge("online").value == 0
        assert soon.registry().counter("logins").value == 61


def test_publisher_close_retires_its_instance(rabbitmq: RabbitNode) -> None:
    q = qname()
    reg = ringstat.Registry()
    reg.gauge("online").set(4)
    reg.counter("logins").inc(9)
    with GlobalAggregator(rabbitmq.url, q, retire_after=300) as agg:
        pub = StatePublisher(rabbitmq.url, reg, q, interval=0.05)
        assert agg.wait(lambda a: a.registry().gauge("online").value == 4, 60)
        assert pub.close(timeout=60)
        assert agg.wait(lambda a: a.retired() == {pub.instance}, 60)
        assert agg.registry().gauge("online").value == 0
        assert agg.registry().counter("logins").value == 9


def test_served_to_prometheus(rabbitmq: RabbitNode) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    q = qname()
    raw_publish(
        rabbitmq.url,
        q,
        [encode_update(1, 1, registry_state(3)), encode_update(2, 1, registry_state(4))],
    )
    with GlobalAggregator(rabbitmq.url, q) as agg, agg.serve() as srv:
        assert agg.wait(lambda a: a.stats()["instances"] == 2, 60)
        with urllib.request.urlopen(srv.url, timeout=30) as r:
            text = r.read().decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["logins_total"] == 7


def test_bad_arguments() -> None:
    state = registry_state(1)
    with pytest.raises(ValueError, match="instance"):
        encode_update(-1, 1, state)
    with pytest.raises(ValueError, match="sequence"):
        encode_update(1, 2**64, state)
    with pytest.raises(TypeError, match="bytes"):
        encode_update(1, 1, "state")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="export_state"):
        encode_update(1, 1, b"RSEF....")
    body = encode_update(9, 4, state, time_ns=123)
    u = decode_update(body)
    assert (u.instance, u.sequence, u.time_ns, u.state, u.kind) == (9, 4, 123, state, "registry")
    assert not u.final
    assert decode_update(encode_update(9, 5, state, final=True)).final
    for bad, msg in [
        (b"", "too short"),
        (b"XXXX" + body[4:], "not a ringstat state update"),
        (body[:4] + b"\x02" + body[5:], "version 2"),
        (body[:5] + b"\x02" + body[6:], "flags"),
        (body[:32] + b"RSEF", "no registry or pipeline state"),
    ]:
        with pytest.raises(ringstat.StateError, match=msg):
            decode_update(bad)
    with pytest.raises(TypeError, match="Registry or Pipeline"):
        StatePublisher("amqp://127.0.0.1:1/%2F", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval"):
        StatePublisher("amqp://127.0.0.1:1/%2F", ringstat.Registry(), interval=0)
    with pytest.raises(ValueError, match="instance"):
        StatePublisher("amqp://127.0.0.1:1/%2F", ringstat.Registry(), instance=2**64)
    with pytest.raises(ValueError, match="prefetch"):
        GlobalAggregator("amqp://127.0.0.1:1/%2F", prefetch=0)
    bad_retire: list[Any] = [0, -1.0, True, "30"]
    for retire in bad_retire:
        with pytest.raises(ValueError, match="retire_after"):
            GlobalAggregator("amqp://127.0.0.1:1/%2F", retire_after=retire)


def test_top_shows_the_global_view(rabbitmq: RabbitNode) -> None:
    q = qname()
    raw_publish(
        rabbitmq.url,
        q,
        [encode_update(1, 1, registry_state(3)), encode_update(2, 1, registry_state(4))],
    )
    top = [sys.executable, "-m", "ringstat", "top", "--broker", rabbitmq.url, "--queue", q]
    out = subprocess.run(top, capture_output=True, text=True, timeout=120, check=True).stdout
    assert f"ringstat top {q}   instances 2" in out, out
    assert "logins{} counter 7" in out, out
    both = subprocess.run([*top, "name"], capture_output=True, text=True, timeout=60, check=False)
    assert both.returncode == 2
    assert "NAME or --broker" in both.stderr
