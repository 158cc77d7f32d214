//! The state a pipeline shares with its senders and workers: the queues,
//! the table of resolved metrics, the pipeline's own metrics and the flush
//! bookkeeping, with the send, route and flush logic over them.

use std::collections::HashMap;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::event::{Event, Kind, Op};
use super::keyed::{DistinctShared, SessionsShared};
use super::{hash, Backpressure, PipelineError, SendError};
use crate::queue::{Closed, PushError, Queue};
use crate::stats::{Clock, Counter, Gauge, Histogram, Rate, Registry};
use crate::sync::{stack_shard_hint, thread_index, Condvar, Mutex, MutexGuard, StdArc};

/// Seed mixed into keys for routing, so the worker choice and the
/// HyperLogLog register choice use unrelated hash bits.
const ROUTE_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The worker (of `n`) that applies the events of `key`: the high bits of
/// `mix64(key) * n`, a multiply where `%` would divide.
#[inline]
pub(super) fn route_key(key: u64, n: usize) -> usize {
    ((u128::from(hash::mix64(key ^ ROUTE_SEED)) * n as u128) >> 64) as usize
}

/// A resolved metric, as kept in the pipeline's table.
#[derive(Clone)]
pub(super) enum Target {
    Counter(StdArc<Counter>),
    Gauge(StdArc<Gauge>),
    Histogram(StdArc<Histogram>),
    Rate(StdArc<Rate>),
    Sessions(StdArc<SessionsShared>),
    /// The sketch, and the `{name}_distinct` / `{name}_distinct_window`
    /// gauges that mirror its estimates.
    Distinct(StdArc<DistinctShared>, StdArc<Gauge>, StdArc<Gauge>),
}

/// Every metric the pipeline resolved; index = handle index. Append-only.
#[derive(Default)]
pub(super) struct Table {
    pub(super) targets: Vec<Target>,
    /// Per [`Kind`] (`kind as usize`): name -> index. Keyed by `Box<str>` so
    /// a lookup borrows the caller's `&str` (no allocation).
    by_name: [HashMap<Box<str>, u32>; Kind::COUNT],
}

impl Table {
    /// The index `name` of `kind` was resolved to (no allocation).
    pub(super) fn find(&self, kind: Kind, name: &str) -> Option<u32> {
        self.by_name[kind as usize].get(name).copied()
    }

    /// Every `(name, index)` resolved for `kind`.
    pub(super) fn names(&self, kind: Kind) -> impl Iterator<Item = (&str, &u32)> {
        self.by_name[kind as usize].iter().map(|(k, v)| (&**k, v))
    }
}

/// The pipeline's own metrics.
pub(super) struct Own {
    pub(super) received: StdArc<Counter>,
    pub(super) applied: StdArc<Counter>,
    pub(super) applied_rate: StdArc<Rate>,
    pub(super) dropped: StdArc<Counter>,
    pub(super) rejected: StdArc<Counter>,
    pub(super) depth: StdArc<Gauge>,
}

/// State shared by the pipeline, its senders and its workers.
pub(super) struct Shared {
    /// One queue per worker; worker `i` is the only consumer of `queues[i]`.
    pub(super) queues: Box<[Queue<Event>]>,
    pub(super) policy: Backpressure,
    pub(super) batch_size: usize,
    /// How often worker 0 refreshes the distinct gauges, and the longest an
    /// idle worker sleeps before refreshing the depth gauge.
    pub(super) refresh: Duration,
    pub(super) registry: Registry,
    pub(super) clock: StdArc<dyn Clock>,
    pub(super) own: Own,
    /// Taken to resolve a metric, and by a worker the first time it meets a
    /// new metric index; never per event.
    pub(super) table: Mutex<Table>,
    /// The last flush ticket handed out.
    pub(super) flush_serial: Mutex<u64>,
    /// `done[i]`: the highest ticket worker `i` has answered (`u64::MAX` once
    /// it exited). Changed and waited on under this lock only.
    pub(super) flush_progress: Mutex<Vec<u64>>,
    pub(super) flush_cv: Condvar,
    /// Tasks waiting for every worker to answer a ticket: `(key, ticket,
    /// waker)` (`task.rs`); woken by `flush_done`.
    pub(super) progress_wakers: Mutex<Vec<(u64, u64, Waker)>>,
    /// The id of the process that built the pipeline (and runs its workers).
    pub(super) pid: u32,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning: every critical section here leaves its data consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(super) fn lock_table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Records that worker `i` answered flush `ticket` and wakes flushers.
    pub(super) fn flush_done(&self, i: usize, ticket: u64) {
        let mut done = lock(&self.flush_progress);
        if done[i] < ticket {
            done[i] = ticket;
        }
        let least = done.iter().copied().min().unwrap_or(u64::MAX);
        drop(done);
        self.flush_cv.notify_all();
        self.wake_progress(least);
    }

    #[inline]
    pub(super) fn route(&self, ev: &Event) -> usize {
        let n = self.queues.len();
        if n == 1 {
            0
        } else if ev.op.is_keyed() || ev.key != 0 {
            route_key(ev.key, n)
        } else {
            thread_index() % n
        }
    }

    /// An event displaced by `force_push` from queue `i`.
    fn displaced(&self, i: usize, old: Event) {
        if old.op == Op::Flush {
            // Everything older than the marker was displaced before it: the
            // flush is answered for this queue.
            self.flush_done(i, old.value);
        } else {
            self.own.dropped.inc();
        }
    }

    /// Sends `ev`; under `Block`, waits for room until `deadline` (`None`:
    /// forever) and then fails with `Full`, neither sent nor counted.
    pub(super) fn send_until(&self, ev: Event, deadline: Option<Instant>) -> Result<(), SendError> {
        self.send_with(ev, |q, ev| q.push_until(ev, deadline))
    }

    /// As [`send_until`](Shared::send_until) with a deadline already past,
    /// without reading the clock (a clock read costs about as much as the
    /// push).
    #[inline]
    pub(super) fn try_send(&self, ev: Event) -> Result<(), SendError> {
        self.send_with(ev, Queue::try_push)
    }

    /// Sends `ev`, `push` being how `Block` pushes it.
    #[inline(always)]
    fn send_with(
        &self,
        ev: Event,
        push: impl FnOnce(&Queue<Event>, Event) -> Result<(), PushError<Event>>,
    ) -> Result<(), SendError> {
        let i = self.route(&ev);
        let q = &self.queues[i];
        match self.policy {
            Backpressure::Block => match push(q, ev) {
                Ok(()) => {}
                Err(PushError::Full(ev)) => return Err(SendError::Full(ev)),
                Err(PushError::Closed(ev)) => return Err(SendError::Closed(ev)),
            },
            Backpressure::DropNewest => match q.try_push(ev) {
                Ok(()) => {}
                Err(PushError::Full(ev)) => {
                    self.own.received.add_to_shard(1, stack_shard_hint());
                    self.own.dropped.inc();
                    return Err(SendError::Dropped(ev));
                }
                Err(PushError::Closed(ev)) => return Err(SendError::Closed(ev)),
            },
            Backpressure::OverwriteOldest => match q.force_push(ev) {
                Ok(None) => {}
                Ok(Some(old)) => self.displaced(i, old),
                Err(e) => return Err(SendError::Closed(e.into_inner())),
            },
        }
        // Any shard will do, and the stack hint costs no thread-local lookup.
        self.own.received.add_to_shard(1, stack_shard_hint());
        Ok(())
    }

    /// Sends `run` (all routed to worker `i`); returns how many events were
    /// dropped. The events not sent (on `Closed`, or under `Block` when
    /// `deadline` passed first) stay in `run`.
    fn send_run(
        &self,
        i: usize,
        run: &mut Vec<Event>,
        deadline: Option<Instant>,
    ) -> Result<u64, Closed> {
        let q = &self.queues[i];
        let before = run.len() as u64;
        match self.policy {
            Backpressure::Block => {
                let r = q.push_batch_until(run, deadline);
                self.own.received.add(before - run.len() as u64);
                r.map(|_| 0)
            }
            Backpressure::DropNewest => {
                q.try_push_batch(run)?;
                let dropped = run.len() as u64;
                run.clear();
                self.own.received.add(before);
                self.own.dropped.add(dropped);
                Ok(dropped)
            }
            Backpressure::OverwriteOldest => {
                let mut dropped = 0;
                let mut sent = 0;
                let mut result = Ok(());
                for &ev in run.iter() {
                    match q.force_push(ev) {
                        Ok(None) => {}
                        Ok(Some(old)) => {
                            dropped += u64::from(old.op != Op::Flush);
                            self.displaced(i, old);
                        }
                        Err(_) => {
                            result = Err(Closed);
                            break;
                        }
                    }
                    sent += 1;
                }
                run.drain(..sent);
                self.own.received.add(sent as u64);
                result.map(|()| dropped)
            }
        }
    }

    /// Sends `events`, each worker's share as one run; the events not sent
    /// (see [`send_run`](Self::send_run)) stay in `events`.
    pub(super) fn send_batch(
        &self,
        events: &mut Vec<Event>,
        scratch: &mut Vec<Vec<Event>>,
        deadline: Option<Instant>,
    ) -> Result<u64, Closed> {
        let n = self.queues.len();
        if n == 1 {
            return self.send_run(0, events, deadline);
        }
        scratch.resize_with(n, Vec::new);
        for ev in events.drain(..) {
            scratch[self.route(&ev)].push(ev);
        }
        let mut dropped = 0;
        let mut closed = false;
        for (i, run) in scratch.iter_mut().enumerate() {
            if !closed {
                match self.send_run(i, run, deadline) {
                    Ok(d) => dropped += d,
                    Err(Closed) => closed = true,
                }
            }
            events.append(run);
        }
        if closed {
            Err(Closed)
        } else {
            Ok(dropped)
        }
    }

    /// Total events waiting in the queues (each queue read at one instant).
    pub(super) fn depth(&self) -> usize {
        self.queues.iter().map(Queue::len).sum()
    }

    pub(super) fn refresh_depth(&self) {
        self.own.depth.set(self.depth() as i64);
    }

    pub(super) fn refresh_distinct_gauges(&self) {
        let distinct: Vec<_> = self
            .lock_table()
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Distinct(d, all, win) => {
                    Some((StdArc::clone(d), StdArc::clone(all), StdArc::clone(win)))
                }
                _ => None,
            })
            .collect();
        if distinct.is_empty() {
            return;
        }
        let now = self.clock.now_nanos();
        for (d, all, win) in distinct {
            all.set(d.count().round() as i64);
            win.set(d.count_in_window(now).round() as i64);
        }
    }

    /// `true` in a child process forked after the pipeline was built: its
    /// worker threads exist only in the parent.
    pub(super) fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    /// A whole flush (see [`Pipeline::flush`](super::Pipeline::flush)).
    pub(super) fn flush(&self) {
        let _ = self.flush_until(self.flush_ticket(), &mut 0, None);
    }

    /// Takes the next flush ticket. Tickets rise, so a worker answering a
    /// later ticket has applied everything an earlier one waits for.
    pub(super) fn flush_ticket(&self) -> u64 {
        if self.forked() {
            // No lock in a forked child (a parent thread may have held it at
            // the fork); its flushes return at once anyway.
            return 0;
        }
        let mut serial = lock(&self.flush_serial);
        *serial += 1;
        *serial
    }

    /// Advances the flush `ticket`: enqueues its marker in queues
    /// `*pushed..`, then waits for every worker to answer it, giving up at
    /// `deadline` (call again to resume). `true` once done, the depth and
    /// distinct gauges refreshed.
    pub(super) fn flush_until(
        &self,
        ticket: u64,
        pushed: &mut usize,
        deadline: Option<Instant>,
    ) -> bool {
        if self.forked() {
            return true; // no worker here would ever answer
        }
        while let Some(q) = self.queues.get(*pushed) {
            // A marker is never dropped by the policy: it waits for room. If
            // the queue is closed, its worker answers every ticket on exit.
            match q.push_until(Event::flush_marker(ticket), deadline) {
                Ok(()) | Err(PushError::Closed(_)) => *pushed += 1,
                Err(PushError::Full(_)) => return false,
            }
        }
        if !self.wait_answered(ticket, deadline) {
            return false;
        }
        self.refresh_depth();
        self.refresh_distinct_gauges();
        true
    }

    /// Waits until every worker has answered `ticket` (`u64::MAX`: until
    /// every worker has exited), giving up at `deadline`; `true` if they
    /// have.
    pub(super) fn wait_answered(&self, ticket: u64, deadline: Option<Instant>) -> bool {
        let mut done = lock(&self.flush_progress);
        while done.iter().any(|&d| d < ticket) {
            done = match deadline {
                None => self
                    .flush_cv
                    .wait(done)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.flush_cv
                        .wait_timeout(done, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    pub(super) fn resolve(
        &self,
        kind: Kind,
        name: &str,
        make: impl FnOnce() -> Result<Target, PipelineError>,
        same: impl FnOnce(&Target) -> bool,
    ) -> Result<u32, PipelineError> {
        let mut table = self.lock_table();
        if let Some(id) = table.find(kind, name) {
            return if same(&table.targets[id as usize]) {
                Ok(id)
            } else {
                Err(PipelineError::ConfigMismatch {
                    name: name.to_owned(),
                })
            };
        }
        let id = u32::try_from(table.targets.len())
            .ok()
            .filter(|&id| id < u32::MAX)
            .ok_or(PipelineError::TooManyMetrics)?;
        let target = make()?;
        table.targets.push(target);
        table.by_name[kind as usize].insert(name.into(), id);
        Ok(id)
    }
}
