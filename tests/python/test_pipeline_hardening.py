"""ringstat.Pipeline against hostile input: lying numpy arrays, sizes that
used to abort or panic, endless iterables, batches racing close(), fork(),
and keys that never end their sessions. Crash-type reproductions run in a
subprocess, so a SIGSEGV or an abort fails the test instead of pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ringstat import Pipeline, PipelineClosed

try:
    import numpy as np
except ImportError:  # numpy is optional; requirements-dev.txt installs it for CI
    np = None  # type: ignore[assignment]

needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed")


def run(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter; a crash shows in its return code."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(code: str, timeout: float = 60.0) -> str:
    """Runs `code`, asserts it exited normally, returns its stdout."""
    r = run(code, timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    return r.stdout


# ----- 1. memory safety: numpy arrays are read through the buffer protocol ----


@needs_numpy
@pytest.mark.parametrize(
    "lie",
    [
        "d['shape'] = (1 << 40,)",
        "d['data'] = (16, False)",
        "d['strides'] = (1 << 30,)",
        "d['typestr'] = '<f8'",
    ],
)
def test_a_lying_array_interface_is_not_believed(lie: str) -> None:
    out = ok(
        f"""
        import numpy as np, ringstat
        class Liar(np.ndarray):
            @property
            def __array_interface__(self):
                d = dict(super().__array_interface__)
                {lie}
                return d
        a = np.arange(4, dtype=np.uint64).view(Liar)
        with ringstat.Pipeline() as p:
            c, u, h = p.counter("c"), p.distinct("u"), p.histogram("h", max_value=10)
            print(c.add_many(a), u.seen_many(a), h.observe_many(a))
            p.flush()
            print(p.registry.counter("c").value)
        """
    )
    assert out.split() == ["4", "4", "4", "6"]


@needs_numpy
def test_a_fake_ndarray_class_is_just_an_iterable() -> None:
    out = ok(
        """
        import numpy as np, ringstat
        class Fake:
            __class__ = property(lambda self: np.ndarray)
            __array_interface__ = {"data": (16, False), "shape": (1 << 40,),
                                   "typestr": "<u8", "version": 3, "strides": None}
            def __iter__(self):
                return iter([1, 2])
        assert isinstance(Fake(), np.ndarray)
        with ringstat.Pipeline() as p:
            print(p.counter("c").add_many(Fake()))
        """
    )
    assert out.split() == ["2"]


@needs_numpy
def test_an_array_resized_during_the_call_raises_with_sent() -> None:
    out = ok(
        """
        import numpy as np, ringstat
        keys = np.arange(100_000, dtype=np.uint64)
        def stamps():
            for i in range(100_000):
                # Chunk 1 (8192 events) is sent and chunk 2's keys are read
                # when its timestamps are: the resize shows in chunk 3.
                if i == 9000:
                    keys.resize(10, refcheck=False)
                yield 1.0
        with ringstat.Pipeline() as p:
            u = p.distinct("u")
            try:
                u.seen_many(keys, ts=stamps())
            except ValueError as e:
                print("ValueError", e.sent)
            p.flush()
            print(p.stats()["received"])
        """
    )
    assert out.split() == ["ValueError", "16384", "16384"]


@needs_numpy
def test_arrays_without_a_numeric_buffer_raise_type_error() -> None:
    assert np is not None
    with Pipeline() as p:
        u = p.distinct("u")
        with pytest.raises(TypeError, match="datetime64"):
            u.seen_many(np.array(["2024-01-01"], dtype="datetime64[s]"))
        with pytest.raises(TypeError, match="object"):
            u.seen_many(np.array([1, 2], dtype=object))
        with pytest.raises(ValueError, match="1-D"):
            u.seen_many(np.array(5, dtype=np.uint64))


# ----- 2. aborts and panics ----------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expect"),
    [
        ("Pipeline(batch_size=2**40).close(); print('ok')", "ok"),
        ("Pipeline(capacity=2**40)", "MemoryError"),
        ("Pipeline(name='a\\x00b')", "ValueError"),
        ("Pipeline().distinct('u', window=1.8e10, buckets=2**40)", "MemoryError"),
        ("Pipeline().distinct('u', window=9e9, buckets=2**33)", "MemoryError"),
        ("Pipeline().rate('r', window=1.8e10, buckets=2**40)", "MemoryError"),
        (
            "class L:\n"
            "    def __len__(self): return 2**62\n"
            "    def __iter__(self): return iter([1, 2, 3])\n"
            "print(Pipeline().counter('c').add_many(L()))",
            "3",
        ),
    ],
)
def test_sizes_raise_instead_of_crashing(code: str, expect: str) -> None:
    r = run(
        "from ringstat import Pipeline\n"
        "try:\n" + textwrap.indent(code, "    ") + "\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == expect, r.stdout
    assert "PanicException" not in r.stdout + r.stderr


def test_capacity_above_the_maximum_says_at_most() -> None:
    with pytest.raises(ValueError, match="at most"):
        Pipeline(capacity=2**62)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"workers": True}, TypeError, "workers"),
        ({"workers": -1}, ValueError, "workers"),
        ({"workers": 2**70}, ValueError, "workers"),
        ({"workers": 257}, ValueError, "workers"),
        ({"capacity": True}, TypeError, "capacity"),
        ({"capacity": -5}, ValueError, "capacity"),
        ({"capacity": 2**64}, ValueError, "capacity"),
        ({"capacity": float("nan")}, TypeError, "capacity"),
        ({"batch_size": False}, TypeError, "batch_size"),
        ({"batch_size": 2**64}, ValueError, "batch_size"),
        ({"batch_size": 1.0}, TypeError, "batch_size"),
        ({"name": b"x"}, TypeError, "name"),
        ({"name": "a\x00b"}, ValueError, "NUL"),
        ({"backpressure": b"block"}, TypeError, "backpressure"),
    ],
)
def test_constructor_arguments_are_validated(
    kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        Pipeline(**kwargs)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda p: p.distinct("u", precision=True), TypeError, "precision"),
        (lambda p: p.distinct("u", precision=300), ValueError, "got 300"),
        (lambda p: p.distinct("u", precision=2**70), ValueError, "precision"),
        (lambda p: p.distinct("u", window=float("nan")), ValueError, "window"),
        (lambda p: p.distinct("u", window=float("inf")), ValueError, "window"),
        (lambda p: p.distinct("u", buckets=-1), ValueError, "buckets"),
        (lambda p: p.rate("r", buckets=True), TypeError, "buckets"),
        (lambda p: p.rate("r", window=-1.0), ValueError, "window"),
        (lambda p: p.sessions("s", significant_digits=300), ValueError, "got 300"),
        (lambda p: p.sessions("s", max_duration=float("nan")), ValueError, "max_duration"),
        (lambda p: p.sessions("s", max_sessions=0), ValueError, "max_sessions"),
        (lambda p: p.sessions("s", max_sessions=True), TypeError, "max_sessions"),
        (lambda p: p.histogram("h", max_value=10, significant_digits=2**70), ValueError, "0..=5"),
        (lambda p: p.histogram("h", max_value=-1), ValueError, "max_value"),
        (lambda p: p.counter("a\x00b"), ValueError, "name"),
        (lambda p: p.sessions("a\x00b"), ValueError, "name"),
        (lambda p: p.count("c", True), TypeError, "n"),
        (lambda p: p.seen("u", 1, ts=float("nan")), ValueError, "ts"),
        (lambda p: p.seen("u", 1, ts=float("inf")), ValueError, "ts"),
        (lambda p: p.counter("c").add_many([True]), TypeError, r"ns\[0\]"),
        (lambda p: p.distinct("u").seen_many([1], ts=[float("nan")]), ValueError, "ts"),
    ],
)
def test_method_arguments_are_validated(
    call: Callable[[Pipeline], object], exc: type[Exception], match: str
) -> None:
    with Pipeline() as p, pytest.raises(exc, match=match):
        call(p)


def test_an_endless_iterable_is_sent_in_bounded_chunks_and_interruptible() -> None:
    out = ok(
        """
        import itertools, resource, signal, ringstat
        class Stop(Exception):
            pass
        def stop(*_):
            raise Stop
        with ringstat.Pipeline() as p:
            u = p.distinct("u")
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            signal.signal(signal.SIGALRM, stop)
            signal.setitimer(signal.ITIMER_REAL, 1.0)
            try:
                u.seen_many(itertools.count())
            except Stop as e:
                sent = e.sent
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            p.flush()
            print(sent > 0, p.stats()["received"] == sent, grown < 200_000)
        """,
        timeout=60,
    )
    assert out.split() == ["True", "True", "True"]


# ----- 3. batches state what they sent -------------------------------------------


def test_batches_return_how_many_they_sent() -> None:
    with Pipeline() as p:
        assert p.counter("c").add_many([1, 2, 3]) == 3
        assert p.counter("c").add_many(iter(range(20_000))) == 20_000
        assert p.gauge("g").add_many(()) == 0
        assert p.distinct("u").seen_many(["a", "b"], ts=1.0) == 2


def test_a_bad_element_of_an_iterator_reports_the_sent_prefix() -> None:
    def gen() -> Iterator[object]:
        yield from range(10_000)
        yield -1

    with Pipeline() as p:
        c = p.counter("c")
        with pytest.raises(ValueError, match=r"ns\[10000\]") as info:
            c.add_many(gen())
        assert info.value.sent == 8192  # type: ignore[attr-defined]
        p.flush()
        assert p.registry.counter("c").value == sum(range(8192))
        # A list is checked whole first: nothing is sent.
        with pytest.raises(ValueError, match=r"ns\[10000\]") as info:
            c.add_many([*range(10_000), -1])
        assert info.value.sent == 0  # type: ignore[attr-defined]


def test_an_iterator_raising_reports_what_was_sent() -> None:
    def gen() -> Iterator[int]:
        yield from range(9000)
        raise KeyError("boom")

    with Pipeline() as p:
        with pytest.raises(KeyError) as info:
            p.distinct("u").seen_many(gen())
        assert info.value.sent == 8192  # type: ignore[attr-defined]
        p.flush()
        assert p.stats()["received"] == 8192


def test_timestamps_of_another_length_are_refused() -> None:
    with Pipeline() as p:
        u = p.distinct("u")
        with pytest.raises(ValueError, match="as long as the keys") as info:
            u.seen_many(iter(range(10)), ts=iter([1.0] * 11))
        assert info.value.sent == 10  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="as long as the keys") as info:
            u.seen_many(iter(range(10)), ts=iter([1.0] * 9))
        assert info.value.sent == 0  # type: ignore[attr-defined]


BATCHES: dict[str, Callable[[Pipeline, Any], int]] = {
    "counter.add_many": lambda p, a: p.counter("c").add_many(a),
    "gauge.add_many": lambda p, a: p.gauge("g").add_many(a),
    "histogram.observe_many": lambda p, a: p.histogram("h", max_value=10**9).observe_many(a),
    "sessions.start_many": lambda p, a: p.sessions("s").start_many(a, ts=1.0),
    "sessions.end_many": lambda p, a: p.sessions("s").end_many(a, ts=1.0),
    "distinct.seen_many": lambda p, a: p.distinct("u").seen_many(a, ts=1.0),
}


def make_items(source: str, n: int) -> Any:
    """`1..=n` as a list, an iterator or a numpy array."""
    if source == "list":
        return list(range(1, n + 1))
    if source == "iterator":
        return iter(range(1, n + 1))
    assert np is not None
    return np.arange(1, n + 1, dtype=np.int64)


@pytest.mark.parametrize("source", ["list", "iterator", "numpy"])
@pytest.mark.parametrize("method", sorted(BATCHES))
def test_a_batch_racing_close_reports_exactly_what_went_in(method: str, source: str) -> None:
    if source == "numpy" and np is None:
        pytest.skip("numpy not installed")
    n = 400_000
    for _attempt in range(20):
        items = make_items(source, n)
        p = Pipeline(workers=3, capacity=64)
        send = BATCHES[method]
        send(p, [1])  # resolve before the race
        p.flush()
        base = p.stats()["received"]

        def closer(p: Pipeline = p, base: int = base) -> None:
            while p.stats()["applied"] < base + 1000:
                pass
            p.close()

        t = threading.Thread(target=closer)
        t.start()
        try:
            sent = send(p, items)
        except PipelineClosed as e:
            sent = e.sent  # type: ignore[attr-defined]
            raced = True
        else:
            raced = False
        t.join()
        s = p.stats()
        assert s["received"] - base == sent
        assert s["applied"] + s["dropped"] + s["rejected"] == s["received"]
        if raced:
            assert 1000 <= sent < n
            return
    pytest.fail("close() never raced the batch")


# ----- 4. fork ---------------------------------------------------------------------


def test_a_pipeline_used_in_a_forked_child_raises_and_the_parent_keeps_working() -> None:
    out = ok(
        """
        import os, signal, warnings, ringstat
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        p = ringstat.Pipeline(workers=2, capacity=64)
        c = p.counter("c")
        c.add_many([1] * 100)
        p.flush()
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)  # a hang exits with SIGALRM
            code = 0
            try:
                c.inc()  # os.register_at_fork told the binding: raises at once
                code |= 16
            except RuntimeError as e:
                code |= 0 if "fork" in str(e) else 32
            for what in ("flush", "close"):
                try:
                    getattr(p, what)()
                    code |= 1
                except RuntimeError as e:
                    code |= 0 if "fork" in str(e) else 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        c.add_many([1] * 10)
        c.inc()
        p.flush()
        print("parent", p.registry.counter("c").value)
        p.close()
        """
    )
    assert out.split() == ["child", "0", "parent", "111"]


def test_a_blocked_send_in_a_child_forked_behind_pythons_back_raises() -> None:
    # libc's fork() skips os.register_at_fork: the pid check at the slow
    # points (a send waiting for room, flush) must still catch it, and a
    # pipeline built in the child must work.
    out = ok(
        """
        import ctypes, os, signal, ringstat
        p = ringstat.Pipeline(workers=1, capacity=8)
        c = p.counter("c")
        pid = ctypes.CDLL(None).fork()
        if pid == 0:
            signal.alarm(20)
            with ringstat.Pipeline() as own:
                own.counter("mine").add_many([1] * 10)
                own.flush()
                if own.registry.counter("mine").value != 10:
                    os._exit(3)
            try:
                for _ in range(100):
                    c.inc()
                os._exit(1)
            except RuntimeError as e:
                os._exit(0 if "fork" in str(e) else 2)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        c.add_many(iter([1] * 100))
        p.close()
        print("parent", p.registry.counter("c").value)
        """
    )
    assert out.split() == ["child", "0", "parent", "100"]


# ----- 5. sessions that never end ---------------------------------------------------


def test_max_sessions_evicts_the_oldest_and_counts() -> None:
    with Pipeline(workers=1) as p:
        s = p.sessions("s", max_sessions=2)
        assert s.start_many(range(5), ts=1.0) == 5
        s.end(4, ts=3.0)  # still open: completes
        s.end(0, ts=3.0)  # evicted: an end without a start
        p.flush()
        reg = p.registry
        assert reg.counter("s_evicted_total").value == 3
        assert reg.counter("s_started_total").value == 5
        assert reg.counter("s_completed_total").value == 1
        assert reg.gauge("s_open").value == 1
        assert reg.counter("s_anomalies_total", {"kind": "end_without_start"}).value == 1
        names = {m["name"] for m in reg.snapshot()["metrics"]}
        assert "s_evicted_total" in names
        # The same tracker with another limit is a configuration clash.
        with pytest.raises(ValueError, match="another configuration"):
            p.sessions("s", max_sessions=3)


def test_max_sessions_bounds_open_sessions_across_workers() -> None:
    with Pipeline(workers=3) as p:
        s = p.sessions("s", max_sessions=30)
        s.start_many(range(100_000), ts=1.0)
        p.flush()
        reg = p.registry
        open_now = reg.gauge("s_open").value
        assert open_now <= 30
        assert reg.counter("s_evicted_total").value == 100_000 - open_now


def test_handle_calls_parse_arguments_as_python_methods_do() -> None:
    """The handles' one-event calls take a fast path for an exact int key
    and a float or no ``ts``; every other spelling goes through the general
    conversions: both send the same events, and bad calls raise CPython's
    errors and send nothing."""
    with Pipeline() as p:
        online, users, logins = p.sessions("online"), p.distinct("users"), p.counter("logins")
        online.start(1)
        online.start(2, 1.5)
        online.start(3, None)
        online.start(key=4, ts=2.0)
        online.start(5, ts=2)
        online.start(2**64 - 1)  # past i64: the general path
        online.start(-1)  # the fast path: the same key as 2**64 - 1 (a restart)
        online.end(1, 3.0)
        online.end(key=2, ts=3.5)
        users.seen("alice")
        users.seen(b"bob")
        users.seen(7, ts=1.0)
        users.seen(key=8)
        logins.inc()
        # Typed as Any: these calls are wrong on purpose.
        so: Any = online
        du: Any = users
        lc: Any = logins
        bad: list[tuple[Callable[[], object], type[Exception], str]] = [
            (
                lambda: so.start(),  # noqa: PLW0108 (calls it with no argument)
                TypeError,
                r"^start\(\) missing 1 required positional argument: 'key'$",
            ),
            (
                lambda: so.end(1, 2.0, 3),
                TypeError,
                r"^end\(\) takes at most 2 arguments \(3 given\)$",
            ),
            (
                lambda: so.start(1, tz=2.0),
                TypeError,
                r"^start\(\) got an unexpected keyword argument 'tz'$",
            ),
            (
                lambda: du.seen(1, key=2),
                TypeError,
                r"^seen\(\) got multiple values for argument 'key'$",
            ),
            (lambda: so.start(1, -1.0), ValueError, "ts must be"),
            (lambda: so.start(1, float("nan")), ValueError, "ts must be"),
            (lambda: so.start(1.5), TypeError, "key must be"),
            (lambda: du.seen(True), TypeError, "key must be"),
            (lambda: du.seen(2**64), ValueError, "key out of range"),
            (lambda: lc.inc(1), TypeError, r"^inc\(\) takes no arguments \(1 given\)$"),
            (
                lambda: lc.inc(n=1),
                TypeError,
                r"^inc\(\) got an unexpected keyword argument 'n'$",
            ),
        ]
        for call, exc, match in bad:
            with pytest.raises(exc, match=match):
                call()
        p.flush()
        reg = p.registry
        assert reg.gauge("online_open").value == 4  # keys 1..5 and 2**64-1, 1 and 2 ended
        assert reg.counter("logins").value == 1
        assert round(users.count) == 4
