//! [`Sender`]: a producer's own handle to a [`Pipeline`].

use super::*;

/// A producer's handle to a [`Pipeline`]: `Send`, cheap to clone, with its
/// own scratch space for [`send_batch`](Sender::send_batch). It does not keep
/// the pipeline open: after the pipeline is closed (or dropped), sends fail
/// with [`SendError::Closed`].
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::{Event, Pipeline};
/// let reg = ringstat::Registry::new();
/// let p = Pipeline::new(&reg)?;
/// let c = p.counter("c")?;
/// let mut tx = p.sender();
/// let mut batch = vec![Event::count(c); 10];
/// tx.send_batch(&mut batch)?;
/// tx.send(Event::count(c))?;
/// p.close();
/// assert_eq!(reg.counter("c", &[])?.get(), 11);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender {
    shared: Arc<Shared>,
    /// Per-worker runs for `send_batch`, kept to avoid reallocating.
    scratch: Vec<Vec<Event>>,
}

impl Sender {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            scratch: Vec::new(),
        }
    }

    /// As [`Pipeline::send`].
    ///
    /// # Errors
    ///
    /// As [`Pipeline::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let c = p.counter("c")?;
    /// p.sender().send(Event::count(c))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send(&self, event: Event) -> Result<(), SendError> {
        self.shared.send_until(event, None)
    }

    /// As [`Pipeline::send_batch`], reusing this sender's scratch space.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::send_batch`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::{Event, Pipeline};
    /// let p = Pipeline::new(&ringstat::Registry::new())?;
    /// let u = p.distinct("u")?;
    /// let mut batch: Vec<_> = (0..100).map(|k| Event::seen(u, k)).collect();
    /// p.sender().send_batch(&mut batch)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch(&mut self, events: &mut Vec<Event>) -> Result<u64, Closed> {
        self.shared.send_batch(events, &mut self.scratch, None)
    }

    /// As [`Pipeline::flush`].
    ///
    /// # Examples
    ///
    /// ```
    /// let p = ringstat::pipeline::Pipeline::new(&ringstat::Registry::new())?;
    /// p.sender().flush();
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn flush(&self) {
        self.shared.flush();
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            scratch: Vec::new(),
        }
    }
}

impl core::fmt::Debug for Sender {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}
