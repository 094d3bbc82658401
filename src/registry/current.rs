//! [`Current`]: the registry in force. A reload (SIGHUP) builds a new [`Registry`] from the new
//! configuration and swaps it in whole; readers (event loops, HTTP) load it per decision, so a
//! decision never sees half of one configuration and half of another, and never waits.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::Registry;

/// The registry in force. Cheap to load: one atomic read and a reference count, no lock.
#[derive(Debug)]
pub struct Current(ArcSwap<Registry>);

impl Current {
    pub fn new(registry: Registry) -> Current {
        Current(ArcSwap::from_pointee(registry))
    }

    /// The registry now; hold the guard for one decision, not across a loop turn.
    pub fn load(&self) -> Guard<Arc<Registry>> {
        self.0.load()
    }

    /// Puts `registry` in force for every decision from now on.
    pub fn replace(&self, registry: Registry) {
        self.0.store(Arc::new(registry));
    }
}

impl From<Registry> for Current {
    fn from(registry: Registry) -> Current {
        Current::new(registry)
    }
}
