"""Live numbers in a Jupyter notebook, without ipywidgets.

:func:`live` shows a registry (or a histogram, or anything with
``_repr_html_``) and refreshes that one output in place, through an IPython
display handle, until a duration passes, a condition holds, or the cell is
interrupted.

>>> import threading, ringstat, ringstat.jupyter
>>> reg = ringstat.Registry()
>>> done = threading.Event()
>>> # start the workload threads, which set `done` at the end, then:
>>> ringstat.jupyter.live(reg, every=0.5, until=done)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Protocol, Union

__all__ = ["live"]


class _HasHtml(Protocol):
    def _repr_html_(self) -> str: ...


class _Event(Protocol):
    def is_set(self) -> bool: ...


Until = Union[Callable[[], bool], _Event, threading.Event, None]


def _should_stop(until: Until) -> bool:
    if until is None:
        return False
    is_set = getattr(until, "is_set", None)
    if is_set is not None:
        return bool(is_set())
    return bool(until())  # type: ignore[operator]


def _render(obj: _HasHtml, started: float, final: bool) -> Any:
    from IPython.display import HTML

    elapsed = time.monotonic() - started
    state = "final" if final else "live"
    footer = (
        f"<div style='opacity:.65;font-size:smaller'>{state}, "
        f"{elapsed:.1f} s since start, updated {time.strftime('%H:%M:%S')}</div>"
    )
    return HTML(obj._repr_html_() + footer)  # type: ignore[no-untyped-call,unused-ignore]


def live(
    obj: _HasHtml,
    every: float = 1.0,
    *,
    duration: float | None = None,
    until: Until = None,
) -> Any:
    """Display ``obj`` (a ``Registry``, ``Histogram``, ``Recorder``'s
    registry...) and refresh it in place every ``every`` seconds, blocking
    the cell, until ``duration`` seconds have passed, ``until`` holds (a
    callable returning true, or an object with ``is_set()`` such as a
    :class:`threading.Event`), or the cell is interrupted (the interrupt is
    caught: the cell ends normally). With neither ``duration`` nor
    ``until`` it runs until interrupted.

    The last frame is always drawn once the loop ends, so the output keeps
    the final numbers. Returns the IPython display handle (``None``
    outside IPython, where the frames are printed as text instead).

    Needs IPython (``pip install "ringstat[notebook]"``).
    """
    if not every > 0:
        raise ValueError(f"every must be a positive number of seconds, got {every!r}")
    if duration is not None and not duration >= 0:
        raise ValueError(f"duration must be a non-negative number of seconds, got {duration!r}")
    try:
        from IPython.display import display
    except ImportError as e:
        raise ImportError('ringstat.jupyter needs IPython: pip install "ringstat[notebook]"') from e

    started = time.monotonic()
    deadline = None if duration is None else started + duration
    first = _render(obj, started, final=False)
    handle = display(first, display_id=True)  # type: ignore[no-untyped-call,unused-ignore]
    try:
        while not _should_stop(until):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait = every if deadline is None else min(every, deadline - now)
            _sleep_until_stop(wait, until)
            if handle is not None:
                handle.update(_render(obj, started, final=False))
    except KeyboardInterrupt:
        pass
    if handle is not None:
        handle.update(_render(obj, started, final=True))
    return handle


def _sleep_until_stop(seconds: float, until: Until) -> None:
    """Sleep ``seconds``, waking early if ``until`` is an event that gets set."""
    if isinstance(until, threading.Event):
        until.wait(seconds)
    else:
        time.sleep(max(seconds, 0.0))
