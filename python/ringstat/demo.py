"""The user-activity demo: ``python -m ringstat demo``.

Several Python threads simulate users who register, log in and log out; a
:class:`ringstat.Pipeline` folds the events into live statistics on native
worker threads, and the main thread shows them at least once a second:
total logins and registrations, logins per second over the last minute,
users online now, distinct users, online-time percentiles, events ingested
per second and drops. A summary follows at the end (or on Ctrl-C).

On a terminal the view is drawn with ``rich`` (``pip install "ringstat[demo]"``)
and refreshed in place; without rich, or when stdout is not a terminal, each
refresh prints one short line.

Time is simulated for sessions only: login and logout events carry
timestamps on a clock that runs :data:`SPEEDUP` times faster than real time
(one real second is ten simulated minutes), so the online-time percentiles
of a 10-second run describe sessions of minutes to hours. Rates and the
ingest figures are real time.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import ringstat

SPEEDUP = 600.0
"""Simulated seconds per real second (for session timestamps)."""
MEDIAN_ONLINE = 600.0
"""Median simulated online time, seconds (log-normal, sigma 1)."""
ONLINE_SIGMA = 1.0
REGISTER_SHARE = 0.1
"""Share of logins that are a new user registering first."""
CHUNK = 64
"""Logins a thread simulates between checks of the clock (single-event mode)."""
BATCH = 2048
"""Logins a thread simulates per batch (``--batch``)."""


@dataclass
class Options:
    """What to run (the command-line options of ``python -m ringstat demo``)."""

    seconds: float = 10.0
    threads: int = 4
    rate: float = 0.0
    """Target logins per second over all threads (what the summary's
    ``logins/s`` reports); 0: as fast as possible."""
    batch: bool = False
    live: bool = True
    json: bool = False
    workers: int = 2
    seed: int = 1
    broker: str | None = None
    """An ``amqp://`` (RabbitMQ) or ``kafka://`` (Kafka) URL: run through that
    broker (:mod:`ringstat.demo_broker`)."""
    producers: int = 2
    """Producer processes with ``broker``."""
    processes: int = 0
    """Producer processes feeding this process's pipeline through a shared
    queue (:mod:`ringstat.demo_processes`); 0: threads in this process."""


@dataclass
class Metrics:
    """The handles the simulators send through."""

    pipeline: ringstat.Pipeline
    registrations: ringstat.CounterHandle
    logins: ringstat.CounterHandle
    logins_rate: ringstat.RateHandle
    online: ringstat.SessionsHandle
    users: ringstat.DistinctHandle
    born: float
    """``time.monotonic()`` just before the rate was created (its age)."""

    @classmethod
    def resolve(cls, pipeline: ringstat.Pipeline) -> Metrics:
        born = time.monotonic()
        return cls(
            born=born,
            pipeline=pipeline,
            registrations=pipeline.counter("registrations"),
            logins=pipeline.counter("logins"),
            logins_rate=pipeline.rate("logins_rate"),
            online=pipeline.sessions("online"),
            users=pipeline.distinct("users"),
        )


@dataclass
class Pacer:
    """Waits so a thread simulates about ``per_second`` logins (0: no limit)."""

    per_second: float
    stop: threading.Event
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def chunk(self, most: int) -> int:
        """Logins to simulate before the next :meth:`account`: ``most``, or
        about a twentieth of a second's worth when paced (no long bursts)."""
        if self.per_second <= 0:
            return most
        return max(1, min(most, int(self.per_second / 20)))

    def account(self, logins: int) -> None:
        """Counts ``logins`` and waits until they are due (or until stop)."""
        self.done += logins
        if self.per_second > 0:
            ahead = self.done / self.per_second - (time.monotonic() - self.started)
            if ahead > 0:
                self.stop.wait(ahead)


def _sim_now(t0: float) -> float:
    """Simulated seconds since the start (> 0: a ``ts`` of 0 means "now")."""
    return 1.0 + (time.monotonic() - t0) * SPEEDUP


def simulate_events(
    m: Metrics, index: int, opts: Options, stop: threading.Event, t0: float
) -> None:
    """One simulator thread, one event per call through resolved handles."""
    rng = random.Random(opts.seed * 1_000_003 + index)
    base = (index + 1) << 40  # each thread has its own user ids
    next_user = 0
    offline: list[int] = []
    pending: list[tuple[float, int]] = []  # (logout time, user), a heap
    pacer = Pacer(opts.rate / opts.threads, stop)
    mu = math.log(MEDIAN_ONLINE)
    n = pacer.chunk(CHUNK)
    while not stop.is_set():
        now = _sim_now(t0)
        for _ in range(n):
            if offline and rng.random() >= REGISTER_SHARE:
                user = offline.pop(rng.randrange(len(offline)))
            else:
                user = base + next_user
                next_user += 1
                m.registrations.inc()
            m.logins.inc()
            m.logins_rate.mark()
            m.users.seen(user)
            m.online.start(user, now)
            heapq.heappush(pending, (now + rng.lognormvariate(mu, ONLINE_SIGMA), user))
        while pending and pending[0][0] <= now:
            at, user = heapq.heappop(pending)
            m.online.end(user, at)
            offline.append(user)
        pacer.account(n)


def simulate_batches(
    m: Metrics, index: int, opts: Options, stop: threading.Event, t0: float
) -> None:
    """One simulator thread, numpy arrays through the batch calls."""
    import numpy as np

    rng = np.random.default_rng([opts.seed, index])
    base = (index + 1) << 40
    next_user = 0
    offline = np.empty(0, dtype=np.uint64)
    pending_at = np.empty(0, dtype=np.float64)
    pending_user = np.empty(0, dtype=np.uint64)
    pacer = Pacer(opts.rate / opts.threads, stop)
    mu = math.log(MEDIAN_ONLINE)
    batch = pacer.chunk(BATCH)
    while not stop.is_set():
        now = _sim_now(t0)
        n_back = min(int(batch * (1 - REGISTER_SHARE)), len(offline))
        n_new = batch - n_back
        new_users = np.arange(base + next_user, base + next_user + n_new, dtype=np.uint64)
        next_user += n_new
        back = offline[:n_back]
        offline = offline[n_back:]
        users = np.concatenate([new_users, back])
        m.registrations.add(n_new)
        m.logins.add(len(users))
        m.logins_rate.mark(len(users))
        m.users.seen_many(users)
        m.online.start_many(users, now)
        durations = rng.lognormal(mu, ONLINE_SIGMA, len(users))
        pending_at = np.concatenate([pending_at, now + durations])
        pending_user = np.concatenate([pending_user, users])
        due = pending_at <= now
        if due.any():
            order = np.argsort(pending_at[due], kind="stable")
            m.online.end_many(pending_user[due][order], pending_at[due][order])
            offline = np.concatenate([offline, pending_user[due]])
            pending_at = pending_at[~due]
            pending_user = pending_user[~due]
        pacer.account(len(users))


# ----- reading the numbers ---------------------------------------------------


def per_second(rate: dict[str, Any], age: float) -> float:
    """Events per second over the rate's window, from its snapshot values.

    Before the window has filled, the events so far are divided by the time
    since the rate was created (``age``, seconds): the rate itself never
    divides by less than one bucket (1 s), so during the first second its
    ``per_second`` equals the count.
    """
    window = float(rate.get("window", 60.0))
    if 0 < age < window:
        return float(rate.get("in_window", 0)) / age
    return float(rate.get("per_second", 0.0))


def read(m: Metrics) -> dict[str, Any]:
    """The demo's numbers now, as plain data."""
    snap = m.pipeline.registry.snapshot()
    age = time.monotonic() - m.born
    by_name: dict[str, dict[str, Any]] = {}
    for metric in snap["metrics"]:
        if not metric["labels"]:
            by_name[metric["name"]] = metric["values"]
    durations = by_name.get("online_duration_ms", {})
    pcts = durations.get("percentiles", {})
    stats = m.pipeline.stats()
    return {
        "registrations": by_name.get("registrations", {}).get("value", 0),
        "logins": by_name.get("logins", {}).get("value", 0),
        "logins_per_second": per_second(by_name.get("logins_rate", {}), age),
        "online_now": by_name.get("online_open", {}).get("value", 0),
        "distinct_users": round(m.users.count),
        "sessions_completed": by_name.get("online_completed_total", {}).get("value", 0),
        "online_time_ms": {
            "p50": pcts.get("p50"),
            "p90": pcts.get("p90"),
            "p99": pcts.get("p99"),
        },
        "events": {
            "received": stats["received"],
            "applied": stats["applied"],
            "dropped": stats["dropped"],
            "rejected": stats["rejected"],
            "queue_depth": stats["queue_depth"],
        },
    }


def _minutes(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 60_000:.1f} min"


def rows(v: dict[str, Any], ingest_per_s: float) -> list[tuple[str, str, str]]:
    """The live view's rows: (what, value, note)."""
    q = v["online_time_ms"]
    ev = v["events"]
    return [
        ("logins total", f"{v['logins']:,}", ""),
        ("registrations total", f"{v['registrations']:,}", ""),
        ("logins/s (last minute)", f"{v['logins_per_second']:,.0f}", ""),
        ("users online now", f"{v['online_now']:,}", ""),
        ("distinct users", f"{v['distinct_users']:,}", "HyperLogLog, ~1.6 % error"),
        (
            "online time p50/p90/p99",
            f"{_minutes(q['p50'])} / {_minutes(q['p90'])} / {_minutes(q['p99'])}",
            "simulated",
        ),
        ("events ingested/s", f"{ingest_per_s:,.0f}", ""),
        ("events applied", f"{ev['applied']:,}", f"dropped {ev['dropped']:,}"),
    ]


def line(v: dict[str, Any], elapsed: float, ingest_per_s: float) -> str:
    """One refresh as one short line (stdout is not a terminal, or no rich)."""
    q = v["online_time_ms"]
    p50 = "-" if q["p50"] is None else f"{q['p50'] / 60_000:.1f}"
    p99 = "-" if q["p99"] is None else f"{q['p99'] / 60_000:.1f}"
    return (
        f"[{elapsed:5.1f} s] logins {v['logins']:,}  logins/s {v['logins_per_second']:,.0f}"
        f"  online {v['online_now']:,}  users {v['distinct_users']:,}"
        f"  online p50/p99 {p50}/{p99} min  events/s {ingest_per_s:,.0f}"
        f"  dropped {v['events']['dropped']:,}"
    )


class LiveView:
    """The live view: a ``rich`` table refreshed in place when ``out`` is a
    terminal and rich is installed; one :func:`line` per refresh otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.live: Any = None
        if not out.isatty():
            return
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            return
        self.live = Live(console=Console(file=out), auto_refresh=False, transient=False)
        self.live.start()

    def show(self, v: dict[str, Any], elapsed: float, ingest_per_s: float) -> None:
        if self.live is None:
            self.out.write(line(v, elapsed, ingest_per_s) + "\n")
            self.out.flush()
            return
        from rich.table import Table

        table = Table(title=f"ringstat demo  {elapsed:5.1f} s", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right", min_width=14)
        table.add_column("", style="dim")
        for row in rows(v, ingest_per_s):
            table.add_row(*row)
        self.live.update(table, refresh=True)

    def close(self) -> None:
        """Stops redrawing; the last table stays on the screen."""
        if self.live is not None:
            self.live.stop()
            self.live = None


def summary(v: dict[str, Any], elapsed: float, opts: Options, interrupted: bool) -> list[str]:
    """The final summary's lines."""
    q = v["online_time_ms"]
    ev = v["events"]
    if opts.processes:
        senders = f"{opts.processes} processes"
    elif opts.broker is not None:
        senders = f"{opts.producers} processes through the broker"
    else:
        senders = f"{opts.threads} threads"
    return [
        "",
        f"ringstat demo summary ({elapsed:.1f} s, {senders}, "
        f"{'numpy batches' if opts.batch else 'one event per call'}"
        f"{', interrupted' if interrupted else ''})",
        f"  registrations          {v['registrations']:,}",
        f"  logins                 {v['logins']:,}",
        f"  logins/s (last minute) {v['logins_per_second']:,.0f}",
        f"  users online now       {v['online_now']:,}",
        f"  distinct users         {v['distinct_users']:,}",
        f"  sessions completed     {v['sessions_completed']:,}",
        f"  online time p50/p90/p99  {_minutes(q['p50'])} / {_minutes(q['p90'])} / "
        f"{_minutes(q['p99'])}  (simulated: 1 s = {SPEEDUP / 60:.0f} min)",
        f"  events applied         {ev['applied']:,} ({ev['applied'] / max(elapsed, 1e-9):,.0f}/s)",
        f"  events dropped         {ev['dropped']:,}   rejected {ev['rejected']:,}",
    ]


def run(opts: Options, out: TextIO = sys.stdout) -> int:
    """Runs the demo; returns the exit status (130 if interrupted by Ctrl-C)."""
    if opts.batch:
        try:
            import numpy  # noqa: F401
        except ImportError:
            print("--batch needs numpy (pip install numpy)", file=sys.stderr)
            return 2
    registry = ringstat.Registry()
    pipeline = ringstat.Pipeline(registry, workers=opts.workers, name="demo")
    m = Metrics.resolve(pipeline)
    stop = threading.Event()
    t0 = time.monotonic()
    target = simulate_batches if opts.batch else simulate_events
    threads = [
        threading.Thread(
            target=target, args=(m, i, opts, stop, t0), name=f"demo-user-{i}", daemon=True
        )
        for i in range(opts.threads)
    ]
    view = LiveView(out) if opts.live and not opts.json else None
    interrupted = False
    try:
        for t in threads:
            t.start()
        last_applied, last_t = 0, t0
        while True:
            elapsed = time.monotonic() - t0
            remaining = opts.seconds - elapsed
            if remaining <= 0:
                break
            time.sleep(min(remaining, 0.5))
            if view is not None:
                now = time.monotonic()
                v = read(m)
                applied = v["events"]["applied"]
                rate = (applied - last_applied) / max(now - last_t, 1e-9)
                last_applied, last_t = applied, now
                view.show(v, now - t0, rate)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if view is not None:
            view.close()
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        pipeline.close()
    final = read(m)
    if opts.json:
        doc = {
            "seconds": round(elapsed, 3),
            "threads": opts.threads,
            "batch": opts.batch,
            "interrupted": interrupted,
            "speedup": SPEEDUP,
            **final,
            "events_per_second": final["events"]["applied"] / max(elapsed, 1e-9),
            "registry": registry.snapshot(),
        }
        out.write(json.dumps(doc) + "\n")
    else:
        out.write("\n".join(summary(final, elapsed, opts, interrupted)) + "\n")
    out.flush()
    return 130 if interrupted else 0
