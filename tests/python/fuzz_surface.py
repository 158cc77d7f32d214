"""Property-based fuzzing of the whole native surface of ringstat.

Every public class of ``ringstat._ringstat`` is built with good arguments,
then every public method, property and protocol (``repr``, ``hash``,
``pickle``...) is called with arguments that mix good values and bad ones:
wrong types, ``None``, bools, huge and negative ints, NaN/inf, strings with
NUL or ``\\u2028``, bytes, objects whose ``__index__``/``__float__``/
``__iter__`` misbehave, iterables that lie about their length, numpy arrays
of odd dtypes, shapes and layouts. Constructors get the same treatment.

The contract checked for every call:

- it returns, or raises an ``Exception`` (never ``pyo3_runtime.PanicException``,
  which derives from ``BaseException``, and never ``SystemError``) with a
  non-empty message (``queue.Empty``/``queue.Full``/``ShutDown``/``StopIteration``
  excepted: the standard library raises them without one);
- it reports no unraisable exception;
- it does not change the reference count of the objects passed in (except
  items a ``Queue`` keeps), and once every ringstat object is closed and
  dropped and ``gc.collect()`` has run, every object passed in is back to
  its baseline.

Crashes and hangs cannot be caught in-process: ``test_fuzz.py`` runs this
module in a subprocess (pytest collects it only when named explicitly) and
checks the exit status and the output for ``PanicException``/``panicked at``.
Before each call a line naming it is appended to ``$RINGSTAT_FUZZ_JOURNAL``,
so a crash or hang can be pinned on a call (a crash on a native thread, such
as a pipeline worker, may surface a call or two later).

Environment:

- ``RINGSTAT_FUZZ_EXAMPLES``: examples per class (default 30);
- ``RINGSTAT_FUZZ_SEED``: a random seed (default: derandomized);
- ``RINGSTAT_FUZZ_SHRINK=1``: let hypothesis shrink a failing example;
- ``RINGSTAT_FUZZ_COLLECT=path``: append every failure to ``path`` (JSON
  lines) instead of failing, to list them all in one run;
- ``RINGSTAT_FUZZ_SKIP=Class.op,Class.op:param,class:Class,recipe:Recipe``:
  skip an operation, give a parameter good values only, leave a class
  alone, or pass ``None`` for a kind of value (to get past a known crash);
- ``RINGSTAT_FUZZ_MEMORY_LIMIT=bytes``: cap the address space.

A deep run that gets past crashes and prints every distinct failure::

    python tests/python/fuzz_surface.py --examples 500 --out /tmp/fuzz.jsonl
"""

from __future__ import annotations

import array
import atexit
import collections
import contextlib
import copy
import gc
import glob
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import queue
import sys
import types
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import ringstat
from ringstat import _ringstat

np: Any = importlib.import_module("numpy") if importlib.util.find_spec("numpy") else None

EXAMPLES = int(os.environ.get("RINGSTAT_FUZZ_EXAMPLES", "30"))
SEED = os.environ.get("RINGSTAT_FUZZ_SEED")
COLLECT = os.environ.get("RINGSTAT_FUZZ_COLLECT")
JOURNAL = os.environ.get("RINGSTAT_FUZZ_JOURNAL")
SKIP = frozenset(s.strip() for s in os.environ.get("RINGSTAT_FUZZ_SKIP", "").split(",") if s)
MAX_CALLS = 12
MAX_OBJECTS = 8


def _limit_memory() -> None:
    """Caps the address space (``$RINGSTAT_FUZZ_MEMORY_LIMIT`` bytes), so a
    bad capacity the library tries to honour fails to allocate instead of
    eating the machine."""
    limit = os.environ.get("RINGSTAT_FUZZ_MEMORY_LIMIT")
    if limit and sys.platform.startswith("linux"):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), hard))


_limit_memory()

NAN = float("nan")
INF = float("inf")


# ----- values built fresh for each call ---------------------------------------


class Recipe:
    """A value built fresh for each call, so the objects passed in can be
    reference-counted, and the report shows what it was."""

    def build(self, ctx: Ctx) -> Any:
        raise NotImplementedError


class Tracked:
    """An object whose reference count is checked."""


@dataclass(frozen=True)
class New(Recipe):
    """A fresh tracked object."""

    def build(self, ctx: Ctx) -> Any:
        return ctx.track(Tracked())


@dataclass(frozen=True)
class Receiver(Recipe):
    """The object the method is called on."""

    def build(self, ctx: Ctx) -> Any:
        return ctx.receiver


@dataclass(frozen=True)
class Other(Recipe):
    """A fresh ringstat object of class ``kind``."""

    kind: str

    def build(self, ctx: Ctx) -> Any:
        return ctx.make(self.kind)


class _Index(Tracked):
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class _Float(Tracked):
    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


class _Raiser(Tracked):
    """Every conversion raises."""

    def __index__(self) -> int:
        raise ValueError("boom: __index__")

    def __float__(self) -> float:
        raise ValueError("boom: __float__")

    def __iter__(self) -> Iterator[int]:
        raise ValueError("boom: __iter__")

    def __len__(self) -> int:
        raise ValueError("boom: __len__")


class _BadStrInt(int):
    """An int whose ``str()`` and ``repr()`` raise (error messages format it)."""

    def __str__(self) -> str:
        raise ValueError("boom: __str__")

    def __repr__(self) -> str:
        raise ValueError("boom: __repr__")


@dataclass(frozen=True)
class Index(Recipe):
    """An object with ``__index__`` only."""

    value: int

    def build(self, ctx: Ctx) -> Any:
        return ctx.track(_Index(self.value))


@dataclass(frozen=True)
class Float(Recipe):
    """An object with ``__float__`` only."""

    value: float

    def build(self, ctx: Ctx) -> Any:
        return ctx.track(_Float(self.value))


@dataclass(frozen=True)
class Raiser(Recipe):
    """An object whose ``__index__``, ``__float__``, ``__iter__``, ``__len__`` raise."""

    def build(self, ctx: Ctx) -> Any:
        return ctx.track(_Raiser())


@dataclass(frozen=True)
class BadStrInt(Recipe):
    """An ``int`` subclass whose ``str()`` raises."""

    value: int

    def build(self, ctx: Ctx) -> Any:
        return _BadStrInt(self.value)


@dataclass(frozen=True)
class Seq(Recipe):
    """A container of built items: list, tuple, generator, set, deque, dict
    (its keys iterate), range-like or array.array."""

    kind: str
    items: tuple[Any, ...]

    def build(self, ctx: Ctx) -> Any:
        items = [ctx.build(i) for i in self.items]
        try:
            return SEQ_KINDS[self.kind](items)
        except (TypeError, OverflowError):  # unhashable items for a set, ...
            return items


SEQ_KINDS: dict[str, Callable[[list[Any]], Any]] = {
    "list": lambda items: items,
    "tuple": tuple,
    "gen": lambda items: (i for i in items),
    "deque": collections.deque,
    "dict": dict.fromkeys,
    "set": set,
    "array": lambda items: array.array("q", items),
    "nested": lambda items: [items, [items]],
}


@dataclass(frozen=True)
class Big(Recipe):
    """A large but bounded list of one item repeated (or ``range(n)``)."""

    n: int
    item: Any

    def build(self, ctx: Ctx) -> Any:
        if self.item == "range":
            return range(self.n)
        return [ctx.build(self.item)] * self.n


class _LenLiar(Tracked):
    def __init__(self, claimed: int, items: list[Any]) -> None:
        self.claimed = claimed
        self.items = items

    def __len__(self) -> int:
        return self.claimed

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


@dataclass(frozen=True)
class LenLiar(Recipe):
    """An iterable of a few items whose ``__len__`` claims ``claimed``."""

    claimed: int
    items: tuple[Any, ...] = (1, 2, 3)

    def build(self, ctx: Ctx) -> Any:
        return ctx.track(_LenLiar(self.claimed, [ctx.build(i) for i in self.items]))


def _failing(items: list[Any]) -> Iterator[Any]:
    yield from items
    raise RuntimeError("boom: the iterator failed")


@dataclass(frozen=True)
class FailingIter(Recipe):
    """A generator that yields ``items`` and then raises."""

    items: tuple[Any, ...] = (1, 2)

    def build(self, ctx: Ctx) -> Any:
        return _failing([ctx.build(i) for i in self.items])


class _RaisingMapping(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise ValueError("boom: mapping __iter__")

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:
        raise ValueError("boom: mapping items()")


@dataclass(frozen=True)
class Labels(Recipe):
    """A labels argument: a dict subclass, a raising mapping, or many labels."""

    kind: str

    def build(self, ctx: Ctx) -> Any:
        if self.kind == "raising":
            return _RaisingMapping()
        if self.kind == "many":
            return {f"k{i}": str(i) for i in range(1000)}
        if self.kind == "ordered":
            return collections.OrderedDict(k="v")
        if self.kind == "proxy":
            return types.MappingProxyType({"k": "v"})
        raise AssertionError(self.kind)


@dataclass(frozen=True)
class Arr(Recipe):
    """A numpy array: ``dtype`` (numpy typestr), ``layout`` and ``fill``."""

    dtype: str
    layout: str = "1d"
    fill: str = "small"
    n: int = 5

    def build(self, ctx: Ctx) -> Any:
        n = self.n
        dt = np.dtype(self.dtype)
        count = n * 2 if self.layout in ("strided", "2d", "fortran") else n
        if self.fill == "edge" and dt.kind in "iu":
            info = np.iinfo(dt)
            base = np.array([info.min, info.max, 0, 1] * (count // 4 + 1))[:count]
        elif self.fill == "edge" and dt.kind == "f":
            base = np.array([NAN, INF, -INF, -0.0, 1e300, -1.0] * (count // 6 + 1))[:count]
        elif self.fill == "neg":
            base = -np.arange(count) - 1
        else:
            base = np.arange(count) % 100
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                a = np.asarray(base).astype(dt)
        except (TypeError, ValueError, OverflowError):
            a = np.zeros(count, dtype=dt)
        if self.layout == "unaligned" and dt.kind != "O":
            raw = b"\0" + a.tobytes() + b"\0"
            return np.frombuffer(raw, dtype=dt, offset=1, count=n)
        if self.layout == "readonly":
            a.flags.writeable = False
        if self.layout == "0d":
            return a[0] if n else np.zeros((), dtype=dt)
        layouts: dict[str, Callable[[Any], Any]] = {
            "strided": lambda a: a[::2],
            "reversed": lambda a: a[::-1],
            "2d": lambda a: a.reshape(2, n),
            "fortran": lambda a: np.asfortranarray(a.reshape(n, 2)),
            "0d_array": lambda a: np.array(a[0] if n else 0, dtype=dt),
            "masked": lambda a: np.ma.masked_array(a, mask=[i % 2 == 0 for i in range(n)]),
            "matrix_like": lambda a: a.reshape(1, n),
        }
        return layouts.get(self.layout, lambda a: a)(a)


# ----- the context of one example ---------------------------------------------


class Ctx:
    """One example: the objects made, the tracked objects passed in, the
    calls made so far, and the failures seen."""

    def __init__(self, data: st.DataObject | None, test: str) -> None:
        self.data = data
        self.test = test
        # tracked[0] is a control, never passed anywhere: every tracked object
        # is back to its refcount once nothing but `tracked` holds it.
        self.tracked: list[object] = [Tracked()]
        self.stored: set[int] = set()
        self.objects: list[Any] = []
        self.receiver: Any = None
        self.history: list[str] = []
        self.failures: list[str] = []

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        assert self.data is not None
        return self.data.draw(strategy, label=label)

    def track(self, obj: Any) -> Any:
        self.tracked.append(obj)
        return obj

    def build(self, value: Any) -> Any:
        if isinstance(value, Recipe):
            if f"recipe:{type(value).__name__}" in SKIP:
                return None
            return value.build(self)
        if isinstance(value, (list, dict, set)):
            return copy.copy(value)  # a shared constant must not be mutated
        return value

    def make(self, kind: str) -> Any:
        """A ringstat object of class ``kind`` made with good arguments."""
        if f"class:{kind}" in SKIP:
            kind = "ManualClock"  # a harmless stand-in for a class that cannot be made
        obj = FACTORIES[kind](self)
        self.keep(obj)
        return obj

    def keep(self, obj: Any) -> None:
        if is_ringstat(obj) and not any(o is obj for o in self.objects):
            self.objects.append(obj)

    def excess_refs(self, only_new_from: int = 1) -> list[tuple[int, int]]:
        """``(index, extra references)`` of tracked objects not stored in a
        queue whose refcount is not the control's."""
        base = sys.getrefcount(self.tracked[0])
        out = []
        for i in range(only_new_from, len(self.tracked)):
            if i in self.stored:
                continue
            extra = sys.getrefcount(self.tracked[i]) - base
            if extra:
                out.append((i, extra))
        return out

    def fail(self, kind: str, call: str, detail: str) -> None:
        record = {"test": self.test, "kind": kind, "call": call, "detail": detail}
        if COLLECT:
            with open(COLLECT, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        else:
            self.failures.append(f"{kind}: {call}\n    -> {detail}")

    def journal(self, line: str) -> None:
        self.history.append(line)
        if JOURNAL:
            with open(JOURNAL, "a", encoding="utf-8") as f:
                f.write(f"{self.test}: {line}\n")


def is_ringstat(obj: Any) -> bool:
    return type(obj).__module__ in ("ringstat._ringstat", "ringstat") and not isinstance(
        obj, BaseException
    )


def short_repr(value: Any, limit: int = 120) -> str:
    try:
        text = repr(value)
    except Exception as e:
        text = f"<repr raised {type(e).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Raised by the standard library without a message, so ringstat does too.
# StopIteration: the end of `next(q)` after shutdown, as any iterator's.
NO_MESSAGE_OK: tuple[type[BaseException], ...] = (
    queue.Empty,
    queue.Full,
    ringstat.ShutDown,
    StopIteration,
)


def is_panic(e: BaseException) -> bool:
    return type(e).__name__ == "PanicException"


def invoke(ctx: Ctx, label: str, fn: Callable[[], Any]) -> tuple[str, Any]:
    """Runs ``fn()`` and checks the outcome: ``("ok", result)`` or
    ``("raised", exception type)``."""
    unraisable: list[str] = []
    previous_hook = sys.unraisablehook

    def hook(u: Any) -> None:
        unraisable.append(f"{u.exc_type.__name__}: {u.exc_value} ({u.err_msg})")

    sys.unraisablehook = hook
    try:
        try:
            result = fn()
        except Exception as e:
            if isinstance(e, SystemError):
                ctx.fail("SystemError", label, f"{type(e).__name__}: {e}")
            else:
                try:
                    message = str(e)
                except Exception as inner:
                    message = ""
                    ctx.fail("bad exception", label, f"str() of it raised {inner!r}")
                if not message.strip() and not isinstance(e, NO_MESSAGE_OK):
                    ctx.fail("empty message", label, f"{type(e).__module__}.{type(e).__name__}()")
            return ("raised", type(e))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt) or type(e).__module__.startswith("hypothesis"):
                raise
            kind = "PanicException" if is_panic(e) else "BaseException"
            ctx.fail(kind, label, f"{type(e).__module__}.{type(e).__name__}: {e}")
            return ("raised", type(e))
        try:
            if is_ringstat(result):
                repr(result)
        except Exception as e:
            ctx.fail("repr of result", label, f"{type(e).__name__}: {e}")
        return ("ok", result)
    finally:
        sys.unraisablehook = previous_hook
        for u in unraisable:
            ctx.fail("unraisable", label, u)


# ----- the surface --------------------------------------------------------------

# Dunders fuzzed as methods (the others are Python's own or constructors).
DUNDERS = frozenset(
    {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__int__"}
    | {"__float__", "__index__", "__len__", "__bool__", "__iter__", "__next__"}
    | {"__contains__", "__getitem__", "__setitem__", "__delitem__", "__repr__", "__str__"}
    | {"__enter__", "__exit__", "__class_getitem__", "__reduce__", "__reduce_ex__"}
    | {"__copy__", "__deepcopy__", "__getstate__", "__setstate__"}
)
# Protocol operations tried on every object.
PROTOCOL = (
    "repr",
    "str",
    "hash",
    "bool",
    "len",
    "int",
    "float",
    "iter",
    "pickle",
    "copy",
    "deepcopy",
    "weakref",
    "setattr_new",
    "eq_other",
)


# Pure-Python classes over the native ones, whose methods are coroutines (a
# call not awaited does nothing): covered by their own tests (test_aio.py,
# test_aio_pipeline.py, test_aio_shared.py).
PYTHON_ONLY = frozenset({"AsyncPipeline", "AsyncQueue", "AsyncSharedQueue"})


def public_classes() -> dict[str, type]:
    """Every class named by ``ringstat.__all__`` or defined by ``_ringstat``,
    but ``PYTHON_ONLY``."""
    exported = {
        name: getattr(ringstat, name) for name in ringstat.__all__ if name not in PYTHON_ONLY
    }
    native = {name: obj for name, obj in vars(_ringstat).items() if not name.startswith("_")}
    return {name: obj for name, obj in {**exported, **native}.items() if isinstance(obj, type)}


def is_property(attr: Any) -> bool:
    return isinstance(attr, (property, types.GetSetDescriptorType, types.MemberDescriptorType))


def methods_of(cls: type) -> list[str]:
    names = []
    for name, attr in vars(cls).items():
        if name.startswith("__") and name not in DUNDERS:
            continue
        if is_property(attr):
            continue
        if callable(attr) or type(attr).__name__ == "classmethod_descriptor":
            names.append(name)
    return sorted(names)


def properties_of(cls: type) -> list[str]:
    return sorted(
        name for name, attr in vars(cls).items() if is_property(attr) and not name.startswith("__")
    )


def operations_of(cls: type) -> list[str]:
    """Each method and property getter, one setter and one deleter of a
    property drawn later, and one protocol operation drawn later: so that
    most calls go to methods."""
    props = properties_of(cls)
    ops = [f"call:{m}" for m in methods_of(cls)] + [f"get:{p}" for p in props]
    return [*ops, *(["set:", "del:"] if props else []), "proto:"]


# ----- argument domains -----------------------------------------------------------


def g(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


U64 = st.one_of(
    g(0, 1, 2, 7, 100, 2**32, 2**40 - 1, 2**40, 2**53 + 1, 2**63, 2**64 - 1),
    st.integers(0, 2**64 - 1),
)
I64 = st.one_of(g(0, 1, -1, 2**40, -(2**40), 2**63 - 1, -(2**63)), st.integers(-(2**63), 2**63 - 1))
HVAL = st.one_of(
    g(0, 1, 100, 10**6, 2**63, 2**64 - 1, 0.4, 0.5, 1.5, 2.5, 999_999.5, 1e18, -0.4, -0.5),
    st.integers(0, 10**6),
    st.floats(0, 1e7),
)
KEY = st.one_of(
    U64,
    g(-1, -(2**63)),
    g("alice", "", "a\x00b", "\u2028", "\r\n", "\u00e9", "x" * 1000),
    g(b"", b"bob", b"\x00\xff"),
)
TS = st.one_of(st.none(), g(0, 0.0, 0.5, 1, 1e9, 1.8e10 - 1), st.floats(0, 1e6))
SECONDS = st.one_of(g(0, 0.0, 1, 1.5, 1e-9, 1e9, 2**32), st.floats(0, 1e6))
WINDOW = g(0.001, 0.01, 1, 1.0, 10, 60.0, 3600, 1e9)
BUCKETS = st.one_of(st.integers(1, 20), g(60))
MAX_VALUE = g(1, 2, 100, 10**6, 3_600_000_000, 2**63 - 1, 2**63, 2**64 - 1)
PERCENT = st.one_of(g(0, 50, 90, 99, 99.9, 99.99999, 100, 0.0, 100.0, 1e-300), st.floats(0, 100))
NAME = g("a", "b", "c", "logins", "x_y", "a:b")
#: The one shared-memory region the fuzzer's SharedRegistry objects use.
SHM_NAME = f"ringstat-fuzz-{os.getpid()}"


@atexit.register
def _remove_shm() -> None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        ringstat.SharedRegistry.attach(SHM_NAME).unlink()


LABELS = st.one_of(
    st.none(),
    g({}, {"k": "v"}, {"region": "eu", "host": "h1"}, {"k": ""}, {"k": 'a"b\\c\n'}),
)
SHORT_TIMEOUT = g(0, 0.0, 0.001, 0.01)
# Shared queues: good names carry this run's prefix (removed at exit); the
# bad ones are all invalid, so the fuzzer never creates or removes a name of
# anyone else's in /dev/shm.
SHM_PREFIX = f"ringstat-fuzz-{os.getpid()}-"
SHM_QUEUE_NAME = g(SHM_PREFIX + "q1", SHM_PREFIX + "q2")
BAD_SHM_NAME = g("", "/", "a/b", "a\0b", "..", "x" * 300, None, 1, b"q", Raiser())


@atexit.register
def _remove_shm_names() -> None:
    if hasattr(ringstat, "SharedQueue"):
        for path in glob.glob(f"/dev/shm/{SHM_PREFIX}*"):
            ringstat.SharedQueue.cleanup(os.path.basename(path))


def seq_of(
    elements: st.SearchStrategy[Any], kinds: tuple[str, ...] = ("list", "tuple", "gen")
) -> st.SearchStrategy[Any]:
    return st.builds(Seq, st.sampled_from(kinds), st.lists(elements, max_size=8).map(tuple))


def arrays(*dtypes: str) -> st.SearchStrategy[Any]:
    if np is None:
        return st.nothing()
    return st.builds(
        Arr,
        st.sampled_from(dtypes),
        g("1d", "1d", "readonly", "unaligned", "reversed"),
        g("small", "edge", "neg"),
        st.integers(0, 6),
    )


# Any numpy array: odd dtypes, shapes and layouts.
ODD_ARRAYS: st.SearchStrategy[Any] = (
    st.nothing()
    if np is None
    else st.builds(
        Arr,
        g(
            "<u8",
            "<i8",
            "<f8",
            ">u8",
            ">i8",
            ">f8",
            "u1",
            "i4",
            "u4",
            "f4",
            "?",
            "O",
            "c16",
            "M8[s]",
            "S8",
            "U3",
            "f2",
        ),
        g(
            "1d",
            "strided",
            "reversed",
            "2d",
            "fortran",
            "0d",
            "0d_array",
            "readonly",
            "unaligned",
            "masked",
            "matrix_like",
        ),
        g("small", "edge", "neg"),
        st.integers(0, 6),
    )
)
NUMPY_SCALARS: st.SearchStrategy[Any] = (
    st.nothing()
    if np is None
    else g(
        np.uint64(2**64 - 1),
        np.int64(-1),
        np.int64(5),
        np.float64(NAN),
        np.float32(1.5),
        np.bool_(True),
        np.int8(-3),
        np.uint8(200),
    )
)

BAD_SCALARS = g(
    None,
    True,
    False,
    0,
    -1,
    2**40,
    2**63,
    2**64,
    2**100,
    -(2**63) - 1,
    -(2**64),
    NAN,
    INF,
    -INF,
    -0.0,
    1e300,
    0.5,
    2**1100,
    "",
    "a\x00b",
    "\r\n",
    "\u2028",
    "\ud800",
    "1",
    "1.5",
    "nan",
    b"",
    b"\x00\xff",
    bytearray(b"ab"),
    complex(1, 2),
    Decimal("NaN"),
    Decimal("1.5"),
    Fraction(1, 3),
    (),
    (1,),
    [],
    [None],
    [[1, 2]],
    {},
    {1: 2},
    frozenset({1}),
    Ellipsis,
    NotImplemented,
    int,
    object,
)
BAD = st.one_of(
    BAD_SCALARS,
    st.just(New()),
    st.just(Receiver()),
    g(
        Other("Counter"),
        Other("Histogram"),
        Other("Queue"),
        Other("ManualClock"),
        Other("Registry"),
    ),
    g(Index(3), Index(-1), Index(2**70), Float(NAN), Float(1.5), Float(-1.0), Raiser()),
    g(BadStrInt(2**70), BadStrInt(-1)),
    g(LenLiar(2**40), LenLiar(2**62), LenLiar(-1), LenLiar(0), FailingIter()),
    g(Big(100_000, 1), Big(10**6, "range")),
    seq_of(
        st.one_of(BAD_SCALARS, st.just(New())), ("list", "tuple", "gen", "set", "dict", "nested")
    ),
    ODD_ARRAYS,
    NUMPY_SCALARS,
)

BAD_INT = st.one_of(
    g(2**40, 2**31, 2**62, 2**64, 2**100, -1, -(2**63) - 1),
    g(1.0, 1.5, NAN, True, False, "1"),
    g(Index(5), Index(2**70), Index(-5), BadStrInt(2**70), BadStrInt(-(2**70)), Raiser()),
    NUMPY_SCALARS,
)
BAD_FLOAT = st.one_of(
    g(NAN, INF, -INF, -1.0, -1e-9, 1e300, 2**64, 2**1100, -(2**1100), "1.0", True),
    g(Float(NAN), Float(1.0), Float(-1.0), Raiser(), Decimal("1.5"), Fraction(1, 3)),
    NUMPY_SCALARS,
)
BAD_NAME = g(
    "",
    "1a",
    "a b",
    "a-b",
    "a\x00",
    "\ud800",
    "\u00e9",
    "\u2028",
    "a" * 10_000,
    "__name__",
    "le",
    "quantile",
    "a_total",
    "a_sum",
    "a_count",
    "ringstat_pipeline_received_total",
    b"a",
    None,
    1,
)
BAD_LABELS = st.one_of(
    g({"k": 1}, {1: "v"}, {"": "v"}, {"1k": "v"}, {"__name__": "x"}, {"le": "1"}),
    g({"quantile": "x"}, {"k": "v\x00"}, {"k": "\ud800"}, {"\ud800": "v"}, [("k", "v")]),
    g(Labels("raising"), Labels("many"), Labels("ordered"), Labels("proxy"), "k=v"),
)
BAD_SEQ = st.one_of(
    g(LenLiar(2**40), LenLiar(2**62), LenLiar(-1), FailingIter(), "abc", b"abc", Raiser()),
    g(Big(100_000, 1), Big(10**6, "range"), Big(1000, NAN), Big(1000, -1)),
    ODD_ARRAYS,
)
BAD_TIMEOUT = g(-1, -0.0001, NAN, -INF, "0.1", b"", [], Float(0.001), Float(NAN), Raiser())

ITEM = st.one_of(
    st.just(New()),
    g(None, 1, "x", NAN),
    st.just(Receiver()),
    g(Other("Queue"), Other("Counter")),
    seq_of(st.just(New())),
)
COUNTS = st.one_of(seq_of(U64, ("list", "tuple", "gen", "deque", "dict")), arrays("<u8", "<i8"))
SIGNED = st.one_of(seq_of(I64, ("list", "tuple", "gen", "array")), arrays("<i8", "<u8"))
HVALS = st.one_of(seq_of(HVAL), arrays("<u8", "<i8", "<f8"))
KEYS = st.one_of(seq_of(KEY, ("list", "tuple", "gen", "set")), arrays("<u8", "<i8"))
TS_MANY = st.one_of(TS, seq_of(st.floats(0, 1e6)), arrays("<f8", "<u8", "<i8"))
PERCENTILES = st.one_of(st.none(), seq_of(PERCENT, ("list", "tuple", "gen", "set")), arrays("<f8"))

Domain = tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]


STATE_BYTES = st.one_of(
    st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"RSRS\x01\x00" + b)
)


def _domains() -> dict[str, Domain]:
    int_bad = BAD_INT
    return {
        # by parameter name
        "maxsize": (st.integers(1, 8), st.one_of(int_bad, g(0, -(2**63)))),
        "max_items": (st.integers(1, 10), st.one_of(int_bad, g(0))),
        "item": (ITEM, BAD),
        "items": (
            st.one_of(
                seq_of(ITEM, ("list", "tuple", "gen", "deque", "set", "nested")),
                g(Big(1000, New())),
            ),
            BAD_SEQ,
        ),
        "block": (st.booleans(), g(None, 0, 1, "yes", "", 1.0, [])),
        "timeout": (SHORT_TIMEOUT, BAD_TIMEOUT),
        "immediate": (st.booleans(), g(None, 0, 1, "yes", "")),
        "n": (U64, int_bad),
        "count": (st.integers(0, 100), int_bad),
        "key": (KEY, st.one_of(int_bad, BAD_SCALARS)),
        "ts": (TS, BAD_FLOAT),
        "seconds": (SECONDS, BAD_FLOAT),
        "window": (WINDOW, st.one_of(BAD_FLOAT, g(0, 0.0, 1e-4, 1e9, 1.8e10))),
        "buckets": (BUCKETS, st.one_of(int_bad, g(0, 2**40, 2**31, 2**34))),
        "max_value": (MAX_VALUE, st.one_of(int_bad, g(0))),
        "significant_digits": (st.integers(0, 5), st.one_of(int_bad, g(6, 255, 256))),
        "precision": (st.integers(4, 16), st.one_of(int_bad, g(0, 3, 17, 64, 255, 256))),
        "max_duration": (g(0.001, 1, 3600.0, 2592000.0), st.one_of(BAD_FLOAT, g(0, 1e-4))),
        "interval": (g(0.001, 0.01, 0.1, 1.0), st.one_of(BAD_FLOAT, g(0, 1e-12))),
        "max_series": (st.one_of(st.none(), st.integers(0, 20)), st.one_of(BAD_INT, g(2**64))),
        "shards": (
            st.one_of(st.none(), st.integers(1, 64), g(65536, 3)),
            st.one_of(int_bad, g(0, 65537)),
        ),
        "capacity": (st.integers(1, 512), st.one_of(int_bad, g(0))),
        "workers": (st.integers(1, 3), st.one_of(int_bad, g(0, 256, 257))),
        "batch_size": (st.integers(1, 64), st.one_of(int_bad, g(0, 2**31))),
        "backpressure": (
            g("block", "drop_newest", "overwrite_oldest"),
            g("", "Block", "drop", None, 1, b"block"),
        ),
        "name": (NAME, BAD_NAME),
        "labels": (LABELS, BAD_LABELS),
        "clock": (st.one_of(st.none(), st.just(Other("ManualClock"))), BAD),
        "registry": (st.one_of(st.none(), st.just(Other("Registry"))), BAD),
        "percentiles": (
            PERCENTILES,
            st.one_of(BAD_SEQ, seq_of(BAD_FLOAT), g(50, "50", [101], [-1], [NAN])),
        ),
        "qs": (
            PERCENTILES.filter(lambda p: p is not None),
            st.one_of(BAD_SEQ, seq_of(BAD_FLOAT), g(50, "50", [101])),
        ),
        "q": (PERCENT, st.one_of(BAD_FLOAT, g(101, -0.0001, 100.0000001))),
        "other": (st.one_of(st.just(Other("Histogram")), st.just(Receiver())), BAD),
        "value": (st.one_of(st.just(Receiver()), ITEM), BAD),
        "ns": (COUNTS, st.one_of(BAD_SEQ, seq_of(st.one_of(U64, BAD_SCALARS)))),
        "keys": (KEYS, st.one_of(BAD_SEQ, seq_of(st.one_of(KEY, BAD_SCALARS)))),
        "values": (HVALS, st.one_of(BAD_SEQ, seq_of(st.one_of(HVAL, BAD_SCALARS)))),
        "_args": (st.none(), BAD),
        "_exc_type": (st.none(), BAD),
        "_exc": (st.none(), BAD),
        "_tb": (st.none(), BAD),
        # by method and parameter
        # Shared registries: one region name per fuzzing process (removed at
        # exit), tiny sizes; bad names must fail cleanly.
        "SharedRegistry.__new__.name": (st.just(SHM_NAME), BAD_NAME),
        "SharedRegistry.attach.name": (st.just(SHM_NAME), BAD_NAME),
        "SharedRegistry.__new__.max_processes": (st.integers(1, 8), st.one_of(int_bad, g(0))),
        "SharedRegistry.__new__.max_entries": (st.integers(1, 64), st.one_of(int_bad, g(0))),
        "SharedRegistry.__new__.data_bytes": (g(0, 4096, 65536), int_bad),
        "SharedRegistry.__new__.counter_shards": (st.integers(1, 8), st.one_of(int_bad, g(0))),
        "SharedRegistry.gauge.mode": (
            st.one_of(st.none(), g("livesum", "all", "max")),
            g("", "average", 1, b"all"),
        ),
        "Gauge.__new__.value": (I64, int_bad),
        "Gauge.set.value": (I64, int_bad),
        "GaugeHandle.set.value": (I64, int_bad),
        "Pipeline.set.value": (I64, int_bad),
        "FeedSender.set.value": (I64, int_bad),
        "FeedSender.gauge_add.n": (I64, int_bad),
        "FeedSender.observe.value": (U64, int_bad),
        "FeedSender.send.value": (st.one_of(st.none(), I64), int_bad),
        "FeedSender.send.op": (
            g("count", "set", "gauge_add", "observe", "mark", "session_start", "seen"),
            g("", "Count", "flush", None, 1, b"count"),
        ),
        "FeedSender.__new__.queue": (st.just(Other("SharedQueue")), BAD),
        "Pipeline.feed_from.queue": (st.just(Other("SharedQueue")), BAD),
        "Feed.stop.drain": (st.booleans(), g(None, 1, "yes")),
        "Gauge.add.n": (I64, int_bad),
        "Gauge.sub.n": (I64, int_bad),
        "GaugeHandle.add.n": (I64, int_bad),
        "Pipeline.gauge_add.n": (I64, int_bad),
        "GaugeHandle.add_many.ns": (
            SIGNED,
            st.one_of(BAD_SEQ, seq_of(st.one_of(I64, BAD_SCALARS))),
        ),
        "Histogram.record.value": (HVAL, BAD_FLOAT),
        "Histogram.record_n.value": (st.integers(0, 10**6), int_bad),
        "HistogramHandle.observe.value": (HVAL, BAD_FLOAT),
        "Pipeline.observe.value": (HVAL, BAD_FLOAT),
        "Pipeline.sessions.significant_digits": (
            st.integers(0, 5),
            st.one_of(int_bad, g(6, 255, 256)),
        ),
        "Queue.__class_getitem__.key": (g(int, str, (int, str)), BAD),
        # Registry.serve binds loopback only (no name is ever looked up).
        "Registry.serve.host": (g("127.0.0.1", "::1", "localhost"), BAD),
        "Registry.serve.port": (g(0), st.one_of(g(-1, 65536, 2**64), BAD)),
        "SharedQueue.__new__.name": (SHM_QUEUE_NAME, BAD_SHM_NAME),
        "SharedQueue.__new__.slot_size": (g(1, 8, 64), st.one_of(int_bad, g(0, 2**31))),
        "SharedQueue.__new__.max_processes": (g(1, 4, 128), st.one_of(int_bad, g(0, 4097))),
        "SharedQueue.__new__.mode": (g(0o600, 0o640), st.one_of(int_bad, g(0o1000, -1))),
        "SharedQueue.create.name": (SHM_QUEUE_NAME, BAD_SHM_NAME),
        "SharedQueue.create.slot_size": (g(1, 8, 64), st.one_of(int_bad, g(0, 2**31))),
        "SharedQueue.create.max_processes": (g(1, 4, 128), st.one_of(int_bad, g(0, 4097))),
        "SharedQueue.create.mode": (g(0o600, 0o640), st.one_of(int_bad, g(0o1000, -1))),
        "SharedQueue.attach.name": (SHM_QUEUE_NAME, BAD_SHM_NAME),
        "SharedQueue.put.item": (g(b"", b"x", bytearray(b"ab"), b"y" * 64), st.one_of(ITEM, BAD)),
        "SharedQueue.put_nowait.item": (g(b"", b"x", bytearray(b"ab")), st.one_of(ITEM, BAD)),
        "SharedQueue.put_many.items": (g([b"a", b"b"], (b"x",), [], [b""] * 9), BAD_SEQ),
        "SharedQueue.cleanup.name": (SHM_QUEUE_NAME, BAD_SHM_NAME),
        "SessionsHandle.start_many.ts": (TS_MANY, st.one_of(BAD_FLOAT, BAD_SEQ)),
        "SessionsHandle.end_many.ts": (TS_MANY, st.one_of(BAD_FLOAT, BAD_SEQ)),
        "DistinctHandle.seen_many.ts": (TS_MANY, st.one_of(BAD_FLOAT, BAD_SEQ)),
        # Registry states: arbitrary bytes and bytes behind a valid header.
        "Registry.merge_state.data": (STATE_BYTES, BAD),
        "Registry.from_state.data": (STATE_BYTES, BAD),
        "Pipeline.merge_state.data": (
            st.one_of(STATE_BYTES, st.binary(max_size=64).map(lambda b: b"RSPS\x01\x00" + b)),
            BAD,
        ),
    }


DOMAINS = _domains()


def domain(cls_name: str, method: str, param: str) -> Domain:
    for key in (f"{cls_name}.{method}.{param}", param):
        if key in DOMAINS:
            return DOMAINS[key]
    return (BAD, BAD)


def draw_value(ctx: Ctx, cls_name: str, method: str, param: str, quality: str = "mixed") -> Any:
    """A value for ``param``: ``"good"``, ``"bad"`` or ``"mixed"`` (either)."""
    good, bad = domain(cls_name, method, param)
    label = f"{cls_name}.{method}({param}=)"
    if quality == "good" or f"{cls_name}.{method}:{param}" in SKIP:
        return ctx.draw(good, label)
    if quality == "bad":
        return ctx.draw(st.one_of(bad, bad, bad, BAD), label)
    return ctx.draw(st.one_of(good, good, bad, BAD), label)


@dataclass
class Call:
    """A call drawn for ``cls_name.method``: positional and keyword arguments
    (recipes not built yet)."""

    cls_name: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any]

    def label(self) -> str:
        parts = [short_repr(a) for a in self.args]
        parts += [f"{k}={short_repr(v)}" for k, v in self.kwargs.items()]
        return f"{self.cls_name}.{self.method}({', '.join(parts)})"


_SIGNATURES: dict[tuple[str, str], inspect.Signature | None] = {}


def signature_of(cls_name: str, method: str, fn: Any) -> inspect.Signature | None:
    key = (cls_name, method)
    if key not in _SIGNATURES:
        try:
            _SIGNATURES[key] = inspect.signature(fn)
        except (TypeError, ValueError):
            _SIGNATURES[key] = None
    return _SIGNATURES[key]


def draw_call(ctx: Ctx, cls_name: str, method: str, fn: Any) -> Call:
    call = Call(cls_name, method, [], {})
    sig = signature_of(cls_name, method, fn)
    if sig is None:
        n = ctx.draw(st.integers(0, 2), f"{cls_name}.{method} arity")
        call.args = [ctx.draw(BAD, f"{cls_name}.{method} arg") for _ in range(n)]
        return call
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    # Mostly calls that are good but for one argument, so that each bad value
    # reaches the code that handles it rather than an earlier check (or two:
    # limits that bite together, such as a long window cut into many buckets).
    mode = ctx.draw(g("one bad", "one bad", "two bad", "all good", "mixed"), f"{cls_name}.{method}")
    corrupt: set[int] = set()
    for _ in range({"one bad": 1, "two bad": 2}.get(mode, 0) if params else 0):
        corrupt.add(ctx.draw(st.integers(0, len(params) - 1), f"{cls_name}.{method} bad argument"))
    positional = True
    for i, p in enumerate(params):
        quality = "bad" if i in corrupt else "mixed" if mode == "mixed" else "good"
        if p.kind is p.VAR_POSITIONAL:
            n = ctx.draw(st.integers(0, 4), f"{cls_name}.{method}(*{p.name})")
            call.args += [draw_value(ctx, cls_name, method, p.name, quality) for _ in range(n)]
            continue
        optional = p.default is not p.empty
        if (
            optional
            and i not in corrupt
            and ctx.draw(st.booleans(), f"{cls_name}.{method} omit {p.name}")
        ):
            positional = False
            continue
        value = draw_value(ctx, cls_name, method, p.name, quality)
        if p.kind is p.POSITIONAL_ONLY:
            call.args.append(value)
        elif p.kind is p.KEYWORD_ONLY or not positional:
            call.kwargs[p.name] = value
        elif ctx.draw(st.booleans(), f"{cls_name}.{method} {p.name} by keyword"):
            positional = False
            call.kwargs[p.name] = value
        else:
            call.args.append(value)
    extra = ctx.draw(st.integers(0, 19), f"{cls_name}.{method} extra")
    if extra == 0:
        call.args.append(ctx.draw(BAD, "extra positional"))
    elif extra == 1:
        call.kwargs["bogus"] = ctx.draw(BAD, "extra keyword")
    return call


def bound_param(call: Call, sig: inspect.Signature | None, name: str) -> tuple[bool, Any]:
    """Whether parameter ``name`` is given in ``call``, and its value."""
    if name in call.kwargs:
        return True, call.kwargs[name]
    if sig is None:
        return False, None
    for i, p in enumerate(q for q in sig.parameters.values() if q.kind is not q.VAR_POSITIONAL):
        if p.name == name:
            return (True, call.args[i]) if i < len(call.args) else (False, None)
    return False, None


# Parameters that never iterate their argument. Iterating a Queue waits for
# items forever (it is an endless iterable), so a queue is passed only here.
NOT_ITERATED = frozenset({"item", "value", "other", "key", "registry", "clock", "name"})


def _no_queue_to_iterate(call: Call, sig: inspect.Signature | None, receiver: Any) -> None:
    def is_queue(v: Any) -> bool:
        return v == Other("Queue") or (v == Receiver() and isinstance(receiver, ringstat.Queue))

    names = [p.name for p in sig.parameters.values()] if sig is not None else []
    for i, v in enumerate(call.args):
        if is_queue(v) and (names[i] if i < len(names) else "") not in NOT_ITERATED:
            call.args[i] = None
    for k, v in call.kwargs.items():
        if is_queue(v) and k not in NOT_ITERATED:
            call.kwargs[k] = None


def guard(ctx: Ctx, call: Call, receiver: Any, fn: Any) -> bool:
    """Makes a call that could block forever finish at once; ``False`` to
    skip it (a ``join()`` with tasks outstanding)."""
    sig = signature_of(call.cls_name, call.method, fn)
    _no_queue_to_iterate(call, sig, receiver)
    if sig is not None and "timeout" in sig.parameters:
        given_block, block = bound_param(call, sig, "block")
        if not (given_block and block is False):
            # Any other `block` may mean "wait": only a short or invalid
            # timeout, passed by keyword.
            _, timeout = bound_param(call, sig, "timeout")
            if timeout not in (0, 0.001, 0.01) or isinstance(timeout, bool):
                bad = ctx.draw(st.one_of(SHORT_TIMEOUT, BAD_TIMEOUT), "timeout (guarded)")
                names = [p for p in sig.parameters if p != "self"]
                index = names.index("timeout")
                if index < len(call.args):
                    call.args[index] = bad
                else:
                    call.kwargs["timeout"] = bad
    if call.method == "join" and not call.args and not call.kwargs:
        return isinstance(receiver, ringstat.Queue) and receiver.unfinished_tasks == 0
    if call.method == "__next__" and not call.args and not call.kwargs:
        # next(queue) waits for an item, like get().
        return isinstance(receiver, ringstat.Queue) and (
            receiver.qsize() > 0 or receiver.is_shutdown
        )
    return True


def _bind(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: fn(*args, **kwargs)


def run_call(ctx: Ctx, receiver: Any, call: Call, fn: Any) -> None:
    """Builds the arguments, calls ``fn`` and checks the outcome and the
    reference counts of what was passed in."""
    label = call.label()
    ctx.journal(label)
    first_new = len(ctx.tracked)
    args = [ctx.build(a) for a in call.args]
    kwargs = {k: ctx.build(v) for k, v in call.kwargs.items()}
    if isinstance(receiver, ringstat.Queue):
        # Items a queue keeps are checked once everything is dropped.
        ctx.stored.update(range(first_new, len(ctx.tracked)))
    before = ctx.excess_refs()
    outcome, result = invoke(ctx, label, _bind(fn, args, kwargs))
    del args, kwargs
    if outcome == "ok":
        ctx.keep(result)
    del result
    after = ctx.excess_refs()
    new_leaks = [(i, n) for i, n in after if i >= first_new or (i, n) not in before]
    if new_leaks:
        ctx.fail(
            "refcount", label, f"tracked objects (index, extra refs) after the call: {new_leaks}"
        )


# ----- factories: each class built with good arguments ----------------------------


def _queue(maxsize: int) -> Any:
    try:
        return ringstat.Queue(maxsize)
    except ValueError:  # a build without unbounded queues
        return ringstat.Queue(1)


def _pipeline(ctx: Ctx, **kwargs: Any) -> Any:
    registry = ctx.draw(st.one_of(st.none(), st.just("fresh"), st.just("clocked")), "registry")
    clock = None
    if registry == "clocked":
        clock = ctx.make("ManualClock")
        kwargs["clock"] = clock
        kwargs["registry"] = ringstat.Registry(clock=clock)
    elif registry == "fresh":
        reg = ringstat.Registry()
        reg.counter("a")  # names the handles may collide with
        reg.gauge("g_shared")
        kwargs["registry"] = reg
    kwargs.setdefault("capacity", ctx.draw(st.integers(3, 256), "capacity"))
    kwargs.setdefault("workers", ctx.draw(st.integers(1, 3), "workers"))
    kwargs.setdefault("batch_size", ctx.draw(st.integers(1, 32), "batch_size"))
    kwargs.setdefault(
        "backpressure", ctx.draw(g("block", "drop_newest", "overwrite_oldest"), "backpressure")
    )
    return ringstat.Pipeline(**kwargs)


def _recorder(ctx: Ctx) -> Any:
    reg = ctx.make("Registry")
    reg.counter("c").inc()
    reg.histogram("h", max_value=1000).record(5)
    reg.rate("r").add(3)
    rec = ringstat.Recorder(
        reg,
        interval=ctx.draw(g(0.001, 0.01, 1.0), "interval"),
        capacity=ctx.draw(st.integers(1, 8), "capacity"),
        percentiles=ctx.draw(st.one_of(st.none(), g([50.0], [0, 100], [99.9])), "percentiles"),
    )
    if ctx.draw(st.booleans(), "start"):
        rec.start()
    return rec


def _handle(kind: str) -> Callable[[Ctx], Any]:
    def make(ctx: Ctx) -> Any:
        p = ctx.make("Pipeline")
        name = ctx.draw(g(f"{kind}_x", f"{kind}_y"), "handle name")
        if kind == "histogram":
            return p.histogram(name, max_value=ctx.draw(MAX_VALUE, "max_value"))
        return getattr(p, kind)(name)

    return make


# Pipelines and feeds the fuzzer never touches (kept for the process).
_PRIVATE: list[Any] = []


def _feed_sender(ctx: Ctx) -> Any:
    """A sender whose queue a private feed keeps draining (a pipeline the
    fuzzer cannot close), so a full queue never blocks a send forever."""
    q = ctx.make("SharedQueue")
    p = ringstat.Pipeline()
    _PRIVATE.append((p, p.feed_from(q)))
    return ringstat.FeedSender(q)


FACTORIES: dict[str, Callable[[Ctx], Any]] = {
    # maxsize 0: an unbounded queue.
    "Queue": lambda ctx: _queue(ctx.draw(st.integers(0, 8), "maxsize")),
    "Counter": lambda ctx: ringstat.Counter(
        shards=ctx.draw(st.one_of(st.none(), st.integers(1, 8)), "shards")
    ),
    "Gauge": lambda ctx: ringstat.Gauge(ctx.draw(I64, "value")),
    "Histogram": lambda ctx: ringstat.Histogram(
        ctx.draw(g(1000, 1, 10**6, 2**63), "max_value"),
        ctx.draw(st.integers(0, 5), "significant_digits"),
    ),
    "Rate": lambda ctx: ringstat.Rate(
        ctx.draw(g(1.0, 0.01, 60.0), "window"),
        ctx.draw(st.integers(1, 10), "buckets"),
        clock=ctx.draw(st.one_of(st.none(), st.just("manual")), "clock")
        and ctx.make("ManualClock"),
    ),
    "ManualClock": lambda ctx: ringstat.ManualClock(),
    "SharedRegistry": lambda ctx: ringstat.SharedRegistry(
        SHM_NAME, max_processes=4, max_entries=64, data_bytes=65536
    ),
    "Registry": lambda ctx: ringstat.Registry(
        clock=ctx.draw(st.one_of(st.none(), st.just("manual")), "clock") and ctx.make("ManualClock")
    ),
    "Recorder": _recorder,
    # Loopback, a free port; stopped at teardown.
    "MetricsServer": lambda ctx: ctx.make("Registry").serve(),
    "SharedQueue": lambda ctx: ringstat.SharedQueue(
        ctx.draw(SHM_QUEUE_NAME, "name"),
        maxsize=ctx.draw(st.integers(1, 8), "maxsize"),
        slot_size=ctx.draw(g(1, 8, 64), "slot_size"),
    ),
    "Pipeline": _pipeline,
    "Feed": lambda ctx: ctx.make("Pipeline").feed_from(ctx.make("SharedQueue")),
    "FeedSender": _feed_sender,
    "CounterHandle": _handle("counter"),
    "GaugeHandle": _handle("gauge"),
    "HistogramHandle": _handle("histogram"),
    "RateHandle": _handle("rate"),
    "SessionsHandle": _handle("sessions"),
    "DistinctHandle": _handle("distinct"),
}

# Classes with no methods of their own to fuzz (exceptions): constructors only.
EXCEPTIONS = frozenset(
    name for name, cls in public_classes().items() if issubclass(cls, BaseException)
)


# ----- one example ------------------------------------------------------------------


def do_operation(ctx: Ctx, target: Any, op: str) -> None:
    cls_name = type(target).__name__
    kind, _, name = op.partition(":")
    if kind in ("set", "del"):
        name = ctx.draw(st.sampled_from(properties_of(type(target))), f"property to {kind}")
    elif kind == "proto":
        name = ctx.draw(st.sampled_from(PROTOCOL), "protocol")
    if f"{cls_name}.{name}" in SKIP:
        return
    ctx.receiver = target
    if kind == "call":
        fn = getattr(target, name)
        call = draw_call(ctx, cls_name, name, fn)
        if guard(ctx, call, target, fn):
            run_call(ctx, target, call, fn)
        return
    if kind == "get":
        call = Call(cls_name, f"<get {name}>", [], {})
        run_call(ctx, target, call, lambda: getattr(target, name))
        return
    if kind in ("set", "del"):
        value = None if kind == "del" else draw_value(ctx, cls_name, name, name)
        call = Call(cls_name, f"<{kind} {name}>", [] if kind == "del" else [value], {})
        setter: Callable[..., Any] = (
            (lambda v: setattr(target, name, v))
            if kind == "set"
            else (lambda: delattr(target, name))
        )
        run_call(ctx, target, call, setter)
        return
    proto: dict[str, Callable[..., Any]] = {
        "repr": repr,
        "str": str,
        "hash": hash,
        "bool": bool,
        "len": len,
        "int": int,
        "float": float,
        "iter": iter,
        "pickle": lambda o: pickle.loads(pickle.dumps(o)),
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
        "weakref": weakref.ref,
        "setattr_new": lambda o: setattr(o, "fuzz_attribute", 1),
        "eq_other": lambda o, other: (o == other, o != other, hash(o) == hash(o)),
    }
    args: list[Any] = [Receiver()]
    if name == "eq_other":
        args.append(ctx.draw(BAD, "eq other"))
    run_call(ctx, target, Call(cls_name, f"<{name}>", args, {}), proto[name])


def teardown(ctx: Ctx) -> None:
    """Closes every pipeline and stops every recorder (their errors are
    checked like any call), then drops every object."""
    for obj in ctx.objects:
        for method in ("close", "stop"):
            stoppable = (ringstat.Pipeline, ringstat.Recorder, ringstat.MetricsServer)
            if isinstance(obj, stoppable) and hasattr(obj, method):
                label = f"{type(obj).__name__}.{method}() [teardown]"
                ctx.journal(label)
                invoke(ctx, label, getattr(obj, method))
    ctx.objects.clear()
    ctx.receiver = None


def check_released(ctx: Ctx) -> None:
    """After everything is dropped and collected, each tracked object is
    back to its baseline."""
    ctx.stored.clear()
    leaks = ctx.excess_refs()
    if leaks:  # only a cycle can still hold them: collect (slow), then look again
        gc.collect()
        leaks = ctx.excess_refs()
    if leaks:
        detail = ", ".join(f"#{i} ({type(ctx.tracked[i]).__name__}) +{n}" for i, n in leaks)
        ctx.fail("refcount after drop", ctx.test, f"{detail}; calls: {ctx.history}")


def step(ctx: Ctx) -> None:
    """One operation, mostly on the example's main object (the first made),
    else on another one it made."""
    main, others = ctx.objects[0], ctx.objects[1:MAX_OBJECTS]
    target = main
    if others and ctx.draw(st.integers(0, 3), "on another object") == 0:
        target = others[ctx.draw(st.integers(0, len(others) - 1), "other object")]
    do_operation(ctx, target, ctx.draw(st.sampled_from(operations_of(type(target))), "operation"))


def run_example(data: st.DataObject, owner: str) -> None:
    # Objects older than the example never take part in its cycles: keep
    # them out of the collections of `check_released` (much faster).
    gc.freeze()
    ctx = Ctx(data, owner)
    try:
        ctx.journal(f"-- example: {owner}")
        main = ctx.make(owner)
        # The main object first (its factory may have made others before it).
        ctx.objects[:] = [main, *(o for o in ctx.objects if o is not main)]
        del main
        for _ in range(ctx.draw(st.integers(1, MAX_CALLS), "number of calls")):
            step(ctx)
    finally:
        teardown(ctx)
    check_released(ctx)
    if ctx.failures:
        pytest.fail("\n".join([*ctx.failures, "calls:", *ctx.history]), pytrace=False)


def run_constructor(data: st.DataObject, cls_name: str) -> None:
    gc.freeze()
    ctx = Ctx(data, f"{cls_name}()")
    cls = public_classes()[cls_name]
    try:
        call = draw_call(ctx, cls_name, "__new__", cls)
        _no_queue_to_iterate(call, signature_of(cls_name, "__new__", cls), None)
        run_call(ctx, None, call, cls)
    finally:
        teardown(ctx)
    check_released(ctx)
    if ctx.failures:
        pytest.fail("\n".join([*ctx.failures, "calls:", *ctx.history]), pytrace=False)


def fuzz_settings() -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("RINGSTAT_FUZZ_SHRINK") == "1":
        phases.append(Phase.shrink)
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=phases,
        print_blob=False,
        # Examples start native threads (pipelines, recorders) and draw many
        # values; both are the point here, not a sign of a slow strategy.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _seeded(test: Callable[..., None]) -> Callable[..., None]:
    return hypothesis_seed(int(SEED))(test) if SEED is not None else test


# ----- the tests (collected only when this file is named on the command line) -------

CLASSES = sorted(FACTORIES)
CONSTRUCTED = sorted(public_classes())


@pytest.mark.parametrize("cls_name", CLASSES)
@_seeded
@fuzz_settings()
@given(data=st.data())
def test_methods(cls_name: str, data: st.DataObject) -> None:
    if f"class:{cls_name}" in SKIP:
        return
    run_example(data, cls_name)


@pytest.mark.parametrize("cls_name", CONSTRUCTED)
@_seeded
@fuzz_settings()
@given(data=st.data())
def test_constructor(cls_name: str, data: st.DataObject) -> None:
    if f"class:{cls_name}" in SKIP or f"{cls_name}.__new__" in SKIP:
        return
    run_constructor(data, cls_name)


# ----- a deep run that gets past crashes --------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Runs the fuzz tests in a subprocess until they complete, recording
    each crash (and skipping the operation that crashed, so the rest is
    still fuzzed), then prints every distinct failure."""
    import argparse
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--examples", type=int, default=EXAMPLES * 10)
    parser.add_argument("--seed", default=None)
    parser.add_argument("--out", default="fuzz-failures.jsonl")
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("-k", default=None, help="pytest -k expression")
    opts = parser.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    skip = set(SKIP)
    with tempfile.TemporaryDirectory() as tmp:
        journal = os.path.join(tmp, "journal")
        for _ in range(opts.restarts):
            env = dict(os.environ)
            env.update(
                RINGSTAT_FUZZ_EXAMPLES=str(opts.examples),
                RINGSTAT_FUZZ_COLLECT=os.path.abspath(opts.out),
                RINGSTAT_FUZZ_JOURNAL=journal,
                RINGSTAT_FUZZ_SKIP=",".join(sorted(skip)),
                HYPOTHESIS_STORAGE_DIRECTORY=os.path.join(tmp, "hypothesis"),
                RINGSTAT_FUZZ_MEMORY_LIMIT=os.environ.get(
                    "RINGSTAT_FUZZ_MEMORY_LIMIT", str(8 << 30)
                ),
                PYTHONFAULTHANDLER="1",
            )
            if opts.seed:
                env["RINGSTAT_FUZZ_SEED"] = opts.seed
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            cmd += ["-o", "timeout=0", os.path.join(here, "fuzz_surface.py")]
            if opts.k:
                cmd += ["-k", opts.k]
            if os.path.exists(journal):
                os.remove(journal)
            try:
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=opts.timeout, check=False
                )
                kind = f"crash (exit status {proc.returncode})" if proc.returncode < 0 else ""
                output = proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as e:
                kind, output = "hang", str(e.stdout or "") + str(e.stderr or "")
            for marker in ("panicked at", "PanicException", "Fatal Python error"):
                if marker in output and not kind:
                    kind = f"output has {marker!r}"
            last = _last_call(journal)
            if not kind:
                print(output[-3000:])
                break
            record = {"test": "subprocess", "kind": kind, "call": last, "detail": _tail(output)}
            with open(opts.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            _, _, call = last.partition(": ")
            op = call.split("(")[0].replace("<", "").replace(">", "").replace(" ", ".")
            print(f"{kind} at {last!r}: skipping {op}")
            if op in skip or not op:
                break
            skip.add(op)
    summarize(opts.out)
    return 0


def _last_call(journal: str) -> str:
    try:
        with open(journal, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return "?"
    calls = [line for line in lines if "-- example" not in line]
    return calls[-1] if calls else "?"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def summarize(path: str) -> None:
    """Prints one line per distinct failure (kind, operation, outcome)."""
    seen: dict[tuple[str, str, str], tuple[int, dict[str, str]]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except OSError:
        records = []
    for r in records:
        op = r["call"].split("(")[0]
        detail = r["detail"].split("\n")[0]
        outcome = detail.split(":")[0] if r["kind"] != "refcount" else ""
        key = (r["kind"], op, outcome)
        count, first = seen.get(key, (0, r))
        seen[key] = (count + 1, first)
    for (kind, op, _), (count, r) in sorted(seen.items()):
        print(f"[{kind}] x{count} {op}\n    e.g. {r['call'][:300]}\n    -> {r['detail'][:500]}")
    print(f"{len(records)} failures, {len(seen)} distinct")


if __name__ == "__main__":
    sys.exit(main())
