//! The process table of a shared registry: one slot per attached process,
//! claimed with a compare-and-swap, reused once its owner is dead, so the
//! table (and every per-process gauge cell) stays the same size however
//! many processes come and go.
//!
//! A slot's word is `FREE` (0), the owner's token (live as far as anyone
//! knows), `token | RESETTING` (claimed, per-process cells being zeroed), or
//! `token | DEAD` (its owner was seen dead; its gauge values stay readable
//! in the modes that report dead processes until the slot is reused).

use crate::sync::{AtomicU64, Ordering};

/// Words per slot (a cache line of 128 bytes).
pub(crate) const PROC_WORDS: usize = 16;
/// A slot being set up by the owner in its token.
pub(crate) const RESETTING: u64 = 1 << 63;
/// A slot whose owner was seen dead.
pub(crate) const DEAD: u64 = 1 << 62;
/// The token bits of a slot word.
pub(crate) const TOKEN: u64 = DEAD - 1;

/// The slots: `words.len() / PROC_WORDS` of them.
#[derive(Clone, Copy)]
pub(crate) struct Procs<'a> {
    words: &'a [AtomicU64],
}

/// What a slot says about its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Never used.
    Free,
    /// Owned by `token`, which may be alive.
    Owned(u64),
    /// Owned by `token`, which is being set up (not reported yet).
    Resetting(u64),
    /// Owned by `token`, which was seen dead.
    Dead(u64),
}

impl<'a> Procs<'a> {
    /// A table over `words` (a multiple of `PROC_WORDS` long); all zero is
    /// an empty table.
    pub(crate) fn new(words: &'a [AtomicU64]) -> Self {
        debug_assert_eq!(words.len() % PROC_WORDS, 0);
        Self { words }
    }

    /// Number of slots.
    pub(crate) fn len(self) -> usize {
        self.words.len() / PROC_WORDS
    }

    fn word(self, i: usize) -> &'a AtomicU64 {
        &self.words[i * PROC_WORDS]
    }

    /// Slot `i`'s state.
    pub(crate) fn state(self, i: usize) -> SlotState {
        // Acquire: pairs with the Release store in `publish`: the owner's
        // zeroed cells are seen once its token is.
        let s = self.word(i).load(Ordering::Acquire);
        if s == 0 {
            SlotState::Free
        } else if s & RESETTING != 0 {
            SlotState::Resetting(s & TOKEN)
        } else if s & DEAD != 0 {
            SlotState::Dead(s & TOKEN)
        } else {
            SlotState::Owned(s)
        }
    }

    /// A slot for `me`: the one it already owns, else a free one or one
    /// whose owner is dead (per `alive`), claimed as `RESETTING`. `Some((i,
    /// true))` means the caller must zero slot `i`'s cells and then
    /// [`publish`](Self::publish) it; `None`: every slot has a live owner.
    pub(crate) fn claim(self, me: u64, alive: impl Fn(u64) -> bool) -> Option<(usize, bool)> {
        debug_assert!(me != 0 && me & !TOKEN == 0);
        for i in 0..self.len() {
            if self.state(i) == SlotState::Owned(me) {
                return Some((i, false));
            }
        }
        for i in 0..self.len() {
            // Relaxed: the claiming CAS below is what decides.
            let s = self.word(i).load(Ordering::Relaxed);
            let takeable = match self.state_of(s) {
                SlotState::Free | SlotState::Dead(_) => true,
                SlotState::Owned(t) | SlotState::Resetting(t) => t != me && !alive(t),
            };
            // Acquire: pairs with the Release stores of the slot, so the
            // zeroing that follows is ordered after the old owner's writes
            // that were published with it.
            if takeable
                && self
                    .word(i)
                    .compare_exchange(s, me | RESETTING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Some((i, true));
            }
        }
        None
    }

    fn state_of(self, s: u64) -> SlotState {
        if s == 0 {
            SlotState::Free
        } else if s & RESETTING != 0 {
            SlotState::Resetting(s & TOKEN)
        } else if s & DEAD != 0 {
            SlotState::Dead(s & TOKEN)
        } else {
            SlotState::Owned(s)
        }
    }

    /// Ends the setup of slot `i` claimed by `me`.
    pub(crate) fn publish(self, i: usize, me: u64) {
        // Release: pairs with the Acquire load in `state`: readers that see
        // the token see the zeroed cells.
        self.word(i).store(me, Ordering::Release);
    }

    /// Records that `token`, the owner of slot `i`, is dead (if it still is
    /// the owner), so later readers need not ask again.
    pub(crate) fn mark_dead(self, i: usize, token: u64) {
        // Relaxed: a hint; the slot's cells are unchanged.
        let _ = self.word(i).compare_exchange(
            token,
            token | DEAD,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// Owner tokens of real processes: `pid << 32 | start time` (the start
/// time in clock ticks since boot, from `/proc/PID/stat`, low 32 bits), so
/// a reused pid is not mistaken for the process that died.
#[cfg(all(target_os = "linux", not(ringstat_loom)))]
pub(crate) mod liveness {
    use crate::sync::{AtomicU64, Ordering};

    /// The token of `pid`, or `None` if it is not running (gone, or a
    /// zombie waiting for its parent).
    pub(crate) fn token_of(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold anything: the
        // fields that follow start after the last `)`.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?;
        if state == "Z" || state == "X" || state == "x" {
            return None;
        }
        // `starttime` is field 22; `state` was field 3.
        let start: u64 = fields.nth(18)?.parse().ok()?;
        Some((u64::from(pid) << 32) | (start & 0xffff_ffff))
    }

    /// Whether the process of `token` still runs.
    pub(crate) fn alive(token: u64) -> bool {
        let Ok(pid) = u32::try_from((token & super::TOKEN) >> 32) else {
            return false;
        };
        token_of(pid) == Some(token)
    }

    /// The pid in `token`.
    pub(crate) fn pid(token: u64) -> u32 {
        u32::try_from((token & super::TOKEN) >> 32).unwrap_or(0)
    }

    /// The calling process's token (cached per pid, so a forked child
    /// computes its own).
    pub(crate) fn me() -> u64 {
        static CACHE: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        // Relaxed: a cache of a value any thread computes the same.
        let t = CACHE.load(Ordering::Relaxed);
        if t != 0 && (t >> 32) == u64::from(pid) {
            return t;
        }
        let t = token_of(pid).unwrap_or(u64::from(pid) << 32);
        CACHE.store(t, Ordering::Relaxed);
        t
    }
}
