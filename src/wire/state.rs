//! Registry states: [`encode_state`] and checked [`decode_state`] of a
//! [`RegistryState`] (format in the [module docs](super)).

use core::fmt;

use super::frame::{put_var, unzigzag, zigzag, FrameError, Reader};
use crate::pipeline::{
    DistinctConfig, DistinctState, PipelineState, SessionsConfig, SessionsState, MAX_PRECISION,
    MIN_PRECISION,
};
use crate::stats::{HistogramConfig, RateConfig, RegistryState, SeriesState, ValueState};

/// The first four bytes of every registry state.
pub const STATE_MAGIC: [u8; 4] = *b"RSRS";
/// The registry state format version this build writes and reads.
pub const STATE_VERSION: u8 = 1;
/// Most buckets a histogram in a state may have (its layout, from its
/// config): 2^21, 16 MiB of counts.
pub const MAX_STATE_HISTOGRAM_BUCKETS: u64 = 1 << 21;
/// Most window buckets a rate in a state may have.
pub const MAX_STATE_RATE_BUCKETS: u64 = 1 << 16;

const KIND_COUNTER: u8 = 1;
const KIND_GAUGE: u8 = 2;
const KIND_HISTOGRAM: u8 = 3;
const KIND_RATE: u8 = 4;

/// Why bytes are not a valid registry state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The input does not start with [`STATE_MAGIC`].
    Foreign {
        /// The first bytes found (up to 4).
        found: Vec<u8>,
    },
    /// A state of another format version.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// Reserved flag bits are set.
    UnknownFlags {
        /// The flags byte found.
        found: u8,
    },
    /// Truncated, a bad varint, a count past the bytes left, bad UTF-8 or
    /// trailing bytes (the low-level reader's error; its words say "frame").
    Malformed(FrameError),
    /// A field out of range, at `offset`.
    Invalid {
        /// Where the field starts.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Foreign { found } => write!(
                f,
                "not a ringstat registry state (starts with {found:02x?}, expected \"RSRS\")"
            ),
            Self::UnsupportedVersion { found } => write!(
                f,
                "unsupported registry state version {found} (this build reads version {STATE_VERSION})"
            ),
            Self::UnknownFlags { found } => {
                write!(f, "unknown registry state flags {found:#04x}")
            }
            // The reader's words name a frame; a state is not one.
            Self::Malformed(FrameError::Truncated { offset, field }) => write!(
                f,
                "malformed registry state: truncated: {field} at byte {offset} is missing"
            ),
            Self::Malformed(FrameError::Short {
                offset,
                field,
                count,
                left,
            }) => write!(
                f,
                "malformed registry state: truncated: {count} {field} declared at byte {offset} \
                 cannot fit in the {left} bytes left"
            ),
            Self::Malformed(e) => write!(f, "malformed registry state: {e}"),
            Self::Invalid { offset, reason } => {
                write!(f, "invalid registry state at byte {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for StateError {}

impl From<FrameError> for StateError {
    fn from(e: FrameError) -> Self {
        Self::Malformed(e)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_var(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Ascending `(key, count)` pairs as `n`, then `(key delta, count)`: the
/// first key as is, each next as `key - previous - 1`.
fn put_sparse(out: &mut Vec<u8>, pairs: &[(u64, u64)]) {
    put_var(out, pairs.len() as u64);
    let mut next = 0u64;
    for &(k, n) in pairs {
        put_var(out, k - next);
        put_var(out, n);
        next = k + 1;
    }
}

/// Encodes `state` (format in the [module docs](super)). Series are
/// written as given; a state from
/// [`Registry::export_state`](crate::stats::Registry::export_state) has
/// one encoding.
///
/// # Panics
///
/// If a histogram's or rate's `(key, count)` pairs are not strictly
/// ascending by key (an exported state always is).
///
/// # Examples
///
/// ```
/// use ringstat::stats::Registry;
/// use ringstat::wire::{decode_state, encode_state};
///
/// let reg = Registry::new();
/// reg.counter("logins", &[("region", "eu")])?.add(5);
/// let bytes = encode_state(&reg.export_state());
/// let back = Registry::from_state(&decode_state(&bytes)?)?;
/// assert_eq!(back.counter("logins", &[("region", "eu")])?.get(), 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn encode_state(state: &RegistryState) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 32 * state.series.len());
    out.extend_from_slice(&STATE_MAGIC);
    out.push(STATE_VERSION);
    out.push(0);
    put_registry(&mut out, state);
    out
}

/// The body of a registry state (after magic, version and flags).
fn put_registry(out: &mut Vec<u8>, state: &RegistryState) {
    put_var(out, state.help.len() as u64);
    for (name, text) in &state.help {
        put_str(out, name);
        put_str(out, text);
    }
    put_var(out, state.buckets.len() as u64);
    for (name, bounds) in &state.buckets {
        put_str(out, name);
        put_var(out, bounds.len() as u64);
        for b in bounds {
            out.extend_from_slice(&b.to_le_bytes());
        }
    }
    put_var(out, state.series.len() as u64);
    for s in &state.series {
        put_str(out, &s.name);
        put_var(out, s.labels.len() as u64);
        for (k, v) in &s.labels {
            put_str(out, k);
            put_str(out, v);
        }
        match &s.value {
            ValueState::Counter(v) => {
                out.push(KIND_COUNTER);
                put_var(out, *v);
            }
            ValueState::Gauge { value, min, max } => {
                out.push(KIND_GAUGE);
                for v in [value, min, max] {
                    put_var(out, zigzag(*v as u64));
                }
            }
            ValueState::Histogram {
                config,
                unit,
                counts,
                min,
                max,
                rejected,
            } => {
                assert!(
                    counts.windows(2).all(|w| w[0].0 < w[1].0),
                    "histogram buckets ascending"
                );
                out.push(KIND_HISTOGRAM);
                put_var(out, config.max);
                out.push(config.significant_digits);
                match unit {
                    None => out.push(0),
                    Some(u) => {
                        out.push(1);
                        out.extend_from_slice(&u.to_le_bytes());
                    }
                }
                put_var(out, *rejected);
                match (min, max) {
                    (Some(lo), Some(hi)) => {
                        out.push(1);
                        put_var(out, *lo);
                        put_var(out, *hi);
                    }
                    _ => out.push(0),
                }
                put_sparse(out, counts);
            }
            ValueState::Rate {
                config,
                total,
                age,
                window,
            } => {
                assert!(
                    window.windows(2).all(|w| w[0].0 < w[1].0),
                    "rate buckets ascending"
                );
                out.push(KIND_RATE);
                put_var(
                    out,
                    u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
                );
                put_var(out, config.buckets as u64);
                put_var(out, *total);
                put_var(out, *age);
                put_sparse(out, window);
            }
        }
    }
}

fn read_str(r: &mut Reader<'_>, field: &'static str) -> Result<String, StateError> {
    let n = r.count(field, usize::MAX, 1)?;
    let offset = r.pos;
    let b = r.bytes(n, field)?;
    String::from_utf8(b.to_vec()).map_err(|_| StateError::Invalid {
        offset,
        reason: format!("{field} is not UTF-8"),
    })
}

fn invalid(offset: usize, reason: impl Into<String>) -> StateError {
    StateError::Invalid {
        offset,
        reason: reason.into(),
    }
}

/// Reads `n` then `n` `(key delta, count)` pairs into ascending
/// `(key, count)` pairs, every key below `limit`, every count above 0.
fn read_sparse(
    r: &mut Reader<'_>,
    field: &'static str,
    limit: u64,
) -> Result<Vec<(u64, u64)>, StateError> {
    let n = r.count(field, usize::MAX, 2)?;
    let mut out = Vec::with_capacity(n);
    let mut next = 0u64;
    for _ in 0..n {
        let offset = r.pos;
        let key = next
            .checked_add(r.var(field)?)
            .filter(|&k| k < limit)
            .ok_or_else(|| invalid(offset, format!("{field} index past {limit}")))?;
        let offset = r.pos;
        let count = r.var(field)?;
        if count == 0 {
            return Err(invalid(
                offset,
                format!("{field}: an empty bucket is not listed"),
            ));
        }
        out.push((key, count));
        next = key + 1;
    }
    Ok(out)
}

/// Decodes a registry state, checking every count against the bytes left
/// before anything is reserved, so no input panics or allocates more than
/// about its own size (beyond what the decoded state then asks of a
/// registry: histograms of at most [`MAX_STATE_HISTOGRAM_BUCKETS`], rates
/// of at most [`MAX_STATE_RATE_BUCKETS`]). Names and configs are checked
/// again when the state is merged.
///
/// # Errors
///
/// [`StateError`] naming what was wrong and where.
///
/// # Examples
///
/// ```
/// use ringstat::wire::{decode_state, StateError};
/// assert!(matches!(decode_state(b"RSEF"), Err(StateError::Foreign { .. })));
/// ```
pub fn decode_state(bytes: &[u8]) -> Result<RegistryState, StateError> {
    let mut r = read_header(bytes, STATE_MAGIC)?;
    let state = read_registry(&mut r)?;
    end(&r)?;
    Ok(state)
}

/// A reader past magic (`magic`), version and flags, all checked.
fn read_header(bytes: &[u8], magic: [u8; 4]) -> Result<Reader<'_>, StateError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if bytes.len() < 4 || bytes[..4] != magic {
        return Err(StateError::Foreign {
            found: bytes[..bytes.len().min(4)].to_vec(),
        });
    }
    r.pos = 4;
    let version = r.u8("version")?;
    if version != STATE_VERSION {
        return Err(StateError::UnsupportedVersion { found: version });
    }
    let flags = r.u8("flags")?;
    if flags != 0 {
        return Err(StateError::UnknownFlags { found: flags });
    }
    Ok(r)
}

/// Refuses bytes after the end.
fn end(r: &Reader<'_>) -> Result<(), StateError> {
    if r.left() != 0 {
        return Err(invalid(
            r.pos,
            format!("{} unexpected bytes after the end", r.left()),
        ));
    }
    Ok(())
}

/// The body of a registry state.
fn read_registry(r: &mut Reader<'_>) -> Result<RegistryState, StateError> {
    let n = r.count("help entries", usize::MAX, 3)?;
    let mut help = Vec::with_capacity(n);
    for _ in 0..n {
        help.push((read_str(r, "help name")?, read_str(r, "help text")?));
    }
    let n = r.count("bucket families", usize::MAX, 2)?;
    let mut buckets = Vec::with_capacity(n);
    for _ in 0..n {
        let name = read_str(r, "bucket family name")?;
        let m = r.count("bucket bounds", usize::MAX, 8)?;
        let mut bounds = Vec::with_capacity(m);
        for _ in 0..m {
            bounds.push(f64::from_bits(r.u64le("bucket bound")?));
        }
        buckets.push((name, bounds));
    }
    let n = r.count("series", usize::MAX, 4)?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        let name = read_str(r, "series name")?;
        let m = r.count("labels", usize::MAX, 2)?;
        let mut labels = Vec::with_capacity(m);
        for _ in 0..m {
            labels.push((read_str(r, "label name")?, read_str(r, "label value")?));
        }
        let offset = r.pos;
        let value = match r.u8("kind")? {
            KIND_COUNTER => ValueState::Counter(r.var("counter value")?),
            KIND_GAUGE => {
                let mut v = [0i64; 3];
                for x in &mut v {
                    *x = unzigzag(r.var("gauge value")?) as i64;
                }
                ValueState::Gauge {
                    value: v[0],
                    min: v[1],
                    max: v[2],
                }
            }
            KIND_HISTOGRAM => read_histogram(r)?,
            KIND_RATE => read_rate(r)?,
            k => return Err(invalid(offset, format!("unknown metric kind {k}"))),
        };
        series.push(SeriesState {
            name,
            labels,
            value,
        });
    }
    Ok(RegistryState {
        help,
        buckets,
        series,
    })
}

fn read_histogram(r: &mut Reader<'_>) -> Result<ValueState, StateError> {
    let offset = r.pos;
    let max = r.var("histogram max")?;
    let significant_digits = r.u8("histogram digits")?;
    let config = HistogramConfig {
        max,
        significant_digits,
    };
    let n = crate::stats::Histogram::buckets_for(config)
        .map_err(|e| invalid(offset, e.to_string()))? as u64;
    if n > MAX_STATE_HISTOGRAM_BUCKETS {
        return Err(invalid(
            offset,
            format!("histogram of {n} buckets (at most {MAX_STATE_HISTOGRAM_BUCKETS})"),
        ));
    }
    let offset = r.pos;
    let unit = match r.u8("histogram unit flag")? {
        0 => None,
        1 => {
            let off = r.pos;
            let u = f64::from_bits(r.u64le("histogram unit")?);
            if !(u.is_finite() && u > 0.0) {
                return Err(invalid(off, format!("histogram unit {u}")));
            }
            Some(u)
        }
        f => return Err(invalid(offset, format!("histogram unit flag {f}"))),
    };
    let rejected = r.var("histogram rejected")?;
    let offset = r.pos;
    let (min, max) = match r.u8("histogram min/max flag")? {
        0 => (None, None),
        1 => (
            Some(r.var("histogram min")?),
            Some(r.var("histogram max value")?),
        ),
        f => return Err(invalid(offset, format!("histogram min/max flag {f}"))),
    };
    let counts = read_sparse(r, "histogram bucket", n)?;
    Ok(ValueState::Histogram {
        config,
        unit,
        counts,
        min,
        max,
        rejected,
    })
}

fn read_rate(r: &mut Reader<'_>) -> Result<ValueState, StateError> {
    let window = std::time::Duration::from_nanos(r.var("rate window")?);
    let offset = r.pos;
    let buckets = r.var("rate buckets")?;
    if buckets == 0 || buckets > MAX_STATE_RATE_BUCKETS {
        return Err(invalid(
            offset,
            format!("rate of {buckets} buckets (1..={MAX_STATE_RATE_BUCKETS})"),
        ));
    }
    let total = r.var("rate total")?;
    let age = r.var("rate age")?;
    let window_counts = read_sparse(r, "rate bucket", buckets)?;
    Ok(ValueState::Rate {
        config: RateConfig {
            window,
            buckets: buckets as usize,
        },
        total,
        age,
        window: window_counts,
    })
}

/// The first four bytes of every pipeline state.
pub const PIPELINE_STATE_MAGIC: [u8; 4] = *b"RSPS";

/// Encodes a pipeline state: [`PIPELINE_STATE_MAGIC`], version, flags,
/// the registry state's body, then the distinct counters and the session
/// trackers (format in the [module docs](super)).
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Event, Pipeline};
/// use ringstat::wire::{decode_pipeline_state, encode_pipeline_state};
///
/// let p = Pipeline::new(&ringstat::Registry::new())?;
/// p.send(Event::seen(p.distinct("users")?, 42))?;
/// let bytes = encode_pipeline_state(&p.export_state()?);
/// let state = decode_pipeline_state(&bytes)?;
/// assert_eq!(state.distinct[0].name, "users");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn encode_pipeline_state(state: &PipelineState) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 32 * state.registry.series.len());
    out.extend_from_slice(&PIPELINE_STATE_MAGIC);
    out.push(STATE_VERSION);
    out.push(0);
    put_registry(&mut out, &state.registry);
    put_var(&mut out, state.distinct.len() as u64);
    for d in &state.distinct {
        put_str(&mut out, &d.name);
        out.push(d.config.precision);
        put_var(
            &mut out,
            u64::try_from(d.config.window.as_nanos()).unwrap_or(u64::MAX),
        );
        put_var(&mut out, d.config.buckets as u64);
        put_var(&mut out, d.registers.len() as u64);
        out.extend_from_slice(&d.registers);
    }
    put_var(&mut out, state.sessions.len() as u64);
    for s in &state.sessions {
        put_str(&mut out, &s.name);
        put_var(&mut out, s.config.max_ms);
        out.push(s.config.significant_digits);
        put_var(&mut out, s.config.max_open.map_or(0, |n| n as u64 + 1));
        put_var(&mut out, s.open.len() as u64);
        for &(key, ts) in &s.open {
            put_var(&mut out, key);
            put_var(&mut out, ts);
        }
    }
    out
}

/// Decodes a pipeline state with the guarantees of [`decode_state`]
/// (registers of a distinct counter: exactly `2^precision` bytes,
/// precision `4..=16`).
///
/// # Errors
///
/// [`StateError`] naming what was wrong and where.
pub fn decode_pipeline_state(bytes: &[u8]) -> Result<PipelineState, StateError> {
    let mut r = read_header(bytes, PIPELINE_STATE_MAGIC)?;
    let registry = read_registry(&mut r)?;
    let n = r.count("distinct counters", usize::MAX, 5)?;
    let mut distinct = Vec::with_capacity(n);
    for _ in 0..n {
        let name = read_str(&mut r, "distinct name")?;
        let offset = r.pos;
        let precision = r.u8("distinct precision")?;
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
            return Err(invalid(offset, format!("distinct precision {precision}")));
        }
        let window = std::time::Duration::from_nanos(r.var("distinct window")?);
        let offset = r.pos;
        let buckets = r.var("distinct buckets")?;
        if buckets == 0 || buckets > MAX_STATE_RATE_BUCKETS {
            return Err(invalid(
                offset,
                format!("distinct window of {buckets} buckets (1..={MAX_STATE_RATE_BUCKETS})"),
            ));
        }
        let offset = r.pos;
        let len = r.count("distinct registers", usize::MAX, 1)?;
        if len != 1 << precision {
            return Err(invalid(
                offset,
                format!("{len} registers for precision {precision}"),
            ));
        }
        let offset = r.pos;
        let registers = r.bytes(len, "distinct registers")?.to_vec();
        // A register holds 1 + leading zeros of `64 - p` bits: at most `65 - p`.
        if let Some(i) = registers.iter().position(|&v| v > 65 - precision) {
            return Err(invalid(
                offset + i,
                format!("register value {}", registers[i]),
            ));
        }
        distinct.push(DistinctState {
            name,
            config: DistinctConfig {
                precision,
                window,
                buckets: buckets as usize,
            },
            registers,
        });
    }
    let n = r.count("session trackers", usize::MAX, 5)?;
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let name = read_str(&mut r, "sessions name")?;
        let max_ms = r.var("sessions max_ms")?;
        let significant_digits = r.u8("sessions digits")?;
        let offset = r.pos;
        let max_open = match r.var("sessions max_open")? {
            0 => None,
            n => Some(
                usize::try_from(n - 1)
                    .map_err(|_| invalid(offset, format!("max_open {}", n - 1)))?,
            ),
        };
        let m = r.count("open sessions", usize::MAX, 2)?;
        let mut open = Vec::with_capacity(m);
        for _ in 0..m {
            open.push((r.var("session key")?, r.var("session start")?));
        }
        sessions.push(SessionsState {
            name,
            config: SessionsConfig {
                max_ms,
                significant_digits,
                max_open,
            },
            open,
        });
    }
    end(&r)?;
    Ok(PipelineState {
        registry,
        distinct,
        sessions,
    })
}
