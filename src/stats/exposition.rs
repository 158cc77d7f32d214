//! Name validation and the text exposition formats for [`Snapshot`]:
//! Prometheus 0.0.4 and OpenMetrics 1.0.

use core::fmt::Write as _;
use std::collections::HashSet;

use super::histogram::tick_value;
use super::registry::{MetricValue, Snapshot};
use super::{MetricKind, StatsError};

/// Checks `[a-zA-Z_:][a-zA-Z0-9_:]*`, and not `_total` (as a counter its
/// family name would be empty, which parsers reject).
pub(crate) fn validate_metric_name(name: &str) -> Result<(), StatsError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && name != "_total";
    if ok {
        Ok(())
    } else {
        Err(StatsError::InvalidMetricName {
            name: name.to_owned(),
        })
    }
}

/// Checks `[a-zA-Z_][a-zA-Z0-9_]*`, no `__` prefix, not `quantile` or `le`.
pub(crate) fn validate_label_name(metric: &str, label: &str) -> Result<(), StatsError> {
    let mut chars = label.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !label.starts_with("__")
        && label != "quantile"
        && label != "le";
    if ok {
        Ok(())
    } else {
        Err(StatsError::InvalidLabelName {
            metric: metric.to_owned(),
            label: label.to_owned(),
        })
    }
}

/// Checks that a label value has no character that would end or split its
/// line for a reader of the text format (see
/// [`StatsError::InvalidLabelValue`]); `\n` is escaped on output.
pub(crate) fn validate_label_value(
    metric: &str,
    label: &str,
    value: &str,
) -> Result<(), StatsError> {
    if value.contains(breaks_line) {
        return Err(StatsError::InvalidLabelValue {
            metric: metric.to_owned(),
            label: label.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Checks that a help text has no character that would end or split its
/// `# HELP` line (see [`StatsError::InvalidHelp`]); `\n` and `\\` are
/// escaped on output.
pub(crate) fn validate_help(metric: &str, help: &str) -> Result<(), StatsError> {
    if help.contains(breaks_line) {
        return Err(StatsError::InvalidHelp {
            metric: metric.to_owned(),
            help: help.to_owned(),
        });
    }
    Ok(())
}

/// A character other than `\n` that a reader of the text format may take
/// as the end of a line (or that it refuses: NUL).
fn breaks_line(c: char) -> bool {
    matches!(
        c,
        '\0' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// The sample name of a counter: `name_total`, unless it already ends so.
fn counter_name(name: &str) -> String {
    if name.ends_with("_total") {
        name.to_owned()
    } else {
        format!("{name}_total")
    }
}

/// Every sample name a family of `kind` called `name` may expose (a
/// histogram given buckets also `name_bucket`).
pub(crate) fn exposed_names(name: &str, kind: MetricKind) -> Vec<String> {
    match kind {
        MetricKind::Counter => vec![counter_name(name)],
        MetricKind::Gauge | MetricKind::Rate => vec![name.to_owned()],
        MetricKind::Histogram => vec![
            name.to_owned(),
            format!("{name}_sum"),
            format!("{name}_count"),
            format!("{name}_bucket"),
        ],
    }
}

/// Escapes `\`, `"` and newline in a label value.
fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes `\` and newline in a help text, as the text format requires
/// (and `"` for OpenMetrics).
fn escape_help(v: &str, om: bool, out: &mut String) {
    for c in v.chars() {
        match c {
            '"' if om => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `{a="1",b="2"}` (with `extra` last), or nothing when there are no labels.
fn write_labels(out: &mut String, labels: &[(String, String)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let all = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra);
    for (i, (k, v)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, out);
        out.push('"');
    }
    out.push('}');
}

/// A sample value: Go-style `NaN`, `+Inf`, `-Inf`, otherwise Rust's
/// shortest round-trip decimal.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// Content type of [`Snapshot::to_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of [`Snapshot::to_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The two text formats a [`Snapshot`] renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::Format;
    /// assert!(Format::OpenMetrics.content_type().starts_with("application/openmetrics-text"));
    /// ```
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

impl Snapshot {
    /// Renders the snapshot in the Prometheus text exposition format,
    /// version 0.0.4 (`Content-Type: text/plain; version=0.0.4`).
    ///
    /// One `# HELP` line per family that has a help text (`\\` and newline
    /// escaped), one `# TYPE` line per family, then its samples; no
    /// timestamps.
    ///
    /// - counter `x`: type `counter`, sample `x_total` (`x` itself if it
    ///   already ends in `_total`);
    /// - gauge `x`: type `gauge`, the current value (min/max are only in the
    ///   snapshot data);
    /// - histogram `x` (the default): type `summary`, `x{quantile="q"}` per
    ///   snapshot quantile (`NaN` when empty, as Prometheus clients do; a
    ///   quantile repeated in the snapshot is written once), `x_sum`,
    ///   `x_count`; rejected values are only in the snapshot data;
    /// - histogram `x` given classic buckets ([`Registry::set_buckets`](super::Registry::set_buckets)):
    ///   type `histogram`, cumulative `x_bucket{le="b"}` per bound and
    ///   `le="+Inf"`, `x_sum`, `x_count`;
    /// - rate `x`: type `gauge`, events per second over its window.
    ///
    /// Label values are escaped (`\\`, `\"`, `\n`); names and values were
    /// validated when the metrics were created (no `\r`, NUL or other line
    /// break), so every line parses.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.gauge("online", &[("room", "a\"b")])?.set(2);
    /// assert_eq!(
    ///     reg.snapshot().to_prometheus(),
    ///     "# TYPE online gauge\nonline{room=\"a\\\"b\"} 2\n"
    /// );
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        self.render(Format::Prometheus)
    }

    /// Renders the snapshot as OpenMetrics 1.0 text
    /// (`Content-Type: application/openmetrics-text; version=1.0.0`).
    ///
    /// The samples are those of [`to_prometheus`](Snapshot::to_prometheus);
    /// the differences are the format's: a counter's family is named
    /// without `_total` (its sample keeps it; a counter `x_total` beside a
    /// gauge, rate or histogram `x` is typed `unknown` under the name
    /// `x_total` instead, as one text cannot hold two families `x`),
    /// `# HELP` also escapes `"`, and the text ends with `# EOF`.
    ///
    /// # Examples
    ///
    /// ```
    /// let reg = ringstat::stats::Registry::new();
    /// reg.counter("logins", &[])?.inc();
    /// assert_eq!(
    ///     reg.snapshot().to_openmetrics(),
    ///     "# TYPE logins counter\nlogins_total 1\n# EOF\n"
    /// );
    /// # Ok::<(), ringstat::stats::StatsError>(())
    /// ```
    #[must_use]
    pub fn to_openmetrics(&self) -> String {
        self.render(Format::OpenMetrics)
    }

    /// Renders the snapshot in `format` (see [`to_prometheus`](Snapshot::to_prometheus)
    /// and [`to_openmetrics`](Snapshot::to_openmetrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{Format, Registry};
    ///
    /// let snap = Registry::new().snapshot();
    /// assert_eq!(snap.render(Format::OpenMetrics), "# EOF\n");
    /// assert_eq!(snap.render(Format::Prometheus), "");
    /// ```
    #[must_use]
    pub fn render(&self, format: Format) -> String {
        let om = format == Format::OpenMetrics;
        let mut out = String::new();
        let mut family: Option<&str> = None;
        // OpenMetrics names a counter `x_total`'s family `x`; where a gauge
        // is called `x` too, the counter is typed `unknown` under its own name.
        let others: HashSet<&str> = if om {
            self.metrics
                .iter()
                .filter(|m| m.kind() != MetricKind::Counter)
                .map(|m| m.name.as_str())
                .collect()
        } else {
            HashSet::new()
        };
        for m in &self.metrics {
            let name = m.name.as_str();
            let kind = m.kind();
            let sample = match kind {
                MetricKind::Counter => counter_name(name),
                _ => name.to_owned(),
            };
            if family != Some(name) {
                family = Some(name);
                let base = sample.strip_suffix("_total").unwrap_or(name);
                let clash = om && kind == MetricKind::Counter && others.contains(base);
                let ty = match &m.value {
                    MetricValue::Counter(_) if clash => "unknown",
                    MetricValue::Counter(_) => "counter",
                    MetricValue::Gauge { .. } | MetricValue::Rate { .. } => "gauge",
                    MetricValue::Histogram { buckets: None, .. } => "summary",
                    MetricValue::Histogram {
                        buckets: Some(_), ..
                    } => "histogram",
                };
                // OpenMetrics names a counter's family without `_total`.
                let fam = match kind {
                    MetricKind::Counter if om && !clash => base,
                    _ => sample.as_str(),
                };
                if let Some(help) = &m.help {
                    let _ = write!(out, "# HELP {fam} ");
                    escape_help(help, om, &mut out);
                    out.push('\n');
                }
                let _ = writeln!(out, "# TYPE {fam} {ty}");
            }
            match &m.value {
                MetricValue::Counter(v) => line(&mut out, &sample, &m.labels, None, &v.to_string()),
                MetricValue::Gauge { value, .. } => {
                    line(&mut out, &sample, &m.labels, None, &value.to_string());
                }
                MetricValue::Rate { per_second, .. } => {
                    line(&mut out, &sample, &m.labels, None, &float(*per_second));
                }
                MetricValue::Histogram {
                    count,
                    sum,
                    quantiles,
                    unit,
                    buckets,
                    ..
                } => {
                    if let Some(buckets) = buckets {
                        let bucket = format!("{name}_bucket");
                        for (le, c) in buckets {
                            let le = float(*le);
                            line(
                                &mut out,
                                &bucket,
                                &m.labels,
                                Some(("le", &le)),
                                &c.to_string(),
                            );
                        }
                        let c = count.to_string();
                        line(&mut out, &bucket, &m.labels, Some(("le", "+Inf")), &c);
                    } else {
                        for (k, (q, v)) in quantiles.iter().enumerate() {
                            if quantiles[..k].iter().any(|(p, _)| p == q) {
                                continue;
                            }
                            // `+ 0.0` writes -0.0 as "0".
                            let q = float(*q + 0.0);
                            let v = match (v, unit) {
                                (None, _) => "NaN".to_owned(),
                                (Some(v), None) => v.to_string(),
                                (Some(v), Some(_)) => float(tick_value(*unit, *v)),
                            };
                            line(&mut out, &sample, &m.labels, Some(("quantile", &q)), &v);
                        }
                    }
                    line(
                        &mut out,
                        &format!("{name}_sum"),
                        &m.labels,
                        None,
                        &float(*sum),
                    );
                    line(
                        &mut out,
                        &format!("{name}_count"),
                        &m.labels,
                        None,
                        &count.to_string(),
                    );
                }
            }
        }
        if om {
            out.push_str("# EOF\n");
        }
        out
    }
}

fn line(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    write_labels(out, labels, extra);
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}
