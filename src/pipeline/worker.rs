//! The worker loop: drain one queue in batches, apply each event without a
//! lock, answer flush markers, exit when the queue is closed and drained.

use super::event::{Event, Op};
use super::keyed::{DistinctShared, SessionsLocal, SessionsShared};
use super::shared::{Shared, Target};
use crate::stats::{Counter, Gauge, Histogram, Rate};
use crate::sync::StdArc;

/// A worker's view of one metric: the shared aggregate plus, for sessions,
/// the open sessions of the keys routed to this worker.
enum Local {
    Counter(StdArc<Counter>),
    Gauge(StdArc<Gauge>),
    Histogram(StdArc<Histogram>),
    Rate(StdArc<Rate>),
    Sessions(StdArc<SessionsShared>, SessionsLocal),
    Distinct(StdArc<DistinctShared>),
}

/// Marks the worker done for every flush (and wakes flushers) when it exits,
/// even by a panic, so a flush never waits for a worker that is gone.
struct ExitGuard<'a> {
    shared: &'a Shared,
    index: usize,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        self.shared.flush_done(self.index, u64::MAX);
    }
}

/// After a batch of fewer events than this share of `batch_size`, the
/// worker naps (see [`nap`]).
const NAP_BELOW_SHARE: usize = 4;

/// How long the worker naps.
const NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// Sleeps [`NAP`] after a small batch: the worker keeps up with its
/// producers, and popping each event as it lands makes every push and pop
/// fight over the same cache lines (measured: a send cost 180-280 ns instead
/// of 25-45 when the worker is busier). A sleeping worker touches nothing,
/// so the producers push without misses and the next pop takes a whole
/// batch. Events wait at most the nap (plus timer slack, about 0.1 ms in
/// all); an idle queue still parks the worker in the pop, and a full one
/// never naps it.
fn nap() {
    if !cfg!(ringstat_loom) {
        std::thread::sleep(NAP);
    }
}

/// Runs worker `index` until its queue is closed and drained.
pub(crate) fn run(shared: &Shared, index: usize) {
    let _guard = ExitGuard { shared, index };
    let queue = &shared.queues[index];
    let mut local: Vec<Local> = Vec::new();
    // A batch never holds more than the queue does: a huge `batch_size`
    // must not allocate (and abort) up front.
    let mut buf: Vec<Event> = Vec::with_capacity(shared.batch_size.min(queue.capacity()));
    let mut last_refresh = shared.clock.now_nanos();
    let idle_nanos = u64::try_from(shared.refresh.as_nanos()).unwrap_or(u64::MAX);
    let nap_below = shared.batch_size / NAP_BELOW_SHARE;
    loop {
        let deadline = crate::sync::idle_deadline(shared.refresh);
        if queue
            .pop_batch_until(&mut buf, shared.batch_size, deadline)
            .is_err()
        {
            break; // closed and drained
        }
        let small = buf.len() < nap_below;
        let mut now = None;
        let mut applied = 0u64;
        let mut rejected = 0u64;
        for ev in buf.drain(..) {
            if ev.op == Op::Flush {
                commit(shared, &mut applied, &mut rejected);
                exchange_sessions(shared, &mut local, index);
                shared.flush_done(index, ev.value);
                continue;
            }
            let i = ev.metric as usize;
            if i >= local.len() {
                refresh_table(shared, &mut local);
            }
            let ts = if ev.ts != 0 {
                ev.ts
            } else {
                *now.get_or_insert_with(|| shared.clock.now_nanos())
            };
            let ok = match (ev.op, local.get_mut(i)) {
                (Op::Count, Some(Local::Counter(c))) => {
                    c.add(ev.value);
                    true
                }
                (Op::Set, Some(Local::Gauge(g))) => {
                    g.set(ev.value as i64);
                    true
                }
                (Op::GaugeAdd, Some(Local::Gauge(g))) => {
                    g.add(ev.value as i64);
                    true
                }
                (Op::Observe, Some(Local::Histogram(h))) => {
                    // Out of range: counted in the histogram's `rejected`.
                    let _ = h.record(ev.value);
                    true
                }
                (Op::Mark, Some(Local::Rate(r))) => {
                    r.add(ev.value);
                    true
                }
                (Op::Start, Some(Local::Sessions(s, l))) => {
                    l.start(s, ev.key, ts);
                    true
                }
                (Op::End, Some(Local::Sessions(s, l))) => {
                    l.end(s, ev.key, ts);
                    true
                }
                (Op::Seen, Some(Local::Distinct(d))) => {
                    d.insert(index, ev.key, ts);
                    true
                }
                // A handle of another pipeline: wrong kind or unknown index.
                _ => false,
            };
            if ok {
                applied += 1;
            } else {
                rejected += 1;
            }
        }
        commit(shared, &mut applied, &mut rejected);
        publish_sessions(&mut local);
        shared.refresh_depth();
        if index == 0 {
            let t = shared.clock.now_nanos();
            if t.saturating_sub(last_refresh) >= idle_nanos {
                last_refresh = t;
                shared.refresh_distinct_gauges();
            }
        }
        if small && !queue.is_closed() {
            nap();
        }
    }
    shared.refresh_depth();
}

/// Publishes the batch's counts (before any flush marker is answered, so a
/// flusher sees them).
fn commit(shared: &Shared, applied: &mut u64, rejected: &mut u64) {
    if *applied > 0 {
        shared.own.applied.add(*applied);
        shared.own.applied_rate.add(*applied);
        *applied = 0;
    }
    if *rejected > 0 {
        shared.own.rejected.add(*rejected);
        *rejected = 0;
    }
}

/// On a flush marker: loads imported open sessions and answers state
/// export requests (`pipeline::state`), for every session tracker.
fn exchange_sessions(shared: &Shared, local: &mut Vec<Local>, index: usize) {
    if local.len() < shared.lock_table().targets.len() {
        refresh_table(shared, local);
    }
    for l in local.iter_mut() {
        if let Local::Sessions(s, l) = l {
            l.publish(s);
            l.exchange(s, index);
        }
    }
}

/// Adds every tracker's counts of this batch to its shared metrics.
fn publish_sessions(local: &mut [Local]) {
    for l in local {
        if let Local::Sessions(s, l) = l {
            l.publish(s);
        }
    }
}

/// Copies the metrics resolved since the last look. Runs once per new
/// metric per worker: the only lock a worker takes besides flush answers.
#[cold]
fn refresh_table(shared: &Shared, local: &mut Vec<Local>) {
    let table = shared.lock_table();
    for t in &table.targets[local.len()..] {
        local.push(match t {
            Target::Counter(c) => Local::Counter(StdArc::clone(c)),
            Target::Gauge(g) => Local::Gauge(StdArc::clone(g)),
            Target::Histogram(h) => Local::Histogram(StdArc::clone(h)),
            Target::Rate(r) => Local::Rate(StdArc::clone(r)),
            Target::Sessions(s) => Local::Sessions(StdArc::clone(s), SessionsLocal::default()),
            Target::Distinct(d, ..) => Local::Distinct(StdArc::clone(d)),
        });
    }
}
