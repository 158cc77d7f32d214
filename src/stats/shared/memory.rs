//! [`SharedMemory`]: the bytes a shared registry lives in, and
//! [`AnonymousMemory`], an anonymous shared mapping (shared with the
//! processes this one forks).

use core::ptr::NonNull;

use super::registry::SharedError;

/// Memory that a [`SharedRegistry`](super::registry::SharedRegistry) lives in:
/// `len()` bytes at `as_ptr()`, mapped while the value lives, shared with
/// the other processes of the registry. All zero when first made.
///
/// # Safety
///
/// `as_ptr()` is non-null, aligned to 128 bytes, and valid for reads and
/// atomic writes of `len()` bytes until the value is dropped; both return
/// the same values every time; nothing else in this process accesses those
/// bytes other than through atomic operations.
pub unsafe trait SharedMemory: Send + Sync + 'static {
    /// The first byte.
    fn as_ptr(&self) -> *mut u8;
    /// How many bytes.
    fn len(&self) -> usize;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: the `Arc` keeps the memory alive and forwards the same answers.
unsafe impl<M: SharedMemory> SharedMemory for crate::sync::StdArc<M> {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

/// An anonymous shared mapping (`mmap(MAP_SHARED | MAP_ANONYMOUS)`), zeroed
/// by the kernel: shared with the children this process forks after making
/// it, gone when the last of them unmaps it.
///
/// # Examples
///
/// ```
/// use ringstat::stats::{AnonymousMemory, SharedMemory};
///
/// let m = AnonymousMemory::new(4096)?;
/// assert_eq!(m.len(), 4096);
/// # Ok::<(), ringstat::stats::SharedError>(())
/// ```
#[derive(Debug)]
pub struct AnonymousMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is process-wide memory, used only through atomics.
unsafe impl Send for AnonymousMemory {}
// SAFETY: as for `Send`.
unsafe impl Sync for AnonymousMemory {}

impl AnonymousMemory {
    /// Maps `len` zeroed bytes (rounded up to whole pages by the kernel).
    ///
    /// # Errors
    ///
    /// [`SharedError::Io`] if the kernel refuses (or `len` is 0).
    pub fn new(len: usize) -> Result<Self, SharedError> {
        if len == 0 {
            return Err(SharedError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an empty mapping",
            )));
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SharedError::Io(std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| SharedError::Io(std::io::Error::other("mmap returned null")))?;
        Ok(Self { ptr, len })
    }
}

// SAFETY: a page-aligned mapping of `len` bytes, unmapped only in `drop`.
unsafe impl SharedMemory for AnonymousMemory {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for AnonymousMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; every view into
        // it (the registry's cells) holds this value alive.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
