//! [`SharedRegistry`]: counters, gauges, histograms and rates in memory
//! shared between processes, updated lock-free from any of them, read live
//! by any of them as the same [`Snapshot`] a [`Registry`](crate::stats::Registry)
//! gives.
//!
//! The metrics are the in-process types ([`Counter`], [`Gauge`],
//! [`Histogram`], [`Rate`]) over cells that live in the shared memory
//! instead of the heap: one implementation for both.
//!
//! # Layout (all in 64-bit words from the start of the memory)
//!
//! - a header of 16 words: magic, layout version, the sizes below, the data
//!   area's allocation mark, counts of reclaimed entries and slots;
//! - the process table: one 16-word slot per attached process (owner token:
//!   pid and start time), reused once its owner is dead (`procs`);
//! - the directory: fixed entries (key, kind, configuration, data range),
//!   claimed by compare-and-swap and published once filled (`directory`);
//! - the data area: the metrics' cells, allocated by a bump mark and never
//!   freed (a metric, once registered, lives as long as the memory).
//!
//! No word is ever a lock: a process killed at any point leaves at worst a
//! claimed entry or slot whose owner is dead, which the next process that
//! needs it takes over.

use core::fmt;
use core::ptr::NonNull;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::directory::{Directory, Found, InsertError, DATA, ENTRY_WORDS, KEY_MAX, META};
use super::memory::SharedMemory;
use super::procs::{liveness, Procs, SlotState, DEAD as DEAD_BIT, PROC_WORDS};
use crate::stats::clock::BootClock;
use crate::stats::exposition::{
    exposed_names, validate_help, validate_label_name, validate_label_value, validate_metric_name,
};
use crate::stats::hist_front::{Cells, CELLS_HEAD};
use crate::stats::rate::{Line, RatePlan, LINE_WORDS};
use crate::stats::store::{Keep, Store};
use crate::stats::{
    Counter, Gauge, Histogram, HistogramConfig, MetricKind, MetricSnapshot, MetricValue, Rate,
    RateConfig, Snapshot, StatsError, DEFAULT_QUANTILES,
};
use crate::sync::{AtomicI64, AtomicU64, CachePadded, Mutex, Ordering, StdArc as Arc};

/// The kind of a named region holding a registry.
const REGION_KIND: crate::shm::Kind = crate::shm::Kind::new(*b"REGY", VERSION as u32);

/// A named region's payload, from its first 128-byte boundary (the
/// payload starts 64-aligned; padded cells need 128).
struct RegionMemory {
    /// Keeps the mapping (`None` while the region is being initialised).
    _region: Option<crate::shm::Region>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is process-wide memory, used only through atomics.
unsafe impl Send for RegionMemory {}
// SAFETY: as for `Send`.
unsafe impl Sync for RegionMemory {}

impl RegionMemory {
    /// The aligned range of `r`'s payload (not keeping `r`).
    fn new(r: &crate::shm::Region) -> Self {
        let total = r.payload_len();
        let base = r.bytes_ptr(0, total);
        let skip = base.align_offset(128).min(total);
        Self {
            _region: None,
            // SAFETY: `skip <= total`: still inside (or at the end of) the
            // payload.
            ptr: unsafe { base.add(skip) },
            len: total - skip,
        }
    }

    fn owned(r: crate::shm::Region) -> Self {
        Self {
            _region: None,
            ..Self::new(&r)
        }
        .keeping(r)
    }

    fn keeping(mut self, r: crate::shm::Region) -> Self {
        self._region = Some(r);
        self
    }
}

// SAFETY: a range of the region's payload, 128-aligned, mapped while the
// region (kept in `_region`) lives.
unsafe impl SharedMemory for RegionMemory {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// "RSTATSHM" in ASCII, little-endian: the first word of a registry.
const MAGIC: u64 = u64::from_le_bytes(*b"RSTATSHM");
/// The layout version; a registry of another version is refused.
const VERSION: u64 = 1;
/// Words of the header.
const HEADER_WORDS: usize = 16;
/// Header words.
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
const H_PROCS: usize = 2;
const H_ENTRIES: usize = 3;
const H_DATA: usize = 4;
const H_SHARDS: usize = 5;
const H_DATA_NEXT: usize = 6;
const H_RECLAIMED_ENTRIES: usize = 7;
const H_RECLAIMED_PROCS: usize = 8;
/// A header being written: `INITIALIZING | token` in the magic word.
const INITIALIZING: u64 = 1 << 63;
/// Data is allocated in whole cache lines (16 words), so padded cells
/// (counter shards, rate lines) are aligned.
const ALIGN_WORDS: usize = 16;

/// Key tags: what an entry of the directory is.
const TAG_SERIES: u8 = b'S';
const TAG_FAMILY: u8 = b'F';
const TAG_EXPOSED: u8 = b'X';
const TAG_HELP: u8 = b'H';

/// What a gauge reports across processes: every process writes its own
/// value (its in-flight requests), and a snapshot combines them.
///
/// The modes of `prometheus_client`'s multiprocess gauges: `Live*` modes
/// leave out processes that have died, the others keep a dead process's
/// last value until its process slot is reused by a new process.
/// [`All`](GaugeMode::All) and [`LiveAll`](GaugeMode::LiveAll) report one
/// series per process, with a `pid` label; the others one series. Min and
/// max are the smallest min and largest max any included process saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GaugeMode {
    /// One series per process (dead ones until their slot is reused).
    All,
    /// One series per live process.
    LiveAll,
    /// The sum over all processes (dead ones until their slot is reused).
    Sum,
    /// The sum over live processes (the default: in-flight work).
    #[default]
    LiveSum,
    /// The largest value of any process.
    Max,
    /// The largest value of a live process.
    LiveMax,
    /// The smallest value of any process.
    Min,
    /// The smallest value of a live process.
    LiveMin,
}

impl GaugeMode {
    /// Every mode, in code order.
    pub const ALL: [GaugeMode; 8] = [
        Self::All,
        Self::LiveAll,
        Self::Sum,
        Self::LiveSum,
        Self::Max,
        Self::LiveMax,
        Self::Min,
        Self::LiveMin,
    ];

    /// The mode's name as `prometheus_client` spells it (`all`,
    /// `liveall`, `sum`, `livesum`, `max`, `livemax`, `min`, `livemin`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::LiveAll => "liveall",
            Self::Sum => "sum",
            Self::LiveSum => "livesum",
            Self::Max => "max",
            Self::LiveMax => "livemax",
            Self::Min => "min",
            Self::LiveMin => "livemin",
        }
    }

    /// The mode called `name` (see [`name`](GaugeMode::name)).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    fn code(self) -> u64 {
        Self::ALL.iter().position(|&m| m == self).unwrap_or(0) as u64
    }

    fn from_code(c: u64) -> Self {
        usize::try_from(c)
            .ok()
            .and_then(|c| Self::ALL.get(c).copied())
            .unwrap_or_default()
    }

    /// Whether dead processes are left out.
    fn live_only(self) -> bool {
        matches!(
            self,
            Self::LiveAll | Self::LiveSum | Self::LiveMax | Self::LiveMin
        )
    }
}

impl fmt::Display for GaugeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sizes of a shared registry, fixed when its memory is first set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedOptions {
    /// Process slots: how many processes may be attached at once (slots of
    /// dead processes are reused).
    pub max_processes: usize,
    /// Directory entries. A series takes one; each metric family takes one
    /// plus one per name it exposes (`_total`, `_count`, ...), and a help
    /// text one.
    pub max_entries: usize,
    /// Bytes of metric cells (a counter takes `128 * counter_shards`, a
    /// gauge `24 * max_processes` rounded up to 128, a histogram 8 per
    /// bucket, a rate 8 per bucket per shard).
    pub data_bytes: usize,
    /// Shards of each counter and rate (a power of two): processes add to
    /// different cache lines.
    pub counter_shards: usize,
}

impl Default for SharedOptions {
    fn default() -> Self {
        Self {
            max_processes: 256,
            max_entries: 1024,
            data_bytes: 8 << 20,
            counter_shards: 16,
        }
    }
}

impl SharedOptions {
    /// The bytes of memory a registry with these sizes needs.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = ringstat::stats::SharedOptions::default();
    /// assert!(opts.bytes() > opts.data_bytes);
    /// ```
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.layout().map_or(usize::MAX, |l| l.total * 8)
    }

    fn layout(&self) -> Option<Layout> {
        let shards = self.counter_shards.max(1).checked_next_power_of_two()?;
        Layout::new(
            self.max_processes as u64,
            self.max_entries as u64,
            (self.data_bytes / 8)
                .div_ceil(ALIGN_WORDS)
                .checked_mul(ALIGN_WORDS)? as u64,
            shards as u64,
        )
    }
}

/// Where each part lives, in words.
#[derive(Debug, Clone, Copy)]
struct Layout {
    procs: usize,
    entries: usize,
    data_words: usize,
    shards: usize,
    procs_at: usize,
    dir_at: usize,
    data_at: usize,
    total: usize,
}

impl Layout {
    fn new(procs: u64, entries: u64, data_words: u64, shards: u64) -> Option<Self> {
        let procs = usize::try_from(procs).ok().filter(|&p| p >= 1)?;
        let entries = usize::try_from(entries).ok().filter(|&e| e >= 1)?;
        let data_words = usize::try_from(data_words)
            .ok()
            .filter(|d| d % ALIGN_WORDS == 0 && *d < (1 << 32))?;
        let shards = usize::try_from(shards)
            .ok()
            .filter(|s| s.is_power_of_two() && *s <= Counter::MAX_SHARDS)?;
        let procs_at = HEADER_WORDS;
        let dir_at = procs_at.checked_add(procs.checked_mul(PROC_WORDS)?)?;
        let data_at = dir_at.checked_add(entries.checked_mul(ENTRY_WORDS)?)?;
        let total = data_at.checked_add(data_words)?;
        // Bytes must fit a usize too.
        total.checked_mul(8)?;
        Some(Self {
            procs,
            entries,
            data_words,
            shards,
            procs_at,
            dir_at,
            data_at,
            total,
        })
    }
}

/// Errors of a [`SharedRegistry`].
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedError {
    /// A metric error, as from a [`Registry`](crate::stats::Registry).
    Stats(StatsError),
    /// The registry has no room left: `what` (directory entries, data bytes
    /// or process slots) is used up to `limit`.
    Full {
        /// What ran out.
        what: &'static str,
        /// Its size.
        limit: usize,
    },
    /// A name with its labels (or a help text) too long for an entry.
    KeyTooLong {
        /// The metric.
        name: String,
        /// Its encoded length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The memory does not hold a usable registry (foreign, wrong version,
    /// too small, misaligned); the text says which.
    Layout(String),
    /// The operating system refused (mapping memory).
    Io(std::io::Error),
    /// The named region could not be created or attached.
    Shm(crate::shm::ShmError),
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stats(e) => e.fmt(f),
            Self::Full { what, limit } => write!(
                f,
                "the shared registry is full: all {limit} {what} are used (make it with larger SharedOptions)"
            ),
            Self::KeyTooLong { name, len, max } => write!(
                f,
                "metric {name:?}: name and labels take {len} bytes, more than the {max} an entry holds"
            ),
            Self::Layout(why) => write!(f, "not a usable shared registry: {why}"),
            Self::Io(e) => write!(f, "shared memory: {e}"),
            Self::Shm(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stats(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Shm(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::shm::ShmError> for SharedError {
    fn from(e: crate::shm::ShmError) -> Self {
        Self::Shm(e)
    }
}

impl From<StatsError> for SharedError {
    fn from(e: StatsError) -> Self {
        Self::Stats(e)
    }
}

/// How full a shared registry is, and what it has reclaimed: what a
/// snapshot walks is `entries + process_slots`, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedUsage {
    /// Bytes of the memory the registry spans (fixed).
    pub bytes: usize,
    /// Directory entries (fixed).
    pub entries: usize,
    /// Directory entries in use.
    pub entries_used: usize,
    /// Process slots (fixed).
    pub process_slots: usize,
    /// Process slots ever claimed (free ones are never used again once a
    /// dead slot can be reused, so this stays at the peak of live processes).
    pub process_slots_used: usize,
    /// Data bytes allocated to metrics.
    pub data_used: usize,
    /// Claims of dead processes taken over: directory entries.
    pub reclaimed_entries: u64,
    /// Claims of dead processes taken over: process slots.
    pub reclaimed_slots: u64,
}

/// A handle to a metric of the local cache.
#[derive(Clone)]
enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
    Rate(Arc<Rate>),
}

/// This process's state of an attached registry.
struct Local {
    /// The process slot, for the pid that claimed it.
    slot: Option<(u32, usize)>,
    /// Handles made so far, by entry index (gauges: of `slot`).
    handles: HashMap<usize, Metric>,
}

struct Inner {
    /// The region's name, for a registry in a named region.
    name: Option<String>,
    /// Keeps the memory mapped (also held by every metric's cells).
    keep: Keep,
    base: NonNull<AtomicU64>,
    layout: Layout,
    local: Mutex<Local>,
    clock: Arc<BootClock>,
}

// SAFETY: `base` points into memory kept mapped by `keep` and only accessed
// through `&AtomicU64`; everything else is `Send + Sync`.
unsafe impl Send for Inner {}
// SAFETY: as for `Send`.
unsafe impl Sync for Inner {}

/// A registry of metrics in memory shared between processes.
///
/// The same methods as [`Registry`](crate::stats::Registry): `counter`, `gauge`,
/// `histogram`, `rate` get or create a series by name and labels and return
/// the in-process metric types, whose cells live in the shared memory;
/// [`snapshot`](SharedRegistry::snapshot) reads every process's numbers
/// into the same [`Snapshot`], so
/// [`to_prometheus`](Snapshot::to_prometheus) works unchanged.
///
/// - Counters, histograms and rates: every process adds to the same cells;
///   a dead process's counts stay counted.
/// - Gauges: each process has its own value (a process slot); a snapshot
///   combines them by the gauge's [`GaugeMode`]. A gauge handle writes to
///   the slot of the process that got it: after `fork`, get it again from
///   the registry in the child (counters, histograms and rates may be kept).
///
/// # Examples
///
/// ```
/// use ringstat::stats::{AnonymousMemory, HistogramConfig, SharedOptions, SharedRegistry};
///
/// // Shared with the processes this one forks; a named region is attached
/// // by name instead.
/// let opts = SharedOptions::default();
/// let reg = SharedRegistry::open(AnonymousMemory::new(opts.bytes())?, opts)?;
/// let requests = reg.counter("requests", &[("path", "/")])?;
/// let in_flight = reg.gauge("in_flight", &[])?;
/// let latency = reg.histogram(
///     "latency_us",
///     &[],
///     HistogramConfig { max: 1_000_000, significant_digits: 2 },
/// )?;
/// requests.inc();
/// in_flight.add(1);
/// latency.record(250)?;
/// in_flight.sub(1);
///
/// let text = reg.snapshot().to_prometheus();
/// assert!(text.contains("requests_total{path=\"/\"} 1"));
/// # Ok::<(), ringstat::stats::SharedError>(())
/// ```
#[derive(Clone)]
pub struct SharedRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegistry")
            .field("usage", &self.usage())
            .finish()
    }
}

/// The keep-alive of a mapping (a `dyn SharedMemory` as `dyn Send + Sync`).
struct KeepMemory(#[allow(dead_code)] Box<dyn SharedMemory>);

impl SharedRegistry {
    /// Sets up a registry in `memory` if it holds none (all zero), or
    /// attaches to the one it holds (then `options` are ignored: the sizes
    /// are the creator's). Many processes may open the same memory at once.
    ///
    /// # Errors
    ///
    /// [`SharedError::Layout`] if the memory is too small for `options`,
    /// misaligned, holds something else or another layout version;
    /// [`SharedError::Full`] never.
    pub fn open(memory: impl SharedMemory, options: SharedOptions) -> Result<Self, SharedError> {
        Self::open_named(memory, options, None)
    }

    /// Creates the named region `name` (a POSIX shared-memory object,
    /// `/dev/shm/NAME`, mode `0600`) holding a registry of `options`' sizes,
    /// or attaches to the registry it already holds (then its sizes are the
    /// creator's). `true` in the result if this call created it.
    ///
    /// The region outlives every process until [`unlink`](Self::unlink)
    /// (or [`shm::cleanup`](crate::shm::cleanup)) removes the name, or the
    /// machine reboots.
    ///
    /// # Errors
    ///
    /// [`SharedError::Shm`] for the region (a bad name, another kind of
    /// region under that name, a corrupt header), [`SharedError::Layout`]
    /// as for [`open`](Self::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::stats::{SharedOptions, SharedRegistry};
    ///
    /// let name = format!("ringstat-doc-{}", std::process::id());
    /// let (reg, created) = SharedRegistry::create_or_attach(&name, SharedOptions::default())?;
    /// assert!(created);
    /// reg.counter("jobs", &[])?.add(2);
    /// // Another process (here: another attachment) sees the same counts.
    /// let other = SharedRegistry::attach(&name)?;
    /// assert_eq!(other.counter("jobs", &[])?.get(), 2);
    /// reg.unlink()?;
    /// # Ok::<(), ringstat::stats::SharedError>(())
    /// ```
    pub fn create_or_attach(
        name: &str,
        options: SharedOptions,
    ) -> Result<(Self, bool), SharedError> {
        let bytes = options.bytes();
        if bytes == usize::MAX {
            return Err(SharedError::Layout(format!("invalid options {options:?}")));
        }
        let mut init_err = None;
        let (region, created) = crate::shm::Region::create_or_attach(
            name,
            REGION_KIND,
            bytes + 128,
            &crate::shm::Options::default(),
            |r| {
                // Lay the registry out before the region is published, so
                // an attacher never finds it half made.
                let m = RegionMemory::new(r);
                // SAFETY: `RegionMemory::new` gives a range inside the
                // payload, 128-aligned; the payload is zeroed and ours alone
                // until published.
                let header =
                    unsafe { core::slice::from_raw_parts(m.ptr.cast::<AtomicU64>(), HEADER_WORDS) };
                if let Err(e) = Self::init_or_read(header, m.len / 8, options) {
                    init_err = Some(e);
                }
            },
        )?;
        if let Some(e) = init_err {
            return Err(e);
        }
        let name = Some(name.to_owned());
        let reg = Self::open_named(RegionMemory::owned(region), options, name)?;
        Ok((reg, created))
    }

    /// Attaches the registry in the existing named region `name`.
    ///
    /// # Errors
    ///
    /// [`SharedError::Shm`] if there is no such region or it holds
    /// something else; [`SharedError::Layout`] if its registry is unusable.
    pub fn attach(name: &str) -> Result<Self, SharedError> {
        let region =
            crate::shm::Region::attach(name, REGION_KIND, &crate::shm::Options::default())?;
        let name = Some(name.to_owned());
        let memory = RegionMemory::owned(region);
        // SAFETY: as in `create_or_attach`.
        let magic = unsafe { &*memory.ptr.cast::<AtomicU64>() };
        // Relaxed: only a check that the creator laid a registry out (the
        // region's own Release/Acquire publication ordered that before
        // our attach); `open` reads it again with Acquire.
        if magic.load(Ordering::Relaxed) != MAGIC {
            return Err(SharedError::Layout(format!(
                "region {name:?} holds no registry"
            )));
        }
        Self::open_named(memory, SharedOptions::default(), name)
    }

    /// The name of the region, for a registry made by
    /// [`create_or_attach`](Self::create_or_attach) or
    /// [`attach`](Self::attach).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Removes the region's name (processes attached keep using it; the
    /// memory goes with the last of them). `Ok(false)` if the name was
    /// already gone or the registry has none.
    ///
    /// # Errors
    ///
    /// [`SharedError::Shm`] if the system refuses.
    pub fn unlink(&self) -> Result<bool, SharedError> {
        match &self.inner.name {
            Some(n) => Ok(crate::shm::cleanup(n)?),
            None => Ok(false),
        }
    }

    fn open_named(
        memory: impl SharedMemory,
        options: SharedOptions,
        name: Option<String>,
    ) -> Result<Self, SharedError> {
        let len = memory.len();
        let ptr = memory.as_ptr();
        if ptr.align_offset(128) != 0 {
            return Err(SharedError::Layout(
                "the memory is not aligned to 128 bytes".into(),
            ));
        }
        let words = len / 8;
        if words < HEADER_WORDS {
            return Err(SharedError::Layout(format!(
                "{len} bytes is smaller than the header"
            )));
        }
        let keep: Keep = Arc::new(KeepMemory(Box::new(memory)));
        let base = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| SharedError::Layout("null memory".into()))?;
        // SAFETY: `memory` promises `len` bytes at `ptr`, mapped while it
        // lives (`keep`), aligned (checked above); atomics are valid for any
        // bits.
        let header = unsafe { core::slice::from_raw_parts(base.as_ptr(), HEADER_WORDS) };
        let layout = Self::init_or_read(header, words, options)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                keep,
                base,
                layout,
                local: Mutex::new(Local {
                    slot: None,
                    handles: HashMap::new(),
                }),
                clock: Arc::new(BootClock::new()),
            }),
        })
    }

    /// Writes the header of a fresh registry, or waits for the process
    /// writing it, or reads an existing one; checks it against `words`.
    fn init_or_read(
        header: &[AtomicU64],
        words: usize,
        options: SharedOptions,
    ) -> Result<Layout, SharedError> {
        let me = liveness::me();
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the Release store of `MAGIC` below: the
            // sizes are written.
            let m = header[H_MAGIC].load(Ordering::Acquire);
            if m == MAGIC {
                break;
            }
            // Zero: fresh memory, set it up. A setup in progress: wait for
            // it, or take it over if its process died. Anything else is not
            // ours.
            if m != 0 {
                if m & INITIALIZING == 0 || m & DEAD_BIT != 0 {
                    return Err(SharedError::Layout(format!(
                        "unknown magic {m:#018x} (not a ringstat shared registry)"
                    )));
                }
                let owner = m & !INITIALIZING;
                if owner == me || liveness::alive(owner) {
                    spins += 1;
                    if spins > 10_000_000 {
                        return Err(SharedError::Layout(
                            "another process has been setting it up for too long".into(),
                        ));
                    }
                    std::thread::yield_now();
                    continue;
                }
            }
            // Acquire: as the load above, on a takeover of a dead setup.
            if header[H_MAGIC]
                .compare_exchange(m, INITIALIZING | me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let Some(l) = options.layout() else {
                header[H_MAGIC].store(m, Ordering::Relaxed);
                return Err(SharedError::Layout(format!("invalid options {options:?}")));
            };
            if l.total > words {
                // Give the memory back as found.
                header[H_MAGIC].store(m, Ordering::Relaxed);
                return Err(SharedError::Layout(format!(
                    "{} bytes is smaller than the {} these options need",
                    words * 8,
                    l.total * 8
                )));
            }
            // Relaxed: published by the Release store of `MAGIC`.
            header[H_VERSION].store(VERSION, Ordering::Relaxed);
            header[H_PROCS].store(l.procs as u64, Ordering::Relaxed);
            header[H_ENTRIES].store(l.entries as u64, Ordering::Relaxed);
            header[H_DATA].store(l.data_words as u64, Ordering::Relaxed);
            header[H_SHARDS].store(l.shards as u64, Ordering::Relaxed);
            // Release: pairs with the Acquire load above in other processes.
            header[H_MAGIC].store(MAGIC, Ordering::Release);
            return Ok(l);
        }
        // Relaxed: after the Acquire load of `MAGIC`.
        let version = header[H_VERSION].load(Ordering::Relaxed);
        if version != VERSION {
            return Err(SharedError::Layout(format!(
                "layout version {version}, this build reads version {VERSION}"
            )));
        }
        let l = Layout::new(
            header[H_PROCS].load(Ordering::Relaxed),
            header[H_ENTRIES].load(Ordering::Relaxed),
            header[H_DATA].load(Ordering::Relaxed),
            header[H_SHARDS].load(Ordering::Relaxed),
        )
        .ok_or_else(|| SharedError::Layout("corrupt sizes in the header".into()))?;
        if l.total > words {
            return Err(SharedError::Layout(format!(
                "the header describes {} bytes, the memory has {}",
                l.total * 8,
                words * 8
            )));
        }
        Ok(l)
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `open` checked that the memory (kept by `keep`) holds
        // `layout.total` words at `base`.
        unsafe { core::slice::from_raw_parts(self.inner.base.as_ptr(), self.inner.layout.total) }
    }

    fn header(&self) -> &[AtomicU64] {
        &self.words()[..HEADER_WORDS]
    }

    fn procs(&self) -> Procs<'_> {
        let l = &self.inner.layout;
        Procs::new(&self.words()[l.procs_at..l.dir_at])
    }

    fn directory(&self) -> Directory<'_> {
        let l = &self.inner.layout;
        Directory::new(&self.words()[l.dir_at..l.data_at])
    }

    fn data(&self) -> &[AtomicU64] {
        let l = &self.inner.layout;
        &self.words()[l.data_at..l.total]
    }

    fn lock_local(&self) -> crate::sync::MutexGuard<'_, Local> {
        // A poisoned lock means a panic while making a handle: the map
        // holds only complete inserts.
        self.inner
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This process's slot: claimed on first use, and again after a fork.
    fn slot(&self, local: &mut Local) -> Result<usize, SharedError> {
        let pid = std::process::id();
        if let Some((p, s)) = local.slot {
            if p == pid {
                return Ok(s);
            }
            // A forked child: the handles of the parent's slot are not ours.
            local.handles.clear();
        }
        let me = liveness::me();
        let procs = self.procs();
        let (slot, reset) = procs
            .claim(me, liveness::alive)
            .ok_or_else(|| SharedError::Full {
                what: "process slots",
                limit: procs.len(),
            })?;
        if reset {
            self.reset_gauges(slot);
            procs.publish(slot, me);
            // Relaxed: a statistic.
            self.header()[H_RECLAIMED_PROCS].fetch_add(1, Ordering::Relaxed);
        }
        local.slot = Some((pid, slot));
        Ok(slot)
    }

    /// Zeroes slot `slot`'s cells of every gauge (a new process starts at
    /// 0, not at the dead one's value).
    fn reset_gauges(&self, slot: usize) {
        let dir = self.directory();
        for i in 0..dir.len() {
            let Some(e) = dir.ready(i) else { continue };
            if Directory::key(e).first() != Some(&TAG_SERIES) || meta(e, 0) != KIND_GAUGE {
                continue;
            }
            let (off, _) = data_range(e);
            // A corrupt range is skipped, never indexed out of bounds.
            let Some(cells) = self.data().get(off + slot * 3..off + slot * 3 + 3) else {
                continue;
            };
            for w in cells {
                // Relaxed: published by the Release store of the slot's
                // token in `Procs::publish`.
                w.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Data words `[off, off + len)` for a new entry: `entry`'s earlier
    /// allocation if a dead claimer left one big enough, else fresh.
    fn allocate(&self, entry: &[AtomicU64], len: usize) -> Result<usize, SharedError> {
        let len = len.div_ceil(ALIGN_WORDS) * ALIGN_WORDS;
        let (off, old) = data_range(entry);
        let cap = self.inner.layout.data_words;
        // A dead claimer's range, if it is big enough (and sane).
        if old >= len && off.checked_add(len).is_some_and(|end| end <= cap) {
            return Ok(off);
        }
        let next = &self.header()[H_DATA_NEXT];
        // Relaxed: the mark only hands out disjoint ranges; their contents
        // are published with the entry.
        let mut cur = next.load(Ordering::Relaxed);
        loop {
            let cur_us = usize::try_from(cur).unwrap_or(usize::MAX);
            let end = cur_us
                .checked_add(len)
                .filter(|&e| e <= cap)
                .ok_or(SharedError::Full {
                    what: "data words",
                    limit: cap,
                })?;
            match next.compare_exchange_weak(cur, end as u64, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let off = usize::try_from(cur).unwrap_or(usize::MAX);
        // Relaxed: published with the entry (or reused by a later claimer,
        // which reads it after its Acquire claim).
        entry[DATA].store(((off as u64) << 32) | len as u64, Ordering::Relaxed);
        Ok(off)
    }

    /// Gets or publishes the entry `key`; `init` fills a new one's metadata
    /// and data.
    fn entry(
        &self,
        name: &str,
        key: &[u8],
        mut init: impl FnMut(&[AtomicU64]) -> Result<(), SharedError>,
    ) -> Result<(usize, bool), SharedError> {
        let dir = self.directory();
        match dir.get_or_insert(key, liveness::me(), liveness::alive, |_, e, _| init(e)) {
            Ok(Found::Existing(i)) => Ok((i, false)),
            Ok(Found::Created(i, reclaimed)) => {
                if reclaimed {
                    // Relaxed: a statistic.
                    self.header()[H_RECLAIMED_ENTRIES].fetch_add(1, Ordering::Relaxed);
                }
                Ok((i, true))
            }
            Err(InsertError::Full) => Err(SharedError::Full {
                what: "directory entries",
                limit: dir.len(),
            }),
            Err(InsertError::KeyTooLong) => Err(SharedError::KeyTooLong {
                name: name.to_owned(),
                len: key.len(),
                max: KEY_MAX,
            }),
            Err(InsertError::Init(e)) => Err(e),
        }
    }

    /// Stores `bytes` in a fresh data range of entry `e`.
    fn put_bytes(&self, e: &[AtomicU64], bytes: &[u8]) -> Result<(), SharedError> {
        let off = self.allocate(e, bytes.len().div_ceil(8))?;
        for (k, chunk) in bytes.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            // Relaxed: published with the entry.
            self.data()[off + k].store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        set_meta(e, 0, bytes.len() as u64);
        Ok(())
    }

    /// The bytes `put_bytes` stored in published entry `e` (clamped to its
    /// data range: a corrupt length never reads past it).
    fn get_bytes(&self, e: &[AtomicU64]) -> Vec<u8> {
        let (off, len) = data_range(e);
        // Clamped to the range and to the data area that exists.
        let avail = self.data().len().saturating_sub(off);
        let n = usize::try_from(meta(e, 0))
            .unwrap_or(0)
            .min(len.min(avail).saturating_mul(8));
        let mut out = Vec::with_capacity(n);
        for w in self.data().get(off..off + n.div_ceil(8)).unwrap_or(&[]) {
            // Relaxed: the entry was published (Acquire in `ready`).
            out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Checks `name` and `labels`, claims the family (kind) and its exposed
    /// names, and returns the series key with the sorted labels.
    fn series_key(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        kind: MetricKind,
    ) -> Result<Vec<u8>, SharedError> {
        validate_metric_name(name)?;
        let mut sorted: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
        for &(k, v) in labels {
            validate_label_name(name, k)?;
            validate_label_value(name, k, v)?;
            sorted.push((k, v));
        }
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StatsError::DuplicateLabel {
                metric: name.to_owned(),
                label: w[0].0.to_owned(),
            }
            .into());
        }
        let key = encode_key(TAG_SERIES, name, &sorted);
        if key.len() > KEY_MAX {
            return Err(SharedError::KeyTooLong {
                name: name.to_owned(),
                len: key.len(),
                max: KEY_MAX,
            });
        }
        // The family: its kind is whoever registered it first.
        let fkey = encode_key(TAG_FAMILY, name, &[]);
        let (fi, created) = self.entry(name, &fkey, |e| {
            set_meta(e, 0, kind_code(kind));
            Ok(())
        })?;
        if !created {
            let e = self.directory().entry(fi);
            let existing = kind_of(meta(e, 0));
            if existing != kind {
                return Err(StatsError::KindMismatch {
                    name: name.to_owned(),
                    existing,
                    requested: kind,
                }
                .into());
            }
        }
        // Each name the family exposes belongs to one family.
        for n in exposed_names(name, kind) {
            let xkey = encode_key(TAG_EXPOSED, &n, &[]);
            let (xi, _) = self.entry(name, &xkey, |e| self.put_bytes(e, name.as_bytes()))?;
            let owner = self.get_bytes(self.directory().entry(xi));
            if owner != name.as_bytes() {
                return Err(StatsError::NameCollision {
                    name: name.to_owned(),
                    existing: String::from_utf8_lossy(&owner).into_owned(),
                }
                .into());
            }
        }
        Ok(key)
    }

    /// The handle of entry `i` made by `make`, cached.
    fn handle(
        &self,
        local: &mut Local,
        i: usize,
        make: impl FnOnce(&Self) -> Result<Metric, SharedError>,
    ) -> Result<Metric, SharedError> {
        if let Some(m) = local.handles.get(&i) {
            return Ok(m.clone());
        }
        let m = make(self)?;
        local.handles.insert(i, m.clone());
        Ok(m)
    }

    /// `len` cells of type `T` at data word `off`, kept alive by the
    /// registry's mapping.
    fn cells<T: crate::sync::MappedCell>(
        &self,
        off: usize,
        len: usize,
    ) -> Result<Store<T>, SharedError> {
        let size = core::mem::size_of::<T>();
        let data = self.data();
        let words = len
            .checked_mul(size / 8)
            .filter(|_| size % 8 == 0)
            .and_then(|w| w.checked_add(off))
            .filter(|&end| end <= data.len() && off < data.len());
        // A range outside the data area, or misaligned, is a corrupt entry:
        // refused, never read.
        let bad = || SharedError::Layout(format!("corrupt data range {off}+{len}"));
        words.ok_or_else(bad)?;
        let ptr = NonNull::from(&data[off]).cast::<T>();
        if ptr.as_ptr().align_offset(core::mem::align_of::<T>()) != 0 {
            return Err(bad());
        }
        // SAFETY: the range is inside the data area (checked), aligned for
        // `T` (checked; data ranges start on 128-byte lines), mapped while
        // `keep` lives, and `T` is a mapped cell type (valid for any bits),
        // accessed only through `&T`.
        Ok(unsafe { Store::mapped(ptr, len, Arc::clone(&self.inner.keep)) })
    }

    /// Gets or creates the counter `name` with `labels`.
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`](crate::stats::Registry::counter), plus
    /// [`SharedError::Full`] and [`SharedError::KeyTooLong`].
    pub fn counter(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Arc<Counter>, SharedError> {
        let key = self.series_key(name, labels, MetricKind::Counter)?;
        let shards = self.inner.layout.shards;
        let (i, _) = self.entry(name, &key, |e| {
            set_meta(e, 0, KIND_COUNTER);
            let off = self.allocate(e, shards * ALIGN_WORDS)?;
            zero(&self.data()[off..off + shards * ALIGN_WORDS]);
            Ok(())
        })?;
        let mut local = self.lock_local();
        let slot = self.slot(&mut local)?;
        match self.handle(&mut local, i, |r| r.counter_at(i, slot))? {
            Metric::Counter(c) => Ok(c),
            _ => Err(mismatch(name)),
        }
    }

    fn counter_at(&self, i: usize, slot: usize) -> Result<Metric, SharedError> {
        let e = self.directory().entry(i);
        if meta(e, 0) != KIND_COUNTER {
            return Err(SharedError::Layout(format!("entry {i} is not a counter")));
        }
        let (off, _) = data_range(e);
        let store = self.cells::<CachePadded<AtomicU64>>(off, self.inner.layout.shards)?;
        Ok(Metric::Counter(Arc::new(Counter::from_store_salted(
            store, slot,
        ))))
    }

    /// Gets or creates the gauge `name` with `labels`, combined across
    /// processes as [`GaugeMode::LiveSum`].
    ///
    /// # Errors
    ///
    /// As [`counter`](SharedRegistry::counter); a gauge registered with
    /// another mode: [`StatsError::ConfigMismatch`].
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Result<Arc<Gauge>, SharedError> {
        self.gauge_with_mode(name, labels, GaugeMode::default())
    }

    /// Gets or creates the gauge `name` with `labels`, combined across
    /// processes as `mode`. The returned handle writes this process's
    /// value.
    ///
    /// # Errors
    ///
    /// As [`gauge`](SharedRegistry::gauge).
    pub fn gauge_with_mode(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        mode: GaugeMode,
    ) -> Result<Arc<Gauge>, SharedError> {
        let key = self.series_key(name, labels, MetricKind::Gauge)?;
        let procs = self.inner.layout.procs;
        let (i, _) = self.entry(name, &key, |e| {
            set_meta(e, 0, KIND_GAUGE);
            set_meta(e, 1, mode.code());
            let off = self.allocate(e, procs * 3)?;
            zero(&self.data()[off..off + procs * 3]);
            Ok(())
        })?;
        let e = self.directory().entry(i);
        let existing = GaugeMode::from_code(meta(e, 1));
        if existing != mode {
            return Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: format!("gauge mode {existing}"),
                requested: format!("gauge mode {mode}"),
            }
            .into());
        }
        let mut local = self.lock_local();
        let slot = self.slot(&mut local)?;
        let m = self.handle(&mut local, i, |r| {
            let (off, _) = data_range(r.directory().entry(i));
            let store = r.cells::<AtomicI64>(off + slot * 3, 3)?;
            Ok(Metric::Gauge(Arc::new(Gauge::from_store(store))))
        })?;
        match m {
            Metric::Gauge(g) => Ok(g),
            _ => Err(mismatch(name)),
        }
    }

    /// Gets or creates the histogram `name` with `labels`.
    ///
    /// # Errors
    ///
    /// As [`Registry::histogram`](crate::stats::Registry::histogram), plus those of
    /// [`counter`](SharedRegistry::counter).
    pub fn histogram(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
    ) -> Result<Arc<Histogram>, SharedError> {
        self.histogram_in(name, labels, config, None)
    }

    /// Gets or creates the histogram `name` with `labels` of values in
    /// `unit` (see [`Histogram::with_unit`]).
    ///
    /// # Errors
    ///
    /// As [`histogram`](SharedRegistry::histogram).
    pub fn histogram_with_unit(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
        unit: f64,
    ) -> Result<Arc<Histogram>, SharedError> {
        self.histogram_in(name, labels, config, Some(unit))
    }

    fn histogram_in(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: HistogramConfig,
        unit: Option<f64>,
    ) -> Result<Arc<Histogram>, SharedError> {
        let buckets = Histogram::buckets_for(config)?;
        if let Some(u) = unit {
            if !(u.is_finite() && u > 0.0) {
                return Err(StatsError::InvalidUnit { unit: u }.into());
            }
        }
        let key = self.series_key(name, labels, MetricKind::Histogram)?;
        let (i, _) = self.entry(name, &key, |e| {
            set_meta(e, 0, KIND_HISTOGRAM);
            set_meta(e, 1, config.max);
            set_meta(e, 2, u64::from(config.significant_digits));
            set_meta(e, 3, unit.map_or(0, f64::to_bits));
            set_meta(e, 4, u64::from(unit.is_some()));
            let len = CELLS_HEAD + buckets;
            let off = self.allocate(e, len)?;
            for (k, w) in self.data()[off..off + len].iter().enumerate() {
                // Relaxed: published with the entry.
                w.store(Cells::empty_word(k), Ordering::Relaxed);
            }
            Ok(())
        })?;
        let (ecfg, eunit) = histogram_meta(self.directory().entry(i));
        if (ecfg, eunit.map(f64::to_bits)) != (config, unit.map(f64::to_bits)) {
            return Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: hist_text(ecfg, eunit),
                requested: hist_text(config, unit),
            }
            .into());
        }
        let mut local = self.lock_local();
        match self.handle(&mut local, i, |r| r.histogram_at(i))? {
            Metric::Histogram(h) => Ok(h),
            _ => Err(mismatch(name)),
        }
    }

    fn histogram_at(&self, i: usize) -> Result<Metric, SharedError> {
        let e = self.directory().entry(i);
        if meta(e, 0) != KIND_HISTOGRAM {
            return Err(SharedError::Layout(format!("entry {i} is not a histogram")));
        }
        let (config, unit) = histogram_meta(e);
        let buckets = Histogram::buckets_for(config)?;
        let (off, len) = data_range(e);
        if len < CELLS_HEAD + buckets {
            return Err(SharedError::Layout(format!("entry {i}: data too short")));
        }
        let cells = Cells::from_store(self.cells::<AtomicU64>(off, CELLS_HEAD + buckets)?);
        Ok(Metric::Histogram(Arc::new(Histogram::from_cells(
            config, unit, cells,
        )?)))
    }

    /// Gets or creates the rate `name` with `labels`, over the machine's
    /// monotonic clock (the same in every process).
    ///
    /// # Errors
    ///
    /// As [`Registry::rate`](crate::stats::Registry::rate), plus those of
    /// [`counter`](SharedRegistry::counter).
    pub fn rate(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        config: RateConfig,
    ) -> Result<Arc<Rate>, SharedError> {
        let plan = RatePlan::new(config.window, config.buckets, self.inner.layout.shards)?;
        let key = self.series_key(name, labels, MetricKind::Rate)?;
        let (i, _) = self.entry(name, &key, |e| {
            let created = crate::stats::Clock::now_nanos(&*self.inner.clock);
            set_meta(e, 0, KIND_RATE);
            set_meta(
                e,
                1,
                u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
            );
            set_meta(e, 2, config.buckets as u64);
            set_meta(e, 3, plan.shards as u64);
            set_meta(e, 4, created);
            let len = plan.lines * LINE_WORDS;
            let off = self.allocate(e, len)?;
            for (k, w) in self.data()[off..off + len].iter().enumerate() {
                // Relaxed: published with the entry.
                w.store(plan.initial_word(created, k), Ordering::Relaxed);
            }
            Ok(())
        })?;
        let existing = rate_config(self.directory().entry(i));
        if existing != config {
            return Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: format!("{existing:?}"),
                requested: format!("{config:?}"),
            }
            .into());
        }
        let mut local = self.lock_local();
        match self.handle(&mut local, i, |r| r.rate_at(i))? {
            Metric::Rate(r) => Ok(r),
            _ => Err(mismatch(name)),
        }
    }

    fn rate_at(&self, i: usize) -> Result<Metric, SharedError> {
        let e = self.directory().entry(i);
        if meta(e, 0) != KIND_RATE {
            return Err(SharedError::Layout(format!("entry {i} is not a rate")));
        }
        let config = rate_config(e);
        let shards = usize::try_from(meta(e, 3)).unwrap_or(0);
        let plan = RatePlan::new(config.window, config.buckets, shards)?;
        let (off, len) = data_range(e);
        if len < plan.lines * LINE_WORDS {
            return Err(SharedError::Layout(format!("entry {i}: data too short")));
        }
        let cells = self.cells::<Line>(off, plan.lines)?;
        let clock: Arc<dyn crate::stats::Clock> = self.inner.clock.clone();
        Ok(Metric::Rate(Arc::new(Rate::from_store(
            plan,
            clock,
            meta(e, 4),
            cells,
        ))))
    }

    /// Sets the help text of metric `name` (shown as `# HELP`). Setting the
    /// same text again is a no-op.
    ///
    /// # Errors
    ///
    /// As [`Registry::describe`](crate::stats::Registry::describe), plus
    /// [`SharedError::Full`].
    pub fn describe(&self, name: &str, help: &str) -> Result<(), SharedError> {
        validate_metric_name(name)?;
        validate_help(name, help)?;
        let key = encode_key(TAG_HELP, name, &[]);
        let (i, _) = self.entry(name, &key, |e| self.put_bytes(e, help.as_bytes()))?;
        let existing = self.get_bytes(self.directory().entry(i));
        if existing != help.as_bytes() {
            return Err(StatsError::ConfigMismatch {
                name: name.to_owned(),
                existing: format!("help {:?}", String::from_utf8_lossy(&existing)),
                requested: format!("help {help:?}"),
            }
            .into());
        }
        Ok(())
    }

    /// How full the registry is (see [`SharedUsage`]).
    #[must_use]
    pub fn usage(&self) -> SharedUsage {
        let dir = self.directory();
        let procs = self.procs();
        let h = self.header();
        SharedUsage {
            bytes: self.inner.layout.total * 8,
            entries: dir.len(),
            entries_used: (0..dir.len()).filter(|&i| dir.ready(i).is_some()).count(),
            process_slots: procs.len(),
            process_slots_used: (0..procs.len())
                .filter(|&i| procs.state(i) != SlotState::Free)
                .count(),
            // Relaxed: statistics.
            data_used: usize::try_from(h[H_DATA_NEXT].load(Ordering::Relaxed)).unwrap_or(0) * 8,
            reclaimed_entries: h[H_RECLAIMED_ENTRIES].load(Ordering::Relaxed),
            reclaimed_slots: h[H_RECLAIMED_PROCS].load(Ordering::Relaxed),
        }
    }

    /// A snapshot of every series from every process, with the default
    /// quantiles.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with_quantiles(&DEFAULT_QUANTILES)
            .expect("the default quantiles are valid")
    }

    /// A snapshot with the given histogram quantiles.
    ///
    /// It walks every directory entry and process slot once: its cost is
    /// set by the registry's sizes, not by how many processes came and
    /// went.
    ///
    /// # Errors
    ///
    /// [`StatsError::InvalidQuantile`] for a quantile outside `[0, 1]`.
    pub fn snapshot_with_quantiles(&self, quantiles: &[f64]) -> Result<Snapshot, SharedError> {
        if let Some(&q) = quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(StatsError::InvalidQuantile { q }.into());
        }
        let dir = self.directory();
        let live = self.live_slots();
        let mut help: HashMap<String, Arc<str>> = HashMap::new();
        let mut series = Vec::new();
        for i in 0..dir.len() {
            let Some(e) = dir.ready(i) else { continue };
            let key = Directory::key(e);
            match key.first() {
                Some(&TAG_HELP) => {
                    if let Some((name, _)) = decode_key(&key) {
                        let text = String::from_utf8_lossy(&self.get_bytes(e)).into_owned();
                        help.insert(name, Arc::from(text));
                    }
                }
                Some(&TAG_SERIES) => {
                    if let Some((name, labels)) = decode_key(&key) {
                        series.push((i, name, labels));
                    }
                }
                _ => {}
            }
        }
        let mut metrics = Vec::new();
        for (i, name, labels) in series {
            let e = dir.entry(i);
            let h = help.get(&name).cloned();
            let push = |metrics: &mut Vec<MetricSnapshot>, labels, value| {
                metrics.push(MetricSnapshot {
                    name: name.clone(),
                    labels,
                    help: h.clone(),
                    value,
                });
            };
            match meta(e, 0) {
                KIND_GAUGE => {
                    for (extra, value) in self.read_gauge(e, &live) {
                        let mut l: Vec<(String, String)> = labels.clone();
                        if let Some(pid) = extra {
                            l.push(("pid".to_owned(), pid.to_string()));
                            l.sort();
                        }
                        push(&mut metrics, l, value);
                    }
                }
                _ => {
                    // Fresh views, not the cached handles: a snapshot takes
                    // no lock (it may run without the GIL while another
                    // thread forks, and a child must not inherit a held lock).
                    let made = match meta(e, 0) {
                        KIND_COUNTER => self.counter_at(i, 0),
                        KIND_HISTOGRAM => self.histogram_at(i),
                        KIND_RATE => self.rate_at(i),
                        _ => continue,
                    };
                    // A corrupt entry is left out, never read out of bounds.
                    let Ok(m) = made else { continue };
                    push(&mut metrics, labels, read(&m, quantiles));
                }
            }
        }
        metrics.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Snapshot {
            timestamp_ms,
            metrics,
        })
    }

    /// Each slot's owner, whether it is alive, as seen now: owners found
    /// dead are marked so that later snapshots do not ask again.
    fn live_slots(&self) -> Vec<Option<(u32, bool)>> {
        let procs = self.procs();
        (0..procs.len())
            .map(|i| match procs.state(i) {
                SlotState::Free | SlotState::Resetting(_) => None,
                SlotState::Dead(t) => Some((liveness::pid(t), false)),
                SlotState::Owned(t) => {
                    let alive = liveness::alive(t);
                    if !alive {
                        procs.mark_dead(i, t);
                    }
                    Some((liveness::pid(t), alive))
                }
            })
            .collect()
    }

    /// The series of gauge entry `e`: `(pid label, value)` per its mode.
    fn read_gauge(
        &self,
        e: &[AtomicU64],
        live: &[Option<(u32, bool)>],
    ) -> Vec<(Option<u32>, MetricValue)> {
        let mode = GaugeMode::from_code(meta(e, 1));
        let (off, len) = data_range(e);
        let data = self.data();
        let mut each = Vec::new();
        for (slot, owner) in live.iter().enumerate() {
            let Some((pid, alive)) = *owner else { continue };
            if mode.live_only() && !alive {
                continue;
            }
            if slot * 3 + 3 > len {
                break;
            }
            let Some(w) = data.get(off + slot * 3..off + slot * 3 + 3) else {
                break;
            };
            // Relaxed: as `Gauge::get`; the values are published by the
            // slot's Release store (`Procs::publish`, loaded with Acquire).
            let [v, lo, hi] = [0, 1, 2].map(|k| w[k].load(Ordering::Relaxed) as i64);
            each.push((pid, v, lo, hi));
        }
        let value = |v, min, max| MetricValue::Gauge { value: v, min, max };
        let ext = |it: &[(u32, i64, i64, i64)]| {
            (
                it.iter().map(|x| x.2).min().unwrap_or(0),
                it.iter().map(|x| x.3).max().unwrap_or(0),
            )
        };
        let (lo, hi) = ext(&each);
        match mode {
            GaugeMode::All | GaugeMode::LiveAll => each
                .into_iter()
                .map(|(pid, v, lo, hi)| (Some(pid), value(v, lo, hi)))
                .collect(),
            GaugeMode::Sum | GaugeMode::LiveSum => {
                let s = each.iter().fold(0i64, |a, x| a.wrapping_add(x.1));
                vec![(None, value(s, lo, hi))]
            }
            GaugeMode::Max | GaugeMode::LiveMax => {
                let m = each.iter().map(|x| x.1).max().unwrap_or(0);
                vec![(None, value(m, lo, hi))]
            }
            GaugeMode::Min | GaugeMode::LiveMin => {
                let m = each.iter().map(|x| x.1).min().unwrap_or(0);
                vec![(None, value(m, lo, hi))]
            }
        }
    }
}

/// Reads a non-gauge metric into a value (as the in-process registry does).
fn read(m: &Metric, quantiles: &[f64]) -> MetricValue {
    match m {
        Metric::Counter(c) => MetricValue::Counter(c.get()),
        Metric::Gauge(g) => MetricValue::Gauge {
            value: g.get(),
            min: g.min(),
            max: g.max(),
        },
        Metric::Histogram(h) => {
            let s = h.snapshot();
            let values = s.quantiles(quantiles).expect("quantiles validated");
            MetricValue::Histogram {
                count: s.count(),
                sum: s.sum(),
                min: s.min(),
                max: s.max(),
                rejected: s.rejected(),
                quantiles: quantiles.iter().copied().zip(values).collect(),
                unit: s.unit(),
                // Classic buckets (`Registry::set_buckets`) are not kept in
                // the shared directory yet: shared histograms are summaries.
                buckets: None,
            }
        }
        Metric::Rate(r) => MetricValue::Rate {
            total: r.total(),
            in_window: r.count_in_window(),
            per_second: r.per_second(),
            window: r.config().window,
        },
    }
}

const KIND_COUNTER: u64 = 1;
const KIND_GAUGE: u64 = 2;
const KIND_HISTOGRAM: u64 = 3;
const KIND_RATE: u64 = 4;

fn kind_code(k: MetricKind) -> u64 {
    match k {
        MetricKind::Counter => KIND_COUNTER,
        MetricKind::Gauge => KIND_GAUGE,
        MetricKind::Histogram => KIND_HISTOGRAM,
        MetricKind::Rate => KIND_RATE,
    }
}

fn kind_of(c: u64) -> MetricKind {
    match c {
        KIND_GAUGE => MetricKind::Gauge,
        KIND_HISTOGRAM => MetricKind::Histogram,
        KIND_RATE => MetricKind::Rate,
        _ => MetricKind::Counter,
    }
}

fn mismatch(name: &str) -> SharedError {
    SharedError::Layout(format!(
        "metric {name:?}: the cached handle has another kind"
    ))
}

fn meta(e: &[AtomicU64], k: usize) -> u64 {
    // Relaxed: entries are read after their Acquire publication (or by
    // their own filler).
    e[META + k].load(Ordering::Relaxed)
}

fn set_meta(e: &[AtomicU64], k: usize, v: u64) {
    debug_assert!(k < super::directory::META_WORDS);
    // Relaxed: published with the entry.
    e[META + k].store(v, Ordering::Relaxed);
}

/// An entry's data range `(offset, length)` in words of the data area.
fn data_range(e: &[AtomicU64]) -> (usize, usize) {
    // Relaxed: as `meta`.
    let d = e[DATA].load(Ordering::Relaxed);
    ((d >> 32) as usize, (d & 0xffff_ffff) as usize)
}

fn zero(words: &[AtomicU64]) {
    for w in words {
        // Relaxed: published with the entry.
        w.store(0, Ordering::Relaxed);
    }
}

fn histogram_meta(e: &[AtomicU64]) -> (HistogramConfig, Option<f64>) {
    let config = HistogramConfig {
        max: meta(e, 1),
        significant_digits: u8::try_from(meta(e, 2)).unwrap_or(u8::MAX),
    };
    let unit = (meta(e, 4) != 0).then(|| f64::from_bits(meta(e, 3)));
    (config, unit)
}

fn hist_text(config: HistogramConfig, unit: Option<f64>) -> String {
    match unit {
        None => format!("{config:?}"),
        Some(unit) => format!("{config:?} in units of {unit:?}"),
    }
}

fn rate_config(e: &[AtomicU64]) -> RateConfig {
    RateConfig {
        window: Duration::from_nanos(meta(e, 1)),
        buckets: usize::try_from(meta(e, 2)).unwrap_or(usize::MAX),
    }
}

/// `tag`, then `name` and each label name and value, each with a two-byte
/// little-endian length.
fn encode_key(tag: u8, name: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![tag];
    let mut put = |s: &str| {
        let n = u16::try_from(s.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&s.as_bytes()[..usize::from(n)]);
    };
    put(name);
    for (k, v) in labels {
        put(k);
        put(v);
    }
    out
}

/// The name and labels of a key made by `encode_key`, or `None` if it is
/// malformed (a corrupt region).
fn decode_key(key: &[u8]) -> Option<(String, Vec<(String, String)>)> {
    let mut rest = key.get(1..)?;
    let mut take = || -> Option<String> {
        let n = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
        let s = rest.get(2..2 + n)?;
        rest = &rest[2 + n..];
        String::from_utf8(s.to_vec()).ok()
    };
    let name = take()?;
    let mut labels = Vec::new();
    while let Some(k) = take() {
        labels.push((k, take()?));
    }
    Some((name, labels))
}
