//! Why a shared region could not be created or attached.

use core::fmt;
use std::io;
use std::time::Duration;

use super::Kind;

/// Every way creating, attaching or removing a named region can fail. A
/// region is input from another process: each validation failure has its
/// own variant, and none of them reads outside the mapping.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// The name is not a valid shared-memory name.
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No region has this name.
    NotFound {
        /// The name.
        name: String,
    },
    /// `create` found the name taken.
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// The object does not start with ringstat's magic: not a region of ours.
    Foreign {
        /// The name.
        name: String,
    },
    /// The object is shorter than its header says (or than a header).
    Truncated {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: u64,
        /// The length its header (or the smallest header) needs.
        needed: u64,
    },
    /// The header layout version is not the one this build reads.
    WrongVersion {
        /// The name.
        name: String,
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The region holds another kind of structure (a registry attached as a
    /// queue), or another layout version of it.
    WrongKind {
        /// The name.
        name: String,
        /// The kind found in the header.
        found: Kind,
        /// The kind asked for.
        expected: Kind,
    },
    /// The header fails its checksum or holds impossible values.
    Corrupted {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The creator has not finished initialising the region within the wait.
    Unpublished {
        /// The name.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The creator died before initialising the region (no process holds
    /// its creation lock and it is older than the staleness bound). Remove
    /// it with [`cleanup`](super::cleanup), or use `create_or_attach`, which
    /// takes it over.
    Abandoned {
        /// The name.
        name: String,
        /// Its age.
        age: Duration,
    },
    /// The payload asked for is 0 or too large.
    BadSize {
        /// The name.
        name: String,
        /// The payload size asked for.
        payload_len: u64,
    },
    /// A system call failed.
    Io {
        /// The name.
        name: String,
        /// What we were doing.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl ShmError {
    /// The region name the error is about.
    pub fn name(&self) -> &str {
        match self {
            Self::InvalidName { name, .. }
            | Self::NotFound { name }
            | Self::AlreadyExists { name }
            | Self::Foreign { name }
            | Self::Truncated { name, .. }
            | Self::WrongVersion { name, .. }
            | Self::WrongKind { name, .. }
            | Self::Corrupted { name, .. }
            | Self::Unpublished { name, .. }
            | Self::Abandoned { name, .. }
            | Self::BadSize { name, .. }
            | Self::Io { name, .. } => name,
        }
    }
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName { name, reason } => {
                write!(f, "invalid shared-memory name {name:?}: {reason}")
            }
            Self::NotFound { name } => write!(f, "no shared region named {name:?}"),
            Self::AlreadyExists { name } => {
                write!(f, "a shared region named {name:?} already exists")
            }
            Self::Foreign { name } => write!(
                f,
                "shared memory {name:?} is not a ringstat region (bad magic)"
            ),
            Self::Truncated { name, len, needed } => write!(
                f,
                "shared region {name:?} is truncated: {len} bytes, its header needs {needed}"
            ),
            Self::WrongVersion {
                name,
                found,
                expected,
            } => write!(
                f,
                "shared region {name:?} has header version {found}, this build reads {expected}"
            ),
            Self::WrongKind {
                name,
                found,
                expected,
            } => write!(
                f,
                "shared region {name:?} holds a {found}, not a {expected}"
            ),
            Self::Corrupted { name, reason } => {
                write!(f, "shared region {name:?} is corrupted: {reason}")
            }
            Self::Unpublished { name, waited } => write!(
                f,
                "shared region {name:?} was not initialised by its creator within {waited:?}"
            ),
            Self::Abandoned { name, age } => write!(
                f,
                "shared region {name:?} was left uninitialised {age:?} ago by a creator that \
                 died; remove it with cleanup({name:?}) or use create_or_attach"
            ),
            Self::BadSize { name, payload_len } => write!(
                f,
                "shared region {name:?}: payload size {payload_len} is 0 or too large"
            ),
            Self::Io { name, op, source } => {
                write!(f, "shared region {name:?}: {op} failed: {source}")
            }
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
