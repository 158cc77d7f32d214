//! [`Store`]: where a metric's atomics live. One metric implementation works
//! over a fixed slice of cells that is either owned on the heap (the
//! in-process metrics) or lent by a shared-memory mapping (the metrics of a
//! [`SharedRegistry`](crate::shm::SharedRegistry)), so a `Counter` or a
//! `Histogram` is the same code in both places.

use core::ops::Deref;
use core::ptr::NonNull;

use crate::sync::StdArc;

/// Keeps a mapping alive while metrics point into it.
pub(crate) type Keep = StdArc<dyn Send + Sync>;

/// A fixed-length slice of cells, heap-owned or inside a mapping.
///
/// Dereferences to `&[T]` at the cost of a `Box<[T]>` (a pointer and a
/// length), so the hot paths index it exactly as they indexed the box.
pub(crate) struct Store<T: 'static> {
    /// The first cell; dangling (but aligned) when `len == 0`.
    ptr: NonNull<T>,
    /// How many cells.
    len: usize,
    /// `None`: `ptr`/`len` came from `Box::into_raw` and are freed in `drop`.
    /// `Some`: the cells live in a mapping this keeps alive.
    keep: Option<Keep>,
}

// SAFETY: a `Store<T>` hands out only `&T` (shared access) to cells that are
// either owned by it or kept alive by `keep`; with `T: Sync` that is sound
// from any thread, and moving the store moves the ownership of a heap box,
// which `T: Send` allows.
unsafe impl<T: Send + Sync> Send for Store<T> {}
// SAFETY: as for `Send`: only `&T` is handed out.
unsafe impl<T: Send + Sync> Sync for Store<T> {}

impl<T> Store<T> {
    /// Heap-owned cells, made by `init(i)` for `i in 0..len`.
    pub(crate) fn heap(len: usize, init: impl FnMut(usize) -> T) -> Self {
        let boxed: Box<[T]> = (0..len).map(init).collect();
        let len = boxed.len();
        // `Box::into_raw` never returns null (a zero-length box gives a
        // dangling, aligned pointer, which `drop` turns back into a box).
        let ptr =
            NonNull::new(Box::into_raw(boxed).cast::<T>()).expect("Box pointers are non-null");
        Self {
            ptr,
            len,
            keep: None,
        }
    }

    /// Cells inside a mapping.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned for `T` and valid for reads and atomic writes of
    /// `len` cells for as long as `keep` lives, in every process that maps
    /// them; the cells hold valid `T`s (`T` is an atomic integer type, or
    /// padding of them, for which every bit pattern is valid), and nothing
    /// accesses them other than through `&T`.
    #[cfg(not(ringstat_loom))]
    pub(crate) unsafe fn mapped(ptr: NonNull<T>, len: usize, keep: Keep) -> Self
    where
        T: crate::sync::MappedCell,
    {
        Self {
            ptr,
            len,
            keep: Some(keep),
        }
    }
}

impl<T> Deref for Store<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `len` cells while `self` lives: a heap
        // box freed only in `drop`, or a mapping kept alive by `keep`
        // (`mapped`'s contract); only shared references are handed out.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Store<T> {
    fn drop(&mut self) {
        if self.keep.is_none() {
            let raw = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
            // SAFETY: with no `keep`, `ptr`/`len` came from `Box::into_raw`
            // in `heap` and are freed only here, once.
            drop(unsafe { Box::from_raw(raw) });
        }
    }
}
