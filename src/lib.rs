//! Lock-free queues and live statistics, written once in Rust and used from
//! Rust and Python.
//!
//! - [`Queue`]: a bounded multi-producer multi-consumer ring buffer with
//!   non-blocking, blocking, timed and batch operations, lossy
//!   [`force_push`](Queue::force_push), [`close`](Queue::close), and
//!   iterators that pop ([`iter`](Queue::iter) until closed and drained).
//! - [`stats`]: counters, gauges, histograms, sliding-window rates and a
//!   registry that many threads update while anyone reads them live.
//! - `serve` (cargo feature `serve`, off by default): an HTTP scrape
//!   endpoint on a native thread serving a registry's exposition.
//! - `wire` (cargo feature `wire`): versioned binary frames of events and
//!   states; `broker` (cargo feature `rabbitmq`): a RabbitMQ shipper and
//!   consumer of those frames.
//! - [`shm`] (Linux): named shared-memory regions with a validated header
//!   and owner liveness, the storage of the cross-process structures.
//!
//! # Examples
//!
//! ```
//! use ringstat::Queue;
//!
//! let q = Queue::new(2);
//! q.try_push("login").unwrap();
//! q.try_push("logout").unwrap();
//! assert!(q.try_push("register").is_err()); // full: the value comes back
//! assert_eq!(q.try_pop(), Ok("login"));
//! ```

// Lints: `[lints]` in Cargo.toml.

mod sync;

pub mod pipeline;
pub mod queue;
#[cfg(target_os = "linux")]
pub mod shm;
pub mod stats;
#[cfg(feature = "wire")]
pub mod wire;

#[cfg(feature = "serve")]
pub mod serve;

#[cfg(all(any(feature = "rabbitmq", feature = "kafka"), not(ringstat_loom)))]
pub mod broker;

#[cfg(feature = "python")]
mod python;

pub use pipeline::{Backpressure, Event, Pipeline};
pub use queue::{PopError, PushError, Queue};
#[cfg(target_os = "linux")]
pub use queue::{SharedQueue, SharedQueueOptions};
pub use stats::{Counter, Gauge, Histogram, Rate, Registry, StatsError};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
