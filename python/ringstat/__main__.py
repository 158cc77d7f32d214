"""Command line: ``python -m ringstat demo`` (the main job).

Subcommands: ``demo`` runs the user-activity workload with a live view (see
:mod:`ringstat.demo`); ``top NAME`` shows a shared registry live (see
:mod:`ringstat.top`). Room is kept for ``bench``.
"""

from __future__ import annotations

import argparse
import sys

from ringstat import __version__


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    """The ``python -m ringstat`` argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m ringstat",
        description="ringstat: lock-free queues and live statistics.",
    )
    p.add_argument("--version", action="version", version=f"ringstat {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="simulate a user-activity service and show its live statistics",
        description=(
            "Python threads simulate users registering, logging in and logging out; "
            "a ringstat.Pipeline folds the events into live statistics on native "
            "worker threads. A live view refreshes twice a second (a table redrawn "
            "in place on a terminal when rich is installed: pip install "
            "'ringstat[demo]'; one line per refresh otherwise); a summary follows. "
            "Session timestamps run on a simulated clock (1 s = 10 min) so the "
            "online-time percentiles are meaningful in a short run. Ctrl-C stops "
            "early with a summary (exit status 130)."
        ),
    )
    demo.add_argument(
        "--seconds", type=_positive_float, default=10.0, help="how long to run (default 10)"
    )
    demo.add_argument(
        "--threads", type=_positive_int, default=4, help="simulator threads (default 4)"
    )
    demo.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="target logins per second over all threads, as the summary's logins/s "
        "counts them (default 0: as fast as possible)",
    )
    demo.add_argument(
        "--workers", type=_positive_int, default=2, help="pipeline worker threads (default 2)"
    )
    demo.add_argument(
        "--batch",
        action="store_true",
        help="send numpy arrays through the batch calls (needs numpy)",
    )
    demo.add_argument("--json", action="store_true", help="print only the final snapshot, as JSON")
    demo.add_argument("--no-live", action="store_true", help="no live view, only the summary")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    top = sub.add_parser(
        "top",
        help="show a shared registry (ringstat.SharedRegistry) live",
        description=(
            "Attach to the shared registry NAME and redraw a table of its series "
            "(rich; pip install 'ringstat[demo]'). q or Ctrl-C quits. When stdout is "
            "not a terminal, print the table once."
        ),
    )
    top.add_argument("name", metavar="NAME", nargs="?", help="the shared registry's name")
    top.add_argument(
        "--broker",
        metavar="URL",
        help="instead of NAME: the global view of the instances publishing to this RabbitMQ"
        " (ringstat.broker.StatePublisher; amqp://user:pass@host:port/vhost)",
    )
    top.add_argument(
        "--queue",
        default="ringstat.states",
        help="with --broker: the stream of state updates (default ringstat.states)",
    )
    top.add_argument(
        "--retire-after",
        type=_positive_float,
        metavar="SECONDS",
        help="with --broker: leave out the gauges of instances that stopped or have been"
        " silent this long (their counts stay)",
    )
    top.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        help="seconds between redraws (default 1, at least 0.1)",
    )
    top.add_argument("--once", action="store_true", help="print the table once and exit")
    demo.add_argument(
        "--broker",
        metavar="URL",
        help="run through RabbitMQ at this amqp:// URL or Kafka at this kafka://host:port "
        "URL: --producers processes ship the events, this process aggregates them "
        "(needs pip install 'ringstat[rabbitmq]' or 'ringstat[kafka]')",
    )
    demo.add_argument(
        "--producers",
        type=_positive_int,
        default=2,
        help="producer processes with --broker (default 2)",
    )
    demo.add_argument(
        "--processes",
        metavar="N",
        type=_positive_int,
        help="N producer processes feed this process's pipeline through a shared-memory "
        "queue (ringstat.FeedSender, Pipeline.feed_from; Linux) instead of threads",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Runs ``python -m ringstat``; returns the exit status."""
    p = parser()
    args = p.parse_args(argv)
    if args.command == "demo" and args.processes and args.broker:
        p.error("--processes and --broker are two ways to run producers: choose one")
    if args.command == "demo":
        from ringstat.demo import Options, run

        opts = Options(
            seconds=args.seconds,
            threads=args.threads,
            rate=args.rate,
            batch=args.batch,
            live=not args.no_live,
            json=args.json,
            workers=args.workers,
            seed=args.seed,
            broker=args.broker,
            producers=args.producers,
            processes=args.processes or 0,
        )
        if opts.processes:
            from ringstat.demo_processes import run_processes

            return run_processes(opts)
        if opts.broker is not None:
            from ringstat.demo_broker import run_broker

            return run_broker(opts)
        return run(opts)
    if args.command == "top":
        from ringstat.top import run as top

        if (args.name is None) == (args.broker is None):
            p.error("top needs a shared registry NAME or --broker URL (one of them)")
        return top(
            args.name,
            interval=args.interval,
            once=args.once,
            broker=args.broker,
            queue=args.queue,
            retire_after=args.retire_after,
        )
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
