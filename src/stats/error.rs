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
    /// A histogram's unit must be finite and above 0.
    InvalidUnit {
        /// The rejected unit.
        unit: f64,
    },
    /// A float that is negative, infinite or above the highest trackable
    /// value of a histogram with a unit (both in the histogram's value units).
    UnitValueOutOfRange {
        /// The rejected value.
        value: f64,
        /// The histogram's highest trackable value.
        max: f64,
    },
    /// A float with a fractional part given to a histogram without a unit,
    /// which would have to round it to an integer.
    FractionalValue {
        /// The rejected value.
        value: f64,
    },
    /// Two histograms with different units cannot be merged.
    IncompatibleUnits {
        /// The unit of the histogram merged into (`None`: integers).
        left: Option<f64>,
        /// The unit of the histogram merged from.
        right: Option<f64>,
    },
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
    /// A shard count above the type's limit (see `MAX_SHARDS` of
    /// [`Counter`](super::Counter) and [`Rate`](super::Rate)).
    InvalidShards {
        /// The rejected shard count.
        shards: usize,
        /// The most shards allowed.
        max: usize,
    },
    /// A rate whose slots (`buckets` per shard) would take more memory than
    /// [`Rate::MAX_SLOTS`](super::Rate::MAX_SLOTS) words.
    TooManyBuckets {
        /// The rejected bucket count.
        buckets: usize,
        /// The shard count it was asked with.
        shards: usize,
        /// The most `buckets * shards` allowed.
        max: usize,
    },
    /// A metric name that does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`, or
    /// would expose an empty family name (a counter named `_total`).
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
    /// A label value holding a character the text exposition cannot carry
    /// on one line: NUL, `\r`, or another line break of Unicode (`\x0b`,
    /// `\x0c`, `\x1c`-`\x1e`, `\x85`, `\u2028`, `\u2029`). `\n` is fine
    /// (it is escaped).
    InvalidLabelValue {
        /// The metric the label was given for.
        metric: String,
        /// The label name.
        label: String,
        /// The rejected value.
        value: String,
    },
    /// A metric's help text holds a character that would end or split its
    /// `# HELP` line (as for [`InvalidLabelValue`](Self::InvalidLabelValue);
    /// `\n` and `\\` are escaped).
    InvalidHelp {
        /// The metric the help was given for.
        metric: String,
        /// The rejected text.
        help: String,
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
    /// Classic bucket bounds of a histogram family
    /// ([`Registry::set_buckets`](super::Registry::set_buckets)) that are
    /// not a non-empty, strictly increasing list of finite numbers (a last
    /// `+Inf` is allowed and dropped: it is always exposed).
    InvalidBuckets {
        /// The metric name.
        metric: String,
        /// The rejected bounds.
        buckets: Vec<f64>,
    },
    /// A registry created with a series limit
    /// ([`Registry::with_limit`](super::Registry::with_limit)) is full: the
    /// new series is not created; existing ones keep working.
    TooManySeries {
        /// The metric name of the refused series.
        name: String,
        /// The registry's limit.
        limit: usize,
    },
    /// A [`RegistryState`](super::RegistryState) that no registry could
    /// hold (a histogram bucket past its layout, a rate bucket past its
    /// window), named by series.
    InvalidState {
        /// The series name.
        name: String,
        /// What is wrong.
        reason: String,
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
            Self::InvalidUnit { unit } => {
                write!(f, "histogram unit must be finite and above 0, got {unit}")
            }
            Self::UnitValueOutOfRange { value, max } => {
                write!(f, "value {value} is outside the histogram's range 0..={max}")
            }
            Self::FractionalValue { value } => write!(
                f,
                "value {value} is not a whole number and this histogram has no unit, so it would be rounded: \
                 create the histogram with a unit (unit=1e-6 keeps microseconds) to record fractions"
            ),
            Self::IncompatibleUnits { left, right } => write!(
                f,
                "cannot merge a histogram with unit {right:?} into one with unit {left:?}"
            ),
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
            Self::InvalidShards { shards, max } => {
                write!(f, "shards must be at most {max}, got {shards}")
            }
            Self::TooManyBuckets {
                buckets,
                shards,
                max,
            } => write!(
                f,
                "too many rate buckets: {buckets} buckets x {shards} shards is more than {max} slots"
            ),
            Self::InvalidMetricName { name } => write!(
                f,
                "invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]* and not be \"_total\""
            ),
            Self::InvalidLabelValue {
                metric,
                label,
                value,
            } => write!(
                f,
                "invalid value {value:?} of label {label:?} for metric {metric:?}: NUL, \\r and Unicode line separators other than \\n are not allowed"
            ),
            Self::InvalidHelp { metric, help } => write!(
                f,
                "invalid help {help:?} for metric {metric:?}: NUL, \\r and Unicode line separators other than \\n are not allowed"
            ),
            Self::InvalidBuckets { metric, buckets } => write!(
                f,
                "invalid buckets {buckets:?} for histogram {metric:?}: need at least one finite bound, \
                 strictly increasing (a last +Inf is allowed)"
            ),
            Self::TooManySeries { name, limit } => write!(
                f,
                "cannot create a new series of metric {name:?}: the registry holds its limit of {limit} series"
            ),
            Self::InvalidState { name, reason } => {
                write!(f, "invalid state for {name:?}: {reason}")
            }
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
