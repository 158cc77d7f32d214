//! A shipper's local buffer: [`EventBuffer`], checked events in a bounded
//! [`Queue`], taken by the publishing thread as encoded frames.

use crate::sync::StdArc as Arc;

use super::frame::{op_code, FrameBuilder, MAX_NAME_LEN};
use crate::pipeline::Op;
use crate::queue::{Closed, PushError, Queue};
use crate::stats::{Counter, Gauge};
use crate::sync::Mutex;

/// One buffered event: what [`FrameBuilder::push`] takes, the name owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedEvent {
    op: Op,
    name: Name,
    key: u64,
    value: u64,
    ts: u64,
}

/// Longest name stored in the event itself (longer ones are boxed).
const INLINE: usize = 22;

/// A metric name, inline when short: most are, and then a push allocates
/// nothing (and the publishing thread frees nothing another thread allocated).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl Name {
    fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut a = [0u8; INLINE];
            a[..b.len()].copy_from_slice(b);
            Self::Inline(b.len() as u8, a)
        } else {
            Self::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The whole of a `str`'s bytes: UTF-8, so never the fallback.
            Self::Inline(n, a) => core::str::from_utf8(&a[..usize::from(*n)]).unwrap_or_default(),
            Self::Heap(s) => s,
        }
    }
}

/// What an [`EventBuffer`] counts; the handles may live in a
/// [`Registry`](crate::stats::Registry), where they are exported.
#[derive(Debug, Clone, Default)]
pub struct BufferMetrics {
    /// Events accepted (buffered, or refused by the encoder).
    pub events: Arc<Counter>,
    /// Events dropped by the `drop_newest` policy (not in `events`).
    pub dropped: Arc<Counter>,
    /// Calls that found the buffer full and waited (`block` policy).
    pub blocked: Arc<Counter>,
    /// Accepted events the frame format cannot carry (a name longer than
    /// [`MAX_NAME_LEN`], an event alone larger than the frame limit).
    pub rejected: Arc<Counter>,
    /// Events in the buffer or taken and not yet settled: +1 per event
    /// buffered, -`settles` per [`TakenFrame`] the caller settles.
    pub buffered: Arc<Gauge>,
}

/// What became of an event handed to [`EventBuffer::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// In the buffer (counted in `events` and `buffered`).
    Queued,
    /// The buffer is full and the policy is `drop_newest` (counted in `dropped`).
    Dropped,
    /// The frame format cannot carry it (counted in `events` and `rejected`).
    Rejected,
}

/// Why [`EventBuffer::push`] did not take an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The buffer is full and the policy is `block` (counted in `blocked`):
    /// wait with [`EventBuffer::push_until`], which takes the event back.
    Full(BufferedEvent),
    /// The buffer is closed.
    Closed,
}

/// One frame of a [`take`](EventBuffer::take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenFrame {
    /// The encoded frame; `None` when every event taken was rejected.
    pub body: Option<Vec<u8>>,
    /// Events in the frame.
    pub events: usize,
    /// Buffered events this frame settles once confirmed: its own and any
    /// rejected while it was built.
    pub settles: usize,
}

/// The publishing thread's state, locked only by [`EventBuffer::take`].
#[derive(Debug, Default)]
struct Taker {
    /// The last sequence number given to a frame (the first frame gets 1).
    sequence: u64,
    builder: FrameBuilder,
    batch: Vec<BufferedEvent>,
}

/// A bounded buffer of events for a shipper: producers
/// [`push`](Self::push) checked events (any number of threads), one
/// publishing thread [`take`](Self::take)s them as frames of one
/// producer's stream, numbered 1, 2, ... and at most `max_frame` bytes.
///
/// Overflow: with `drop_newest` a push into a full buffer drops the event
/// (counted); otherwise it is handed back as [`Refused::Full`] for the
/// caller to wait with [`push_until`](Self::push_until) (counted in
/// `blocked` once). Events the frame format cannot carry are counted as
/// rejected and take no buffer slot and no sequence number.
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::Op;
/// use ringstat::wire::{BufferMetrics, EventBuffer, Frame, Pushed};
///
/// let b = EventBuffer::new(16, 7, false, None, BufferMetrics::default());
/// assert_eq!(b.push(Op::Count, "logins", 0, 1, 0), Ok(Pushed::Queued));
/// assert_eq!(b.push(Op::Seen, "users", 42, 0, 0), Ok(Pushed::Queued));
/// let frames = b.take(100, None)?;
/// let f = Frame::decode(frames[0].body.as_ref().unwrap()).unwrap();
/// assert_eq!((f.producer, f.sequence, f.records.len()), (7, 1, 2));
/// # Ok::<(), ringstat::queue::Closed>(())
/// ```
#[derive(Debug)]
pub struct EventBuffer {
    queue: Queue<BufferedEvent>,
    drop_newest: bool,
    /// Largest encoded frame in bytes (`usize::MAX`: no limit).
    max_frame: usize,
    producer: u64,
    metrics: BufferMetrics,
    taker: Mutex<Taker>,
}

impl EventBuffer {
    /// A buffer of `capacity` events (`0` is taken as 1) for the producer
    /// `producer`; `drop_newest` picks the overflow policy, `max_frame`
    /// the largest frame in bytes (`None`: no limit).
    #[must_use]
    pub fn new(
        capacity: usize,
        producer: u64,
        drop_newest: bool,
        max_frame: Option<usize>,
        metrics: BufferMetrics,
    ) -> Self {
        Self {
            queue: Queue::new(capacity.max(1)),
            drop_newest,
            max_frame: max_frame.unwrap_or(usize::MAX),
            producer,
            metrics,
            taker: Mutex::new(Taker::default()),
        }
    }

    /// The producer id of the frames.
    #[must_use]
    pub fn producer(&self) -> u64 {
        self.producer
    }

    /// The counters this buffer updates.
    #[must_use]
    pub fn metrics(&self) -> &BufferMetrics {
        &self.metrics
    }

    /// Events in the buffer now (not counting those taken).
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// `true` if no event is in the buffer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Buffers one event (see the type docs for overflow and rejection).
    /// `value` is a `u64`, or an `i64`'s bits for gauges.
    ///
    /// # Errors
    ///
    /// [`Refused::Full`] (the `block` policy, the buffer full) or
    /// [`Refused::Closed`].
    pub fn push(
        &self,
        op: Op,
        name: &str,
        key: u64,
        value: u64,
        ts: u64,
    ) -> Result<Pushed, Refused> {
        if op_code(op).is_none() || name.is_empty() || name.len() > MAX_NAME_LEN {
            return self.push_rejected();
        }
        let event = BufferedEvent {
            op,
            name: Name::new(name),
            key,
            value,
            ts,
        };
        match self.queue.try_push(event) {
            Ok(()) => Ok(self.queued()),
            Err(PushError::Full(event)) if !self.drop_newest => {
                self.metrics.blocked.inc();
                Err(Refused::Full(event))
            }
            Err(PushError::Full(_)) => {
                self.metrics.dropped.inc();
                Ok(Pushed::Dropped)
            }
            Err(PushError::Closed(_)) => Err(Refused::Closed),
        }
    }

    /// The event [`push`](Self::push) handed back as [`Refused::Full`],
    /// waiting for room until `deadline` (`None`: for ever).
    ///
    /// # Errors
    ///
    /// [`Refused::Full`] (the deadline passed; the event comes back) or
    /// [`Refused::Closed`].
    pub fn push_until(
        &self,
        event: BufferedEvent,
        deadline: Option<std::time::Instant>,
    ) -> Result<Pushed, Refused> {
        match self.queue.push_until(event, deadline) {
            Ok(()) => Ok(self.queued()),
            Err(PushError::Full(event)) => Err(Refused::Full(event)),
            Err(PushError::Closed(_)) => Err(Refused::Closed),
        }
    }

    fn queued(&self) -> Pushed {
        // After the push, as a producer would count it: the publishing
        // thread may settle the event first, so `buffered` can dip below
        // zero for a moment, never `events` below what was settled.
        self.metrics.events.inc();
        self.metrics.buffered.add(1);
        Pushed::Queued
    }

    /// Counts an event the frame format cannot carry (a value the caller
    /// could not convert, say) as accepted and rejected, as
    /// [`push`](Self::push) does for a name it cannot carry.
    ///
    /// # Errors
    ///
    /// [`Refused::Closed`].
    pub fn push_rejected(&self) -> Result<Pushed, Refused> {
        if self.queue.is_closed() {
            return Err(Refused::Closed);
        }
        self.metrics.events.inc();
        self.metrics.rejected.inc();
        Ok(Pushed::Rejected)
    }

    /// Closes the buffer: pushes fail, [`take`](Self::take) returns what is
    /// left, then `Err(Closed)`. `true` for the call that closed it.
    pub fn close(&self) -> bool {
        self.queue.close()
    }

    /// `true` after [`close`](Self::close).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Takes up to `max_events` events (at least 1), waiting for the first
    /// until `deadline` (`None`: for ever), encoded as frames of at most
    /// the frame limit, numbered on from the last frame taken. An event
    /// alone larger than the limit is rejected (counted; it settles with
    /// the next frame, or a `body: None` entry). Empty at the deadline.
    ///
    /// # Errors
    ///
    /// [`Closed`]: the buffer is closed and empty.
    pub fn take(
        &self,
        max_events: usize,
        deadline: Option<std::time::Instant>,
    ) -> Result<Vec<TakenFrame>, Closed> {
        let mut guard = self
            .taker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Taker {
            sequence,
            builder,
            batch,
        } = &mut *guard;
        batch.clear();
        self.queue
            .pop_batch_until(batch, max_events.max(1), deadline)?;
        let mut frames = Vec::new();
        // Rejected events not yet attached to a frame.
        let mut loose = 0;
        for e in batch.drain(..) {
            loop {
                let fits = builder.push_within(
                    self.max_frame,
                    e.op,
                    e.name.as_str(),
                    e.key,
                    e.value,
                    e.ts,
                );
                if fits == Ok(true) {
                    break;
                }
                if builder.is_empty() {
                    // Alone too big (or, never for a checked event, refused).
                    self.metrics.rejected.inc();
                    loose += 1;
                    break;
                }
                // The frame is full (bytes, names or events): close it.
                frames.push(finish(builder, sequence, self.producer, loose));
                loose = 0;
            }
        }
        if !builder.is_empty() {
            frames.push(finish(builder, sequence, self.producer, loose));
        } else if loose > 0 {
            match frames.last_mut() {
                Some(f) => f.settles += loose,
                None => frames.push(TakenFrame {
                    body: None,
                    events: 0,
                    settles: loose,
                }),
            }
        }
        Ok(frames)
    }
}

/// The builder's events as the next frame, settling `loose` rejected ones too.
fn finish(
    builder: &mut FrameBuilder,
    sequence: &mut u64,
    producer: u64,
    loose: usize,
) -> TakenFrame {
    let frame = builder.finish(producer, *sequence + 1);
    let events = frame.records.len();
    // Every event passed `push_within`: the frame encodes.
    match frame.encode() {
        Ok(body) => {
            *sequence += 1;
            TakenFrame {
                body: Some(body),
                events,
                settles: events + loose,
            }
        }
        Err(_) => TakenFrame {
            body: None,
            events: 0,
            settles: events + loose,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    fn buffer(cap: usize, drop_newest: bool, max_frame: Option<usize>) -> EventBuffer {
        EventBuffer::new(cap, 9, drop_newest, max_frame, BufferMetrics::default())
    }

    fn decode(f: &TakenFrame) -> Frame {
        Frame::decode(f.body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn names_inline_and_boxed_round_trip() {
        for n in [
            "a",
            "é",
            &"x".repeat(INLINE),
            &"y".repeat(INLINE + 1),
            &"€".repeat(8),
        ] {
            assert_eq!(Name::new(n).as_str(), n);
        }
        assert!(matches!(Name::new(&"x".repeat(INLINE)), Name::Inline(..)));
        // With the queue's stamp, a slot is one 64-byte line.
        assert!(core::mem::size_of::<BufferedEvent>() <= 56);
    }

    #[test]
    fn smoke() {
        let b = buffer(4, false, None);
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Ok(Pushed::Queued));
        assert_eq!(
            b.push(Op::Set, "g", 0, (-5i64) as u64, 0),
            Ok(Pushed::Queued)
        );
        assert_eq!(b.len(), 2);
        let frames = b.take(10, None).unwrap();
        assert_eq!(frames.len(), 1);
        let f = decode(&frames[0]);
        assert_eq!((f.producer, f.sequence), (9, 1));
        assert_eq!(f.records[1].value as i64, -5);
        assert_eq!((frames[0].events, frames[0].settles), (2, 2));
        let m = b.metrics();
        assert_eq!((m.events.get(), m.buffered.get()), (2, 2));
    }

    #[test]
    fn full_drop_newest_counts_drops() {
        let b = buffer(2, true, None);
        for _ in 0..5 {
            let _ = b.push(Op::Count, "c", 0, 1, 0);
        }
        let m = b.metrics();
        assert_eq!(
            (m.events.get(), m.dropped.get(), m.blocked.get()),
            (2, 3, 0)
        );
        assert_eq!(m.buffered.get(), 2);
    }

    #[test]
    fn full_block_hands_the_event_back() {
        let b = buffer(1, false, None);
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Ok(Pushed::Queued));
        let Err(Refused::Full(e)) = b.push(Op::Count, "c", 0, 2, 0) else {
            panic!("expected Full");
        };
        assert_eq!(b.metrics().blocked.get(), 1);
        let Err(Refused::Full(e)) = b.push_until(e, Some(std::time::Instant::now())) else {
            panic!("expected Full at the deadline");
        };
        assert_eq!(b.take(10, None).unwrap()[0].events, 1);
        assert_eq!(b.push_until(e, None), Ok(Pushed::Queued));
        assert_eq!(b.metrics().events.get(), 2);
    }

    #[test]
    fn closed_refuses_and_drains() {
        let b = buffer(4, false, None);
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Ok(Pushed::Queued));
        assert!(b.close());
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Err(Refused::Closed));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(b.push(Op::Count, &long, 0, 1, 0), Err(Refused::Closed));
        assert_eq!(b.take(10, None).unwrap().len(), 1);
        assert_eq!(b.take(10, None), Err(Closed));
    }

    #[test]
    fn timeout_takes_nothing() {
        let b = buffer(4, false, None);
        assert_eq!(b.take(10, Some(std::time::Instant::now())), Ok(vec![]));
    }

    #[test]
    fn unencodable_rejected_at_push_without_a_slot() {
        let b = buffer(1, true, None);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(b.push(Op::Count, &long, 0, 1, 0), Ok(Pushed::Rejected));
        assert_eq!(b.push(Op::Count, "", 0, 1, 0), Ok(Pushed::Rejected));
        assert_eq!(b.push(Op::Flush, "c", 0, 1, 0), Ok(Pushed::Rejected));
        assert!(b.is_empty());
        let m = b.metrics();
        assert_eq!(
            (m.events.get(), m.rejected.get(), m.buffered.get()),
            (3, 3, 0)
        );
    }

    #[test]
    fn max_frame_splits_and_rejects_an_event_too_big_alone() {
        let b = buffer(64, false, Some(64));
        let big = "n".repeat(60);
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Ok(Pushed::Queued));
        assert_eq!(b.push(Op::Count, &big, 0, 1, 0), Ok(Pushed::Queued));
        for i in 0..20 {
            assert_eq!(b.push(Op::Seen, "users", i, 0, 0), Ok(Pushed::Queued));
        }
        let frames = b.take(100, None).unwrap();
        assert!(frames.len() > 1);
        assert!(frames.iter().all(|f| f.body.as_ref().unwrap().len() <= 64));
        let seqs: Vec<u64> = frames.iter().map(|f| decode(f).sequence).collect();
        assert_eq!(seqs, (1..=frames.len() as u64).collect::<Vec<_>>());
        let events: usize = frames.iter().map(|f| f.events).sum();
        let settles: usize = frames.iter().map(|f| f.settles).sum();
        assert_eq!((events, settles), (21, 22));
        assert_eq!(b.metrics().rejected.get(), 1);
        // A take of only an event too big: settled by a frame without a body.
        assert_eq!(b.push(Op::Count, &big, 0, 1, 0), Ok(Pushed::Queued));
        let frames = b.take(100, None).unwrap();
        assert_eq!(
            frames,
            vec![TakenFrame {
                body: None,
                events: 0,
                settles: 1
            }]
        );
        // No sequence number spent on it.
        assert_eq!(b.push(Op::Count, "c", 0, 1, 0), Ok(Pushed::Queued));
        let f = &b.take(100, None).unwrap()[0];
        assert_eq!(decode(f).sequence, seqs.len() as u64 + 1);
    }

    #[test]
    fn many_names_split_frames() {
        let b = buffer(70_000, false, None);
        for i in 0..(crate::wire::MAX_NAMES + 10) {
            assert_eq!(
                b.push(Op::Count, &format!("m{i}"), 0, 1, 0),
                Ok(Pushed::Queued)
            );
        }
        let frames = b.take(usize::MAX, None).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].events, 10);
    }
}
