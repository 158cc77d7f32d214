//! Keyed operators: session tracking and distinct counts.
//!
//! Keyed events are routed to worker `hash(key) % workers`, so the state of
//! one key lives in exactly one worker: session start times sit in that
//! worker's plain `HashMap`, and each worker writes its own HyperLogLog
//! partial. Only the aggregates every worker shares (gauges, counters,
//! histograms) are the lock-free `stats` types.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::hash;
use super::hll::{self, Registers};
use super::PipelineError;
use crate::stats::{Counter, Gauge, Histogram, HistogramConfig, Registry};
use crate::sync::{fence, AtomicU64, Mutex, Ordering, StdArc};

/// How a session tracker records durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionsConfig {
    /// The longest duration recorded, in milliseconds; longer sessions are
    /// counted in the histogram's `rejected` total. Default: 30 days.
    pub max_ms: u64,
    /// Significant decimal digits of the duration histogram (`0..=5`).
    /// Default: 2 (quantiles within 0.5 %).
    pub significant_digits: u8,
    /// The most sessions kept open (`None`, the default: no limit), so keys
    /// that start and never end cannot grow memory without bound. Split
    /// evenly over the workers (keys are spread by hash): each worker keeps
    /// at most `ceil(max_open / workers)`. A start beyond that evicts the
    /// worker's oldest-started open session: it leaves `{name}_open`, is
    /// counted in `{name}_evicted_total`, is not counted as completed and
    /// records no duration; a later end for its key counts as
    /// `end_without_start`.
    pub max_open: Option<usize>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            max_ms: 30 * 24 * 3600 * 1000,
            significant_digits: 2,
            max_open: None,
        }
    }
}

/// The shared metrics of one session tracker `name`, all in the registry:
///
/// | metric | kind | meaning |
/// |---|---|---|
/// | `{name}_open` | gauge | keys with a session open now |
/// | `{name}_started_total` | counter | starts that opened a session |
/// | `{name}_completed_total` | counter | ends that closed an open session |
/// | `{name}_duration_ms` | histogram | completed durations, `end.ts - start.ts`, in whole milliseconds (rounded down) |
/// | `{name}_anomalies_total{kind="end_without_start"}` | counter | ends for a key with no open session (ignored otherwise) |
/// | `{name}_anomalies_total{kind="double_start"}` | counter | starts for a key already open: the session restarts at the new time, the open count is unchanged |
/// | `{name}_anomalies_total{kind="negative_duration"}` | counter | ends earlier than their start: the session closes, no duration is recorded |
/// | `{name}_evicted_total` | counter | open sessions evicted by the `max_open` limit |
pub(crate) struct SessionsShared {
    pub(crate) config: SessionsConfig,
    /// The most open sessions one worker keeps (`usize::MAX`: no limit).
    per_worker: usize,
    pub(crate) evicted: StdArc<Counter>,
    pub(crate) open: StdArc<Gauge>,
    pub(crate) started: StdArc<Counter>,
    pub(crate) completed: StdArc<Counter>,
    pub(crate) durations: StdArc<Histogram>,
    pub(crate) end_without_start: StdArc<Counter>,
    pub(crate) double_start: StdArc<Counter>,
    pub(crate) negative_duration: StdArc<Counter>,
    /// Open sessions moving in and out of the workers (state export and
    /// merge, `pipeline::state`); workers look at it on flush markers only.
    pub(crate) exchange: Mutex<Exchange>,
}

/// Each worker's answer to one export request: its open sessions
/// `(key, start ts)`, `None` until it answers.
pub(crate) type Answers = Vec<Option<Vec<(u64, u64)>>>;

/// Open sessions in transit between a tracker's workers and a state
/// export or merge.
#[derive(Default)]
pub(crate) struct Exchange {
    /// Export requests by id: each worker fills its slot with its open
    /// sessions `(key, start ts)` when it answers a flush marker.
    pub(crate) requests: Vec<(u64, Answers)>,
    pub(crate) next_request: u64,
    /// Per worker: open sessions to load on its next flush marker.
    pub(crate) imports: Vec<Vec<(u64, u64)>>,
}

impl SessionsShared {
    pub(crate) fn register(
        reg: &Registry,
        name: &str,
        config: SessionsConfig,
        workers: usize,
    ) -> Result<Self, PipelineError> {
        let per_worker = match config.max_open {
            None => usize::MAX,
            Some(0) => return Err(PipelineError::InvalidMaxOpen),
            Some(n) => n.div_ceil(workers.max(1)),
        };
        let anomaly =
            |kind: &str| reg.counter(&format!("{name}_anomalies_total"), &[("kind", kind)]);
        Ok(Self {
            config,
            per_worker,
            evicted: reg.counter(&format!("{name}_evicted_total"), &[])?,
            open: reg.gauge(&format!("{name}_open"), &[])?,
            started: reg.counter(&format!("{name}_started_total"), &[])?,
            completed: reg.counter(&format!("{name}_completed_total"), &[])?,
            durations: reg.histogram(
                &format!("{name}_duration_ms"),
                &[],
                HistogramConfig {
                    max: config.max_ms,
                    significant_digits: config.significant_digits,
                },
            )?,
            end_without_start: anomaly("end_without_start")?,
            double_start: anomaly("double_start")?,
            negative_duration: anomaly("negative_duration")?,
            exchange: Mutex::new(Exchange::default()),
        })
    }
}

/// Hashes a `u64` key with a per-map random seed: one multiply-xorshift
/// mix instead of SipHash's rounds (the start/end of a session is a map
/// insert and remove per event); the secret seed keeps chosen keys from
/// colliding on purpose.
#[derive(Clone, Copy)]
pub(crate) struct KeyHasher {
    seed: u64,
    state: u64,
}

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn write_u64(&mut self, k: u64) {
        self.state = hash::mix64(k ^ self.seed ^ self.state.rotate_left(23));
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// Builds [`KeyHasher`]s with a seed drawn from std's random hasher keys.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash(u64);

impl Default for KeyHash {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self(std::collections::hash_map::RandomState::new().hash_one(0x5e55_u64))
    }
}

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.0,
            state: 0,
        }
    }
}

/// Changes to a tracker's shared metrics made by one worker's current
/// batch, published by [`SessionsLocal::publish`] at the batch's end and
/// before a flush is answered: a shared gauge add per event would be an
/// atomic contended by every worker.
#[derive(Default)]
struct Pending {
    open: i64,
    started: u64,
    completed: u64,
    evicted: u64,
    double_start: u64,
    end_without_start: u64,
    negative_duration: u64,
}

/// One worker's session state for one tracker: open sessions by key.
/// Owned by that worker alone (no lock). A key that starts and never ends
/// stays here until the pipeline is dropped, or until the `max_open` limit
/// evicts it.
#[derive(Default)]
pub(crate) struct SessionsLocal {
    /// key -> (start ts, start serial).
    open: HashMap<u64, (u64, u64), KeyHash>,
    /// Counts not yet added to the shared metrics.
    pending: Pending,
    /// (key, start serial) in start order, for eviction; entries whose
    /// serial no longer matches `open` are stale and skipped. Kept only
    /// under a `max_open` limit.
    order: VecDeque<(u64, u64)>,
    serial: u64,
}

impl SessionsLocal {
    /// Worker `w`, answering a flush marker: loads the open sessions
    /// imported for it (a key already open keeps its start; no counter
    /// moves: the registry state carries them) and answers every export
    /// request with its open sessions.
    pub(crate) fn exchange(&mut self, shared: &SessionsShared, w: usize) {
        let mut ex = super::shared::lock(&shared.exchange);
        if let Some(imports) = ex.imports.get_mut(w) {
            let limited = shared.per_worker != usize::MAX;
            for (key, ts) in imports.drain(..) {
                if let std::collections::hash_map::Entry::Vacant(e) = self.open.entry(key) {
                    self.serial += 1;
                    e.insert((ts, self.serial));
                    if limited {
                        self.order.push_back((key, self.serial));
                    }
                }
            }
        }
        for (_, slots) in &mut ex.requests {
            if let Some(slot) = slots.get_mut(w) {
                *slot = Some(self.open.iter().map(|(&k, &(ts, _))| (k, ts)).collect());
            }
        }
    }

    pub(crate) fn start(&mut self, shared: &SessionsShared, key: u64, ts: u64) {
        let limited = shared.per_worker != usize::MAX;
        self.serial += 1;
        if self.open.insert(key, (ts, self.serial)).is_some() {
            self.pending.double_start += 1;
        } else {
            self.pending.started += 1;
            self.pending.open += 1;
            if self.open.len() > shared.per_worker {
                self.evict_oldest();
            }
        }
        if limited {
            self.order.push_back((key, self.serial));
            // Drop stale entries once they outnumber the live ones.
            if self.order.len() > 2 * self.open.len() + 64 {
                let open = &self.open;
                self.order
                    .retain(|(k, serial)| open.get(k).is_some_and(|&(_, s)| s == *serial));
            }
        }
    }

    /// Evicts the oldest-started open session (not the one just started:
    /// the limit is at least 1 and the new entry is not yet in `order`).
    fn evict_oldest(&mut self) {
        while let Some((key, serial)) = self.order.pop_front() {
            if self.open.get(&key).is_some_and(|&(_, s)| s == serial) {
                self.open.remove(&key);
                self.pending.open -= 1;
                self.pending.evicted += 1;
                return;
            }
        }
    }

    pub(crate) fn end(&mut self, shared: &SessionsShared, key: u64, ts: u64) {
        match self.open.remove(&key) {
            None => self.pending.end_without_start += 1,
            Some((start, _)) => {
                self.pending.open -= 1;
                self.pending.completed += 1;
                match ts.checked_sub(start) {
                    // Out of range: counted in the histogram's `rejected`.
                    Some(d) => {
                        let _ = shared.durations.record(d / 1_000_000);
                    }
                    None => self.pending.negative_duration += 1,
                }
            }
        }
    }

    /// Adds the pending counts to the shared metrics.
    pub(crate) fn publish(&mut self, shared: &SessionsShared) {
        let p = std::mem::take(&mut self.pending);
        if p.open != 0 {
            shared.open.add(p.open);
        }
        for (n, c) in [
            (p.started, &shared.started),
            (p.completed, &shared.completed),
            (p.evicted, &shared.evicted),
            (p.double_start, &shared.double_start),
            (p.end_without_start, &shared.end_without_start),
            (p.negative_duration, &shared.negative_duration),
        ] {
            if n > 0 {
                c.add(n);
            }
        }
    }
}

/// How a distinct counter estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DistinctConfig {
    /// HyperLogLog precision `p` (`4..=16`): `2^p` one-byte registers per
    /// worker and per window bucket; relative standard error
    /// `1.04 / sqrt(2^p)`. Default 12 (1.63 %).
    pub precision: u8,
    /// Length of the sliding window of
    /// [`Pipeline::distinct_in_window`](super::Pipeline::distinct_in_window).
    /// Default 60 s.
    pub window: Duration,
    /// Number of buckets the window is cut into (its time resolution); at
    /// least 1, each at least 1 ms. Default 12 (5 s each).
    pub buckets: usize,
}

impl Default for DistinctConfig {
    fn default() -> Self {
        Self {
            precision: 12,
            window: Duration::from_secs(60),
            buckets: 12,
        }
    }
}

/// A window slot's tag while its owner clears it.
const BUSY: u64 = u64::MAX;

/// One bucket of a worker's sliding window: the registers of the keys seen
/// in one time interval.
struct WindowSlot {
    /// `interval + 1` of the registers' interval, 0 if never used, `BUSY`
    /// while the owner clears them. Written only by the owning worker.
    tag: AtomicU64,
    regs: Registers,
}

/// One worker's partial sketches for one distinct counter. Written only by
/// that worker; read by anyone.
pub(crate) struct DistinctPart {
    all: Registers,
    window: Box<[WindowSlot]>,
}

/// A distinct counter: one partial per worker, merged on read.
pub(crate) struct DistinctShared {
    pub(crate) config: DistinctConfig,
    /// Registers merged in from states of other pipelines (`2^p` bytes;
    /// counted in [`count`](DistinctShared::count), not in the window).
    imported: Mutex<Vec<u8>>,
    /// `window / buckets` in nanoseconds, at least 1 ms.
    tick: u64,
    parts: Box<[DistinctPart]>,
}

impl DistinctShared {
    pub(crate) fn new(config: DistinctConfig, workers: usize) -> Result<Self, PipelineError> {
        hll::check_precision(config.precision)?;
        let bad = PipelineError::InvalidWindow {
            window: config.window,
            buckets: config.buckets,
        };
        let window = u64::try_from(config.window.as_nanos()).map_err(|_| bad.clone())?;
        let n = u64::try_from(config.buckets).map_err(|_| bad.clone())?;
        if n == 0 || window / n < 1_000_000 {
            return Err(bad);
        }
        let p = config.precision;
        let oom = || PipelineError::OutOfMemory {
            what: format!(
                "distinct counter sketches ({workers} workers x {} buckets x 2^{p} registers)",
                config.buckets
            ),
        };
        // Every size is checked and every allocation fallible: a window of
        // too many buckets is an error, not an abort. The whole size is asked
        // for once first, so one too large for the system fails here rather
        // than piece by piece.
        let total = config
            .buckets
            .checked_add(1)
            .and_then(|n| n.checked_mul(workers))
            .and_then(|n| n.checked_mul((1usize << p).max(8)))
            .ok_or_else(oom)?;
        Vec::<u8>::new()
            .try_reserve_exact(total)
            .map_err(|_| oom())?;
        let mut parts = Vec::new();
        parts.try_reserve_exact(workers).map_err(|_| oom())?;
        for _ in 0..workers {
            let mut window = Vec::new();
            window
                .try_reserve_exact(config.buckets)
                .map_err(|_| oom())?;
            for _ in 0..config.buckets {
                window.push(WindowSlot {
                    tag: AtomicU64::new(0),
                    regs: Registers::try_new(p).ok_or_else(oom)?,
                });
            }
            parts.push(DistinctPart {
                all: Registers::try_new(p).ok_or_else(oom)?,
                window: window.into_boxed_slice(),
            });
        }
        let parts = parts.into_boxed_slice();
        Ok(Self {
            config,
            imported: Mutex::new(Vec::new()),
            tick: window / n,
            parts,
        })
    }

    /// Worker `w` (the only caller for its part) records `key` at `ts`.
    pub(crate) fn insert(&self, w: usize, key: u64, ts: u64) {
        let hash = hash::mix64(key);
        let part = &self.parts[w];
        part.all.insert(hash);
        let interval = ts / self.tick;
        let slot = &part.window[(interval % self.parts[w].window.len() as u64) as usize];
        let want = interval + 1;
        // Relaxed: we are the only writer of this tag.
        let tag = slot.tag.load(Ordering::Relaxed);
        if tag == want {
            slot.regs.insert(hash);
        } else if tag < want {
            // Seqlock-style rotation. Relaxed store of BUSY, then a Release
            // fence: pairs with the reader's Acquire fence in `read_slot`, so
            // a reader that sees any register cleared or written below also
            // sees BUSY (or the new tag) on its re-check.
            slot.tag.store(BUSY, Ordering::Relaxed);
            fence(Ordering::Release);
            slot.regs.clear();
            slot.regs.insert(hash);
            // Release: pairs with the reader's Acquire load of the tag, so a
            // reader that sees the new tag sees the cleared registers.
            slot.tag.store(want, Ordering::Release);
        }
        // tag > want: the slot already holds a later interval; this key is
        // older than the window there and counts in the total only.
    }

    /// Estimated distinct keys ever seen.
    pub(crate) fn count(&self) -> f64 {
        hll::estimate(&self.registers(), self.config.precision)
    }

    /// The registers of every key ever seen: every worker's and the
    /// imported ones, merged (`2^p` bytes).
    pub(crate) fn registers(&self) -> Vec<u8> {
        let mut acc = vec![0u8; 1 << self.config.precision];
        for part in self.parts.iter() {
            part.all.merge_into(&mut acc);
        }
        let imported = super::shared::lock(&self.imported);
        for (a, &b) in acc.iter_mut().zip(imported.iter()) {
            *a = (*a).max(b);
        }
        acc
    }

    /// Merges `registers` (`2^p` bytes, checked by the caller) into the
    /// imported ones: register-wise max, the HyperLogLog union.
    pub(crate) fn import(&self, registers: &[u8]) {
        let mut imported = super::shared::lock(&self.imported);
        imported.resize(registers.len(), 0);
        for (a, &b) in imported.iter_mut().zip(registers) {
            *a = (*a).max(b);
        }
    }

    /// Estimated distinct keys seen in the window ending at `now`: the
    /// current bucket and the `buckets - 1` before it.
    pub(crate) fn count_in_window(&self, now: u64) -> f64 {
        let cur = now / self.tick;
        let oldest = (cur + 1).saturating_sub(self.config.buckets as u64);
        let mut acc = vec![0u8; 1 << self.config.precision];
        let mut tmp = vec![0u8; acc.len()];
        for part in self.parts.iter() {
            for slot in part.window.iter() {
                read_slot(slot, oldest + 1, &mut acc, &mut tmp);
            }
        }
        hll::estimate(&acc, self.config.precision)
    }
}

/// Merges `slot` into `acc` if its tag is at least `min_tag`, reading the
/// registers consistently (retrying if the owner rotates the slot meanwhile;
/// after a few tries the slot is skipped: it is being moved to a newer,
/// nearly empty interval).
fn read_slot(slot: &WindowSlot, min_tag: u64, acc: &mut [u8], tmp: &mut [u8]) {
    for _ in 0..4 {
        // Acquire: pairs with the owner's Release store of the new tag.
        let t1 = slot.tag.load(Ordering::Acquire);
        if t1 == BUSY {
            crate::sync::thread::yield_now();
            continue;
        }
        if t1 < min_tag {
            return;
        }
        tmp.fill(0);
        slot.regs.merge_into(tmp);
        // Acquire fence: pairs with the owner's Release fence after it stores
        // BUSY: if we read a register written after that, we see BUSY (or a
        // later tag) below.
        fence(Ordering::Acquire);
        let t2 = slot.tag.load(Ordering::Relaxed);
        if t1 == t2 {
            for (a, &b) in acc.iter_mut().zip(tmp.iter()) {
                *a = (*a).max(b);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_anomalies() {
        let reg = Registry::new();
        let s = SessionsShared::register(&reg, "online", SessionsConfig::default(), 1).unwrap();
        let mut l = SessionsLocal::default();
        l.end(&s, 1, 10);
        l.start(&s, 1, 1_000_000);
        l.start(&s, 1, 2_000_000);
        assert_eq!(s.open.get(), 0, "published per batch only");
        l.publish(&s);
        assert_eq!(s.open.get(), 1);
        l.end(&s, 1, 5_500_000);
        assert_eq!(s.durations.max(), Some(3));
        l.start(&s, 2, 10);
        l.end(&s, 2, 5);
        l.publish(&s);
        assert_eq!(
            (
                s.end_without_start.get(),
                s.double_start.get(),
                s.negative_duration.get()
            ),
            (1, 1, 1)
        );
        assert_eq!(
            (s.started.get(), s.completed.get(), s.open.get()),
            (2, 2, 0)
        );
    }

    #[test]
    fn window_rotates() {
        let cfg = DistinctConfig {
            precision: 14,
            window: Duration::from_secs(4),
            buckets: 4,
        };
        let d = DistinctShared::new(cfg, 2).unwrap();
        let s = 1_000_000_000;
        for k in 0..100 {
            d.insert((k % 2) as usize, k, 0);
        }
        for k in 100..150 {
            d.insert(0, k, 3 * s);
        }
        assert!((d.count_in_window(3 * s) - 150.0).abs() < 5.0);
        assert!((d.count_in_window(4 * s) - 50.0).abs() < 3.0);
        assert_eq!(d.count_in_window(7 * s), 0.0);
        // A late key for an interval whose slot was reused counts in the
        // total only.
        d.insert(0, 1_000, 4 * s);
        d.insert(0, 1_001, 0);
        assert!((d.count() - 152.0).abs() < 5.0);
        assert!(DistinctShared::new(DistinctConfig { buckets: 0, ..cfg }, 1).is_err());
    }
}
