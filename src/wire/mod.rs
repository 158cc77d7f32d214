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
//! Frames also carry events between processes of one machine: a
//! [`FeedSender`] in each producer process puts frames into a
//! [`SharedQueue`](crate::queue::SharedQueue), and a [`Feed`] thread in the
//! aggregator applies them to its pipeline (Linux).
//!
//! Decoding never panics and never allocates more than the input can hold:
//! every count is checked against the bytes left before anything is
//! reserved. Errors name what was wrong and where ([`FrameError`]).

mod apply;
#[cfg(all(target_os = "linux", not(ringstat_loom)))]
mod feed;
mod frame;

pub use apply::{apply, ApplyError};
#[cfg(all(target_os = "linux", not(ringstat_loom)))]
pub use feed::{Feed, FeedEnd, FeedError, FeedSender, FeedStats, FrameBatcher};
pub use frame::{
    peek_header, Frame, FrameBuilder, FrameError, Header, Record, FRAME_MAGIC, FRAME_VERSION,
    HEADER_LEN, MAX_EVENTS, MAX_NAMES, MAX_NAME_LEN,
};
