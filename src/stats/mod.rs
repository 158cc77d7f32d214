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
//!   min, max, mean, quantiles, merge; floats in a declared unit
//!   ([`Histogram::with_unit`]); per-thread fronts, so a record takes no
//!   locked instruction; [`HistogramSnapshot`] is its plain-data copy and
//!   [`HistogramConfig`] its layout.
//! - [`Rate`]: events per second over a sliding window (default 60 x 1 s)
//!   that rotates lazily, sharded like a counter; [`RateConfig`] is its
//!   window, and the [`Clock`] is injectable ([`SystemClock`],
//!   [`ManualClock`]).
//! - [`Registry`]: get-or-create by name and labels, returning `Arc`
//!   handles; [`Snapshot`] / [`MetricSnapshot`] / [`MetricValue`] are plain
//!   data with a timestamp, and [`Snapshot::to_prometheus`] renders the
//!   Prometheus text format 0.0.4, [`Snapshot::to_openmetrics`] OpenMetrics
//!   1.0 ([`Format`]); histograms as summaries or, given bounds
//!   ([`Registry::set_buckets`]), classic buckets.
//! - [`RegistryState`]: the full state of every metric of a registry, to
//!   restore it ([`Registry::from_state`]) or merge it into another
//!   ([`Registry::merge_state`]: counters add, histograms add bucket-wise,
//!   rates add by window bucket); its bytes are `wire::encode_state`.
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

use crate::sync::{AtomicU64, Ordering};

// Some items here serve only the shared registry (Linux, not loom or Miri).
#[cfg_attr(any(ringstat_loom, miri, not(target_os = "linux")), allow(dead_code))]
mod clock;
mod counter;
mod error;
mod exposition;
mod gauge;
// Some items here serve only the shared registry (Linux, not loom or Miri).
#[cfg_attr(any(ringstat_loom, miri, not(target_os = "linux")), allow(dead_code))]
mod hist_front;
// Some items here serve only the shared registry (Linux, not loom or Miri).
#[cfg_attr(any(ringstat_loom, miri, not(target_os = "linux")), allow(dead_code))]
mod histogram;
#[cfg(feature = "python")]
pub(crate) use histogram::tick_value;
mod rate;
mod recorder;
mod registry;
#[doc(hidden)]
// Some items here serve only the shared registry (Linux, not loom or Miri).
#[cfg_attr(any(ringstat_loom, miri, not(target_os = "linux")), allow(dead_code))]
pub mod shared;
mod snapshot_hist;
mod state;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use counter::Counter;
pub use error::StatsError;
pub use exposition::{Format, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
pub use gauge::Gauge;
#[cfg(feature = "python")]
pub(crate) use histogram::Via;
pub use histogram::{Histogram, HistogramConfig};
pub use rate::{Rate, RateConfig};
pub use recorder::{Recorder, RecorderConfig, RecorderError};
pub use registry::{MetricSnapshot, MetricValue, Registry, Snapshot, DEFAULT_QUANTILES};
#[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
pub use shared::{
    AnonymousMemory, GaugeMode, SharedError, SharedMemory, SharedOptions, SharedRegistry,
    SharedUsage,
};
pub use snapshot_hist::{quantile_rank, HistogramSnapshot};
pub use state::{RegistryState, SeriesState, ValueState};

/// Where a count cell stops growing: `u64::MAX - 2^52`. Counts saturate here
/// (and sums of cells at `u64::MAX`) instead of wrapping to a small number;
/// adds racing the saturating one may still land, up to `2^52` above it.
pub const COUNT_SATURATION: u64 = u64::MAX - (1 << 52);

/// Adds up to this take the plain `fetch_add` path of [`saturating_add`].
const FAST_ADD_MAX: u64 = 1 << 20;

/// Adds `n` to `cell`, stopping at [`COUNT_SATURATION`] rather than wrapping.
///
/// Fast path: one `fetch_add` when the cell is below the saturation point
/// and `n <= 2^20`. Fewer than `2^32` threads can be between their check and
/// their add, so at most `2^52` lands above the point: the cell never wraps.
/// Otherwise a CAS loop adds and caps at the point. `order` is the success
/// ordering of the add (its pairing is the caller's to name).
#[inline]
pub(crate) fn saturating_add(cell: &AtomicU64, n: u64, order: Ordering) {
    // Relaxed: only a hint choosing the path; the RMW below is what counts.
    let cur = cell.load(Ordering::Relaxed);
    if cur < COUNT_SATURATION && n <= FAST_ADD_MAX {
        cell.fetch_add(n, order);
        return;
    }
    saturating_add_slow(cell, n, order);
}

#[cold]
fn saturating_add_slow(cell: &AtomicU64, n: u64, order: Ordering) {
    // Failure Relaxed: a failed CAS only reloads the value to retry with.
    let _ = cell.fetch_update(order, Ordering::Relaxed, |c| {
        (c < COUNT_SATURATION).then(|| c.saturating_add(n).min(COUNT_SATURATION))
    });
}

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
