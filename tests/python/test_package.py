"""The package surface: version, exports, exception classes."""

from __future__ import annotations

import ast
import queue
import sys
from pathlib import Path

import ringstat
from ringstat import _ringstat


def test_version_matches_cargo() -> None:
    assert isinstance(ringstat.__version__, str)
    assert ringstat.__version__ == _ringstat.__version__
    assert ringstat.__version__.count(".") >= 2


def _stub_all() -> list[str]:
    """``__all__`` as the hand-written stub of the native module lists it."""
    stub = Path(ringstat.__file__).with_name("_ringstat.pyi")
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    raise AssertionError("the stub has no __all__")


def test_all_is_explicit_and_importable() -> None:
    # The package exports the native module's public names (as its stub lists
    # them) plus the stdlib's queue exceptions and its Python classes.
    public = [n for n in _stub_all() if not n.startswith("_") or n == "__version__"]
    assert sorted(ringstat.__all__) == sorted(
        [*public, "AsyncPipeline", "AsyncQueue", "AsyncSharedQueue", "Empty", "Full"]
    )
    assert sorted(_ringstat.__all__) == sorted(_stub_all())
    for name in ringstat.__all__:
        assert hasattr(ringstat, name), name


def test_full_and_empty_are_the_stdlib_classes() -> None:
    assert ringstat.Full is queue.Full
    assert ringstat.Empty is queue.Empty


def test_shutdown_class() -> None:
    if sys.version_info >= (3, 13):
        assert ringstat.ShutDown is queue.ShutDown  # type: ignore[attr-defined,unused-ignore]
    else:
        assert issubclass(ringstat.ShutDown, Exception)
        assert ringstat.ShutDown.__name__ == "ShutDown"


def test_queue_is_generic() -> None:
    alias = ringstat.Queue[int]
    assert alias.__origin__ is ringstat.Queue  # type: ignore[attr-defined]
    q: ringstat.Queue[int] = ringstat.Queue(1)
    q.put(1)
    assert q.get() == 1


def test_queue_cannot_be_subclassed() -> None:
    # frozen, final pyclass: no subclassing (and no _put/_get hooks).
    try:

        class Sub(ringstat.Queue):  # type: ignore[misc,type-arg]
            pass

    except TypeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("subclassing ringstat.Queue should raise TypeError")
