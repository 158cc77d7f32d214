//! Runs one hot path `n` times, for counting instructions under callgrind
//! (`valgrind --tool=callgrind target/release/examples/hot_path_ir counter 1000000`).

use std::hint::black_box;

use ringstat::stats::{Counter, Gauge, Histogram};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "counter".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    match what.as_str() {
        "counter" => {
            let c = Counter::new();
            for _ in 0..n {
                black_box(&c).inc();
            }
            println!("{}", c.get());
        }
        "gauge" => {
            let g = Gauge::new();
            for i in 0..n {
                black_box(&g).set(black_box(i as i64));
            }
            println!("{}", g.get());
        }
        "histogram" => {
            let h = Histogram::new(1 << 30, 2).expect("valid");
            for i in 0..n {
                black_box(&h)
                    .record(black_box(i & 0xffff))
                    .expect("in range");
            }
            println!("{}", h.count());
        }
        "none" => println!("{n}"),
        _ => eprintln!("counter | gauge | histogram | none"),
    }
}
