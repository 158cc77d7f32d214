//! Metrics in memory shared between processes: the lock-free directory and
//! process table (`directory`, `procs`; also built under loom), and the
//! [`SharedRegistry`] over them (Linux).

pub(crate) mod directory;
pub(crate) mod procs;

#[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
mod memory;
#[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
mod registry;

#[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
pub use memory::{AnonymousMemory, SharedMemory};
#[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
pub use registry::{GaugeMode, SharedError, SharedOptions, SharedRegistry, SharedUsage};

/// A directory and process table on the heap, for the loom models and the
/// property tests of the lock-free parts (not part of the API).
#[doc(hidden)]
pub mod model {
    use super::directory::{Directory, Found, InsertError, ENTRY_WORDS};
    use super::procs::{Procs, SlotState, PROC_WORDS};
    use crate::stats::store::Store;
    use crate::sync::AtomicU64;

    /// Model tokens are shifted past the directory's state words (0 free,
    /// 1 published); real tokens (pid << 32) never collide with them.
    const SHIFT: u64 = 2;

    /// A directory of `entries` entries and a table of `slots` process
    /// slots, all zero.
    pub struct Model {
        dir: Store<AtomicU64>,
        procs: Store<AtomicU64>,
    }

    impl Model {
        /// An empty model.
        #[must_use]
        pub fn new(entries: usize, slots: usize) -> Self {
            Self {
                dir: Store::heap(entries * ENTRY_WORDS, |_| AtomicU64::new(0)),
                procs: Store::heap(slots * PROC_WORDS, |_| AtomicU64::new(0)),
            }
        }

        /// Gets or inserts `key` as process `me` (below 2^60);
        /// tokens in `dead` are dead. `Ok((index, created, reclaimed))`, or
        /// `Err("full" | "too long")`.
        pub fn get_or_insert(
            &self,
            key: &[u8],
            me: u64,
            dead: &[u64],
        ) -> Result<(usize, bool, bool), &'static str> {
            let dir = Directory::new(&self.dir);
            let alive = |t: u64| !dead.contains(&(t - SHIFT));
            match dir.get_or_insert(key, me + SHIFT, alive, |_, _, _| Ok::<(), ()>(())) {
                Ok(Found::Existing(i)) => Ok((i, false, false)),
                Ok(Found::Created(i, r)) => Ok((i, true, r)),
                Err(InsertError::Full) => Err("full"),
                Err(InsertError::KeyTooLong) => Err("too long"),
                Err(InsertError::Init(())) => Err("init"),
            }
        }

        /// Claims the entry `key` hashes to as `me` and stops there, as a
        /// process killed mid-registration; `false` if it was not free.
        pub fn claim_and_die(&self, key: &[u8], me: u64) -> bool {
            Directory::new(&self.dir).claim_and_die(key, me + SHIFT)
        }

        /// The key of entry `i` if it is published.
        #[must_use]
        pub fn key(&self, i: usize) -> Option<Vec<u8>> {
            Directory::new(&self.dir).ready(i).map(Directory::key)
        }

        /// Number of entries.
        #[must_use]
        pub fn entries(&self) -> usize {
            Directory::new(&self.dir).len()
        }

        /// Claims a process slot for `me` (tokens in `dead` are dead) and
        /// publishes it: `Some((slot, fresh))`, `None` when all are live.
        pub fn attach(&self, me: u64, dead: &[u64]) -> Option<(usize, bool)> {
            let procs = Procs::new(&self.procs);
            let (i, fresh) = procs.claim(me + SHIFT, |t| !dead.contains(&(t - SHIFT)))?;
            if fresh {
                procs.publish(i, me + SHIFT);
            }
            Some((i, fresh))
        }

        /// The owner token of slot `i` (`None`: free or being set up).
        #[must_use]
        pub fn owner(&self, i: usize) -> Option<u64> {
            match Procs::new(&self.procs).state(i) {
                SlotState::Owned(t) | SlotState::Dead(t) => Some(t - SHIFT),
                SlotState::Free | SlotState::Resetting(_) => None,
            }
        }
    }
}
