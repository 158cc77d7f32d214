//! Versioned binary formats that travel between processes and machines
//! (cargo feature `wire`; no network, no new dependencies).
//!
//! # Event frames, version 1
//!
//! One broker message carries one frame: many events of one producer, with
//! the producer's id and a per-producer sequence number, so a consumer that
//! sees a frame twice (at-least-once delivery) can drop the duplicate.
//! Events name their metric through a table of names in the frame, so a
//! frame means the same thing to every pipeline that applies it.
//!
//! Integers are little-endian (`u64le`) or unsigned LEB128 varints (`var`,
//! at most 10 bytes, no bits beyond 64, minimal: no
//! trailing zero groups), so a frame has exactly one encoding.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 4 | magic | `b"RSEF"` (ringstat event frame) |
//! | 1 | version | [`FRAME_VERSION`] (1) |
//! | 1 | flags | 0 (reserved; any other value is refused) |
//! | 8 | producer | `u64le`: the producer's id |
//! | 8 | sequence | `u64le`: the frame's number in its producer's stream |
//! | var | name count | `n`, at most [`MAX_NAMES`] |
//! | var | event count | `m`, at most [`MAX_EVENTS`] |
//! | `n` x | name | `var` length (1..=[`MAX_NAME_LEN`]), then that many UTF-8 bytes |
//! | `m` x | event | `u8` op code, `var` name index (< `n`), `var` key, `var` value, `var` ts |
//!
//! Op codes: 1 count, 2 set, 3 gauge_add, 4 observe, 5 mark, 6 start,
//! 7 end, 8 seen (see [`Op`](crate::pipeline::Op)). Gauge values (`set`,
//! `gauge_add`) are `i64`s zigzag-encoded (`(v << 1) ^ (v >> 63)`) so small
//! negative numbers stay short; other values are the `u64` itself. `ts` is
//! nanoseconds as in [`Event::at`](crate::pipeline::Event::at) (0: when
//! applied). Nothing may follow the last event.
//!
//! A count of 1 with key 0 and ts 0 takes 5 bytes; a frame of one producer's
//! user-activity events (`login`, `online` start/end, `users` seen) about
//! 8-15 bytes per event.
//!
//! A shipper buffers its events in an [`EventBuffer`] (bounded, checked
//! events) and its publishing thread takes them as numbered frames.
//!
//! Frames also carry events between processes of one machine: a
//! [`FeedSender`] in each producer process puts frames into a
//! [`SharedQueue`](crate::queue::SharedQueue), and a [`Feed`] thread in the
//! aggregator applies them to its pipeline (Linux).
//!
//! Decoding never panics and never allocates more than the input can hold:
//! every count is checked against the bytes left before anything is
//! reserved. Errors name what was wrong and where ([`FrameError`]).
//!
//! # Registry states, version 1
//!
//! The full state of a [`Registry`](crate::stats::Registry)
//! ([`RegistryState`](crate::stats::RegistryState), from
//! [`Registry::export_state`](crate::stats::Registry::export_state)): what
//! a checkpoint stores and what instances ship to be merged
//! ([`Registry::merge_state`](crate::stats::Registry::merge_state); the
//! merge rules are in the [`RegistryState`](crate::stats::RegistryState) docs).
//! [`encode_state`], [`decode_state`]. Same integer encodings as frames;
//! `str` is a `var` byte length then UTF-8; `f64le` an IEEE double's bits.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 4 | magic | `b"RSRS"` (ringstat registry state) |
//! | 1 | version | [`STATE_VERSION`] (1) |
//! | 1 | flags | 0 (reserved) |
//! | var + | help | count, then `(str family, str text)` each |
//! | var + | buckets | count, then `(str family, var n, n x f64le bound)` each |
//! | var + | series | count, then each: `str name`, `var` label count, `(str name, str value)` each, `u8` kind, the value |
//!
//! Values by kind:
//!
//! - 1 counter: `var` value.
//! - 2 gauge: value, min, max, each a zigzag `var`.
//! - 3 histogram: `var` max, `u8` significant digits, `u8` 0 or 1 then
//!   `f64le` unit, `var` rejected, `u8` 0 or 1 then `var` min and `var` max,
//!   then sparse buckets.
//! - 4 rate: `var` window in ns, `var` buckets, `var` total, `var` age (ns
//!   since the rate was created), then sparse window buckets keyed by age
//!   in ticks (0: the tick of the export).
//!
//! Sparse buckets: `var n`, then `n` pairs `(var key delta, var count)`,
//! keys strictly ascending (the first key as is, each next as `key -
//! previous - 1`), counts above 0, keys below the histogram's bucket count
//! (at most [`MAX_STATE_HISTOGRAM_BUCKETS`]) or the rate's buckets (at most
//! [`MAX_STATE_RATE_BUCKETS`]). Nothing may follow the last series.
//! Decoding never panics and allocates at most about the input's size;
//! errors are [`StateError`]s.
//!
//! # Pipeline states, version 1
//!
//! A [`PipelineState`](crate::pipeline::PipelineState)
//! ([`Pipeline::export_state`](crate::pipeline::Pipeline::export_state)):
//! [`encode_pipeline_state`], [`decode_pipeline_state`]. Magic `b"RSPS"`,
//! then version, flags and a registry state's body as above, then:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | var + | distinct | count, then each: `str name`, `u8` precision (4..=16), `var` window ns, `var` buckets, `var` register count (exactly `2^precision`), the registers (one byte each) |
//! | var + | sessions | count, then each: `str name`, `var` max_ms, `u8` significant digits, `var` max_open + 1 (0: no limit), `var n`, `n` x (`var` key, `var` start ts) |

mod apply;
mod dedup;
#[cfg(all(target_os = "linux", not(ringstat_loom)))]
mod feed;
mod frame;
mod ship;
mod state;

pub use apply::{apply, ApplyError};
pub use dedup::Dedup;
#[cfg(all(target_os = "linux", not(ringstat_loom)))]
pub use feed::{Feed, FeedEnd, FeedError, FeedSender, FeedStats, FrameBatcher};
pub use frame::{
    peek_header, Frame, FrameBuilder, FrameError, Header, Record, FRAME_MAGIC, FRAME_VERSION,
    HEADER_LEN, MAX_EVENTS, MAX_NAMES, MAX_NAME_LEN,
};
pub use ship::{BufferMetrics, BufferedEvent, EventBuffer, Pushed, Refused, TakenFrame};
pub use state::{
    decode_pipeline_state, decode_state, encode_pipeline_state, encode_state, StateError,
    MAX_STATE_HISTOGRAM_BUCKETS, MAX_STATE_RATE_BUCKETS, PIPELINE_STATE_MAGIC, STATE_MAGIC,
    STATE_VERSION,
};
