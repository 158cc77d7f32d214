"""Print the Markdown tables of BENCHMARKS.md from the last criterion runs of
`cargo bench --bench queue --bench stats` (read from `target/criterion`).

Usage: python3 benches/criterion_table.py [path/to/target/criterion]

Criterion keeps the latest estimate of every benchmark it ran, so run the
whole benches first: a filtered run would mix in older figures. Plain
groups report criterion's median estimate. The `push_pop_ratio`,
`transfer_ratio` and `stats_ratio` groups store the mean of ln(ringstat time / anchor time)
over pairs of runs (see `benches/ratio`); this prints it as a throughput
ratio, anchor time / ringstat time = exp(-mean), with criterion's 95 %
confidence interval. A target is marked met only when the interval's lower
end clears it, not met only when its upper end stays below it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

CAPS = (1024, 65536)
RS = "ringstat::Queue"
AQ = "crossbeam ArrayQueue"
CC = "crossbeam-channel bounded"
CONTENDERS = (RS, AQ, CC, "flume bounded", "std sync_channel", "rtrb")
# The anchors' own batches of 64 (benches/queue.rs `batch_anchors`).
BATCH_ANCHORS = ("crossbeam ArrayQueue<[u64; 64]>", "crossbeam-channel of Vec", "rtrb chunks")
# Targets on ringstat's throughput over ArrayQueue's (paired groups).
SINGLE_TARGET = 1.0
BATCH_TARGET = 3.0


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


def speedup(runs: dict, key: str, target: float | None = None) -> str:
    """exp(-mean ln ratio) with its confidence interval, as 'r (lo..hi)',
    and with `target`, whether the interval clears it."""
    got = runs.get(key)
    if not got:
        return "n/a"
    mean = got[1]["mean"]
    ci = mean["confidence_interval"]
    point = math.exp(-mean["point_estimate"])
    lo, hi = math.exp(-ci["upper_bound"]), math.exp(-ci["lower_bound"])
    out = f"{point:.2f} ({lo:.2f}..{hi:.2f})"
    if target is None:
        return out
    if lo >= target:
        return f"{out} ✅ (target {target:g}x)"
    if hi < target:
        return f"{out} ❌ (target {target:g}x)"
    return f"{out} undecided (target {target:g}x inside the interval)"


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
        vs = speedup(runs, f"{g}/vs {AQ}/cap{cap}", SINGLE_TARGET)
        aa = speedup(runs, f"{g}/vs itself (A/A)/cap{cap}")
        print(f"| {cap} | {vs} | {aa} |")

    print("\nSingle thread, 64 items in then 64 out (ns per item, median; in brackets")
    print("the anchor's time over ringstat's batch):\n")
    keys = (f"{RS} single", f"{AQ} single", *BATCH_ANCHORS)
    print("| capacity | ringstat batch | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for cap in CAPS:
        ours = median_ns(runs, f"push_pop_64/1thread/{RS} batch/cap{cap}")
        cells = []
        for k in keys:
            ns = median_ns(runs, f"push_pop_64/1thread/{k}/cap{cap}")
            ratio = ns / ours if ns and ours else None
            cells.append(f"{fmt(ns and ns / 64, '.2f')} ({fmt(ratio, '.2f')}x)")
        print(f"| {cap} | {fmt(ours and ours / 64, '.2f')} | " + " | ".join(cells) + " |")


def threaded_tables(runs: dict) -> None:
    print("\nThreaded transfer, paired runs (`transfer_ratio`): ringstat's")
    print("throughput over the anchor's, geometric mean over pairs (95 % CI):\n")
    print("| configuration | vs ArrayQueue | vs crossbeam-channel | vs rtrb | A/A |")
    print("|---|---|---|---|---|")
    for label, group in (("1P/1C", "1p1c"), ("2P/2C", "2p2c")):
        for cap in CAPS:
            g = f"transfer_ratio/{group}"
            vs = speedup(runs, f"{g}/vs {AQ}/cap{cap}", SINGLE_TARGET)
            cc = speedup(runs, f"{g}/vs crossbeam-channel/cap{cap}")
            rt = speedup(runs, f"{g}/vs rtrb/cap{cap}") if group == "1p1c" else "(1P/1C only)"
            aa = speedup(runs, f"{g}/vs itself (A/A)/cap{cap}")
            print(f"| {label}, cap {cap} | {vs} | {cc} | {rt} | {aa} |")

    print("\nBatches of 64 between two threads, paired (`transfer_ratio/batch64`):")
    print("ringstat's batch throughput over the anchor's (95 % CI):\n")
    print(
        "| capacity | vs ArrayQueue single items | "
        + " | ".join(f"vs {a}" for a in BATCH_ANCHORS)
        + " | A/A |"
    )
    print("|---|" + "---|" * (len(BATCH_ANCHORS) + 2))
    for cap in CAPS:
        g = "transfer_ratio/batch64/ringstat batch64"
        cells = [speedup(runs, f"{g} vs {AQ} single/cap{cap}", BATCH_TARGET)]
        cells += [speedup(runs, f"{g} vs {a}/cap{cap}") for a in BATCH_ANCHORS]
        cells.append(speedup(runs, f"{g} vs itself (A/A)/cap{cap}"))
        print(f"| {cap} | " + " | ".join(cells) + " |")

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

    print("\nBatches of 64 between two threads, one contender after another")
    print("(`transfer/batch64`; M items/s, median):\n")
    keys = (f"{RS} batch64", AQ, *BATCH_ANCHORS)
    print("| capacity | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for cap in CAPS:
        cells = [fmt(rate(runs, f"transfer/batch64/{k}/cap{cap}"), ".1f") for k in keys]
        print(f"| {cap} | " + " | ".join(cells) + " |")


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
    for name in ("Histogram::record vs hdrhistogram", "Histogram::record vs itself (A/A)"):
        paired = speedup(runs, f"stats_ratio/1thread/{name}")
        print(f"| {name}, 1 thread, paired (throughput) | | | {paired} |")
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
