//! Paired comparisons for criterion: [`TimeRatio`], a measurement whose
//! value is the log of a ratio of two wall times taken moments apart, and
//! [`paired`], which takes them.
//!
//! Criterion measures one benchmark function after another. On a shared
//! 2-vCPU host, threaded throughput swings by several times over minutes,
//! so two contenders measured a minute apart can differ by more than the
//! two queues do. A paired benchmark runs ours and the anchor back to back
//! in every iteration, alternating which goes first, and criterion
//! estimates the mean log ratio over those pairs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// A criterion measurement for paired comparisons. The value of one
/// iteration is the natural log of a ratio of two wall times taken in that
/// iteration, ours over the anchor's; criterion's estimates are of the mean
/// log ratio, and are shown exponentiated: the geometric mean of the ratios.
/// Lower is better, as for a time. Used only through `iter_custom`.
///
/// Why logs: per-pair ratios here spread from about 0.3 to 5, and the
/// arithmetic mean of such ratios is biased upwards (ringstat against
/// itself came out at 1.49 in one run); the mean of their logs is not.
/// `estimates.json` holds the logs; `benches/criterion_table.py` converts
/// them back.
pub struct TimeRatio;

struct RatioFormatter;

impl ValueFormatter for RatioFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v = v.exp();
        }
        "x anchor's time"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _throughput: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        // The ratio groups set no throughput.
        "x anchor's time"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ln(ratio)"
    }
}

impl Measurement for TimeRatio {
    type Intermediate = ();
    type Value = f64;
    fn start(&self) {}
    fn end(&self, _: ()) -> f64 {
        unreachable!("TimeRatio values come from iter_custom only")
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &RatioFormatter
    }
}

/// Which of the pair runs first next; flips on every pair, across samples
/// and benchmarks, so that neither side always gets the warmer (or colder)
/// moment.
static PAIRS: AtomicU64 = AtomicU64::new(0);

/// `iters` pairs of runs, `ours` and `anchor` back to back in alternating
/// order; returns the sum of `ln(ours / anchor)` over the pairs.
pub fn paired(iters: u64, ours: impl Fn() -> Duration, anchor: impl Fn() -> Duration) -> f64 {
    (0..iters)
        .map(|_| {
            let (a, b) = if PAIRS.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                let a = ours();
                (a, anchor())
            } else {
                let b = anchor();
                (ours(), b)
            };
            (a.as_secs_f64() / b.as_secs_f64()).ln()
        })
        .sum()
}

/// Criterion settings for paired groups: every iteration is two runs, so a
/// longer measurement than the default, and a short warm-up.
pub fn config() -> criterion::Criterion<TimeRatio> {
    criterion::Criterion::default()
        .with_measurement(TimeRatio)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
}
