"""Print the Markdown tables of BENCHMARKS.md from the last criterion runs of
`cargo bench --bench queue --bench stats` (read from `target/criterion`).

Usage: python3 benches/criterion_table.py [path/to/target/criterion]

Criterion keeps the latest estimate of every benchmark it ran, so run the
whole benches first: a filtered run would mix in older figures. Plain
groups report criterion's median estimate. The `push_pop_ratio`,
`transfer_ratio` and `stats_ratio` groups store the mean of ln(ringstat time / anchor time)
over pairs of runs (see `benches/ratio`); this prints it as a throughput
ratio, anchor time / ringstat time = exp(-mean), with criterion's 95 %
confidence interval.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

CAPS = (1024, 65536)
RS = "ringstat::Queue"
AQ = "crossbeam ArrayQueue"
CONTENDERS = (RS, AQ, "crossbeam-channel bounded", "flume bounded", "std sync_channel")


def load(root: Path) -> dict[str, tuple[dict, dict]]:
    out = {}
    for meta_file in root.glob("**/new/benchmark.json"):
        meta = json.loads(meta_file.read_text())
        est = json.loads((meta_file.parent / "estimates.json").read_text())
        out[meta["full_id"]] = (meta, est)
    return out


def median_ns(runs: dict, key: str) -> float | None:
    got = runs.get(key)
    return got[1]["median"]["point_estimate"] if got else None


def rate(runs: dict, key: str) -> float | None:
    """Millions of elements per second from the median time."""
    got = runs.get(key)
    if not got:
        return None
    elements = got[0]["throughput"]["Elements"]
    return elements / got[1]["median"]["point_estimate"] * 1e3


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def speedup(runs: dict, key: str) -> str:
    """exp(-mean ln ratio) with its confidence interval, as 'r (lo..hi)'."""
    got = runs.get(key)
    if not got:
        return "n/a"
    mean = got[1]["mean"]
    ci = mean["confidence_interval"]
    point = math.exp(-mean["point_estimate"])
    lo, hi = math.exp(-ci["upper_bound"]), math.exp(-ci["lower_bound"])
    return f"{point:.2f} ({lo:.2f}..{hi:.2f})"


def single_thread_tables(runs: dict) -> None:
    print("Single thread, one push then one pop (ns per pair, median):\n")
    print("| capacity | " + " | ".join(CONTENDERS) + " | ringstat vs ArrayQueue |")
    print("|---|" + "---:|" * len(CONTENDERS) + "---|")
    for cap in CAPS:
        ns = [median_ns(runs, f"push_pop/1thread/{c}/cap{cap}") for c in CONTENDERS]
        ratio = ns[1] / ns[0] if ns[0] and ns[1] else None
        cells = " | ".join(fmt(x, ".2f") for x in ns)
        print(f"| {cap} | {cells} | {fmt(ratio, '.2f')}x |")

    print("\nSingle thread, push+pop, paired runs (`push_pop_ratio`): ringstat's")
    print("throughput over ArrayQueue's, geometric mean over pairs (95 % CI):\n")
    print("| capacity | vs ArrayQueue | A/A (ringstat vs itself) |")
    print("|---|---|---|")
    for cap in CAPS:
        g = "push_pop_ratio/1thread"
        vs = speedup(runs, f"{g}/vs {AQ}/cap{cap}")
        aa = speedup(runs, f"{g}/vs itself (A/A)/cap{cap}")
        print(f"| {cap} | {vs} | {aa} |")

    print("\nSingle thread, 64 items in then 64 out (ns per item, median):\n")
    print(
        "| capacity | ringstat batch | ringstat single | ArrayQueue single | batch vs ArrayQueue |"
    )
    print("|---|---:|---:|---:|---|")
    for cap in CAPS:
        keys = (f"{RS} batch", f"{RS} single", f"{AQ} single")
        ns = [median_ns(runs, f"push_pop_64/1thread/{k}/cap{cap}") for k in keys]
        per_item = [x / 64 if x else None for x in ns]
        ratio = ns[2] / ns[0] if ns[0] and ns[2] else None
        cells = " | ".join(fmt(x, ".2f") for x in per_item)
        print(f"| {cap} | {cells} | {fmt(ratio, '.2f')}x |")


def threaded_tables(runs: dict) -> None:
    print("\nThreaded transfer, paired runs (`transfer_ratio`): ringstat's")
    print("throughput over ArrayQueue's, geometric mean over pairs (95 % CI):\n")
    print("| configuration | vs ArrayQueue | A/A (ringstat vs itself) |")
    print("|---|---|---|")
    for label, group in (("1P/1C", "1p1c"), ("2P/2C", "2p2c")):
        for cap in CAPS:
            g = f"transfer_ratio/{group}"
            vs = speedup(runs, f"{g}/vs {AQ}/cap{cap}")
            aa = speedup(runs, f"{g}/vs itself (A/A)/cap{cap}")
            print(f"| {label}, cap {cap} | {vs} | {aa} |")
    for cap in CAPS:
        key = f"transfer_ratio/batch64/ringstat batch64 vs {AQ} single/cap{cap}"
        print(f"| 1P/1C batches of 64 vs single items, cap {cap} | {speedup(runs, key)} | |")

    print("\nThreaded transfer, one contender after another (`transfer`;")
    print("M items/s, median):\n")
    print("| configuration | " + " | ".join(CONTENDERS) + " | ringstat vs ArrayQueue |")
    print("|---|" + "---:|" * len(CONTENDERS) + "---|")
    for label, group in (("1P/1C", "1p1c"), ("2P/2C", "2p2c")):
        for cap in CAPS:
            r = [rate(runs, f"transfer/{group}/{c}/cap{cap}") for c in CONTENDERS]
            ratio = r[0] / r[1] if r[0] and r[1] else None
            cells = " | ".join(fmt(x, ".1f") for x in r)
            print(f"| {label}, cap {cap} | {cells} | {fmt(ratio, '.2f')}x |")
    for cap in CAPS:
        ours = rate(runs, f"transfer/batch64/{RS} batch64/cap{cap}")
        theirs = rate(runs, f"transfer/batch64/{AQ}/cap{cap}")
        ratio = ours / theirs if ours and theirs else None
        print(
            f"| 1P/1C batches of 64, cap {cap} | {fmt(ours, '.1f')} | {fmt(theirs, '.1f')} "
            f"| | | | {fmt(ratio, '.2f')}x |"
        )


def stats_table(runs: dict) -> None:
    print("\nStatistics (median; two-thread rows in M operations/s):\n")
    print("| benchmark | ringstat | anchor | ratio |")
    print("|---|---:|---:|---|")
    for label, group, anchor, anchor2 in (
        ("`Counter::inc`", "counter_inc", "fetch_add", "fetch_add"),
        ("`Histogram::record`", "histogram_record", "hdrhistogram", "mutex_hdrhistogram"),
    ):
        ours, theirs = (median_ns(runs, f"{group}/{c}/1") for c in ("ringstat", anchor))
        cost = ours / theirs if ours and theirs else None
        print(
            f"| {label}, 1 thread (ns) | {fmt(ours, '.2f')} | {fmt(theirs, '.2f')} "
            f"| {fmt(cost, '.2f')}x the cost |"
        )
        ours, theirs = (rate(runs, f"{group}/{c}/2") for c in ("ringstat", anchor2))
        ratio = ours / theirs if ours and theirs else None
        print(
            f"| {label}, 2 threads, one after the other | {fmt(ours, '.1f')} "
            f"| {fmt(theirs, '.1f')} | {fmt(ratio, '.2f')}x throughput |"
        )
    for name in (
        "Counter::inc vs shared fetch_add",
        "Histogram::record vs Mutex<hdrhistogram>",
        "Histogram::record vs itself (A/A)",
    ):
        paired = speedup(runs, f"stats_ratio/2threads/{name}")
        print(f"| {name}, 2 threads, paired | | | {paired} |")
    rate_ns = fmt(median_ns(runs, "rate_inc/ringstat/1"), ".2f")
    print(f"| `Rate::inc`, 1 thread (ns) | {rate_ns} | | |")
    rate2_ns = fmt(median_ns(runs, "rate_inc/ringstat/2"), ".2f")
    print(f"| `Rate::inc`, 2 threads (ns per increment per thread) | {rate2_ns} | | |")


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    runs = load(root)
    if not runs:
        sys.exit(f"no criterion results under {root}: run `cargo bench --bench queue`")
    single_thread_tables(runs)
    threaded_tables(runs)
    stats_table(runs)


if __name__ == "__main__":
    main()
