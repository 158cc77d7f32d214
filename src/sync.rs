//! The one module that names `std` or `loom` concurrency primitives.
//!
//! Everything else in the crate imports atomics, cells, locks, threads and
//! backoff from here, so that building with `RUSTFLAGS="--cfg ringstat_loom"`
//! swaps the whole crate onto loom's model-checked versions (the pattern of
//! tokio's `src/loom/`). Under loom every spin or wait loop must yield through
//! loom, or the model never terminates: [`Backoff`] does that for both builds.

#![allow(dead_code, unused_imports)]

pub(crate) use crossbeam_utils::CachePadded;

#[cfg(not(ringstat_loom))]
mod imp {
    pub(crate) use core::hint::spin_loop;
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread;

    /// `std` twin of `loom::cell::UnsafeCell`: access goes through closures
    /// that receive a raw pointer, so loom can track every access.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Spin, then yield: crossbeam's exponential backoff.
    pub(crate) use crossbeam_utils::Backoff;

    /// The unbounded queue's list of items: crossbeam's lock-free segment
    /// list.
    pub(crate) use crossbeam_queue::SegQueue;

    /// A small index for the calling thread, for picking a shard or a
    /// histogram front: the smallest index no live thread holds, so a pool
    /// that replaces its threads keeps using the same few. An index passes
    /// to a new thread only after its old thread exited; the free list's
    /// mutex orders the old thread's last writes before the new thread's
    /// first, so what an index owns keeps a single writer at a time.
    #[inline]
    pub(crate) fn thread_index() -> usize {
        index::INDEX.with(|cell| {
            let idx = cell.get();
            if idx != usize::MAX {
                return idx;
            }
            let idx = index::claim();
            cell.set(idx);
            idx
        })
    }

    /// The calling thread's index if it has one already, else `usize::MAX`
    /// (never a valid index): one TLS load, for hot paths that bounds-check
    /// the index anyway and call [`thread_index`] on a miss.
    #[inline(always)]
    pub(crate) fn thread_index_if_known() -> usize {
        index::INDEX.with(std::cell::Cell::get)
    }

    mod index {
        use std::cell::Cell;
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;

        /// The next index never handed out.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        /// Indices of exited threads, smallest first. Only `try_lock`ed: a
        /// mutex held across a `fork` stays locked in the child, which then
        /// takes new indices instead of waiting forever.
        static FREE: Mutex<BinaryHeap<Reverse<usize>>> = Mutex::new(BinaryHeap::new());

        thread_local! {
            /// The thread's index; `usize::MAX` until its first use.
            pub(super) static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
            static RELEASE: Release = const { Release(Cell::new(usize::MAX)) };
        }

        /// Gives the thread's index back when the thread exits.
        struct Release(Cell<usize>);

        impl Drop for Release {
            fn drop(&mut self) {
                let idx = self.0.get();
                // A later destructor of this thread that records takes a
                // fresh index (`claim` cannot register again), never this one.
                let _ = INDEX.try_with(|c| c.set(usize::MAX));
                if idx != usize::MAX {
                    // Unlocking releases this thread's writes to whoever takes
                    // the index next (it locks the same mutex). Contended: the
                    // index is not reused, which is only a little waste.
                    if let Ok(mut free) = FREE.try_lock() {
                        free.push(Reverse(idx));
                    }
                }
            }
        }

        /// An index for the calling thread: the smallest freed one if any,
        /// else a new one (also when the thread is exiting and cannot give it
        /// back).
        #[cold]
        pub(super) fn claim() -> usize {
            // Relaxed: a unique ticket is all we need; no data is published.
            let fresh = || NEXT.fetch_add(1, Ordering::Relaxed);
            RELEASE
                .try_with(|r| {
                    let reused = FREE.try_lock().ok().and_then(|mut free| free.pop());
                    let idx = reused.map_or_else(fresh, |Reverse(i)| i);
                    r.0.set(idx);
                    idx
                })
                .unwrap_or_else(|_| fresh())
        }
    }
}

#[cfg(ringstat_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread;

    /// Loom twin of `crossbeam_utils::Backoff`: every step yields through
    /// loom so that spin loops are explored instead of running forever, and
    /// it reports completion after a couple of steps so models reach the
    /// parking path quickly.
    #[derive(Debug, Default)]
    pub(crate) struct Backoff {
        step: core::cell::Cell<u32>,
    }

    impl Backoff {
        pub(crate) fn new() -> Self {
            Self::default()
        }
        pub(crate) fn reset(&self) {
            self.step.set(0);
        }
        pub(crate) fn spin(&self) {
            loom::thread::yield_now();
            self.step.set(self.step.get() + 1);
        }
        pub(crate) fn snooze(&self) {
            loom::thread::yield_now();
            self.step.set(self.step.get() + 1);
        }
        pub(crate) fn is_completed(&self) -> bool {
            self.step.get() >= 2
        }
    }

    /// Loom stand-in for crossbeam's `SegQueue`: a loom mutex around a
    /// `VecDeque`. The models check the close and wake-up protocol around the
    /// list, not the list itself (crossbeam's own tests cover that).
    #[derive(Debug, Default)]
    pub(crate) struct SegQueue<T>(loom::sync::Mutex<std::collections::VecDeque<T>>);

    impl<T> SegQueue<T> {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Mutex::new(std::collections::VecDeque::new()))
        }
        pub(crate) fn push(&self, value: T) {
            self.0.lock().unwrap().push_back(value);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
    }

    /// Deterministic per-model thread index: loom numbers its threads 0, 1, 2
    /// in spawn order, which we read back from the id's `Debug` text.
    pub(crate) fn thread_index_if_known() -> usize {
        thread_index()
    }

    pub(crate) fn thread_index() -> usize {
        let id = format!("{:?}", loom::thread::current().id());
        id.bytes()
            .filter(u8::is_ascii_digit)
            .fold(0usize, |acc, b| acc * 10 + usize::from(b - b'0'))
    }
}

pub(crate) use imp::*;

/// A shard hint for the calling thread without a thread-local lookup (in a
/// shared library, such as the Python extension, that lookup is a call to
/// `__tls_get_addr`): a hash of the 64 KiB block its stack is in. Threads
/// have disjoint stacks (at least one block apart), so concurrent threads
/// mostly pick different shards, and one thread mostly keeps the same one; a
/// collision only shares a cache line. Not for anything that must stay on one
/// shard per thread (the hint moves with the stack depth).
#[inline(always)]
pub(crate) fn stack_shard_hint() -> usize {
    let marker = 0u8;
    let block = (core::ptr::addr_of!(marker) as usize) >> 16;
    // Fibonacci hashing: spreads neighbouring blocks over the low bits.
    (block.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)) >> (usize::BITS - 16)
}

/// The CPU the calling thread is running on, where the platform tells
/// (Linux, through `sched_getcpu`); `None` elsewhere, under loom (a model has
/// no CPUs) and under Miri (no such foreign call). A hint: the thread may
/// move at any moment.
#[inline]
pub(crate) fn current_cpu() -> Option<usize> {
    #[cfg(all(target_os = "linux", not(ringstat_loom), not(miri)))]
    {
        // SAFETY: `sched_getcpu` takes no arguments and touches no memory of
        // ours; it returns -1 on error, which `try_from` turns into `None`.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }
    #[cfg(not(all(target_os = "linux", not(ringstat_loom), not(miri))))]
    {
        None
    }
}

/// Marks the point between a `SeqCst` read-modify-write and a later `SeqCst`
/// load whose order the code relies on (the store-buffering pattern of the
/// queue's waiter protocol).
///
/// In real builds it is nothing: under the C++20 model that Rust follows, all
/// `SeqCst` operations sit in one total order consistent with program order,
/// which already rules out the store-buffering outcome. Loom, however, models
/// `SeqCst` accesses as `AcqRel` (tokio-rs/loom#180) while it does model
/// `SeqCst` fences, so under loom this is a `fence(SeqCst)`: the model then
/// checks the protocol with the ordering the real build gets from the
/// accesses themselves.
#[inline(always)]
pub(crate) fn seqcst_pair_fence() {
    #[cfg(ringstat_loom)]
    fence(Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// Appended for `stats` (issue 3): how many shards a sharded counter should use.
// ---------------------------------------------------------------------------

/// Number of shards for a sharded aggregator: twice the available
/// parallelism (fewer collisions between thread indices), rounded up to a
/// power of two and clamped to `4..=64`. Under loom: 2, so models stay tiny
/// while two threads still land on different shards.
pub(crate) fn default_shard_count() -> usize {
    #[cfg(not(ringstat_loom))]
    let n = std::thread::available_parallelism()
        .map_or(4, |n| n.get().saturating_mul(2))
        .clamp(4, 64);
    #[cfg(ringstat_loom)]
    let n: usize = 2;
    n.next_power_of_two()
}

// ---------------------------------------------------------------------------
// Appended for `pipeline` (issue 5): named worker threads and idle deadlines.
// ---------------------------------------------------------------------------

/// `std`'s `Arc` in both builds, for reference counting only (metric
/// handles, the clock): `Arc<dyn Clock>` needs unsized coercion, which
/// loom's `Arc` lacks, and no model checks these counts.
pub(crate) use std::sync::Arc as StdArc;

/// `std`'s `AtomicU64` in both builds, for process-wide statistics in a
/// `static` (loom's atomics cannot be built in a `static`), which no model
/// reads.
pub(crate) use std::sync::atomic::AtomicU64 as StdAtomicU64;

/// Spawns a thread named `name` running `f` (under loom: a loom thread; the
/// name is dropped).
pub(crate) fn spawn_named<F>(name: String, f: F) -> std::io::Result<thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    #[cfg(not(ringstat_loom))]
    {
        std::thread::Builder::new().name(name).spawn(f)
    }
    #[cfg(ringstat_loom)]
    {
        let _ = name;
        Ok(loom::thread::spawn(f))
    }
}

/// The deadline of an idle worker's wait, `d` from now, after which it
/// refreshes derived gauges. Under loom: `None` (loom has no clock; a timed
/// wait there only ends on a notification, so models stay finite).
pub(crate) fn idle_deadline(d: std::time::Duration) -> Option<std::time::Instant> {
    #[cfg(not(ringstat_loom))]
    {
        std::time::Instant::now().checked_add(d)
    }
    #[cfg(ringstat_loom)]
    {
        let _ = d;
        None
    }
}

// ---------------------------------------------------------------------------
// Appended for shared-memory metrics (issue 20): which cells may live in a
// mapping shared between processes.
// ---------------------------------------------------------------------------

/// A cell type that may live in memory shared between processes: an atomic
/// integer (or cache-line padding of them), the same size and alignment as
/// its plain integer, with no destructor and every bit pattern valid, so a
/// mapping of zeroed or foreign-written bytes can be viewed as these cells.
/// Not implemented under loom (loom's atomics are not plain memory).
///
/// # Safety
///
/// Implement only for types with those properties.
#[cfg(not(ringstat_loom))]
pub(crate) unsafe trait MappedCell: Sync + Send + 'static {}

// SAFETY: `AtomicU64` has the size, alignment and bit validity of `u64`.
#[cfg(not(ringstat_loom))]
unsafe impl MappedCell for std::sync::atomic::AtomicU64 {}
// SAFETY: `AtomicI64` has the size, alignment and bit validity of `i64`.
#[cfg(not(ringstat_loom))]
unsafe impl MappedCell for std::sync::atomic::AtomicI64 {}
// SAFETY: padding around mapped cells adds only alignment and unused bytes.
#[cfg(not(ringstat_loom))]
unsafe impl<T: MappedCell> MappedCell for CachePadded<T> {}
// SAFETY: an array of mapped cells is mapped cells laid end to end.
#[cfg(not(ringstat_loom))]
unsafe impl<T: MappedCell, const N: usize> MappedCell for [T; N] {}

// ---------------------------------------------------------------------------
// Appended for `shm` (issue 20): atomics inside a mapped region, and the
// process-shared futex the shared queue waits on.
// ---------------------------------------------------------------------------

/// Views the 8 bytes at `ptr` (in a shared mapping) as an `AtomicU64`.
///
/// # Safety
///
/// `ptr` is 8-byte aligned, valid for reads and writes for `'a`, and every
/// access to those bytes (in any process) is atomic.
#[cfg(not(ringstat_loom))]
#[inline(always)]
pub(crate) unsafe fn atomic_u64_at<'a>(ptr: *mut u64) -> &'a AtomicU64 {
    // SAFETY: the caller's contract is `AtomicU64::from_ptr`'s.
    unsafe { AtomicU64::from_ptr(ptr) }
}

/// Views the 4 bytes at `ptr` (in a shared mapping) as an `AtomicU32`.
///
/// # Safety
///
/// As [`atomic_u64_at`], with 4-byte alignment.
#[cfg(not(ringstat_loom))]
#[inline(always)]
pub(crate) unsafe fn atomic_u32_at<'a>(ptr: *mut u32) -> &'a AtomicU32 {
    // SAFETY: the caller's contract is `AtomicU32::from_ptr`'s.
    unsafe { AtomicU32::from_ptr(ptr) }
}

/// Sleeps while `word` holds `expected`, until woken by [`futex_wake`] (from
/// any process mapping the same memory), the timeout, or spuriously. The
/// caller re-checks its condition in a loop. Process-shared (not
/// `FUTEX_PRIVATE`), so the word may live in a shared mapping. Under loom:
/// a yield (a spurious wake-up), so models explore the re-check loop.
#[cfg(target_os = "linux")]
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<std::time::Duration>) {
    #[cfg(not(ringstat_loom))]
    {
        use rustix::thread::futex;
        let ts = timeout.map(|d| futex::Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        // EAGAIN (value changed), EINTR and ETIMEDOUT all mean "re-check".
        let _ = futex::wait(word, futex::Flags::empty(), expected, ts.as_ref());
    }
    #[cfg(ringstat_loom)]
    {
        let _ = (word, expected, timeout);
        loom::thread::yield_now();
    }
}

/// As [`futex_wait`], for a dedicated sleeper that is also told to stop
/// through `stop` (read only under loom: real builds rely on the timeout).
/// Under loom: yields until `word` differs from `expected` or `stop` is set,
/// so a model sees a sleeper that wakes when woken (a spurious wake-up takes
/// the same path as an unchanged word) instead of exploring an unbounded
/// re-check loop.
#[cfg(target_os = "linux")]
pub(crate) fn futex_wait_or_stop(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<std::time::Duration>,
    stop: &AtomicBool,
) {
    #[cfg(not(ringstat_loom))]
    {
        let _ = stop;
        futex_wait(word, expected, timeout);
    }
    #[cfg(ringstat_loom)]
    {
        let _ = timeout;
        // Acquire: pairs with the Release bump of the word and the Release
        // store of `stop`.
        while word.load(Ordering::Acquire) == expected && !stop.load(Ordering::Acquire) {
            loom::thread::yield_now();
        }
    }
}

/// Wakes up to `n` waiters of [`futex_wait`] on `word`, in any process.
#[cfg(target_os = "linux")]
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    #[cfg(not(ringstat_loom))]
    {
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), n);
    }
    #[cfg(ringstat_loom)]
    {
        let _ = (word, n);
    }
}
