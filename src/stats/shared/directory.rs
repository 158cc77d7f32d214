//! The directory of a shared registry: fixed-size entries in shared words,
//! each claimed by one process with a compare-and-swap, filled, then
//! published; lookups probe linearly from the key's hash.
//!
//! No lock: a process that dies after claiming an entry and before
//! publishing it leaves the claim with its owner token; the next process
//! that finds the claim and sees the owner dead takes it over (the
//! `alive` callback decides, from pid and start time in real use). A
//! published entry never changes again, so readers need no protocol beyond
//! the Acquire load of its state.

use crate::sync::{AtomicU64, Backoff, Ordering};

/// Words per entry (384 bytes: three cache lines).
pub(crate) const ENTRY_WORDS: usize = 48;
/// Words of an entry's key.
const KEY_WORDS: usize = 32;
/// The longest key, in bytes.
pub(crate) const KEY_MAX: usize = KEY_WORDS * 8;
/// Words of an entry's kind-specific metadata, `META..META + META_WORDS`.
pub(crate) const META_WORDS: usize = 8;

/// Word of the state: `FREE`, `READY`, or `CLAIMED | owner token`.
const STATE: usize = 0;
/// Word of the key's hash.
const HASH: usize = 1;
/// Word of the key's length in bytes.
const KEY_LEN: usize = 2;
/// Word of the entry's data range in the registry's data area (see
/// `shared::mod`); kept by a failed or reclaimed claim so that the next
/// owner can reuse it.
pub(crate) const DATA: usize = 3;
/// First word of the metadata.
pub(crate) const META: usize = 4;
/// First word of the key.
const KEY: usize = 16;

/// State of an entry nobody has claimed.
pub(crate) const FREE: u64 = 0;
/// State of a published entry.
pub(crate) const READY: u64 = 1;
/// Bit of a claimed entry's state; the other bits are the owner's token.
pub(crate) const CLAIMED: u64 = 1 << 63;

/// 64-bit FNV-1a: a stable hash (the same in every process and build).
pub(crate) fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How [`Directory::get_or_insert`] found its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Published by someone (maybe this process, earlier).
    Existing(usize),
    /// Claimed, filled and published by this call; `true` when it took the
    /// claim over from a dead process.
    Created(usize, bool),
}

/// Why [`Directory::get_or_insert`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InsertError<E> {
    /// Every entry is taken by other keys.
    Full,
    /// The key is longer than [`KEY_MAX`].
    KeyTooLong,
    /// `init` failed; the claim was released.
    Init(E),
}

/// The entries: `words.len() / ENTRY_WORDS` of them.
#[derive(Clone, Copy)]
pub(crate) struct Directory<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Directory<'a> {
    /// A directory over `words` (a multiple of `ENTRY_WORDS` long). All
    /// zero is an empty directory.
    pub(crate) fn new(words: &'a [AtomicU64]) -> Self {
        debug_assert_eq!(words.len() % ENTRY_WORDS, 0);
        Self { words }
    }

    /// Number of entries.
    pub(crate) fn len(self) -> usize {
        self.words.len() / ENTRY_WORDS
    }

    /// Entry `i`'s words.
    pub(crate) fn entry(self, i: usize) -> &'a [AtomicU64] {
        &self.words[i * ENTRY_WORDS..(i + 1) * ENTRY_WORDS]
    }

    /// Entry `i` if it is published.
    pub(crate) fn ready(self, i: usize) -> Option<&'a [AtomicU64]> {
        let e = self.entry(i);
        // Acquire: pairs with the Release store of `READY` in
        // `get_or_insert`: the key and metadata written before it are seen.
        (e[STATE].load(Ordering::Acquire) == READY).then_some(e)
    }

    /// The key of a published entry (from [`ready`](Self::ready)).
    pub(crate) fn key(entry: &[AtomicU64]) -> Vec<u8> {
        // Relaxed: the entry was published (see `ready`); a length beyond
        // the key words would be a corrupt region: clamp, never overrun.
        let len = usize::try_from(entry[KEY_LEN].load(Ordering::Relaxed))
            .unwrap_or(KEY_MAX)
            .min(KEY_MAX);
        let mut out = Vec::with_capacity(len);
        for w in &entry[KEY..KEY + len.div_ceil(8)] {
            // Relaxed: as above.
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Whether published `entry` holds `key` (with hash `h`).
    fn holds(entry: &[AtomicU64], key: &[u8], h: u64) -> bool {
        // Relaxed: the caller loaded `READY` with Acquire.
        entry[HASH].load(Ordering::Relaxed) == h && Self::key(entry) == key
    }

    /// Writes `key` into a claimed entry.
    fn fill(entry: &[AtomicU64], key: &[u8], h: u64) {
        // Relaxed: published by the Release store of `READY`.
        entry[HASH].store(h, Ordering::Relaxed);
        entry[KEY_LEN].store(key.len() as u64, Ordering::Relaxed);
        for (k, chunk) in key.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            entry[KEY + k].store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }

    /// The entry holding `key`, publishing a new one (filled by
    /// `init(index, entry, reclaimed)`) if there is none.
    ///
    /// `me` is the caller's owner token (non-zero, top bit clear); `alive`
    /// tells whether the owner of a token still runs. While another live
    /// process holds a claim on the way, this waits for it (a claim lasts a
    /// few writes); a claim whose owner is dead is taken over.
    pub(crate) fn get_or_insert<E>(
        self,
        key: &[u8],
        me: u64,
        alive: impl Fn(u64) -> bool,
        mut init: impl FnMut(usize, &[AtomicU64], bool) -> Result<(), E>,
    ) -> Result<Found, InsertError<E>> {
        debug_assert!(me != 0 && me & CLAIMED == 0 && me != READY);
        if key.len() > KEY_MAX {
            return Err(InsertError::KeyTooLong);
        }
        let n = self.len();
        if n == 0 {
            return Err(InsertError::Full);
        }
        let h = hash(key);
        let start = (h % n as u64) as usize;
        for probe in 0..n {
            let i = (start + probe) % n;
            let e = self.entry(i);
            let backoff = Backoff::new();
            loop {
                // Acquire: pairs with the Release store of `READY` below
                // (the key is read next) and of `FREE` after a failed init.
                let s = e[STATE].load(Ordering::Acquire);
                let reclaim = if s == READY {
                    if Self::holds(e, key, h) {
                        return Ok(Found::Existing(i));
                    }
                    break;
                } else if s == FREE {
                    false
                } else {
                    let owner = s & !CLAIMED;
                    if owner == me || alive(owner) {
                        // Another thread of this process, or a live process,
                        // is filling it: wait for its key.
                        backoff.snooze();
                        continue;
                    }
                    true
                };
                // Acquire on success: a reclaimed entry's `DATA` word (the
                // dead owner's allocation) is read by `init`. Acquire on
                // failure: the state is re-examined from the top.
                if e[STATE]
                    .compare_exchange(s, CLAIMED | me, Ordering::Acquire, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                Self::fill(e, key, h);
                if let Err(err) = init(i, e, reclaim) {
                    // Release: pairs with the Acquire loads of the state,
                    // so the next claimer sees the `DATA` word `init` left.
                    e[STATE].store(FREE, Ordering::Release);
                    return Err(InsertError::Init(err));
                }
                // Release: pairs with the Acquire loads of the state in this
                // function and in `ready`: key and metadata are written.
                e[STATE].store(READY, Ordering::Release);
                return Ok(Found::Created(i, reclaim));
            }
        }
        Err(InsertError::Full)
    }

    /// Claims the entry for `key` and stops, as a process killed between
    /// its claim and its publication would: for tests of the reclaim path.
    #[doc(hidden)]
    pub(crate) fn claim_and_die(self, key: &[u8], me: u64) -> bool {
        let h = hash(key);
        let n = self.len();
        let i = (h % n as u64) as usize;
        let e = self.entry(i);
        // Relaxed: a test helper; the claim publishes nothing.
        let ok = e[STATE]
            .compare_exchange(FREE, CLAIMED | me, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if ok {
            Self::fill(e, key, h);
        }
        ok
    }
}
