//! [`Source`] for a [`SharedRegistry`]: a scrape renders every process's
//! metrics (gauges combined by their mode), read from the shared region.

use super::Source;
use crate::stats::{SharedRegistry, Snapshot};

impl Source for SharedRegistry {
    fn snapshot(&self) -> Snapshot {
        SharedRegistry::snapshot(self)
    }
}
