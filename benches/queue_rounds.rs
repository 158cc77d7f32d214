//! Interleaved threaded throughput of `ringstat::Queue` against its anchors,
//! reported as ratios.
//!
//! Threaded throughput on a shared 2-vCPU host swings 5-40x between runs, so
//! numbers taken minutes apart mean nothing. This runs every contender once
//! per round, for `ROUNDS` rounds (default 15), rotating the running order by
//! one each round (A B C, B C A, C A B, ...), and reports per configuration
//! the median items/s of each contender and the median, min and max of the
//! per-round ratio ringstat / contender. Ratios above 1.0 mean ringstat moved
//! more items per second in the same round.
//!
//! Run: `cargo bench --bench queue_rounds` (`ROUNDS=5` for a quick look;
//! `cargo bench --bench queue_rounds -- --test` is a smoke run). `AA=1` adds
//! ringstat a second time as a contender in every row: an A/A check whose
//! ratio shows how far the harness itself is from 1.0.
//!
//! Contenders: crossbeam `ArrayQueue`, crossbeam-channel, flume, std
//! `sync_channel` and (1P/1C only) `rtrb`; ringstat's batches of 64 against
//! `ArrayQueue`'s single items and against batches moved as one element
//! (`ArrayQueue<[u64; 64]>`, a crossbeam-channel of `Vec<u64>`) or through
//! `rtrb`'s chunk API.

mod common;

use std::time::Duration;

use common::{
    transfer, transfer_arrayqueue_arrays, transfer_channel_vecs, transfer_ringstat_batch,
    transfer_rtrb, transfer_rtrb_chunks, ArrayQueue, Contender, CrossbeamChannel, Flume, Ringstat,
    StdSyncChannel, BATCH,
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

/// One contender of a configuration: its name and how to run it once.
type Entry = (&'static str, Box<dyn Fn() -> Option<f64>>);

/// A contender that times itself: `run` moves `items` once.
fn timed(name: &'static str, items: u64, run: impl Fn() -> Duration + 'static) -> Entry {
    (name, Box::new(move || Some(rate(items, run()))))
}

fn entry<C: Contender>(cap: usize, p: usize, c: usize, items: u64) -> Entry {
    (C::NAME, Box::new(move || run::<C>(cap, p, c, items)))
}

/// The configurations, each with ringstat first (the ratios' numerator).
/// With `aa`, each configuration also runs ringstat a second time as if it
/// were a contender: an A/A check of the harness, whose ratio should come
/// out near 1.0. `rtrb` is single-producer single-consumer: 1P/1C only.
fn configurations(items: u64, aa: bool) -> Vec<(String, Vec<Entry>)> {
    let mut configs = Vec::new();
    for cap in [1024usize, 65536] {
        for (label, p, c) in [("1P/1C", 1, 1), ("2P/2C", 2, 2)] {
            let mut entries = vec![entry::<Ringstat>(cap, p, c, items)];
            if aa {
                entries.push((
                    "ringstat::Queue (A/A)",
                    entry::<Ringstat>(cap, p, c, items).1,
                ));
            }
            entries.extend([
                entry::<ArrayQueue>(cap, p, c, items),
                entry::<CrossbeamChannel>(cap, p, c, items),
                entry::<Flume>(cap, p, c, items),
                entry::<StdSyncChannel>(cap, p, c, items),
            ]);
            if p == 1 {
                entries.push(timed("rtrb", items, move || transfer_rtrb(cap, items)));
            }
            configs.push((format!("{label}, cap {cap}"), entries));
        }
        // Batches of 64: ringstat's, against ArrayQueue's single items and
        // against the anchors' own batches.
        let ours = move || transfer_ringstat_batch(cap, items, BATCH);
        let mut entries = vec![timed("ringstat::Queue batch 64", items, ours)];
        if aa {
            entries.push(timed("ringstat::Queue batch 64 (A/A)", items, ours));
        }
        entries.extend([
            entry::<ArrayQueue>(cap, 1, 1, items),
            timed("crossbeam ArrayQueue<[u64; 64]>", items, move || {
                transfer_arrayqueue_arrays(cap, items)
            }),
            timed("crossbeam-channel of Vec, 64 each", items, move || {
                transfer_channel_vecs(cap, items)
            }),
            timed("rtrb chunks of 64", items, move || {
                transfer_rtrb_chunks(cap, items, BATCH)
            }),
        ]);
        configs.push((format!("1P/1C batch 64, cap {cap}"), entries));
    }
    configs
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if smoke { 1 } else { 15 });
    // Whole batches of 64 (the batch anchors carry only whole batches).
    let items: u64 = if smoke { 19_200 } else { 1_000_000 };
    let aa = std::env::var_os("AA").is_some();

    let configs = configurations(items, aa);
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|(config, entries)| Row {
            config: config.clone(),
            names: entries.iter().map(|e| e.0).collect(),
            rates: vec![Vec::new(); entries.len()],
        })
        .collect();
    for round in 0..rounds {
        for ((_, entries), row) in configs.iter().zip(&mut rows) {
            // Rotate the running order by one each round, so that every
            // contender runs first, second, ... equally often: whatever the
            // position costs (a cold cache, the previous run's threads still
            // winding down) is shared out instead of always hitting one.
            let n = entries.len();
            for k in 0..n {
                let j = (k + round) % n;
                if let Some(r) = (entries[j].1)() {
                    row.rates[j].push(r);
                }
            }
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
