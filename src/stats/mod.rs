//! Live statistics: counters, gauges, histograms, rates and a registry.
//!
//! Aggregators that many threads update at full speed while anyone reads
//! them live. All are `Send + Sync` and every method takes `&self`.
//!
//! - [`Counter`]: a monotonic `u64`, sharded over cache-padded cells
//!   (total logins); [`take`](Counter::take) drains it exactly once.
//! - [`Gauge`]: an `i64` that goes up and down, with the min and max seen
//!   since the last reset (users online).
//! - [`Histogram`]: log-linear HDR-style buckets over `0..=max` with a
//!   documented relative error `2^-(m+1) <= 10^-digits / 2`; count, sum,
//!   min, max, mean, quantiles, merge; [`HistogramSnapshot`] is its
//!   plain-data copy and [`HistogramConfig`] its layout.
//! - [`Rate`]: events per second over a sliding window (default 60 x 1 s)
//!   that rotates lazily, sharded like a counter; [`RateConfig`] is its
//!   window, and the [`Clock`] is injectable ([`SystemClock`],
//!   [`ManualClock`]).
//! - [`Registry`]: get-or-create by name and labels, returning `Arc`
//!   handles; [`Snapshot`] / [`MetricSnapshot`] / [`MetricValue`] are plain
//!   data with a timestamp, and [`Snapshot::to_prometheus`] renders the
//!   Prometheus text format 0.0.4.
//! - [`StatsError`]: every error, naming the bad argument or value;
//!   [`MetricKind`] names the four kinds.
//!
//! # Examples
//!
//! ```
//! use ringstat::stats::{HistogramConfig, Registry};
//!
//! let reg = Registry::new();
//! let logins = reg.counter("logins", &[])?;
//! let online = reg.gauge("users_online", &[])?;
//! let session = reg.histogram(
//!     "online_seconds",
//!     &[],
//!     HistogramConfig { max: 86_400, significant_digits: 2 },
//! )?;
//!
//! logins.inc();
//! online.add(1);
//! session.record(42)?;
//! online.sub(1);
//!
//! print!("{}", reg.snapshot().to_prometheus());
//! # Ok::<(), ringstat::stats::StatsError>(())
//! ```

use core::fmt;

mod counter;
mod error;
mod exposition;
mod gauge;
mod histogram;
mod rate;
mod recorder;
mod registry;
mod snapshot_hist;

pub use counter::Counter;
pub use error::StatsError;
pub use gauge::Gauge;
pub use histogram::{Histogram, HistogramConfig};
pub use rate::{Clock, ManualClock, Rate, RateConfig, SystemClock};
pub use recorder::{Recorder, RecorderConfig, RecorderError};
pub use registry::{MetricSnapshot, MetricValue, Registry, Snapshot, DEFAULT_QUANTILES};
pub use snapshot_hist::{quantile_rank, HistogramSnapshot};

/// The four kinds of metric a [`Registry`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A [`Counter`].
    Counter,
    /// A [`Gauge`].
    Gauge,
    /// A [`Histogram`].
    Histogram,
    /// A [`Rate`].
    Rate,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Rate => "rate",
        })
    }
}
