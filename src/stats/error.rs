//! The one error type of the `stats` module.

use core::fmt;
use std::time::Duration;

use super::MetricKind;

/// Everything that can go wrong in [`stats`](crate::stats): bad configuration,
/// values a histogram cannot hold, and registry misuse. Every variant names
/// the offending argument or value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StatsError {
    /// A histogram's significant digits must be in `0..=5`.
    InvalidSignificantDigits {
        /// The rejected number of digits.
        digits: u8,
    },
    /// A histogram's highest trackable value must be at least 1.
    InvalidMaxValue {
        /// The rejected maximum.
        max: u64,
    },
    /// An integer value above the histogram's highest trackable value.
    ValueOutOfRange {
        /// The rejected value.
        value: u64,
        /// The histogram's highest trackable value.
        max: u64,
    },
    /// A float value that is negative, infinite or above the histogram's
    /// highest trackable value.
    FloatOutOfRange {
        /// The rejected value.
        value: f64,
        /// The histogram's highest trackable value.
        max: u64,
    },
    /// NaN was passed where a value was expected.
    NotANumber,
    /// A quantile outside `[0.0, 1.0]`, or NaN.
    InvalidQuantile {
        /// The rejected quantile.
        q: f64,
    },
    /// Two histograms with different `(max, significant digits)` cannot be
    /// merged bucket by bucket.
    IncompatibleHistograms {
        /// `(max, digits)` of the histogram merged into.
        left: (u64, u8),
        /// `(max, digits)` of the histogram merged from.
        right: (u64, u8),
    },
    /// A rate window needs at least one bucket, and each bucket must span at
    /// least one millisecond.
    InvalidWindow {
        /// The rejected window length.
        window: Duration,
        /// The rejected bucket count.
        buckets: usize,
    },
    /// A metric name that does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName {
        /// The rejected name.
        name: String,
    },
    /// A label name that does not match `[a-zA-Z_][a-zA-Z0-9_]*`, starts with
    /// the reserved `__`, or is reserved by the exposition (`quantile`, `le`).
    InvalidLabelName {
        /// The metric the label was given for.
        metric: String,
        /// The rejected label name.
        label: String,
    },
    /// The same label name given twice for one metric.
    DuplicateLabel {
        /// The metric the labels were given for.
        metric: String,
        /// The repeated label name.
        label: String,
    },
    /// A name already registered as another kind of metric.
    KindMismatch {
        /// The metric name.
        name: String,
        /// The kind it is registered as.
        existing: MetricKind,
        /// The kind that was asked for.
        requested: MetricKind,
    },
    /// Two metric families would expose the same Prometheus name (a counter
    /// `x` is exposed as `x_total`, a histogram `x` also as `x_sum` and
    /// `x_count`).
    NameCollision {
        /// The metric being registered.
        name: String,
        /// The registered metric whose exposed names it collides with.
        existing: String,
    },
    /// A histogram or rate already registered under this name and labels
    /// with a different configuration.
    ConfigMismatch {
        /// The metric name.
        name: String,
        /// The existing configuration, as text.
        existing: String,
        /// The requested configuration, as text.
        requested: String,
    },
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSignificantDigits { digits } => {
                write!(f, "significant digits must be in 0..=5, got {digits}")
            }
            Self::InvalidMaxValue { max } => {
                write!(f, "histogram max value must be at least 1, got {max}")
            }
            Self::ValueOutOfRange { value, max } => {
                write!(f, "value {value} is above the histogram's max value {max}")
            }
            Self::FloatOutOfRange { value, max } => write!(
                f,
                "value {value} is outside the histogram's range 0..={max}"
            ),
            Self::NotANumber => write!(f, "value is NaN"),
            Self::InvalidQuantile { q } => {
                write!(f, "quantile must be in [0.0, 1.0], got {q}")
            }
            Self::IncompatibleHistograms { left, right } => write!(
                f,
                "cannot merge a histogram with (max {}, {} digits) into one with (max {}, {} digits)",
                right.0, right.1, left.0, left.1
            ),
            Self::InvalidWindow { window, buckets } => write!(
                f,
                "invalid rate window {window:?} with {buckets} buckets: need at least 1 bucket of at least 1 ms"
            ),
            Self::InvalidMetricName { name } => write!(
                f,
                "invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
            ),
            Self::InvalidLabelName { metric, label } => write!(
                f,
                "invalid label name {label:?} for metric {metric:?}: must match [a-zA-Z_][a-zA-Z0-9_]*, not start with \"__\", and not be \"quantile\" or \"le\""
            ),
            Self::DuplicateLabel { metric, label } => {
                write!(f, "label {label:?} given twice for metric {metric:?}")
            }
            Self::KindMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "metric {name:?} is registered as a {existing}, not a {requested}"
            ),
            Self::NameCollision { name, existing } => write!(
                f,
                "metric {name:?} would be exposed under the same Prometheus name as metric {existing:?}"
            ),
            Self::ConfigMismatch {
                name,
                existing,
                requested,
            } => write!(
                f,
                "metric {name:?} is registered with configuration {existing}, not {requested}"
            ),
        }
    }
}

impl std::error::Error for StatsError {}
