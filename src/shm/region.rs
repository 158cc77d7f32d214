//! [`Region`]: a named POSIX shared-memory object with a validated header
//! and a payload that the layer above lays out by offsets.
//!
//! # Layout (native endianness; a region never leaves its machine)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"RINGSTAT"`, stored last (Release) to publish the region |
//! | 8 | 4 | header layout version ([`HEADER_VERSION`]) |
//! | 12 | 4 | header length (64) |
//! | 16 | 4 | kind tag (4 ASCII bytes: `b"QUEU"`, `b"REGY"`, ...) |
//! | 20 | 4 | kind version (the payload layout's version) |
//! | 24 | 8 | payload length in bytes |
//! | 32 | 4 | creator pid |
//! | 36 | 4 | flags (0) |
//! | 40 | 8 | creator start time (clock ticks since boot) |
//! | 48 | 8 | creation time (ns since the Unix epoch) |
//! | 56 | 8 | FNV-1a 64 checksum of bytes 8..56 |
//! | 64 | payload_len | payload |
//!
//! # Creation protocol
//!
//! The creator opens the name with `O_CREAT | O_EXCL` (exactly one process
//! wins a race), takes an exclusive `flock` on it, sizes it, writes the
//! header, runs the caller's initialiser over the payload, and only then
//! stores the magic with `Release`. Attachers load the magic with `Acquire`;
//! while it is 0 they wait (up to [`Options::wait`]). The kernel drops the
//! `flock` when its holder dies, so an unpublished region whose lock is free
//! and which is older than [`Options::stale_after`] belongs to a creator
//! that died: `attach` reports [`ShmError::Abandoned`], `create_or_attach`
//! takes it over (re-initialises it under the lock).

use core::fmt;
use core::ptr::NonNull;
use std::time::Duration;

use super::ShmError;
use super::{Liveness, Owner};
use crate::sync::{AtomicU32, AtomicU64};

/// The header's size in bytes; the payload starts at this offset (so it
/// keeps the mapping's page alignment up to 64 bytes).
pub const HEADER_LEN: usize = 64;
/// The header layout version this build writes and reads.
pub const HEADER_VERSION: u32 = 1;
/// The magic, `b"RINGSTAT"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RINGSTAT");

const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 12;
const OFF_KIND_TAG: usize = 16;
const OFF_KIND_VERSION: usize = 20;
const OFF_PAYLOAD_LEN: usize = 24;
const OFF_PID: usize = 32;
const OFF_FLAGS: usize = 36;
const OFF_START: usize = 40;
const OFF_CREATED: usize = 48;
const OFF_CHECKSUM: usize = 56;

/// The largest payload a region may have (1 TiB): a sanity bound on a
/// length read from another process.
pub const MAX_PAYLOAD: u64 = 1 << 40;

/// What a region holds and the version of that layout, so that a queue
/// region is never attached as a registry (or an old queue layout as a new
/// one).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    /// Four ASCII bytes naming the structure.
    pub tag: [u8; 4],
    /// The version of its payload layout.
    pub version: u32,
}

impl Kind {
    /// A kind from its tag and layout version.
    pub const fn new(tag: [u8; 4], version: u32) -> Self {
        Self { tag, version }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.tag {
            if b.is_ascii_graphic() {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        write!(f, " v{}", self.version)
    }
}

/// How to create or attach a region.
#[derive(Clone, Debug)]
pub struct Options {
    /// Permission bits of a created region (default `0o600`: the creating
    /// user only). Applied exactly, whatever the umask.
    pub mode: u32,
    /// How long `attach` waits for a creator that is still initialising
    /// (default 2 s).
    pub wait: Duration,
    /// An unpublished region whose creation lock is free is abandoned once
    /// it is this old (default 1 s).
    pub stale_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: 0o600,
            wait: Duration::from_secs(2),
            stale_after: Duration::from_secs(1),
        }
    }
}

/// The validated fields of a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// What the region holds.
    pub kind: Kind,
    /// The payload length in bytes.
    pub payload_len: usize,
    /// The process that created it.
    pub creator: Owner,
    /// Creation time, in nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn rd_u64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The header bytes for `info`, magic included.
pub(crate) fn encode_header(info: &HeaderInfo) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC.to_ne_bytes());
    h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&HEADER_VERSION.to_ne_bytes());
    h[OFF_HEADER_LEN..OFF_HEADER_LEN + 4].copy_from_slice(&(HEADER_LEN as u32).to_ne_bytes());
    h[OFF_KIND_TAG..OFF_KIND_TAG + 4].copy_from_slice(&info.kind.tag);
    h[OFF_KIND_VERSION..OFF_KIND_VERSION + 4].copy_from_slice(&info.kind.version.to_ne_bytes());
    h[OFF_PAYLOAD_LEN..OFF_PAYLOAD_LEN + 8]
        .copy_from_slice(&(info.payload_len as u64).to_ne_bytes());
    h[OFF_PID..OFF_PID + 4].copy_from_slice(&info.creator.pid.to_ne_bytes());
    h[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&0u32.to_ne_bytes());
    h[OFF_START..OFF_START + 8].copy_from_slice(&info.creator.start_time.to_ne_bytes());
    h[OFF_CREATED..OFF_CREATED + 8].copy_from_slice(&info.created_unix_ns.to_ne_bytes());
    let sum = fnv1a(&h[8..OFF_CHECKSUM]);
    h[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_ne_bytes());
    h
}

/// Validates the first bytes of an object (`bytes`, however many there are)
/// whose total length is `object_len`, expecting `expected`. Reads only
/// within `bytes`; `Ok` only for a header [`encode_header`] could have
/// written, with the whole payload inside the object.
pub(crate) fn validate_header(
    name: &str,
    bytes: &[u8],
    object_len: u64,
    expected: Kind,
) -> Result<HeaderInfo, ShmError> {
    let name = || name.to_owned();
    if bytes.len() < 8 {
        return Err(ShmError::Truncated {
            name: name(),
            len: object_len,
            needed: HEADER_LEN as u64,
        });
    }
    if rd_u64(bytes, 0) != MAGIC {
        return Err(ShmError::Foreign { name: name() });
    }
    if bytes.len() < HEADER_LEN || object_len < HEADER_LEN as u64 {
        return Err(ShmError::Truncated {
            name: name(),
            len: object_len,
            needed: HEADER_LEN as u64,
        });
    }
    let version = rd_u32(bytes, OFF_VERSION);
    if version != HEADER_VERSION {
        return Err(ShmError::WrongVersion {
            name: name(),
            found: version,
            expected: HEADER_VERSION,
        });
    }
    let sum = fnv1a(&bytes[8..OFF_CHECKSUM]);
    if rd_u64(bytes, OFF_CHECKSUM) != sum {
        return Err(ShmError::Corrupted {
            name: name(),
            reason: "header checksum mismatch".into(),
        });
    }
    let corrupted = |reason: &str| ShmError::Corrupted {
        name: name(),
        reason: reason.into(),
    };
    if rd_u32(bytes, OFF_HEADER_LEN) as usize != HEADER_LEN {
        return Err(corrupted("header length is not 64"));
    }
    if rd_u32(bytes, OFF_FLAGS) != 0 {
        return Err(corrupted("unknown header flags"));
    }
    let kind = Kind {
        tag: bytes[OFF_KIND_TAG..OFF_KIND_TAG + 4]
            .try_into()
            .expect("4 bytes"),
        version: rd_u32(bytes, OFF_KIND_VERSION),
    };
    if kind != expected {
        return Err(ShmError::WrongKind {
            name: name(),
            found: kind,
            expected,
        });
    }
    let payload_len = rd_u64(bytes, OFF_PAYLOAD_LEN);
    if payload_len == 0 || payload_len > MAX_PAYLOAD {
        return Err(corrupted("payload length out of range"));
    }
    let needed = HEADER_LEN as u64 + payload_len;
    if object_len < needed {
        return Err(ShmError::Truncated {
            name: name(),
            len: object_len,
            needed,
        });
    }
    Ok(HeaderInfo {
        kind,
        payload_len: usize::try_from(payload_len).map_err(|_| corrupted("payload too large"))?,
        creator: Owner {
            pid: rd_u32(bytes, OFF_PID),
            start_time: rd_u64(bytes, OFF_START),
        },
        created_unix_ns: rd_u64(bytes, OFF_CREATED),
    })
}

/// Turns `"name"` or `"/name"` into the POSIX form `"/name"`.
pub(crate) fn normalize_name(name: &str) -> Result<String, ShmError> {
    let bad = |reason| ShmError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(bad("empty"));
    }
    if bare.contains('/') {
        return Err(bad("contains '/'"));
    }
    if bare.contains('\0') {
        return Err(bad("contains NUL"));
    }
    if bare == "." || bare == ".." {
        return Err(bad("is . or .."));
    }
    if bare.len() > 250 {
        return Err(bad("longer than 250 bytes"));
    }
    Ok(format!("/{bare}"))
}

enum Backing {
    #[cfg(not(ringstat_loom))]
    Map(#[allow(dead_code)] memmap2::MmapMut),
    /// `Box<[u64]>` leaked into `base`; freed on drop with `words` words.
    Heap { words: usize },
}

/// A shared-memory region: a validated header and a payload of
/// [`payload_len`](Region::payload_len) bytes, addressed by offsets from
/// the payload's start (never by pointers, which differ between processes).
///
/// Dropping a `Region` unmaps it; the name stays until someone calls
/// [`unlink`](Region::unlink) or [`cleanup`](super::cleanup), or the machine
/// reboots (`/dev/shm` is a tmpfs). Processes that have it mapped keep
/// using it after an unlink; a later `create` of the name makes a new,
/// distinct region.
///
/// # Examples
///
/// ```
/// use ringstat::shm::{self, Kind, Options, Region};
///
/// const KIND: Kind = Kind::new(*b"DEMO", 1);
/// let name = format!("ringstat-doc-region-{}", std::process::id());
/// let opts = Options::default();
/// let a = Region::create(&name, KIND, 4096, &opts, |_| {}).unwrap();
/// let b = Region::attach(&name, KIND, &opts).unwrap();
/// assert_eq!(b.payload_len(), 4096);
/// assert_eq!(b.creator().pid, std::process::id());
/// // A region of another kind is refused.
/// assert!(Region::attach(&name, Kind::new(*b"ELSE", 1), &opts).is_err());
/// assert!(shm::cleanup(&name).unwrap());
/// drop((a, b));
/// ```
pub struct Region {
    /// Start of the header (the payload is at `base + HEADER_LEN`).
    base: NonNull<u8>,
    info: HeaderInfo,
    name: Option<String>,
    backing: Backing,
    /// Loom shadows of the payload, one atomic per 8 (or 4) bytes: loom
    /// atomics cannot live in raw memory, so each offset has its own loom
    /// atomic; a layout must use each offset as one type only.
    #[cfg(ringstat_loom)]
    loom64: Box<[AtomicU64]>,
    #[cfg(ringstat_loom)]
    loom32: Box<[AtomicU32]>,
}

// SAFETY: the region's memory is only accessed through atomics or through
// raw byte copies whose exclusivity the layer above guarantees (a slot's
// bytes belong to the one process that claimed it); nothing in `Region` is
// tied to a thread.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: shared access goes through atomics.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("kind", &self.info.kind)
            .field("payload_len", &self.info.payload_len)
            .field("creator", &self.info.creator)
            .finish()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Backing::Heap { words } = self.backing {
            let slice =
                core::ptr::slice_from_raw_parts_mut(self.base.as_ptr().cast::<u64>(), words);
            // SAFETY: `base` came from `Box::into_raw` of a `Box<[u64]>` of
            // `words` words in `heap`, and is freed only here.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Region {
    /// A private region on the heap (not shared, no name), initialised by
    /// `init` like a created one: for tests and for code that runs the same
    /// layout in one process. Under loom this is the only kind of region.
    ///
    /// # Panics
    ///
    /// If `payload_len` is 0 or above [`MAX_PAYLOAD`].
    pub fn heap(kind: Kind, payload_len: usize, init: impl FnOnce(&Region)) -> Region {
        assert!(
            payload_len > 0 && payload_len as u64 <= MAX_PAYLOAD,
            "payload_len must be in 1..=MAX_PAYLOAD"
        );
        let words = (HEADER_LEN + payload_len).div_ceil(8);
        let boxed: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let base = NonNull::new(Box::into_raw(boxed).cast::<u8>()).expect("Box is non-null");
        let info = HeaderInfo {
            kind,
            payload_len,
            creator: Owner::current(),
            created_unix_ns: now_unix_ns(),
        };
        let region = Region {
            base,
            info,
            name: None,
            backing: Backing::Heap { words },
            #[cfg(ringstat_loom)]
            loom64: (0..payload_len.div_ceil(8))
                .map(|_| AtomicU64::new(0))
                .collect(),
            #[cfg(ringstat_loom)]
            loom32: (0..payload_len.div_ceil(4))
                .map(|_| AtomicU32::new(0))
                .collect(),
        };
        // SAFETY: the allocation holds `HEADER_LEN + payload_len` bytes; no
        // other reference to it exists yet.
        unsafe { region.write_header() };
        init(&region);
        region.publish();
        region
    }

    /// The region's name (`"/name"`), or `None` for a heap region.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// What the region holds.
    pub fn kind(&self) -> Kind {
        self.info.kind
    }

    /// The payload length in bytes.
    pub fn payload_len(&self) -> usize {
        self.info.payload_len
    }

    /// The process that created (initialised) the region.
    pub fn creator(&self) -> Owner {
        self.info.creator
    }

    /// Whether the creator still runs.
    pub fn creator_liveness(&self) -> Liveness {
        self.info.creator.liveness()
    }

    /// The validated header fields.
    pub fn info(&self) -> HeaderInfo {
        self.info
    }

    /// Writes every header field but the magic.
    ///
    /// # Safety
    ///
    /// `base` is valid for `HEADER_LEN` bytes and no other process reads
    /// them yet (the region is unpublished and we hold its creation lock).
    unsafe fn write_header(&self) {
        let mut h = encode_header(&self.info);
        h[0..8].fill(0);
        // SAFETY: per the contract, the header is ours alone and in bounds.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), self.base.as_ptr(), HEADER_LEN) };
    }

    /// Stores the magic, making the header and the initialised payload
    /// visible to attachers.
    fn publish(&self) {
        #[cfg(not(ringstat_loom))]
        {
            // SAFETY: `base` is 8-aligned (page or `u64` allocation) and
            // valid for the region's life; the magic is only accessed
            // atomically once the region is shared.
            let magic = unsafe { crate::sync::atomic_u64_at(self.base.as_ptr().cast::<u64>()) };
            // Release: pairs with the Acquire load in `attach_fd`, so an
            // attacher that sees the magic sees the header and payload.
            magic.store(MAGIC, crate::sync::Ordering::Release);
        }
        #[cfg(ringstat_loom)]
        {
            // SAFETY: a heap region is not shared with other processes; the
            // header is plain memory that only this model thread writes.
            unsafe { self.base.as_ptr().cast::<u64>().write(MAGIC) };
        }
    }

    fn check(&self, off: usize, len: usize, align: usize) {
        assert!(
            off % align == 0
                && off
                    .checked_add(len)
                    .is_some_and(|e| e <= self.info.payload_len),
            "offset {off}+{len} out of the payload ({} bytes) or misaligned",
            self.info.payload_len
        );
    }

    /// The 8-byte atomic at payload offset `off`.
    ///
    /// # Panics
    ///
    /// If `off` is not 8-aligned or the word is not inside the payload.
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8, 8);
        #[cfg(not(ringstat_loom))]
        {
            // SAFETY: in bounds and aligned (checked; the payload starts at
            // an 8-aligned base + 64); valid while `self` lives; every user
            // of this offset, in any process, accesses it atomically.
            unsafe {
                crate::sync::atomic_u64_at(self.base.as_ptr().add(HEADER_LEN + off).cast::<u64>())
            }
        }
        #[cfg(ringstat_loom)]
        {
            &self.loom64[off / 8]
        }
    }

    /// The 4-byte atomic at payload offset `off` (a futex word, say).
    ///
    /// # Panics
    ///
    /// If `off` is not 4-aligned or the word is not inside the payload.
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4, 4);
        #[cfg(not(ringstat_loom))]
        {
            // SAFETY: as in `u64_at`, with 4-byte alignment.
            unsafe {
                crate::sync::atomic_u32_at(self.base.as_ptr().add(HEADER_LEN + off).cast::<u32>())
            }
        }
        #[cfg(ringstat_loom)]
        {
            &self.loom32[off / 4]
        }
    }

    /// A raw pointer to `len` payload bytes at `off`, for copying message
    /// bytes in and out. Obtaining it is safe; reading or writing through it
    /// is `unsafe`, and the caller's protocol (a claimed slot, say) must
    /// make the access exclusive across processes.
    ///
    /// # Panics
    ///
    /// If the range is not inside the payload.
    pub fn bytes_ptr(&self, off: usize, len: usize) -> *mut u8 {
        self.check(off, len, 1);
        // SAFETY: `HEADER_LEN + off + len <= HEADER_LEN + payload_len`, the
        // size of the allocation or mapping (checked above).
        unsafe { self.base.as_ptr().add(HEADER_LEN + off) }
    }
}

#[cfg(not(ringstat_loom))]
mod named {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::time::Instant;

    use rustix::fs::{FlockOperation, Mode};
    use rustix::io::Errno;
    use rustix::shm;

    fn io_err(name: &str, op: &'static str, e: impl Into<std::io::Error>) -> ShmError {
        ShmError::Io {
            name: name.to_owned(),
            op,
            source: e.into(),
        }
    }

    fn total_len(name: &str, payload_len: usize) -> Result<u64, ShmError> {
        if payload_len == 0 || payload_len as u64 > MAX_PAYLOAD {
            return Err(ShmError::BadSize {
                name: name.to_owned(),
                payload_len: payload_len as u64,
            });
        }
        Ok(HEADER_LEN as u64 + payload_len as u64)
    }

    /// Result of the creation attempt with `O_EXCL`.
    enum Excl {
        Created(Region),
        Exists,
    }

    impl Region {
        /// Creates the region `name` (`"name"` or `"/name"`) with a payload
        /// of `payload_len` bytes; `init` lays out the (zeroed) payload
        /// before any other process can attach. Fails with
        /// [`ShmError::AlreadyExists`] if the name is taken.
        pub fn create(
            name: &str,
            kind: Kind,
            payload_len: usize,
            opts: &Options,
            init: impl FnOnce(&Region),
        ) -> Result<Region, ShmError> {
            let name = normalize_name(name)?;
            match create_excl(&name, kind, payload_len, opts, init)? {
                Excl::Created(r) => Ok(r),
                Excl::Exists => Err(ShmError::AlreadyExists { name }),
            }
        }

        /// Attaches the existing region `name`, which must hold `kind`.
        /// Waits up to `opts.wait` for a creator that is still
        /// initialising it.
        pub fn attach(name: &str, kind: Kind, opts: &Options) -> Result<Region, ShmError> {
            let name = normalize_name(name)?;
            let fd = match shm::open(name.as_str(), shm::OFlags::RDWR, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Err(ShmError::NotFound { name }),
                Err(e) => return Err(io_err(&name, "shm_open", e)),
            };
            attach_fd(
                &name,
                File::from(fd),
                kind,
                opts,
                None::<(usize, fn(&Region))>,
            )
            .map(|(r, _)| r)
        }

        /// Attaches `name` if it exists, otherwise creates it as
        /// [`create`](Region::create) does; `true` in the result if this
        /// call created (or took over an abandoned) region. When two
        /// processes race, one creates and the other attaches to the
        /// initialised region. The caller checks that an attached region's
        /// layout matches what it wanted.
        pub fn create_or_attach(
            name: &str,
            kind: Kind,
            payload_len: usize,
            opts: &Options,
            init: impl FnOnce(&Region),
        ) -> Result<(Region, bool), ShmError> {
            let name = normalize_name(name)?;
            total_len(&name, payload_len)?;
            let mut init = Some(init);
            // A few rounds: the name may be unlinked between our two opens.
            for _ in 0..8 {
                match create_excl(&name, kind, payload_len, opts, |r| {
                    (init.take().expect("init runs once"))(r)
                })? {
                    Excl::Created(r) => return Ok((r, true)),
                    Excl::Exists => {}
                }
                let fd = match shm::open(name.as_str(), shm::OFlags::RDWR, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(io_err(&name, "shm_open", e)),
                };
                let init = |r: &Region| (init.take().expect("init runs once"))(r);
                return attach_fd(&name, File::from(fd), kind, opts, Some((payload_len, init)));
            }
            Err(ShmError::NotFound { name })
        }

        /// Removes the region's name (see [`cleanup`](super::cleanup)).
        /// Mappings, this one included, stay valid.
        pub fn unlink(&self) -> Result<bool, ShmError> {
            match &self.name {
                Some(n) => cleanup(n),
                None => Ok(false),
            }
        }
    }

    /// Removes the name `name`: new `attach` calls fail with `NotFound` and
    /// a new `create` makes a fresh region; processes that have it mapped
    /// keep using their mapping, and the memory is freed when the last one
    /// unmaps. `Ok(false)` if there was no such name. Nothing unlinks a
    /// region implicitly: the application decides who owns the name (the
    /// creator at shutdown, a supervisor, or an operator); a reboot clears
    /// `/dev/shm`.
    pub fn cleanup(name: &str) -> Result<bool, ShmError> {
        let name = normalize_name(name)?;
        match shm::unlink(name.as_str()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(io_err(&name, "shm_unlink", e)),
        }
    }

    fn create_excl(
        name: &str,
        kind: Kind,
        payload_len: usize,
        opts: &Options,
        init: impl FnOnce(&Region),
    ) -> Result<Excl, ShmError> {
        total_len(name, payload_len)?;
        let mode = Mode::from_bits_truncate(opts.mode & 0o777);
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
        let fd = match shm::open(name, flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Ok(Excl::Exists),
            Err(e) => return Err(io_err(name, "shm_open", e)),
        };
        // The exact mode, whatever the umask.
        rustix::fs::fchmod(&fd, mode).map_err(|e| io_err(name, "fchmod", e))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)
            .map_err(|e| io_err(name, "flock", e))?;
        let file = File::from(fd);
        // An attacher may have taken over while we waited for the lock (only
        // if we stalled past `stale_after` between open and flock).
        if published_len(&file).is_some() {
            drop(file);
            return Ok(Excl::Exists);
        }
        init_locked(name, &file, kind, payload_len, init).map(Excl::Created)
    }

    /// The object's length if its magic is set (any non-zero value).
    fn published_len(file: &File) -> Option<u64> {
        let len = file.metadata().ok()?.len();
        if len < 8 {
            return None;
        }
        let mut magic = [0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut magic, 0).ok()?;
        (magic != [0; 8]).then_some(len)
    }

    /// Sizes, maps, fills in and publishes a region whose creation lock we
    /// hold. Truncates to 0 first so that a dead creator's partial writes
    /// are gone.
    fn init_locked(
        name: &str,
        file: &File,
        kind: Kind,
        payload_len: usize,
        init: impl FnOnce(&Region),
    ) -> Result<Region, ShmError> {
        let total = total_len(name, payload_len)?;
        file.set_len(0).map_err(|e| io_err(name, "ftruncate", e))?;
        file.set_len(total)
            .map_err(|e| io_err(name, "ftruncate", e))?;
        let mut map = map(name, file, total)?;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap is non-null");
        let region = Region {
            base,
            info: HeaderInfo {
                kind,
                payload_len,
                creator: Owner::current(),
                created_unix_ns: now_unix_ns(),
            },
            name: Some(name.to_owned()),
            backing: Backing::Map(map),
        };
        // SAFETY: the mapping holds `total >= HEADER_LEN` bytes; the region
        // is unpublished and we hold its lock, so nobody else writes it.
        unsafe { region.write_header() };
        init(&region);
        region.publish();
        Ok(region)
    }

    fn map(name: &str, file: &File, len: u64) -> Result<memmap2::MmapMut, ShmError> {
        let len = usize::try_from(len).map_err(|_| ShmError::BadSize {
            name: name.to_owned(),
            payload_len: len,
        })?;
        // SAFETY: the object is shared memory that other processes modify
        // concurrently; we access it only through atomics and claimed
        // ranges (see `Region`). A process truncating it under us would
        // fault our accesses (SIGBUS): regions are never shrunk by ringstat
        // and `attach` checks the length first.
        unsafe { memmap2::MmapOptions::new().len(len).map_mut(file) }
            .map_err(|e| io_err(name, "mmap", e))
    }

    /// The attach loop: wait for publication, then validate.
    fn attach_fd<F: FnOnce(&Region)>(
        name: &str,
        file: File,
        kind: Kind,
        opts: &Options,
        mut takeover: Option<(usize, F)>,
    ) -> Result<(Region, bool), ShmError> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(200);
        loop {
            let meta = file.metadata().map_err(|e| io_err(name, "fstat", e))?;
            let len = meta.len();
            if len > 0 && len < HEADER_LEN as u64 {
                // A creator sizes the object in one step: never this length.
                let mut head = [0u8; 8];
                let n = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).unwrap_or(0);
                return Err(validate_header(name, &head[..n], len, kind)
                    .err()
                    .unwrap_or(ShmError::Truncated {
                        name: name.to_owned(),
                        len,
                        needed: HEADER_LEN as u64,
                    }));
            }
            if len >= HEADER_LEN as u64 {
                let map = map(name, &file, len)?;
                // SAFETY: the mapping is page-aligned and at least 64 bytes;
                // the magic is accessed atomically by every process.
                let magic = unsafe { crate::sync::atomic_u64_at(map.as_ptr() as *mut u64) }
                    // Acquire: pairs with the Release store in `publish`.
                    .load(crate::sync::Ordering::Acquire);
                if magic != 0 {
                    return validated(name, map, len, kind).map(|r| (r, false));
                }
            }
            // Unpublished: is a creator at work (holding the lock)?
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {
                    let published = published_len(&file).is_some();
                    let age = meta
                        .ctime()
                        .checked_mul(1_000_000_000)
                        .and_then(|s| s.checked_add(meta.ctime_nsec()))
                        .and_then(|ns| u64::try_from(ns).ok())
                        .map_or(Duration::ZERO, |ns| {
                            Duration::from_nanos(now_unix_ns().saturating_sub(ns))
                        });
                    if !published && age >= opts.stale_after {
                        if let Some((payload_len, init)) = takeover.take() {
                            let r = init_locked(name, &file, kind, payload_len, init);
                            let _ = rustix::fs::flock(&file, FlockOperation::Unlock);
                            return r.map(|r| (r, true));
                        }
                        let _ = rustix::fs::flock(&file, FlockOperation::Unlock);
                        return Err(ShmError::Abandoned {
                            name: name.to_owned(),
                            age,
                        });
                    }
                    let _ = rustix::fs::flock(&file, FlockOperation::Unlock);
                    if published {
                        continue;
                    }
                }
                Err(Errno::WOULDBLOCK) => {}
                Err(e) => return Err(io_err(name, "flock", e)),
            }
            let waited = start.elapsed();
            if waited >= opts.wait {
                return Err(ShmError::Unpublished {
                    name: name.to_owned(),
                    waited,
                });
            }
            std::thread::sleep(nap.min(opts.wait - waited));
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    fn validated(
        name: &str,
        map: memmap2::MmapMut,
        len: u64,
        kind: Kind,
    ) -> Result<Region, ShmError> {
        let mut head = [0u8; HEADER_LEN];
        // SAFETY: the mapping holds at least HEADER_LEN bytes (checked by
        // the caller); a volatile copy, as another process may scribble on
        // it (we then validate whatever we copied).
        unsafe {
            for (i, b) in head.iter_mut().enumerate() {
                *b = core::ptr::read_volatile(map.as_ptr().add(i));
            }
        }
        let info = validate_header(name, &head, len, kind)?;
        let mut map = map;
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap is non-null");
        Ok(Region {
            base,
            info,
            name: Some(name.to_owned()),
            backing: Backing::Map(map),
        })
    }
}

#[cfg(not(ringstat_loom))]
pub use named::cleanup;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: Kind = Kind::new(*b"TEST", 3);

    fn valid(payload_len: usize) -> [u8; HEADER_LEN] {
        encode_header(&HeaderInfo {
            kind: K,
            payload_len,
            creator: Owner {
                pid: 42,
                start_time: 7,
            },
            created_unix_ns: 1,
        })
    }

    #[test]
    fn header_round_trip() {
        let h = valid(100);
        let info = validate_header("x", &h, 164, K).unwrap();
        assert_eq!(info.payload_len, 100);
        assert_eq!(encode_header(&info), h);
        assert!(matches!(
            validate_header("x", &h, 163, K),
            Err(ShmError::Truncated { needed: 164, .. })
        ));
        assert!(matches!(
            validate_header("x", &h, 164, Kind::new(*b"TEST", 4)),
            Err(ShmError::WrongKind { .. })
        ));
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("a").unwrap(), "/a");
        assert_eq!(normalize_name("/a").unwrap(), "/a");
        for bad in ["", "/", "a/b", "/a/b", "..", "a\0b"] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heap_region_accessors() {
        let r = Region::heap(K, 64, |r| {
            r.u64_at(8).store(5, crate::sync::Ordering::Relaxed)
        });
        assert_eq!(r.u64_at(8).load(crate::sync::Ordering::Relaxed), 5);
        r.u32_at(60).store(1, crate::sync::Ordering::Relaxed);
        assert!(std::panic::catch_unwind(|| {
            let _ = r.u64_at(60);
        })
        .is_err());
        assert!(std::panic::catch_unwind(|| {
            let _ = r.u64_at(4);
        })
        .is_err());
        assert!(std::panic::catch_unwind(|| r.bytes_ptr(60, 5)).is_err());
        assert_eq!(r.name(), None);
    }

    proptest! {
        /// Arbitrary bytes and lengths: never a panic; `Ok` only for bytes
        /// that re-encode to themselves, with the payload inside the object.
        #[test]
        fn validate_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..80), extra in 0u64..1000) {
            let object_len = bytes.len() as u64 + extra;
            if let Ok(info) = validate_header("p", &bytes, object_len, K) {
                prop_assert_eq!(&encode_header(&info)[..], &bytes[..HEADER_LEN]);
                prop_assert!(object_len >= (HEADER_LEN + info.payload_len) as u64);
            }
        }

        /// A valid header with any one byte changed is refused.
        #[test]
        fn validate_one_byte_changed(payload in 1usize..10_000, at in 0usize..HEADER_LEN, x in 1u8..=255) {
            let mut h = valid(payload);
            h[at] ^= x;
            prop_assert!(validate_header("p", &h, u64::MAX, K).is_err());
        }
    }
}
