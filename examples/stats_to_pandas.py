"""Reading live statistics into pandas.

A workload updates a Registry from a few threads while a Recorder samples
it every 50 ms on a native thread. Afterwards the numbers go into pandas
DataFrames: the current snapshot (one row per metric and labels), a
histogram's buckets, and the recorded time series (tidy, then pivoted to one
column per metric). Needs pandas: ``pip install ".[notebook]"``.

    python examples/stats_to_pandas.py --seconds 2 --csv stats.csv
"""

from __future__ import annotations

import argparse
import random
import threading
import time

import pandas as pd

import ringstat


def workload(reg: ringstat.Registry, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    logins = reg.counter("events", {"kind": "login"})
    logouts = reg.counter("events", {"kind": "logout"})
    rate = reg.rate("logins_rate", window=1.0, buckets=10)
    online_seconds = reg.histogram("online_seconds", max_value=86_400, significant_digits=2)
    while not stop.is_set():
        for _ in range(100):
            logins.inc()
            rate.inc()
            if rng.random() < 0.9:
                logouts.inc()
                online_seconds.record(min(round(rng.lognormvariate(6, 1)), 86_400))
        time.sleep(0.001)  # a real service would wait for requests here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--csv", help="also write the tidy time series to this CSV file")
    args = parser.parse_args()

    reg = ringstat.Registry()
    stop = threading.Event()
    threads = [threading.Thread(target=workload, args=(reg, i, stop)) for i in range(3)]
    with ringstat.Recorder(reg, interval=0.05) as rec:
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        rec.sample_now()  # the final state

    pd.set_option("display.width", 120)
    pd.set_option("display.max_columns", None)
    snapshot: pd.DataFrame = reg.to_pandas()  # one row per metric and labels
    columns = ["name", "labels", "kind", "value", "count", "p50", "p99", "per_second"]
    print("snapshot:\n", snapshot[columns], "\n", sep="")

    # The registry hands back the existing histogram for the same name and settings.
    online_seconds = reg.histogram("online_seconds", max_value=86_400, significant_digits=2)
    buckets: pd.DataFrame = online_seconds.to_pandas()  # low, high, count, fraction, cumulative
    print("online_seconds buckets (first rows):\n", buckets.head(), "\n", sep="")

    tidy: pd.DataFrame = rec.to_pandas()  # timestamp, metric, labels, field, value
    per_second = tidy[tidy["field"] == "per_second"].pivot_table(
        index="timestamp", columns="metric", values="value"
    )
    print(f"{len(rec)} samples, {len(tidy)} rows; logins per second over time (last rows):")
    print(per_second.tail(), "\n")

    logins = tidy[(tidy["metric"] == "events") & (tidy["labels"] == "kind=login")]
    print(f"logins at the last sample: {logins['value'].iloc[-1]:,.0f}")
    if args.csv:
        tidy.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
