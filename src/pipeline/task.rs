//! Waiting without a thread for the pipeline: an async task registers a
//! [`Waker`] where a blocked thread would park, and is woken by the pop,
//! flush answer or worker exit that would wake the thread.
//!
//! - a send under [`Backpressure::Block`] that finds its worker's queue full
//!   (`try_send` gave [`SendError::Full`]): [`Pipeline::register_send_waker`],
//!   woken by the worker's next pop (or close);
//! - a flush: [`Pipeline::flush_task`], an owned [`FlushTask`] advanced
//!   without blocking, its waker woken by room for its markers or by the
//!   workers' answers;
//! - a close: [`Pipeline::close_until`] with a past deadline, and
//!   [`Pipeline::register_close_waker`], woken once every worker has exited.
//!
//! The pattern, as in `crate::queue::task`: try; if not done, register
//! (`false`: progress may be possible now, try again); wait for the waker,
//! deregister (a no-op if it fired) and try again. A task that stops waiting
//! deregisters and has done nothing more than its last try.
//!
//! [`Backpressure::Block`]: super::Backpressure::Block
//! [`SendError::Full`]: super::SendError::Full

use std::task::Waker;
use std::time::Instant;

use super::shared::{lock, Shared};
use super::{Event, Pipeline};
use crate::sync::Arc;

impl Pipeline {
    /// Registers `waker` to be woken once a send of `event` from this thread
    /// may find room (its worker popped, or the pipeline closed). Returns
    /// `false`, registering nothing, if that is already the case: try the
    /// send again. `key` names the registration for
    /// [`deregister_waker`](Self::deregister_waker); keep it unique among
    /// this pipeline's registrations.
    ///
    /// Register from the thread that sends: an event without a key goes to
    /// the worker chosen by the sending thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Waker;
    /// use ringstat::pipeline::{Event, Pipeline, SendError};
    ///
    /// let p = Pipeline::builder(&ringstat::Registry::new()).workers(1).capacity(1).build()?;
    /// let ev = Event::count(p.counter("c")?);
    /// // Room now (or soon): nothing registered, or a registration to remove.
    /// if p.register_send_waker(&ev, 1, Waker::noop()) {
    ///     p.deregister_waker(1);
    /// }
    /// assert!(matches!(p.try_send(ev), Ok(()) | Err(SendError::Full(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_send_waker(&self, event: &Event, key: u64, waker: &Waker) -> bool {
        self.shared.queues[self.shared.route(event)].register_push_waker(key, waker)
    }

    /// Registers `waker` to be woken once every worker has exited (after
    /// [`close`](Self::close) began, when they have drained their queues).
    /// Returns `false`, registering nothing, if they already have: then
    /// `close_until(Some(Instant::now()))` returns `true` (it joins threads
    /// that have finished their work).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use std::task::Waker;
    ///
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// while !p.close_until(Some(Instant::now())) {
    ///     if p.register_close_waker(1, Waker::noop()) {
    ///         p.deregister_waker(1); // a task would wait for the waker here
    ///     }
    /// }
    /// assert!(!p.register_close_waker(2, Waker::noop()));
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn register_close_waker(&self, key: u64, waker: &Waker) -> bool {
        self.shared.register_progress_waker(u64::MAX, key, waker)
    }

    /// Removes the waker registered under `key` by any of this pipeline's
    /// `register_*` methods (or a [`FlushTask`]'s); `false` if it was not
    /// registered any more (it fired, or is firing).
    pub fn deregister_waker(&self, key: u64) -> bool {
        self.shared.deregister_waker(key)
    }

    /// Starts a flush ([`flush`](Self::flush)'s guarantee: it covers the
    /// events whose send returned before this call) that a task advances
    /// without blocking; see [`FlushTask`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::Waker;
    /// use ringstat::pipeline::{Event, Pipeline};
    ///
    /// let reg = ringstat::Registry::new();
    /// let p = Pipeline::new(&reg)?;
    /// p.send(Event::count(p.counter("c")?))?;
    /// let mut flush = p.flush_task();
    /// while !flush.try_complete() {
    ///     if flush.register_waker(1, Waker::noop()) {
    ///         p.deregister_waker(1); // a task would wait for the waker here
    ///     }
    /// }
    /// assert_eq!(reg.counter("c", &[])?.get(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a flush task is only advanced by `try_complete`"]
    pub fn flush_task(&self) -> FlushTask {
        FlushTask {
            shared: Arc::clone(&self.shared),
            ticket: self.shared.flush_ticket(),
            pushed: 0,
        }
    }
}

/// A flush owned by a task ([`Pipeline::flush_task`]): it does not borrow
/// the pipeline, and is advanced by [`try_complete`](Self::try_complete),
/// which never blocks. Dropped before completing, it leaves markers that the
/// workers answer for nobody: harmless.
#[must_use = "a flush task is only advanced by `try_complete`"]
pub struct FlushTask {
    shared: Arc<Shared>,
    ticket: u64,
    /// Queues `..pushed` hold this flush's marker.
    pushed: usize,
}

impl FlushTask {
    /// Pushes the markers that fit and checks the answers, without waiting:
    /// `true` once every event whose send returned before the task started
    /// is applied (and the gauges refreshed). After `true`, `true` again.
    pub fn try_complete(&mut self) -> bool {
        self.shared
            .flush_until(self.ticket, &mut self.pushed, Some(Instant::now()))
    }

    /// Registers `waker` to be woken once [`try_complete`](Self::try_complete)
    /// may make progress: room for the next marker, or the workers'
    /// answers. `false`, registering nothing, if it may now. Removed by
    /// [`Pipeline::deregister_waker`] (`key` as there).
    pub fn register_waker(&self, key: u64, waker: &Waker) -> bool {
        match self.shared.queues.get(self.pushed) {
            Some(q) => q.register_push_waker(key, waker),
            None => self.shared.register_progress_waker(self.ticket, key, waker),
        }
    }
}

impl core::fmt::Debug for FlushTask {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlushTask")
            .field("ticket", &self.ticket)
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Registers `waker` to be woken once every worker has answered `ticket`
    /// (`u64::MAX`: exited); `false`, registering nothing, if they have.
    pub(super) fn register_progress_waker(&self, ticket: u64, key: u64, waker: &Waker) -> bool {
        // Checked and registered under the progress lock: `flush_done`
        // updates under it and takes the wakers after, so it either sees
        // this registration or we see its update.
        let done = lock(&self.flush_progress);
        if done.iter().all(|&d| d >= ticket) {
            return false;
        }
        lock(&self.progress_wakers).push((key, ticket, waker.clone()));
        drop(done);
        true
    }

    /// Wakes the wakers whose ticket every worker has answered (`least`:
    /// the lowest answer, read under the progress lock by `flush_done`).
    pub(super) fn wake_progress(&self, least: u64) {
        let mut wakers = lock(&self.progress_wakers);
        if wakers.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        wakers.retain(|(_, ticket, w)| {
            let keep = *ticket > least;
            if !keep {
                ready.push(w.clone());
            }
            keep
        });
        drop(wakers);
        // Woken outside the lock: a waker may run arbitrary code.
        ready.into_iter().for_each(Waker::wake);
    }

    /// Removes the registration `key`, wherever it is.
    fn deregister_waker(&self, key: u64) -> bool {
        let mut wakers = lock(&self.progress_wakers);
        if let Some(at) = wakers.iter().position(|(k, ..)| *k == key) {
            drop(wakers.swap_remove(at));
            return true;
        }
        drop(wakers);
        // Keys are unique: at most one queue holds it (an unkeyed event's
        // queue depends on the thread, so look in each).
        self.queues.iter().any(|q| q.deregister_push_waker(key))
    }
}
