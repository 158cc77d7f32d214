//! Event frames: [`Frame`], [`FrameBuilder`], encoding and checked decoding.

use core::fmt;
use std::collections::HashMap;

use crate::pipeline::Op;

/// The first four bytes of every event frame.
pub const FRAME_MAGIC: [u8; 4] = *b"RSEF";
/// The frame format version this build writes and reads.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the name and event counts: magic, version, flags,
/// producer, sequence.
pub const HEADER_LEN: usize = 22;
/// Most names one frame may carry.
pub const MAX_NAMES: usize = 65_536;
/// Most events one frame may carry.
pub const MAX_EVENTS: usize = 1 << 24;
/// Longest metric name in a frame, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Smallest encoded event: an op byte and four one-byte varints.
const MIN_EVENT_LEN: usize = 5;

/// Why bytes are not a valid frame, or a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The input ends before the field that starts at `offset`.
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// What was being read.
        field: &'static str,
    },
    /// A count declares more items than the bytes left can hold: the
    /// frame was cut short.
    Short {
        /// Where the count starts.
        offset: usize,
        /// What it counts.
        field: &'static str,
        /// The count found.
        count: u64,
        /// The bytes left after it.
        left: usize,
    },
    /// The input does not start with [`FRAME_MAGIC`]: not a ringstat frame.
    Foreign {
        /// The first bytes found (up to 4).
        found: Vec<u8>,
    },
    /// A frame of another format version.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// Reserved flag bits are set.
    UnknownFlags {
        /// The flags byte found.
        found: u8,
    },
    /// A varint longer than 10 bytes, beyond `u64`, or not minimal.
    BadVarint {
        /// Where it starts.
        offset: usize,
    },
    /// A count or length out of range, or larger than the bytes left.
    BadCount {
        /// Where it starts.
        offset: usize,
        /// What it counts.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A name that is not UTF-8.
    BadName {
        /// Where the name's bytes start.
        offset: usize,
    },
    /// An unknown op code.
    BadOp {
        /// Where it is.
        offset: usize,
        /// The code found.
        code: u8,
    },
    /// An event names an index past the name table.
    BadNameIndex {
        /// Where it is.
        offset: usize,
        /// The index found.
        index: u64,
        /// The size of the name table.
        names: usize,
    },
    /// Bytes follow the last event.
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
    /// Encoding: an op that does not travel (an internal marker).
    UnencodableOp,
    /// Encoding: too many names, too many events, or a name of bad length.
    TooLarge {
        /// What overflowed.
        field: &'static str,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset, field } => {
                write!(f, "truncated frame: {field} at byte {offset} is missing")
            }
            Self::Short {
                offset,
                field,
                count,
                left,
            } => write!(
                f,
                "truncated frame: {count} {field} declared at byte {offset} cannot fit in the \
                 {left} bytes left"
            ),
            Self::Foreign { found } => {
                write!(
                    f,
                    "not a ringstat event frame (starts with {found:02x?}, expected \"RSEF\")"
                )
            }
            Self::UnsupportedVersion { found } => write!(
                f,
                "unsupported frame version {found} (this build reads version {FRAME_VERSION})"
            ),
            Self::UnknownFlags { found } => write!(f, "unknown frame flags {found:#04x}"),
            Self::BadVarint { offset } => write!(f, "bad varint at byte {offset}"),
            Self::BadCount {
                offset,
                field,
                value,
            } => {
                write!(
                    f,
                    "bad {field} {value} at byte {offset} (out of range for the frame)"
                )
            }
            Self::BadName { offset } => write!(f, "metric name at byte {offset} is not UTF-8"),
            Self::BadOp { offset, code } => write!(f, "unknown op code {code} at byte {offset}"),
            Self::BadNameIndex {
                offset,
                index,
                names,
            } => write!(
                f,
                "name index {index} at byte {offset} is past the frame's {names} names"
            ),
            Self::TrailingBytes { offset, len } => {
                write!(
                    f,
                    "{len} unexpected bytes after the last event at byte {offset}"
                )
            }
            Self::UnencodableOp => f.write_str("this op is internal and does not travel"),
            Self::TooLarge { field } => write!(f, "frame too large: {field}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One event of a frame: like [`Event`](crate::pipeline::Event), but its
/// metric is an index into the frame's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Record {
    /// The operation (never the internal flush marker).
    pub op: Op,
    /// Index of the metric's name in [`Frame::names`].
    pub name: u32,
    /// The entity the event is about (0 if none).
    pub key: u64,
    /// The value: `u64`, or an `i64`'s bits for gauges.
    pub value: u64,
    /// Nanoseconds (0: when applied).
    pub ts: u64,
}

/// The fixed header of a frame, readable without decoding the events
/// ([`peek_header`]): enough for a consumer to drop a duplicate cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The producer's id.
    pub producer: u64,
    /// The frame's sequence number in its producer's stream.
    pub sequence: u64,
}

/// A decoded (or to-be-encoded) event frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The producer's id.
    pub producer: u64,
    /// The frame's sequence number in its producer's stream.
    pub sequence: u64,
    /// The metric names the records point into.
    pub names: Vec<String>,
    /// The events, in the producer's order.
    pub records: Vec<Record>,
}

pub(super) fn op_code(op: Op) -> Option<u8> {
    Some(match op {
        Op::Count => 1,
        Op::Set => 2,
        Op::GaugeAdd => 3,
        Op::Observe => 4,
        Op::Mark => 5,
        Op::Start => 6,
        Op::End => 7,
        Op::Seen => 8,
        Op::Flush => return None,
    })
}

fn op_of(code: u8) -> Option<Op> {
    Some(match code {
        1 => Op::Count,
        2 => Op::Set,
        3 => Op::GaugeAdd,
        4 => Op::Observe,
        5 => Op::Mark,
        6 => Op::Start,
        7 => Op::End,
        8 => Op::Seen,
        _ => return None,
    })
}

fn is_gauge(op: Op) -> bool {
    matches!(op, Op::Set | Op::GaugeAdd)
}

pub(super) fn zigzag(v: u64) -> u64 {
    let v = v as i64;
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(z: u64) -> u64 {
    ((z >> 1) as i64 ^ -((z & 1) as i64)) as u64
}

/// Bytes of `v` as a varint.
fn var_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(super) fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over the input.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        if self.left() < n {
            return Err(FrameError::Truncated {
                offset: self.pos,
                field,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub(super) fn u64le(&mut self, field: &'static str) -> Result<u64, FrameError> {
        let b = self.bytes(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(super) fn var(&mut self, field: &'static str) -> Result<u64, FrameError> {
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(field)?;
            // The tenth byte holds bit 63 only.
            if i == 9 && b > 1 {
                return Err(FrameError::BadVarint { offset: start });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // Minimal encodings only, so every frame has one byte form.
                if i > 0 && b == 0 {
                    return Err(FrameError::BadVarint { offset: start });
                }
                return Ok(v);
            }
        }
        Err(FrameError::BadVarint { offset: start })
    }

    /// A count at most `max` and at most the bytes left divided by `each`.
    pub(super) fn count(
        &mut self,
        field: &'static str,
        max: usize,
        each: usize,
    ) -> Result<usize, FrameError> {
        let offset = self.pos;
        let value = self.var(field)?;
        match usize::try_from(value) {
            Ok(n) if n <= max && n <= self.left() / each => Ok(n),
            Ok(n) if n <= max => Err(FrameError::Short {
                offset,
                field,
                count: value,
                left: self.left(),
            }),
            _ => Err(FrameError::BadCount {
                offset,
                field,
                value,
            }),
        }
    }
}

/// Reads the producer and sequence of a frame without decoding the rest
/// (magic, version and flags are checked).
///
/// # Errors
///
/// [`FrameError::Foreign`], [`FrameError::UnsupportedVersion`],
/// [`FrameError::UnknownFlags`] or [`FrameError::Truncated`].
///
/// # Examples
///
/// ```
/// use ringstat::wire::{peek_header, Frame};
/// let bytes = Frame { producer: 7, sequence: 3, ..Frame::default() }.encode()?;
/// let h = peek_header(&bytes)?;
/// assert_eq!((h.producer, h.sequence), (7, 3));
/// assert!(peek_header(b"GET / HTTP/1.1").is_err());
/// # Ok::<(), ringstat::wire::FrameError>(())
/// ```
pub fn peek_header(bytes: &[u8]) -> Result<Header, FrameError> {
    read_header(&mut Reader { buf: bytes, pos: 0 })
}

fn read_header(r: &mut Reader<'_>) -> Result<Header, FrameError> {
    let head = &r.buf[..r.buf.len().min(4)];
    if head != &FRAME_MAGIC[..head.len()] || head.is_empty() {
        return Err(FrameError::Foreign {
            found: head.to_vec(),
        });
    }
    r.bytes(4, "magic")?;
    let version = r.u8("version")?;
    if version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion { found: version });
    }
    let flags = r.u8("flags")?;
    if flags != 0 {
        return Err(FrameError::UnknownFlags { found: flags });
    }
    let producer = r.u64le("producer")?;
    let sequence = r.u64le("sequence")?;
    Ok(Header { producer, sequence })
}

impl Frame {
    /// The frame's header.
    #[must_use]
    pub fn header(&self) -> Header {
        Header {
            producer: self.producer,
            sequence: self.sequence,
        }
    }

    /// Encodes the frame (format in the [module docs](super)).
    ///
    /// # Errors
    ///
    /// [`FrameError::UnencodableOp`] for the internal flush marker,
    /// [`FrameError::TooLarge`] past [`MAX_NAMES`], [`MAX_EVENTS`] or a
    /// name that is empty or longer than [`MAX_NAME_LEN`],
    /// [`FrameError::BadNameIndex`] for a record past the names.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::Op;
    /// use ringstat::wire::{Frame, FrameBuilder};
    ///
    /// let mut b = FrameBuilder::new();
    /// b.push(Op::Count, "logins", 0, 1, 0)?;
    /// b.push(Op::Start, "online", 42, 0, 1_000)?;
    /// let frame = b.finish(9, 0);
    /// let bytes = frame.encode()?;
    /// assert_eq!(Frame::decode(&bytes)?, frame);
    /// # Ok::<(), ringstat::wire::FrameError>(())
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 + self.records.len() * 8);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// As [`encode`](Frame::encode), appending to `out` (left as it was on
    /// error).
    ///
    /// # Errors
    ///
    /// As [`encode`](Frame::encode).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut out = Vec::new();
    /// ringstat::wire::Frame::default().encode_into(&mut out)?;
    /// assert_eq!(&out[..4], b"RSEF");
    /// # Ok::<(), ringstat::wire::FrameError>(())
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        if self.names.len() > MAX_NAMES {
            return Err(FrameError::TooLarge { field: "names" });
        }
        if self.records.len() > MAX_EVENTS {
            return Err(FrameError::TooLarge { field: "events" });
        }
        if self
            .names
            .iter()
            .any(|n| n.is_empty() || n.len() > MAX_NAME_LEN)
        {
            return Err(FrameError::TooLarge {
                field: "name length",
            });
        }
        let start = out.len();
        out.extend_from_slice(&FRAME_MAGIC);
        out.push(FRAME_VERSION);
        out.push(0);
        out.extend_from_slice(&self.producer.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        put_var(out, self.names.len() as u64);
        put_var(out, self.records.len() as u64);
        for n in &self.names {
            put_var(out, n.len() as u64);
            out.extend_from_slice(n.as_bytes());
        }
        for (i, r) in self.records.iter().enumerate() {
            let (Some(code), true) = (op_code(r.op), (r.name as usize) < self.names.len()) else {
                out.truncate(start);
                return Err(match op_code(r.op) {
                    None => FrameError::UnencodableOp,
                    Some(_) => FrameError::BadNameIndex {
                        offset: i,
                        index: u64::from(r.name),
                        names: self.names.len(),
                    },
                });
            };
            out.push(code);
            put_var(out, u64::from(r.name));
            put_var(out, r.key);
            put_var(
                out,
                if is_gauge(r.op) {
                    zigzag(r.value)
                } else {
                    r.value
                },
            );
            put_var(out, r.ts);
        }
        Ok(())
    }

    /// Decodes a frame, checking every field (see [`FrameError`]); never
    /// panics, whatever the bytes.
    ///
    /// # Errors
    ///
    /// Any [`FrameError`] but the encoding-only ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::wire::{Frame, FrameError};
    /// let bytes = Frame { producer: 1, sequence: 2, ..Frame::default() }.encode()?;
    /// assert_eq!(Frame::decode(&bytes)?.sequence, 2);
    /// assert!(matches!(
    ///     Frame::decode(&bytes[..10]),
    ///     Err(FrameError::Truncated { .. })
    /// ));
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let Header { producer, sequence } = read_header(&mut r)?;
        let n_names = r.count("names", MAX_NAMES, 2)?;
        let n_events = r.count("events", MAX_EVENTS, MIN_EVENT_LEN)?;
        let mut names = Vec::with_capacity(n_names);
        for _ in 0..n_names {
            let len_at = r.pos;
            let len = r.var("name length")?;
            if len == 0 || len > MAX_NAME_LEN as u64 {
                return Err(FrameError::BadCount {
                    offset: len_at,
                    field: "name length",
                    value: len,
                });
            }
            let at = r.pos;
            let b = r.bytes(len as usize, "name")?;
            let s = core::str::from_utf8(b).map_err(|_| FrameError::BadName { offset: at })?;
            names.push(s.to_owned());
        }
        if n_events > r.left() / MIN_EVENT_LEN {
            return Err(FrameError::Short {
                offset: r.pos,
                field: "events",
                count: n_events as u64,
                left: r.left(),
            });
        }
        let mut records = Vec::with_capacity(n_events);
        for _ in 0..n_events {
            let at = r.pos;
            let code = r.u8("op")?;
            let op = op_of(code).ok_or(FrameError::BadOp { offset: at, code })?;
            let idx_at = r.pos;
            let index = r.var("name index")?;
            if index >= names.len() as u64 {
                return Err(FrameError::BadNameIndex {
                    offset: idx_at,
                    index,
                    names: names.len(),
                });
            }
            let key = r.var("key")?;
            let raw = r.var("value")?;
            let ts = r.var("ts")?;
            records.push(Record {
                op,
                name: index as u32,
                key,
                value: if is_gauge(op) { unzigzag(raw) } else { raw },
                ts,
            });
        }
        if r.left() != 0 {
            return Err(FrameError::TrailingBytes {
                offset: r.pos,
                len: r.left(),
            });
        }
        Ok(Self {
            producer,
            sequence,
            names,
            records,
        })
    }
}

/// Builds a [`Frame`] event by event, interning metric names.
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::Op;
/// let mut b = ringstat::wire::FrameBuilder::new();
/// for user in 0..3 {
///     b.push(Op::Seen, "users", user, 0, 0)?;
/// }
/// assert_eq!(b.len(), 3);
/// let f = b.finish(1, 0);
/// assert_eq!(f.names, ["users"]);
/// # Ok::<(), ringstat::wire::FrameError>(())
/// ```
#[derive(Debug, Default)]
pub struct FrameBuilder {
    index: HashMap<String, u32>,
    frame: Frame,
    /// Encoded bytes of the names and records (everything after the counts).
    body: usize,
}

impl FrameBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of events pushed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.frame.records.len()
    }

    /// `true` before the first push.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.frame.records.is_empty()
    }

    /// Appends one event on the metric `name`.
    ///
    /// # Errors
    ///
    /// [`FrameError::UnencodableOp`], [`FrameError::TooLarge`] (an empty or
    /// too long name, too many names or events); nothing is appended then.
    pub fn push(
        &mut self,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> Result<(), FrameError> {
        self.push_within(usize::MAX, op, name, key, value, ts)
            .map(|_| ())
    }

    /// The length of [`finish`](Self::finish)`(..).encode()` now.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::Op;
    /// let mut b = ringstat::wire::FrameBuilder::new();
    /// b.push(Op::Count, "logins", 0, 1, 0)?;
    /// let n = b.encoded_len();
    /// assert_eq!(b.finish(1, 2).encode()?.len(), n);
    /// # Ok::<(), ringstat::wire::FrameError>(())
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + var_len(self.frame.names.len() as u64)
            + var_len(self.frame.records.len() as u64)
            + self.body
    }

    /// As [`push`](Self::push), but only if the encoded frame stays within
    /// `limit` bytes: `Ok(false)` (nothing appended) if it would not.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::Op;
    /// let mut b = ringstat::wire::FrameBuilder::new();
    /// let mut n = 0;
    /// while b.push_within(64, Op::Count, "logins", 0, 1, 0)? {
    ///     n += 1;
    /// }
    /// assert!(n > 0 && b.encoded_len() <= 64);
    /// # Ok::<(), ringstat::wire::FrameError>(())
    /// ```
    pub fn push_within(
        &mut self,
        limit: usize,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> Result<bool, FrameError> {
        if op_code(op).is_none() {
            return Err(FrameError::UnencodableOp);
        }
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(FrameError::TooLarge {
                field: "name length",
            });
        }
        if self.frame.records.len() >= MAX_EVENTS {
            return Err(FrameError::TooLarge { field: "events" });
        }
        let known = self.index.get(name).copied();
        if known.is_none() && self.frame.names.len() >= MAX_NAMES {
            return Err(FrameError::TooLarge { field: "names" });
        }
        let names = self.frame.names.len();
        let idx = known.unwrap_or(names as u32);
        let wire_value = if is_gauge(op) { zigzag(value) } else { value };
        let mut added = 1 + var_len(u64::from(idx)) + var_len(key) + var_len(wire_value);
        added += var_len(ts);
        let new_names = names + usize::from(known.is_none());
        if known.is_none() {
            added += var_len(name.len() as u64) + name.len();
        }
        let len = HEADER_LEN
            + var_len(new_names as u64)
            + var_len(self.frame.records.len() as u64 + 1)
            + self.body
            + added;
        if len > limit {
            return Ok(false);
        }
        if known.is_none() {
            self.frame.names.push(name.to_owned());
            self.index.insert(name.to_owned(), idx);
        }
        self.body += added;
        self.frame.records.push(Record {
            op,
            name: idx,
            key,
            value,
            ts,
        });
        Ok(true)
    }

    /// The frame of the events pushed, with its producer and sequence; the
    /// builder is empty again.
    pub fn finish(&mut self, producer: u64, sequence: u64) -> Frame {
        self.index.clear();
        self.body = 0;
        let mut f = core::mem::take(&mut self.frame);
        f.producer = producer;
        f.sequence = sequence;
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_is_exact_and_limits_hold() {
        let ops = [Op::Count, Op::Set, Op::GaugeAdd, Op::Start, Op::Seen];
        let mut b = FrameBuilder::new();
        // Past 127 names and 16_383 events, where the counts grow a byte.
        for i in 0u64..17_000 {
            let name = format!("m{}", i % 300);
            let value = if i % 7 == 0 {
                (-(i as i64)) as u64
            } else {
                i << (i % 50)
            };
            b.push(
                ops[i as usize % ops.len()],
                &name,
                i * 31,
                value,
                (i % 3) * (u64::MAX / 2),
            )
            .unwrap();
            if i % 997 == 0 || i == 127 || i == 128 || i == 16_383 || i == 16_384 {
                let n = b.encoded_len();
                let mut copy = FrameBuilder::new();
                copy.frame = b.frame.clone();
                assert_eq!(copy.finish(1, 2).encode().unwrap().len(), n, "at {i}");
            }
        }
        for limit in [HEADER_LEN + 2, 40, 100, 1000] {
            let mut b = FrameBuilder::new();
            let mut i = 0u64;
            while b
                .push_within(limit, Op::Seen, &format!("n{}", i % 5), i << 20, 0, i)
                .unwrap()
            {
                i += 1;
            }
            let n = b.encoded_len();
            assert!(n <= limit);
            assert_eq!(b.finish(0, 0).encode().unwrap().len(), n);
        }
    }

    #[test]
    fn varints_and_zigzag() {
        for v in [0, 1, 127, 128, 300, u64::MAX / 3, u64::MAX] {
            let mut out = Vec::new();
            put_var(&mut out, v);
            let mut r = Reader { buf: &out, pos: 0 };
            assert_eq!(r.var("v"), Ok(v));
            assert_eq!(r.left(), 0);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v as u64)) as i64, v);
        }
        assert_eq!(zigzag(-1i64 as u64), 1);
        // 11 continuation bytes, or a tenth byte with more than bit 63.
        let mut r = Reader {
            buf: &[0xff; 11],
            pos: 0,
        };
        assert_eq!(r.var("v"), Err(FrameError::BadVarint { offset: 0 }));
        let mut bad = vec![0xff; 9];
        bad.push(2);
        let mut r = Reader { buf: &bad, pos: 0 };
        assert_eq!(r.var("v"), Err(FrameError::BadVarint { offset: 0 }));
        // 0 written in two bytes is not minimal.
        let mut r = Reader {
            buf: &[0x80, 0x00],
            pos: 0,
        };
        assert_eq!(r.var("v"), Err(FrameError::BadVarint { offset: 0 }));
    }
}
