//! [`SharedQueue`]: a bounded MPMC queue of byte messages in a named shared
//! region, used by many processes at once, that a killed process cannot
//! wedge.
//!
//! See [`SharedQueue`] for the algorithm and what a killed process can lose.

use core::fmt;
use std::time::{Duration, Instant};

use crate::shm::{Kind, Options, Region, ShmError};
use crate::sync::{fence, AtomicU32, AtomicU64, Backoff, Mutex, Ordering, StdArc};

mod notify;
pub use notify::{SharedSide, SharedWaitError};

/// The region kind of a shared queue (layout version 1).
pub const SHARED_QUEUE_KIND: Kind = Kind::new(*b"QUEU", 1);

/// The most participants (attached handles in distinct registrations) a
/// queue can track: the width of the stamp's participant field.
pub const MAX_PROCESSES: usize = 1 << IDX_BITS;

/// The largest message slot (1 GiB).
pub const MAX_SLOT_SIZE: usize = 1 << 30;

/// The largest capacity (2^30 slots).
pub const MAX_SHARED_CAPACITY: usize = 1 << 30;

// Stamp layout: position << 14 | participant << 2 | state.
const IDX_BITS: u32 = 12;
const POS_SHIFT: u32 = 2 + IDX_BITS;
const POS_MASK: u64 = (1 << (64 - POS_SHIFT)) - 1;
const EMPTY: u64 = 0;
const WRITING: u64 = 1;
const FULL: u64 = 2;
const READING: u64 = 3;

// Payload layout (byte offsets). The parameters, then one cache line each
// for the hot words, then the participant table, then the slots.
const P_CAPACITY: usize = 0;
const P_SLOT_SIZE: usize = 8;
const P_PROCESSES: usize = 16;
const P_STRIDE: usize = 24;
const P_SLOTS: usize = 32;
const TAIL: usize = 64;
const HEAD: usize = 128;
const DATA_SEQ: usize = 192; // u32 futex word: bumped when a message lands
const POP_WAITERS: usize = 196; // u32: consumers sleeping on DATA_SEQ
const SPACE_SEQ: usize = 256; // u32 futex word: bumped when a slot frees
const PUSH_WAITERS: usize = 260; // u32: producers sleeping on SPACE_SEQ
const CLOSED: usize = 320; // u32: 1 once closed
const LOST: usize = 328; // u64: slots reclaimed from dead participants
const TABLE: usize = 384;
// Participant entry: owner word (u64), pop waiters (u32), push waiters (u32).
const ENTRY: usize = 16;
// Slot: stamp (u64), message length (u32), padding, then the message.
const SLOT_HEADER: usize = 16;

/// How long a blocked operation sleeps before it re-checks for dead
/// participants (a wake-up normally comes much sooner).
const RECHECK: Duration = Duration::from_millis(100);

#[inline]
fn enc(pos: u64, state: u64, idx: u64) -> u64 {
    ((pos & POS_MASK) << POS_SHIFT) | (idx << 2) | state
}

#[inline]
fn st_pos(s: u64) -> u64 {
    s >> POS_SHIFT
}

#[inline]
fn st_state(s: u64) -> u64 {
    s & 3
}

#[inline]
fn st_idx(s: u64) -> usize {
    ((s >> 2) & ((1 << IDX_BITS) - 1)) as usize
}

/// `a` is after `b` in position order (modulo the stamp's 50 bits).
#[inline]
fn pos_after(a: u64, b: u64) -> bool {
    let d = a.wrapping_sub(b) & POS_MASK;
    d != 0 && d < (1 << 48)
}

const fn align64(n: usize) -> usize {
    (n + 63) & !63
}

/// Options of [`SharedQueue::create`].
#[derive(Clone, Debug)]
pub struct SharedQueueOptions {
    /// How many processes (more exactly, handles) can be registered at once
    /// (default 128; at most [`MAX_PROCESSES`]). Dead ones are swept.
    pub max_processes: usize,
    /// Mode and attach waits of the region.
    pub region: Options,
}

impl Default for SharedQueueOptions {
    fn default() -> Self {
        Self {
            max_processes: 128,
            region: Options::default(),
        }
    }
}

/// Why a shared queue could not be created or attached.
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedQueueError {
    /// The region could not be created or attached.
    Shm(ShmError),
    /// A parameter is out of range.
    InvalidArgument(String),
    /// The region's queue parameters are inconsistent with its size.
    BadLayout {
        /// The region name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for SharedQueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shm(e) => fmt::Display::fmt(e, f),
            Self::InvalidArgument(s) => f.write_str(s),
            Self::BadLayout { name, reason } => {
                write!(f, "shared queue {name:?} has a bad layout: {reason}")
            }
        }
    }
}

impl std::error::Error for SharedQueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Shm(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ShmError> for SharedQueueError {
    fn from(e: ShmError) -> Self {
        Self::Shm(e)
    }
}

/// A push that did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a failed push did not enqueue the message"]
pub enum SharedPushError {
    /// The queue was full (for timed pushes: still full at the deadline).
    Full,
    /// The queue was closed.
    Closed,
    /// The message is longer than the slot size fixed at creation.
    TooLarge {
        /// The message length.
        len: usize,
        /// The slot size.
        max: usize,
    },
    /// The participant table is full of live processes.
    TooManyProcesses {
        /// Its size.
        max: usize,
    },
}

/// A pop that returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedPopError {
    /// The queue was empty (for timed pops: still empty at the deadline).
    Empty,
    /// The queue was closed and is empty.
    Closed,
    /// The participant table is full of live processes.
    TooManyProcesses {
        /// Its size.
        max: usize,
    },
}

impl fmt::Display for SharedPushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("shared queue is full"),
            Self::Closed => f.write_str("shared queue is closed"),
            Self::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes is larger than the queue's slot size ({max} bytes)"
            ),
            Self::TooManyProcesses { max } => {
                write!(
                    f,
                    "shared queue has {max} live participants: no room to register"
                )
            }
        }
    }
}

impl fmt::Display for SharedPopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("shared queue is empty"),
            Self::Closed => f.write_str("shared queue is closed and empty"),
            Self::TooManyProcesses { max } => {
                write!(
                    f,
                    "shared queue has {max} live participants: no room to register"
                )
            }
        }
    }
}

impl std::error::Error for SharedPushError {}
impl std::error::Error for SharedPopError {}

/// A bounded multi-producer multi-consumer queue of byte messages in a
/// named shared-memory region. Each process attaches by name; a process
/// killed at any instruction never wedges the others.
///
/// # Algorithm
///
/// Vyukov's slot-stamp ring, as in [`Queue`](crate::Queue), over offsets in a
/// [`Region`]. One change makes it crash-safe: a slot is claimed by a CAS on
/// its *stamp* (not on `tail`/`head`), and the claimed stamp names the
/// claimer. A stamp packs a position (50 bits), the claimer's participant
/// index (12 bits) and a state (2 bits):
///
/// - `EMPTY(p)`: free for the producer of position `p`;
/// - `WRITING(p, e)`: claimed by participant `e`, message being copied in;
/// - `FULL(p)`: holds the message of position `p`;
/// - `READING(p, e)`: claimed by consumer `e`, being copied out; then
///   `EMPTY(p + capacity)`.
///
/// `tail` and `head` only say where to look next; whoever sees a claimed
/// stamp at `tail` (`head`) moves it on, so a claimer that dies right after
/// its claim does not stop the indices.
///
/// # Kill safety
///
/// Each process registers in a participant table (its pid and start time,
/// see [`Owner`](crate::shm::Owner)). A slot left `WRITING` or `READING` by
/// a participant that is dead (the process is gone, or its pid now names
/// another process) is reset to `EMPTY(p + capacity)` by whoever meets it,
/// and counted in [`lost`](Self::lost). Exactly this can be lost: the
/// message a producer was copying in when it died (its push never
/// returned), and the message a consumer was copying out when it died (its
/// pop never returned); at most one per thread of the killed process.
/// Nothing else is lost or duplicated. A process killed while blocked holds
/// no slot; its waiter count costs at most extra wake-up calls until
/// [`sweep`](Self::sweep) (which blocked waits run on their periodic
/// re-check) frees its table entry.
///
/// Blocking waits sleep on futex words in the region (process-shared, no
/// mutex) with a bounded timeout, and re-check liveness when it expires.
///
/// Limits: every process using a queue must see the others' pids (one pid
/// namespace), or a live one could be taken for dead. A push that races
/// with [`close`](Self::close) may land just after it; pops that go on
/// until `Closed` still deliver it. Message bytes are copied in and out of
/// memory that any process with access to the name can write: a hostile
/// process can corrupt messages (never make a pop read out of bounds).
///
/// # Examples
///
/// ```
/// use ringstat::queue::{SharedQueue, SharedQueueOptions};
///
/// let name = format!("ringstat-doc-queue-{}", std::process::id());
/// let opts = SharedQueueOptions::default();
/// let q = SharedQueue::create(&name, 8, 64, &opts).unwrap();
/// // Another process would do this (here: a second handle).
/// let other = SharedQueue::attach(&name, &opts).unwrap();
/// q.try_push(b"login").unwrap();
/// assert_eq!(other.try_pop().unwrap(), b"login");
/// assert!(q.try_push(&[0; 65]).is_err()); // larger than a slot
/// q.unlink().unwrap();
/// ```
pub struct SharedQueue {
    region: StdArc<Region>,
    capacity: u64,
    slot_size: usize,
    stride: usize,
    slots: usize,
    max_processes: usize,
    /// This handle's registration: `fork generation << 32 | (entry + 1)`,
    /// 0 before the first operation. A forked child sees another
    /// generation and registers itself.
    me: AtomicU64,
    /// Serialises (re-)registration of this handle.
    reg: Mutex<()>,
    /// The async waits of this handle (see `notify`), made on first use.
    notifier: Mutex<Option<StdArc<notify::Notifier>>>,
}

impl fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedQueue")
            .field("name", &self.region.name())
            .field("capacity", &self.capacity)
            .field("slot_size", &self.slot_size)
            .field("len", &self.len())
            .field("lost", &self.lost())
            .finish()
    }
}

impl Clone for SharedQueue {
    /// Another handle on the same mapping, with its own registration.
    fn clone(&self) -> Self {
        Self {
            region: StdArc::clone(&self.region),
            capacity: self.capacity,
            slot_size: self.slot_size,
            stride: self.stride,
            slots: self.slots,
            max_processes: self.max_processes,
            me: AtomicU64::new(0),
            reg: Mutex::new(()),
            notifier: Mutex::new(None),
        }
    }
}

/// The payload size for these parameters, or why they are invalid.
fn layout(
    capacity: usize,
    slot_size: usize,
    max_processes: usize,
) -> Result<(usize, usize, usize), String> {
    if capacity == 0 || capacity > MAX_SHARED_CAPACITY {
        return Err(format!(
            "capacity must be in 1..={MAX_SHARED_CAPACITY}, got {capacity}"
        ));
    }
    if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
        return Err(format!(
            "slot_size must be in 1..={MAX_SLOT_SIZE}, got {slot_size}"
        ));
    }
    if max_processes == 0 || max_processes > MAX_PROCESSES {
        return Err(format!(
            "max_processes must be in 1..={MAX_PROCESSES}, got {max_processes}"
        ));
    }
    let stride = align64(SLOT_HEADER + slot_size);
    let slots = align64(TABLE + max_processes * ENTRY);
    let total = stride
        .checked_mul(capacity)
        .and_then(|s| s.checked_add(slots))
        .filter(|&t| t as u64 <= crate::shm::MAX_PAYLOAD)
        .ok_or_else(|| "capacity x slot_size is too large".to_owned())?;
    Ok((stride, slots, total))
}

fn init_layout(r: &Region, capacity: usize, slot_size: usize, max_processes: usize) {
    let (stride, slots, _) = layout(capacity, slot_size, max_processes).expect("checked");
    // Relaxed: the region is not published yet; publishing it (Release)
    // makes these visible.
    r.u64_at(P_CAPACITY)
        .store(capacity as u64, Ordering::Relaxed);
    r.u64_at(P_SLOT_SIZE)
        .store(slot_size as u64, Ordering::Relaxed);
    r.u64_at(P_PROCESSES)
        .store(max_processes as u64, Ordering::Relaxed);
    r.u64_at(P_STRIDE).store(stride as u64, Ordering::Relaxed);
    r.u64_at(P_SLOTS).store(slots as u64, Ordering::Relaxed);
    for i in 0..capacity {
        r.u64_at(slots + i * stride)
            .store(enc(i as u64, EMPTY, 0), Ordering::Relaxed);
    }
}

/// This process's owner word for the participant table.
fn my_owner_word() -> u64 {
    #[cfg(not(ringstat_loom))]
    {
        crate::shm::Owner::current().pack()
    }
    #[cfg(ringstat_loom)]
    {
        // Each loom thread plays a process.
        LOOM_TAG | (crate::sync::thread_index() as u64 + 1)
    }
}

#[cfg(ringstat_loom)]
const LOOM_TAG: u64 = 1 << 40;
#[cfg(ringstat_loom)]
const LOOM_DEAD: u64 = 1 << 41;

/// Whether the owner of a table word is dead (0: no owner, so nobody can
/// still be writing under it).
fn word_dead(word: u64) -> bool {
    if word == 0 {
        return true;
    }
    #[cfg(not(ringstat_loom))]
    {
        crate::shm::Owner::unpack(word).is_some_and(|o| !o.is_alive())
    }
    #[cfg(ringstat_loom)]
    {
        word & LOOM_DEAD != 0
    }
}

impl SharedQueue {
    /// Creates the queue `name` with `capacity` slots of `slot_size` bytes.
    /// Fails if the name exists.
    #[cfg(not(ringstat_loom))]
    pub fn create(
        name: &str,
        capacity: usize,
        slot_size: usize,
        opts: &SharedQueueOptions,
    ) -> Result<Self, SharedQueueError> {
        let (_, _, total) = layout(capacity, slot_size, opts.max_processes)
            .map_err(SharedQueueError::InvalidArgument)?;
        let mp = opts.max_processes;
        let r = Region::create(name, SHARED_QUEUE_KIND, total, &opts.region, |r| {
            init_layout(r, capacity, slot_size, mp);
        })?;
        Self::from_region(r)
    }

    #[cfg(not(ringstat_loom))]
    /// Attaches the existing queue `name` (created by any process).
    pub fn attach(name: &str, opts: &SharedQueueOptions) -> Result<Self, SharedQueueError> {
        Self::from_region(Region::attach(name, SHARED_QUEUE_KIND, &opts.region)?)
    }

    #[cfg(not(ringstat_loom))]
    /// Attaches `name`, or creates it with these parameters if it does not
    /// exist. An existing queue keeps its own parameters (see
    /// [`capacity`](Self::capacity) and [`slot_size`](Self::slot_size)).
    pub fn create_or_attach(
        name: &str,
        capacity: usize,
        slot_size: usize,
        opts: &SharedQueueOptions,
    ) -> Result<Self, SharedQueueError> {
        let (_, _, total) = layout(capacity, slot_size, opts.max_processes)
            .map_err(SharedQueueError::InvalidArgument)?;
        let mp = opts.max_processes;
        let (r, _) = Region::create_or_attach(name, SHARED_QUEUE_KIND, total, &opts.region, |r| {
            init_layout(r, capacity, slot_size, mp);
        })?;
        Self::from_region(r)
    }

    /// A queue in private heap memory (not shared): the same code in one
    /// process, for tests and models.
    pub fn heap(
        capacity: usize,
        slot_size: usize,
        max_processes: usize,
    ) -> Result<Self, SharedQueueError> {
        let (_, _, total) = layout(capacity, slot_size, max_processes)
            .map_err(SharedQueueError::InvalidArgument)?;
        let r = Region::heap(SHARED_QUEUE_KIND, total, |r| {
            init_layout(r, capacity, slot_size, max_processes);
        });
        Self::from_region(r)
    }

    /// Validates the queue parameters stored in an attached region against
    /// its size: a region is input from another process.
    fn from_region(region: Region) -> Result<Self, SharedQueueError> {
        let bad = |reason: String| SharedQueueError::BadLayout {
            name: region.name().unwrap_or("<heap>").to_owned(),
            reason,
        };
        if region.payload_len() < TABLE {
            return Err(bad("payload smaller than the queue header".into()));
        }
        // Relaxed: the region was published (Release/Acquire) after these
        // were written, and they never change.
        let get = |off| usize::try_from(region.u64_at(off).load(Ordering::Relaxed)).ok();
        let (Some(capacity), Some(slot_size), Some(mp), Some(stride), Some(slots)) = (
            get(P_CAPACITY),
            get(P_SLOT_SIZE),
            get(P_PROCESSES),
            get(P_STRIDE),
            get(P_SLOTS),
        ) else {
            return Err(bad("parameters out of range".into()));
        };
        let (e_stride, e_slots, e_total) = layout(capacity, slot_size, mp).map_err(bad)?;
        if e_stride != stride || e_slots != slots || e_total != region.payload_len() {
            return Err(bad(format!(
                "capacity {capacity}, slot size {slot_size}, {mp} processes do not match a \
                 payload of {} bytes",
                region.payload_len()
            )));
        }
        Ok(Self {
            region: StdArc::new(region),
            capacity: capacity as u64,
            slot_size,
            stride,
            slots,
            max_processes: mp,
            me: AtomicU64::new(0),
            reg: Mutex::new(()),
            notifier: Mutex::new(None),
        })
    }

    /// The region's name (`"/name"`), `None` for a heap queue.
    pub fn name(&self) -> Option<&str> {
        self.region.name()
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The largest message, in bytes.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many messages were lost to killed processes: slots a dead
    /// producer claimed and never filled, or a dead consumer claimed and
    /// never finished reading.
    pub fn lost(&self) -> u64 {
        // Relaxed: a statistic.
        self.region.u64_at(LOST).load(Ordering::Relaxed)
    }

    /// Removes the queue's name (see [`crate::shm::cleanup`]); attached
    /// handles keep working.
    #[cfg(not(ringstat_loom))]
    pub fn unlink(&self) -> Result<bool, ShmError> {
        self.region.unlink()
    }

    /// Messages in the queue (a snapshot; claimed slots count as in).
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot.
        let tail = self.region.u64_at(TAIL).load(Ordering::Relaxed);
        let head = self.region.u64_at(HEAD).load(Ordering::Relaxed);
        tail.saturating_sub(head).min(self.capacity) as usize
    }

    /// `true` if [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the queue for every process: pushes fail with `Closed`, pops
    /// drain what is left and then fail with `Closed`; blocked calls wake
    /// up. `true` if this call closed it.
    pub fn close(&self) -> bool {
        // SeqCst: pairs with the SeqCst loads in `is_closed` so a pop that
        // finds the queue empty after its load of `closed` reports Closed.
        let was = self.region.u32_at(CLOSED).swap(1, Ordering::SeqCst);
        for (seq, _) in [(DATA_SEQ, POP_WAITERS), (SPACE_SEQ, PUSH_WAITERS)] {
            // Release: pairs with the Acquire load of the sequence in `wait`.
            self.region.u32_at(seq).fetch_add(1, Ordering::Release);
            crate::sync::futex_wake(self.region.u32_at(seq), u32::MAX);
        }
        was == 0
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        // SeqCst: pairs with the swap in `close`.
        self.region.u32_at(CLOSED).load(Ordering::SeqCst) != 0
    }

    fn tail(&self) -> &AtomicU64 {
        self.region.u64_at(TAIL)
    }

    fn head(&self) -> &AtomicU64 {
        self.region.u64_at(HEAD)
    }

    fn slot_off(&self, pos: u64) -> usize {
        self.slots + (pos % self.capacity) as usize * self.stride
    }

    fn entry_owner(&self, e: usize) -> &AtomicU64 {
        self.region.u64_at(TABLE + e * ENTRY)
    }

    fn entry_waiters(&self, e: usize, seq: usize) -> &AtomicU32 {
        let off = if seq == DATA_SEQ { 8 } else { 12 };
        self.region.u32_at(TABLE + e * ENTRY + off)
    }

    /// This handle's participant entry, registering on first use and after
    /// a fork.
    fn me(&self) -> Result<usize, usize> {
        let generation = crate::shm::fork_generation() & 0xffff_ffff;
        // Relaxed: the handle's own cache; the table entry is claimed by CAS.
        let v = self.me.load(Ordering::Relaxed);
        if v != 0 && v >> 32 == generation {
            return Ok((v & 0xffff_ffff) as usize - 1);
        }
        self.register(generation)
    }

    #[cold]
    fn register(&self, generation: u64) -> Result<usize, usize> {
        let _guard = self
            .reg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = self.me.load(Ordering::Relaxed);
        if v != 0 && v >> 32 == generation {
            return Ok((v & 0xffff_ffff) as usize - 1);
        }
        let word = my_owner_word();
        for _ in 0..2 {
            for e in 0..self.max_processes {
                let owner = self.entry_owner(e);
                // AcqRel: pairs with the Release store of 0 in `free_entry`
                // (we see the entry's waiter counts reset).
                if owner.load(Ordering::Relaxed) == 0
                    && owner
                        .compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.me
                        .store((generation << 32) | (e as u64 + 1), Ordering::Relaxed);
                    return Ok(e);
                }
            }
            self.sweep();
        }
        Err(self.max_processes)
    }

    /// Frees the participant entries of dead processes, reclaiming the
    /// slots they had claimed (counted in [`lost`](Self::lost)). Blocked
    /// operations run this on their periodic re-check, and registration
    /// when the table is full; returns how many entries were freed.
    pub fn sweep(&self) -> usize {
        let mut freed = 0;
        for e in 0..self.max_processes {
            // Acquire: pairs with the AcqRel registration CAS.
            let w = self.entry_owner(e).load(Ordering::Acquire);
            if w != 0 && word_dead(w) && self.reap(e, w) {
                freed += 1;
            }
        }
        freed
    }

    /// Takes over the dead entry `e` (owner word `w`), reclaims every slot
    /// it claimed, drops its waiter counts, and frees it. If we die midway
    /// the entry names us, and the next sweep redoes it.
    fn reap(&self, e: usize, w: u64) -> bool {
        let owner = self.entry_owner(e);
        // AcqRel: pairs with the dead owner's registration; our claim of
        // the entry excludes other reapers.
        if owner
            .compare_exchange(w, my_owner_word(), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        for i in 0..self.capacity {
            let stamp = self.region.u64_at(self.slots + i as usize * self.stride);
            // Acquire: pairs with the claim CASes.
            let s = stamp.load(Ordering::Acquire);
            if matches!(st_state(s), WRITING | READING) && st_idx(s) == e {
                self.reclaim(stamp, s);
            }
        }
        for (seq, global) in [(DATA_SEQ, POP_WAITERS), (SPACE_SEQ, PUSH_WAITERS)] {
            let n = self.entry_waiters(e, seq).swap(0, Ordering::Relaxed);
            if n != 0 {
                // Relaxed: the count only decides whether wakers call futex.
                let _ = self.region.u32_at(global).fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |c| Some(c.saturating_sub(n)),
                );
            }
        }
        // Release: pairs with the AcqRel registration CAS of the next user.
        owner.store(0, Ordering::Release);
        true
    }

    /// Resets a slot left claimed by a dead participant (stamp `s`) to
    /// empty for the next lap, counting a lost message. `false` if the
    /// stamp changed meanwhile (someone else reclaimed it).
    fn reclaim(&self, stamp: &AtomicU64, s: u64) -> bool {
        let next = enc(st_pos(s).wrapping_add(self.capacity), EMPTY, 0);
        // AcqRel: Release pairs with the Acquire stamp loads of the next
        // producer (as a consumer's free does); Acquire with the claim.
        if stamp
            .compare_exchange(s, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // Relaxed: a statistic.
            self.region.u64_at(LOST).fetch_add(1, Ordering::Relaxed);
            self.wake(SPACE_SEQ, PUSH_WAITERS, 1);
            true
        } else {
            false
        }
    }

    /// Whether the participant behind a claimed stamp is dead. An index
    /// outside the table (a corrupted stamp) counts as dead.
    fn claimer_dead(&self, s: u64) -> bool {
        let e = st_idx(s);
        // Acquire: pairs with the registration CAS and `reap`'s store.
        e >= self.max_processes || word_dead(self.entry_owner(e).load(Ordering::Acquire))
    }

    fn check_len(&self, len: usize) -> Result<(), SharedPushError> {
        if len > self.slot_size {
            return Err(SharedPushError::TooLarge {
                len,
                max: self.slot_size,
            });
        }
        Ok(())
    }

    /// Pushes `msg` if there is room, without waiting.
    ///
    /// # Errors
    ///
    /// [`Full`](SharedPushError::Full), [`Closed`](SharedPushError::Closed),
    /// [`TooLarge`](SharedPushError::TooLarge) if `msg` is longer than the
    /// slot size.
    pub fn try_push(&self, msg: &[u8]) -> Result<(), SharedPushError> {
        self.check_len(msg.len())?;
        let me = self
            .me()
            .map_err(|max| SharedPushError::TooManyProcesses { max })?;
        self.push_claimed(msg, me, true)
    }

    fn push_claimed(&self, msg: &[u8], me: usize, publish: bool) -> Result<(), SharedPushError> {
        let backoff = Backoff::new();
        loop {
            if self.is_closed() {
                return Err(SharedPushError::Closed);
            }
            // Relaxed: only picks the slot; the stamp load synchronises.
            let t = self.tail().load(Ordering::Relaxed);
            let off = self.slot_off(t);
            let stamp = self.region.u64_at(off);
            // Acquire: pairs with the Release of the consumer's free (or a
            // reclaim), so our copy-in follows its copy-out.
            let s = stamp.load(Ordering::Acquire);
            let p = st_pos(s);
            if p == t & POS_MASK {
                if st_state(s) == EMPTY {
                    // Acquire: as the load above.
                    if stamp
                        .compare_exchange_weak(
                            s,
                            enc(t, WRITING, me as u64),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        // Relaxed: `tail` is a hint; anyone may move it on.
                        let _ = self.tail().compare_exchange(
                            t,
                            t + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        if !publish {
                            return Ok(()); // test hook: "die" holding the claim
                        }
                        self.write_slot(off, msg);
                        // Release: pairs with the Acquire stamp load/claim of
                        // the consumer of `t`.
                        stamp.store(enc(t, FULL, 0), Ordering::Release);
                        self.wake(DATA_SEQ, POP_WAITERS, 1);
                        return Ok(());
                    }
                    continue;
                }
                // Claimed by someone already: move `tail` on for them.
                let _ =
                    self.tail()
                        .compare_exchange(t, t + 1, Ordering::Relaxed, Ordering::Relaxed);
                continue;
            }
            if p == t.wrapping_sub(self.capacity) & POS_MASK {
                // The previous lap's occupant is still there: full, unless
                // it is a claim whose owner died.
                match st_state(s) {
                    FULL => {
                        if self.tail().load(Ordering::Relaxed) == t {
                            return Err(SharedPushError::Full);
                        }
                        continue;
                    }
                    WRITING | READING => {}
                    _ => {
                        // EMPTY of the previous lap: a stale read; retry.
                        backoff.spin();
                        continue;
                    }
                }
                if !backoff.is_completed() {
                    backoff.snooze();
                    continue;
                }
                if self.claimer_dead(s) {
                    self.reclaim(stamp, s);
                    continue;
                }
                return Err(SharedPushError::Full);
            }
            if pos_after(p, t & POS_MASK) {
                // `tail` is behind: move it on.
                let _ =
                    self.tail()
                        .compare_exchange(t, t + 1, Ordering::Relaxed, Ordering::Relaxed);
                continue;
            }
            backoff.spin();
        }
    }

    fn write_slot(&self, off: usize, msg: &[u8]) {
        let len = u32::try_from(msg.len()).expect("slot_size <= 1 GiB");
        let dst = self.region.bytes_ptr(off + 8, 4 + 4 + self.slot_size);
        // SAFETY: we hold the slot's claim (stamp WRITING with our index),
        // so no other process reads or writes these bytes until we publish;
        // `bytes_ptr` checked the range (length word, padding, message of
        // at most `slot_size` bytes, which `check_len` ensured).
        unsafe {
            dst.cast::<[u8; 4]>().write(len.to_ne_bytes());
            core::ptr::copy_nonoverlapping(msg.as_ptr(), dst.add(8), msg.len());
        }
    }

    /// Pushes `msg`, waiting up to `timeout` for room (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push); `Full` only when the timeout
    /// elapses.
    pub fn push(&self, msg: &[u8], timeout: Option<Duration>) -> Result<(), SharedPushError> {
        self.check_len(msg.len())?;
        let me = self
            .me()
            .map_err(|max| SharedPushError::TooManyProcesses { max })?;
        let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
        if timeout.is_some_and(|d| d.is_zero()) {
            return self.push_claimed(msg, me, true);
        }
        // Spin, then yield, a few µs before sleeping: a consumer in another
        // process often frees a slot that soon, and a futex sleep and wake-up
        // cost several µs each.
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            match self.push_claimed(msg, me, true) {
                Err(SharedPushError::Full) => backoff.snooze(),
                r => return r,
            }
        }
        loop {
            match self.push_claimed(msg, me, true) {
                Err(SharedPushError::Full) => {}
                r => return r,
            }
            let r = self.wait(me, SPACE_SEQ, PUSH_WAITERS, deadline, || {
                match self.push_claimed(msg, me, true) {
                    Err(SharedPushError::Full) => None,
                    r => Some(r),
                }
            });
            match r {
                Some(r) => return r,
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(SharedPushError::Full)
                }
                None => {}
            }
        }
    }

    /// One sleep on the futex word `seq`: registers as a waiter (in the
    /// global count and this participant's entry), re-runs `attempt`, and
    /// sleeps until woken, the deadline, or [`RECHECK`] (then sweeps dead
    /// participants). `Some` if `attempt` finished the operation.
    fn wait<R>(
        &self,
        me: usize,
        seq: usize,
        waiters: usize,
        deadline: Option<Instant>,
        attempt: impl FnOnce() -> Option<R>,
    ) -> Option<R> {
        let seq_w = self.region.u32_at(seq);
        // Relaxed: the fence below orders these before the re-check.
        self.entry_waiters(me, seq).fetch_add(1, Ordering::Relaxed);
        self.region.u32_at(waiters).fetch_add(1, Ordering::Relaxed);
        // SeqCst fence: pairs with the fence in `wake` (Dekker): either the
        // waker sees our count, or our re-check sees its message (slot).
        fence(Ordering::SeqCst);
        // Acquire: pairs with the Release increment in `wake`/`close`.
        let seen = seq_w.load(Ordering::Acquire);
        let done = attempt();
        let mut timed_out_recheck = false;
        if done.is_none() {
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            if left != Some(Duration::ZERO) {
                let nap = left.map_or(RECHECK, |l| l.min(RECHECK));
                crate::sync::futex_wait(seq_w, seen, Some(nap));
                timed_out_recheck = seq_w.load(Ordering::Relaxed) == seen;
            }
        }
        // Relaxed: only wakers' decisions depend on the count.
        self.region.u32_at(waiters).fetch_sub(1, Ordering::Relaxed);
        self.entry_waiters(me, seq).fetch_sub(1, Ordering::Relaxed);
        if timed_out_recheck {
            self.sweep();
        }
        done
    }

    /// Wakes up to `n` sleepers on `seq` if any are registered.
    fn wake(&self, seq: usize, waiters: usize, n: u32) {
        // SeqCst fence: pairs with the fence in `wait`.
        fence(Ordering::SeqCst);
        if self.region.u32_at(waiters).load(Ordering::Relaxed) != 0 {
            let w = self.region.u32_at(seq);
            // Release: pairs with the Acquire load of the sequence in `wait`.
            w.fetch_add(1, Ordering::Release);
            crate::sync::futex_wake(w, n);
        }
    }

    /// Pops a message if one is ready and hands its bytes to `f` (while the
    /// slot is still claimed: no copy until `f` makes one).
    ///
    /// # Errors
    ///
    /// [`Empty`](SharedPopError::Empty), or [`Closed`](SharedPopError::Closed)
    /// once the queue is closed and empty.
    pub fn try_pop_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, SharedPopError> {
        let me = self
            .me()
            .map_err(|max| SharedPopError::TooManyProcesses { max })?;
        self.pop_claimed(me, f)
    }

    /// Pops a message if one is ready, into a new `Vec`.
    ///
    /// # Errors
    ///
    /// As [`try_pop_with`](Self::try_pop_with).
    pub fn try_pop(&self) -> Result<Vec<u8>, SharedPopError> {
        self.try_pop_with(<[u8]>::to_vec)
    }

    /// Pops a message, waiting up to `timeout` (`None`: forever), and hands
    /// its bytes to `f`.
    ///
    /// # Errors
    ///
    /// `Empty` when the timeout elapses; `Closed` once closed and empty.
    pub fn pop_with<R>(
        &self,
        timeout: Option<Duration>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SharedPopError> {
        let me = self
            .me()
            .map_err(|max| SharedPopError::TooManyProcesses { max })?;
        let deadline = timeout.and_then(|d| Instant::now().checked_add(d));
        let mut f = Some(f);
        if timeout.is_some_and(|d| d.is_zero()) {
            return self.pop_claimed_opt(me, &mut f);
        }
        // Spin, then yield, briefly before sleeping (as in `push`).
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            match self.pop_claimed_opt(me, &mut f) {
                Err(SharedPopError::Empty) => backoff.snooze(),
                r => return r,
            }
        }
        loop {
            match self.pop_claimed_opt(me, &mut f) {
                Err(SharedPopError::Empty) => {}
                r => return r,
            }
            let r = self.wait(me, DATA_SEQ, POP_WAITERS, deadline, || {
                match self.pop_claimed_opt(me, &mut f) {
                    Err(SharedPopError::Empty) => None,
                    r => Some(r),
                }
            });
            match r {
                Some(r) => return r,
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(SharedPopError::Empty)
                }
                None => {}
            }
        }
    }

    /// Pops a message, waiting up to `timeout` (`None`: forever).
    ///
    /// # Errors
    ///
    /// As [`pop_with`](Self::pop_with).
    pub fn pop(&self, timeout: Option<Duration>) -> Result<Vec<u8>, SharedPopError> {
        self.pop_with(timeout, <[u8]>::to_vec)
    }

    fn pop_claimed_opt<R>(
        &self,
        me: usize,
        f: &mut Option<impl FnOnce(&[u8]) -> R>,
    ) -> Result<R, SharedPopError> {
        self.pop_inner(me, true, |b| (f.take().expect("called once"))(b))
    }

    fn pop_claimed<R>(&self, me: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R, SharedPopError> {
        self.pop_inner(me, true, f)
    }

    fn pop_inner<R>(
        &self,
        me: usize,
        finish: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SharedPopError> {
        let backoff = Backoff::new();
        loop {
            // Relaxed: only picks the slot; the stamp load synchronises.
            let h = self.head().load(Ordering::Relaxed);
            let off = self.slot_off(h);
            let stamp = self.region.u64_at(off);
            // Acquire: pairs with the producer's Release publish.
            let s = stamp.load(Ordering::Acquire);
            let p = st_pos(s);
            if p == h & POS_MASK {
                match st_state(s) {
                    FULL => {
                        // Acquire: pairs with the producer's Release publish.
                        if stamp
                            .compare_exchange_weak(
                                s,
                                enc(h, READING, me as u64),
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_err()
                        {
                            continue;
                        }
                        // Relaxed: `head` is a hint; anyone may move it on.
                        let _ = self.head().compare_exchange(
                            h,
                            h + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        if !finish {
                            // Test hook: "die" holding the claim.
                            return Err(SharedPopError::Empty);
                        }
                        // Frees the slot even if `f` panics (a live process
                        // must not leave a claim behind).
                        let guard = FreeOnDrop {
                            q: self,
                            stamp,
                            next: enc(h.wrapping_add(self.capacity), EMPTY, 0),
                        };
                        let r = f(self.read_slot(off));
                        drop(guard);
                        return Ok(r);
                    }
                    EMPTY => {
                        return Err(if self.is_closed() && self.recheck_empty(h) {
                            SharedPopError::Closed
                        } else {
                            SharedPopError::Empty
                        });
                    }
                    WRITING => {
                        // Its producer is copying in (or died doing so).
                        if !backoff.is_completed() {
                            backoff.snooze();
                            continue;
                        }
                        if self.claimer_dead(s) {
                            self.reclaim(stamp, s);
                            continue;
                        }
                        return Err(SharedPopError::Empty);
                    }
                    _ => {
                        // READING: claimed by another consumer: move on.
                        let _ = self.head().compare_exchange(
                            h,
                            h + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        continue;
                    }
                }
            }
            if pos_after(p, h & POS_MASK) {
                // Position `h` was consumed or reclaimed: `head` is behind.
                let _ =
                    self.head()
                        .compare_exchange(h, h + 1, Ordering::Relaxed, Ordering::Relaxed);
                continue;
            }
            if self.head().load(Ordering::Relaxed) != h {
                continue;
            }
            // The previous lap's consumer is still reading: nothing for `h`.
            return Err(if self.is_closed() && self.recheck_empty(h) {
                SharedPopError::Closed
            } else {
                SharedPopError::Empty
            });
        }
    }

    /// After seeing `closed`: is the queue still empty at `h` (no producer
    /// that passed its closed check before the close is still writing)?
    fn recheck_empty(&self, h: u64) -> bool {
        // Relaxed: positions only; a push claimed before the close moved
        // `tail` past `h` (or its stamp shows WRITING, seen on retry).
        self.tail().load(Ordering::Relaxed) <= h
    }

    fn read_slot(&self, off: usize) -> &[u8] {
        let p = self.region.bytes_ptr(off + 8, 8 + self.slot_size);
        // SAFETY: we hold the slot's claim (READING with our index), so its
        // bytes are stable until we free it; the length is clamped to the
        // slot so a corrupted length never reads past it.
        unsafe {
            let len = u32::from_ne_bytes(p.cast::<[u8; 4]>().read()) as usize;
            core::slice::from_raw_parts(p.add(8), len.min(self.slot_size))
        }
    }

    /// Pushes every message in `msgs` that fits without waiting, in order;
    /// returns how many were pushed (stops at the first failure, which is
    /// returned if nothing was pushed).
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push), for the first message.
    pub fn try_push_many<'a>(
        &self,
        msgs: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<usize, SharedPushError> {
        let mut n = 0;
        for m in msgs {
            match self.try_push(m) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Test hook for loom models and kill tests: claims a push slot and
    /// returns without writing or publishing it, as a producer killed
    /// right after its claim would.
    #[doc(hidden)]
    pub fn debug_claim_push_and_stop(&self) -> Result<(), SharedPushError> {
        let me = self
            .me()
            .map_err(|max| SharedPushError::TooManyProcesses { max })?;
        self.push_claimed(&[], me, false)
    }

    /// Test hook: claims a pop slot and returns without reading or freeing
    /// it, as a consumer killed mid-pop would.
    #[doc(hidden)]
    pub fn debug_claim_pop_and_stop(&self) {
        if let Ok(me) = self.me() {
            let _ = self.pop_inner(me, false, |_| ());
        }
    }

    /// Test hook for loom models: marks this handle's process dead, as a
    /// liveness check would find it after a SIGKILL.
    #[cfg(ringstat_loom)]
    #[doc(hidden)]
    pub fn debug_die(&self) {
        if let Ok(me) = self.me() {
            self.entry_owner(me).fetch_or(LOOM_DEAD, Ordering::Relaxed);
        }
    }
}

/// Frees a claimed slot for the next lap when the read is over.
struct FreeOnDrop<'a> {
    q: &'a SharedQueue,
    stamp: &'a AtomicU64,
    next: u64,
}

impl Drop for FreeOnDrop<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire stamp load/claim of the producer
        // of the next lap (our copy-out precedes its copy-in).
        self.stamp.store(self.next, Ordering::Release);
        self.q.wake(SPACE_SEQ, PUSH_WAITERS, 1);
    }
}

impl Drop for SharedQueue {
    fn drop(&mut self) {
        self.stop_notifier();
        // Free our entry if this process registered it (not one inherited
        // across a fork). No claim is held: every operation has returned.
        let v = self.me.load(Ordering::Relaxed);
        if v != 0 && v >> 32 == crate::shm::fork_generation() & 0xffff_ffff {
            let e = (v & 0xffff_ffff) as usize - 1;
            // Release: pairs with the registration CAS of the next user.
            let _ = self.entry_owner(e).compare_exchange(
                my_owner_word(),
                0,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}
