//! Interleaved threaded throughput of `ringstat::Queue` against its anchors,
//! reported as ratios.
//!
//! Threaded throughput on a shared 2-vCPU host swings 5-40x between runs, so
//! numbers taken minutes apart mean nothing. This runs every contender once
//! per round, in the same order (A B C A B C ...), for `ROUNDS` rounds
//! (default 15), and reports per configuration the median items/s of each
//! contender and the median, min and max of the per-round ratio
//! ringstat / contender. Ratios above 1.0 mean ringstat moved more items per
//! second in the same round.
//!
//! Run: `cargo bench --bench queue_rounds` (`ROUNDS=5` for a quick look;
//! `cargo bench --bench queue_rounds -- --test` is a smoke run).

mod common;

use std::time::Duration;

use common::{
    transfer, transfer_ringstat_batch, ArrayQueue, Contender, CrossbeamChannel, Flume, Ringstat,
    StdSyncChannel,
};

struct Row {
    config: String,
    names: Vec<&'static str>,
    /// `rates[contender][round]`, items per second.
    rates: Vec<Vec<f64>>,
}

fn rate(items: u64, d: Duration) -> f64 {
    items as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run<C: Contender>(cap: usize, p: usize, c: usize, items: u64) -> Option<f64> {
    if c > 1 && !C::MULTI_CONSUMER {
        return None;
    }
    Some(rate(items, transfer::<C>(cap, p, c, items)))
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if smoke { 1 } else { 15 });
    let items: u64 = if smoke { 20_000 } else { 1_000_000 };

    let mut rows: Vec<Row> = Vec::new();
    for round in 0..rounds {
        let mut i = 0;
        for cap in [1024usize, 65536] {
            for (label, p, c) in [("1P/1C", 1, 1), ("2P/2C", 2, 2)] {
                let results = [
                    (Ringstat::NAME, run::<Ringstat>(cap, p, c, items)),
                    (ArrayQueue::NAME, run::<ArrayQueue>(cap, p, c, items)),
                    (
                        CrossbeamChannel::NAME,
                        run::<CrossbeamChannel>(cap, p, c, items),
                    ),
                    (Flume::NAME, run::<Flume>(cap, p, c, items)),
                    (
                        StdSyncChannel::NAME,
                        run::<StdSyncChannel>(cap, p, c, items),
                    ),
                ];
                record(
                    &mut rows,
                    &mut i,
                    round,
                    format!("{label}, cap {cap}"),
                    &results,
                );
            }
            // Batches of 64 (ringstat) against single items (ArrayQueue).
            let results = [
                (
                    "ringstat::Queue batch 64",
                    Some(rate(items, transfer_ringstat_batch(cap, items, 64))),
                ),
                (ArrayQueue::NAME, run::<ArrayQueue>(cap, 1, 1, items)),
            ];
            record(
                &mut rows,
                &mut i,
                round,
                format!("1P/1C batch 64, cap {cap}"),
                &results,
            );
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }

    println!(
        "| configuration | contender | median items/s | ringstat / contender: median (min..max) |"
    );
    println!("|---|---|---:|---|");
    for row in &rows {
        let ours = &row.rates[0];
        for (k, name) in row.names.iter().enumerate() {
            let theirs = &row.rates[k];
            if theirs.is_empty() {
                continue;
            }
            let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(0.0, f64::max);
            let ratio = if k == 0 {
                "—".to_string()
            } else {
                format!("{:.2} ({lo:.2}..{hi:.2})", median(ratios))
            };
            println!(
                "| {} | {name} | {:.2}M | {ratio} |",
                row.config,
                median(theirs.clone()) / 1e6
            );
        }
    }
    println!("\n{rounds} rounds, {items} items per run, contenders interleaved within each round.");
}

fn record(
    rows: &mut Vec<Row>,
    i: &mut usize,
    round: usize,
    config: String,
    results: &[(&'static str, Option<f64>)],
) {
    if round == 0 {
        rows.push(Row {
            config,
            names: results.iter().map(|r| r.0).collect(),
            rates: vec![Vec::new(); results.len()],
        });
    }
    for (k, (_, r)) in results.iter().enumerate() {
        if let Some(r) = r {
            rows[*i].rates[k].push(*r);
        }
    }
    *i += 1;
}
