"""``python -m ringstat top NAME``: a live terminal view of a shared registry.

Attaches to the :class:`ringstat.SharedRegistry` ``NAME`` (or, with
``--broker URL``, reads the global view of every instance's published
state: :class:`ringstat.broker.GlobalAggregator`) and redraws one
table of every series (counters, gauges as their mode combines them,
histograms with count and percentiles, rates per second) at most once per
``--interval`` seconds, with ``rich`` (``pip install "ringstat[demo]"``). It
draws with the terminal's own escape codes through rich, so it works in any
terminal, over SSH too. ``q`` (or Ctrl-C) quits. When stdout is not a
terminal, or with ``--once``, it prints the table once and exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import ringstat

#: The fastest redraw, whatever ``--interval`` asks (a redraw is a full
#: snapshot).
MIN_INTERVAL = 0.1


def rows(snap: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """One ``(metric, labels, kind, value)`` row per series."""
    out = []
    for m in snap["metrics"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(m["labels"].items()))
        v = m["values"]
        kind = m["kind"]
        if kind == "counter":
            text = f"{v['value']:,}"
        elif kind == "gauge":
            text = f"{v['value']:,}  (min {v['min']:,}, max {v['max']:,})"
        elif kind == "histogram":
            pct = v.get("percentiles", {})
            parts = [f"n={v['count']:,}"] + [
                f"{k}={_num(p)}" for k, p in pct.items() if k in ("p50", "p99")
            ]
            text = "  ".join(parts)
        else:
            text = f"{v['per_second']:,.1f}/s  (total {v['total']:,})"
        out.append((m["name"], labels, kind, text))
    return out


def _num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return f"{x:,}"


class _Shared:
    """A shared registry, attached by name."""

    def __init__(self, name: str) -> None:
        self.reg = ringstat.SharedRegistry.attach(name)
        self.name = name

    def snapshot(self) -> dict[str, Any]:
        return self.reg.snapshot()

    def title(self) -> str:
        u = self.reg.usage()
        return (
            f"ringstat top {self.name}   processes {u['process_slots_used']}/{u['process_slots']}"
            f"   entries {u['entries_used']}/{u['entries']}"
        )


class _Global:
    """The merged view of the state updates on a RabbitMQ stream."""

    def __init__(self, url: str, queue: str, retire_after: float | None) -> None:
        from ringstat.broker import GlobalAggregator

        self.agg = GlobalAggregator(url, queue, retire_after=retire_after).start()
        self.queue = queue

    def snapshot(self) -> dict[str, Any]:
        return self.agg.registry().snapshot()

    def title(self) -> str:
        st = self.agg.stats()
        return (
            f"ringstat top {self.queue}   instances {st['instances']}"
            f" ({st['retired']} retired)   updates {st['updates']}"
        )


def _table(src: _Shared | _Global) -> Any:
    from rich.table import Table

    table = Table(title=f"{src.title()}   (q quits)", title_justify="left")
    table.add_column("metric")
    table.add_column("labels", style="dim")
    table.add_column("kind")
    table.add_column("value", justify="right")
    for row in rows(src.snapshot()):
        table.add_row(*row)
    return table


def _plain(src: _Shared | _Global, out: TextIO) -> None:
    out.write(f"{src.title()}\n")
    for metric, labels, kind, value in rows(src.snapshot()):
        out.write(f"{metric}{{{labels}}} {kind} {value}\n")
    out.flush()


@contextlib.contextmanager
def _keys() -> Iterator[bool]:
    """stdin in cbreak mode (keys arrive without Enter) when it is a
    terminal; restored on the way out. Yields whether keys can be read."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(
    name: str | None,
    interval: float = 1.0,
    once: bool = False,
    out: TextIO = sys.stdout,
    *,
    broker: str | None = None,
    queue: str = "ringstat.states",
    retire_after: float | None = None,
    wait: float = 10.0,
) -> int:
    """Shows the shared registry ``name``, or the global view of the state
    updates on ``queue`` of ``broker`` (``retire_after``: as
    :class:`ringstat.broker.GlobalAggregator`), until ``q``; the exit status. A
    single table (``once``, or not a terminal) of a broker's view waits up
    to ``wait`` seconds for the first update."""
    src: _Shared | _Global
    if (name is None) == (broker is None):
        print("ringstat top: give a shared registry name or a broker URL", file=sys.stderr)
        return 2
    try:
        src = _Global(broker, queue, retire_after) if broker is not None else _Shared(name or "")
    except (ValueError, OSError, ImportError) as e:
        print(f"ringstat top: {e}", file=sys.stderr)
        return 1
    try:
        return _show(src, interval, once, out, wait)
    finally:
        if isinstance(src, _Global):
            src.agg.stop()


def _show(src: _Shared | _Global, interval: float, once: bool, out: TextIO, wait: float) -> int:
    if isinstance(src, _Global) and (once or not out.isatty()):
        src.agg.wait(lambda a: a.stats()["instances"] > 0, wait)
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        _plain(src, out)
        return 0
    if once or not out.isatty():
        if out.isatty():
            Console(file=out).print(_table(src))
        else:
            _plain(src, out)
        return 0
    interval = max(interval, MIN_INTERVAL)
    with _keys() as keys, Live(console=Console(file=out), auto_refresh=False) as live:
        try:
            while True:
                live.update(_table(src), refresh=True)
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    if not keys:
                        time.sleep(left)
                        break
                    ready, _, _ = select.select([sys.stdin], [], [], left)
                    if ready and os.read(sys.stdin.fileno(), 32).lower().startswith(b"q"):
                        return 0
        except KeyboardInterrupt:
            return 0
