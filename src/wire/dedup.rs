//! Which frames were applied, per producer: a floor and the sequences above
//! it (the Rust twin of the Python `ringstat.broker.Dedup`).

use std::collections::{BTreeSet, HashMap};

/// Remembers the `(producer, sequence)` of every frame applied, so a
/// consumer that gets a frame twice (at-least-once delivery) applies it
/// once.
///
/// Per producer: a floor (every sequence below it counts as applied) and
/// the set of applied sequences at or above it; the floor moves up as the
/// set fills the gap above it, so with in-order delivery the set stays
/// empty. A producer seen for the first time starts at the sequence of its
/// first frame (a queue delivers one producer's frames in order,
/// redeliveries included, so the first seen is its oldest). If the set
/// grows past `max_pending` (a sequence lost for good), the floor jumps to
/// the smallest pending sequence and the skipped sequences are counted in
/// [`gaps`](Self::gaps).
///
/// # Examples
///
/// ```
/// let mut d = ringstat::wire::Dedup::new(4096);
/// assert!(d.add(7, 1) && d.add(7, 2));
/// assert!(!d.add(7, 2)); // a duplicate
/// assert_eq!(d.floor(7), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    max_pending: usize,
    /// producer -> (floor, applied sequences >= floor + 1).
    producers: HashMap<u64, (u64, BTreeSet<u64>)>,
    gaps: u64,
}

impl Default for Dedup {
    /// As [`Dedup::new`]`(4096)`.
    fn default() -> Self {
        Self::new(4096)
    }
}

impl Dedup {
    /// An empty record keeping at most `max_pending` out-of-order sequences
    /// per producer (at least 1).
    #[must_use]
    pub fn new(max_pending: usize) -> Self {
        Self {
            max_pending: max_pending.max(1),
            producers: HashMap::new(),
            gaps: 0,
        }
    }

    /// The most out-of-order sequences kept per producer.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringstat::wire::Dedup::new(64).max_pending(), 64);
    /// ```
    #[must_use]
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// `true` if the frame `(producer, sequence)` was applied already.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut d = ringstat::wire::Dedup::default();
    /// assert!(!d.seen(1, 5));
    /// d.add(1, 5);
    /// assert!(d.seen(1, 5) && d.seen(1, 4) && !d.seen(1, 6));
    /// ```
    #[must_use]
    pub fn seen(&self, producer: u64, sequence: u64) -> bool {
        self.producers
            .get(&producer)
            .is_some_and(|(floor, above)| sequence < *floor || above.contains(&sequence))
    }

    /// Records the frame as applied; `false` if it already was.
    pub fn add(&mut self, producer: u64, sequence: u64) -> bool {
        if self.seen(producer, sequence) {
            return false;
        }
        let (floor, above) = self
            .producers
            .entry(producer)
            .or_insert_with(|| (sequence, BTreeSet::new()));
        above.insert(sequence);
        Self::raise(floor, above);
        if above.len() > self.max_pending {
            if let Some(&low) = above.first() {
                self.gaps += low - *floor;
                *floor = low;
                Self::raise(floor, above);
            }
        }
        true
    }

    /// Moves `floor` up over the applied sequences right above it.
    fn raise(floor: &mut u64, above: &mut BTreeSet<u64>) {
        while above.first() == Some(floor) {
            above.pop_first();
            *floor = floor.saturating_add(1);
        }
    }

    /// The producer's floor (every sequence below it is applied), `None` if
    /// never seen.
    #[must_use]
    pub fn floor(&self, producer: u64) -> Option<u64> {
        self.producers.get(&producer).map(|(f, _)| *f)
    }

    /// Sequences skipped for good because a producer's pending set
    /// overflowed.
    #[must_use]
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// The producers seen.
    #[must_use]
    pub fn producers(&self) -> usize {
        self.producers.len()
    }

    /// The state, for a checkpoint: per producer (sorted by id) its floor
    /// and the applied sequences above it (ascending); the inverse of
    /// [`from_state`](Self::from_state).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::wire::Dedup;
    /// let mut d = Dedup::default();
    /// d.add(3, 1);
    /// d.add(3, 4);
    /// let (state, gaps) = d.state();
    /// assert_eq!(state, [(3, 2, vec![4])]);
    /// assert_eq!(Dedup::from_state(&state, gaps, 4096), d);
    /// ```
    #[must_use]
    pub fn state(&self) -> (Vec<(u64, u64, Vec<u64>)>, u64) {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .map(|(&p, (f, above))| (p, *f, above.iter().copied().collect()))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        (v, self.gaps)
    }

    /// A record from [`state`](Self::state)'s parts; sequences below a
    /// producer's floor are ignored.
    #[must_use]
    pub fn from_state(state: &[(u64, u64, Vec<u64>)], gaps: u64, max_pending: usize) -> Self {
        let mut d = Self::new(max_pending);
        d.gaps = gaps;
        for (p, f, above) in state {
            let mut floor = *f;
            let mut set: BTreeSet<u64> = above.iter().copied().filter(|&s| s >= floor).collect();
            Self::raise(&mut floor, &mut set);
            d.producers.insert(*p, (floor, set));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_and_gaps() {
        let mut d = Dedup::new(2);
        assert!(d.add(1, 10));
        assert!(d.add(1, 12));
        assert!(d.add(1, 13));
        assert_eq!((d.floor(1), d.gaps()), (Some(11), 0));
        assert!(!d.add(1, 12));
        assert!(d.add(1, 15)); // three pending past 2: floor jumps to 12
        assert_eq!((d.floor(1), d.gaps()), (Some(14), 1));
        assert!(d.seen(1, 11) && !d.seen(1, 14) && d.seen(1, 15));
        assert!(d.add(1, 14));
        assert_eq!(d.floor(1), Some(16));
        assert!(d.add(2, 0) && d.add(2, u64::MAX) && !d.add(2, 0));
        let (s, g) = d.state();
        assert_eq!(Dedup::from_state(&s, g, 2), d);
    }
}
