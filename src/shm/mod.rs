//! Named shared-memory regions (Linux): create or attach by name, a
//! validated header, offsets instead of pointers, and owner liveness.
//!
//! A [`Region`] is a POSIX shared-memory object (`/dev/shm/<name>`) with a
//! 64-byte header (magic, layout version, [`Kind`], payload size, creator,
//! checksum) and a payload that the structure above it (the shared queue,
//! the shared registry) lays out by offsets. Attaching validates the
//! header: a foreign, truncated, wrong-version, wrong-kind or corrupted
//! object is refused with its own [`ShmError`], and nothing is read outside
//! the object.
//!
//! # Lifetime
//!
//! - A region's name lives until [`cleanup`] (or [`Region::unlink`]) removes
//!   it, or the machine reboots (`/dev/shm` is a tmpfs: nothing survives a
//!   reboot). Dropping a `Region` only unmaps it. ringstat never unlinks
//!   implicitly: the application decides who owns the name.
//! - Processes that have a region mapped keep using it after it is
//!   unlinked; the memory is freed when the last one unmaps (or exits).
//! - A creator that dies before publishing leaves an unpublished object;
//!   `attach` reports it as [`ShmError::Abandoned`] once it is older than
//!   [`Options::stale_after`], and `create_or_attach` takes it over.
//!
//! # Liveness
//!
//! [`Owner`] is a pid paired with the process start time, so that a reused
//! pid is not mistaken for the process that held a slot.

// Under loom only heap regions exist: the naming and validation code idles.
#![cfg_attr(ringstat_loom, allow(dead_code, irrefutable_let_patterns))]

mod error;
mod owner;
mod region;

pub use error::ShmError;
pub use owner::{Liveness, Owner};
#[cfg(not(ringstat_loom))]
pub use region::cleanup;
pub use region::{
    HeaderInfo, Kind, Options, Region, HEADER_LEN, HEADER_VERSION, MAGIC, MAX_PAYLOAD,
};
