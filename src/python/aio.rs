//! Waking asyncio tasks from native code: `_LoopWaker`, one per event loop,
//! owns a nonblocking eventfd (a pipe where there is none) that the loop
//! watches with `add_reader`. A task that waits registers a [`Waker`] with
//! the queue under a process-unique token; when a push, pop or close takes
//! it, from any thread and without the GIL, the waker appends the token to
//! the loop's fired list and, if the list was empty, writes to the fd. The
//! loop's reader callback (`ringstat.aio`) drains the fd, takes the fired
//! tokens and resolves their futures. No timer, no polling.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::task::{Wake, Waker};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::sync::{AtomicU64, Mutex, Ordering, StdArc};

/// Source of tokens: unique in the process, so two loops' waiters never
/// share a key on one queue. Starts at 1 (0 means "not registered").
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A fresh token.
pub(crate) fn next_token() -> u64 {
    // Relaxed: a unique ticket, no data published.
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

/// The fds a loop watches, and the tokens fired since it last looked.
struct Signal {
    /// Read end (the eventfd itself on Linux).
    read: OwnedFd,
    /// Write end (`None`: the eventfd, written through `read`).
    write: Option<OwnedFd>,
    fired: Mutex<Vec<u64>>,
}

impl Signal {
    fn new() -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `eventfd` takes no pointers; a negative result is an
            // error, otherwise we own the new descriptor.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Self {
                // SAFETY: `fd` is a fresh descriptor nobody else owns.
                read: unsafe { OwnedFd::from_raw_fd(fd) },
                write: None,
                fired: Mutex::new(Vec::new()),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut fds = [0; 2];
            // SAFETY: `pipe` writes two descriptors into `fds`, which has room
            // for them.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: plain fcntl calls on descriptors we just made.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(Self {
                // SAFETY: fresh descriptors nobody else owns.
                read: unsafe { OwnedFd::from_raw_fd(fds[0]) },
                // SAFETY: as above.
                write: Some(unsafe { OwnedFd::from_raw_fd(fds[1]) }),
                fired: Mutex::new(Vec::new()),
            })
        }
    }

    /// Records `token` as fired; writes to the fd when the list was empty
    /// (the loop has not yet been told).
    fn fire(&self, token: u64) {
        let mut fired = self.fired.lock().unwrap_or_else(|e| e.into_inner());
        fired.push(token);
        if fired.len() == 1 {
            let fd = self.write.as_ref().unwrap_or(&self.read).as_raw_fd();
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a local; the fd stays open while
            // `self` lives. A failure (a full pipe) means the loop already
            // has a wake-up pending: nothing to do.
            let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
        }
    }

    /// Empties the fd, then takes the fired tokens. In this order: a token
    /// fired after the take finds the list empty and writes again.
    fn take(&self) -> Vec<u64> {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a local buffer of the length given.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 || self.write.is_none() {
                break; // an eventfd is emptied by one read
            }
        }
        std::mem::take(&mut *self.fired.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The [`Waker`] of one registration: fires its token on its loop's signal.
struct TokenWake {
    signal: StdArc<Signal>,
    token: u64,
}

impl Wake for TokenWake {
    fn wake(self: StdArc<Self>) {
        self.signal.fire(self.token);
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.signal.fire(self.token);
    }
}

/// The native half of one event loop's hub (see the module docs); the
/// Python half lives in `ringstat.aio`.
#[pyclass(frozen, name = "_LoopWaker", module = "ringstat._ringstat")]
pub(crate) struct PyLoopWaker {
    signal: StdArc<Signal>,
}

impl PyLoopWaker {
    /// A waker that fires `token` on this loop.
    pub(crate) fn waker(&self, token: u64) -> Waker {
        Waker::from(StdArc::new(TokenWake {
            signal: StdArc::clone(&self.signal),
            token,
        }))
    }
}

#[pymethods]
impl PyLoopWaker {
    #[new]
    fn new() -> PyResult<Self> {
        let signal = Signal::new().map_err(|e| PyOSError::new_err(format!("eventfd: {e}")))?;
        Ok(Self {
            signal: StdArc::new(signal),
        })
    }

    /// The descriptor to watch with `loop.add_reader`.
    fn fileno(&self) -> i32 {
        self.signal.read.as_raw_fd()
    }

    /// Drains the descriptor and returns the tokens fired since the last
    /// call.
    fn take_fired(&self) -> Vec<u64> {
        self.signal.take()
    }

    /// Fires `token` as a native waker would (for tests and for waking a
    /// loop from Python).
    fn fire(&self, token: u64) {
        self.signal.fire(token);
    }
}
