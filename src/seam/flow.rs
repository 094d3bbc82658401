//! Per-connection byte credit: how the backend knows when to pause.
//!
//! A worker charges each delivery's cost before handing it to a shard and stops dispatching to a
//! connection whose queued bytes reached the limit (`mqtt.max_queued_bytes`). The shard releases
//! the cost once the PUBLISH is written to the socket; when it drains a connection that a worker
//! found full, it sends [`super::ToBackend::Resume`]. Two atomics, no lock on the per-event path.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug)]
pub struct ConnFlow {
    queued: AtomicUsize,
    limit: usize,
    /// Set by a worker that found the connection full; cleared by the shard when it drains.
    blocked: AtomicBool,
}

impl ConnFlow {
    pub fn new(limit: usize) -> ConnFlow {
        ConnFlow {
            queued: AtomicUsize::new(0),
            limit,
            blocked: AtomicBool::new(false),
        }
    }

    /// Worker side: whether another delivery may be queued. Marks the connection blocked if not.
    pub fn has_room(&self) -> bool {
        if self.queued.load(Ordering::Acquire) < self.limit {
            return true;
        }
        self.blocked.store(true, Ordering::Release);
        // Re-check: the shard may have drained between the load and the store.
        self.queued.load(Ordering::Acquire) < self.limit
    }

    /// Worker side: charge a delivery.
    pub fn charge(&self, cost: usize) {
        self.queued.fetch_add(cost, Ordering::AcqRel);
    }

    /// Shard side: release written bytes. Returns true when a worker should be told to resume.
    pub fn release(&self, cost: usize) -> bool {
        if cost == 0 {
            return false;
        }
        let before = self.queued.fetch_sub(cost, Ordering::AcqRel);
        let after = before.saturating_sub(cost);
        // Resume at half the limit so a full connection does not ping-pong per event.
        after <= self.limit / 2 && self.blocked.swap(false, Ordering::AcqRel)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_at_limit_and_resumes_at_half() {
        let f = ConnFlow::new(100);
        assert!(f.has_room());
        f.charge(60);
        assert!(f.has_room());
        f.charge(60);
        assert!(!f.has_room());
        assert!(!f.release(10), "110 queued is still above half the limit");
        assert!(f.release(60), "50 queued: resume");
        assert!(!f.release(10), "resume is signalled once");
        assert!(f.has_room());
    }
}
